//! The default profile (stricter than Docker's) still runs real workloads, in real sandboxes.

mod common;
use common::*;
use serde_json::json;

#[test]
fn busybox_shell_in_a_bundle() {
    let id = unique("bbsh");
    let b = Bundle::new(&["sh", "-c", "for i in 1 2 3; do echo $i; done | sort -r | tr '\\n' ' '; mkdir /tmp/d && echo x > /tmp/d/f && cat /tmp/d/f; ps | wc -l >/dev/null; date >/dev/null"], |_| {});
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "3 2 1 x\n");
    assert_nothing_left(&id, b.root.path());
}

#[test]
fn coreutils() {
    let out = sandbox(&[], &["sh", "-c", "cd /tmp && seq 1 1000 > n && sort -rn n | head -1 && cp n m && sha256sum n m | cut -c1-8 | uniq | wc -l && ls -la >/dev/null && find /usr/bin -maxdepth 1 -name 'ls' && tar cf t.tar n && du -s t.tar >/dev/null && echo ok"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1000\n1\n/usr/bin/ls\nok\n");
}

#[test]
fn python3() {
    let out = sandbox(&[], &["python3", "-c", "import json, hashlib, threading, subprocess, sqlite3, multiprocessing as m; db=sqlite3.connect(':memory:'); db.execute('create table t(x)'); db.execute('insert into t values (41)'); t=threading.Thread(target=lambda: None); t.start(); t.join(); print(db.execute('select x+1 from t').fetchone()[0], subprocess.run(['echo','hi'],capture_output=True).stdout.decode().strip(), m.Pool(2).map(abs, [-1,-2]))"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "42 hi [1, 2]\n");
}

#[test]
fn gcc_compiles_and_runs_a_program() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hello.c"),
        "#include <stdio.h>\nint main(void){printf(\"hello %d\\n\", 6*7);return 0;}\n",
    )
    .unwrap();
    let bind = format!("{}:/src", dir.path().display());
    let out = sandbox(
        &["--bind", &bind, "--memory", "2g"],
        &[
            "sh",
            "-c",
            "cd /tmp && gcc -O2 -o hello /src/hello.c && ./hello",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello 42\n");
}

#[test]
fn tcp_server_on_loopback() {
    let script = r#"
import socket, threading
socket.setdefaulttimeout(10)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(1); port = srv.getsockname()[1]
def serve():
    c, _ = srv.accept(); c.sendall(c.recv(100).upper()); c.close()
t = threading.Thread(target=serve, daemon=True); t.start()
cl = socket.create_connection(("127.0.0.1", port)); cl.sendall(b"ping"); print(cl.recv(100).decode()); t.join()
"#;
    let out = sandbox(&[], &["python3", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "PING\n");
}

/// SCMP_ACT_NOTIFY with listenerPath: the runtime hands the listener to the agent's socket with
/// the container process state, as runtime-spec describes; the agent answers the notification.
#[test]
fn seccomp_notify_listener_reaches_the_agent() {
    use std::os::unix::net::UnixListener;
    let id = unique("notify");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "cat /proc/self/status | grep -c Seccomp; uname -s; echo done",
        ],
        |v| {
            let sc = &mut v["linux"]["seccomp"];
            sc["listenerPath"] = json!(sock.to_str().unwrap());
            sc["listenerMetadata"] = json!("hello-agent");
            sc["syscalls"]
                .as_array_mut()
                .unwrap()
                .insert(0, json!({"names": ["uname"], "action": "SCMP_ACT_NOTIFY"}));
        },
    );
    let root = b.root.path().to_path_buf();
    let bundle = b.path().to_path_buf();
    let id2 = id.clone();
    let runner = std::thread::spawn(move || {
        timeout()
            .arg(bin())
            .arg("--root")
            .arg(&root)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id2)
            .output()
            .unwrap()
    });
    // receive the state JSON and the descriptor
    let (body, listener_fd) = recv_fd(&listener);
    let state: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(state["metadata"], "hello-agent");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["state"]["id"], id.as_str());
    assert!(state["pid"].as_i64().unwrap() > 0);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener_fd);
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    assert!(
        link.to_string_lossy().contains("seccomp notify"),
        "{}",
        link.display()
    );
    // the agent goes away without answering: the notified call fails (ENOSYS), nothing hangs
    drop(listener_fd);
    let out = runner.join().unwrap();
    let text = stdout(&out);
    assert!(text.ends_with("done\n"), "{text} {}", stderr(&out));
    assert!(
        !text.contains("Linux"),
        "uname answered without the agent: {text}"
    );
    assert_nothing_left(&id, b.root.path());
}

/// A bundle whose `rootfs` is a symlink to the image elsewhere (as some engines lay bundles
/// out) runs on the directory the link names.
#[test]
fn rootfs_given_through_a_symlink() {
    let b = Bundle::new(&["cat", "/etc/passwd"], |_| {});
    let real = b.path().join("image");
    std::fs::rename(b.path().join("rootfs"), &real).unwrap();
    std::os::unix::fs::symlink(&real, b.path().join("rootfs")).unwrap();
    let id = unique("symroot");
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("root:x:0:0"), "{}", stdout(&out));
    assert_nothing_left(&id, b.root.path());
}

/// Compiled filters are cached under `<root>/.seccomp`: the same profile is compiled once, a
/// changed profile gets an entry (and behaviour) of its own, and a damaged entry is compiled
/// again and rewritten instead of being trusted.
#[test]
fn seccomp_cache_follows_the_profile() {
    let block = json!({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13});
    let b = Bundle::new(&["sh", "-c", "mkdir /dev/shm/d && echo made"], |v| {
        v["linux"]["seccomp"]["syscalls"]
            .as_array_mut()
            .unwrap()
            .push(block.clone());
    });
    let cache = b.root.path().join(".seccomp");
    let entries = || -> Vec<std::path::PathBuf> {
        let mut e: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        e.sort();
        e
    };
    let blocked = |out: &std::process::Output| {
        assert!(!out.status.success(), "mkdir was allowed: {}", stdout(out));
        assert!(stderr(out).contains("Permission denied"), "{}", stderr(out));
    };
    blocked(&b.run(&unique("sc-cache")));
    assert_eq!(entries().len(), 1, "one profile, one entry");
    let first = entries()[0].clone();
    let size = std::fs::metadata(&first).unwrap().len();
    blocked(&b.run(&unique("sc-cache")));
    assert_eq!(entries(), vec![first.clone()], "a hit adds nothing");

    // the profile without the rule: its own entry, and mkdir works
    let file = b.path().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    v["linux"]["seccomp"]["syscalls"]
        .as_array_mut()
        .unwrap()
        .pop();
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = b.run(&unique("sc-cache"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "made\n");
    assert_eq!(entries().len(), 2);

    // a damaged entry (same length, other bytes) is not trusted: compiled and written anew
    v["linux"]["seccomp"]["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(block);
    std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    std::fs::write(&first, vec![0x5a; size as usize]).unwrap();
    blocked(&b.run(&unique("sc-cache")));
    let repaired = std::fs::read(&first).unwrap();
    assert_eq!(repaired.len() as u64, size);
    assert_ne!(repaired, vec![0x5a; size as usize]);
}
