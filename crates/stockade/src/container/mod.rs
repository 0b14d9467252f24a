//! The engine: one OCI spec in, one isolated process out. Every front end (`run` of a bundle,
//! `sandbox`, the OCI lifecycle commands) ends in [`run`], which reads as the table of contents
//! of the setup: the [`Plan`] (made once; nothing read from the raw config after it), what the
//! container holds on the host (`Made`, each piece undone by its guard), the child
//! (`child.rs`, the container's half, in the order the kernel needs) and the runtime's half
//! (`runtime.rs`), the commit, the wait and the teardown.
//!
//! ```text
//! runtime                                   child (clone3 into new user/pid/mnt/uts/ipc ns,
//! Plan::make: validate, decide              born in the unified cgroup: CLONE_INTO_CGROUP)
//! Made: state dir, net and netdev records, unified cgroup dir, recorder, fifo
//! clone3 ───────────────────────────────▶   network ns (owned by its user ns), setsid
//! write uid/gid maps                        wait for "go"
//! open rootfs + binds as (idmapped) trees
//! send "go" + trees (each described) ───▶   time ns; mounts, devices; pivot_root (chroot in the
//! v1 cgroup dirs + limits                   host's mount ns); masks, ro paths; hostname, sysctls
//! send "C" + v1 `tasks` files ──────────▶   write itself into them; cgroup ns; cgroup mounts
//! network, netDevices moved in (after "N")
//! compile seccomp (or take it cached)       keyring, rlimits
//! send "F" + filter ────────────────────▶   bounding set, user, caps, no_new_privs, seccomp
//! wait: error text, or EOF = exec'd  ◀────  execve
//! forward signals, wait, clean up
//! ```

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::diag::{mark, now_rfc3339};
use crate::error::{Context, Error, Result};
use crate::procfs::ProcFs;
use crate::spec;
use crate::state::{State, StateDir};

mod channel;
mod child;
mod exec;
mod guards;
mod runtime;
use guards::{CgroupGuard, HostMounts};

pub use channel::decode_go;
use channel::recv_msg;
pub use exec::{exec, ExecOptions};

pub use crate::plan::{CreateOptions, Plan, RunOptions};
pub use crate::state::EXEC_FIFO;

/// Signals `stockade run` forwards to the container's init.
const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Run a container to completion: returns its exit code (128+N if killed by signal N); with
/// `create`, returns once it is created. The table of contents of the setup: each step is a call
/// into the module that owns it (the runtime's half in `runtime.rs`, the container's in
/// `child.rs`).
pub fn run(id: &str, bundle: &Path, spec: &Spec, opts: &RunOptions) -> Result<i32> {
    // 1. Everything that can be refused is refused before anything is created.
    mark("start");
    let mut plan = Plan::make(id, bundle, spec, opts)?;
    mark("validated");
    // 2. What the container holds on the host, each undone by its guard if a later step fails.
    let mut made = Made::create(&mut plan, opts)?;
    // 3. The child, blocked until we say go; 4. the runtime's half of its setup.
    let (ours, theirs, forwarded, old_mask) = channel_and_signals()?;
    let (child, channel_fd) = child::spawn(&plan, &mut made, (&ours, theirs), &old_mask, opts)?;
    let runtime::Handed {
        listener,
        agent_runs,
        pty,
    } = match runtime::setup(&plan, &mut made, &ours, (child, channel_fd), opts) {
        Ok(h) => h,
        Err(e) => {
            let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            let _ = old_mask.thread_set_mask();
            return Err(e);
        }
    };
    // 5. Record it; `create` stops here, leaving the container blocked on its fifo.
    made.commit(opts.create.is_some(), child)?;
    // the listener to the agent the annotations ask for, or to the profile's listenerPath
    if let Err(e) = crate::agent::hand_off(&plan.seccomp, &made.st, (listener, agent_runs), &ours) {
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        let _ = old_mask.thread_set_mask();
        return Err(e);
    }
    if let Some(c) = &opts.create {
        let _ = old_mask.thread_set_mask();
        made.keep(c, child)?;
        return Ok(0);
    }
    // 6. Wait, forwarding signals; then take everything down.
    (plan.hooks).run(crate::hooks::Kind::Poststart, "running", child.as_raw())?;
    // a terminal without a console socket: relayed to the caller's, which goes raw meanwhile
    let relay = match pty {
        Some(master) => {
            let raw = crate::tty::RawMode::enter(0);
            crate::tty::copy_winsize(0, &master);
            let tty = master.as_raw_fd();
            let out = crate::tty::relay(master).ctx(|| "relay the terminal")?;
            Some((raw, out, tty))
        }
        None => None,
    };
    let code = wait_forwarding_until(child, &forwarded, opts.caller, relay.as_ref().map(|r| r.2));
    mark("container exited");
    if let Some((raw, out, _)) = relay {
        // the container is gone and its pty with it: what it wrote is flushed, then the
        // caller's terminal comes back as it was
        let _ = out.join();
        drop(raw);
    }
    let _ = old_mask.thread_set_mask();
    made.release(&plan, opts)?;
    (plan.hooks).run(crate::hooks::Kind::Poststop, "stopped", 0)?;
    code
}

/// What a container holds on the host while it is set up and runs, in the order it is made:
/// its state directory (written first, so a `delete` after a kill finds the rest), the
/// network's record, the record of the `linux.netDevices` to move (moved later, by the
/// runtime's half), the rootfs directory, the cgroup, the recorder, the exec fifo. Fields drop
/// in declaration order: the reverse of the making, the state directory last.
struct Made {
    fifo: Option<OwnedFd>,
    host_mounts: HostMounts,
    learn_session: Option<crate::learn::engine::Session>,
    v2_dir: Option<OwnedFd>,
    cgroup: CgroupGuard,
    rootfs_dir: PathBuf,
    netdev: Option<crate::net::netdev::Guard>,
    net: Option<crate::net::Guard>,
    st: State,
    state_dir: StateDir,
}

impl Made {
    fn create(plan: &mut Plan, opts: &RunOptions) -> Result<Made> {
        let id = plan.id;
        let state_dir = StateDir::create(&opts.root, id)?;
        let st = State {
            oci_version: spec::OCI_VERSION.into(),
            id: id.into(),
            status: "creating".into(),
            pid: 0,
            bundle: plan.bundle.to_path_buf(),
            annotations: plan.record.annotations.clone(),
            cgroup: plan.cgroup.clone(),
            id_slot: plan.record.id_slot,
            created: now_rfc3339(),
            pid_start: 0,
        };
        state_dir.save(&st)?;
        // The config as enforced, when it is not the bundle's file: the policy changed it, or a
        // front end (sandbox, learn) made it. `exec`, hooks, `delete` and `policy explain` read it.
        if let Some(text) = &plan.record.effective_config {
            let f = state_dir.dir.join(crate::state::EFFECTIVE_CONFIG);
            std::fs::write(&f, text).ctx(|| format!("write {}", f.display()))?;
        }
        // The network's record (address, veth, ports) is written before any of it exists.
        let net = match &plan.net {
            Some(p) => Some(crate::net::prepare(p, &opts.root, id, &state_dir.dir)?),
            None => None,
        };
        if let Some(g) = &net {
            // /etc/hosts and /etc/resolv.conf: files in the state dir, bound over the image's
            plan.add_mounts(g.mounts());
        }
        // linux.netDevices: the record names each device before any moves
        let netdev = match &plan.netdev {
            Some(p) => Some(crate::net::netdev::prepare(
                p,
                &state_dir.dir,
                &opts.config_file,
            )?),
            None => None,
        };
        let rootfs_dir = plan.rootfs.dir(&state_dir.dir);
        if plan.rootfs.tmpfs_root {
            std::fs::create_dir(&rootfs_dir).ctx(|| format!("create {}", rootfs_dir.display()))?;
        }
        let (cgroup, v2_dir) = CgroupGuard::begin(plan.cgroup.clone(), plan.rootless, opts.quiet)?;
        // the recorder: `learn`'s is told the cgroup; a learning container's is pinned in the
        // state dir (undone if setup fails)
        let learn_session = crate::learn::engine::begin(
            plan.learning.as_ref(),
            &state_dir.dir,
            cgroup.cgroup.as_ref(),
            plan.layout.as_ref().and_then(|l| l.unified.as_deref()),
        )?;
        let host_mounts = HostMounts(plan.ns.host_mount_ns().then(|| rootfs_dir.clone()));
        let fifo = match &opts.create {
            Some(_) => Some(exec_fifo(&state_dir.dir, plan.user_on_host())?),
            None => None,
        };
        Ok(Made {
            fifo,
            host_mounts,
            learn_session,
            v2_dir,
            cgroup,
            rootfs_dir,
            netdev,
            net,
            st,
            state_dir,
        })
    }

    /// The container set up: its state says created (or running) with its pid.
    fn commit(&mut self, create: bool, pid: Pid) -> Result<()> {
        self.st.status = if create { "created" } else { "running" }.into();
        self.st.pid = pid.as_raw();
        self.st.cgroup = self.cgroup.cgroup.clone();
        self.st.pid_start = crate::state::pid_start_time(pid.as_raw());
        self.state_dir.save(&self.st)?;
        mark("exec'd, state saved");
        if let Some(s) = self.learn_session.take() {
            // committed: `delete` (or the end of this run) writes the profile and unpins
            s.keep();
        }
        // From here `delete --force` from elsewhere may take it (as runc's).
        self.state_dir.keep();
        self.state_dir.unlock();
        Ok(())
    }

    /// `create`: the container outlives this process; its state, cgroup, mounts and network
    /// stay for start/delete.
    fn keep(self, c: &CreateOptions, pid: Pid) -> Result<()> {
        if let Some(p) = &c.pid_file {
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, pid.to_string()).ctx(|| format!("--pid-file {}", p.display()))?;
            std::fs::rename(&tmp, p).ctx(|| format!("--pid-file {}", p.display()))?;
        }
        let Made {
            cgroup,
            host_mounts,
            netdev,
            net,
            mut state_dir,
            ..
        } = self;
        state_dir.keep();
        state_dir.unlock();
        std::mem::forget(cgroup);
        std::mem::forget(host_mounts);
        if let Some(g) = netdev {
            g.keep();
        }
        if let Some(g) = net {
            g.keep();
        }
        Ok(())
    }

    /// The container has exited: cgroup, mounts, the moved devices, network, then the state
    /// (under the lock again: a `delete` elsewhere may have taken it meanwhile, then it is gone).
    fn release(self, plan: &Plan, opts: &RunOptions) -> Result<()> {
        let Made {
            cgroup,
            host_mounts,
            netdev,
            net,
            st,
            state_dir,
            ..
        } = self;
        drop(cgroup);
        drop(host_mounts);
        mark("cgroup removed");
        if let Some(g) = netdev {
            g.release();
        }
        if let Some(g) = net {
            if let Err(e) = g.release() {
                crate::diag::warn(&e.to_string());
            }
        }
        drop(state_dir);
        match StateDir::lock(&opts.root, plan.id, std::time::Duration::from_secs(10)) {
            Ok(crate::state::Locked::Container(d)) => {
                if let Err(e) = crate::learn::engine::finish(&d.dir, plan.id) {
                    crate::diag::warn(&e.to_string());
                }
                d.remove()?;
                crate::idpool::release_for(&opts.root, plan.id, st.id_slot);
                Ok(())
            }
            Ok(crate::state::Locked::Removed) | Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `create`'s exec fifo in the state directory, owned by the process's user (it opens it after
/// switching to it), held `O_PATH` for the child.
fn exec_fifo(state_dir: &Path, (uid, gid): (Option<u32>, Option<u32>)) -> Result<OwnedFd> {
    let path = state_dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .ctx(|| format!("mkfifo {}", path.display()))?;
    nix::unistd::chown(
        &path,
        uid.map(nix::unistd::Uid::from_raw),
        gid.map(nix::unistd::Gid::from_raw),
    )
    .ctx(|| format!("chown {}", path.display()))?;
    crate::sys::openat2(libc::AT_FDCWD, &path, libc::O_PATH, 0, 0)
        .ctx(|| format!("open {}", path.display()))
}

/// The child says "N" once its network namespace exists (with an rtnetlink socket inside it, for
/// a bridge), when the runtime has something to do there: set up the network, or move
/// `linux.netDevices` into a namespace made for the container (done next, by the caller). The
/// child gets its filter, and runs nothing of its own, only after that.
fn net_attach(ours: &OwnedFd, made: &mut Made, pid: i32, proc: &ProcFs) -> Result<()> {
    let waits = made.net.is_some() || made.netdev.as_ref().is_some_and(|d| d.waits_for_child());
    if !waits {
        return Ok(());
    }
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
    if let Some(g) = made.net.as_mut() {
        g.attach(pid, fd, proc)?;
        mark("net ready");
    }
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
    wait_forwarding_until(child, set, None, None)
}

/// As [`wait_forwarding`]; with `caller` (the pid that started the runtime, `sandbox
/// --die-with-parent`), a SIGHUP once the caller is gone (PR_SET_PDEATHSIG, see
/// [`die_with_caller`]) is forwarded, and SIGKILL follows after a grace of two seconds.
fn wait_forwarding_until(
    child: Pid,
    set: &SigSet,
    caller: Option<i32>,
    pty: Option<std::os::fd::RawFd>,
) -> Result<i32> {
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
            Some(Signal::SIGWINCH) if pty.is_some() => {
                // the caller's window changed: the pty follows (its foreground gets SIGWINCH)
                // SAFETY: the master stays open while the relay runs, to the end of this wait.
                let master = unsafe { std::os::fd::BorrowedFd::borrow_raw(pty.unwrap_or(-1)) };
                crate::tty::copy_winsize(0, &master);
                continue;
            }
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
/// (a closed terminal's shell), which `wait_forwarding_until` turns into the sandbox's end.
/// Returns the caller's pid, or an error if it is already gone.
pub fn die_with_caller() -> Result<i32> {
    let caller = nix::unistd::getppid().as_raw();
    nix::sys::prctl::set_pdeathsig(Signal::SIGHUP).ctx(|| "PR_SET_PDEATHSIG")?;
    // (a caller that is PID 1, an init or a detached shell's reaper, is a caller like any)
    if nix::unistd::getppid().as_raw() != caller {
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
