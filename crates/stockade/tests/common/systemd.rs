//! A real systemd for the tests: this machine has none as PID 1, so one is booted in a
//! privileged podman container from a Debian 12 rootfs (`debootstrap --variant=minbase
//! --include=systemd,dbus,systemd-sysv`), built once per machine and cached as a tarball under
//! /var/cache/stockade-test (never in git).
#![allow(dead_code)]

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const CACHE: &str = "/var/cache/stockade-test";
const TARBALL: &str = "systemd-bookworm.tar";

/// The cached rootfs tarball, built with debootstrap when missing (under a lock, atomically).
pub fn systemd_tarball() -> PathBuf {
    std::fs::create_dir_all(CACHE).unwrap();
    let tar = Path::new(CACHE).join(TARBALL);
    let lock = std::fs::File::create(Path::new(CACHE).join(".systemd.lock")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; the lock goes with the file at the end of scope.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    if !tar.exists() {
        let t0 = Instant::now();
        let work = Path::new(CACHE).join("systemd-rootfs.build");
        let _ = std::fs::remove_dir_all(&work);
        let out = Command::new("debootstrap")
            .args([
                "--variant=minbase",
                "--include=systemd,dbus,systemd-sysv",
                "bookworm",
            ])
            .arg(&work)
            .arg("http://deb.debian.org/debian")
            .output()
            .expect("debootstrap (apt-get install debootstrap; .ci/run does)");
        assert!(
            out.status.success(),
            "debootstrap failed (it needs the Debian mirrors): {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let part = tar.with_extension("tar.part");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&work)
            .arg("-cf")
            .arg(&part)
            .arg(".")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tar of the systemd rootfs");
        std::fs::rename(&part, &tar).unwrap();
        std::fs::remove_dir_all(&work).unwrap();
        eprintln!(
            "built {} in {:.1} s",
            tar.display(),
            t0.elapsed().as_secs_f64()
        );
    }
    drop(lock);
    tar
}

/// A systemd booted as PID 1 of a podman container (own store), removed when dropped.
pub struct Systemd {
    pub dir: tempfile::TempDir,
    pub name: String,
}

impl Systemd {
    /// Boot it with `binds` (host path, container path) bound in.
    pub fn boot(binds: &[(String, String)]) -> Systemd {
        require_root();
        let tar = systemd_tarball();
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let t0 = Instant::now();
        assert!(Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-xf")
            .arg(&tar)
            .status()
            .unwrap()
            .success());
        eprintln!("rootfs unpacked in {:.1} s", t0.elapsed().as_secs_f64());
        let s = Systemd {
            dir,
            name: unique("sysd"),
        };
        let t0 = Instant::now();
        let mut args: Vec<String> = vec![];
        for (h, c) in binds {
            args.push("-v".into());
            args.push(format!("{h}:{c}"));
        }
        let mut run: Vec<&str> = vec![
            "run",
            "-d",
            "--name",
            &s.name,
            "--privileged",
            "--systemd=always",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        run.extend(args.iter().map(String::as_str));
        run.extend(["--rootfs", rootfs.to_str().unwrap(), "/lib/systemd/systemd"]);
        let out = s.podman(&run);
        assert!(out.status.success(), "podman run systemd: {}", stderr(&out));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = s.sh("systemctl is-system-running");
            let st = stdout(&st).trim().to_string();
            if st == "running" || st == "degraded" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "systemd did not boot (is-system-running: {st:?}): {}",
                stdout(&s.podman(&["logs", &s.name]))
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("systemd running after {:.1} s", t0.elapsed().as_secs_f64());
        s
    }

    pub fn podman(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        timeout()
            .arg("podman")
            .arg("--root")
            .arg(d.join("store"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman (apt-get install podman; .ci/run does)")
    }

    /// A shell script inside the systemd container.
    pub fn sh(&self, script: &str) -> Output {
        self.podman(&["exec", &self.name, "sh", "-c", script])
    }

    /// `systemctl show UNIT -p PROP` values.
    pub fn show(&self, unit: &str, prop: &str) -> String {
        let o = self.sh(&format!("systemctl show {unit} -p {prop} --value"));
        stdout(&o).trim().to_string()
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        // the inner containers first: their cgroups in hierarchies the engine shows whole
        // (perf_event, net_cls here) would outlive the outer container
        let _ = self.sh("for c in $(stockade list -q); do stockade delete --force $c; done");
        let _ = self.podman(&["rm", "-f", "-t", "0", &self.name]);
        for d in ["store", "run"] {
            let _ = Command::new("umount")
                .arg("-R")
                .arg(self.dir.path().join(d))
                .stderr(Stdio::null())
                .status();
        }
        release_unmounted_hierarchies();
    }
}

/// A systemd container makes v1 hierarchies this host does not mount (perf_event, net_cls,
/// net_prio) and podman leaves its `libpod_parent` in them, which keeps them alive after the
/// container; containerd 1.6's statistics then fail for every container (runc's too). Mount each
/// such hierarchy for a moment, remove its empty directories, and let it go.
pub fn release_unmounted_hierarchies() {
    let mounted = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let cgroups = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    let mut by_id: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for l in cgroups.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 2 && f[1] != "0" {
            by_id
                .entry(f[1].to_string())
                .or_default()
                .push(f[0].to_string());
        }
    }
    for ctrls in by_id.values() {
        let opts = ctrls.join(",");
        let is_mounted = mounted.lines().any(|l| {
            l.split(" - ").nth(1).is_some_and(|r| {
                r.starts_with("cgroup ")
                    && ctrls
                        .iter()
                        .all(|c| r.split(',').any(|o| o.ends_with(c.as_str())))
            })
        });
        if is_mounted {
            continue;
        }
        let at = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "cgroup", "-o", &opts, "cgroup"])
            .arg(at.path())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            let _ = Command::new("find")
                .arg(at.path())
                .args([
                    "-mindepth",
                    "1",
                    "-depth",
                    "-type",
                    "d",
                    "-exec",
                    "rmdir",
                    "{}",
                    ";",
                ])
                .stderr(Stdio::null())
                .status();
            // a removed cgroup goes offline asynchronously; the hierarchy dies at an unmount
            // that finds it childless
            std::thread::sleep(Duration::from_millis(200));
            let _ = Command::new("umount").arg(at.path()).status();
        }
    }
}
