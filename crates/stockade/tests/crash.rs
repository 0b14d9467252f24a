//! Crash consistency: the runtime killed with SIGKILL at every stage of `run`, `create`, `exec`
//! and `delete` (stopped there deterministically with STOCKADE_TEST_STOP_AT, then killed), and
//! after each `delete --force` leaves zero state directories, cgroup directories in every
//! hierarchy, mounts and processes, and the id can be used again.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// Stages of `run` and `create`: the runtime's marks and the child's (the child stops, the
/// runtime waits for it, the test kills the runtime). `NAME@2` is the second time.
const SETUP_STAGES: &[&str] = &[
    "start",
    "validated",
    "state dir made",
    "state written",
    "cloned",
    "child: go received",
    "go sent",
    "child: rootfs set up",
    "cgroup ready",
    "child: masks done",
    "filter sent",
    "child: privileges dropped",
    "state written@2",
    "exec'd, state saved",
];

/// Stages of a foreground `run` after its container has exited.
const TEARDOWN_STAGES: &[&str] = &["container exited", "cgroup removed", "state emptied"];

/// Start `stockade ARGS` with its stop mark at `stage`, wait until it (or a process of its)
/// stopped there, kill the runtime with SIGKILL, and return the pids that were in the family.
fn kill_at(root: &Path, args: &[&str], stage: &str) -> Vec<i32> {
    kill_at_in(None, root, args, stage)
}

/// [`kill_at`], with the runtime in the network namespace `netns` (`nsenter --net`, which execs
/// it: the pid killed is the runtime's).
fn kill_at_in(netns: Option<&Path>, root: &Path, args: &[&str], stage: &str) -> Vec<i32> {
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut rt = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    let mut rt = rt
        .arg("--root")
        .arg(root)
        .args(args)
        .env("STOCKADE_TEST_STOP_AT", stage)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let pid = rt.id() as i32;
    let name = stage.split('@').next().unwrap();
    poll_until(&format!("stage {stage:?} never reached"), 20, || {
        let text = std::fs::read_to_string(err.path()).unwrap();
        assert!(
            rt.try_wait().unwrap().is_none(),
            "{stage}: runtime exited first: {text}"
        );
        text.contains(&format!("stockade-test: stopped at {name}\n"))
            .then_some(())
    });
    let family = descendants(pid);
    rt.kill().unwrap();
    rt.wait().unwrap();
    family
}

/// Nothing of `id` anywhere: state, cgroups (every hierarchy), mounts, the processes seen.
fn assert_clean(id: &str, root: &Path, pids: &[i32], mounts_before: &[String], stage: &str) {
    for p in pids {
        poll_until(
            &format!("{stage}: process {p} still alive"),
            10,
            || match stat_of(*p) {
                None => Some(()),
                Some(('Z', _)) => Some(()),
                _ => None,
            },
        );
    }
    assert_nothing_left(id, root);
    let left: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".seccomp")
        .collect();
    assert!(left.is_empty(), "{stage}: left in the state root: {left:?}");
    assert_eq!(host_mounts(), mounts_before, "{stage}: host mounts changed");
}

fn delete_force(root: &Path, id: &str, stage: &str) {
    let out = cmd(root, &["delete", "--force", id]);
    assert!(
        out.status.success(),
        "{stage}: delete --force: {}",
        stderr(&out)
    );
}

/// The id works again after the cleanup.
fn reuse(b: &Bundle, id: &str, stage: &str) {
    let out = b.run(id);
    assert!(
        out.status.success(),
        "{stage}: the id cannot be reused: {}",
        stderr(&out)
    );
    assert_nothing_left(id, b.root.path());
}

#[test]
fn run_killed_at_every_stage_leaves_nothing_after_delete_force() {
    let b = Bundle::new(&["true"], |_| {});
    let before = host_mounts();
    let path = b.path().to_str().unwrap().to_string();
    for stage in SETUP_STAGES.iter().chain(TEARDOWN_STAGES) {
        let id = unique("crashrun");
        let pids = kill_at(b.root.path(), &["run", "--bundle", &path, &id], stage);
        delete_force(b.root.path(), &id, stage);
        assert_clean(&id, b.root.path(), &pids, &before, stage);
        reuse(&b, &id, stage);
    }
}

#[test]
fn create_killed_at_every_stage_leaves_nothing_after_delete_force() {
    let b = Bundle::new(&["sleep", "30"], |_| {});
    let before = host_mounts();
    let path = b.path().to_str().unwrap().to_string();
    for stage in SETUP_STAGES {
        let id = unique("crashcreate");
        let pids = kill_at(b.root.path(), &["create", "--bundle", &path, &id], stage);
        // a new create of the same id is refused or reclaims, never two owners
        delete_force(b.root.path(), &id, stage);
        assert_clean(&id, b.root.path(), &pids, &before, stage);
    }
}

/// A killed runtime's uncommitted directory (killed between mkdir and the first commit) is
/// reclaimed by the next `create` of that id, and never listed.
#[test]
fn an_uncommitted_state_dir_is_reclaimed_by_create() {
    let b = Bundle::new(&["true"], |_| {});
    let path = b.path().to_str().unwrap().to_string();
    for stage in ["state dir made", "state written"] {
        let id = unique("reclaim");
        kill_at(b.root.path(), &["run", "--bundle", &path, &id], stage);
        assert!(
            b.root.path().join(&id).exists(),
            "{stage}: nothing to reclaim"
        );
        let out = cmd(b.root.path(), &["list", "--format", "json"]);
        assert!(
            !stdout(&out).contains(&id),
            "{stage}: listed: {}",
            stdout(&out)
        );
        let out = cmd(b.root.path(), &["state", &id]);
        assert!(!out.status.success(), "{stage}: state shows it");
        assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
        reuse(&b, &id, stage);
    }
}

#[test]
fn exec_killed_at_every_stage_leaves_no_process() {
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let before = host_mounts();
    let id = unique("crashexec");
    let out = b.run_detached(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    for stage in ["exec: cloned", "exec-child: ready"] {
        let pids = kill_at(b.root.path(), &["exec", &id, "sleep", "60"], stage);
        for p in &pids {
            poll_until(
                &format!("{stage}: exec process {p} still alive"),
                10,
                || match stat_of(*p) {
                    None | Some(('Z', _)) => Some(()),
                    _ => None,
                },
            );
        }
        let out = cmd(b.root.path(), &["ps", &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            stdout(&out).lines().count(),
            2,
            "{stage}: more than the init in the container: {}",
            stdout(&out)
        );
    }
    delete_force(b.root.path(), &id, "exec");
    assert_clean(&id, b.root.path(), &[], &before, "exec");
}

#[test]
fn delete_killed_at_every_stage_can_be_run_again() {
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let before = host_mounts();
    for stage in [
        "delete: processes killed",
        "delete: cgroup removed",
        "state emptied",
    ] {
        let id = unique("crashdel");
        let out = b.run_detached(&id);
        assert!(out.status.success(), "{}", stderr(&out));
        kill_at(b.root.path(), &["delete", "--force", &id], stage);
        delete_force(b.root.path(), &id, stage);
        assert_clean(&id, b.root.path(), &[], &before, stage);
    }
}

/// With the hardening policy adding a user namespace (an id range taken before the state
/// exists): killed at every stage, `delete --force` gives the range back too.
#[test]
fn create_under_the_policy_killed_at_every_stage_gives_its_id_range_back() {
    let b = Bundle::new(&["sleep", "30"], |v| {
        let l = v["linux"].as_object_mut().unwrap();
        l.remove("uidMappings");
        l.remove("gidMappings");
        l["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
    });
    let before = host_mounts();
    let path = b.path().to_str().unwrap().to_string();
    let root = b.root.path();
    for stage in std::iter::once(&"id range taken").chain(SETUP_STAGES) {
        let id = unique("crashpol");
        let pids = kill_at(
            root,
            &["--policy", "default", "create", "--bundle", &path, &id],
            stage,
        );
        delete_force(root, &id, stage);
        let slots: Vec<_> = std::fs::read_dir(root.join(".ids"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "lock")
            .collect();
        assert!(slots.is_empty(), "{stage}: id slots left: {slots:?}");
        std::fs::remove_dir_all(root.join(".ids")).unwrap();
        assert_clean(&id, root, &pids, &before, stage);
    }
}

/// `linux.netDevices`: the runtime killed right after moving a device (its network namespace
/// pinned, the container not yet committed) and at the commit; `delete --force` (in the same
/// network namespace) gives the device back under its name, with its address, and leaves
/// nothing. The "host" is a network namespace of the test's, with a veth pair in it.
#[test]
fn killed_after_moving_a_net_device_delete_force_gives_it_back() {
    let ns = NetNs::new();
    ns.ip(&[
        "link", "add", "ndk0", "type", "veth", "peer", "name", "ndk1",
    ]);
    ns.ip(&["addr", "add", "10.76.0.2/24", "dev", "ndk0"]);
    let b = Bundle::new(&["sleep", "30"], |v| {
        v["linux"]["netDevices"] = serde_json::json!({"ndk0": {"name": "eth3"}});
    });
    let before = host_mounts();
    let path = b.path().to_str().unwrap().to_string();
    let root = b.root.path();
    for (cmd_, stage) in [
        ("run", "netdev: moved"),
        ("create", "netdev: moved"),
        ("create", "exec'd, state saved"),
    ] {
        let id = unique("crashnetdev");
        let pids = kill_at_in(
            Some(&ns.path()),
            root,
            &[cmd_, "--bundle", &path, &id],
            stage,
        );
        assert!(
            !ns.links().contains(&"ndk0".to_string()),
            "{stage}: ndk0 was never moved"
        );
        let out = cmd_in_netns(&ns.path(), root, &["delete", "--force", &id]);
        assert!(
            out.status.success(),
            "{stage}: delete --force: {}",
            stderr(&out)
        );
        assert_clean(&id, root, &pids, &before, stage);
        let addrs = ns.addrs_of("ndk0").join("\n");
        assert!(
            addrs.contains("inet 10.76.0.2/24"),
            "{stage}: ndk0 not back as it was: {addrs}"
        );
    }
}

/// A Kubernetes `hostUsers: false` container (the pod's user namespace joined by path, with its
/// maps; a volume with per-mount maps): killed at the stages of joining the pod's user
/// namespace (the clone from inside it) and idmapping the volume, and around them, `delete
/// --force` leaves nothing, and the pod's user namespace (held by the test) is untouched.
#[test]
fn a_pod_user_namespace_container_killed_at_its_stages_leaves_nothing() {
    require_root();
    // the pod's user namespace, as a pause container holds it: a process the test owns
    let mut holder = Command::new("unshare")
        .args(["--user", "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare (util-linux)");
    let hp = holder.id();
    let userns = format!("/proc/{hp}/ns/user");
    poll_until("the holder's user namespace", 10, || {
        (std::fs::read_link(&userns).ok()? != std::fs::read_link("/proc/self/ns/user").ok()?)
            .then_some(())
    });
    let (start, size) = (65536 * 42, 65536);
    for f in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{hp}/{f}"), format!("0 {start} {size}\n")).unwrap();
    }
    let vol = tempfile::tempdir().unwrap();
    let map = serde_json::json!([{"containerID": 0, "hostID": start, "size": size}]);
    let b = Bundle::new(&["sleep", "30"], |v| {
        v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "ipc"},
            {"type": "uts"}, {"type": "mount"}, {"type": "network"},
            {"type": "user", "path": userns}]);
        v["linux"]["uidMappings"] = map.clone();
        v["linux"]["gidMappings"] = map.clone();
        v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": vol.path(),
            "options": ["rbind", "rw"], "uidMappings": map, "gidMappings": map}));
    });
    let before = host_mounts();
    let path = b.path().to_str().unwrap().to_string();
    let root = b.root.path();
    for stage in [
        "volume idmapped",
        "cloned in the joined user namespace",
        "child: go received",
        "child: rootfs set up",
        "child: privileges dropped",
    ] {
        let id = unique("crashpod");
        let pids = kill_at(root, &["create", "--bundle", &path, &id], stage);
        delete_force(root, &id, stage);
        assert_clean(&id, root, &pids, &before, stage);
        assert!(
            Path::new(&format!("/proc/{hp}")).exists(),
            "{stage}: the pod's user namespace holder died"
        );
    }
    // and the same config still creates (the id maps and the volume as before the kills)
    let id = unique("crashpod");
    let out = cmd(root, &["create", "--bundle", &path, &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    delete_force(root, &id, "after the stages");
    assert_clean(&id, root, &[], &before, "after the stages");
    let _ = holder.kill();
    let _ = holder.wait();
}
