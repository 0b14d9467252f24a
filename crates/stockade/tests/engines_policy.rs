//! The hardening policy under real engines: Docker (runtime "stockade-policy", `--policy
//! default`), Podman (`--runtime-flag policy=default`) and containerd's `ctr` hand stockade their
//! usual configs, and get a user namespace with an id range of its own (the overlay rootfs
//! rebuilt from idmapped layers, volumes idmapped), the capability ceiling, the default limits,
//! and a refusal for `--privileged` that the engine prints.

mod common;
use common::engines::*;
use common::*;
use std::os::unix::fs::MetadataExt;

fn uid_map_start(map: &str) -> u64 {
    let f: Vec<u64> = map
        .split_whitespace()
        .map(|x| x.parse().unwrap_or_else(|_| panic!("uid_map: {map:?}")))
        .collect();
    assert_eq!(f[0], 0, "{map}");
    assert_eq!(f[2], 65536, "{map}");
    f[1]
}

/// A host directory for `-v`, root-owned, as volumes are.
fn volume() -> tempfile::TempDir {
    let v = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        v.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    v
}

const WRITES: &str = "cat /proc/self/uid_map; echo x > /v/f; echo hi > /newfile; cat /newfile; \
                      echo y >> /etc/passwd && echo copied-up; cat /sys/fs/cgroup/memory/memory.limit_in_bytes";

fn check_writes(out: &std::process::Output, vol: &std::path::Path) {
    assert!(out.status.success(), "{}", stderr(out));
    let text = stdout(out);
    let l: Vec<&str> = text.lines().collect();
    assert!(uid_map_start(l[0]) >= 1_000_000_000, "{text}");
    assert_eq!(&l[1..], ["hi", "copied-up", "1073741824"], "{text}");
    // the volume's file is host root's, exactly as without a user namespace
    let md = std::fs::metadata(vol.join("f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0));
}

fn find(dir: &std::path::Path, name: &str, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_name() == name {
            out.push(p.clone());
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            find(&p, name, out);
        }
    }
}

fn slots_held(dir: &std::path::Path) -> usize {
    let mut ids = vec![];
    find(dir, ".ids", &mut ids);
    ids.iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten())
        .filter(|e| e.file_name() != "lock")
        .count()
}

#[test]
fn docker_containers_get_the_policys_floor() {
    let d = Dockerd::start();
    let vol = volume();
    let v = format!("{}:/v", vol.path().display());
    let out = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "stockade-policy",
        "-v",
        &v,
        "bb",
        "sh",
        "-c",
        WRITES,
    ]);
    check_writes(&out, vol.path());
    // the policy's warnings went to the runtime's log, not into the container's stderr
    let out = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "stockade-policy",
        "bb",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        (stdout(&out), stderr(&out)),
        ("out\n".into(), "err\n".into())
    );

    // --privileged: refused, and Docker prints why
    let out = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "stockade-policy",
        "--privileged",
        "bb",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("refused by policy rule privileged"),
        "{}",
        stderr(&out)
    );

    // --cap-add ALL is clamped to the ceiling, and the runtime's log says so; two live
    // containers hold disjoint id ranges
    let mut ids = vec![];
    let mut starts = vec![];
    for extra in [&["--cap-add", "ALL"][..], &[][..]] {
        let mut a = vec!["run", "-d", "--runtime", "stockade-policy"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["bb", "sleep", "60"]);
        let out = d.docker(&a);
        assert!(out.status.success(), "{}", stderr(&out));
        let id = stdout(&out).trim().to_string();
        let pid = stdout(&d.docker(&["inspect", "-f", "{{.State.Pid}}", &id]))
            .trim()
            .to_string();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let bnd = status
            .lines()
            .find(|l| l.starts_with("CapBnd"))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(|h| u64::from_str_radix(h, 16).unwrap())
            .unwrap();
        assert_eq!(bnd.count_ones(), 10, "{status}");
        starts.push(uid_map_start(
            &std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap(),
        ));
        ids.push(id);
    }
    assert_ne!(starts[0], starts[1]);
    let mut logs = vec![];
    find(&d.dir.path().join("exec"), "log.json", &mut logs);
    let log = logs
        .iter()
        .find(|p| p.to_string_lossy().contains(&ids[0]))
        .unwrap_or_else(|| panic!("no log.json for {} in {logs:?}", ids[0]));
    let text = std::fs::read_to_string(log).unwrap();
    assert!(
        text.contains("\"level\":\"warning\"") && text.contains("policy capabilityCeiling"),
        "{text}"
    );
    assert_eq!(slots_held(d.dir.path()), 2);
    // ... but none of it is the container's output: `docker logs` holds what it wrote
    let logs = d.docker(&["logs", &ids[0]]);
    assert!(logs.status.success(), "{}", stderr(&logs));
    assert_eq!(
        (stdout(&logs), stderr(&logs)),
        (String::new(), String::new())
    );
    // `audit` of `docker inspect` reads a container run with stockade as the policy raised it
    let inspect = d.docker(&["inspect", &ids[1]]);
    let file = d.dir.path().join("inspect-policy.json");
    std::fs::write(&file, &inspect.stdout).unwrap();
    let out = timeout()
        .arg(bin())
        .args(["--policy", "default", "audit", "--format", "json"])
        .arg(&file)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["reports"][0];
    let found: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    // no user namespace (SA014), no memory (SA025) or pids (SA027) limit, seccomp is Docker's
    for id in ["SA014", "SA025", "SA027"] {
        assert!(!found.contains(&id), "{id} in {found:?}: {r:#}");
    }
    assert!(
        r["notes"][0]
            .as_str()
            .unwrap()
            .contains("HostConfig.Runtime = \"stockade-policy\""),
        "{r:#}"
    );
    for id in &ids {
        assert!(d.docker(&["rm", "-f", id]).status.success());
    }
    assert_eq!(slots_held(d.dir.path()), 0, "ranges given back at delete");

    // a command that cannot run: runc's words, which Docker turns into 127 and 126
    for (runtime, cmd, code, words) in [
        (
            "stockade-policy",
            "/nonexistent",
            127,
            "stat /nonexistent: no such file or directory",
        ),
        (
            "stockade",
            "nosuchcmd",
            127,
            "executable file not found in $PATH",
        ),
        (
            "stockade-policy",
            "/bin",
            126,
            "exec: \"/bin\": permission denied",
        ),
    ] {
        let out = d.docker(&["run", "--rm", "--runtime", runtime, "bb", cmd]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{runtime} {cmd}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(words),
            "{runtime} {cmd}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn podman_containers_get_the_policys_floor() {
    let p = Podman::with_policy("default");
    let vol = volume();
    let v = format!("{}:/v", vol.path().display());
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(PODMAN_RUN);
    a.extend_from_slice(&["-v", &v, "localhost/bb", "sh", "-c", WRITES]);
    check_writes(&p.podman(&a), vol.path());
    let mut a = vec!["run", "--rm", "--privileged"];
    a.extend_from_slice(PODMAN_RUN);
    a.extend_from_slice(&["localhost/bb", "true"]);
    let out = p.podman(&a);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("refused by policy rule privileged"),
        "{}",
        stderr(&out)
    );
    // and without the policy, Podman's config runs as given (no user namespace)
    let plain = Podman::new();
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(PODMAN_RUN);
    a.extend_from_slice(&["localhost/bb", "cat", "/proc/self/uid_map"]);
    let out = plain.podman(&a);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("4294967295"), "{}", stdout(&out));
}

#[test]
fn containerd_containers_get_the_policys_floor() {
    let c = Containerd::with_policy("default");
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        bin(),
        "localhost/bb:latest",
        &unique("cp"),
        "sh",
        "-c",
        "cat /proc/self/uid_map; echo hi > /newfile; cat /newfile",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let l: Vec<&str> = text.lines().collect();
    assert!(uid_map_start(l[0]) >= 1_000_000_000, "{text}");
    assert_eq!(l[1], "hi");
}
