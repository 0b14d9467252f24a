//! Architectures and their syscall numbers. Name↔number tables come from the `syscalls` crate;
//! the one thing it does not carry is the x32 ABI's renumbering of 36 calls (512–547), which is a
//! fixed part of the kernel ABI and is listed here.

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    X86,
    X32,
    Aarch64,
    Arm,
}

pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
pub const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// x32 calls that take the compat layout and so have their own numbers.
const X32_RENUMBERED: &[(&str, u32)] = &[
    ("rt_sigaction", 512),
    ("rt_sigreturn", 513),
    ("ioctl", 514),
    ("readv", 515),
    ("writev", 516),
    ("recvfrom", 517),
    ("sendmsg", 518),
    ("recvmsg", 519),
    ("execve", 520),
    ("ptrace", 521),
    ("rt_sigpending", 522),
    ("rt_sigtimedwait", 523),
    ("rt_sigqueueinfo", 524),
    ("sigaltstack", 525),
    ("timer_create", 526),
    ("mq_notify", 527),
    ("kexec_load", 528),
    ("waitid", 529),
    ("set_robust_list", 530),
    ("get_robust_list", 531),
    ("vmsplice", 532),
    ("move_pages", 533),
    ("preadv", 534),
    ("pwritev", 535),
    ("rt_tgsigqueueinfo", 536),
    ("recvmmsg", 537),
    ("sendmmsg", 538),
    ("process_vm_readv", 539),
    ("process_vm_writev", 540),
    ("setsockopt", 541),
    ("getsockopt", 542),
    ("io_setup", 543),
    ("io_submit", 544),
    ("execveat", 545),
    ("preadv2", 546),
    ("pwritev2", 547),
];

/// ARM's private calls (`__ARM_NR_BASE` 0x0f0000 + n), absent from the `syscalls` tables.
const ARM_PRIVATE: &[(&str, u32)] = &[
    ("breakpoint", 0x0f_0001),
    ("cacheflush", 0x0f_0002),
    ("usr26", 0x0f_0003),
    ("usr32", 0x0f_0004),
    ("set_tls", 0x0f_0005),
    ("get_tls", 0x0f_0006),
];

/// x86_64-only entries ("64" in the kernel's table) with no x32 counterpart.
const X86_64_ONLY: &[&str] = &[
    "uselib",
    "_sysctl",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "set_thread_area",
    "get_thread_area",
    "epoll_ctl_old",
    "epoll_wait_old",
    "map_shadow_stack",
];

const FOREIGN: &[&str] = &[
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// An architecture name libseccomp knows but this host can never run (ignored in filters).
pub fn is_known_foreign(name: &str) -> bool {
    FOREIGN.contains(&name) || name == "SCMP_ARCH_NATIVE"
}

impl Arch {
    pub const ALL: [Arch; 5] = [Arch::X86_64, Arch::X86, Arch::X32, Arch::Aarch64, Arch::Arm];

    pub fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else if cfg!(target_arch = "arm") {
            Arch::Arm
        } else if cfg!(target_arch = "x86") {
            Arch::X86
        } else {
            Arch::X86_64
        }
    }

    pub fn from_scmp(name: &str) -> Option<Arch> {
        Some(match name {
            "SCMP_ARCH_X86_64" => Arch::X86_64,
            "SCMP_ARCH_X86" => Arch::X86,
            "SCMP_ARCH_X32" => Arch::X32,
            "SCMP_ARCH_AARCH64" => Arch::Aarch64,
            "SCMP_ARCH_ARM" => Arch::Arm,
            "SCMP_ARCH_NATIVE" => Arch::native(),
            _ => return None,
        })
    }

    /// Short names for the command line (`--arch x86_64`), also accepting libseccomp's.
    pub fn parse(name: &str) -> Option<Arch> {
        Self::from_scmp(name).or(match name.to_ascii_lowercase().as_str() {
            "x86_64" | "amd64" => Some(Arch::X86_64),
            "x86" | "i386" | "386" => Some(Arch::X86),
            "x32" => Some(Arch::X32),
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            "arm" => Some(Arch::Arm),
            _ => None,
        })
    }

    pub fn scmp_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::X86 => "SCMP_ARCH_X86",
            Arch::X32 => "SCMP_ARCH_X32",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
            Arch::Arm => "SCMP_ARCH_ARM",
        }
    }

    /// Go's GOARCH for the native architecture, what Docker's `includes.arches` is matched against.
    pub fn go_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::X86 => "386",
            Arch::X32 => "x32",
            Arch::Aarch64 => "arm64",
            Arch::Arm => "arm",
        }
    }

    pub fn audit(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::X32 => AUDIT_ARCH_X86_64,
            Arch::X86 => AUDIT_ARCH_I386,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
            Arch::Arm => AUDIT_ARCH_ARM,
        }
    }

    pub fn is_32bit(self) -> bool {
        // x32 is ILP32: like libseccomp, compare its arguments on 32 bits
        matches!(self, Arch::X86 | Arch::X32 | Arch::Arm)
    }

    /// The syscall number of `name` on this architecture (hash lookup in a table built once).
    pub fn syscall(self, name: &str) -> Option<u32> {
        table(self).get(name).copied()
    }

    /// The name of syscall `nr` on this architecture.
    pub fn name_of(self, nr: u32) -> Option<&'static str> {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::new(nr as usize).map(|s| s.name()),
            Arch::X86 => syscalls::x86::Sysno::new(nr as usize).map(|s| s.name()),
            Arch::Aarch64 => syscalls::aarch64::Sysno::new(nr as usize).map(|s| s.name()),
            Arch::Arm => syscalls::arm::Sysno::new(nr as usize)
                .map(|s| s.name())
                .or_else(|| ARM_PRIVATE.iter().find(|(_, x)| *x == nr).map(|(n, _)| *n)),
            Arch::X32 => {
                let n = nr.checked_sub(X32_SYSCALL_BIT)?;
                if let Some((name, _)) = X32_RENUMBERED.iter().find(|(_, x)| *x == n) {
                    return Some(name);
                }
                let name = syscalls::x86_64::Sysno::new(n as usize)?.name();
                (!X32_RENUMBERED.iter().any(|(x, _)| *x == name) && !X86_64_ONLY.contains(&name))
                    .then_some(name)
            }
        }
    }

    /// Every syscall number of this architecture.
    pub fn all_numbers(self) -> Vec<u32> {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::iter()
                .map(|s| s.id() as u32)
                .collect(),
            Arch::X86 => syscalls::x86::Sysno::iter()
                .map(|s| s.id() as u32)
                .collect(),
            Arch::Aarch64 => syscalls::aarch64::Sysno::iter()
                .map(|s| s.id() as u32)
                .collect(),
            Arch::Arm => syscalls::arm::Sysno::iter()
                .map(|s| s.id() as u32)
                .chain(ARM_PRIVATE.iter().map(|(_, n)| *n))
                .collect(),
            Arch::X32 => {
                let mut v: Vec<u32> = syscalls::x86_64::Sysno::iter()
                    .filter_map(|s| Arch::X32.syscall(s.name()))
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        }
    }
}

/// FNV-1a: syscall names are short and trusted, so a simple hash beats SipHash here (the
/// tables are hit once per name per architecture on every container start).
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
}

type Table = std::collections::HashMap<&'static str, u32, std::hash::BuildHasherDefault<Fnv>>;

/// One architecture's name table, built on first use from the `syscalls` crate's enumeration.
fn table(arch: Arch) -> &'static Table {
    use std::sync::OnceLock;
    static T: [OnceLock<Table>; 5] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let i = Arch::ALL.iter().position(|a| *a == arch).expect("listed");
    T[i].get_or_init(|| match arch {
        Arch::X86_64 => syscalls::x86_64::Sysno::iter()
            .map(|s| (s.name(), s.id() as u32))
            .collect(),
        Arch::X86 => syscalls::x86::Sysno::iter()
            .map(|s| (s.name(), s.id() as u32))
            .collect(),
        Arch::Aarch64 => syscalls::aarch64::Sysno::iter()
            .map(|s| (s.name(), s.id() as u32))
            .collect(),
        Arch::Arm => syscalls::arm::Sysno::iter()
            .map(|s| (s.name(), s.id() as u32))
            .chain(ARM_PRIVATE.iter().copied())
            .collect(),
        Arch::X32 => syscalls::x86_64::Sysno::iter()
            .filter_map(|s| {
                let name = s.name();
                if let Some((_, n)) = X32_RENUMBERED.iter().find(|(n, _)| *n == name) {
                    return Some((name, X32_SYSCALL_BIT | n));
                }
                (!X86_64_ONLY.contains(&name)).then_some((name, X32_SYSCALL_BIT | s.id() as u32))
            })
            .collect(),
    })
}

/// Is `name` a syscall on any Linux architecture at all (so a profile naming it is not a typo)?
pub fn known_anywhere(name: &str) -> bool {
    Arch::ALL.iter().any(|a| a.syscall(name).is_some())
        || syscalls::riscv64::Sysno::from_str(name).is_ok()
        || syscalls::s390x::Sysno::from_str(name).is_ok()
        || syscalls::powerpc64::Sysno::from_str(name).is_ok()
        || syscalls::powerpc::Sysno::from_str(name).is_ok()
        || syscalls::mips64::Sysno::from_str(name).is_ok()
        || syscalls::mips::Sysno::from_str(name).is_ok()
        || syscalls::loongarch64::Sysno::from_str(name).is_ok()
        || syscalls::sparc64::Sysno::from_str(name).is_ok()
}
