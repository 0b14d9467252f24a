//! The CRI test's harness: containerd with its CRI plugin (on the host, or as a service of a
//! booted systemd), the images it runs, and a CRI client to it.

use super::common::systemd::Systemd;
use super::common::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

/// A busybox image and the pause image (busybox's sleep), as docker archives, made with podman.
fn image_archives(dir: &Path) -> (PathBuf, PathBuf) {
    let tar = crate::common::engines::busybox_tar(dir);
    let store = dir.join("podman");
    let podman = |args: &[&str]| {
        let o = timeout()
            .arg("podman")
            .arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("run"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman (apt-get install podman; .ci/run does)");
        assert!(o.status.success(), "podman {args:?}: {}", stderr(&o));
    };
    let t = tar.to_str().unwrap();
    podman(&["import", "--change", "ENV PATH=/bin", t, "localhost/bb:1"]);
    podman(&[
        "import",
        "--change",
        "ENV PATH=/bin",
        "--change",
        r#"ENTRYPOINT ["/bin/sleep", "2147483647"]"#,
        t,
        "localhost/pause:1",
    ]);
    let (bb, pause) = (dir.join("bb-image.tar"), dir.join("pause-image.tar"));
    podman(&["save", "-o", bb.to_str().unwrap(), "localhost/bb:1"]);
    podman(&["save", "-o", pause.to_str().unwrap(), "localhost/pause:1"]);
    for d in ["root", "run"] {
        let _ = Command::new("umount")
            .arg("-R")
            .arg(store.join(d))
            .stderr(Stdio::null())
            .status();
    }
    (bb, pause)
}

/// Mount a fresh /sys/fs/cgroup with every hierarchy of /proc/self/cgroup, then exec
/// containerd with the config "$1".
const MOUNT_ALL_CGROUPS: &str = r#"
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
while IFS=: read -r n ctrls path; do
  case "$ctrls" in
    "") mkdir -p /sys/fs/cgroup/unified; mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified ;;
    name=systemd) mkdir -p /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd ;;
    *) mkdir -p "/sys/fs/cgroup/$ctrls"; mount -t cgroup -o "$ctrls" cgroup "/sys/fs/cgroup/$ctrls"
       for c in $(echo "$ctrls" | tr , ' '); do [ "$c" = "$ctrls" ] || ln -sf "$ctrls" "/sys/fs/cgroup/$c"; done ;;
  esac
done < /proc/self/cgroup
exec "$2" --config "$1"
"#;

/// Which containerd: Debian 12's 1.6 (installed) or 2.x (Debian sid's, unpacked into
/// /var/cache/stockade-test by tests/containerd2.sh, fetched there on first use).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    V1_6,
    V2,
}

impl Version {
    /// The directory holding `containerd`, `ctr` and `containerd-shim-runc-v2`.
    pub fn bin_dir(self) -> PathBuf {
        match self {
            Version::V1_6 => PathBuf::from("/usr/bin"),
            Version::V2 => containerd2_dir().join("usr/bin"),
        }
    }
}

/// containerd 2.x's unpacked package (tests/containerd2.sh: cached, or fetched from Debian sid);
/// fails loudly when it cannot be had.
pub fn containerd2_dir() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/containerd2.sh");
    let o = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("bash tests/containerd2.sh");
    assert!(
        o.status.success(),
        "tests/containerd2.sh could not provide containerd 2.x (it needs Debian's archive once per machine)"
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// The CRI part of the config: version 2's plugin names for 1.6, version 3's for 2.x.
fn cri_config(v: Version, d: &Path, systemd_cgroup: bool) -> String {
    let (cni, runtimes) = match v {
        Version::V1_6 => (
            format!(
                r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:1"
  # root here lacks CAP_SYS_RESOURCE: the pause container's -998 is clamped to containerd's own
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
"#,
                d = d.display()
            ),
            r#"plugins."io.containerd.grpc.v1.cri".containerd"#,
        ),
        Version::V2 => (
            format!(
                r#"[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "localhost/pause:1"
# overlayfs here takes no idmapped lower layers: a hostUsers: false pod's rootfs is chowned
# into its range instead (containerd refuses such a pod without this)
[plugins."io.containerd.snapshotter.v1.overlayfs"]
  slow_chown = true
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{d}/cni"
  [plugins."io.containerd.cri.v1.runtime".containerd]
"#,
                d = d.display()
            ),
            r#"plugins."io.containerd.cri.v1.runtime".containerd"#,
        ),
    };
    format!(
        r#"{cni}    default_runtime_name = "runc"
    [{r}.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [{r}.runtimes.stockade]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["org.stockade.*"]
      [{r}.runtimes.stockade.options]
        BinaryName = "{bin}"
        SystemdCgroup = {systemd_cgroup}
"#,
        r = runtimes,
        bin = bin()
    )
}

/// containerd with its CRI plugin, in a network namespace of its own; removed when dropped.
pub struct Containerd {
    /// Inside a booted systemd, as a service, with `SystemdCgroup = true` (dropped first: the
    /// directory below is bound into it)...
    pub systemd: Option<Systemd>,
    pub dir: tempfile::TempDir,
    /// ... or on the host: its network namespace and the process (in a private mount namespace).
    pub netns: Option<String>,
    pub child: Option<std::process::Child>,
    pub rt: tokio::runtime::Runtime,
    pub runtime: RuntimeServiceClient<Channel>,
    #[allow(dead_code)]
    pub images: ImageServiceClient<Channel>,
    pub version: Version,
}

impl Containerd {
    /// On the host (cgroupfs driver), or with `systemd_cgroup` inside a systemd booted for the
    /// test: there the directory, the binaries and the CNI plugins are bound in at the same
    /// paths, so the socket, the logs and the config read the same from both sides.
    pub fn start(version: Version, systemd_cgroup: bool) -> Containerd {
        Self::start_with_policy(version, systemd_cgroup, None)
    }

    /// With `policy`, the runtime runs under that hardening policy (STOCKADE_POLICY, which the
    /// shim passes on; the tests' own default is `none`). On the host only.
    pub fn start_with_policy(
        version: Version,
        systemd_cgroup: bool,
        policy: Option<&str>,
    ) -> Containerd {
        require_root();
        assert!(
            policy.is_none() || !systemd_cgroup,
            "policy: on the host only"
        );
        let bins = version.bin_dir();
        let t0 = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(d.join("cni")).unwrap();
        std::fs::write(
            d.join("cni/10-stockade.conflist"),
            serde_json::json!({
                "cniVersion": "0.4.0",
                "name": "stockade-cri-test",
                "plugins": [{
                    "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.77.0/24"}]],
                             "dataDir": d.join("ipam")}
                }]
            })
            .to_string(),
        )
        .unwrap();
        let config = format!(
            r#"version = {n}
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
{cri}"#,
            n = if version == Version::V2 { 3 } else { 2 },
            d = d.display(),
            cri = cri_config(version, &d, systemd_cgroup)
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let (netns, child, systemd) = if systemd_cgroup {
            let ro = |p: &str| (p.to_string(), format!("{p}:ro"));
            let s = Systemd::boot(&[
                (d.display().to_string(), d.display().to_string()),
                ro(bin()),
                ro("/usr/lib/cni"),
                ro(&bins.join("containerd").display().to_string()),
                ro(&bins.join("containerd-shim-runc-v2").display().to_string()),
            ]);
            let o = s.sh(&format!(
                "systemd-run --unit=stockade-containerd -p Delegate=yes -E PATH={1}:/usr/sbin:/usr/bin:/sbin:/bin sh -c 'exec {1}/containerd --config {0}/config.toml >>{0}/containerd.log 2>&1'",
                d.display(),
                bins.display()
            ));
            assert!(o.status.success(), "containerd service: {}", stderr(&o));
            (None, None, Some(s))
        } else {
            let netns = unique("stockade-cri");
            let ok = Command::new("ip")
                .args(["netns", "add", &netns])
                .status()
                .expect("ip (iproute2; .ci/run installs it)")
                .success();
            assert!(ok, "ip netns add {netns}");
            let _ = Command::new("ip")
                .args(["-n", &netns, "link", "set", "lo", "up"])
                .status();
            let log = std::fs::File::create(d.join("containerd.log")).unwrap();
            // containerd in the test's network namespace and a private mount namespace: its
            // mounts (rootfs, shm, the pods' netns files) never reach the host's table, and
            // every v1 hierarchy this host has is mounted there (containerd 1.6's cgroup v1
            // metrics fail, for runc too, when /proc/PID/cgroup names one that is not mounted,
            // as perf_event and net_cls are not on this VM once a podman container made them)
            let child = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{netns}"))
                .args([
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-ec",
                ])
                .arg(MOUNT_ALL_CGROUPS)
                .arg("sh")
                .arg(d.join("config.toml"))
                .arg(bins.join("containerd"))
                .env("STOCKADE_POLICY", policy.unwrap_or("none"))
                // the shim containerd starts is found on PATH: its own version's
                .env(
                    "PATH",
                    format!(
                        "{}:{}",
                        bins.display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                )
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("nsenter + containerd (util-linux, containerd: .ci/run installs them)");
            (Some(netns), Some(child), None)
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sock = d.join("containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        let channel = loop {
            let s = sock.clone();
            let connect = rt.block_on(async move {
                tonic::transport::Endpoint::try_from("http://[::]:50051")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                        let s = s.clone();
                        async move {
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                                tokio::net::UnixStream::connect(s).await?,
                            ))
                        }
                    }))
                    .await
            });
            match connect {
                Ok(c) => break c,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "containerd did not come up ({e}):\n{}",
                        std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        let mut c = Containerd {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            dir,
            netns,
            child,
            systemd,
            rt,
            version,
        };
        // the CRI service answers once its plugin is up
        loop {
            let v =
                c.rt.block_on(c.runtime.version(cri::VersionRequest::default()));
            match v {
                Ok(v) => {
                    eprintln!(
                        "containerd CRI up after {:.1} s: {} {}",
                        t0.elapsed().as_secs_f64(),
                        v.get_ref().runtime_name,
                        v.get_ref().runtime_version
                    );
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "CRI did not answer: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let t1 = Instant::now();
        let (bb, pause) = image_archives(c.dir.path());
        for tar in [&bb, &pause] {
            let o = c.ctr(&["-n", "k8s.io", "images", "import", tar.to_str().unwrap()]);
            assert!(o.status.success(), "ctr import: {}", stderr(&o));
        }
        eprintln!(
            "images made and imported in {:.1} s",
            t1.elapsed().as_secs_f64()
        );
        c
    }

    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        timeout()
            .arg(self.version.bin_dir().join("ctr"))
            .arg("-a")
            .arg(self.dir.path().join("containerd.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn exec(&mut self, id: &str, cmd: &[&str]) -> (i32, String, String) {
        let r = self
            .rt
            .block_on(self.runtime.exec_sync(cri::ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 30,
            }))
            .unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}"))
            .into_inner();
        (
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        )
    }

    /// Create and start a container `name` running `sh -c script` in `pod` with `seccomp`
    /// (and no_new_privs, as `stockade learn` records), wait for its exit, remove it: its exit
    /// code and CRI log.
    pub fn run_to_exit(
        &mut self,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        name: &str,
        script: &str,
        seccomp: cri::SecurityProfile,
    ) -> (i32, String) {
        let config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: "localhost/bb:1".into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: format!("{name}.log"),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    no_new_privs: true,
                    seccomp: Some(seccomp),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .rt
            .block_on(self.runtime.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            }))
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
            .into_inner()
            .container_id;
        self.rt
            .block_on(self.runtime.start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            }))
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            let st = self
                .rt
                .block_on(self.runtime.container_status(cri::ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                }))
                .unwrap()
                .into_inner()
                .status
                .unwrap();
            if st.state == cri::ContainerState::ContainerExited as i32 {
                break st.exit_code;
            }
            assert!(Instant::now() < deadline, "{name} did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        let dir = pod_config.log_directory.clone();
        let log = std::fs::read_to_string(Path::new(&dir).join(format!("{name}.log")))
            .unwrap_or_default();
        self.rt
            .block_on(
                self.runtime
                    .remove_container(cri::RemoveContainerRequest { container_id: id }),
            )
            .unwrap();
        (code, log)
    }

    /// The `pid` containerd reports in a verbose status.
    pub fn pid_of(info: &HashMap<String, String>) -> i32 {
        let v: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
        v["pid"].as_i64().unwrap() as i32
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "containerd log (last 40 lines, newest first):\n{}",
                tail.join("\n")
            );
        }
        // whatever a failed test left: pods and containers first (they hold mounts); bounded,
        // so a runtime that fails to stop them cannot hang the test
        let t = Duration::from_secs(15);
        let mut rtc = self.runtime.clone();
        let list = rtc.list_pod_sandbox(cri::ListPodSandboxRequest::default());
        if let Ok(Ok(pods)) = self
            .rt
            .block_on(async { tokio::time::timeout(t, list).await })
        {
            for p in &pods.get_ref().items {
                let id = p.id.clone();
                let stop = rtc.stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                });
                let _ = self
                    .rt
                    .block_on(async { tokio::time::timeout(t, stop).await });
                let rm =
                    rtc.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id });
                let _ = self
                    .rt
                    .block_on(async { tokio::time::timeout(t, rm).await });
            }
        }
        if let Some(s) = &self.systemd {
            let _ = s.sh("systemctl stop stockade-containerd");
        }
        if let Some(child) = &mut self.child {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
        for d in ["state", "root"] {
            let _ = Command::new("umount")
                .arg("-R")
                .arg(self.dir.path().join(d))
                .stderr(Stdio::null())
                .status();
        }
        if let Some(n) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

pub fn ns(pid: i32, which: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{which}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The v1 (or unified) cgroup file `file` of `pid`'s cgroup in `controller`.
pub fn cgroup_file(pid: i32, controller: &str, file: &str) -> String {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = own
        .lines()
        .find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, c, p) = (it.next()?, it.next()?, it.next()?);
            c.split(',').any(|x| x == controller).then(|| p.to_string())
        })
        .unwrap_or_else(|| panic!("{pid} has no {controller} cgroup: {own}"));
    let f = format!("/sys/fs/cgroup/{controller}{path}/{file}");
    std::fs::read_to_string(&f)
        .unwrap_or_else(|e| panic!("{f}: {e}"))
        .trim()
        .to_string()
}

/// A pod's sandbox config as the kubelet sends it: network and IPC of the pod, PID per
/// container, cgroup parent `parent`, and with `userns` = Some((uids, gids)) a user namespace
/// of mode POD with those maps (`hostUsers: false`).
pub fn pod_config(
    name: &str,
    logs: &Path,
    parent: &str,
    userns: Option<&cri::UserNamespace>,
) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.to_string_lossy().into_owned(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: parent.into(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(userns)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The kubelet's namespace options for a pod and each of its containers.
pub fn namespace_options(userns: Option<&cri::UserNamespace>) -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        userns_options: userns.cloned(),
        ..Default::default()
    }
}

/// The kubelet's user namespace for a `hostUsers: false` pod: container 0 = host `start`, 65536
/// ids, the same for groups.
pub fn userns_pod(start: u32) -> cri::UserNamespace {
    let m = vec![cri::IdMapping {
        host_id: start,
        container_id: 0,
        length: 65536,
    }];
    cri::UserNamespace {
        mode: cri::NamespaceMode::Pod as i32,
        uids: m.clone(),
        gids: m,
    }
}

/// What a pod left to check after its removal.
pub struct PodTrace {
    pub ids: Vec<String>,
    pub pids: Vec<i32>,
    pub netns: String,
}

impl Containerd {
    /// RunPodSandbox with the stockade handler: the pod's id, its pause pid and its network
    /// namespace path (in containerd's mount namespace).
    pub fn run_pod(&mut self, config: &cri::PodSandboxConfig) -> (String, i32, String) {
        let pod = self
            .rt
            .block_on(self.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: "stockade".into(),
            }))
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"))
            .into_inner()
            .pod_sandbox_id;
        let st = self
            .rt
            .block_on(
                self.runtime
                    .pod_sandbox_status(cri::PodSandboxStatusRequest {
                        pod_sandbox_id: pod.clone(),
                        verbose: true,
                    }),
            )
            .unwrap()
            .into_inner();
        let info: serde_json::Value = serde_json::from_str(&st.info["info"]).unwrap();
        let netns = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .and_then(|n| n["path"].as_str())
            .unwrap_or_else(|| panic!("no pod network namespace path: {info}"))
            .to_string();
        (pod, Self::pid_of(&st.info), netns)
    }

    /// CreateContainer + StartContainer: its id and pid.
    pub fn start_container(
        &mut self,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        config: cri::ContainerConfig,
    ) -> (String, i32) {
        let name = config.metadata.as_ref().unwrap().name.clone();
        let id = self
            .rt
            .block_on(self.runtime.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            }))
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
            .into_inner()
            .container_id;
        self.rt
            .block_on(self.runtime.start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            }))
            .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
        let cs = self
            .rt
            .block_on(self.runtime.container_status(cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: true,
            }))
            .unwrap()
            .into_inner();
        (id.clone(), Self::pid_of(&cs.info))
    }

    /// Stop and remove the pod's containers, then the pod, in the kubelet's order (the
    /// container that made the cgroup parent, the pause one, goes last and removes it).
    pub fn remove_pod(&mut self, pod: &str) {
        let list = self
            .rt
            .block_on(self.runtime.list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    pod_sandbox_id: pod.into(),
                    ..Default::default()
                }),
            }))
            .unwrap_or_else(|e| panic!("ListContainers: {e}"))
            .into_inner();
        for ctr in list.containers {
            self.rt
                .block_on(self.runtime.stop_container(cri::StopContainerRequest {
                    container_id: ctr.id.clone(),
                    timeout: 5,
                }))
                .unwrap_or_else(|e| panic!("StopContainer: {e}"));
            self.rt
                .block_on(self.runtime.remove_container(cri::RemoveContainerRequest {
                    container_id: ctr.id,
                }))
                .unwrap_or_else(|e| panic!("RemoveContainer: {e}"));
        }
        self.rt
            .block_on(self.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: pod.into(),
            }))
            .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
        self.rt
            .block_on(
                self.runtime
                    .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                        pod_sandbox_id: pod.into(),
                    }),
            )
            .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
    }

    /// Nothing of the removed pods is left: processes, cgroups under `parent`, stockade state,
    /// mounts in containerd's mount namespace, network namespaces.
    pub fn assert_pods_gone(&self, parent: &str, traces: &[PodTrace]) {
        for t in traces {
            for pid in &t.pids {
                assert!(
                    !Path::new(&format!("/proc/{pid}")).exists()
                        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                            .is_ok_and(|s| s.contains(") Z")),
                    "process {pid} still runs"
                );
            }
            let state_root = Path::new("/run/containerd/runc/k8s.io");
            let cd = self.child.as_ref().unwrap().id();
            let mi = std::fs::read_to_string(format!("/proc/{cd}/mountinfo")).unwrap();
            for id in &t.ids {
                assert!(
                    !state_root.join(id).exists(),
                    "stockade state left for {id}"
                );
                assert!(!mi.contains(id.as_str()), "mounts of {id} left: {mi}");
            }
            assert!(
                !Path::new(&format!("/proc/{cd}/root{}", t.netns)).exists(),
                "pod network namespace left: {}",
                t.netns
            );
        }
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let p = h.path().join(parent.trim_start_matches('/'));
            assert!(!p.exists(), "cgroup left: {}", p.display());
        }
    }
}

/// `/proc/PID/{uid_map,gid_map}` as (inside, outside, count) lines.
pub fn id_map(pid: i32, which: &str) -> Vec<(u32, u32, u32)> {
    std::fs::read_to_string(format!("/proc/{pid}/{which}"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<u32> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (f[0], f[1], f[2])
        })
        .collect()
}

/// The real uid of `pid` on the host (`Uid:` of /proc/PID/status).
pub fn host_uid(pid: i32) -> u32 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}
