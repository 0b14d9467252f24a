//! `stockade learn verify DIR --bundle B [--test CMD] [--ready tcp:PORT]`: a profile learned
//! elsewhere (under an engine, where a container cannot be run twice) proved as `learn` proves
//! its own: the bundle's workload runs again under DIR's seccomp.json and capabilities, the
//! profile's default action sent to a listener that names each call it denies, and the
//! scenario (the test, else the workload's own exit status) must pass. On success DIR's
//! `UNVERIFIED` goes and `report.txt` says how it was verified; on failure the report says
//! which calls were denied and the exit status is 1. Learning under engines runs this at
//! `delete` when the container carries `org.stockade.learn.test`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::run::{stop_on_signals, tail, Runner};
use crate::error::{Error, Result};
use crate::learn::{configure, notify};

#[derive(Debug, clap::Args, Clone)]
pub struct VerifyArgs {
    /// A directory `stockade learn` (or learning under an engine) wrote
    pub dir: PathBuf,
    /// The OCI bundle whose workload the profile is for
    #[arg(long)]
    pub bundle: PathBuf,
    /// The scenario: a shell command run on the host side inside the workload's network
    /// namespace once --ready holds; its exit status decides (default: the workload's own)
    #[arg(long, value_name = "CMD")]
    pub test: Option<String>,
    /// Wait until this holds before the test: tcp:PORT
    #[arg(long, value_name = "tcp:PORT")]
    pub ready: Option<String>,
    /// Seconds the run may take
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// The bundle's config as the verification runs it: its root absolute, learning and
/// complain/enforce annotations taken out (the run is not learned again, nor watched).
fn base_of(bundle: &Path) -> Result<Value> {
    let file = bundle.join("config.json");
    let spec = crate::spec::load(&file)?;
    let mut v = serde_json::to_value(&spec).map_err(|e| Error::Other(e.to_string()))?;
    v["root"]["path"] = json!(crate::spec::rootfs_path(&spec, bundle));
    if let Some(a) = v["annotations"].as_object_mut() {
        a.retain(|k, _| {
            !k.starts_with("org.stockade.learn") && !k.starts_with("org.stockade.seccomp.")
        });
    }
    Ok(v)
}

/// DIR's seccomp.json and the capabilities it needs.
fn profile_of(dir: &Path) -> Result<(Value, Vec<String>)> {
    let read = |f: &str| -> Result<Value> {
        let p = dir.join(f);
        let text = std::fs::read_to_string(&p)
            .map_err(|e| Error::Other(format!("learn verify: {}: {e}", p.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Other(format!("learn verify: {}: {e}", p.display())))
    };
    let mut sc = read("seccomp.json")?;
    if let Some(o) = sc.as_object_mut() {
        o.remove("comment");
    }
    let caps = read("capabilities.json")?["needed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    Ok((sc, caps))
}

pub fn verify(v: &VerifyArgs, root: &Path, exe: &Path) -> Result<i32> {
    let (mut sc, caps) = profile_of(&v.dir)?;
    let base = base_of(&v.bundle)?;
    let ready_port = match &v.ready {
        None => None,
        Some(r) => Some(
            r.strip_prefix("tcp:")
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| Error::Other(format!("--ready {r:?}: use tcp:PORT")))?,
        ),
    };
    if ready_port.is_some() && v.test.is_none() {
        return Err(Error::Other("learn verify: --ready needs --test".into()));
    }
    std::fs::create_dir_all(root).map_err(|e| Error::Other(format!("{}: {e}", root.display())))?;
    stop_on_signals(root, exe);
    let runner = Runner {
        root,
        exe,
        test: v.test.as_deref(),
        ready_port,
        ready_timeout: Duration::from_secs(30),
        timeout: Duration::from_secs(v.timeout),
        runs: std::cell::Cell::new(0),
        started: Instant::now(),
    };
    let sock = root.join(format!(".learn-verify-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let listener = notify::Listener::start(&sock)
        .map_err(|e| Error::Other(format!("learn verify: listen at {}: {e}", sock.display())))?;
    sc["defaultAction"] = json!("SCMP_ACT_NOTIFY");
    sc["listenerPath"] = json!(sock);
    let o = runner.run(&configure(&base, &caps, &sc, None));
    let denied = listener.finish();
    let _ = std::fs::remove_file(&sock);
    let o = o?;
    let mut names: Vec<String> = denied.iter().map(|d| d.name.clone()).collect();
    names.dedup();
    let how = format!(
        "the workload of {} run again under seccomp.json and the needed capabilities{}",
        v.bundle.display(),
        v.test
            .as_deref()
            .map(|t| format!(", with the test {t:?}"))
            .unwrap_or_default()
    );
    let line = if o.ok {
        let _ = std::fs::remove_file(v.dir.join("UNVERIFIED"));
        format!(
            "\nverified ({}): {how}{}\n",
            crate::diag::now_rfc3339(),
            if names.is_empty() {
                String::new()
            } else {
                format!("; denied without failing it: {}", names.join(" "))
            }
        )
    } else {
        format!(
            "\nverification failed ({}): {how}; denied: {}\n{}\n",
            crate::diag::now_rfc3339(),
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(" ")
            },
            tail(&o.output, 20)
        )
    };
    let report = v.dir.join("report.txt");
    if o.ok {
        // the header says so too
        if let Ok(text) = std::fs::read_to_string(&report) {
            let text = text.replacen(
                "stockade learn: UNVERIFIED: recorded under an engine, not verified",
                "stockade learn: VERIFIED: recorded under an engine, verified with learn verify (below)",
                1,
            );
            let _ = std::fs::write(&report, text);
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&report)
        .map_err(|e| Error::Other(format!("{}: {e}", report.display())))?;
    std::io::Write::write_all(&mut f, line.as_bytes())
        .map_err(|e| Error::Other(format!("{}: {e}", report.display())))?;
    print!("{}", line.trim_start());
    Ok(if o.ok { 0 } else { 1 })
}
