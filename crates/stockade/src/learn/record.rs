//! Recording in the kernel: two raw-tracepoint programs, assembled in-process with
//! [`crate::ebpf`], that set bits in maps. No ring buffer and no event stream to user space, so
//! nothing can be dropped however fast the workload is.
//!
//! - `sys_enter`: for a task whose cgroup (at the container's level of the unified hierarchy:
//!   `bpf_get_current_ancestor_cgroup_id`) is the container's, named in the state map (by
//!   `learn`'s run once the runtime has made it: [`hand_target_from_env`]; by the engine path
//!   directly), and only once that cgroup has loaded its seccomp filter (the program arms
//!   itself on `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)` or runc's
//!   `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog)`, not on libseccomp's NULL probes),
//!   mark the syscall number, and for the calls whose arguments carry the risk, the distinct
//!   values of those arguments (a hash map; when it is full the call is marked "overflowed" and
//!   its arguments are left unconstrained). Which arguments a call has recorded is in its own
//!   `sys[nr]` entry, so one generic block does it and a call with none costs one lookup.
//!   i386 calls (`TS_COMPAT` in the task's `thread_info.status`, read through the BTF task
//!   pointer) are marked by their i386 numbers in a map of their own; x32 ones set a flag.
//! - `cap_capable`: the same cgroup, once armed: each capability checked, and whether it was
//!   granted.
//!
//! x86_64 only (the argument registers' offsets in `struct pt_regs`, `thread_info` first in
//! the task as since Linux 5.11).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use crate::ebpf::{self, helper, op::*, Asm, Label, Map};

/// Syscall numbers recorded (the native table is below this).
pub const MAX_NR: u32 = 1024;

/// (syscall, argument index) pairs whose values are recorded.
pub const ARG_RULES: &[(&str, u32)] = &[
    ("socket", 0),
    ("socket", 1),
    ("socketpair", 0),
    ("socketpair", 1),
    ("clone", 0),
    ("unshare", 0),
    ("setns", 1),
    ("ioctl", 1),
    ("prctl", 0),
    ("personality", 0),
    ("mmap", 2),
    ("mprotect", 2),
    ("pkey_mprotect", 2),
];

/// Offsets of the six syscall argument registers in x86_64's `struct pt_regs`
/// (rdi, rsi, rdx, r10, r8, r9).
const ARG_REG_OFF: [i32; 6] = [112, 104, 96, 56, 72, 64];
const ARGS_MAX_ENTRIES: u32 = 16384;
const CAPS_ENTRIES: u32 = 64;
/// Bits of one argument's slot in `sys[nr] >> 8`: its pt_regs offset (7 bits), its index.
const SLOT_BITS: i32 = 10;

/// `sys[nr]`'s initial value: which arguments of `nr` to record (at most two), so the program
/// has one generic recording block instead of one per rule, and a call with none costs a
/// single map lookup.
fn arg_slots() -> BTreeMap<u32, u32> {
    let mut m: BTreeMap<u32, u32> = BTreeMap::new();
    for (name, idx) in ARG_RULES {
        let Some(nr) = stockade_seccomp::Arch::native().syscall(name) else {
            continue;
        };
        let slot = ARG_REG_OFF[*idx as usize] as u32 | idx << 7;
        let e = m.entry(nr).or_default();
        let k = if *e == 0 { 0 } else { 1 };
        assert!(
            *e >> (SLOT_BITS as u32) == 0,
            "at most two recorded arguments per call"
        );
        *e |= slot << (SLOT_BITS as u32 * k);
    }
    m.into_iter().map(|(nr, v)| (nr, v << 8)).collect()
}
/// state[0]: armed flag (u64: 0 not yet, 1 armed, 2 done), x32 seen (u64), the target cgroup's
/// id (u64: 0 = not known yet, nothing recorded) and its level in the unified hierarchy (u64).
const STATE_SIZE: usize = 32;
const STATE_TARGET: i16 = 16;
const STATE_LEVEL: i16 = 24;
/// The environment variable through which `learn` hands its `stockade run` the recorder (the
/// state map's id): the runtime names the container's cgroup in it once it exists.
pub const TARGET_ENV: &str = "STOCKADE_LEARN_RECORDER";
/// The pinned objects' file names, in a bpf filesystem of the container's own.
const PINS: [&str; 5] = ["state", "sys", "args", "caps", "compat"];
const SECCOMP_SET_MODE_FILTER: i32 = 1;
const PR_SET_SECCOMP: i32 = 22;
const SECCOMP_MODE_FILTER: i32 = 2;
const X32_SYSCALL_BIT: i32 = 0x4000_0000;
/// i386 syscall numbers recorded (the table is below this).
const COMPAT_NR: u32 = 512;
/// `offsetof(struct task_struct, thread_info.status)` on x86_64 since Linux 5.11 (thread_info
/// first in the task, after `flags` and `syscall_work`), and its "in a 32-bit syscall" bit.
const THREAD_INFO_STATUS: i16 = 16;
const TS_COMPAT: i32 = 0x2;

/// What a learning run did, by name: the raw observations `learn merge` unions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Observed {
    pub syscalls: BTreeSet<String>,
    /// syscall → argument index → distinct values seen
    pub args: BTreeMap<String, BTreeMap<u32, BTreeSet<u64>>>,
    /// syscalls whose argument values did not all fit the map
    pub args_overflow: BTreeSet<String>,
    pub caps_checked: BTreeSet<String>,
    pub caps_granted: BTreeSet<String>,
    /// an x32 system call was made (native x86_64 profiles do not cover them)
    pub x32: bool,
    /// i386 (compat, `int 0x80`) system calls made, by their i386 names: the profile is for
    /// the native ABI only, so these stay denied, and the report names them
    #[serde(default)]
    pub compat: BTreeSet<String>,
    /// numbers with no name in this build's table
    pub unknown_numbers: BTreeSet<u32>,
}

impl Observed {
    /// A call `name` seen, with these (argument index, value) pairs.
    pub fn note(&mut self, name: &str, args: &[(u32, u64)]) {
        self.syscalls.insert(name.to_string());
        for (i, v) in args {
            self.args
                .entry(name.to_string())
                .or_default()
                .entry(*i)
                .or_default()
                .insert(*v);
        }
    }

    pub fn merge(&mut self, o: &Observed) {
        self.syscalls.extend(o.syscalls.iter().cloned());
        for (n, a) in &o.args {
            let e = self.args.entry(n.clone()).or_default();
            for (i, v) in a {
                e.entry(*i).or_default().extend(v.iter().copied());
            }
        }
        self.args_overflow.extend(o.args_overflow.iter().cloned());
        self.caps_checked.extend(o.caps_checked.iter().cloned());
        self.caps_granted.extend(o.caps_granted.iter().cloned());
        self.x32 |= o.x32;
        self.compat.extend(o.compat.iter().cloned());
        self.unknown_numbers
            .extend(o.unknown_numbers.iter().copied());
    }
}

/// The programs attached, and their maps; everything is detached and freed on drop.
pub struct Recorder {
    state: Map,
    sys: Map,
    args: Map,
    caps: Map,
    compat: Map,
    /// the attached programs, by the names they are pinned under
    links: Vec<(&'static str, OwnedFd)>,
}

fn nr_of(name: &str) -> i32 {
    stockade_seccomp::Arch::native()
        .syscall(name)
        .expect("a native syscall") as i32
}

/// `if current task's cgroup at `level` != target: goto out`.
/// `if current task's cgroup at state.level != state.target: goto out` (r8 = the state; no
/// target yet: out).
fn cgroup_check(a: &mut Asm, out: Label) {
    a.i(LDX_DW, 2, 8, STATE_TARGET, 0);
    a.jump(JEQ_IMM, 2, 0, 0, out);
    a.i(LDX_DW, 1, 8, STATE_LEVEL, 0)
        .call(helper::GET_CURRENT_ANCESTOR_CGROUP_ID);
    a.i(LDX_DW, 1, 8, STATE_TARGET, 0);
    a.jump(JNE_REG, 0, 1, 0, out);
}

/// `r0 = lookup(map, &(u32 at r10-4))`; jump to `none` when absent.
fn lookup_u32_key(a: &mut Asm, map: &Map, none: Label) {
    a.ld_map(1, &map.fd);
    a.i(MOV64_REG, 2, 10, 0, 0).i(ADD64_IMM, 2, 0, 0, -4);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jump(JEQ_IMM, 0, 0, 0, none);
}

/// `*(u64 *)(r10 - 16) = syscall argument idx` (regs pointer at ctx[0], in r6).
fn read_arg(a: &mut Asm, idx: u32) {
    a.i(MOV64_REG, 1, 10, 0, 0).i(ADD64_IMM, 1, 0, 0, -16);
    a.i(MOV64_IMM, 2, 0, 0, 8);
    a.i(LDX_DW, 3, 6, 0, 0)
        .i(ADD64_IMM, 3, 0, 0, ARG_REG_OFF[idx as usize]);
    a.call(helper::PROBE_READ_KERNEL);
}

/// The armed flag: state[0].armed (r8 = its address), else `out`.
fn state_ptr(a: &mut Asm, state: &Map, out: Label) {
    a.i(ST_W, 10, 0, -4, 0);
    lookup_u32_key(a, state, out);
    a.i(MOV64_REG, 8, 0, 0, 0);
}

fn sys_enter_program(r: &Recorder, until_exec: bool) -> Vec<Insn> {
    let mut a = Asm::default();
    let (out, armed, native) = (a.label(), a.label(), a.label());
    let compat = a.label();
    a.i(MOV64_REG, 6, 1, 0, 0);
    state_ptr(&mut a, &r.state, out);
    cgroup_check(&mut a, out);
    a.i(LDX_DW, 7, 6, 8, 0); // r7 = syscall number
    a.i(LDX_DW, 1, 8, 0, 0);
    if until_exec {
        // done (2): the first execve after the filter was recorded
        a.jump(JEQ_IMM, 1, 0, 2, out);
    }
    a.jump(JNE_IMM, 1, 0, 0, armed);
    // not armed yet: arm on seccomp(SECCOMP_SET_MODE_FILTER, flags, prog) or
    // prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog) (runc's way), record nothing; not on
    // libseccomp's probes of the flags the kernel knows (prog NULL: EFAULT), which runc makes
    // long before its filter
    let (via_prctl, arm) = (a.label(), a.label());
    a.jump(JNE_IMM, 7, 0, nr_of("seccomp"), via_prctl);
    read_arg(&mut a, 0);
    a.i(LDX_DW, 1, 10, -16, 0);
    a.jump(JNE_IMM, 1, 0, SECCOMP_SET_MODE_FILTER, out);
    read_arg(&mut a, 2);
    a.i(LDX_DW, 1, 10, -16, 0);
    a.jump(JEQ_IMM, 1, 0, 0, out);
    a.jump(JA, 0, 0, 0, arm);
    a.place(via_prctl);
    a.jump(JNE_IMM, 7, 0, nr_of("prctl"), out);
    read_arg(&mut a, 0);
    a.i(LDX_DW, 1, 10, -16, 0);
    a.jump(JNE_IMM, 1, 0, PR_SET_SECCOMP, out);
    read_arg(&mut a, 1);
    a.i(LDX_DW, 1, 10, -16, 0);
    a.jump(JNE_IMM, 1, 0, SECCOMP_MODE_FILTER, out);
    a.place(arm);
    a.i(MOV64_IMM, 1, 0, 0, 1).i(STX_DW, 8, 1, 0, 0);
    a.jump(JA, 0, 0, 0, out);
    a.place(armed);
    // an i386 (compat) call: TS_COMPAT in current->thread_info.status, read straight from the
    // task (a BTF pointer: one load, no probe_read); its number is an i386 one
    a.call(helper::GET_CURRENT_TASK_BTF);
    a.i(LDX_W, 1, 0, THREAD_INFO_STATUS, 0);
    a.jump(JSET_IMM, 1, 0, TS_COMPAT, compat);
    a.i(MOV64_REG, 1, 7, 0, 0)
        .i(AND64_IMM, 1, 0, 0, X32_SYSCALL_BIT);
    a.jump(JEQ_IMM, 1, 0, 0, native);
    a.i(MOV64_IMM, 1, 0, 0, 1).i(STX_DW, 8, 1, 8, 0);
    a.jump(JA, 0, 0, 0, out);
    a.place(native);
    a.jump(JGE_IMM, 7, 0, MAX_NR as i32, out);
    a.i(STX_W, 10, 7, -4, 0);
    lookup_u32_key(&mut a, &r.sys, out);
    a.i(MOV64_REG, 9, 0, 0, 0);
    // sys[nr]: bit 0 seen, bit 1 arguments overflowed, bits 8.. which arguments to record
    a.i(LDX_W, 3, 9, 0, 0);
    let seen = a.label();
    // seen before: no write (the cache line stays shared between CPUs)
    a.jump(JSET_IMM, 3, 0, 1, seen);
    a.i(MOV64_IMM, 2, 0, 0, 1).i(ATOMIC_W, 9, 2, 0, ATOMIC_OR);
    a.place(seen);
    if until_exec {
        let not_exec = a.label();
        let done = a.label();
        a.jump(JEQ_IMM, 7, 0, nr_of("execve"), done);
        a.jump(JNE_IMM, 7, 0, nr_of("execveat"), not_exec);
        a.place(done);
        a.i(MOV64_IMM, 1, 0, 0, 2).i(STX_DW, 8, 1, 0, 0);
        a.place(not_exec);
    }
    // no argument recorded for this call (the common case): done
    a.i(RSH64_IMM, 3, 0, 0, 8);
    a.jump(JEQ_IMM, 3, 0, 0, out);
    a.i(STX_W, 10, 3, -40, 0);
    for slot in 0..2 {
        let next = a.label();
        // slot: the argument's register offset in pt_regs (low 7 bits) and its index
        a.i(LDX_W, 1, 10, -40, 0)
            .i(RSH64_IMM, 1, 0, 0, SLOT_BITS * slot)
            .i(AND64_IMM, 1, 0, 0, (1 << SLOT_BITS) - 1);
        a.jump(JEQ_IMM, 1, 0, 0, next);
        // key {u32 nr, u32 idx, u64 value} at r10-32, value 1 at r10-36
        a.i(MOV64_REG, 2, 1, 0, 0)
            .i(RSH64_IMM, 2, 0, 0, 7)
            .i(STX_W, 10, 2, -28, 0);
        a.i(AND64_IMM, 1, 0, 0, 0x7f)
            .i(LDX_DW, 3, 6, 0, 0)
            .i(ADD64_REG, 3, 1, 0, 0);
        a.i(MOV64_REG, 1, 10, 0, 0).i(ADD64_IMM, 1, 0, 0, -16);
        a.i(MOV64_IMM, 2, 0, 0, 8);
        a.call(helper::PROBE_READ_KERNEL);
        a.i(STX_W, 10, 7, -32, 0);
        a.i(LDX_DW, 1, 10, -16, 0).i(STX_DW, 10, 1, -24, 0);
        a.i(ST_W, 10, 0, -36, 1);
        // seen before: nothing to do (an update would allocate and RCU-free an element)
        a.ld_map(1, &r.args.fd);
        a.i(MOV64_REG, 2, 10, 0, 0).i(ADD64_IMM, 2, 0, 0, -32);
        a.call(helper::MAP_LOOKUP_ELEM);
        a.jump(JNE_IMM, 0, 0, 0, next);
        a.ld_map(1, &r.args.fd);
        a.i(MOV64_REG, 2, 10, 0, 0).i(ADD64_IMM, 2, 0, 0, -32);
        a.i(MOV64_REG, 3, 10, 0, 0).i(ADD64_IMM, 3, 0, 0, -36);
        a.i(MOV64_IMM, 4, 0, 0, 0);
        a.call(helper::MAP_UPDATE_ELEM);
        a.jump(JEQ_IMM, 0, 0, 0, next);
        // the map is full: this syscall's arguments stay unconstrained (bit 1)
        a.i(MOV64_IMM, 2, 0, 0, 2).i(ATOMIC_W, 9, 2, 0, ATOMIC_OR);
        a.place(next);
    }
    a.jump(JA, 0, 0, 0, out);
    a.place(compat);
    a.jump(JGE_IMM, 7, 0, COMPAT_NR as i32, out);
    a.i(STX_W, 10, 7, -4, 0);
    lookup_u32_key(&mut a, &r.compat, out);
    a.i(MOV64_IMM, 1, 0, 0, 1).i(ATOMIC_W, 0, 1, 0, ATOMIC_OR);
    a.place(out);
    a.i(MOV64_IMM, 0, 0, 0, 0).i(EXIT, 0, 0, 0, 0);
    a.finish()
}

/// On `sched_process_exec` of a task of the target cgroup: armed (capability checks count from
/// the workload's first program on).
fn exec_arm_program(r: &Recorder) -> Vec<Insn> {
    let mut a = Asm::default();
    let out = a.label();
    state_ptr(&mut a, &r.state, out);
    cgroup_check(&mut a, out);
    a.i(MOV64_IMM, 1, 0, 0, 1).i(STX_DW, 8, 1, 0, 0);
    a.place(out);
    a.i(MOV64_IMM, 0, 0, 0, 0).i(EXIT, 0, 0, 0, 0);
    a.finish()
}

/// On `task_newtask(task, clone_flags)` in the target cgroup, armed: the calling syscall (the
/// parent's `orig_ax`, through its BTF task) marked seen, and for `clone` its flags under the
/// namespace and CLONE_THREAD bits as an argument value.
fn newtask_program(r: &Recorder) -> Vec<Insn> {
    let mut a = Asm::default();
    let out = a.label();
    a.i(MOV64_REG, 6, 1, 0, 0);
    state_ptr(&mut a, &r.state, out);
    cgroup_check(&mut a, out);
    a.i(LDX_DW, 1, 8, 0, 0);
    a.jump(JEQ_IMM, 1, 0, 0, out);
    a.i(LDX_DW, 7, 6, 8, 0).i(AND64_IMM, 7, 0, 0, NEWTASK_FLAGS);
    a.call(helper::GET_CURRENT_TASK_BTF);
    a.i(MOV64_REG, 1, 0, 0, 0).call(helper::TASK_PT_REGS);
    a.i(LDX_DW, 9, 0, ORIG_AX, 0);
    a.jump(JGE_IMM, 9, 0, MAX_NR as i32, out);
    a.i(STX_W, 10, 9, -4, 0);
    lookup_u32_key(&mut a, &r.sys, out);
    a.i(MOV64_IMM, 1, 0, 0, 1).i(ATOMIC_W, 0, 1, 0, ATOMIC_OR);
    a.jump(JNE_IMM, 9, 0, nr_of("clone"), out);
    // key {u32 nr, u32 idx 0, u64 flags} at r10-32, value 1 at r10-36
    a.i(STX_W, 10, 9, -32, 0).i(ST_W, 10, 0, -28, 0);
    a.i(STX_DW, 10, 7, -24, 0).i(ST_W, 10, 0, -36, 1);
    a.ld_map(1, &r.args.fd);
    a.i(MOV64_REG, 2, 10, 0, 0).i(ADD64_IMM, 2, 0, 0, -32);
    a.i(MOV64_REG, 3, 10, 0, 0).i(ADD64_IMM, 3, 0, 0, -36);
    a.i(MOV64_IMM, 4, 0, 0, 0);
    a.call(helper::MAP_UPDATE_ELEM);
    a.place(out);
    a.i(MOV64_IMM, 0, 0, 0, 0).i(EXIT, 0, 0, 0, 0);
    a.finish()
}

/// `clone` flags kept by [`newtask_program`]: CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET,TIME}
/// and CLONE_THREAD.
const NEWTASK_FLAGS: i32 = 0x7e03_0080;
/// `offsetof(struct pt_regs, orig_ax)` on x86_64.
const ORIG_AX: i16 = 120;

fn cap_capable_program(r: &Recorder) -> Vec<Insn> {
    let mut a = Asm::default();
    let (out, store) = (a.label(), a.label());
    a.i(MOV64_REG, 6, 1, 0, 0);
    state_ptr(&mut a, &r.state, out);
    cgroup_check(&mut a, out);
    a.i(LDX_DW, 1, 8, 0, 0);
    a.jump(JEQ_IMM, 1, 0, 0, out);
    // cap_capable(cred, target_ns, capable_ns, cap, ret)
    a.i(LDX_DW, 7, 6, 24, 0).i(LDX_DW, 9, 6, 32, 0);
    a.jump(JGE_IMM, 7, 0, 64, out);
    a.i(STX_W, 10, 7, -4, 0);
    lookup_u32_key(&mut a, &r.caps, out);
    a.i(MOV64_IMM, 1, 0, 0, 1);
    a.jump(JNE_IMM, 9, 0, 0, store);
    a.i(MOV64_IMM, 1, 0, 0, 3);
    a.place(store);
    a.i(ATOMIC_W, 0, 1, 0, ATOMIC_OR);
    a.place(out);
    a.i(MOV64_IMM, 0, 0, 0, 0).i(EXIT, 0, 0, 0, 0);
    a.finish()
}

use crate::ebpf::Insn;

/// In the runtime: when started by `learn` ([`TARGET_ENV`] set), name the container's unified
/// cgroup `v2` (made, nothing in it yet) as the recorder's target, so the learning run needs
/// no cgroup of its own around the container's.
pub fn hand_target_from_env(
    v2: Option<&std::path::Path>,
    unified: Option<&std::path::Path>,
) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(id) = std::env::var_os(TARGET_ENV) else {
        return Ok(());
    };
    let id: u32 = id
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("{TARGET_ENV}: not a map id")))?;
    let (Some(v2), Some(unified)) = (v2, unified) else {
        return Err(io::Error::other(
            "learn: the container has no unified (cgroup v2) directory to record",
        ));
    };
    let level = v2
        .strip_prefix(unified)
        .map(|p| p.components().count())
        .unwrap_or(0) as u32;
    let state = Map::from_id(id, 4, STATE_SIZE, 1)?;
    let mut v = state.lookup(&0u32.to_ne_bytes())?.unwrap_or_default();
    v.resize(STATE_SIZE, 0);
    v[16..24].copy_from_slice(&std::fs::metadata(v2)?.ino().to_ne_bytes());
    v[24..32].copy_from_slice(&(level as u64).to_ne_bytes());
    state.update(&0u32.to_ne_bytes(), &v)
}

impl Recorder {
    /// Load and attach both programs for the cgroup with id `target` at depth `level` of the
    /// unified hierarchy.
    pub fn start(target: u64, level: u32) -> io::Result<Recorder> {
        Recorder::start_with(target, level, false)
    }

    /// With `until_exec`, recording stops at the first `execve` after the filter (which is
    /// recorded): what a runtime does between loading the filter and handing over, not the
    /// workload (used to measure runc's own post-filter calls, the runtime allowance).
    pub fn start_with(target: u64, level: u32, until_exec: bool) -> io::Result<Recorder> {
        let mut r = Recorder::maps()?;
        r.set_target(target, level)?;
        for (nr, v) in arg_slots() {
            r.sys.update(&nr.to_ne_bytes(), &v.to_ne_bytes())?;
        }
        let sys = ebpf::prog_load(
            ebpf::PROG_TYPE_RAW_TRACEPOINT,
            &sys_enter_program(&r, until_exec),
            0,
            "learn_sys",
            ebpf::License::DualMitGpl,
        )?;
        let caps = ebpf::prog_load(
            ebpf::PROG_TYPE_RAW_TRACEPOINT,
            &cap_capable_program(&r),
            0,
            "learn_caps",
            ebpf::License::DualMitGpl,
        )?;
        r.attach("sys_enter", &sys)?;
        r.attach("cap_capable", &caps)?;
        Ok(r)
    }

    /// The maps, empty, nothing attached.
    fn maps() -> io::Result<Recorder> {
        if !cfg!(target_arch = "x86_64") {
            return Err(io::Error::other("stockade learn records on x86_64 only"));
        }
        let array =
            |n, name| Map::create_with(ebpf::MAP_TYPE_ARRAY, 4, 4, n, ebpf::F_MMAPABLE, name);
        Ok(Recorder {
            state: Map::create(ebpf::MAP_TYPE_ARRAY, 4, STATE_SIZE, 1, "learn_state")?,
            sys: array(MAX_NR, "learn_sys")?,
            args: Map::create(ebpf::MAP_TYPE_HASH, 16, 4, ARGS_MAX_ENTRIES, "learn_args")?,
            caps: array(CAPS_ENTRIES, "learn_caps")?,
            compat: array(COMPAT_NR, "learn_c32")?,
            links: vec![],
        })
    }

    /// Capabilities and process creation only, armed by the target's first `execve`
    /// (`sched_process_exec`): `task_newtask` records which of `clone`/`fork`/`vfork` made a
    /// task and `clone`'s namespace and thread flags (what learn's rules compare), for a
    /// learning filter that lets those calls run without asking the agent (a notified call
    /// can be interrupted by a signal before the agent reads it, and a shell's fork then fails
    /// with EINTR). No
    /// program on `sys_enter`, whose mere attachment sends every thread of the machine down
    /// the traced syscall path. Learning under engines takes the syscalls from the seccomp
    /// agent instead (see `learn::engine`). `cap_capable` and `sched_process_exec` are not
    /// syscall tracepoints: they cost only where a capability is checked or a program is
    /// executed, a cgroup comparison there.
    pub fn start_caps(target: u64, level: u32) -> io::Result<Recorder> {
        let mut r = Recorder::maps()?;
        r.set_target(target, level)?;
        let load = |prog: &[Insn], name: &str| {
            ebpf::prog_load(
                ebpf::PROG_TYPE_RAW_TRACEPOINT,
                prog,
                0,
                name,
                ebpf::License::DualMitGpl,
            )
        };
        let arm = load(&exec_arm_program(&r), "learn_arm")?;
        let caps = load(&cap_capable_program(&r), "learn_caps")?;
        let fork = load(&newtask_program(&r), "learn_fork")?;
        r.attach("sched_process_exec", &arm)?;
        r.attach("cap_capable", &caps)?;
        r.attach("task_newtask", &fork)?;
        Ok(r)
    }

    fn attach(&mut self, tracepoint: &'static str, prog: &OwnedFd) -> io::Result<()> {
        let c = std::ffi::CString::new(tracepoint).expect("a name");
        let link = ebpf::raw_tracepoint_open(&c, prog).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("attach to raw tracepoint {tracepoint}: {e}"),
            )
        })?;
        self.links.push((tracepoint, link));
        Ok(())
    }

    /// Record the cgroup with id `target` at depth `level` of the unified hierarchy (0: none).
    pub fn set_target(&self, target: u64, level: u32) -> io::Result<()> {
        let mut v = self.state.lookup(&0u32.to_ne_bytes())?.unwrap_or_default();
        v.resize(STATE_SIZE, 0);
        v[16..24].copy_from_slice(&target.to_ne_bytes());
        v[24..32].copy_from_slice(&(level as u64).to_ne_bytes());
        self.state.update(&0u32.to_ne_bytes(), &v)
    }

    /// The id of the state map, for [`TARGET_ENV`].
    pub fn state_id(&self) -> io::Result<u32> {
        ebpf::map_id(&self.state.fd)
    }

    /// Pin the maps and the attached links in `dir` (a bpf filesystem): the recording goes on
    /// after this process is gone, until the pins are removed.
    pub fn pin(&self, dir: &std::path::Path) -> io::Result<()> {
        let maps = [
            &self.state.fd,
            &self.sys.fd,
            &self.args.fd,
            &self.caps.fd,
            &self.compat.fd,
        ];
        for (name, fd) in PINS.iter().zip(maps) {
            ebpf::obj_pin(fd, &dir.join(name))?;
        }
        for (tp, fd) in &self.links {
            ebpf::obj_pin(fd, &dir.join(format!("link_{tp}")))?;
        }
        Ok(())
    }

    /// The maps of a recording pinned in `dir` by [`Recorder::pin`] (for reading; the links
    /// stay where they are).
    pub fn open_pinned(dir: &std::path::Path) -> io::Result<Recorder> {
        Ok(Recorder {
            state: Map::from_pinned(&dir.join(PINS[0]), 4, STATE_SIZE, 1)?,
            sys: Map::from_pinned(&dir.join(PINS[1]), 4, 4, MAX_NR)?,
            args: Map::from_pinned(&dir.join(PINS[2]), 16, 4, ARGS_MAX_ENTRIES)?,
            caps: Map::from_pinned(&dir.join(PINS[3]), 4, 4, CAPS_ENTRIES)?,
            compat: Map::from_pinned(&dir.join(PINS[4]), 4, 4, COMPAT_NR)?,
            links: vec![],
        })
    }

    /// Forget which calls were seen (their recorded argument values stay): what is seen from
    /// here on is a phase of its own (`learn --ready`: the calls made once the server serves).
    pub fn reset_seen(&self) -> io::Result<()> {
        let slots = arg_slots();
        for nr in 0..MAX_NR {
            let v = slots.get(&nr).copied().unwrap_or(0);
            self.sys.update(&nr.to_ne_bytes(), &v.to_ne_bytes())?;
        }
        Ok(())
    }

    /// Whether the cgroup loaded its filter (nothing was recorded before that).
    pub fn armed(&self) -> io::Result<bool> {
        let v = self.state.lookup(&0u32.to_ne_bytes())?.unwrap_or_default();
        Ok(v.first().is_some_and(|b| *b != 0))
    }

    pub fn observed(&self) -> io::Result<Observed> {
        let arch = stockade_seccomp::Arch::native();
        let mut o = Observed::default();
        let st = self.state.lookup(&0u32.to_ne_bytes())?.unwrap_or_default();
        o.x32 = st.get(8).is_some_and(|b| *b != 0);
        for (nr, v) in (0u32..).zip(self.sys.array_values()?) {
            let bits = v.first().copied().unwrap_or(0) & 3;
            if bits == 0 {
                continue;
            }
            match arch.name_of(nr) {
                Some(n) => {
                    if bits & 1 != 0 {
                        o.syscalls.insert(n.to_string());
                    }
                    if bits & 2 != 0 {
                        o.args_overflow.insert(n.to_string());
                    }
                }
                None => {
                    o.unknown_numbers.insert(nr);
                }
            }
        }
        for k in self.args.entries()?.keys() {
            let nr = u32::from_ne_bytes(k[0..4].try_into().expect("4"));
            let idx = u32::from_ne_bytes(k[4..8].try_into().expect("4"));
            let val = u64::from_ne_bytes(k[8..16].try_into().expect("8"));
            if let Some(n) = arch.name_of(nr) {
                o.args
                    .entry(n.to_string())
                    .or_default()
                    .entry(idx)
                    .or_default()
                    .insert(val);
            }
        }
        for (nr, v) in (0u32..).zip(self.compat.array_values()?) {
            if v.first().copied().unwrap_or(0) != 0 {
                o.compat.insert(
                    stockade_seccomp::Arch::X86
                        .name_of(nr)
                        .map_or_else(|| format!("#{nr}"), str::to_string),
                );
            }
        }
        for (cap, v) in (0u32..).zip(self.caps.array_values()?) {
            let bits = v.first().copied().unwrap_or(0);
            if bits == 0 {
                continue;
            }
            let Some(name) = crate::capabilities::decode_mask(1 << cap).pop() else {
                continue;
            };
            o.caps_checked.insert(name.clone());
            if bits & 2 != 0 {
                o.caps_granted.insert(name);
            }
        }
        Ok(o)
    }
}
