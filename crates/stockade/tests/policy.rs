//! The hardening policy on bundles (the engines' own runs are in engines_policy.rs): a config
//! shaped like Docker's is raised to the floor for real (user namespace with an id range of its
//! own, capabilities, no_new_privs, seccomp, limits), privileged ones are refused naming the rule,
//! policy files are checked, the id pool is shared out and given back, and an overlay rootfs is
//! rebuilt from idmapped layers with its overlay metadata intact.

mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What Docker hands a runtime, near enough: no user namespace, Docker's 14 capabilities, no
/// no_new_privs, no limits, a writable root. (`stockade spec`'s hardening undone.)
fn docker_like(v: &mut serde_json::Value) {
    let caps = json!(stockade_seccomp::DOCKER_DEFAULT_CAPS);
    v["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    v["process"]["noNewPrivileges"] = json!(false);
    v["root"]["readonly"] = json!(false);
    let l = &mut v["linux"];
    l["namespaces"] = json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
    l.as_object_mut().unwrap().remove("uidMappings");
    l.as_object_mut().unwrap().remove("gidMappings");
    l.as_object_mut().unwrap().remove("resources");
    // --security-opt seccomp=unconfined
    l.as_object_mut().unwrap().remove("seccomp");
    l["maskedPaths"] = json!(["/proc/kcore"]);
}

fn with_policy(b: &Bundle, policy: &str, args: &[&str]) -> std::process::Output {
    let mut a = vec!["--policy", policy];
    a.extend_from_slice(args);
    cmd(b.root.path(), &a)
}

const PROBE: &str = "cat /proc/self/uid_map; grep -E 'CapBnd|NoNewPrivs|Seccomp:' /proc/self/status; \
                     cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo x > /created-by-root; echo ok";

#[test]
fn a_docker_shaped_config_is_raised_to_the_floor() {
    let b = Bundle::new(&["sh", "-c", PROBE], docker_like);
    let bundle = b.path().to_str().unwrap().to_string();
    let out = with_policy(&b, "default", &["run", "--bundle", &bundle, "raised"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let l: Vec<&str> = text.lines().collect();
    // container root is an unprivileged host id of the pool (1000000000 and up)
    let map: Vec<u64> = l[0]
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(map[0], 0, "{text}");
    assert!(map[1] >= 1_000_000_000 && map[2] == 65536, "{text}");
    // the ceiling: Docker's 14 minus NET_RAW, MKNOD, AUDIT_WRITE, SETFCAP = 10 capabilities
    let bnd = u64::from_str_radix(l[1].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(bnd.count_ones(), 10, "{text}");
    assert_eq!(bnd & (1 << 13), 0, "CAP_NET_RAW dropped: {text}");
    assert!(l[2].ends_with("\t1"), "no_new_privs: {text}");
    assert!(l[3].ends_with("\t2"), "the default seccomp profile: {text}");
    assert_eq!(l[4], (1u64 << 30).to_string(), "the default memory limit");
    assert_eq!(l[5], "ok");
    // the rootfs is idmapped: what container root wrote is host root's, as without the policy
    let md = std::fs::metadata(b.path().join("rootfs/created-by-root")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    // every change is said, naming its rule
    let err = stderr(&out);
    for rule in [
        "policy capabilityCeiling",
        "policy noNewPrivileges",
        "policy seccomp",
        "policy limits",
        "policy userNamespace",
        "policy hostNamespaces",
        "policy maskedPaths",
    ] {
        assert!(err.contains(rule), "{rule} not said: {err}");
    }
    assert_nothing_left("raised", b.root.path());
    assert!(
        ids_held(b.root.path()).is_empty(),
        "the id range is given back"
    );
    // policy none: the same config runs as given (no user namespace: the identity map)
    let out = with_policy(&b, "none", &["run", "--bundle", &bundle, "asis"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("         0          0 4294967295"),
        "{}",
        stdout(&out)
    );
}

fn ids_held(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join(".ids"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock")
        .collect()
}

#[test]
fn created_containers_hold_disjoint_ranges_and_record_the_changes() {
    let b = Bundle::new(&["sleep", "30"], docker_like);
    let bundle = b.path().to_str().unwrap().to_string();
    let mut starts = vec![];
    let (pa, pb) = (unique("pa"), unique("pb"));
    for id in [pa.as_str(), pb.as_str()] {
        let out = with_policy(&b, "default", &["create", "--bundle", &bundle, id]);
        assert!(out.status.success(), "{}", stderr(&out));
        let st: serde_json::Value =
            serde_json::from_slice(&cmd(b.root.path(), &["state", id]).stdout).unwrap();
        let pid = st["pid"].as_i64().unwrap();
        let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        starts.push(map.split_whitespace().nth(1).unwrap().to_string());
        // the state carries the config's annotations (runtime-spec), not the policy's records
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
        let own = match config["annotations"].clone() {
            serde_json::Value::Null => serde_json::json!({}),
            v => v,
        };
        assert_eq!(st["annotations"], own, "state annotations");
        // the records are in `policy explain`
        let ex = cmd(b.root.path(), &["policy", "explain", id]);
        assert!(ex.status.success(), "{}", stderr(&ex));
        let text = stdout(&ex);
        assert!(
            text.lines()
                .any(|l| l.starts_with("capabilityCeiling") && l.contains("CAP_NET_RAW")),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l.starts_with("userNamespace")),
            "{text}"
        );
    }
    assert_ne!(starts[0], starts[1], "two live containers, one id range");
    assert_eq!(ids_held(b.root.path()).len(), 2);
    assert!(cmd(b.root.path(), &["start", &pa]).status.success());
    // `audit --pid` of the running container reports the posture enforced: no finding of a
    // missing user namespace (SA014) nor of Docker's unconfined seccomp
    let st: serde_json::Value =
        serde_json::from_slice(&cmd(b.root.path(), &["state", &pa]).stdout).unwrap();
    let pid = st["pid"].as_i64().unwrap().to_string();
    let audit = cmd(b.root.path(), &["audit", "--pid", &pid, "--format", "json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&audit.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&audit)));
    let ids: Vec<&str> = v["reports"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"SA014"), "{ids:?}");
    assert!(
        !v["reports"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["section"] == "seccomp" && f["severity"] == "high"),
        "{v:#}"
    );
    // exec meets the ceiling too
    let ex = with_policy(
        &b,
        "default",
        &[
            "exec",
            "--cap",
            "CAP_SYS_ADMIN",
            &pa,
            "grep",
            "CapBnd",
            "/proc/self/status",
        ],
    );
    assert!(
        ex.status.success(),
        "{:?} {} {}",
        ex.status,
        stdout(&ex),
        stderr(&ex)
    );
    let bnd = u64::from_str_radix(stdout(&ex).split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(bnd & (1 << 21), 0, "CAP_SYS_ADMIN clamped");
    let err = stderr(&ex);
    assert!(
        err.contains("policy capabilityCeiling") && err.contains("CAP_SYS_ADMIN"),
        "{err}"
    );
    for id in [pa.as_str(), pb.as_str()] {
        assert!(cmd(b.root.path(), &["delete", "--force", id])
            .status
            .success());
        assert_nothing_left(id, b.root.path());
    }
    assert!(ids_held(b.root.path()).is_empty());
}

#[test]
fn privileged_and_host_namespaces_are_refused_naming_the_rule() {
    let b = Bundle::new(&["true"], |v| {
        docker_like(v);
        let all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        v["process"]["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
        v["linux"].as_object_mut().unwrap().remove("seccomp");
    });
    let bundle = b.path().to_str().unwrap().to_string();
    let out = with_policy(&b, "default", &["run", "--bundle", &bundle, "priv"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("config.json")
            && err.contains("process.capabilities")
            && err.contains("policy rule privileged")
            && err.contains("built-in"),
        "{err}"
    );
    assert_nothing_left("priv", b.root.path());
    assert!(ids_held(b.root.path()).is_empty());
    // the host's pid namespace
    let b = Bundle::new(&["true"], |v| {
        docker_like(v);
        v["linux"]["namespaces"] =
            json!([{"type": "network"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]);
    });
    let bundle = b.path().to_str().unwrap().to_string();
    let out = with_policy(&b, "default", &["run", "--bundle", &bundle, "hostpid"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("hostNamespaces") && stderr(&out).contains("pid"),
        "{}",
        stderr(&out)
    );
    // an operator who allows it, in a policy file
    let pol = b.path().join("policy.json");
    std::fs::write(&pol, r#"{"hostNamespaces": {"pid": "allow"}}"#).unwrap();
    let out = with_policy(
        &b,
        pol.to_str().unwrap(),
        &["run", "--bundle", &bundle, "hostpid"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("NOT added: the container shares the host's pid namespace"),
        "{}",
        stderr(&out)
    );
    assert_nothing_left("hostpid", b.root.path());
}

#[test]
fn policy_files_show_check_and_bad_input() {
    let b = Bundle::new(&["true"], docker_like);
    let dir = b.path();
    let pol = dir.join("policy.json");
    std::fs::write(
        &pol,
        r#"{"privileged": "raise", "limits": {"memory": "256m", "pids": 64}}"#,
    )
    .unwrap();
    let show = with_policy(&b, pol.to_str().unwrap(), &["policy", "show"]);
    assert!(show.status.success(), "{}", stderr(&show));
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["privileged"]["value"], "raise");
    assert_eq!(v["privileged"]["origin"], pol.to_str().unwrap());
    assert_eq!(v["seccomp"]["origin"], "built-in");
    // and what the floor does not reach: a pod whose pause container has no user namespace
    assert!(
        v["notReached"]["notes"][0]
            .as_str()
            .unwrap()
            .contains("they stay host root"),
        "{v}"
    );
    let check = with_policy(
        &b,
        pol.to_str().unwrap(),
        &["policy", "check", dir.to_str().unwrap()],
    );
    assert!(check.status.success(), "{}", stderr(&check));
    let text = stdout(&check);
    assert!(
        text.contains("capabilityCeiling") && text.contains("CAP_NET_RAW"),
        "{text}"
    );
    assert!(
        text.contains("268435456") && text.contains("userNamespace"),
        "{text}"
    );
    // check runs nothing
    assert!(ids_held(b.root.path()).is_empty());
    // malformed policies: file and field named, nothing runs
    for (text, field) in [
        (r#"{"privileged": "sometimes"}"#, "privileged"),
        (r#"{"limits": {"pids": -1}}"#, "limits.pids"),
        (r#"{"capabilityCeiling": ["CAP_FLY"]}"#, "capabilityCeiling"),
        (
            r#"{"hostNamespaces": {"network": "raise"}}"#,
            "hostNamespaces.network",
        ),
        ("{", ""),
    ] {
        std::fs::write(&pol, text).unwrap();
        let out = with_policy(
            &b,
            pol.to_str().unwrap(),
            &["run", "--bundle", dir.to_str().unwrap(), "badpol"],
        );
        assert_eq!(out.status.code(), Some(1), "{text}");
        let err = stderr(&out);
        assert!(
            err.contains("policy.json") && err.contains(field),
            "{text}: {err}"
        );
        assert_nothing_left("badpol", b.root.path());
    }
}

#[test]
fn an_exhausted_id_pool_is_a_clear_error_and_delete_gives_ranges_back() {
    let b = Bundle::new(&["sleep", "30"], docker_like);
    let dir = b.path().to_str().unwrap().to_string();
    let pol = b.path().join("policy.json");
    std::fs::write(
        &pol,
        r#"{"idPool": {"start": 3000000000, "count": 65536, "size": 65536}}"#,
    )
    .unwrap();
    let p = pol.to_str().unwrap();
    let first = with_policy(&b, p, &["create", "--bundle", &dir, "one"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let second = with_policy(&b, p, &["create", "--bundle", &dir, "two"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("id pool is exhausted"),
        "{}",
        stderr(&second)
    );
    assert_nothing_left("two", b.root.path());
    assert!(cmd(b.root.path(), &["delete", "--force", "one"])
        .status
        .success());
    let third = with_policy(&b, p, &["create", "--bundle", &dir, "three"]);
    assert!(third.status.success(), "{}", stderr(&third));
    assert!(cmd(b.root.path(), &["delete", "--force", "three"])
        .status
        .success());
    assert!(ids_held(b.root.path()).is_empty());
}

fn setxattr(path: &Path, name: &str, value: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr {name} {}", path.display());
}

/// An overlay rootfs as engines mount one, with an opaque directory in its upper layer: the
/// policy's user namespace runs on the overlay rebuilt from idmapped layers, writes land in the
/// upper layer owned by host root, copy-up works, and the opaque directory stays opaque (the
/// layers' trusted.overlay metadata is read as written).
#[test]
fn an_overlay_rootfs_is_rebuilt_from_idmapped_layers() {
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "ls /opq; echo new >> /etc/passwd; echo made > /made; cat /made; id -u",
        ],
        docker_like,
    );
    let store = tempfile::tempdir().unwrap();
    let s = store.path();
    // the bundle's rootfs becomes the lower layer; upper has an opaque /opq
    std::fs::rename(b.path().join("rootfs"), s.join("lower")).unwrap();
    std::fs::create_dir_all(s.join("lower/opq")).unwrap();
    std::fs::write(s.join("lower/opq/from-lower"), "x").unwrap();
    for d in ["upper/opq", "work", "merged"] {
        std::fs::create_dir_all(s.join(d)).unwrap();
    }
    std::fs::write(s.join("upper/opq/from-upper"), "y").unwrap();
    setxattr(&s.join("upper/opq"), "trusted.overlay.opaque", b"y");
    let opts = format!(
        "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work,index=off",
        s.display()
    );
    let m = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(s.join("merged"))
        .status()
        .unwrap();
    assert!(m.success());
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(s.join("merged"));
    let file = b.path().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    v["root"]["path"] = json!(s.join("merged"));
    std::fs::write(&file, v.to_string()).unwrap();
    let out = with_policy(
        &b,
        "default",
        &["run", "--bundle", b.path().to_str().unwrap(), "ovl"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("policy userNamespace"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "from-upper\nmade\n0\n");
    // writes went to the upper layer, owned as host root owns them; the lower is untouched
    let md = std::fs::metadata(s.join("upper/made")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
    let copied = std::fs::read_to_string(s.join("upper/etc/passwd")).unwrap();
    assert!(copied.ends_with("new\n"));
    assert_eq!(
        std::fs::metadata(s.join("upper/etc/passwd")).unwrap().uid(),
        0
    );
    assert!(!std::fs::read_to_string(s.join("lower/etc/passwd"))
        .unwrap()
        .contains("new"));
    assert_nothing_left("ovl", b.root.path());
    // nothing of the rebuilt overlay is left mounted
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(
        mi.matches(&*s.join("upper").to_string_lossy()).count(),
        1,
        "only the test's own overlay: {mi}"
    );
}

/// Docker's network sysctls with the added user namespace: written from the runtime's side into
/// a network namespace joined by path (owned by the host's user namespace), and restated in the
/// ids the user namespace maps for a network namespace of the container's own.
#[test]
fn engine_network_sysctls_still_take_effect() {
    let holder = std::process::Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = holder.id();
    let _k = Kill(holder);
    let netns = format!("/proc/{pid}/ns/net");
    poll_until("unshare's namespace", 5, || {
        (std::fs::read_link(&netns).ok()? != std::fs::read_link("/proc/self/ns/net").ok()?)
            .then_some(())
    });
    let sysctls = json!({"net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.ip_unprivileged_port_start": "0"});
    let ns = netns.clone();
    let s2 = sysctls.clone();
    let b = Bundle::new(&["sleep", "30"], move |v| {
        docker_like(v);
        v["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "network", "path": ns}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
        v["linux"]["sysctl"] = s2;
    });
    let bundle = b.path().to_str().unwrap().to_string();
    let id = unique("sysjoin");
    let out = with_policy(&b, "default", &["create", "--bundle", &bundle, &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cmd(b.root.path(), &["start", &id]).status.success());
    // exec enters it too: the joined namespace before the container's user namespace
    let out = with_policy(
        &b,
        "default",
        &["exec", &id, "sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/self/uid_map; readlink /proc/self/ns/net"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(l[0], "0", "{text}");
    assert!(
        !l[1].contains("4294967295"),
        "in the added user namespace: {text}"
    );
    assert_eq!(l[2], std::fs::read_link(&netns).unwrap().to_str().unwrap());
    assert!(cmd(b.root.path(), &["delete", "--force", &id])
        .status
        .success());
    assert_nothing_left(&id, b.root.path());
    let ping = std::process::Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["cat", "/proc/sys/net/ipv4/ping_group_range"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&ping).split_whitespace().collect::<Vec<_>>(),
        ["0", "2147483647"]
    );
    // a network namespace of its own: the range restated in mapped gids, said
    let b = Bundle::new(&["cat", "/proc/sys/net/ipv4/ping_group_range"], move |v| {
        docker_like(v);
        v["linux"]["sysctl"] = sysctls;
    });
    let bundle = b.path().to_str().unwrap().to_string();
    let out = with_policy(&b, "default", &["run", "--bundle", &bundle, "sysown"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["0", "65535"]
    );
    assert!(
        stderr(&out).contains("ping_group_range"),
        "{}",
        stderr(&out)
    );
}
