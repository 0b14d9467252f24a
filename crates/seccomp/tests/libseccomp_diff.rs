//! Differential test against libseccomp (test-only; `.ci/run` installs libseccomp-dev): Docker's
//! real profile, resolved as Docker resolves it and fed to libseccomp the way runc feeds it, must
//! decide every syscall number of every supported architecture as our compiler's program does,
//! for varied arguments. Where the two cannot agree by design it is counted and bounded:
//! syscalls libseccomp 2.5.4 does not know (it drops them) and numbers above every named syscall
//! (ours answer ENOSYS so libc falls back; runc patches libseccomp's output to do the same).

use std::ffi::CString;

use stockade_seccomp::bpf::{run, SeccompData};

mod support;
use stockade_seccomp::{Arch, Context, Profile};
use support::docker::{docker_json, DOCKER_CAPS};
use support::libseccomp::*;

fn known_to_libseccomp(arch: Arch, name: &str) -> bool {
    let c = CString::new(name).unwrap();
    // SAFETY: valid C string.
    // negative pseudo-numbers (socketcall and ipc multiplexing on x86) are known too
    unsafe { seccomp_syscall_resolve_name_arch(token(arch), c.as_ptr()) != -1 }
}

fn compare(profile: &Profile, caps: &[&str]) {
    let ctx = Context {
        arch: Arch::X86_64,
        caps: caps.iter().map(|s| s.to_string()).collect(),
        kernel: (6, 18),
    };
    let resolved = profile.resolve(&ctx);
    let ours = stockade_seccomp::compile(&resolved).unwrap();
    let theirs = libseccomp_program(&resolved.oci, resolved.default_ret, &resolved.arches);
    let argsets: Vec<[u64; 6]> = vec![
        [0; 6],
        [8, 0, 0, 0, 0, 0],
        [38, 1, 2, 3, 4, 5],
        [39, 0, 0, 0, 0, 0],
        [40, 0, 0, 0, 0, 0],
        [41, 0, 0, 0, 0, 0],
        [0xffff_ffff, 0, 0, 0, 0, 0],
        [0x1_0000_0000, 0, 0, 0, 0, 0],
        [0x1_0000_0027, 0, 0, 0, 0, 0],
        [0x0002_0000, 0, 0, 0, 0, 0],
        [0x0002_0008, 0, 0, 0, 0, 0],
        [0x1000_0000, 0x1000_0000, 0, 0, 0, 0],
        [0x7e02_0000, 0x7e02_0000, 0, 0, 0, 0],
        [libc::SIGCHLD as u64 | 0x0010_0000, 0, 0, 0, 0, 0],
        [u64::MAX; 6],
    ];
    let mut compared = 0;
    let mut unknown_to_libseccomp = vec![];
    for arch in &resolved.arches {
        let decisions = resolved.decisions(*arch);
        let max = decisions.keys().next_back().copied().unwrap_or(0);
        for nr in arch.all_numbers() {
            let name = arch.name_of(nr).unwrap();
            if !known_to_libseccomp(*arch, name) {
                if decisions.contains_key(&nr) {
                    unknown_to_libseccomp.push(format!("{arch:?}:{name}"));
                }
                continue;
            }
            if nr > max {
                continue;
            }
            for args in &argsets {
                let (a, _) = ours.eval(*arch, nr, *args);
                let data = SeccompData {
                    nr,
                    arch: arch.audit(),
                    ip: 0,
                    args: *args,
                };
                let (b, _) = run(&theirs, &data).unwrap();
                assert_eq!(
                    a, b,
                    "{arch:?} {name} ({nr}) args {args:x?}: ours {:#x}, libseccomp {:#x}",
                    a, b
                );
                compared += 1;
            }
        }
    }
    // every architecture the profile allows, ~370 numbers × 15 argument sets each
    assert!(
        compared > 5_000 * resolved.arches.len(),
        "compared only {compared} over {} architectures",
        resolved.arches.len()
    );
    // what libseccomp 2.5.4 silently drops: only syscalls newer than it
    for u in &unknown_to_libseccomp {
        let name = u.split(':').nth(1).unwrap();
        let nr = Arch::X86_64.syscall(name).unwrap_or(0);
        // numbered past libseccomp 2.5.4's tables (Linux 6.1), or uretprobe (6.11, reused slot 335)
        assert!(
            nr >= 451 || name == "uretprobe",
            "libseccomp does not know {u}, which is not new"
        );
    }
    eprintln!(
        "compared {compared} decisions; libseccomp does not know {}: {unknown_to_libseccomp:?}",
        unknown_to_libseccomp.len()
    );
}

#[test]
fn docker_profile_agrees_with_libseccomp_with_dockers_default_caps() {
    compare(&docker_json(), DOCKER_CAPS);
}

#[test]
fn docker_profile_agrees_with_libseccomp_with_all_caps() {
    let all: Vec<&str> = DOCKER_CAPS
        .iter()
        .copied()
        .chain([
            "CAP_SYS_ADMIN",
            "CAP_SYS_PTRACE",
            "CAP_SYS_TIME",
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_SYS_MODULE",
        ])
        .collect();
    compare(&docker_json(), &all);
}

#[test]
fn stockade_default_agrees_with_libseccomp() {
    compare(&stockade_seccomp::builtin("default").unwrap(), &[]);
}
