//! bench/pods.sh's measurement: pod start (RunPodSandbox + CreateContainer + StartContainer of
//! one app container) through containerd 2.x's CRI, with stockade (its default hardening
//! policy, as installed: the pod gets a user namespace) and with runc, alternating in one run.
//! Ignored by `cargo test`: run with `--ignored`, in release.

use super::common::*;
use super::harness::*;

use std::time::Instant;

use k8s_cri::v1 as cri;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
#[ignore]
fn pod_start_stockade_vs_runc() {
    let _one = super::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let runs: usize = std::env::var("PODS_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let mut c = Containerd::start_with_policy(Version::V2, false, Some("default"));
    let logs = c.dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut times: [Vec<f64>; 2] = [vec![], vec![]];
    for i in 0..runs + 2 {
        for (k, handler) in ["stockade", "runc"].iter().enumerate() {
            let parent = format!("/{}", unique(&format!("stockade-bench-{handler}")));
            let mut conf = pod_config(&format!("b{i}-{handler}"), &logs, &parent, None);
            conf.metadata.as_mut().unwrap().attempt = i as u32;
            let app = cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                image: Some(cri::ImageSpec {
                    image: "localhost/bb:1".into(),
                    ..Default::default()
                }),
                // (PID 1 ends on StopContainer's SIGTERM only with a handler)
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "trap 'exit 0' TERM; while :; do sleep 1; done".into(),
                ],
                linux: Some(cri::LinuxContainerConfig {
                    security_context: Some(cri::LinuxContainerSecurityContext {
                        namespace_options: Some(namespace_options(None)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let t0 = Instant::now();
            let pod =
                c.rt.block_on(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(conf.clone()),
                    runtime_handler: handler.to_string(),
                }))
                .unwrap_or_else(|e| panic!("RunPodSandbox {handler}: {e}"))
                .into_inner()
                .pod_sandbox_id;
            c.start_container(&pod, &conf, app);
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            if i >= 2 {
                // (two warm-up rounds)
                times[k].push(ms);
            }
            c.remove_pod(&pod);
            // runc leaves the pod's cgroup parent (as under a kubelet, which removes it itself)
            remove_cgroup_everywhere(&parent);
        }
    }
    let (s, r) = (median(&mut times[0]), median(&mut times[1]));
    println!(
        "pod start (RunPodSandbox + CreateContainer + StartContainer), containerd {}, {runs} runs each, median: stockade {s:.1} ms, runc {r:.1} ms, stockade/runc {:.2}",
        String::from_utf8_lossy(
            &c.ctr(&["version"]).stdout
        )
        .lines()
        .find(|l| l.trim_start().starts_with("Version:"))
        .map(|l| l.trim().trim_start_matches("Version:").trim().to_string())
        .unwrap_or_default(),
        s / r
    );
}
