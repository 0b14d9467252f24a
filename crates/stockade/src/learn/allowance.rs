//! The runtime allowance: what a runtime itself does after it loads the container's seccomp
//! filter and before the workload's `execve`, which a profile learned under stockade does not
//! contain (stockade's own last calls are few and recorded) but which another runtime needs to
//! start the container under it at all. Measured, not guessed: `tests/runc_allowance.rs` runs
//! the real runc under the recorder (stopping at the `execve`), keyed on its container's
//! cgroup, with and without no_new_privileges, as root and as another user, and checks that
//! every call and argument value seen is here.

use super::record::Observed;

/// One runtime's post-filter calls.
pub struct Allowance {
    /// which runtime, which version, how measured
    pub runtime: &'static str,
    pub syscalls: &'static [&'static str],
    /// recorded argument values (see [`super::record::ARG_RULES`]) of those calls
    pub args: &'static [(&'static str, u32, &'static [u64])],
}

/// runc's (Debian 12's 1.1.5, Go 1.19): the union of 1400 measured runs (with and without
/// no_new_privileges, as root and as uid 1000; 1000 of them with both cores kept busy by two or
/// four busy loops, where the Go scheduler also yields and preempts: `sched_yield`, `tgkill`;
/// the last 600 found nothing new). runc loads the filter with
/// `prctl(PR_SET_SECCOMP)` on its init's locked thread, then (without no_new_privileges) sets
/// its user, groups and capabilities, checks its parent, looks up the program, opens and writes
/// its exec fifo, closes its descriptors (reading /proc/self/fd) and execs; the Go runtime's
/// other threads of the init (sleeping, waking, polling) run on meanwhile and are counted too.
pub const RUNC: Allowance = Allowance {
    runtime: "runc 1.1.5",
    syscalls: &[
        "capget",
        "capset",
        "chdir",
        "close",
        "epoll_ctl",
        "epoll_pwait",
        "execve",
        "faccessat2",
        "fchown",
        "fcntl",
        "fstat",
        "fstatfs",
        "futex",
        "getcwd",
        "getdents64",
        "getpid",
        "getppid",
        "nanosleep",
        "newfstatat",
        "openat",
        "prctl",
        "read",
        "rt_sigreturn",
        "sched_yield",
        "setgid",
        "setgroups",
        "setuid",
        "tgkill",
        "write",
    ],
    // PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_CAP_AMBIENT
    args: &[("prctl", 0, &[0x8, 0x18, 0x2f])],
};

/// stockade's own, as engines start it (`create`, then `start`), measured the same way
/// (`tests/runc_allowance.rs`, which also checks it is within runc's plus `fchdir`): without
/// no_new_privileges the filter is loaded before the groups, user and capabilities are set
/// (`prctl` KEEPCAPS and CAP_AMBIENT, `setgroups`, `setgid`, `setuid`, `capget`, `capset`),
/// then the cwd is entered (`fchdir` of a descriptor opened before), the runtime is told
/// "ready" and the exec fifo opened and written (`write`, `openat`, `close`); `fcntl` only in
/// a debug build. Everything else (the cwd's lookup, the program's, the umask, the bounding
/// set) happens before the filter. With no_new_privileges only `execve` follows it, which is
/// what `stockade learn` records.
pub const STOCKADE: Allowance = Allowance {
    runtime: "stockade",
    syscalls: &[
        "capget",
        "capset",
        "close",
        "execve",
        "fchdir",
        "fcntl",
        "openat",
        "prctl",
        "setgid",
        "setgroups",
        "setuid",
        "write",
    ],
    // PR_SET_KEEPCAPS, PR_CAP_AMBIENT
    args: &[("prctl", 0, &[0x8, 0x2f])],
};

/// Every measured allowance (each written into a profile of its own: seccomp-runc.json,
/// seccomp-stockade.json; seccomp.json carries none).
pub const ALL: &[&Allowance] = &[&RUNC, &STOCKADE];

impl Allowance {
    /// Whether `value` of argument `idx` of `name` is one the allowance allows (compared as the
    /// learned profile compares it).
    pub fn allows_arg(&self, name: &str, idx: u32, value: u64) -> bool {
        let m = super::profile::mask_of(name, idx);
        self.args
            .iter()
            .filter(|(n, i, _)| *n == name && *i == idx)
            .any(|(_, _, vals)| vals.iter().any(|v| v & m == value & m))
    }

    /// As observations, to be merged with a workload's.
    pub fn observed(&self) -> Observed {
        let mut o = Observed::default();
        o.syscalls
            .extend(self.syscalls.iter().map(|s| s.to_string()));
        for (n, i, vals) in self.args {
            o.args
                .entry(n.to_string())
                .or_default()
                .entry(*i)
                .or_default()
                .extend(vals.iter().copied());
        }
        o
    }
}
