//! The OCI lifecycle with runc's command shapes: create, start, state, ps, pause/resume, kill,
//! delete, list, run --detach, and cleanup after the runtime itself was killed.

mod common;
use common::*;
use std::process::Command;

fn status(root: &std::path::Path, id: &str) -> String {
    let out = cmd(root, &["state", id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["status"].as_str().unwrap().to_string()
}

fn wait_status(root: &std::path::Path, id: &str, want: &str) {
    for _ in 0..300 {
        if status(root, id) == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{id} never became {want} (is {})", status(root, id));
}

#[test]
fn create_start_pause_resume_kill_delete() {
    let id = unique("life");
    let b = Bundle::new(&["sh", "-c", "echo started > /tmp/x; sleep 60"], |_| {});
    let root = b.root.path();
    let pidfile = b.path().join("pid");
    let out = cmd(
        root,
        &[
            "create",
            "--bundle",
            b.path().to_str().unwrap(),
            "--pid-file",
            pidfile.to_str().unwrap(),
            &id,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    assert_eq!(status(root, &id), "created");
    // the process has not run: it is still the runtime's code, blocked before execve
    assert!(std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .contains("stockade"));
    let v: serde_json::Value = serde_json::from_slice(&cmd(root, &["state", &id]).stdout).unwrap();
    assert_eq!(v["pid"], pid);
    assert_eq!(v["bundle"], b.path().to_str().unwrap());
    assert_eq!(v["ociVersion"], stockade::spec::OCI_VERSION);
    // a second create with the same id fails and changes nothing
    let dup = cmd(
        root,
        &["create", "--bundle", b.path().to_str().unwrap(), &id],
    );
    assert!(!dup.status.success() && stderr(&dup).contains("already in use"));
    assert!(cmd(root, &["start", &id]).status.success());
    wait_status(root, &id, "running");
    assert!(std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .starts_with("sleep"));
    let ps = cmd(root, &["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(pids, vec![pid]);
    assert!(cmd(root, &["pause", &id]).status.success());
    assert_eq!(status(root, &id), "paused");
    assert!(cmd(root, &["resume", &id]).status.success());
    assert_eq!(status(root, &id), "running");
    let stats = cmd(root, &["events", "--stats", &id]);
    let s: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(s["type"], "stats");
    assert_eq!(s["data"]["pids"]["current"], 1);
    let refused = cmd(root, &["delete", &id]);
    assert!(!refused.status.success() && stderr(&refused).contains("--force"));
    let list = cmd(root, &["list", "-q"]);
    assert_eq!(stdout(&list).trim(), id);
    assert!(cmd(root, &["kill", &id, "KILL"]).status.success());
    wait_status(root, &id, "stopped");
    assert!(
        cmd(root, &["delete", &id]).status.success(),
        "delete of a stopped container"
    );
    assert_nothing_left(&id, root);
    let gone = cmd(root, &["state", &id]);
    assert!(!gone.status.success() && stderr(&gone).contains("does not exist"));
}

#[test]
fn run_detach_and_delete_force() {
    let id = unique("detach");
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let root = b.root.path();
    let out = b.run_detached(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status(root, &id), "running");
    assert!(cmd(root, &["delete", "--force", &id]).status.success());
    assert_nothing_left(&id, root);
}

#[test]
fn concurrent_creates_with_one_id_exactly_one_wins() {
    let id = unique("race");
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let root = b.root.path().to_path_buf();
    let spawn = || {
        let err = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(bin())
            .arg("--root")
            .arg(&root)
            .args(["create", "--bundle", b.path().to_str().unwrap(), &id])
            .stdout(std::process::Stdio::null())
            .stderr(err.reopen().unwrap())
            .spawn()
            .unwrap();
        (child, err)
    };
    let ((mut a, ea), (mut c, ec)) = (spawn(), spawn());
    let (ra, rc) = (a.wait().unwrap(), c.wait().unwrap());
    let msg = |f: &tempfile::NamedTempFile| std::fs::read_to_string(f.path()).unwrap();
    assert_eq!(
        [ra.success(), rc.success()].iter().filter(|x| **x).count(),
        1,
        "{} / {}",
        msg(&ea),
        msg(&ec)
    );
    assert_eq!(status(&root, &id), "created");
    assert!(cmd(&root, &["delete", "--force", &id]).status.success());
    assert_nothing_left(&id, &root);
}

#[test]
fn delete_cleans_up_after_the_runtime_was_killed() {
    let id = unique("orphan");
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let root = b.root.path();
    let mut run = Command::new(bin())
        .arg("--root")
        .arg(root)
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = root.join(&id).join("state.json");
    for _ in 0..300 {
        if state.exists() && status(root, &id) == "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    run.kill().unwrap(); // SIGKILL to the runtime: no cleanup ran
    run.wait().unwrap();
    assert_eq!(
        status(root, &id),
        "running",
        "the container outlives a killed runtime, as with runc"
    );
    assert!(cmd(root, &["delete", "--force", &id]).status.success());
    assert_nothing_left(&id, root);
}

#[test]
fn features_are_truthful_json_and_unsupported_commands_say_so() {
    let root = tempfile::tempdir().unwrap();
    let out = cmd(root.path(), &["features"]);
    let f: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "time"));
    // the systemd driver exists (tests/systemd.rs); its user-manager variant does not
    assert_eq!(f["linux"]["cgroup"]["systemd"], true);
    assert_eq!(f["linux"]["cgroup"]["systemdUser"], false);
    for c in ["checkpoint", "restore"] {
        let out = cmd(root.path(), &[c, "x"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("not implemented"),
            "{c}: {}",
            stderr(&out)
        );
    }
    // as with runc, the global flag is accepted by every command; only create/run use it
    let out = cmd(root.path(), &["--systemd-cgroup", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup() {
    let id = unique("exec");
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let root = b.root.path();
    assert!(b.run_detached(&id).status.success());
    let init: i32 = serde_json::from_slice::<serde_json::Value>(&cmd(root, &["state", &id]).stdout)
        .unwrap()["pid"]
        .as_i64()
        .unwrap() as i32;
    let out = cmd(root, &["exec", &id, "sh", "-c", "for n in pid mnt uts ipc net user cgroup time; do readlink /proc/self/ns/$n; done; cat /proc/1/cmdline; echo; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    for (i, n) in ["pid", "mnt", "uts", "ipc", "net", "user", "cgroup", "time"]
        .iter()
        .enumerate()
    {
        let init_ns = std::fs::read_link(format!("/proc/{init}/ns/{n}")).unwrap();
        let want = if *n == "pid" || *n == "time" {
            // pid and time: the init's namespace for children is the one exec'd processes enter
            std::fs::read_link(format!("/proc/{init}/ns/{n}_for_children")).unwrap_or(init_ns)
        } else {
            init_ns
        };
        assert_eq!(
            lines[i],
            want.to_str().unwrap(),
            "{n} namespace differs from the container's"
        );
    }
    assert!(lines[8].starts_with("sleep"), "{text}");
    // the exec'd process counts against the container's cgroup while it runs
    let out = cmd(
        root,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "cat /proc/self/cgroup | grep -c memory:/$",
        ],
    );
    assert_eq!(stdout(&out).trim(), "1", "{}", stdout(&out));
    let out = cmd(
        root,
        &[
            "exec",
            "--user",
            "1000:1000",
            "--cap",
            "NET_BIND_SERVICE",
            &id,
            "sh",
            "-c",
            "id -u; grep CapEff /proc/self/status",
        ],
    );
    assert_eq!(
        stdout(&out),
        "1000\nCapEff:\t0000000000000400\n",
        "{}",
        stderr(&out)
    );
    assert!(cmd(root, &["delete", "--force", &id]).status.success());
    assert_nothing_left(&id, root);
}

/// The runtime killed mid-setup leaves a "creating" state with cgroups and no process: `delete`
/// finds and removes them all.
#[test]
fn delete_cleans_up_after_a_runtime_killed_mid_setup() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let id = unique("midsetup");
    let layout = stockade::cgroups::Layout::detect().unwrap();
    let cg = stockade::cgroups::Cgroup::locate(&layout, None, &id);
    let dir = stockade::state::StateDir::create(root.path(), &id).unwrap();
    let st = stockade::state::State {
        oci_version: "1.2.0".into(),
        id: id.clone(),
        status: "creating".into(),
        pid: 0,
        bundle: root.path().to_path_buf(),
        annotations: Default::default(),
        cgroup: Some(cg.clone()),
        id_slot: None,
        created: String::new(),
        pid_start: 0,
    };
    dir.save(&st).unwrap();
    let mut dir = dir;
    dir.keep();
    // a killed runtime's lock dies with it
    dir.unlock();
    // the killed runtime had made some of the directories
    for d in cg.dirs().take(4) {
        std::fs::create_dir_all(d).unwrap();
    }
    assert_eq!(status(root.path(), &id), "creating");
    let out = cmd(root.path(), &["delete", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_nothing_left(&id, root.path());
    for d in cg.dirs() {
        assert!(!d.exists(), "{} left", d.display());
    }
}

/// process.terminal: a pty made inside the container, its master sent over --console-socket
/// (runc's protocol), the container's shell on the other end; likewise for exec --tty.
#[test]
fn terminal_master_goes_to_the_console_socket() {
    use std::io::Write;
    let id = unique("tty");
    let b = Bundle::new(&["sh"], |v| {
        v["process"]["terminal"] = serde_json::json!(true)
    });
    let root = b.root.path();
    let sock = b.path().join("console.sock");
    let t = console_socket(&sock);
    let out = cmd(
        root,
        &[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.path().to_str().unwrap(),
            &id,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (mut master, listener) = t.join().unwrap();
    assert!(cmd(root, &["start", &id]).status.success());
    master
        .write_all(b"echo typed-$((6*7)); tty; exit\n")
        .unwrap();
    let text = read_until(&mut master, "/dev/pts/0");
    assert!(
        text.contains("typed-42") && text.contains("/dev/pts/0"),
        "{text}"
    );
    wait_status(root, &id, "stopped");
    assert!(cmd(root, &["delete", &id]).status.success());
    assert_nothing_left(&id, root);
    drop(listener);
}

/// OCI hooks: each kind runs at its point with the state on stdin; a failing createRuntime hook
/// stops the container and leaves nothing; a failing poststart hook only warns.
#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let id = unique("hooks");
    let out = tempfile::tempdir().unwrap();
    // createContainer runs in the container's namespaces, as its root (host uid 100000)
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(out.path().join("order"), "").unwrap();
    std::fs::set_permissions(
        out.path().join("order"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let o = out.path().display().to_string();
    let hook = |name: &str| serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {o}/{name}; echo {name} >> {o}/order")]});
    let b = Bundle::new(&["true"], |v| {
        v["hooks"] = serde_json::json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
    });
    let root = b.root.path();
    let c = cmd(
        root,
        &["create", "--bundle", b.path().to_str().unwrap(), &id],
    );
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(cmd(root, &["start", &id]).status.success());
    wait_status(root, &id, "stopped");
    assert!(cmd(root, &["delete", &id]).status.success());
    let order = std::fs::read_to_string(out.path().join("order")).unwrap();
    assert_eq!(
        order,
        "prestart\ncreateRuntime\ncreateContainer\npoststart\npoststop\n"
    );
    for (name, status) in [
        ("createRuntime", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let st: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.path().join(name)).unwrap()).unwrap();
        assert_eq!(st["id"], id.as_str(), "{name}");
        assert_eq!(st["status"], status, "{name}");
        assert_eq!(st["bundle"], b.path().to_str().unwrap(), "{name}");
    }
    assert_nothing_left(&id, root);

    let id = unique("hookfail");
    let b = Bundle::new(&["true"], |v| {
        v["hooks"] = serde_json::json!({"createRuntime": [{"path": "/bin/false"}]})
    });
    let out = cmd(
        b.root.path(),
        &["run", "--bundle", b.path().to_str().unwrap(), &id],
    );
    assert!(
        !out.status.success() && stderr(&out).contains("hooks.createRuntime[0]"),
        "{}",
        stderr(&out)
    );
    assert_nothing_left(&id, b.root.path());

    let id = unique("hookwarn");
    let b = Bundle::new(
        &["true"],
        |v| v["hooks"] = serde_json::json!({"poststart": [{"path": "/bin/false"}], "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 5"], "timeout": 1}]}),
    );
    let out = cmd(
        b.root.path(),
        &["run", "--bundle", b.path().to_str().unwrap(), &id],
    );
    assert!(out.status.success(), "{:?} {}", out.status, stderr(&out));
    assert!(
        stderr(&out).contains("warning: hooks.poststart[0]"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert_nothing_left(&id, b.root.path());
}

/// `update` changes a running container's limits in the real cgroup; bad values change nothing.
#[test]
fn update_changes_limits_of_a_running_container() {
    let id = unique("update");
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let root = b.root.path();
    let out = b.run_detached(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = |ctrl: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/stockade/{id}/{f}"))
            .unwrap_or_else(|e| panic!("{ctrl}/{f}: {e}"))
            .trim()
            .to_string()
    };
    assert_eq!(file("memory", "memory.limit_in_bytes"), "1073741824");
    let out = cmd(
        root,
        &[
            "update",
            "--memory",
            "2g",
            "--pids-limit",
            "77",
            "--cpu-quota",
            "50000",
            &id,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(file("memory", "memory.limit_in_bytes"), "2147483648");
    assert_eq!(file("pids", "pids.max"), "77");
    assert_eq!(file("cpu", "cpu.cfs_quota_us"), "50000");
    // --resources from a file, as containerd's shim passes it
    let res = b.path().join("res.json");
    std::fs::write(
        &res,
        r#"{"memory": {"limit": 536870912, "swap": 536870912}, "pids": {"limit": 33}}"#,
    )
    .unwrap();
    let out = cmd(root, &["update", "--resources", res.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(file("memory", "memory.limit_in_bytes"), "536870912");
    assert_eq!(file("pids", "pids.max"), "33");
    // bad input: named, and nothing changes
    for (args, want) in [
        (vec!["update", "--pids-limit", "-5", &id], "pids.limit"),
        (vec!["update", "--memory", "12x", &id], "unknown unit"),
        (vec!["update", &id], "nothing to change"),
        (
            vec!["update", "--memory", "1g", "no-such-container"],
            "does not exist",
        ),
    ] {
        let out = cmd(root, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(file("pids", "pids.max"), "33");
    assert!(cmd(root, &["delete", "--force", &id]).status.success());
    assert_nothing_left(&id, root);
}
