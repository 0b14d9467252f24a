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

/// Switch to the spec's user: supplementary groups, gid, uid; capabilities survive (keep-caps) so
/// the caller can set them exactly afterwards.
pub fn switch_user(p: &Process, setgroups_allowed: bool) -> Result<()> {
    let u = p.user();
    nix::sys::prctl::set_keepcaps(true).ctx(|| "PR_SET_KEEPCAPS")?;
    let groups: Vec<Gid> = u
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if setgroups_allowed {
        nix::unistd::setgroups(&groups)
            .ctx(|| format!("process.user.additionalGids {groups:?}: setgroups"))?;
    } else if !groups.is_empty() {
        return Err(Error::Other(
            "process.user.additionalGids: setgroups is denied in an unprivileged user namespace"
                .into(),
        ));
    }
    let gid = Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .ctx(|| format!("process.user.gid {}: setresgid (is it mapped?)", u.gid()))?;
    let uid = Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .ctx(|| format!("process.user.uid {}: setresuid (is it mapped?)", u.uid()))?;
    nix::sys::prctl::set_keepcaps(false).ctx(|| "PR_SET_KEEPCAPS off")?;
    if let Some(m) = u.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(m));
    } else {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    }
    Ok(())
}

/// `chdir` to `process.cwd` resolved inside the container's root with no magic link followed:
/// `/proc/self/fd/N` cannot make a descriptor the runtime still holds (a host directory) the
/// workload's cwd (CVE-2024-21626). Resolved as the process's own user, after the switch.
fn enter_cwd(cwd: &Path) -> Result<()> {
    let what = || format!("process.cwd {}", cwd.display());
    let dir = sys::openat2(
        libc::AT_FDCWD,
        Path::new("/"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
    .ctx(what)?;
    let fd = sys::openat2(
        dir.as_raw_fd(),
        cwd,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )
    .ctx(what)?;
    nix::unistd::fchdir(&fd).ctx(what)
}

/// The steps from (namespace) root to the spec's process, in the order the kernel needs: cut
/// the bounding set, switch user with keep-caps, set the capability sets, no_new_privs, cwd.
/// Returns the program to exec, found with the process's own PATH.
pub fn become_the_process(p: &Process, setgroups_allowed: bool) -> Result<PathBuf> {
    let sets = crate::capabilities::Sets::from_spec(p.capabilities().as_ref());
    crate::capabilities::drop_bounding(&sets)?;
    switch_user(p, setgroups_allowed)?;
    crate::capabilities::apply(&sets)?;
    if p.no_new_privileges().unwrap_or(false) {
        set_no_new_privs()?;
    }
    enter_cwd(p.cwd())?;
    let env = p.env().clone().unwrap_or_default();
    let arg0 = p
        .args()
        .as_ref()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    find_program(&arg0, &env)
}

pub fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().ctx(|| "PR_SET_NO_NEW_PRIVS")
}

/// Find the program: a path with '/' is used as is; otherwise the `PATH` of the process's
/// environment is searched (inside the container).
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        return Ok(PathBuf::from(arg0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(arg0);
        if let Ok(md) = std::fs::metadata(&cand) {
            use std::os::unix::fs::PermissionsExt;
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(Error::Other(format!(
        "process.args[0]: {arg0:?} not found in PATH {path:?} inside the container"
    )))
}

/// Mark every descriptor but stdio and the `preserve` ones after it close-on-exec.
pub fn close_fds(preserve: u32) -> Result<()> {
    sys::cloexec_from(3 + preserve).ctx(|| "close_range")
}

fn cstrings<'a>(it: impl Iterator<Item = &'a str>) -> Result<Vec<CString>> {
    it.map(|s| CString::new(s).map_err(|_| Error::Other(format!("NUL byte in {s:?}"))))
        .collect()
}

/// `execve` the process; only returns on failure.
pub fn exec(program: &Path, p: &Process) -> Error {
    let args = p.args().clone().unwrap_or_default();
    let env = p.env().clone().unwrap_or_default();
    let prog = match CString::new(program.as_os_str().as_bytes()) {
        Ok(c) => c,
        Err(_) => return Error::Other("NUL in program path".into()),
    };
    let (argv, envp) = match (
        cstrings(args.iter().map(String::as_str)),
        cstrings(env.iter().map(String::as_str)),
    ) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match nix::unistd::execve(&prog, &argv, &envp) {
        Err(e) => Error::Other(format!("exec {}: {e}", program.display())),
    }
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
