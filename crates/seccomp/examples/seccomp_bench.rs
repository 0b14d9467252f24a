//! Seccomp benchmark (not a test): Docker's profile compiled by stockade and by libseccomp
//! (linear and binary-tree layouts), program size, worst-case executed path, compile time, and
//! the cost of a syscall under each filter, in one run.
//!
//!     cargo run --release -p stockade-seccomp --example seccomp_bench [PROFILE.json]
//!
//! Needs libseccomp-dev (as the differential test does).

use std::time::Instant;

use stockade_seccomp::bpf::SockFilter;
use stockade_seccomp::compile::longest_path;
use stockade_seccomp::{Arch, Context, Profile};

#[path = "../tests/support/libseccomp.rs"]
mod libseccomp;

#[path = "../tests/support/docker.rs"]
mod docker;

fn libseccomp(r: &stockade_seccomp::Resolved, tree: bool) -> Vec<SockFilter> {
    libseccomp::program(&r.oci, r.default_ret, &r.arches, tree)
}

/// Executed instructions for one syscall with the given first argument.
fn steps(p: &[SockFilter], nr: u32, a0: u64) -> usize {
    let data = stockade_seccomp::bpf::SeccompData {
        nr,
        arch: Arch::X86_64.audit(),
        ip: 0,
        args: [a0, 0, 0, 0, 0, 0],
    };
    stockade_seccomp::bpf::run(p, &data).unwrap().1
}

/// ns per call of `nr(a0)` in a child that loaded `prog` (None: no filter).
fn ns_per_call(prog: Option<&[SockFilter]>, nr: i64, a0: u64) -> f64 {
    let mut pipe = [0i32; 2];
    // SAFETY: plain pipe/fork/syscalls; the child writes a number and exits without allocating.
    unsafe {
        libc::pipe(pipe.as_mut_ptr());
        let pid = libc::fork();
        if pid == 0 {
            if let Some(p) = prog {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                #[repr(C)]
                struct Fprog {
                    len: u16,
                    filter: *const SockFilter,
                }
                let fp = Fprog {
                    len: p.len() as u16,
                    filter: p.as_ptr(),
                };
                if libc::syscall(libc::SYS_seccomp, 1, 0, &fp as *const Fprog) != 0 {
                    libc::_exit(2);
                }
            }
            let n = 2_000_000u64;
            let mut t0 = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let mut t1 = t0;
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t0);
            for _ in 0..n {
                libc::syscall(nr, a0);
            }
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t1);
            let ns = ((t1.tv_sec - t0.tv_sec) as u64 * 1_000_000_000 + t1.tv_nsec as u64
                - t0.tv_nsec as u64)
                * 1000
                / n;
            let bytes = ns.to_ne_bytes();
            libc::write(pipe[1], bytes.as_ptr().cast(), 8);
            libc::_exit(0);
        }
        let mut buf = [0u8; 8];
        libc::read(pipe[0], buf.as_mut_ptr().cast(), 8);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        libc::close(pipe[0]);
        libc::close(pipe[1]);
        u64::from_ne_bytes(buf) as f64 / 1000.0
    }
}

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/docker-default-seccomp.json"
        )
        .into()
    });
    let text = std::fs::read_to_string(&path).expect("profile");
    let profile = Profile::from_json(&text).unwrap();
    let caps: Vec<String> = docker::DOCKER_CAPS.iter().map(|s| s.to_string()).collect();
    let ctx = Context {
        arch: Arch::X86_64,
        caps: caps.into_iter().collect(),
        kernel: stockade_seccomp::resolve::running_kernel(),
    };

    let t = Instant::now();
    let r = profile.resolve(&ctx);
    let ours = stockade_seccomp::compile(&r).unwrap();
    let cold = t.elapsed();
    let mut warm = vec![];
    for _ in 0..200 {
        let t = Instant::now();
        let p = Profile::from_json(&text).unwrap();
        let _ = stockade_seccomp::compile(&p.resolve(&ctx)).unwrap();
        warm.push(t.elapsed().as_secs_f64() * 1e6);
    }
    warm.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let t = Instant::now();
    let linear = libseccomp(&r, false);
    let lin_time = t.elapsed();
    let t = Instant::now();
    let tree = libseccomp(&r, true);
    let tree_time = t.elapsed();

    let getppid = Arch::X86_64.syscall("getppid").unwrap();
    let personality = Arch::X86_64.syscall("personality").unwrap();
    println!("profile: {path}");
    println!(
        "{:28} {:>8} {:>10} {:>10} {:>12} {:>12}",
        "", "insns", "worst", "getppid", "personality", "compile"
    );
    for (name, p, time) in [
        ("stockade", &ours.program, cold),
        ("libseccomp 2.5.4 linear", &linear, lin_time),
        ("libseccomp 2.5.4 tree", &tree, tree_time),
    ] {
        println!(
            "{:28} {:>8} {:>10} {:>10} {:>12} {:>10.0}µs",
            name,
            p.len(),
            longest_path(p),
            steps(p, getppid, 0),
            steps(p, personality, 0xffff_ffff),
            time.as_secs_f64() * 1e6
        );
    }
    println!(
        "stockade compile (parse+resolve+compile), warm median: {:.0}µs",
        warm[warm.len() / 2]
    );
    let none_g = ns_per_call(None, libc::SYS_getppid, 0);
    let none_p = ns_per_call(None, libc::SYS_personality, 0xffff_ffff);
    println!("\nns per call           getppid   personality(0xffffffff)");
    println!("no filter          {none_g:10.1} {none_p:10.1}");
    for (name, p) in [
        ("stockade", &ours.program),
        ("libseccomp linear", &linear),
        ("libseccomp tree", &tree),
    ] {
        let g = ns_per_call(Some(p), libc::SYS_getppid, 0);
        let q = ns_per_call(Some(p), libc::SYS_personality, 0xffff_ffff);
        println!(
            "{name:18} {g:10.1} {q:10.1}   (ratio to no filter {:.2} {:.2})",
            g / none_g,
            q / none_p
        );
    }
}
