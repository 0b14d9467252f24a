//! One eBPF assembler and the `bpf(2)` calls around it, shared by the cgroup v2 device filter
//! ([`crate::cgroups::device_filter`]) and the learner ([`crate::learn`]).
//!
//! Written by hand, not with clang, BCC, libbpf or aya: a runtime cannot assume a compiler
//! toolchain or kernel headers on the machines it runs on, and its programs are a few dozen
//! instructions each. What is here: instruction encoding with labels ([`Asm`]), program loading
//! that returns the verifier's log in the error, array and hash maps, raw tracepoints, and the
//! count of loaded programs (for tests that check nothing is left).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

pub fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// Opcodes (class | op | source or size), as `<linux/bpf.h>` spells them.
pub mod op {
    pub const LDX_W: u8 = 0x61;
    pub const LDX_DW: u8 = 0x79;
    pub const STX_W: u8 = 0x63;
    pub const STX_DW: u8 = 0x7b;
    pub const ST_W: u8 = 0x62;
    /// `lock *(u32 *)(dst + off) op= src` (imm = the operation, e.g. [`ATOMIC_OR`]).
    pub const ATOMIC_W: u8 = 0xc3;
    pub const ATOMIC_OR: i32 = 0x40;
    pub const MOV64_IMM: u8 = 0xb7;
    pub const MOV64_REG: u8 = 0xbf;
    pub const ADD64_IMM: u8 = 0x07;
    pub const ADD64_REG: u8 = 0x0f;
    pub const AND64_IMM: u8 = 0x57;
    pub const RSH64_IMM: u8 = 0x77;
    pub const JA: u8 = 0x05;
    pub const JEQ_IMM: u8 = 0x15;
    pub const JEQ_REG: u8 = 0x1d;
    pub const JGE_IMM: u8 = 0x35;
    pub const JNE_IMM: u8 = 0x55;
    pub const JSET_IMM: u8 = 0x45;
    pub const JNE_REG: u8 = 0x5d;
    pub const CALL: u8 = 0x85;
    pub const EXIT: u8 = 0x95;
    pub const LD_IMM64: u8 = 0x18;
}

/// Kernel helper numbers used here.
pub mod helper {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const GET_CURRENT_ANCESTOR_CGROUP_ID: i32 = 123;
    pub const PROBE_READ_KERNEL: i32 = 113;
    pub const GET_CURRENT_TASK_BTF: i32 = 158;
    pub const TASK_PT_REGS: i32 = 175;
}

/// A label: a jump target placed later with [`Asm::place`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label(usize);

/// An instruction list with forward jumps to labels.
#[derive(Default)]
pub struct Asm {
    pub insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub fn place(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }

    pub fn push(&mut self, i: Insn) -> &mut Asm {
        self.insns.push(i);
        self
    }

    pub fn i(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) -> &mut Asm {
        self.push(insn(code, dst, src, off, imm))
    }

    /// A conditional (or `JA`) jump to `to`.
    pub fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) -> &mut Asm {
        self.fixups.push((self.insns.len(), to));
        self.push(insn(code, dst, src, 0, imm))
    }

    pub fn call(&mut self, helper: i32) -> &mut Asm {
        self.i(op::CALL, 0, 0, 0, helper)
    }

    /// `dst = imm64` (two instructions).
    pub fn ld_imm64(&mut self, dst: u8, v: u64) -> &mut Asm {
        self.i(op::LD_IMM64, dst, 0, 0, v as u32 as i32);
        self.i(0, 0, 0, 0, (v >> 32) as u32 as i32)
    }

    /// `dst = &map` (the map's descriptor, resolved by the kernel at load).
    pub fn ld_map(&mut self, dst: u8, map: &OwnedFd) -> &mut Asm {
        const BPF_PSEUDO_MAP_FD: u8 = 1;
        self.i(op::LD_IMM64, dst, BPF_PSEUDO_MAP_FD, 0, map.as_raw_fd());
        self.i(0, 0, 0, 0, 0)
    }

    /// The instructions with every jump resolved.
    pub fn finish(mut self) -> Vec<Insn> {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let to = self.labels[l.0].expect("label placed");
            self.insns[at].off = (to as i64 - at as i64 - 1) as i16;
        }
        self.insns
    }
}

fn sys_bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<i64> {
    // SAFETY: attr is a zero-padded `union bpf_attr` for `cmd`; every pointer it holds points to
    // memory that outlives the call, as each caller below arranges.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put_u32(a: &mut [u8], at: usize, v: u32) {
    a[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(a: &mut [u8], at: usize, v: u64) {
    a[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;

pub const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub const PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
pub const ATTACH_CGROUP_DEVICE: u32 = 6;
pub const MAP_TYPE_HASH: u32 = 1;
pub const MAP_TYPE_ARRAY: u32 = 2;

fn name16(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (d, s) in n.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    n
}

/// The license a program declares. The kernel lets only GPL-compatible programs call some
/// helpers (`bpf_probe_read_kernel`, which the learner needs to read syscall arguments); the
/// programs are stockade's own, generated here, and those are offered under MIT as well as GPL.
#[derive(Debug, Clone, Copy)]
pub enum License {
    Apache,
    DualMitGpl,
}

/// Load a program; a refusal carries the verifier's log.
pub fn prog_load(
    prog_type: u32,
    insns: &[Insn],
    expected_attach_type: u32,
    name: &str,
    license: License,
) -> io::Result<OwnedFd> {
    let license = match license {
        License::Apache => c"Apache-2.0",
        License::DualMitGpl => c"Dual MIT/GPL",
    };
    let mut log = vec![0u8; 1 << 16];
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, prog_type);
    put_u32(&mut attr, 4, insns.len() as u32);
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    put_u32(&mut attr, 24, 1); // log_level
    put_u32(&mut attr, 28, log.len() as u32);
    put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
    attr[48..64].copy_from_slice(&name16(name));
    put_u32(&mut attr, 68, expected_attach_type);
    match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(0);
            let msg = String::from_utf8_lossy(&log[..end]);
            let tail: Vec<&str> = msg.lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(io::Error::new(
                e.kind(),
                if tail.is_empty() {
                    format!("load eBPF program {name}: {e}")
                } else {
                    format!("load eBPF program {name}: {e}: {}", tail.join(" / "))
                },
            ))
        }
    }
}

/// Attach a program to a cgroup (`BPF_F_ALLOW_MULTI`).
pub fn prog_attach_cgroup(prog: &OwnedFd, cgroup: &OwnedFd, attach_type: u32) -> io::Result<()> {
    const BPF_F_ALLOW_MULTI: u32 = 2;
    let mut at = [0u8; 20];
    put_u32(&mut at, 0, cgroup.as_raw_fd() as u32);
    put_u32(&mut at, 4, prog.as_raw_fd() as u32);
    put_u32(&mut at, 8, attach_type);
    put_u32(&mut at, 12, BPF_F_ALLOW_MULTI);
    sys_bpf(BPF_PROG_ATTACH, &mut at).map(drop)
}

/// Attach a program to the raw tracepoint `name` (no tracefs needed); detached when the
/// returned descriptor closes.
pub fn raw_tracepoint_open(name: &std::ffi::CStr, prog: &OwnedFd) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 16];
    put_u64(&mut attr, 0, name.as_ptr() as u64);
    put_u32(&mut attr, 8, prog.as_raw_fd() as u32);
    sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr).map(owned)
}

/// Pin a map, program or link at `path` in a bpf filesystem: it lives on (a link stays
/// attached) after every descriptor is closed, until the file is removed or the filesystem
/// unmounted.
pub fn obj_pin(fd: &OwnedFd, path: &std::path::Path) -> io::Result<()> {
    let c = cpath(path)?;
    let mut attr = [0u8; 16];
    put_u64(&mut attr, 0, c.as_ptr() as u64);
    put_u32(&mut attr, 8, fd.as_raw_fd() as u32);
    sys_bpf(BPF_OBJ_PIN, &mut attr)
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("pin {}: {e}", path.display())))
}

/// A descriptor of the object pinned at `path`.
pub fn obj_get(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    let mut attr = [0u8; 16];
    put_u64(&mut attr, 0, c.as_ptr() as u64);
    sys_bpf(BPF_OBJ_GET, &mut attr)
        .map(owned)
        .map_err(|e| io::Error::new(e.kind(), format!("open pinned {}: {e}", path.display())))
}

/// The id of a map (`struct bpf_map_info`'s second field).
pub fn map_id(fd: &OwnedFd) -> io::Result<u32> {
    let mut info = [0u8; 96];
    let mut attr = [0u8; 16];
    put_u32(&mut attr, 0, fd.as_raw_fd() as u32);
    put_u32(&mut attr, 4, info.len() as u32);
    put_u64(&mut attr, 8, info.as_mut_ptr() as u64);
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(u32::from_ne_bytes(info[4..8].try_into().expect("4 bytes")))
}

fn cpath(path: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// A map of `max_entries` fixed-size keys and values.
pub struct Map {
    pub fd: OwnedFd,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
}

/// `BPF_F_MMAPABLE`: an array map whose values user space reads by mapping them.
pub const F_MMAPABLE: u32 = 1 << 10;

impl Map {
    pub fn create(
        map_type: u32,
        key_size: usize,
        value_size: usize,
        max_entries: u32,
        name: &str,
    ) -> io::Result<Map> {
        Map::create_with(map_type, key_size, value_size, max_entries, 0, name)
    }

    pub fn create_with(
        map_type: u32,
        key_size: usize,
        value_size: usize,
        max_entries: u32,
        flags: u32,
        name: &str,
    ) -> io::Result<Map> {
        let mut attr = [0u8; 72];
        put_u32(&mut attr, 0, map_type);
        put_u32(&mut attr, 4, key_size as u32);
        put_u32(&mut attr, 8, value_size as u32);
        put_u32(&mut attr, 12, max_entries);
        put_u32(&mut attr, 16, flags);
        attr[28..44].copy_from_slice(&name16(name));
        let fd = sys_bpf(BPF_MAP_CREATE, &mut attr)
            .map_err(|e| io::Error::new(e.kind(), format!("create eBPF map {name}: {e}")))?;
        Ok(Map {
            fd: owned(fd),
            key_size,
            value_size,
            max_entries,
        })
    }

    /// The map pinned at `path`, whose layout the caller knows (it made it).
    pub fn from_pinned(
        path: &std::path::Path,
        key_size: usize,
        value_size: usize,
        max_entries: u32,
    ) -> io::Result<Map> {
        Ok(Map {
            fd: obj_get(path)?,
            key_size,
            value_size,
            max_entries,
        })
    }

    /// The map with this id (root), whose layout the caller knows.
    pub fn from_id(
        id: u32,
        key_size: usize,
        value_size: usize,
        max_entries: u32,
    ) -> io::Result<Map> {
        let mut attr = [0u8; 12];
        put_u32(&mut attr, 0, id);
        let fd = sys_bpf(BPF_MAP_GET_FD_BY_ID, &mut attr)
            .map_err(|e| io::Error::new(e.kind(), format!("open eBPF map {id}: {e}")))?;
        Ok(Map {
            fd: owned(fd),
            key_size,
            value_size,
            max_entries,
        })
    }

    /// Every value of an array map made with [`F_MMAPABLE`], in key order, read through one
    /// mapping instead of one `bpf()` call per key.
    pub fn array_values(&self) -> io::Result<Vec<Vec<u8>>> {
        let stride = self.value_size.div_ceil(8) * 8;
        let len = (stride * self.max_entries as usize).div_ceil(4096) * 4096;
        // SAFETY: a shared read-only mapping of the map's values; the kernel checks the size.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                self.fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the mapping is len readable bytes until munmap below.
        let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, len) };
        let out = (0..self.max_entries as usize)
            .map(|i| bytes[i * stride..i * stride + self.value_size].to_vec())
            .collect();
        // SAFETY: p and len are the mapping made above, no longer used.
        unsafe { libc::munmap(p, len) };
        Ok(out)
    }

    /// The value at `key`, if any.
    pub fn lookup(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        assert_eq!(key.len(), self.key_size);
        let mut value = vec![0u8; self.value_size];
        let mut attr = [0u8; 32];
        put_u32(&mut attr, 0, self.fd.as_raw_fd() as u32);
        put_u64(&mut attr, 8, key.as_ptr() as u64);
        put_u64(&mut attr, 16, value.as_mut_ptr() as u64);
        match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        assert_eq!((key.len(), value.len()), (self.key_size, self.value_size));
        let mut attr = [0u8; 32];
        put_u32(&mut attr, 0, self.fd.as_raw_fd() as u32);
        put_u64(&mut attr, 8, key.as_ptr() as u64);
        put_u64(&mut attr, 16, value.as_ptr() as u64);
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    /// Every (key, value) of a hash map.
    pub fn entries(&self) -> io::Result<HashMap<Vec<u8>, Vec<u8>>> {
        let mut out = HashMap::new();
        let mut key: Option<Vec<u8>> = None;
        loop {
            let mut next = vec![0u8; self.key_size];
            let mut attr = [0u8; 24];
            put_u32(&mut attr, 0, self.fd.as_raw_fd() as u32);
            put_u64(&mut attr, 8, key.as_ref().map_or(0, |k| k.as_ptr() as u64));
            put_u64(&mut attr, 16, next.as_mut_ptr() as u64);
            match sys_bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
                Err(e) => return Err(e),
            }
            if let Some(v) = self.lookup(&next)? {
                out.insert(next.clone(), v);
            }
            key = Some(next);
        }
    }
}

/// The ids of every eBPF program loaded on the machine (`BPF_PROG_GET_NEXT_ID`).
pub fn prog_ids() -> io::Result<Vec<u32>> {
    let mut ids = vec![];
    let mut start = 0u32;
    loop {
        let mut attr = [0u8; 12];
        put_u32(&mut attr, 0, start);
        match sys_bpf(BPF_PROG_GET_NEXT_ID, &mut attr) {
            Ok(_) => {
                start = u32::from_ne_bytes(attr[4..8].try_into().expect("4 bytes"));
                ids.push(start);
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(ids),
            Err(e) => return Err(e),
        }
    }
}
