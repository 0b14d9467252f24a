//! From a profile to decisions per architecture and syscall number.
//!
//! Docker's `includes`/`excludes` are decided as Docker's engine decides them: against the
//! container's bounding capabilities, the *native* architecture's Go name, and the running
//! kernel's version; `archMap` contributes the native architecture and its sub-architectures.

use std::collections::{BTreeMap, BTreeSet};

use crate::arch::Arch;
use crate::profile::{precedence, Action, Arg, Profile, RET_ALLOW, RET_ERRNO, RET_LOG};

/// What a profile is resolved against.
#[derive(Debug, Clone)]
pub struct Context {
    pub arch: Arch,
    /// Bounding capabilities of the process (`CAP_SYS_ADMIN` ...).
    pub caps: BTreeSet<String>,
    /// (major, minor) of the running kernel.
    pub kernel: (u32, u32),
}

impl Context {
    /// This machine: native arch, running kernel, the given capabilities.
    pub fn host(caps: impl IntoIterator<Item = String>) -> Context {
        Context {
            arch: Arch::native(),
            caps: caps.into_iter().collect(),
            kernel: running_kernel(),
        }
    }
}

pub fn running_kernel() -> (u32, u32) {
    let u = nix_uname();
    parse_kernel(&u).unwrap_or((0, 0))
}

fn nix_uname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default()
}

pub fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.trim().split(['.', '-']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// One rule after resolution: a return value, and conditions that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub ret: u32,
    pub args: Vec<Arg>,
}

/// How one syscall is decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Conditional rules, highest precedence first.
    pub conditional: Vec<Cond>,
    /// The return when no conditional rule matches (None: the default action).
    pub fallback: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub default_ret: u32,
    pub arches: Vec<Arch>,
    pub flags: u32,
    pub notify: bool,
    /// Rules as (names, return value, args), in profile order, after includes/excludes.
    pub rules: Vec<(Vec<String>, u32, Vec<Arg>)>,
    /// Names no supported architecture knows.
    pub unknown: Vec<String>,
    pub listener_path: Option<String>,
    pub listener_metadata: Option<String>,
    /// The same decisions as a plain OCI profile: explicit architectures, no includes/excludes.
    pub oci: Profile,
}

impl Resolved {
    /// Decisions for one architecture, by syscall number.
    pub fn decisions(&self, arch: Arch) -> BTreeMap<u32, Decision> {
        let mut out: BTreeMap<u32, Decision> = BTreeMap::new();
        for (names, ret, args) in &self.rules {
            for name in names {
                let Some(nr) = arch.syscall(name) else {
                    continue;
                };
                let d = out.entry(nr).or_default();
                if args.is_empty() {
                    d.fallback = Some(match d.fallback {
                        Some(old) if precedence(old) >= precedence(*ret) => old,
                        _ => *ret,
                    });
                } else {
                    let mut args = args.clone();
                    if arch.is_32bit() {
                        for a in &mut args {
                            a.value &= 0xffff_ffff;
                            a.value_two &= 0xffff_ffff;
                        }
                    }
                    d.conditional.push(Cond { ret: *ret, args });
                }
            }
        }
        for d in out.values_mut() {
            // Stable: same-precedence rules keep profile order.
            d.conditional
                .sort_by_key(|c| std::cmp::Reverse(precedence(c.ret)));
        }
        out
    }

    /// ENOSYS for numbers above every syscall the profile names, unless the default already
    /// lets calls through (then libc's fallbacks are not needed).
    pub fn enosys_above(&self, arch: Arch) -> Option<u32> {
        self.enosys_above_in(&self.decisions(arch))
    }

    /// As [`Self::enosys_above`], from decisions already computed for the architecture.
    pub fn enosys_above_in(&self, decisions: &BTreeMap<u32, Decision>) -> Option<u32> {
        if matches!(self.default_ret & 0xffff_0000, RET_ALLOW | RET_LOG) {
            return None;
        }
        decisions.keys().next_back().copied()
    }

    /// The reference semantics: what the filter must return for `arch`, `nr` and `args`.
    pub fn evaluate(&self, arch: Arch, nr: u32, args: &[u64; 6]) -> u32 {
        // AUDIT_ARCH_X86_64 carries both ABIs: numbers from the x32 bit up are x32's.
        let x32_bit = crate::arch::X32_SYSCALL_BIT;
        if arch == Arch::X86_64 && nr >= x32_bit {
            return if self.arches.contains(&Arch::X32) && self.arches.contains(&Arch::X86_64) {
                self.evaluate(Arch::X32, nr, args)
            } else {
                self.default_ret
            };
        }
        if arch == Arch::X32 && nr < x32_bit {
            return self.evaluate(Arch::X86_64, nr, args);
        }
        if !self.arches.contains(&arch) {
            return self.default_ret;
        }
        self.explain(arch, nr, args).0
    }

    /// As [`Self::evaluate`], also naming the rule (index into `rules`) that decided, if any.
    pub fn explain(&self, arch: Arch, nr: u32, args: &[u64; 6]) -> (u32, Option<usize>) {
        let decisions = self.decisions(arch);
        if let Some(d) = decisions.get(&nr) {
            for c in &d.conditional {
                let ok = c.args.iter().all(|a| {
                    let v = if arch.is_32bit() {
                        args[a.index as usize] & 0xffff_ffff
                    } else {
                        args[a.index as usize]
                    };
                    a.op.eval(v, a.value, a.value_two)
                });
                if ok {
                    return (c.ret, self.rule_for(arch, nr, c.ret, true));
                }
            }
            return match d.fallback {
                Some(ret) => (ret, self.rule_for(arch, nr, ret, false)),
                None => (self.default_ret, None),
            };
        }
        if self.enosys_above_in(&decisions).is_some_and(|max| nr > max) {
            return (RET_ERRNO | libc::ENOSYS as u32, None);
        }
        (self.default_ret, None)
    }

    fn rule_for(&self, arch: Arch, nr: u32, ret: u32, conditional: bool) -> Option<usize> {
        self.rules.iter().position(|(names, r, args)| {
            *r == ret
                && args.is_empty() != conditional
                && names.iter().any(|n| arch.syscall(n) == Some(nr))
        })
    }
}

fn matches_filter(f: &crate::profile::Filter, ctx: &Context, include: bool) -> bool {
    // include: every listed condition must hold; exclude: any listed condition excludes.
    let arch_hit = f
        .arches
        .iter()
        .any(|a| a == ctx.arch.go_name() || Arch::parse(a) == Some(ctx.arch));
    let kernel_ok = f
        .min_kernel
        .as_deref()
        .and_then(parse_kernel)
        .map(|min| ctx.kernel >= min);
    if include {
        (f.arches.is_empty() || arch_hit)
            && f.caps.iter().all(|c| ctx.caps.contains(c))
            && kernel_ok.unwrap_or(true)
    } else {
        (!f.arches.is_empty() && arch_hit)
            || f.caps.iter().any(|c| ctx.caps.contains(c))
            || kernel_ok.unwrap_or(false)
    }
}

impl Profile {
    pub fn resolve(&self, ctx: &Context) -> Resolved {
        let default_ret = self.default_action.ret(self.default_errno_ret);
        let mut arches: Vec<Arch> = vec![ctx.arch];
        for a in &self.architectures {
            if let Some(a) = Arch::from_scmp(a) {
                arches.push(a);
            }
        }
        for m in &self.arch_map {
            if Arch::from_scmp(&m.architecture) == Some(ctx.arch) {
                arches.extend(
                    m.sub_architectures
                        .iter()
                        .filter_map(|s| Arch::from_scmp(s)),
                );
            }
        }
        let mut seen = BTreeSet::new();
        arches.retain(|a| seen.insert(*a));
        let mut rules = vec![];
        let mut oci_rules = vec![];
        let mut unknown = BTreeSet::new();
        let mut notify = default_ret == crate::profile::RET_USER_NOTIF;
        for r in &self.syscalls {
            if !r.excludes.is_empty() && matches_filter(&r.excludes, ctx, false) {
                continue;
            }
            if !r.includes.is_empty() && !matches_filter(&r.includes, ctx, true) {
                continue;
            }
            let names: Vec<String> = Profile::names(r).into_iter().map(String::from).collect();
            for n in &names {
                if !crate::arch::known_anywhere(n) {
                    unknown.insert(n.clone());
                }
            }
            notify |= r.action == Action::Notify;
            rules.push((names, r.action.ret(r.errno_ret), r.args.clone()));
            let mut plain = r.clone();
            plain.includes = Default::default();
            plain.excludes = Default::default();
            plain.names = Profile::names(r).into_iter().map(String::from).collect();
            plain.name = None;
            oci_rules.push(plain);
        }
        Resolved {
            default_ret,
            arches: arches.clone(),
            flags: self.flag_bits(),
            notify,
            rules,
            unknown: unknown.into_iter().collect(),
            listener_path: self.listener_path.clone(),
            listener_metadata: self.listener_metadata.clone(),
            oci: Profile {
                architectures: arches.iter().map(|a| a.scmp_name().to_string()).collect(),
                arch_map: vec![],
                syscalls: oci_rules,
                ..self.clone()
            },
        }
    }
}
