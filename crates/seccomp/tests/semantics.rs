//! The compiler is checked against the profile's semantics (`Resolved::evaluate`) by running its
//! program in the interpreter: random profiles and random inputs (proptest), and the real ones.

use proptest::prelude::*;

mod support;
use stockade_seccomp::profile::{Arg, Filter, Rule, RET_ALLOW, RET_ERRNO};
use stockade_seccomp::{Action, Arch, Context, Op, Profile};
use support::docker::{docker_json, DOCKER_CAPS};

fn ctx(arch: Arch, caps: &[&str]) -> Context {
    Context {
        arch,
        caps: caps.iter().map(|s| s.to_string()).collect(),
        kernel: (6, 18),
    }
}

const NAMES: &[&str] = &[
    "read",
    "write",
    "openat",
    "socket",
    "personality",
    "clone",
    "mmap",
    "ioctl",
    "kill",
    "getpid",
    "mseal",
    "listmount",
    "futex",
    "prctl",
];

fn arb_action() -> impl Strategy<Value = (Action, Option<u32>)> {
    prop_oneof![
        Just((Action::Allow, None)),
        (1u32..200).prop_map(|e| (Action::Errno, Some(e))),
        Just((Action::Kill, None)),
        Just((Action::KillProcess, None)),
        Just((Action::Trap, None)),
        (0u32..100).prop_map(|e| (Action::Trace, Some(e))),
        Just((Action::Log, None)),
        Just((Action::Notify, None)),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Ne),
        Just(Op::Lt),
        Just(Op::Le),
        Just(Op::Eq),
        Just(Op::Ge),
        Just(Op::Gt),
        Just(Op::MaskedEq)
    ]
}

fn arb_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..64,
        Just(u32::MAX as u64),
        Just(1u64 << 32),
        Just(u64::MAX),
        any::<u64>(),
        (0u64..4).prop_map(|h| (h << 32) | 7)
    ]
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    (
        proptest::sample::subsequence(NAMES, 1..4),
        arb_action(),
        proptest::collection::vec((0u32..3, arb_op(), arb_value(), arb_value()), 0..3),
    )
        .prop_map(|(names, (action, errno_ret), args)| Rule {
            names: names.iter().map(|s| s.to_string()).collect(),
            name: None,
            action,
            errno_ret,
            args: args
                .into_iter()
                .map(|(index, op, value, value_two)| Arg {
                    index,
                    op,
                    value,
                    value_two,
                })
                .collect(),
            comment: None,
            includes: Filter::default(),
            excludes: Filter::default(),
        })
}

fn arb_profile() -> impl Strategy<Value = Profile> {
    (
        arb_action(),
        proptest::collection::vec(arb_rule(), 0..12),
        proptest::bool::ANY,
    )
        .prop_map(
            |((default_action, default_errno_ret), syscalls, subarch)| Profile {
                default_action,
                default_errno_ret,
                architectures: if subarch {
                    vec!["SCMP_ARCH_X86".into(), "SCMP_ARCH_X32".into()]
                } else {
                    vec![]
                },
                arch_map: vec![],
                flags: vec![],
                listener_path: None,
                listener_metadata: None,
                syscalls,
            },
        )
}

fn arb_input() -> impl Strategy<Value = (Arch, u32, [u64; 6])> {
    let nr = prop_oneof![
        0u32..500,
        Just(0x4000_0000u32),
        (0u32..600).prop_map(|n| n | 0x4000_0000),
        any::<u32>()
    ];
    let arch = prop_oneof![
        Just(Arch::X86_64),
        Just(Arch::X86),
        Just(Arch::X32),
        Just(Arch::Aarch64)
    ];
    (arch, nr, proptest::array::uniform6(arb_value()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn compiled_program_returns_what_the_profile_means(p in arb_profile(), inputs in proptest::collection::vec(arb_input(), 64)) {
        let r = p.resolve(&ctx(Arch::X86_64, &[]));
        let f = stockade_seccomp::compile(&r).unwrap();
        for (arch, nr, args) in inputs {
            // AUDIT_ARCH_X86_64 covers x86_64 and x32: evaluate routes by the x32 bit
            let audit = if arch == Arch::X32 { Arch::X86_64 } else { arch };
            let want = r.evaluate(audit, nr, &args);
            let (got, _) = f.eval(arch, nr, args);
            prop_assert_eq!(got, want, "arch {:?} nr {} args {:x?}\n{}", arch, nr, args, stockade_seccomp::bpf::disassemble(&f.program));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]

    /// The encoding the runtime sends to its child and keeps in its cache gives back the same
    /// filter, and no strict prefix of it decodes (a truncated cache entry is never trusted).
    #[test]
    fn filter_encoding_round_trips(p in arb_profile(), cut in any::<prop::sample::Index>()) {
        let mut f = stockade_seccomp::compile(&p.resolve(&ctx(Arch::X86_64, &[]))).unwrap();
        f.unknown = vec!["no_such_call".into(), "another".into()];
        let bytes = f.to_bytes();
        let g = stockade_seccomp::Filter::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&g.program, &f.program);
        prop_assert_eq!((g.flags, g.notify, &g.unknown), (f.flags, f.notify, &f.unknown));
        let n = cut.index(bytes.len());
        prop_assert!(stockade_seccomp::Filter::from_bytes(&bytes[..n]).is_none(), "a cut at {} decoded", n);
        let mut long = bytes.clone();
        long.push(0);
        prop_assert!(stockade_seccomp::Filter::from_bytes(&long).is_none());
    }
}

/// What Docker's profile means on x86_64 with Docker's 14 default capabilities, written out from
/// its semantics: these are allowed, these are denied, these depend on arguments.
#[test]
fn docker_json_resolves_as_dockers_engine_does() {
    let r = docker_json().resolve(&ctx(Arch::X86_64, DOCKER_CAPS));
    assert_eq!(r.arches, vec![Arch::X86_64, Arch::X86, Arch::X32]);
    let eval = |name: &str, a0: u64| {
        r.evaluate(
            Arch::X86_64,
            Arch::X86_64.syscall(name).unwrap(),
            &[a0, 0, 0, 0, 0, 0],
        )
    };
    let eperm = RET_ERRNO | libc::EPERM as u32;
    for allowed in ["read", "write", "openat", "execve", "futex"] {
        assert_eq!(eval(allowed, 0), RET_ALLOW, "{allowed}");
    }
    // includes.caps CAP_SYS_CHROOT is in Docker's defaults; minKernel 4.8 holds for ptrace
    for allowed in [
        "chroot",
        "ptrace",
        "process_vm_readv",
        "arch_prctl",
        "modify_ldt",
    ] {
        assert_eq!(eval(allowed, 0), RET_ALLOW, "{allowed}");
    }
    for denied in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "request_key",
        "init_module",
        "reboot",
        "kexec_load",
        "settimeofday",
        "clock_settime",
        "io_uring_setup",
        "userfaultfd",
        "open_by_handle_at",
        "kcmp",
        "iopl",
        "syslog",
        "acct",
        "swapon",
    ] {
        assert_eq!(eval(denied, 0), eperm, "{denied}");
    }
    assert_eq!(
        eval("clone3", 0),
        RET_ERRNO | libc::ENOSYS as u32,
        "clone3 → ENOSYS so glibc falls back to clone"
    );
    assert_eq!(eval("clone", libc::SIGCHLD as u64), RET_ALLOW);
    assert_eq!(eval("clone", libc::CLONE_NEWUSER as u64), eperm);
    assert_eq!(eval("socket", libc::AF_INET as u64), RET_ALLOW);
    assert_eq!(eval("socket", 38), eperm, "AF_ALG");
    assert_eq!(eval("socket", 40), eperm, "AF_VSOCK");
    assert_eq!(eval("personality", 0xffff_ffff), RET_ALLOW);
    assert_eq!(eval("personality", 0x0040_0000), eperm, "READ_IMPLIES_EXEC");
    let allowed: usize = (0..500)
        .filter(|nr| r.evaluate(Arch::X86_64, *nr, &[0; 6]) == RET_ALLOW)
        .count();
    // 361 unconditional names minus those absent on x86_64, plus the capability/arch/kernel ones
    assert!(
        (300..380).contains(&allowed),
        "{allowed} allowed with zero arguments"
    );
}

/// The built-in `docker` profile is Docker's profile: same decision for every syscall number on
/// every architecture, for several capability sets and arguments.
#[test]
fn builtin_docker_equals_dockers_published_profile() {
    let json = docker_json();
    let ours = stockade_seccomp::builtin("docker").unwrap();
    for caps in [
        &[][..],
        DOCKER_CAPS,
        &[
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE",
            "CAP_SYS_TIME",
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_SYS_MODULE",
            "CAP_SYSLOG",
            "CAP_SYS_NICE",
            "CAP_DAC_READ_SEARCH",
            "CAP_SYS_RAWIO",
            "CAP_SYS_BOOT",
            "CAP_SYS_PACCT",
            "CAP_SYS_TTY_CONFIG",
        ],
    ] {
        for native in [Arch::X86_64, Arch::Aarch64] {
            let a = json.resolve(&ctx(native, caps));
            let b = ours.resolve(&ctx(native, caps));
            assert_eq!(a.arches, b.arches);
            for arch in &a.arches {
                for nr in arch.all_numbers() {
                    for a0 in [
                        0u64,
                        8,
                        38,
                        40,
                        41,
                        0xffff_ffff,
                        0x7e02_0000,
                        libc::SIGCHLD as u64,
                    ] {
                        let args = [a0, a0, 0, 0, 0, 0];
                        assert_eq!(
                            a.evaluate(*arch, nr, &args),
                            b.evaluate(*arch, nr, &args),
                            "{caps:?} {arch:?} {} a0={a0:#x}",
                            arch.name_of(nr).unwrap_or("?")
                        );
                    }
                }
            }
        }
    }
}

/// `default` allows the native ABI only: i386 and x32 calls get the default action, in the
/// resolved profile and in the compiled program; Docker's profile allows them.
#[test]
fn stockade_default_allows_only_the_native_abi() {
    let c = ctx(Arch::X86_64, &[]);
    let s = stockade_seccomp::builtin("default").unwrap().resolve(&c);
    let d = stockade_seccomp::builtin("docker").unwrap().resolve(&c);
    assert_eq!(s.arches, vec![Arch::X86_64]);
    let (sf, df) = (
        stockade_seccomp::compile(&s).unwrap(),
        stockade_seccomp::compile(&d).unwrap(),
    );
    let eperm = RET_ERRNO | libc::EPERM as u32;
    for name in ["getpid", "read", "exit_group"] {
        let native = Arch::X86_64.syscall(name).unwrap();
        assert_eq!(sf.eval(Arch::X86_64, native, [0; 6]).0, RET_ALLOW, "{name}");
        for compat in [Arch::X86, Arch::X32] {
            let nr = compat.syscall(name).unwrap();
            assert_eq!(sf.eval(compat, nr, [0; 6]).0, eperm, "{compat:?} {name}");
            assert_eq!(
                df.eval(compat, nr, [0; 6]).0,
                RET_ALLOW,
                "docker {compat:?} {name}"
            );
        }
    }
    // and the program is the native tree alone: well under half of Docker's three
    assert!(
        sf.program.len() * 2 < df.program.len(),
        "{} vs {}",
        sf.program.len(),
        df.program.len()
    );
}

#[test]
fn stockade_default_is_stricter_than_docker() {
    let d = docker_json().resolve(&ctx(Arch::X86_64, &[]));
    let s = stockade_seccomp::builtin("default")
        .unwrap()
        .resolve(&ctx(Arch::X86_64, &[]));
    let mut stricter = vec![];
    for nr in Arch::X86_64.all_numbers() {
        for a0 in [0u64, 8, 38, 40, 0xffff_ffff, libc::SIGCHLD as u64] {
            let args = [a0, 0, 0, 0, 0, 0];
            let (dr, sr) = (
                d.evaluate(Arch::X86_64, nr, &args),
                s.evaluate(Arch::X86_64, nr, &args),
            );
            if sr == RET_ALLOW {
                assert_eq!(
                    dr,
                    RET_ALLOW,
                    "default allows {} which Docker denies",
                    Arch::X86_64.name_of(nr).unwrap()
                );
            } else if dr == RET_ALLOW {
                stricter.push(Arch::X86_64.name_of(nr).unwrap());
            }
        }
    }
    stricter.dedup();
    for must in [
        "ptrace",
        "process_vm_readv",
        "adjtimex",
        "clock_adjtime",
        "name_to_handle_at",
        "modify_ldt",
    ] {
        assert!(
            stricter.contains(&must),
            "default should deny {must}: {stricter:?}"
        );
    }
    // and with capabilities granted, still no clock setting, mount, bpf, modules
    let s = stockade_seccomp::builtin("default").unwrap().resolve(&ctx(
        Arch::X86_64,
        &[
            "CAP_SYS_ADMIN",
            "CAP_SYS_TIME",
            "CAP_SYS_MODULE",
            "CAP_BPF",
            "CAP_PERFMON",
        ],
    ));
    for name in [
        "settimeofday",
        "clock_settime",
        "mount",
        "bpf",
        "perf_event_open",
        "init_module",
        "keyctl",
        "kcmp",
    ] {
        let nr = Arch::X86_64.syscall(name).unwrap();
        assert_ne!(s.evaluate(Arch::X86_64, nr, &[0; 6]), RET_ALLOW, "{name}");
    }
    // namespace creation comes back with CAP_SYS_ADMIN
    let nr = Arch::X86_64.syscall("unshare").unwrap();
    assert_eq!(s.evaluate(Arch::X86_64, nr, &[0; 6]), RET_ALLOW);
}

#[test]
fn paths_are_short_and_unconditional_allows_read_only_nr_and_arch() {
    for (name, profile) in [
        ("default", stockade_seccomp::builtin("default").unwrap()),
        ("docker.json", docker_json()),
    ] {
        let r = profile.resolve(&ctx(Arch::X86_64, &[]));
        let f = stockade_seccomp::compile(&r).unwrap();
        let decisions = r.decisions(Arch::X86_64);
        for (nr, d) in &decisions {
            for a0 in [0u64, 8, 38, 39, 40, 41, 0xffff_ffff, 1 << 32, u64::MAX] {
                let (_, steps) = f.eval(Arch::X86_64, *nr, [a0, 0, 0, 0, 0, 0]);
                assert!(
                    steps <= 20,
                    "{name}: {} takes {steps} instructions",
                    Arch::X86_64.name_of(*nr).unwrap()
                );
            }
            if d.conditional.is_empty() {
                // an input that differs only in its arguments and ip takes the very same path
                let data = |args| stockade_seccomp::bpf::SeccompData {
                    nr: *nr,
                    arch: Arch::X86_64.audit(),
                    ip: 0x1234,
                    args,
                };
                let p1 = stockade_seccomp::bpf::run(&f.program, &data([0; 6])).unwrap();
                let p2 = stockade_seccomp::bpf::run(&f.program, &data([u64::MAX; 6])).unwrap();
                assert_eq!(p1, p2);
                assert!(
                    !reads_args(&f.program, *nr),
                    "{name}: {} reads arguments",
                    Arch::X86_64.name_of(*nr).unwrap()
                );
            }
        }
        assert!(f.program.len() < 4096);
    }
}

/// Does the path the program takes for `nr` load anything but nr and arch?
fn reads_args(prog: &[stockade_seccomp::bpf::SockFilter], nr: u32) -> bool {
    use stockade_seccomp::bpf::*;
    let (mut pc, mut a) = (0usize, 0u32);
    loop {
        let ins = prog[pc];
        pc += 1;
        match ins.code & 0x07 {
            BPF_LD => {
                if ins.k >= 8 {
                    return true;
                }
                a = if ins.k == OFF_NR {
                    nr
                } else {
                    Arch::X86_64.audit()
                };
            }
            BPF_JMP if ins.code & 0xf0 == BPF_JA => pc += ins.k as usize,
            BPF_JMP => {
                let taken = match ins.code & 0xf0 {
                    BPF_JEQ => a == ins.k,
                    BPF_JGT => a > ins.k,
                    BPF_JGE => a >= ins.k,
                    _ => a & ins.k != 0,
                };
                pc += if taken { ins.jt } else { ins.jf } as usize;
            }
            BPF_RET => return false,
            _ => return true,
        }
    }
}

#[test]
fn newer_syscalls_than_the_profile_names_get_enosys() {
    let r = stockade_seccomp::builtin("default")
        .unwrap()
        .resolve(&ctx(Arch::X86_64, &[]));
    let f = stockade_seccomp::compile(&r).unwrap();
    let max = r
        .decisions(Arch::X86_64)
        .keys()
        .next_back()
        .copied()
        .unwrap();
    assert_eq!(
        f.eval(Arch::X86_64, max + 1, [0; 6]).0,
        RET_ERRNO | libc::ENOSYS as u32
    );
    assert_eq!(
        f.eval(Arch::X86_64, 1000, [0; 6]).0,
        RET_ERRNO | libc::ENOSYS as u32
    );
    // a denied syscall below the maximum gets the default, EPERM
    let keyctl = Arch::X86_64.syscall("keyctl").unwrap();
    assert_eq!(
        f.eval(Arch::X86_64, keyctl, [0; 6]).0,
        RET_ERRNO | libc::EPERM as u32
    );
    // an unknown architecture gets the default
    let data = stockade_seccomp::bpf::SeccompData {
        nr: 0,
        arch: 0x1234,
        ip: 0,
        args: [0; 6],
    };
    assert_eq!(
        stockade_seccomp::bpf::run(&f.program, &data).unwrap().0,
        RET_ERRNO | libc::EPERM as u32
    );
}

#[test]
fn bad_profiles_name_the_json_path() {
    let cases = [
        (r#"{"defaultAction": "SCMP_ACT_BOGUS"}"#, "defaultAction"),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "syscalls[0].args[0].index",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}"#,
            "syscalls[0].args[0].op",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}"#,
            "architectures[0]",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000}]}"#,
            "syscalls[0].errnoRet",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}"#,
            "",
        ),
    ];
    for (text, path) in cases {
        let e = Profile::from_json(text).unwrap_err();
        assert!(e.to_string().contains(path), "{text}: {e}");
    }
}

#[test]
fn unknown_names_are_reported() {
    let p = Profile::from_json(r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "not_a_call", "riscv_flush_icache"], "action": "SCMP_ACT_ALLOW"}]}"#).unwrap();
    let f = stockade_seccomp::compile(&p.resolve(&ctx(Arch::X86_64, &[]))).unwrap();
    // known on some architecture (riscv) is not a typo; unknown everywhere is
    assert_eq!(f.unknown, vec!["not_a_call".to_string()]);
}
