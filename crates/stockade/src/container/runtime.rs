//! The runtime's half of the setup, in the order the child needs it: the id maps and the trees
//! to attach ("go"), then, while the child builds its filesystem, the cgroup (limits set, then
//! its v1 `tasks` files: the child moves itself before its cgroup mounts), the network and the
//! `linux.netDevices` moved in, and the seccomp filter (loaded last). No user code has run. On a small machine this thread and the child are all
//! there is: helper threads cost more to start than the overlap saves.

use std::os::fd::{OwnedFd, RawFd};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;

use super::channel::{child_error, recv_msg, send_cgroup_files, send_filter, send_go};
use super::{net_attach, Made, Plan, RunOptions};
use crate::diag::mark;
use crate::error::{Context, Error, Result};
use crate::procfs::ProcFs;
use crate::{namespaces, process, rootfs};

/// What the child handed over: the seccomp listener (unless its agent took it already), and
/// the pty master when the runtime relays the terminal itself (no console socket).
pub(super) struct Handed {
    pub listener: Option<OwnedFd>,
    /// The complain/enforce agent was started with the listener during setup.
    pub agent_runs: bool,
    pub pty: Option<OwnedFd>,
}

/// Set the child up from outside; returns what it handed over once it has `execve`d (or, for
/// `create`, is ready and blocked on its fifo).
pub(super) fn setup(
    plan: &Plan,
    made: &mut Made,
    ours: &OwnedFd,
    (child, channel_fd): (Pid, RawFd),
    opts: &RunOptions,
) -> Result<Handed> {
    let pid = child.as_raw();
    // Every write to /proc/PID goes through a /proc verified to be procfs (see `procfs`).
    let proc = ProcFs::host().ctx(|| "open /proc")?;
    let tasks_files = go(plan, made, ours, pid, &proc, opts)?;
    let tasks_files = match tasks_files {
        Some(t) => t,
        None => (made.cgroup).finish(plan.resources.as_ref(), plan.id, pid)?,
    };
    if let Some(adj) = plan.process().oom_score_adj() {
        proc.write(&format!("{pid}/oom_score_adj"), adj.to_string().as_bytes())
            .ctx(|| format!("process.oomScoreAdj {adj}"))?;
    }
    if let Err(e) = send_cgroup_files(ours, b'C', tasks_files) {
        return Err(child_error(ours).unwrap_or(e));
    }
    mark("cgroup ready");
    if !made.net.as_ref().is_some_and(|g| g.before_go()) {
        net_attach(ours, made, pid, &proc)?;
    }
    // linux.netDevices: moved into the container's network namespace, before anything of it runs
    if let Some(d) = made.netdev.as_mut() {
        d.move_in(pid, &proc)?;
    }
    let filter = crate::seccomp::compile_plan(
        &plan.seccomp,
        &opts.config_file,
        opts.quiet,
        Some(&opts.root),
        Some(channel_fd),
    )?;
    if let Err(e) = send_filter(ours, filter.as_ref()) {
        // The child is gone: its own error, queued on the socket, says why.
        return Err(child_error(ours).unwrap_or(e));
    }
    mark("filter sent");
    wait_ready(plan, ours, pid, opts)
}

/// Up to "go": id maps, sysctls of a joined network namespace, the trees to attach, the
/// prestart/createRuntime hooks (with the cgroup finished first when there are hooks: returns
/// its `tasks` files then), the network when it must exist before "go".
fn go(
    plan: &Plan,
    made: &mut Made,
    ours: &OwnedFd,
    pid: i32,
    proc: &ProcFs,
    opts: &RunOptions,
) -> Result<Option<Vec<OwnedFd>>> {
    let (ns, rootless) = (&plan.ns, plan.rootless);
    if ns.new_user {
        namespaces::write_id_maps(proc, pid, &plan.uid_maps, &plan.gid_maps, rootless)?;
    }
    namespaces::write_net_sysctls_in(ns)?;
    // The container's user namespace, to idmap its trees into: the child's new one, or the
    // one it joins by path (a pod's: the volumes of every container of the pod map into it).
    let joined_user = ns.join.iter().find(|(t, _)| *t == LinuxNamespaceType::User);
    let userns = match (ns.new_user, joined_user) {
        _ if rootless => None,
        (true, _) => Some(
            std::fs::File::open(format!("/proc/{pid}/ns/user"))
                .ctx(|| "open child's user namespace")?,
        ),
        (false, Some((_, path))) => Some(
            std::fs::File::open(path)
                .ctx(|| format!("open the joined user namespace {}", path.display()))?,
        ),
        (false, None) => None,
    };
    // Unprivileged, we may not clone mounts of the host's namespace: the child, which owns
    // its copy of it, prepares its trees itself.
    let prepared = if rootless {
        rootfs::Prepared::default()
    } else {
        rootfs::prepare(
            &plan.rootfs,
            &made.rootfs_dir,
            Some(pid),
            userns.as_ref(),
            plan.in_user_ns(),
        )?
    };
    if !opts.quiet {
        for w in &prepared.warnings {
            crate::diag::warn(&w.to_string());
        }
    }
    // prestart and createRuntime hooks: the namespaces and the cgroup exist, nothing runs
    // yet (prestart, deprecated, reports "created" as runc does and runtime-tools expects)
    let mut tasks_files = None;
    if plan.hooks.any() {
        tasks_files = Some((made.cgroup).finish(plan.resources.as_ref(), plan.id, pid)?);
    }
    (plan.hooks).run(crate::hooks::Kind::Prestart, "created", pid)?;
    (plan.hooks).run(crate::hooks::Kind::CreateRuntime, "creating", pid)?;
    if made.net.as_ref().is_some_and(|g| g.before_go()) {
        net_attach(ours, made, pid, proc)?;
    }
    send_go(ours, &prepared, pid)?;
    mark("go sent");
    Ok(tasks_files)
}

/// The child reports an error, or the socket closes when `execve` succeeds (close-on-exec);
/// `create` returns at its "ready". A pty master on the way goes to the console socket.
fn wait_ready(plan: &Plan, ours: &OwnedFd, pid: i32, opts: &RunOptions) -> Result<Handed> {
    let mut handed = Handed {
        listener: None,
        agent_runs: false,
        pty: None,
    };
    loop {
        let (buf, got) = recv_msg(ours, "wait for container setup")?;
        let n = buf.len();
        if n > 0 && buf[0] == b'T' {
            // the pty master: to the engine's console socket, or kept to relay; keep waiting
            let master = got.ok_or_else(|| Error::Other("pty master missing".into()))?;
            match opts.console_socket.as_deref() {
                Some(path) => process::send_console(path, &master)?,
                None => handed.pty = Some(master),
            }
            continue;
        }
        if let Some(fd) = got {
            // the listener: its agent starts now, as the container's next calls may need it
            handed.listener = crate::agent::on_listener(&plan.seccomp, (plan.id, pid), fd)?;
            handed.agent_runs = handed.listener.is_none();
        }
        if n == 0 || (buf[0] == b'R' && opts.create.is_some()) {
            return Ok(handed);
        }
        if buf[0] == b'E' {
            return Err(Error::Child(
                String::from_utf8_lossy(&buf[1..n]).into_owned(),
            ));
        }
    }
}
