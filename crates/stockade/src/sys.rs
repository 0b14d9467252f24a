//! Thin wrappers over the system calls that `nix` does not (yet) cover: `clone3`, the new mount API
//! (`open_tree`, `move_mount`, `mount_setattr`), `openat2`, `close_range` and `keyctl`.
//!
//! Every `unsafe` block of the runtime lives here or in the seccomp crate's loader, each with its
//! `// SAFETY:` argument. Everything returns `std::io::Result` so callers add context.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `struct clone_args` from `<linux/sched.h>` (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Fork-like `clone3(2)`: the child continues on a copy of the caller's stack, as with `fork`.
/// Returns 0 in the child and the child's pid in the parent. `cgroup_fd`, when given, places the
/// child in that cgroup v2 directory atomically (`CLONE_INTO_CGROUP`).
///
/// The caller must be single-threaded (the runtime is), so the child's copy of the address space
/// has no locks held by threads that do not exist in it.
pub fn clone3(flags: u64, cgroup_fd: Option<RawFd>) -> io::Result<libc::pid_t> {
    let mut args = CloneArgs {
        flags,
        // with CLONE_PARENT the kernel takes the caller's own exit signal (and refuses another)
        exit_signal: if flags & libc::CLONE_PARENT as u64 != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: args is a valid, fully initialised clone_args of the size passed; with stack == 0 the
    // child resumes here on a private copy of our stack, exactly like fork(2). The process is
    // single-threaded, so nothing in the child depends on another thread's state.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    check(ret).map(|r| r as libc::pid_t)
}

pub const OPEN_TREE_CLONE: u32 = 1;
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
pub const AT_RECURSIVE: u32 = 0x8000;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// `prctl(PR_CAPBSET_DROP, cap)`: one capability out of the bounding set (a capability already
/// out of it stays out; EINVAL for one the kernel does not know).
pub fn capbset_drop(cap: u8) -> io::Result<()> {
    // SAFETY: PR_CAPBSET_DROP takes the capability number and reads no memory.
    if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `prctl(PR_CAPBSET_READ, cap)`: whether the capability is in the bounding set; EINVAL for one
/// the kernel does not know.
pub fn capbset_read(cap: u8) -> io::Result<bool> {
    // SAFETY: PR_CAPBSET_READ takes the capability number and reads no memory.
    match unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) } {
        r if r < 0 => Err(io::Error::last_os_error()),
        r => Ok(r == 1),
    }
}

/// `struct mount_attr` from `<linux/mount.h>`.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// `open_tree(2)` of an absolute or cwd-relative path; with `OPEN_TREE_CLONE` the result is a
/// detached copy of the mount (tree) that can be reconfigured and attached elsewhere.
pub fn open_tree(path: &Path, flags: u32) -> io::Result<OwnedFd> {
    let p = cstr(path)?;
    // SAFETY: p is a valid NUL-terminated string that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            p.as_ptr(),
            flags | OPEN_TREE_CLOEXEC,
        )
    };
    // SAFETY: on success the kernel returned a new file descriptor that we now own.
    check(ret).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `open_tree(2)` on a descriptor (`AT_EMPTY_PATH`): clone a mount tree, detached ones included.
pub fn open_tree_fd(fd: RawFd, flags: u32) -> io::Result<OwnedFd> {
    let empty = c"";
    // SAFETY: empty is a valid NUL-terminated string that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd,
            empty.as_ptr(),
            flags | OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32,
        )
    };
    // SAFETY: on success the kernel returned a new file descriptor that we now own.
    check(ret).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `mount_setattr(2)` on the mount referred to by `fd` (`AT_EMPTY_PATH`), optionally recursive.
pub fn mount_setattr_fd(fd: RawFd, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let empty = c"";
    let flags = libc::AT_EMPTY_PATH as u32 | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: empty and attr are valid for the duration of the call and attr's size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            empty.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

/// `mount_setattr(2)` on a path.
pub fn mount_setattr_path(path: &Path, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let p = cstr(path)?;
    let flags = if recursive { AT_RECURSIVE } else { 0 } | libc::AT_SYMLINK_NOFOLLOW as u32;
    // SAFETY: p and attr are valid for the duration of the call and attr's size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            p.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

/// Attach the detached mount `from` onto the file or directory referred to by `to`.
pub fn move_mount_fd(from: RawFd, to: RawFd) -> io::Result<()> {
    let empty = c"";
    // SAFETY: both paths are the empty string and both descriptors are valid for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            empty.as_ptr(),
            to,
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(ret).map(drop)
}

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_IN_ROOT: u64 = 0x10;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_NO_XDEV: u64 = 0x01;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(2)` relative to `dirfd` with the given resolve flags. Used with `RESOLVE_IN_ROOT` so a
/// path inside a container rootfs is resolved as if the rootfs were `/`: symlinks cannot escape.
pub fn openat2(
    dirfd: RawFd,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let p = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    // SAFETY: p and how are valid for the duration of the call and how's size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            p.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    // SAFETY: on success the kernel returned a new file descriptor that we now own.
    check(ret).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `sigtimedwait(2)`: the next signal of `set` (blocked by the caller), or None after `timeout`.
pub fn sigtimedwait(
    set: &nix::sys::signal::SigSet,
    timeout: std::time::Duration,
) -> io::Result<Option<nix::sys::signal::Signal>> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    loop {
        // SAFETY: set and ts are valid for the call; no siginfo is asked for.
        let r = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
        if r >= 0 {
            return Ok(nix::sys::signal::Signal::try_from(r).ok());
        }
        match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
            e if e.raw_os_error() == Some(libc::EINTR) => continue,
            e => return Err(e),
        }
    }
}

/// Plain `openat(2)` of `name` in `dir` (close-on-exec): the one open the runtime makes after a
/// container's filter without no_new_privileges, as runc does (the exec fifo), where `openat2`
/// may be denied by an older profile.
pub fn openat(dir: &impl AsRawFd, name: &str, flags: i32) -> io::Result<OwnedFd> {
    let p = cstr(Path::new(name))?;
    // SAFETY: p is a valid NUL-terminated string for the duration of the call.
    let ret = unsafe { libc::openat(dir.as_raw_fd(), p.as_ptr(), flags | libc::O_CLOEXEC) };
    // SAFETY: on success the kernel returned a new file descriptor that we now own.
    check(ret as libc::c_long).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Mark every descriptor from `first` upwards close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range takes plain integers; it only changes descriptor flags.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    check(ret).map(drop)
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let a = cstr(new_root)?;
    let b = cstr(put_old)?;
    // SAFETY: both strings are valid and NUL-terminated for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, a.as_ptr(), b.as_ptr()) };
    check(ret).map(drop)
}

const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
pub const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;

/// Join a new anonymous session keyring; returns its serial.
pub fn keyctl_join_anonymous_session() -> io::Result<i32> {
    // SAFETY: a NULL name asks the kernel for a fresh anonymous keyring; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    check(ret).map(|r| r as i32)
}

/// The serial of a keyring (`KEYCTL_GET_KEYRING_ID`) without creating it.
pub fn keyctl_keyring_id(spec: libc::c_long) -> io::Result<i32> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_GET_KEYRING_ID, spec, 0) };
    check(ret).map(|r| r as i32)
}

/// A /proc file, whole, in few reads: its size says 0, so `fs::read_to_string` would stat it,
/// then start with a 32-byte probe and grow from there, each read re-entering the kernel.
pub fn read_proc(path: &str) -> io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 16384];
    let mut n = 0;
    loop {
        if n == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The raw descriptor number of anything that has one, for building `/proc/self/fd/N` paths.
pub fn fd_path(fd: &impl AsRawFd) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `fsopen(2)`: a filesystem context for `fstype`.
pub fn fsopen(fstype: &str) -> io::Result<OwnedFd> {
    let t = CString::new(fstype).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    const FSOPEN_CLOEXEC: u32 = 1;
    // SAFETY: t is a valid C string for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) };
    // SAFETY: on success the kernel returned a new descriptor that we now own.
    check(ret).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;

pub fn fsconfig_string(fs: &OwnedFd, key: &str, value: &str) -> io::Result<()> {
    let k = CString::new(key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let v = CString::new(value).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: both strings are valid for the call; aux is unused for SET_STRING.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            k.as_ptr(),
            v.as_ptr(),
            0,
        )
    };
    check(ret).map(drop)
}

const FSCONFIG_SET_FD: u32 = 5;

/// `fsconfig(FSCONFIG_SET_FD)`: an option whose value is a descriptor (overlayfs layers).
pub fn fsconfig_fd(fs: &OwnedFd, key: &str, fd: RawFd) -> io::Result<()> {
    let k = CString::new(key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: k is valid for the call; value is unused (NULL) and aux carries the descriptor.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_FD,
            k.as_ptr(),
            0usize,
            fd,
        )
    };
    check(ret).map(drop)
}

pub fn fsconfig_create(fs: &OwnedFd) -> io::Result<()> {
    // SAFETY: CMD_CREATE takes no pointers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            0,
            0,
            0,
        )
    };
    check(ret).map(drop)
}

/// `fsmount(2)`: a detached mount of the created superblock, with MOUNT_ATTR_* flags.
pub fn fsmount(fs: &OwnedFd, attrs: u64) -> io::Result<OwnedFd> {
    const FSMOUNT_CLOEXEC: u32 = 1;
    // SAFETY: plain integer arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attrs as u32,
        )
    };
    // SAFETY: on success the kernel returned a new descriptor that we now own.
    check(ret).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Bring the loopback interface of the current network namespace up (`SIOCSIFFLAGS`), as a new
/// network namespace starts with it down.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket() takes plain integers; the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket() and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: req is a valid ifreq naming "lo"; the ioctls read and write only that struct.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Send `data` with one descriptor (SCM_RIGHTS) on a connected unix socket.
pub fn send_with_fd(sock: &impl AsRawFd, data: &[u8], fd: &impl AsRawFd) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [io::IoSlice::new(data)];
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)?;
    Ok(())
}

/// A stream socket connected to the unix socket at `path`.
pub fn connect_unix(path: &Path) -> io::Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    let addr = UnixAddr::new(path).map_err(io::Error::from)?;
    connect(sock.as_raw_fd(), &addr).map_err(io::Error::from)?;
    Ok(sock)
}

/// fork(2) a child that runs `child` and leaves with `_exit(code)`. For single-threaded callers
/// only (the probe's bounded stress tests).
pub fn fork_exit(child: impl FnOnce() -> i32) -> io::Result<libc::pid_t> {
    // SAFETY: callers are single-threaded when they fork, so the child's copy of the allocator
    // and of every lock is consistent; the child never returns into the caller's code: it runs
    // `child` and ends with _exit, skipping the parent's atexit handlers and buffered output.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let code = child();
            // SAFETY: _exit has no preconditions.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

const FSCONFIG_SET_FLAG: u32 = 0;

/// `fsconfig(FSCONFIG_SET_FLAG)`: a filesystem option without a value (`newinstance`, `ro`).
pub fn fsconfig_flag(fs: &OwnedFd, key: &str) -> io::Result<()> {
    let k = CString::new(key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: k is valid for the call; value and aux are unused for SET_FLAG.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            k.as_ptr(),
            0usize,
            0,
        )
    };
    check(ret).map(drop)
}

/// `fchmodat2(fd, "", mode, AT_EMPTY_PATH)`: chmod the inode an `O_PATH` descriptor refers to.
/// No name is looked up, so no symlink can redirect it.
pub fn fchmod_fd(fd: &impl AsRawFd, mode: u32) -> io::Result<()> {
    const SYS_FCHMODAT2: libc::c_long = 452; // the same number on every architecture
    let empty = c"";
    // SAFETY: empty is a valid NUL-terminated string; the other arguments are integers.
    let ret = unsafe {
        libc::syscall(
            SYS_FCHMODAT2,
            fd.as_raw_fd(),
            empty.as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    check(ret).map(drop)
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`: chown the inode an `O_PATH` descriptor refers to.
pub fn fchown_fd(fd: &impl AsRawFd, uid: u32, gid: u32) -> io::Result<()> {
    let empty = c"";
    // SAFETY: empty is a valid NUL-terminated string; the other arguments are integers.
    let ret = unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH,
        )
    };
    check(ret as libc::c_long).map(drop)
}

/// Whether `fd` is the root of its mount (`statx` `STATX_ATTR_MOUNT_ROOT`) and the mount's id.
pub fn mount_root_and_id(fd: &impl AsRawFd) -> io::Result<(bool, u64)> {
    const STATX_ATTR_MOUNT_ROOT: u64 = 0x2000;
    let empty = c"";
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut sx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: empty and sx are valid for the call; the kernel writes at most sizeof(statx).
    // (the raw system call: a static glibc may leave its weak `statx` wrapper unresolved)
    let ret = unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut sx as *mut libc::statx,
        )
    };
    check(ret)?;
    Ok((
        sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT != 0
            && sx.stx_attributes & STATX_ATTR_MOUNT_ROOT != 0,
        sx.stx_mnt_id,
    ))
}

/// `ioctl(TIOCGPTPEER)`: open the slave of a pty master without looking up any path.
pub fn pty_peer(master: &impl AsRawFd) -> io::Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags as its integer argument and returns a new descriptor.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER as _, flags) };
    // SAFETY: on success the kernel returned a new descriptor that we now own.
    check(ret as libc::c_long).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `flock(2)` with `LOCK_EX`, `LOCK_EX | LOCK_NB` or `LOCK_UN` on a descriptor we keep (nix's
/// `Flock` owns the file it locks, which the state directory's lock must not).
pub fn flock(fd: &impl AsRawFd, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock takes a descriptor and an integer operation.
    let ret = unsafe { libc::flock(fd.as_raw_fd(), op) };
    check(ret as libc::c_long).map(drop)
}

/// `unlockpt(3)`: `ioctl(TIOCSPTLCK, 0)` on a pty master.
pub fn unlock_pty(master: &impl AsRawFd) -> io::Result<()> {
    const TIOCSPTLCK: libc::c_ulong = 0x4004_5431;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, valid for the call.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), TIOCSPTLCK as _, &unlock) };
    check(ret as libc::c_long).map(drop)
}

/// `pidfd_open(2)`: a descriptor that becomes readable when `pid` exits.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: on success the kernel returned a new descriptor that we now own.
    check(ret).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

// Seccomp user notification (seccomp_unotify(2)): the structures and ioctls the learn
// verifier and the complain/enforce agent share.

/// `struct seccomp_notif` (80 bytes) and `struct seccomp_notif_resp` (24 bytes).
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct SeccompNotif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub nr: i32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
pub struct SeccompNotifResp {
    pub id: u64,
    pub val: i64,
    pub error: i32,
    pub flags: u32,
}

pub const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
pub const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
pub const SECCOMP_IOCTL_NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;
pub const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;
pub const SECCOMP_IOCTL_NOTIF_SET_FLAGS: libc::c_ulong = 0x4008_2104;
pub const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;

/// SECCOMP_IOCTL_NOTIF_RECV: the next notification (blocks until one comes).
pub fn notif_recv(fd: &OwnedFd) -> io::Result<SeccompNotif> {
    let mut n = SeccompNotif::default();
    // SAFETY: NOTIF_RECV writes one seccomp_notif into n, which is zeroed and 80 bytes.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV as _, &mut n) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n)
}

pub fn notif_send(fd: &OwnedFd, resp: &SeccompNotifResp) -> io::Result<()> {
    // SAFETY: NOTIF_SEND reads one seccomp_notif_resp (24 bytes) from resp.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND as _, resp) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether notification `id` is still pending (its caller has not gone, so its pid is its own).
pub fn notif_valid(fd: &OwnedFd, id: u64) -> bool {
    // SAFETY: NOTIF_ID_VALID reads one u64 from &id.
    unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_ID_VALID as _, &id) == 0 }
}

/// `ioctl(NS_GET_USERNS)`: the user namespace that owns the namespace `ns` (an nsfs file).
pub fn ns_get_userns(ns: &impl AsRawFd) -> io::Result<OwnedFd> {
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    // SAFETY: the ioctl takes no argument and returns a new descriptor (or -1), which we own.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
