//! From observations to the workload's own profile, and the files `learn` writes.
//!
//! Arguments become rules as the risk they carry is shaped: families and socket types as sets
//! (`socket(AF_PACKET, ...)` stays denied when only AF_INET/AF_UNIX were seen), namespace bits
//! of `clone`/`unshare` as masked values, `ioctl` requests and `prctl` options as 32-bit sets,
//! and `mmap`/`mprotect` by their PROT_WRITE|PROT_EXEC combination only (so W+X stays denied
//! unless the workload made such a mapping). Past [`MAX_VALUES`] distinct values an argument is
//! left unconstrained, and the report says so.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use stockade_seccomp::{Arch, Filter};

use super::record::Observed;

/// Allowed whatever the recording saw: calls any program may make on paths no scenario can
/// force — a contended lock (`futex`: the seed itself calls it "inevitable"), a signal
/// handler's return, an interrupted call restarted. Each acts on the calling process only.
pub const BASELINE: &[&str] = &["futex", "restart_syscall", "rt_sigreturn"];

/// Allowed when the workload made threads (`clone` with CLONE_THREAD): a thread's own teardown,
/// which may still be under way when the process exits and so is seen in one run, not the next
/// (glibc returns the stack with `madvise`, then the thread calls `exit`).
pub const THREAD_TEARDOWN: &[&str] = &["exit", "madvise"];

const CLONE_THREAD: u64 = 0x0001_0000;

/// Whether the workload made threads: a `clone` with CLONE_THREAD was recorded.
pub fn has_threads(o: &Observed) -> bool {
    o.args
        .get("clone")
        .and_then(|a| a.get(&0))
        .is_some_and(|flags| flags.iter().any(|f| f & CLONE_THREAD != 0))
}

/// Distinct values kept per argument before it is left unconstrained.
pub const MAX_VALUES: usize = 16;

const NS_BITS: u64 = 0x7e02_0080; // CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET,TIME}
const PROT_WX: u64 = 0x6;
const LOW32: u64 = 0xffff_ffff;

/// How one recorded argument is compared: `(arg & mask) == value`.
pub(crate) fn mask_of(syscall: &str, idx: u32) -> u64 {
    match (syscall, idx) {
        ("socket" | "socketpair", 1) => 0xf, // the type, without SOCK_CLOEXEC/NONBLOCK
        ("clone" | "unshare", 0) => NS_BITS,
        ("mmap" | "mprotect" | "pkey_mprotect", 2) => PROT_WX,
        _ => LOW32,
    }
}

/// One allowed syscall and, if constrained, the allowed (index, mask, value) combinations.
#[derive(Debug, Clone, PartialEq)]
pub struct Allowed {
    pub name: String,
    /// each alternative: the conditions that must all hold; empty = unconditional
    pub alternatives: Vec<Vec<(u32, u64, u64)>>,
}

/// The learned profile before it is written out.
#[derive(Debug, Clone, Default)]
pub struct Learned {
    pub allowed: Vec<Allowed>,
    /// syscalls (or argument values) the workload used that the ceiling forbids
    pub refused: Vec<String>,
    /// arguments left unconstrained, with why
    pub unconstrained: Vec<String>,
    /// syscalls the ceiling answers ENOSYS (`clone3`, so libc falls back to `clone`): the
    /// profile answers them the same, not EPERM, or the fallback would not happen
    pub enosys: Vec<String>,
}

const RET_ERRNO_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;

/// The syscalls `ceiling` answers ENOSYS whatever their arguments (tried with none).
pub fn enosys_of(ceiling: &Filter) -> Vec<String> {
    let arch = Arch::native();
    arch.all_numbers()
        .into_iter()
        .filter(|nr| ceiling.eval(arch, *nr, [0; 6]).0 == RET_ERRNO_ENOSYS)
        .filter_map(|nr| arch.name_of(nr).map(str::to_string))
        .collect()
}

fn ret_allows(ret: u32) -> bool {
    ret & 0xffff_0000 == 0x7fff_0000
}

/// Observed ∩ ceiling. `ceiling` is the compiled ceiling filter; a combination it does not
/// allow (evaluated with the observed argument values) is refused, never silently allowed.
pub fn build(o: &Observed, ceiling: &Filter) -> Learned {
    let arch = Arch::native();
    let mut l = Learned::default();
    let mut names = o.syscalls.clone();
    names.extend(BASELINE.iter().map(|s| s.to_string()));
    if has_threads(o) {
        names.extend(THREAD_TEARDOWN.iter().map(|s| s.to_string()));
    }
    for name in &names {
        let Some(nr) = arch.syscall(name) else {
            continue;
        };
        // per constrained argument: the masked values seen
        let mut per_arg: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
        if let Some(a) = o.args.get(name) {
            if o.args_overflow.contains(name) {
                l.unconstrained.push(format!(
                    "{name}: more distinct argument values than the recording map holds"
                ));
            } else {
                for (idx, vals) in a {
                    let m = mask_of(name, *idx);
                    let masked: BTreeSet<u64> = vals.iter().map(|v| v & m).collect();
                    if masked.len() > MAX_VALUES {
                        l.unconstrained.push(format!(
                            "{name} argument {idx}: {} distinct values (more than {MAX_VALUES})",
                            masked.len()
                        ));
                    } else {
                        per_arg.insert(*idx, masked);
                    }
                }
            }
        }
        // every combination of the constrained arguments' values
        let mut combos: Vec<Vec<(u32, u64, u64)>> = vec![vec![]];
        for (idx, vals) in &per_arg {
            let m = mask_of(name, *idx);
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    vals.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push((*idx, m, *v));
                        c
                    })
                })
                .collect();
        }
        let mut kept = vec![];
        for c in combos {
            let mut args = [0u64; 6];
            for (i, _, v) in &c {
                args[*i as usize] = *v;
            }
            if ret_allows(ceiling.eval(arch, nr, args).0) {
                kept.push(c);
            } else if c.is_empty() {
                l.refused.push(name.clone());
            } else {
                let what: Vec<String> =
                    c.iter().map(|(i, _, v)| format!("arg{i}={v:#x}")).collect();
                l.refused.push(format!("{name}({})", what.join(", ")));
            }
        }
        if !kept.is_empty() {
            l.allowed.push(Allowed {
                name: name.clone(),
                alternatives: kept,
            });
        }
    }
    let names = l.names();
    l.enosys = enosys_of(ceiling)
        .into_iter()
        .filter(|n| !names.contains(n))
        .collect();
    l
}

impl Learned {
    /// Add syscalls denied during verification (missed by the recording), as unconditional
    /// allows where the ceiling permits them.
    pub fn add_missed(&mut self, names: &BTreeSet<String>, ceiling: &Filter) -> Vec<String> {
        let arch = Arch::native();
        let mut added = vec![];
        for n in names {
            let Some(nr) = arch.syscall(n) else { continue };
            if !ret_allows(ceiling.eval(arch, nr, [0; 6]).0) {
                if !self.refused.contains(n) {
                    self.refused.push(n.clone());
                }
                continue;
            }
            match self.allowed.iter_mut().find(|a| &a.name == n) {
                // it was constrained: a value outside the set was denied; lift the constraint
                Some(a) => a.alternatives = vec![vec![]],
                None => self.allowed.push(Allowed {
                    name: n.clone(),
                    alternatives: vec![vec![]],
                }),
            }
            added.push(n.clone());
        }
        self.allowed.sort_by(|a, b| a.name.cmp(&b.name));
        added
    }

    /// With a runtime's allowance ([`super::allowance`]): its calls allowed, and its argument
    /// values added where this profile constrains that argument. Not cut by the ceiling: the
    /// runtime makes these calls before the workload runs at all. Returns the profile and the
    /// calls (or `call(argN=value)`s) it added.
    pub fn with_allowance(&self, a: &super::allowance::Allowance) -> (Learned, Vec<String>) {
        let mut l = self.clone();
        let mut added = vec![];
        let ao = a.observed();
        for name in a.syscalls {
            let per_arg: Vec<(u32, u64, u64)> = ao
                .args
                .get(*name)
                .into_iter()
                .flat_map(|m| m.iter())
                .flat_map(|(i, vals)| {
                    let m = mask_of(name, *i);
                    vals.iter().map(move |v| (*i, m, v & m))
                })
                .collect();
            match l.allowed.iter_mut().find(|x| x.name == *name) {
                Some(x) if x.alternatives.iter().any(Vec::is_empty) => {}
                Some(x) => {
                    // constrained: the runtime's values become alternatives of their own
                    for c in &per_arg {
                        if !x
                            .alternatives
                            .iter()
                            .any(|alt| alt.len() == 1 && alt[0] == *c)
                        {
                            x.alternatives.push(vec![*c]);
                            added.push(format!("{name}(arg{}={:#x})", c.0, c.2));
                        }
                    }
                }
                None => {
                    l.allowed.push(Allowed {
                        name: name.to_string(),
                        alternatives: if per_arg.is_empty() {
                            vec![vec![]]
                        } else {
                            per_arg.iter().map(|c| vec![*c]).collect()
                        },
                    });
                    added.push(name.to_string());
                }
            }
        }
        l.allowed.sort_by(|a, b| a.name.cmp(&b.name));
        l.enosys.retain(|n| !a.syscalls.contains(&n.as_str()));
        (l, added)
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.allowed.iter().map(|a| a.name.clone()).collect()
    }

    /// The profile in Docker/OCI JSON: `defaultAction` for everything not learned.
    pub fn to_json(&self, default_action: &str) -> Value {
        self.to_json_with(default_action, &[], "")
    }

    /// The same, the unconditional allows named in `separate` in a rule of their own with
    /// `comment` (the runtime allowance).
    pub fn to_json_with(&self, default_action: &str, separate: &[String], comment: &str) -> Value {
        let plain: Vec<&str> = self
            .allowed
            .iter()
            .filter(|a| a.alternatives.iter().any(Vec::is_empty))
            .map(|a| a.name.as_str())
            .collect();
        let (apart, plain): (Vec<&str>, Vec<&str>) = plain
            .into_iter()
            .partition(|n| separate.iter().any(|s| s == n));
        let mut syscalls = vec![];
        if !plain.is_empty() {
            syscalls.push(json!({"names": plain, "action": "SCMP_ACT_ALLOW"}));
        }
        if !apart.is_empty() {
            syscalls.push(json!({"names": apart, "action": "SCMP_ACT_ALLOW", "comment": comment}));
        }
        for a in &self.allowed {
            if a.alternatives.iter().any(Vec::is_empty) {
                continue;
            }
            for alt in &a.alternatives {
                let args: Vec<Value> = alt
                    .iter()
                    .map(|(i, m, v)| {
                        if *m == LOW32 && *v <= LOW32 {
                            json!({"index": i, "value": v, "valueTwo": 0, "op": "SCMP_CMP_EQ"})
                        } else {
                            json!({"index": i, "value": m, "valueTwo": v, "op": "SCMP_CMP_MASKED_EQ"})
                        }
                    })
                    .collect();
                syscalls.push(json!({"names": [a.name], "action": "SCMP_ACT_ALLOW", "args": args}));
            }
        }
        if !self.enosys.is_empty() {
            syscalls.push(
                json!({"names": self.enosys, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
            );
        }
        json!({
            "defaultAction": default_action,
            "defaultErrnoRet": 1,
            "architectures": [Arch::native().scmp_name()],
            "syscalls": syscalls,
        })
    }
}

/// The Security Profiles Operator's `SeccompProfile` for the same profile.
pub fn to_spo_yaml(profile: &Value, name: &str) -> String {
    let mut y = format!(
        "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata:\n  name: {name}\nspec:\n  defaultAction: {}\n  architectures:\n",
        profile["defaultAction"].as_str().unwrap_or("SCMP_ACT_ERRNO")
    );
    for a in profile["architectures"].as_array().into_iter().flatten() {
        y.push_str(&format!("    - {}\n", a.as_str().unwrap_or_default()));
    }
    y.push_str("  syscalls:\n");
    for s in profile["syscalls"].as_array().into_iter().flatten() {
        y.push_str(&format!(
            "    - action: {}\n      names:\n",
            s["action"].as_str().unwrap_or_default()
        ));
        for n in s["names"].as_array().into_iter().flatten() {
            y.push_str(&format!("        - {}\n", n.as_str().unwrap_or_default()));
        }
        if let Some(args) = s["args"].as_array() {
            y.push_str("      args:\n");
            for a in args {
                y.push_str(&format!(
                    "        - index: {}\n          value: {}\n          valueTwo: {}\n          op: {}\n",
                    a["index"], a["value"], a["valueTwo"],
                    a["op"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    y
}
