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
fn reachable(section: &'static str, name: &str, r: Result<libc::c_long, i32>) -> Check {
    match r {
        Err(e) if e == libc::EPERM || e == libc::EACCES => {
            check(section, name, Outcome::Blocked, errno_name(e))
        }
        Err(e) if e == libc::ENOSYS => check(section, name, Outcome::NotApplicable, errno_name(e)),
        Err(e) => check(
            section,
            name,
            Outcome::Exposed,
            format!("reached the kernel: {}", errno_name(e)),
        ),
        Ok(v) => check(section, name, Outcome::Exposed, format!("returned {v}")),
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

pub fn run_all() -> Vec<Check> {
    let mut out = vec![];
    // --- seed §1: namespaces
    let ns = "namespaces";
    match fs::read_to_string("/proc/self/uid_map") {
        Ok(m) if m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"] => {
            out.push(check(
                ns,
                "user namespace",
                Outcome::Exposed,
                "uid_map is the identity: root here is root on the host",
            ))
        }
        Ok(m) => out.push(check(
            ns,
            "user namespace",
            Outcome::Blocked,
            format!(
                "uid_map {}",
                m.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        )),
        Err(e) => out.push(check(
            ns,
            "user namespace",
            Outcome::NotApplicable,
            e.to_string(),
        )),
    }
    let ifaces: Vec<String> = fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    let others: Vec<&String> = ifaces.iter().filter(|i| *i != "lo").collect();
    out.push(check(
        ns,
        "network namespace",
        if others.is_empty() {
            Outcome::Blocked
        } else {
            Outcome::Exposed
        },
        format!("interfaces: {}", ifaces.join(", ")),
    ));
    let init = fs::read_to_string("/proc/1/cmdline")
        .unwrap_or_default()
        .replace('\0', " ");
    let host_init = ["systemd", "/sbin/init", "/process_api", "init "]
        .iter()
        .any(|h| init.starts_with(h));
    out.push(check(
        ns,
        "pid namespace",
        if host_init {
            Outcome::Exposed
        } else {
            Outcome::Blocked
        },
        format!("pid 1 is {:?}", init.trim()),
    ));

    // --- seed §2: what namespaces do not cover
    let res = "not namespaced";
    out.push(reachable(
        res,
        "kernel keyring (keyctl)",
        sys(libc::SYS_keyctl, [0, -3, 0, 0, 0, 0]),
    ));
    for f in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/kallsyms",
        "/proc/sched_debug",
    ] {
        match fs::read(f) {
            Ok(b) if b.is_empty() => {
                out.push(check(res, f, Outcome::Blocked, "reads empty (masked)"))
            }
            Ok(b) => out.push(check(
                res,
                f,
                Outcome::Exposed,
                format!("{} bytes readable", b.len()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(check(res, f, Outcome::NotApplicable, "absent"))
            }
            Err(e) => out.push(check(res, f, Outcome::Blocked, e.to_string())),
        }
    }
    // open for writing, write nothing
    match fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/kernel/hostname")
    {
        Ok(_) => out.push(check(
            res,
            "/proc/sys writable",
            Outcome::Exposed,
            "opened /proc/sys/kernel/hostname for writing",
        )),
        Err(e) => out.push(check(
            res,
            "/proc/sys writable",
            Outcome::Blocked,
            e.to_string(),
        )),
    }
    match fs::File::open("/dev/kmsg") {
        Ok(_) => out.push(check(
            res,
            "kernel log (/dev/kmsg)",
            Outcome::Exposed,
            "readable",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(check(
            res,
            "kernel log (/dev/kmsg)",
            Outcome::Blocked,
            "absent",
        )),
        Err(e) => out.push(check(
            res,
            "kernel log (/dev/kmsg)",
            Outcome::Blocked,
            e.to_string(),
        )),
    }
    out.push(reachable(
        res,
        "kernel log (syslog)",
        sys(libc::SYS_syslog, [10, 0, 0, 0, 0, 0]),
    ));
    // an invalid clock id: EINVAL means the call got past seccomp; setting needs CAP_SYS_TIME too
    let caps_eff = crate::capabilities::status_mask(&own_status(), "CapEff");
    let has = |name: &str| {
        crate::capabilities::decode_mask(caps_eff)
            .iter()
            .any(|c| c == name)
    };
    // Setting the clock takes CAP_SYS_TIME in the host's user namespace: without it (or inside a
    // user namespace) it cannot happen; with it, whether seccomp lets the call through decides.
    let own_userns = fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"]);
    out.push(if !has("CAP_SYS_TIME") || own_userns {
        let why = if own_userns {
            "in a user namespace: CAP_SYS_TIME cannot reach the host clock"
        } else {
            "no CAP_SYS_TIME"
        };
        check(res, "system time", Outcome::Blocked, why)
    } else {
        reachable(
            res,
            "system time",
            sys(libc::SYS_clock_settime, [-1, 0, 0, 0, 0, 0]),
        )
    });
    out.push(reachable(
        res,
        "kernel modules (init_module)",
        sys(libc::SYS_init_module, [0, 0, 0, 0, 0, 0]),
    ));
    let limit = |paths: &[&str]| {
        paths.iter().find_map(|p| {
            fs::read_to_string(p)
                .ok()
                .map(|v| (p.to_string(), v.trim().to_string()))
        })
    };
    for (name, files) in [
        (
            "memory limit",
            &[
                "/sys/fs/cgroup/memory.max",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            ][..],
        ),
        (
            "pids limit",
            &["/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"][..],
        ),
        (
            "cpu limit",
            &[
                "/sys/fs/cgroup/cpu.max",
                "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            ][..],
        ),
    ] {
        out.push(match limit(files) {
            Some((p, v)) if v.starts_with("max") || v == "-1" || v == "9223372036854771712" => {
                check(res, name, Outcome::Exposed, format!("{p} = {v}"))
            }
            Some((p, v)) => check(res, name, Outcome::Blocked, format!("{p} = {v}")),
            None => check(
                res,
                name,
                Outcome::NotApplicable,
                "no cgroup filesystem visible",
            ),
        });
    }

    // --- seed §3: capabilities and setuid
    let cap = "capabilities";
    for (field, label) in [
        ("CapEff", "effective"),
        ("CapBnd", "bounding"),
        ("CapAmb", "ambient"),
    ] {
        let mask = crate::capabilities::status_mask(&own_status(), field);
        let names = crate::capabilities::decode_mask(mask);
        let bad: Vec<&String> = names
            .iter()
            .filter(|n| crate::capabilities::DANGEROUS.contains(&n.as_str()))
            .collect();
        out.push(if bad.is_empty() {
            check(
                cap,
                &format!("{label} set"),
                Outcome::Blocked,
                format!("{} capabilities, none dangerous", names.len()),
            )
        } else {
            check(
                cap,
                &format!("{label} set"),
                Outcome::Exposed,
                format!("{bad:?}"),
            )
        });
    }
    let set = "setuid";
    out.push(match status_field("NoNewPrivs").as_deref() {
        Some("1") => check(set, "no_new_privs", Outcome::Blocked, "NoNewPrivs: 1"),
        Some(v) => check(
            set,
            "no_new_privs",
            Outcome::Exposed,
            format!("NoNewPrivs: {v}"),
        ),
        None => check(set, "no_new_privs", Outcome::NotApplicable, "not reported"),
    });
    out.push(landlock());
    let suid_mounts: Vec<String> = crate::mountinfo::parse_mountinfo(
        &fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
    )
    .into_iter()
    .filter(|m| !m.options.iter().any(|o| o == "nosuid"))
    .map(|m| m.mountpoint)
    .collect();
    out.push(if suid_mounts.is_empty() {
        check(
            set,
            "nosuid mounts",
            Outcome::Blocked,
            "every mount is nosuid",
        )
    } else {
        check(
            set,
            "nosuid mounts",
            Outcome::Exposed,
            format!("setuid honoured on {suid_mounts:?}"),
        )
    });

    // --- seed §4: seccomp
    let sc = "seccomp";
    out.push(match status_field("Seccomp").as_deref() {
        Some("2") => check(
            sc,
            "filter mode",
            Outcome::Blocked,
            format!(
                "Seccomp: 2, {} filter(s)",
                status_field("Seccomp_filters").unwrap_or_default()
            ),
        ),
        Some(v) => check(sc, "filter mode", Outcome::Exposed, format!("Seccomp: {v}")),
        None => check(
            sc,
            "filter mode",
            Outcome::NotApplicable,
            "kernel without seccomp",
        ),
    });
    out.push(reachable(
        sc,
        "perf_event_open",
        sys(libc::SYS_perf_event_open, [0, 0, -1, -1, 0, 0]),
    ));
    out.push(reachable(
        sc,
        "bpf",
        sys(libc::SYS_bpf, [-1, 0, 0, 0, 0, 0]),
    ));
    out.push(reachable(
        sc,
        "userfaultfd",
        sys(libc::SYS_userfaultfd, [-1, 0, 0, 0, 0, 0]),
    ));
    out.push(reachable(
        sc,
        "io_uring_setup",
        sys(libc::SYS_io_uring_setup, [0, 0, 0, 0, 0, 0]),
    ));
    out.push(reachable(
        sc,
        "kcmp",
        sys(libc::SYS_kcmp, [0, 0, -1, 0, 0, 0]),
    ));
    out.push(reachable(
        sc,
        "add_key",
        sys(libc::SYS_add_key, [0, 0, 0, 0, 0, 0]),
    ));
    out.push(reachable(
        sc,
        "mount",
        sys(libc::SYS_mount, [0, 0, 0, 0, 0, 0]),
    ));
    out.push(reachable(
        sc,
        "open_by_handle_at",
        sys(libc::SYS_open_by_handle_at, [-1, 0, 0, 0, 0, 0]),
    ));
    out.push(reachable(
        sc,
        "ptrace",
        sys(libc::SYS_ptrace, [-1, 0, 0, 0, 0, 0]),
    ));
    out.push(reachable(
        sc,
        "unshare (no-op)",
        sys(libc::SYS_unshare, [0, 0, 0, 0, 0, 0]),
    ));
    for (name, domain, proto) in [
        ("raw socket", libc::AF_INET, libc::IPPROTO_ICMP),
        ("packet socket", libc::AF_PACKET, 0),
    ] {
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
        out.push(reachable(sc, name, r));
    }

    // --- devices and mounts
    let dev = "devices and mounts";
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
    out.push(if blocks.is_empty() {
        check(dev, "host block devices", Outcome::Blocked, "none in /dev")
    } else {
        check(
            dev,
            "host block devices",
            Outcome::Exposed,
            format!("{blocks:?}"),
        )
    });
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
    out.push(if sockets.is_empty() {
        check(dev, "engine sockets", Outcome::Blocked, "none present")
    } else {
        check(
            dev,
            "engine sockets",
            Outcome::Exposed,
            format!("{sockets:?}"),
        )
    });
    let p = "/tmp/.stockade-probe-mknod";
    let mk = std::ffi::CString::new(p).unwrap();
    // SAFETY: valid C string; a char device node in the container's own /tmp, removed at once.
    let r = unsafe { libc::mknod(mk.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if r == 0 {
        let _ = fs::remove_file(p);
    }
    out.push(if r == 0 {
        check(dev, "mknod", Outcome::Exposed, "created a device node")
    } else if e == libc::EPERM || e == libc::EACCES {
        check(dev, "mknod", Outcome::Blocked, errno_name(e))
    } else {
        check(dev, "mknod", Outcome::NotApplicable, errno_name(e))
    });

    // --- network
    let routes = fs::read_to_string("/proc/net/route")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .count();
    out.push(check(
        "network",
        "routes",
        if routes == 0 {
            Outcome::Blocked
        } else {
            Outcome::Exposed
        },
        format!("{routes} IPv4 routes"),
    ));
    out
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
fn landlock() -> Check {
    let sec = "landlock";
    let Some(abi) = crate::landlock::abi() else {
        return check(
            sec,
            "landlock domain",
            Outcome::NotApplicable,
            "the kernel has no Landlock",
        );
    };
    match fs::read_dir("/") {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => check(
            sec,
            "landlock domain",
            Outcome::Blocked,
            format!("enforced (ABI {abi}): opening / is denied although its mode allows it"),
        ),
        _ => check(
            sec,
            "landlock domain",
            Outcome::NotApplicable,
            format!("not detected (ABI {abi} available: `sandbox --landlock`, or the org.stockade.landlock annotation)"),
        ),
    }
}
