//! The rules of `stockade audit`: each with its id, CIS recommendation, seed section, title and
//! fix per front end. [`super::evaluate`] decides which apply.

use super::{Fix, Rule};

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

pub(crate) const NS: &str = "namespaces";
pub(crate) const RES: &str = "not namespaced";
pub(crate) const CAP: &str = "capabilities";
pub(crate) const SET: &str = "setuid";
pub(crate) const SC: &str = "seccomp";
pub(crate) const DEV: &str = "devices and mounts";

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
rule!(
    LANDLOCK,
    "SA033",
    None,
    SET,
    "no Landlock ruleset",
    "run with stockade and the org.stockade.landlock annotation (Docker 20.10 has none: --runtime stockade with a policy)",
    "a pod annotation org.stockade.landlock passed by containerd to stockade",
    "annotations.org.stockade.landlock: a ruleset (runtime-spec PR 1241 shape), or `stockade sandbox --landlock`"
);
rule!(
    AMBIENT_UNRAISABLE,
    "SA034",
    None,
    CAP,
    "ambient capabilities that will not be raised",
    "--cap-add the capability (Docker sets ambient only for non-root users with --cap-add)",
    "securityContext.capabilities.add",
    "process.capabilities: list each ambient capability in permitted and inheritable too, or drop it from ambient"
);
