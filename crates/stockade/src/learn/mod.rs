//! `stockade learn`: least privilege learned from the workload's own test scenario (seed §3:
//! "remove all the capabilities ... then add only those ... required", "trial and error ...
//! using various test scenarios"; seed §4: a custom profile that blocks "the ones ... not
//! required by the app"), then verified by running the scenario again under the result.
//!
//! 1. **Record** ([`record`]): the workload runs with a permissive filter and a capability
//!    ceiling while two in-kernel programs mark every syscall (with the risky arguments' values)
//!    and every capability check of its cgroup, from the moment its seccomp filter is loaded:
//!    `execve` and the runtime's own last calls included, its setup before that not.
//! 2. **Trial**: the capabilities that were checked and granted are taken away in halves
//!    (delta debugging); one whose removal fails the scenario is needed, with that run's output
//!    as the evidence.
//! 3. **Build** ([`profile`]): the observed syscalls ∩ the seccomp ceiling (what the ceiling
//!    forbids is reported, never allowed), with argument rules.
//! 4. **Verify**: the scenario again under the learned profile and the needed capabilities, the
//!    profile's default action sent to a listener ([`notify`]) that names each denied call and
//!    answers EPERM. With `--refine N`, missed calls are added and the verification repeated.
//!
//! Each run is a `stockade run` of a bundle written under the state root, so what is learned
//! is what the engine really does. Under engines ([`engine`]) `create` records a container's
//! whole life and `delete` writes the result. `seccomp.json` is the workload's own (what
//! `sandbox --learned` enforces); `seccomp-runc.json` and `seccomp-stockade.json` add, as a
//! rule of their own, what each runtime itself calls after loading the filter when an engine
//! starts the container without no_new_privileges ([`allowance`]).

pub mod allowance;
pub mod engine;
pub mod events;
pub mod notify;
pub mod profile;
pub mod record;
pub mod report;

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The compiled ceiling, for the capabilities `caps`; each (name, caps) compiled once per
/// process (learn asks for the same ones for its filter, its result and its report).
pub fn ceiling_filter(name: &str, caps: &[String]) -> Result<stockade_seccomp::Filter> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    type Memo = Mutex<HashMap<(String, Vec<String>), stockade_seccomp::Filter>>;
    static MEMO: std::sync::OnceLock<Memo> = std::sync::OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    let key = (name.to_string(), caps.to_vec());
    if let Some(f) = memo.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(f.clone());
    }
    let f = compile_ceiling(name, caps)?;
    memo.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, f.clone());
    Ok(f)
}

fn compile_ceiling(name: &str, caps: &[String]) -> Result<stockade_seccomp::Filter> {
    let p = crate::seccomp::profile_for_cli(name, caps).map_err(|e| {
        Error::Other(format!(
            "--seccomp-ceiling {name}: {e} (default, docker, or a profile file)"
        ))
    })?;
    let json = p.to_oci_value().to_string();
    let profile = stockade_seccomp::Profile::from_json(&json)?;
    Ok(stockade_seccomp::compile(&profile.resolve(
        &stockade_seccomp::Context::host(caps.iter().cloned()),
    ))?)
}

/// The spec of one run: `base` with these capabilities, this filter, no_new_privs (the filter
/// is then the last thing loaded before `execve`), and optionally a cgroupsPath.
pub fn configure(
    base: &Value,
    caps: &[String],
    seccomp: &Value,
    cgroups_path: Option<&str>,
) -> Value {
    let mut v = base.clone();
    let nonroot = v["process"]["user"]["uid"].as_u64().unwrap_or(0) != 0;
    let ambient: &[String] = if nonroot { caps } else { &[] };
    v["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps,
        "inheritable": ambient, "ambient": ambient,
    });
    v["process"]["noNewPrivileges"] = json!(true);
    v["linux"]["seccomp"] = seccomp.clone();
    if let Some(p) = cgroups_path {
        v["linux"]["cgroupsPath"] = json!(p);
    }
    v
}

/// Native syscalls allowed but those the ceiling answers ENOSYS (answered the same, so the
/// workload takes the fallback it will take under the result: `clone` for `clone3`): the
/// learning and trial runs' filter. A filter it is (not none), so the recorder arms when it is
/// loaded. i386 calls are allowed too, so that they reach the tracepoint and the report can
/// name them (the learned profile, native only, denies them); x32 ones get EPERM.
pub fn permissive(enosys: &[String]) -> Value {
    let mut rules = vec![json!({"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"})];
    if !enosys.is_empty() {
        rules.push(json!({"names": enosys, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}));
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [stockade_seccomp::Arch::native().scmp_name(), stockade_seccomp::Arch::X86.scmp_name()],
        "syscalls": rules,
    })
}

/// What a capability trial found.
pub struct Trial {
    pub needed: Vec<(String, String)>,
    pub not_needed: Vec<String>,
    pub runs: u32,
}

impl Trial {
    /// No trial run: each capability in `needed` kept, `why` saying on what grounds.
    pub fn untried(needed: &[String], why: &str) -> Trial {
        Trial {
            needed: needed
                .iter()
                .map(|c| (c.clone(), why.to_string()))
                .collect(),
            not_needed: vec![],
            runs: 0,
        }
    }
}

/// Put what `learn --out dir` wrote into an OCI config: `linux.seccomp` from seccomp.json and
/// the needed capabilities in every set (ambient too for a non-root user).
pub fn apply_learned(spec: &mut Value, dir: &Path) -> Result<()> {
    let read = |f: &str| -> Result<Value> {
        let p = dir.join(f);
        let text = std::fs::read_to_string(&p)
            .map_err(|e| Error::Other(format!("--learned: {}: {e}", p.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Other(format!("--learned: {}: {e}", p.display())))
    };
    let mut sc = read("seccomp.json")?;
    if let Some(o) = sc.as_object_mut() {
        o.remove("comment");
    }
    let caps: Vec<String> = read("capabilities.json")?["needed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    *spec = configure(spec, &caps, &sc, None);
    Ok(())
}
