//! Bad input: a clear error naming the file and field, a non-zero exit, and nothing left behind.

mod common;
use common::*;
use serde_json::json;

fn expect_error(b: &Bundle, id: &str, wants: &[&str]) {
    let out = b.run(id);
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "succeeded: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    for w in wants {
        assert!(err.contains(w), "error does not mention {w:?}: {err}");
    }
    assert_nothing_left(id, b.root.path());
}

#[test]
fn malformed_json_names_the_file_and_position() {
    let id = unique("badjson");
    let b = Bundle::new(&["true"], |_| {});
    b.write_config("{\"ociVersion\": \"1.0.0\", \"process\": ");
    expect_error(&b, &id, &["config.json", "EOF"]);
}

#[test]
fn unknown_version_is_refused() {
    let id = unique("badver");
    let b = Bundle::new(&["true"], |v| v["ociVersion"] = json!("2.0.0"));
    expect_error(&b, &id, &["config.json", "ociVersion", "2.0.0"]);
}

#[test]
fn missing_rootfs_is_refused() {
    let id = unique("noroot");
    let b = Bundle::new(&["true"], |v| v["root"]["path"] = json!("nonexistent"));
    expect_error(&b, &id, &["root.path", "nonexistent"]);
}

#[test]
fn mount_target_escaping_through_a_symlink_is_refused() {
    let id = unique("escape");
    let b = Bundle::new(&["true"], |v| {
        v["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"}));
    });
    std::os::unix::fs::symlink("../../../../../../../tmp", b.path().join("rootfs/evil")).unwrap();
    expect_error(&b, &id, &["mounts[8].destination", "outside the rootfs"]);
    // and an in-image absolute symlink (normal in images) is fine: it resolves inside
    let id2 = unique("abslink");
    let ok = Bundle::new(&["sh", "-c", "mount | grep -c ' /real/x '"], |v| {
        v["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/data/x", "type": "tmpfs", "source": "tmpfs"}));
    });
    std::fs::create_dir(ok.path().join("rootfs/real")).unwrap();
    std::os::unix::fs::symlink("/real", ok.path().join("rootfs/data")).unwrap();
    let out = ok.run(&id2);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        ok.path().join("rootfs/real/x").is_dir(),
        "mount point not created inside the rootfs"
    );
}

#[test]
fn overlapping_id_maps_are_refused() {
    let id = unique("badmap");
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 1000}, {"containerID": 500, "hostID": 300000, "size": 10}]);
    });
    expect_error(&b, &id, &["linux.uidMappings", "overlap"]);
}

#[test]
fn unknown_namespace_type_is_refused() {
    let id = unique("badns");
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "bogus"}))
    });
    expect_error(&b, &id, &["linux.namespaces[8].type", "bogus"]);
}

#[test]
fn unknown_capability_is_refused() {
    let id = unique("badcap");
    let b = Bundle::new(&["true"], |v| {
        v["process"]["capabilities"]["bounding"] = json!(["CAP_CHOWN", "CAP_BOGUS"])
    });
    expect_error(&b, &id, &["process.capabilities.bounding", "CAP_BOGUS"]);
}

#[test]
fn non_namespaced_sysctl_is_refused() {
    let id = unique("badsysctl");
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["sysctl"] = json!({"vm.swappiness": "10"})
    });
    expect_error(&b, &id, &["linux.sysctl.vm.swappiness", "not namespaced"]);
}

#[test]
fn bad_seccomp_action_names_the_json_path() {
    let id = unique("badsc");
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["seccomp"]["syscalls"][0]["action"] = json!("SCMP_ACT_BOGUS")
    });
    expect_error(&b, &id, &["linux.seccomp", "syscalls[0].action"]);
}

#[test]
fn unknown_syscall_names_are_warned_about_not_silent() {
    let id = unique("unknownsc");
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["seccomp"]["syscalls"]
            .as_array_mut()
            .unwrap()
            .push(json!({"names": ["not_a_syscall"], "action": "SCMP_ACT_ALLOW"}));
    });
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not_a_syscall"),
        "no warning: {}",
        stderr(&out)
    );
}

#[test]
fn absurd_limits_are_refused() {
    let id = unique("badmem");
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["resources"]["memory"]["limit"] = json!(5)
    });
    expect_error(&b, &id, &["linux.resources.memory.limit"]);
    let id = unique("badswap");
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["resources"]["memory"] = json!({"limit": 1 << 30, "swap": 1 << 20})
    });
    expect_error(&b, &id, &["linux.resources.memory.swap"]);
    let out = sandbox(&["--memory=-5g"], &["true"]);
    assert!(
        !out.status.success() && stderr(&out).contains("--memory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn failures_inside_the_child_leave_nothing() {
    let id = unique("badcwd");
    let b = Bundle::new(&["true"], |v| {
        v["process"]["cwd"] = json!("/does/not/exist")
    });
    expect_error(&b, &id, &["process.cwd", "/does/not/exist"]);
    let id = unique("noprog");
    let b = Bundle::new(&["no-such-program"], |_| {});
    expect_error(&b, &id, &["no-such-program", "not found"]);
}

#[test]
fn unobtainable_capabilities_are_named() {
    let id = unique("allcaps");
    let all: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "user");
        v["linux"].as_object_mut().unwrap().remove("uidMappings");
        v["linux"].as_object_mut().unwrap().remove("gidMappings");
        v["process"]["capabilities"]["bounding"] = json!(all);
    });
    let own = caps::read(None, caps::CapSet::Bounding).unwrap();
    let missing: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| !own.contains(c))
        .map(|c| c.to_string())
        .collect();
    assert!(
        !missing.is_empty(),
        "this host's bounding set has every capability; the test needs one missing"
    );
    let mut wants: Vec<&str> = missing.iter().map(String::as_str).collect();
    wants.push("bounding set");
    expect_error(&b, &id, &wants);
}

#[test]
fn duplicate_id_is_refused_and_the_first_keeps_running() {
    let id = unique("dup");
    let b = Bundle::new(&["sleep", "30"], |_| {});
    let mut first = std::process::Command::new(bin())
        .arg("--root")
        .arg(b.root.path())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .spawn()
        .unwrap();
    let state = b.root.path().join(&id).join("state.json");
    let running = || {
        std::fs::read(&state)
            .ok()
            .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["pid"].as_i64().unwrap_or(0) > 0)
    };
    for _ in 0..200 {
        if running() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(state.exists(), "first container did not start");
    let out = b.run(&id);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already in use"), "{}", stderr(&out));
    assert!(
        state.exists(),
        "the refused second run removed the first one's state"
    );
    assert!(first.try_wait().unwrap().is_none(), "first container died");
    // kill the container's init from the host: stockade reports 128+9 and cleans up
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let pid = st["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(first.wait().unwrap().code(), Some(137));
    assert_nothing_left(&id, b.root.path());
}

#[test]
fn seccomp_profile_too_big_for_the_kernel_is_refused_clearly() {
    let id = unique("huge");
    // 3000 argument rules on one syscall: more than 4096 instructions
    let rules: Vec<serde_json::Value> = (0..3000u64)
        .map(|v| json!({"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": v * 7 + 1, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": v}]}))
        .collect();
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["seccomp"]["syscalls"] = json!(rules)
    });
    expect_error(&b, &id, &["linux.seccomp", "4096"]);
}

/// A nested relative `cgroupsPath` whose parents stockade had to make: a run that ends and a
/// create that fails after the directories were made both remove those parents too.
#[test]
fn nested_cgroups_path_parents_are_removed_too() {
    let top = unique("nest");
    let path = format!("{top}/mid/leaf");
    let left = || {
        std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|e| e.path().join(&top))
            .filter(|p| p.exists())
            .collect::<Vec<_>>()
    };
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["cgroupsPath"] = serde_json::json!(path);
    });
    let out = b.run(&unique("nested"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(left(), Vec::<std::path::PathBuf>::new());
    // CPU 999 does not exist: the kernel refuses the write, after the mkdirs
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["cgroupsPath"] = serde_json::json!(path);
        v["linux"]["resources"]["cpu"]["cpus"] = serde_json::json!("999");
    });
    let out = b.run(&unique("nested"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cpuset.cpus"), "{}", stderr(&out));
    assert_eq!(left(), Vec::<std::path::PathBuf>::new());
}
