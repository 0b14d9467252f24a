//! Differential test against libseccomp (test-only; `.ci/run` installs libseccomp-dev): Docker's
//! real profile, resolved as Docker resolves it and fed to libseccomp the way runc feeds it, must
//! decide every syscall number of every supported architecture as our compiler's program does,
//! for varied arguments. Where the two cannot agree by design it is counted and bounded:
//! syscalls libseccomp 2.5.4 does not know (it drops them) and numbers above every named syscall
//! (ours answer ENOSYS so libc falls back; runc patches libseccomp's output to do the same).

use std::ffi::CString;
use std::io::Read;
use std::os::fd::FromRawFd;

use stockade_seccomp::bpf::{run, SeccompData, SockFilter};
use stockade_seccomp::{Arch, Context, Profile};

#[repr(C)]
struct ScmpArgCmp {
    arg: u32,
    op: u32,
    datum_a: u64,
    datum_b: u64,
}

#[link(name = "seccomp")]
extern "C" {
    fn seccomp_init(def_action: u32) -> *mut libc::c_void;
    fn seccomp_release(ctx: *mut libc::c_void);
    fn seccomp_arch_add(ctx: *mut libc::c_void, arch_token: u32) -> libc::c_int;
    fn seccomp_attr_set(ctx: *mut libc::c_void, attr: u32, value: u32) -> libc::c_int;
    fn seccomp_syscall_resolve_name(name: *const libc::c_char) -> libc::c_int;
    fn seccomp_syscall_resolve_name_arch(arch_token: u32, name: *const libc::c_char)
        -> libc::c_int;
    fn seccomp_rule_add_array(
        ctx: *mut libc::c_void,
        action: u32,
        syscall: libc::c_int,
        cnt: u32,
        args: *const ScmpArgCmp,
    ) -> libc::c_int;
    fn seccomp_export_bpf(ctx: *mut libc::c_void, fd: libc::c_int) -> libc::c_int;
}

fn token(a: Arch) -> u32 {
    match a {
        Arch::X32 => 0x4000_003e,
        other => other.audit(),
    }
}

/// Build the filter with libseccomp, exactly as runc does from an OCI profile.
fn libseccomp_program(p: &Profile, default_ret: u32, arches: &[Arch]) -> Vec<SockFilter> {
    // SAFETY: plain FFI calls on a context we own; every pointer passed outlives its call.
    unsafe {
        let ctx = seccomp_init(default_ret);
        assert!(!ctx.is_null());
        assert_eq!(seccomp_attr_set(ctx, 2, default_ret), 0, "bad-arch action");
        for a in arches {
            let r = seccomp_arch_add(ctx, token(*a));
            assert!(r == 0 || r == -libc::EEXIST, "arch_add {a:?}: {r}");
        }
        for rule in &p.syscalls {
            let ret = rule.action.ret(rule.errno_ret);
            if ret == default_ret {
                continue;
            }
            let args: Vec<ScmpArgCmp> = rule
                .args
                .iter()
                .map(|a| ScmpArgCmp {
                    arg: a.index,
                    op: match a.op {
                        stockade_seccomp::Op::Ne => 1,
                        stockade_seccomp::Op::Lt => 2,
                        stockade_seccomp::Op::Le => 3,
                        stockade_seccomp::Op::Eq => 4,
                        stockade_seccomp::Op::Ge => 5,
                        stockade_seccomp::Op::Gt => 6,
                        stockade_seccomp::Op::MaskedEq => 7,
                    },
                    datum_a: a.value,
                    datum_b: a.value_two,
                })
                .collect();
            for name in &rule.names {
                let c = CString::new(name.as_str()).unwrap();
                let nr = seccomp_syscall_resolve_name(c.as_ptr());
                if nr == -1 {
                    continue; // unknown to libseccomp: runc skips it
                }
                let r = seccomp_rule_add_array(ctx, ret, nr, args.len() as u32, args.as_ptr());
                assert_eq!(r, 0, "libseccomp refused {name}: {r}");
            }
        }
        let mut tmp = tempfile();
        assert_eq!(
            seccomp_export_bpf(ctx, std::os::fd::AsRawFd::as_raw_fd(&tmp)),
            0
        );
        seccomp_release(ctx);
        use std::io::Seek;
        tmp.seek(std::io::SeekFrom::Start(0)).unwrap();
        let mut raw = vec![];
        tmp.read_to_end(&mut raw).unwrap();
        raw.chunks_exact(8)
            .map(|c| SockFilter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect()
    }
}

fn tempfile() -> std::fs::File {
    let name = CString::new("libseccomp-export").unwrap();
    // SAFETY: memfd_create with a valid name; the descriptor is owned by the File.
    unsafe { std::fs::File::from_raw_fd(libc::memfd_create(name.as_ptr(), 0)) }
}

fn known_to_libseccomp(arch: Arch, name: &str) -> bool {
    let c = CString::new(name).unwrap();
    // SAFETY: valid C string.
    // negative pseudo-numbers (socketcall and ipc multiplexing on x86) are known too
    unsafe { seccomp_syscall_resolve_name_arch(token(arch), c.as_ptr()) != -1 }
}

const DOCKER_CAPS: &[&str] = &[
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
    assert!(compared > 10_000, "compared only {compared}");
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

fn docker_json() -> Profile {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/docker-default-seccomp.json"
    );
    let text = std::fs::read_to_string(path)
        .expect("../shared/data/docker-default-seccomp.json (CI has shared/ beside the checkout)");
    Profile::from_json(&text).unwrap()
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
