//! Seed §2 (hardware): real limits on this machine's cgroups (v1 controllers, cgroup2 at
//! /sys/fs/cgroup/unified), read back from inside and from outside.

mod common;
use common::*;
use serde_json::json;
use std::io::BufRead;
use std::process::{Command, Stdio};

use stockade::cgroups::{Cgroup, Layout};

/// A running sandbox with a known id and state root; its cgroup comes from state.json.
struct Running {
    child: std::process::Child,
    root: tempfile::TempDir,
    id: String,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Running {
    fn sandbox(flags: &[&str], script: &str) -> Running {
        require_root();
        let root = tempfile::tempdir().unwrap();
        let id = unique("cg");
        let mut child = timeout()
            .arg(bin())
            .arg("--root")
            .arg(root.path())
            .args(["sandbox", "--id", &id])
            .args(flags)
            .args(["--", "sh", "-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Running {
            child,
            root,
            id,
            lines,
        }
    }

    fn line(&mut self) -> String {
        self.lines.next().expect("container output ended").unwrap()
    }

    fn state(&self) -> serde_json::Value {
        let p = self.root.path().join(&self.id).join("state.json");
        for _ in 0..500 {
            if let Ok(v) =
                std::fs::read(&p).map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap())
            {
                if v["pid"].as_i64().unwrap_or(0) > 0 {
                    return v;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no state for {}", self.id);
    }

    fn cgroup(&self) -> Cgroup {
        serde_json::from_value(self.state()["cgroup"].clone()).unwrap()
    }

    fn finish(mut self) -> std::process::ExitStatus {
        let pid = self.state()["pid"].as_i64().unwrap() as i32;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let st = self.child.wait().unwrap();
        assert_nothing_left(&self.id, self.root.path());
        st
    }
}

#[test]
fn memory_bomb_is_oom_killed_at_the_limit_and_stats_show_it() {
    let mut r = Running::sandbox(&["--memory", "64m"], "python3 -c 'b = bytearray(300 << 20); b[::4096] = b\"x\" * len(b[::4096])'; echo rc=$?; sleep 60");
    assert_eq!(
        r.line(),
        "rc=137",
        "the hog was not killed by the OOM killer"
    );
    let stats = r.cgroup().stats();
    assert_eq!(stats["memory"]["usage"]["limit"], 64 << 20, "{stats}");
    assert!(
        stats["memory"]["oom_kill"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_eq!(
        stats["memory"]["usage"]["max"],
        64 << 20,
        "usage never reached the limit: {stats}"
    );
    r.finish();
}

#[test]
fn fork_bomb_stops_at_the_pids_limit_with_eagain() {
    let script = "python3 -c '
import os, time
n = 0
while True:
    try:
        pid = os.fork()
    except OSError as e:
        print(n, e.errno); break
    if pid == 0:
        time.sleep(30); os._exit(0)
    n += 1
'";
    let mut r = Running::sandbox(&["--pids", "20"], &format!("{script}; sleep 60"));
    let line = r.line();
    let mut it = line.split_whitespace();
    let forked: u32 = it.next().unwrap().parse().unwrap();
    assert_eq!(
        it.next(),
        Some("11"),
        "fork failed with something else than EAGAIN: {line}"
    );
    assert!(
        (10..20).contains(&forked),
        "forked {forked} processes under a limit of 20"
    );
    let stats = r.cgroup().stats();
    assert_eq!(stats["pids"]["limit"], 20);
    assert!(stats["pids"]["current"].as_u64().unwrap() >= 10, "{stats}");
    r.finish();
}

#[test]
fn cpu_quota_throttles_a_busy_loop_seen_from_inside() {
    let id = unique("cpu");
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "timeout 1 sh -c 'while :; do :; done'; cat /sys/fs/cgroup/cpu/cpu.stat",
        ],
        |v| {
            v["linux"]["resources"]["cpu"] = json!({"quota": 20000, "period": 100000});
        },
    );
    let out = b.run(&id);
    let text = stdout(&out);
    let throttled: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .expect("cpu.stat inside")
        .parse()
        .unwrap();
    assert!(throttled >= 3, "not throttled: {text}");
    assert_nothing_left(&id, b.root.path());
}

#[test]
fn freeze_stops_progress_and_thaw_resumes_it() {
    let mut r = Running::sandbox(
        &[],
        "i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done",
    );
    r.line();
    let cg = r.cgroup();
    cg.freeze(true).unwrap();
    assert!(cg.is_frozen());
    // drain what was printed before the freeze took effect, then nothing more may come
    let pid = r.state()["pid"].as_i64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let before: u64 = cg.stats()["cpu"]["usage"]["total"].as_u64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after: u64 = cg.stats()["cpu"]["usage"]["total"].as_u64().unwrap();
    assert_eq!(before, after, "cpu time advanced while frozen ({st})");
    cg.freeze(false).unwrap();
    assert!(!cg.is_frozen());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let resumed: u64 = cg.stats()["cpu"]["usage"]["total"].as_u64().unwrap();
    assert!(resumed > after, "no progress after thaw");
    r.finish();
}

#[test]
fn device_cgroup_denies_a_mknoded_device() {
    // Without a user namespace (real root with CAP_MKNOD) only the devices cgroup stands between
    // the container and a block device it creates.
    let id = unique("dev");
    let b = Bundle::new(&["sh", "-c", "mknod /mnt/disk b 8 0 && (head -c1 /mnt/disk >/dev/null 2>&1 && echo opened || echo denied); head -c1 /dev/zero | wc -c"], |v| {
        let l = v["linux"].as_object_mut().unwrap();
        l.remove("uidMappings");
        l.remove("gidMappings");
        l["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "user");
        v["process"]["capabilities"] = json!({"bounding": ["CAP_MKNOD"], "effective": ["CAP_MKNOD"], "permitted": ["CAP_MKNOD"]});
        v["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["dev", "nosuid", "size=1m"]}));
        // creating the node is allowed ("m"); reading or writing it is not
        v["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "m"}]);
    });
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "denied\n1\n");
    assert_nothing_left(&id, b.root.path());
}

#[test]
fn every_hierarchy_gets_a_directory_and_loses_it() {
    let mut r = Running::sandbox(&[], "echo up; sleep 60");
    assert_eq!(r.line(), "up");
    let cg = r.cgroup();
    let layout = Layout::detect().unwrap();
    assert_eq!(cg.v1.len(), layout.v1.len());
    assert_eq!(cg.v2.is_some(), layout.unified.is_some());
    let pid = r.state()["pid"].as_i64().unwrap() as i32;
    for d in cg.dirs() {
        assert!(
            stockade::cgroups::procs(d).contains(&pid),
            "{} lacks the container",
            d.display()
        );
    }
    let dirs: Vec<_> = cg.dirs().cloned().collect();
    r.finish();
    for d in dirs {
        assert!(!d.exists(), "{} left", d.display());
    }
}

/// The v2 driver on the real unified hierarchy: membership, freeze, kill, removal.
#[test]
fn v2_membership_freeze_and_kill_on_the_unified_mount() {
    require_root();
    let layout = Layout::detect().unwrap();
    let unified = layout
        .unified
        .clone()
        .expect("a cgroup2 mount (hybrid: /sys/fs/cgroup/unified)");
    let mut cg = Cgroup {
        v1: vec![],
        v2: Some(unified.join(unique("stockade-v2-test"))),
        ..Default::default()
    };
    cg.create().unwrap();
    assert!(cg.create().is_err(), "creating twice must fail");
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id() as i32;
    cg.add(pid).unwrap();
    assert_eq!(cg.pids(), vec![pid]);
    cg.freeze(true).unwrap();
    let events = std::fs::read_to_string(cg.v2.as_ref().unwrap().join("cgroup.events")).unwrap();
    assert!(events.contains("frozen 1"), "{events}");
    cg.freeze(false).unwrap();
    cg.signal_all(nix::sys::signal::Signal::SIGKILL).unwrap();
    let st = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(9));
    cg.destroy().unwrap();
    assert!(!cg.v2.as_ref().unwrap().exists());
}

#[test]
fn missing_controllers_and_bad_values_are_named() {
    let id = unique("nocls");
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["resources"]["network"] = json!({"classID": 7})
    });
    let out = b.run(&id);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("net_cls"), "{}", stderr(&out));
    assert_nothing_left(&id, b.root.path());
    let id = unique("badcpuset");
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["resources"]["cpu"] = json!({"cpus": "3-1"})
    });
    let out = b.run(&id);
    assert!(
        stderr(&out).contains("linux.resources.cpu.cpus"),
        "{}",
        stderr(&out)
    );
    assert_nothing_left(&id, b.root.path());
    let id = unique("dotdot");
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["cgroupsPath"] = json!("/stockade/../../escape")
    });
    let out = b.run(&id);
    assert!(
        stderr(&out).contains("linux.cgroupsPath"),
        "{}",
        stderr(&out)
    );
    assert!(!std::path::Path::new("/sys/fs/cgroup/memory/escape").exists());
}

/// The v2 device filter: a BPF program built in-process, attached to a real cgroup on the
/// unified mount, denies what the rules deny (even to host root).
#[test]
fn v2_device_filter_program_denies_in_the_kernel() {
    use std::io::Write;
    use stockade::cgroups::device_filter::{attach, program, Rule};
    require_root();
    let layout = Layout::detect().unwrap();
    let unified = layout.unified.clone().expect("a cgroup2 mount");
    let mut cg = Cgroup {
        v1: vec![],
        v2: Some(unified.join(unique("stockade-devfilter"))),
        ..Default::default()
    };
    cg.create().unwrap();
    let rules = vec![
        Rule::parse("a", false).unwrap(),
        Rule::parse("c 1:3 rwm", true).unwrap(),
    ];
    attach(&program(&rules), cg.v2.as_ref().unwrap()).unwrap();
    let mut child = Command::new("sh")
        .args(["-c", "read x; cat /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null 2>&1 && echo zero-ok || echo zero-denied"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    cg.add(child.id() as i32).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "null-ok\nzero-denied\n"
    );
    cg.destroy().unwrap();
}
