//! `stockade audit` on configs (stockade's and runc's defaults), hand-written Kubernetes
//! manifests, and live processes: a stockade container, a sandbox, a runc container and a plain
//! host process. (`docker inspect` fixtures come from the real daemon in `engines.rs`.)

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audit")
        .join(name)
}

fn audit(args: &[&str]) -> std::process::Output {
    timeout()
        .arg(bin())
        .arg("audit")
        .args(args)
        .output()
        .unwrap()
}

fn audit_json(args: &[&str]) -> (i32, serde_json::Value) {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let out = audit(&a);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap(), v)
}

/// (rule id, severity) of every finding of the report whose target contains `target`.
fn ids(v: &serde_json::Value, target: &str) -> Vec<(String, String)> {
    let r = v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"].as_str().unwrap().contains(target))
        .unwrap_or_else(|| panic!("no report for {target}: {v:#}"));
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has(found: &[(String, String)], id: &str, sev: &str) -> bool {
    found.iter().any(|(i, s)| i == id && s == sev)
}

fn evidence<'a>(v: &'a serde_json::Value, target: &str, id: &str) -> Vec<&'a str> {
    v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target"].as_str().unwrap().contains(target))
        .flat_map(|r| r["findings"].as_array().unwrap())
        .filter(|f| f["id"] == id)
        .flat_map(|f| f["evidence"].as_array().unwrap())
        .map(|e| e.as_str().unwrap())
        .collect()
}

#[test]
fn stockade_spec_passes_and_runc_spec_shows_the_seeds_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new(bin())
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let (code, v) = audit_json(&[dir.path().to_str().unwrap(), "--fail-on", "medium"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["summary"]["high"], 0, "{v:#}");
    assert_eq!(v["summary"]["medium"], 0, "{v:#}");

    let rdir = tempfile::tempdir().unwrap();
    let st = Command::new("runc")
        .arg("spec")
        .current_dir(rdir.path())
        .status()
        .expect("runc (apt-get install runc)");
    assert!(st.success());
    let cfg = rdir.path().join("config.json");
    let (code, v) = audit_json(&[cfg.to_str().unwrap(), "--fail-on", "high"]);
    assert_eq!(code, 3, "a high finding with --fail-on high exits 3");
    let f = ids(&v, "config.json");
    for (id, sev) in [
        ("SA014", "high"),   // no user namespace, runs as root
        ("SA040", "high"),   // no seccomp
        ("SA020", "medium"), // keyring reachable and shared
        ("SA025", "medium"), // no memory limit
        ("SA027", "medium"), // no pids limit
        ("SA003", "low"),    // three capabilities kept
    ] {
        assert!(has(&f, id, sev), "runc spec: {id} {sev} missing: {f:?}");
    }
    assert!(
        evidence(&v, "config.json", "SA014").contains(&"linux.namespaces has no \"user\" entry")
    );
    // the table names the CIS id and the fix
    let out = audit(&[cfg.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "without --fail-on findings do not fail"
    );
    let t = stdout(&out);
    assert!(t.contains("SA040 CIS 5.22: seccomp disabled"), "{t}");
    assert!(t.contains("oci: set linux.seccomp"), "{t}");
}

#[test]
fn kubernetes_manifests_map_to_findings_with_their_paths() {
    let risky = fixture("k8s-risky.yaml");
    let (code, v) = audit_json(&[risky.to_str().unwrap(), "--fail-on", "high"]);
    assert_eq!(code, 3);
    // the Service runs nothing: three workloads, three reports
    assert_eq!(v["reports"].as_array().unwrap().len(), 3, "{v:#}");
    let dep = ids(&v, "Deployment/agent");
    for id in ["SA001", "SA010", "SA054", "SA040"] {
        assert!(has(&dep, id, "high"), "Deployment: {id}: {dep:?}");
    }
    assert!(evidence(&v, "Deployment/agent", "SA010")
        .contains(&"Deployment/agent: spec.template.spec.hostNetwork = true"));
    let ds = ids(&v, "DaemonSet/node-tool");
    for (id, sev) in [
        ("SA002", "high"),   // SYS_ADMIN, SYS_TIME
        ("SA011", "high"),   // hostPID
        ("SA012", "medium"), // hostIPC
        ("SA023", "high"),   // SYS_TIME
        ("SA051", "high"),   // /etc read-write
        ("SA052", "high"),   // /dev/sda
        ("SA053", "medium"), // Bidirectional
        ("SA040", "high"),   // Unconfined
    ] {
        assert!(has(&ds, id, sev), "DaemonSet: {id} {sev}: {ds:?}");
    }
    assert!(
        !has(&ds, "SA025", "medium"),
        "the DaemonSet sets a memory limit"
    );
    let cron = ids(&v, "CronJob/report");
    assert!(
        has(&cron, "SA021", "medium") && has(&cron, "SA022", "high"),
        "{cron:?}"
    );
    let ev = evidence(&v, "CronJob/report", "SA022");
    assert!(
        ev.iter().any(|e| e.contains("spec.jobTemplate.spec.template.spec.containers[0].securityContext.procMount = Unmasked")),
        "{ev:?}"
    );

    let (code, v) = audit_json(&[
        fixture("k8s-hardened.yaml").to_str().unwrap(),
        "--fail-on",
        "low",
    ]);
    assert_eq!(code, 0, "{v:#}");
    // a Pod, a StatefulSet and a Job (init container included) that follow the seed
    let targets: Vec<&str> = v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "Pod/hardened container app",
            "StatefulSet/db container db",
            "Job/migrate container wait",
            "Job/migrate container migrate"
        ]
    );
    for t in targets {
        assert_eq!(ids(&v, t), vec![], "{t}");
    }
}

#[test]
fn sarif_output_is_well_formed() {
    let risky = fixture("k8s-risky.yaml");
    let out = audit(&[risky.to_str().unwrap(), "--format", "sarif"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "stockade");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert!(results.len() >= 30, "{}", results.len());
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            rules[idx]["id"], r["ruleId"],
            "ruleIndex points at the rule"
        );
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            risky.to_str().unwrap()
        );
        assert!(!r["locations"][0]["logicalLocations"]
            .as_array()
            .unwrap()
            .is_empty());
    }
    let cis_5_32 = rules.iter().find(|r| r["id"] == "SA054").unwrap();
    assert_eq!(cis_5_32["properties"]["cis"], "5.32");
}

/// Wait until `pid` has exec'd `comm` (the container's process is up).
fn wait_comm(pid: i32, comm: &str) {
    poll_until(&format!("pid {pid} never became {comm}"), 20, || {
        (std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            == comm)
            .then_some(())
    });
}

#[test]
fn live_processes_stockade_sandbox_runc_and_host() {
    require_root();
    // a stockade container under the hardened defaults: nothing above low
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let id = unique("audit");
    let out = b.run_detached(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    let state = Command::new(bin())
        .arg("--root")
        .arg(b.root.path())
        .args(["state", &id])
        .output()
        .unwrap();
    let pid = serde_json::from_slice::<serde_json::Value>(&state.stdout).unwrap()["pid"]
        .as_i64()
        .unwrap() as i32;
    wait_comm(pid, "sleep");
    let (code, v) = audit_json(&["--pid", &pid.to_string(), "--fail-on", "medium"]);
    let f = ids(&v, &format!("pid {pid}"));
    let _ = Command::new(bin())
        .arg("--root")
        .arg(b.root.path())
        .args(["delete", "-f", &id])
        .status();
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(f, vec![("SA031".to_string(), "low".to_string())], "{v:#}");

    // a sandbox: host directories bound read-only show up as such (medium, not high)
    let root = tempfile::tempdir().unwrap();
    let mut sb = Command::new(bin())
        .arg("--root")
        .arg(root.path())
        .args(["sandbox", "--", "sleep", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // the command is the sandbox init's child: the runtime's grandchild
    let inner = poll_until("sandbox never ran sleep", 20, || {
        descendants(sb.id() as i32).into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .unwrap_or_default()
                .trim()
                == "sleep"
        })
    });
    let (_, v) = audit_json(&["--pid", &inner.to_string()]);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(inner),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = sb.wait();
    let f = ids(&v, &format!("pid {inner}"));
    assert!(
        has(&f, "SA051", "medium"),
        "read-only host /usr or /etc: {v:#}"
    );
    assert!(f.iter().all(|(_, s)| s != "high"), "{v:#}");
    assert!(
        evidence(&v, &format!("pid {inner}"), "SA051")
            .iter()
            .any(|e| e.contains("is host /etc")),
        "{v:#}"
    );

    // runc with `runc spec` defaults: no user namespace, no seccomp, keyring shared
    let dir = tempfile::tempdir().unwrap();
    busybox_rootfs(&dir.path().join("rootfs"));
    assert!(Command::new("runc")
        .arg("spec")
        .current_dir(dir.path())
        .status()
        .unwrap()
        .success());
    let cfg = dir.path().join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    c["process"]["terminal"] = serde_json::json!(false);
    c["process"]["args"] = serde_json::json!(["sleep", "60"]);
    std::fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();
    let runc_root = tempfile::tempdir().unwrap();
    let rid = unique("arunc");
    let st = timeout()
        .arg("runc")
        .arg("--root")
        .arg(runc_root.path())
        .args(["run", "-d", "--bundle"])
        .arg(dir.path())
        .arg(&rid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "runc run -d");
    let state = Command::new("runc")
        .arg("--root")
        .arg(runc_root.path())
        .args(["state", &rid])
        .output()
        .unwrap();
    let rpid = serde_json::from_slice::<serde_json::Value>(&state.stdout).unwrap()["pid"]
        .as_i64()
        .unwrap() as i32;
    wait_comm(rpid, "sleep");
    let (code, v) = audit_json(&["--pid", &rpid.to_string(), "--fail-on", "high"]);
    let _ = Command::new("runc")
        .arg("--root")
        .arg(runc_root.path())
        .args(["delete", "-f", &rid])
        .status();
    assert_eq!(code, 3);
    let f = ids(&v, &format!("pid {rpid}"));
    for (id, sev) in [("SA014", "high"), ("SA040", "high"), ("SA020", "medium")] {
        assert!(has(&f, id, sev), "runc: {id} {sev}: {f:?}");
    }
    assert!(!has(&f, "SA011", "high"), "runc makes a pid namespace");

    // a plain host process shares everything
    let mut host = Command::new("sleep").arg("60").spawn().unwrap();
    let (code, v) = audit_json(&["--pid", &host.id().to_string(), "--fail-on", "high"]);
    let _ = host.kill();
    let _ = host.wait();
    assert_eq!(code, 3);
    let f = ids(&v, &format!("pid {}", host.id()));
    for id in ["SA010", "SA011", "SA016", "SA040", "SA002"] {
        assert!(has(&f, id, "high"), "host: {id}: {f:?}");
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![dir.path().join("missing.json").to_str().unwrap().into()],
            "No such file",
        ),
        (
            vec![w("bad.json", "{\"ociVersion\": \"1.0\", ")],
            "invalid JSON",
        ),
        (
            vec![w("inspect.json", "[{\"Id\": \"x\"}]")],
            "[0] has no HostConfig",
        ),
        (
            vec![w("odd.json", "{\"hello\": 1}")],
            "neither an OCI config",
        ),
        (
            vec![fixture("k8s-unknown-kind.yaml").to_str().unwrap().into()],
            "unknown kind \"Gadget\"",
        ),
        (
            vec![fixture("k8s-broken.yaml").to_str().unwrap().into()],
            "YAML document 1",
        ),
        (vec![w("empty.yaml", "\n")], "no JSON or YAML content"),
        (
            vec![w(
                "nocontainers.yaml",
                "kind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n",
            )],
            "Pod/p has no containers",
        ),
        (
            vec!["--pid".into(), "2147483647".into()],
            "pid 2147483647: no such process",
        ),
        (vec![], "name a config.json"),
    ];
    for (args, want) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = audit(&a);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty(), "{args:?}: no report on error");
    }
}
