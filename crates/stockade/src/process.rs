//! The container's process: rlimits, user and groups, umask, cwd, environment, the kernel keyring
//! (seed §2: keys are not namespaced, so the process gets a fresh anonymous session keyring),
//! no_new_privs (seed §3: setuid binaries gain nothing), no leaked descriptors, and `execve`.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimitType, Process};

use crate::error::{Context, Error, Result};
use crate::sys;

/// The RLIMIT_ number (its C type differs between glibc and musl: the caller casts).
fn rlimit_resource(t: PosixRlimitType) -> i64 {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as i64
}

/// The calling process's own limit of type `t`: (soft, hard).
pub fn own_rlimit(t: PosixRlimitType) -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid, writable rlimit struct for the duration of the call.
    if unsafe { libc::getrlimit(rlimit_resource(t) as _, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

pub fn set_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().iter().flatten() {
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: lim is a valid rlimit struct for the duration of the call.
        if unsafe { libc::setrlimit(rlimit_resource(r.typ()) as _, &lim) } != 0 {
            let e = std::io::Error::last_os_error();
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                " (raising a hard limit needs CAP_SYS_RESOURCE on the host)"
            } else {
                ""
            };
            return Err(Error::Other(format!(
                "process.rlimits {:?} soft={} hard={}: {e}{hint}",
                r.typ(),
                r.soft(),
                r.hard()
            )));
        }
    }
    Ok(())
}

/// Join a fresh anonymous session keyring: the container cannot reach the keys of the host's (or
/// another container's) session keyring.
pub fn fresh_keyring() -> Result<()> {
    match sys::keyctl_join_anonymous_session() {
        Ok(_) => Ok(()),
        // A host that blocks keyctl (ENOSYS, or EPERM under an outer seccomp filter) has no keyring
        // to share either.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EACCES)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e).ctx(|| "join a new session keyring"),
    }
}

/// Everything the process needs, made while the child is still (namespace) root and before any
/// seccomp filter: the capability sets (probed), the credentials, `process.cwd` opened inside the
/// root, the program found and its argv/envp as C arrays. Without no_new_privileges the filter
/// must be loaded while we hold CAP_SYS_ADMIN, before the user switch, so what follows it is
/// only what runc does there: the credential calls, `fchdir`, `execve`
/// (`tests/runc_allowance.rs` measures it).
pub struct Ready {
    pub sets: crate::capabilities::Sets,
    groups: Vec<Gid>,
    uid: Uid,
    gid: Gid,
    cwd: std::os::fd::OwnedFd,
    program: CString,
    /// the strings, and NULL-terminated pointer arrays into them (heap data: moving the
    /// vectors moves no string)
    _strings: (Vec<CString>, Vec<CString>),
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Ready {
    pub fn new(p: &Process, setgroups_allowed: bool) -> Result<Ready> {
        let u = p.user();
        let groups: Vec<Gid> = u
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        if !setgroups_allowed && !groups.is_empty() {
            return Err(Error::Other(
                "process.user.additionalGids: setgroups is denied in an unprivileged user namespace"
                    .into(),
            ));
        }
        let cwd = open_cwd(p.cwd())?;
        let env = p.env().clone().unwrap_or_default();
        let args = p.args().clone().unwrap_or_default();
        let arg0 = args.first().cloned().unwrap_or_default();
        let program = find_program(&arg0, &env, &cwd)?;
        let (args, env) = (
            cstrings(args.iter().map(String::as_str))?,
            cstrings(env.iter().map(String::as_str))?,
        );
        let ptrs = |v: &[CString]| {
            let mut p: Vec<*const libc::c_char> = v.iter().map(|c| c.as_ptr()).collect();
            p.push(std::ptr::null());
            p
        };
        Ok(Ready {
            argv: ptrs(&args),
            envp: ptrs(&env),
            _strings: (args, env),
            sets: crate::capabilities::Sets::from_spec(p.capabilities().as_ref()),
            groups,
            uid: Uid::from_raw(u.uid()),
            gid: Gid::from_raw(u.gid()),
            cwd,
            program: CString::new(program.as_os_str().as_bytes())
                .map_err(|_| Error::Other("process.args[0]: NUL byte".into()))?,
        })
    }

    /// Switch to the spec's user and capabilities and enter the cwd: keep-caps, groups, gid,
    /// uid, the capability sets, `fchdir`. The bounding set was cut before (see
    /// [`crate::capabilities::drop_bounding`]). No allocation, no path lookup: this may run
    /// under the container's filter.
    pub fn become_user(&self, setgroups_allowed: bool) -> Result<()> {
        nix::sys::prctl::set_keepcaps(true).ctx(|| "PR_SET_KEEPCAPS")?;
        if setgroups_allowed {
            nix::unistd::setgroups(&self.groups)
                .ctx(|| "process.user.additionalGids: setgroups")?;
        }
        // setgid/setuid as a privileged process set the real, effective and saved ids alike
        nix::unistd::setgid(self.gid).ctx(|| "process.user.gid: setgid (is it mapped?)")?;
        nix::unistd::setuid(self.uid).ctx(|| "process.user.uid: setuid (is it mapped?)")?;
        nix::sys::prctl::set_keepcaps(false).ctx(|| "PR_SET_KEEPCAPS off")?;
        crate::capabilities::apply(&self.sets)?;
        nix::unistd::fchdir(&self.cwd).ctx(|| "process.cwd: fchdir")
    }

    /// `execve`; only returns on failure. The arrays were built before any filter.
    pub fn exec(&self) -> Error {
        // SAFETY: program is a NUL-terminated string; argv and envp are NULL-terminated arrays
        // of pointers into strings self owns, all alive for the call (execve only returns on
        // failure).
        unsafe {
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            )
        };
        let e = std::io::Error::last_os_error();
        Error::Other(format!(
            "exec: {:?}: {}",
            self.program.to_string_lossy(),
            go_errno(&e)
        ))
    }
}

/// The umask the process starts with: `process.user.umask`, else 0022 (runc's). Process-wide
/// and kept across the user switch, so it is set before any filter.
pub fn set_umask(p: &Process) {
    let m = p.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m));
}

/// `process.cwd` resolved inside the container's root with no magic link followed:
/// `/proc/self/fd/N` cannot make a descriptor the runtime still holds (a host directory) the
/// workload's cwd (CVE-2024-21626). An `O_PATH` descriptor: `fchdir` as the process's user
/// checks its search permission.
fn open_cwd(cwd: &Path) -> Result<std::os::fd::OwnedFd> {
    let what = || format!("process.cwd {}", cwd.display());
    let dir = sys::openat2(
        libc::AT_FDCWD,
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
    .ctx(what)?;
    sys::openat2(
        dir.as_raw_fd(),
        cwd,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )
    .ctx(what)
}

pub fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().ctx(|| "PR_SET_NO_NEW_PRIVS")
}

/// An OS error in Go's wording ("no such file or directory"), which engines match on: Docker
/// turns "no such file or directory" and "executable file not found" into exit 127 and
/// "permission denied" into 126, as runc words them.
pub fn go_errno(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s.to_string(),
    }
}

/// Find the program as runc does (Go's `exec.LookPath`), with its wording: a name with '/' is
/// checked as it is (relative to `process.cwd`); otherwise the `PATH` of the process's
/// environment is searched inside the container. A regular file with an execute bit, or:
/// `exec: "X": stat X: no such file or directory`, `exec: "X": permission denied`,
/// `exec: "X": executable file not found in $PATH`.
pub fn find_program(arg0: &str, env: &[String], cwd: &impl std::os::fd::AsFd) -> Result<PathBuf> {
    use nix::sys::stat::{fstatat, SFlag};
    let check = |cand: &Path| -> std::result::Result<(), std::io::Error> {
        let st = fstatat(cwd, cand, nix::fcntl::AtFlags::empty())?;
        let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if fmt != SFlag::S_IFDIR && st.st_mode & 0o111 != 0 {
            Ok(())
        } else {
            Err(std::io::Error::from_raw_os_error(libc::EACCES))
        }
    };
    let fail = |msg: String| Error::Other(format!("exec: {arg0:?}: {msg}"));
    if arg0.is_empty() {
        return Err(fail("executable file not found in $PATH".into()));
    }
    if arg0.contains('/') {
        return match check(Path::new(arg0)) {
            Ok(()) => Ok(PathBuf::from(arg0)),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => Err(fail(go_errno(&e))),
            Err(e) => Err(fail(format!("stat {arg0}: {}", go_errno(&e)))),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        // an empty element is the current directory, as in Go and the shells
        let cand = Path::new(if dir.is_empty() { "." } else { dir }).join(arg0);
        if check(&cand).is_ok() {
            return Ok(cand);
        }
    }
    Err(fail("executable file not found in $PATH".into()))
}

/// Mark every descriptor but stdio and the `preserve` ones after it close-on-exec.
pub fn close_fds(preserve: u32) -> Result<()> {
    sys::cloexec_from(3 + preserve).ctx(|| "close_range")
}

fn cstrings<'a>(it: impl Iterator<Item = &'a str>) -> Result<Vec<CString>> {
    it.map(|s| CString::new(s).map_err(|_| Error::Other(format!("NUL byte in {s:?}"))))
        .collect()
}

/// Make a pty inside the container (its own devpts), make it the controlling terminal and stdio,
/// and return the master for the console socket. `size` is process.consoleSize (rows, columns).
pub fn setup_terminal(size: Option<(u16, u16)>, console: bool) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    // The master from the container's own devpts, opened without following any symlink and
    // checked to be on devpts through its descriptor (an image's /dev/ptmx could be anything);
    // the slave from the master (TIOCGPTPEER), with no path looked up at all.
    let root = sys::openat2(libc::AT_FDCWD, Path::new("/"), libc::O_PATH, 0, 0).ctx(|| "open /")?;
    let master = sys::openat2(
        root.as_raw_fd(),
        Path::new("dev/pts/ptmx"),
        libc::O_RDWR | libc::O_NOCTTY,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
    )
    .ctx(|| "open /dev/pts/ptmx (process.terminal needs a devpts mount at /dev/pts)")?;
    let fs = nix::sys::statfs::fstatfs(&master).ctx(|| "statfs /dev/pts/ptmx")?;
    if fs.filesystem_type() != nix::sys::statfs::DEVPTS_SUPER_MAGIC {
        return Err(Error::Other(
            "/dev/pts/ptmx is not on a devpts filesystem (process.terminal needs a devpts mount at /dev/pts)".into(),
        ));
    }
    sys::unlock_pty(&master).ctx(|| "unlockpt")?;
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer, valid for the call.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let slave = sys::pty_peer(&master).ctx(|| "open the pty's slave (TIOCGPTPEER)")?;
    if console {
        crate::rootfs::bind_console(&root, &slave)?;
    }
    // exec joins an existing session; a new one is needed to take a controlling terminal
    let _ = nix::unistd::setsid();
    // SAFETY: TIOCSCTTY takes an integer argument; slave is a valid terminal descriptor.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| "make the pty the controlling terminal");
    }
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors; both are valid.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "dup2 pty");
        }
    }
    Ok(master)
}

/// Send the pty master to the engine's console socket (runc's protocol: the pty name as data,
/// the descriptor as SCM_RIGHTS).
pub fn send_console(path: &Path, master: &std::os::fd::OwnedFd) -> Result<()> {
    let sock = sys::connect_unix(path)
        .ctx(|| format!("connect to --console-socket {}", path.display()))?;
    sys::send_with_fd(&sock, b"/dev/ptmx", master).ctx(|| "send the pty master")
}

/// A list of CPUs or NUMA nodes as runtime-spec writes them ("0-3,7"): the numbers (below
/// 4096), or what is wrong with the text. The cpuset syntax, parsed as cgroups parse it.
pub fn parse_id_list(s: &str) -> std::result::Result<Vec<u32>, String> {
    let ids = crate::cgroups::parse_cpuset(s)?;
    match ids.iter().find(|i| **i >= 4096) {
        Some(i) => Err(format!("{s:?}: {i} is past 4095")),
        None if ids.is_empty() => Err(format!("{s:?}: no ids")),
        None => Ok(ids),
    }
}

/// `sched_setaffinity` of the calling thread to `cpus` ("0-3,7"); `what` names the field.
pub fn set_affinity(cpus: &str, what: &str) -> Result<()> {
    let list = parse_id_list(cpus).map_err(|m| Error::Other(format!("{what}: {m}")))?;
    let mut set = nix::sched::CpuSet::new();
    for c in list {
        set.set(c as usize)
            .map_err(|_| Error::Other(format!("{what}: CPU {c} is past the kernel's CPU set")))?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .ctx(|| format!("{what} {cpus}: sched_setaffinity (CPUs the container may not use?)"))
}

/// `linux.memoryPolicy`: `set_mempolicy(2)` for the process (inherited across `execve`).
pub fn set_mempolicy(p: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<()> {
    let (mode, flags, nodes) = mempolicy_args(p).map_err(Error::Other)?;
    let mut mask = [0u64; 64]; // 4096 nodes
    for n in &nodes {
        mask[*n as usize / 64] |= 1 << (n % 64);
    }
    let maxnode = if nodes.is_empty() { 0 } else { 4096 + 1 };
    let ptr = if nodes.is_empty() {
        std::ptr::null()
    } else {
        mask.as_ptr()
    };
    // SAFETY: mask is a valid bitmap of maxnode-1 bits (or NULL with 0), alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode | flags, ptr, maxnode) };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| {
            format!(
                "linux.memoryPolicy {:?} nodes {:?}: set_mempolicy (nodes this host lacks?)",
                p.mode(),
                p.nodes().as_deref().unwrap_or("")
            )
        });
    }
    Ok(())
}

/// The kernel's (mode, flags, nodes) for a memory policy, checked as runtime-spec asks: every
/// mode but MPOL_DEFAULT and MPOL_LOCAL names nodes, and those two name none.
pub fn mempolicy_args(
    p: &oci_spec::runtime::LinuxMemoryPolicy,
) -> std::result::Result<(i64, i64, Vec<u32>), String> {
    use oci_spec::runtime::{MemoryPolicyFlagType as F, MemoryPolicyModeType as M};
    let mode = match p.mode() {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    let mut flags = 0i64;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            F::MpolFNumaBalancing => 1 << 13,
            F::MpolFRelativeNodes => 1 << 14,
            F::MpolFStaticNodes => 1 << 15,
        };
    }
    let nodes = match p.nodes().as_deref().filter(|n| !n.is_empty()) {
        Some(n) => parse_id_list(n)?,
        None => vec![],
    };
    match (mode, nodes.is_empty()) {
        (0 | 4, false) => Err(format!("{} takes no nodes", p.mode())),
        (1..=3 | 5 | 6, true) => Err(format!("{} needs nodes", p.mode())),
        _ => Ok((mode, flags, nodes)),
    }
}
