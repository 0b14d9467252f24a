//! The OCI runtime conformance suite of opencontainers/runtime-tools: the programs of its
//! validation/ directory, built from Debian's source package by tests/conformance.sh (cached per
//! machine under /var/cache/stockade-test, never in git), each run against runc, against stockade
//! with the hardening policy off (STOCKADE_POLICY=none: exact configs, as runc runs them) and
//! against stockade with the policy on (the default). A program passes when it exits 0 and
//! prints no `not ok` line (a `# TODO` line is not a failure in TAP). Every program runc passes,
//! stockade with the policy off passes too, save those listed in RUNC_SPECIFIC; the policy-on run
//! is reported, not judged.
//!
//! The suite takes `runtimetest` (copied into each bundle as the container's program) and
//! `rootfs-amd64.tar.gz` (upstream's test rootfs: a static busybox, /etc/passwd, /etc/group,
//! empty /dev, /proc and /sys) from its working directory, and calls `$RUNTIME` with runc's
//! command shapes (`create --bundle DIR ID`, `start`, `state`, `kill`, `delete`). Each runtime
//! gets its own `--root` through a wrapper script that is `$RUNTIME`. After each program,
//! whatever it left is removed and noted: containers in the runtime's root, mounts under the
//! scratch directory (linux_ns_itype runs a container in the host's mount namespace, and runc
//! leaves its /proc, /dev and /sys mounts there), and cgroup directories named as the suite's (its `/cgrouptest` and
//! `testdir/cgrouptest/container`, or a container ID) that were not there at the start, with the
//! processes still in them. The counts and every failing program's first `not ok` line (with
//! the error or standard error that explains it) are written to standard error past the test
//! harness's capture, so a passing run shows them too. One run at a time per machine (a lock
//! beside the cached suite).

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BUILD_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance.sh");

/// Programs runc passes that stockade with the policy off may fail, each for a reason in the
/// program (it checks runc's own behaviour where the spec leaves the runtime a choice), never
/// for a defect of stockade.
const RUNC_SPECIFIC: &[(&str, &str)] = &[];

/// What one program did.
#[derive(Default)]
struct Outcome {
    code: Option<i32>,
    oks: usize,
    not_oks: usize,
    first_not_ok: Option<String>,
    /// The YAML block after the first `not ok` line, or the program's standard error.
    detail: String,
    secs: f64,
    /// What it left behind, removed after it.
    left: Vec<String>,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.code == Some(0) && self.not_oks == 0
    }

    /// One line: the first `not ok` line, or how the program ended.
    fn summary(&self) -> String {
        match (&self.first_not_ok, self.code) {
            (Some(l), _) => l.clone(),
            (None, Some(c)) => format!("exit {c} with no `not ok` line"),
            (None, None) => "killed (timed out?)".into(),
        }
    }
}

/// A runtime the suite drives.
struct Subject {
    label: &'static str,
    /// The wrapper's body before `exec`: the policy setting.
    env: &'static str,
    exec: String,
}

#[test]
fn runtime_tools_validation() {
    require_root();
    let t0 = Instant::now();
    let suite = build_suite();
    // one run at a time on this machine: the programs share fixed cgroup paths, and a run kills
    // what is in the suite's new cgroups after each program
    let lock = std::fs::File::create(suite.with_file_name(".run.lock")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; the lock goes with the file at the end of the test.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let programs = programs(&suite);
    assert!(
        programs.len() >= 50,
        "only {} programs in {}",
        programs.len(),
        suite.display()
    );
    // the suite's fixed cgroup paths as an earlier run that was killed may have left them
    let mut stale: Vec<PathBuf> = cgroup_dirs()
        .into_iter()
        .filter(|p| {
            p.components()
                .any(|c| c.as_os_str() == "cgrouptest" || c.as_os_str() == "testdir")
        })
        .collect();
    stale.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    stale.iter().for_each(|d| remove_cgroup(d));
    let baseline = cgroup_dirs();

    let subjects = [
        Subject {
            label: "runc",
            env: "",
            exec: "runc".into(),
        },
        Subject {
            label: "stockade (policy off)",
            env: "export STOCKADE_POLICY=none\n",
            exec: env!("CARGO_BIN_EXE_stockade").into(),
        },
        Subject {
            label: "stockade (policy on)",
            env: "unset STOCKADE_POLICY\n",
            exec: env!("CARGO_BIN_EXE_stockade").into(),
        },
    ];
    let results: Vec<BTreeMap<String, Outcome>> = subjects
        .iter()
        .map(|s| run_all(s, &suite, &programs, &baseline))
        .collect();
    let parents = remove_new_empty_parents(&baseline);

    let (runc, off, on) = (&results[0], &results[1], &results[2]);
    let count = |r: &BTreeMap<String, Outcome>| r.values().filter(|o| o.passed()).count();
    let mut report = format!(
        "\n== opencontainers/runtime-tools validation ({})\n",
        suite.display()
    );
    use std::fmt::Write as _;
    for (s, r) in subjects.iter().zip(&results) {
        let failed: Vec<_> = r.iter().filter(|(_, o)| !o.passed()).collect();
        let secs: f64 = r.values().map(|o| o.secs).sum();
        let _ = writeln!(
            report,
            "\n{}: {} of {} programs pass ({secs:.0} s)",
            s.label,
            r.len() - failed.len(),
            r.len(),
        );
        for (name, o) in failed {
            let _ = writeln!(report, "  FAIL {name}: {}", o.summary());
            for l in o.detail.lines().take(12) {
                let cut: String = l.chars().take(300).collect();
                let _ = writeln!(report, "       {cut}");
            }
        }
        for (name, o) in r.iter().filter(|(_, o)| !o.left.is_empty()) {
            let _ = writeln!(report, "  left by {name} (removed): {}", tally(&o.left));
        }
    }
    if !parents.is_empty() {
        let _ = writeln!(report, "\nempty parents removed: {}", parents.join(", "));
    }
    let _ = writeln!(
        report,
        "\nprograms passed: runc {}, stockade policy off {}, stockade policy on {} (of {}); \
         {:.0} s in all",
        count(runc),
        count(off),
        count(on),
        programs.len(),
        t0.elapsed().as_secs_f64()
    );
    // straight to the descriptor, past the test harness's capture: CI's log shows the counts
    // and every failure of a passing run too
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(report.as_bytes());

    // nothing of the suite's is left anywhere
    let stray: Vec<_> = cgroup_dirs()
        .difference(&baseline)
        .filter(|p| is_suites(p))
        .cloned()
        .collect();
    assert!(stray.is_empty(), "cgroup directories left: {stray:?}");

    assert!(
        runc.get("default").is_some_and(Outcome::passed),
        "runc fails the suite's `default` program: this machine cannot run the suite"
    );
    let regressions: Vec<String> = runc
        .iter()
        .filter(|(name, o)| o.passed() && !off[*name].passed())
        .filter(|(name, _)| !RUNC_SPECIFIC.iter().any(|(n, _)| n == name))
        .map(|(name, _)| format!("{name}: {}", off[name].summary()))
        .collect();
    assert!(
        regressions.is_empty(),
        "programs runc passes and stockade (policy off) fails:\n  {}",
        regressions.join("\n  ")
    );
    for (name, why) in RUNC_SPECIFIC {
        assert!(
            runc.get(*name).is_some_and(Outcome::passed) && !off[*name].passed(),
            "{name} is listed as runc-specific ({why}) but no longer needs to be"
        );
    }
}

/// The suite's directory, built by conformance.sh when this machine has none.
fn build_suite() -> PathBuf {
    let t0 = Instant::now();
    let out = Command::new("bash")
        .arg(BUILD_SCRIPT)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{BUILD_SCRIPT} failed (it needs the Go packages .ci/run installs)"
    );
    let dir = PathBuf::from(stdout(&out).trim());
    eprintln!(
        "suite at {} ({:.1} s)",
        dir.display(),
        t0.elapsed().as_secs_f64()
    );
    dir
}

fn programs(suite: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(suite.join("validation"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".t")
                .map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

/// Every program against one runtime, one at a time (the cgroup tests share fixed paths).
fn run_all(
    s: &Subject,
    suite: &Path,
    programs: &[String],
    baseline: &BTreeSet<PathBuf>,
) -> BTreeMap<String, Outcome> {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let root = dir.join("root");
    std::fs::create_dir(&root).unwrap();
    for f in ["runtimetest", "rootfs-amd64.tar.gz"] {
        // a copy, not a link: the suite copies runtimetest into each bundle and would copy a
        // symbolic link as one
        std::fs::copy(suite.join(f), dir.join(f)).unwrap();
    }
    let wrapper = dir.join("runtime");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{}exec {} --root {} \"$@\"\n",
            s.env,
            s.exec,
            root.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut results = BTreeMap::new();
    for name in programs {
        let tmp = dir.join("tmp").join(name);
        std::fs::create_dir_all(&tmp).unwrap();
        let out_path = dir.join(format!("{name}.out"));
        let err_path = dir.join(format!("{name}.err"));
        let t0 = Instant::now();
        let status = timeout()
            .arg(suite.join("validation").join(format!("{name}.t")))
            .current_dir(dir)
            .env("RUNTIME", &wrapper)
            .env("TMPDIR", &tmp)
            .env_remove("STOCKADE_POLICY")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let tap = std::fs::read_to_string(&out_path).unwrap_or_default();
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        let mut o = parse(&tap, &err);
        o.code = status.code();
        o.secs = secs;
        o.left = clean_up(&wrapper, &root, dir, baseline);
        results.insert(name.clone(), o);
    }
    let left = clean_up(&wrapper, &root, dir, baseline);
    assert!(left.is_empty(), "{}: left after the run: {left:?}", s.label);
    results
}

/// The counts of a TAP stream, its first failure and what explains it.
fn parse(tap: &str, err: &str) -> Outcome {
    let mut o = Outcome::default();
    let lines: Vec<&str> = tap.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let failed = l.starts_with("not ok");
        if !failed && !l.starts_with("ok") {
            continue;
        }
        if !failed || l.contains("# TODO") {
            o.oks += 1;
            continue;
        }
        o.not_oks += 1;
        if o.first_not_ok.is_none() {
            o.first_not_ok = Some(l.to_string());
            // its YAML block, or the `#` diagnostics after it; runtimetest's whole TAP output
            // (a JSON string in the block when the program ran it inside a container) shortened
            // to its first failure
            o.detail = lines[i + 1..]
                .iter()
                .take_while(|l| !l.starts_with("ok") && !l.starts_with("not ok"))
                .map(|l| l.trim())
                .filter(|l| !matches!(*l, "---" | "..." | "{" | "}"))
                .map(|l| match l.strip_prefix("\"stdout\": ") {
                    Some(inner) => format!("runtimetest: {}", inner_failure(inner)),
                    None => l.to_string(),
                })
                .take(10)
                .collect::<Vec<_>>()
                .join("\n");
        }
    }
    // the policy's announcements of what it changed come before any error: left out here
    let err: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("stockade: warning: policy "))
        .collect();
    if !err.is_empty() {
        if !o.detail.is_empty() {
            o.detail.push('\n');
        }
        o.detail.push_str("stderr: ");
        o.detail.push_str(&err[..err.len().min(6)].join("\n"));
    }
    o
}

/// "2 mount (/a/b, ...), 1 cgroup (/sys/...)": what `left` holds, by kind.
fn tally(left: &[String]) -> String {
    let mut kinds: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in left {
        let (kind, what) = l.split_once(' ').unwrap_or((l, ""));
        kinds.entry(kind).or_default().push(what);
    }
    kinds
        .iter()
        .map(|(k, v)| match v.len() {
            1 => format!("1 {k} ({})", v[0]),
            n => format!("{n} {k} ({}, ...)", v[0]),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first `not ok` line of runtimetest's TAP output quoted as a JSON string.
fn inner_failure(quoted: &str) -> String {
    let text: String = serde_json::from_str(quoted.trim_end_matches(',')).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("not ok") && !l.contains("# TODO"))
        .unwrap_or("no `not ok` line")
        .to_string()
}

/// Remove what a program left: containers in `root` (deleted with the runtime itself), mounts
/// under `scratch`, and the suite's new cgroup directories (their processes killed first).
/// Returns what it found.
fn clean_up(
    wrapper: &Path,
    root: &Path,
    scratch: &Path,
    baseline: &BTreeSet<PathBuf>,
) -> Vec<String> {
    let mut left = vec![];
    let list = Command::new(wrapper)
        .args(["list", "-q"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    for id in stdout(&list).lines().filter(|l| !l.trim().is_empty()) {
        left.push(format!("container {id}"));
        let _ = Command::new(wrapper)
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    // state the runtime no longer lists (stockade keeps its compiled-filter cache, `.seccomp`)
    for e in std::fs::read_dir(root).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.starts_with('.') {
            left.push(format!("state {n}"));
            let _ = std::fs::remove_dir_all(e.path());
        }
    }

    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(scratch))
        .map(str::to_string)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts.dedup();
    for m in mounts {
        left.push(format!("mount {m}"));
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }

    let mut new: Vec<PathBuf> = cgroup_dirs()
        .difference(baseline)
        .filter(|p| is_suites(p))
        .cloned()
        .collect();
    new.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in new {
        left.push(format!("cgroup {}", d.display()));
        remove_cgroup(&d);
    }
    left
}

/// Kill what is in cgroup `d` and remove it (a killed process leaves its cgroup a moment later).
fn remove_cgroup(d: &Path) {
    for _ in 0..100 {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if std::fs::remove_dir(d).is_ok() || !d.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every directory of every cgroup hierarchy mounted under /sys/fs/cgroup (v1 ones, the
/// name=systemd one and cgroup2's at /sys/fs/cgroup/unified).
fn cgroup_dirs() -> BTreeSet<PathBuf> {
    fn walk(d: &Path, out: &mut BTreeSet<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.insert(e.path());
                walk(&e.path(), out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        if h.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&h.path(), &mut out);
        }
    }
    out
}

/// A cgroup directory the suite's programs make: its fixed `cgrouptest` (absolute) and
/// `testdir/cgrouptest/container` (relative) paths, or one named by a container ID (a UUID).
fn is_suites(p: &Path) -> bool {
    p.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        c == "cgrouptest" || c == "testdir" || is_uuid(&c)
    })
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A runtime's parent cgroup (`stockade`) that the run made and left empty.
fn remove_new_empty_parents(baseline: &BTreeSet<PathBuf>) -> Vec<String> {
    let mut removed = vec![];
    for d in cgroup_dirs().difference(baseline) {
        if d.file_name().is_some_and(|n| n == "stockade") && std::fs::remove_dir(d).is_ok() {
            removed.push(d.display().to_string());
        }
    }
    removed
}
