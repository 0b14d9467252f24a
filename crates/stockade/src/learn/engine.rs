//! Learning under an engine: `create` of a container with the annotation
//! `org.stockade.learn=DIR` (Podman's `--annotation`, Docker's `--annotation`, Kubernetes pod
//! annotations passed by containerd), or of any container with the global `--learn-dir DIR`
//! (`DIR/ID`; for Docker's daemon.json `runtimeArgs`), records the container's whole life and
//! `delete` writes what was learned to DIR.
//!
//! runc-style `create` returns while the container runs, so the recorder must outlive it: its
//! maps and attached links are pinned in a bpf filesystem mounted in the container's state
//! directory (`learn.bpf`), named in `learn.json` before the mount exists. No process holds
//! anything. `delete` (also `delete --force` after the runtime was killed at any instant, and
//! the end of a foreground `run`) reads the maps, writes the profile and report, then removes
//! the pins and unmounts the filesystem, which frees every object. A failed `create` does the
//! same in its guard, writing nothing.
//!
//! While learning, the container's seccomp profile is replaced by the permissive one of
//! `learn`'s first run (every native syscall allowed; a syscall a filter denies never reaches
//! the tracepoint): the runtime says so in a warning and the report. The result is not verified
//! (an engine's container cannot be re-run here): the report and an `UNVERIFIED` file say
//! "recorded under an engine, not verified", and the capabilities written are those the
//! workload was granted when the kernel checked them (no trial).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::record::Recorder;
use crate::cgroups::Cgroup;
use crate::error::{config_err, Error, Result};

/// The annotation that makes `create` learn; its value is the output directory.
pub const ANNOTATION: &str = "org.stockade.learn";
/// In the state directory: what is being learned and where it goes (written first).
const RECORD: &str = "learn.json";
/// In the state directory: the bpf filesystem holding the pinned recorder.
const MOUNT: &str = "learn.bpf";
/// The ceiling the learned profile is cut to (stockade's default, for the container's caps).
const CEILING: &str = "default";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// What `learn.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    out: PathBuf,
    /// the container's bounding capabilities (the ceiling is computed for them)
    caps: Vec<String>,
    started: String,
}

/// Where a container's learning goes, decided before anything is made.
#[derive(Debug, Clone)]
pub struct Plan {
    pub out: PathBuf,
    caps: Vec<String>,
}

/// The annotation's DIR, else `--learn-dir`'s DIR/ID; checked (absolute, and creatable by
/// this runtime) but not created until `delete` writes it.
pub fn plan(
    spec: &Spec,
    id: &str,
    learn_dir: Option<&Path>,
    config_file: &Path,
) -> Result<Option<Plan>> {
    let field = format!("annotations.{ANNOTATION}");
    let (out, what) = match spec.annotations().as_ref().and_then(|a| a.get(ANNOTATION)) {
        Some(v) => {
            if v.is_empty() || !v.starts_with('/') {
                return Err(config_err(
                    config_file,
                    field,
                    format!(
                        "{v:?}: the directory to write the learned profile to, as an absolute path"
                    ),
                ));
            }
            (PathBuf::from(v), field)
        }
        None => match learn_dir {
            Some(d) => {
                if !d.is_absolute() {
                    return Err(Error::Other(format!(
                        "--learn-dir {}: an absolute path, please",
                        d.display()
                    )));
                }
                (d.join(id), "--learn-dir".to_string())
            }
            None => return Ok(None),
        },
    };
    // the nearest existing ancestor must be a directory we can write to
    let mut probe = out.as_path();
    loop {
        match std::fs::metadata(probe) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(learn_err(
                    config_file,
                    &what,
                    format!("{} is not a directory", probe.display()),
                ))
            }
            Err(_) => match probe.parent() {
                Some(p) => probe = p,
                None => break,
            },
        }
    }
    if nix::unistd::access(probe, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(learn_err(
            config_file,
            &what,
            format!("{} is not writable", probe.display()),
        ));
    }
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|b| {
            let mut v: Vec<String> = b
                .iter()
                .filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(str::to_string))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    Ok(Some(Plan { out, caps }))
}

fn learn_err(config_file: &Path, what: &str, msg: String) -> Error {
    if what.starts_with("annotations.") {
        config_err(config_file, what, msg)
    } else {
        Error::Other(format!("{what}: {msg}"))
    }
}

/// In `create`/`run`, after validation: the plan and the spec to run with, if learning (the
/// warning printed unless quiet). `learn_dir` is `--learn-dir`; `file` names the config in
/// errors.
pub fn prepare(
    spec: &Spec,
    id: &str,
    (learn_dir, file): (Option<&Path>, &Path),
    quiet: bool,
) -> Result<(Option<Plan>, Option<Spec>)> {
    let Some(p) = plan(spec, id, learn_dir, file)? else {
        return Ok((None, None));
    };
    let s = learning_spec(spec, &p)?;
    if !quiet {
        crate::diag::warn(&warning(id, &p));
    }
    Ok((Some(p), Some(s)))
}

/// Once the container's unified cgroup exists (nothing in it yet): `learn`'s run names it to
/// its recorder ([`super::record::hand_target_from_env`]); a learning container's recorder is
/// started and pinned ([`start`]).
pub fn begin(
    plan: Option<&Plan>,
    state_dir: &Path,
    cgroup: Option<&Cgroup>,
    unified: Option<&Path>,
) -> Result<Option<Session>> {
    super::record::hand_target_from_env(cgroup.and_then(|c| c.v2.as_deref()), unified)
        .map_err(|e| Error::Other(format!("learn: {e}")))?;
    plan.map(|p| start(p, state_dir, cgroup, unified))
        .transpose()
}

/// The spec the container runs under while it is learned: its seccomp profile replaced by the
/// permissive learning filter.
pub fn learning_spec(spec: &Spec, plan: &Plan) -> Result<Spec> {
    let ceiling = super::ceiling_filter(CEILING, &plan.caps)?;
    let filter = super::permissive(&super::profile::enosys_of(&ceiling));
    let mut v = serde_json::to_value(spec).map_err(|e| Error::Other(e.to_string()))?;
    v["linux"]["seccomp"] = filter;
    serde_json::from_value(v).map_err(|e| Error::Other(format!("learning spec: {e}")))
}

/// The warning `create` prints.
pub fn warning(id: &str, plan: &Plan) -> String {
    format!(
        "learning container {id} (its profile goes to {} at delete): it runs under a permissive seccomp filter (every native syscall allowed) instead of its own, while the kernel records its syscalls and capability checks; the result is recorded under an engine, not verified",
        plan.out.display()
    )
}

/// The pinned recorder of a container being created; removed again when dropped unless
/// [`Session::keep`] was called (the container is committed: `delete` takes it from there).
pub struct Session {
    state_dir: Option<PathBuf>,
}

/// Record `cgroup` (its unified directory, made already, the container not yet cloned) from
/// the moment it loads its seccomp filter, pinned in the state directory.
pub fn start(
    plan: &Plan,
    state_dir: &Path,
    cgroup: Option<&Cgroup>,
    unified: Option<&Path>,
) -> Result<Session> {
    let (Some(v2), Some(unified)) = (cgroup.and_then(|c| c.v2.as_deref()), unified) else {
        return Err(Error::Other(
            "learning needs root and the unified cgroup (cgroup v2) hierarchy: the recorder identifies the container by its cgroup v2".into(),
        ));
    };
    let io = |what: &str, e: std::io::Error| Error::Other(format!("learning: {what}: {e}"));
    let rec = Record {
        out: plan.out.clone(),
        caps: plan.caps.clone(),
        started: crate::diag::now_rfc3339(),
    };
    let tmp = state_dir.join(".learn.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&rec).expect("json"))
        .and_then(|_| std::fs::rename(&tmp, state_dir.join(RECORD)))
        .map_err(|e| io("write learn.json", e))?;
    let session = Session {
        state_dir: Some(state_dir.to_path_buf()),
    };
    crate::diag::mark("learn: recorded");
    let mount = state_dir.join(MOUNT);
    std::fs::create_dir(&mount).map_err(|e| io(&format!("mkdir {}", mount.display()), e))?;
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some("bpf"),
        &mount,
        Some("bpf"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| {
        io(
            &format!("mount a bpf filesystem on {}", mount.display()),
            e.into(),
        )
    })?;
    crate::diag::mark("learn: mounted");
    let level = v2
        .strip_prefix(unified)
        .map(|p| p.components().count())
        .unwrap_or(0) as u32;
    let id = std::fs::metadata(v2)
        .map_err(|e| io(&v2.display().to_string(), e))?
        .ino();
    let recorder = Recorder::start(id, level).map_err(|e| {
        Error::Other(format!(
            "learning needs eBPF raw tracepoints (sys_enter, cap_capable) as root: {e}"
        ))
    })?;
    recorder
        .pin(&mount)
        .map_err(|e| io("pin the recorder", e))?;
    crate::diag::mark("learn: pinned");
    Ok(session)
}

impl Session {
    /// The container is committed: its recording stays pinned for `delete`.
    pub fn keep(mut self) {
        self.state_dir = None;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(d) = &self.state_dir {
            release(d);
        }
    }
}

/// Unpin, unmount and forget the recording in `state_dir` (whatever of it exists).
fn release(state_dir: &Path) {
    let mount = state_dir.join(MOUNT);
    if is_bpffs(&mount) {
        for e in std::fs::read_dir(&mount).into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir(&mount);
    let _ = std::fs::remove_file(state_dir.join(RECORD));
}

fn is_bpffs(p: &Path) -> bool {
    nix::sys::statfs::statfs(p).is_ok_and(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
}

/// At `delete` (and the end of a foreground `run`): write what the container's recording in
/// `state_dir` learned, then remove the recording. Nothing to do for a container that was not
/// learning. The recording is removed even when writing fails (the error says why).
pub fn finish(state_dir: &Path, id: &str) -> Result<Option<PathBuf>> {
    let Ok(text) = std::fs::read(state_dir.join(RECORD)) else {
        return Ok(None);
    };
    let result = (|| -> Result<Option<PathBuf>> {
        let rec: Record = serde_json::from_slice(&text)
            .map_err(|e| Error::Other(format!("{}: {e}", state_dir.join(RECORD).display())))?;
        let mount = state_dir.join(MOUNT);
        if !is_bpffs(&mount) {
            // the runtime was killed before the recorder was pinned: nothing was recorded
            return Ok(None);
        }
        let r = Recorder::open_pinned(&mount)
            .map_err(|e| Error::Other(format!("learning: read the recording: {e}")))?;
        if !r
            .armed()
            .map_err(|e| Error::Other(format!("learning: {e}")))?
        {
            return Err(Error::Other(format!(
                "learning container {id}: nothing recorded (it never loaded its seccomp filter: it never started); nothing written to {}",
                rec.out.display()
            )));
        }
        let observed = r
            .observed()
            .map_err(|e| Error::Other(format!("learning: read the recording: {e}")))?;
        drop(r);
        write(&rec, observed)?;
        Ok(Some(rec.out))
    })();
    release(state_dir);
    result
}

fn write(rec: &Record, observed: super::record::Observed) -> Result<()> {
    use super::report::{reference_counts, write_outputs, Report};
    std::fs::create_dir_all(&rec.out)
        .map_err(|e| Error::Other(format!("learning: create {}: {e}", rec.out.display())))?;
    let needed: Vec<String> = observed.caps_granted.iter().cloned().collect();
    let ceiling = super::ceiling_filter(CEILING, &needed)?;
    let learned = super::profile::build(&observed, &ceiling);
    let trial = super::Trial::untried(
        &needed,
        "(granted when the kernel checked it, under the engine: not tried without it)",
    );
    let mut report = Report::new(
        observed.clone(),
        rec.caps.clone(),
        &trial,
        CEILING,
        reference_counts(&rec.caps),
    );
    report.engine = Some(rec.started.clone());
    write_outputs(&rec.out, &learned, &report, &needed)
}
