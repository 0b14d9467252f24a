//! Complain and enforce modes of a seccomp profile, with an event log (`sandbox --learned DIR
//! --seccomp-mode complain|enforce --seccomp-events FILE`; for `run`/`create` the annotations
//! `org.stockade.seccomp.mode` and `org.stockade.seccomp.events`).
//!
//! The profile's default action (the calls outside it) becomes `SCMP_ACT_NOTIFY`; the calls it
//! lists never leave the kernel. A call outside it stops until this agent answers: in
//! `complain` it lets the call run (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`), in `enforce` it answers
//! EPERM. In both it writes each distinct call once to FILE, as a JSON line: the time, the
//! syscall's name, its arguments (those the profile constrains, as `{"argN": value}`, or all six
//! raw), the caller's pid and comm, and `allowed` or `denied`. Calls are told apart by name and
//! constrained arguments (masked as the profile compares them; for a call the profile does not
//! list, as `learn` would constrain it: socket families, clone's namespace flags, ioctl
//! requests...), so a loop of 10,000 `mkdir`s writes one line. At most [`MAX_KEYS`] distinct
//! calls are remembered; past that, lines are rate-limited and carry a `count` of the calls
//! they stand for (a syscall never seen before is still named, once).
//!
//! The container's own process gets the listener to the agent as soon as it has loaded the
//! filter, and until its `execve` it is stockade's code: without no_new_privileges it still sets
//! its user and capabilities, opens the exec fifo, runs hooks. The agent lets those calls run
//! without a line, whatever the profile (runc's or any runtime's needs are not the workload's),
//! and knows their end because every `execve` is notified (the profile's own `execve` rule is
//! taken out and answered by the agent as the profile would: CONTINUE when it allowed it).
//!
//! The agent is a process of stockade's own, forked from the runtime once the container is
//! committed (twice: adopted by init or the engine's subreaper, in a session of its own), so it
//! lives as long as the container whether the runtime waits for it (`run`, `sandbox`) or
//! returns (`create`, under engines). It keeps only the listener and FILE (under `create`, the
//! runtime's end of the setup channel instead of the listener until the container sends its
//! listener after `start`), has stdio on /dev/null, no capabilities, no_new_privs, and exits
//! when the listener reports that no task uses the filter any more.
//!
//! Fail closed: if the agent dies, the kernel answers every call it would have asked about
//! with ENOSYS (`seccomp_notify_detach` on the listener's release): the call fails, it never
//! runs. Nothing can take the agent's place either: these profiles (and stockade's default)
//! refuse `seccomp(SECCOMP_SET_MODE_FILTER)` with `SECCOMP_FILTER_FLAG_NEW_LISTENER`, since the
//! kernel hands a notification to the newest filter that asks for one, and a listener of the
//! workload's own could otherwise answer CONTINUE for the container's filter once ours is gone.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use serde_json::{json, Value};
use stockade_seccomp::Arch;

use crate::error::{Context as _, Error, Result};
use crate::seccomp::{Mode, Watch, ANNOTATION_EVENTS};
use crate::sys::{
    notif_recv, notif_send, notif_valid, SeccompNotif as Notif, SeccompNotifResp as NotifResp,
    SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
    SECCOMP_USER_NOTIF_FLAG_CONTINUE,
};

/// Distinct calls remembered; past them, lines are rate-limited ([`RATE_PER_SEC`]).
pub const MAX_KEYS: usize = 4096;
/// Lines per second (and the burst) once [`MAX_KEYS`] distinct calls were seen.
pub const RATE_PER_SEC: f64 = 10.0;

/// Per (audit arch, syscall number): the mask of each argument that tells calls apart.
type Masks = HashMap<(u32, u32), [u64; 6]>;

/// The arguments each call's events are told apart by: those the profile compares (masked as
/// it compares them), or for a call it does not compare, those `learn` would constrain.
fn masks_of(profile: &Value) -> Masks {
    let mut by_name: HashMap<String, [u64; 6]> = HashMap::new();
    for r in profile["syscalls"].as_array().into_iter().flatten() {
        let Some(args) = r["args"].as_array().filter(|a| !a.is_empty()) else {
            continue;
        };
        let names = r["names"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&r["name"]))
            .filter_map(Value::as_str);
        for n in names {
            let m = by_name.entry(n.to_string()).or_default();
            for a in args {
                let Some(i) = a["index"].as_u64().filter(|i| *i < 6) else {
                    continue;
                };
                m[i as usize] |= match a["op"].as_str() {
                    Some("SCMP_CMP_MASKED_EQ") => a["value"].as_u64().unwrap_or(u64::MAX),
                    _ => u64::MAX,
                };
            }
        }
    }
    let named = profile_names(profile);
    for (name, idx) in crate::learn::record::ARG_RULES {
        if named.contains(*name) {
            continue;
        }
        let m = by_name.entry(name.to_string()).or_default();
        m[*idx as usize] = crate::learn::profile::mask_of(name, *idx);
    }
    let mut out = Masks::new();
    for arch in [Arch::native(), Arch::X86] {
        for (name, m) in &by_name {
            if let Some(nr) = arch.syscall(name) {
                out.insert((arch.audit(), nr), *m);
            }
        }
    }
    out
}

/// Every name a rule of `profile` mentions.
fn profile_names(profile: &Value) -> HashSet<&str> {
    profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| {
            r["names"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&r["name"]))
        })
        .filter_map(Value::as_str)
        .collect()
}

/// Where the agent gets its listener: already received (`run`), or from the container over the
/// setup channel once `start` lets it load its filter (`create`).
pub enum Source {
    Listener(OwnedFd),
    Channel(OwnedFd),
}

/// Linux 6.6+: the caller and the agent wake each other on the waker's CPU (the caller waits
/// while the agent works, so one CPU is all they need). Without it, on a VM whose idle vCPUs
/// halt, a notification often waits for another vCPU to be woken: measured on a 2-vCPU VM, a
/// notified call took 3-53 µs (median 13) without, 2.5-2.9 µs with. Best effort: an older
/// kernel just lacks it.
fn notif_sync_wake_up(fd: &OwnedFd) -> bool {
    // SAFETY: NOTIF_SET_FLAGS takes the flags by value; it reads no memory of ours.
    unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        ) == 0
    }
}

/// The next notification (the kernel wants it zeroed).
/// `close_range(first, last, 0)`; nothing when the range is empty.
fn close_range(first: u32, last: u32) {
    if first <= last {
        // SAFETY: close_range takes plain integers; it only closes descriptors of ours.
        unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    }
}

/// Close every descriptor from 3 up but those in `keep`.
fn close_all_but(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep.iter().map(|f| *f as u32).collect();
    keep.sort_unstable();
    let mut from = 3u32;
    for k in keep {
        if k >= from {
            close_range(from, k - 1);
            from = k + 1;
        }
    }
    close_range(from, u32::MAX);
}

/// A call as events tell them apart: audit arch, number, arguments under their masks.
type Key = (u32, u32, [u64; 6]);

/// Which calls get a line: each distinct one the first time, while fewer than [`MAX_KEYS`]
/// are remembered; past that, at most [`RATE_PER_SEC`] lines a second (a token bucket), each
/// with the count of calls it stands for since the last line.
struct Dedup {
    seen: HashSet<Key>,
    /// every (arch, number) with a line: a call never seen before always gets one, past the
    /// limit too (there are a few hundred), so no syscall goes unnamed
    calls: HashSet<(u32, u32)>,
    tokens: f64,
    refilled: Instant,
    unwritten: u64,
}

/// What [`Dedup::admit`] says of one call.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// seen before: no line
    None,
    /// a line (with the count of calls it stands for, once rate-limited)
    Write(Option<u64>),
}

impl Dedup {
    fn new(now: Instant) -> Dedup {
        Dedup {
            seen: HashSet::new(),
            calls: HashSet::new(),
            tokens: RATE_PER_SEC,
            refilled: now,
            unwritten: 0,
        }
    }

    fn admit(&mut self, key: Key, now: Instant) -> Line {
        if self.seen.contains(&key) {
            return Line::None;
        }
        let new_call = self.calls.insert((key.0, key.1));
        if self.seen.len() < MAX_KEYS {
            self.seen.insert(key);
            return Line::Write(None);
        }
        if new_call {
            return Line::Write(None);
        }
        self.unwritten += 1;
        let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + dt * RATE_PER_SEC).min(RATE_PER_SEC);
        self.refilled = now;
        if self.tokens < 1.0 {
            return Line::None;
        }
        self.tokens -= 1.0;
        Line::Write(Some(std::mem::take(&mut self.unwritten)))
    }
}

/// What one agent serves.
struct Agent {
    mode: Mode,
    container: String,
    masks: Masks,
    events: std::fs::File,
    dedup: Dedup,
    /// The container's process (host pid) while it is still stockade's: its calls between
    /// loading the filter and its `execve` are the runtime's, answered CONTINUE and not logged.
    /// Its `execve` (always notified, see [`crate::seccomp::apply`]) ends that.
    loader: Option<i32>,
    /// The profile allows `execve`/`execveat`: notified only to see the loader's, answered
    /// CONTINUE for everyone.
    exec_allowed: bool,
    /// `--ready` (the annotation `org.stockade.seccomp.ready`): the whole-life profile, whose
    /// calls run unlogged until the workload listens on `port`; then the kernel's (serving)
    /// profile alone decides.
    phase: Option<Phase>,
}

/// The startup phase of a `--ready` profile.
struct Phase {
    whole: stockade_seccomp::Filter,
    ready: String,
    port: u16,
    /// A `NETLINK_SOCK_DIAG` socket in the container's network namespace.
    diag: OwnedFd,
    serving: bool,
}

impl Phase {
    /// Whether a TCP socket (v4 or v6) listens on `port` in the container's network namespace.
    /// Asked on every notified call of the startup phase, so asked cheaply: a sock_diag dump of
    /// the listening sockets only, which the kernel serves from its listening hash, where
    /// `/proc/PID/net/tcp` walks every bucket of the established hash (milliseconds per read on
    /// a machine with much memory: a workload's startup of thousands of calls took minutes).
    fn listening(&self) -> bool {
        [libc::AF_INET, libc::AF_INET6]
            .iter()
            .any(|f| tcp_listens(&self.diag, *f as u8, self.port).unwrap_or(false))
    }
}

/// A sock_diag socket made in the network namespace of `pid` (by a thread that enters it: a
/// socket keeps the namespace it was made in).
fn diag_socket_of(pid: i32) -> Result<OwnedFd> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .ctx(|| format!("open the network namespace of {pid}"))?;
    std::thread::scope(|s| {
        s.spawn(|| -> Result<OwnedFd> {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .ctx(|| "enter the container's network namespace")?;
            socket(
                AddressFamily::Netlink,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::NetlinkSockDiag,
            )
            .ctx(|| "sock_diag socket")
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Other("sock_diag thread panicked".into())))
    })
}

/// Whether `diag`'s namespace has a TCP socket of `family` in LISTEN on `port`: one
/// `SOCK_DIAG_BY_FAMILY` dump (`inet_diag_req_v2`, states = LISTEN), read to its end.
fn tcp_listens(diag: &OwnedFd, family: u8, port: u16) -> io::Result<bool> {
    use nix::sys::socket::{recv, send, MsgFlags};
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const TCP_LISTEN: u32 = 10;
    let mut req = Vec::with_capacity(72);
    req.extend(72u32.to_ne_bytes());
    req.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend(((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend([0u8; 8]); // sequence, port id
    req.extend([family, libc::IPPROTO_TCP as u8, 0, 0]);
    req.extend((1u32 << TCP_LISTEN).to_ne_bytes());
    req.extend([0u8; 48]); // inet_diag_sockid: no filter
    send(diag.as_raw_fd(), &req, MsgFlags::empty())?;
    let mut buf = vec![0u8; 16384];
    let mut found = false;
    loop {
        let n = recv(diag.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
            let typ = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            if typ == libc::NLMSG_DONE as u16 {
                return Ok(found);
            }
            if typ == libc::NLMSG_ERROR as u16 || len < 16 {
                return Ok(false);
            }
            // inet_diag_msg: family, state, timer, retrans, then the id's source port (BE)
            if let Some(p) = buf.get(off + 20..off + 22) {
                found |= u16::from_be_bytes([p[0], p[1]]) == port;
            }
            off += (len + 3) & !3;
        }
        if n == 0 {
            return Ok(found);
        }
    }
}

/// Whether `n` is a native `execve` or `execveat`.
fn is_exec(n: &Notif) -> bool {
    let a = Arch::native();
    n.arch == a.audit()
        && ["execve", "execveat"]
            .iter()
            .any(|c| a.syscall(c) == Some(n.nr as u32))
}

fn continue_call(fd: &OwnedFd, n: &Notif) {
    let resp = NotifResp {
        id: n.id,
        flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
        ..Default::default()
    };
    // ENOENT: the caller went away meanwhile (killed); nothing to answer
    let _ = notif_send(fd, &resp);
}

impl Agent {
    /// Answer one notification, writing its line first if it is a call not seen before.
    fn handle(&mut self, fd: &OwnedFd, n: &Notif) {
        if self.loader.is_some_and(|p| p as u32 == n.pid) {
            // stockade's own last calls (the user switch, the exec fifo, the hooks), and its
            // `execve` of the workload: from here on the process is the workload
            if is_exec(n) {
                self.loader = None;
            }
            return continue_call(fd, n);
        }
        if self.exec_allowed && is_exec(n) {
            return continue_call(fd, n);
        }
        if let Some(p) = self.phase.as_mut().filter(|p| !p.serving) {
            if p.listening() {
                p.serving = true;
                self.write_phase();
            } else if n.arch == Arch::native().audit()
                && allows(p.whole.eval(Arch::native(), n.nr as u32, n.args).0)
            {
                // a startup call of the whole-life profile, before the workload serves
                return continue_call(fd, n);
            }
        }
        let masks = self
            .masks
            .get(&(n.arch, n.nr as u32))
            .copied()
            .unwrap_or([0; 6]);
        let key = (
            n.arch,
            n.nr as u32,
            std::array::from_fn(|i| n.args[i] & masks[i]),
        );
        if let Line::Write(count) = self.dedup.admit(key, Instant::now()) {
            self.write(fd, n, &masks, count);
        }
        match self.mode {
            Mode::Complain => continue_call(fd, n),
            Mode::Enforce => {
                let resp = NotifResp {
                    id: n.id,
                    error: -libc::EPERM,
                    ..Default::default()
                };
                let _ = notif_send(fd, &resp);
            }
        }
    }

    fn write(&mut self, fd: &OwnedFd, n: &Notif, masks: &[u64; 6], count: Option<u64>) {
        use std::io::Write;
        let name = call_name(n.arch, n.nr);
        let args: Value = if masks.iter().any(|m| *m != 0) {
            let mut o = serde_json::Map::new();
            for (i, m) in masks.iter().enumerate() {
                if *m != 0 {
                    o.insert(format!("arg{i}"), json!(n.args[i]));
                }
            }
            Value::Object(o)
        } else {
            json!(n.args)
        };
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", n.pid))
            .ok()
            .map(|c| c.trim_end_matches('\n').to_string())
            // the pid may be another process's by now if the caller is gone
            .filter(|_| notif_valid(fd, n.id));
        let mut line = json!({
            "time": crate::diag::now_rfc3339(),
            "container": self.container,
            "syscall": name,
            "args": args,
            "pid": n.pid,
            "comm": comm,
            "action": match self.mode { Mode::Complain => "allowed", Mode::Enforce => "denied" },
        });
        if let Some(c) = count {
            line["count"] = json!(c);
        }
        if let Some(p) = &self.phase {
            line["phase"] = json!(if p.serving { "serving" } else { "startup" });
        }
        let mut text = line.to_string();
        text.push('\n');
        // one write(2) of a whole line, O_APPEND: lines of agents sharing FILE never mix; a
        // failed write (a full disk) costs the line, never the answer
        let _ = self.events.write_all(text.as_bytes());
    }

    /// The line that says the workload is ready: from here the serving profile alone holds.
    fn write_phase(&mut self) {
        use std::io::Write;
        let Some(p) = &self.phase else { return };
        let mut text = json!({
            "time": crate::diag::now_rfc3339(),
            "container": self.container,
            "event": "ready",
            "ready": p.ready,
            "phase": "serving",
        })
        .to_string();
        text.push('\n');
        let _ = self.events.write_all(text.as_bytes());
    }

    /// Until no task uses the filter any more.
    fn serve(&mut self, fd: &OwnedFd) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        notif_sync_wake_up(fd);
        loop {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            // in a startup phase, the switch is logged when it happens, not at the next call
            let startup = self.phase.as_ref().is_some_and(|p| !p.serving);
            let wait = if startup {
                PollTimeout::from(50u16)
            } else {
                PollTimeout::NONE
            };
            if let Some(p) = self.phase.as_mut().filter(|p| !p.serving && p.listening()) {
                p.serving = true;
                self.write_phase();
            }
            match poll(&mut fds, wait) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(_) => return,
            }
            let ev = fds[0].revents().unwrap_or(PollFlags::empty());
            if ev.contains(PollFlags::POLLIN) {
                match notif_recv(fd) {
                    Ok(n) => self.handle(fd, &n),
                    // ENOENT: withdrawn (its caller was killed); EINTR: try again
                    Err(_) => continue,
                }
                continue;
            }
            if ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
                return;
            }
        }
    }
}

/// A syscall's name as the events file gives it: native, `i386:NAME`, or `#NR`.
fn call_name(arch: u32, nr: i32) -> String {
    let (a, prefix) = if arch == Arch::X86.audit() && Arch::native() != Arch::X86 {
        (Arch::X86, "i386:")
    } else {
        (Arch::native(), "")
    };
    a.name_of(nr as u32)
        .map_or_else(|| format!("{prefix}#{nr}"), |s| format!("{prefix}{s}"))
}

/// The listener from the container's "L" message on the setup channel (None: it failed, or
/// was deleted before `start`).
fn listener_from_channel(ch: &OwnedFd) -> Option<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    loop {
        let mut buf = [0u8; 8192];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let msg = match recvmsg::<()>(
            ch.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::Error::EINTR) => continue,
            Err(_) => return None,
        };
        let mut fds = vec![];
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(v) = c {
                    // SAFETY: SCM_RIGHTS gave us these new descriptors; nothing else owns them.
                    fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                }
            }
        }
        let n = msg.bytes;
        match buf.first() {
            _ if n == 0 => return None,
            Some(b'L') => return fds.into_iter().next(),
            Some(b'E') => return None,
            // anything else (a terminal's master under `create` went to the engine already)
            _ => continue,
        }
    }
}

/// The agent's own process: stdio on /dev/null, only `keep` open, no capabilities,
/// no_new_privs, signals unblocked, in `/`.
fn become_agent(keep: &[RawFd]) -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors; both are valid.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    drop(null);
    close_all_but(keep);
    nix::sys::signal::SigSet::empty().thread_set_mask()?;
    std::env::set_current_dir("/")?;
    let _ = nix::sys::prctl::set_name(c"stockade-agent");
    // what it holds is all it needs: the listener's ioctls and a written file
    for c in caps::all() {
        let _ = caps::drop(None, caps::CapSet::Bounding, c);
    }
    for set in [
        caps::CapSet::Ambient,
        caps::CapSet::Inheritable,
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
    ] {
        let _ = caps::clear(None, set);
    }
    nix::sys::prctl::set_no_new_privs()?;
    Ok(())
}

/// Whether a filter's return value lets the call run (ALLOW, LOG).
fn allows(ret: u32) -> bool {
    matches!(ret & 0xffff_0000, 0x7fff_0000 | 0x7ffc_0000)
}

/// The `--ready` phase the annotations ask for: the whole-life profile compiled (for the
/// container's bounding capabilities, as the kernel's was).
fn startup_phase(plan: &crate::seccomp::Plan, pid: i32) -> Result<Option<Phase>> {
    let Some((ready, whole)) = &plan.ready else {
        return Ok(None);
    };
    let field = |k: &str, why: String| Error::Other(format!("annotations.{k}: {why}"));
    let port = ready
        .strip_prefix("tcp:")
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| {
            field(
                crate::seccomp::ANNOTATION_READY,
                format!("{ready:?}: use tcp:PORT"),
            )
        })?;
    let text = std::fs::read_to_string(whole)
        .map_err(|e| field(crate::seccomp::ANNOTATION_STARTUP, format!("{whole}: {e}")))?;
    let profile = stockade_seccomp::Profile::from_json(&text)
        .map_err(|e| field(crate::seccomp::ANNOTATION_STARTUP, format!("{whole}: {e}")))?;
    let caps = plan.caps.iter().cloned();
    let whole = stockade_seccomp::compile(&profile.resolve(&stockade_seccomp::Context::host(caps)))
        .map_err(|e| field(crate::seccomp::ANNOTATION_STARTUP, e.to_string()))?;
    Ok(Some(Phase {
        whole,
        ready: ready.clone(),
        port,
        diag: diag_socket_of(pid)?,
        serving: false,
    }))
}

/// Start the container's agent: open FILE (appending, made 0600 if new), fork it off, and
/// return once it is set up. `loader` is the container's process (host pid), not yet exec'd.
pub fn spawn(
    plan: &crate::seccomp::Plan,
    watch: &Watch,
    (container, loader): (&str, i32),
    source: Source,
) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let events = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&watch.events)
        .ctx(|| {
            format!(
                "seccomp events file {} ({ANNOTATION_EVENTS})",
                watch.events.display()
            )
        })?;
    let profile = (plan.profile.as_ref())
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .unwrap_or_default();
    let phase = startup_phase(plan, loader)?;
    let mut agent = Agent {
        mode: watch.mode,
        container: container.to_string(),
        masks: masks_of(&profile),
        events,
        dedup: Dedup::new(Instant::now()),
        loader: Some(loader),
        exec_allowed: ["execve", "execveat"]
            .iter()
            .any(|c| profile_names(&profile).contains(c)),
        phase,
    };
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe")?;
    let source_fd = match &source {
        Source::Listener(fd) | Source::Channel(fd) => fd.as_raw_fd(),
    };
    let mut keep = vec![source_fd, agent.events.as_raw_fd(), ready_w.as_raw_fd()];
    keep.extend(agent.phase.as_ref().map(|p| p.diag.as_raw_fd()));
    // the runtime is single-threaded here (see `sys::fork_exit`); the first child only makes a
    // session of its own and forks the agent, which init (or the engine's subreaper) adopts
    // Each closure owns what the agent keeps (the source, FILE, the pipe's writing end): where
    // it does not run, fork_exit drops it, so the runtime and the first child let go of them.
    let middle = crate::sys::fork_exit(move || {
        if nix::unistd::setsid().is_err() {
            return 1;
        }
        let forked = crate::sys::fork_exit(move || {
            if let Err(e) = become_agent(&keep) {
                let _ = nix::unistd::write(&ready_w, format!("E{e}").as_bytes());
                return 1;
            }
            let _ = nix::unistd::write(&ready_w, b"ok");
            // the only descriptors left: the source and FILE
            drop(ready_w);
            let listener = match source {
                Source::Listener(fd) => Some(fd),
                Source::Channel(ch) => listener_from_channel(&ch),
            };
            if let Some(l) = listener {
                agent.serve(&l);
            }
            0
        });
        match forked {
            Ok(_) => 0,
            Err(_) => 1,
        }
    })
    .ctx(|| "fork the seccomp agent")?;
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(middle), None)
        .ctx(|| "wait for the seccomp agent's start")?;
    let mut said = vec![];
    let mut f = std::fs::File::from(ready_r);
    let _ = std::io::Read::read_to_end(&mut f, &mut said);
    if said == b"ok" {
        return Ok(());
    }
    let why = match said.strip_prefix(b"E") {
        Some(m) => String::from_utf8_lossy(m).into_owned(),
        None => format!("it did not start ({status:?})"),
    };
    Err(Error::Other(format!("seccomp agent: {why}")))
}

/// During setup, as the container sends its listener: to the agent its annotations ask for,
/// started now ([`spawn`]): from here the container's calls outside the profile wait for it.
/// Given back when the profile's own `listenerPath` takes it (after the commit).
pub fn on_listener(
    plan: &crate::seccomp::Plan,
    (container, loader): (&str, i32),
    fd: OwnedFd,
) -> Result<Option<OwnedFd>> {
    match &plan.watch {
        Some(w) => spawn(plan, w, (container, loader), Source::Listener(fd)).map(|_| None),
        None => Ok(Some(fd)),
    }
}

/// After the container is committed, when the listener did not come during setup: its agent
/// (under `create` with no_new_privileges the container loads its filter after `start`: the
/// agent takes a copy of the setup channel `channel`, on which the container sends it), or the
/// `listenerPath` of its profile ([`crate::seccomp::send_listener`]), or nothing (no NOTIFY in
/// the profile, or the agent runs already).
pub fn hand_off(
    plan: &crate::seccomp::Plan,
    state: &crate::state::State,
    (listener, agent_runs): (Option<OwnedFd>, bool),
    channel: &OwnedFd,
) -> Result<()> {
    match (&plan.watch, listener) {
        (Some(_), _) if agent_runs => Ok(()),
        (Some(w), Some(fd)) => spawn(plan, w, (&state.id, state.pid), Source::Listener(fd)),
        (Some(w), None) => {
            let ch = channel.try_clone().ctx(|| "dup the setup channel")?;
            spawn(plan, w, (&state.id, state.pid), Source::Channel(ch))
        }
        (None, Some(fd)) => crate::seccomp::send_listener(plan, state, &fd),
        (None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_distinct_call_once_then_rate_limited_with_counts() {
        let t0 = Instant::now();
        let mut d = Dedup::new(t0);
        // one call (number 7) with distinct arguments
        let key = |i: u64| (1, 7, [i, 0, 0, 0, 0, 0]);
        assert_eq!(d.admit(key(0), t0), Line::Write(None));
        for _ in 0..10_000 {
            assert_eq!(d.admit(key(0), t0), Line::None);
        }
        for i in 1..MAX_KEYS as u64 {
            assert_eq!(d.admit(key(i), t0), Line::Write(None));
        }
        // full: the burst, then nothing until tokens come back; the next line counts the calls
        for i in 0..RATE_PER_SEC as u64 {
            assert_eq!(d.admit(key(100_000 + i), t0), Line::Write(Some(1)));
        }
        for i in 0..99 {
            assert_eq!(d.admit(key(200_000 + i), t0), Line::None);
        }
        // a syscall never seen before is named even now, without spending a token
        assert_eq!(d.admit((1, 8, [0; 6]), t0), Line::Write(None));
        assert_eq!(d.admit((1, 8, [1, 0, 0, 0, 0, 0]), t0), Line::None);
        let later = t0 + Duration::from_millis(150);
        assert_eq!(d.admit(key(300_000), later), Line::Write(Some(101)));
        // remembered calls stay silent
        assert_eq!(d.admit(key(5), later), Line::None);
    }

    #[test]
    fn masks_follow_the_profile_then_what_learn_constrains() {
        let profile = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mmap"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 2, "value": 6, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        ]});
        let m = masks_of(&profile);
        let a = Arch::native();
        let of = |n: &str| m.get(&(a.audit(), a.syscall(n).unwrap())).copied();
        assert_eq!(of("mmap"), Some([0, 0, 6, 0, 0, 0]));
        assert_eq!(of("personality"), Some([u64::MAX, 0, 0, 0, 0, 0]));
        // not in the profile: as learn records it
        assert_eq!(of("socket"), Some([0xffff_ffff, 0xf, 0, 0, 0, 0]));
        assert_eq!(of("mkdir"), None);
    }
}
