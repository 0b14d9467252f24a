//! What `learn` writes: report.txt in numbers and words, and the profile files.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;

use super::record::Observed;
use super::{ceiling_filter, notify, profile, Trial};
use crate::error::{Error, Result};

/// What report.txt and capabilities.json say.
pub struct Report<'a> {
    pub observed: Observed,
    pub ceiling_caps: Vec<String>,
    pub missing_caps: Vec<String>,
    pub candidates: Vec<String>,
    pub trial: &'a Trial,
    /// per round: passed, denied calls, output tail
    pub verification: Vec<(bool, Vec<notify::Denied>, String)>,
    pub verified: Option<bool>,
    pub missed: Vec<String>,
    pub tolerated: BTreeSet<String>,
    pub record_secs: f64,
    pub trial_secs: f64,
    pub verify_secs: f64,
    pub seccomp_ceiling: String,
    /// syscalls allowed by Docker's default profile and by stockade's (computed once)
    pub reference: (usize, usize),
    /// recorded under an engine (`org.stockade.learn`, `--learn-dir`): since when
    pub engine: Option<String>,
}

impl<'a> Report<'a> {
    /// A report of what was observed and built, nothing verified or timed yet (the learning
    /// run, `merge` and learning under an engine fill in what they did).
    pub fn new(
        observed: Observed,
        ceiling_caps: Vec<String>,
        trial: &'a Trial,
        seccomp_ceiling: &str,
        reference: (usize, usize),
    ) -> Report<'a> {
        Report {
            observed,
            ceiling_caps,
            missing_caps: vec![],
            candidates: vec![],
            trial,
            verification: vec![],
            verified: None,
            missed: vec![],
            tolerated: BTreeSet::new(),
            record_secs: 0.0,
            trial_secs: 0.0,
            verify_secs: 0.0,
            seccomp_ceiling: seccomp_ceiling.to_string(),
            reference,
            engine: None,
        }
    }
}

pub fn reference_counts(caps: &[String]) -> (usize, usize) {
    (allowed_by("docker", caps), allowed_by("default", &[]))
}

/// How many native syscalls a built-in profile allows unconditionally or with arguments.
fn allowed_by(profile: &str, caps: &[String]) -> usize {
    let Ok(f) = ceiling_filter(profile, caps) else {
        return 0;
    };
    let arch = stockade_seccomp::Arch::native();
    arch.all_numbers()
        .into_iter()
        .filter(|nr| {
            // allowed for some argument values: try the common ones
            [[0u64; 6], [2, 1, 0, 0, 0, 0], [1, 0x5401, 3, 0, 0, 0]]
                .iter()
                .any(|args| f.eval(arch, *nr, *args).0 & 0xffff_0000 == 0x7fff_0000)
        })
        .count()
}

impl Report<'_> {
    pub fn text(&self, l: &profile::Learned) -> String {
        let mut s = String::new();
        let status = match self.verified {
            Some(true) => "VERIFIED: the scenario passed under the learned profile".to_string(),
            Some(false) => "UNVERIFIED: the scenario failed under the learned profile".to_string(),
            None if self.engine.is_some() => {
                "UNVERIFIED: recorded under an engine, not verified".to_string()
            }
            None => "UNVERIFIED (--no-verify)".to_string(),
        };
        s += &format!("stockade learn: {status}\n\n");
        if let Some(since) = &self.engine {
            s += &format!(
                "recorded under an engine from {since} until the container was deleted, under the learning filter instead of the container's own profile (every call the capability ceiling allows ran, each distinct one written down once by stockade's seccomp agent; its exec'd processes unrecorded); capabilities are those granted when the kernel checked them (no trial). Run the workload again with seccomp.json applied to verify it.\n\n"
            );
        }
        s += &self.syscalls_text(l);
        s += &self.capabilities_text();
        if self.engine.is_none() {
            s += &self.verification_text();
        }
        s
    }

    /// The syscalls: how many against the defaults, argument rules, what was refused or
    /// answered ENOSYS.
    fn syscalls_text(&self, l: &profile::Learned) -> String {
        let mut s = String::new();
        let n = l.allowed.len();
        let (docker, default) = self.reference;
        s += &format!(
            "syscalls: {n} allowed ({} observed); Docker's default profile allows {docker}, stockade's default {default}: {} and {} fewer\n",
            self.observed.syscalls.len(),
            docker.saturating_sub(n),
            default.saturating_sub(n)
        );
        let constrained: Vec<String> = l
            .allowed
            .iter()
            .filter(|a| !a.alternatives.iter().any(Vec::is_empty))
            .map(|a| format!("{} ({} rule(s))", a.name, a.alternatives.len()))
            .collect();
        s += &format!(
            "argument rules: {}\n",
            if constrained.is_empty() {
                "none".into()
            } else {
                constrained.join(", ")
            }
        );
        for u in &l.unconstrained {
            s += &format!("  left unconstrained: {u}\n");
        }
        if !l.refused.is_empty() {
            s += &format!(
                "refused by the seccomp ceiling ({}), used by the workload: {}\n",
                self.seccomp_ceiling,
                l.refused.join(", ")
            );
        }
        s += &format!(
            "allowed: {}\n",
            l.names().into_iter().collect::<Vec<_>>().join(" ")
        );
        s += &format!(
            "of which allowed for any program (lock contention, signal return, restart): {}\n",
            profile::BASELINE.join(" ")
        );
        if profile::has_threads(&self.observed) {
            s += &format!(
                "and for a program with threads (their teardown may outlast the process): {}\n",
                profile::THREAD_TEARDOWN.join(" ")
            );
        }
        if !self.observed.compat.is_empty() {
            s += &format!(
                "32-bit (i386) system calls made: {}; the profile is for the native ABI only: they stay denied (EPERM)\n",
                join(&self.observed.compat)
            );
        }
        if !l.enosys.is_empty() {
            s += &format!(
                "answered ENOSYS as by the ceiling (libc falls back): {}\n",
                l.enosys.join(" ")
            );
        }
        s += "\n";
        s
    }

    /// The capabilities: the ceiling, what was checked, tried and needed (with the evidence).
    fn capabilities_text(&self) -> String {
        let mut s = String::new();
        s += &format!("capabilities: ceiling {}\n", self.ceiling_caps.join(" "));
        if !self.missing_caps.is_empty() {
            s += &format!(
                "  not in this runtime's bounding set, so not tried: {}\n",
                self.missing_caps.join(" ")
            );
        }
        s += &format!(
            "  checked by the workload: {}\n  granted and tried: {}\n",
            join(&self.observed.caps_checked),
            self.candidates.join(" ")
        );
        let needed = if self.trial.needed.is_empty() {
            "none".to_string()
        } else {
            self.trial
                .needed
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        if self.engine.is_some() {
            s += &format!(
                "  granted when checked (written as needed; not tried without them): {needed}\n"
            );
        } else {
            s += &format!(
                "  needed: {needed}\n  checked, not needed: {}\n  trial runs: {}\n",
                self.trial.not_needed.join(" "),
                self.trial.runs
            );
            for (c, out) in &self.trial.needed {
                s += &format!(
                    "  without {c} the scenario failed:\n    {}\n",
                    out.replace('\n', "\n    ")
                );
            }
        }
        s
    }

    /// The verification rounds and the time each stage took.
    fn verification_text(&self) -> String {
        let mut s = String::new();
        s += "\nverification:\n";
        for (i, (ok, denied, _)) in self.verification.iter().enumerate() {
            let names: BTreeSet<&str> = denied.iter().map(|d| d.name.as_str()).collect();
            s += &format!(
                "  round {}: {}; denied: {}\n",
                i + 1,
                if *ok { "passed" } else { "failed" },
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.into_iter().collect::<Vec<_>>().join(" ")
                }
            );
        }
        if !self.missed.is_empty() {
            s += &format!(
                "  added after a failed round (missed by the recording: the workload took another path this time, e.g. timing or caches): {}\n",
                self.missed.join(" ")
            );
        }
        if !self.tolerated.is_empty() {
            s += &format!(
                "  denied but the scenario passed without them (left denied): {}\n",
                join(&self.tolerated)
            );
        }
        s += &format!(
            "\ntime: recording {:.2} s, capability trial {:.2} s ({} runs), verification {:.2} s ({} rounds)\n",
            self.record_secs,
            self.trial_secs,
            self.trial.runs,
            self.verify_secs,
            self.verification.len()
        );
        s
    }
}

/// What report.txt says of the profiles written for other runtimes.
fn allowance_text(lean: usize, per_runtime: &[(String, String, usize, Vec<String>)]) -> String {
    let mut t = format!(
        "\nseccomp.json allows {lean} syscalls: the workload's own (with no_new_privileges, as stockade runs it, the filter is the last thing before execve). For engines, a rule of its own adds a runtime's calls between loading the filter and the workload's execve (measured under the recorder), not part of what the workload did nor of what was verified:\n"
    );
    for (file, runtime, n, added) in per_runtime {
        t.push_str(&format!(
            "  {file}: {n} syscalls, for {runtime}; added: {}\n",
            if added.is_empty() {
                "nothing (all allowed already)".to_string()
            } else {
                added.join(" ")
            }
        ));
    }
    t
}

/// The profile with `a`'s post-filter calls as a rule of their own.
fn for_runtime(
    l: &profile::Learned,
    a: &super::allowance::Allowance,
    comment: &str,
) -> (serde_json::Value, Vec<String>, usize) {
    let (with, added) = l.with_allowance(a);
    let n = with.names().len();
    let mut sc = with.to_json_with(
        "SCMP_ACT_ERRNO",
        &added,
        &format!("runtime allowance: {}'s own calls after it loads the filter (measured; see report.txt)", a.runtime),
    );
    sc["comment"] = json!(comment);
    (sc, added, n)
}

fn join(s: &BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join(" ")
}

fn write(out: &Path, name: &str, text: &str) -> Result<()> {
    std::fs::write(out.join(name), text)
        .map_err(|e| Error::Other(format!("write {}: {e}", out.join(name).display())))
}

pub fn write_outputs(
    out: &Path,
    l: &profile::Learned,
    r: &Report,
    needed: &[String],
) -> Result<()> {
    let verified = r.verified == Some(true);
    let comment = if verified {
        "learned by stockade learn; verified"
    } else {
        "learned by stockade learn; UNVERIFIED"
    };
    // What `sandbox --learned` and `spec --learned` enforce: the workload's own calls alone.
    let mut sc = l.to_json("SCMP_ACT_ERRNO");
    sc["comment"] = json!(comment);
    write(
        out,
        "seccomp.json",
        &serde_json::to_string_pretty(&sc).expect("json"),
    )?;
    // For engines: one file per runtime with its measured post-filter calls, and their union
    // for Kubernetes' seccompProfile (a node may run either).
    use super::allowance::{RUNC, STOCKADE};
    let mut per_runtime = vec![];
    for (file, a, for_whom) in [
        (
            "seccomp-runc.json",
            &RUNC,
            "Docker, Podman or containerd with runc (no_new_privileges off)",
        ),
        (
            "seccomp-stockade.json",
            &STOCKADE,
            "Docker, Podman or containerd with stockade (no_new_privileges off)",
        ),
    ] {
        let (sc, added, n) = for_runtime(l, a, comment);
        write(out, file, &serde_json::to_string_pretty(&sc).expect("json"))?;
        per_runtime.push((
            file.to_string(),
            format!("{} ({for_whom})", a.runtime),
            n,
            added,
        ));
    }
    let (both, _) = l.with_allowance(&RUNC);
    let (both, _) = both.with_allowance(&STOCKADE);
    let mut k8s = both.to_json("SCMP_ACT_ERRNO");
    k8s["comment"] = json!(comment);
    write(
        out,
        "seccomp-profile.yaml",
        &profile::to_spo_yaml(&k8s, "stockade-learned"),
    )?;
    let lean = l.names().len();
    let caps = json!({
        "needed": needed,
        "checkedNotNeeded": r.trial.not_needed,
        "checked": r.observed.caps_checked,
        "ceiling": r.ceiling_caps,
        "verified": verified,
        "evidence": r.trial.needed.iter().map(|(c, o)| (c.clone(), json!(o))).collect::<serde_json::Map<_, _>>(),
    });
    write(
        out,
        "capabilities.json",
        &serde_json::to_string_pretty(&caps).expect("json"),
    )?;
    let flags: String = needed
        .iter()
        .map(|c| format!("--cap-add {}\n", c.trim_start_matches("CAP_")))
        .collect();
    write(out, "docker-caps.txt", &flags)?;
    write(
        out,
        "observed.json",
        &serde_json::to_string_pretty(&r.observed).expect("json"),
    )?;
    write(
        out,
        "report.txt",
        &(r.text(l) + &allowance_text(lean, &per_runtime)),
    )?;
    if verified {
        let _ = std::fs::remove_file(out.join("UNVERIFIED"));
    } else {
        write(
            out,
            "UNVERIFIED",
            if r.engine.is_some() {
                "recorded under an engine, not verified\n"
            } else {
                "this profile was not verified by re-running the scenario\n"
            },
        )?;
    }
    Ok(())
}
