//! Learning under engines, for real: Podman's `--annotation org.stockade.learn=DIR` and
//! Docker's daemon-wide `--learn-dir` (Debian's Docker 20.10 has no annotations) make stockade record a container's
//! whole life and write its profile at delete; the profile, applied back with `--security-opt
//! seccomp=`, runs the same workload (with stockade, and with runc: the runtime allowance) and
//! denies what it never did. Kills of the runtime at each learning stage leave nothing after
//! `delete --force`: no pinned eBPF objects, no bpf filesystem, no state.

mod common;
use common::engines::*;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

const WORKLOAD: &str = "seq 1 200 | sort -rn | head -3 | wc -l; cat /etc/passwd > /dev/null";

/// Every eBPF program id on the machine.
fn prog_ids() -> BTreeSet<u32> {
    stockade::ebpf::prog_ids().unwrap().into_iter().collect()
}

/// No bpf filesystem of a learning container is mounted anywhere, and no program stockade's
/// learning loaded is left (a closed program goes after an RCU grace period: allow for it).
fn assert_no_recorder_left(progs_before: &BTreeSet<u32>, what: &str) {
    poll_until(&format!("{what}: eBPF programs left"), 10, || {
        prog_ids().is_subset(progs_before).then_some(())
    });
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mi.lines().any(|l| l.contains("learn.bpf")),
        "{what}: a learning bpf filesystem is still mounted:\n{mi}"
    );
}

/// One engine test at a time: the checks count the machine's eBPF programs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()))
}

/// What every profile written at delete must be: unverified, said so, loadable.
fn check_written(dir: &Path) {
    let report = read(dir, "report.txt");
    assert!(
        report.contains("UNVERIFIED: recorded under an engine, not verified"),
        "{report}"
    );
    assert!(report.contains("under the learning filter"), "{report}");
    assert_eq!(
        read(dir, "UNVERIFIED"),
        "recorded under an engine, not verified\n"
    );
    let sc: serde_json::Value = serde_json::from_str(&read(dir, "seccomp.json")).unwrap();
    assert_eq!(sc["defaultAction"], "SCMP_ACT_ERRNO");
    let names: BTreeSet<String> = sc["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["names"].as_array().unwrap().clone())
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    for call in ["execve", "write", "read", "wait4", "pipe2"] {
        assert!(names.contains(call), "{call} missing: {names:?}");
    }
    // stockade's own calls before the workload's execve (engines' configs have
    // no_new_privileges off) are not the workload's
    for call in [
        "mount",
        "ptrace",
        "bpf",
        "keyctl",
        "mkdirat",
        "setuid",
        "setgroups",
        "capset",
    ] {
        assert!(!names.contains(call), "{call} allowed: {names:?}");
    }
}

#[test]
fn podman_annotation_learns_and_the_profile_runs_the_workload_again() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = Podman::with_policy("none");
    let before = prog_ids();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("prof");
    let ann = format!("org.stockade.learn={}", dir.display());
    let mut a = vec!["run", "--rm", "--annotation", &ann];
    a.extend_from_slice(PODMAN_RUN);
    a.extend_from_slice(&["bb", "sh", "-c", WORKLOAD]);
    let o = p.podman(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "3\n");
    check_written(&dir);
    assert_no_recorder_left(&before, "podman");
    // the profile, applied back (no annotation): the same workload runs, a new call is denied;
    // Podman's config has no_new_privileges off, so stockade's own last calls are needed too
    let sc = format!("seccomp={}", dir.join("seccomp-stockade.json").display());
    let mut a = vec!["run", "--rm", "--security-opt", &sc];
    a.extend_from_slice(PODMAN_RUN);
    a.extend_from_slice(&["bb", "sh", "-c", WORKLOAD]);
    let o = p.podman(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "3\n");
    let mut a = vec!["run", "--rm", "--security-opt", &sc];
    a.extend_from_slice(PODMAN_RUN);
    a.extend_from_slice(&["bb", "sh", "-c", "mkdir /tmp/d && echo made"]);
    let o = p.podman(&a);
    assert!(!o.status.success(), "mkdir passed: {}", stdout(&o));
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    // in production through Podman's annotations: complain lets mkdir run, enforce denies it,
    // and both write it once to the events file
    for (mode, ok) in [("complain", true), ("enforce", false)] {
        let f = out.path().join(format!("{mode}.jsonl"));
        let (m, e) = (
            format!("org.stockade.seccomp.mode={mode}"),
            format!("org.stockade.seccomp.events={}", f.display()),
        );
        let mut a = vec!["run", "--rm", "--security-opt", &sc, "--annotation", &m];
        a.extend_from_slice(&["--annotation", &e]);
        a.extend_from_slice(PODMAN_RUN);
        a.extend_from_slice(&["bb", "sh", "-c", "mkdir /tmp/d && echo made"]);
        let o = p.podman(&a);
        assert_eq!(
            o.status.success(),
            ok,
            "{mode}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let ev = std::fs::read_to_string(&f).unwrap_or_default();
        let lines: Vec<&str> = ev.lines().collect();
        let action = if ok { "allowed" } else { "denied" };
        assert_eq!(lines.len(), 1, "{mode}: {ev}");
        assert!(
            lines[0].contains("\"syscall\":\"mkdir\"")
                && lines[0].contains(&format!("\"action\":\"{action}\"")),
            "{mode}: {ev}"
        );
    }
}

#[test]
fn docker_learn_dir_learns_and_the_profile_runs_under_stockade_and_runc() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = Dockerd::start();
    let before = prog_ids();
    // --learn-dir in daemon.json's runtimeArgs (Debian's Docker 20.10 passes no annotations):
    // one subdirectory per container id
    let o = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "stockade-learn",
        "bb",
        "sh",
        "-c",
        WORKLOAD,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "3\n");
    let subdirs: Vec<_> = std::fs::read_dir(d.learn_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(subdirs.len(), 1, "{subdirs:?}");
    let id = subdirs[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(id.len(), 64, "not a container id: {id}");
    check_written(&subdirs[0]);
    assert_no_recorder_left(&before, "docker --learn-dir");
    // applied back, under stockade and under runc: each runtime's file carries its own calls
    // after its filter (Docker's configs have no_new_privileges off)
    for runtime in ["stockade", "runc"] {
        let sc = format!(
            "seccomp={}",
            subdirs[0].join(format!("seccomp-{runtime}.json")).display()
        );
        let o = d.docker(&[
            "run",
            "--rm",
            "--runtime",
            runtime,
            "--security-opt",
            &sc,
            "bb",
            "sh",
            "-c",
            WORKLOAD,
        ]);
        assert!(o.status.success(), "{runtime}: {}", stderr(&o));
        assert_eq!(stdout(&o), "3\n", "{runtime}");
        let o = d.docker(&[
            "run",
            "--rm",
            "--runtime",
            runtime,
            "--security-opt",
            &sc,
            "bb",
            "sh",
            "-c",
            "mkdir /tmp/d && echo made",
        ]);
        assert!(!o.status.success(), "{runtime}: mkdir passed");
        assert!(
            stderr(&o).contains("Operation not permitted"),
            "{runtime}: {}",
            stderr(&o)
        );
    }
}

/// A profile learned by `stockade learn` (in a sandbox on the host) starts the same workload
/// under Docker with runc and with stockade: seccomp-runc.json and seccomp-stockade.json carry
/// each runtime's post-filter calls; seccomp.json, the workload's own, carries none.
#[test]
fn a_profile_from_stockade_learn_runs_under_docker_with_runc() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let bb = "/bin/busybox seq 1 200 | /bin/busybox sort -rn | /bin/busybox head -3 | /bin/busybox wc -l";
    let out = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let o = cmd(
        root.path(),
        &[
            "learn",
            "--out",
            out.path().to_str().unwrap(),
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            bb,
        ],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let report = read(out.path(), "report.txt");
    assert!(
        report.contains("seccomp-runc.json") && report.contains("runc 1.1.5"),
        "{report}"
    );
    let d = Dockerd::start();
    for runtime in ["runc", "stockade"] {
        let sc = format!(
            "seccomp={}",
            out.path().join(format!("seccomp-{runtime}.json")).display()
        );
        let o = d.docker(&[
            "run",
            "--rm",
            "--runtime",
            runtime,
            "--security-opt",
            &sc,
            "bb",
            "/bin/busybox",
            "sh",
            "-c",
            bb,
        ]);
        assert!(o.status.success(), "{runtime}: {}", stderr(&o));
        assert_eq!(stdout(&o), "3\n", "{runtime}");
    }
    // the workload's own profile has none of runc's calls: runc cannot start it under that
    let v: serde_json::Value = serde_json::from_str(&read(out.path(), "seccomp.json")).unwrap();
    assert!(
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["comment"].is_null()),
        "{v}"
    );
    let bare = out.path().join("seccomp.json");
    let o = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--security-opt",
        &format!("seccomp={}", bare.display()),
        "bb",
        "/bin/busybox",
        "true",
    ]);
    assert!(!o.status.success(), "runc started without the allowance");
    assert!(
        stderr(&o).contains("operation not permitted"),
        "{}",
        stderr(&o)
    );
}

/// `create` stopped at STAGE (STOCKADE_TEST_STOP_AT) and killed there.
fn kill_create_at(root: &Path, bundle: &Path, id: &str, stage: &str) {
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut rt = Command::new(bin())
        .arg("--root")
        .arg(root)
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg(id)
        .env("STOCKADE_TEST_STOP_AT", stage)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    poll_until(&format!("stage {stage:?} never reached"), 20, || {
        let text = std::fs::read_to_string(err.path()).unwrap();
        assert!(
            rt.try_wait().unwrap().is_none(),
            "{stage}: runtime exited first: {text}"
        );
        text.contains(&format!("stockade-test: stopped at {stage}\n"))
            .then_some(())
    });
    rt.kill().unwrap();
    rt.wait().unwrap();
}

#[test]
fn a_learning_create_killed_at_any_stage_leaves_nothing_after_delete_force() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("prof");
    let d = dir.to_str().unwrap().to_string();
    let b = Bundle::new(&["sh", "-c", WORKLOAD], |v| {
        v["annotations"] = serde_json::json!({"org.stockade.learn": d});
    });
    let before = prog_ids();
    let mounts = host_mounts();
    for stage in [
        "learn: recorded",
        "learn: mounted",
        "learn: pinned",
        "filter sent",
        "exec'd, state saved",
    ] {
        let id = unique("learnkill");
        kill_create_at(b.root.path(), b.path(), &id, stage);
        let o = cmd(b.root.path(), &["delete", "--force", &id]);
        assert!(o.status.success(), "{stage}: {}", stderr(&o));
        assert_nothing_left(&id, b.root.path());
        assert_no_recorder_left(&before, stage);
        assert_eq!(host_mounts(), mounts, "{stage}: mounts changed");
        assert!(
            !dir.join("seccomp.json").exists(),
            "{stage}: a profile written for a container that never started"
        );
    }
    // and a whole create/start/delete writes it
    let id = unique("learnok");
    let o = cmd(
        b.root.path(),
        &["create", "--bundle", b.path().to_str().unwrap(), &id],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the learning filter instead of its own"),
        "no warning: {}",
        stderr(&o)
    );
    // nothing on sys_enter (whose attachment slows every thread of the machine): the
    // capability programs only, pinned; the syscalls go to the agent
    let state = b.root.path().join(&id);
    let mut pins: Vec<String> = std::fs::read_dir(state.join("learn.bpf"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("link_"))
        .collect();
    pins.sort();
    assert_eq!(
        pins,
        [
            "link_cap_capable",
            "link_sched_process_exec",
            "link_task_newtask"
        ]
    );
    assert!(cmd(b.root.path(), &["start", &id]).status.success());
    poll_until("container never stopped", 20, || {
        let o = cmd(b.root.path(), &["state", &id]);
        stdout(&o).contains("\"stopped\"").then_some(())
    });
    let events = std::fs::read_to_string(state.join("learn.events")).unwrap();
    assert!(events.contains("\"syscall\":\"wait4\""), "{events}");
    let o = cmd(b.root.path(), &["delete", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    check_written(&dir);
    assert_nothing_left(&id, b.root.path());
    assert_no_recorder_left(&before, "create/start/delete");
    // a foreground run writes it when it ends
    std::fs::remove_dir_all(&dir).unwrap();
    let id = unique("learnrun");
    let o = b.run(&id);
    assert!(o.status.success(), "{}", stderr(&o));
    check_written(&dir);
    assert_nothing_left(&id, b.root.path());
    assert_no_recorder_left(&before, "run");
}

#[test]
fn bad_learning_input_is_a_clear_error_and_leaves_nothing() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = prog_ids();
    let mounts = host_mounts();
    for (value, words) in [
        ("relative/dir", "as an absolute path"),
        ("", "as an absolute path"),
        ("/proc/self/status/x", "is not a directory"),
        ("/proc/sys/x", "is not writable"),
    ] {
        let b = Bundle::new(&["true"], |v| {
            v["annotations"] = serde_json::json!({"org.stockade.learn": value});
        });
        let id = unique("learnbad");
        let o = cmd(
            b.root.path(),
            &["create", "--bundle", b.path().to_str().unwrap(), &id],
        );
        assert_eq!(o.status.code(), Some(1), "{value:?}");
        let e = stderr(&o);
        assert!(
            e.contains("annotations.org.stockade.learn") && e.contains(words),
            "{value:?}: {e}"
        );
        assert_nothing_left(&id, b.root.path());
        assert_no_recorder_left(&before, value);
        assert_eq!(host_mounts(), mounts);
    }
    let b = Bundle::new(&["true"], |_| {});
    let o = cmd(
        b.root.path(),
        &[
            "--learn-dir",
            "rel",
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            "x",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--learn-dir rel"), "{}", stderr(&o));
}

/// `org.stockade.learn.test`: at delete the learned profile is verified (`stockade learn
/// verify`: the bundle's workload again under it, with the test): passed, UNVERIFIED goes and
/// the report says how; failed, it stays, the report says so, and delete still succeeds.
#[test]
fn a_learned_container_with_a_test_is_verified_at_delete() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = prog_ids();
    for (test, passes) in [("true", true), ("false", false)] {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("prof");
        let d = dir.to_str().unwrap().to_string();
        let script = format!("{WORKLOAD}; sleep 2");
        let b = Bundle::new(&["sh", "-c", &script], |v| {
            v["annotations"] = serde_json::json!({
                "org.stockade.learn": d, "org.stockade.learn.test": test});
        });
        let id = unique("learnverify");
        let p = b.path().to_str().unwrap();
        assert!(cmd(b.root.path(), &["create", "--bundle", p, &id])
            .status
            .success());
        assert!(cmd(b.root.path(), &["start", &id]).status.success());
        poll_until("container never stopped", 20, || {
            let o = cmd(b.root.path(), &["state", &id]);
            stdout(&o).contains("\"stopped\"").then_some(())
        });
        let o = cmd(b.root.path(), &["delete", &id]);
        assert!(o.status.success(), "{}", stderr(&o));
        let report = read(&dir, "report.txt");
        if passes {
            assert!(!dir.join("UNVERIFIED").exists(), "{report}");
            assert!(report.starts_with("stockade learn: VERIFIED"), "{report}");
            assert!(report.contains("verified ("), "{report}");
        } else {
            assert!(dir.join("UNVERIFIED").exists(), "{report}");
            assert!(report.contains("verification failed ("), "{report}");
            assert!(
                stderr(&o).contains("failed its verification"),
                "{}",
                stderr(&o)
            );
        }
        assert_nothing_left(&id, b.root.path());
        let left: Vec<String> = std::fs::read_dir(b.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("learn-"))
            .collect();
        assert!(left.is_empty(), "the verification left {left:?}");
    }
    // bad input: an empty test, a ready condition without a test: named, nothing made
    for (ann, field) in [
        (
            serde_json::json!({"org.stockade.learn": "/tmp/x", "org.stockade.learn.test": " "}),
            "org.stockade.learn.test",
        ),
        (
            serde_json::json!({"org.stockade.learn": "/tmp/x", "org.stockade.learn.ready": "tcp:80"}),
            "org.stockade.learn.ready",
        ),
    ] {
        let b = Bundle::new(&["true"], |v| v["annotations"] = ann.clone());
        let id = unique("learnbad");
        let o = cmd(
            b.root.path(),
            &["create", "--bundle", b.path().to_str().unwrap(), &id],
        );
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains(&format!("annotations.{field}")),
            "{}",
            stderr(&o)
        );
        assert_nothing_left(&id, b.root.path());
    }
    assert_no_recorder_left(&before, "verify");
}
