//! The container's half of the setup, in the order the kernel needs it: born by [`spawn`] into
//! its new namespaces (and its cgroup), it waits for the runtime's "go", becomes root of its
//! user namespace, joins and makes the remaining namespaces, builds its filesystem, then takes on
//! the process's resources, user, capabilities and filter, and `execve`s. It returns only on
//! failure, with the error the runtime reports.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::sys::signal::SigSet;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::unistd::Pid;
use oci_spec::runtime::LinuxNamespaceType;

use super::channel::{join_cgroup_files, recv_filter, recv_go, send_fd};
use super::{die_with_runtime, Made, Plan, RunOptions};
use crate::diag::mark;
use crate::error::{Context, Error, Result};
use crate::procfs::ProcFs;
use crate::{capabilities, namespaces, process, rootfs, sys};

/// Clone the child (joining first, and leaving again, the namespaces given by path that must
/// hold it from birth: pid, and those the user namespace does not own). Returns its pid and the
/// number its end of the channel has in it; in the child, runs [`child`] and never returns.
pub(super) fn spawn(
    plan: &Plan,
    made: &mut Made,
    (ours, theirs): (&OwnedFd, OwnedFd),
    old_mask: &SigSet,
    opts: &RunOptions,
) -> Result<(Pid, RawFd)> {
    let ns = &plan.ns;
    // A pid namespace given by path is the one our next child is born in; we go back to our
    // own afterwards (the kernel refuses new threads while the two differ).
    let own_pid_ns = match &ns.join_pid {
        Some(p) => {
            let own = std::fs::File::open("/proc/self/ns/pid").ctx(|| "open own pid namespace")?;
            namespaces::join(LinuxNamespaceType::Pid, p)?;
            Some(own)
        }
        None => None,
    };
    let mut own_others = vec![];
    for (t, p) in &ns.pre_join {
        let name = namespaces::proc_name(*t);
        let own = std::fs::File::open(format!("/proc/thread-self/ns/{name}"))
            .ctx(|| format!("open own {name} namespace"))?;
        namespaces::join(*t, p)?;
        own_others.push((*t, own));
    }
    let (flags, cgroup) = (
        ns.clone_flags_early_net().bits() as u64,
        made.v2_dir.as_ref().map(|f| f.as_raw_fd()),
    );
    let pid = match &ns.pid_under_user {
        // a pod's user namespace joined by path, a pid namespace of our own under it
        Some(userns) => namespaces::clone_under_user(userns, flags, cgroup)?,
        None => sys::clone3(flags, cgroup)
            .ctx(|| format!("clone3 with {:?}", ns.clone_flags_early_net()))?,
    };
    if pid == 0 {
        // the runtime's end: its death must reach us as a hangup (see `die_with_runtime`)
        let _ = nix::unistd::close(ours.as_raw_fd());
        made.state_dir.close_inherited_lock();
        let _ = old_mask.thread_set_mask();
        let err = match child(plan, made, &theirs, opts) {
            Ok(e) | Err(e) => e,
        };
        let msg = format!("E{err}");
        // write(2), not send: it may follow the container's filter, where runc writes too
        let _ = nix::unistd::write(&theirs, msg.as_bytes());
        // SAFETY: _exit is always safe; it skips atexit handlers that belong to the runtime.
        unsafe { libc::_exit(1) }
    }
    made.v2_dir = None;
    if ns.pid_under_user.is_some() {
        mark("cloned in the joined user namespace");
    }
    for (t, own) in own_others {
        nix::sched::setns(own, namespaces::flag(t)).ctx(|| {
            format!(
                "return to the runtime's {} namespace",
                namespaces::proc_name(t)
            )
        })?;
    }
    if let Some(own) = own_pid_ns {
        nix::sched::setns(own, nix::sched::CloneFlags::CLONE_NEWPID)
            .ctx(|| "return to the runtime's pid namespace")?;
    }
    let channel_fd = theirs.as_raw_fd();
    drop(theirs);
    mark("cloned");
    Ok((Pid::from_raw(pid), channel_fd))
}

/// The container's half: returns only on failure (Ok holds the `execve` error).
fn child(plan: &Plan, made: &Made, sock: &OwnedFd, opts: &RunOptions) -> Result<Error> {
    let (mut prepared, host_pid) = start(plan, made, sock)?;
    let proc = enter_namespaces(plan, &made.rootfs_dir, &mut prepared)?;
    build_filesystem(plan, made, sock, prepared, &proc, host_pid)?;
    become_the_process(plan, made, sock, &proc, opts, host_pid)
}

/// Until "go": the network namespace (if the child makes it), a session, the runtime's trees;
/// then root of the new user namespace. Returns the trees to attach and our host pid.
fn start(plan: &Plan, made: &Made, sock: &OwnedFd) -> Result<(rootfs::Prepared, i32)> {
    let ns = &plan.ns;
    // Die with the runtime during setup.
    die_with_runtime(sock)?;
    if ns.net_made_by_child() {
        // While the runtime writes our id maps: see `namespaces::Plan::net_made_by_child`.
        namespaces::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        // A new network namespace has only `lo`, and it starts down; bring it up (as bwrap does).
        sys::loopback_up().ctx(|| "bring up lo in the new network namespace")?;
    }
    if let Some(with_socket) = plan.net_handoff() {
        // Our network namespace exists: the runtime sets it up (see `net`).
        if with_socket {
            let nl = socket::socket(
                AddressFamily::Netlink,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                socket::SockProtocol::NetlinkRoute,
            )
            .ctx(|| "rtnetlink socket")?;
            send_fd(sock, b"N", &nl)?;
        } else {
            socket::send(sock.as_raw_fd(), b"N", MsgFlags::empty()).ctx(|| "send N")?;
        }
    }
    // A session of its own (as runc's init): whatever the caller does to its process group or
    // terminal does not reach the container. A terminal, if any, makes its own session below.
    // (Before "go": it needs nothing from the runtime, and costs a scheduler autogroup.)
    if plan.process().terminal() != Some(true) {
        nix::unistd::setsid().ctx(|| "setsid")?;
    }
    let (received, host_pid) = recv_go(sock)?;
    // Nobody may read our memory or /proc/PID/exe (the runtime binary until execve:
    // CVE-2019-5736). Only now: an unprivileged runtime writes our id maps through /proc/PID,
    // which a non-dumpable process closes to it, and no other process is in our namespaces yet.
    nix::sys::prctl::set_dumpable(false).ctx(|| "PR_SET_DUMPABLE")?;
    mark("child: go received");
    if ns.new_user {
        // Our host credentials are unmapped in the new namespace: become its root (mapped now).
        // Unprivileged with the caller mapped to another id (`sandbox --uid N`, as bwrap's),
        // there is no root to become: we are already N, with every capability of the
        // namespace we made.
        if !plan.rootless {
            nix::unistd::setgroups(&[]).ctx(|| "drop host supplementary groups")?;
        }
        let root_mapped =
            |maps: &[oci_spec::runtime::LinuxIdMapping]| namespaces::to_host(maps, 0).is_some();
        let (u, g) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
        if !plan.rootless || root_mapped(&plan.gid_maps) {
            nix::unistd::setresgid(g, g, g)
                .ctx(|| "become root of the user namespace (gid 0 unmapped?)")?;
        }
        if !plan.rootless || root_mapped(&plan.uid_maps) {
            nix::unistd::setresuid(u, u, u)
                .ctx(|| "become root of the user namespace (uid 0 unmapped?)")?;
        }
        die_with_runtime(sock)?;
    }
    // The trees to attach: sent by the runtime, or (unprivileged runtime) made here, in our
    // own copy of the caller's mount namespace.
    let mut prepared = if plan.rootless {
        rootfs::prepare(&plan.rootfs, &made.rootfs_dir, None, None, true)?
    } else {
        received
    };
    // our mount table starts as a copy of the runtime's, unless we join another one below
    prepared.cgroups = plan
        .layout
        .as_ref()
        .filter(|_| !ns.join.iter().any(|(t, _)| *t == LinuxNamespaceType::Mount))
        .cloned();
    Ok((prepared, host_pid))
}

/// Join the namespaces given by path, make the rest (but cgroup: after the cgroup move), and
/// open the private procfs every write of ours inside goes through.
fn enter_namespaces(
    plan: &Plan,
    rootfs: &std::path::Path,
    prepared: &mut rootfs::Prepared,
) -> Result<ProcFs> {
    let ns = &plan.ns;
    // A mount namespace made after joining a user namespace by path: the container's root may
    // not search the bundle's directories (a pod's, under the policy). We stand in the mount
    // point first, as host root; the unshare below moves our working directory to its copy.
    let user_joined = ns.join.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let stand_in_root = user_joined
        && ns
            .unshare_flags
            .contains(nix::sched::CloneFlags::CLONE_NEWNS);
    if stand_in_root {
        nix::unistd::chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    }
    for (t, p) in &ns.join {
        // (cloned from inside it already when it has a pid namespace of our own under it)
        if !(*t == LinuxNamespaceType::User && ns.pid_under_user.is_some()) {
            namespaces::join(*t, p)?;
        }
        if *t == LinuxNamespaceType::User {
            namespaces::become_root("the joined user namespace")?;
        }
        if *t == LinuxNamespaceType::Mount {
            // The runtime opened the mount point in the mount namespace we just left: open it
            // again here (move_mount only attaches inside the caller's namespace).
            prepared.target = None;
        }
    }
    let time = nix::sched::CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
    let cgroupns = nix::sched::CloneFlags::CLONE_NEWCGROUP;
    namespaces::unshare(ns.unshare_flags & !time & !cgroupns)?;
    if ns
        .unshare_flags
        .contains(nix::sched::CloneFlags::CLONE_NEWNS)
    {
        // a mount namespace made only now (after joining a user namespace by path): the mount
        // point the runtime opened is in the namespace we left; open it again here
        prepared.target = if stand_in_root {
            Some(
                sys::openat2(
                    libc::AT_FDCWD,
                    std::path::Path::new("."),
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                    0,
                )
                .ctx(|| format!("open {} (our working directory)", rootfs.display()))?,
            )
        } else {
            None
        };
    }
    // one of our own, which no mount of the config can cover (see `procfs`)
    let proc = ProcFs::private().ctx(|| "open a private procfs")?;
    if ns.unshare_flags.contains(time) {
        namespaces::unshare(time)?;
        namespaces::write_time_offsets(ns, &proc)?;
    }
    Ok(proc)
}

/// The filesystem, hostname, loopback, terminal, sysctls, masks. The runtime places us in our
/// cgroup meanwhile; the cgroup namespace (and any cgroup mount, which shows it) waits for that.
fn build_filesystem(
    plan: &Plan,
    made: &Made,
    sock: &OwnedFd,
    mut prepared: rootfs::Prepared,
    proc: &ProcFs,
    host_pid: i32,
) -> Result<()> {
    let ns = &plan.ns;
    let cgroupns = nix::sched::CloneFlags::CLONE_NEWCGROUP;
    let mut in_cgroup = false;
    let mut cgroup_ready = || -> Result<()> {
        if !in_cgroup {
            join_cgroup_files(sock, b'C')?;
            in_cgroup = true;
            if ns.unshare_flags.contains(cgroupns) {
                namespaces::unshare(cgroupns)?;
            }
        }
        Ok(())
    };
    let mut before_pivot =
        || (plan.hooks).run(crate::hooks::Kind::CreateContainer, "creating", host_pid);
    let built = rootfs::setup(
        &plan.rootfs,
        &made.rootfs_dir,
        &mut prepared,
        rootfs::InNamespaces {
            user: plan.in_user_ns(),
            host_mount: ns.host_mount_ns(),
            own_cgroup: ns.unshare_flags.contains(cgroupns),
            create_container_hooks: plan.hooks.has(crate::hooks::Kind::CreateContainer),
        },
        &mut cgroup_ready,
        &mut before_pivot,
    )?;
    mark("child: rootfs set up");
    namespaces::set_names(ns)?;
    if ns.new_net && !ns.net_made_by_child() {
        // A new network namespace has only `lo`, and it starts down; bring it up (as bwrap does).
        sys::loopback_up().ctx(|| "bring up lo in the new network namespace")?;
    }
    let process = plan.process();
    if process.terminal() == Some(true) {
        // before the masks and a read-only root: /dev/console may need making
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        let master = process::setup_terminal(size, true)?;
        send_fd(sock, b"T", &master)?;
    }
    namespaces::write_sysctls(ns, proc)?;
    rootfs::finish(
        &plan.rootfs,
        built,
        prepared.cgroups.as_ref(),
        &mut cgroup_ready,
    )?;
    cgroup_ready()?;
    mark("child: masks done");
    Ok(())
}

/// Resources namespaces do not cover, then privileges, narrowest last; `execve`. Everything
/// that can precede the seccomp filter does; after it only what runc does there (without
/// no_new_privileges) or only `execve` (with it). Returns the `execve` error.
fn become_the_process(
    plan: &Plan,
    made: &Made,
    sock: &OwnedFd,
    proc: &ProcFs,
    opts: &RunOptions,
    host_pid: i32,
) -> Result<Error> {
    let (process, rootless) = (plan.process(), plan.rootless);
    if !opts.no_new_keyring {
        process::fresh_keyring()?;
    }
    process::set_rlimits(process)?;
    if let Some(m) = &plan.memory_policy {
        process::set_mempolicy(m)?;
    }
    let landlock = &plan.landlock;
    // A Landlock ruleset implies no_new_privs (the kernel's condition without CAP_SYS_ADMIN),
    // and is enforced before the filter, so the profile need not allow Landlock's calls.
    let nnp = process.no_new_privileges().unwrap_or(false) || landlock.is_some();
    let filter = recv_filter(sock)?;
    let filter = filter.as_ref();
    // The cwd opened, the program found (a create-time error in runc's words), the arrays for
    // execve, the umask, the bounding set cut, the descriptors marked close-on-exec, the exec
    // fifo's /proc dir opened.
    let ready = process::Ready::new(process, !rootless)?;
    process::set_umask(process);
    capabilities::drop_bounding(&ready.sets)?;
    process::close_fds(opts.preserve_fds)?;
    let fifo_dir = match made.fifo {
        Some(_) => Some(proc.fd_dir().ctx(|| "open /proc/thread-self/fd")?),
        None => None,
    };
    let mut listener = None;
    if !nnp {
        // Without no_new_privs loading a filter needs CAP_SYS_ADMIN: load it while we have it.
        // From here to execve the calls are runc's there (plus fchdir): the credential calls,
        // the exec fifo, the hooks. The runtime's death is no longer ours to follow.
        nix::sys::prctl::set_pdeathsig(None).ctx(|| "clear PR_SET_PDEATHSIG")?;
        if let Some(f) = filter {
            listener = f.load().ctx(|| "load seccomp filter")?;
        }
        if plan.agent_ours {
            // the complain/enforce agent answers from now on, the calls below included
            // (they are ours: it lets them run, unlogged, until our execve)
            if let Some(fd) = listener.take() {
                send_fd(sock, b"L", &fd)?;
                std::mem::forget(fd);
            }
        }
    }
    ready.become_user(!rootless)?;
    if nnp {
        set_no_new_privs_and_settle(sock, opts.init && opts.caller.is_some())?;
    }
    mark("child: privileges dropped");
    if let (Some(fifo), Some(dir)) = (&made.fifo, &fifo_dir) {
        // `create`: report ready, outlive the runtime, and block until `start` opens the fifo.
        nix::unistd::write(sock, b"R").ctx(|| "report ready")?;
        let w = sys::openat(
            dir,
            &fifo.as_raw_fd().to_string(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
        .ctx(|| "open exec fifo")?;
        nix::unistd::write(&w, b"0").ctx(|| "write exec fifo")?;
    }
    (plan.hooks).run(crate::hooks::Kind::StartContainer, "created", host_pid)?;
    if let Some(l) = landlock {
        if let Some(note) = l.enforce().map_err(Error::Other)? {
            if !opts.quiet {
                crate::diag::warn(&note);
            }
        }
    }
    if opts.init && nnp {
        // PID 1 stays here as the init; the command goes on (see `init`)
        crate::init::fork_init(sock)?;
    }
    if let (Some(f), true) = (filter, nnp) {
        // the last thing before execve: no runtime call follows it
        listener = f.load().ctx(|| "load seccomp filter")?;
    }
    if opts.init && !nnp {
        // without no_new_privs the workload's filter is already loaded: the init inherits it
        crate::init::fork_init(sock)?;
    }
    if let Some(fd) = listener {
        // The agent's socket is a host path: the runtime delivers the descriptor.
        send_fd(sock, b"L", &fd)?;
        // Not closed here: the filter is loaded, and every call now must be one the profile
        // allows (a debug build's close even adds an fcntl). It is close-on-exec.
        std::mem::forget(fd);
    }
    Ok(ready.exec())
}

/// With no_new_privileges (no filter loaded yet): set it, and follow the runtime's death again
/// (the user switch cleared it) until just before the filter, then let go: the workload
/// outlives the runtime, as runc's does — unless `stay`: a sandbox that dies with its caller
/// (`--die-with-parent`) keeps SIGKILL for its init when the runtime dies, which ends the
/// whole pid namespace (the command, forked by the init, does not inherit it).
fn set_no_new_privs_and_settle(sock: &OwnedFd, stay: bool) -> Result<()> {
    process::set_no_new_privs()?;
    die_with_runtime(sock)?;
    if stay {
        return Ok(());
    }
    nix::sys::prctl::set_pdeathsig(None).ctx(|| "clear PR_SET_PDEATHSIG")
}
