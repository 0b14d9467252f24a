//! Pods with `hostUsers: false` on containerd 2.x, driven as kubelet 1.36 drives them: the
//! pod's `userns_options` (mode POD, container 0 = host 65536*N, 65536 ids) on the sandbox and
//! on every container. The pause container makes the user namespace; each app container joins
//! it by path with the same maps; the hostPath volumes carry the pod's maps as per-mount
//! `uidMappings`/`gidMappings` and are idmapped, so what container root writes is owned by host
//! root on disk while the process runs as the pod's host range.

use super::common::*;
use super::harness::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

/// Two pods' ranges, as the kubelet hands them out (multiples of 65536), far above the ids of
/// this machine's users and stockade's own pool.
const RANGE_A: u32 = 65536 * 40;
const RANGE_B: u32 = 65536 * 41;

fn app(
    name: &str,
    script: &str,
    volume: &Path,
    userns: &cri::UserNamespace,
    security: cri::LinuxContainerSecurityContext,
) -> cri::ContainerConfig {
    cri::ContainerConfig {
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
        mounts: vec![cri::Mount {
            container_path: "/data".into(),
            host_path: volume.to_string_lossy().into_owned(),
            uid_mappings: userns.uids.clone(),
            gid_mappings: userns.gids.clone(),
            ..Default::default()
        }],
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(namespace_options(Some(userns))),
                ..security
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn wait_for_file(path: &Path) -> std::fs::Metadata {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(m) = std::fs::metadata(path) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn host_users_false_pods_run_in_their_own_ranges_with_idmapped_volumes() {
    let _one = super::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t_all = Instant::now();
    let mut c = Containerd::start(Version::V2, false);
    let logs = c.dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    // a cgroup parent per pod, as the kubelet's kubepods/pod<uid>
    let (parent_a, parent_b) = (
        format!("/{}", unique("stockade-cri-userns-a")),
        format!("/{}", unique("stockade-cri-userns-b")),
    );
    let (vol_a, vol_b) = (c.dir.path().join("vol-a"), c.dir.path().join("vol-b"));
    std::fs::create_dir(&vol_a).unwrap();
    std::fs::create_dir(&vol_b).unwrap();
    // pod B's user (1000) writes too: its directory is open to all, as an emptyDir is
    std::fs::set_permissions(&vol_b, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (ua, ub) = (userns_pod(RANGE_A), userns_pod(RANGE_B));

    // pod A: its app runs as container root and writes into its hostPath volume
    let conf_a = pod_config("userns-a", &logs, &parent_a, Some(&ua));
    let t0 = Instant::now();
    let (pod_a, pause_a, netns_a) = c.run_pod(&conf_a);
    let a = app(
        "root-app",
        "echo hello-from-userns; echo x > /data/by-root; trap 'exit 0' TERM; while :; do sleep 1; done",
        &vol_a,
        &ua,
        Default::default(),
    );
    let (ctr_a, pid_a) = c.start_container(&pod_a, &conf_a, a);
    eprintln!(
        "hostUsers: false pod started in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );

    // pod B: runAsUser 1000, read-only root, RuntimeDefault seccomp
    let conf_b = pod_config("userns-b", &logs, &parent_b, Some(&ub));
    let (pod_b, pause_b, netns_b) = c.run_pod(&conf_b);
    // a projected file (a service account token, as the kubelet binds it: one file, read-only)
    let token = c.dir.path().join("token");
    std::fs::write(&token, "tok-123\n").unwrap();
    let mut b = app(
        "user-app",
        "echo y > /data/by-1000; trap 'exit 0' TERM; while :; do sleep 1; done",
        &vol_b,
        &ub,
        cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 1000 }),
            // fsGroup, as the kubelet hands it down
            supplemental_groups: vec![2000],
            readonly_rootfs: true,
            no_new_privs: true,
            seccomp: Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    b.mounts.push(cri::Mount {
        container_path: "/var/run/secrets/token".into(),
        host_path: token.to_string_lossy().into_owned(),
        readonly: true,
        uid_mappings: ub.uids.clone(),
        gid_mappings: ub.gids.clone(),
        ..Default::default()
    });
    let (ctr_b, pid_b) = c.start_container(&pod_b, &conf_b, b);

    // from the host: one user namespace per pod, the pause container's, with the pod's maps
    for (pause, app, start) in [(pause_a, pid_a, RANGE_A), (pause_b, pid_b, RANGE_B)] {
        assert_eq!(
            ns(app, "user"),
            ns(pause, "user"),
            "app not in its pod's user namespace"
        );
        assert_ne!(ns(app, "user"), host_ns("user"));
        for m in ["uid_map", "gid_map"] {
            assert_eq!(id_map(app, m), [(0, start, 65536)], "{m} of {app}");
            assert_eq!(
                id_map(pause, m),
                [(0, start, 65536)],
                "{m} of pause {pause}"
            );
        }
        for n in ["net", "ipc", "uts"] {
            assert_eq!(ns(app, n), ns(pause, n), "{n} namespace not shared");
        }
    }
    assert_ne!(
        ns(pid_a, "user"),
        ns(pid_b, "user"),
        "two pods, one user namespace"
    );
    assert_eq!(host_uid(pid_a), RANGE_A, "pod A's root on the host");
    assert_eq!(
        host_uid(pid_b),
        RANGE_B + 1000,
        "pod B's uid 1000 on the host"
    );

    // the volumes are idmapped: on disk the files are owned by host root and host 1000
    let md = wait_for_file(&vol_a.join("by-root"));
    assert_eq!((md.uid(), md.gid()), (0, 0), "by-root on disk");
    let md = wait_for_file(&vol_b.join("by-1000"));
    assert_eq!(md.uid(), 1000, "by-1000 on disk");

    // exec, inside: the ids as the container sees them
    let (code, out, err) = c.exec(
        &ctr_a,
        &[
            "sh",
            "-c",
            "id -u; stat -c %u /data/by-root; cat /proc/self/uid_map",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["0", "0"], "{out}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["0", &RANGE_A.to_string(), "65536"]
    );
    let (_, out, _) = c.exec(&ctr_b, &["id", "-u"]);
    assert_eq!(out.trim(), "1000");
    // fsGroup's supplementary group, and the projected file readable, owned by container root
    // (host root, idmapped), read-only
    let (_, out, _) = c.exec(&ctr_b, &["id", "-G"]);
    assert!(out.split_whitespace().any(|g| g == "2000"), "groups: {out}");
    let (code, out, err) = c.exec(
        &ctr_b,
        &[
            "sh",
            "-c",
            "cat /var/run/secrets/token; stat -c %u /var/run/secrets/token",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "tok-123\n0\n");
    let (code, _, _) = c.exec(&ctr_b, &["sh", "-c", "echo x > /var/run/secrets/token"]);
    assert_ne!(code, 0, "the projected file is writable");
    let (_, status, _) = c.exec(&ctr_b, &["cat", "/proc/self/status"]);
    assert!(status.lines().any(|l| l == "Seccomp:\t2"), "{status}");
    assert!(status.lines().any(|l| l == "NoNewPrivs:\t1"), "{status}");
    let (code, _, err) = c.exec(&ctr_b, &["touch", "/written"]);
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    // container root may chown inside its range (CAP_CHOWN in the pod's namespace), and on
    // disk the owner is container 1234's host id: the idmapping goes both ways
    let (code, _, err) = c.exec(&ctr_a, &["chown", "1234", "/data/by-root"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::metadata(vol_a.join("by-root")).unwrap().uid(),
        1234
    );

    // logs and stats
    let log = std::fs::read_to_string(logs.join("root-app.log")).unwrap_or_default();
    assert!(log.contains(" stdout F hello-from-userns"), "{log:?}");
    let stats =
        c.rt.block_on(c.runtime.container_stats(cri::ContainerStatsRequest {
            container_id: ctr_a.clone(),
        }))
        .unwrap_or_else(|e| panic!("ContainerStats: {e}"))
        .into_inner()
        .stats
        .unwrap();
    assert!(stats.memory.unwrap().working_set_bytes.unwrap().value > 0);
    assert!(stats.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0);

    c.remove_pod(&pod_a);
    c.remove_pod(&pod_b);
    c.assert_pods_gone(
        &parent_a,
        &[PodTrace {
            ids: vec![pod_a, ctr_a],
            pids: vec![pause_a, pid_a],
            netns: netns_a,
        }],
    );
    c.assert_pods_gone(
        &parent_b,
        &[PodTrace {
            ids: vec![pod_b, ctr_b],
            pids: vec![pause_b, pid_b],
            netns: netns_b,
        }],
    );
    eprintln!(
        "userns pods test body: {:.1} s",
        t_all.elapsed().as_secs_f64()
    );
}

/// No `hostUsers` asked, stockade's hardening policy on: the pause container gets a user
/// namespace with an id range of its own (`userNamespace: auto`), and the app container, which
/// joins the pause container's IPC and UTS namespaces, joins the user namespace that owns them
/// (found with `NS_GET_USERNS`), with its maps; its rootfs is idmapped into it.
#[test]
fn under_the_policy_a_pods_containers_share_one_user_namespace() {
    let _one = super::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Containerd::start_with_policy(Version::V2, false, Some("default"));
    let logs = c.dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let parent = format!("/{}", unique("stockade-cri-polpod"));
    let conf = pod_config("polpod", &logs, &parent, None);
    let (pod, pause, netns) = c.run_pod(&conf);
    let config = cri::ContainerConfig {
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
            "echo hello-policy-pod; trap 'exit 0' TERM; while :; do sleep 1; done".into(),
        ],
        log_path: "app.log".into(),
        linux: Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(namespace_options(None)),
                run_as_user: Some(cri::Int64Value { value: 1000 }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (ctr, app) = c.start_container(&pod, &conf, config);

    assert_eq!(
        ns(app, "user"),
        ns(pause, "user"),
        "app not in the pod's user namespace"
    );
    assert_ne!(
        ns(pause, "user"),
        host_ns("user"),
        "the pod runs in the host's user namespace"
    );
    for n in ["net", "ipc", "uts"] {
        assert_eq!(ns(app, n), ns(pause, n), "{n} namespace not shared");
    }
    let map = id_map(pause, "uid_map");
    assert_eq!(id_map(app, "uid_map"), map);
    assert_eq!(id_map(app, "gid_map"), id_map(pause, "gid_map"));
    assert!(map.len() == 1 && map[0].0 == 0 && map[0].1 != 0, "{map:?}");
    assert_eq!(host_uid(app), map[0].1 + 1000, "runAsUser 1000 on the host");
    assert_eq!(host_uid(pause), map[0].1, "pause's root on the host");
    // the rootfs is idmapped: the image's root-owned files are root's inside
    let (code, out, err) = c.exec(&ctr, &["sh", "-c", "id -u; stat -c %u /bin/busybox"]);
    assert_eq!((code, out.as_str()), (0, "1000\n0\n"), "{err}");
    let state_root = Path::new("/run/containerd/runc/k8s.io");
    let o = cmd(state_root, &["policy", "explain", &ctr]);
    assert!(
        stdout(&o).contains("joined the user namespace that owns"),
        "policy explain: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let log = std::fs::read_to_string(logs.join("app.log")).unwrap_or_default();
    assert!(log.contains(" stdout F hello-policy-pod"), "{log:?}");

    c.remove_pod(&pod);
    c.assert_pods_gone(
        &parent,
        &[PodTrace {
            ids: vec![pod.clone(), ctr],
            pids: vec![pause, app],
            netns,
        }],
    );
    // the pause container's id slot is given back
    let slots: Vec<_> = std::fs::read_dir(state_root.join(".ids"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                .filter(|n| n != "lock")
                .collect()
        })
        .unwrap_or_default();
    assert!(slots.is_empty(), "id slots left: {slots:?}");
}
