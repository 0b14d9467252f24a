//! The OCI lifecycle after `create`: start, state, kill, pause/resume, ps, events, delete — the
//! operations runc's CLI offers on a container that exists in `--root`.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};
use crate::namespaces;
use crate::state::EXEC_FIFO;
use crate::state::{pid_start_time, pid_stat, Locked, State, StateDir};

/// The runtime-spec status of a container, from its process and cgroup, not just the file.
pub fn status(dir: &StateDir, st: &State) -> &'static str {
    if st.pid == 0 && st.status == "creating" {
        return "creating";
    }
    let alive = st.pid > 0
        && pid_stat(st.pid).is_some_and(|(state, start)| start == st.pid_start && state != 'Z');
    if !alive {
        return "stopped";
    }
    if dir.dir.join(EXEC_FIFO).exists() {
        return "created";
    }
    if st.cgroup.as_ref().is_some_and(|c| c.is_frozen()) {
        return "paused";
    }
    "running"
}

pub fn load(root: &Path, id: &str) -> Result<(StateDir, State)> {
    let dir = StateDir::open(root, id)?;
    let st = dir.load()?;
    Ok((dir, st))
}

/// The state JSON of runtime-spec, with the live status.
pub fn state_json(root: &Path, id: &str) -> Result<serde_json::Value> {
    let (dir, st) = load(root, id)?;
    let status = status(&dir, &st);
    Ok(serde_json::json!({
        "ociVersion": st.oci_version,
        "id": st.id,
        "status": status,
        "pid": if status == "stopped" { 0 } else { st.pid },
        "bundle": st.bundle,
        "rootfs": st.bundle.join("rootfs"),
        "created": st.created,
        "annotations": st.annotations,
    }))
}

/// Release a created container: open its fifo, which unblocks the init's `execve`.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let (dir, mut st) = load(root, id)?;
    match status(&dir, &st) {
        "created" => {}
        s => {
            return Err(Error::Other(format!(
                "container {id} is {s}, not created: cannot start"
            )))
        }
    }
    let fifo = dir.dir.join(EXEC_FIFO);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .ctx(|| format!("open {}", fifo.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut b = [0u8; 1];
    loop {
        match f.read(&mut b) {
            Ok(1) => break,
            Ok(_) | Err(_) if Instant::now() < deadline => {
                if pid_start_time(st.pid) != st.pid_start {
                    return Err(Error::Other(format!(
                        "container {id}'s init died before it could start"
                    )));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            _ => {
                return Err(Error::Other(format!(
                    "container {id} did not take the start signal"
                )))
            }
        }
    }
    std::fs::remove_file(&fifo).ctx(|| format!("remove {}", fifo.display()))?;
    st.status = "running".into();
    dir.save(&st)?;
    if let Some(spec) = bundle_spec(root, &st) {
        crate::hooks::Plan::from_spec(&spec, id, &st.bundle).run(
            crate::hooks::Kind::Poststart,
            "running",
            st.pid,
        )?;
    }
    Ok(())
}

/// The container's config.json, for its hooks (None for sandboxes, which have no bundle file).
fn bundle_spec(root: &Path, st: &State) -> Option<oci_spec::runtime::Spec> {
    let f = crate::state::config_file(root, st);
    f.exists().then(|| crate::spec::load(&f).ok()).flatten()
}

/// Parse a signal as runc does: `KILL`, `SIGKILL` or `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::Other(format!("unknown signal {s}")));
    }
    let name = if s.starts_with("SIG") {
        s.to_string()
    } else {
        format!("SIG{s}")
    };
    name.parse::<Signal>()
        .map_err(|_| Error::Other(format!("unknown signal {s:?}")))
}

pub fn kill(root: &Path, id: &str, sig: Signal, all: bool) -> Result<()> {
    let (dir, st) = load(root, id)?;
    if status(&dir, &st) == "stopped" {
        // runc's words: containerd's shim takes "container not running" as already finished
        return Err(Error::Other(format!(
            "cannot signal {id}: container not running"
        )));
    }
    match (all, &st.cgroup) {
        (true, Some(cg)) => cg.signal_all(sig),
        _ => nix::sys::signal::kill(Pid::from_raw(st.pid), sig)
            .ctx(|| format!("kill {} {sig}", st.pid)),
    }
}

pub fn pause(root: &Path, id: &str, frozen: bool) -> Result<()> {
    let (dir, st) = load(root, id)?;
    let s = status(&dir, &st);
    if s == "stopped" || s == "created" {
        return Err(Error::Other(format!(
            "container {id} is {s}: cannot {}",
            if frozen { "pause" } else { "resume" }
        )));
    }
    let cg = cgroup_of(&st, id)?;
    cg.freeze(frozen)
}

/// The container's cgroup; one started unprivileged has none.
fn cgroup_of<'a>(st: &'a State, id: &str) -> Result<&'a crate::cgroups::Cgroup> {
    st.cgroup
        .as_ref()
        .ok_or_else(|| Error::Other(format!("container {id} has no cgroup (unprivileged)")))
}

/// `update`: check the new resources as `create` would, then write them to the container's
/// cgroup. Only what is given changes.
pub fn update(root: &Path, id: &str, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let (dir, st) = load(root, id)?;
    let s = status(&dir, &st);
    if s == "stopped" {
        return Err(Error::Other(format!(
            "container {id} is stopped: nothing to update"
        )));
    }
    crate::cgroups::validate(r)
        .map_err(|(field, msg)| Error::Other(format!("update: linux.resources.{field}: {msg}")))?;
    let cg = cgroup_of(&st, id)?;
    cg.update(r)
}

pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let (_, st) = load(root, id)?;
    Ok(st.cgroup.map(|c| c.pids()).unwrap_or_else(|| vec![st.pid]))
}

pub fn stats(root: &Path, id: &str) -> Result<serde_json::Value> {
    let (_, st) = load(root, id)?;
    let data = st.cgroup.map(|c| c.stats()).unwrap_or_default();
    Ok(serde_json::json!({"type": "stats", "id": id, "data": data}))
}

/// Remove a container: refuse a live one unless `force`, then kill what is left, remove its
/// cgroup in every hierarchy and its state. Works on containers whose init or runtime died.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    // Locked against a runtime still creating it; what a runtime killed before its first commit
    // left is removed by the lock itself. `--force` of an id that does not exist succeeds, as
    // with runc.
    let dir = match StateDir::lock(root, id, Duration::from_secs(10)) {
        Ok(Locked::Container(d)) => d,
        Ok(Locked::Removed) | Err(Error::NotFound(_)) if force => {
            crate::idpool::release_stale_for(root, id);
            return Ok(());
        }
        Ok(Locked::Removed) => return Err(Error::NotFound(id.to_string())),
        Err(e) => return Err(e),
    };
    let st = dir.load()?;
    let s = status(&dir, &st);
    // runtime-spec: deleting a container that is not stopped is an error (a "creating" state
    // with no process is what a runtime killed mid-setup leaves: nothing runs, clean it up).
    let idle = s == "stopped" || (s == "creating" && st.pid == 0);
    if !idle && !force {
        return Err(Error::Other(format!(
            "container {id} is {s}, not stopped: stop it first or use --force"
        )));
    }
    if let Some(cg) = &st.cgroup {
        if s == "paused" {
            let _ = cg.freeze(false);
        }
        if s != "stopped" {
            let _ = cg.signal_all(Signal::SIGKILL);
        }
        crate::diag::mark("delete: processes killed");
        cg.destroy()?;
        crate::diag::mark("delete: cgroup removed");
    } else if s != "stopped" {
        let _ = nix::sys::signal::kill(Pid::from_raw(st.pid), Signal::SIGKILL);
    }
    // linux.netDevices back to the runtime's network namespace (a pinned one's; a joined one's
    // only if the container never came to exist: no pid was ever committed)
    crate::net::netdev::delete(&dir.dir, st.pid != 0)?;
    // veth, rules, address and ports: what the container's net.json names
    crate::net::delete(root, &dir.dir)?;
    // a learning container's profile is written, its pinned recorder removed
    if let Err(e) = crate::learn::engine::finish(&dir.dir, id) {
        crate::diag::warn(&e.to_string());
    }
    let spec = bundle_spec(root, &st);
    if let Some(spec) = &spec {
        // before the state directory goes: a tmpfs root lives in it
        if namespaces::Plan::from_spec(spec).host_mount_ns() {
            crate::rootfs::release_host_mounts(&crate::spec::rootfs_dir(
                spec, &st.bundle, &dir.dir,
            ));
        }
    }
    dir.remove()?;
    crate::idpool::release_for(root, id, st.id_slot);
    crate::idpool::release_stale_for(root, id);
    if let Some(spec) = spec {
        crate::hooks::Plan::from_spec(&spec, id, &st.bundle).run(
            crate::hooks::Kind::Poststop,
            "stopped",
            0,
        )?;
    }
    Ok(())
}

/// Every container under `root`: (id, pid, status, bundle, created).
pub fn list(root: &Path) -> Result<Vec<serde_json::Value>> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if let Ok((dir, st)) = load(root, &id) {
            let s = status(&dir, &st);
            out.push(serde_json::json!({"id": id, "pid": if s == "stopped" { 0 } else { st.pid }, "status": s, "bundle": st.bundle, "created": st.created}));
        }
    }
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(out)
}

/// runtime-spec `features` output: what this runtime really supports.
pub fn features() -> serde_json::Value {
    let ns = [
        "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
    ];
    let caps: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    let mut caps = caps;
    caps.sort();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.3.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async", "dirsync",
            "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime",
            "nostrictatime", "bind", "rbind", "rro", "rrw", "idmap", "ridmap", "private", "rprivate", "shared", "rshared",
            "slave", "rslave", "unbindable", "runbindable"],
        "linux": {
            "namespaces": ns,
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false, "schemata": false, "monitoring": false},
            "memoryPolicy": {
                "modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            "netDevices": {"enabled": true},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {"org.opencontainers.runc.version": "stockade-compatible", "org.stockade.version": env!("CARGO_PKG_VERSION")}
    })
}
