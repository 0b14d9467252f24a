//! A drop-in for runc: configs runc 1.1.5 runs (`runc spec`'s, runtime-tools' generated ones,
//! images that bring their own /dev), stockade runs with the policy off — and with it on, the
//! same workloads still run — and engines get runc's words for what cannot run. Each test
//! here failed before the fix it names.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// A bundle around a busybox rootfs with `runc spec`'s config (no user namespace, no seccomp,
/// ambient capabilities without an inheritable set, terminal off), `edit` applied.
fn runc_bundle(args: &[&str], edit: impl FnOnce(&mut serde_json::Value)) -> Bundle {
    require_root();
    let b = Bundle::new(args, |_| {});
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    let out = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(b.path())
        .output()
        .expect("runc (apt-get install runc; .ci/run does)");
    assert!(out.status.success(), "runc spec: {}", stderr(&out));
    let file = b.path().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    v["process"]["terminal"] = json!(false);
    v["process"]["args"] = json!(args);
    edit(&mut v);
    std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    b
}

fn run_with(b: &Bundle, policy: &str, id: &str) -> std::process::Output {
    cmd(
        b.root.path(),
        &[
            "--policy",
            policy,
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            id,
        ],
    )
}

/// `stockade --policy POLICY --log FILE --log-format json VERB --bundle B ID`, as an engine
/// calls it: the output, and the log's lines (runc's JSON shape).
fn logged(
    b: &Bundle,
    policy: &str,
    verb: &str,
    id: &str,
) -> (std::process::Output, Vec<serde_json::Value>) {
    let log = b.root.path().join(format!("log-{id}.json"));
    let out = cmd(
        b.root.path(),
        &[
            "--policy",
            policy,
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            verb,
            "--bundle",
            b.path().to_str().unwrap(),
            id,
        ],
    );
    let lines = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, lines)
}

/// An allow-list profile as runtime-tools generates them and as profiles recorded for runc
/// are: open/openat/chdir/fchdir and the usual, but none of the calls newer than the profile
/// (openat2, close_range, statx, faccessat2).
fn old_allow_list() -> serde_json::Value {
    let names = [
        "read",
        "write",
        "open",
        "openat",
        "close",
        "fstat",
        "newfstatat",
        "stat",
        "lstat",
        "mmap",
        "munmap",
        "mprotect",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "ioctl",
        "access",
        "execve",
        "exit",
        "exit_group",
        "getpid",
        "getppid",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "setuid",
        "setgid",
        "setgroups",
        "capget",
        "capset",
        "prctl",
        "chdir",
        "fchdir",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "futex",
        "fcntl",
        "dup2",
        "dup3",
        "wait4",
        "clone",
        "fork",
        "vfork",
        "getcwd",
        "uname",
        "getdents64",
        "lseek",
        "pipe",
        "pipe2",
        "poll",
        "umask",
        "kill",
        "tgkill",
        "nanosleep",
        "clock_gettime",
        "getrandom",
        "rseq",
        "prlimit64",
        "sched_yield",
        "fstatfs",
        "epoll_ctl",
        "epoll_pwait",
        "getdents",
        "readlink",
    ];
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": names.to_vec(), "action": "SCMP_ACT_ALLOW"}],
    })
}

#[test]
fn a_profile_without_openat2_runs_without_no_new_privileges() {
    // before: "container setup failed: process.cwd /: Operation not permitted"
    for (uid, nnp) in [(0, false), (1000, false), (0, true), (1000, true)] {
        let b = runc_bundle(&["sh", "-c", "pwd; id -u"], |v| {
            v["linux"]["seccomp"] = old_allow_list();
            v["process"]["cwd"] = json!("/bin");
            v["process"]["user"] = json!({"uid": uid, "gid": uid});
            v["process"]["noNewPrivileges"] = json!(nnp);
        });
        let id = unique("oldprofile");
        let out = run_with(&b, "none", &id);
        assert!(
            out.status.success(),
            "uid {uid}, no_new_privileges {nnp}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), format!("/bin\n{uid}\n"));
        assert_nothing_left(&id, b.root.path());
        // create + start, as engines do, too
        let id = unique("oldprofile-c");
        let bundle = b.path().to_str().unwrap();
        let out = cmd(
            b.root.path(),
            &["--policy", "none", "create", "--bundle", bundle, &id],
        );
        assert!(out.status.success(), "create: {}", stderr(&out));
        assert!(cmd(b.root.path(), &["start", &id]).status.success());
        poll_until("the container never stopped", 10, || {
            let st = stdout(&cmd(b.root.path(), &["state", &id]));
            st.contains("\"stopped\"").then_some(())
        });
        assert!(cmd(b.root.path(), &["delete", &id]).status.success());
        assert_nothing_left(&id, b.root.path());
    }
}

#[test]
fn runc_specs_ambient_capabilities_without_inheritable_are_warned_and_left_out() {
    // before: "raise ambient CAP_NET_BIND_SERVICE (it must also be permitted and inheritable)"
    let b = runc_bundle(
        &["sh", "-c", "grep -E 'CapAmb|CapEff' /proc/self/status"],
        |_| {},
    );
    let id = unique("ambient");
    let (out, logged) = logged(&b, "none", "run", &id);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("CapAmb:\t0000000000000000"), "{text}");
    // CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE effective, as runc gives them
    assert!(text.contains("CapEff:\t0000000020000420"), "{text}");
    // the warning is in the log (an engine's), not in the container's output
    let warning = logged
        .iter()
        .find(|l| l["level"] == "warning")
        .unwrap_or_else(|| panic!("no warning logged: {logged:?}"));
    let msg = warning["msg"].as_str().unwrap();
    assert!(
        msg.contains("process.capabilities.ambient")
            && msg.contains("CAP_NET_BIND_SERVICE")
            && msg.contains("not raised"),
        "{msg}"
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    // `policy check` and `audit` name it
    let check = cmd(
        b.root.path(),
        &["policy", "check", b.path().to_str().unwrap()],
    );
    assert!(
        stdout(&check).contains("process.capabilities.ambient: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE not also permitted and inheritable"),
        "{}",
        stdout(&check)
    );
    let file = b.path().join("config.json");
    let audit = cmd(
        b.root.path(),
        &["audit", file.to_str().unwrap(), "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let f = v["reports"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "SA034")
        .unwrap_or_else(|| panic!("no SA034: {v}"));
    assert_eq!(f["evidence"][0], "process.capabilities.ambient", "{f}");
}

#[test]
fn an_image_that_brings_its_own_dev_gets_nodes_that_work() {
    // before: the nodes made on the nodev rootfs gave "Permission denied"
    for policy in ["none", "default"] {
        let b = runc_bundle(
            &[
                "sh",
                "-c",
                "echo x > /dev/null && head -c 3 /dev/zero | wc -c; cat /dev/imagenull 2>&1; echo end",
            ],
            |v| {
                let mounts = v["mounts"].as_array_mut().unwrap();
                mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
            },
        );
        // a node the image carries (the null device under another name) stays unusable: the
        // rootfs is nodev, only the runtime's own nodes are not
        let dev = b.path().join("rootfs/dev");
        std::fs::create_dir_all(&dev).unwrap();
        nix::sys::stat::mknod(
            &dev.join("imagenull"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        let id = unique("owndev");
        let out = run_with(&b, policy, &id);
        assert!(out.status.success(), "policy {policy}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.starts_with("3\n"), "policy {policy}: {text}");
        assert!(
            text.contains("/dev/imagenull': Permission denied"),
            "policy {policy}: {text}"
        );
        assert_nothing_left(&id, b.root.path());
    }
}

/// `create` of a process that cannot be executed fails in runc's words (engines match them:
/// Docker makes "no such file or directory"/"executable file not found" exit 127 and
/// "permission denied" 126), leaving nothing.
#[test]
fn a_command_that_cannot_run_fails_at_create_in_runcs_words() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["/nonexistent"],
            "exec: \"/nonexistent\": stat /nonexistent: no such file or directory",
        ),
        (
            &["nosuchcmd"],
            "exec: \"nosuchcmd\": executable file not found in $PATH",
        ),
        (&["/notexec"], "exec: \"/notexec\": permission denied"),
        (&["/bin"], "exec: \"/bin\": permission denied"),
    ];
    for policy in ["none", "default"] {
        for (args, words) in cases {
            let b = runc_bundle(args, |_| {});
            std::fs::write(b.path().join("rootfs/notexec"), "#!/bin/sh\n").unwrap();
            let id = unique("noexec");
            let (out, logged) = logged(&b, policy, "create", &id);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(words), "{args:?}: {}", stderr(&out));
            assert!(
                logged
                    .iter()
                    .any(|v| v["level"] == "error" && v["msg"].as_str().unwrap().contains(words)),
                "{logged:?}"
            );
            assert_nothing_left(&id, b.root.path());
            // and `run` says the same
            let out = run_with(&b, policy, &id);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(words), "{args:?}: {}", stderr(&out));
            assert_nothing_left(&id, b.root.path());
        }
    }
    // exec into a running container
    let b = runc_bundle(&["sleep", "30"], |_| {});
    let id = unique("execmissing");
    let bundle = b.path().to_str().unwrap();
    let out = cmd(
        b.root.path(),
        &["--policy", "none", "run", "-d", "--bundle", bundle, &id],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cmd(b.root.path(), &["exec", &id, "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("exec: \"/nonexistent\": stat /nonexistent: no such file or directory"),
        "{}",
        stderr(&out)
    );
    assert!(cmd(b.root.path(), &["delete", "--force", &id])
        .status
        .success());
    assert_nothing_left(&id, b.root.path());
}

#[test]
fn under_an_engine_warnings_go_to_the_log_not_the_containers_output() {
    // before: every policy change printed a "stockade: warning" line into the container's stderr
    let b = runc_bundle(&["sh", "-c", "echo out; echo err >&2"], |v| {
        // Docker's shape: no user namespace, no seccomp, no limits (the policy raises each)
        v["linux"].as_object_mut().unwrap().remove("resources");
    });
    let id = unique("quietlog");
    let (out, logged) = logged(&b, "default", "run", &id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    let warnings: Vec<String> = logged
        .iter()
        .filter(|l| l["level"] == "warning")
        .map(|l| l["msg"].as_str().unwrap().to_string())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("policy userNamespace")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with("policy seccomp")),
        "{warnings:?}"
    );
    // without a log (a terminal user) they stay on stderr
    let out = run_with(&b, "default", &id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stockade: warning: policy userNamespace"),
        "{}",
        stderr(&out)
    );
    assert_nothing_left(&id, b.root.path());
}

#[test]
fn the_state_root_is_private() {
    // before: /run/stockade was 0755, so any user could list root's containers
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/state");
    let b = Bundle::new(&["true"], |_| {});
    let id = unique("private");
    let out = cmd(&root, &["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
    // an existing wider root of ours is narrowed
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = cmd(&root, &["list"]);
    assert!(out.status.success());
    let out = cmd(&root, &["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
    // a root owned by another user is refused by name
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(1000), Some(1000)).unwrap();
    let out = cmd(
        &theirs,
        &["run", "--bundle", b.path().to_str().unwrap(), &id],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is a directory owned by uid 1000, not by you"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&theirs).join(&id).exists());
    // a normal user's default root is $XDG_RUNTIME_DIR/stockade (runc's rule)
    let xdg = dir.path().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    std::os::unix::fs::chown(&xdg, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid", "1000", "--regid", "1000", "--clear-groups"])
        .arg(bin())
        .args(["sandbox", "--", "true"])
        .env("XDG_RUNTIME_DIR", &xdg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let made = xdg.join("stockade");
    let md = std::fs::metadata(&made).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o777), (1000, 0o700));
}
