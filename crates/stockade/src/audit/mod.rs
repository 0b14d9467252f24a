//! `stockade audit`: check a container's configuration from outside, against the seed and the
//! CIS Docker Benchmark (§5, "Container Runtime").
//!
//! Every input — an OCI `config.json`, `docker inspect` output, a Kubernetes manifest, or a live
//! process read from the host's `/proc` — is first turned into one [`Posture`]: the facts that
//! matter for isolation, each with the evidence it came from (a JSON path or a `/proc` field).
//! One set of rules ([`evaluate`]) then turns a posture into findings, so the three static
//! formats and the live view cannot drift apart. Each finding names its seed section, its CIS id
//! where one exists, a severity, the evidence, and the fix for Docker, Kubernetes and OCI.

pub mod engine_policy;
pub mod inputs;
pub mod live;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}: {1}")]
    Input(String, String),
    #[error("pid {0}: {1}")]
    Pid(i32, String),
}

pub type Result<T> = std::result::Result<T, AuditError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
    fn sarif_level(self) -> &'static str {
        match self {
            Severity::Low => "note",
            Severity::Medium => "warning",
            Severity::High => "error",
        }
    }
}

/// A value with the place it was read from.
#[derive(Debug, Clone)]
pub struct Ev<T> {
    pub value: T,
    pub at: String,
}

pub fn ev<T>(value: T, at: impl Into<String>) -> Ev<T> {
    Ev {
        value,
        at: at.into(),
    }
}

/// The namespaces a posture can share with the host.
pub const NAMESPACES: [&str; 8] = [
    "pid", "network", "ipc", "uts", "user", "cgroup", "mount", "time",
];

#[derive(Debug, Clone)]
pub enum Seccomp {
    Unconfined,
    /// A filter; `blocks_keyctl` when it is known whether keyctl gets through.
    Filtered {
        blocks_keyctl: Option<bool>,
    },
}

/// A host path made visible inside the container.
#[derive(Debug, Clone)]
pub struct HostMount {
    pub source: String,
    pub destination: String,
    pub writable: bool,
    pub shared_propagation: bool,
    pub at: String,
}

/// What one container (or process) looks like, as far as isolation goes. `None`: the input does
/// not say (the rules then stay silent rather than guess).
#[derive(Debug, Clone, Default)]
pub struct Posture {
    /// "config.json", "docker container /web", "Deployment/web container app", "pid 1234".
    pub name: String,
    /// The file it came from (for SARIF locations).
    pub file: Option<String>,
    pub privileged: Option<Ev<bool>>,
    /// Capabilities the process has or can reach (names like `CAP_SYS_ADMIN`).
    pub caps: Option<Ev<BTreeSet<String>>>,
    /// Namespaces shared with the host, each with its evidence.
    pub shared_ns: Vec<(&'static str, String)>,
    /// The process runs as uid 0 (inside its user namespace, if any).
    pub runs_as_root: Option<Ev<bool>>,
    pub memory_limit: Option<Ev<Option<u64>>>,
    pub cpu_limit: Option<Ev<Option<String>>>,
    pub pids_limit: Option<Ev<Option<i64>>>,
    pub readonly_root: Option<Ev<bool>>,
    pub seccomp: Option<Ev<Seccomp>>,
    pub no_new_privs: Option<Ev<bool>>,
    pub host_mounts: Vec<HostMount>,
    /// Propagation of the root or of mounts set to shared.
    pub shared_propagation: Vec<String>,
    /// Host devices exposed (paths, with evidence).
    pub devices: Vec<Ev<String>>,
    /// Sensitive /proc and /sys files left unmasked.
    pub unmasked: Option<Ev<Vec<String>>>,
    pub proc_sys_writable: Option<Ev<bool>>,
    /// Mounts (other than /proc, /sys) without nosuid.
    pub suid_mounts: Option<Ev<Vec<String>>>,
    pub cgroup_parent: Option<Ev<String>>,
    /// A Landlock ruleset is applied (only an OCI config says: `org.stockade.landlock`).
    pub landlock: Option<Ev<bool>>,
    /// Set when a live read was cut short (the process exited).
    pub partial: Option<String>,
    /// Ambient capabilities not also permitted and inheritable: the kernel will not raise them.
    pub ambient_unraisable: Option<Ev<Vec<String>>>,
    /// The engine's runtime (`docker inspect`'s `HostConfig.Runtime`), with its path.
    pub runtime: Option<Ev<String>>,
    /// How the posture was read (e.g. raised as stockade's policy raises it), shown with it.
    pub notes: Vec<String>,
}

impl Posture {
    pub fn new(name: impl Into<String>, file: Option<&str>) -> Posture {
        Posture {
            name: name.into(),
            file: file.map(String::from),
            ..Default::default()
        }
    }
    fn shares(&self, ns: &str) -> Option<&String> {
        self.shared_ns
            .iter()
            .find(|(n, _)| *n == ns)
            .map(|(_, e)| e)
    }
    fn has_cap(&self, c: &str) -> bool {
        self.caps.as_ref().is_some_and(|e| e.value.contains(c))
    }
}

/// How to fix a finding, per front end.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    pub docker: &'static str,
    pub kubernetes: &'static str,
    pub oci: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// stockade's rule id (stable; used as the SARIF rule id).
    pub id: &'static str,
    /// CIS Docker Benchmark recommendation, where one exists.
    pub cis: Option<&'static str>,
    /// The seed's section.
    pub section: &'static str,
    pub title: &'static str,
    pub fix: Fix,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(flatten)]
    pub rule: &'static Rule,
    pub severity: Severity,
    pub message: String,
    pub evidence: Vec<String>,
}

mod output;
mod rules;
pub use output::*;
pub use rules::*;

/// Capabilities that defeat the isolation on their own.
pub const DANGEROUS_CAPS: &[&str] = crate::capabilities::DANGEROUS;

/// Docker's (and containerd's, CRI-O's) default capability set.
pub const ENGINE_DEFAULT_CAPS: &[&str] = stockade_seccomp::DOCKER_DEFAULT_CAPS;

/// Host directories CIS 5.6 names (and their relatives that matter as much).
pub const SENSITIVE_DIRS: &[&str] = &[
    "/",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib64",
    "/usr",
    "/bin",
    "/sbin",
    "/proc",
    "/sys",
    "/root",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/kubelet",
    "/run",
    "/var/run",
];

/// Socket names of container engines (CIS 5.32 and its relatives).
pub const ENGINE_SOCKETS: &[&str] = &[
    "docker.sock",
    "containerd.sock",
    "crio.sock",
    "podman.sock",
    "dockershim.sock",
];

/// /proc and /sys files that leak host information (a superset of Docker's masked paths).
pub const MUST_MASK: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/sys/firmware",
];

pub fn is_sensitive_dir(p: &str) -> bool {
    let p = p.trim_end_matches('/');
    let p = if p.is_empty() { "/" } else { p };
    SENSITIVE_DIRS.contains(&p)
}

pub fn is_engine_socket(p: &str) -> bool {
    ENGINE_SOCKETS.iter().any(|s| p.ends_with(&format!("/{s}")))
}

pub fn all_caps() -> BTreeSet<String> {
    caps::all().into_iter().map(|c| c.to_string()).collect()
}

fn finding(
    rule: &'static Rule,
    severity: Severity,
    message: String,
    evidence: Vec<String>,
) -> Finding {
    Finding {
        rule,
        severity,
        message,
        evidence,
    }
}

/// The rules: one posture in, its findings out (most severe first).
pub fn evaluate(p: &Posture) -> Vec<Finding> {
    let mut out = vec![];
    let privileged = p.privileged.as_ref().filter(|e| e.value);
    if let Some(e) = privileged {
        out.push(finding(
            &PRIVILEGED,
            Severity::High,
            "privileged: every capability, every host device, no seccomp, /proc and /sys unmasked"
                .into(),
            vec![e.at.clone()],
        ));
    }

    // --- namespaces
    for (ns, rule, sev) in [
        ("network", &HOST_NET, Severity::High),
        ("pid", &HOST_PID, Severity::High),
        ("ipc", &HOST_IPC, Severity::Medium),
        ("uts", &HOST_UTS, Severity::Medium),
        ("cgroup", &HOST_CGROUP, Severity::Low),
        ("mount", &HOST_MOUNT, Severity::High),
    ] {
        if let Some(at) = p.shares(ns) {
            out.push(finding(
                rule,
                sev,
                format!("shares the host's {ns} namespace"),
                vec![at.clone()],
            ));
        }
    }
    let root = p.runs_as_root.as_ref().filter(|e| e.value);
    if let Some(at) = p.shares("user") {
        // root without a user namespace is host root; a non-root user is less exposed.
        let (sev, msg, mut evd) = match root {
            Some(r) => (
                Severity::High,
                "no user namespace and the process runs as uid 0: container root is host root"
                    .to_string(),
                vec![r.at.clone()],
            ),
            None => (
                Severity::Medium,
                "no user namespace: container uids are host uids".to_string(),
                vec![],
            ),
        };
        evd.insert(0, at.clone());
        out.push(finding(&HOST_USER, sev, msg, evd));
    }

    // --- capabilities
    if let (Some(caps), None) = (&p.caps, privileged) {
        let dangerous: Vec<&String> = caps
            .value
            .iter()
            .filter(|c| DANGEROUS_CAPS.contains(&c.as_str()))
            .collect();
        if !dangerous.is_empty() {
            out.push(finding(
                &CAPS_DANGEROUS,
                Severity::High,
                format!("grants {}", join(&dangerous)),
                vec![caps.at.clone()],
            ));
        }
        let rest: Vec<&String> = caps
            .value
            .iter()
            .filter(|c| !DANGEROUS_CAPS.contains(&c.as_str()))
            .collect();
        if !rest.is_empty() {
            let beyond_default = rest
                .iter()
                .any(|c| !ENGINE_DEFAULT_CAPS.contains(&c.as_str()));
            let sev = if beyond_default || rest.iter().any(|c| *c == "CAP_NET_RAW") {
                Severity::Medium
            } else {
                Severity::Low
            };
            out.push(finding(
                &CAPS_DEFAULT,
                sev,
                format!(
                    "keeps {} ({} capabilities; the seed: drop all, add back only what is needed)",
                    join(&rest),
                    rest.len()
                ),
                vec![caps.at.clone()],
            ));
        }
    }
    if p.has_cap("CAP_SYS_TIME") || privileged.is_some() {
        out.push(finding(
            &TIME,
            Severity::High,
            "can set the host's clock".into(),
            cap_evidence(p, privileged),
        ));
    }
    if p.has_cap("CAP_SYS_MODULE") || privileged.is_some() {
        out.push(finding(
            &MODULES,
            Severity::High,
            "can load kernel modules into the host kernel".into(),
            cap_evidence(p, privileged),
        ));
    }

    // --- what namespaces do not cover
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
    if let Some(at) = &seccomp_off {
        out.push(finding(
            &SECCOMP_OFF,
            Severity::High,
            "every system call reaches the kernel".into(),
            vec![at.clone()],
        ));
    }
    let keyctl_open = match &p.seccomp {
        _ if seccomp_off.is_some() => seccomp_off.clone(),
        Some(Ev {
            value: Seccomp::Filtered {
                blocks_keyctl: Some(false),
            },
            at,
        }) => Some(format!("{at} (keyctl allowed)")),
        _ => None,
    };
    if let (Some(at), Some(userns)) = (keyctl_open, p.shares("user")) {
        out.push(finding(
            &KEYRING,
            Severity::Medium,
            "keyctl is reachable, and without a user namespace the container's uids share the host users' keyrings".into(),
            vec![at, userns.clone()],
        ));
    }
    if let Some(e) = &p.unmasked {
        if !e.value.is_empty() {
            out.push(finding(
                &PROC_MASK,
                Severity::Medium,
                format!("readable: {}", e.value.join(", ")),
                vec![e.at.clone()],
            ));
        }
    } else if let Some(e) = privileged {
        out.push(finding(
            &PROC_MASK,
            Severity::Medium,
            "privileged containers get /proc and /sys unmasked".into(),
            vec![e.at.clone()],
        ));
    }
    match (&p.proc_sys_writable, privileged) {
        (Some(e), _) if e.value => out.push(finding(
            &PROC_SYS,
            Severity::High,
            "/proc/sys can be written".into(),
            vec![e.at.clone()],
        )),
        (None, Some(e)) => out.push(finding(
            &PROC_SYS,
            Severity::High,
            "privileged containers get /proc/sys writable".into(),
            vec![e.at.clone()],
        )),
        _ => {}
    }
    if let Some(Ev { value: None, at }) = &p.memory_limit {
        out.push(finding(
            &MEMORY,
            Severity::Medium,
            "one container can exhaust the host's memory".into(),
            vec![at.clone()],
        ));
    }
    if let Some(Ev { value: None, at }) = &p.cpu_limit {
        out.push(finding(
            &CPU,
            Severity::Low,
            "one container can take every CPU".into(),
            vec![at.clone()],
        ));
    }
    if let Some(Ev { value: None, at }) = &p.pids_limit {
        out.push(finding(
            &PIDS,
            Severity::Medium,
            "a fork bomb exhausts the host's process table".into(),
            vec![at.clone()],
        ));
    }
    if let Some(e) = &p.cgroup_parent {
        out.push(finding(
            &CGROUP_PARENT,
            Severity::Low,
            format!("cgroup parent {}", e.value),
            vec![e.at.clone()],
        ));
    }

    // --- setuid
    if let Some(e) = p.no_new_privs.as_ref().filter(|e| !e.value) {
        let sev = if root.is_some() || p.caps.as_ref().is_some_and(|c| !c.value.is_empty()) {
            Severity::Medium
        } else {
            Severity::Low
        };
        out.push(finding(
            &NNP,
            sev,
            "no_new_privs is off: a setuid binary or file capability raises privileges".into(),
            vec![e.at.clone()],
        ));
    }
    if let Some(r) = root {
        if p.shares("user").is_none() {
            // root in a user namespace: the namespace is what protects the host.
            out.push(finding(
                &ROOT_USER,
                Severity::Low,
                "uid 0 inside its user namespace".into(),
                vec![r.at.clone()],
            ));
        }
    }
    if let Some(e) = &p.suid_mounts {
        if !e.value.is_empty() {
            out.push(finding(
                &NOSUID,
                Severity::Low,
                format!("setuid honoured on {}", e.value.join(", ")),
                vec![e.at.clone()],
            ));
        }
    }

    if let Some(e) = p.landlock.as_ref().filter(|e| !e.value) {
        out.push(finding(
            &LANDLOCK,
            Severity::Low,
            "no Landlock ruleset: the process may open any path its permissions allow".into(),
            vec![e.at.clone()],
        ));
    }

    // --- devices and mounts
    if let Some(e) = p.readonly_root.as_ref().filter(|e| !e.value) {
        out.push(finding(
            &READONLY_ROOT,
            Severity::Low,
            "root filesystem is writable".into(),
            vec![e.at.clone()],
        ));
    }
    for m in &p.host_mounts {
        if is_engine_socket(&m.source) {
            out.push(finding(
                &ENGINE_SOCKET,
                Severity::High,
                format!(
                    "{} at {}: control of the engine is control of the host",
                    m.source, m.destination
                ),
                vec![m.at.clone()],
            ));
        } else if is_sensitive_dir(&m.source) {
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
            out.push(finding(
                &SENSITIVE_DIR,
                sev,
                format!("host {} at {} ({rw})", m.source, m.destination),
                vec![m.at.clone()],
            ));
        }
        if m.shared_propagation {
            out.push(finding(
                &PROPAGATION,
                Severity::Medium,
                format!("{} propagates mounts to and from the host", m.destination),
                vec![m.at.clone()],
            ));
        }
    }
    for at in &p.shared_propagation {
        out.push(finding(
            &PROPAGATION,
            Severity::Medium,
            "mounts propagate to and from the host".into(),
            vec![at.clone()],
        ));
    }
    if !p.devices.is_empty() {
        out.push(finding(
            &HOST_DEVICE,
            Severity::High,
            p.devices
                .iter()
                .map(|d| d.value.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            p.devices.iter().map(|d| d.at.clone()).collect(),
        ));
    }
    if let Some(a) = &p.ambient_unraisable {
        out.push(finding(
            &AMBIENT_UNRAISABLE,
            Severity::Low,
            format!(
                "{} listed as ambient but not also permitted and inheritable: the process will not have {} (runc and stockade warn and go on)",
                a.value.join(", "),
                if a.value.len() == 1 { "it" } else { "them" }
            ),
            vec![a.at.clone()],
        ));
    }
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.id.cmp(b.rule.id)));
    out
}

fn cap_evidence(p: &Posture, privileged: Option<&Ev<bool>>) -> Vec<String> {
    match (privileged, &p.caps) {
        (Some(e), _) => vec![e.at.clone()],
        (None, Some(c)) => vec![c.at.clone()],
        _ => vec![],
    }
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// One audited thing and its findings.
#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub findings: Vec<Finding>,
}

pub fn report(p: &Posture) -> Report {
    Report {
        target: p.name.clone(),
        file: p.file.clone(),
        partial: p.partial.clone(),
        notes: p.notes.clone(),
        findings: evaluate(p),
    }
}
