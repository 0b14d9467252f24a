//! libseccomp through FFI, for the differential test and the benchmark (test-only: the runtime
//! never links it). Builds a filter from a resolved OCI profile the way runc does.
#![allow(dead_code)]

use std::ffi::CString;
use std::io::Read;
use std::os::fd::FromRawFd;

use stockade_seccomp::bpf::SockFilter;
use stockade_seccomp::{Arch, Profile};

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
    pub fn seccomp_syscall_resolve_name_arch(
        arch_token: u32,
        name: *const libc::c_char,
    ) -> libc::c_int;
    fn seccomp_rule_add_array(
        ctx: *mut libc::c_void,
        action: u32,
        syscall: libc::c_int,
        cnt: u32,
        args: *const ScmpArgCmp,
    ) -> libc::c_int;
    fn seccomp_export_bpf(ctx: *mut libc::c_void, fd: libc::c_int) -> libc::c_int;
}

pub fn token(a: Arch) -> u32 {
    match a {
        Arch::X32 => 0x4000_003e,
        other => other.audit(),
    }
}

/// Build the filter with libseccomp, exactly as runc does from an OCI profile.
pub fn libseccomp_program(p: &Profile, default_ret: u32, arches: &[Arch]) -> Vec<SockFilter> {
    program(p, default_ret, arches, false)
}

/// As runc builds it; `tree` turns on libseccomp's binary-tree layout (SCMP_FLTATR_CTL_OPTIMIZE=2).
pub fn program(p: &Profile, default_ret: u32, arches: &[Arch], tree: bool) -> Vec<SockFilter> {
    // SAFETY: plain FFI calls on a context we own; every pointer passed outlives its call.
    unsafe {
        let ctx = seccomp_init(default_ret);
        assert!(!ctx.is_null());
        assert_eq!(seccomp_attr_set(ctx, 2, default_ret), 0, "bad-arch action");
        if tree {
            assert_eq!(seccomp_attr_set(ctx, 8, 2), 0, "SCMP_FLTATR_CTL_OPTIMIZE=2");
        }
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
