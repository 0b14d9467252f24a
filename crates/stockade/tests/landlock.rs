//! Landlock, enforced for real by this kernel (ABI 7): filesystem rules by path beneath, TCP
//! port rules on loopback inside the sandbox's own network namespace, scoping of abstract unix
//! sockets, and the annotation's checks.

mod common;
use common::*;

#[test]
fn filesystem_rules_confine_reads_and_writes() {
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        data.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let bind = format!("{}:/data", data.path().display());
    let out = sandbox(
        &[
            "--bind",
            &bind,
            "--landlock-ro",
            "/usr",
            "--landlock-rw",
            "/tmp",
        ],
        &[
            "sh",
            "-c",
            "echo ok > /tmp/f && cat /tmp/f; (echo x > /data/f) 2>&1; (cat /etc/passwd) 2>&1; \
             (ls /) 2>&1; (echo x > /etc/f) 2>&1; echo end",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(l[0], "ok", "{text}");
    // a writable bind the rules do not list: EACCES from Landlock, not from the mount
    assert!(l[1].contains("Permission denied"), "{text}");
    assert!(!data.path().join("f").exists());
    assert!(
        l[2].contains("Permission denied"),
        "/etc is outside the rules: {text}"
    );
    assert!(l[3].contains("Permission denied"), "{text}");
    // /etc cannot be written (its bind is read-only, and Landlock denies it too)
    assert!(
        l[4].contains("Permission denied") || l[4].contains("Read-only"),
        "{text}"
    );
    assert_eq!(l[5], "end");
    // without Landlock the same bind is writable: the denial above is Landlock's
    let out = sandbox(&["--bind", &bind], &["sh", "-c", "echo x > /data/f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(data.path().join("f").exists());
}

#[test]
fn tcp_ports_outside_the_rules_are_denied() {
    // loopback of the sandbox's own network namespace only
    let script = "busybox nc -l -p 9000 -e true & a=$!; busybox nc -l -p 9001 -e true & b=$!; sleep 0.3; \
                  (busybox nc 127.0.0.1 9000 </dev/null && echo c9000-ok) 2>&1; \
                  (busybox nc 127.0.0.1 9001 </dev/null && echo c9001-ok) 2>&1; \
                  (busybox nc -l -p 9002 2>&1 & sleep 0.3; kill $! 2>/dev/null); kill $a $b 2>/dev/null; echo end";
    let out = sandbox(
        &[
            "--landlock",
            "--landlock-bind",
            "9000",
            "--landlock-bind",
            "9001",
            "--landlock-connect",
            "9000",
        ],
        &["sh", "-c", script],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("c9000-ok"), "{text}");
    assert!(!text.contains("c9001-ok"), "{text}");
    assert!(
        text.contains("Permission denied"),
        "connect 9001 and bind 9002 are denied: {text}"
    );
}

#[test]
fn abstract_sockets_from_outside_the_domain_are_scoped_off() {
    use std::os::linux::net::SocketAddrExt;
    let name = unique("stockade-ll");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let client = format!(
        "import socket\ns=socket.socket(socket.AF_UNIX)\ntry:\n  s.connect('\\0{name}'); print('connected')\nexcept OSError as e: print('refused', e.errno)"
    );
    // the host's network namespace: the abstract name lives there
    let scoped = sandbox(
        &["--net", "host", "--landlock"],
        &["/usr/bin/python3", "-c", &client],
    );
    assert!(scoped.status.success(), "{}", stderr(&scoped));
    assert_eq!(stdout(&scoped).trim(), "refused 1", "EPERM under the scope");
    let open = sandbox(
        &["--net", "host", "--landlock", "--landlock-scope", "none"],
        &["/usr/bin/python3", "-c", &client],
    );
    assert_eq!(stdout(&open).trim(), "connected", "{}", stderr(&open));
}

#[test]
fn the_annotation_is_checked_and_hard_requirements_are_clear_errors() {
    // resolve_unix is Landlock ABI 9: this kernel (ABI 7) cannot enforce it
    let ann = r#"{"ruleset": {"handledAccessFS": ["read_file", "resolve_unix"]},
                  "rules": {"pathBeneath": [{"allowedAccess": ["read_file"], "paths": ["/bin"]}]},
                  "disableBestEffort": true}"#;
    let b = Bundle::new(&["true"], |v| {
        v["annotations"]["org.stockade.landlock"] = serde_json::json!(ann);
    });
    let out = b.run("ll-hard");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Landlock") && err.contains("disableBestEffort") && err.contains("ABI: 7"),
        "{err}"
    );
    assert_nothing_left("ll-hard", b.root.path());
    // best effort: runs, enforcing what it can, and says so
    let soft = ann.replace("true}", "false}");
    let b = Bundle::new(&["cat", "/bin/busybox"], |v| {
        v["annotations"]["org.stockade.landlock"] = serde_json::json!(soft);
        v["process"]["args"] = serde_json::json!(["sh", "-c", "cat /etc/passwd; echo rc=$?"]);
    });
    let out = b.run("ll-soft");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("rc=1"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("partially enforced"),
        "{}",
        stderr(&out)
    );
    // a malformed annotation names the field, nothing is created
    let b = Bundle::new(&["true"], |v| {
        v["annotations"]["org.stockade.landlock"] =
            serde_json::json!(r#"{"ruleset": {"handledAccessFS": ["read_everything"]}}"#);
    });
    let out = b.run("ll-bad");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("config.json")
            && err.contains("annotations.org.stockade.landlock")
            && err.contains("read_everything"),
        "{err}"
    );
    assert_nothing_left("ll-bad", b.root.path());
}
