//! Time the pieces of compiling a profile: `cargo run --release --example compile_time [PROFILE.json]`.
use std::time::Instant;

fn main() {
    let text = std::env::args()
        .nth(1)
        .map(|p| std::fs::read_to_string(p).expect("read profile"));
    let t0 = Instant::now();
    let _ = stockade_seccomp::Arch::X86_64.syscall("read");
    println!("tables {:?}", t0.elapsed());
    let t = Instant::now();
    let p = match &text {
        Some(t) => stockade_seccomp::Profile::from_json(t).expect("parse"),
        None => stockade_seccomp::builtin("default").unwrap(),
    };
    let t1 = t.elapsed();
    let ctx = stockade_seccomp::Context::host(vec![]);
    let r = p.resolve(&ctx);
    let t2 = t.elapsed();
    let f = stockade_seccomp::compile(&r).unwrap();
    let t3 = t.elapsed();
    let tr = Instant::now();
    let _ = p.resolve(&ctx);
    println!("resolve again {:?}", tr.elapsed());
    let f2 = stockade_seccomp::compile(&r).unwrap();
    let t4 = t.elapsed();
    for arch in [
        stockade_seccomp::Arch::X86_64,
        stockade_seccomp::Arch::X86,
        stockade_seccomp::Arch::X32,
    ] {
        let mut worst = (0, 0u32, 0u32);
        for nr in arch
            .all_numbers()
            .into_iter()
            .chain([1000, 0x4000_0000 + 1000])
        {
            for a0 in [
                0u64,
                8,
                38,
                39,
                40,
                41,
                0xffff_ffff,
                0x1_0000_0000,
                0x7e02_0000,
            ] {
                let (ret, steps) = f.eval(arch, nr, [a0, 0, 0, 0, 0, 0]);
                if steps > worst.0 {
                    worst = (steps, nr, ret);
                }
            }
        }
        println!(
            "{arch:?}: worst {} steps at nr {} ({})",
            worst.0,
            arch.name_of(worst.1).unwrap_or("?"),
            stockade_seccomp::bpf::ret_name(worst.2)
        );
    }
    println!(
        "parse {:?} resolve {:?} compile {:?} (again: {:?}) -> {} insns, worst path {}",
        t1,
        t2 - t1,
        t3 - t2,
        t4 - t3,
        f.program.len(),
        f2.longest_path()
    );
}

#[allow(dead_code)]
fn unused() {}
