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

mod checks;
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

/// The rules: one posture in, its findings out (most severe first). Each rule's check in
/// [`checks::CHECKS`] looks at the posture in turn.
pub fn evaluate(p: &Posture) -> Vec<Finding> {
    let facts = checks::Facts::of(p);
    let mut out: Vec<Finding> = (checks::CHECKS.iter())
        .flat_map(|c| {
            (c.find)(&facts).into_iter().map(|f| Finding {
                rule: c.rule,
                severity: f.severity,
                message: f.message,
                evidence: f.evidence,
            })
        })
        .collect();
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.id.cmp(b.rule.id)));
    out
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
