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

mod apply;
/// The host id ranges the policy hands out ([`crate::idpool`]).
pub use crate::idpool as ids;
#[cfg(test)]
mod tests;

pub use apply::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{config_err, Error, Result};

pub const DEFAULT_FILE: &str = "/etc/stockade/policy.json";
pub const ANNOTATION_PREFIX: &str = crate::spec::POLICY_ANNOTATION_PREFIX;
/// The id slot a policy-added user namespace holds (released at delete).
pub const ANNOTATION_ID_SLOT: &str = crate::spec::POLICY_ANNOTATION_ID_SLOT;

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

pub fn memory_bytes(v: &Value) -> std::result::Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .filter(|n| *n >= 4 << 20)
            .ok_or_else(|| "bytes, at least 4 MiB".to_string()),
        Value::String(s) => crate::spec::parse_size("limits.memory", s)
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
        // what the floor does not reach yet, said where the policy is shown
        out.insert(
            "notReached".into(),
            json!({"notes": [
                "userNamespace: a Kubernetes pod's app containers join the pause container's user namespace (found from the IPC or UTS namespace they join, NS_GET_USERNS); where the pause container has none (a rootfs that takes no idmapped mount, the host's pid namespace) they stay host root, said at create. Kubernetes' hostUsers: false pods (a user namespace joined by path, with matching maps) run as the kubelet asks",
                "limits: an unprivileged runtime adds none (it has no cgroup to enforce them in)"
            ]}),
        );
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
