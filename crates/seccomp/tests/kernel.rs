//! Filters loaded into the real kernel, in forked children: errno, SIGSYS, argument checks,
//! ENOSYS for newer calls, the notify listener, and `Seccomp: 2` in /proc/self/status.

use stockade_seccomp::{Arch, Context, Filter, Profile};

fn filter(json: &str) -> Filter {
    let p = Profile::from_json(json).unwrap();
    stockade_seccomp::compile(&p.resolve(&Context {
        arch: Arch::native(),
        caps: Default::default(),
        kernel: (6, 18),
    }))
    .unwrap()
}

/// Fork; the child sets no_new_privs, loads `f`, runs `body` and exits with what it returns.
/// Nothing in the child allocates (the test harness is multi-threaded).
fn in_child(f: &Filter, body: fn(i32) -> i32) -> nix::sys::wait::WaitStatus {
    // SAFETY: the child only makes raw system calls and exits; it never returns into Rust code
    // that could depend on other threads' state.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let code = match f.load() {
                Ok(fd) => body(fd.map(std::os::fd::IntoRawFd::into_raw_fd).unwrap_or(-1)),
                Err(_) => 99,
            };
            libc::_exit(code)
        },
        nix::unistd::ForkResult::Parent { child } => nix::sys::wait::waitpid(child, None).unwrap(),
    }
}

fn errno() -> i32 {
    // SAFETY: reads the thread's errno.
    unsafe { *libc::__errno_location() }
}

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

#[test]
fn errno_action_returns_the_errno() {
    let f = filter(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]}"#,
    );
    let st = in_child(&f, |_| {
        // SAFETY: plain syscall.
        let r = unsafe { libc::syscall(libc::SYS_getppid) };
        if r == -1 && errno() == 77 {
            0
        } else {
            1
        }
    });
    assert!(matches!(st, WaitStatus::Exited(_, 0)), "{st:?}");
}

#[test]
fn trap_and_kill_deliver_sigsys() {
    for action in ["SCMP_ACT_TRAP", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL"] {
        let f = filter(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{{"names": ["getppid"], "action": "{action}"}}]}}"#
        ));
        let st = in_child(&f, |_| {
            // SAFETY: plain syscall.
            unsafe { libc::syscall(libc::SYS_getppid) };
            0
        });
        assert!(
            matches!(st, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
            "{action}: {st:?}"
        );
    }
}

#[test]
fn argument_checks_work_on_full_64_bit_values() {
    let f = filter(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_NE"}]}]}"#,
    );
    let st = in_child(&f, |_| {
        // SAFETY: personality(0xffffffff) only queries; the other call is refused by the filter.
        let query = unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) };
        let set = unsafe { libc::syscall(libc::SYS_personality, 0x0040_0000u64) };
        let e = errno();
        let high = unsafe { libc::syscall(libc::SYS_personality, 0x1_ffff_ffffu64) };
        let e2 = errno();
        if query >= 0 && set == -1 && e == 13 && high == -1 && e2 == 13 {
            0
        } else {
            1
        }
    });
    assert!(matches!(st, WaitStatus::Exited(_, 0)), "{st:?}");
}

#[test]
fn calls_newer_than_the_profile_get_enosys_older_ones_the_default() {
    let f = filter(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["exit_group", "exit", "getpid", "rt_sigreturn", "write"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    let st = in_child(&f, |_| {
        // SAFETY: plain syscalls that the filter refuses.
        let a = unsafe { libc::syscall(libc::SYS_pidfd_open, 1, 0) };
        let ea = errno();
        let b = unsafe { libc::syscall(libc::SYS_getppid) };
        let eb = errno();
        if a == -1 && ea == libc::ENOSYS && b == -1 && eb == libc::EPERM {
            0
        } else {
            1
        }
    });
    assert!(matches!(st, WaitStatus::Exited(_, 0)), "{st:?}");
}

#[test]
fn notify_returns_a_listener_and_status_shows_the_filter() {
    let f = filter(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(f.notify);
    let st = in_child(&f, |listener| {
        // SAFETY: raw open/read/readlink into stack buffers; no allocation.
        unsafe {
            let fd = libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY);
            let mut buf = [0u8; 4096];
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            let text = &buf[..n.max(0) as usize];
            let has = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
            // the listener is a seccomp notify descriptor: /proc/self/fd/N -> anon_inode:seccomp notify
            let mut path = *b"/proc/self/fd/\0\0\0\0";
            if !(0..100).contains(&listener) {
                return 1;
            }
            if listener < 10 {
                path[14] = b'0' + listener as u8;
            } else {
                path[14] = b'0' + (listener / 10) as u8;
                path[15] = b'0' + (listener % 10) as u8;
            }
            let mut link = [0u8; 64];
            let l = libc::readlink(path.as_ptr().cast(), link.as_mut_ptr().cast(), link.len());
            let listener_ok =
                listener >= 0 && l > 0 && link[..l as usize].ends_with(b"seccomp notify");
            if has(b"Seccomp:\t2") && has(b"Seccomp_filters:\t1") && listener_ok {
                0
            } else {
                1
            }
        }
    });
    assert!(matches!(st, WaitStatus::Exited(_, 0)), "{st:?}");
}

#[test]
fn docker_and_default_profiles_load_and_block_keyctl() {
    for name in ["docker", "default"] {
        let p = stockade_seccomp::builtin(name).unwrap();
        let f = stockade_seccomp::compile(&p.resolve(&Context::host(vec![]))).unwrap();
        let st = in_child(&f, |_| {
            // SAFETY: plain syscalls.
            let pid = unsafe { libc::syscall(libc::SYS_getpid) };
            let k = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i64, 0) };
            let e = errno();
            if pid > 0 && k == -1 && e == libc::EPERM {
                0
            } else {
                1
            }
        });
        assert!(matches!(st, WaitStatus::Exited(_, 0)), "{name}: {st:?}");
    }
}

/// i386 `getpid` through `int 0x80` (the compat entry point), from a 64-bit process.
#[cfg(target_arch = "x86_64")]
fn compat_getpid() -> i64 {
    let r: i64;
    // SAFETY: `int 0x80` with eax = 20 is i386 getpid: no arguments, no memory touched; the
    // kernel clobbers nothing but eax (and r8-r11 are preserved by the compat entry).
    unsafe { std::arch::asm!("int 0x80", inlateout("rax") 20i64 => r, options(nostack)) };
    r
}

/// `default` allows the native ABI only: the i386 entry point answers EPERM; Docker's profile
/// lets the same call through. (Needs IA32 emulation in the kernel, as every distribution has.)
#[cfg(target_arch = "x86_64")]
#[test]
fn default_profile_denies_the_32_bit_entry_point() {
    assert!(compat_getpid() > 0, "this kernel has no IA32 emulation");
    for (name, want_pid) in [("default", false), ("docker", true)] {
        let p = stockade_seccomp::builtin(name).unwrap();
        let f = stockade_seccomp::compile(&p.resolve(&Context::host(vec![]))).unwrap();
        let st = if want_pid {
            in_child(&f, |_| if compat_getpid() > 0 { 0 } else { 1 })
        } else {
            in_child(&f, |_| {
                if compat_getpid() == -(libc::EPERM as i64) {
                    0
                } else {
                    1
                }
            })
        };
        assert!(matches!(st, WaitStatus::Exited(_, 0)), "{name}: {st:?}");
    }
}

/// `default` refuses a filter of the workload's own with a listener (EPERM, with the flag among
/// others too) and still lets it add one without (it can only take away).
#[test]
fn default_profile_refuses_a_new_listener_of_the_workloads_own() {
    let p = stockade_seccomp::builtin("default").unwrap();
    let f = stockade_seccomp::compile(&p.resolve(&Context::host(vec![]))).unwrap();
    let st = in_child(&f, |_| {
        // a filter that allows everything: {BPF_RET|BPF_K, SECCOMP_RET_ALLOW}
        let insn = libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        };
        let prog = libc::sock_fprog {
            len: 1,
            filter: &insn as *const _ as *mut _,
        };
        let set = |flags: u64| {
            // SAFETY: prog points to one valid instruction for the duration of the call.
            unsafe { libc::syscall(libc::SYS_seccomp, 1u64, flags, &prog as *const _) }
        };
        // NEW_LISTENER (8), alone and with TSYNC_ESRCH (16)
        for flags in [8u64, 8 | 16] {
            if set(flags) != -1 || errno() != libc::EPERM {
                return 1;
            }
        }
        if set(0) != 0 {
            return 2;
        }
        0
    });
    assert!(matches!(st, WaitStatus::Exited(_, 0)), "{st:?}");
}
