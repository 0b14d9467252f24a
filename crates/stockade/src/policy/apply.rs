//! [`apply`]: the rules raising or refusing a config (and [`apply_exec`] an exec process), and
//! [`set_id_maps`] for the user namespace an allocated id range gives.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use super::*;
use crate::error::Result;

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

pub(super) fn cap_list(v: &Value) -> Vec<String> {
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
