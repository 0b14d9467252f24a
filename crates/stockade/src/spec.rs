//! The one input of the engine: an OCI runtime `Spec`. This module loads and validates it (every
//! error names the file and the JSON field), and writes the hardened default that `stockade spec`
//! prints. The `sandbox` front end lives in [`crate::sandbox`] and also ends here, as a `Spec`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::{json, Value};

use crate::error::{config_err, Error, Result};

/// Annotation: the root filesystem is a fresh tmpfs that the spec's mounts populate (used by
/// `stockade sandbox`, which has no image); `root.path` is then ignored.
/// The runtime-spec version stockade implements: its state, hooks' state and `spec` say it.
pub const OCI_VERSION: &str = "1.3.0";

pub const ANNOTATION_TMPFS_ROOT: &str = "org.stockade.root";

/// First host id of the unprivileged range that container ids map to by default, and its size.
/// Overridden by a `stockade:` line in /etc/subuid and /etc/subgid.
pub const DEFAULT_ID_BASE: u32 = 100_000;
pub const DEFAULT_ID_COUNT: u32 = 65_536;

/// Default cgroup limits of `stockade spec` and `sandbox` (CIS Docker 5.11, 5.12, 5.29).
pub const DEFAULT_MEMORY: i64 = 1 << 30;
pub const DEFAULT_PIDS: i64 = 1024;
pub const DEFAULT_CPU_QUOTA: i64 = 100_000;
pub const DEFAULT_CPU_PERIOD: u64 = 100_000;

/// Docker's masked paths plus the kernel's other host-wide information files.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/kallsyms",
    "/proc/kmsg",
    "/proc/modules",
    "/proc/vmallocinfo",
    "/proc/config.gz",
    "/proc/sysrq-trigger",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/sys/kernel/debug",
    "/sys/kernel/tracing",
    "/sys/kernel/security",
];

pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"];

/// Annotations the hardening policy adds to the config it enforces (`org.stockade.policy.RULE`:
/// what each rule changed, and the id slot). They stay in the effective config in the state
/// directory (`stockade policy explain ID`), never in the state and the hooks' stdin, which carry
/// the config's own annotations (runtime-spec).
pub const POLICY_ANNOTATION_PREFIX: &str = "org.stockade.policy.";
/// The id slot a policy-added user namespace holds (given back at delete).
pub const POLICY_ANNOTATION_ID_SLOT: &str = "org.stockade.policy.idSlot";

/// The config's own annotations: the spec's without the policy's records.
pub fn config_annotations(spec: &Spec) -> std::collections::HashMap<String, String> {
    spec.annotations()
        .iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with(POLICY_ANNOTATION_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether the policy changed anything in this spec (its records are there).
pub fn policy_changed(spec: &Spec) -> bool {
    spec.annotations()
        .iter()
        .flatten()
        .any(|(k, _)| k.starts_with(POLICY_ANNOTATION_PREFIX))
}

/// Load `config.json`; a type error names the JSON path (`process.capabilities.bounding[2]`).
pub fn load(file: &Path) -> Result<Spec> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a fifo must not wait for a writer
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(file)
        .map_err(|e| config_err(file, "", format!("cannot read: {e}")))?;
    let md = f
        .metadata()
        .map_err(|e| config_err(file, "", format!("cannot read: {e}")))?;
    // a fifo, a device or a file that never ends is refused, not read forever
    if !md.is_file() {
        return Err(config_err(file, "", "not a regular file"));
    }
    // sized from the metadata: one read (a growing buffer starts at 32 bytes: ten reads)
    let mut text = String::with_capacity(md.len().min(MAX_CONFIG_BYTES) as usize + 1);
    f.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| config_err(file, "", format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(config_err(
            file,
            "",
            format!("larger than {} MiB", MAX_CONFIG_BYTES >> 20),
        ));
    }
    parse(file, &text)
}

/// The largest config.json read: Docker's and Kubernetes' are a few KiB, a huge seccomp
/// profile a few hundred.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

pub fn parse(file: &Path, text: &str) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let spec: Spec = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        config_err(
            file,
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })?;
    Ok(spec)
}

/// The rootfs directory as an absolute path (relative paths are relative to the bundle).
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> PathBuf {
    let p = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| PathBuf::from("rootfs"));
    let p = if p.is_absolute() { p } else { bundle.join(p) };
    // A rootfs given through a symlink (the bundle's `rootfs -> /var/lib/...`) is the directory
    // it names: mounts attach to directories, not to links.
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// The directory the container's root is attached on: the bundle's rootfs, or for a tmpfs
/// root the `rootfs` directory in the container's state directory.
pub fn rootfs_dir(spec: &Spec, bundle: &Path, state_dir: &Path) -> PathBuf {
    if tmpfs_root(spec) {
        state_dir.join("rootfs")
    } else {
        rootfs_path(spec, bundle)
    }
}

/// With a tmpfs root: top-level symlinks to make in it (`org.stockade.root.symlinks`, a JSON
/// object such as `{"bin": "usr/bin"}`); names are single components.
pub const ANNOTATION_ROOT_SYMLINKS: &str = "org.stockade.root.symlinks";

pub fn root_symlinks(spec: &Spec) -> Vec<(String, String)> {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_ROOT_SYMLINKS))
        .and_then(|t| serde_json::from_str::<std::collections::BTreeMap<String, String>>(t).ok())
        .map(|m| {
            m.into_iter()
                .filter(|(n, _)| !n.is_empty() && !n.contains('/') && n != "." && n != "..")
                .collect()
        })
        .unwrap_or_default()
}

pub fn tmpfs_root(spec: &Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_TMPFS_ROOT))
        .is_some_and(|v| v == "tmpfs")
}

pub fn has_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ))
}

/// The host range container ids map to: a `stockade:START:COUNT` line in `file`, else the default.
pub fn subid_range(file: &Path) -> (u32, u32) {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut it = l.trim().split(':');
                (it.next()? == "stockade").then_some(())?;
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
        })
        .unwrap_or((DEFAULT_ID_BASE, DEFAULT_ID_COUNT))
}

/// Id mappings for a new user namespace: as root, container 0.. → the unprivileged host range; as
/// anyone else, the caller alone becomes `inside` (usually root) in the container.
pub fn default_id_maps(rootless: bool, inside_uid: u32, inside_gid: u32) -> (Value, Value) {
    if rootless {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        (
            json!([{"containerID": inside_uid, "hostID": uid, "size": 1}]),
            json!([{"containerID": inside_gid, "hostID": gid, "size": 1}]),
        )
    } else {
        let (ub, uc) = subid_range(Path::new("/etc/subuid"));
        let (gb, gc) = subid_range(Path::new("/etc/subgid"));
        (
            json!([{"containerID": 0, "hostID": ub, "size": uc}]),
            json!([{"containerID": 0, "hostID": gb, "size": gc}]),
        )
    }
}

pub fn default_namespaces() -> Value {
    json!(
        ["pid", "network", "ipc", "uts", "mount", "user", "cgroup", "time"]
            .iter()
            .map(|t| json!({"type": t}))
            .collect::<Vec<_>>()
    )
}

pub fn default_resources() -> Value {
    json!({
        "memory": {"limit": DEFAULT_MEMORY, "swap": DEFAULT_MEMORY},
        "pids": {"limit": DEFAULT_PIDS},
        "cpu": {"shares": 1024, "quota": DEFAULT_CPU_QUOTA, "period": DEFAULT_CPU_PERIOD},
        "devices": [{"allow": false, "access": "rwm"}]
    })
}

pub fn default_rlimits() -> Value {
    json!([
        {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
        {"type": "RLIMIT_NPROC", "hard": 4096, "soft": 4096},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}
    ])
}

pub fn empty_caps() -> Value {
    json!({"bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": []})
}

/// The built-in default seccomp profile resolved for a process with bounding set `caps`, as plain
/// OCI JSON (Docker-style includes/excludes are decided here: OCI has no field for them).
pub fn default_seccomp(caps: &[String]) -> Value {
    stockade_seccomp::builtin("default")
        .expect("built-in default profile")
        .resolve(&stockade_seccomp::Context::host(caps.iter().cloned()))
        .oci
        .to_oci_value()
}

/// The hardened `config.json` of `stockade spec`: every namespace, no capabilities, no_new_privs,
/// read-only root, masked and read-only paths, nosuid/nodev mounts, cgroup limits, rlimits, and the
/// stricter-than-Docker seccomp profile.
pub fn hardened_default(rootless: bool) -> Value {
    let (uid_maps, gid_maps) = default_id_maps(rootless, 0, 0);
    let mut resources = default_resources();
    if rootless {
        resources = json!(null);
    }
    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": empty_caps(),
            "rlimits": default_rlimits(),
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "stockade",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}
        ],
        "linux": {
            "uidMappings": uid_maps,
            "gidMappings": gid_maps,
            "namespaces": default_namespaces(),
            "resources": resources,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
            "seccomp": default_seccomp(&[])
        }
    });
    if rootless {
        spec["linux"].as_object_mut().unwrap().remove("resources");
    }
    spec
}

/// "512m" / "2g" / "1048576" / "unlimited" → bytes (-1 for unlimited).
pub fn parse_size(flag: &str, s: &str) -> Result<i64> {
    if s == "unlimited" || s == "-1" {
        return Ok(-1);
    }
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (
            &s[..i],
            match c.to_ascii_lowercase() {
                'k' => 1i64 << 10,
                'm' => 1i64 << 20,
                'g' => 1i64 << 30,
                't' => 1i64 << 40,
                'b' => 1,
                _ => {
                    return Err(Error::Other(format!(
                        "{flag} {s:?}: unknown unit {c:?} (use k, m, g, t)"
                    )))
                }
            },
        ),
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error::Other(format!("{flag} {s:?}: not a size")))?;
    if n <= 0.0 || !n.is_finite() {
        return Err(Error::Other(format!(
            "{flag} {s:?}: must be positive (or \"unlimited\")"
        )));
    }
    let bytes = n * mult as f64;
    if bytes > (1u64 << 50) as f64 {
        return Err(Error::Other(format!("{flag} {s:?}: absurdly large")));
    }
    Ok(bytes as i64)
}
