//! Real engines for the tests: a `dockerd`, Podman and `containerd` of their own (temporary
//! directories and sockets), each with an offline busybox image.

use super::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A busybox rootfs in `dir`, tarred as `dir/bb.tar` for an engine's `import` (no download).
pub fn busybox_tar(dir: &std::path::Path) -> std::path::PathBuf {
    let rootfs = dir.join("bb");
    busybox_rootfs(&rootfs);
    let tar = dir.join("bb.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    tar
}

/// `import` arguments (docker's and podman's alike) that make the image `bb` from `tar`.
pub fn import_bb(tar: &std::path::Path) -> [&str; 5] {
    [
        "import",
        "--change",
        "ENV PATH=/bin",
        tar.to_str().unwrap(),
        "bb",
    ]
}

pub struct Dockerd {
    pub dir: tempfile::TempDir,
    child: std::process::Child,
    _cgroups: EngineCgroups,
}

/// The cgroup parents an engine makes in every hierarchy and leaves behind (`docker`,
/// `libpod_parent`): those that did not exist when the test's engine started are removed (their
/// empty directories, deepest first) when it is dropped. One in use stays (rmdir says EBUSY).
pub struct EngineCgroups(Vec<std::path::PathBuf>);

impl EngineCgroups {
    pub fn new(name: &str) -> EngineCgroups {
        let new = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|h| !h.file_type().is_ok_and(|t| t.is_symlink()))
            .map(|h| h.path().join(name))
            .filter(|p| !p.exists())
            .collect();
        EngineCgroups(new)
    }
}

impl Drop for EngineCgroups {
    fn drop(&mut self) {
        fn rm(p: &Path) {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rm(&e.path());
                }
            }
            let _ = std::fs::remove_dir(p);
        }
        for p in &self.0 {
            rm(p);
        }
    }
}

impl Dockerd {
    pub fn start() -> Dockerd {
        require_root();
        let cgroups = EngineCgroups::new("docker");
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        // "stockade" exercises the engine on Docker's exact configs; "stockade-policy" runs the
        // built-in hardening policy; "stockade-learn" learns every container (--learn-dir)
        let config = p("daemon.json");
        let learn = p("learned");
        std::fs::write(
            &config,
            serde_json::json!({"runtimes": {
                "stockade": {"path": bin(), "runtimeArgs": ["--policy", "none"]},
                "stockade-policy": {"path": bin(), "runtimeArgs": ["--policy", "default"]},
                "stockade-learn": {"path": bin(), "runtimeArgs": ["--policy", "none", "--learn-dir", learn]},
            }})
            .to_string(),
        )
        .unwrap();
        let log = std::fs::File::create(p("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(p("data"))
            .arg("--exec-root")
            .arg(p("exec"))
            .arg("--pidfile")
            .arg(p("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", p("docker.sock").display()))
            .args(["--iptables=false", "--bridge=none", "--ip-masq=false"])
            .arg("--config-file")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd (apt-get install docker.io; .ci/run does)");
        let logfile = p("dockerd.log");
        let d = Dockerd {
            dir,
            child,
            _cgroups: cgroups,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up:\n{}",
                std::fs::read_to_string(&logfile).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // a busybox image, made offline
        let tar = busybox_tar(d.dir.path());
        let imp = d.docker(&import_bb(&tar));
        assert!(imp.status.success(), "{}", stderr(&imp));
        d
    }

    /// The "stockade-learn" runtime's `--learn-dir`.
    pub fn learn_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("learned")
    }

    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        timeout()
            .arg("docker")
            .arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // containerd leaves its mounts under the temporary exec root
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("exec"))
            .status();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("data"))
            .status();
    }
}

/// Podman (through conmon) with a temporary store; no systemd here, so cgroupfs and file events.
pub struct Podman {
    pub dir: tempfile::TempDir,
    _cgroups: EngineCgroups,
    /// the `--policy` podman passes stockade (`--runtime-flag`)
    pub policy: &'static str,
}

impl Podman {
    pub fn new() -> Podman {
        Podman::with_policy("none")
    }

    /// Podman whose stockade runs with `--policy POLICY`.
    pub fn with_policy(policy: &'static str) -> Podman {
        require_root();
        let p = Podman {
            dir: tempfile::tempdir().unwrap(),
            _cgroups: EngineCgroups::new("libpod_parent"),
            policy,
        };
        let tar = busybox_tar(p.dir.path());
        let imp = p.podman(&import_bb(&tar));
        assert!(imp.status.success(), "podman import: {}", stderr(&imp));
        p
    }

    pub fn podman(&self, args: &[&str]) -> std::process::Output {
        let d = self.dir.path();
        timeout()
            .arg("podman")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg(format!("--runtime-flag=policy={}", self.policy))
            .args([
                "--runtime",
                bin(),
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman (apt-get install podman; .ci/run does)")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af"]);
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("root"))
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("run"))
            .stderr(Stdio::null())
            .status();
    }
}

/// Podman here needs explicit ulimits (the host's are above what a user namespace may set).
pub const PODMAN_RUN: &[&str] = &[
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    "--network",
    "none",
];

/// containerd with a temporary config, root, state and socket; `ctr run --runc-binary` goes
/// through the runc shim v2, the path Kubernetes (CRI) takes.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Containerd {
    pub fn start() -> Containerd {
        Containerd::with_policy("none")
    }

    /// containerd whose shims run stockade with STOCKADE_POLICY=POLICY (the runc shim passes
    /// no runtime flags).
    pub fn with_policy(policy: &str) -> Containerd {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        std::fs::write(
            d.join("config.toml"),
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{0}/containerd.sock\"\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable = true\n",
                d.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .env("STOCKADE_POLICY", policy)
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (a dependency of docker.io; .ci/run installs it)");
        let c = Containerd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up:\n{}",
                std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // an image archive, made offline with podman
        let p = Podman::new();
        let tar = d.join("bb-image.tar");
        let save = p.podman(&["save", "-o", tar.to_str().unwrap(), "localhost/bb"]);
        assert!(save.status.success(), "{}", stderr(&save));
        let imp = c.ctr(&["image", "import", tar.to_str().unwrap()]);
        assert!(imp.status.success(), "{}", stderr(&imp));
        c
    }

    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        timeout()
            .arg("ctr")
            .arg("-a")
            .arg(self.dir.path().join("containerd.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("state"))
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("root"))
            .stderr(Stdio::null())
            .status();
    }
}
