//! The seccomp tools and `stockade spec`, as a user runs them.

mod common;
use common::*;
use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().unwrap()
}

#[test]
fn seccomp_compile_reports_size_and_worst_path() {
    let out = run(&["seccomp", "compile", "default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ret ALLOW"));
    let err = stderr(&out);
    assert!(err.contains(" instructions; worst-case path "), "{err}");
    assert!(err.contains("SCMP_ARCH_X86_64"), "{err}");
    let out = run(&["seccomp", "compile", "default", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    let out = run(&["seccomp", "compile", "default", "--format", "bpf"]);
    assert_eq!(out.stdout.len() % 8, 0);
    assert!(out.stdout.len() > 8 * 100);
}

#[test]
fn seccomp_explain_names_the_deciding_rule() {
    let out = run(&["seccomp", "explain", "default", "socket", "40"]);
    assert!(
        stdout(&out).contains("ERRNO(1)") && stdout(&out).contains("default action"),
        "{}",
        stdout(&out)
    );
    let out = run(&["seccomp", "explain", "default", "socket", "2"]);
    assert!(
        stdout(&out).contains("ALLOW") && stdout(&out).contains("SCMP_CMP_LT"),
        "{}",
        stdout(&out)
    );
    let out = run(&["seccomp", "explain", "default", "clone3"]);
    assert!(stdout(&out).contains("ERRNO(38)"), "{}", stdout(&out));
    let out = run(&["seccomp", "explain", "default", "no_such_call"]);
    assert!(!out.status.success() && stderr(&out).contains("no_such_call"));
}

#[test]
fn seccomp_diff_lists_what_default_adds() {
    let out = run(&["seccomp", "diff", "docker", "default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for name in ["ptrace", "adjtimex", "modify_ldt"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name) && l.contains("ALLOW") && l.contains("ERRNO(1)")),
            "{name} missing:\n{text}"
        );
    }
    assert!(!text.lines().any(|l| l.starts_with("read ")), "{text}");
}

#[test]
fn spec_writes_a_hardened_config_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    for want in [
        "pid", "network", "ipc", "uts", "mount", "user", "cgroup", "time",
    ] {
        assert!(ns.contains(&want), "{want} missing");
    }
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["root"]["readonly"], true);
    assert_eq!(
        v["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert!(v["linux"]["uidMappings"][0]["hostID"].as_u64().unwrap() > 0);
    assert!(v["linux"]["resources"]["memory"]["limit"].as_i64().unwrap() > 0);
    assert!(v["linux"]["resources"]["pids"]["limit"].as_i64().unwrap() > 0);
    assert!(v["linux"]["maskedPaths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "/proc/kcore"));
    assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    for m in v["mounts"].as_array().unwrap() {
        let opts: Vec<&str> = m["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert!(opts.contains(&"nosuid"), "{m}");
    }
    let again = run(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert!(!again.status.success() && stderr(&again).contains("exists"));
}

#[test]
fn print_spec_shows_the_sandbox_as_oci() {
    let out = run(&[
        "sandbox",
        "--print-spec",
        "--memory",
        "256m",
        "--cap-add",
        "net_bind_service",
        "--",
        "true",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["linux"]["resources"]["memory"]["limit"], 256 << 20);
    assert_eq!(
        v["process"]["capabilities"]["effective"][0],
        "CAP_NET_BIND_SERVICE"
    );
    assert_eq!(v["process"]["args"][0], "true");
}
