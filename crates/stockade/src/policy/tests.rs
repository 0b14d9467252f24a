//! The policy on configs shaped like the engines', and policy files.

use super::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

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

/// A pod's container joins the pause container's IPC and UTS namespaces (containerd's CRI): it
/// is to join the user namespace that owns them (found at create), none is added. Another
/// container's pid namespace joined by path: neither, and the change says why. A network
/// namespace joined by path alone (Docker's bridge) still gets one.
#[test]
fn a_pod_container_joins_the_user_namespace_of_the_namespaces_it_joins() {
    let mut v = docker_like();
    v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"},
        {"type": "network", "path": "/var/run/netns/cni-1"}, {"type": "ipc", "path": "/proc/42/ns/ipc"}]);
    let out = apply(&policy(), &mut v, Path::new("config.json")).unwrap();
    assert!(!out.add_user_ns);
    assert_eq!(out.join_user_of.as_deref(), Some("/proc/42/ns/ipc"));

    let mut v = docker_like();
    v["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid", "path": "/proc/42/ns/pid"}, {"type": "uts"},
        {"type": "ipc", "path": "/proc/42/ns/ipc"}]);
    let out = apply(&policy(), &mut v, Path::new("config.json")).unwrap();
    assert!(!out.add_user_ns && out.join_user_of.is_none());
    assert!(
        out.changes
            .iter()
            .any(|c| c.rule == "userNamespace" && c.what.contains("pid")),
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
