//! What a sandbox shows its workload and what it inherits: a read-only `/sys` with the sandbox's
//! own cgroup (so runtimes size themselves from its limits, not the host's), and rlimits that are
//! never above the caller's.

mod common;
use common::*;
use std::process::Command;

fn limits_line(limits: &str, name: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {limits}"));
    let f: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (f[0].to_string(), f[1].to_string())
}

#[test]
fn sys_shows_the_sandboxs_own_limits() {
    let out = sandbox(
        &["--memory", "300m", "--pids", "77", "--cpus", "0.5"],
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
             /sys/fs/cgroup/cpu/cpu.cfs_quota_us; cat /proc/self/cgroup | grep memory; \
             ls /sys/firmware | wc -l; touch /sys/kernel/x 2>&1; (echo 1 > /sys/fs/cgroup/pids/pids.max) 2>&1; \
             echo done",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], (300u64 << 20).to_string(), "{text}");
    assert_eq!(lines[1], "77", "{text}");
    assert_eq!(lines[2], "50000", "{text}");
    // the cgroup namespace: the sandbox's cgroup is its root
    assert_eq!(lines[3], "4:memory:/", "{text}");
    // masked as run's: nothing of the firmware tables
    assert_eq!(lines[4], "0", "{text}");
    assert!(lines[5].contains("Read-only file system"), "{text}");
    assert!(lines[6].contains("Read-only file system"), "{text}");
    assert_eq!(lines[7], "done");
}

#[test]
fn defaults_are_never_above_the_callers_limits() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("prlimit")
        .args(["--nproc=1024:1024", "--nofile=512:600", "--"])
        .arg(bin())
        .arg("--root")
        .arg(root.path())
        .args(["sandbox", "--", "cat", "/proc/self/limits"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // the defaults (4096 processes, 1024 files) lowered to the caller's
    assert_eq!(
        limits_line(&text, "Max processes"),
        ("1024".into(), "1024".into()),
        "{text}"
    );
    assert_eq!(
        limits_line(&text, "Max open files"),
        ("512".into(), "600".into()),
        "{text}"
    );
    // and where the caller has more, the default holds
    let out = sandbox(&[], &["cat", "/proc/self/limits"]);
    let text = stdout(&out);
    assert_eq!(
        limits_line(&text, "Max processes"),
        ("4096".into(), "4096".into())
    );
    assert_eq!(
        limits_line(&text, "Max core file size"),
        ("0".into(), "0".into())
    );
}

#[test]
fn an_explicit_limit_above_the_callers_fails_naming_it() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    // root's bounding set lacks CAP_SYS_RESOURCE here: raising a hard limit is refused
    let out = Command::new("prlimit")
        .args(["--nproc=1024:1024", "--"])
        .arg(bin())
        .arg("--root")
        .arg(root.path())
        .args(["sandbox", "--ulimit", "nproc=2048", "--", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("process.rlimits") && err.contains("RlimitNproc"),
        "{err}"
    );
    // within the caller's, an explicit one is applied as given
    let out = sandbox(
        &["--ulimit", "nofile=100:200"],
        &["cat", "/proc/self/limits"],
    );
    assert_eq!(
        limits_line(&stdout(&out), "Max open files"),
        ("100".into(), "200".into())
    );
    for bad in ["nofile", "bogus=1", "nofile=9:1", "nofile=x"] {
        let out = sandbox(&["--ulimit", bad], &["true"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("--ulimit"), "{bad}: {}", stderr(&out));
    }
}
