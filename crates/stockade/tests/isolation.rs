//! What the seed asks for, checked from inside real sandboxes.

mod common;
use common::*;

const REPORT: &str = r#"
echo "== ns"; for n in pid mnt uts ipc net user cgroup time; do echo "$n $(readlink /proc/self/ns/$n)"; done
echo "== uid_map"; cat /proc/self/uid_map
echo "== status"; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
echo "== hostname"; hostname
echo "== netdev"; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '
echo "== masked"; for f in /proc/keys /proc/timer_list /proc/kallsyms; do echo "$f $(wc -c < $f)"; done
echo "== procsys"; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1 && echo writable || echo refused
echo "== mounts"; cat /proc/self/mountinfo
echo "== end"
"#;

fn check_report(out: &str, hostname: &str) {
    // all eight namespaces differ from the host's
    let ns = section(out, "ns");
    assert_eq!(ns.len(), 8, "{out}");
    for l in ns {
        let (name, inode) = l.split_once(' ').unwrap();
        assert!(inode.contains(':'), "no namespace link for {name}: {l}");
        assert_ne!(inode, host_ns(name), "{name} namespace is the host's");
    }
    // container root is not host root
    let map = section(out, "uid_map");
    let fields: Vec<&str> = map[0].split_whitespace().collect();
    assert_eq!(fields[0], "0");
    assert_ne!(fields[1], "0", "uid 0 maps to host root: {map:?}");
    // no capabilities, no_new_privs, a seccomp filter
    let status = section(out, "status").join("\n");
    for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(
            status.contains(&format!("{field}:\t0000000000000000")),
            "{field} not empty:\n{status}"
        );
    }
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    assert_eq!(section(out, "hostname"), vec![hostname]);
    assert_eq!(
        section(out, "netdev"),
        vec!["lo"],
        "only loopback in the network namespace"
    );
    for l in section(out, "masked") {
        assert!(l.ends_with(" 0"), "masked path readable: {l}");
    }
    let procsys = section(out, "procsys");
    assert_eq!(procsys.last(), Some(&"refused"), "{procsys:?}");
    assert!(
        procsys.join(" ").contains("Read-only file system"),
        "/proc/sys not read-only: {procsys:?}"
    );
    let mounts = section(out, "mounts");
    assert!(!mounts.is_empty());
    for m in &mounts {
        let opts = m.split(' ').nth(5).unwrap();
        assert!(
            opts.split(',').any(|o| o == "nosuid"),
            "mount without nosuid: {m}"
        );
    }
    let procsys = mounts
        .iter()
        .find(|m| m.split(' ').nth(4) == Some("/proc/sys"))
        .expect("/proc/sys mount");
    assert!(
        procsys
            .split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{procsys}"
    );
}

#[test]
fn sandbox_isolates_with_every_layer_by_default() {
    let out = sandbox(&[], &["sh", "-c", REPORT]);
    assert!(out.status.success(), "{}", stderr(&out));
    check_report(&stdout(&out), "sandbox");
}

#[test]
fn bundle_from_stockade_spec_isolates_and_owns_its_rootfs() {
    let id = unique("iso");
    let b = Bundle::new(&["sh", "-c", &format!("{REPORT}\necho '== owner'; stat -c %u /bin/busybox; echo '== rootro'; touch /x 2>/dev/null && echo writable || echo refused")], |_| {});
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    check_report(&text, "stockade");
    // idmapped rootfs: host-root-owned files look owned by container root, not nobody
    assert_eq!(section(&text, "owner"), vec!["0"], "{text}");
    assert_eq!(section(&text, "rootro"), vec!["refused"]);
    let root = &section(&text, "mounts")
        .into_iter()
        .find(|m| m.split(' ').nth(4) == Some("/"))
        .unwrap()
        .to_string();
    assert!(
        root.split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{root}"
    );
    assert_nothing_left(&id, b.root.path());
}

const KEYCTL_PY: &str = "import ctypes,os; l=ctypes.CDLL(None,use_errno=True); r=l.syscall(250,0,-3,0); print(r, ctypes.get_errno())";

#[test]
fn keyring_is_fresh_and_keyctl_blocked_by_default() {
    // SYS_keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING)
    let host = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 0) };
    assert!(host > 0, "host has no session keyring id");
    let out = sandbox(&["--seccomp", "unconfined"], &["python3", "-c", KEYCTL_PY]);
    assert!(out.status.success(), "{}", stderr(&out));
    let inside: i64 = stdout(&out)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(inside > 0, "no session keyring inside: {}", stdout(&out));
    assert_ne!(
        inside, host,
        "the sandbox shares the host's session keyring"
    );
    let out = sandbox(&[], &["python3", "-c", KEYCTL_PY]);
    assert_eq!(
        stdout(&out).trim(),
        format!("-1 {}", libc::EPERM),
        "keyctl not blocked by the default profile"
    );
}

#[test]
fn setuid_root_binary_gains_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("id");
    std::fs::copy("/usr/bin/id", &id).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let bind = format!("{}:/opt", dir.path().display());
    let out = sandbox(
        &["--bind", &bind, "--uid", "1000", "--gid", "1000"],
        &["sh", "-c", "ls -ln /opt/id; /opt/id"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // it really is setuid root inside (idmapped bind), and still gives nothing
    assert!(text.starts_with("-rwsr-xr-x 1 0 0"), "{text}");
    assert!(text.contains("uid=1000"), "{text}");
    assert!(!text.contains("euid=0"), "setuid took effect: {text}");
}

#[test]
fn exit_codes_and_signals_propagate() {
    let out = sandbox(&[], &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    // init of a PID namespace ignores kill(2) from inside; a real fault still kills it
    let out = sandbox(
        &[],
        &["python3", "-c", "import ctypes; ctypes.string_at(0)"],
    );
    assert_eq!(out.status.code(), Some(128 + 11), "{}", stderr(&out));
    // SIGTERM to stockade reaches the container's init, which handles it
    let root = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(bin())
        .arg("--root")
        .arg(root.path())
        .args([
            "sandbox",
            "--",
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
}

#[test]
fn no_descriptor_leaks_into_the_container() {
    use std::os::unix::process::CommandExt;
    let root = tempfile::tempdir().unwrap();
    let f = std::fs::File::open("/etc/hostname").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("--root")
        .arg(root.path())
        .args(["sandbox", "--", "sh", "-c", "ls /proc/self/fd"]);
    // SAFETY: dup2 is async-signal-safe; fd 7 is inherited by stockade without CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let fds: Vec<String> = stdout(&out).split_whitespace().map(String::from).collect();
    // 0,1,2 and the one `ls` opened to read the directory
    assert!(
        fds.len() <= 4 && !fds.contains(&"7".to_string()),
        "leaked descriptors: {fds:?}"
    );
}

#[test]
fn namespaced_sysctls_and_hostname_from_the_spec() {
    let id = unique("sysctl");
    let b = Bundle::new(
        &["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward; hostname"],
        |v| {
            v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
            v["hostname"] = serde_json::json!("box1");
        },
    );
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\nbox1\n");
    assert_nothing_left(&id, b.root.path());
}

/// The container's network namespace belongs to its user namespace (the child makes it there):
/// CAP_NET_ADMIN given back in the spec is honoured in it (an address on its own `lo`, and `lo`
/// taken down), where a namespace owned by the host's user namespace would refuse both.
#[test]
fn network_namespace_is_owned_by_the_containers_user_namespace() {
    let id = unique("netown");
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "ip addr add 10.77.0.1/32 dev lo && ip -o addr show lo | grep -c 10.77.0.1 && ip link set lo down && ip -o link show lo | grep -c '<LOOPBACK>'",
        ],
        |v| {
            for set in ["bounding", "effective", "permitted"] {
                v["process"]["capabilities"][set] = serde_json::json!(["CAP_NET_ADMIN"]);
            }
        },
    );
    let out = b.run(&id);
    assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "1\n1\n");
    assert_nothing_left(&id, b.root.path());
}

#[test]
fn capabilities_can_be_added_back_one_by_one() {
    let out = sandbox(
        &["--cap-add", "NET_BIND_SERVICE"],
        &["grep", "CapEff", "/proc/self/status"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // CAP_NET_BIND_SERVICE is bit 10
    assert_eq!(stdout(&out).trim(), "CapEff:\t0000000000000400");
}

/// runtime-spec: a namespace type absent from the list is the runtime's. Without "mount" the
/// container shares the host's mount namespace (chroot instead of pivot_root), and its mounts
/// are detached from the host's namespace once it is gone. With a mount namespace given by
/// path, the container joins that one.
#[test]
fn mount_namespace_shared_or_joined_and_pid_namespace_joined_by_path() {
    let b = Bundle::new(&["readlink", "/proc/self/ns/mnt"], |v| {
        v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "uts"}]);
        v["linux"]["uidMappings"] = serde_json::Value::Null;
        v["linux"]["gidMappings"] = serde_json::Value::Null;
    });
    let id = unique("hostmnt");
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), host_ns("mnt"));
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootfs = b.path().join("rootfs");
    assert!(
        !mi.contains(rootfs.to_str().unwrap()),
        "mounts left in the host's namespace: {mi}"
    );
    assert_nothing_left(&id, b.root.path());

    // join a mount namespace made by `unshare -m`
    let mut holder = std::process::Command::new("unshare")
        .args(["-m", "sleep", "60"])
        .spawn()
        .expect("unshare (util-linux)");
    let ns_file = format!("/proc/{}/ns/mnt", holder.id());
    let want = poll_until("unshare -m did not happen", 10, || {
        let l = std::fs::read_link(&ns_file)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        (l != host_ns("mnt")).then_some(l)
    });
    let seen = ns_seen_inside(
        "mnt",
        serde_json::json!([{"type": "pid"}, {"type": "mount", "path": ns_file}]),
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(seen, want);

    // and a pid namespace given by path: the container's process is born in it
    let mut holder = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "sleep", "60"])
        .spawn()
        .expect("unshare (util-linux)");
    let inner = poll_until("unshare --pid --fork did not start", 10, || {
        let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", holder.id()))
            .unwrap_or_default();
        kids.split_whitespace().next().map(str::to_string)
    });
    let ns_file = format!("/proc/{inner}/ns/pid");
    let want = std::fs::read_link(&ns_file)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let seen = ns_seen_inside(
        "pid",
        serde_json::json!([{"type": "mount"}, {"type": "pid", "path": ns_file}]),
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(seen, want);
}

/// Run a bundle with exactly `namespaces` (no id mappings) that reads its own
/// `/proc/self/ns/<file>`; what it read, once it has left nothing behind.
fn ns_seen_inside(file: &str, namespaces: serde_json::Value) -> String {
    let link = format!("/proc/self/ns/{file}");
    let b = Bundle::new(&["readlink", &link], |v| {
        v["linux"]["namespaces"] = namespaces;
        v["linux"]["uidMappings"] = serde_json::Value::Null;
        v["linux"]["gidMappings"] = serde_json::Value::Null;
    });
    let id = unique("nsjoin");
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_nothing_left(&id, b.root.path());
    stdout(&out).trim().to_string()
}

/// Run by a normal user, `sandbox` maps the caller to root inside (one id), builds its
/// filesystem itself (the caller may not clone the host's mounts), and runs without cgroups,
/// saying so; the rest of the isolation is the same.
#[test]
fn sandbox_runs_unprivileged_with_the_caller_as_root() {
    require_root();
    use std::os::unix::fs::PermissionsExt;
    // the binary and the state root where user 65534 can reach them
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_copy = dir.path().join("stockade");
    std::fs::copy(bin(), &bin_copy).unwrap();
    let root = dir.path().join("state");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin_copy)
        .arg("--root")
        .arg(&root)
        .args(["sandbox", "--", "sh", "-c"])
        .arg("id -u; cat /proc/self/uid_map; grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status; readlink /proc/self/ns/net")
        .output()
        .expect("setpriv (util-linux)");
    let text = stdout(&out);
    assert!(out.status.success(), "{text} {}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "{text}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"],
        "{text}"
    );
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    assert_ne!(lines.last().unwrap().trim(), host_ns("net"), "{text}");
    assert_eq!(
        stderr(&out).matches("without cgroup limits").count(),
        1,
        "{}",
        stderr(&out)
    );
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".seccomp")
        .collect();
    assert!(left.is_empty(), "state left: {left:?}");
}
