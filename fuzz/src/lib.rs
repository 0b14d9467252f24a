//! The bodies of stockade's fuzz targets, one function per target, each taking the raw input.
//!
//! A target must never panic: an `Err` (or `None`) from the code under test is the expected
//! answer to most inputs. Where the code promises more than "no panic", the target checks it
//! with an `assert!`, which the fuzzer reports as a crash like any other panic:
//!
//! - `seccomp`: the compiled BPF program returns what [`Resolved::evaluate`] says (the compiler's
//!   reference semantics), the resolved OCI form re-parses and compiles to the same program, and
//!   the runtime->child encoding round-trips.
//! - `mountinfo`: the cgroup v2 device program returns what [`device_filter::decide`] says.
//! - `spec`: a device rule of a validated spec reaches the BPF program with the numbers written.
//!
//! Each binary in `fuzz_targets/` is one line, [`target!`]: with the `afl` feature (default) it is
//! an `afl::fuzz!` harness; without, it replays the files and directories on its command line.

use std::path::Path;

use stockade::cgroups::device_filter;
use stockade_seccomp::{bpf, Arch, Context, Filter, Profile, Resolved};

/// `main` for one fuzz target.
#[macro_export]
macro_rules! target {
    ($f:path) => {
        #[cfg(feature = "afl")]
        fn main() {
            afl::fuzz!(|data: &[u8]| {
                $f(data);
            });
        }

        #[cfg(not(feature = "afl"))]
        fn main() {
            std::process::exit($crate::replay(stringify!($f), $f));
        }
    };
}

/// Run `f` on every file named on the command line (directories: every file in them, not
/// recursively). Prints one line per panicking or slow input and a summary; the exit code is 1
/// when any input panicked.
pub fn replay(name: &str, f: fn(&[u8])) -> i32 {
    let mut files = vec![];
    for arg in std::env::args_os().skip(1) {
        let p = std::path::PathBuf::from(arg);
        if p.is_dir() {
            let mut more: Vec<_> = std::fs::read_dir(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            more.sort();
            files.extend(more);
        } else {
            files.push(p);
        }
    }
    let quiet_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var_os("FUZZ_REPLAY_VERBOSE").is_some() {
            quiet_hook(info)
        } else {
            eprintln!("  panic: {info}");
        }
    }));
    let (mut failed, mut slow) = (0, 0);
    let start = std::time::Instant::now();
    for p in &files {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let t = std::time::Instant::now();
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            eprintln!("{name}: PANIC on {}", p.display());
            failed += 1;
        }
        if t.elapsed() > std::time::Duration::from_secs(1) {
            eprintln!("{name}: SLOW ({:?}) on {}", t.elapsed(), p.display());
            slow += 1;
        }
    }
    println!(
        "{name}: {} inputs in {:.2}s, {failed} panicked, {slow} slower than 1s",
        files.len(),
        start.elapsed().as_secs_f64()
    );
    i32::from(failed > 0)
}

/// In replay mode with `FUZZ_REPLAY_VERBOSE` set, show why an input was refused.
fn debug(e: &dyn std::fmt::Display) {
    if cfg!(not(feature = "afl")) && std::env::var_os("FUZZ_REPLAY_VERBOSE").is_some() {
        eprintln!("  refused: {e}");
    }
}

/// `config.json` as `stockade create/run` reads it: parse, then the checks made before anything
/// is touched (validate only reads the host: stat, readlink, canonicalize).
pub fn spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let spec = match stockade::spec::parse(Path::new("config.json"), text) {
        Ok(s) => s,
        Err(e) => return debug(&e),
    };
    let valid = stockade::plan::validate(
        &spec,
        Path::new("/nonexistent-bundle"),
        Path::new("config.json"),
    );
    if let Err(e) = &valid {
        debug(e);
    }
    let _ = stockade::seccomp::bounding_names(&spec);
    // the systemd driver's reading of linux.cgroupsPath (slice:prefix:name)
    let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let path = path.map(|p| p.to_string_lossy().into_owned());
    let _ = stockade::cgroups::systemd::is_systemd_path(path.as_deref().unwrap_or(""));
    if let Ok(u) = stockade::cgroups::systemd::Unit::from_cgroups_path(path.as_deref(), "id") {
        let cg = u.cgroup_path(Path::new("/"));
        assert!(cg.ends_with(&u.name), "{cg:?} for {u:?}");
    }
    if valid.is_err() {
        return;
    }
    // A device rule that passed validation reaches the cgroup v2 program as written.
    let devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    for d in &devices {
        let r = device_filter::Rule::from_oci(d);
        let want = |v: Option<i64>| v.filter(|v| *v >= 0);
        assert_eq!(r.major.map(i64::from), want(d.major()), "major of {d:?}");
        assert_eq!(r.minor.map(i64::from), want(d.minor()), "minor of {d:?}");
    }
}

/// Contexts the seccomp target resolves profiles against: Docker's capabilities on x86_64 with a
/// new kernel, and none on aarch64 with an old one (includes/excludes decide differently).
fn seccomp_contexts() -> [Context; 2] {
    [
        Context {
            arch: Arch::X86_64,
            caps: stockade_seccomp::DOCKER_DEFAULT_CAPS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            kernel: (6, 8),
        },
        Context {
            arch: Arch::Aarch64,
            caps: Default::default(),
            kernel: (4, 4),
        },
    ]
}

/// Syscall numbers and arguments worth asking a filter about: the edges of the number space, a
/// few numbers rules name (spread over the table; each with its neighbour and x32 twin), and
/// arguments at and around the values a rule compares with. Bounded, and fewer for big profiles:
/// the reference semantics recompute the decision table on every question, and a profile the
/// size of Docker's would otherwise take 100 ms an input.
fn probes(r: &Resolved, arch: Arch) -> Vec<(u32, [u64; 6])> {
    let decisions = r.decisions(arch);
    let mut nrs: Vec<u32> = vec![0, 0x4000_0000, 0x7fff_ffff, u32::MAX];
    let mut vals: Vec<u64> = vec![u64::MAX, 0x1_0000_0000];
    let names: usize = r.rules.iter().map(|(n, _, _)| n.len()).sum();
    let (spread, nvals) = if names > 32 { (1, 1) } else { (6, 6) };
    let step = decisions.len().div_ceil(spread).max(1);
    for (nr, d) in decisions.iter().step_by(step) {
        nrs.extend([*nr, nr.wrapping_add(1), nr | 0x4000_0000]);
        for a in d.conditional.iter().flat_map(|c| &c.args).take(2) {
            vals.extend([
                a.value,
                a.value.wrapping_sub(1),
                a.value_two,
                a.value ^ (1 << 32),
            ]);
        }
    }
    if let Some(max) = decisions.keys().next_back() {
        nrs.push(max.wrapping_add(1));
    }
    vals.sort();
    vals.dedup();
    vals.truncate(nvals);
    let mut out = vec![];
    for nr in nrs {
        out.push((nr, [0; 6]));
        for (i, v) in vals.iter().enumerate() {
            let mut args = [0; 6];
            args[i % 6] = *v;
            args[(i + 1) % 6] = vals[(i + 1) % vals.len()];
            out.push((nr, args));
        }
    }
    out
}

/// The compiled program decides as the profile means, on every probe, for the profile's
/// architectures and one it does not name.
fn check_compiled(r: &Resolved, f: &Filter) {
    assert!(f.program.len() <= stockade_seccomp::compile::MAX_INSNS);
    let mut arches = r.arches.clone();
    if let Some(other) = [Arch::Arm, Arch::X86, Arch::Aarch64]
        .into_iter()
        .find(|a| !arches.contains(a))
    {
        arches.push(other);
    }
    for arch in arches {
        for (nr, args) in probes(r, arch) {
            // AUDIT_ARCH_X86_64 carries x32 too: evaluate routes by the x32 bit.
            let audit = if arch == Arch::X32 {
                Arch::X86_64
            } else {
                arch
            };
            let want = r.evaluate(audit, nr, &args);
            let data = bpf::SeccompData {
                nr,
                arch: arch.audit(),
                ip: 0,
                args,
            };
            let got = bpf::run(&f.program, &data);
            assert_eq!(
                got.as_ref().map(|g| g.0),
                Ok(want),
                "arch {arch:?} nr {nr:#x} args {args:x?}\n{}",
                bpf::disassemble(&f.program)
            );
        }
    }
}

/// A filter from the runtime->child channel (or the filter cache): decoding accepts exactly the
/// encoder's output, and running, measuring or listing any decoded program never panics.
fn filter_bytes(data: &[u8]) {
    let Some(f) = Filter::from_bytes(data) else {
        return;
    };
    assert_eq!(
        f.to_bytes(),
        data,
        "from_bytes accepted a non-canonical encoding"
    );
    let _ = f.longest_path();
    let _ = bpf::disassemble(&f.program);
    for (nr, arch) in [
        (0, Arch::X86_64),
        (59, Arch::X86_64),
        (0x4000_0001, Arch::X86),
    ] {
        let d = bpf::SeccompData {
            nr,
            arch: arch.audit(),
            ip: 0,
            args: [1, 2, 3, u64::MAX, 0, 1 << 40],
        };
        let _ = bpf::run(&f.program, &d);
    }
}

/// Seccomp profiles (OCI `linux.seccomp` and Docker's format: `--seccomp FILE`, the spec's own):
/// parse, resolve, compile, and check the program against the profile's semantics. The same
/// bytes also go to [`Filter::from_bytes`], the runtime->child wire format.
pub fn seccomp(data: &[u8]) {
    filter_bytes(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(profile) = Profile::from_json(text) else {
        return;
    };
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        // The spec validator's entry point agrees with the CLI's.
        assert!(
            Profile::from_value(&v).is_ok(),
            "from_json Ok, from_value Err"
        );
    }
    for ctx in seccomp_contexts() {
        let r = profile.resolve(&ctx);
        let compiled = stockade_seccomp::compile(&r);
        // What `stockade spec --seccomp` writes into config.json: re-parses, means the same.
        let oci = r.oci.to_oci_value();
        let again = Profile::from_value(&oci).expect("resolved OCI form re-parses");
        let r2 = again.resolve(&ctx);
        let compiled2 = stockade_seccomp::compile(&r2);
        match (&compiled, &compiled2) {
            (Ok(f), Ok(g)) => {
                check_compiled(&r, f);
                assert_eq!(
                    f.program, g.program,
                    "resolved OCI form compiles differently"
                );
                let back = Filter::from_bytes(&f.to_bytes()).expect("encoding round-trips");
                assert_eq!(back.program, f.program);
                assert_eq!(
                    (back.flags, back.notify, &back.unknown),
                    (f.flags, f.notify, &f.unknown)
                );
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!(
                "profile compiles {:?}, its resolved OCI form {:?}",
                a.as_ref().map(|_| ()),
                b.as_ref().map(|_| ())
            ),
        }
    }
}

/// `stockade audit FILE`: docker inspect JSON, an OCI config, or Kubernetes YAML/JSON; then the
/// rules on each posture and every output format.
pub fn audit(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(postures) = stockade::audit::inputs::parse(text, "input") else {
        return;
    };
    let mut reports = vec![];
    for p in &postures {
        let _ = stockade::audit::evaluate(p);
        reports.push(stockade::audit::report(p));
    }
    let _ = stockade::audit::worst(&reports);
    let _ = stockade::audit::to_table(&reports, true);
    let _ = stockade::audit::to_json(&reports);
    let _ = stockade::audit::to_sarif(&reports);
}

/// Device numbers the kernel can ask the cgroup device program about (12-bit major, 20-bit
/// minor), and the edges a rule may name.
const DEVICE_NUMBERS: &[u32] = &[0, 1, 5, 136, 254, 4095];
const DEVICE_MINORS: &[u32] = &[0, 1, 3, 255, 0xfffff];

/// Text read from /proc: `mountinfo` (mount table, cgroup layout), `status` (capability masks),
/// `cgroup`, and the one-rule-per-line texts of cgroup device rules and cpusets. The input is
/// split at its first NUL: mountinfo before, /proc/self/cgroup after (no NUL: both the whole).
pub fn mountinfo(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (mi, cg) = text.split_once('\0').unwrap_or((&text, &text));

    let mounts = stockade::mountinfo::parse_mountinfo(mi);
    for m in &mounts {
        let _ = (&m.dev, &m.root, &m.mountpoint, &m.options, &m.optional);
    }
    let layout = stockade::cgroups::Layout::parse(mi, cg);
    let _ = layout.is_v2();
    let _ = layout.symlinks();
    for h in &layout.v1 {
        let _ = h.mount_name();
        let _ = layout.v1_dir(&h.controllers.join(","));
    }

    for key in [
        "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Uid", "Seccomp",
    ] {
        let _ = stockade::capabilities::status_field(&text, key);
        let mask = stockade::capabilities::status_mask(&text, key);
        let _ = stockade::capabilities::decode_mask(mask);
    }

    let mut rules = vec![];
    for line in text.lines() {
        let _ = stockade::cgroups::parse_cpuset(line);
        if let Some(r) = device_filter::Rule::parse(line, !line.contains('!')) {
            rules.push(r);
        }
    }
    rules.truncate(64);
    let prog = device_filter::program(&rules);
    for typ in [device_filter::DEV_CHAR, 1] {
        for &major in DEVICE_NUMBERS {
            for &minor in DEVICE_MINORS {
                for access in 1..8 {
                    assert_eq!(
                        device_filter::run(&prog, typ, major, minor, access),
                        device_filter::decide(&rules, typ, major, minor, access),
                        "type {typ} {major}:{minor} access {access} rules {rules:?}"
                    );
                }
            }
        }
    }
}

/// The runtime->child channel: the "go" message (`G` + JSON) and an encoded seccomp filter.
pub fn wire(data: &[u8]) {
    if let Ok((trees, _pid)) = stockade::container::decode_go(data) {
        let _ = trees.len();
    }
    // a D-Bus message as the systemd driver reads one
    if let Ok(m) = stockade::dbus::parse_message(data) {
        let _ = m.body.iter().map(|v| v.signature()).count();
    }
    filter_bytes(data);
}

/// OCI hooks: the lists a spec's `hooks` give and the state JSON a hook reads on stdin, built
/// from the spec's (untrusted) annotations. Running a hook is not pure and is not fuzzed.
pub fn hooks(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = stockade::spec::parse(Path::new("config.json"), text) else {
        return;
    };
    use stockade::hooks::Kind;
    let plan = stockade::hooks::Plan::from_spec(&spec, "fuzz", Path::new("/b"));
    let mut n = 0;
    for kind in Kind::ALL {
        let _ = (kind.name(), kind.warn_only());
        n += plan.list(kind).len();
        assert_eq!(plan.has(kind), !plan.list(kind).is_empty());
    }
    assert_eq!(plan.any(), n > 0);
    let state = plan.state_json("creating", 1);
    let v: serde_json::Value = serde_json::from_str(&state).expect("state JSON parses");
    let want = serde_json::to_value(spec.annotations().clone().unwrap_or_default()).unwrap();
    assert_eq!(v["annotations"], want, "annotations survive into the state");
}
