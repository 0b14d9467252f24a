//! Static inputs of `stockade audit`: an OCI `config.json`, `docker inspect` output, and
//! Kubernetes manifests (YAML, several documents). Each becomes one [`Posture`] per container,
//! every fact carrying the JSON path it was read from.
//!
//! The inputs are read as plain JSON values, not as typed structs: an audit must accept configs
//! other tools wrote (fields this runtime does not know, values it would refuse to run) and still
//! point at the exact path of what it found.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::capabilities::cap_name;

use super::{
    all_caps, ev, AuditError, Ev, HostMount, Posture, Result, Seccomp, ENGINE_DEFAULT_CAPS,
    MUST_MASK,
};

/// Read a file (or `-` for stdin) and turn it into postures, whatever of the three formats it is.
pub fn load(path: &str) -> Result<Vec<Posture>> {
    let (text, shown) = if path == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| AuditError::Input("stdin".into(), e.to_string()))?;
        (s, "stdin".to_string())
    } else {
        let p = Path::new(path);
        let p = if p.is_dir() {
            p.join("config.json")
        } else {
            p.to_path_buf()
        };
        let shown = p.display().to_string();
        let s = std::fs::read_to_string(&p)
            .map_err(|e| AuditError::Input(shown.clone(), e.to_string()))?;
        (s, shown)
    };
    parse(&text, &shown)
}

/// Detect the format and parse: JSON array → `docker inspect`; JSON object with `ociVersion`
/// (or `process`/`root`) → OCI; anything with `kind` → Kubernetes; otherwise YAML documents.
pub fn parse(text: &str, file: &str) -> Result<Vec<Posture>> {
    let err = |m: String| AuditError::Input(file.to_string(), m);
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, c)| docker(c, i, file))
            .collect(),
        Ok(v @ Value::Object(_)) if v.get("kind").is_some() => k8s_docs(vec![v], file),
        Ok(v @ Value::Object(_)) => {
            if v.get("ociVersion").is_some()
                || v.get("process").is_some()
                || v.get("root").is_some()
            {
                Ok(vec![oci(&v, file)?])
            } else {
                Err(err("a JSON object that is neither an OCI config (no ociVersion, process or root) nor a Kubernetes object (no kind)".into()))
            }
        }
        Ok(_) => Err(err("expected a JSON object or array".into())),
        Err(json_err) => {
            let trimmed = text.trim_start();
            if trimmed.starts_with('{') || trimmed.starts_with('[') || file.ends_with(".json") {
                return Err(err(format!("invalid JSON: {json_err}")));
            }
            let mut docs = vec![];
            for (n, d) in serde_norway::Deserializer::from_str(text).enumerate() {
                let v = Value::deserialize(d)
                    .map_err(|e| err(format!("YAML document {}: {e}", n + 1)))?;
                if !v.is_null() {
                    docs.push(v);
                }
            }
            if docs.is_empty() {
                return Err(err("no JSON or YAML content".into()));
            }
            k8s_docs(docs, file)
        }
    }
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn b(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    arr(v, key)
        .iter()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

// ---------------------------------------------------------------------------------------- OCI

/// An OCI runtime config.
pub fn oci(v: &Value, file: &str) -> Result<Posture> {
    if !v.is_object() {
        return Err(AuditError::Input(file.into(), "not a JSON object".into()));
    }
    let mut p = Posture::new(format!("OCI config {file}"), Some(file));
    let null = Value::Null;
    let linux = v.get("linux").unwrap_or(&null);
    let process = v.get("process").unwrap_or(&null);

    p.shared_ns = oci_shared_namespaces(linux);
    let uid = process
        .get("user")
        .and_then(|u| u.get("uid"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    p.runs_as_root = Some(ev(uid == 0, format!("process.user.uid = {uid}")));
    let (caps, unraisable) = oci_caps(process);
    p.caps = Some(caps);
    p.ambient_unraisable = unraisable;

    let res = linux.get("resources").unwrap_or(&null);
    oci_limits(res, &mut p);
    let ro = v
        .get("root")
        .and_then(|r| b(r, "readonly"))
        .unwrap_or(false);
    p.readonly_root = Some(ev(ro, format!("root.readonly = {ro}")));
    let ll = v["annotations"][crate::landlock::ANNOTATION].is_string();
    p.landlock = Some(ev(
        ll,
        format!(
            "annotations.{} {}",
            crate::landlock::ANNOTATION,
            if ll { "set" } else { "absent" }
        ),
    ));
    p.seccomp = Some(oci_seccomp(linux));
    let nnp = b(process, "noNewPrivileges").unwrap_or(false);
    p.no_new_privs = Some(ev(nnp, format!("process.noNewPrivileges = {nnp}")));

    let (host_mounts, suid) = oci_mounts(v);
    p.host_mounts = host_mounts;
    p.suid_mounts = Some(ev(suid, "mounts[*].options without nosuid"));
    if let Some(prop) = s(linux, "rootfsPropagation") {
        if prop == "shared" || prop == "rshared" {
            p.shared_propagation
                .push(format!("linux.rootfsPropagation = {prop:?}"));
        }
    }
    p.devices = oci_devices(linux, res);
    let (unmasked, sys_writable) = proc_exposure(
        &strings(linux, "maskedPaths"),
        &strings(linux, "readonlyPaths"),
    );
    p.unmasked = Some(ev(unmasked, "linux.maskedPaths"));
    p.proc_sys_writable = Some(ev(sys_writable, "linux.readonlyPaths has no /proc/sys"));
    Ok(p)
}

/// The namespaces `linux.namespaces` leaves the host's: those not listed, and those joined at
/// pid 1's path.
fn oci_shared_namespaces(linux: &Value) -> Vec<(&'static str, String)> {
    let nss = arr(linux, "namespaces");
    let mut shared = vec![];
    for ns in super::NAMESPACES {
        match nss.iter().position(|n| s(n, "type") == Some(ns)) {
            None => shared.push((ns, format!("linux.namespaces has no {ns:?} entry"))),
            Some(i) => {
                if let Some(path) = s(&nss[i], "path") {
                    if path.starts_with("/proc/1/ns/") {
                        shared.push((
                            ns,
                            format!("linux.namespaces[{i}].path = {path:?} (the host's)"),
                        ));
                    }
                }
            }
        }
    }
    shared
}

/// Every capability of any set of `process.capabilities`, and the ambient ones the kernel will
/// not raise (not also permitted and inheritable).
fn oci_caps(process: &Value) -> (Ev<BTreeSet<String>>, Option<Ev<Vec<String>>>) {
    let mut caps = BTreeSet::new();
    if let Some(c) = process.get("capabilities") {
        for set in crate::capabilities::SETS {
            caps.extend(strings(c, set).iter().map(|x| cap_name(x)));
        }
    }
    let mut unraisable = None;
    if let Some(c) = process.get("capabilities") {
        let set =
            |k: &str| -> BTreeSet<String> { strings(c, k).iter().map(|x| cap_name(x)).collect() };
        let (pe, inh) = (set("permitted"), set("inheritable"));
        let lost: Vec<String> = set("ambient")
            .into_iter()
            .filter(|a| !(pe.contains(a) && inh.contains(a)))
            .collect();
        if !lost.is_empty() {
            unraisable = Some(ev(lost, "process.capabilities.ambient"));
        }
    }
    (ev(caps, "process.capabilities"), unraisable)
}

/// Memory, CPU and pids limits of `linux.resources`.
fn oci_limits(res: &Value, p: &mut Posture) {
    let num = |path: &[&str]| -> Option<i64> {
        let mut cur = res;
        for k in path {
            cur = cur.get(k)?;
        }
        cur.as_i64()
    };
    p.memory_limit = Some(match num(&["memory", "limit"]) {
        Some(l) if l > 0 => ev(
            Some(l as u64),
            format!("linux.resources.memory.limit = {l}"),
        ),
        Some(l) => ev(None, format!("linux.resources.memory.limit = {l}")),
        None => ev(None, "linux.resources.memory.limit is not set"),
    });
    p.cpu_limit = Some(match (num(&["cpu", "quota"]), num(&["cpu", "shares"])) {
        (Some(q), _) if q > 0 => ev(
            Some(format!("quota {q}")),
            format!("linux.resources.cpu.quota = {q}"),
        ),
        (_, Some(sh)) if sh > 0 => ev(
            Some(format!("shares {sh}")),
            format!("linux.resources.cpu.shares = {sh}"),
        ),
        _ => ev(None, "linux.resources.cpu has neither quota nor shares"),
    });
    p.pids_limit = Some(match num(&["pids", "limit"]) {
        Some(l) if l > 0 => ev(Some(l), format!("linux.resources.pids.limit = {l}")),
        Some(l) => ev(None, format!("linux.resources.pids.limit = {l}")),
        None => ev(None, "linux.resources.pids.limit is not set"),
    });
}

fn oci_seccomp(linux: &Value) -> Ev<Seccomp> {
    match linux.get("seccomp") {
        None | Some(Value::Null) => ev(Seccomp::Unconfined, "linux.seccomp is not set"),
        Some(sc) => ev(
            Seccomp::Filtered {
                blocks_keyctl: Some(!oci_seccomp_allows(sc, "keyctl")),
            },
            format!(
                "linux.seccomp (defaultAction {})",
                s(sc, "defaultAction").unwrap_or("?")
            ),
        ),
    }
}

/// The bind mounts of `mounts`, and the destinations of mounts without nosuid (cgroup ones
/// aside).
fn oci_mounts(v: &Value) -> (Vec<HostMount>, Vec<String>) {
    let mut binds = vec![];
    let mut suid = vec![];
    for (i, m) in arr(v, "mounts").iter().enumerate() {
        let opts = strings(m, "options");
        let dest = s(m, "destination").unwrap_or("").to_string();
        let bind = s(m, "type") == Some("bind") || opts.iter().any(|o| o == "bind" || o == "rbind");
        if bind {
            let src = s(m, "source").unwrap_or("").to_string();
            binds.push(HostMount {
                writable: !opts.iter().any(|o| o == "ro"),
                shared_propagation: opts.iter().any(|o| o == "shared" || o == "rshared"),
                at: format!("mounts[{i}] ({src} → {dest}, options {opts:?})"),
                source: src,
                destination: dest.clone(),
            });
        }
        let kind = s(m, "type").unwrap_or("");
        if !opts.iter().any(|o| o == "nosuid") && !matches!(kind, "cgroup" | "cgroup2") {
            suid.push(dest);
        }
    }
    (binds, suid)
}

/// Devices created in the container, then device cgroup rules that allow every device.
fn oci_devices(linux: &Value, res: &Value) -> Vec<Ev<String>> {
    let mut devices = vec![];
    for (i, d) in arr(linux, "devices").iter().enumerate() {
        devices.push(ev(
            s(d, "path").unwrap_or("?").to_string(),
            format!("linux.devices[{i}]"),
        ));
    }
    for (i, d) in arr(res, "devices").iter().enumerate() {
        let all_types = matches!(s(d, "type"), None | Some("a"));
        if b(d, "allow") == Some(true)
            && all_types
            && d.get("major").is_none()
            && d.get("minor").is_none()
        {
            devices.push(ev(
                "every device (device cgroup allows all)".to_string(),
                format!("linux.resources.devices[{i}]"),
            ));
        }
    }
    devices
}

/// From a masked-paths and a read-only-paths list (OCI's or Docker's): the files of
/// [`MUST_MASK`] left readable, and whether /proc/sys stays writable.
fn proc_exposure(masked: &[String], readonly: &[String]) -> (Vec<String>, bool) {
    let unmasked = MUST_MASK
        .iter()
        .filter(|m| !masked.iter().any(|x| m.starts_with(x.as_str())))
        .map(|m| m.to_string())
        .collect();
    let sys_ro = readonly.iter().any(|x| x == "/proc/sys" || x == "/proc");
    (unmasked, !sys_ro)
}

/// Whether an OCI seccomp section lets `name` through (allow by default and not named with a
/// blocking action, or named with an allowing action).
fn oci_seccomp_allows(sc: &Value, name: &str) -> bool {
    let allowing = |a: &str| matches!(a, "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG");
    let default_allows = allowing(s(sc, "defaultAction").unwrap_or("SCMP_ACT_ALLOW"));
    for r in arr(sc, "syscalls") {
        if strings(r, "names").iter().any(|n| n == name) {
            return allowing(s(r, "action").unwrap_or(""));
        }
    }
    default_allows
}

// ------------------------------------------------------------------------------------- Docker

/// One element of `docker inspect` output.
pub fn docker(c: &Value, i: usize, file: &str) -> Result<Posture> {
    let hc = c.get("HostConfig").ok_or_else(|| {
        AuditError::Input(
            file.into(),
            format!("[{i}] has no HostConfig: not `docker inspect` output of a container"),
        )
    })?;
    let name = s(c, "Name")
        .unwrap_or("?")
        .trim_start_matches('/')
        .to_string();
    // `podman inspect` writes the same shape, plus the capabilities it computed.
    let engine = if c.get("EffectiveCaps").is_some() || c.get("OCIRuntime").is_some() {
        "podman"
    } else {
        "docker"
    };
    let mut p = Posture::new(format!("{engine} container {name}"), Some(file));
    let at = |k: &str| hc_at(i, k);
    let privileged = b(hc, "Privileged").unwrap_or(false);
    p.privileged = Some(ev(
        privileged,
        format!("{} = {privileged}", at("Privileged")),
    ));
    p.caps = Some(docker_caps(c, hc, i, privileged));
    p.shared_ns = docker_shared_namespaces(hc, i);
    let user = c.get("Config").and_then(|x| s(x, "User")).unwrap_or("");
    let uid = user.split(':').next().unwrap_or("");
    p.runs_as_root = Some(ev(
        uid.is_empty() || uid == "0" || uid == "root",
        format!("[{i}].Config.User = {user:?}"),
    ));
    docker_limits(hc, i, &mut p);
    let ro = b(hc, "ReadonlyRootfs").unwrap_or(false);
    p.readonly_root = Some(ev(ro, format!("{} = {ro}", at("ReadonlyRootfs"))));
    let (seccomp, nnp) = docker_security_opts(hc, i);
    p.seccomp = Some(seccomp);
    p.no_new_privs = Some(nnp);
    p.host_mounts = docker_binds(c, i);
    for (j, d) in arr(hc, "Devices").iter().enumerate() {
        p.devices.push(ev(
            s(d, "PathOnHost").unwrap_or("?").to_string(),
            format!("{}[{j}]", at("Devices")),
        ));
    }
    if hc.get("MaskedPaths").is_some() {
        let (unmasked, sys_writable) =
            proc_exposure(&strings(hc, "MaskedPaths"), &strings(hc, "ReadonlyPaths"));
        p.unmasked = Some(ev(unmasked, at("MaskedPaths")));
        p.proc_sys_writable = Some(ev(
            sys_writable,
            format!("{} has no /proc/sys", at("ReadonlyPaths")),
        ));
    }
    if let Some(parent) = s(hc, "CgroupParent").filter(|x| !x.is_empty()) {
        p.cgroup_parent = Some(ev(parent.to_string(), at("CgroupParent")));
    }
    // the runtime the engine ran it with: Docker's HostConfig.Runtime, Podman's OCIRuntime
    if let Some(rt) = s(hc, "Runtime").filter(|x| !x.is_empty()) {
        p.runtime = Some(ev(rt.to_string(), at("Runtime")));
    } else if let Some(rt) = s(c, "OCIRuntime").filter(|x| !x.is_empty()) {
        p.runtime = Some(ev(rt.to_string(), format!("[{i}].OCIRuntime")));
    }
    Ok(p)
}

/// The path of `HostConfig.KEY` in the `i`th container.
fn hc_at(i: usize, key: &str) -> String {
    format!("[{i}].HostConfig.{key}")
}

/// Podman's `EffectiveCaps` where given, else the engine's default set with `CapAdd` and
/// `CapDrop` applied.
fn docker_caps(c: &Value, hc: &Value, i: usize, privileged: bool) -> Ev<BTreeSet<String>> {
    let add: Vec<String> = strings(hc, "CapAdd").iter().map(|x| cap_name(x)).collect();
    let drop: Vec<String> = strings(hc, "CapDrop").iter().map(|x| cap_name(x)).collect();
    match c.get("EffectiveCaps").and_then(Value::as_array) {
        Some(list) => ev(
            list.iter()
                .filter_map(Value::as_str)
                .map(cap_name)
                .collect(),
            format!("[{i}].EffectiveCaps"),
        ),
        None => ev(
            effective_caps(privileged, &add, &drop),
            format!(
                "{} = {add:?}, {} = {drop:?} (on top of the engine's default 14)",
                hc_at(i, "CapAdd"),
                hc_at(i, "CapDrop")
            ),
        ),
    }
}

/// The namespaces `HostConfig` sets to the host's (`*Mode = "host"`), and the user namespace
/// unless one is asked for.
fn docker_shared_namespaces(hc: &Value, i: usize) -> Vec<(&'static str, String)> {
    let mut shared = vec![];
    for (key, ns) in [
        ("NetworkMode", "network"),
        ("PidMode", "pid"),
        ("IpcMode", "ipc"),
        ("UTSMode", "uts"),
        ("CgroupnsMode", "cgroup"),
    ] {
        if s(hc, key) == Some("host") {
            shared.push((ns, format!("{} = \"host\"", hc_at(i, key))));
        }
    }
    match s(hc, "UsernsMode").unwrap_or("") {
        "host" => shared.push(("user", format!("{} = \"host\"", hc_at(i, "UsernsMode")))),
        "" => shared.push((
            "user",
            format!(
                "{} = \"\" (no user namespace unless dockerd runs with --userns-remap)",
                hc_at(i, "UsernsMode")
            ),
        )),
        _ => {}
    }
    shared
}

/// Memory, CPU and pids limits of `HostConfig`.
fn docker_limits(hc: &Value, i: usize, p: &mut Posture) {
    let at = |k: &str| hc_at(i, k);
    let num = |k: &str| hc.get(k).and_then(Value::as_i64);
    p.memory_limit = Some(match num("Memory") {
        Some(m) if m > 0 => ev(Some(m as u64), format!("{} = {m}", at("Memory"))),
        m => ev(None, format!("{} = {}", at("Memory"), m.unwrap_or(0))),
    });
    p.cpu_limit = Some(match (num("NanoCpus"), num("CpuQuota"), num("CpuShares")) {
        (Some(n), _, _) if n > 0 => ev(
            Some(format!("{n} nanocpus")),
            format!("{} = {n}", at("NanoCpus")),
        ),
        (_, Some(q), _) if q > 0 => ev(
            Some(format!("quota {q}")),
            format!("{} = {q}", at("CpuQuota")),
        ),
        (_, _, Some(sh)) if sh > 0 => ev(
            Some(format!("shares {sh}")),
            format!("{} = {sh}", at("CpuShares")),
        ),
        _ => ev(
            None,
            format!("{}, CpuQuota and CpuShares are 0", at("NanoCpus")),
        ),
    });
    p.pids_limit = Some(match num("PidsLimit") {
        Some(l) if l > 0 => ev(Some(l), format!("{} = {l}", at("PidsLimit"))),
        l => ev(
            None,
            format!(
                "{} = {}",
                at("PidsLimit"),
                l.map(|l| l.to_string()).unwrap_or("null".into())
            ),
        ),
    });
}

/// Seccomp and no_new_privs, from `HostConfig.SecurityOpt`.
fn docker_security_opts(hc: &Value, i: usize) -> (Ev<Seccomp>, Ev<bool>) {
    let opts = strings(hc, "SecurityOpt");
    let opt_at = format!(
        "{} = {:?}",
        hc_at(i, "SecurityOpt"),
        opts.iter()
            .map(|o| if o.len() > 60 {
                format!("{}…", &o[..60])
            } else {
                o.clone()
            })
            .collect::<Vec<_>>()
    );
    let seccomp_opt = opts.iter().find_map(|o| {
        o.strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
    });
    let seccomp = match seccomp_opt {
        Some("unconfined") => ev(Seccomp::Unconfined, opt_at.clone()),
        Some(profile) => ev(
            Seccomp::Filtered {
                blocks_keyctl: serde_json::from_str::<Value>(profile)
                    .ok()
                    .map(|v| !oci_seccomp_allows(&v, "keyctl")),
            },
            opt_at.clone(),
        ),
        None => ev(
            Seccomp::Filtered {
                blocks_keyctl: Some(true),
            },
            format!(
                "{} has no seccomp= (the default profile)",
                hc_at(i, "SecurityOpt")
            ),
        ),
    };
    let nnp = opts.iter().any(|o| {
        matches!(
            o.as_str(),
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
        )
    });
    (seccomp, ev(nnp, opt_at))
}

/// The bind mounts of `Mounts`.
fn docker_binds(c: &Value, i: usize) -> Vec<HostMount> {
    let mut binds = vec![];
    for (j, m) in arr(c, "Mounts").iter().enumerate() {
        if s(m, "Type") != Some("bind") {
            continue;
        }
        let src = s(m, "Source").unwrap_or("").to_string();
        let dest = s(m, "Destination").unwrap_or("").to_string();
        let prop = s(m, "Propagation").unwrap_or("");
        binds.push(HostMount {
            writable: b(m, "RW").unwrap_or(true),
            shared_propagation: prop == "shared" || prop == "rshared",
            at: format!(
                "[{i}].Mounts[{j}] ({src} → {dest}, RW {}, Propagation {prop:?})",
                b(m, "RW").unwrap_or(true)
            ),
            source: src,
            destination: dest,
        });
    }
    binds
}

/// The engine default set, `add`ed and `drop`ped the way Docker and Kubernetes do it ("ALL"
/// drops or adds every one).
fn effective_caps(privileged: bool, add: &[String], drop: &[String]) -> BTreeSet<String> {
    if privileged {
        return all_caps();
    }
    let mut set: BTreeSet<String> = if drop.iter().any(|d| d == "CAP_ALL") {
        BTreeSet::new()
    } else {
        ENGINE_DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if add.iter().any(|a| a == "CAP_ALL") {
        set = all_caps();
    } else {
        set.extend(add.iter().cloned());
    }
    set
}

// --------------------------------------------------------------------------------- Kubernetes

const WORKLOAD_KINDS: &str =
    "Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, List";

const NON_WORKLOAD_KINDS: &[&str] = &[
    "Service",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Ingress",
    "IngressClass",
    "Namespace",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "NetworkPolicy",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "StorageClass",
    "CustomResourceDefinition",
    "LimitRange",
    "ResourceQuota",
    "Endpoints",
    "EndpointSlice",
    "PriorityClass",
    "RuntimeClass",
];

fn k8s_docs(docs: Vec<Value>, file: &str) -> Result<Vec<Posture>> {
    let mut out = vec![];
    for (n, d) in docs.iter().enumerate() {
        k8s_object(d, &format!("document {}", n + 1), file, &mut out)?;
    }
    Ok(out)
}

fn k8s_object(d: &Value, where_: &str, file: &str, out: &mut Vec<Posture>) -> Result<()> {
    let err = |m: String| AuditError::Input(file.into(), format!("{where_}: {m}"));
    let kind = s(d, "kind").ok_or_else(|| err("no kind".into()))?;
    let name = d.get("metadata").and_then(|m| s(m, "name")).unwrap_or("?");
    let (spec, prefix) = match kind {
        "Pod" => (d.get("spec"), "spec"),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "ReplicationController" => {
            (d.get("spec").and_then(|x| x.get("template")).and_then(|x| x.get("spec")), "spec.template.spec")
        }
        "CronJob" => (
            d.pointer("/spec/jobTemplate/spec/template/spec"),
            "spec.jobTemplate.spec.template.spec",
        ),
        "List" => {
            for (i, item) in arr(d, "items").iter().enumerate() {
                k8s_object(item, &format!("{where_} items[{i}]"), file, out)?;
            }
            return Ok(());
        }
        // Objects that run nothing: nothing to audit, but a manifest may well contain them.
        k if NON_WORKLOAD_KINDS.contains(&k) => return Ok(()),
        other => return Err(err(format!("unknown kind {other:?} (expected one of {WORKLOAD_KINDS}, or an object that runs nothing such as a Service)"))),
    };
    let spec = spec.ok_or_else(|| err(format!("{kind}/{name} has no {prefix}")))?;
    let pod = Pod {
        kind,
        name,
        prefix,
        spec,
        file,
    };
    let mut any = false;
    for group in ["initContainers", "containers", "ephemeralContainers"] {
        for (ci, c) in arr(spec, group).iter().enumerate() {
            any = true;
            out.push(pod.container(c, &format!("{kind}/{name}: {prefix}.{group}[{ci}]")));
        }
    }
    if !any {
        return Err(err(format!("{kind}/{name} has no containers")));
    }
    Ok(())
}

/// A workload's pod spec, where its containers are read.
struct Pod<'a> {
    kind: &'a str,
    name: &'a str,
    /// The pod spec's path in the object ("spec", "spec.template.spec"...).
    prefix: &'a str,
    spec: &'a Value,
    file: &'a str,
}

impl Pod<'_> {
    /// The posture of container `c`, at path `cpath`.
    fn container(&self, c: &Value, cpath: &str) -> Posture {
        let (kind, name) = (self.kind, self.name);
        let null = Value::Null;
        let pod_sc = self.spec.get("securityContext").unwrap_or(&null);
        let cname = s(c, "name").unwrap_or("?");
        let mut p = Posture::new(format!("{kind}/{name} container {cname}"), Some(self.file));
        let sc = c.get("securityContext").unwrap_or(&null);
        let privileged = b(sc, "privileged").unwrap_or(false);
        p.privileged = Some(ev(
            privileged,
            format!("{cpath}.securityContext.privileged = {privileged}"),
        ));
        let capv = sc.get("capabilities").unwrap_or(&null);
        let add: Vec<String> = strings(capv, "add").iter().map(|x| cap_name(x)).collect();
        let drop: Vec<String> = strings(capv, "drop").iter().map(|x| cap_name(x)).collect();
        p.caps = Some(ev(
            effective_caps(privileged, &add, &drop),
            format!("{cpath}.securityContext.capabilities = {{add: {add:?}, drop: {drop:?}}} (on top of the runtime's default 14)"),
        ));
        p.shared_ns = self.shared_namespaces();
        let pick = |k: &str| sc.get(k).or_else(|| pod_sc.get(k));
        p.runs_as_root = match (pick("runAsUser").and_then(Value::as_i64), pick("runAsNonRoot").and_then(Value::as_bool)) {
            (Some(u), _) => Some(ev(u == 0, format!("{cpath}: runAsUser = {u}"))),
            (None, Some(true)) => Some(ev(false, format!("{cpath}: runAsNonRoot = true"))),
            _ => Some(ev(true, format!("{cpath}: neither runAsUser nor runAsNonRoot: the image's USER decides (root for most images)"))),
        };
        k8s_limits(c, cpath, &mut p);
        let ro = b(sc, "readOnlyRootFilesystem").unwrap_or(false);
        p.readonly_root = Some(ev(
            ro,
            format!("{cpath}.securityContext.readOnlyRootFilesystem = {ro}"),
        ));
        p.seccomp = Some(k8s_seccomp(sc, pod_sc, cpath));
        let ape = b(sc, "allowPrivilegeEscalation");
        p.no_new_privs = Some(ev(
            ape == Some(false),
            format!(
                "{cpath}.securityContext.allowPrivilegeEscalation = {}",
                ape.map(|x| x.to_string()).unwrap_or("unset (true)".into())
            ),
        ));
        if s(sc, "procMount") == Some("Unmasked") {
            let at = format!("{cpath}.securityContext.procMount = Unmasked");
            p.unmasked = Some(ev(
                MUST_MASK.iter().map(|m| m.to_string()).collect(),
                at.clone(),
            ));
            p.proc_sys_writable = Some(ev(true, at));
        }
        self.host_paths(c, cpath, &mut p);
        p
    }

    /// The host's namespaces the pod spec shares (every container shares them alike).
    fn shared_namespaces(&self) -> Vec<(&'static str, String)> {
        let (kind, name, prefix, spec) = (self.kind, self.name, self.prefix, self.spec);
        let mut shared = vec![];
        let host = |k: &str| b(spec, k).unwrap_or(false);
        if host("hostNetwork") {
            shared.push((
                "network",
                format!("{kind}/{name}: {prefix}.hostNetwork = true"),
            ));
            shared.push((
                "uts",
                format!("{kind}/{name}: {prefix}.hostNetwork = true (host UTS too)"),
            ));
        }
        if host("hostPID") {
            shared.push(("pid", format!("{kind}/{name}: {prefix}.hostPID = true")));
        }
        if host("hostIPC") {
            shared.push(("ipc", format!("{kind}/{name}: {prefix}.hostIPC = true")));
        }
        if b(spec, "hostUsers") != Some(false) {
            shared.push((
                "user",
                format!("{kind}/{name}: {prefix}.hostUsers is not false (no user namespace)"),
            ));
        }
        shared
    }

    /// The container's volume mounts of `hostPath` volumes: device nodes go to `p.devices`,
    /// everything else to `p.host_mounts`.
    fn host_paths(&self, c: &Value, cpath: &str, p: &mut Posture) {
        let prefix = self.prefix;
        let volumes = arr(self.spec, "volumes");
        for (mi, vm) in arr(c, "volumeMounts").iter().enumerate() {
            let vname = s(vm, "name").unwrap_or("");
            let Some((vi, hp)) = volumes
                .iter()
                .enumerate()
                .find(|(_, v)| s(v, "name") == Some(vname))
                .and_then(|(vi, v)| v.get("hostPath").map(|h| (vi, h)))
            else {
                continue;
            };
            let src = s(hp, "path").unwrap_or("").to_string();
            let dest = s(vm, "mountPath").unwrap_or("").to_string();
            let at = format!(
                "{cpath}.volumeMounts[{mi}] → {prefix}.volumes[{vi}].hostPath.path = {src:?}"
            );
            let htype = s(hp, "type").unwrap_or("");
            if (src.starts_with("/dev/") && src.len() > 5)
                || matches!(htype, "CharDevice" | "BlockDevice")
            {
                p.devices.push(ev(src.clone(), at.clone()));
                continue;
            }
            p.host_mounts.push(HostMount {
                writable: b(vm, "readOnly") != Some(true),
                shared_propagation: s(vm, "mountPropagation") == Some("Bidirectional"),
                at,
                source: src,
                destination: dest,
            });
        }
    }
}

/// Memory and CPU limits of the container's `resources.limits`.
fn k8s_limits(c: &Value, cpath: &str, p: &mut Posture) {
    let null = Value::Null;
    let limits = c
        .get("resources")
        .and_then(|r| r.get("limits"))
        .unwrap_or(&null);
    p.memory_limit = Some(match limits.get("memory") {
        Some(m) => ev(
            Some(k8s_quantity(m).unwrap_or(1)),
            format!("{cpath}.resources.limits.memory = {m}"),
        ),
        None => ev(None, format!("{cpath}.resources.limits.memory is not set")),
    });
    p.cpu_limit = Some(match limits.get("cpu") {
        Some(m) => ev(
            Some(m.to_string()),
            format!("{cpath}.resources.limits.cpu = {m}"),
        ),
        None => ev(None, format!("{cpath}.resources.limits.cpu is not set")),
    });
}

/// The container's seccompProfile, else the pod's.
fn k8s_seccomp(sc: &Value, pod_sc: &Value, cpath: &str) -> Ev<Seccomp> {
    let sp_type = sc
        .get("seccompProfile")
        .map(|x| (x, "securityContext"))
        .or_else(|| {
            pod_sc
                .get("seccompProfile")
                .map(|x| (x, "pod securityContext"))
        });
    match sp_type.and_then(|(x, w)| s(x, "type").map(|t| (t, w))) {
        Some(("Unconfined", w)) => ev(Seccomp::Unconfined, format!("{cpath}: {w}.seccompProfile.type = Unconfined")),
        Some((t @ "RuntimeDefault", w)) => ev(Seccomp::Filtered { blocks_keyctl: Some(true) }, format!("{cpath}: {w}.seccompProfile.type = {t}")),
        Some((t, w)) => ev(Seccomp::Filtered { blocks_keyctl: None }, format!("{cpath}: {w}.seccompProfile.type = {t}")),
        None => ev(Seccomp::Unconfined, format!("{cpath}: no seccompProfile (Kubernetes runs it Unconfined unless the kubelet's seccompDefault is on)")),
    }
}

/// A Kubernetes quantity ("512Mi", "1G", "1000") in bytes, if it parses.
fn k8s_quantity(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let t = v.as_str()?;
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().ok()?;
    let mul: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        _ => return None,
    };
    Some((n * mul) as u64)
}
