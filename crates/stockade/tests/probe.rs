//! `stockade probe` from inside real sandboxes: the defaults leave nothing exposed; loosening
//! them shows up as exposed with evidence.

mod common;
use common::*;

fn probe(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn outcome<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a str {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}"))["outcome"]
        .as_str()
        .unwrap()
}

#[test]
fn sandbox_defaults_leave_nothing_exposed() {
    let checks = probe(&sandbox(&["--probe"], &["--json"]));
    let exposed: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|c| c["outcome"] == "exposed")
        .collect();
    assert!(
        exposed.is_empty(),
        "exposed under the defaults: {exposed:#?}"
    );
    assert!(checks.len() >= 30);
    for name in [
        "kernel keyring (keyctl)",
        "perf_event_open",
        "io_uring_setup",
        "mount",
        "no_new_privs",
        "user namespace",
        // the sandbox's /sys shows its own cgroup: its limits are found from inside
        "memory limit",
        "pids limit",
        "cpu limit",
    ] {
        assert_eq!(outcome(&checks, name), "blocked", "{name}");
    }
}

#[test]
fn loosened_sandbox_shows_the_gaps() {
    let checks = probe(&sandbox(
        &[
            "--probe",
            "--seccomp",
            "unconfined",
            "--cap-add",
            "SYS_ADMIN",
        ],
        &["--json"],
    ));
    assert_eq!(outcome(&checks, "filter mode"), "exposed");
    assert_eq!(outcome(&checks, "effective set"), "exposed");
    assert_eq!(
        outcome(&checks, "perf_event_open"),
        "exposed",
        "without seccomp the call reaches the kernel"
    );
    assert_eq!(outcome(&checks, "kernel keyring (keyctl)"), "exposed");
}

/// `run --probe=json,stress` on a bundle from `stockade spec`: the probe replaces the process,
/// the limits are in effect, and the bounded stress tests meet them.
#[test]
fn bundle_from_stockade_spec_has_its_limits_in_effect() {
    let id = unique("probe");
    let b = Bundle::new(&["sleep", "1000"], |_| {});
    let out = timeout()
        .arg(bin())
        .arg("--root")
        .arg(b.root.path())
        .args(["run", "--probe=json,stress", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .output()
        .unwrap();
    let checks = probe(&out);
    for name in [
        "memory limit",
        "pids limit",
        "cpu limit",
        "nosuid mounts",
        "network namespace",
        "fork bomb",
        "memory exhaustion",
        "descriptor exhaustion",
        "/tmp fill",
        "/dev/shm fill",
    ] {
        assert_eq!(outcome(&checks, name), "blocked", "{name}: {checks:#?}");
    }
    let evidence = |name: &str| {
        checks.iter().find(|c| c["name"] == name).unwrap()["evidence"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // the pids limit (1024), not the bound (4096) or RLIMIT_NPROC (4096), stopped the fork bomb
    let forked: usize = evidence("fork bomb")
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap();
    assert!((900..1024).contains(&forked), "{}", evidence("fork bomb"));
    assert!(evidence("memory exhaustion").contains("SIGKILL"));
    assert!(
        evidence("/tmp fill").contains("after 64 MiB"),
        "{}",
        evidence("/tmp fill")
    );
    let exposed: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|c| c["outcome"] == "exposed")
        .collect();
    assert!(exposed.is_empty(), "{exposed:#?}");
    assert_nothing_left(&id, b.root.path());
}

/// The same probe under runc with `runc spec` defaults and under bwrap as root shows the real
/// differences: runc's default spec has no seccomp filter, no user namespace and no cgroup
/// limits; bwrap run by root leaves /proc/sys writable and the capabilities in place.
#[test]
fn runc_and_bwrap_defaults_leave_gaps_the_probe_names() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    busybox_rootfs(&dir.path().join("rootfs"));
    let spec = std::process::Command::new("runc")
        .arg("spec")
        .current_dir(dir.path())
        .status()
        .expect("runc (apt-get install runc)");
    assert!(spec.success());
    let cfg = dir.path().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["process"]["terminal"] = serde_json::json!(false);
    v["process"]["args"] = serde_json::json!(["/.stockade/stockade", "probe", "--json"]);
    v["mounts"].as_array_mut().unwrap().push(serde_json::json!({"destination": "/.stockade/stockade", "type": "bind", "source": bin(), "options": ["bind", "ro"]}));
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let runc_root = tempfile::tempdir().unwrap();
    let out = timeout()
        .arg("runc")
        .arg("--root")
        .arg(runc_root.path())
        .args(["run", "--bundle"])
        .arg(dir.path())
        .arg(unique("rprobe"))
        .output()
        .unwrap();
    let runc = probe(&out);
    for name in [
        "filter mode",
        "perf_event_open",
        "io_uring_setup",
        "kernel keyring (keyctl)",
        "user namespace",
        "memory limit",
        "pids limit",
    ] {
        assert_eq!(outcome(&runc, name), "exposed", "runc: {name}");
    }
    // runc's default capabilities do not include CAP_SYS_TIME
    assert_eq!(outcome(&runc, "system time"), "blocked");
    let out = timeout()
        .args(["bwrap", "--unshare-all", "--bind"])
        .arg(dir.path().join("rootfs"))
        .args([
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--ro-bind",
            bin(),
            "/.stockade/stockade",
            "/.stockade/stockade",
            "probe",
            "--json",
        ])
        .output()
        .expect("bwrap (apt-get install bubblewrap)");
    let bwrap = probe(&out);
    for name in [
        "/proc/sys writable",
        "effective set",
        "filter mode",
        "mount",
        "kernel keyring (keyctl)",
    ] {
        assert_eq!(outcome(&bwrap, name), "exposed", "bwrap: {name}");
    }
}
