//! The hardening policy: the seed's floor (§1 user namespace, §2-§4 capabilities, no_new_privs,
//! seccomp, masked /proc and /sys, limits, devices) applied to every config an engine hands in,
//! the way `stockade spec` and `sandbox` already build theirs.
//!
//! One function, [`apply`], runs on the config JSON of `create`/`run` (and [`apply_exec`] on the
//! process of `exec`) before anything is validated or created. Each rule either **raises** the
//! config to the floor (the change is returned, logged as a warning and recorded in the
//! container's annotations as `org.stockade.policy.RULE`), or **refuses** it (an error naming
//! the rule, the config field and the policy's origin). A built-in default holds when nothing is
//! configured; `/etc/stockade/policy.json` or `--policy FILE` adjusts it (each key given replaces
//! the default's); `--policy none` turns it off.
//!
//! The user namespace added by `userNamespace: auto` takes a host id range of its own from the
//! pool in [`ids`]; the engine then idmaps the rootfs (an overlay is rebuilt from idmapped layers,
//! see `rootfs::overlay`) and writable binds, so files keep their host owners.

pub mod ids;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{config_err, Error, Result};

pub const DEFAULT_FILE: &str = "/etc/stockade/policy.json";
pub const ANNOTATION_PREFIX: &str = "org.stockade.policy.";
/// The id slot a policy-added user namespace holds (released at delete).
pub const ANNOTATION_ID_SLOT: &str = "org.stockade.policy.idSlot";

/// What a rule does to a config that falls below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// change the config to meet the floor
    Raise,
    /// fail the create, naming the rule
    Refuse,
    /// leave it as it is
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserNs {
    /// a container without a user namespace gets one, with an id range of its own
    Auto,
    /// leave the config's choice
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unmappable {
    /// the rootfs cannot be idmapped: run without the added user namespace (warned)
    RunWithout,
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompRule {
    /// an unconfined config gets stockade's default profile; a given profile is kept
    DefaultIfUnconfined,
    /// an unconfined config is refused
    Require,
    /// unconfined is allowed
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LandlockRule {
    Optional,
    /// a config without an `org.stockade.landlock` annotation is refused
    Require,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// bytes, or a size such as "1g"; added where the config has none
    pub memory: Option<Value>,
    pub pids: Option<i64>,
    pub cpus: Option<f64>,
}

/// The policy file's shape: every key optional; a key given replaces the built-in default's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyFile {
    pub user_namespace: Option<UserNs>,
    pub unmappable_rootfs: Option<Unmappable>,
    pub privileged: Option<Action>,
    pub host_namespaces: Option<BTreeMap<String, Action>>,
    pub capability_ceiling: Option<Vec<String>>,
    pub capabilities_above_ceiling: Option<Action>,
    pub no_new_privileges: Option<Action>,
    pub seccomp: Option<SeccompRule>,
    pub masked_paths: Option<Action>,
    pub readonly_paths: Option<Action>,
    pub limits: Option<Limits>,
    pub block_devices: Option<Action>,
    pub allowed_devices: Option<Vec<String>>,
    pub landlock: Option<LandlockRule>,
    pub id_pool: Option<ids::Pool>,
}

/// Docker's 14 default capabilities but these.
pub const NOT_IN_CEILING: &[&str] = &["CAP_NET_RAW", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"];

/// The default ceiling: Docker's 14 minus NET_RAW, MKNOD, AUDIT_WRITE and SETFCAP.
pub fn default_ceiling() -> Vec<String> {
    stockade_seccomp::DOCKER_DEFAULT_CAPS
        .iter()
        .filter(|c| !NOT_IN_CEILING.contains(c))
        .map(|c| c.to_string())
        .collect()
}

/// The built-in floor.
pub fn builtin() -> PolicyFile {
    PolicyFile {
        user_namespace: Some(UserNs::Auto),
        unmappable_rootfs: Some(Unmappable::RunWithout),
        privileged: Some(Action::Refuse),
        host_namespaces: Some(BTreeMap::from([
            ("pid".into(), Action::Refuse),
            ("ipc".into(), Action::Refuse),
            ("uts".into(), Action::Refuse),
            // Kubernetes hostNetwork pods are common: the operator decides
            ("network".into(), Action::Allow),
            ("cgroup".into(), Action::Raise),
        ])),
        capability_ceiling: Some(default_ceiling()),
        capabilities_above_ceiling: Some(Action::Raise),
        no_new_privileges: Some(Action::Raise),
        seccomp: Some(SeccompRule::DefaultIfUnconfined),
        masked_paths: Some(Action::Raise),
        readonly_paths: Some(Action::Raise),
        limits: Some(Limits {
            memory: Some(json!("1g")),
            pids: Some(1024),
            cpus: None,
        }),
        block_devices: Some(Action::Refuse),
        allowed_devices: Some(vec![]),
        landlock: Some(LandlockRule::Optional),
        id_pool: Some(ids::Pool::from_subuid()),
    }
}

/// The effective policy and where each of its values came from.
#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: PolicyFile,
    pub origins: BTreeMap<String, String>,
    /// the file that set it (for error messages), or "built-in"
    pub source: String,
}

/// How `--policy` was given: a file, `none`, `default` (the built-in floor alone), or not at all
/// (then the default file if present).
pub fn load(flag: Option<&str>) -> Result<Option<Policy>> {
    let file = match flag {
        Some("none") => return Ok(None),
        Some("default") => None,
        Some(f) => Some(PathBuf::from(f)),
        None => Path::new(DEFAULT_FILE)
            .exists()
            .then(|| PathBuf::from(DEFAULT_FILE)),
    };
    let mut rules = builtin();
    let mut origins: BTreeMap<String, String> = BTreeMap::new();
    let defaults = serde_json::to_value(&rules).expect("serializable");
    for k in defaults.as_object().expect("object").keys() {
        origins.insert(k.clone(), "built-in".into());
    }
    let mut source = "built-in".to_string();
    if let Some(f) = file {
        let text = std::fs::read_to_string(&f)
            .map_err(|e| config_err(&f, "", format!("cannot read the policy: {e}")))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let given: PolicyFile = serde_path_to_error::deserialize(de)
            .map_err(|e| config_err(&f, e.path().to_string(), e.inner().to_string()))?;
        let gv = serde_json::to_value(&given).expect("serializable");
        let mut merged = defaults;
        for (k, v) in gv.as_object().expect("object") {
            if !v.is_null() {
                merged[k] = v.clone();
                origins.insert(k.clone(), f.display().to_string());
            }
        }
        rules = serde_json::from_value(merged).expect("merged from valid parts");
        check_rules(&rules, &f)?;
        source = f.display().to_string();
    }
    Ok(Some(Policy {
        rules,
        origins,
        source,
    }))
}

/// Conflicting or meaningless rules are errors of the policy file, not of a container.
fn check_rules(p: &PolicyFile, f: &Path) -> Result<()> {
    for c in p.capability_ceiling.iter().flatten() {
        if <caps::Capability as std::str::FromStr>::from_str(&crate::capabilities::cap_name(c))
            .is_err()
        {
            return Err(config_err(
                f,
                "capabilityCeiling",
                format!("{c:?} is not a capability"),
            ));
        }
    }
    for (ns, a) in p.host_namespaces.iter().flatten() {
        if !["pid", "ipc", "uts", "network", "cgroup", "time"].contains(&ns.as_str()) {
            return Err(config_err(
                f,
                format!("hostNamespaces.{ns}"),
                "use pid, ipc, uts, network, cgroup or time (mount and user are not optional)",
            ));
        }
        if ns == "network" && *a == Action::Raise {
            return Err(config_err(
                f,
                "hostNamespaces.network",
                "raise would cut a host-network container off the network: use refuse or allow",
            ));
        }
    }
    if p.privileged == Some(Action::Allow) && p.seccomp == Some(SeccompRule::Require) {
        return Err(config_err(
            f,
            "privileged",
            "allow conflicts with seccomp: require (a privileged container has no filter)",
        ));
    }
    if let Some(l) = &p.limits {
        if let Some(m) = &l.memory {
            memory_bytes(m).map_err(|e| config_err(f, "limits.memory", e))?;
        }
        if l.pids.is_some_and(|p| p <= 0) {
            return Err(config_err(f, "limits.pids", "must be positive"));
        }
        if l.cpus.is_some_and(|c| !(0.01..=4096.0).contains(&c)) {
            return Err(config_err(
                f,
                "limits.cpus",
                "must be between 0.01 and 4096",
            ));
        }
    }
    if let Some(pool) = &p.id_pool {
        pool.check().map_err(|e| config_err(f, "idPool", e))?;
    }
    Ok(())
}

fn memory_bytes(v: &Value) -> std::result::Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .filter(|n| *n >= 4 << 20)
            .ok_or_else(|| "bytes, at least 4 MiB".to_string()),
        Value::String(s) => crate::sandbox::parse_size("limits.memory", s)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                if b >= 4 << 20 {
                    Ok(b)
                } else {
                    Err("at least 4 MiB".into())
                }
            }),
        _ => Err("a number of bytes or a size such as \"1g\"".into()),
    }
}

impl Policy {
    /// `policy show`: every value with its origin.
    pub fn show(&self) -> Value {
        let v = serde_json::to_value(&self.rules).expect("serializable");
        let mut out = serde_json::Map::new();
        for (k, val) in v.as_object().expect("object") {
            out.insert(
                k.clone(),
                json!({"value": val, "origin": self.origins.get(k).cloned().unwrap_or_default()}),
            );
        }
        Value::Object(out)
    }

    fn refuse(&self, config: &Path, field: &str, rule: &str, why: String) -> Error {
        config_err(
            config,
            field,
            format!(
                "refused by policy rule {rule} (from {}): {why}",
                self.origins
                    .get(rule)
                    .map(String::as_str)
                    .unwrap_or(&self.source)
            ),
        )
    }
}

/// One change a rule made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub rule: String,
    pub field: String,
    pub what: String,
}

/// What applying the policy decided beyond the changes made to the JSON.
#[derive(Debug, Default)]
pub struct Outcome {
    pub changes: Vec<Change>,
    /// a user namespace is to be added: the caller allocates its range ([`ids::allocate`]) and
    /// calls [`set_id_maps`]
    pub add_user_ns: bool,
}

fn namespaces(v: &Value) -> Vec<(String, bool)> {
    v["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| Some((n["type"].as_str()?.to_string(), n.get("path").is_some())))
        .collect()
}

fn push_namespace(v: &mut Value, ns: &str) {
    if !v["linux"]["namespaces"].is_array() {
        v["linux"]["namespaces"] = json!([]);
    }
    v["linux"]["namespaces"]
        .as_array_mut()
        .expect("array")
        .push(json!({ "type": ns }));
}

fn cap_list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(crate::capabilities::cap_name))
        .collect()
}

/// Is this config what Docker/Podman `--privileged` or Kubernetes `privileged: true` produce:
/// every capability, and no seccomp filter?
pub fn is_privileged(v: &Value) -> bool {
    let bounding = cap_list(&v["process"]["capabilities"]["bounding"]);
    bounding.contains(&"CAP_SYS_ADMIN".to_string())
        && bounding.len() >= 38
        && v["linux"]["seccomp"].is_null()
}

/// Raise or refuse `v` (the config.json of `config`) against the policy.
pub fn apply(p: &Policy, v: &mut Value, config: &Path) -> Result<Outcome> {
    let r = &p.rules;
    let mut out = Outcome::default();
    let mut change = |rule: &str, field: &str, what: String| {
        out.changes.push(Change {
            rule: rule.into(),
            field: field.into(),
            what,
        })
    };
    if !v["linux"].is_object() {
        v["linux"] = json!({});
    }
    if !v["process"].is_object() {
        // validation names the missing process; nothing to raise
        return Ok(out);
    }

    // privileged: refuse, or raise (the rules below then bring it to the floor)
    let privileged = is_privileged(v);
    match (privileged, r.privileged) {
        (true, Some(Action::Refuse)) => {
            return Err(p.refuse(
                config,
                "process.capabilities",
                "privileged",
                "a privileged container (all capabilities, no seccomp filter) is not allowed here"
                    .into(),
            ))
        }
        (true, Some(Action::Raise)) => change(
            "privileged",
            "process.capabilities",
            "privileged container run with the policy's floor instead".into(),
        ),
        _ => {}
    }
    let privileged_allowed = privileged && r.privileged == Some(Action::Allow);

    // host namespaces: a namespace type missing from the config is the host's
    let present = namespaces(v);
    for (ns, action) in r.host_namespaces.iter().flatten() {
        if present.iter().any(|(t, _)| t == ns) {
            continue;
        }
        match action {
            Action::Allow => {}
            Action::Refuse => {
                return Err(p.refuse(
                    config,
                    "linux.namespaces",
                    "hostNamespaces",
                    format!(
                        "the host's {ns} namespace is not allowed (add {{\"type\": \"{ns}\"}})"
                    ),
                ))
            }
            Action::Raise => {
                push_namespace(v, ns);
                change(
                    "hostNamespaces",
                    "linux.namespaces",
                    format!("added a {ns} namespace"),
                );
            }
        }
    }

    // the user namespace
    if r.user_namespace == Some(UserNs::Auto) && !present.iter().any(|(t, _)| t == "user") {
        // A new user namespace cannot mount /proc for the host's pid namespace (its procfs
        // belongs to the host's user namespace): such a container runs without one, said.
        let now = namespaces(v);
        let pid_new = now.iter().any(|(t, _)| t == "pid");
        // A network namespace joined by path (Docker's bridge, a CNI pod network) is entered by
        // the runtime before the new user namespace exists (as runc's nsexec does). Another
        // container's IPC, UTS, PID or mount namespace (a Kubernetes pod's pause container) is
        // not: the pod would need one user namespace shared by its containers, which is not
        // built yet, and a container of its own could not mount its /dev/mqueue there.
        let joined: Vec<&str> = (now.iter())
            .filter(|(t, by_path)| *by_path && t != "user" && t != "network")
            .map(|(t, _)| t.as_str())
            .collect();
        if !joined.is_empty() {
            change(
                "userNamespace",
                "linux.namespaces",
                format!(
                    "NOT added: the container joins the {} namespace(s) of another container by path (a pod), whose user namespace it would have to share",
                    joined.join(", ")
                ),
            );
        } else if pid_new {
            out.add_user_ns = true;
        } else {
            change(
                "userNamespace",
                "linux.namespaces",
                "NOT added: the container shares the host's pid namespace, whose /proc a new user namespace may not mount".into(),
            );
        }
    }

    if !privileged_allowed {
        // capabilities above the ceiling
        if let Some(ceiling) = &r.capability_ceiling {
            let ceiling: Vec<String> = ceiling
                .iter()
                .map(|c| crate::capabilities::cap_name(c))
                .collect();
            let caps = &mut v["process"]["capabilities"];
            let mut dropped: Vec<String> = vec![];
            for set in crate::capabilities::SETS {
                let have = cap_list(&caps[set]);
                if caps[set].is_null() {
                    continue;
                }
                let over: Vec<String> = have
                    .iter()
                    .filter(|c| !ceiling.contains(c))
                    .cloned()
                    .collect();
                if over.is_empty() {
                    continue;
                }
                if r.capabilities_above_ceiling == Some(Action::Refuse) {
                    return Err(p.refuse(
                        config,
                        &format!("process.capabilities.{set}"),
                        "capabilityCeiling",
                        format!("{} above the ceiling", over.join(", ")),
                    ));
                }
                if r.capabilities_above_ceiling == Some(Action::Allow) {
                    continue;
                }
                caps[set] = json!(have
                    .iter()
                    .filter(|c| ceiling.contains(c))
                    .collect::<Vec<_>>());
                for c in over {
                    if !dropped.contains(&c) {
                        dropped.push(c);
                    }
                }
            }
            dropped.sort();
            if !dropped.is_empty() {
                change(
                    "capabilityCeiling",
                    "process.capabilities",
                    format!("dropped {}", dropped.join(", ")),
                );
            }
        }
        // no_new_privs
        if v["process"]["noNewPrivileges"] != json!(true) {
            match r.no_new_privileges {
                Some(Action::Raise) => {
                    v["process"]["noNewPrivileges"] = json!(true);
                    change(
                        "noNewPrivileges",
                        "process.noNewPrivileges",
                        "set to true".into(),
                    );
                }
                Some(Action::Refuse) => {
                    return Err(p.refuse(
                        config,
                        "process.noNewPrivileges",
                        "noNewPrivileges",
                        "must be true".into(),
                    ))
                }
                _ => {}
            }
        }
        // seccomp
        if v["linux"]["seccomp"].is_null() {
            match r.seccomp {
                Some(SeccompRule::DefaultIfUnconfined) => {
                    let caps = cap_list(&v["process"]["capabilities"]["bounding"]);
                    v["linux"]["seccomp"] = crate::spec::default_seccomp(&caps);
                    change(
                        "seccomp",
                        "linux.seccomp",
                        "unconfined: stockade's default profile added".into(),
                    );
                }
                Some(SeccompRule::Require) => {
                    return Err(p.refuse(
                        config,
                        "linux.seccomp",
                        "seccomp",
                        "a seccomp profile is required".into(),
                    ))
                }
                _ => {}
            }
        }
        // masked and read-only paths
        for (rule, key, floor) in [
            ("maskedPaths", "maskedPaths", crate::spec::MASKED_PATHS),
            (
                "readonlyPaths",
                "readonlyPaths",
                crate::spec::READONLY_PATHS,
            ),
        ] {
            let action = if rule == "maskedPaths" {
                r.masked_paths
            } else {
                r.readonly_paths
            };
            let have: Vec<String> = v["linux"][key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect();
            let missing: Vec<&str> = floor
                .iter()
                .copied()
                .filter(|f| !have.iter().any(|h| h == f))
                .collect();
            if missing.is_empty() {
                continue;
            }
            match action {
                Some(Action::Raise) => {
                    let mut all = have.clone();
                    all.extend(missing.iter().map(|s| s.to_string()));
                    v["linux"][key] = json!(all);
                    change(
                        rule,
                        &format!("linux.{key}"),
                        format!("added {}", missing.join(", ")),
                    );
                }
                Some(Action::Refuse) => {
                    return Err(p.refuse(
                        config,
                        &format!("linux.{key}"),
                        rule,
                        format!("missing {}", missing.join(", ")),
                    ))
                }
                _ => {}
            }
        }
        // devices
        devices(p, v, config, &mut change)?;
    }

    // limits where absent (a privileged container allowed as such still gets them)
    if let Some(l) = &r.limits {
        let res = &mut v["linux"]["resources"];
        if !res.is_object() {
            *res = json!({});
        }
        if let Some(m) = &l.memory {
            let lim = res["memory"]["limit"].as_i64().unwrap_or(0);
            if lim <= 0 {
                let bytes = memory_bytes(m).expect("checked at load");
                if !res["memory"].is_object() {
                    res["memory"] = json!({});
                }
                res["memory"]["limit"] = json!(bytes);
                if res["memory"]["swap"].as_i64().unwrap_or(0) <= 0 {
                    res["memory"]["swap"] = json!(bytes);
                }
                change(
                    "limits",
                    "linux.resources.memory.limit",
                    format!("none: set to {bytes}"),
                );
            }
        }
        if let Some(pids) = l.pids {
            if res["pids"]["limit"].as_i64().unwrap_or(0) <= 0 {
                res["pids"] = json!({"limit": pids});
                change(
                    "limits",
                    "linux.resources.pids.limit",
                    format!("none: set to {pids}"),
                );
            }
        }
        if let Some(c) = l.cpus {
            if res["cpu"]["quota"].as_i64().unwrap_or(0) <= 0 {
                if !res["cpu"].is_object() {
                    res["cpu"] = json!({});
                }
                let period = res["cpu"]["period"]
                    .as_u64()
                    .unwrap_or(crate::spec::DEFAULT_CPU_PERIOD);
                res["cpu"]["period"] = json!(period);
                res["cpu"]["quota"] = json!((c * period as f64) as i64);
                change(
                    "limits",
                    "linux.resources.cpu.quota",
                    format!("none: {c} CPUs"),
                );
            }
        }
    }

    if r.landlock == Some(LandlockRule::Require)
        && v["annotations"][crate::landlock::ANNOTATION].is_null()
    {
        return Err(p.refuse(
            config,
            &format!("annotations.{}", crate::landlock::ANNOTATION),
            "landlock",
            "a Landlock ruleset is required".into(),
        ));
    }

    // record what was changed, per rule
    let mut per_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in &out.changes {
        per_rule
            .entry(c.rule.clone())
            .or_default()
            .push(format!("{}: {}", c.field, c.what));
    }
    if !per_rule.is_empty() {
        if !v["annotations"].is_object() {
            v["annotations"] = json!({});
        }
        for (rule, list) in per_rule {
            v["annotations"][format!("{ANNOTATION_PREFIX}{rule}")] = json!(list.join("; "));
        }
    }
    Ok(out)
}

fn devices(
    p: &Policy,
    v: &mut Value,
    config: &Path,
    change: &mut impl FnMut(&str, &str, String),
) -> Result<()> {
    let allowed = p.rules.allowed_devices.clone().unwrap_or_default();
    let action = p.rules.block_devices.unwrap_or(Action::Allow);
    if action == Action::Allow {
        return Ok(());
    }
    // host block devices created in the container
    if let Some(list) = v["linux"]["devices"].as_array_mut() {
        let mut kept = vec![];
        for (i, d) in list.iter().enumerate() {
            let path = d["path"].as_str().unwrap_or_default();
            if d["type"] == "b" && !allowed.iter().any(|a| a == path) {
                if action == Action::Refuse {
                    return Err(p.refuse(
                        config,
                        &format!("linux.devices[{i}]"),
                        "blockDevices",
                        format!(
                            "host block device {path} (allowedDevices lists the permitted ones)"
                        ),
                    ));
                }
                change("blockDevices", "linux.devices", format!("removed {path}"));
                continue;
            }
            kept.push(d.clone());
        }
        *list = kept;
    }
    // device cgroup rules that open block devices (or all devices) for reading or writing
    if let Some(list) = v["linux"]["resources"]["devices"].as_array_mut() {
        let mut raised = false;
        for (i, d) in list.iter_mut().enumerate() {
            let typ = d["type"].as_str().unwrap_or("a");
            let access = d["access"].as_str().unwrap_or("rwm");
            if d["allow"] == json!(true)
                && (typ == "a" || typ == "b")
                && (access.contains('r') || access.contains('w'))
                && d["major"].is_null()
            {
                if action == Action::Refuse {
                    return Err(p.refuse(
                        config,
                        &format!("linux.resources.devices[{i}]"),
                        "blockDevices",
                        format!(
                            "allows {access} on every {} device",
                            if typ == "a" { "" } else { "block" }
                        ),
                    ));
                }
                d["allow"] = json!(false);
                raised = true;
            }
        }
        if raised {
            change(
                "blockDevices",
                "linux.resources.devices",
                "allow-all device rules turned to deny".into(),
            );
        }
    }
    Ok(())
}

/// The process of `exec` meets the same ceiling and no_new_privs.
pub fn apply_exec(p: &Policy, process: &mut Value, what: &Path) -> Result<Vec<Change>> {
    let mut wrapped = json!({"process": process.clone(), "linux": {"seccomp": {}, "namespaces": [{"type": "user"}, {"type":"pid"}, {"type":"ipc"}, {"type":"uts"}, {"type":"network"}, {"type":"cgroup"}], "maskedPaths": crate::spec::MASKED_PATHS, "readonlyPaths": crate::spec::READONLY_PATHS}});
    let mut rules = p.clone();
    rules.rules.limits = None;
    rules.rules.landlock = None;
    rules.rules.privileged = Some(Action::Allow);
    let out = apply(&rules, &mut wrapped, what)?;
    *process = wrapped["process"].take();
    Ok(out.changes)
}

/// Give the config the user namespace and maps of an allocated range: container 0.. → the
/// range; the rootfs and writable binds are idmapped by the engine.
pub fn set_id_maps(v: &mut Value, range: &ids::Range) {
    push_namespace(v, "user");
    let map = json!([{"containerID": 0, "hostID": range.start, "size": range.size}]);
    v["linux"]["uidMappings"] = map.clone();
    v["linux"]["gidMappings"] = map;
    if !v["annotations"].is_object() {
        v["annotations"] = json!({});
    }
    // Docker's `net.ipv4.ping_group_range = "0 2147483647"` ("every group may ping") names gids
    // a new network namespace under this user namespace cannot map: the same meaning there is
    // the mapped range. (A namespace joined by path keeps the value: the runtime writes it.)
    let own_netns = v["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|n| n["type"] == "network" && n.get("path").is_none());
    if own_netns {
        if let Some(val) = v["linux"]["sysctl"]["net.ipv4.ping_group_range"]
            .as_str()
            .map(String::from)
        {
            let max = range.size - 1;
            let clamp = |x: &str| x.parse::<u64>().map(|n| n.min(max as u64)).ok();
            let mut it = val.split_whitespace();
            if let (Some(lo), Some(hi)) = (it.next().and_then(clamp), it.next().and_then(clamp)) {
                let new = format!("{lo} {hi}");
                if new != val {
                    v["linux"]["sysctl"]["net.ipv4.ping_group_range"] = json!(new);
                    v["annotations"][format!("{ANNOTATION_PREFIX}sysctl")] = json!(format!(
                        "linux.sysctl.net.ipv4.ping_group_range: {val:?} -> {new:?} (the gids the added user namespace maps)"
                    ));
                }
            }
        }
    }
    v["annotations"][ANNOTATION_ID_SLOT] = json!(range.slot.to_string());
    v["annotations"][format!("{ANNOTATION_PREFIX}userNamespace")] = json!(format!(
        "linux.namespaces: added a user namespace, container 0 = host {} ({} ids)",
        range.start, range.size
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            rules: builtin(),
            origins: BTreeMap::new(),
            source: "built-in".into(),
        }
    }

    /// The shape of what Docker 20.10 hands in for `docker run busybox`.
    fn docker_like() -> Value {
        json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {
                    "bounding": stockade_seccomp::DOCKER_DEFAULT_CAPS,
                    "effective": ["CAP_CHOWN","CAP_NET_RAW"], "permitted": ["CAP_CHOWN","CAP_NET_RAW"]}},
            "root": {"path": "/var/lib/docker/overlay2/x/merged"},
            "linux": {
                // `--network none`: a bridge network is a namespace joined by path (no user
                // namespace can be added then, see the test below)
                "namespaces": [{"type": "mount"}, {"type": "network"}, {"type": "uts"}, {"type": "pid"}, {"type": "ipc"}],
                "maskedPaths": ["/proc/kcore"],
                "readonlyPaths": ["/proc/sys"],
                "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []},
                "resources": {"devices": [{"allow": false, "access": "rwm"}], "memory": {"limit": 0}}
            }
        })
    }

    /// A pod's container joins the pause container's IPC and UTS namespaces (containerd's CRI):
    /// no user namespace is added (the pod would have to share one), and the change says why. A
    /// network namespace joined by path alone (Docker's bridge) still gets one.
    #[test]
    fn no_user_namespace_is_added_to_a_config_joining_namespaces_by_path() {
        let mut v = docker_like();
        v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"},
            {"type": "network", "path": "/var/run/netns/cni-1"}, {"type": "ipc", "path": "/proc/42/ns/ipc"}]);
        let out = apply(&policy(), &mut v, Path::new("config.json")).unwrap();
        assert!(!out.add_user_ns);
        assert!(
            out.changes
                .iter()
                .any(|c| c.rule == "userNamespace" && c.what.contains("ipc")),
            "{:?}",
            out.changes
        );

        // the network namespace alone, joined by path: entered before the user namespace
        let mut v = docker_like();
        v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"},
            {"type": "network", "path": "/var/run/netns/cni-1"}, {"type": "ipc"}]);
        assert!(
            apply(&policy(), &mut v, Path::new("config.json"))
                .unwrap()
                .add_user_ns
        );
    }

    #[test]
    fn a_docker_config_is_raised_to_the_floor() {
        let mut v = docker_like();
        let out = apply(&policy(), &mut v, Path::new("config.json")).unwrap();
        assert!(out.add_user_ns);
        let b = cap_list(&v["process"]["capabilities"]["bounding"]);
        assert_eq!(b.len(), 10);
        assert!(!b.contains(&"CAP_NET_RAW".into()) && !b.contains(&"CAP_MKNOD".into()));
        assert_eq!(
            cap_list(&v["process"]["capabilities"]["effective"]),
            vec!["CAP_CHOWN"]
        );
        assert_eq!(v["process"]["noNewPrivileges"], true);
        // a given profile is kept
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(v["linux"]["maskedPaths"].as_array().unwrap().len() > 10);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 1i64 << 30);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 1024);
        assert!(v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "cgroup"));
        let ann = v["annotations"].as_object().unwrap();
        assert!(ann["org.stockade.policy.capabilityCeiling"]
            .as_str()
            .unwrap()
            .contains("CAP_NET_RAW"));
        assert!(ann.contains_key("org.stockade.policy.limits"));
        // applying again changes nothing more (idempotent)
        let mut again = v.clone();
        let out2 = apply(&policy(), &mut again, Path::new("config.json")).unwrap();
        assert!(out2.changes.is_empty(), "{:?}", out2.changes);
    }

    #[test]
    fn privileged_and_host_namespaces_are_refused_naming_the_rule() {
        let mut v = docker_like();
        v["process"]["capabilities"]["bounding"] = json!(caps::all()
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>());
        v["linux"]["seccomp"] = Value::Null;
        let e = apply(&policy(), &mut v, Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("policy rule privileged") && e.contains("c.json"),
            "{e}"
        );
        let mut v = docker_like();
        v["linux"]["namespaces"] =
            json!([{"type": "mount"}, {"type": "network"}, {"type": "uts"}, {"type": "ipc"}]);
        let e = apply(&policy(), &mut v, Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux.namespaces") && e.contains("hostNamespaces") && e.contains("pid"),
            "{e}"
        );
    }

    #[test]
    fn unconfined_gets_the_default_profile_and_block_devices_are_refused() {
        let mut v = docker_like();
        v["linux"]["seccomp"] = Value::Null;
        apply(&policy(), &mut v, Path::new("c")).unwrap();
        assert!(v["linux"]["seccomp"]["syscalls"].as_array().unwrap().len() > 10);
        let mut v = docker_like();
        v["linux"]["devices"] = json!([{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}]);
        let e = apply(&policy(), &mut v, Path::new("c"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux.devices[0]") && e.contains("/dev/sda"),
            "{e}"
        );
        let mut p = policy();
        p.rules.allowed_devices = Some(vec!["/dev/sda".into()]);
        let mut v2 = docker_like();
        v2["linux"]["devices"] = v["linux"]["devices"].clone();
        apply(&p, &mut v2, Path::new("c")).unwrap();
    }

    #[test]
    fn exec_processes_meet_the_ceiling() {
        let mut proc = json!({"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": {"bounding": ["CAP_SYS_ADMIN", "CAP_KILL"], "effective": ["CAP_SYS_ADMIN"]}});
        let ch = apply_exec(&policy(), &mut proc, Path::new("exec")).unwrap();
        assert_eq!(
            cap_list(&proc["capabilities"]["bounding"]),
            vec!["CAP_KILL"]
        );
        assert_eq!(proc["noNewPrivileges"], true);
        assert_eq!(ch.len(), 2);
    }

    #[test]
    fn policy_files_are_checked_naming_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.json");
        for (text, field) in [
            (r#"{"privileged": "maybe"}"#, "privileged"),
            (r#"{"capabilityCeiling": ["CAP_FLY"]}"#, "capabilityCeiling"),
            (
                r#"{"hostNamespaces": {"mount": "allow"}}"#,
                "hostNamespaces.mount",
            ),
            (r#"{"limits": {"memory": "1k"}}"#, "limits.memory"),
            (r#"{"bogus": 1}"#, ""),
            (
                r#"{"privileged": "allow", "seccomp": "require"}"#,
                "privileged",
            ),
            (
                r#"{"idPool": {"start": 0, "count": 10, "size": 65536}}"#,
                "idPool",
            ),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = load(Some(f.to_str().unwrap())).unwrap_err().to_string();
            assert!(e.contains("p.json") && e.contains(field), "{text}: {e}");
        }
        std::fs::write(&f, r#"{"privileged": "raise"}"#).unwrap();
        let p = load(Some(f.to_str().unwrap())).unwrap().unwrap();
        assert_eq!(p.rules.privileged, Some(Action::Raise));
        let shown = p.show();
        assert!(shown["privileged"]["origin"]
            .as_str()
            .unwrap()
            .ends_with("p.json"));
        assert_eq!(shown["seccomp"]["origin"], "built-in");
        assert!(load(Some("none")).unwrap().is_none());
    }
}
