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

#[test]
fn bundle_from_stockade_spec_has_its_limits_in_effect() {
    let id = unique("probe");
    let b = Bundle::new(&["/.stockade/stockade", "probe", "--json"], |v| {
        v["mounts"].as_array_mut().unwrap().push(serde_json::json!({"destination": "/.stockade/stockade", "type": "bind", "source": bin(), "options": ["bind", "ro"]}));
    });
    let checks = probe(&b.run(&id));
    for name in [
        "memory limit",
        "pids limit",
        "cpu limit",
        "nosuid mounts",
        "network namespace",
    ] {
        assert_eq!(outcome(&checks, name), "blocked", "{name}: {checks:#?}");
    }
    let exposed: Vec<&serde_json::Value> = checks
        .iter()
        .filter(|c| c["outcome"] == "exposed")
        .collect();
    assert!(exposed.is_empty(), "{exposed:#?}");
    assert_nothing_left(&id, b.root.path());
}
