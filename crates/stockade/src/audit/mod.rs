//! `stockade audit`: check a container's configuration from outside, against the seed and the
//! CIS Docker Benchmark (§5, "Container Runtime").
//!
//! Every input — an OCI `config.json`, `docker inspect` output, a Kubernetes manifest, or a live
//! process read from the host's `/proc` — is first turned into one [`Posture`]: the facts that
//! matter for isolation, each with the evidence it came from (a JSON path or a `/proc` field).
//! One set of rules ([`evaluate`]) then turns a posture into findings, so the three static
//! formats and the live view cannot drift apart. Each finding names its seed section, its CIS id
//! where one exists, a severity, the evidence, and the fix for Docker, Kubernetes and OCI.

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
    /// Set when a live read was cut short (the process exited).
    pub partial: Option<String>,
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

macro_rules! rule {
    ($name:ident, $id:literal, $cis:expr, $section:expr, $title:literal, $docker:literal, $k8s:literal, $oci:literal) => {
        pub static $name: Rule = Rule {
            id: $id,
            cis: $cis,
            section: $section,
            title: $title,
            fix: Fix {
                docker: $docker,
                kubernetes: $k8s,
                oci: $oci,
            },
        };
    };
}

const NS: &str = "namespaces";
const RES: &str = "not namespaced";
const CAP: &str = "capabilities";
const SET: &str = "setuid";
const SC: &str = "seccomp";
const DEV: &str = "devices and mounts";

rule!(
    PRIVILEGED,
    "SA001",
    Some("5.5"),
    CAP,
    "privileged container",
    "drop --privileged; add only the capabilities and devices needed",
    "securityContext.privileged: false",
    "no single field: keep process.capabilities minimal, linux.seccomp set, linux.maskedPaths set"
);
rule!(
    CAPS_DANGEROUS,
    "SA002",
    Some("5.4"),
    CAP,
    "capabilities that break isolation",
    "--cap-drop ALL, then --cap-add only what the workload needs",
    "securityContext.capabilities: {drop: [ALL], add: [only what is needed]}",
    "process.capabilities: remove them from bounding/effective/permitted/inheritable/ambient"
);
rule!(
    CAPS_DEFAULT,
    "SA003",
    Some("5.4"),
    CAP,
    "capabilities not dropped to what the workload needs",
    "--cap-drop ALL, then --cap-add only what the workload needs",
    "securityContext.capabilities.drop: [ALL]",
    "process.capabilities: empty sets, then add back what is needed"
);
rule!(
    HOST_NET,
    "SA010",
    Some("5.10"),
    NS,
    "host network namespace shared",
    "do not use --network host",
    "hostNetwork: false",
    "add {\"type\": \"network\"} to linux.namespaces"
);
rule!(
    HOST_PID,
    "SA011",
    Some("5.16"),
    NS,
    "host PID namespace shared",
    "do not use --pid host",
    "hostPID: false",
    "add {\"type\": \"pid\"} to linux.namespaces"
);
rule!(
    HOST_IPC,
    "SA012",
    Some("5.17"),
    NS,
    "host IPC namespace shared",
    "do not use --ipc host",
    "hostIPC: false",
    "add {\"type\": \"ipc\"} to linux.namespaces"
);
rule!(
    HOST_UTS,
    "SA013",
    Some("5.21"),
    NS,
    "host UTS namespace shared",
    "do not use --uts host",
    "hostNetwork: false (the pod then gets its own UTS namespace)",
    "add {\"type\": \"uts\"} to linux.namespaces"
);
rule!(HOST_USER, "SA014", Some("5.31"), NS, "no user namespace",
    "do not use --userns host; run dockerd with --userns-remap (or use stockade, which maps root by default)",
    "hostUsers: false", "add {\"type\": \"user\"} to linux.namespaces with linux.uidMappings/gidMappings to an unprivileged range");
rule!(
    HOST_CGROUP,
    "SA015",
    None,
    NS,
    "host cgroup namespace shared",
    "--cgroupns private",
    "use a cgroup v2 node (pods get a private cgroup namespace)",
    "add {\"type\": \"cgroup\"} to linux.namespaces"
);
rule!(
    HOST_MOUNT,
    "SA016",
    None,
    NS,
    "host mount namespace shared",
    "(Docker always uses a mount namespace)",
    "(Kubernetes always uses a mount namespace)",
    "add {\"type\": \"mount\"} to linux.namespaces"
);
rule!(KEYRING, "SA020", None, RES, "kernel keyring reachable and shared with the host's users",
    "keep the default seccomp profile (it blocks keyctl/add_key/request_key) and use a user namespace",
    "seccompProfile.type: RuntimeDefault and hostUsers: false",
    "block keyctl, add_key and request_key in linux.seccomp and add a user namespace");
rule!(PROC_MASK, "SA021", None, RES, "/proc and /sys files exposing the host left unmasked",
    "do not use --security-opt systempaths=unconfined or --privileged",
    "securityContext.procMount: Default",
    "linux.maskedPaths: /proc/kcore, /proc/keys, /proc/timer_list, /proc/sched_debug, /sys/firmware, ...");
rule!(
    PROC_SYS,
    "SA022",
    None,
    RES,
    "/proc/sys writable",
    "do not use --privileged or systempaths=unconfined",
    "securityContext.procMount: Default",
    "linux.readonlyPaths: add /proc/sys"
);
rule!(
    TIME,
    "SA023",
    None,
    RES,
    "the system clock can be set (CAP_SYS_TIME)",
    "--cap-drop SYS_TIME",
    "capabilities.drop: [SYS_TIME]",
    "remove CAP_SYS_TIME from process.capabilities"
);
rule!(
    MODULES,
    "SA024",
    None,
    RES,
    "kernel modules can be loaded (CAP_SYS_MODULE)",
    "--cap-drop SYS_MODULE",
    "capabilities.drop: [SYS_MODULE]",
    "remove CAP_SYS_MODULE from process.capabilities"
);
rule!(
    MEMORY,
    "SA025",
    Some("5.11"),
    RES,
    "no memory limit",
    "--memory 512m (for example)",
    "resources.limits.memory",
    "linux.resources.memory.limit"
);
rule!(
    CPU,
    "SA026",
    Some("5.12"),
    RES,
    "no CPU limit or priority",
    "--cpus 1 or --cpu-shares",
    "resources.limits.cpu",
    "linux.resources.cpu.quota/period or shares"
);
rule!(
    PIDS,
    "SA027",
    Some("5.29"),
    RES,
    "no PIDs limit (a fork bomb starves the host)",
    "--pids-limit 1024",
    "the kubelet's podPidsLimit (no per-pod field)",
    "linux.resources.pids.limit"
);
rule!(
    CGROUP_PARENT,
    "SA028",
    Some("5.25"),
    RES,
    "cgroup placed under a custom parent: confirm its limits",
    "drop --cgroup-parent unless its limits are intended",
    "(set by the kubelet)",
    "linux.cgroupsPath"
);
rule!(
    NNP,
    "SA030",
    Some("5.26"),
    SET,
    "setuid binaries and file capabilities can raise privileges (no no_new_privs)",
    "--security-opt no-new-privileges",
    "securityContext.allowPrivilegeEscalation: false",
    "process.noNewPrivileges: true"
);
rule!(
    ROOT_USER,
    "SA031",
    None,
    SET,
    "process runs as root",
    "--user 1000 (or a USER in the image)",
    "securityContext.runAsNonRoot: true, runAsUser",
    "process.user.uid other than 0"
);
rule!(
    NOSUID,
    "SA032",
    None,
    SET,
    "mounts without nosuid",
    "mount volumes with nosuid",
    "(the runtime decides)",
    "add nosuid to the mount's options"
);
rule!(
    SECCOMP_OFF,
    "SA040",
    Some("5.22"),
    SC,
    "seccomp disabled",
    "remove --security-opt seccomp=unconfined (and --privileged)",
    "securityContext.seccompProfile.type: RuntimeDefault (or Localhost)",
    "set linux.seccomp (stockade spec writes a default stricter than Docker's)"
);
rule!(
    READONLY_ROOT,
    "SA050",
    Some("5.13"),
    DEV,
    "root filesystem writable",
    "--read-only (with --tmpfs for scratch space)",
    "securityContext.readOnlyRootFilesystem: true",
    "root.readonly: true"
);
rule!(
    SENSITIVE_DIR,
    "SA051",
    Some("5.6"),
    DEV,
    "sensitive host directory mounted",
    "remove the -v/--mount of that host path",
    "remove the hostPath volume",
    "remove the bind mount from mounts"
);
rule!(
    HOST_DEVICE,
    "SA052",
    Some("5.18"),
    DEV,
    "host device exposed",
    "remove --device (and --privileged)",
    "remove hostPath volumes under /dev; privileged: false",
    "remove the entry from linux.devices and the allow rule from linux.resources.devices"
);
rule!(
    PROPAGATION,
    "SA053",
    Some("5.20"),
    DEV,
    "mount propagation shared with the host",
    "do not use :shared/:rshared bind propagation",
    "mountPropagation: None (not Bidirectional)",
    "rootfsPropagation and mount options: private, slave or unbindable, not shared"
);
rule!(
    ENGINE_SOCKET,
    "SA054",
    Some("5.32"),
    DEV,
    "container engine socket mounted",
    "remove -v /var/run/docker.sock",
    "remove the hostPath volume of the engine socket",
    "remove the bind mount of the socket"
);

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
    pub findings: Vec<Finding>,
}

pub fn report(p: &Posture) -> Report {
    Report {
        target: p.name.clone(),
        file: p.file.clone(),
        partial: p.partial.clone(),
        findings: evaluate(p),
    }
}

/// The highest severity among all findings.
pub fn worst(reports: &[Report]) -> Option<Severity> {
    reports
        .iter()
        .flat_map(|r| r.findings.iter().map(|f| f.severity))
        .max()
}

fn counts(reports: &[Report]) -> [usize; 3] {
    let mut c = [0; 3];
    for f in reports.iter().flat_map(|r| &r.findings) {
        c[f.severity as usize] += 1;
    }
    c
}

pub fn to_table(reports: &[Report], colour: bool) -> String {
    let mut s = String::new();
    let paint = |sev: Severity| -> String {
        let code = match sev {
            Severity::High => "31",
            Severity::Medium => "33",
            Severity::Low => "36",
        };
        let label = sev.as_str().to_ascii_uppercase();
        if colour {
            format!("\x1b[{code}m{label:<6}\x1b[0m")
        } else {
            format!("{label:<6}")
        }
    };
    for r in reports {
        let _ = writeln!(s, "== {} ==", r.target);
        if let Some(why) = &r.partial {
            let _ = writeln!(s, "   PARTIAL: {why}");
        }
        if r.findings.is_empty() {
            let _ = writeln!(s, "   no findings");
        }
        for sec in [NS, RES, CAP, SET, SC, DEV] {
            let fs: Vec<&Finding> = r
                .findings
                .iter()
                .filter(|f| f.rule.section == sec)
                .collect();
            if fs.is_empty() {
                continue;
            }
            let _ = writeln!(s, "-- {sec}");
            for f in fs {
                let cis = f.rule.cis.map(|c| format!(" CIS {c}")).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "   {} {}{}: {} — {}",
                    paint(f.severity),
                    f.rule.id,
                    cis,
                    f.rule.title,
                    f.message
                );
                for e in &f.evidence {
                    let _ = writeln!(s, "          evidence: {e}");
                }
                let _ = writeln!(
                    s,
                    "          fix: docker: {}; kubernetes: {}; oci: {}",
                    f.rule.fix.docker, f.rule.fix.kubernetes, f.rule.fix.oci
                );
            }
        }
    }
    let [l, m, h] = counts(reports);
    let _ = writeln!(
        s,
        "{} target(s): {h} high, {m} medium, {l} low",
        reports.len()
    );
    s
}

pub fn to_json(reports: &[Report]) -> serde_json::Value {
    let [l, m, h] = counts(reports);
    serde_json::json!({
        "reports": reports,
        "summary": {"high": h, "medium": m, "low": l},
    })
}

/// SARIF 2.1.0, for code scanning: one rule per stockade rule that fired, one result per
/// finding, located in the audited file with the evidence as a logical location.
pub fn to_sarif(reports: &[Report]) -> serde_json::Value {
    let mut rules: Vec<&Rule> = reports
        .iter()
        .flat_map(|r| r.findings.iter().map(|f| f.rule))
        .collect();
    rules.sort_by_key(|r| r.id);
    rules.dedup_by_key(|r| r.id);
    let index = |id: &str| rules.iter().position(|r| r.id == id).unwrap_or(0);
    let sarif_rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| {
            let cis = r.cis.map(|c| format!("CIS Docker Benchmark {c}; ")).unwrap_or_default();
            serde_json::json!({
                "id": r.id,
                "name": r.title,
                "shortDescription": {"text": r.title},
                "fullDescription": {"text": format!("{cis}seed section: {}", r.section)},
                "help": {"text": format!("docker: {}\nkubernetes: {}\noci: {}", r.fix.docker, r.fix.kubernetes, r.fix.oci)},
                "properties": {"tags": ["security", r.section], "cis": r.cis},
            })
        })
        .collect();
    let mut results = vec![];
    for r in reports {
        for f in &r.findings {
            let mut loc = serde_json::json!({
                "logicalLocations": f.evidence.iter().map(|e| serde_json::json!({"fullyQualifiedName": e})).collect::<Vec<_>>(),
            });
            if let Some(file) = &r.file {
                loc["physicalLocation"] = serde_json::json!({"artifactLocation": {"uri": file}});
            }
            results.push(serde_json::json!({
                "ruleId": f.rule.id,
                "ruleIndex": index(f.rule.id),
                "level": f.severity.sarif_level(),
                "message": {"text": format!("{}: {}: {}", r.target, f.rule.title, f.message)},
                "locations": [loc],
                "properties": {"severity": f.severity.as_str(), "target": r.target},
            }));
        }
    }
    serde_json::json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "stockade",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": sarif_rules,
            }},
            "results": results,
        }],
    })
}
