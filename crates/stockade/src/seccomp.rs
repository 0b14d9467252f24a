//! Seed §4, seccomp: the seam between the engine and the `stockade-seccomp` crate. The filter is
//! compiled by the runtime before the child exists (so a bad profile fails early and leaves
//! nothing behind) and loaded by the child as its last step before `execve`.
//!
//! A profile may run in complain or enforce mode ([`Watch`], the annotations
//! `org.stockade.seccomp.mode` and `.events`): its default action becomes `SCMP_ACT_NOTIFY`, and
//! stockade's agent (`agent`) answers and logs the calls outside it.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use stockade_seccomp::{Context, Filter, Profile};

use crate::error::{config_err, Context as _, Error, Result};

/// Bounding capabilities of the spec's process, as names (`CAP_SYS_ADMIN`).
pub fn bounding_names(spec: &Spec) -> Vec<String> {
    spec.process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|b| b.iter().map(crate::capabilities::name).collect())
        .unwrap_or_default()
}

/// A container's filter, read once from its spec: the profile, its complain/enforce mode, the
/// bounding capabilities its conditions are resolved for, and the `--ready` phase switch's
/// annotations (the readiness condition, the whole-life profile's file).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub profile: Option<oci_spec::runtime::LinuxSeccomp>,
    pub watch: Option<Watch>,
    pub caps: Vec<String>,
    /// (`org.stockade.seccomp.ready`, `org.stockade.seccomp.startup`), both given.
    pub ready: Option<(String, String)>,
    /// The compiled filter, found in the cache when the plan was made (see [`cached`]).
    pub cached: Option<Filter>,
}

impl Plan {
    /// The spec's filter; the mode annotations checked (see [`watch`]), not the events file.
    pub fn from_spec(spec: &Spec, file: &Path) -> Result<Plan> {
        let ann = spec.annotations().as_ref();
        let get = |k: &str| ann.and_then(|a| a.get(k)).cloned();
        Ok(Plan {
            profile: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
            watch: watch(spec, file, false)?,
            caps: bounding_names(spec),
            ready: get(ANNOTATION_READY).zip(get(ANNOTATION_STARTUP)),
            cached: None,
        })
    }
}

/// The spec's filter from the cache under `root`, for a profile compiled as written (no
/// complain/enforce mode, no NOTIFY action: nothing added at compile time). A hit means this
/// exact profile was parsed, checked and compiled before, so the plan need not check it again.
pub fn cached(spec: &Spec, root: &Path) -> Option<Filter> {
    use oci_spec::runtime::LinuxSeccompAction::ScmpActNotify;
    let sc = spec.linux().as_ref()?.seccomp().as_ref()?;
    if !matches!(Watch::from_spec(spec), Ok(None))
        || sc.default_action() == ScmpActNotify
        || (sc.syscalls().iter().flatten()).any(|r| r.action() == ScmpActNotify)
    {
        return None;
    }
    let json = serde_json::to_string(sc).ok()?;
    Cache::new(root, &json, &bounding_names(spec)).get()
}

/// Compile `linux.seccomp` (None when the spec has none), through the cache under `root` when
/// one is given: [`compile_plan`] of the spec's [`Plan`].
pub fn compile(
    spec: &Spec,
    file: &Path,
    quiet: bool,
    root: Option<&Path>,
    channel_fd: Option<i32>,
) -> Result<Option<Filter>> {
    compile_plan(&Plan::from_spec(spec, file)?, file, quiet, root, channel_fd)
}

/// Compile the planned profile (None when there is none), through the cache under `root` when
/// one is given.
///
/// `channel_fd` is the descriptor the child sends a NOTIFY listener back on, after the filter
/// is loaded: a profile with `SCMP_ACT_NOTIFY` gets one rule more, `sendmsg` on exactly that
/// descriptor, so the runtime's own last call is not itself sent to the listener the runtime
/// has not yet received (a deadlock; the profile's author cannot know that call or its number).
/// It is given for the container's own process, not for an `exec` into it.
///
/// With the mode annotations ([`Watch`]) the profile is put in its mode here ([`apply`]); the
/// events file was checked with the plan ([`watch`]).
pub fn compile_plan(
    plan: &Plan,
    file: &Path,
    quiet: bool,
    root: Option<&Path>,
    channel_fd: Option<i32>,
) -> Result<Option<Filter>> {
    // the events file was checked with the plan, before anything was created
    let Some(sc) = plan.profile.as_ref() else {
        return Ok(None);
    };
    let filter = match &plan.cached {
        Some(f) => f.clone(),
        None => compile_cached(sc, plan, file, root, channel_fd)?,
    };
    if !quiet && !filter.unknown.is_empty() {
        crate::diag::warn(&format!(
            "linux.seccomp names syscalls no supported architecture knows (ignored): {}",
            filter.unknown.join(", ")
        ));
    }
    Ok(Some(filter))
}

/// The profile as compiled (see [`profile_json`]), from the cache under `root` or compiled
/// (and put there).
fn compile_cached(
    sc: &oci_spec::runtime::LinuxSeccomp,
    plan: &Plan,
    file: &Path,
    root: Option<&Path>,
    channel_fd: Option<i32>,
) -> Result<Filter> {
    let caps = plan.caps.clone();
    let json = profile_json(sc, plan.watch.as_ref(), channel_fd, file)?;
    let cache = root.map(|r| Cache::new(r, &json, &caps));
    let filter = match cache.as_ref().and_then(Cache::get) {
        Some(f) => f,
        None => {
            let profile = Profile::from_json(&json).map_err(|e| {
                config_err(
                    file,
                    format!("linux.seccomp{}", e.path_suffix()),
                    e.to_string(),
                )
            })?;
            let f = stockade_seccomp::compile(&profile.resolve(&Context::host(caps)))
                .map_err(|e| config_err(file, "linux.seccomp", e.to_string()))?;
            if let Some(c) = &cache {
                c.put(&f);
            }
            f
        }
    };
    Ok(filter)
}

/// The profile's JSON as compiled (and keyed in the cache): with the watch mode's actions, and
/// the `sendmsg` on `channel_fd` a NOTIFY listener needs. Without either (the common case) the
/// text is written straight from the spec's types: building a `Value` tree of every rule first
/// was most of the runtime's seccomp time on a cached start.
fn profile_json(
    sc: &oci_spec::runtime::LinuxSeccomp,
    watch: Option<&Watch>,
    channel_fd: Option<i32>,
    file: &Path,
) -> Result<String> {
    use oci_spec::runtime::LinuxSeccompAction::ScmpActNotify;
    let uses_notify = sc.default_action() == ScmpActNotify
        || sc
            .syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == ScmpActNotify);
    if watch.is_none() && !(uses_notify && channel_fd.is_some()) {
        return serde_json::to_string(sc).map_err(|e| Error::Other(e.to_string()));
    }
    let mut v = serde_json::to_value(sc).map_err(|e| Error::Other(e.to_string()))?;
    if let Some(w) = watch {
        apply(&mut v, w.mode, channel_fd.is_some()).map_err(|why| {
            config_err(
                file,
                format!("annotations.{ANNOTATION_MODE}"),
                format!("{}: {why}", w.mode.as_str()),
            )
        })?;
    }
    let notify = |a: &serde_json::Value| a.as_str() == Some("SCMP_ACT_NOTIFY");
    let uses_notify = notify(&v["defaultAction"])
        || v["syscalls"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| notify(&r["action"])));
    if let (true, Some(fd)) = (uses_notify, channel_fd) {
        let rule = json!({"names": ["sendmsg"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": fd, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]});
        match v["syscalls"].as_array_mut() {
            Some(r) => r.push(rule),
            None => v["syscalls"] = json!([rule]),
        }
    }
    Ok(v.to_string())
}

/// Compiled filters, one file per distinct input under `<root>/.seccomp/` (container ids never
/// start with a dot). Resolving and compiling a Docker-sized profile for three architectures
/// costs about a millisecond of CPU at every start, competing with the container's own setup on
/// small machines; reading the result back costs a few microseconds. The key is everything the
/// result depends on: this binary (device, inode, size, mtime: the compiler), the running
/// kernel's release (`minKernel`), the bounding capabilities (`includes.caps`) and the profile's
/// JSON. It is stored whole in the entry and compared byte for byte, so a collision of the file
/// name (a 64-bit hash) can only cost a compile. The cache is best effort: any failure to read or
/// write it just means compiling.
struct Cache {
    path: std::path::PathBuf,
    key: Vec<u8>,
}

/// Entries beyond this many are pruned (all of them) on the next miss.
const CACHE_MAX: usize = 64;

impl Cache {
    fn new(root: &Path, json: &str, caps: &[String]) -> Cache {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::MetadataExt;
        let mut key = b"stockade-seccomp-cache 1\n".to_vec();
        if let Ok(m) = std::fs::metadata("/proc/self/exe") {
            key.extend(
                format!(
                    "exe {} {} {} {}.{}\n",
                    m.dev(),
                    m.ino(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec()
                )
                .bytes(),
            );
        }
        if let Ok(u) = nix::sys::utsname::uname() {
            key.extend(b"kernel ");
            key.extend(u.release().as_encoded_bytes());
            key.push(b'\n');
        }
        key.extend(format!("caps {}\n", caps.join(",")).bytes());
        key.extend(json.as_bytes());
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        Cache {
            path: root.join(".seccomp").join(format!("{:016x}", h.finish())),
            key,
        }
    }

    fn get(&self) -> Option<Filter> {
        let data = std::fs::read(&self.path).ok()?;
        let n = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
        if data.get(4..4 + n)? != self.key.as_slice() {
            return None;
        }
        Filter::from_bytes(&data[4 + n..])
    }

    fn put(&self, f: &Filter) {
        let dir = self.path.parent().expect("under .seccomp");
        use std::os::unix::fs::DirBuilderExt;
        if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(dir) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return;
            }
            if std::fs::read_dir(dir).is_ok_and(|d| d.count() >= CACHE_MAX) {
                for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let mut data = (self.key.len() as u32).to_le_bytes().to_vec();
        data.extend(&self.key);
        data.extend(f.to_bytes());
        let tmp = self
            .path
            .with_extension(format!("{}.tmp", std::process::id()));
        if std::fs::write(&tmp, &data).is_err() || std::fs::rename(&tmp, &self.path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// A profile given on the command line: a built-in name or a JSON file (OCI or Docker format),
/// resolved against `caps` into plain OCI form for the spec.
pub fn profile_for_cli(arg: &str, caps: &[String]) -> Result<Profile> {
    let profile = match stockade_seccomp::builtin(arg) {
        Some(p) => p,
        None => {
            let text = std::fs::read_to_string(arg).ctx(|| format!("--seccomp {arg}: not a built-in profile (default, docker, unconfined) nor a readable file"))?;
            Profile::from_json(&text).map_err(|e| {
                config_err(
                    Path::new(arg),
                    e.path_suffix().trim_start_matches('.').to_string(),
                    e.to_string(),
                )
            })?
        }
    };
    Ok(profile.resolve(&Context::host(caps.iter().cloned())).oci)
}

/// Hand the NOTIFY listener to the agent at `listenerPath`, as runtime-spec describes: the
/// container process state as JSON, with the descriptor in SCM_RIGHTS.
pub fn send_listener(plan: &Plan, state: &crate::state::State, fd: &OwnedFd) -> Result<()> {
    let sc = plan.profile.as_ref();
    let Some(path) = sc.and_then(|s| s.listener_path().as_ref()) else {
        return Err(Error::Other(
            "linux.seccomp uses SCMP_ACT_NOTIFY but sets no listenerPath".into(),
        ));
    };
    let metadata = sc
        .and_then(|s| s.listener_metadata().clone())
        .unwrap_or_default();
    let msg = json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": state.pid,
        "metadata": metadata,
        "state": {
            "ociVersion": state.oci_version, "id": state.id, "status": state.status, "pid": state.pid,
            "bundle": state.bundle, "annotations": state.annotations,
        }
    });
    let sock = crate::sys::connect_unix(path).ctx(|| {
        format!(
            "connect to seccomp agent at linux.seccomp.listenerPath {}",
            path.display()
        )
    })?;
    crate::sys::send_with_fd(&sock, msg.to_string().as_bytes(), fd).ctx(|| "send seccomp listener")
}

/// `complain` or `enforce`.
pub const ANNOTATION_MODE: &str = "org.stockade.seccomp.mode";
/// The events file: an absolute path.
pub const ANNOTATION_EVENTS: &str = "org.stockade.seccomp.events";

/// `tcp:PORT`: when the workload is ready (a listening socket on PORT in its network
/// namespace); with [`ANNOTATION_STARTUP`], the phase switch of the agent.
pub const ANNOTATION_READY: &str = "org.stockade.seccomp.ready";
/// The whole-life profile (a file): until the workload is ready the agent lets the calls it
/// allows run unlogged; the kernel's profile is the serving one.
pub const ANNOTATION_STARTUP: &str = "org.stockade.seccomp.startup";

/// What the agent does with a call outside the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Let it run, and log it.
    Complain,
    /// Answer EPERM, and log it.
    Enforce,
}

impl Mode {
    pub fn parse(s: &str) -> std::result::Result<Mode, String> {
        match s {
            "complain" => Ok(Mode::Complain),
            "enforce" => Ok(Mode::Enforce),
            _ => Err("unknown mode: use complain (calls outside the profile run and are logged) or enforce (they fail with EPERM and are logged)".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Complain => "complain",
            Mode::Enforce => "enforce",
        }
    }
}

/// A container's mode and events file, from its annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub mode: Mode,
    pub events: PathBuf,
}

impl Watch {
    /// From the annotations (None when neither is set); the error names the annotation.
    pub fn from_annotations(
        ann: Option<&HashMap<String, String>>,
    ) -> std::result::Result<Option<Watch>, (String, String)> {
        let get = |k: &str| ann.and_then(|a| a.get(k));
        let field = |k: &str| format!("annotations.{k}");
        let (mode, events) = match (get(ANNOTATION_MODE), get(ANNOTATION_EVENTS)) {
            (None, None) => return Ok(None),
            (None, Some(_)) => {
                return Err((
                    field(ANNOTATION_EVENTS),
                    format!("needs {ANNOTATION_MODE} (complain or enforce)"),
                ))
            }
            (Some(_), None) => {
                return Err((
                    field(ANNOTATION_MODE),
                    format!("needs {ANNOTATION_EVENTS} (the file the calls outside the profile are written to)"),
                ))
            }
            (Some(m), Some(e)) => (m, e),
        };
        let mode =
            Mode::parse(mode).map_err(|m| (field(ANNOTATION_MODE), format!("{mode:?}: {m}")))?;
        let events = PathBuf::from(events);
        if !events.is_absolute() {
            return Err((
                field(ANNOTATION_EVENTS),
                format!("{}: must be an absolute path", events.display()),
            ));
        }
        Ok(Some(Watch { mode, events }))
    }

    pub fn from_spec(spec: &Spec) -> std::result::Result<Option<Watch>, (String, String)> {
        Watch::from_annotations(spec.annotations().as_ref())
    }
}

/// The complain/enforce annotations of `spec` ([`Watch`]), checked: well formed, with a profile
/// to watch, and (`check_file`) an events file that can be written. `file` names the config.
pub fn watch(spec: &Spec, file: &Path, check_file: bool) -> Result<Option<Watch>> {
    let Some(w) = Watch::from_spec(spec).map_err(|(f, m)| config_err(file, f, m))? else {
        return Ok(None);
    };
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .is_none()
    {
        return Err(config_err(
            file,
            format!("annotations.{ANNOTATION_MODE}"),
            "needs a seccomp profile (linux.seccomp): its calls are what complain and enforce leave alone",
        ));
    }
    if check_file {
        check_events_file(&w.events).map_err(|why| {
            config_err(
                file,
                format!("annotations.{ANNOTATION_EVENTS}"),
                format!("{}: {why}", w.events.display()),
            )
        })?;
    }
    Ok(Some(w))
}

/// Whether `path` can take the events, without creating it: an existing regular file this
/// process may append to, or a new name in a directory it may write.
pub fn check_events_file(path: &Path) -> std::result::Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err("is a directory".into()),
        Ok(m) if !m.is_file() => Err("not a regular file".into()),
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|e| format!("not writable: {e}")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(format!("no directory {} to create it in", dir.display()));
            }
            nix::unistd::access(
                dir,
                nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
            )
            .map_err(|e| format!("cannot be created in {}: {e}", dir.display()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The profile `v` (OCI JSON) in `mode`. With an agent (`notify`: the container's own process)
/// the calls outside it go to the agent; without (an `exec` into the container: nobody would
/// receive its listener) complain lets them run with the kernel's audit log
/// (`SCMP_ACT_LOG`) and enforce denies them as the profile does. Either way a listener of the
/// workload's own is refused.
pub fn apply(v: &mut Value, mode: Mode, notify: bool) -> std::result::Result<(), String> {
    let default = v["defaultAction"].as_str().unwrap_or_default();
    if matches!(default, "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG") {
        return Err(format!(
            "the profile's defaultAction is {default}: no call is outside it (complain and enforce need a profile that lists what is allowed)"
        ));
    }
    if !v["listenerPath"].is_null() && v["listenerPath"] != "" {
        return Err(
            "the profile already sends its notifications to linux.seccomp.listenerPath".into(),
        );
    }
    if notify {
        v["defaultAction"] = json!("SCMP_ACT_NOTIFY");
        // once the agent has read a call, only a fatal signal ends its wait: otherwise a
        // signal (a shell's SIGCHLD) turns a fork the agent lets run into EINTR
        let flags = v["flags"].as_array_mut();
        let f = json!("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
        match flags {
            Some(a) if !a.contains(&f) => a.push(f),
            Some(_) => {}
            None => v["flags"] = json!([f]),
        }
        // every execve goes to the agent, which tells stockade's own last calls from the
        // workload's by it (and answers as the profile would)
        for r in v["syscalls"].as_array_mut().into_iter().flatten() {
            if let Some(names) = r["names"].as_array_mut() {
                names.retain(|n| !matches!(n.as_str(), Some("execve" | "execveat")));
            }
            if matches!(r["name"].as_str(), Some("execve" | "execveat")) {
                r["name"] = Value::Null;
            }
        }
        if let Some(rules) = v["syscalls"].as_array_mut() {
            rules.retain(|r| {
                r["names"].as_array().is_some_and(|n| !n.is_empty()) || r["name"].is_string()
            });
        }
    } else if mode == Mode::Complain {
        v["defaultAction"] = json!("SCMP_ACT_LOG");
    }
    let rule = serde_json::to_value(stockade_seccomp::builtin::deny_new_listener())
        .map_err(|e| e.to_string())?;
    match v["syscalls"].as_array_mut() {
        Some(r) => r.insert(0, rule),
        None => v["syscalls"] = json!([rule]),
    }
    Ok(())
}
