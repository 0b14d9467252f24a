//! Seed §4, seccomp: the seam between the engine and the `stockade-seccomp` crate. The filter is
//! compiled by the runtime before the child exists (so a bad profile fails early and leaves
//! nothing behind) and loaded by the child as its last step before `execve`.

use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::Spec;
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

/// Compile `linux.seccomp` (None when the spec has none).
pub fn compile(spec: &Spec, file: &Path, quiet: bool) -> Result<Option<Filter>> {
    let Some(sc) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let v = serde_json::to_value(sc).map_err(|e| Error::Other(e.to_string()))?;
    let profile = Profile::from_value(&v).map_err(|e| {
        config_err(
            file,
            format!("linux.seccomp{}", e.path_suffix()),
            e.to_string(),
        )
    })?;
    let filter = stockade_seccomp::compile(&profile.resolve(&Context::host(bounding_names(spec))))
        .map_err(|e| config_err(file, "linux.seccomp", e.to_string()))?;
    if !quiet && !filter.unknown.is_empty() {
        eprintln!(
            "stockade: warning: linux.seccomp names syscalls no supported architecture knows (ignored): {}",
            filter.unknown.join(", ")
        );
    }
    Ok(Some(filter))
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
pub fn send_listener(spec: &Spec, state: &crate::state::State, fd: &OwnedFd) -> Result<()> {
    let sc = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let Some(path) = sc.and_then(|s| s.listener_path().as_ref()) else {
        return Err(Error::Other(
            "linux.seccomp uses SCMP_ACT_NOTIFY but sets no listenerPath".into(),
        ));
    };
    let metadata = sc
        .and_then(|s| s.listener_metadata().clone())
        .unwrap_or_default();
    let msg = serde_json::json!({
        "ociVersion": "1.2.0",
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
