//! Complain and enforce modes of a learned profile, on the real kernel: `sandbox --learned DIR
//! --seccomp-mode complain|enforce --seccomp-events FILE` and the annotations
//! `org.stockade.seccomp.mode`/`.events` under `create`/`start`/`delete`. A call outside the
//! profile runs (complain) or fails with EPERM (enforce), and FILE has one line per distinct
//! call; `learn update` folds FILE into the profile; the agent killed with SIGKILL leaves those
//! calls failing (the kernel answers ENOSYS), and no listener of the workload's own can take its
//! place; nothing is left behind. The cost of a call the profile allows, with and without the
//! agent, and of a notified call, are printed (not asserted).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

/// `stockade --root ROOT ARGS...`, bounded in time.
fn stockade(root: &Path, args: &[&str]) -> Output {
    timeout()
        .arg(bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `stockade learn --out DIR FLAGS -- CMD`, verified; DIR.
fn learn(flags: &[&str], cmd: &[&str]) -> tempfile::TempDir {
    require_root();
    let out = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let o = timeout()
        .arg(bin())
        .arg("--root")
        .arg(root.path())
        .args(["learn", "--out", out.path().to_str().unwrap()])
        .args(flags)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "learn: {}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("VERIFIED"), "{}", stdout(&o));
    out
}

/// A workload that never calls mkdir, but forks and execs (the shell's machinery): busybox's
/// shell runs `/bin/busybox true` as a program of its own.
const LEARNED: &[&str] = &["/bin/busybox", "sh", "-c", "/bin/busybox true; echo hi"];

fn p(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// FILE's lines, each a JSON object with the fields the agent writes.
fn events(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            let fields: &[&str] = if v["event"] == "ready" {
                &["time", "container", "ready", "phase"]
            } else {
                &["time", "syscall", "args", "pid", "comm", "action"]
            };
            for k in fields {
                assert!(!v[k].is_null(), "no {k} in {l}");
            }
            v
        })
        .collect()
}

fn lines_for<'a>(ev: &'a [Value], names: &[&str]) -> Vec<&'a Value> {
    ev.iter()
        .filter(|e| names.contains(&e["syscall"].as_str().unwrap()))
        .collect()
}

/// The processes that hold `file` open (the agent holds its events file and nothing else does).
fn holders(file: &Path) -> Vec<i32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == file))
        {
            out.push(pid);
        }
    }
    out
}

/// The agent of `file`, once it is gone (exited, or a zombie its new parent has yet to reap).
fn assert_agent_gone(file: &Path) {
    poll_until(
        &format!("an agent still holds {}", file.display()),
        10,
        || holders(file).is_empty().then_some(()),
    );
}

/// The agent of `file`: the one process that holds it (the runtime and the process it forks
/// the agent through hold it for a moment too), named stockade-agent.
fn the_agent(file: &Path) -> i32 {
    poll_until(
        &format!("one agent holding {}", file.display()),
        10,
        || match holders(file)[..] {
            [pid] if comm(pid) == "stockade-agent" => Some(pid),
            _ => None,
        },
    )
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn complain_lets_calls_outside_the_profile_run_and_writes_each_once() {
    let l = learn(&[], LEARNED);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("events.jsonl");
    let out = sandbox(
        &[
            "--learned",
            p(l.path()),
            "--seccomp-mode",
            "complain",
            "--seccomp-events",
            p(&f),
        ],
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "for i in $(seq 10000); do mkdir /tmp/d$i; done; ls /tmp | wc -l",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "10000");
    let ev = events(&f);
    let mk = lines_for(&ev, &["mkdir", "mkdirat"]);
    assert_eq!(mk.len(), 1, "10,000 mkdir calls, one line: {ev:#?}");
    assert_eq!(mk[0]["action"], "allowed");
    assert!(mk[0]["args"].as_array().is_some_and(|a| a.len() == 6));
    assert!(mk[0]["pid"].as_u64().unwrap() > 0);
    // each line a distinct call
    let mut keys: Vec<String> = ev
        .iter()
        .map(|e| format!("{} {}", e["syscall"], e["args"]))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "{ev:#?}");
    // every one allowed, none of them a call the profile lists
    let profile = std::fs::read_to_string(l.path().join("seccomp.json")).unwrap();
    for e in &ev {
        assert_eq!(e["action"], "allowed", "{e}");
        if e["args"].is_array() {
            assert!(
                !profile.contains(&format!("\"{}\"", e["syscall"].as_str().unwrap())),
                "{e} is in the profile"
            );
        }
    }
    assert_agent_gone(&f);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&f).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn enforce_answers_eperm_and_learn_update_adds_the_call() {
    let l = learn(&[], LEARNED);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("events.jsonl");
    let script = &[
        "/bin/busybox",
        "sh",
        "-c",
        "/bin/busybox true; /bin/busybox mkdir /tmp/d; echo rc=$?",
    ];
    // the profile alone: mkdir is outside it
    let plain = sandbox(&["--learned", p(l.path())], script);
    assert_eq!(stdout(&plain), "rc=1\n", "{}", stderr(&plain));
    let out = sandbox(
        &[
            "--learned",
            p(l.path()),
            "--seccomp-mode",
            "enforce",
            "--seccomp-events",
            p(&f),
        ],
        script,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "rc=1\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    let ev = events(&f);
    let mk = lines_for(&ev, &["mkdir", "mkdirat"]);
    assert_eq!(mk.len(), 1, "{ev:#?}");
    assert_eq!(mk[0]["action"], "denied");
    assert_eq!(mk[0]["comm"], "busybox");
    assert_agent_gone(&f);

    // folded into the profile: the workload passes under plain --learned
    let root = tempfile::tempdir().unwrap();
    let up = stockade(
        root.path(),
        &["learn", "update", p(l.path()), "--events", p(&f)],
    );
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(stdout(&up).contains("added: mkdir"), "{}", stdout(&up));
    let report = std::fs::read_to_string(l.path().join("report.txt")).unwrap();
    assert!(report.contains("learn update") && report.contains("added: mkdir"));
    let observed = std::fs::read_to_string(l.path().join("observed.json")).unwrap();
    assert!(observed.contains("\"mkdir\""));
    assert!(
        l.path().join("UNVERIFIED").exists(),
        "updated without --test"
    );
    for file in [
        "seccomp-runc.json",
        "seccomp-stockade.json",
        "seccomp-profile.yaml",
    ] {
        let t = std::fs::read_to_string(l.path().join(file)).unwrap();
        assert!(t.contains("mkdir"), "{file}");
    }
    let after = sandbox(&["--learned", p(l.path())], script);
    assert_eq!(stdout(&after), "rc=0\n", "{}", stderr(&after));
}

#[test]
fn learn_update_refuses_garbage_and_verifies_with_test() {
    let l = learn(&[], LEARNED);
    let snapshot = |d: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
            .collect();
        v.sort();
        v
    };
    let before = snapshot(l.path());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("events.jsonl");
    let mkdir = json!({"time": "2026-01-01T00:00:00Z", "syscall": "mkdir", "args": [1, 511, 0, 0, 0, 0], "pid": 7, "comm": "sh", "action": "denied"});
    let root = tempfile::tempdir().unwrap();
    for (bad, why) in [
        ("not json", "not JSON"),
        (
            r#"{"syscall": "frobnicate", "args": [0,0,0,0,0,0], "action": "allowed"}"#,
            "unknown syscall",
        ),
        (
            r#"{"syscall": "mkdir", "args": [0,0], "action": "allowed"}"#,
            "args",
        ),
        (
            r#"{"syscall": "mkdir", "args": [0,0,0,0,0,0], "action": "maybe"}"#,
            "action",
        ),
    ] {
        std::fs::write(&f, format!("{mkdir}\n\n{bad}\n")).unwrap();
        let out = stockade(
            root.path(),
            &["learn", "update", p(l.path()), "--events", p(&f)],
        );
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(&format!("{}:3: ", f.display())), "{err}");
        assert!(err.contains(why), "{why}: {err}");
        assert_eq!(snapshot(l.path()), before, "DIR changed by a failed update");
    }
    // a test that still fails: DIR stays as it was, the call named
    let needs_rmdir = "/bin/busybox sh -c '/bin/busybox true; /bin/busybox mkdir /tmp/d && /bin/busybox rmdir /tmp/d && echo made'";
    std::fs::write(&f, format!("{mkdir}\n")).unwrap();
    let out = stockade(
        root.path(),
        &[
            "learn",
            "update",
            p(l.path()),
            "--events",
            p(&f),
            "--test",
            needs_rmdir,
        ],
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("still denied: rmdir"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(l.path()), before, "DIR changed by a failed test");
    // a test that passes: verified
    let ok = "/bin/busybox sh -c '/bin/busybox true; /bin/busybox mkdir /tmp/d && echo made'";
    let out = stockade(
        root.path(),
        &[
            "learn",
            "update",
            p(l.path()),
            "--events",
            p(&f),
            "--test",
            ok,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("made"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("verification: passed"),
        "{}",
        stdout(&out)
    );
    assert!(!l.path().join("UNVERIFIED").exists());
    let sc = std::fs::read_to_string(l.path().join("seccomp.json")).unwrap();
    assert!(sc.contains("\"mkdir\"") && sc.contains("verified"), "{sc}");
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".seccomp")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A running sandbox in complain mode whose agent is killed: the calls outside the profile then
/// fail (the kernel answers ENOSYS: the listener is gone, `seccomp_notify_detach`), never run.
#[test]
fn a_killed_agent_leaves_calls_outside_the_profile_failing() {
    let x = tempfile::tempdir().unwrap();
    let bind = format!("{}:/x", x.path().display());
    std::fs::write(x.path().join("go"), "").unwrap();
    let l = learn(
        &["--bind", &bind],
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "[ -e /x/go ]; /bin/busybox true; echo hi",
        ],
    );
    std::fs::remove_file(x.path().join("go")).unwrap();
    let f = x.path().join("events.jsonl");
    let root = tempfile::tempdir().unwrap();
    let script = "/bin/busybox mkdir /tmp/a && echo first > /x/ready; while [ ! -e /x/go ]; do :; done; /bin/busybox mkdir /tmp/b; echo rc=$?; [ -d /tmp/b ] || echo no-b";
    let (out, err) = (x.path().join("out"), x.path().join("err"));
    let mut child = timeout()
        .arg(bin())
        .arg("--root")
        .arg(root.path())
        .args(["sandbox", "--learned", p(l.path()), "--bind", &bind])
        .args(["--seccomp-mode", "complain", "--seccomp-events", p(&f)])
        .args(["--", "/bin/busybox", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    poll_until("the workload's first mkdir", 30, || {
        x.path().join("ready").exists().then_some(())
    });
    let agent = the_agent(&f);
    let k = Command::new("kill")
        .args(["-9", &agent.to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    assert_agent_gone(&f);
    std::fs::write(x.path().join("go"), "").unwrap();
    let status = child.wait().unwrap();
    let (out, err) = (
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
    );
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("rc=1") && out.contains("no-b"), "{out}{err}");
    // ENOSYS: what the kernel answers a notified call once nobody listens
    assert!(err.contains("Function not implemented"), "{err}");
    let ev = events(&f);
    let mk = lines_for(&ev, &["mkdir", "mkdirat"]);
    assert_eq!(mk.len(), 1, "the first mkdir, allowed; none after: {ev:#?}");
    assert_eq!(mk[0]["action"], "allowed");
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".seccomp")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The annotations under an engine's lifecycle: the agent outlives `create`, answers after
/// `start`, and is gone after `delete`; `run` in enforce mode; errors name the annotation and
/// leave nothing.
#[test]
fn annotations_through_create_start_delete_and_run() {
    let b = Bundle::new(LEARNED, |v| {
        v["process"]["noNewPrivileges"] = json!(true);
    });
    let l = tempfile::tempdir().unwrap();
    let lroot = tempfile::tempdir().unwrap();
    let o = stockade(
        lroot.path(),
        &["learn", "--bundle", p(b.path()), "--out", p(l.path())],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let mut sc: Value =
        serde_json::from_str(&std::fs::read_to_string(l.path().join("seccomp.json")).unwrap())
            .unwrap();
    sc.as_object_mut().unwrap().remove("comment");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("events.jsonl");
    let config = |mode: &str, events: &str| {
        let file = b.path().join("config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        v["linux"]["seccomp"] = sc.clone();
        v["process"]["args"] = json!([
            "/bin/busybox",
            "sh",
            "-c",
            "/bin/busybox true; /bin/busybox mkdir /tmp/d1; /bin/busybox mkdir /tmp/d2; echo rc=$?"
        ]);
        v["annotations"]["org.stockade.seccomp.mode"] = json!(mode);
        v["annotations"]["org.stockade.seccomp.events"] = json!(events);
        std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    };
    let root = b.root.path();

    config("complain", p(&f));
    let id = unique("complain");
    let out = cmd(root, &["create", "--bundle", p(b.path()), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    // the agent outlives create
    the_agent(&f);
    assert!(cmd(root, &["start", &id]).status.success());
    poll_until("the container to stop", 30, || {
        let o = cmd(root, &["state", &id]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        (v["status"] == "stopped").then_some(())
    });
    let ev = events(&f);
    let mk = lines_for(&ev, &["mkdir", "mkdirat"]);
    assert_eq!(mk.len(), 1, "{ev:#?}");
    assert_eq!(mk[0]["action"], "allowed");
    assert_eq!(mk[0]["container"], id.as_str());
    assert!(cmd(root, &["delete", &id]).status.success());
    assert_agent_gone(&f);
    assert_nothing_left(&id, root);

    // run, enforce: the workload's mkdir fails, the line says denied
    let f2 = dir.path().join("enforce.jsonl");
    config("enforce", p(&f2));
    let id = unique("enforce");
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "rc=1\n", "{}", stderr(&out));
    assert!(stderr(&out).contains("Operation not permitted"));
    let ev = events(&f2);
    assert_eq!(lines_for(&ev, &["mkdir", "mkdirat"])[0]["action"], "denied");
    assert_agent_gone(&f2);
    assert_nothing_left(&id, root);

    // errors name the annotation, and nothing is made (the events file neither)
    let f3 = dir.path().join("never.jsonl");
    for (mode, events, want) in [
        (
            "bogus",
            p(&f3),
            "org.stockade.seccomp.mode: \"bogus\": unknown mode",
        ),
        ("complain", "relative.jsonl", "must be an absolute path"),
        (
            "complain",
            "/nonexistent-dir/e.jsonl",
            "no directory /nonexistent-dir",
        ),
        ("complain", p(dir.path()), "is a directory"),
    ] {
        config(mode, events);
        let id = unique("bad");
        let out = b.run(&id);
        assert!(!out.status.success(), "{mode} {events}");
        assert!(stderr(&out).contains(want), "{want}: {}", stderr(&out));
        assert_nothing_left(&id, root);
        assert!(!f3.exists());
    }
    // a mode without a profile
    let file = b.path().join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    v["annotations"]["org.stockade.seccomp.mode"] = json!("enforce");
    v["annotations"]["org.stockade.seccomp.events"] = json!(p(&f3));
    v["linux"].as_object_mut().unwrap().remove("seccomp");
    std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let id = unique("noprofile");
    let out = b.run(&id);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("needs a seccomp profile"),
        "{}",
        stderr(&out)
    );
    assert_nothing_left(&id, root);
    assert!(!f3.exists());
}

/// Without no_new_privileges stockade's own process loads the filter before it sets the user
/// and capabilities: the agent gets the listener right then and lets those calls (its own,
/// until its `execve`) run unlogged, so the lean seccomp.json runs in enforce, and the events
/// name the workload's calls only.
#[test]
fn without_no_new_privileges_the_lean_profile_runs_and_logs_only_the_workload() {
    let b = Bundle::new(LEARNED, |v| {
        v["process"]["noNewPrivileges"] = json!(true);
    });
    let l = tempfile::tempdir().unwrap();
    let lroot = tempfile::tempdir().unwrap();
    let o = stockade(
        lroot.path(),
        &["learn", "--bundle", p(b.path()), "--out", p(l.path())],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("events.jsonl");
    let mut sc: Value =
        serde_json::from_str(&std::fs::read_to_string(l.path().join("seccomp.json")).unwrap())
            .unwrap();
    sc.as_object_mut().unwrap().remove("comment");
    let names = |sc: &Value| -> Vec<String> {
        sc["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .flat_map(|r| r["names"].as_array().unwrap().iter())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    };
    // the lean profile lacks stockade's own calls before execve without no_new_privileges
    for c in ["setuid", "setgid", "capset"] {
        assert!(!names(&sc).iter().any(|n| n == c), "{c} in {sc}");
    }
    for (mode, want) in [("enforce", "rc=1\n"), ("complain", "rc=0\n")] {
        let _ = std::fs::remove_file(&f);
        let file = b.path().join("config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        v["linux"]["seccomp"] = sc.clone();
        v["process"]["noNewPrivileges"] = json!(false);
        v["process"]["args"] = json!([
            "/bin/busybox",
            "sh",
            "-c",
            "/bin/busybox true; /bin/busybox mkdir /tmp/d; echo rc=$?"
        ]);
        v["annotations"]["org.stockade.seccomp.mode"] = json!(mode);
        v["annotations"]["org.stockade.seccomp.events"] = json!(p(&f));
        std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let id = unique(mode);
        let out = b.run(&id);
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        assert_eq!(stdout(&out), want, "{mode}: {}", stderr(&out));
        let ev = events(&f);
        let called: Vec<&str> = ev.iter().map(|e| e["syscall"].as_str().unwrap()).collect();
        assert_eq!(called, ["mkdir"], "{mode}: {ev:?}");
        let action = if mode == "enforce" {
            "denied"
        } else {
            "allowed"
        };
        assert_eq!(ev[0]["action"], action);
        assert_agent_gone(&f);
        assert_nothing_left(&id, b.root.path());
    }
}

#[test]
fn flag_errors_are_named_and_leave_nothing() {
    let l = learn(&[], LEARNED);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("e.jsonl");
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--learned",
                p(l.path()),
                "--seccomp-mode",
                "bogus",
                "--seccomp-events",
                p(&f),
            ],
            "--seccomp-mode bogus: unknown mode",
        ),
        (
            &["--seccomp-mode", "complain", "--seccomp-events", p(&f)],
            "--seccomp-mode complain: needs --learned DIR",
        ),
        (
            &["--learned", p(l.path()), "--seccomp-mode", "enforce"],
            "--seccomp-mode enforce: needs --seccomp-events FILE",
        ),
        (
            &["--learned", p(l.path()), "--seccomp-events", p(&f)],
            "needs --seccomp-mode",
        ),
        (
            &[
                "--learned",
                p(l.path()),
                "--seccomp-mode",
                "complain",
                "--seccomp-events",
                "/nonexistent-dir/e.jsonl",
            ],
            "--seccomp-events /nonexistent-dir/e.jsonl: no directory",
        ),
        (
            &[
                "--learned",
                p(l.path()),
                "--seccomp-mode",
                "complain",
                "--seccomp-events",
                p(dir.path()),
            ],
            "is a directory",
        ),
        (
            &[
                "--learned",
                p(l.path()),
                "--seccomp-mode",
                "complain",
                "--seccomp-events",
                "/proc/sys/kernel/version",
            ],
            "not writable",
        ),
    ];
    for (flags, want) in cases {
        let out = sandbox(flags, &["/bin/busybox", "true"]);
        assert!(!out.status.success(), "{flags:?}");
        assert!(stderr(&out).contains(want), "{want}: {}", stderr(&out));
        assert!(!f.exists(), "{flags:?} made the events file");
    }
}

/// The C workload (static, in the test's target tmp dir), compiled once.
fn bench() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("complain-bench");
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("bench.c");
        std::fs::write(&src, BENCH_C).unwrap();
        let bin = dir.join(format!("bench-{}", std::process::id()));
        let out = Command::new("gcc")
            .args(["-O2", "-static", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("gcc (apt-get install gcc libc6-dev)");
        assert!(out.status.success(), "gcc: {}", stderr(&out));
        bin
    })
}

/// `--ro-bind` of the bench's directory at /b, and its path there.
fn bench_bind() -> (String, String) {
    let b = bench();
    (
        format!("{}:/b", b.parent().unwrap().display()),
        format!("/b/{}", b.file_name().unwrap().to_string_lossy()),
    )
}

/// stockade's default profile: a filter of the workload's own with a listener is refused, one
/// without is not.
#[test]
fn default_profile_refuses_a_listener_of_the_workloads_own() {
    let (bind, prog) = bench_bind();
    let out = sandbox(&["--ro-bind", &bind], &[&prog, "listener", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "new listener: -1 Operation not permitted\nplain filter: 0 ok\n"
    );
}

/// In complain mode with its agent killed, the workload cannot put a listener of its own in
/// the agent's place (the kernel would hand it the container filter's notifications: it could
/// answer CONTINUE); its call outside the profile fails.
#[test]
fn no_listener_of_the_workloads_own_after_the_agent_is_killed() {
    let x = tempfile::tempdir().unwrap();
    let xbind = format!("{}:/x", x.path().display());
    let (bind, prog) = bench_bind();
    std::fs::write(x.path().join("go"), "").unwrap();
    let l = learn(
        &["--ro-bind", &bind, "--bind", &xbind],
        &[&prog, "hole", "learn"],
    );
    std::fs::remove_file(x.path().join("go")).unwrap();
    std::fs::remove_file(x.path().join("ready")).unwrap();
    let f = x.path().join("events.jsonl");
    let root = tempfile::tempdir().unwrap();
    let child = timeout()
        .arg(bin())
        .arg("--root")
        .arg(root.path())
        .args([
            "sandbox",
            "--learned",
            p(l.path()),
            "--ro-bind",
            &bind,
            "--bind",
            &xbind,
        ])
        .args(["--seccomp-mode", "complain", "--seccomp-events", p(&f)])
        .args(["--", &prog, "hole", "try"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    poll_until("the workload to start", 30, || {
        x.path().join("ready").exists().then_some(())
    });
    let agent = the_agent(&f);
    assert!(Command::new("kill")
        .args(["-9", &agent.to_string()])
        .status()
        .unwrap()
        .success());
    assert_agent_gone(&f);
    std::fs::write(x.path().join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "new listener: -1 Operation not permitted\nmkdir: -1 Function not implemented\ndone\n"
    );
}

/// Measured, printed: a call the profile allows under `--learned` with and without complain
/// mode (and with no filter), and a call outside it answered in the kernel (EPERM) or by the
/// agent (a dedup hit: no line written).
#[test]
fn measure_the_cost_of_the_agent() {
    let (bind, prog) = bench_bind();
    let l = learn(&["--ro-bind", &bind], &[&prog, "ppid", "1000"]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("events.jsonl");
    let run = |flags: &[&str], args: &[&str]| -> String {
        let mut all = vec!["--ro-bind", &bind];
        all.extend_from_slice(flags);
        let mut cmd = vec![prog.as_str()];
        cmd.extend_from_slice(args);
        let out = sandbox(&all, &cmd);
        assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let learned = ["--learned", p(l.path())];
    let complain = [
        "--learned",
        p(l.path()),
        "--seccomp-mode",
        "complain",
        "--seccomp-events",
        p(&f),
    ];
    let enforce = [
        "--learned",
        p(l.path()),
        "--seccomp-mode",
        "enforce",
        "--seccomp-events",
        p(&f),
    ];
    let mut report = vec![];
    for (what, flags, args) in [
        (
            "allowed getppid, no filter",
            &["--seccomp", "unconfined"][..],
            ["ppid", "1000000"],
        ),
        (
            "allowed getppid, --learned",
            &learned[..],
            ["ppid", "1000000"],
        ),
        (
            "allowed getppid, --learned + complain",
            &complain[..],
            ["ppid", "1000000"],
        ),
        (
            "getpgrp outside the profile, --learned (EPERM in the kernel)",
            &learned[..],
            ["unlisted", "100000"],
        ),
        (
            "getpgrp outside the profile, complain (agent: CONTINUE, dedup hit)",
            &complain[..],
            ["unlisted", "20000"],
        ),
        (
            "getpgrp outside the profile, enforce (agent: EPERM, dedup hit)",
            &enforce[..],
            ["unlisted", "20000"],
        ),
    ] {
        let line = run(flags, &args);
        report.push(format!("{what}: {line}"));
        if what.contains("complain") && args[0] == "unlisted" {
            assert!(line.ends_with("errno 0"), "{line}");
        }
        if what.contains("EPERM") {
            assert!(line.ends_with("errno 1"), "{line}");
        }
    }
    println!(
        "\n== seccomp agent cost (not asserted)\n{}",
        report.join("\n")
    );
    let ev = events(&f);
    assert_eq!(lines_for(&ev, &["getpgrp"]).len(), 2, "{ev:#?}");
}

const BENCH_C: &str = r#"
/* complain.rs's workload: `ppid N` and `unlisted N` time N calls of getppid (in every learned
 * profile) or getpgrp (in none); `hole learn|try` waits for /x/go and then (try) asks for a
 * seccomp listener of its own and makes a call outside the profile; `listener` asks for one. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static void own_filter(unsigned flags, const char *what) {
  struct sock_filter f = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog p = {1, &f};
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &p);
  printf("%s: %ld %s\n", what, r < 0 ? -1L : r, r < 0 ? strerror(errno) : "ok");
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  if (!strcmp(argv[1], "ppid") || !strcmp(argv[1], "unlisted")) {
    long n = atol(argv[2]), nr = argv[1][0] == 'p' ? SYS_getppid : SYS_getpgrp, r = 0;
    int e = 0;
    double t0 = now();
    for (long i = 0; i < n; i++) {
      r = syscall(nr);
      e = errno;
    }
    double t1 = now();
    printf("%ld calls, %.3f us/call, last %ld errno %d\n", n, n ? (t1 - t0) / n / 1000 : 0.0,
           r, r < 0 ? e : 0);
    return 0;
  }
  if (!strcmp(argv[1], "hole")) {
    struct timespec ms = {0, 1000000};
    struct stat st;
    int fd = open("/x/ready", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) close(fd);
    nanosleep(&ms, 0);
    while (stat("/x/go", &st) != 0) nanosleep(&ms, 0);
    if (!strcmp(argv[2], "try")) {
      own_filter(SECCOMP_FILTER_FLAG_NEW_LISTENER, "new listener");
      long r = syscall(SYS_mkdir, "/tmp/b", 0700);
      printf("mkdir: %ld %s\n", r, r < 0 ? strerror(errno) : "ok");
    }
    printf("done\n");
    return 0;
  }
  if (!strcmp(argv[1], "listener")) {
    own_filter(SECCOMP_FILTER_FLAG_NEW_LISTENER, "new listener");
    own_filter(0, "plain filter");
    return 0;
  }
  return 2;
}
"#;

/// A server that runs a helper program at startup and on one kind of request.
const SERVER: &str = r#"
import http.server, socketserver, subprocess, sys
subprocess.run(["/bin/true"], check=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200
        if self.path == "/exec":
            try:
                subprocess.run(["/bin/true"], check=True)
            except Exception:
                code = 500
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
socketserver.TCPServer.allow_reuse_address = True
socketserver.TCPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// The HTTP status of GET PATH on 127.0.0.1:PORT inside `pid`'s network namespace.
fn get_in(pid: i32, port: u16, path: &str) -> String {
    let o = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("nsenter and curl (.ci/run installs them)");
    stdout(&o)
}

/// `learn --ready` writes the calls made after readiness as seccomp-serving.json; `sandbox
/// --learned DIR --ready` then lets the startup-only calls run until the server listens, and
/// denies them (logged, phase serving) once it does: the request that execs fails, the others
/// work.
#[test]
fn after_ready_the_startup_only_calls_are_denied() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("server.py");
    std::fs::write(&script, SERVER).unwrap();
    let port = 18000 + (std::process::id() % 1000) as u16;
    let ready = format!("tcp:{port}");
    let test = format!("curl -sf http://127.0.0.1:{port}/ok");
    let bind = format!("{}:/srv", dir.path().display());
    let l = learn(
        &["--ro-bind", &bind, "--ready", &ready, "--test", &test],
        &["/usr/bin/python3", "/srv/server.py", &port.to_string()],
    );
    let serving = std::fs::read_to_string(l.path().join("seccomp-serving.json")).unwrap();
    let report = std::fs::read_to_string(l.path().join("report.txt")).unwrap();
    let startup_line = report
        .lines()
        .find(|x| x.starts_with("seccomp-serving.json allows"))
        .unwrap_or_else(|| panic!("{report}"));
    for c in ["execve", "bind", "listen"] {
        assert!(
            startup_line.contains(c),
            "{c} not startup-only: {startup_line}"
        );
        assert!(!serving.contains(&format!("\"{c}\"")), "{c} in {serving}");
    }
    // production: enforce, the phase switch at readiness
    let root = tempfile::tempdir().unwrap();
    let f = dir.path().join("events.jsonl");
    let id = unique("ready");
    let mut sb = Command::new(bin())
        .arg("--root")
        .arg(root.path())
        .args([
            "sandbox",
            "--id",
            &id,
            "--learned",
            p(l.path()),
            "--ro-bind",
            &bind,
        ])
        .args([
            "--ready",
            &ready,
            "--seccomp-mode",
            "enforce",
            "--seccomp-events",
            p(&f),
        ])
        .args([
            "--",
            "/usr/bin/python3",
            "/srv/server.py",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // a failed assertion below still stops the sandbox (the runtime forwards SIGTERM)
    struct Stop(i32);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let stop = Stop(sb.id() as i32);
    let pid = poll_until("the sandbox never ran", 20, || {
        let o = stockade(root.path(), &["state", &id]);
        let v: Value = serde_json::from_str(&stdout(&o)).ok()?;
        v["pid"].as_i64().filter(|p| *p > 0).map(|p| p as i32)
    });
    poll_until("the agent never saw the server ready", 20, || {
        events(&f)
            .iter()
            .any(|e| e["event"] == "ready")
            .then_some(())
    });
    assert_eq!(get_in(pid, port, "/ok"), "200");
    assert_eq!(get_in(pid, port, "/exec"), "500");
    assert_eq!(get_in(pid, port, "/ok"), "200");
    let ev = events(&f);
    let denied: Vec<&Value> = ev.iter().filter(|e| e["action"] == "denied").collect();
    assert!(!denied.is_empty(), "{ev:?}");
    for d in &denied {
        assert_eq!(d["phase"], "serving", "{ev:?}");
        let name = d["syscall"].as_str().unwrap();
        assert!(
            startup_line.contains(name),
            "{name} denied, not startup-only: {ev:?}"
        );
    }
    // nothing before readiness was logged: the startup calls ran under the whole-life profile
    assert!(ev.iter().all(|e| e["phase"] != "startup"), "{ev:?}");
    drop(stop);
    let _ = sb.wait();
    assert_agent_gone(&f);
    assert_nothing_left(&id, root.path());
    // bad input: --ready without --learned, or a DIR learned without --ready
    let o = stockade(root.path(), &["sandbox", "--ready", &ready, "--", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--ready") && stderr(&o).contains("needs --learned"),
        "{}",
        stderr(&o)
    );
    let plain = learn(&[], LEARNED);
    let o = stockade(
        root.path(),
        &[
            "sandbox",
            "--learned",
            p(plain.path()),
            "--ready",
            &ready,
            "--seccomp-mode",
            "enforce",
            "--seccomp-events",
            p(&f),
            "--",
            "true",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no seccomp-serving.json"),
        "{}",
        stderr(&o)
    );
}
