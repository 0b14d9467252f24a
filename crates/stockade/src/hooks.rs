//! OCI hooks (runtime-spec "POSIX-platform Hooks"): each runs with the container state as JSON on
//! stdin, its own `args` and `env`, and an optional timeout. Failures of prestart, createRuntime,
//! createContainer and startContainer stop the container; poststart and poststop failures are
//! warnings and the rest still run.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    /// Every kind, in the order they run.
    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    /// Failing hooks of these kinds only warn.
    pub fn warn_only(self) -> bool {
        matches!(self, Kind::Poststart | Kind::Poststop)
    }
}

/// A container's hooks, read once from its spec: each kind's list, and what the state JSON on
/// their stdin says (the container's id, bundle and annotations).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    id: String,
    bundle: std::path::PathBuf,
    annotations: std::collections::HashMap<String, String>,
    lists: [Vec<Hook>; 6],
}

impl Plan {
    pub fn from_spec(spec: &Spec, id: &str, bundle: &std::path::Path) -> Plan {
        let lists = Kind::ALL.map(|kind| {
            let Some(h) = spec.hooks() else {
                return vec![];
            };
            let l = match kind {
                Kind::Prestart => h.prestart(),
                Kind::CreateRuntime => h.create_runtime(),
                Kind::CreateContainer => h.create_container(),
                Kind::StartContainer => h.start_container(),
                Kind::Poststart => h.poststart(),
                Kind::Poststop => h.poststop(),
            };
            l.clone().unwrap_or_default()
        });
        Plan {
            id: id.into(),
            bundle: bundle.into(),
            annotations: crate::spec::config_annotations(spec),
            lists,
        }
    }

    /// The hooks of `kind`, in the order they run.
    pub fn list(&self, kind: Kind) -> &[Hook] {
        &self.lists[kind as usize]
    }

    pub fn has(&self, kind: Kind) -> bool {
        !self.list(kind).is_empty()
    }

    /// The config has hooks of any kind.
    pub fn any(&self) -> bool {
        Kind::ALL.iter().any(|k| self.has(*k))
    }

    /// The state JSON hooks read on stdin.
    pub fn state_json(&self, status: &str, pid: i32) -> String {
        serde_json::json!({
            "ociVersion": crate::spec::OCI_VERSION,
            "id": self.id,
            "status": status,
            "pid": pid,
            "bundle": self.bundle,
            "annotations": self.annotations,
        })
        .to_string()
    }

    /// Run every hook of `kind`, the container's state saying `status` and `pid`. For warn-only
    /// kinds, failures are printed and the rest still run.
    pub fn run(&self, kind: Kind, status: &str, pid: i32) -> Result<()> {
        let hooks = self.list(kind);
        if hooks.is_empty() {
            return Ok(());
        }
        let state = self.state_json(status, pid);
        for (i, h) in hooks.iter().enumerate() {
            if let Err(e) = run_one(kind, i, h, &state) {
                if kind.warn_only() {
                    crate::diag::warn(&e.to_string());
                } else {
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

fn run_one(kind: Kind, i: usize, h: &Hook, state: &str) -> Result<()> {
    let what = format!("hooks.{}[{i}] {}", kind.name(), h.path().display());
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some(a0) = args.first() {
            cmd.arg0(a0);
        }
        cmd.args(args.iter().skip(1));
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Other(format!("{what}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin: that must not kill the runtime (SIGPIPE is
        // at its default so that containers never inherit it ignored).
        // SAFETY: signal(2) with SIG_IGN/SIG_DFL has no preconditions; restored right after.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let _ = stdin.write_all(state.as_bytes());
        drop(stdin);
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let deadline = h
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(Error::Other(format!("{what}: {st}"))),
            Ok(None) => {
                if deadline.is_some_and(|d| Instant::now() > d) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Other(format!(
                        "{what}: timed out after {}s",
                        h.timeout().unwrap_or(0)
                    )));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(Error::Other(format!("{what}: {e}"))),
        }
    }
}
