//! A real Docker engine driving stockade: the test starts its own `dockerd` (Debian's docker.io)
//! with temporary directories and a daemon.json naming the built binary, imports a busybox
//! image offline, and runs containers through containerd's runc shim — the path Kubernetes takes.
//! It fails (never skips) when the daemon cannot start.

mod common;
use common::engines::*;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn docker_runs_containers_with_stockade() {
    let d = Dockerd::start();
    let run = |args: &[&str]| {
        let mut a = vec!["run", "--rm", "--runtime", "stockade"];
        a.extend_from_slice(args);
        d.docker(&a)
    };
    // exit codes
    let out = run(&["bb", "sh", "-c", "echo hi; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");
    // Docker's own settings arrive: memory, pids, caps dropped, user, read-only root
    let out = run(&["--memory", "64m", "--pids-limit", "50", "--cap-drop", "ALL", "--user", "1000", "--read-only", "bb", "sh", "-c",
        "id -u; grep CapEff /proc/self/status; cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; touch /x 2>/dev/null || echo ro"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "1000\nCapEff:\t0000000000000000\n67108864\n50\nro\n"
    );
    // a seccomp profile file
    let out = run(&[
        "--security-opt",
        "seccomp=../../../shared/data/docker-default-seccomp.json",
        "bb",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Seccomp:\t2\n");
    // detached: pause/unpause, stats, stop delivers SIGTERM, kill
    let id = stdout(&d.docker(&[
        "run",
        "-d",
        "--runtime",
        "stockade",
        "bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]))
    .trim()
    .to_string();
    assert_eq!(id.len(), 64, "no container id");
    assert!(d.docker(&["pause", &id]).status.success());
    assert_eq!(
        stdout(&d.docker(&["inspect", "-f", "{{.State.Status}}", &id])).trim(),
        "paused"
    );
    assert!(d.docker(&["unpause", &id]).status.success());
    let stats = d.docker(&["stats", "--no-stream", "--format", "{{.PIDs}}", &id]);
    assert!(
        stdout(&stats).trim().parse::<u32>().unwrap() >= 1,
        "{}",
        stdout(&stats)
    );
    assert!(d.docker(&["stop", "-t", "10", &id]).status.success());
    assert_eq!(
        stdout(&d.docker(&["inspect", "-f", "{{.State.ExitCode}}", &id])).trim(),
        "0"
    );
    assert!(d.docker(&["rm", &id]).status.success());
    let id = stdout(&d.docker(&["run", "-d", "--runtime", "stockade", "bb", "sleep", "60"]))
        .trim()
        .to_string();
    assert!(d.docker(&["kill", &id]).status.success());
    assert_eq!(
        stdout(&d.docker(&["inspect", "-f", "{{.State.ExitCode}}", &id])).trim(),
        "137"
    );
    assert!(d.docker(&["rm", &id]).status.success());
    // nothing of the containers is left in any cgroup hierarchy
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let docker = e.path().join("docker");
        let left: Vec<_> = std::fs::read_dir(&docker)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|x| x.path().is_dir())
            .collect();
        assert!(
            left.is_empty(),
            "cgroups left in {}: {left:?}",
            docker.display()
        );
    }
}

/// `stockade audit` of real `docker inspect` output: a privileged container with the host's
/// namespaces, root and socket, and a hardened one (containers are only created: inspect is
/// what is audited).
#[test]
fn docker_inspect_output_is_audited() {
    let d = Dockerd::start();
    let priv_ = d.docker(&[
        "create",
        "--name",
        "priv",
        "--privileged",
        "--network",
        "host",
        "--pid",
        "host",
        "-v",
        "/:/host",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "bb",
        "sleep",
        "9",
    ]);
    assert!(priv_.status.success(), "{}", stderr(&priv_));
    let hard = d.docker(&[
        "create",
        "--name",
        "hard",
        "--cap-drop",
        "ALL",
        "--read-only",
        "--memory",
        "256m",
        "--pids-limit",
        "100",
        "--cpus",
        "1",
        "--security-opt",
        "no-new-privileges",
        "--user",
        "1000",
        "--network",
        "none",
        "bb",
        "sleep",
        "9",
    ]);
    assert!(hard.status.success(), "{}", stderr(&hard));
    let inspect = d.docker(&["inspect", "priv", "hard"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let file = d.dir.path().join("inspect.json");
    std::fs::write(&file, &inspect.stdout).unwrap();
    let out = timeout()
        .arg(bin())
        .args(["audit", "--format", "json", "--fail-on", "high"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = |target: &str| -> Vec<(String, String, String)> {
        v["reports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["target"] == target)
            .unwrap_or_else(|| panic!("no {target} in {v:#}"))["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap().into(),
                    f["severity"].as_str().unwrap().into(),
                    f["evidence"].to_string(),
                )
            })
            .collect()
    };
    let p = findings("docker container priv");
    for (id, cis) in [
        ("SA001", "[0].HostConfig.Privileged = true"),
        ("SA010", "[0].HostConfig.NetworkMode = \\\"host\\\""),
        ("SA011", "[0].HostConfig.PidMode"),
        ("SA051", "/ → /host"),
        ("SA054", "/var/run/docker.sock"),
        ("SA040", "Privileged"),
    ] {
        assert!(
            p.iter()
                .any(|(i, s, e)| i == id && s == "high" && e.contains(cis)),
            "priv: {id} with {cis}: {p:#?}"
        );
    }
    let h = findings("docker container hard");
    assert!(h.iter().all(|(_, s, _)| s != "high"), "hard: {h:#?}");
    for id in [
        "SA002", "SA003", "SA025", "SA026", "SA027", "SA030", "SA040", "SA050",
    ] {
        assert!(
            h.iter().all(|(i, _, _)| i != id),
            "hard: {id} fired: {h:#?}"
        );
    }
    assert!(d.docker(&["rm", "priv", "hard"]).status.success());
}

#[test]
fn podman_runs_containers_with_stockade() {
    let p = Podman::new();
    let run = |extra: &[&str], cmd: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(PODMAN_RUN);
        a.extend_from_slice(extra);
        a.push("localhost/bb");
        a.extend_from_slice(cmd);
        p.podman(&a)
    };
    let out = run(&[], &["sh", "-c", "echo hi; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");
    let out = run(
        &[
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--cap-drop",
            "ALL",
            "--user",
            "1000",
            "--read-only",
        ],
        &[
            "sh",
            "-c",
            "id -u; grep CapEff /proc/self/status; touch /x 2>/dev/null || echo ro",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1000\nCapEff:\t0000000000000000\nro\n");
    let mut a = vec!["run", "-d"];
    a.extend_from_slice(PODMAN_RUN);
    a.extend_from_slice(&[
        "localhost/bb",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    let id = stdout(&p.podman(&a)).trim().to_string();
    assert_eq!(id.len(), 64, "no container id");
    let ex = p.podman(&["exec", &id, "sh", "-c", "echo exec-ok; exit 4"]);
    assert_eq!(ex.status.code(), Some(4), "{}", stderr(&ex));
    assert_eq!(stdout(&ex), "exec-ok\n");
    assert!(p.podman(&["pause", &id]).status.success());
    assert!(p.podman(&["unpause", &id]).status.success());
    assert!(p.podman(&["stop", "-t", "10", &id]).status.success());
    assert_eq!(
        stdout(&p.podman(&["inspect", "-f", "{{.State.ExitCode}}", &id])).trim(),
        "0"
    );
    assert!(p.podman(&["rm", &id]).status.success());

    // `podman inspect` has docker's shape plus the capabilities podman computed: audit uses them
    let c = p.podman(&[
        "create",
        "--name",
        "audited",
        "--cap-add",
        "SYS_ADMIN",
        "bb",
        "true",
    ]);
    assert!(c.status.success(), "{}", stderr(&c));
    let inspect = p.podman(&["inspect", "audited"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let file = p.dir.path().join("inspect.json");
    std::fs::write(&file, &inspect.stdout).unwrap();
    let out = timeout()
        .arg(bin())
        .args(["audit", "--format", "json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["reports"][0];
    assert_eq!(r["target"], "podman container audited");
    let caps = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "SA002")
        .unwrap_or_else(|| panic!("no SA002: {v:#}"));
    assert_eq!(caps["evidence"][0], "[0].EffectiveCaps");
    assert!(caps["message"].as_str().unwrap().contains("CAP_SYS_ADMIN"));
    assert!(p.podman(&["rm", "audited"]).status.success());
}

#[test]
fn containerd_runs_containers_with_stockade_through_the_runc_shim() {
    let c = Containerd::start();
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        bin(),
        "localhost/bb:latest",
        &unique("c"),
        "sh",
        "-c",
        "echo hi from containerd; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi from containerd\n");
    let id = unique("cd");
    let out = c.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        bin(),
        "localhost/bb:latest",
        &id,
        "sleep",
        "60",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tasks = stdout(&c.ctr(&["task", "ls"]));
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("RUNNING")),
        "{tasks}"
    );
    assert!(c.ctr(&["task", "pause", &id]).status.success());
    assert!(stdout(&c.ctr(&["task", "ls"]))
        .lines()
        .any(|l| l.starts_with(&id) && l.contains("PAUSED")));
    assert!(c.ctr(&["task", "resume", &id]).status.success());
    assert!(c
        .ctr(&["task", "kill", "-s", "SIGKILL", &id])
        .status
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stdout(&c.ctr(&["task", "ls"]))
        .lines()
        .any(|l| l.starts_with(&id) && l.contains("STOPPED"))
    {
        assert!(Instant::now() < deadline, "task did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.ctr(&["task", "delete", &id]).status.success());
    assert!(c.ctr(&["container", "delete", &id]).status.success());
}
