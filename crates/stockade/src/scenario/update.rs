//! `stockade learn update DIR --events FILE [--test CMD]`: what a profile in complain or enforce
//! mode met in production (the agent's events file, see `agent`) folded into what `learn`
//! wrote. Each event's call is added as `learn` would have added it had the recording seen it
//! (observed.json gains the call and its recorded argument values; the call's rules are built
//! again from them), within the seccomp ceiling; seccomp.json and the files made from it are
//! written again, and report.txt says what was added. With `--test` the workload runs under
//! the result first, as `learn` verifies (the calls still outside it named); DIR changes only
//! if it passes. Events that are not what the agent writes are an error naming FILE:LINE, and
//! DIR is left as it was.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::run::{tail, Runner};
use crate::error::{Error, Result};
use crate::learn::events::Event;
use crate::learn::profile::{self, Allowed, Learned};
use crate::learn::record::Observed;
use crate::sandbox::SandboxArgs;

#[derive(Debug, clap::Args, Clone)]
pub struct UpdateArgs {
    /// A directory `stockade learn --out DIR` wrote
    pub dir: PathBuf,
    /// The events of `sandbox --seccomp-mode` (--seccomp-events FILE, or the annotation
    /// org.stockade.seccomp.events): one JSON line per call
    #[arg(long, value_name = "FILE")]
    pub events: PathBuf,
    /// Verify first: the workload's command line, split into words as a shell would (quotes and
    /// backslashes; no variables or globs), run under the updated profile with the sandbox
    /// flags given; it must exit 0, or DIR stays as it was. (Or the command after --)
    #[arg(long, value_name = "CMD")]
    pub test: Option<String>,
    /// What the profile may never exceed: default, docker or a profile file (as learn's)
    #[arg(long, default_value = "default")]
    pub seccomp_ceiling: String,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// seccomp.json as `learn` writes it, read back (its `comment` aside).
fn learned_from_json(v: &Value) -> std::result::Result<Learned, String> {
    let mut l = Learned::default();
    let rules = v["syscalls"]
        .as_array()
        .ok_or("no \"syscalls\" list (not a profile learn wrote)")?;
    for (k, r) in rules.iter().enumerate() {
        let names: Vec<String> = r["names"]
            .as_array()
            .ok_or(format!("syscalls[{k}]: no \"names\""))?
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect();
        match (r["action"].as_str(), r["args"].as_array()) {
            (Some("SCMP_ACT_ALLOW"), None) => {
                for n in names {
                    l.allowed.retain(|a| a.name != n);
                    l.allowed.push(Allowed {
                        name: n,
                        alternatives: vec![vec![]],
                    });
                }
            }
            (Some("SCMP_ACT_ALLOW"), Some(args)) => {
                let mut alt = vec![];
                for a in args {
                    let idx = a["index"].as_u64().filter(|i| *i < 6);
                    let (value, two) = (a["value"].as_u64(), a["valueTwo"].as_u64().unwrap_or(0));
                    let c = match (idx, value, a["op"].as_str()) {
                        (Some(i), Some(v), Some("SCMP_CMP_EQ")) => (i as u32, 0xffff_ffff, v),
                        (Some(i), Some(m), Some("SCMP_CMP_MASKED_EQ")) => (i as u32, m, two),
                        _ => {
                            return Err(format!(
                                "syscalls[{k}]: an argument rule learn does not write: {a}"
                            ))
                        }
                    };
                    alt.push(c);
                }
                for n in names {
                    match l.allowed.iter_mut().find(|a| a.name == n) {
                        Some(a) if a.alternatives.iter().any(Vec::is_empty) => {}
                        Some(a) => a.alternatives.push(alt.clone()),
                        None => l.allowed.push(Allowed {
                            name: n,
                            alternatives: vec![alt.clone()],
                        }),
                    }
                }
            }
            (Some("SCMP_ACT_ERRNO"), None)
                if r["errnoRet"].as_i64() == Some(libc::ENOSYS as i64) =>
            {
                l.enosys.extend(names)
            }
            _ => {
                return Err(format!(
                    "syscalls[{k}]: a rule learn does not write: {}",
                    r["action"]
                ))
            }
        }
    }
    l.allowed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(l)
}

/// An alternative as the report names it: `socket(arg0=0x1, arg1=0x2)`, or the name alone.
fn shown(name: &str, alt: &[(u32, u64, u64)]) -> String {
    if alt.is_empty() {
        return name.to_string();
    }
    let a: Vec<String> = alt
        .iter()
        .map(|(i, _, v)| format!("arg{i}={v:#x}"))
        .collect();
    format!("{name}({})", a.join(", "))
}

/// What folding the events did.
#[derive(Default)]
struct Folded {
    added: Vec<String>,
    already: BTreeSet<String>,
    refused: Vec<String>,
    unconstrained: Vec<String>,
    compat: BTreeSet<String>,
    unknown: BTreeSet<String>,
}

/// Fold `events` into `l` and `o` within `ceiling`: each call's rules built again, as `learn`
/// builds them, from everything observed of it.
fn fold(
    l: &mut Learned,
    o: &mut Observed,
    events: &[Event],
    ceiling: &stockade_seccomp::Filter,
) -> Folded {
    let mut f = Folded::default();
    let mut touched = BTreeSet::new();
    for e in events {
        if e.syscall.starts_with("i386:") {
            f.compat.insert(e.syscall.clone());
            continue;
        }
        if e.syscall.starts_with('#') {
            f.unknown.insert(e.syscall.clone());
            continue;
        }
        let unconditional = l
            .allowed
            .iter()
            .any(|a| a.name == e.syscall && a.alternatives.iter().any(Vec::is_empty));
        if unconditional {
            f.already.insert(e.syscall.clone());
            continue;
        }
        o.note(&e.syscall, &e.args);
        touched.insert(e.syscall.clone());
    }
    let mini = Observed {
        syscalls: touched.clone(),
        args: o
            .args
            .iter()
            .filter(|(n, _)| touched.contains(*n))
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect(),
        args_overflow: o.args_overflow.clone(),
        ..Default::default()
    };
    let rebuilt = profile::build(&mini, ceiling);
    for name in &touched {
        let Some(r) = rebuilt.allowed.iter().find(|a| &a.name == name) else {
            continue;
        };
        match l.allowed.iter_mut().find(|a| &a.name == name) {
            Some(a) => {
                if r.alternatives.iter().any(Vec::is_empty) {
                    a.alternatives = vec![vec![]];
                    f.added.push(name.clone());
                    continue;
                }
                for alt in &r.alternatives {
                    if !a.alternatives.contains(alt) {
                        a.alternatives.push(alt.clone());
                        f.added.push(shown(name, alt));
                    }
                }
            }
            None => {
                f.added
                    .extend(r.alternatives.iter().map(|alt| shown(name, alt)));
                l.allowed.push(r.clone());
            }
        }
    }
    l.allowed.sort_by(|a, b| a.name.cmp(&b.name));
    let names = l.names();
    l.enosys.retain(|n| !names.contains(n));
    f.refused = rebuilt
        .refused
        .into_iter()
        .filter(|r| {
            touched
                .iter()
                .any(|t| r == t || r.starts_with(&format!("{t}(")))
        })
        .collect();
    f.unconstrained = rebuilt
        .unconstrained
        .into_iter()
        .filter(|u| {
            touched
                .iter()
                .any(|t| u.starts_with(&format!("{t}:")) || u.starts_with(&format!("{t} ")))
        })
        .collect();
    f
}

/// A shell's words of `cmd`: blanks separate, '...' is literal, "..." keeps \" \\ \$ \`, a
/// backslash outside quotes escapes the next character. No expansion of any kind.
fn words(cmd: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated \"".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("a backslash at the end".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// The files of DIR this writes, by name, with their new contents.
type Files = Vec<(&'static str, String)>;

/// seccomp.json and the files `learn` makes from it (see `report::write_outputs`).
fn profile_files(l: &Learned, comment: &str) -> Files {
    use crate::learn::allowance::{RUNC, STOCKADE};
    let pretty = |v: &Value| serde_json::to_string_pretty(v).expect("json");
    let mut sc = l.to_json("SCMP_ACT_ERRNO");
    sc["comment"] = json!(comment);
    let mut files = vec![("seccomp.json", pretty(&sc))];
    for (file, a) in [
        ("seccomp-runc.json", &RUNC),
        ("seccomp-stockade.json", &STOCKADE),
    ] {
        let (with, added) = l.with_allowance(a);
        let mut v = with.to_json_with(
            "SCMP_ACT_ERRNO",
            &added,
            &format!("runtime allowance: {}'s own calls after it loads the filter (measured; see report.txt)", a.runtime),
        );
        v["comment"] = json!(comment);
        files.push((file, pretty(&v)));
    }
    let (both, _) = l.with_allowance(&RUNC);
    let (both, _) = both.with_allowance(&STOCKADE);
    let mut k8s = both.to_json("SCMP_ACT_ERRNO");
    k8s["comment"] = json!(comment);
    files.push((
        "seccomp-profile.yaml",
        profile::to_spo_yaml(&k8s, "stockade-learned"),
    ));
    files
}

/// Write each file whole (a temporary file renamed over the old one).
fn write_files(dir: &Path, files: &Files) -> Result<()> {
    for (name, text) in files {
        let p = dir.join(name);
        let tmp = dir.join(format!(".{name}.update-{}", std::process::id()));
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &p))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::Other(format!("write {}: {e}", p.display()))
            })?;
    }
    Ok(())
}

fn read_json(dir: &Path, name: &str) -> Result<Value> {
    let p = dir.join(name);
    let text = std::fs::read_to_string(&p).map_err(|e| {
        Error::Other(format!(
            "learn update: {}: {e} (is it a directory `stockade learn --out DIR` wrote?)",
            p.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("learn update: {}: {e}", p.display())))
}

/// The workload under `l` (its default action sent to a listener that names what it denies),
/// as `learn` verifies: Ok with the calls denied along the way, or the error that says why not.
fn verify(
    u: &UpdateArgs,
    argv: Vec<String>,
    l: &Learned,
    needed: &[String],
    (root, exe): (&Path, &Path),
) -> Result<BTreeSet<String>> {
    let mut a = u.sandbox.clone();
    a.command = argv;
    a.misplaced.clear();
    a.learned = None;
    a.seccomp_mode = None;
    a.seccomp_events = None;
    let spec = crate::sandbox::build(&a, exe)?;
    let base = serde_json::to_value(&spec).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::create_dir_all(root).map_err(|e| Error::Other(format!("{}: {e}", root.display())))?;
    let runner = Runner {
        root,
        exe,
        test: None,
        ready_port: None,
        ready_timeout: Duration::from_secs(30),
        timeout: Duration::from_secs(600),
        runs: std::cell::Cell::new(0),
        started: Instant::now(),
    };
    let sock = root.join(format!(".learn-update-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let listener = crate::learn::notify::Listener::start(&sock)
        .map_err(|e| Error::Other(format!("learn update: listen at {}: {e}", sock.display())))?;
    let mut sc = l.to_json("SCMP_ACT_NOTIFY");
    sc["listenerPath"] = json!(sock);
    let o = runner.run(&crate::learn::configure(&base, needed, &sc, None));
    let denied = listener.finish();
    let _ = std::fs::remove_file(&sock);
    let o = o?;
    let names: BTreeSet<String> = denied.into_iter().map(|d| d.name).collect();
    if !o.ok {
        let list = names.iter().cloned().collect::<Vec<_>>().join(", ");
        return Err(Error::Other(format!(
            "learn update: the test fails under the updated profile ({} unchanged){}:\n{}",
            u.dir.display(),
            if list.is_empty() {
                String::new()
            } else {
                format!("; still denied: {list}")
            },
            tail(&o.output, 20)
        )));
    }
    Ok(names)
}

/// `stockade learn update`.
pub fn update(u: &UpdateArgs, root: &Path, exe: &Path) -> Result<i32> {
    let dir = &u.dir;
    if !u.sandbox.misplaced.is_empty() {
        return Err(crate::sandbox::misplaced_command(
            "learn update DIR --events FILE --test",
            &u.sandbox.misplaced,
        ));
    }
    let argv = match (&u.test, u.sandbox.command.is_empty()) {
        (Some(_), false) => {
            return Err(Error::Other(
                "learn update: give the test either as --test CMD or after --, not both".into(),
            ))
        }
        (Some(t), true) => {
            let w = words(t).map_err(|why| Error::Other(format!("--test {t:?}: {why}")))?;
            if w.is_empty() {
                return Err(Error::Other("--test: an empty command".into()));
            }
            Some(w)
        }
        (None, false) => Some(u.sandbox.command.clone()),
        (None, true) => None,
    };
    // everything read and checked before anything is written
    let events = crate::learn::events::read(&u.events, "--events ")?;
    let sc = read_json(dir, "seccomp.json")?;
    let mut l = learned_from_json(&sc).map_err(|why| {
        Error::Other(format!(
            "learn update: {}: {why}",
            dir.join("seccomp.json").display()
        ))
    })?;
    let observed_v = read_json(dir, "observed.json")?;
    let mut o: Observed = serde_json::from_value(observed_v).map_err(|e| {
        Error::Other(format!(
            "learn update: {}: {e}",
            dir.join("observed.json").display()
        ))
    })?;
    let mut caps = read_json(dir, "capabilities.json")?;
    let needed: Vec<String> = caps["needed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    let ceiling = crate::learn::ceiling_filter(&u.seccomp_ceiling, &needed)?;
    let f = fold(&mut l, &mut o, &events, &ceiling);

    let verified = match &argv {
        Some(argv) => Some(verify(u, argv.clone(), &l, &needed, (root, exe))?),
        None => None,
    };
    let mut text = format!(
        "\nlearn update ({}): {} event(s) from {}\n",
        crate::diag::now_rfc3339(),
        events.len(),
        u.events.display()
    );
    let list = |v: &mut dyn Iterator<Item = &String>| v.cloned().collect::<Vec<_>>().join(" ");
    text += &format!(
        "  added: {}\n",
        if f.added.is_empty() {
            "nothing".to_string()
        } else {
            list(&mut f.added.iter())
        }
    );
    if !f.already.is_empty() {
        text += &format!(
            "  allowed already (the events are older than the profile): {}\n",
            list(&mut f.already.iter())
        );
    }
    if !f.refused.is_empty() {
        text += &format!(
            "  refused by the seccomp ceiling ({}), left denied: {}\n",
            u.seccomp_ceiling,
            list(&mut f.refused.iter())
        );
    }
    for n in &f.unconstrained {
        text += &format!("  left unconstrained: {n}\n");
    }
    if !f.compat.is_empty() {
        text += &format!(
            "  32-bit (i386) calls, left denied (the profile is for the native ABI only): {}\n",
            list(&mut f.compat.iter())
        );
    }
    if !f.unknown.is_empty() {
        text += &format!(
            "  numbers with no name here, left denied: {}\n",
            list(&mut f.unknown.iter())
        );
    }
    let comment = match &verified {
        Some(_) => "learned by stockade learn; updated from events by learn update; verified",
        None => "learned by stockade learn; updated from events by learn update; UNVERIFIED",
    };
    match (&verified, &argv) {
        (Some(denied), Some(argv)) => {
            text += &format!(
                "  verification: passed: {}{}\n",
                crate::sandbox::shell_words(argv),
                if denied.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (denied, and it passed without them: {})",
                        list(&mut denied.iter())
                    )
                }
            );
        }
        _ => text += "  verification: none (no --test): marked UNVERIFIED\n",
    }
    print!("{text}");
    if f.added.is_empty() {
        // nothing changes in the profile: DIR stays as it was (the report aside)
        let mut report = std::fs::read_to_string(dir.join("report.txt")).unwrap_or_default();
        report += &text;
        write_files(dir, &vec![("report.txt", report)])?;
        return Ok(0);
    }
    let mut files = profile_files(&l, comment);
    files.push((
        "observed.json",
        serde_json::to_string_pretty(&o).expect("json"),
    ));
    caps["verified"] = json!(verified.is_some());
    files.push((
        "capabilities.json",
        serde_json::to_string_pretty(&caps).expect("json"),
    ));
    let mut report = std::fs::read_to_string(dir.join("report.txt")).unwrap_or_default();
    report += &text;
    files.push(("report.txt", report));
    if verified.is_none() {
        files.push((
            "UNVERIFIED",
            "updated by learn update without --test: not verified by re-running the workload\n"
                .into(),
        ));
    }
    write_files(dir, &files)?;
    if verified.is_some() {
        let _ = std::fs::remove_file(dir.join("UNVERIFIED"));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_as_a_shell_would() {
        assert_eq!(
            words(r#"/bin/busybox sh -c 'for i in 1 2; do mkdir /tmp/d$i; done' "a b" c\ d"#)
                .unwrap(),
            vec![
                "/bin/busybox",
                "sh",
                "-c",
                "for i in 1 2; do mkdir /tmp/d$i; done",
                "a b",
                "c d"
            ]
        );
        assert!(words("'open").is_err());
        let argv: Vec<String> = ["sh", "-c", "echo 'it''s' $x", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(words(&crate::sandbox::shell_words(&argv)).unwrap(), argv);
    }

    #[test]
    fn a_learned_profile_reads_back_the_same() {
        let l = Learned {
            allowed: vec![
                Allowed {
                    name: "read".into(),
                    alternatives: vec![vec![]],
                },
                Allowed {
                    name: "socket".into(),
                    alternatives: vec![vec![(0, 0xffff_ffff, 1), (1, 0xf, 1)]],
                },
            ],
            enosys: vec!["clone3".into()],
            ..Default::default()
        };
        let v = l.to_json("SCMP_ACT_ERRNO");
        let back = learned_from_json(&v).unwrap();
        assert_eq!(back.to_json("SCMP_ACT_ERRNO"), v);
    }
}
