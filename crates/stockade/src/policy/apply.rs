//! [`apply`]: the rules raising or refusing a config, a table (`RULES`) run in order;
//! [`apply_exec`] the same for an exec process; [`set_id_maps`] for the user namespace an
//! allocated id range gives.

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
    /// a pod's container: it joins another container's IPC/UTS namespace at this path, and is
    /// to join the user namespace that owns it (the caller finds it, `NS_GET_USERNS`, and calls
    /// [`set_joined_user_ns`]; a namespace the host's user namespace owns adds nothing)
    pub join_user_of: Option<String>,
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

/// What the rules of one [`apply`] share: the policy, the config being raised, and what has been
/// decided so far.
struct Ctx<'a> {
    p: &'a Policy,
    v: &'a mut Value,
    config: &'a Path,
    out: Outcome,
    /// the rule running now: its changes and refusals name it
    rule: &'static str,
    /// the config is privileged ([`is_privileged`])
    privileged: bool,
    /// the namespaces the config came with (type, joined by path)
    present: Vec<(String, bool)>,
}

impl<'a> Ctx<'a> {
    fn rules(&self) -> &'a PolicyFile {
        &self.p.rules
    }

    fn change(&mut self, field: &str, what: String) {
        self.out.changes.push(Change {
            rule: self.rule.into(),
            field: field.into(),
            what,
        })
    }

    fn refuse(&self, field: &str, why: String) -> Error {
        self.p.refuse(self.config, field, self.rule, why)
    }
}

/// One rule of the policy: its name (as its changes, refusals and annotations say it), whether a
/// privileged container the policy allows as such is left alone by it, and what it does.
struct Rule {
    name: &'static str,
    spares_allowed_privileged: bool,
    apply: fn(&mut Ctx) -> Result<()>,
}

const fn rule(name: &'static str, apply: fn(&mut Ctx) -> Result<()>) -> Rule {
    Rule {
        name,
        spares_allowed_privileged: false,
        apply,
    }
}

/// A rule of the floor that a privileged container allowed as such does not get.
const fn floor(name: &'static str, apply: fn(&mut Ctx) -> Result<()>) -> Rule {
    Rule {
        name,
        spares_allowed_privileged: true,
        apply,
    }
}

/// Every rule, in the order they run: the first refusal ends the run.
static RULES: &[Rule] = &[
    // privileged: refuse, or raise (the rules below then bring it to the floor)
    rule("privileged", privileged),
    rule("hostNamespaces", host_namespaces),
    rule("userNamespace", user_namespace),
    floor("capabilityCeiling", capability_ceiling),
    floor("noNewPrivileges", no_new_privileges),
    floor("seccomp", seccomp),
    floor("maskedPaths", masked_paths),
    floor("readonlyPaths", readonly_paths),
    floor("blockDevices", devices),
    // limits where absent (a privileged container allowed as such still gets them)
    rule("limits", limits),
    rule("landlock", landlock),
];

/// Raise or refuse `v` (the config.json of `config`) against the policy: each rule of [`RULES`]
/// in turn, then what was changed recorded in the annotations.
pub fn apply(p: &Policy, v: &mut Value, config: &Path) -> Result<Outcome> {
    if !v["linux"].is_object() {
        v["linux"] = json!({});
    }
    if !v["process"].is_object() {
        // validation names the missing process; nothing to raise
        return Ok(Outcome::default());
    }
    let privileged = is_privileged(v);
    let privileged_allowed = privileged && p.rules.privileged == Some(Action::Allow);
    let present = namespaces(v);
    let mut cx = Ctx {
        p,
        v,
        config,
        out: Outcome::default(),
        rule: "",
        privileged,
        present,
    };
    for r in RULES {
        if r.spares_allowed_privileged && privileged_allowed {
            continue;
        }
        cx.rule = r.name;
        (r.apply)(&mut cx)?;
    }
    record(&cx.out.changes, cx.v);
    Ok(cx.out)
}

fn privileged(cx: &mut Ctx) -> Result<()> {
    match (cx.privileged, cx.rules().privileged) {
        (true, Some(Action::Refuse)) => Err(cx.refuse(
            "process.capabilities",
            "a privileged container (all capabilities, no seccomp filter) is not allowed here"
                .into(),
        )),
        (true, Some(Action::Raise)) => {
            cx.change(
                "process.capabilities",
                "privileged container run with the policy's floor instead".into(),
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A namespace type missing from the config is the host's.
fn host_namespaces(cx: &mut Ctx) -> Result<()> {
    for (ns, action) in cx.rules().host_namespaces.iter().flatten() {
        if cx.present.iter().any(|(t, _)| t == ns) {
            continue;
        }
        match action {
            Action::Allow => {}
            Action::Refuse => {
                return Err(cx.refuse(
                    "linux.namespaces",
                    format!(
                        "the host's {ns} namespace is not allowed (add {{\"type\": \"{ns}\"}})"
                    ),
                ))
            }
            Action::Raise => {
                push_namespace(cx.v, ns);
                cx.change("linux.namespaces", format!("added a {ns} namespace"));
            }
        }
    }
    Ok(())
}

fn user_namespace(cx: &mut Ctx) -> Result<()> {
    if cx.rules().user_namespace != Some(UserNs::Auto)
        || cx.present.iter().any(|(t, _)| t == "user")
    {
        return Ok(());
    }
    // A new user namespace cannot mount /proc for the host's pid namespace (its procfs
    // belongs to the host's user namespace): such a container runs without one, said.
    let now = namespaces(cx.v);
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
    // A pod's app container joins the pause container's IPC/UTS namespaces: it joins the user
    // namespace that owns them too (the pause container's, added by this rule), found at create.
    let pod_ns = (cx.v["linux"]["namespaces"].as_array().into_iter().flatten())
        .find(|n| (n["type"] == "ipc" || n["type"] == "uts") && n.get("path").is_some())
        .and_then(|n| n["path"].as_str().map(String::from));
    let only_pod_kinds = joined.iter().all(|t| ["ipc", "uts"].contains(t));
    if let (Some(path), true) = (pod_ns, only_pod_kinds && !joined.is_empty()) {
        cx.out.join_user_of = Some(path);
    } else if !joined.is_empty() {
        cx.change(
            "linux.namespaces",
            format!(
                "NOT added: the container joins the {} namespace(s) of another container by path, whose user namespace it would have to share",
                joined.join(", ")
            ),
        );
    } else if pid_new {
        cx.out.add_user_ns = true;
    } else {
        cx.change(
            "linux.namespaces",
            "NOT added: the container shares the host's pid namespace, whose /proc a new user namespace may not mount".into(),
        );
    }
    Ok(())
}

/// Capabilities above the ceiling.
fn capability_ceiling(cx: &mut Ctx) -> Result<()> {
    let r = cx.rules();
    let Some(ceiling) = &r.capability_ceiling else {
        return Ok(());
    };
    let ceiling: Vec<String> = ceiling
        .iter()
        .map(|c| crate::capabilities::cap_name(c))
        .collect();
    let caps = &mut cx.v["process"]["capabilities"];
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
            return Err(cx.p.refuse(
                cx.config,
                &format!("process.capabilities.{set}"),
                cx.rule,
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
        cx.change(
            "process.capabilities",
            format!("dropped {}", dropped.join(", ")),
        );
    }
    Ok(())
}

fn no_new_privileges(cx: &mut Ctx) -> Result<()> {
    if cx.v["process"]["noNewPrivileges"] == json!(true) {
        return Ok(());
    }
    match cx.rules().no_new_privileges {
        Some(Action::Raise) => {
            cx.v["process"]["noNewPrivileges"] = json!(true);
            cx.change("process.noNewPrivileges", "set to true".into());
        }
        Some(Action::Refuse) => {
            return Err(cx.refuse("process.noNewPrivileges", "must be true".into()))
        }
        _ => {}
    }
    Ok(())
}

fn seccomp(cx: &mut Ctx) -> Result<()> {
    if !cx.v["linux"]["seccomp"].is_null() {
        return Ok(());
    }
    match cx.rules().seccomp {
        Some(SeccompRule::DefaultIfUnconfined) => {
            let caps = cap_list(&cx.v["process"]["capabilities"]["bounding"]);
            cx.v["linux"]["seccomp"] = crate::spec::default_seccomp(&caps);
            cx.change(
                "linux.seccomp",
                "unconfined: stockade's default profile added".into(),
            );
        }
        Some(SeccompRule::Require) => {
            return Err(cx.refuse("linux.seccomp", "a seccomp profile is required".into()))
        }
        _ => {}
    }
    Ok(())
}

fn masked_paths(cx: &mut Ctx) -> Result<()> {
    let action = cx.rules().masked_paths;
    floor_paths(cx, "maskedPaths", crate::spec::MASKED_PATHS, action)
}

fn readonly_paths(cx: &mut Ctx) -> Result<()> {
    let action = cx.rules().readonly_paths;
    floor_paths(cx, "readonlyPaths", crate::spec::READONLY_PATHS, action)
}

/// The paths of `floor` missing from `linux.KEY` (masked or read-only paths).
fn floor_paths(cx: &mut Ctx, key: &str, floor: &[&str], action: Option<Action>) -> Result<()> {
    let have: Vec<String> = cx.v["linux"][key]
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
        return Ok(());
    }
    match action {
        Some(Action::Raise) => {
            let mut all = have.clone();
            all.extend(missing.iter().map(|s| s.to_string()));
            cx.v["linux"][key] = json!(all);
            cx.change(
                &format!("linux.{key}"),
                format!("added {}", missing.join(", ")),
            );
        }
        Some(Action::Refuse) => {
            return Err(cx.refuse(
                &format!("linux.{key}"),
                format!("missing {}", missing.join(", ")),
            ))
        }
        _ => {}
    }
    Ok(())
}

fn limits(cx: &mut Ctx) -> Result<()> {
    let Some(l) = &cx.rules().limits else {
        return Ok(());
    };
    // Unprivileged there is no cgroup to put them in (the runtime says so): adding limits
    // nothing enforces would only make the config claim them.
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let res = &mut cx.v["linux"]["resources"];
    if !res.is_object() {
        *res = json!({});
    }
    let mut changes: Vec<(&str, String)> = vec![];
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
            changes.push((
                "linux.resources.memory.limit",
                format!("none: set to {bytes}"),
            ));
        }
    }
    if let Some(pids) = l.pids {
        if res["pids"]["limit"].as_i64().unwrap_or(0) <= 0 {
            res["pids"] = json!({"limit": pids});
            changes.push(("linux.resources.pids.limit", format!("none: set to {pids}")));
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
            changes.push(("linux.resources.cpu.quota", format!("none: {c} CPUs")));
        }
    }
    for (field, what) in changes {
        cx.change(field, what);
    }
    Ok(())
}

fn landlock(cx: &mut Ctx) -> Result<()> {
    if cx.rules().landlock == Some(LandlockRule::Require)
        && cx.v["annotations"][crate::landlock::ANNOTATION].is_null()
    {
        return Err(cx.refuse(
            &format!("annotations.{}", crate::landlock::ANNOTATION),
            "a Landlock ruleset is required".into(),
        ));
    }
    Ok(())
}

/// Record what was changed, per rule, in the config's annotations.
fn record(changes: &[Change], v: &mut Value) {
    let mut per_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in changes {
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
}

/// Host block devices (and device cgroup rules that open them) against `blockDevices` and
/// `allowedDevices`.
fn devices(cx: &mut Ctx) -> Result<()> {
    let allowed = cx.rules().allowed_devices.clone().unwrap_or_default();
    let action = cx.rules().block_devices.unwrap_or(Action::Allow);
    if action == Action::Allow {
        return Ok(());
    }
    // host block devices created in the container
    if let Some(list) = cx.v["linux"]["devices"].as_array_mut() {
        let mut kept = vec![];
        let mut removed = vec![];
        for (i, d) in list.iter().enumerate() {
            let path = d["path"].as_str().unwrap_or_default();
            if d["type"] == "b" && !allowed.iter().any(|a| a == path) {
                if action == Action::Refuse {
                    return Err(cx.p.refuse(
                        cx.config,
                        &format!("linux.devices[{i}]"),
                        cx.rule,
                        format!(
                            "host block device {path} (allowedDevices lists the permitted ones)"
                        ),
                    ));
                }
                removed.push(format!("removed {path}"));
                continue;
            }
            kept.push(d.clone());
        }
        *list = kept;
        for what in removed {
            cx.change("linux.devices", what);
        }
    }
    // device cgroup rules that open block devices (or all devices) for reading or writing
    if let Some(list) = cx.v["linux"]["resources"]["devices"].as_array_mut() {
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
                    return Err(cx.p.refuse(
                        cx.config,
                        &format!("linux.resources.devices[{i}]"),
                        cx.rule,
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
            cx.change(
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
/// Join the user namespace at `path` (the owner of the pod's namespaces) with its `maps`
/// (inside, outside, count: uids then gids), recorded in the annotations.
pub fn set_joined_user_ns(v: &mut Value, path: &str, maps: &[Vec<(u32, u32, u32)>; 2], of: &str) {
    let as_json = |m: &[(u32, u32, u32)]| {
        json!(m
            .iter()
            .map(|(c, h, n)| json!({"containerID": c, "hostID": h, "size": n}))
            .collect::<Vec<_>>())
    };
    if !v["linux"]["namespaces"].is_array() {
        v["linux"]["namespaces"] = json!([]);
    }
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": path}));
    v["linux"]["uidMappings"] = as_json(&maps[0]);
    v["linux"]["gidMappings"] = as_json(&maps[1]);
    if !v["annotations"].is_object() {
        v["annotations"] = json!({});
    }
    let root = maps[0].iter().find(|m| m.0 == 0).map(|m| m.1);
    v["annotations"][format!("{ANNOTATION_PREFIX}userNamespace")] = json!(format!(
        "linux.namespaces: joined the user namespace that owns {of} (the pod's), container 0 = host {}",
        root.map_or("unmapped".into(), |r| r.to_string())
    ));
}

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
