//! The compiler: resolved profile → classic BPF.
//!
//! ```text
//! ld arch; jeq NATIVE else next-arch      (native falls through: 2 instructions)
//!   ld nr; balanced search over runs      (runs: maximal ranges of numbers with one decision)
//!     leaf: ret ACTION                    (unconditional: only nr and arch were read → cacheable)
//!     leaf: argument checks; ret ...      (one syscall; 64-bit compares on both halves)
//! next-arch: ...; ret DEFAULT             (unknown architecture: the profile's default)
//! ```
//! On x86_64 the numbers with the x32 bit form one more run that leads to the x32 section (or
//! to the default when x32 is not allowed). Jumps farther than 255 get a trampoline (`ja`).

use std::collections::BTreeMap;

use crate::arch::{Arch, X32_SYSCALL_BIT};
use crate::bpf::*;
use crate::profile::{Arg, Op, Profile, RET_ERRNO};
use crate::resolve::{Context, Decision, Resolved};
use crate::{Error, Result};

/// The most instructions the kernel accepts in one filter (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

/// A compiled filter, ready to load.
#[derive(Debug, Clone)]
pub struct Filter {
    pub program: Vec<SockFilter>,
    /// SECCOMP_FILTER_FLAG_* bits to load with.
    pub flags: u32,
    /// Some rule uses SCMP_ACT_NOTIFY: load with a listener.
    pub notify: bool,
    /// Syscall names no supported architecture knows (warn about them).
    pub unknown: Vec<String>,
}

impl Filter {
    /// A compact, self-delimiting encoding (flags, notify, unknown names, program), for the
    /// runtime↔child channel and the runtime's filter cache. Inverse of [`Filter::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + 8 * self.program.len());
        b.extend(self.flags.to_le_bytes());
        b.push(self.notify as u8);
        b.extend((self.unknown.len() as u32).to_le_bytes());
        for u in &self.unknown {
            b.extend((u.len() as u32).to_le_bytes());
            b.extend(u.as_bytes());
        }
        b.extend((self.program.len() as u32).to_le_bytes());
        for i in &self.program {
            b.extend(i.code.to_le_bytes());
            b.extend([i.jt, i.jf]);
            b.extend(i.k.to_le_bytes());
        }
        b
    }

    /// Decode [`Filter::to_bytes`]; None when `b` is not exactly such an encoding (truncated or
    /// with trailing bytes, say).
    pub fn from_bytes(b: &[u8]) -> Option<Filter> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = (b.get(..n)?, b.get(n..)?);
            *b = tail;
            Some(head)
        }
        let u32_of = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes"));
        let mut b = b;
        let flags = u32_of(take(&mut b, 4)?);
        let notify = match take(&mut b, 1)?[0] {
            0 => false,
            1 => true,
            _ => return None,
        };
        let mut unknown = vec![];
        for _ in 0..u32_of(take(&mut b, 4)?) {
            let n = u32_of(take(&mut b, 4)?) as usize;
            unknown.push(String::from_utf8(take(&mut b, n)?.to_vec()).ok()?);
        }
        let n = u32_of(take(&mut b, 4)?) as usize;
        if n > MAX_INSNS || b.len() != 8 * n {
            return None;
        }
        let program = b
            .chunks_exact(8)
            .map(|c| SockFilter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32_of(&c[4..8]),
            })
            .collect();
        Some(Filter {
            program,
            flags,
            notify,
            unknown,
        })
    }

    /// The most instructions any input can execute (longest path through the DAG).
    pub fn longest_path(&self) -> usize {
        longest_path(&self.program)
    }

    /// Run the filter in the interpreter: (return value, instructions executed).
    pub fn eval(&self, arch: Arch, nr: u32, args: [u64; 6]) -> (u32, usize) {
        let data = SeccompData {
            nr,
            arch: arch.audit(),
            ip: 0,
            args,
        };
        run(&self.program, &data).expect("compiled programs are valid")
    }
}

/// The most instructions any input can execute in `p` (any classic BPF program: jumps only go
/// forward, so this is the longest path through a DAG).
pub fn longest_path(p: &[SockFilter]) -> usize {
    let mut best = vec![0usize; p.len() + 1];
    for i in (0..p.len()).rev() {
        let ins = p[i];
        let next = |o: usize| best.get(i + 1 + o).copied().unwrap_or(0);
        best[i] = 1 + match ins.code & 0x07 {
            BPF_RET => 0,
            BPF_JMP if ins.code & 0xf0 == BPF_JA => next(ins.k as usize),
            BPF_JMP => next(ins.jt as usize).max(next(ins.jf as usize)),
            _ => next(0),
        };
    }
    best[0]
}

pub fn compile_profile(p: &Profile, ctx: &Context) -> Result<Filter> {
    compile(&p.resolve(ctx))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Label(usize);

#[derive(Clone, Copy, Debug)]
enum Target {
    Next,
    L(Label),
}

#[derive(Clone, Debug)]
enum Item {
    Ins(SockFilter),
    Jmp {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Ja(Label),
    Mark(Label),
}

#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
    loaded: Option<u32>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn mark(&mut self, l: Label) {
        self.items.push(Item::Mark(l));
        self.loaded = None;
    }
    /// A label reached only with A unchanged from the jump that targets it.
    fn mark_keep(&mut self, l: Label) {
        let keep = self.loaded;
        self.mark(l);
        self.loaded = keep;
    }
    fn ld(&mut self, off: u32) {
        if self.loaded != Some(off) {
            self.items
                .push(Item::Ins(stmt(BPF_LD | BPF_W | BPF_ABS, off)));
            self.loaded = Some(off);
        }
    }
    fn and(&mut self, k: u32) {
        self.items
            .push(Item::Ins(stmt(BPF_ALU | BPF_AND | BPF_K, k)));
        self.loaded = None;
    }
    fn jmp(&mut self, op: u16, k: u32, jt: Target, jf: Target) {
        self.items.push(Item::Jmp {
            code: BPF_JMP | op | BPF_K,
            k,
            jt,
            jf,
        });
    }
    fn ja(&mut self, l: Label) {
        self.items.push(Item::Ja(l));
    }
    fn ret(&mut self, k: u32) {
        self.items.push(Item::Ins(stmt(BPF_RET | BPF_K, k)));
    }

    /// Lay out, inserting trampolines until every conditional jump fits in 8 bits.
    fn finish(mut self) -> Result<Vec<SockFilter>> {
        loop {
            let (pos, labels) = self.positions();
            let mut fix = None;
            for (i, it) in self.items.iter().enumerate() {
                if let Item::Jmp { jt, jf, .. } = it {
                    let far =
                        |t: &Target| matches!(t, Target::L(l) if labels[l.0] - pos[i] - 1 > 255);
                    if far(jt) || far(jf) {
                        fix = Some((i, far(jt), far(jf)));
                        break;
                    }
                }
            }
            let Some((i, fjt, fjf)) = fix else { break };
            let Item::Jmp { code, k, jt, jf } = self.items[i].clone() else {
                unreachable!()
            };
            let mut insert = vec![];
            let mut new_jt = jt;
            let mut new_jf = jf;
            // Each far branch goes to its own `ja` placed right after the jump.
            if fjt {
                let t = self.label();
                insert.push(Item::Mark(t));
                if let Target::L(l) = jt {
                    insert.push(Item::Ja(l));
                }
                new_jt = Target::L(t);
            }
            if fjf {
                let t = self.label();
                insert.push(Item::Mark(t));
                if let Target::L(l) = jf {
                    insert.push(Item::Ja(l));
                }
                new_jf = Target::L(t);
            }
            // A near branch that was "next" must now skip the trampolines.
            let skip = self.label();
            if matches!(new_jt, Target::Next) {
                new_jt = Target::L(skip);
            }
            if matches!(new_jf, Target::Next) {
                new_jf = Target::L(skip);
            }
            insert.push(Item::Mark(skip));
            self.items[i] = Item::Jmp {
                code,
                k,
                jt: new_jt,
                jf: new_jf,
            };
            self.items.splice(i + 1..i + 1, insert);
        }
        let (pos, labels) = self.positions();
        let mut out = Vec::with_capacity(pos.last().copied().unwrap_or(0));
        for (i, it) in self.items.iter().enumerate() {
            let off = |t: &Target| -> u8 {
                match t {
                    Target::Next => 0,
                    Target::L(l) => (labels[l.0] - pos[i] - 1) as u8,
                }
            };
            match it {
                Item::Ins(s) => out.push(*s),
                Item::Jmp { code, k, jt, jf } => out.push(jump(*code, *k, off(jt), off(jf))),
                Item::Ja(l) => out.push(stmt(BPF_JMP | BPF_JA, (labels[l.0] - pos[i] - 1) as u32)),
                Item::Mark(_) => {}
            }
        }
        if out.len() > MAX_INSNS {
            return Err(Error::TooLong(out.len()));
        }
        Ok(out)
    }

    /// Instruction index of every item, and of every label.
    fn positions(&self) -> (Vec<usize>, Vec<usize>) {
        let mut pos = Vec::with_capacity(self.items.len());
        let mut labels = vec![usize::MAX; self.labels];
        let mut n = 0;
        for it in &self.items {
            pos.push(n);
            match it {
                Item::Mark(l) => labels[l.0] = n,
                _ => n += 1,
            }
        }
        (pos, labels)
    }
}

/// What a run of syscall numbers does.
#[derive(Clone, Debug, PartialEq)]
enum Block {
    Ret(u32),
    Cond(Decision),
    Goto(Label),
}

/// Partition [lo, hi) into runs (start, block), merging neighbours that return the same.
fn runs(
    decisions: &BTreeMap<u32, Decision>,
    default: u32,
    enosys_above: Option<u32>,
    lo: u32,
    hi: u64,
) -> Vec<(u32, Block)> {
    let mut out: Vec<(u32, Block)> = vec![];
    let mut push = |start: u32, b: Block| {
        if let Some((_, last)) = out.last() {
            if *last == b {
                return;
            }
        }
        out.push((start, b));
    };
    let mut next = lo as u64;
    let gap = |n: u64| -> Block {
        match enosys_above {
            Some(max) if n > max as u64 => Block::Ret(RET_ERRNO | libc::ENOSYS as u32),
            _ => Block::Ret(default),
        }
    };
    for (&nr, d) in decisions.range(lo..) {
        if nr as u64 >= hi {
            break;
        }
        if (nr as u64) > next {
            // The gap may straddle the ENOSYS boundary.
            match enosys_above {
                Some(max) if (max as u64) >= next && (max as u64) < nr as u64 => {
                    push(next as u32, Block::Ret(default));
                    push(max + 1, gap(max as u64 + 1));
                }
                _ => push(next as u32, gap(next)),
            }
        }
        let b = if d.conditional.is_empty() {
            Block::Ret(d.fallback.unwrap_or(default))
        } else {
            Block::Cond(d.clone())
        };
        push(nr, b);
        next = nr as u64 + 1;
    }
    if next < hi {
        match enosys_above {
            Some(max) if (max as u64) >= next => {
                push(next as u32, Block::Ret(default));
                if (max as u64) + 1 < hi {
                    push(max + 1, gap(max as u64 + 1));
                }
            }
            _ => push(next as u32, gap(next)),
        }
    }
    out
}

fn emit_tree(asm: &mut Asm, runs: &[(u32, Block)], arch: Arch, default: u32) {
    if runs.len() == 1 {
        match &runs[0].1 {
            Block::Ret(k) => asm.ret(*k),
            Block::Goto(l) => asm.ja(*l),
            Block::Cond(d) => emit_decision(asm, d, arch, default),
        }
        return;
    }
    let mid = runs.len() / 2;
    let right = asm.label();
    asm.ld(OFF_NR);
    asm.jmp(BPF_JGE, runs[mid].0, Target::L(right), Target::Next);
    let a = asm.loaded;
    emit_tree(asm, &runs[..mid], arch, default);
    asm.loaded = a;
    asm.mark_keep(right);
    emit_tree(asm, &runs[mid..], arch, default);
}

fn emit_decision(asm: &mut Asm, d: &Decision, arch: Arch, default: u32) {
    let conds = &d.conditional;
    let mut i = 0;
    while i < conds.len() {
        // A run of single EQ conditions on one argument with one action: a set-membership test.
        let c = &conds[i];
        let eq_set = |x: &crate::resolve::Cond| {
            x.ret == c.ret
                && x.args.len() == 1
                && x.args[0].op == Op::Eq
                && x.args[0].index == c.args[0].index
        };
        let mut j = i;
        while j < conds.len() && c.args.len() == 1 && eq_set(&conds[j]) {
            j += 1;
        }
        if j - i >= 2 {
            let values: Vec<u64> = conds[i..j].iter().map(|x| x.args[0].value).collect();
            emit_eq_set(asm, c.args[0].index, &values, c.ret, arch);
            i = j;
            continue;
        }
        // A run of single range-like conditions on one argument with one action: a union of
        // intervals, tested with one comparison per boundary.
        let ranged = |x: &crate::resolve::Cond| {
            x.ret == c.ret
                && x.args.len() == 1
                && x.args[0].op != Op::MaskedEq
                && x.args[0].index == c.args[0].index
        };
        let mut j = i;
        while j < conds.len() && c.args.len() == 1 && ranged(&conds[j]) {
            j += 1;
        }
        if j - i >= 2 && emit_interval_union(asm, c.args[0].index, &conds[i..j], c.ret, arch) {
            i = j;
            continue;
        }
        let fail = asm.label();
        for a in &c.args {
            emit_cmp(asm, a, fail, arch);
        }
        asm.ret(c.ret);
        asm.mark(fail);
        i += 1;
    }
    asm.ret(d.fallback.unwrap_or(default));
}

/// The values an argument condition accepts, as sorted disjoint closed intervals.
fn intervals(a: &Arg, max: u64) -> Vec<(u64, u64)> {
    let v = a.value.min(max);
    match a.op {
        Op::Eq => vec![(a.value, a.value)]
            .into_iter()
            .filter(|(x, _)| *x <= max)
            .collect(),
        Op::Ne if a.value > max => vec![(0, max)],
        Op::Ne if a.value == 0 => vec![(1, max)],
        Op::Ne if a.value == max => vec![(0, max - 1)],
        Op::Ne => vec![(0, a.value - 1), (a.value + 1, max)],
        Op::Lt => {
            if a.value == 0 {
                vec![]
            } else {
                vec![(0, (a.value - 1).min(max))]
            }
        }
        Op::Le => vec![(0, v)],
        Op::Gt => {
            if a.value >= max {
                vec![]
            } else {
                vec![(a.value + 1, max)]
            }
        }
        Op::Ge => {
            if a.value > max {
                vec![]
            } else {
                vec![(a.value, max)]
            }
        }
        Op::MaskedEq => unreachable!("not an interval"),
    }
}

fn union(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort();
    let mut out: Vec<(u64, u64)> = vec![];
    for (a, b) in v {
        match out.last_mut() {
            Some((_, pb)) if a <= pb.saturating_add(1) => *pb = (*pb).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Membership of the 32-bit accumulator in `set` (disjoint, sorted, within 0..=u32::MAX):
/// one `jge` per boundary, jumping to `hit` or `miss`.
fn emit_membership(asm: &mut Asm, set: &[(u64, u64)], hit: Label, miss: Label) {
    let mut bounds: Vec<(u32, bool)> = vec![]; // (point, state from here on)
    let starts_in = set.first().is_some_and(|(a, _)| *a == 0);
    for (a, b) in set {
        if *a != 0 {
            bounds.push((*a as u32, true));
        }
        if *b < u32::MAX as u64 {
            bounds.push((*b as u32 + 1, false));
        }
    }
    let label = |inside: bool| Target::L(if inside { hit } else { miss });
    if bounds.is_empty() {
        asm.ja(if starts_in { hit } else { miss });
        return;
    }
    let mut state = starts_in;
    for (k, (p, next_state)) in bounds.iter().enumerate() {
        let last = k + 1 == bounds.len();
        let above = if last {
            label(*next_state)
        } else {
            Target::Next
        };
        asm.jmp(BPF_JGE, *p, above, label(state));
        state = *next_state;
    }
}

/// Emit the union of single-argument range conditions; false if the shape is not handled
/// (values above 32 bits that only partly cover the upper range), leaving the generic path.
fn emit_interval_union(
    asm: &mut Asm,
    index: u32,
    conds: &[crate::resolve::Cond],
    ret: u32,
    arch: Arch,
) -> bool {
    let max = if arch.is_32bit() {
        u32::MAX as u64
    } else {
        u64::MAX
    };
    let set = union(
        conds
            .iter()
            .flat_map(|c| intervals(&c.args[0], max))
            .collect(),
    );
    let low: Vec<(u64, u64)> = set
        .iter()
        .filter(|(a, _)| *a <= u32::MAX as u64)
        .map(|(a, b)| (*a, (*b).min(u32::MAX as u64)))
        .collect();
    let high: Vec<(u64, u64)> = set
        .iter()
        .filter(|(_, b)| *b > u32::MAX as u64)
        .map(|(a, b)| ((*a).max(1 << 32), *b))
        .collect();
    let high_all = high.len() == 1 && high[0] == (1 << 32, u64::MAX);
    if !arch.is_32bit() && !high.is_empty() && !high_all {
        return false;
    }
    let hit = asm.label();
    let miss = asm.label();
    if !arch.is_32bit() {
        let lowpart = asm.label();
        asm.ld(off_arg_hi(index));
        asm.jmp(
            BPF_JEQ,
            0,
            Target::L(lowpart),
            Target::L(if high_all { hit } else { miss }),
        );
        asm.mark(lowpart);
    }
    asm.ld(off_arg_lo(index));
    emit_membership(asm, &low, hit, miss);
    asm.mark(hit);
    asm.ret(ret);
    asm.mark(miss);
    true
}

fn emit_eq_set(asm: &mut Asm, index: u32, values: &[u64], ret: u32, arch: Arch) {
    let mut by_hi: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for v in values {
        by_hi.entry((v >> 32) as u32).or_default().push(*v as u32);
    }
    let hit = asm.label();
    let done = asm.label();
    let groups: Vec<_> = by_hi.into_iter().collect();
    for (g, (hi, lows)) in groups.iter().enumerate() {
        let last_group = g + 1 == groups.len();
        let next = asm.label();
        if !arch.is_32bit() {
            asm.ld(off_arg_hi(index));
            asm.jmp(BPF_JEQ, *hi, Target::Next, Target::L(next));
        }
        asm.ld(off_arg_lo(index));
        for (n, lo) in lows.iter().enumerate() {
            let last = last_group && n + 1 == lows.len();
            if last {
                asm.jmp(BPF_JEQ, *lo, Target::L(hit), Target::L(done));
            } else {
                asm.jmp(BPF_JEQ, *lo, Target::L(hit), Target::Next);
            }
        }
        asm.mark(next);
        if last_group && !arch.is_32bit() {
            asm.ja(done);
        }
    }
    asm.mark(hit);
    asm.ret(ret);
    asm.mark(done);
}

/// Fall through when `a` holds, jump to `fail` otherwise.
fn emit_cmp(asm: &mut Asm, a: &Arg, fail: Label, arch: Arch) {
    let (vh, vl) = ((a.value >> 32) as u32, a.value as u32);
    let (dh, dl) = ((a.value_two >> 32) as u32, a.value_two as u32);
    let hi = off_arg_hi(a.index);
    let lo = off_arg_lo(a.index);
    let wide = !arch.is_32bit();
    let pass = asm.label();
    let f = Target::L(fail);
    let p = Target::L(pass);
    let n = Target::Next;
    match a.op {
        Op::Eq => {
            if wide {
                asm.ld(hi);
                asm.jmp(BPF_JEQ, vh, n, f);
            }
            asm.ld(lo);
            asm.jmp(BPF_JEQ, vl, n, f);
        }
        Op::Ne => {
            if wide {
                asm.ld(hi);
                asm.jmp(BPF_JEQ, vh, n, p);
            }
            asm.ld(lo);
            asm.jmp(BPF_JEQ, vl, f, n);
        }
        Op::MaskedEq => {
            if wide {
                asm.ld(hi);
                asm.and(vh);
                asm.jmp(BPF_JEQ, dh, n, f);
            }
            asm.ld(lo);
            asm.and(vl);
            asm.jmp(BPF_JEQ, dl, n, f);
        }
        Op::Gt | Op::Ge => {
            if wide {
                asm.ld(hi);
                asm.jmp(BPF_JGT, vh, p, n);
                asm.jmp(BPF_JEQ, vh, n, f);
            }
            asm.ld(lo);
            asm.jmp(if a.op == Op::Gt { BPF_JGT } else { BPF_JGE }, vl, n, f);
        }
        Op::Lt | Op::Le => {
            if wide {
                asm.ld(hi);
                asm.jmp(BPF_JGE, vh, n, p);
                asm.jmp(BPF_JEQ, vh, n, f);
            }
            asm.ld(lo);
            asm.jmp(if a.op == Op::Lt { BPF_JGE } else { BPF_JGT }, vl, f, n);
        }
    }
    asm.mark(pass);
}

/// Compile a resolved profile.
pub fn compile(r: &Resolved) -> Result<Filter> {
    let mut asm = Asm::default();
    let default = r.default_ret;
    let has_x32 = r.arches.contains(&Arch::X32);
    let sections: Vec<Arch> = r
        .arches
        .iter()
        .copied()
        .filter(|a| *a != Arch::X32)
        .collect();
    let x32_label = asm.label();
    asm.ld(OFF_ARCH);
    for arch in &sections {
        let other = asm.label();
        asm.ld(OFF_ARCH);
        asm.jmp(BPF_JEQ, arch.audit(), Target::Next, Target::L(other));
        let decisions = r.decisions(*arch);
        let enosys = r.enosys_above_in(&decisions);
        let mut rs = if *arch == Arch::X86_64 {
            let mut v = runs(&decisions, default, enosys, 0, X32_SYSCALL_BIT as u64);
            v.push((
                X32_SYSCALL_BIT,
                if has_x32 {
                    Block::Goto(x32_label)
                } else {
                    Block::Ret(default)
                },
            ));
            v
        } else {
            runs(&decisions, default, enosys, 0, 1 << 32)
        };
        if rs.is_empty() {
            rs.push((0, Block::Ret(default)));
        }
        emit_tree(&mut asm, &rs, *arch, default);
        asm.mark(other);
    }
    asm.ret(default);
    if has_x32 {
        asm.mark(x32_label);
        let decisions = r.decisions(Arch::X32);
        let rs = runs(
            &decisions,
            default,
            r.enosys_above_in(&decisions),
            X32_SYSCALL_BIT,
            1 << 32,
        );
        let mut all = vec![(0, Block::Ret(default))];
        all.extend(rs);
        emit_tree(&mut asm, &all, Arch::X32, default);
    }
    let program = asm.finish()?;
    Ok(Filter {
        program,
        flags: r.flags,
        notify: r.notify,
        unknown: r.unknown.clone(),
    })
}
