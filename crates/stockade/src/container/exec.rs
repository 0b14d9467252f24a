//! `exec`: another process in a running container, joining every namespace of its init (user
//! first) and its cgroups before any of its code runs.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::channel::{join_cgroup_files, recv_msg, send_cgroup_files, send_fd};
use super::{channel_and_signals, die_with_runtime, wait_forwarding};
use crate::diag::mark;
use crate::error::{Context, Error, Result};
use crate::{namespaces, process, spec};

/// What `exec` runs: a full OCI process (from `--process`, as engines pass it) or the container's
/// own process with other arguments and overrides.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// Run another process in a running container: every namespace of its init is joined (user
/// first), the process enters the container's cgroups before any of its code runs, and gets the
/// spec's capabilities, user, rlimits, no_new_privs and seccomp filter. Returns its exit code
/// (0 at once with `detach`).
pub fn exec(
    root: &Path,
    id: &str,
    process: &oci_spec::runtime::Process,
    opts: &ExecOptions,
) -> Result<i32> {
    let (st, spec, file) = running_spec(root, id, process, opts)?;
    let filter = crate::seccomp::compile(&spec, &file, true, Some(root), None)?;
    let init = st.pid;
    let setgroups_allowed = std::fs::read_to_string(format!("/proc/{init}/setgroups"))
        .map(|s| s.trim() != "deny")
        .unwrap_or(true);
    let order = namespaces_of(&spec, init)?;
    let has = |t: LinuxNamespaceType| {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| n.iter().any(|n| n.typ() == t))
    };
    let ns_path = |t: LinuxNamespaceType| {
        PathBuf::from(format!("/proc/{init}/ns/{}", namespaces::proc_name(t)))
    };
    let (ours, theirs, forwarded, old_mask) = channel_and_signals()?;
    if has(LinuxNamespaceType::Pid) {
        namespaces::join(LinuxNamespaceType::Pid, &ns_path(LinuxNamespaceType::Pid))?;
    }
    // Born in the container's unified cgroup; its v1 ones it joins itself (see `exec_child`).
    let v2_dir = st
        .cgroup
        .as_ref()
        .and_then(|c| c.v2.as_ref())
        .and_then(|d| std::fs::File::open(d).ok());
    let tasks_files = match &st.cgroup {
        Some(cg) => cg.v1_tasks_files()?,
        None => vec![],
    };
    let pid = crate::sys::clone3(0, v2_dir.as_ref().map(|f| f.as_raw_fd())).ctx(|| "clone3")?;
    drop(v2_dir);
    if pid == 0 {
        drop(ours);
        let _ = old_mask.thread_set_mask();
        let err = match exec_child(
            &spec,
            &order,
            &theirs,
            filter.as_ref(),
            opts.preserve_fds,
            setgroups_allowed,
        ) {
            Ok(e) | Err(e) => e,
        };
        // write(2): it may follow the container's filter, where runc writes too
        let _ = nix::unistd::write(&theirs, format!("E{err}").as_bytes());
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(1) }
    }
    drop(theirs);
    mark("exec: cloned");
    let child_pid = Pid::from_raw(pid);
    let setup = (|| -> Result<()> {
        send_cgroup_files(&ours, b'G', tasks_files)?;
        loop {
            let (buf, got) = recv_msg(&ours, "wait for exec")?;
            let n = buf.len();
            if n == 0 {
                return Ok(());
            }
            if buf[0] == b'T' {
                // the pty master goes to the engine's console socket
                let master = got.ok_or_else(|| Error::Other("pty master missing".into()))?;
                process::send_console(opts.console_socket.as_deref().expect("checked"), &master)?;
                continue;
            }
            return Err(Error::Child(
                String::from_utf8_lossy(&buf[1..n]).into_owned(),
            ));
        }
    })();
    if let Err(e) = setup {
        let _ = nix::sys::signal::kill(child_pid, Signal::SIGKILL);
        let _ = waitpid(child_pid, None);
        let _ = old_mask.thread_set_mask();
        return Err(e);
    }
    if let Some(p) = &opts.pid_file {
        std::fs::write(p, pid.to_string()).ctx(|| format!("--pid-file {}", p.display()))?;
    }
    if opts.detach {
        let _ = old_mask.thread_set_mask();
        return Ok(0);
    }
    let code = wait_forwarding(child_pid, &forwarded);
    let _ = old_mask.thread_set_mask();
    code
}

/// The running container's state and its spec (the effective config) with `process` in it,
/// checked: a command, and a console socket for a terminal.
fn running_spec(
    root: &Path,
    id: &str,
    process: &oci_spec::runtime::Process,
    opts: &ExecOptions,
) -> Result<(crate::state::State, Spec, PathBuf)> {
    let (dir, st) = crate::lifecycle::load(root, id)?;
    match crate::lifecycle::status(&dir, &st) {
        "running" => {}
        s => {
            return Err(Error::Other(format!(
                "container {id} is {s}: exec needs a running container"
            )))
        }
    }
    let file = crate::state::config_file(root, &st);
    let mut spec = spec::load(&file)?;
    spec.set_process(Some(process.clone()));
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Other("exec: no command given".into()));
    }
    if process.terminal() == Some(true) && opts.console_socket.is_none() {
        return Err(Error::Other(
            "exec with a terminal needs --console-socket".into(),
        ));
    }
    Ok((st, spec, file))
}

/// The init's namespaces the spec lists, opened now (while the init surely exists), in the
/// order to join them.
fn namespaces_of(spec: &Spec, init: i32) -> Result<Vec<(LinuxNamespaceType, std::fs::File)>> {
    let nss = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let has = |t: LinuxNamespaceType| nss.iter().any(|n| n.typ() == t);
    let ns_path = |t: LinuxNamespaceType| {
        PathBuf::from(format!("/proc/{init}/ns/{}", namespaces::proc_name(t)))
    };
    let mut order = vec![];
    for t in [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Time,
    ] {
        if has(t) {
            let f =
                std::fs::File::open(ns_path(t)).ctx(|| format!("open {}", ns_path(t).display()))?;
            order.push((t, f));
        }
    }
    // Privileged, the user namespace goes last: host root may enter the container's other
    // namespaces from outside, and must, for those owned by another user namespace (a network
    // namespace an engine made, joined by path). Unprivileged, it goes first: its capabilities
    // are what lets us join the rest.
    if nix::unistd::geteuid().is_root() {
        order.sort_by_key(|(t, _)| *t == LinuxNamespaceType::User);
    }
    Ok(order)
}

fn exec_child(
    spec: &Spec,
    order: &[(LinuxNamespaceType, std::fs::File)],
    sock: &OwnedFd,
    filter: Option<&stockade_seccomp::Filter>,
    preserve_fds: u32,
    setgroups_allowed: bool,
) -> Result<Error> {
    let process = spec.process().as_ref().expect("set by exec");
    die_with_runtime(sock)?;
    // Nobody in the container may read our memory or open /proc/PID/exe, the runtime binary
    // until execve (CVE-2019-5736): non-dumpable before we join any of its namespaces.
    nix::sys::prctl::set_dumpable(false).ctx(|| "PR_SET_DUMPABLE")?;
    let affinity = process.exec_cpu_affinity().as_ref();
    if let Some(cpus) = affinity
        .and_then(|a| a.initial().as_deref())
        .filter(|c| !c.is_empty())
    {
        // before the container's cgroup (its cpuset) holds us
        process::set_affinity(cpus, "process.execCPUAffinity.initial")?;
    }
    // "G" carries the container's v1 cgroup files: joined before any namespace
    join_cgroup_files(sock, b'G')?;
    for (t, f) in order {
        nix::sched::setns(f, namespaces::flag(*t)).ctx(|| {
            format!(
                "join the container's {} namespace",
                namespaces::proc_name(*t)
            )
        })?;
        if *t == LinuxNamespaceType::User {
            namespaces::become_root("the container's user namespace")?;
            die_with_runtime(sock)?;
        }
    }
    nix::unistd::chdir("/").ctx(|| "chdir /")?;
    if process.terminal() == Some(true) {
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        let master = process::setup_terminal(size, false)?;
        send_fd(sock, b"T", &master)?;
    }
    process::set_rlimits(process)?;
    let after = affinity.and_then(|a| a.cpu_affinity_final().as_deref());
    if let Some(cpus) = after.filter(|c| !c.is_empty()) {
        process::set_affinity(cpus, "process.execCPUAffinity.final")?;
    }
    if let Some(m) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        process::set_mempolicy(m)?;
    }
    let nnp = process.no_new_privileges().unwrap_or(false);
    // before any filter, as in `run`'s child: only credentials, fchdir and execve may follow it
    let ready = process::Ready::new(process, setgroups_allowed)?;
    process::set_umask(process);
    crate::capabilities::drop_bounding(&ready.sets)?;
    process::close_fds(preserve_fds)?;
    if !nnp {
        nix::sys::prctl::set_pdeathsig(None).ctx(|| "clear PR_SET_PDEATHSIG")?;
        if let Some(f) = filter {
            f.load().ctx(|| "load seccomp filter")?;
        }
    }
    ready.become_user(setgroups_allowed)?;
    if nnp {
        process::set_no_new_privs()?;
        die_with_runtime(sock)?;
        mark("exec-child: ready");
        nix::sys::prctl::set_pdeathsig(None).ctx(|| "clear PR_SET_PDEATHSIG")?;
        if let Some(f) = filter {
            f.load().ctx(|| "load seccomp filter")?;
        }
    }
    Ok(ready.exec())
}
