//! The runtime allowance, measured: the recorder (stopping at the first `execve` after the
//! filter) on containers started by the real runc, keyed on their cgroup, over runs with and
//! without no_new_privileges and as root and as uid 1000 (runc loads its filter at different
//! points then). Every call runc made after its filter must be in the allowance learned
//! profiles carry for runc (`learn::allowance::RUNC`), and likewise for stockade's own; and
//! stockade's must be contained in runc's plus `fchdir` (a profile written for runc, which has
//! `chdir`, runs under stockade), and with no_new_privileges be `execve` alone.
//! Run with `-- --nocapture` to see the measured set; MEASURE_RUNS=N runs per variant (default
//! 5), MEASURE_STOCKADE=PATH measures another stockade build.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use stockade::learn::record::{Observed, Recorder};

/// One container of `/bin/true` with a permissive filter, as engines start it (`create`,
/// `start`, `delete`), recorded until its execve.
fn measure_once(
    runtime: &str,
    bundle: &std::path::Path,
    parent: &std::path::Path,
    n: u32,
) -> Observed {
    let id = format!("m{n}");
    let cg = parent.join(&id);
    let recorder = Recorder::start_with(std::fs::metadata(parent).unwrap().ino(), 1, true)
        .expect("recorder (root, eBPF)");
    let root = tempfile::tempdir().unwrap();
    let rt = |args: &[&str]| {
        // stderr in a file: a created container's init holds what it was given until `start`
        let err = tempfile::NamedTempFile::new().unwrap();
        let status = timeout()
            .arg(runtime)
            .arg("--root")
            .arg(root.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err.reopen().unwrap())
            .status()
            .expect("runc (apt-get install runc; .ci/run does)");
        assert!(
            status.success(),
            "{runtime} {args:?}: {}",
            std::fs::read_to_string(err.path()).unwrap_or_default()
        );
    };
    rt(&["create", "--bundle", bundle.to_str().unwrap(), &id]);
    rt(&["start", &id]);
    poll_until("the container never stopped", 20, || {
        let out = Command::new(runtime)
            .arg("--root")
            .arg(root.path())
            .args(["state", &id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .contains("\"stopped\"")
            .then_some(())
    });
    rt(&["delete", &id]);
    assert!(
        recorder.armed().unwrap(),
        "{runtime} never loaded its filter"
    );
    let o = recorder.observed().unwrap();
    drop(recorder);
    let _ = std::fs::remove_dir(&cg);
    o
}

/// The measuring cgroup, removed with whatever is left in it, in every hierarchy (runc makes
/// its containers' cgroups in each v1 one too), also when a check fails.
struct Gone(String);

impl Drop for Gone {
    fn drop(&mut self) {
        remove_cgroup_everywhere(&self.0);
    }
}

#[test]
fn runc_calls_after_its_filter_are_in_the_runc_allowance() {
    let [without_nnp, with_nnp] = measure("runc");
    let mut all = without_nnp;
    all.merge(&with_nnp);
    assert_within("runc", &all, &stockade::learn::allowance::RUNC);
}

#[test]
fn stockades_calls_after_its_filter_are_runcs_plus_fchdir() {
    // MEASURE_STOCKADE=PATH measures another build (the release binary)
    let other = std::env::var("MEASURE_STOCKADE").ok();
    let runtime = other.as_deref().unwrap_or(bin());
    let [without_nnp, with_nnp] = measure(runtime);
    use stockade::learn::allowance::{RUNC, STOCKADE};
    assert_within(runtime, &without_nnp, &STOCKADE);
    // what a profile written for runc allows (it has chdir, so it has fchdir too)
    let mut runc_plus = RUNC.observed();
    runc_plus.syscalls.insert("fchdir".into());
    for s in &without_nnp.syscalls {
        assert!(
            runc_plus.syscalls.contains(s),
            "stockade calls {s} after its filter (no_new_privileges off), which runc does not"
        );
    }
    for (name, a) in &without_nnp.args {
        for (i, vals) in a {
            for v in vals {
                assert!(
                    RUNC.allows_arg(name, *i, *v),
                    "stockade's {name} argument {i} = {v:#x} after its filter is not one runc makes there"
                );
            }
        }
    }
    // with no_new_privileges the filter is the last thing before execve
    let extra: Vec<&String> = with_nnp
        .syscalls
        .iter()
        .filter(|s| s.as_str() != "execve")
        .collect();
    assert!(
        extra.is_empty(),
        "with no_new_privileges stockade calls {extra:?} after its filter (only execve may follow)"
    );
}

/// Measure `runtime` over runs without and with no_new_privileges (each as root and as uid
/// 1000): the two sets of post-filter calls.
fn measure(runtime: &str) -> [Observed; 2] {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path();
    busybox_rootfs(&bundle.join("rootfs"));
    let spec = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(bundle)
        .output()
        .expect("runc");
    assert!(spec.status.success(), "{}", stderr(&spec));
    let parent_name = format!("stockade-measure-{}-{}", std::process::id(), runtime.len());
    let parent = std::path::Path::new("/sys/fs/cgroup/unified").join(&parent_name);
    std::fs::create_dir(&parent).expect("the unified cgroup hierarchy");
    let _gone = Gone(parent_name.clone());
    let file = bundle.join("config.json");
    let base: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let runs: u32 = std::env::var("MEASURE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut out = [Observed::default(), Observed::default()];
    let mut n = 0;
    for (k, nnp) in [false, true].into_iter().enumerate() {
        for uid in [0, 1000] {
            let mut v = base.clone();
            v["process"]["args"] = serde_json::json!(["/bin/true"]);
            v["process"]["terminal"] = serde_json::json!(false);
            v["process"]["noNewPrivileges"] = serde_json::json!(nnp);
            v["process"]["user"] = serde_json::json!({"uid": uid, "gid": uid});
            // as Docker gives them: no ambient set
            v["process"]["capabilities"]
                .as_object_mut()
                .unwrap()
                .remove("ambient");
            v["root"]["readonly"] = serde_json::json!(false);
            v["linux"]["seccomp"] = serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}],
            });
            for _ in 0..runs {
                v["linux"]["cgroupsPath"] = serde_json::json!(format!("/{parent_name}/m{n}"));
                std::fs::write(&file, v.to_string()).unwrap();
                out[k].merge(&measure_once(runtime, bundle, &parent, n));
                n += 1;
            }
        }
    }
    for (o, nnp) in out.iter().zip(["off", "on"]) {
        println!(
            "measured over {} runs of {runtime}, no_new_privileges {nnp}: {:?}",
            n / 2,
            o.syscalls
        );
        println!("argument values: {:?}", arg_values(o));
    }
    out
}

fn arg_values(o: &Observed) -> BTreeMap<String, BTreeSet<String>> {
    let mut args: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, a) in &o.args {
        for (i, vals) in a {
            for v in vals {
                args.entry(format!("{name}/{i}"))
                    .or_default()
                    .insert(format!("{v:#x}"));
            }
        }
    }
    args
}

/// Every call and recorded argument value of `all` is in `allowance`.
fn assert_within(runtime: &str, all: &Observed, allowance: &stockade::learn::allowance::Allowance) {
    let missing: Vec<&String> = all
        .syscalls
        .iter()
        .filter(|s| !allowance.syscalls.contains(&s.as_str()) && s.as_str() != "execve")
        .collect();
    assert!(
        missing.is_empty(),
        "{runtime} made calls after its filter that the allowance lacks: {missing:?}"
    );
    for (name, a) in &all.args {
        for (i, vals) in a {
            for v in vals {
                assert!(
                    allowance.allows_arg(name, *i, *v),
                    "{runtime}'s {name} argument {i} = {v:#x} is not in the allowance"
                );
            }
        }
    }
}
