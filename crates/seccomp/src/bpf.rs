//! Classic BPF as seccomp uses it: instructions, an interpreter over `struct seccomp_data`, and a
//! disassembler. The interpreter implements the whole seccomp subset (loads, stores, ALU, jumps,
//! returns, TAX/TXA), so it can run libseccomp's programs too, for differential tests.

use std::fmt::Write;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

pub const BPF_LD: u16 = 0x00;
pub const BPF_LDX: u16 = 0x01;
pub const BPF_ST: u16 = 0x02;
pub const BPF_STX: u16 = 0x03;
pub const BPF_ALU: u16 = 0x04;
pub const BPF_JMP: u16 = 0x05;
pub const BPF_RET: u16 = 0x06;
pub const BPF_MISC: u16 = 0x07;
pub const BPF_W: u16 = 0x00;
pub const BPF_ABS: u16 = 0x20;
pub const BPF_IMM: u16 = 0x00;
pub const BPF_MEM: u16 = 0x60;
pub const BPF_LEN: u16 = 0x80;
pub const BPF_K: u16 = 0x00;
pub const BPF_X: u16 = 0x08;
pub const BPF_A: u16 = 0x10;
pub const BPF_ADD: u16 = 0x00;
pub const BPF_SUB: u16 = 0x10;
pub const BPF_MUL: u16 = 0x20;
pub const BPF_DIV: u16 = 0x30;
pub const BPF_OR: u16 = 0x40;
pub const BPF_AND: u16 = 0x50;
pub const BPF_LSH: u16 = 0x60;
pub const BPF_RSH: u16 = 0x70;
pub const BPF_NEG: u16 = 0x80;
pub const BPF_MOD: u16 = 0x90;
pub const BPF_XOR: u16 = 0xa0;
pub const BPF_JA: u16 = 0x00;
pub const BPF_JEQ: u16 = 0x10;
pub const BPF_JGT: u16 = 0x20;
pub const BPF_JGE: u16 = 0x30;
pub const BPF_JSET: u16 = 0x40;
pub const BPF_TAX: u16 = 0x00;
pub const BPF_TXA: u16 = 0x80;

/// Offsets in `struct seccomp_data`.
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
pub fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
pub fn off_arg_hi(i: u32) -> u32 {
    20 + 8 * i
}

pub fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
pub fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The input of a seccomp filter.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    fn word(&self, off: u32) -> Option<u32> {
        let mut bytes = [0u8; 64];
        bytes[0..4].copy_from_slice(&self.nr.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.arch.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.ip.to_le_bytes());
        for (i, a) in self.args.iter().enumerate() {
            bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let o = off as usize;
        (o.is_multiple_of(4) && o + 4 <= 64)
            .then(|| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()))
    }
}

/// Run `prog` on `data`: (return value, instructions executed). Errors on an invalid program.
pub fn run(prog: &[SockFilter], data: &SeccompData) -> Result<(u32, usize), String> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    let mut steps = 0usize;
    loop {
        let ins = *prog
            .get(pc)
            .ok_or_else(|| format!("fell off the end at {pc}"))?;
        steps += 1;
        pc += 1;
        let class = ins.code & 0x07;
        match class {
            BPF_LD | BPF_LDX => {
                let v = match ins.code & 0xe0 {
                    BPF_ABS => data
                        .word(ins.k)
                        .ok_or_else(|| format!("bad load offset {}", ins.k))?,
                    BPF_IMM => ins.k,
                    BPF_MEM => *mem.get(ins.k as usize).ok_or("bad scratch index")?,
                    BPF_LEN => 64,
                    m => return Err(format!("unsupported load mode {m:#x}")),
                };
                if class == BPF_LD {
                    a = v
                } else {
                    x = v
                }
            }
            BPF_ST => *mem.get_mut(ins.k as usize).ok_or("bad scratch index")? = a,
            BPF_STX => *mem.get_mut(ins.k as usize).ok_or("bad scratch index")? = x,
            BPF_ALU => {
                let src = if ins.code & BPF_X != 0 { x } else { ins.k };
                a = match ins.code & 0xf0 {
                    BPF_ADD => a.wrapping_add(src),
                    BPF_SUB => a.wrapping_sub(src),
                    BPF_MUL => a.wrapping_mul(src),
                    BPF_DIV => a.checked_div(src).ok_or("division by zero")?,
                    BPF_MOD => a.checked_rem(src).ok_or("division by zero")?,
                    BPF_OR => a | src,
                    BPF_AND => a & src,
                    BPF_XOR => a ^ src,
                    BPF_LSH => a.checked_shl(src).unwrap_or(0),
                    BPF_RSH => a.checked_shr(src).unwrap_or(0),
                    BPF_NEG => a.wrapping_neg(),
                    op => return Err(format!("unsupported alu op {op:#x}")),
                }
            }
            BPF_JMP => {
                let src = if ins.code & BPF_X != 0 { x } else { ins.k };
                let op = ins.code & 0xf0;
                if op == BPF_JA {
                    pc += ins.k as usize;
                    continue;
                }
                let taken = match op {
                    BPF_JEQ => a == src,
                    BPF_JGT => a > src,
                    BPF_JGE => a >= src,
                    BPF_JSET => a & src != 0,
                    _ => return Err(format!("unsupported jump {op:#x}")),
                };
                pc += if taken { ins.jt } else { ins.jf } as usize;
            }
            BPF_RET => return Ok((if ins.code & 0x18 == BPF_A { a } else { ins.k }, steps)),
            BPF_MISC => {
                if ins.code & 0xf8 == BPF_TXA {
                    a = x
                } else {
                    x = a
                }
            }
            _ => return Err(format!("unknown class {class}")),
        }
    }
}

pub fn ret_name(k: u32) -> String {
    use crate::profile::*;
    match k & 0xffff_0000 {
        RET_KILL_PROCESS => "KILL_PROCESS".into(),
        RET_KILL_THREAD => "KILL_THREAD".into(),
        RET_TRAP => "TRAP".into(),
        RET_ERRNO => format!("ERRNO({})", k & 0xffff),
        RET_USER_NOTIF => "NOTIFY".into(),
        RET_TRACE => format!("TRACE({})", k & 0xffff),
        RET_LOG => "LOG".into(),
        RET_ALLOW => "ALLOW".into(),
        _ => format!("{k:#x}"),
    }
}

fn field(k: u32) -> String {
    match k {
        OFF_NR => "nr".into(),
        OFF_ARCH => "arch".into(),
        8 => "ip.lo".into(),
        12 => "ip.hi".into(),
        k if (16..64).contains(&k) => format!(
            "args[{}].{}",
            (k - 16) / 8,
            if (k - 16) % 8 == 0 { "lo" } else { "hi" }
        ),
        k => format!("[{k}]"),
    }
}

/// A readable listing, one instruction per line, jump targets as absolute line numbers.
pub fn disassemble(prog: &[SockFilter]) -> String {
    let mut s = String::new();
    for (i, ins) in prog.iter().enumerate() {
        let class = ins.code & 0x07;
        let text = match class {
            BPF_LD if ins.code & 0xe0 == BPF_ABS => format!("ld  {}", field(ins.k)),
            BPF_LD if ins.code & 0xe0 == BPF_MEM => format!("ld  M[{}]", ins.k),
            BPF_LD => format!("ld  #{:#x}", ins.k),
            BPF_LDX => format!("ldx #{:#x}", ins.k),
            BPF_ST => format!("st  M[{}]", ins.k),
            BPF_STX => format!("stx M[{}]", ins.k),
            BPF_ALU => format!("alu{:#x} #{:#x}", ins.code & 0xf0, ins.k),
            BPF_JMP if ins.code & 0xf0 == BPF_JA => format!("ja  {}", i + 1 + ins.k as usize),
            BPF_JMP => {
                let op = match ins.code & 0xf0 {
                    BPF_JEQ => "jeq",
                    BPF_JGT => "jgt",
                    BPF_JGE => "jge",
                    _ => "jset",
                };
                format!(
                    "{op} #{:#x}, {}, {}",
                    ins.k,
                    i + 1 + ins.jt as usize,
                    i + 1 + ins.jf as usize
                )
            }
            BPF_RET => format!("ret {}", ret_name(ins.k)),
            _ => format!("misc {:#x}", ins.code),
        };
        let _ = writeln!(s, "{i:4}: {text}");
    }
    s
}
