//! runtime-spec 1.2.1 and 1.3: `linux.memoryPolicy` (applied with set_mempolicy, seen in
//! /proc/self/numa_maps), `process.execCPUAffinity` (for `exec`), `linux.intelRdt` and
//! `linux.netDevices` refused by field, a user namespace joined by path whose config maps must
//! be its own (Kubernetes' user namespaces for pods), and `features` saying all of it.

mod common;
use common::*;
use serde_json::json;

/// `delete --force` of a container when dropped: a failing assertion leaves nothing either.
struct Deleted<'a>(&'a std::path::Path, String);

impl Drop for Deleted<'_> {
    fn drop(&mut self) {
        let _ = cmd(self.0, &["delete", "--force", &self.1]);
    }
}

fn run_with(b: &Bundle, id: &str) -> std::process::Output {
    cmd(
        b.root.path(),
        &["run", "--bundle", b.path().to_str().unwrap(), id],
    )
}

#[test]
fn memory_policy_is_applied_and_bad_ones_are_refused_by_field() {
    for (mode, nodes, shown) in [
        ("MPOL_BIND", "0", "bind:0"),
        ("MPOL_INTERLEAVE", "0", "interleave:0"),
        ("MPOL_PREFERRED", "0", "prefer:0"),
    ] {
        let b = Bundle::new(
            &[
                "sh",
                "-c",
                "grep -m1 -o ' [a-z]*:[0-9]' /proc/self/numa_maps",
            ],
            |v| {
                v["linux"]["memoryPolicy"] = json!({"mode": mode, "nodes": nodes});
            },
        );
        let id = unique("mpol");
        let out = run_with(&b, &id);
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), shown, "{mode}");
        assert_nothing_left(&id, b.root.path());
    }
    // refused before anything exists: a mode that needs nodes without them, a node this host
    // lacks (one NUMA node here), a malformed list
    for (policy, words) in [
        (json!({"mode": "MPOL_BIND"}), "MPOL_BIND needs nodes"),
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
            "MPOL_DEFAULT takes no nodes",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-x"}),
            "is not a number or range",
        ),
        (json!({"mode": "MPOL_BIND", "nodes": "7"}), "set_mempolicy"),
    ] {
        let b = Bundle::new(&["true"], |v| v["linux"]["memoryPolicy"] = policy.clone());
        let id = unique("mpolbad");
        let out = run_with(&b, &id);
        assert_eq!(out.status.code(), Some(1), "{policy}");
        let e = stderr(&out);
        assert!(
            e.contains("linux.memoryPolicy") && e.contains(words),
            "{policy}: {e}"
        );
        assert_nothing_left(&id, b.root.path());
    }
}

#[test]
fn exec_cpu_affinity_is_applied_to_exec() {
    let b = Bundle::new(&["sleep", "30"], |_| {});
    let id = unique("affinity");
    let _gone = Deleted(b.root.path(), id.clone());
    let out = b.run_detached(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    let root = b.root.path();
    let process = |affinity: serde_json::Value| {
        let mut p: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
        let mut p = p["process"].take();
        p["args"] = json!(["grep", "Cpus_allowed_list", "/proc/self/status"]);
        p["execCPUAffinity"] = affinity;
        let f = b.path().join(format!("process-{}.json", unique("p")));
        std::fs::write(&f, p.to_string()).unwrap();
        f
    };
    for (cpus, want) in [("1", "1"), ("0", "0"), ("0-1", "0-1")] {
        let f = process(json!({"initial": "0", "final": cpus}));
        let out = cmd(root, &["exec", "--process", f.to_str().unwrap(), &id]);
        assert!(out.status.success(), "{cpus}: {}", stderr(&out));
        assert_eq!(stdout(&out).split_whitespace().last(), Some(want), "{cpus}");
    }
    let f = process(json!({"final": "9999"}));
    let out = cmd(root, &["exec", "--process", f.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("process.execCPUAffinity.final"),
        "{}",
        stderr(&out)
    );
    assert!(cmd(root, &["delete", "--force", &id]).status.success());
    assert_nothing_left(&id, root);
}

#[test]
fn intel_rdt_net_devices_and_absent_lsms_are_refused_by_field() {
    for (field, edit) in [
        (
            "linux.intelRdt",
            json!({"linux": {"intelRdt": {"closID": "c1", "schemata": ["L3:0=ff"]}}}),
        ),
        (
            "linux.netDevices",
            json!({"linux": {"netDevices": {"dummy0": {"name": "eth1"}}}}),
        ),
        (
            "process.apparmorProfile",
            json!({"process": {"apparmorProfile": "docker-default"}}),
        ),
        (
            "linux.mountLabel",
            json!({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}),
        ),
    ] {
        let b = Bundle::new(&["true"], |v| {
            for (k, sub) in edit.as_object().unwrap() {
                for (f, x) in sub.as_object().unwrap() {
                    v[k][f] = x.clone();
                }
            }
        });
        let id = unique("refused");
        let out = run_with(&b, &id);
        assert_eq!(out.status.code(), Some(1), "{field}");
        assert!(stderr(&out).contains(field), "{field}: {}", stderr(&out));
        assert_nothing_left(&id, b.root.path());
    }
}

#[test]
fn a_user_namespace_joined_by_path_must_carry_its_own_maps() {
    let a = Bundle::new(&["sleep", "30"], |_| {});
    let ida = unique("owner");
    let _gone = Deleted(a.root.path(), ida.clone());
    assert!(a.run_detached(&ida).status.success());
    let st: serde_json::Value =
        serde_json::from_slice(&cmd(a.root.path(), &["state", &ida]).stdout).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    let userns = format!("/proc/{pid}/ns/user");
    let maps: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path().join("config.json")).unwrap()).unwrap();
    let (uids, gids) = (
        maps["linux"]["uidMappings"].clone(),
        maps["linux"]["gidMappings"].clone(),
    );
    let joined_with = |u: serde_json::Value, g: serde_json::Value, own_pid: bool| {
        Bundle::new(&["cat", "/proc/self/uid_map"], |v| {
            // joined as a pod's container joins its sandbox's; the pid namespace too, or one of
            // its own (made under the joined user namespace, so its /proc mounts)
            for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
                if n["type"] == "user" || (n["type"] == "pid" && !own_pid) {
                    n["path"] = json!(format!("/proc/{pid}/ns/{}", n["type"].as_str().unwrap()));
                }
            }
            v["linux"]["uidMappings"] = u;
            v["linux"]["gidMappings"] = g;
        })
    };
    let joined = |u, g| joined_with(u, g, false);
    // the same maps (as the kubelet hands them): runs in that namespace
    let b = joined(uids.clone(), gids.clone());
    let id = unique("joiner");
    let out = run_with(&b, &id);
    assert!(out.status.success(), "{}", stderr(&out));
    let own = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(stdout(&out), own);
    // with a pid namespace of its own (a hostUsers: false pod's container): its /proc mounts
    let b = joined_with(uids.clone(), gids.clone(), true);
    let id = unique("joiner-pid");
    let out = run_with(&b, &id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), own);
    assert_nothing_left(&id, b.root.path());
    // other maps: refused, naming both
    let b = joined(
        json!([{"containerID": 0, "hostID": 300000, "size": 65536}]),
        gids.clone(),
    );
    let id = unique("joiner-bad");
    let out = run_with(&b, &id);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("linux.uidMappings") && e.contains("300000") && e.contains(&userns),
        "{e}"
    );
    assert_nothing_left(&id, b.root.path());
    assert!(cmd(a.root.path(), &["delete", "--force", &ida])
        .status
        .success());
}

#[test]
fn features_say_runtime_spec_1_3() {
    let out = std::process::Command::new(bin())
        .arg("features")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMax"], "1.3.0");
    assert_eq!(v["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    assert_eq!(v["linux"]["intelRdt"]["enabled"], false);
    assert_eq!(v["linux"]["netDevices"]["enabled"], false);
    assert!(v["linux"]["memoryPolicy"]["modes"]
        .as_array()
        .unwrap()
        .contains(&json!("MPOL_BIND")));
}

/// A bind mount with its own `uidMappings`/`gidMappings` (runtime-spec 1.2): idmapped with those
/// maps (a throwaway user namespace holds them when they are not the container's): with
/// container 0 = host 1000, a file root owns on disk shows as 1000 in a container without a
/// user namespace (the maps take the disk's ids as the namespace's); one of the two missing is
/// refused naming the mount.
#[test]
fn a_bind_with_its_own_maps_is_idmapped_with_them() {
    let vol = tempfile::tempdir().unwrap();
    let f = vol.path().join("f");
    std::fs::write(&f, "x").unwrap();
    std::os::unix::fs::chown(&f, Some(0), Some(0)).unwrap();
    let map = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let with = |uids: Option<serde_json::Value>| {
        let (vol, map) = (vol.path().to_path_buf(), map.clone());
        Bundle::new(&["stat", "-c", "%u:%g", "/data/f"], move |v| {
            let l = v["linux"].as_object_mut().unwrap();
            l.remove("uidMappings");
            l.remove("gidMappings");
            l["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}, {"type": "network"}]);
            let mut m = json!({"destination": "/data", "type": "bind", "source": vol,
                "options": ["rbind", "ro"], "gidMappings": map});
            if let Some(u) = uids {
                m["uidMappings"] = u;
            }
            v["mounts"].as_array_mut().unwrap().push(m);
        })
    };
    let b = with(Some(map.clone()));
    let id = unique("mntmap");
    let out = run_with(&b, &id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1000:1000");
    assert_nothing_left(&id, b.root.path());
    // and on the host the file is still root's
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&f).unwrap().uid(), 0);

    let b = with(None);
    let id = unique("mntmap-bad");
    let out = run_with(&b, &id);
    assert_ne!(out.status.code(), Some(0));
    let e = stderr(&out);
    assert!(e.contains("mounts[") && e.contains("uidMappings"), "{e}");
    assert_nothing_left(&id, b.root.path());
}
