//! `stockade probe`: run inside any container or sandbox and report, with evidence, how much of
//! the seed's isolation holds. Every check is harmless by construction: nothing host-visible is
//! written, no setting is changed; dangerous calls are made with arguments the kernel rejects
//! after the point that tells us whether the call was reachable.
//!
//! Outcomes: **blocked** (isolation holds), **exposed** (a gap), **n/a** (the kernel lacks the
//! feature: ENOSYS, missing file). Not applicable never counts as blocked.

use std::fs;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Blocked,
    Exposed,
    NotApplicable,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub section: &'static str,
    pub name: String,
    pub outcome: Outcome,
    pub evidence: String,
}

fn check(
    section: &'static str,
    name: &str,
    outcome: Outcome,
    evidence: impl Into<String>,
) -> Check {
    Check {
        section,
        name: name.to_string(),
        outcome,
        evidence: evidence.into(),
    }
}

fn errno_name(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

/// A raw syscall with fixed arguments: Ok(return) or Err(errno).
fn sys(nr: libc::c_long, a: [libc::c_long; 6]) -> Result<libc::c_long, i32> {
    // SAFETY: every call site passes arguments the kernel validates before acting (null
    // pointers, invalid commands or descriptors); nothing is dereferenced on our side.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// Reachability of a syscall from its result: EPERM/EACCES (seccomp or missing capability) is
/// blocked, ENOSYS is not applicable, anything else means the kernel got to look at our
/// (deliberately invalid) arguments.
fn reachable(r: Result<libc::c_long, i32>) -> Found {
    match r {
        Err(e) if e == libc::EPERM || e == libc::EACCES => (Outcome::Blocked, errno_name(e)),
        Err(e) if e == libc::ENOSYS => (Outcome::NotApplicable, errno_name(e)),
        Err(e) => (
            Outcome::Exposed,
            format!("reached the kernel: {}", errno_name(e)),
        ),
        Ok(v) => (Outcome::Exposed, format!("returned {v}")),
    }
}

/// Our own /proc/self/status.
fn own_status() -> String {
    fs::read_to_string("/proc/self/status").unwrap_or_default()
}

fn status_field(field: &str) -> Option<String> {
    crate::capabilities::status_field(&own_status(), field).map(String::from)
}

/// Where `sandbox --probe` and `run --probe` bind this binary inside the container.
pub const BOUND_AT: &str = "/.stockade/stockade";

/// The container's process that runs the probe: the bound binary, `probe`, then `args`.
pub fn command(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut c = vec![BOUND_AT.to_string(), "probe".to_string()];
    c.extend(args);
    c
}

/// The OCI mount that binds the runtime binary `exe` read-only at [`BOUND_AT`].
pub fn bind_mount(exe: &std::path::Path) -> serde_json::Value {
    serde_json::json!({
        "destination": BOUND_AT, "type": "bind", "source": exe,
        "options": ["bind", "ro", "nosuid", "nodev"],
    })
}

/// What one check found: its outcome and the evidence for it.
type Found = (Outcome, String);

/// How a check looks.
enum Look {
    /// A function of its own.
    Fn(fn() -> Found),
    /// A raw syscall with arguments the kernel rejects after the point that tells whether the
    /// call was reachable ([`reachable`]).
    Syscall(libc::c_long, [libc::c_long; 6]),
    /// The file the check is named after must read empty (masked) or be absent.
    Masked,
    /// A cgroup limit: the first of these files that can be read (v2's, then v1's).
    Limit(&'static [&'static str]),
    /// A capability set of our /proc/self/status (`CapEff`...): none of the dangerous ones.
    CapSet(&'static str),
    /// A raw socket of this domain and protocol (closed at once if we get one).
    RawSocket(libc::c_int, libc::c_int),
}

/// One check of the probe: the section it is reported in, its name, and how it looks.
struct Probe {
    section: &'static str,
    name: &'static str,
    look: Look,
}

const NS: &str = "namespaces";
const RES: &str = "not namespaced";
const CAP: &str = "capabilities";
const SET: &str = "setuid";
const SC: &str = "seccomp";
const DEV: &str = "devices and mounts";

const fn probe(section: &'static str, name: &'static str, look: Look) -> Probe {
    Probe {
        section,
        name,
        look,
    }
}

/// A syscall made with these (rejected) arguments.
const fn call(
    section: &'static str,
    name: &'static str,
    nr: libc::c_long,
    a: [libc::c_long; 6],
) -> Probe {
    probe(section, name, Look::Syscall(nr, a))
}

/// Every check, in the order the report lists them (the seed's sections first).
#[rustfmt::skip]
static PROBES: &[Probe] = &[
    // --- seed §1: namespaces
    probe(NS, "user namespace", Look::Fn(user_namespace)),
    probe(NS, "network namespace", Look::Fn(network_namespace)),
    probe(NS, "pid namespace", Look::Fn(pid_namespace)),
    // --- seed §2: what namespaces do not cover
    call(RES, "kernel keyring (keyctl)", libc::SYS_keyctl, [0, -3, 0, 0, 0, 0]),
    probe(RES, "/proc/kcore", Look::Masked),
    probe(RES, "/proc/keys", Look::Masked),
    probe(RES, "/proc/timer_list", Look::Masked),
    probe(RES, "/proc/kallsyms", Look::Masked),
    probe(RES, "/proc/sched_debug", Look::Masked),
    probe(RES, "/proc/sys writable", Look::Fn(proc_sys_writable)),
    probe(RES, "kernel log (/dev/kmsg)", Look::Fn(kmsg)),
    call(RES, "kernel log (syslog)", libc::SYS_syslog, [10, 0, 0, 0, 0, 0]),
    probe(RES, "system time", Look::Fn(system_time)),
    call(RES, "kernel modules (init_module)", libc::SYS_init_module, [0, 0, 0, 0, 0, 0]),
    probe(RES, "memory limit", Look::Limit(&["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])),
    probe(RES, "pids limit", Look::Limit(&["/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"])),
    probe(RES, "cpu limit", Look::Limit(&["/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"])),
    // --- seed §3: capabilities and setuid
    probe(CAP, "effective set", Look::CapSet("CapEff")),
    probe(CAP, "bounding set", Look::CapSet("CapBnd")),
    probe(CAP, "ambient set", Look::CapSet("CapAmb")),
    probe(SET, "no_new_privs", Look::Fn(no_new_privs)),
    probe("landlock", "landlock domain", Look::Fn(landlock)),
    probe(SET, "nosuid mounts", Look::Fn(nosuid_mounts)),
    // --- seed §4: seccomp
    probe(SC, "filter mode", Look::Fn(filter_mode)),
    call(SC, "perf_event_open", libc::SYS_perf_event_open, [0, 0, -1, -1, 0, 0]),
    call(SC, "bpf", libc::SYS_bpf, [-1, 0, 0, 0, 0, 0]),
    call(SC, "userfaultfd", libc::SYS_userfaultfd, [-1, 0, 0, 0, 0, 0]),
    call(SC, "io_uring_setup", libc::SYS_io_uring_setup, [0, 0, 0, 0, 0, 0]),
    call(SC, "kcmp", libc::SYS_kcmp, [0, 0, -1, 0, 0, 0]),
    call(SC, "add_key", libc::SYS_add_key, [0, 0, 0, 0, 0, 0]),
    call(SC, "mount", libc::SYS_mount, [0, 0, 0, 0, 0, 0]),
    call(SC, "open_by_handle_at", libc::SYS_open_by_handle_at, [-1, 0, 0, 0, 0, 0]),
    call(SC, "ptrace", libc::SYS_ptrace, [-1, 0, 0, 0, 0, 0]),
    call(SC, "unshare (no-op)", libc::SYS_unshare, [0, 0, 0, 0, 0, 0]),
    probe(SC, "raw socket", Look::RawSocket(libc::AF_INET, libc::IPPROTO_ICMP)),
    probe(SC, "packet socket", Look::RawSocket(libc::AF_PACKET, 0)),
    // --- devices and mounts
    probe(DEV, "host block devices", Look::Fn(block_devices)),
    probe(DEV, "engine sockets", Look::Fn(engine_sockets)),
    probe(DEV, "mknod", Look::Fn(mknod)),
    // --- network
    probe("network", "routes", Look::Fn(routes)),
];

/// Every check of [`PROBES`], in order.
pub fn run_all() -> Vec<Check> {
    PROBES
        .iter()
        .map(|p| {
            let (outcome, evidence) = p.look.run(p.name);
            check(p.section, p.name, outcome, evidence)
        })
        .collect()
}

impl Look {
    /// Look, for the check called `name`.
    fn run(&self, name: &str) -> Found {
        match *self {
            Look::Fn(f) => f(),
            Look::Syscall(nr, a) => reachable(sys(nr, a)),
            Look::Masked => masked(name),
            Look::Limit(files) => cgroup_limit(files),
            Look::CapSet(field) => cap_set(field),
            Look::RawSocket(domain, proto) => raw_socket(domain, proto),
        }
    }
}

/// The words of a uid_map that maps every id to itself (no user namespace).
const IDENTITY_MAP: [&str; 3] = ["0", "0", "4294967295"];

fn user_namespace() -> Found {
    match fs::read_to_string("/proc/self/uid_map") {
        Ok(m) if m.split_whitespace().collect::<Vec<_>>() == IDENTITY_MAP => (
            Outcome::Exposed,
            "uid_map is the identity: root here is root on the host".into(),
        ),
        Ok(m) => (
            Outcome::Blocked,
            format!(
                "uid_map {}",
                m.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        ),
        Err(e) => (Outcome::NotApplicable, e.to_string()),
    }
}

fn network_namespace() -> Found {
    let ifaces: Vec<String> = fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    let others: Vec<&String> = ifaces.iter().filter(|i| *i != "lo").collect();
    (
        if others.is_empty() {
            Outcome::Blocked
        } else {
            Outcome::Exposed
        },
        format!("interfaces: {}", ifaces.join(", ")),
    )
}

fn pid_namespace() -> Found {
    let init = fs::read_to_string("/proc/1/cmdline")
        .unwrap_or_default()
        .replace('\0', " ");
    let host_init = ["systemd", "/sbin/init", "/process_api", "init "]
        .iter()
        .any(|h| init.starts_with(h));
    (
        if host_init {
            Outcome::Exposed
        } else {
            Outcome::Blocked
        },
        format!("pid 1 is {:?}", init.trim()),
    )
}

fn masked(file: &str) -> Found {
    match fs::read(file) {
        Ok(b) if b.is_empty() => (Outcome::Blocked, "reads empty (masked)".into()),
        Ok(b) => (Outcome::Exposed, format!("{} bytes readable", b.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (Outcome::NotApplicable, "absent".into())
        }
        Err(e) => (Outcome::Blocked, e.to_string()),
    }
}

/// Open for writing, write nothing.
fn proc_sys_writable() -> Found {
    match fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/kernel/hostname")
    {
        Ok(_) => (
            Outcome::Exposed,
            "opened /proc/sys/kernel/hostname for writing".into(),
        ),
        Err(e) => (Outcome::Blocked, e.to_string()),
    }
}

fn kmsg() -> Found {
    match fs::File::open("/dev/kmsg") {
        Ok(_) => (Outcome::Exposed, "readable".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Outcome::Blocked, "absent".into()),
        Err(e) => (Outcome::Blocked, e.to_string()),
    }
}

/// An invalid clock id: EINVAL means the call got past seccomp; setting needs CAP_SYS_TIME too.
fn system_time() -> Found {
    let caps_eff = crate::capabilities::status_mask(&own_status(), "CapEff");
    let has = |name: &str| {
        crate::capabilities::decode_mask(caps_eff)
            .iter()
            .any(|c| c == name)
    };
    // Setting the clock takes CAP_SYS_TIME in the host's user namespace: without it (or inside a
    // user namespace) it cannot happen; with it, whether seccomp lets the call through decides.
    let own_userns = fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != IDENTITY_MAP);
    if !has("CAP_SYS_TIME") || own_userns {
        let why = if own_userns {
            "in a user namespace: CAP_SYS_TIME cannot reach the host clock"
        } else {
            "no CAP_SYS_TIME"
        };
        (Outcome::Blocked, why.into())
    } else {
        reachable(sys(libc::SYS_clock_settime, [-1, 0, 0, 0, 0, 0]))
    }
}

fn cgroup_limit(files: &[&str]) -> Found {
    let limit = files.iter().find_map(|p| {
        fs::read_to_string(p)
            .ok()
            .map(|v| (p.to_string(), v.trim().to_string()))
    });
    match limit {
        Some((p, v)) if v.starts_with("max") || v == "-1" || v == "9223372036854771712" => {
            (Outcome::Exposed, format!("{p} = {v}"))
        }
        Some((p, v)) => (Outcome::Blocked, format!("{p} = {v}")),
        None => (
            Outcome::NotApplicable,
            "no cgroup filesystem visible".into(),
        ),
    }
}

fn cap_set(field: &str) -> Found {
    let mask = crate::capabilities::status_mask(&own_status(), field);
    let names = crate::capabilities::decode_mask(mask);
    let bad: Vec<&String> = names
        .iter()
        .filter(|n| crate::capabilities::DANGEROUS.contains(&n.as_str()))
        .collect();
    if bad.is_empty() {
        (
            Outcome::Blocked,
            format!("{} capabilities, none dangerous", names.len()),
        )
    } else {
        (Outcome::Exposed, format!("{bad:?}"))
    }
}

fn no_new_privs() -> Found {
    match status_field("NoNewPrivs").as_deref() {
        Some("1") => (Outcome::Blocked, "NoNewPrivs: 1".into()),
        Some(v) => (Outcome::Exposed, format!("NoNewPrivs: {v}")),
        None => (Outcome::NotApplicable, "not reported".into()),
    }
}

fn nosuid_mounts() -> Found {
    let suid_mounts: Vec<String> = crate::mountinfo::parse_mountinfo(
        &fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
    )
    .into_iter()
    .filter(|m| !m.options.iter().any(|o| o == "nosuid"))
    .map(|m| m.mountpoint)
    .collect();
    if suid_mounts.is_empty() {
        (Outcome::Blocked, "every mount is nosuid".into())
    } else {
        (
            Outcome::Exposed,
            format!("setuid honoured on {suid_mounts:?}"),
        )
    }
}

fn filter_mode() -> Found {
    match status_field("Seccomp").as_deref() {
        Some("2") => (
            Outcome::Blocked,
            format!(
                "Seccomp: 2, {} filter(s)",
                status_field("Seccomp_filters").unwrap_or_default()
            ),
        ),
        Some(v) => (Outcome::Exposed, format!("Seccomp: {v}")),
        None => (Outcome::NotApplicable, "kernel without seccomp".into()),
    }
}

fn raw_socket(domain: libc::c_int, proto: libc::c_int) -> Found {
    let r = sys(
        libc::SYS_socket,
        [
            domain as libc::c_long,
            libc::SOCK_RAW as libc::c_long,
            proto as libc::c_long,
            0,
            0,
            0,
        ],
    );
    if let Ok(fd) = r {
        // SAFETY: fd was just returned to us.
        unsafe { libc::close(fd as i32) };
    }
    reachable(r)
}

fn block_devices() -> Found {
    let blocks: Vec<String> = fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_type()
                .map(|t| std::os::unix::fs::FileTypeExt::is_block_device(&t))
                .unwrap_or(false)
        })
        .map(|e| e.path().display().to_string())
        .collect();
    if blocks.is_empty() {
        (Outcome::Blocked, "none in /dev".into())
    } else {
        (Outcome::Exposed, format!("{blocks:?}"))
    }
}

fn engine_sockets() -> Found {
    let sockets: Vec<&str> = [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/run/podman/podman.sock",
        "/run/crio/crio.sock",
    ]
    .into_iter()
    .filter(|p| std::path::Path::new(p).exists())
    .collect();
    if sockets.is_empty() {
        (Outcome::Blocked, "none present".into())
    } else {
        (Outcome::Exposed, format!("{sockets:?}"))
    }
}

fn mknod() -> Found {
    let p = "/tmp/.stockade-probe-mknod";
    let mk = std::ffi::CString::new(p).unwrap();
    // SAFETY: valid C string; a char device node in the container's own /tmp, removed at once.
    let r = unsafe { libc::mknod(mk.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if r == 0 {
        let _ = fs::remove_file(p);
    }
    if r == 0 {
        (Outcome::Exposed, "created a device node".into())
    } else if e == libc::EPERM || e == libc::EACCES {
        (Outcome::Blocked, errno_name(e))
    } else {
        (Outcome::NotApplicable, errno_name(e))
    }
}

fn routes() -> Found {
    let routes = fs::read_to_string("/proc/net/route")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .count();
    (
        if routes == 0 {
            Outcome::Blocked
        } else {
            Outcome::Exposed
        },
        format!("{routes} IPv4 routes"),
    )
}

/// Table output grouped by section, with a score per section.
pub fn table(checks: &[Check], colour: bool) -> String {
    let mut s = String::new();
    let mut sections: Vec<&str> = vec![];
    for c in checks {
        if !sections.contains(&c.section) {
            sections.push(c.section);
        }
    }
    for sec in sections {
        let in_sec: Vec<&Check> = checks.iter().filter(|c| c.section == sec).collect();
        let blocked = in_sec
            .iter()
            .filter(|c| c.outcome == Outcome::Blocked)
            .count();
        let exposed = in_sec
            .iter()
            .filter(|c| c.outcome == Outcome::Exposed)
            .count();
        s.push_str(&format!("{sec}: {blocked}/{} blocked\n", blocked + exposed));
        for c in in_sec {
            let (label, code) = match c.outcome {
                Outcome::Blocked => ("blocked", "32"),
                Outcome::Exposed => ("EXPOSED", "31"),
                Outcome::NotApplicable => ("n/a", "33"),
            };
            let label = if colour {
                format!("\x1b[{code}m{label:8}\x1b[0m")
            } else {
                format!("{label:8}")
            };
            s.push_str(&format!("  {label} {:32} {}\n", c.name, c.evidence));
        }
    }
    s
}

/// `probe --stress`: resource exhaustion, bounded. Each test stops at its bound or at the first
/// limit it meets, then gives back everything it took (children killed, memory freed, files
/// closed and removed). Blocked means a limit stopped it before the bound; exposed means the bound
/// was reached with no limit in sight.
pub fn run_stress() -> Vec<Check> {
    let hw = "hardware (stress)";
    vec![
        stress_fork(hw),
        stress_memory(hw),
        stress_fds(hw),
        stress_fill(hw, "/tmp"),
        stress_fill(hw, "/dev/shm"),
    ]
}

/// Take one more unit with `step` until `bound` are held or a step fails: what was taken, and
/// the failure that stopped it (None: the bound was reached first).
fn exhaust<T>(
    bound: usize,
    mut step: impl FnMut() -> std::io::Result<T>,
) -> (Vec<T>, Option<std::io::Error>) {
    let mut taken = vec![];
    while taken.len() < bound {
        match step() {
            Ok(t) => taken.push(t),
            Err(e) => return (taken, Some(e)),
        }
    }
    (taken, None)
}

/// Blocked when a limit stopped the exhaustion before its bound, exposed when it got there.
fn limit_met(
    sec: &'static str,
    name: &str,
    verb: &str,
    n: usize,
    unit: &str,
    bound: usize,
    stopped: Option<std::io::Error>,
) -> Check {
    match stopped {
        Some(e) => check(
            sec,
            name,
            Outcome::Blocked,
            format!("{verb} failed after {n} {unit}: {e}"),
        ),
        None => check(
            sec,
            name,
            Outcome::Exposed,
            format!("{n} {unit} taken, no limit met (bound {bound} {unit})"),
        ),
    }
}

const FORK_BOUND: usize = 4096;

fn stress_fork(sec: &'static str) -> Check {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::waitpid;
    use nix::unistd::Pid;
    let (kids, stopped) = exhaust(FORK_BOUND, || {
        crate::sys::fork_exit(|| {
            // SAFETY: pause has no preconditions; the parent kills us.
            unsafe { libc::pause() };
            0
        })
    });
    for &k in &kids {
        let _ = kill(Pid::from_raw(k), Signal::SIGKILL);
    }
    for &k in &kids {
        let _ = waitpid(Pid::from_raw(k), None);
    }
    limit_met(
        sec,
        "fork bomb",
        "fork",
        kids.len(),
        "processes",
        FORK_BOUND,
        stopped,
    )
}

fn stress_memory(sec: &'static str) -> Check {
    use nix::sys::wait::{waitpid, WaitStatus};
    // Bound: 4 GiB, or half of what the host has available, whichever is smaller.
    let avail_kib: u64 = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    let bound_mib = (4096).min(avail_kib / 1024 / 2);
    const CHUNK: usize = 16 << 20;
    let child = crate::sys::fork_exit(|| {
        let mut held: Vec<Vec<u8>> = vec![];
        for _ in 0..bound_mib / 16 {
            held.push(vec![1u8; CHUNK]); // touches every page
        }
        std::hint::black_box(&held);
        0
    });
    let pid = match child {
        Ok(p) => p,
        Err(e) => {
            return check(
                sec,
                "memory exhaustion",
                Outcome::NotApplicable,
                format!("fork: {e}"),
            )
        }
    };
    match waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(WaitStatus::Signaled(_, sig, _)) => check(
            sec,
            "memory exhaustion",
            Outcome::Blocked,
            format!("killed by {sig:?} before {bound_mib} MiB (the memory limit's OOM kill)"),
        ),
        Ok(WaitStatus::Exited(_, 0)) => check(
            sec,
            "memory exhaustion",
            Outcome::Exposed,
            format!("{bound_mib} MiB allocated and touched, no limit met"),
        ),
        other => check(
            sec,
            "memory exhaustion",
            Outcome::Blocked,
            format!("allocation failed before {bound_mib} MiB: {other:?}"),
        ),
    }
}

const FD_BOUND: usize = 1 << 16;

fn stress_fds(sec: &'static str) -> Check {
    let (fds, stopped) = exhaust(FD_BOUND, || fs::File::open("/dev/null"));
    let n = fds.len();
    drop(fds);
    limit_met(
        sec,
        "descriptor exhaustion",
        "open",
        n,
        "descriptors",
        FD_BOUND,
        stopped,
    )
}

const FILL_BOUND_MIB: usize = 1024;

fn stress_fill(sec: &'static str, dir: &str) -> Check {
    use std::io::Write;
    let name = format!("{dir} fill");
    let path = format!("{dir}/.stockade-probe-fill-{}", std::process::id());
    let mut f = match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) => return check(sec, &name, Outcome::NotApplicable, format!("{path}: {e}")),
    };
    let chunk = vec![0x5au8; 1 << 20];
    let (written, stopped) = exhaust(FILL_BOUND_MIB, || f.write_all(&chunk));
    drop(f);
    let _ = fs::remove_file(&path);
    limit_met(
        sec,
        &name,
        "write",
        written.len(),
        "MiB",
        FILL_BOUND_MIB,
        stopped,
    )
}

/// Landlock: the kernel's ABI, and whether this process is in a domain. Nothing reports a
/// domain directly; a filesystem ruleset that does not list `/` denies opening it although its
/// mode allows it (EACCES), which is what is looked for. A domain that handles only ports or
/// scopes is not seen: then the check says "not detected", not "none".
fn landlock() -> Found {
    let Some(abi) = crate::landlock::abi() else {
        return (Outcome::NotApplicable, "the kernel has no Landlock".into());
    };
    match fs::read_dir("/") {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => (
            Outcome::Blocked,
            format!("enforced (ABI {abi}): opening / is denied although its mode allows it"),
        ),
        _ => (
            Outcome::NotApplicable,
            format!("not detected (ABI {abi} available: `sandbox --landlock`, or the org.stockade.landlock annotation)"),
        ),
    }
}
