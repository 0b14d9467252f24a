//! What each rule of `stockade audit` looks for in a posture: the table [`CHECKS`], one entry per
//! rule (the rule, which carries its id and section, and the function that looks), run in order by
//! [`super::evaluate`].

use super::*;

/// What one check found: the severity this time, the message and its evidence.
pub(super) struct Found {
    pub severity: Severity,
    pub message: String,
    pub evidence: Vec<String>,
}

fn found(severity: Severity, message: impl Into<String>, evidence: Vec<String>) -> Found {
    Found {
        severity,
        message: message.into(),
        evidence,
    }
}

/// What several checks ask of a posture, worked out once.
pub(super) struct Facts<'a> {
    pub p: &'a Posture,
    /// The container is privileged (with the evidence).
    pub privileged: Option<&'a Ev<bool>>,
    /// The process runs as uid 0 (with the evidence).
    pub root: Option<&'a Ev<bool>>,
    /// Where it says that every system call reaches the kernel (privileged, or no filter).
    pub seccomp_off: Option<String>,
}

impl<'a> Facts<'a> {
    pub fn of(p: &'a Posture) -> Facts<'a> {
        let privileged = p.privileged.as_ref().filter(|e| e.value);
        let seccomp_off = match (&p.seccomp, privileged) {
            (_, Some(e)) => Some(e.at.clone()),
            (
                Some(Ev {
                    value: Seccomp::Unconfined,
                    at,
                }),
                None,
            ) => Some(at.clone()),
            _ => None,
        };
        Facts {
            p,
            privileged,
            root: p.runs_as_root.as_ref().filter(|e| e.value),
            seccomp_off,
        }
    }
}

/// One rule and the function that looks for it (nothing found: an empty list).
pub(super) struct Check {
    pub rule: &'static Rule,
    pub find: fn(&Facts) -> Vec<Found>,
}

const fn check(rule: &'static Rule, find: fn(&Facts) -> Vec<Found>) -> Check {
    Check { rule, find }
}

/// Every rule's check, in the order their findings are made (then sorted by severity and id).
pub(super) static CHECKS: &[Check] = &[
    check(&PRIVILEGED, privileged),
    // --- namespaces
    check(&HOST_NET, host_net),
    check(&HOST_PID, host_pid),
    check(&HOST_IPC, host_ipc),
    check(&HOST_UTS, host_uts),
    check(&HOST_CGROUP, host_cgroup),
    check(&HOST_MOUNT, host_mount),
    check(&HOST_USER, host_user),
    // --- capabilities
    check(&CAPS_DANGEROUS, caps_dangerous),
    check(&CAPS_DEFAULT, caps_default),
    check(&TIME, time),
    check(&MODULES, modules),
    // --- what namespaces do not cover
    check(&SECCOMP_OFF, seccomp_off),
    check(&KEYRING, keyring),
    check(&PROC_MASK, proc_mask),
    check(&PROC_SYS, proc_sys),
    check(&MEMORY, memory),
    check(&CPU, cpu),
    check(&PIDS, pids),
    check(&CGROUP_PARENT, cgroup_parent),
    // --- setuid
    check(&NNP, nnp),
    check(&ROOT_USER, root_user),
    check(&NOSUID, nosuid),
    check(&LANDLOCK, landlock),
    // --- devices and mounts
    check(&READONLY_ROOT, readonly_root),
    check(&ENGINE_SOCKET, engine_socket),
    check(&SENSITIVE_DIR, sensitive_dir),
    check(&PROPAGATION, propagation),
    check(&HOST_DEVICE, host_device),
    check(&AMBIENT_UNRAISABLE, ambient_unraisable),
];

fn privileged(f: &Facts) -> Vec<Found> {
    let Some(e) = f.privileged else {
        return vec![];
    };
    vec![found(
        Severity::High,
        "privileged: every capability, every host device, no seccomp, /proc and /sys unmasked",
        vec![e.at.clone()],
    )]
}

/// The host's `ns` namespace is shared.
fn host_ns(f: &Facts, ns: &str, severity: Severity) -> Vec<Found> {
    let Some(at) = f.p.shares(ns) else {
        return vec![];
    };
    vec![found(
        severity,
        format!("shares the host's {ns} namespace"),
        vec![at.clone()],
    )]
}

fn host_net(f: &Facts) -> Vec<Found> {
    host_ns(f, "network", Severity::High)
}

fn host_pid(f: &Facts) -> Vec<Found> {
    host_ns(f, "pid", Severity::High)
}

fn host_ipc(f: &Facts) -> Vec<Found> {
    host_ns(f, "ipc", Severity::Medium)
}

fn host_uts(f: &Facts) -> Vec<Found> {
    host_ns(f, "uts", Severity::Medium)
}

fn host_cgroup(f: &Facts) -> Vec<Found> {
    host_ns(f, "cgroup", Severity::Low)
}

fn host_mount(f: &Facts) -> Vec<Found> {
    host_ns(f, "mount", Severity::High)
}

/// Root without a user namespace is host root; a non-root user is less exposed.
fn host_user(f: &Facts) -> Vec<Found> {
    let Some(at) = f.p.shares("user") else {
        return vec![];
    };
    let (sev, msg, mut evd) = match f.root {
        Some(r) => (
            Severity::High,
            "no user namespace and the process runs as uid 0: container root is host root",
            vec![r.at.clone()],
        ),
        None => (
            Severity::Medium,
            "no user namespace: container uids are host uids",
            vec![],
        ),
    };
    evd.insert(0, at.clone());
    vec![found(sev, msg, evd)]
}

/// The capabilities of a posture that is not privileged (which has them all, said once).
fn unprivileged_caps<'a>(f: &Facts<'a>) -> Option<&'a Ev<BTreeSet<String>>> {
    match (&f.p.caps, f.privileged) {
        (Some(caps), None) => Some(caps),
        _ => None,
    }
}

fn caps_dangerous(f: &Facts) -> Vec<Found> {
    let Some(caps) = unprivileged_caps(f) else {
        return vec![];
    };
    let dangerous: Vec<&String> = caps
        .value
        .iter()
        .filter(|c| DANGEROUS_CAPS.contains(&c.as_str()))
        .collect();
    if dangerous.is_empty() {
        return vec![];
    }
    vec![found(
        Severity::High,
        format!("grants {}", join(&dangerous)),
        vec![caps.at.clone()],
    )]
}

fn caps_default(f: &Facts) -> Vec<Found> {
    let Some(caps) = unprivileged_caps(f) else {
        return vec![];
    };
    let rest: Vec<&String> = caps
        .value
        .iter()
        .filter(|c| !DANGEROUS_CAPS.contains(&c.as_str()))
        .collect();
    if rest.is_empty() {
        return vec![];
    }
    let beyond_default = rest
        .iter()
        .any(|c| !ENGINE_DEFAULT_CAPS.contains(&c.as_str()));
    let sev = if beyond_default || rest.iter().any(|c| *c == "CAP_NET_RAW") {
        Severity::Medium
    } else {
        Severity::Low
    };
    vec![found(
        sev,
        format!(
            "keeps {} ({} capabilities; the seed: drop all, add back only what is needed)",
            join(&rest),
            rest.len()
        ),
        vec![caps.at.clone()],
    )]
}

/// A capability the process has, or has by being privileged.
fn has_cap(f: &Facts, cap: &str, message: &str) -> Vec<Found> {
    if !(f.p.has_cap(cap) || f.privileged.is_some()) {
        return vec![];
    }
    let evidence = match (f.privileged, &f.p.caps) {
        (Some(e), _) => vec![e.at.clone()],
        (None, Some(c)) => vec![c.at.clone()],
        _ => vec![],
    };
    vec![found(Severity::High, message, evidence)]
}

fn time(f: &Facts) -> Vec<Found> {
    has_cap(f, "CAP_SYS_TIME", "can set the host's clock")
}

fn modules(f: &Facts) -> Vec<Found> {
    has_cap(
        f,
        "CAP_SYS_MODULE",
        "can load kernel modules into the host kernel",
    )
}

fn seccomp_off(f: &Facts) -> Vec<Found> {
    let Some(at) = &f.seccomp_off else {
        return vec![];
    };
    vec![found(
        Severity::High,
        "every system call reaches the kernel",
        vec![at.clone()],
    )]
}

fn keyring(f: &Facts) -> Vec<Found> {
    let keyctl_open = match &f.p.seccomp {
        _ if f.seccomp_off.is_some() => f.seccomp_off.clone(),
        Some(Ev {
            value: Seccomp::Filtered {
                blocks_keyctl: Some(false),
            },
            at,
        }) => Some(format!("{at} (keyctl allowed)")),
        _ => None,
    };
    let (Some(at), Some(userns)) = (keyctl_open, f.p.shares("user")) else {
        return vec![];
    };
    vec![found(
        Severity::Medium,
        "keyctl is reachable, and without a user namespace the container's uids share the host users' keyrings",
        vec![at, userns.clone()],
    )]
}

fn proc_mask(f: &Facts) -> Vec<Found> {
    match (&f.p.unmasked, f.privileged) {
        (Some(e), _) if !e.value.is_empty() => vec![found(
            Severity::Medium,
            format!("readable: {}", e.value.join(", ")),
            vec![e.at.clone()],
        )],
        (Some(_), _) => vec![],
        (None, Some(e)) => vec![found(
            Severity::Medium,
            "privileged containers get /proc and /sys unmasked",
            vec![e.at.clone()],
        )],
        (None, None) => vec![],
    }
}

fn proc_sys(f: &Facts) -> Vec<Found> {
    match (&f.p.proc_sys_writable, f.privileged) {
        (Some(e), _) if e.value => vec![found(
            Severity::High,
            "/proc/sys can be written",
            vec![e.at.clone()],
        )],
        (None, Some(e)) => vec![found(
            Severity::High,
            "privileged containers get /proc/sys writable",
            vec![e.at.clone()],
        )],
        _ => vec![],
    }
}

/// A limit the input says is not set.
fn unlimited<T>(limit: &Option<Ev<Option<T>>>, severity: Severity, message: &str) -> Vec<Found> {
    match limit {
        Some(Ev { value: None, at }) => vec![found(severity, message, vec![at.clone()])],
        _ => vec![],
    }
}

fn memory(f: &Facts) -> Vec<Found> {
    unlimited(
        &f.p.memory_limit,
        Severity::Medium,
        "one container can exhaust the host's memory",
    )
}

fn cpu(f: &Facts) -> Vec<Found> {
    unlimited(
        &f.p.cpu_limit,
        Severity::Low,
        "one container can take every CPU",
    )
}

fn pids(f: &Facts) -> Vec<Found> {
    unlimited(
        &f.p.pids_limit,
        Severity::Medium,
        "a fork bomb exhausts the host's process table",
    )
}

fn cgroup_parent(f: &Facts) -> Vec<Found> {
    let Some(e) = &f.p.cgroup_parent else {
        return vec![];
    };
    vec![found(
        Severity::Low,
        format!("cgroup parent {}", e.value),
        vec![e.at.clone()],
    )]
}

fn nnp(f: &Facts) -> Vec<Found> {
    let Some(e) = f.p.no_new_privs.as_ref().filter(|e| !e.value) else {
        return vec![];
    };
    let sev = if f.root.is_some() || f.p.caps.as_ref().is_some_and(|c| !c.value.is_empty()) {
        Severity::Medium
    } else {
        Severity::Low
    };
    vec![found(
        sev,
        "no_new_privs is off: a setuid binary or file capability raises privileges",
        vec![e.at.clone()],
    )]
}

/// Root in a user namespace: the namespace is what protects the host.
fn root_user(f: &Facts) -> Vec<Found> {
    match f.root {
        Some(r) if f.p.shares("user").is_none() => vec![found(
            Severity::Low,
            "uid 0 inside its user namespace",
            vec![r.at.clone()],
        )],
        _ => vec![],
    }
}

fn nosuid(f: &Facts) -> Vec<Found> {
    match &f.p.suid_mounts {
        Some(e) if !e.value.is_empty() => vec![found(
            Severity::Low,
            format!("setuid honoured on {}", e.value.join(", ")),
            vec![e.at.clone()],
        )],
        _ => vec![],
    }
}

fn landlock(f: &Facts) -> Vec<Found> {
    let Some(e) = f.p.landlock.as_ref().filter(|e| !e.value) else {
        return vec![];
    };
    vec![found(
        Severity::Low,
        "no Landlock ruleset: the process may open any path its permissions allow",
        vec![e.at.clone()],
    )]
}

fn readonly_root(f: &Facts) -> Vec<Found> {
    let Some(e) = f.p.readonly_root.as_ref().filter(|e| !e.value) else {
        return vec![];
    };
    vec![found(
        Severity::Low,
        "root filesystem is writable",
        vec![e.at.clone()],
    )]
}

fn engine_socket(f: &Facts) -> Vec<Found> {
    (f.p.host_mounts.iter())
        .filter(|m| is_engine_socket(&m.source))
        .map(|m| {
            found(
                Severity::High,
                format!(
                    "{} at {}: control of the engine is control of the host",
                    m.source, m.destination
                ),
                vec![m.at.clone()],
            )
        })
        .collect()
}

/// A sensitive host directory (an engine's socket is said by [`engine_socket`] instead).
fn sensitive_dir(f: &Facts) -> Vec<Found> {
    (f.p.host_mounts.iter())
        .filter(|m| !is_engine_socket(&m.source) && is_sensitive_dir(&m.source))
        .map(|m| {
            let sev = if m.writable {
                Severity::High
            } else {
                Severity::Medium
            };
            let rw = if m.writable {
                "read-write"
            } else {
                "read-only"
            };
            found(
                sev,
                format!("host {} at {} ({rw})", m.source, m.destination),
                vec![m.at.clone()],
            )
        })
        .collect()
}

/// Host mounts that propagate, then the propagation of the root or of other mounts.
fn propagation(f: &Facts) -> Vec<Found> {
    let mounts = (f.p.host_mounts.iter())
        .filter(|m| m.shared_propagation)
        .map(|m| {
            found(
                Severity::Medium,
                format!("{} propagates mounts to and from the host", m.destination),
                vec![m.at.clone()],
            )
        });
    let others = f.p.shared_propagation.iter().map(|at| {
        found(
            Severity::Medium,
            "mounts propagate to and from the host",
            vec![at.clone()],
        )
    });
    mounts.chain(others).collect()
}

fn host_device(f: &Facts) -> Vec<Found> {
    if f.p.devices.is_empty() {
        return vec![];
    }
    vec![found(
        Severity::High,
        (f.p.devices.iter())
            .map(|d| d.value.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        f.p.devices.iter().map(|d| d.at.clone()).collect(),
    )]
}

fn ambient_unraisable(f: &Facts) -> Vec<Found> {
    let Some(a) = &f.p.ambient_unraisable else {
        return vec![];
    };
    vec![found(
        Severity::Low,
        format!(
            "{} listed as ambient but not also permitted and inheritable: the process will not have {} (runc and stockade warn and go on)",
            a.value.join(", "),
            if a.value.len() == 1 { "it" } else { "them" }
        ),
        vec![a.at.clone()],
    )]
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}
