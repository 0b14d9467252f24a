//! Built-in profiles: `default` (stricter than Docker's), `docker` (Docker's default semantics,
//! rebuilt here from what it allows; a test checks it against Docker's published JSON), and
//! `unconfined`.
//!
//! What `default` denies beyond Docker (seed §2 and §4): clock adjustment (`adjtimex`,
//! `clock_adjtime`) and every clock-setting call even with CAP_SYS_TIME; the mount family, always;
//! `ptrace`/`process_vm_*` unless CAP_SYS_PTRACE (Docker allows them on kernels ≥ 4.8);
//! `kcmp`, `bpf`, `perf_event_open`, `syslog`, `open_by_handle_at`/`name_to_handle_at`,
//! `modify_ldt`, module loading and `iopl`/`ioperm`, whatever the capabilities, and a filter of the
//! workload's own with a user-notification listener ([`deny_new_listener`]). Both deny the
//! keyring calls (`add_key`, `keyctl`, `request_key`), `userfaultfd`, `io_uring_*`, AF_ALG and
//! AF_VSOCK sockets, namespace creation without CAP_SYS_ADMIN (`clone3` answers ENOSYS so libc
//! falls back to `clone`, whose namespace flags are checked).
//!
//! `default` also allows only the native system-call ABI (x86_64, aarch64): the 32-bit compat
//! entry points (i386 `int 0x80`, x32, arm) get the default action, as systemd's
//! `SystemCallArchitectures=native` does. The compat layer is a separate, less exercised copy of
//! the kernel's syscall surface with a long history of its own bugs; containers of today do not
//! run 32-bit code (an image that does needs `docker` or its own profile). It also cuts the
//! filter the kernel checks and JIT-compiles at every start from 657 to 170 instructions (x86_64).

use crate::profile::{Action, ArchMap, Arg, Filter, Op, Profile, Rule};

/// Allowed unconditionally by both `default` and `docker`, grouped by what they are for.
const COMMON: &[&[&str]] = &[
    // files and directories
    &[
        "access",
        "faccessat",
        "faccessat2",
        "open",
        "openat",
        "openat2",
        "creat",
        "close",
        "close_range",
        "read",
        "readv",
        "pread64",
        "preadv",
        "preadv2",
        "write",
        "writev",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "lseek",
        "_llseek",
        "stat",
        "stat64",
        "fstat",
        "fstat64",
        "lstat",
        "lstat64",
        "newfstatat",
        "fstatat64",
        "statx",
        "statfs",
        "statfs64",
        "fstatfs",
        "fstatfs64",
        "getdents",
        "getdents64",
        "readlink",
        "readlinkat",
        "mkdir",
        "mkdirat",
        "rmdir",
        "rename",
        "renameat",
        "renameat2",
        "link",
        "linkat",
        "symlink",
        "symlinkat",
        "unlink",
        "unlinkat",
        "chdir",
        "fchdir",
        "getcwd",
        "chmod",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "chown",
        "chown32",
        "fchown",
        "fchown32",
        "fchownat",
        "lchown",
        "lchown32",
        "umask",
        "truncate",
        "truncate64",
        "ftruncate",
        "ftruncate64",
        "fallocate",
        "fadvise64",
        "fadvise64_64",
        "readahead",
        "fsync",
        "fdatasync",
        "sync",
        "syncfs",
        "sync_file_range",
        "flock",
        "fcntl",
        "fcntl64",
        "dup",
        "dup2",
        "dup3",
        "utime",
        "utimes",
        "utimensat",
        "utimensat_time64",
        "futimesat",
        "mknod",
        "mknodat",
        "copy_file_range",
        "sendfile",
        "sendfile64",
        "splice",
        "tee",
        "vmsplice",
        "ioctl",
        "cachestat",
        "statmount",
        "listmount",
    ],
    // extended attributes
    &[
        "getxattr",
        "lgetxattr",
        "fgetxattr",
        "getxattrat",
        "setxattr",
        "lsetxattr",
        "fsetxattr",
        "setxattrat",
        "listxattr",
        "llistxattr",
        "flistxattr",
        "listxattrat",
        "removexattr",
        "lremovexattr",
        "fremovexattr",
        "removexattrat",
    ],
    // memory
    &[
        "brk",
        "mmap",
        "mmap2",
        "munmap",
        "mremap",
        "mprotect",
        "madvise",
        "mincore",
        "msync",
        "mlock",
        "mlock2",
        "mlockall",
        "munlock",
        "munlockall",
        "membarrier",
        "memfd_create",
        "memfd_secret",
        "remap_file_pages",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "mseal",
        "map_shadow_stack",
    ],
    // processes, threads, signals
    &[
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "fork",
        "vfork",
        "wait4",
        "waitid",
        "waitpid",
        "kill",
        "tkill",
        "tgkill",
        "pidfd_open",
        "pidfd_send_signal",
        "process_mrelease",
        "getpid",
        "getppid",
        "gettid",
        "getpgid",
        "setpgid",
        "getpgrp",
        "getsid",
        "setsid",
        "set_tid_address",
        "set_robust_list",
        "get_robust_list",
        "rseq",
        "restart_syscall",
        "pause",
        "prctl",
        "seccomp",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "rt_sigpending",
        "rt_sigsuspend",
        "rt_sigqueueinfo",
        "rt_tgsigqueueinfo",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "sigaltstack",
        "sigprocmask",
        "sigreturn",
        "signalfd",
        "signalfd4",
        "get_thread_area",
        "set_thread_area",
        "uretprobe",
        "riscv_hwprobe",
    ],
    // identity and limits
    &[
        "getuid",
        "getuid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getegid",
        "getegid32",
        "getresuid",
        "getresuid32",
        "getresgid",
        "getresgid32",
        "getgroups",
        "getgroups32",
        "setuid",
        "setuid32",
        "setgid",
        "setgid32",
        "setreuid",
        "setreuid32",
        "setregid",
        "setregid32",
        "setresuid",
        "setresuid32",
        "setresgid",
        "setresgid32",
        "setgroups",
        "setgroups32",
        "setfsuid",
        "setfsuid32",
        "setfsgid",
        "setfsgid32",
        "capget",
        "capset",
        "getrlimit",
        "ugetrlimit",
        "setrlimit",
        "prlimit64",
        "getrusage",
        "getpriority",
        "setpriority",
        "ioprio_get",
        "ioprio_set",
        "landlock_create_ruleset",
        "landlock_add_rule",
        "landlock_restrict_self",
    ],
    // scheduling
    &[
        "sched_yield",
        "sched_getaffinity",
        "sched_setaffinity",
        "sched_getattr",
        "sched_setattr",
        "sched_getparam",
        "sched_setparam",
        "sched_getscheduler",
        "sched_setscheduler",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
        "getcpu",
    ],
    // time (reading and sleeping only)
    &[
        "time",
        "gettimeofday",
        "clock_gettime",
        "clock_gettime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "nanosleep",
        "alarm",
        "getitimer",
        "setitimer",
        "times",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_gettime64",
        "timer_settime",
        "timer_settime64",
        "timerfd_create",
        "timerfd_gettime",
        "timerfd_gettime64",
        "timerfd_settime",
        "timerfd_settime64",
    ],
    // waiting and events
    &[
        "futex",
        "futex_time64",
        "futex_waitv",
        "futex_wait",
        "futex_wake",
        "futex_requeue",
        "poll",
        "ppoll",
        "ppoll_time64",
        "select",
        "_newselect",
        "pselect6",
        "pselect6_time64",
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_wait",
        "epoll_wait_old",
        "epoll_pwait",
        "epoll_pwait2",
        "eventfd",
        "eventfd2",
        "inotify_init",
        "inotify_init1",
        "inotify_add_watch",
        "inotify_rm_watch",
        "fanotify_mark",
        "pipe",
        "pipe2",
        "io_setup",
        "io_destroy",
        "io_submit",
        "io_cancel",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
    ],
    // sockets (socket(2) itself is filtered by family below)
    &[
        "socketpair",
        "bind",
        "listen",
        "accept",
        "accept4",
        "connect",
        "getsockname",
        "getpeername",
        "getsockopt",
        "setsockopt",
        "send",
        "sendto",
        "sendmsg",
        "sendmmsg",
        "recv",
        "recvfrom",
        "recvmsg",
        "recvmmsg",
        "recvmmsg_time64",
        "shutdown",
        "socketcall",
    ],
    // System V and POSIX IPC (namespaced by the IPC namespace)
    &[
        "ipc",
        "msgget",
        "msgsnd",
        "msgrcv",
        "msgctl",
        "semget",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "semctl",
        "shmget",
        "shmat",
        "shmdt",
        "shmctl",
        "mq_open",
        "mq_unlink",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_timedreceive",
        "mq_timedreceive_time64",
        "mq_notify",
        "mq_getsetattr",
    ],
    // system information
    &["uname", "sysinfo", "getrandom"],
];

/// Docker allows these unconditionally; `default` does not.
const DOCKER_ONLY: &[&str] = &[
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "name_to_handle_at",
];

/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
const CLONE_NS_FLAGS: u64 = 0x7e02_0000;

fn allow(names: &[&str]) -> Rule {
    Rule {
        names: names.iter().map(|s| s.to_string()).collect(),
        name: None,
        action: Action::Allow,
        errno_ret: None,
        args: vec![],
        comment: None,
        includes: Filter::default(),
        excludes: Filter::default(),
    }
}

fn with_arg(mut r: Rule, index: u32, op: Op, value: u64) -> Rule {
    r.args.push(Arg {
        index,
        value,
        value_two: 0,
        op,
    });
    r
}

fn incl_caps(mut r: Rule, caps: &[&str]) -> Rule {
    r.includes.caps = caps.iter().map(|s| s.to_string()).collect();
    r
}

fn incl_arches(mut r: Rule, arches: &[&str]) -> Rule {
    r.includes.arches = arches.iter().map(|s| s.to_string()).collect();
    r
}

fn excl_caps(mut r: Rule, caps: &[&str]) -> Rule {
    r.excludes.caps = caps.iter().map(|s| s.to_string()).collect();
    r
}

/// Rules both profiles share beyond COMMON: socket families, personality values, clone flags.
fn shared_conditional() -> Vec<Rule> {
    let mut v = vec![
        // every family but AF_ALG (38) and AF_VSOCK (40)
        with_arg(allow(&["socket"]), 0, Op::Lt, 38),
        with_arg(allow(&["socket"]), 0, Op::Eq, 39),
        with_arg(allow(&["socket"]), 0, Op::Gt, 40),
    ];
    // PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, and the query 0xffffffff
    for p in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        v.push(with_arg(allow(&["personality"]), 0, Op::Eq, p));
    }
    let mut clone = excl_caps(allow(&["clone"]), &["CAP_SYS_ADMIN"]);
    clone.args.push(Arg {
        index: 0,
        value: CLONE_NS_FLAGS,
        value_two: 0,
        op: Op::MaskedEq,
    });
    clone.excludes.arches = vec!["s390".into(), "s390x".into()];
    v.push(clone);
    let mut clone3 = excl_caps(allow(&["clone3"]), &["CAP_SYS_ADMIN"]);
    clone3.action = Action::Errno;
    clone3.errno_ret = Some(libc::ENOSYS as u32);
    v.push(clone3);
    v.push(incl_arches(allow(&["arch_prctl"]), &["amd64", "x32"]));
    v.push(incl_arches(
        allow(&[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ]),
        &["arm", "arm64"],
    ));
    v.push(incl_caps(allow(&["chroot"]), &["CAP_SYS_CHROOT"]));
    v.push(incl_caps(
        allow(&[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ]),
        &["CAP_SYS_NICE"],
    ));
    v.push(incl_caps(allow(&["vhangup"]), &["CAP_SYS_TTY_CONFIG"]));
    v
}

/// `compat`: also allow the 32-bit ABIs of each architecture (Docker's `archMap`).
fn base(rules: Vec<Rule>, compat: bool) -> Profile {
    let sub = |a: &[&str]| {
        if compat {
            a.iter().map(|s| s.to_string()).collect()
        } else {
            vec![]
        }
    };
    Profile {
        default_action: Action::Errno,
        default_errno_ret: Some(libc::EPERM as u32),
        architectures: vec![],
        arch_map: vec![
            ArchMap {
                architecture: "SCMP_ARCH_X86_64".into(),
                sub_architectures: sub(&["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
            },
            ArchMap {
                architecture: "SCMP_ARCH_AARCH64".into(),
                sub_architectures: sub(&["SCMP_ARCH_ARM"]),
            },
        ],
        flags: vec![],
        listener_path: None,
        listener_metadata: None,
        syscalls: rules,
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags)` with `SECCOMP_FILTER_FLAG_NEW_LISTENER` in
/// `flags`: EPERM. A workload's own filter with a listener would answer (with
/// `SECCOMP_USER_NOTIF_FLAG_CONTINUE`, say) the calls the container's filter sends to *its*
/// listener: the kernel gives a notification to the newest filter that asks for one. While
/// the container's listener is open the kernel refuses a second one (EBUSY); once it is gone
/// (its agent died) nothing else would. Filters without a listener stay allowed (they can only
/// take away). A conditional rule: checked before the unconditional allow of `seccomp`.
pub fn deny_new_listener() -> Rule {
    let mut r = allow(&["seccomp"]);
    r.action = Action::Errno;
    r.errno_ret = Some(libc::EPERM as u32);
    r.args = vec![
        Arg {
            index: 0,
            value: u64::from(crate::load::SECCOMP_SET_MODE_FILTER),
            value_two: 0,
            op: Op::Eq,
        },
        Arg {
            index: 1,
            value: u64::from(crate::load::SECCOMP_FILTER_FLAG_NEW_LISTENER),
            value_two: u64::from(crate::load::SECCOMP_FILTER_FLAG_NEW_LISTENER),
            op: Op::MaskedEq,
        },
    ];
    r.comment = Some("no seccomp listener of the workload's own (see stockade-seccomp's builtin::deny_new_listener)".into());
    r
}

fn default_profile() -> Profile {
    let mut rules = vec![allow(&COMMON.concat()), deny_new_listener()];
    rules.extend(shared_conditional());
    rules.push(incl_caps(
        allow(&[
            "clone",
            "clone3",
            "unshare",
            "setns",
            "sethostname",
            "setdomainname",
        ]),
        &["CAP_SYS_ADMIN"],
    ));
    rules.push(incl_caps(
        allow(&[
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "pidfd_getfd",
            "process_madvise",
        ]),
        &["CAP_SYS_PTRACE"],
    ));
    base(rules, false)
}

fn docker_profile() -> Profile {
    let mut rules = vec![allow(&[COMMON.concat(), DOCKER_ONLY.to_vec()].concat())];
    let mut ptrace = allow(&["process_vm_readv", "process_vm_writev", "ptrace"]);
    ptrace.includes.min_kernel = Some("4.8".into());
    rules.push(ptrace);
    rules.extend(shared_conditional());
    rules.push(incl_arches(
        allow(&["modify_ldt"]),
        &["amd64", "x32", "x86"],
    ));
    rules.push(incl_caps(
        allow(&["open_by_handle_at"]),
        &["CAP_DAC_READ_SEARCH"],
    ));
    rules.push(incl_caps(
        allow(&[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ]),
        &["CAP_SYS_ADMIN"],
    ));
    rules.push(incl_caps(allow(&["reboot"]), &["CAP_SYS_BOOT"]));
    rules.push(incl_caps(
        allow(&["delete_module", "init_module", "finit_module"]),
        &["CAP_SYS_MODULE"],
    ));
    rules.push(incl_caps(allow(&["acct"]), &["CAP_SYS_PACCT"]));
    rules.push(incl_caps(
        allow(&[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ]),
        &["CAP_SYS_PTRACE"],
    ));
    rules.push(incl_caps(allow(&["iopl", "ioperm"]), &["CAP_SYS_RAWIO"]));
    rules.push(incl_caps(
        allow(&["settimeofday", "stime", "clock_settime", "clock_settime64"]),
        &["CAP_SYS_TIME"],
    ));
    rules.push(incl_caps(allow(&["syslog"]), &["CAP_SYSLOG"]));
    rules.push(incl_caps(allow(&["bpf"]), &["CAP_BPF"]));
    rules.push(incl_caps(allow(&["perf_event_open"]), &["CAP_PERFMON"]));
    base(rules, true)
}

/// The 14 capabilities Docker (and containerd, CRI-O) give a container by default: what
/// Docker's profile's `includes`/`excludes` by capability are resolved against.
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A built-in profile by name: `default`, `docker`, `unconfined` (None: no such profile).
pub fn builtin(name: &str) -> Option<Profile> {
    match name {
        "default" => Some(default_profile()),
        "docker" => Some(docker_profile()),
        "unconfined" => Some(Profile {
            default_action: Action::Allow,
            default_errno_ret: None,
            architectures: vec![],
            arch_map: vec![],
            flags: vec![],
            listener_path: None,
            listener_metadata: None,
            syscalls: vec![],
        }),
        _ => None,
    }
}
