//! The systemd cgroup driver against a real systemd. This machine has none as PID 1, so the test
//! boots one: a Debian 12 rootfs (`debootstrap --variant=minbase --include=systemd,dbus,
//! systemd-sysv`, built once per machine and cached as a tarball under
//! /var/cache/stockade-test, never in git) run by podman as a privileged container with
//! `/lib/systemd/systemd` as PID 1. Inside it, the built binary (bound in read-only) runs
//! `--systemd-cgroup` create/start/update/delete/run of a busybox bundle; `systemctl` and the
//! cgroup files there say whether the scope exists with its limits, holds the container's
//! processes, follows `update`, and is gone after `delete`, a failed create and a killed runtime.
//!
//! On this hybrid host (v1 controllers, cgroup2 at /sys/fs/cgroup/unified) the inner systemd
//! runs in hybrid mode too: it makes the scope in its name=systemd hierarchy and the unified one
//! and realizes no v1 controller itself, so the limits are the ones stockade writes into the v1
//! directories at the unit's path, while systemd's properties say the same values.
//! It fails (never skips) when the fixture cannot be built or systemd does not boot.

mod common;
use common::systemd::Systemd;
use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

/// A busybox bundle under `dir/name` whose config the test edits.
fn bundle(dir: &Path, name: &str, args: &[&str], cgroups_path: &str) {
    let b = dir.join(name);
    busybox_rootfs(&b.join("rootfs"));
    let out = Command::new(bin())
        .args(["spec", "--bundle"])
        .arg(&b)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let file = b.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    v["process"]["args"] = serde_json::json!(args);
    // podman's --ulimit caps what the inner runtime may raise
    v["process"].as_object_mut().unwrap().remove("rlimits");
    v["linux"]["cgroupsPath"] = serde_json::json!(cgroups_path);
    v["linux"]["resources"]["memory"] = serde_json::json!({"limit": 104857600});
    v["linux"]["resources"]["pids"] = serde_json::json!({"limit": 77});
    v["linux"]["resources"]["cpu"] =
        serde_json::json!({"shares": 512, "quota": 50000, "period": 100000});
    std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    chmod_755(&b);
}

fn chmod_755(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// The v1 file of the unit's cgroup in `controller` (found by name: the engine may bind only
/// its own cgroup at /sys/fs/cgroup/CONTROLLER), and the pids in it.
fn v1_file(s: &Systemd, controller: &str, unit: &str, file: &str) -> (String, String) {
    let o = s.sh(&format!(
        "d=$(find /sys/fs/cgroup/{controller} -type d -name {unit} | head -1); [ -n \"$d\" ] && cat $d/{file} && echo == && cat $d/cgroup.procs"
    ));
    let text = ok(&o, &format!("{controller} cgroup of {unit}"));
    let (v, procs) = text.split_once("==\n").unwrap();
    (v.trim().to_string(), procs.trim().to_string())
}

/// Nothing of `unit` is left: no unit, no directory in any hierarchy, no state.
fn assert_unit_gone(s: &Systemd, unit: &str, id: &str) {
    assert_eq!(
        s.show(unit, "LoadState"),
        "not-found",
        "{unit} still loaded"
    );
    // hierarchies the engine shows whole list other containers' cgroups too: only ours count
    let o = s.sh(&format!(
        "own=$(sed -n 's|^0::||p' /proc/1/cgroup); own=${{own%/init.scope}}; \
         find /sys/fs/cgroup -name {unit} | while read p; do case $p in */libpod-*) case $p in *$own/*) echo $p;; esac;; *) echo $p;; esac; done; \
         ls /run/stockade | grep -x {id} || true"
    ));
    assert_eq!(ok(&o, "leftovers").trim(), "", "left after delete of {id}");
}

#[test]
fn systemd_driver_runs_containers_in_transient_scopes_of_a_real_systemd() {
    let bundles = tempfile::tempdir().unwrap();
    chmod_755(bundles.path());
    bundle(
        bundles.path(),
        "sleep",
        &["sleep", "300"],
        "system.slice:stockade:c1",
    );
    bundle(
        bundles.path(),
        "once",
        &["sh", "-c", "cat /proc/self/cgroup; exit 3"],
        "",
    );
    bundle(
        bundles.path(),
        "nested",
        &["sleep", "300"],
        "kubepods-besteffort-pod123.slice:cri-containerd:c3",
    );
    bundle(
        bundles.path(),
        "missing",
        &["no-such-program"],
        "system.slice:stockade:c4",
    );
    let s = Systemd::boot(&[
        (bin().to_string(), "/usr/local/bin/stockade:ro".to_string()),
        (bundles.path().display().to_string(), "/bundles".to_string()),
    ]);
    assert_eq!(
        stdout(&s.sh("cat /proc/1/comm")).trim(),
        "systemd",
        "PID 1 of the test container"
    );
    let unit = "stockade-c1.scope";

    // create: the scope exists, delegated, in its slice, with the limits, holding the init
    let t0 = Instant::now();
    ok(
        &s.sh("cd /bundles/sleep && stockade --systemd-cgroup create c1"),
        "create",
    );
    eprintln!(
        "create with a transient unit: {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(s.show(unit, "ActiveState"), "active");
    assert_eq!(s.show(unit, "Delegate"), "yes");
    assert_eq!(s.show(unit, "Slice"), "system.slice");
    assert_eq!(s.show(unit, "MemoryMax"), "104857600");
    assert_eq!(s.show(unit, "TasksMax"), "77");
    assert_eq!(s.show(unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(s.show(unit, "CPUShares"), "512");
    let cg = s.show(unit, "ControlGroup");
    assert!(cg.ends_with("/system.slice/stockade-c1.scope"), "{cg}");
    let st: serde_json::Value =
        serde_json::from_str(&ok(&s.sh("stockade state c1"), "state")).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(st["status"], "created");
    let own = ok(&s.sh(&format!("cat /proc/{pid}/cgroup")), "init's cgroups");
    for l in own.lines() {
        assert!(
            l.ends_with("/system.slice/stockade-c1.scope") || l.ends_with(":/"),
            "init outside its unit: {l}\n{own}"
        );
    }
    assert!(own.lines().any(|l| l == format!("0::{cg}")), "{own}");
    let (mem, procs) = v1_file(&s, "memory", unit, "memory.limit_in_bytes");
    assert_eq!(mem, "104857600");
    assert_eq!(procs, pid.to_string());
    assert_eq!(v1_file(&s, "pids", unit, "pids.max").0, "77");
    assert_eq!(v1_file(&s, "cpu", unit, "cpu.cfs_quota_us").0, "50000");
    // systemd lists the init among the unit's processes
    let tasks = s.sh(&format!(
        "cat /sys/fs/cgroup/systemd{cg}/cgroup.procs 2>/dev/null || find /sys/fs/cgroup/systemd -type d -name {unit} -exec cat {{}}/cgroup.procs \\;"
    ));
    assert!(
        stdout(&tasks).lines().any(|l| l.trim() == pid.to_string()),
        "{}",
        stdout(&tasks)
    );

    // a second container with the same cgroupsPath is refused and touches nothing of the first
    let o = s.sh("cd /bundles/sleep && stockade --systemd-cgroup create c1b");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(s.show(unit, "ActiveState"), "active");
    assert_eq!(
        v1_file(&s, "memory", unit, "memory.limit_in_bytes").1,
        pid.to_string()
    );
    assert_eq!(stdout(&s.sh("ls /run/stockade")).trim(), "c1");

    // start, update: properties and files follow
    ok(&s.sh("stockade start c1"), "start");
    ok(
        &s.sh("stockade update --memory 200m --pids-limit 99 --cpu-quota 25000 c1"),
        "update",
    );
    assert_eq!(s.show(unit, "MemoryMax"), "209715200");
    assert_eq!(s.show(unit, "TasksMax"), "99");
    assert_eq!(s.show(unit, "CPUQuotaPerSecUSec"), "250ms");
    assert_eq!(
        v1_file(&s, "memory", unit, "memory.limit_in_bytes").0,
        "209715200"
    );
    assert_eq!(v1_file(&s, "pids", unit, "pids.max").0, "99");
    let ps = ok(&s.sh("stockade ps --format json c1"), "ps");
    assert_eq!(ps.trim(), format!("[{pid}]"));

    // delete --force of the running container: unit, cgroups and state gone
    ok(&s.sh("stockade delete --force c1"), "delete");
    assert_unit_gone(&s, unit, "c1");

    // run in the foreground: exit code, its own cgroup namespace, the unit gone afterwards
    let o = s.sh("cd /bundles/once && stockade --systemd-cgroup run c2");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stdout(&o).lines().any(|l| l == "0::/"), "{}", stdout(&o));
    assert_unit_gone(&s, "stockade-c2.scope", "c2");

    // without the system bus: straight to systemd's private socket
    let o = s.sh(
        "cd /bundles/once && DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent stockade --systemd-cgroup run c5",
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_unit_gone(&s, "stockade-c5.scope", "c5");

    // a nested slice, as kubelet names a BestEffort pod's
    ok(
        &s.sh("cd /bundles/nested && stockade --systemd-cgroup run -d c3"),
        "run -d nested",
    );
    let cg = s.show("cri-containerd-c3.scope", "ControlGroup");
    assert!(
        cg.ends_with("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-c3.scope"),
        "{cg}"
    );
    assert_eq!(
        s.show("cri-containerd-c3.scope", "Slice"),
        "kubepods-besteffort-pod123.slice"
    );
    ok(&s.sh("stockade delete --force c3"), "delete nested");
    assert_unit_gone(&s, "cri-containerd-c3.scope", "c3");

    // a create that fails after the unit started leaves no unit
    let o = s.sh("cd /bundles/missing && stockade --systemd-cgroup create c4");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no-such-program"), "{}", stderr(&o));
    assert_unit_gone(&s, "stockade-c4.scope", "c4");

    // the runtime killed right after the unit started: delete --force removes it
    let o = s.sh(
        "cd /bundles/sleep && (STOCKADE_TEST_STOP_AT='cgroup ready' stockade --systemd-cgroup create c1 >/dev/null 2>&1 &) ; \
         for i in $(seq 200); do p=$(for f in /proc/[0-9]*/stat; do read a b c r <$f 2>/dev/null; [ \"$b\" = '(stockade)' ] && [ \"$c\" = T ] && echo ${f#/proc/} ; done | head -1); [ -n \"$p\" ] && break; sleep 0.05; done; \
         p=${p%/stat}; [ -n \"$p\" ] || exit 9; systemctl show stockade-c1.scope -p ActiveState --value; kill -9 $p",
    );
    assert_eq!(
        ok(&o, "stop the runtime after the unit started").trim(),
        "active"
    );
    ok(
        &s.sh("stockade delete --force c1"),
        "delete --force after a kill",
    );
    assert_unit_gone(&s, unit, "c1");
}

/// Where no systemd runs (this host), the driver is refused with the reason, before anything
/// is made; and a systemd-shaped path without the flag is a configuration error.
#[test]
fn systemd_driver_without_systemd_is_a_clear_error() {
    assert!(
        !Path::new("/run/systemd/system").exists(),
        "this test expects a host without systemd as PID 1"
    );
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["cgroupsPath"] = serde_json::json!("system.slice:stockade:x1");
    });
    let root = b.root.path();
    let o = cmd(
        root,
        &[
            "--systemd-cgroup",
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            "x1",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("systemd is not running on this host"),
        "{}",
        stderr(&o)
    );
    assert_nothing_left("x1", root);
    let o = cmd(root, &["run", "--bundle", b.path().to_str().unwrap(), "x1"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("linux.cgroupsPath")
            && e.contains("--systemd-cgroup")
            && e.contains("config.json"),
        "{e}"
    );
    assert_nothing_left("x1", root);
    let b = Bundle::new(&["true"], |v| {
        v["linux"]["cgroupsPath"] = serde_json::json!("/plain/path");
    });
    let o = cmd(
        b.root.path(),
        &[
            "--systemd-cgroup",
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            "x2",
        ],
    );
    assert!(stderr(&o).contains("slice:prefix:name"), "{}", stderr(&o));
}
