//! OCI mount options, parsed: pure functions, no system calls.

use std::path::Path;

use nix::mount::MsFlags;
use oci_spec::runtime::Mount;

use crate::sys::{self, MountAttr};

/// One parsed OCI mount option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Set(MsFlags),
    Clear(MsFlags),
    Propagation(MsFlags),
    Bind {
        recursive: bool,
    },
    /// Recursive read-only / read-write (`rro`, `rrw`).
    RecursiveRo(bool),
    Idmap {
        recursive: bool,
    },
    /// Accepted and ignored (e.g. `tmpcopyup` is a Podman hint handled by the engine).
    Ignore,
}

pub fn parse_option(opt: &str) -> Option<Opt> {
    use MsFlags as F;
    Some(match opt {
        "ro" => Opt::Set(F::MS_RDONLY),
        "rw" => Opt::Clear(F::MS_RDONLY),
        "nosuid" => Opt::Set(F::MS_NOSUID),
        "suid" => Opt::Clear(F::MS_NOSUID),
        "nodev" => Opt::Set(F::MS_NODEV),
        "dev" => Opt::Clear(F::MS_NODEV),
        "noexec" => Opt::Set(F::MS_NOEXEC),
        "exec" => Opt::Clear(F::MS_NOEXEC),
        "sync" => Opt::Set(F::MS_SYNCHRONOUS),
        "async" => Opt::Clear(F::MS_SYNCHRONOUS),
        "dirsync" => Opt::Set(F::MS_DIRSYNC),
        "mand" => Opt::Set(F::MS_MANDLOCK),
        "nomand" => Opt::Clear(F::MS_MANDLOCK),
        "noatime" => Opt::Set(F::MS_NOATIME),
        "atime" => Opt::Clear(F::MS_NOATIME),
        "nodiratime" => Opt::Set(F::MS_NODIRATIME),
        "diratime" => Opt::Clear(F::MS_NODIRATIME),
        "relatime" => Opt::Set(F::MS_RELATIME),
        "norelatime" => Opt::Clear(F::MS_RELATIME),
        "strictatime" => Opt::Set(F::MS_STRICTATIME),
        "nostrictatime" => Opt::Clear(F::MS_STRICTATIME),
        "remount" => Opt::Ignore,
        "bind" => Opt::Bind { recursive: false },
        "rbind" => Opt::Bind { recursive: true },
        "rro" => Opt::RecursiveRo(true),
        "rrw" => Opt::RecursiveRo(false),
        "idmap" => Opt::Idmap { recursive: false },
        "ridmap" => Opt::Idmap { recursive: true },
        "tmpcopyup" | "copy-symlink" | "z" | "Z" => Opt::Ignore,
        p => Opt::Propagation(propagation_flag(p)?),
    })
}

pub fn propagation_flag(p: &str) -> Option<MsFlags> {
    use MsFlags as F;
    Some(match p {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    })
}

/// A mount entry's options, sorted into flags, filesystem data and the rest.
#[derive(Debug, Clone)]
pub struct MountOpts {
    pub flags: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    pub bind: Option<bool>,
    pub recursive_ro: Option<bool>,
    pub idmap: Option<bool>,
}

pub fn mount_opts(m: &Mount) -> MountOpts {
    let mut o = MountOpts {
        flags: MsFlags::empty(),
        propagation: vec![],
        data: vec![],
        bind: None,
        recursive_ro: None,
        idmap: None,
    };
    let mut explicit = MsFlags::empty();
    for s in m.options().iter().flatten() {
        match parse_option(s) {
            Some(Opt::Set(f)) => {
                o.flags |= f;
                explicit |= f;
            }
            Some(Opt::Clear(f)) => {
                o.flags &= !f;
                explicit |= f;
            }
            Some(Opt::Propagation(p)) => o.propagation.push(p),
            Some(Opt::Bind { recursive }) => o.bind = Some(recursive),
            Some(Opt::RecursiveRo(ro)) => o.recursive_ro = Some(ro),
            Some(Opt::Idmap { recursive }) => o.idmap = Some(recursive),
            Some(Opt::Ignore) => {}
            None => o.data.push(s.clone()),
        }
    }
    if m.typ().as_deref() == Some("bind") && o.bind.is_none() {
        o.bind = Some(false);
    }
    // Hardened default: nosuid and nodev unless the options say otherwise; /dev and devpts keep
    // their device nodes usable.
    if !explicit.contains(MsFlags::MS_NOSUID) {
        o.flags |= MsFlags::MS_NOSUID;
    }
    let holds_devices =
        m.destination() == Path::new("/dev") || m.typ().as_deref() == Some("devpts");
    if !explicit.contains(MsFlags::MS_NODEV) && !holds_devices {
        o.flags |= MsFlags::MS_NODEV;
    }
    o
}

pub(super) fn attr_of(flags: MsFlags) -> MountAttr {
    let mut a = MountAttr::default();
    let pairs = [
        (MsFlags::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, sys::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, sys::MOUNT_ATTR_NODIRATIME),
    ];
    for (f, attr) in pairs {
        if flags.contains(f) {
            a.attr_set |= attr;
        } else {
            a.attr_clr |= attr;
        }
    }
    // Access-time mode is one field: set exactly one of noatime/strictatime/relatime (0).
    a.attr_clr |= 0x70;
    if flags.contains(MsFlags::MS_NOATIME) {
        a.attr_set |= sys::MOUNT_ATTR_NOATIME;
    } else if flags.contains(MsFlags::MS_STRICTATIME) {
        a.attr_set |= sys::MOUNT_ATTR_STRICTATIME;
    }
    a
}
