//! The Kubernetes node path without a kubelet: the test starts its own containerd (2.x from
//! Debian sid, fetched and cached by tests/containerd2.sh; Debian 12's 1.6 for the systemd test;
//! CRI plugin on; config, root, state and socket in a temporary directory) with a runtime
//! handler `stockade` (`io.containerd.runc.v2`, `BinaryName` = the built binary), and drives it
//! with a CRI client (`k8s-cri`'s gRPC bindings) as the kubelet would: RunPodSandbox with
//! `runtime_handler: stockade`, CreateContainer/StartContainer, ExecSync, ContainerStats,
//! UpdateContainerResources, the CRI log file, Stop/Remove container and pod.
//!
//! Images are made offline (podman import of a busybox rootfs; `ctr -n k8s.io images import`):
//! the pause image is busybox's `sleep`. Pods get their own network namespace from CNI's
//! bridge + host-local plugins, run by a containerd that lives in a network namespace the test
//! made, so the bridge and the veths never touch the machine's own network.
//!
//! Checked from outside and inside: the app container shares the pause container's network,
//! IPC and UTS namespaces (joined by path) and has its own mount and PID namespaces; its cgroup
//! limits are the PodSpec's and follow UpdateContainerResources; `seccompProfile:
//! RuntimeDefault` is enforced (`stockade probe`, bound in read-only); capabilities,
//! readOnlyRootFilesystem and runAsUser hold; nothing is left after removal.
//! It fails (never skips) when containerd or its CRI plugin cannot start.

mod bench;
#[path = "../common/mod.rs"]
mod common;
mod harness;
mod userns;

use common::systemd::Systemd;
use common::*;
use harness::{cgroup_file, ns, Containerd, Version};

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

const MIB: i64 = 1 << 20;

/// One at a time: the systemd test's container makes v1 hierarchies (perf_event, net_cls) that
/// a containerd started before them has not mounted, and its statistics then fail ("unexpected
/// metrics response"); the systemd test gives them back when it ends.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_pod_runs_through_containerds_cri_with_the_stockade_runtime_class() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t_all = Instant::now();
    let mut c = Containerd::start(Version::V2, false);
    let logs = c.dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let parent = format!("/{}", unique("stockade-cri"));
    let pod_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "web".into(),
            uid: "pod-uid-1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "cri-pod".into(),
        log_directory: logs.to_string_lossy().into_owned(),
        annotations: [("org.stockade.profile".to_string(), "web".to_string())].into(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: parent.clone(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Pod as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t0 = Instant::now();
    let pod =
        c.rt.block_on(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: "stockade".into(),
        }))
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"))
        .into_inner()
        .pod_sandbox_id;
    eprintln!("RunPodSandbox: {:.0} ms", t0.elapsed().as_secs_f64() * 1e3);
    let st =
        c.rt.block_on(c.runtime.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: true,
        }))
        .unwrap()
        .into_inner();
    let status = st.status.as_ref().unwrap();
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    let pod_ip = status.network.as_ref().unwrap().ip.clone();
    assert!(pod_ip.starts_with("10.88.77."), "pod IP {pod_ip:?}");
    let pause_pid = Containerd::pid_of(&st.info);
    let info: serde_json::Value = serde_json::from_str(&st.info["info"]).unwrap();
    // (1.6 says it at the top; 2.x in the sandbox's metadata)
    let handler = match c.version {
        Version::V1_6 => &info["runtimeHandler"],
        Version::V2 => &info["sandboxMetadata"]["Metadata"]["RuntimeHandler"],
    };
    assert_eq!(handler, "stockade", "{info}");
    let pod_netns = info["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "network")
        .and_then(|n| n["path"].as_str())
        .unwrap_or_else(|| panic!("no pod network namespace path: {info}"))
        .to_string();
    let cd = c.child.as_ref().unwrap().id();
    assert!(
        Path::new(&format!("/proc/{cd}/root{pod_netns}")).exists(),
        "{pod_netns}"
    );

    // the app: resources, a hardened security context, stockade's binary bound in as a probe
    let resources = cri::LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 256,
        memory_limit_in_bytes: 128 * MIB,
        ..Default::default()
    };
    let app_config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: "localhost/bb:1".into(),
            ..Default::default()
        }),
        command: vec![
            // PID 1 of its namespace takes SIGTERM only with a handler: StopContainer is quick
            "sh".into(),
            "-c".into(),
            "echo hello-from-cri; trap 'exit 0' TERM; while :; do sleep 1; done".into(),
        ],
        log_path: "app.log".into(),
        mounts: vec![cri::Mount {
            container_path: "/probe/stockade".into(),
            host_path: bin().into(),
            readonly: true,
            ..Default::default()
        }],
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(resources.clone()),
            security_context: Some(cri::LinuxContainerSecurityContext {
                capabilities: Some(cri::Capability {
                    add_capabilities: vec!["NET_BIND_SERVICE".into()],
                    drop_capabilities: vec!["ALL".into()],
                    ..Default::default()
                }),
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Pod as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                run_as_user: Some(cri::Int64Value { value: 1000 }),
                readonly_rootfs: true,
                no_new_privs: true,
                seccomp: Some(cri::SecurityProfile {
                    profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let ctr =
        c.rt.block_on(c.runtime.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(app_config),
            sandbox_config: Some(pod_config.clone()),
        }))
        .unwrap_or_else(|e| panic!("CreateContainer: {e}"))
        .into_inner()
        .container_id;
    c.rt.block_on(c.runtime.start_container(cri::StartContainerRequest {
        container_id: ctr.clone(),
    }))
    .unwrap_or_else(|e| panic!("StartContainer: {e}"));
    let cs =
        c.rt.block_on(c.runtime.container_status(cri::ContainerStatusRequest {
            container_id: ctr.clone(),
            verbose: true,
        }))
        .unwrap()
        .into_inner();
    assert_eq!(
        cs.status.as_ref().unwrap().state,
        cri::ContainerState::ContainerRunning as i32
    );
    let app_pid = Containerd::pid_of(&cs.info);

    // namespaces: net, ipc, uts the pause container's; mount and pid its own
    for n in ["net", "ipc", "uts"] {
        assert_eq!(ns(app_pid, n), ns(pause_pid, n), "{n} namespace not shared");
        assert_ne!(ns(app_pid, n), host_ns(n), "{n} namespace is the host's");
    }
    for n in ["mnt", "pid"] {
        assert_ne!(
            ns(app_pid, n),
            ns(pause_pid, n),
            "{n} namespace shared with pause"
        );
    }
    let (code, out, _) = c.exec(&ctr, &["hostname"]);
    assert_eq!((code, out.trim()), (0, "cri-pod"));
    let (_, out, _) = c.exec(&ctr, &["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(out.contains(&pod_ip), "{out}");

    // cgroup limits are the PodSpec's, in the pod's cgroup parent
    assert_eq!(
        cgroup_file(app_pid, "memory", "memory.limit_in_bytes"),
        (128 * MIB).to_string()
    );
    assert_eq!(cgroup_file(app_pid, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_file(app_pid, "cpu", "cpu.shares"), "256");
    let own = std::fs::read_to_string(format!("/proc/{app_pid}/cgroup")).unwrap();
    assert!(
        own.lines()
            .any(|l| l.ends_with(&format!(":{parent}/{ctr}"))),
        "{own}"
    );

    // security context: user, capabilities, read-only root, no_new_privs, RuntimeDefault seccomp
    let (_, out, _) = c.exec(&ctr, &["id", "-u"]);
    assert_eq!(out.trim(), "1000");
    let (_, status, _) = c.exec(&ctr, &["cat", "/proc/self/status"]);
    let field = |f: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(f))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    // ALL dropped, NET_BIND_SERVICE (bit 10) added: bounding set; uid 1000 has no effective caps
    assert_eq!(field("CapBnd:"), "0000000000000400", "{status}");
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2");
    let (code, _, err) = c.exec(&ctr, &["touch", "/written"]);
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    let (_, probe, _) = c.exec(&ctr, &["/probe/stockade", "probe", "--json"]);
    let probe: Vec<serde_json::Value> = serde_json::from_str(&probe).unwrap();
    let outcome = |name: &str| {
        probe
            .iter()
            .find(|p| p["section"] == "seccomp" && p["name"] == name)
            .map(|p| p["outcome"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    for call in [
        "filter mode",
        "add_key",
        "kcmp",
        "open_by_handle_at",
        "mount",
        "bpf",
    ] {
        assert_eq!(outcome(call), "blocked", "{call} under RuntimeDefault");
    }

    // the pod's org.stockade.* annotations reach the runtime (containerd's pod_annotations)
    let st = std::process::Command::new(bin())
        .args(["--root", "/run/containerd/runc/k8s.io", "state", &ctr])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["annotations"]["org.stockade.profile"], "web", "{st}");

    // seccompProfile Localhost: a profile `stockade learn` made for a scenario; the scenario
    // passes under it, a call outside it is denied
    let learned = c.dir.path().join("learned");
    let scenario = "echo learned-ok; id -u";
    let o = cmd(
        &c.dir.path().join("learn-root"),
        &[
            "learn",
            "--out",
            learned.to_str().unwrap(),
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            scenario,
        ],
    );
    assert!(o.status.success(), "stockade learn: {}", stderr(&o));
    let profile = learned.join("seccomp.json");
    for (name, script, want) in [
        ("learned", scenario.to_string(), 0),
        ("outside", format!("{scenario}; mkdir /tmp/d"), 1),
    ] {
        let (code, log) = c.run_to_exit(
            &pod,
            &pod_config,
            name,
            &script,
            cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::Localhost as i32,
                localhost_ref: profile.to_string_lossy().into_owned(),
            },
        );
        // (outside it, `id` is no longer the last command: sh forks, which the scenario never did)
        assert_eq!(
            code == 0,
            want == 0,
            "{name} under the learned profile: {log}"
        );
        assert!(log.contains(" stdout F learned-ok"), "{log}");
        if want != 0 {
            assert!(log.contains("Operation not permitted"), "{log}");
        }
    }

    // logs: the CRI format in the pod's log directory
    let log = logs.join("app.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.contains("hello-from-cri") || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let line = text
        .lines()
        .find(|l| l.contains("hello-from-cri"))
        .unwrap_or_else(|| panic!("{text:?}"));
    let parts: Vec<&str> = line.splitn(4, ' ').collect();
    assert_eq!(&parts[1..], ["stdout", "F", "hello-from-cri"], "{line}");

    // stats and a resource update
    let stats =
        c.rt.block_on(c.runtime.container_stats(cri::ContainerStatsRequest {
            container_id: ctr.clone(),
        }))
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let mem = stats.memory.unwrap().working_set_bytes.unwrap().value;
    assert!(mem > 0 && mem < 128 * MIB as u64, "working set {mem}");
    assert!(stats.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0);
    c.rt.block_on(
        c.runtime
            .update_container_resources(cri::UpdateContainerResourcesRequest {
                container_id: ctr.clone(),
                linux: Some(cri::LinuxContainerResources {
                    memory_limit_in_bytes: 256 * MIB,
                    cpu_quota: 20_000,
                    ..resources
                }),
                ..Default::default()
            }),
    )
    .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}"));
    assert_eq!(
        cgroup_file(app_pid, "memory", "memory.limit_in_bytes"),
        (256 * MIB).to_string()
    );
    assert_eq!(cgroup_file(app_pid, "cpu", "cpu.cfs_quota_us"), "20000");

    // stop and remove: nothing left
    let t0 = Instant::now();
    c.rt.block_on(c.runtime.stop_container(cri::StopContainerRequest {
        container_id: ctr.clone(),
        timeout: 5,
    }))
    .unwrap();
    c.rt.block_on(c.runtime.remove_container(cri::RemoveContainerRequest {
        container_id: ctr.clone(),
    }))
    .unwrap();
    c.rt.block_on(c.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap();
    c.rt.block_on(c.runtime.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap();
    eprintln!("stop + remove: {:.0} ms", t0.elapsed().as_secs_f64() * 1e3);
    for pid in [app_pid, pause_pid] {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z")),
            "process {pid} still runs"
        );
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = h.path().join(parent.trim_start_matches('/'));
        assert!(!p.exists(), "cgroup left: {}", p.display());
    }
    let state_root = Path::new("/run/containerd/runc/k8s.io");
    for id in [&pod, &ctr] {
        assert!(
            !state_root.join(id).exists(),
            "stockade state left for {id}"
        );
    }
    // containerd's own mount namespace holds the containers' mounts and the pods' netns files
    let cd = c.child.as_ref().unwrap().id();
    let mi = std::fs::read_to_string(format!("/proc/{cd}/mountinfo")).unwrap();
    assert!(
        !mi.contains(&pod) && !mi.contains(&ctr),
        "mounts left: {mi}"
    );
    assert!(
        !Path::new(&format!("/proc/{cd}/root{pod_netns}")).exists(),
        "pod network namespace left: {pod_netns}"
    );
    eprintln!("CRI test body: {:.1} s", t_all.elapsed().as_secs_f64());
}

/// The same path with `SystemdCgroup = true`, as kubeadm sets up nodes: containerd runs as a
/// service of a real systemd (booted for the test, see tests/systemd.rs), the runc shim calls
/// stockade with `--systemd-cgroup` and `slice:cri-containerd:ID` paths in the pod's slice.
#[test]
fn a_pod_runs_with_the_systemd_cgroup_driver_under_a_real_systemd() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t_all = Instant::now();
    let mut c = Containerd::start(Version::V1_6, true);
    let s = c.systemd.as_ref().unwrap();
    assert_eq!(stdout(&s.sh("cat /proc/1/comm")).trim(), "systemd");
    let logs = c.dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    // kubelet's name for a BestEffort pod's slice (its uid's dashes become underscores)
    let slice = "kubepods-besteffort-podpod_uid_2.slice";
    let pod_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "web".into(),
            uid: "pod-uid-2".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "sysd-pod".into(),
        log_directory: logs.to_string_lossy().into_owned(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: slice.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod =
        c.rt.block_on(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: "stockade".into(),
        }))
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"))
        .into_inner()
        .pod_sandbox_id;
    let resources = cri::LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 256,
        memory_limit_in_bytes: 128 * MIB,
        ..Default::default()
    };
    let app_config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: "localhost/bb:1".into(),
            ..Default::default()
        }),
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo hello-from-systemd-pod; trap 'exit 0' TERM; while :; do sleep 1; done".into(),
        ],
        log_path: "app.log".into(),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(resources.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let ctr =
        c.rt.block_on(c.runtime.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(app_config),
            sandbox_config: Some(pod_config),
        }))
        .unwrap_or_else(|e| panic!("CreateContainer: {e}"))
        .into_inner()
        .container_id;
    c.rt.block_on(c.runtime.start_container(cri::StartContainerRequest {
        container_id: ctr.clone(),
    }))
    .unwrap_or_else(|e| panic!("StartContainer: {e}"));
    let s = c.systemd.as_ref().unwrap();
    let (pod_unit, app_unit) = (
        format!("cri-containerd-{pod}.scope"),
        format!("cri-containerd-{ctr}.scope"),
    );
    for u in [&pod_unit, &app_unit] {
        assert_eq!(s.show(u, "ActiveState"), "active", "{u}");
        assert_eq!(s.show(u, "Slice"), slice, "{u}");
        assert_eq!(s.show(u, "Delegate"), "yes", "{u}");
    }
    let cg = s.show(&app_unit, "ControlGroup");
    assert!(
        cg.ends_with(&format!(
            "/kubepods.slice/kubepods-besteffort.slice/{slice}/{app_unit}"
        )),
        "{cg}"
    );
    assert_eq!(s.show(&app_unit, "MemoryMax"), (128 * MIB).to_string());
    assert_eq!(s.show(&app_unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(s.show(&app_unit, "CPUShares"), "256");
    // the limits are in force in the unit's v1 directories, and the app is in them
    let mem = |s: &Systemd| {
        let o = s.sh(&format!(
            "d=$(find /sys/fs/cgroup/memory -type d -name {app_unit} | head -1); cat $d/memory.limit_in_bytes $d/cgroup.procs"
        ));
        stdout(&o)
    };
    let m = mem(s);
    let mut lines = m.lines();
    assert_eq!(lines.next(), Some((128 * MIB).to_string().as_str()), "{m}");
    assert!(
        lines.next().is_some(),
        "no process in the unit's memory cgroup: {m}"
    );
    let (code, out, _) = c.exec(&ctr, &["sh", "-c", "hostname; cat /proc/self/cgroup"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("sysd-pod\n"), "{out}");
    // containerd asks no cgroup namespace on cgroup v1; the policy adds one (hostNamespaces
    // cgroup: raise), so the app sees its unit as its root (its membership is checked above)
    assert!(out.lines().any(|l| l == "0::/"), "{out}");

    c.rt.block_on(
        c.runtime
            .update_container_resources(cri::UpdateContainerResourcesRequest {
                container_id: ctr.clone(),
                linux: Some(cri::LinuxContainerResources {
                    memory_limit_in_bytes: 256 * MIB,
                    ..resources
                }),
                ..Default::default()
            }),
    )
    .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}"));
    let s = c.systemd.as_ref().unwrap();
    assert_eq!(s.show(&app_unit, "MemoryMax"), (256 * MIB).to_string());
    assert!(mem(s).starts_with(&(256 * MIB).to_string()));
    let stats =
        c.rt.block_on(c.runtime.container_stats(cri::ContainerStatsRequest {
            container_id: ctr.clone(),
        }))
        .unwrap_or_else(|e| panic!("ContainerStats: {e}"))
        .into_inner()
        .stats
        .unwrap();
    assert!(stats.memory.unwrap().working_set_bytes.unwrap().value > 0);
    let log = std::fs::read_to_string(logs.join("app.log")).unwrap_or_default();
    assert!(log.contains(" stdout F hello-from-systemd-pod"), "{log:?}");

    c.rt.block_on(c.runtime.stop_container(cri::StopContainerRequest {
        container_id: ctr.clone(),
        timeout: 5,
    }))
    .unwrap();
    c.rt.block_on(c.runtime.remove_container(cri::RemoveContainerRequest {
        container_id: ctr.clone(),
    }))
    .unwrap();
    c.rt.block_on(c.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap();
    c.rt.block_on(c.runtime.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    }))
    .unwrap();
    let s = c.systemd.as_ref().unwrap();
    for u in [&pod_unit, &app_unit] {
        assert_eq!(s.show(u, "LoadState"), "not-found", "{u} left");
    }
    let o = s.sh(
        "own=$(sed -n 's|^0::||p' /proc/1/cgroup); own=${own%/init.scope}; \
         find /sys/fs/cgroup -name 'cri-containerd-*' | while read p; do case $p in */libpod-*) case $p in *$own/*) echo $p;; esac;; *) echo $p;; esac; done; \
         ls /run/containerd/runc/k8s.io 2>/dev/null",
    );
    assert_eq!(stdout(&o).trim(), "", "left after removal");
    eprintln!(
        "CRI with SystemdCgroup = true, boot included: {:.1} s",
        t_all.elapsed().as_secs_f64()
    );
}
