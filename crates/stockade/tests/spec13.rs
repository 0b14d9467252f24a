//! runtime-spec 1.2.1 and 1.3: `linux.memoryPolicy` (applied with set_mempolicy, seen in
//! /proc/self/numa_maps), `process.execCPUAffinity` (for `exec`), `linux.intelRdt` refused by
//! field, `linux.netDevices` (interfaces of a network namespace the test made, where the runtime
//! runs, moved into the container's and back), a user namespace joined by path whose config maps
//! must be its own (Kubernetes' user namespaces for pods), and `features` saying all of it.

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
fn intel_rdt_and_absent_lsms_are_refused_by_field() {
    for (field, edit) in [
        (
            "linux.intelRdt",
            json!({"linux": {"intelRdt": {"closID": "c1", "schemata": ["L3:0=ff"]}}}),
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
    assert_eq!(v["linux"]["netDevices"]["enabled"], true);
    assert!(v["linux"]["memoryPolicy"]["modes"]
        .as_array()
        .unwrap()
        .contains(&json!("MPOL_BIND")));
}

/// The test's "host": a network namespace with a veth pair (`ndv0`, `ndv1`) and a macvlan on
/// its second end (`ndm0`): two kinds of virtual device, which the kernel destroys with a
/// namespace they are in (this kernel has no dummy driver). `ndv0` has addresses that move (a
/// permanent IPv4 and IPv6 of global scope) and two that do not (one of link scope, one with a
/// lifetime).
fn host_with_devices() -> NetNs {
    let ns = NetNs::new();
    ns.ip(&[
        "link", "add", "ndv0", "type", "veth", "peer", "name", "ndv1",
    ]);
    ns.ip(&[
        "link", "add", "ndm0", "link", "ndv1", "type", "macvlan", "mode", "bridge",
    ]);
    ns.ip(&["addr", "add", "10.77.0.2/24", "dev", "ndv0"]);
    ns.ip(&["addr", "add", "fd77::2/64", "dev", "ndv0", "nodad"]);
    ns.ip(&[
        "addr",
        "add",
        "10.77.1.2/24",
        "dev",
        "ndv0",
        "scope",
        "link",
    ]);
    let lifetime = ["valid_lft", "300", "preferred_lft", "300"];
    ns.ip(&[
        &["addr", "add", "10.77.2.2/24", "dev", "ndv0"][..],
        &lifetime,
    ]
    .concat());
    ns.ip(&["addr", "add", "10.78.0.2/24", "dev", "ndm0"]);
    for d in ["ndv0", "ndv1", "ndm0"] {
        ns.ip(&["link", "set", d, "up"]);
    }
    ns
}

/// `ndv0` and `ndm0` are on the test's host as made: names, moved addresses, up.
fn assert_back_home(ns: &NetNs, when: &str) {
    let links = ns.links();
    for d in ["ndv0", "ndv1", "ndm0"] {
        assert!(
            links.contains(&d.to_string()),
            "{when}: {d} missing: {links:?}"
        );
    }
    let v0 = ns.addrs_of("ndv0").join("\n");
    for a in ["inet 10.77.0.2/24", "inet6 fd77::2/64"] {
        assert!(v0.contains(a), "{when}: ndv0 lacks {a}: {v0}");
    }
    let m0 = ns.addrs_of("ndm0").join("\n");
    assert!(m0.contains("inet 10.78.0.2/24"), "{when}: ndm0: {m0}");
    let up = ns.ip(&["-o", "link", "show", "ndv0"]);
    assert!(up.contains(",UP"), "{when}: ndv0 is not up: {up}");
}

fn with_net_devices(args: &[&str], devices: serde_json::Value) -> Bundle {
    Bundle::new(args, |v| v["linux"]["netDevices"] = devices)
}

/// The interface lines of `ip -o addr` output for `dev`.
fn lines_of<'a>(text: &'a str, dev: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(dev))
        .collect()
}

#[test]
fn net_devices_move_in_renamed_with_their_addresses_and_come_back_at_delete() {
    let ns = host_with_devices();
    let b = with_net_devices(
        &["sleep", "60"],
        json!({"ndv0": {"name": "eth5"}, "ndm0": {}}),
    );
    let (root, id) = (b.root.path(), unique("netdev"));
    let path = b.path().to_str().unwrap().to_string();
    let out = cmd_in_netns(&ns.path(), root, &["run", "-d", "--bundle", &path, &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    // gone from the host meanwhile; the veth's peer stays
    let links = ns.links();
    assert!(
        !links.iter().any(|l| l == "ndv0" || l == "ndm0"),
        "{links:?}"
    );
    assert!(links.iter().any(|l| l == "ndv1"), "{links:?}");
    let out = cmd_in_netns(&ns.path(), root, &["exec", &id, "ip", "-o", "addr", "show"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let inside = stdout(&out);
    let eth5 = lines_of(&inside, "eth5").join("\n");
    assert!(eth5.contains("inet 10.77.0.2/24"), "{inside}");
    assert!(eth5.contains("inet6 fd77::2/64"), "{inside}");
    // only permanent addresses of global scope move (runtime-spec)
    assert!(
        !inside.contains("10.77.1.2") && !inside.contains("10.77.2.2"),
        "{inside}"
    );
    assert!(
        lines_of(&inside, "ndm0")
            .join("\n")
            .contains("inet 10.78.0.2/24"),
        "{inside}"
    );
    let out = cmd_in_netns(
        &ns.path(),
        root,
        &["exec", &id, "ip", "-o", "link", "show", "eth5"],
    );
    assert!(
        stdout(&out).contains(",UP"),
        "eth5 is not up: {}",
        stdout(&out)
    );
    // delete --force of the running container: both back, as they were
    let out = cmd_in_netns(&ns.path(), root, &["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_back_home(&ns, "after delete");
    assert_nothing_left(&id, root);
}

/// A foreground run gives the devices back once its container exits; a `%d` name is numbered
/// by the kernel. With a user namespace (the child makes its network namespace), without one
/// (the clone makes it), and under the hardening policy (which adds a user namespace).
#[test]
fn a_foreground_run_gives_net_devices_back_when_the_container_exits() {
    let ns = host_with_devices();
    let no_userns = |v: &mut serde_json::Value| {
        let l = v["linux"].as_object_mut().unwrap();
        l.remove("uidMappings");
        l.remove("gidMappings");
        l["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "user");
    };
    for (how, policy, userns) in [
        ("user namespace", "none", true),
        ("no user namespace", "none", false),
        ("policy", "default", false),
    ] {
        let b = Bundle::new(&["ip", "-o", "addr", "show"], |v| {
            v["linux"]["netDevices"] = json!({"ndv0": {"name": "net%d"}});
            if !userns {
                no_userns(v);
            }
        });
        let (root, id) = (b.root.path(), unique("netdevfg"));
        let path = b.path().to_str().unwrap().to_string();
        let args = ["--policy", policy, "run", "--bundle", &path, &id];
        let out = cmd_in_netns(&ns.path(), root, &args);
        assert!(out.status.success(), "{how}: {}", stderr(&out));
        let inside = stdout(&out);
        let net0 = lines_of(&inside, "net0").join("\n");
        assert!(net0.contains("inet 10.77.0.2/24"), "{how}: {inside}");
        assert_back_home(&ns, &format!("{how}: after the run"));
        assert_nothing_left(&id, root);
        let _ = std::fs::remove_dir_all(root.join(".ids"));
    }
}

/// A network namespace joined by path is its owner's (a pod's): a name it has already is an
/// error; the device stays in it at delete, as with runc, and the runtime's namespace does not
/// get it back.
#[test]
fn net_devices_moved_into_a_joined_namespace_stay_there() {
    let ns = host_with_devices();
    let pod = NetNs::new();
    let pod_path = pod.path();
    let b = Bundle::new(&["ip", "-o", "addr", "show"], |v| {
        v["linux"]["netDevices"] = json!({"ndv0": {"name": "eth5"}});
        for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = json!(pod_path);
            }
        }
    });
    let (root, id) = (b.root.path(), unique("netdevjoin"));
    let path = b.path().to_str().unwrap().to_string();
    // the name taken there already: an error naming the field (runtime-spec), nothing moved
    pod.ip(&[
        "link", "add", "eth5", "type", "veth", "peer", "name", "eth6",
    ]);
    let out = cmd_in_netns(&ns.path(), root, &["run", "--bundle", &path, &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("linux.netDevices.ndv0.name") && e.contains("already exists"),
        "{e}"
    );
    assert_back_home(&ns, "eth5 taken");
    assert_nothing_left(&id, root);
    pod.ip(&["link", "del", "eth5"]);
    let out = cmd_in_netns(&ns.path(), root, &["run", "--bundle", &path, &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("inet 10.77.0.2/24"),
        "{}",
        stdout(&out)
    );
    assert!(!ns.links().contains(&"ndv0".to_string()));
    let there = pod.addrs_of("eth5").join("\n");
    assert!(there.contains("inet 10.77.0.2/24"), "{there}");
    assert_nothing_left(&id, root);
}

#[test]
fn bad_net_devices_are_refused_by_field_and_nothing_moves() {
    let ns = host_with_devices();
    // sorted before "lo", which the kernel will not move (it belongs to its namespace): moved,
    // then given back when the move of lo fails
    ns.ip(&["link", "add", "ka0", "type", "veth", "peer", "name", "ka1"]);
    ns.ip(&["addr", "add", "10.79.0.2/24", "dev", "ka0"]);
    let no_netns = |v: &mut serde_json::Value| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network");
    };
    let own_path = ns.path();
    let own_netns = move |v: &mut serde_json::Value| {
        for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = json!(own_path);
            }
        }
    };
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(serde_json::Value, Edit, &str, &str)> = vec![
        (
            json!({"nope0": {}}),
            Box::new(|_| {}),
            "linux.netDevices.nope0",
            "no interface \"nope0\"",
        ),
        (
            json!({"ndv0": {"name": "a/b"}}),
            Box::new(|_| {}),
            "linux.netDevices.ndv0.name",
            "'/'",
        ),
        (
            json!({"ndv0": {"name": "abcdefghijklmnop"}}),
            Box::new(|_| {}),
            "linux.netDevices.ndv0.name",
            "1 to 15 bytes",
        ),
        (
            json!({"ndv0": {"name": ".."}}),
            Box::new(|_| {}),
            "linux.netDevices.ndv0.name",
            "\"..\"",
        ),
        (
            json!({"ndv0": {"name": "e%s"}}),
            Box::new(|_| {}),
            "linux.netDevices.ndv0.name",
            "%d",
        ),
        (
            json!({"ndv0": {"name": "lo"}}),
            Box::new(|_| {}),
            "linux.netDevices.ndv0.name",
            "loopback",
        ),
        (
            json!({"ndv0": {"name": "x"}, "ndm0": {"name": "x"}}),
            Box::new(|_| {}),
            "linux.netDevices.ndv0.name",
            "two devices",
        ),
        (
            json!({"ndv0": {}}),
            Box::new(no_netns),
            "linux.netDevices",
            "network namespace of the container's own",
        ),
        (
            json!({"ndv0": {}}),
            Box::new(own_netns),
            "linux.netDevices",
            "is the runtime's own",
        ),
        (
            json!({"ka0": {}, "lo": {"name": "lo2"}}),
            Box::new(|_| {}),
            "linux.netDevices.lo",
            "move \"lo\"",
        ),
    ];
    for (devices, edit, field, words) in cases {
        let b = Bundle::new(&["true"], |v| {
            v["linux"]["netDevices"] = devices.clone();
            edit(v);
        });
        let id = unique("netdevbad");
        let path = b.path().to_str().unwrap().to_string();
        let out = cmd_in_netns(&ns.path(), b.root.path(), &["run", "--bundle", &path, &id]);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{devices}: {e}");
        assert!(e.contains(field) && e.contains(words), "{devices}: {e}");
        assert_eq!(e.matches(field).count(), 1, "{devices}: said once: {e}");
        assert_nothing_left(&id, b.root.path());
        assert_back_home(&ns, &devices.to_string());
        let ka0 = ns.addrs_of("ka0").join("\n");
        assert!(ka0.contains("inet 10.79.0.2/24"), "{devices}: ka0: {ka0}");
    }
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
