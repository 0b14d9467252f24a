//! cgroup v2 has no devices files: device access is decided by a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program attached to the cgroup. This builds that program in-process from the OCI rules — a
//! few dozen eBPF instructions, with the assembler the learner shares ([`crate::ebpf`]).
//!
//! Semantics are those of the v1 devices lists: rules apply in order and the last match decides,
//! so the program tests them from last to first; no match denies.

use std::io;
use std::os::fd::OwnedFd;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// One rule: type (None: any), major/minor (None: any), access bits, allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub typ: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
    pub allow: bool,
}

pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;
pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;

fn access_bits(s: &str) -> u32 {
    s.chars()
        .map(|c| match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

impl Rule {
    pub fn from_oci(d: &LinuxDeviceCgroup) -> Rule {
        let typ = match d.typ() {
            Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
            _ => None,
        };
        let num = |v: Option<i64>| v.filter(|v| *v >= 0).map(|v| v as u32);
        Rule {
            typ,
            major: num(d.major()),
            minor: num(d.minor()),
            access: access_bits(d.access().as_deref().unwrap_or("rwm")),
            allow: d.allow(),
        }
    }

    /// Parse a v1-style rule ("c 1:3 rwm", "c 136:* rwm", "a").
    pub fn parse(s: &str, allow: bool) -> Option<Rule> {
        let mut it = s.split_whitespace();
        let t = it.next()?;
        let typ = match t {
            "a" => {
                return Some(Rule {
                    typ: None,
                    major: None,
                    minor: None,
                    access: ACC_READ | ACC_WRITE | ACC_MKNOD,
                    allow,
                })
            }
            "b" => Some(DEV_BLOCK),
            "c" => Some(DEV_CHAR),
            _ => return None,
        };
        let (maj, min) = it.next()?.split_once(':')?;
        let n = |x: &str| {
            if x == "*" {
                Some(None)
            } else {
                x.parse().ok().map(Some)
            }
        };
        Some(Rule {
            typ,
            major: n(maj)?,
            minor: n(min)?,
            access: access_bits(it.next().unwrap_or("rwm")),
            allow,
        })
    }

    /// Does this rule cover (type, major, minor, access)?
    pub fn matches(&self, typ: u32, major: u32, minor: u32, access: u32) -> bool {
        self.typ.is_none_or(|t| t == typ)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && access & !self.access == 0
    }
}

/// The reference semantics: the last matching rule decides; none denies.
pub fn decide(rules: &[Rule], typ: u32, major: u32, minor: u32, access: u32) -> bool {
    rules
        .iter()
        .rev()
        .find(|r| r.matches(typ, major, minor, access))
        .is_some_and(|r| r.allow)
}

use crate::ebpf::op::{AND64_IMM, EXIT, JNE_IMM, LDX_W, MOV64_IMM, MOV64_REG, RSH64_IMM};
pub use crate::ebpf::{insn, Insn};

/// The program: r2 = device type, r3 = requested access, r4 = major, r5 = minor; each rule is a
/// block that jumps past itself on a mismatch and otherwise returns its verdict.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0), // r2 = ctx->access_type
        insn(MOV64_REG, 3, 2, 0, 0),
        insn(AND64_IMM, 2, 0, 0, 0xffff), // type
        insn(RSH64_IMM, 3, 0, 0, 16),     // access
        insn(LDX_W, 4, 1, 4, 0),          // major
        insn(LDX_W, 5, 1, 8, 0),          // minor
    ];
    for r in rules.iter().rev() {
        let mut checks = vec![];
        if let Some(t) = r.typ {
            checks.push((2u8, None, t));
        }
        if r.access != ACC_READ | ACC_WRITE | ACC_MKNOD {
            checks.push((3, Some(!r.access & 7), 0));
        }
        if let Some(m) = r.major {
            checks.push((4, None, m));
        }
        if let Some(m) = r.minor {
            checks.push((5, None, m));
        }
        // length of the rest of the block after each check, to jump past it
        let len_of = |c: &(u8, Option<u32>, u32)| if c.1.is_some() { 3 } else { 1 };
        let total: usize = checks.iter().map(len_of).sum::<usize>() + 2;
        let mut used = 0;
        for c in &checks {
            used += len_of(c);
            let skip = (total - used) as i16;
            match c.1 {
                Some(deny_bits) => {
                    p.push(insn(MOV64_REG, 1, 3, 0, 0));
                    p.push(insn(AND64_IMM, 1, 0, 0, deny_bits as i32));
                    p.push(insn(JNE_IMM, 1, 0, skip, 0));
                }
                None => p.push(insn(JNE_IMM, c.0, 0, skip, c.2 as i32)),
            }
        }
        p.push(insn(MOV64_IMM, 0, 0, 0, r.allow as i32));
        p.push(insn(EXIT, 0, 0, 0, 0));
        if checks.is_empty() {
            // matches everything: earlier rules and the default are unreachable (and the
            // verifier refuses unreachable instructions)
            return p;
        }
    }
    p.push(insn(MOV64_IMM, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// Run the program on (access_type, major, minor) — an interpreter for the instructions
/// [`program`] emits, to check it against [`decide`] without a kernel.
pub fn run(p: &[Insn], typ: u32, major: u32, minor: u32, access: u32) -> bool {
    let mut r = [0u64; 11];
    let ctx = [(access << 16) | typ, major, minor];
    let mut pc = 0usize;
    loop {
        let i = p[pc];
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            LDX_W => r[dst] = ctx[(i.off / 4) as usize] as u64,
            MOV64_REG => r[dst] = r[src],
            MOV64_IMM => r[dst] = i.imm as i64 as u64,
            AND64_IMM => r[dst] &= i.imm as i64 as u64,
            RSH64_IMM => r[dst] >>= i.imm,
            JNE_IMM => {
                if r[dst] != i.imm as i64 as u64 {
                    pc = (pc as i64 + i.off as i64) as usize;
                }
            }
            EXIT => return r[0] != 0,
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
}

/// Load `p` and attach it to the cgroup v2 directory `cgroup`.
pub fn attach(p: &[Insn], cgroup: &std::path::Path) -> io::Result<()> {
    use crate::ebpf;
    let prog = ebpf::prog_load(
        ebpf::PROG_TYPE_CGROUP_DEVICE,
        p,
        ebpf::ATTACH_CGROUP_DEVICE,
        "stockade_dev",
        ebpf::License::Apache,
    )
    .map_err(|e| io::Error::new(e.kind(), format!("device filter: {e}")))?;
    let dir = OwnedFd::from(std::fs::File::open(cgroup)?);
    // The attachment holds the program; our descriptor may go.
    ebpf::prog_attach_cgroup(&prog, &dir, ebpf::ATTACH_CGROUP_DEVICE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Rule> {
        let mut v = vec![Rule::parse("a", false).unwrap()];
        for r in crate::cgroups::DEFAULT_ALLOWED_DEVICES {
            v.push(Rule::parse(r, true).unwrap());
        }
        v.push(Rule::parse("b 8:0 m", true).unwrap());
        v.push(Rule::parse("c 1:5 w", false).unwrap());
        v
    }

    /// The program and the rule list agree on every (type, major, minor, access) tried.
    fn check(rules: &[Rule]) {
        let p = program(rules);
        for typ in [DEV_BLOCK, DEV_CHAR] {
            for major in [0, 1, 5, 8, 136, 200] {
                for minor in [0, 2, 3, 5, 9, 77] {
                    for access in 1..8 {
                        assert_eq!(
                            run(&p, typ, major, minor, access),
                            decide(rules, typ, major, minor, access),
                            "{typ} {major}:{minor} {access}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn program_decides_like_the_rule_list() {
        let allow_all_but = vec![
            Rule::parse("a", false).unwrap(),
            Rule::parse("a", true).unwrap(),
            Rule::parse("c 1:5 w", false).unwrap(),
        ];
        check(&rules());
        check(&allow_all_but);
        let rules = rules();
        assert!(decide(&rules, DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE));
        assert!(
            !decide(&rules, DEV_CHAR, 1, 5, ACC_WRITE),
            "the later deny wins"
        );
        assert!(decide(&rules, DEV_CHAR, 1, 5, ACC_READ));
        assert!(decide(&rules, DEV_BLOCK, 8, 0, ACC_MKNOD));
        assert!(!decide(&rules, DEV_BLOCK, 8, 0, ACC_READ));
        assert!(decide(&rules, DEV_CHAR, 136, 77, ACC_READ), "pty wildcard");
        assert!(!decide(&allow_all_but, DEV_CHAR, 1, 5, ACC_WRITE));
        assert!(decide(&allow_all_but, DEV_BLOCK, 8, 0, ACC_READ));
    }
}
