//! `stockade seccomp compile|explain|diff`: what a profile does.

use anyhow::{bail, Context, Result};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SeccompCmd {
    /// Compile a profile (built-in name or JSON file) and show it
    Compile {
        profile: String,
        #[arg(long)]
        arch: Option<String>,
        /// Capabilities in the bounding set (for Docker's includes/excludes)
        #[arg(long = "cap")]
        caps: Vec<String>,
        /// Kernel version X.Y to resolve minKernel against
        #[arg(long)]
        kernel: Option<String>,
        #[arg(long, default_value = "asm", value_parser = ["asm", "bpf", "json"])]
        format: String,
    },
    /// Which rule decides a syscall, and the action
    Explain {
        profile: String,
        syscall: String,
        args: Vec<String>,
        #[arg(long)]
        arch: Option<String>,
        #[arg(long = "cap")]
        caps: Vec<String>,
    },
    /// Syscalls whose action differs between two profiles
    Diff {
        a: String,
        b: String,
        #[arg(long)]
        arch: Option<String>,
        #[arg(long = "cap")]
        caps: Vec<String>,
    },
}

fn load_profile(arg: &str) -> Result<stockade_seccomp::Profile> {
    if let Some(p) = stockade_seccomp::builtin(arg) {
        return Ok(p);
    }
    let text = std::fs::read_to_string(arg).with_context(|| {
        format!("{arg}: not a built-in profile (default, docker, unconfined) nor a readable file")
    })?;
    // An OCI config.json holds the profile at linux.seccomp.
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{arg}: invalid JSON"))?;
    let v = v.pointer("/linux/seccomp").cloned().unwrap_or(v);
    stockade_seccomp::Profile::from_value(&v).with_context(|| arg.to_string())
}

fn context(
    arch: Option<&str>,
    caps: &[String],
    kernel: Option<&str>,
) -> Result<stockade_seccomp::Context> {
    let mut ctx =
        stockade_seccomp::Context::host(caps.iter().map(|c| stockade::capabilities::cap_name(c)));
    if let Some(a) = arch {
        ctx.arch = stockade_seccomp::Arch::parse(a)
            .with_context(|| format!("--arch {a}: unknown (x86_64, x86, x32, aarch64, arm)"))?;
    }
    if let Some(k) = kernel {
        ctx.kernel = stockade_seccomp::resolve::parse_kernel(k)
            .with_context(|| format!("--kernel {k}: use X.Y"))?;
    }
    Ok(ctx)
}

fn parse_num(s: &str) -> Result<u64> {
    let r = if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else if let Some(n) = s.strip_prefix('-') {
        n.parse::<u64>().map(|v| v.wrapping_neg())
    } else {
        s.parse()
    };
    r.with_context(|| format!("{s:?} is not a number"))
}

#[inline(never)]
pub fn seccomp_cmd(c: SeccompCmd) -> Result<i32> {
    match c {
        SeccompCmd::Compile {
            profile,
            arch,
            caps,
            kernel,
            format,
        } => compile(
            &profile,
            (arch.as_deref(), &caps, kernel.as_deref()),
            &format,
        ),
        SeccompCmd::Explain {
            profile,
            syscall,
            args,
            arch,
            caps,
        } => explain(&profile, &syscall, &args, (arch.as_deref(), &caps)),
        SeccompCmd::Diff { a, b, arch, caps } => diff(&a, &b, (arch.as_deref(), &caps)),
    }
}

/// `seccomp compile`: the filter as text, JSON or raw BPF, its size on stderr.
fn compile(
    profile: &str,
    (arch, caps, kernel): (Option<&str>, &[String], Option<&str>),
    format: &str,
) -> Result<i32> {
    let p = load_profile(profile)?;
    let ctx = context(arch, caps, kernel)?;
    let r = p.resolve(&ctx);
    let f = stockade_seccomp::compile(&r)?;
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&r.oci.to_oci_value())?),
        "bpf" => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for i in &f.program {
                out.write_all(&i.code.to_ne_bytes())?;
                out.write_all(&[i.jt, i.jf])?;
                out.write_all(&i.k.to_ne_bytes())?;
            }
        }
        _ => print!("{}", stockade_seccomp::bpf::disassemble(&f.program)),
    }
    eprintln!(
        "{} instructions; worst-case path {} instructions; architectures {}",
        f.program.len(),
        f.longest_path(),
        r.arches
            .iter()
            .map(|a| a.scmp_name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !f.unknown.is_empty() {
        eprintln!(
            "warning: unknown syscalls ignored: {}",
            f.unknown.join(", ")
        );
    }
    Ok(0)
}

/// `seccomp explain`: the decision for one call and its arguments, and the rule that made it.
fn explain(
    profile: &str,
    syscall: &str,
    args: &[String],
    (arch, caps): (Option<&str>, &[String]),
) -> Result<i32> {
    use stockade_seccomp::bpf::ret_name;
    let p = load_profile(profile)?;
    let ctx = context(arch, caps, None)?;
    let nr = match ctx.arch.syscall(syscall) {
        Some(n) => n,
        None => parse_num(syscall)
            .ok()
            .map(|n| n as u32)
            .with_context(|| format!("{syscall}: unknown on {}", ctx.arch.scmp_name()))?,
    };
    let mut a = [0u64; 6];
    for (i, s) in args.iter().take(6).enumerate() {
        a[i] = parse_num(s)?;
    }
    let r = p.resolve(&ctx);
    let f = stockade_seccomp::compile(&r)?;
    let (ret, steps) = f.eval(ctx.arch, nr, a);
    let (want, rule) = r.explain(ctx.arch, nr, &a);
    println!(
        "{} ({} on {}): {}",
        syscall,
        nr,
        ctx.arch.scmp_name(),
        ret_name(ret)
    );
    match rule {
        Some(i) => println!(
            "decided by rule {i} of the resolved profile: {}",
            serde_json::to_string(&r.oci.syscalls[i])?
        ),
        None if ret == r.default_ret => println!("no rule decides it: the default action"),
        None => println!(
            "no rule names it and it is newer than every named syscall: ENOSYS so libc falls back"
        ),
    }
    println!("{steps} BPF instructions executed");
    if ret != want {
        bail!(
            "internal error: filter says {} but the profile says {}",
            ret_name(ret),
            ret_name(want)
        );
    }
    Ok(0)
}

/// `seccomp diff`: every syscall two profiles decide differently.
fn diff(a: &str, b: &str, (arch, caps): (Option<&str>, &[String])) -> Result<i32> {
    use stockade_seccomp::bpf::ret_name;
    let ctx = context(arch, caps, None)?;
    let ra = load_profile(a)?.resolve(&ctx);
    let rb = load_profile(b)?.resolve(&ctx);
    let mut n = 0;
    for nr in ctx.arch.all_numbers() {
        let (x, y) = (
            ra.evaluate(ctx.arch, nr, &[0; 6]),
            rb.evaluate(ctx.arch, nr, &[0; 6]),
        );
        let conditional = |r: &stockade_seccomp::Resolved| {
            r.decisions(ctx.arch)
                .get(&nr)
                .is_some_and(|d| !d.conditional.is_empty())
        };
        if x != y || conditional(&ra) != conditional(&rb) {
            let name = ctx.arch.name_of(nr).unwrap_or("?");
            let tag = |r: &stockade_seccomp::Resolved, v: u32| {
                if conditional(r) {
                    format!("{} (argument-dependent)", ret_name(v))
                } else {
                    ret_name(v)
                }
            };
            println!("{name:24} {:28} {}", tag(&ra, x), tag(&rb, y));
            n += 1;
        }
    }
    eprintln!("{n} syscalls differ");
    Ok(0)
}
