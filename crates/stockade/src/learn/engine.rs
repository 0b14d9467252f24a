//! Learning under an engine: `create` of a container with the annotation
//! `org.stockade.learn=DIR` (Podman's `--annotation`, Docker's `--annotation`, Kubernetes pod
//! annotations passed by containerd), or of any container with the global `--learn-dir DIR`
//! (`DIR/ID`; for Docker's daemon.json `runtimeArgs`), records the container's whole life and
//! `delete` writes what was learned to DIR.
//!
//! A container may be learned for days, so nothing of it may cost the rest of the machine:
//! - **Syscalls through the seccomp agent** (`agent`, complain mode): the container runs under
//!   a filter that sends every call its capability ceiling allows to stockade's agent, which
//!   lets it run and writes each distinct call (with the arguments `learn` constrains) once to
//!   `learn.events` in the state directory. Only the container's own calls pay (2.5 µs each
//!   with this kernel's synchronous wake-up); a program on the `sys_enter` tracepoint, as
//!   `stockade learn`'s short runs use, would send every thread of the machine down the traced
//!   syscall path for as long as the container lives. Calls the ceiling denies stay denied
//!   (ENOSYS where a library would fall back).
//! - **Capabilities and process creation through the recorder** ([`Recorder::start_caps`]):
//!   programs on `cap_capable`, `task_newtask` and `sched_process_exec` (not syscall
//!   tracepoints), counting the cgroup's checks and forks from its first `execve`. `clone`
//!   without namespace flags, `fork` and `vfork` run without the agent: a notified call waits
//!   interruptibly until the agent has read it, and a signal in that window (a shell's SIGCHLD)
//!   made a fork fail with EINTR in one pipeline of ten. Its maps and links are pinned in a bpf filesystem mounted
//!   in the container's state directory (`learn.bpf`), named in `learn.json` before the mount
//!   exists; no process holds anything but the agent, which leaves with the container.
//!
//! `delete` (also `delete --force` after the runtime was killed at any instant, and the end of
//! a foreground `run`) reads the events and the maps, writes the profile and report, then
//! removes the pins and unmounts the filesystem, which frees every object. A failed `create`
//! does the same in its guard, writing nothing. The runtime says in a warning and the report
//! that the container ran under the learning filter instead of its own. The result is not
//! verified (an engine's container cannot be re-run here): the report and an `UNVERIFIED`
//! file say "recorded under an engine, not verified", and the capabilities written are those
//! the workload was granted when the kernel checked them (no trial). `exec`'d processes run
//! under the container's own profile, unrecorded.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::record::Recorder;
use crate::cgroups::Cgroup;
use crate::error::{config_err, Error, Result};

/// The annotation that makes `create` learn; its value is the output directory.
pub const ANNOTATION: &str = "org.stockade.learn";
/// The scenario that verifies the learned profile at `delete` (`stockade learn verify`): a shell
/// command run on the host side in the workload's network namespace.
pub const ANNOTATION_TEST: &str = "org.stockade.learn.test";
/// With the test: tcp:PORT, when the workload is ready for it.
pub const ANNOTATION_READY: &str = "org.stockade.learn.ready";
/// In the state directory: what is being learned and where it goes (written first).
const RECORD: &str = "learn.json";
/// In the state directory: the bpf filesystem holding the pinned recorder.
const MOUNT: &str = "learn.bpf";
/// In the state directory: the agent's events (the container's syscalls).
const EVENTS: &str = "learn.events";
/// The ceiling the learned profile is cut to (stockade's default, for the container's caps).
const CEILING: &str = "default";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET,TIME}
const NS_BITS: u64 = 0x7e02_0080;

/// What `learn.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    out: PathBuf,
    /// `org.stockade.learn.test` and `.ready`: verified at delete
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    ready: Option<String>,
    /// the container's bounding capabilities (the ceiling is computed for them)
    caps: Vec<String>,
    started: String,
}

/// Where a container's learning goes, decided before anything is made.
#[derive(Debug, Clone)]
pub struct Plan {
    pub out: PathBuf,
    caps: Vec<String>,
    test: Option<String>,
    ready: Option<String>,
    /// `learn.events` in the container's state directory (made later)
    events: PathBuf,
}

/// The annotation's DIR, else `--learn-dir`'s DIR/ID; checked (absolute, and creatable by
/// this runtime) but not created until `delete` writes it.
pub fn plan(
    spec: &Spec,
    (root, id): (&Path, &str),
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
    if crate::seccomp::Watch::from_spec(spec).is_ok_and(|w| w.is_some()) {
        return Err(learn_err(
            config_file,
            &what,
            format!(
                "learning and {} are one at a time: the learning run is its own complain mode",
                crate::seccomp::ANNOTATION_MODE
            ),
        ));
    }
    let events = std::path::absolute(root.join(id).join(EVENTS))
        .map_err(|e| Error::Other(format!("--root {}: {e}", root.display())))?;
    let ann = |k: &str| spec.annotations().as_ref().and_then(|a| a.get(k)).cloned();
    let (test, ready) = (ann(ANNOTATION_TEST), ann(ANNOTATION_READY));
    if test.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(config_err(
            config_file,
            format!("annotations.{ANNOTATION_TEST}"),
            "empty: a shell command, the scenario that verifies the profile",
        ));
    }
    if let Some(r) = &ready {
        if test.is_none()
            || r.strip_prefix("tcp:")
                .and_then(|p| p.parse::<u16>().ok())
                .is_none()
        {
            return Err(config_err(
                config_file,
                format!("annotations.{ANNOTATION_READY}"),
                format!("{r:?}: tcp:PORT, with {ANNOTATION_TEST}"),
            ));
        }
    }
    Ok(Some(Plan {
        out,
        caps,
        test,
        ready,
        events,
    }))
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
    (root, id): (&Path, &str),
    (learn_dir, file): (Option<&Path>, &Path),
    quiet: bool,
) -> Result<(Option<Plan>, Option<Spec>)> {
    let Some(p) = plan(spec, (root, id), learn_dir, file)? else {
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

/// The spec the container runs under while it is learned: every call its ceiling allows sent
/// to the agent in complain mode, which writes it to `learn.events` (the ceiling's ENOSYS
/// answers kept).
pub fn learning_spec(spec: &Spec, plan: &Plan) -> Result<Spec> {
    let ceiling = super::ceiling_filter(CEILING, &plan.caps)?;
    let mut filter = super::permissive(&super::profile::enosys_of(&ceiling));
    // complain mode turns this into SCMP_ACT_NOTIFY (see seccomp::apply)
    filter["defaultAction"] = serde_json::json!("SCMP_ACT_ERRNO");
    // making a process or thread (no namespace) runs without the agent: the recorder's
    // task_newtask program notes it (a notified fork fails with EINTR when a signal comes
    // before the agent reads it)
    let no_ns = serde_json::json!([{"index": 0, "value": NS_BITS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]);
    if let Some(rules) = filter["syscalls"].as_array_mut() {
        rules.push(serde_json::json!({"names": ["fork", "vfork"], "action": "SCMP_ACT_ALLOW"}));
        rules.push(
            serde_json::json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": no_ns}),
        );
    }
    let mut v = serde_json::to_value(spec).map_err(|e| Error::Other(e.to_string()))?;
    v["linux"]["seccomp"] = filter;
    let ann = &mut v["annotations"];
    if !ann.is_object() {
        *ann = serde_json::json!({});
    }
    ann[crate::seccomp::ANNOTATION_MODE] = serde_json::json!("complain");
    ann[crate::seccomp::ANNOTATION_EVENTS] = serde_json::json!(plan.events);
    serde_json::from_value(v).map_err(|e| Error::Other(format!("learning spec: {e}")))
}

/// The warning `create` prints.
pub fn warning(id: &str, plan: &Plan) -> String {
    format!(
        "learning container {id} (its profile goes to {} at delete): it runs under the learning filter instead of its own profile (every call its capabilities' ceiling allows runs, and goes once to stockade's seccomp agent, which writes it down), while the kernel records its capability checks; the result is recorded under an engine, not verified",
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
        test: plan.test.clone(),
        ready: plan.ready.clone(),
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
    let recorder = Recorder::start_caps(id, level).map_err(|e| {
        Error::Other(format!(
            "learning needs eBPF raw tracepoints (cap_capable, sched_process_exec) as root: {e}"
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
                "learning container {id}: nothing recorded (it never ran its program: it never started); nothing written to {}",
                rec.out.display()
            )));
        }
        let mut observed = r
            .observed()
            .map_err(|e| Error::Other(format!("learning: read the recording: {e}")))?;
        drop(r);
        let events = state_dir.join(EVENTS);
        let events = if events.exists() {
            super::events::read(&events, "learning: ")?
        } else {
            vec![]
        };
        let calls = super::events::observed(&events);
        observed.merge(&calls);
        write(&rec, observed)?;
        Ok(Some(rec.out.clone()))
    })();
    release(state_dir);
    if let (Ok(Some(_)), Ok(rec)) = (&result, serde_json::from_slice::<Record>(&text)) {
        verify(&rec, state_dir);
    }
    result
}

/// With `org.stockade.learn.test`: `stockade learn verify OUT --bundle BUNDLE --test CMD`
/// (a process of its own: the front end's scenario runner), under the same state root; what it
/// says of a failure goes to the runtime's warnings, and the report says it either way.
fn verify(rec: &Record, state_dir: &Path) {
    let Some(test) = &rec.test else { return };
    let st: serde_json::Value = std::fs::read(state_dir.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default();
    let (Some(bundle), Some(root)) = (st["bundle"].as_str(), state_dir.parent()) else {
        return;
    };
    let mut c = std::process::Command::new("/proc/self/exe");
    c.arg("--root")
        .arg(root)
        .args(["--policy", "none", "learn", "verify"]);
    c.arg(&rec.out).args(["--bundle", bundle, "--test", test]);
    if let Some(r) = &rec.ready {
        c.args(["--ready", r]);
    }
    crate::diag::mark("learn: verifying");
    match c.stdin(std::process::Stdio::null()).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => crate::diag::warn(&format!(
            "learning: the profile in {} failed its verification (report.txt says why): {}",
            rec.out.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => crate::diag::warn(&format!("learning: run the verification: {e}")),
    }
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
