//! The engine: one OCI spec in, one isolated process out. Every front end (`run` of a bundle,
//! `sandbox`, the OCI lifecycle commands) ends in [`run`]. Read it top to bottom: the runtime's
//! half first, then [`child`], the container's half, in the order the kernel needs.
//!
//! ```text
//! runtime                                   child (clone3 into new user/pid/mnt/uts/ipc ns,
//! validate spec                             born in the unified cgroup: CLONE_INTO_CGROUP)
//! state dir, unified cgroup dir
//! clone3 ───────────────────────────────▶   network ns (owned by its user ns), setsid
//! write uid/gid maps                        wait for "go"
//! open rootfs + binds as (idmapped) trees
//! send "go" + trees (each described) ───▶   time ns; mounts, devices; pivot_root (chroot in the
//! v1 cgroup dirs + limits                   host's mount ns); masks, ro paths; hostname, sysctls
//! send "C" + v1 `tasks` files ──────────▶   write itself into them; cgroup ns; cgroup mounts
//! compile seccomp (or take it cached)       keyring, rlimits
//! send "F" + filter ────────────────────▶   bounding set, user, caps, no_new_privs, seccomp
//! wait: error text, or EOF = exec'd  ◀────  execve
//! forward signals, wait, clean up
//! ```

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::capabilities;
use crate::cgroups::{Cgroup, Layout};
use crate::diag::{mark, now_rfc3339};
use crate::error::{Context, Error, Result};
use crate::namespaces;
use crate::process;
use crate::procfs::ProcFs;
use crate::rootfs;
use crate::spec;
use crate::state::{State, StateDir};
use crate::sys;

mod channel;
mod exec;
mod guards;
use guards::{CgroupGuard, HostMounts};

pub use channel::decode_go;
use channel::{
    child_error, join_cgroup_files, recv_filter, recv_go, recv_msg, send_cgroup_files, send_fd,
    send_filter, send_go,
};
pub use exec::{exec, ExecOptions};

/// How the runtime was asked to run the container.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub root: PathBuf,
    /// File named in configuration errors (the bundle's config.json, or "sandbox flags").
    pub config_file: PathBuf,
    /// Descriptors 3..3+N passed through to the container.
    pub preserve_fds: u32,
    /// Print nothing but errors.
    pub quiet: bool,
    /// `create`: leave the container blocked before `execve` until `start`; None: run it now.
    pub create: Option<CreateOptions>,
    /// Do not give the container a fresh session keyring (runc's `--no-new-keyring`).
    pub no_new_keyring: bool,
    /// Where to send the pty master when process.terminal is set.
    pub console_socket: Option<PathBuf>,
    /// The systemd cgroup driver (`--systemd-cgroup`): a transient unit per container.
    pub systemd_cgroup: bool,
    /// `--learn-dir`: learn every container, writing DIR/ID at delete (see `learn::engine`).
    pub learn_dir: Option<PathBuf>,
    /// PID 1 is stockade's init, the process its child (see [`crate::init`]): `sandbox`'s
    /// default; `run` of a bundle follows the config (engines add their own).
    pub init: bool,
    /// The caller's pid when the container ends with it (`sandbox --die-with-parent`, see
    /// [`die_with_caller`]).
    pub caller: Option<i32>,
}

/// What `create` (and `run --detach`) add.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub pid_file: Option<PathBuf>,
}

pub use crate::state::EXEC_FIFO;

/// Signals `stockade run` forwards to the container's init.
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Run a container to completion: returns its exit code (128+N if killed by signal N).
pub fn run(id: &str, bundle: &Path, spec: &Spec, opts: &RunOptions) -> Result<i32> {
    // 1. Everything that can be refused is refused before anything is created.
    mark("start");
    crate::state::check_id(id)?;
    crate::plan::validate(spec, bundle, &opts.config_file)?;
    let ns = namespaces::Plan::from_spec(spec);
    let net_plan = crate::net::Plan::from_spec(spec, &opts.config_file)?;
    // learning (org.stockade.learn, --learn-dir): the spec with the permissive learning filter
    let (learning, learning_spec) = crate::learn::engine::prepare(
        spec,
        id,
        (opts.learn_dir.as_deref(), &opts.config_file),
        opts.quiet,
    )?;
    let spec = learning_spec.as_ref().unwrap_or(spec);
    mark("validated");
    let process = spec.process().as_ref().expect("validated");
    if let Some(m) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
    {
        #[allow(deprecated)]
        let kernel = m.kernel().is_some() || m.kernel_tcp().is_some();
        if kernel && !opts.quiet {
            crate::diag::warn("linux.resources.memory.kernel/kernelTCP are NOT RECOMMENDED by runtime-spec: kernel is ignored (kernels >= 6.x enforce no kernel memory limit), kernelTCP is applied on cgroup v1 only");
        }
    }
    let unraisable = capabilities::unraisable_ambient(process.capabilities().as_ref());
    if !unraisable.is_empty() && !opts.quiet {
        crate::diag::warn(&format!(
            "process.capabilities.ambient: {} not also permitted and inheritable, so not raised (runc does the same)",
            unraisable.join(", ")
        ));
    }
    capabilities::check_obtainable(
        process.capabilities().as_ref(),
        ns.new_user,
        &opts.config_file,
    )?;
    if process.terminal() == Some(true) && opts.console_socket.is_none() {
        return Err(crate::error::config_err(&opts.config_file, "process.terminal", "a terminal needs --console-socket; set terminal to false to run with the caller's stdio"));
    }
    let rootless = !nix::unistd::geteuid().is_root();
    let cgroups_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_deref());
    let unit = crate::cgroups::systemd_unit(
        cgroups_path,
        id,
        opts.systemd_cgroup,
        rootless,
        &opts.config_file,
    )?;
    // 2. State; its guard removes it if anything below fails.
    let mut state_dir = StateDir::create(&opts.root, id)?;
    // Written before anything else exists, so a `delete` after this runtime is killed at any
    // later point finds the cgroup to remove.
    let layout = (!rootless).then(Layout::detect).transpose()?;
    let planned = layout
        .as_ref()
        .map(|l| Cgroup::plan(l, cgroups_path, id, unit));
    let mut st = State {
        oci_version: "1.2.0".into(),
        id: id.into(),
        status: "creating".into(),
        pid: 0,
        bundle: bundle.to_path_buf(),
        annotations: spec::config_annotations(spec),
        cgroup: planned.clone(),
        id_slot: crate::idpool::slot_of(spec),
        created: now_rfc3339(),
        pid_start: 0,
    };
    state_dir.save(&st)?;
    // The config as enforced, when it is not the bundle's file: the policy changed it, or a
    // front end (sandbox, learn) made it. `exec`, hooks, `delete` and `policy explain` read it.
    if spec::policy_changed(spec) || !opts.config_file.ends_with("config.json") {
        let f = state_dir.dir.join(crate::state::EFFECTIVE_CONFIG);
        let text = serde_json::to_vec(spec).map_err(|e| Error::Other(e.to_string()))?;
        std::fs::write(&f, text).ctx(|| format!("write {}", f.display()))?;
    }
    // The network's record (address, veth, ports) is written next, before any of it exists;
    // its guard takes it all down again if anything below fails.
    let mut net = match &net_plan {
        Some(p) => Some(crate::net::prepare(p, &opts.root, id, &state_dir.dir)?),
        None => None,
    };
    let with_net_files;
    let spec = match &net {
        Some(g) => {
            // /etc/hosts and /etc/resolv.conf: files in the state dir, bound over the image's
            let mut s = spec.clone();
            let mut mounts = s.mounts().clone().unwrap_or_default();
            mounts.extend(g.mounts());
            s.set_mounts(Some(mounts));
            with_net_files = s;
            &with_net_files
        }
        None => spec,
    };
    let rootfs_dir = spec::rootfs_dir(spec, bundle, &state_dir.dir);
    if spec::tmpfs_root(spec) {
        std::fs::create_dir(&rootfs_dir).ctx(|| format!("create {}", rootfs_dir.display()))?;
    }
    let (mut cgroup, v2_dir) = CgroupGuard::begin(planned, rootless, opts.quiet)?;
    // the recorder: `learn`'s is told the cgroup; a learning container's is pinned in the state
    // dir (undone if setup fails)
    let learn_session = crate::learn::engine::begin(
        learning.as_ref(),
        &state_dir.dir,
        cgroup.cgroup.as_ref(),
        layout.as_ref().and_then(|l| l.unified.as_deref()),
    )?;
    let host_mounts = HostMounts(ns.host_mount_ns().then(|| rootfs_dir.clone()));
    let fifo = match &opts.create {
        Some(_) => {
            let path = state_dir.dir.join(EXEC_FIFO);
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .ctx(|| format!("mkfifo {}", path.display()))?;
            // The container's process opens it after switching to its user: make it theirs.
            let user = spec
                .process()
                .as_ref()
                .map(|p| (p.user().uid(), p.user().gid()))
                .unwrap_or((0, 0));
            let (uid, gid) = if ns.new_user {
                let (uids, gids) = namespaces::id_maps(spec);
                (
                    namespaces::to_host(&uids, user.0),
                    namespaces::to_host(&gids, user.1),
                )
            } else {
                (Some(user.0), Some(user.1))
            };
            nix::unistd::chown(
                &path,
                uid.map(nix::unistd::Uid::from_raw),
                gid.map(nix::unistd::Gid::from_raw),
            )
            .ctx(|| format!("chown {}", path.display()))?;
            Some(
                crate::sys::openat2(libc::AT_FDCWD, &path, libc::O_PATH, 0, 0)
                    .ctx(|| format!("open {}", path.display()))?,
            )
        }
        None => None,
    };

    // 3. The child, blocked until we say go.
    let (ours, theirs, forwarded, old_mask) = channel_and_signals()?;
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
    let pid = crate::sys::clone3(
        ns.clone_flags_early_net().bits() as u64,
        v2_dir.as_ref().map(|f| f.as_raw_fd()),
    )
    .ctx(|| format!("clone3 with {:?}", ns.clone_flags_early_net()))?;
    drop(v2_dir);
    if pid != 0 {
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
    }
    if pid == 0 {
        drop(ours);
        state_dir.close_inherited_lock();
        let _ = old_mask.thread_set_mask();
        let err = child(
            spec,
            &ns,
            layout.as_ref(),
            &rootfs_dir,
            &theirs,
            opts,
            fifo.as_ref(),
            rootless,
            (id, bundle),
        );
        let msg = format!("E{err}");
        // write(2), not send: it may follow the container's filter, where runc writes too
        let _ = nix::unistd::write(&theirs, msg.as_bytes());
        // SAFETY: _exit is always safe; it skips atexit handlers that belong to the runtime.
        unsafe { libc::_exit(1) }
    }
    let channel_fd = theirs.as_raw_fd();
    drop(theirs);
    mark("cloned");
    let child_pid = Pid::from_raw(pid);

    // 4. The runtime's half of the setup, in the order the child needs it: id maps and the
    // trees to attach ("go"), then, while the child builds its filesystem, the cgroup (limits
    // set, then its v1 `tasks` files: the child moves itself before its cgroup mounts) and the
    // seccomp filter (loaded last). No user code has run. On a small machine this thread and the
    // child are all there is: helper threads cost more to start than the overlap saves.
    let setup = (|| -> Result<Option<OwnedFd>> {
        let mut tasks_files: Option<Vec<OwnedFd>> = None;
        // Every write to /proc/PID goes through a /proc verified to be procfs (see `procfs`).
        let proc = ProcFs::host().ctx(|| "open /proc")?;
        if ns.new_user {
            let (uids, gids) = namespaces::id_maps(spec);
            namespaces::write_id_maps(&proc, pid, &uids, &gids, rootless)?;
        }
        if let Some(netns) = namespaces::runtime_written_netns(spec, &ns) {
            namespaces::write_net_sysctls_in(spec, &netns)?;
        }
        let userns = if ns.new_user && !rootless {
            Some(
                std::fs::File::open(format!("/proc/{pid}/ns/user"))
                    .ctx(|| "open child's user namespace")?,
            )
        } else {
            None
        };
        // Unprivileged, we may not clone mounts of the host's namespace: the child, which owns
        // its copy of it, prepares its trees itself.
        let prepared = if rootless {
            rootfs::Prepared::default()
        } else {
            rootfs::prepare(
                spec,
                &rootfs_dir,
                bundle,
                Some(pid),
                userns.as_ref(),
                ns.new_user,
            )?
        };
        if !opts.quiet {
            for w in &prepared.warnings {
                crate::diag::warn(&w.to_string());
            }
        }
        // prestart and createRuntime hooks: the namespaces and the cgroup exist, nothing runs
        // yet (prestart, deprecated, reports "created" as runc does and runtime-tools expects)
        if spec.hooks().is_some() {
            tasks_files = Some(cgroup.finish(spec, id, pid)?);
        }
        crate::hooks::run(spec, crate::hooks::Kind::Prestart, || {
            crate::hooks::state_json(id, "created", pid, bundle, spec)
        })?;
        crate::hooks::run(spec, crate::hooks::Kind::CreateRuntime, || {
            crate::hooks::state_json(id, "creating", pid, bundle, spec)
        })?;
        if let Some(g) = net.as_mut().filter(|g| g.before_go()) {
            net_attach(&ours, g, pid, &proc)?;
        }
        send_go(&ours, &prepared, pid)?;
        mark("go sent");
        let tasks_files = match tasks_files {
            Some(t) => t,
            None => cgroup.finish(spec, id, pid)?,
        };
        if let Some(adj) = process.oom_score_adj() {
            proc.write(&format!("{pid}/oom_score_adj"), adj.to_string().as_bytes())
                .ctx(|| format!("process.oomScoreAdj {adj}"))?;
        }
        if let Err(e) = send_cgroup_files(&ours, b'C', tasks_files) {
            return Err(child_error(&ours).unwrap_or(e));
        }
        mark("cgroup ready");
        if let Some(g) = net.as_mut().filter(|g| !g.before_go()) {
            net_attach(&ours, g, pid, &proc)?;
        }
        let filter = crate::seccomp::compile(
            spec,
            &opts.config_file,
            opts.quiet,
            Some(&opts.root),
            Some(channel_fd),
        )?;
        if let Err(e) = send_filter(&ours, filter.as_ref()) {
            // The child is gone: its own error, queued on the socket, says why.
            return Err(child_error(&ours).unwrap_or(e));
        }
        mark("filter sent");
        // The child reports an error, or the socket closes when execve succeeds (CLOEXEC).
        let mut listener = None;
        loop {
            let (buf, got) = recv_msg(&ours, "wait for container setup")?;
            let n = buf.len();
            if n > 0 && buf[0] == b'T' {
                // the pty master: hand it to the engine's console socket, then keep waiting
                let master = got.ok_or_else(|| Error::Other("pty master missing".into()))?;
                process::send_console(opts.console_socket.as_deref().expect("checked"), &master)?;
                continue;
            }
            if got.is_some() {
                listener = got;
            }
            if n == 0 || (buf[0] == b'R' && opts.create.is_some()) {
                return Ok(listener);
            }
            if buf[0] == b'E' {
                return Err(Error::Child(
                    String::from_utf8_lossy(&buf[1..n]).into_owned(),
                ));
            }
        }
    })();
    let listener = match setup {
        Ok(l) => l,
        Err(e) => {
            let _ = nix::sys::signal::kill(child_pid, Signal::SIGKILL);
            let _ = waitpid(child_pid, None);
            let _ = old_mask.thread_set_mask();
            return Err(e);
        }
    };

    // 5. Record it; `create` stops here, leaving the container blocked on its fifo.
    st.status = if opts.create.is_some() {
        "created"
    } else {
        "running"
    }
    .into();
    st.pid = pid;
    st.cgroup = cgroup.cgroup.clone();
    st.pid_start = crate::state::pid_start_time(pid);
    state_dir.save(&st)?;
    mark("exec'd, state saved");
    if let Some(s) = learn_session {
        // committed: `delete` (or the end of this run) writes the profile and unpins
        s.keep();
    }
    // Set up and committed: from here `delete --force` from elsewhere may take it (as runc's).
    state_dir.keep();
    state_dir.unlock();
    if let Some(fd) = listener {
        if let Err(e) = crate::seccomp::send_listener(spec, &st, &fd) {
            let _ = nix::sys::signal::kill(child_pid, Signal::SIGKILL);
            let _ = waitpid(child_pid, None);
            let _ = old_mask.thread_set_mask();
            return Err(e);
        }
    }
    if let Some(c) = &opts.create {
        if let Some(p) = &c.pid_file {
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, pid.to_string()).ctx(|| format!("--pid-file {}", p.display()))?;
            std::fs::rename(&tmp, p).ctx(|| format!("--pid-file {}", p.display()))?;
        }
        let _ = old_mask.thread_set_mask();
        // The container outlives this process: its state and cgroup stay for start/delete.
        state_dir.keep();
        state_dir.unlock();
        std::mem::forget(cgroup);
        std::mem::forget(host_mounts);
        if let Some(g) = net {
            g.keep();
        }
        return Ok(0);
    }
    // poststart failures only warn (runtime-spec)
    crate::hooks::run(spec, crate::hooks::Kind::Poststart, || {
        crate::hooks::state_json(id, "running", pid, bundle, spec)
    })?;
    let code = wait_forwarding_until(child_pid, &forwarded, opts.caller);
    mark("container exited");
    let _ = old_mask.thread_set_mask();
    drop(cgroup);
    drop(host_mounts);
    mark("cgroup removed");
    if let Some(g) = net.take() {
        if let Err(e) = g.release() {
            crate::diag::warn(&e.to_string());
        }
    }
    // Under the lock again (a `delete` elsewhere may have taken it meanwhile: then it is gone).
    drop(state_dir);
    match StateDir::lock(&opts.root, id, std::time::Duration::from_secs(10)) {
        Ok(crate::state::Locked::Container(d)) => {
            if let Err(e) = crate::learn::engine::finish(&d.dir, id) {
                crate::diag::warn(&e.to_string());
            }
            d.remove()?;
            crate::idpool::release_for(&opts.root, id, st.id_slot);
        }
        Ok(crate::state::Locked::Removed) | Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    crate::hooks::run(spec, crate::hooks::Kind::Poststop, || {
        crate::hooks::state_json(id, "stopped", 0, bundle, spec)
    })?;
    code
}

/// The child says "N" once its network namespace exists (with an rtnetlink socket inside it, for
/// a bridge); the runtime then sets the network up. The child gets its filter, and runs nothing
/// of its own, only after that.
fn net_attach(ours: &OwnedFd, g: &mut crate::net::Guard, pid: i32, proc: &ProcFs) -> Result<()> {
    let (buf, fd) = recv_msg(ours, "wait for the container's network namespace")?;
    match buf.first() {
        Some(b'N') => {}
        Some(b'E') => {
            return Err(Error::Child(
                String::from_utf8_lossy(&buf[1..]).into_owned(),
            ))
        }
        _ => return Err(Error::Other("container setup: unexpected message".into())),
    }
    g.attach(pid, fd, proc)?;
    mark("net ready");
    Ok(())
}

/// The runtime↔child channel (SEQPACKET, close-on-exec: EOF tells the runtime `execve` worked),
/// and the forwarded signals plus SIGCHLD blocked, to be taken synchronously by
/// [`wait_forwarding`]. Returns (ours, theirs, blocked set, previous mask).
fn channel_and_signals() -> Result<(OwnedFd, OwnedFd, SigSet, SigSet)> {
    let (ours, theirs) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair")?;
    let mut forwarded = SigSet::empty();
    for s in FORWARDED {
        forwarded.add(*s);
    }
    forwarded.add(Signal::SIGCHLD);
    let old_mask = forwarded
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .ctx(|| "block signals")?;
    Ok((ours, theirs, forwarded, old_mask))
}

fn wait_forwarding(child: Pid, set: &SigSet) -> Result<i32> {
    wait_forwarding_until(child, set, None)
}

/// As [`wait_forwarding`]; with `caller` (the pid that started the runtime, `sandbox
/// --die-with-parent`), a SIGHUP once the caller is gone (PR_SET_PDEATHSIG, see
/// [`die_with_caller`]) is forwarded, and SIGKILL follows after a grace of two seconds.
fn wait_forwarding_until(child: Pid, set: &SigSet, caller: Option<i32>) -> Result<i32> {
    let mut deadline: Option<std::time::Instant> = None;
    loop {
        let sig = match deadline {
            None => Some(set.wait().ctx(|| "sigwait")?),
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                crate::sys::sigtimedwait(set, left).ctx(|| "sigtimedwait")?
            }
        };
        match sig {
            None => {
                // the grace is over: the caller is gone, the sandbox goes too
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(3600));
                continue;
            }
            Some(Signal::SIGCHLD) => {}
            Some(sig) => {
                let _ = nix::sys::signal::kill(child, sig);
                let orphaned = caller.is_some_and(|c| nix::unistd::getppid().as_raw() != c);
                if sig == Signal::SIGHUP && orphaned && deadline.is_none() {
                    deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(2));
                }
                continue;
            }
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == child => return Ok(code),
                Ok(WaitStatus::Signaled(p, s, _)) if p == child => return Ok(128 + s as i32),
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(nix::Error::ECHILD) => {
                    return Err(Error::Other("container process vanished".into()))
                }
                Err(e) => return Err(e).ctx(|| "waitpid"),
            }
        }
    }
}

/// `sandbox --die-with-parent`: the runtime gets SIGHUP when the process that started it dies
/// (a closed terminal's shell), which [`wait_forwarding_until`] turns into the sandbox's end.
/// Returns the caller's pid, or an error if it is already gone.
pub fn die_with_caller() -> Result<i32> {
    let caller = nix::unistd::getppid().as_raw();
    nix::sys::prctl::set_pdeathsig(Signal::SIGHUP).ctx(|| "PR_SET_PDEATHSIG")?;
    if nix::unistd::getppid().as_raw() != caller || caller == 1 {
        return Err(Error::Other(
            "--die-with-parent: the caller is already gone".into(),
        ));
    }
    Ok(caller)
}

/// (Re-)arm `PR_SET_PDEATHSIG` (SIGKILL) for the rest of the setup. The kernel clears it at every
/// change of our uid, gid or capabilities beyond the old ones (`commit_creds`), so it is armed
/// again after each; and since the runtime may have died before the `prctl`, its end of the
/// channel is checked to be still open.
fn die_with_runtime(sock: &OwnedFd) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).ctx(|| "PR_SET_PDEATHSIG")?;
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::empty())];
    poll(&mut fds, PollTimeout::ZERO).ctx(|| "poll the runtime's channel")?;
    let gone = PollFlags::POLLHUP | PollFlags::POLLERR;
    if fds[0].revents().is_some_and(|r| r.intersects(gone)) {
        return Err(Error::Other("runtime went away during setup".into()));
    }
    Ok(())
}

/// The container's half. Returns only on failure (the error is sent to the runtime).
#[allow(clippy::too_many_arguments)]
fn child(
    spec: &Spec,
    ns: &namespaces::Plan,
    layout: Option<&Layout>,
    rootfs_dir: &Path,
    sock: &OwnedFd,
    opts: &RunOptions,
    fifo: Option<&OwnedFd>,
    rootless: bool,
    who: (&str, &Path),
) -> Error {
    match child_setup(
        spec, ns, layout, rootfs_dir, sock, opts, fifo, rootless, who,
    ) {
        Ok(e) | Err(e) => e,
    }
}

#[allow(clippy::too_many_arguments)]
fn child_setup(
    spec: &Spec,
    ns: &namespaces::Plan,
    layout: Option<&Layout>,
    rootfs_dir: &Path,
    sock: &OwnedFd,
    opts: &RunOptions,
    fifo: Option<&OwnedFd>,
    rootless: bool,
    (id, bundle): (&str, &Path),
) -> Result<Error> {
    let process = spec.process().as_ref().expect("validated");
    // Die with the runtime during setup.
    die_with_runtime(sock)?;

    if ns.net_made_by_child() {
        // While the runtime writes our id maps: see `namespaces::Plan::net_made_by_child`.
        namespaces::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        // A new network namespace has only `lo`, and it starts down; bring it up (as bwrap does).
        crate::sys::loopback_up().ctx(|| "bring up lo in the new network namespace")?;
    }
    if let Some(with_socket) = crate::net::child_handoff(spec) {
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
    if spec.process().as_ref().and_then(|p| p.terminal()) != Some(true) {
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
        if !rootless {
            nix::unistd::setgroups(&[]).ctx(|| "drop host supplementary groups")?;
        }
        let (u, g) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
        nix::unistd::setresgid(g, g, g)
            .ctx(|| "become root of the user namespace (gid 0 unmapped?)")?;
        nix::unistd::setresuid(u, u, u)
            .ctx(|| "become root of the user namespace (uid 0 unmapped?)")?;
        die_with_runtime(sock)?;
    }
    // The trees to attach: sent by the runtime, or (unprivileged runtime) made here, in our
    // own copy of the caller's mount namespace.
    let in_userns = ns.new_user || rootless;
    let mut prepared = if rootless {
        rootfs::prepare(spec, rootfs_dir, bundle, None, None, true)?
    } else {
        received
    };
    // our mount table starts as a copy of the runtime's, unless we join another one below
    prepared.cgroups = layout
        .filter(|_| !ns.join.iter().any(|(t, _)| *t == LinuxNamespaceType::Mount))
        .cloned();

    // Namespaces: join by path, then the ones made after the cgroup move.
    for (t, p) in &ns.join {
        namespaces::join(*t, p)?;
        if *t == LinuxNamespaceType::Mount {
            // The runtime opened the mount point in the mount namespace we just left: open it
            // again here (move_mount only attaches inside the caller's namespace).
            prepared.target = None;
        }
    }
    let time = nix::sched::CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
    let cgroupns = nix::sched::CloneFlags::CLONE_NEWCGROUP;
    namespaces::unshare(ns.unshare_flags & !time & !cgroupns)?;
    // The procfs every write of ours inside the container goes through: one of our own, which
    // no mount of the config can cover (see `procfs`).
    let proc = ProcFs::private().ctx(|| "open a private procfs")?;
    if ns.unshare_flags.contains(time) {
        namespaces::unshare(time)?;
        namespaces::write_time_offsets(spec, &proc)?;
    }

    // Filesystem. The runtime places us in our cgroup meanwhile; the cgroup namespace (and any
    // cgroup mount, which shows it) waits for that.
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
    let mut before_pivot = || {
        crate::hooks::run(spec, crate::hooks::Kind::CreateContainer, || {
            crate::hooks::state_json(id, "creating", host_pid, bundle, spec)
        })
    };
    let built = rootfs::setup(
        spec,
        rootfs_dir,
        &mut prepared,
        rootfs::InNamespaces {
            user: in_userns,
            host_mount: ns.host_mount_ns(),
            own_cgroup: ns.unshare_flags.contains(cgroupns),
        },
        &mut cgroup_ready,
        &mut before_pivot,
    )?;
    mark("child: rootfs set up");
    if let Some(h) = spec.hostname() {
        nix::unistd::sethostname(h).ctx(|| format!("hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname() {
        // SAFETY: d points to d.len() valid bytes for the duration of the call.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| format!("domainname {d:?}"));
        }
    }
    if ns.new_net && !ns.net_made_by_child() {
        // A new network namespace has only `lo`, and it starts down; bring it up (as bwrap does).
        crate::sys::loopback_up().ctx(|| "bring up lo in the new network namespace")?;
    }
    if process.terminal() == Some(true) {
        // before the masks and a read-only root: /dev/console may need making
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        let master = process::setup_terminal(size, true)?;
        send_fd(sock, b"T", &master)?;
    }
    namespaces::write_sysctls(
        spec,
        &proc,
        namespaces::runtime_written_netns(spec, ns).is_some(),
    )?;
    rootfs::finish(spec, built, prepared.cgroups.as_ref(), &mut cgroup_ready)?;
    cgroup_ready()?;
    mark("child: masks done");

    // Resources namespaces do not cover, then privileges, narrowest last.
    if !opts.no_new_keyring {
        process::fresh_keyring()?;
    }
    process::set_rlimits(process)?;
    let landlock =
        crate::landlock::Config::from_annotations(spec.annotations().as_ref()).expect("validated");
    // A Landlock ruleset implies no_new_privs (the kernel's condition without CAP_SYS_ADMIN),
    // and is enforced before the filter, so the profile need not allow Landlock's calls.
    let nnp = process.no_new_privileges().unwrap_or(false) || landlock.is_some();
    let filter = recv_filter(sock)?;
    let filter = filter.as_ref();
    // Everything that can happen before a filter happens here: the cwd opened, the program
    // found (a create-time error in runc's words), the arrays for execve, the umask, the
    // bounding set cut, the descriptors marked close-on-exec, the exec fifo's /proc dir opened.
    let ready = process::Ready::new(process, !rootless)?;
    process::set_umask(process);
    capabilities::drop_bounding(&ready.sets)?;
    process::close_fds(opts.preserve_fds)?;
    let fifo_dir = match fifo {
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
    }
    ready.become_user(!rootless)?;
    if nnp {
        set_no_new_privs_and_settle(sock)?;
    }
    mark("child: privileges dropped");
    if let (Some(fifo), Some(dir)) = (fifo, &fifo_dir) {
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
    crate::hooks::run(spec, crate::hooks::Kind::StartContainer, || {
        crate::hooks::state_json(id, "created", host_pid, bundle, spec)
    })?;
    if let Some(l) = &landlock {
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
/// outlives the runtime, as runc's does.
fn set_no_new_privs_and_settle(sock: &OwnedFd) -> Result<()> {
    process::set_no_new_privs()?;
    die_with_runtime(sock)?;
    nix::sys::prctl::set_pdeathsig(None).ctx(|| "clear PR_SET_PDEATHSIG")
}
