//! `stockade learn`, the command (a front end): the workload's own test scenario run under
//! the recorder, the capability trial, the profile built and verified, `learn merge` and
//! `learn update`. What the engine itself needs to learn (the recorder, profiles, the report,
//! learning under engines) is the subsystem [`crate::learn`]; this module drives it with
//! `stockade run` of a bundle made from the sandbox's flags, so what is learned is what the
//! engine really does.

mod run;
pub mod update;
pub mod verify;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::learn::record::{self, Observed, Recorder};
use crate::learn::report::{reference_counts, write_outputs, Report};
use crate::learn::{ceiling_filter, configure, notify, permissive, profile, Trial};
use crate::sandbox::SandboxArgs;
use run::{tail, Runner};

#[derive(Debug, clap::Args, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LearnCmd {
    #[command(subcommand)]
    pub merge: Option<LearnSub>,
    #[command(flatten)]
    pub args: LearnArgs,
}

#[derive(Debug, clap::Subcommand, Clone)]
pub enum LearnSub {
    /// Union of several scenarios' observations (their observed.json), written as one profile
    Merge {
        /// Output directories of earlier `learn` runs
        dirs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "default")]
        seccomp_ceiling: String,
    },
    /// Add the calls a profile in complain or enforce mode logged (sandbox --seccomp-events,
    /// the annotation org.stockade.seccomp.events) to what `learn --out DIR` wrote
    Update(Box<update::UpdateArgs>),
    /// Prove a learned profile against a bundle's workload (and its test), as learn proves its
    /// own: for profiles learned under engines
    Verify(Box<verify::VerifyArgs>),
}

#[derive(Debug, clap::Args, Clone, Default)]
pub struct LearnArgs {
    /// Where the profile, capabilities and report go
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The scenario: a shell command run on the host side inside the sandbox's network
    /// namespace once --ready holds; its exit status decides (default: the workload's own)
    #[arg(long)]
    pub test: Option<String>,
    /// Seconds --ready may take
    #[arg(long, default_value_t = 30)]
    pub ready_timeout: u64,
    /// Seconds one run of the scenario may take
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Capabilities the learning run may use: docker (Docker's 14), all, none, or CAP,CAP,...
    #[arg(long, default_value = "docker")]
    pub caps_ceiling: String,
    /// What the learned profile may never exceed: default, docker or a profile file
    #[arg(long, default_value = "default")]
    pub seccomp_ceiling: String,
    /// Write the learned profile without re-running the scenario under it
    #[arg(long)]
    pub no_verify: bool,
    /// Verification rounds that may add syscalls the recording missed
    #[arg(long, default_value_t = 2)]
    pub refine: u32,
    /// Learn for an OCI bundle instead of a host command
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// A line on stderr as each stage starts (recording, each capability trial, each
    /// verification round) even when stderr is not a terminal (on one, always)
    #[arg(long)]
    pub progress: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// The capability ceiling as names, checked against what this runtime can grant.
fn caps_ceiling(s: &str) -> Result<(Vec<String>, Vec<String>)> {
    let own = caps::read(None, caps::CapSet::Bounding).unwrap_or_default();
    let wanted: Vec<String> = match s {
        "docker" => stockade_seccomp::DOCKER_DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .collect(),
        "all" => caps::all().iter().map(|c| c.to_string()).collect(),
        "none" => vec![],
        list => {
            let mut v = vec![];
            for c in list.split(',').filter(|c| !c.is_empty()) {
                let name = crate::capabilities::cap_name(c);
                if name.parse::<caps::Capability>().is_err() {
                    return Err(Error::Other(format!(
                        "--caps-ceiling: unknown capability {c:?} (docker, all, or CAP_X,CAP_Y)"
                    )));
                }
                v.push(name);
            }
            v
        }
    };
    let (mut ok, mut missing) = (vec![], vec![]);
    for c in wanted {
        match c.parse::<caps::Capability>() {
            Ok(cap) if own.contains(&cap) => ok.push(c),
            _ => missing.push(c),
        }
    }
    if s != "all" && !missing.is_empty() {
        return Err(Error::Other(format!(
            "--caps-ceiling: this runtime's own bounding set lacks {} (a capability it does not have cannot be given)",
            missing.join(", ")
        )));
    }
    Ok((ok, missing))
}

/// The spec the workload runs with: the bundle's config.json, or the sandbox flags'.
fn base_spec(a: &LearnArgs, exe: &Path) -> Result<Value> {
    if let Some(b) = &a.bundle {
        let file = b.join("config.json");
        let spec = crate::spec::load(&file)?;
        let mut v = serde_json::to_value(&spec).map_err(|e| Error::Other(e.to_string()))?;
        let root = crate::spec::rootfs_path(&spec, b);
        v["root"]["path"] = json!(root);
        return Ok(v);
    }
    // learn's --ready is the test's wait, not a phase of the sandbox's profile
    let sandbox = crate::sandbox::SandboxArgs {
        ready: None,
        ..a.sandbox.clone()
    };
    let spec = crate::sandbox::build(&sandbox, exe)?;
    let mut v = serde_json::to_value(&spec).map_err(|e| Error::Other(e.to_string()))?;
    // the scenario's runs are piped, never a terminal (the sandbox gives one on a terminal)
    v["process"]["terminal"] = json!(false);
    v["process"]
        .as_object_mut()
        .map(|p| p.remove("consoleSize"));
    Ok(v)
}

fn check_out_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)
        .and_then(|_| std::fs::write(out.join(".write-test"), b""))
        .and_then(|_| std::fs::remove_file(out.join(".write-test")))
        .map_err(|e| Error::Other(format!("--out {}: not writable: {e}", out.display())))
}

/// eBPF maps and raw tracepoint programs need root (CAP_BPF and CAP_PERFMON, or
/// CAP_SYS_ADMIN): say so, never fall back to something lossy. (The capabilities are read, not
/// tried: a map made and freed only to see cost up to a millisecond; a kernel without BPF
/// still fails clearly when the recorder starts.)
fn ebpf_available() -> Result<()> {
    use caps::{has_cap, CapSet, Capability};
    let has = |c| has_cap(None, CapSet::Effective, c).unwrap_or(false);
    let admin = has(Capability::CAP_SYS_ADMIN);
    if admin || (has(Capability::CAP_BPF) && has(Capability::CAP_PERFMON)) {
        return Ok(());
    }
    Err(Error::Other(
        "learn needs eBPF (maps and raw tracepoints: root, or CAP_BPF and CAP_PERFMON): this process has neither CAP_SYS_ADMIN nor CAP_BPF and CAP_PERFMON".into(),
    ))
}

/// The recorder identifies the workload by its unified (cgroup v2) cgroup: there must be one.
fn unified_available() -> Result<()> {
    let layout = crate::cgroups::Layout::detect()?;
    if layout.unified.is_none() {
        return Err(Error::Other("learn: no cgroup2 (unified) hierarchy is mounted: the recorder identifies the workload by its cgroup v2".into()));
    }
    Ok(())
}

/// The stage lines on stderr: on a terminal, or with `--progress`.
pub(crate) struct Progress {
    on: bool,
}

impl Progress {
    fn new(asked: bool) -> Progress {
        use std::io::IsTerminal;
        Progress {
            on: asked || std::io::stderr().is_terminal(),
        }
    }

    fn stage(&self, what: std::fmt::Arguments) {
        if self.on {
            eprintln!("stockade: learn: {what}");
        }
    }
}

/// `--out`, made as `mkdir -p` would: the directories this made, deepest first (removed again,
/// when empty, if learning fails).
fn make_out_dir(out: &Path) -> Result<Vec<PathBuf>> {
    let mut made = vec![];
    let mut p = Some(out);
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        made.push(d.to_path_buf());
        p = d.parent();
    }
    if let Err(e) = check_out_dir(out) {
        remove_if_empty(&made);
        return Err(e);
    }
    Ok(made)
}

/// Remove these directories (deepest first) that are still empty.
fn remove_if_empty(made: &[PathBuf]) {
    for d in made {
        // remove_dir removes only an empty directory
        let _ = std::fs::remove_dir(d);
    }
}

/// Delta debugging over `candidates`: drop a chunk when the scenario passes without it, split a
/// chunk that cannot go; a single capability that cannot go is needed.
fn trial(
    runner: &Runner,
    base: &Value,
    candidates: &[String],
    filter: &Value,
    progress: &Progress,
) -> Result<Trial> {
    let mut keep: Vec<String> = candidates.to_vec();
    let mut queue: Vec<Vec<String>> = vec![candidates.to_vec()];
    let mut needed = vec![];
    let mut runs = 0;
    while let Some(chunk) = queue.pop() {
        if chunk.is_empty() {
            continue;
        }
        let without: Vec<String> = keep
            .iter()
            .filter(|c| !chunk.contains(c))
            .cloned()
            .collect();
        runs += 1;
        // delta debugging: at most 2n - 1 runs for n candidates (fewer when chunks go whole)
        progress.stage(format_args!(
            "capability trial {runs} of at most {}: without {}",
            2 * candidates.len() - 1,
            chunk.join(", ")
        ));
        let o = runner.run(&configure(base, &without, filter, None))?;
        if o.ok {
            keep = without;
        } else if chunk.len() == 1 {
            needed.push((chunk[0].clone(), tail(&o.output, 15)));
        } else {
            let (a, b) = chunk.split_at(chunk.len() / 2);
            queue.push(b.to_vec());
            queue.push(a.to_vec());
        }
    }
    let not_needed = candidates
        .iter()
        .filter(|c| !keep.contains(c))
        .cloned()
        .collect();
    needed.sort();
    Ok(Trial {
        needed,
        not_needed,
        runs,
    })
}

/// `stockade learn`: returns the exit code (0 only when verified, or written with
/// `--no-verify`).
pub fn learn(cmd: &LearnCmd, root: &Path, exe: &Path) -> Result<i32> {
    if let Some(LearnSub::Merge {
        dirs,
        out,
        seccomp_ceiling,
    }) = &cmd.merge
    {
        return merge(dirs, out, seccomp_ceiling);
    }
    if let Some(LearnSub::Update(u)) = &cmd.merge {
        return update::update(u, root, exe);
    }
    if let Some(LearnSub::Verify(v)) = &cmd.merge {
        return verify::verify(v, root, exe);
    }
    let a = &cmd.args;
    if a.sandbox.seccomp_mode.is_some() || a.sandbox.seccomp_events.is_some() {
        return Err(Error::Other(
            "learn: --seccomp-mode and --seccomp-events run a learned profile (sandbox --learned DIR); learn records under a permissive filter".into(),
        ));
    }
    if !a.sandbox.misplaced.is_empty() {
        return Err(crate::sandbox::misplaced_command(
            "learn",
            &a.sandbox.misplaced,
        ));
    }
    let out = a
        .out
        .clone()
        .ok_or_else(|| Error::Other("learn: --out DIR is required".into()))?;
    let progress = Progress::new(a.progress);
    let (ceiling_caps, missing_caps) = caps_ceiling(&a.caps_ceiling)?;
    // the ceiling is checked before anything runs (with the ceiling's capabilities)
    let learning_filter = permissive(&profile::enosys_of(&ceiling_filter(
        &a.seccomp_ceiling,
        &ceiling_caps,
    )?));
    let ready_port = match &a.sandbox.ready {
        None => None,
        Some(r) => Some(
            r.strip_prefix("tcp:")
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| Error::Other(format!("--ready {r:?}: use tcp:PORT")))?,
        ),
    };
    if ready_port.is_some() && a.test.is_none() {
        return Err(Error::Other(
            "learn: --ready needs a --test scenario".into(),
        ));
    }
    // what the recording needs, before anything is made
    ebpf_available()?;
    let made = make_out_dir(&out)?;
    let checked = Checked {
        ceiling_caps,
        missing_caps,
        learning_filter,
        ready_port,
    };
    let r = learn_into(a, (root, exe), &out, checked, &progress);
    // a learn that failed leaves no empty --out of its making (a draft, if written, stays)
    remove_if_empty(&made);
    r
}

/// What `learn` worked out from its flags before making anything.
struct Checked {
    ceiling_caps: Vec<String>,
    missing_caps: Vec<String>,
    learning_filter: Value,
    ready_port: Option<u16>,
}

/// The recording run: the workload under the permissive filter and the capability ceiling,
/// watched by the recorder from its filter's loading; it must pass, and make no x32 calls.
fn record(
    runner: &Runner,
    base: &Value,
    (ceiling_caps, learning_filter): (&[String], &Value),
    progress: &Progress,
) -> Result<(record::Observed, Option<BTreeSet<String>>)> {
    // the run's runtime names the container's cgroup to the recorder once it exists (and before
    // anything runs in it): no cgroup of learn's own around it, in every hierarchy
    unified_available()?;
    let recorder = Recorder::start_with(0, 0, false).map_err(|e| {
        Error::Other(format!(
            "learn needs eBPF raw tracepoints (sys_enter, cap_capable) as root: {e}"
        ))
    })?;
    let state_id = recorder
        .state_id()
        .map_err(|e| Error::Other(format!("learn: {e}")))?;
    progress.stage(format_args!(
        "recording the workload's system calls and capability checks"
    ));
    // with --ready: what was seen until the server was ready, then a fresh phase
    let startup: std::cell::RefCell<Option<Observed>> = Default::default();
    let on_ready = || {
        if let Ok(o) = recorder.observed() {
            if recorder.reset_seen().is_ok() {
                *startup.borrow_mut() = Some(o);
            }
        }
    };
    let first = runner.run_recorded(
        &configure(base, ceiling_caps, learning_filter, None),
        Some(state_id),
        runner.ready_port.map(|_| &on_ready as &dyn Fn()),
    )?;
    let armed = recorder
        .armed()
        .map_err(|e| Error::Other(format!("learn: {e}")))?;
    let mut observed = recorder
        .observed()
        .map_err(|e| Error::Other(format!("learn: read the recording: {e}")))?;
    drop(recorder);
    let serving = startup.into_inner().map(|before| {
        let serving = observed.syscalls.clone();
        observed.merge(&before);
        serving
    });
    if !first.ok {
        return Err(Error::Other(format!(
            "learn: the scenario fails even before any profile is applied (nothing written):\n{}",
            tail(&first.output, 30)
        )));
    }
    if !armed {
        return Err(Error::Other(
            "learn: the recorder never saw the container load its seccomp filter".into(),
        ));
    }
    if observed.x32 {
        return Err(Error::Other(
            "learn: the workload made x32 system calls; stockade learns native x86_64 profiles only".into(),
        ));
    }
    if !observed.compat.is_empty() {
        eprintln!(
            "stockade: warning: the workload made 32-bit (i386) system calls: {}; the learned profile is for the native ABI only, so they stay denied (EPERM)",
            observed.compat.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok((observed, serving))
}

/// With `--ready`: `seccomp-serving.json`, the learned profile without the calls made only
/// before the server was ready (`startup_only`), for `sandbox --learned DIR --ready`; and the
/// report's line naming them.
fn write_serving(
    out: &Path,
    learned: &profile::Learned,
    startup_only: &BTreeSet<String>,
) -> Result<()> {
    let mut l = learned.clone();
    l.allowed.retain(|a| !startup_only.contains(&a.name));
    let mut sc = l.to_json("SCMP_ACT_ERRNO");
    sc["comment"] = json!(format!(
        "learned by stockade learn: the calls after --ready held (startup only, left out: {})",
        startup_only.iter().cloned().collect::<Vec<_>>().join(" ")
    ));
    let io = |f: &str, e: std::io::Error| Error::Other(format!("{}: {e}", out.join(f).display()));
    std::fs::write(
        out.join("seccomp-serving.json"),
        serde_json::to_string_pretty(&sc).expect("json"),
    )
    .map_err(|e| io("seccomp-serving.json", e))?;
    let mut report = std::fs::OpenOptions::new()
        .append(true)
        .open(out.join("report.txt"))
        .map_err(|e| io("report.txt", e))?;
    std::io::Write::write_all(
        &mut report,
        format!(
            "\nseccomp-serving.json allows {} syscalls: those made after --ready held; made only during startup (denied once the server serves, under sandbox --learned DIR --ready): {}\n",
            l.allowed.len(),
            startup_only.iter().cloned().collect::<Vec<_>>().join(" ")
        )
        .as_bytes(),
    )
    .map_err(|e| io("report.txt", e))
}

/// The recording, trials, profile and verification, written to `out`.
fn learn_into(
    a: &LearnArgs,
    (root, exe): (&Path, &Path),
    out: &Path,
    checked: Checked,
    progress: &Progress,
) -> Result<i32> {
    let Checked {
        ceiling_caps,
        missing_caps,
        learning_filter,
        ready_port,
    } = checked;
    let base = base_spec(a, exe)?;
    std::fs::create_dir_all(root).map_err(|e| Error::Other(format!("{}: {e}", root.display())))?;
    run::stop_on_signals(root, exe);
    let runner = Runner {
        root,
        exe,
        test: a.test.as_deref(),
        ready_port,
        ready_timeout: Duration::from_secs(a.ready_timeout),
        timeout: Duration::from_secs(a.timeout),
        runs: std::cell::Cell::new(0),
        started: Instant::now(),
    };

    // the report's reference figures (two more profiles compiled) while the workload runs
    let reference = {
        let caps = ceiling_caps.clone();
        std::thread::spawn(move || reference_counts(&caps))
    };

    // 1. record
    let (observed, serving) = record(&runner, &base, (&ceiling_caps, &learning_filter), progress)?;
    let startup_only: Option<BTreeSet<String>> = serving.map(|s| {
        observed
            .syscalls
            .iter()
            .filter(|n| !s.contains(*n))
            .cloned()
            .collect()
    });
    let record_secs = runner.started.elapsed().as_secs_f64();

    // 2. capabilities: trial of what was checked and granted
    let candidates: Vec<String> = ceiling_caps
        .iter()
        .filter(|c| observed.caps_granted.contains(*c))
        .cloned()
        .collect();
    let t0 = Instant::now();
    let trial = trial(&runner, &base, &candidates, &learning_filter, progress)?;
    let trial_secs = t0.elapsed().as_secs_f64();
    let needed: Vec<String> = trial.needed.iter().map(|(c, _)| c.clone()).collect();

    // 3. the profile, within the ceiling (for the capabilities that stay)
    let ceiling = ceiling_filter(&a.seccomp_ceiling, &needed)?;
    let mut learned = profile::build(&observed, &ceiling);
    let mut report = Report::new(
        observed.clone(),
        ceiling_caps.clone(),
        &trial,
        &a.seccomp_ceiling,
        reference.join().unwrap_or_default(),
    );
    report.missing_caps = missing_caps;
    report.candidates = candidates;
    report.record_secs = record_secs;
    report.trial_secs = trial_secs;
    write_outputs(out, &learned, &report, &needed)?;
    if let Some(s) = &startup_only {
        write_serving(out, &learned, s)?;
    }
    if a.no_verify {
        println!("{}", report.text(&learned));
        return Ok(0);
    }

    // 4. verify (and refine)
    let t0 = Instant::now();
    let sock = root.join(format!(".learn-{}.sock", std::process::id()));
    let mut round = 0;
    let verified = loop {
        let _ = std::fs::remove_file(&sock);
        let listener = notify::Listener::start(&sock)
            .map_err(|e| Error::Other(format!("learn: listen at {}: {e}", sock.display())))?;
        progress.stage(format_args!(
            "verification round {} of at most {}: the scenario under the learned profile",
            round + 1,
            a.refine + 1
        ));
        let mut sc = learned.to_json("SCMP_ACT_NOTIFY");
        sc["listenerPath"] = json!(sock);
        let o = runner.run(&configure(&base, &needed, &sc, None));
        let denied = listener.finish();
        let _ = std::fs::remove_file(&sock);
        let o = o?;
        let names: BTreeSet<String> = denied.iter().map(|d| d.name.clone()).collect();
        report
            .verification
            .push((o.ok, denied, tail(&o.output, 20)));
        if o.ok {
            report.tolerated = names;
            break true;
        }
        if names.is_empty() || round >= a.refine {
            break false;
        }
        let added = learned.add_missed(&names, &ceiling);
        if added.is_empty() {
            break false;
        }
        report.missed.extend(added);
        round += 1;
    };
    report.verify_secs = t0.elapsed().as_secs_f64();
    report.verified = Some(verified);
    write_outputs(out, &learned, &report, &needed)?;
    if let Some(s) = &startup_only {
        write_serving(out, &learned, s)?;
    }
    println!("{}", report.text(&learned));
    if !verified {
        let (_, denied, output) = report.verification.last().expect("one round");
        let names: BTreeSet<&str> = denied.iter().map(|d| d.name.as_str()).collect();
        return Err(Error::Other(format!(
            "learn: verification failed: the scenario does not pass under the learned profile{} (draft left in {}, marked unverified):\n{output}",
            if names.is_empty() {
                String::new()
            } else {
                format!(
                    "; denied: {}",
                    names.into_iter().collect::<Vec<_>>().join(", ")
                )
            },
            out.display()
        )));
    }
    Ok(0)
}

/// `learn merge`: the union of earlier runs' observations, as one (unverified) profile.
fn merge(dirs: &[PathBuf], out: &Path, ceiling: &str) -> Result<i32> {
    if dirs.is_empty() {
        return Err(Error::Other(
            "learn merge: name at least one directory".into(),
        ));
    }
    let mut all = Observed::default();
    let mut needed: BTreeSet<String> = BTreeSet::new();
    for d in dirs {
        let read = |f: &str| {
            std::fs::read_to_string(d.join(f))
                .map_err(|e| Error::Other(format!("{}: {e}", d.join(f).display())))
        };
        let o: Observed = serde_json::from_str(&read("observed.json")?)
            .map_err(|e| Error::Other(format!("{}: {e}", d.join("observed.json").display())))?;
        all.merge(&o);
        let caps: Value = serde_json::from_str(&read("capabilities.json")?)
            .map_err(|e| Error::Other(format!("{}: {e}", d.join("capabilities.json").display())))?;
        needed.extend(
            caps["needed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(str::to_string)),
        );
    }
    let needed: Vec<String> = needed.into_iter().collect();
    let f = ceiling_filter(ceiling, &needed)?;
    let learned = profile::build(&all, &f);
    let trial = Trial::untried(&needed, "(from an earlier run)");
    let report = Report::new(
        all,
        needed.clone(),
        &trial,
        ceiling,
        reference_counts(&needed),
    );
    let made = make_out_dir(out)?;
    if let Err(e) = write_outputs(out, &learned, &report, &needed) {
        remove_if_empty(&made);
        return Err(e);
    }
    println!("{}", report.text(&learned));
    Ok(0)
}
