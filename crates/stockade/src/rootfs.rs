//! Seed §1 (mount namespace) and §3 (setuid defanged by nosuid mounts): the container's filesystem.
//!
//! Two halves. The runtime, still in the host's mount namespace, opens every bind source and the
//! rootfs as detached mount trees (`open_tree(OPEN_TREE_CLONE)`), sets their flags with
//! `mount_setattr`, and when the container has its own user namespace gives the rootfs and
//! writable binds an *idmapping* (`MOUNT_ATTR_IDMAP`), so files owned by host root look owned by
//! container root without chowning anything. It passes those trees to the child as descriptors.
//! The child attaches them (`move_mount`), mounts proc/tmpfs/devpts/... itself, resolves every
//! target inside the rootfs with `openat2(RESOLVE_IN_ROOT)` (a symlink cannot lead out), creates
//! devices, pivots, then masks paths and makes `/proc/sys` and the root read-only.
//!
//! Every mount is `nosuid,nodev` unless its options say `suid`/`dev` (`/dev` itself keeps device
//! nodes usable, as in runc's default spec).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::error::{Context, Error, Result};
use crate::sys::{self, MountAttr};

/// Read-only and nothing executable, setuid or device-like: what read-only paths and a
/// fallback /sys get.
const READ_ONLY_LOCKED: MountAttr = MountAttr {
    attr_set: sys::MOUNT_ATTR_RDONLY
        | sys::MOUNT_ATTR_NOSUID
        | sys::MOUNT_ATTR_NODEV
        | sys::MOUNT_ATTR_NOEXEC,
    attr_clr: 0,
    propagation: 0,
    userns_fd: 0,
};

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

/// One line of `/proc/PID/mountinfo` (proc(5)), paths unescaped.
#[derive(Debug, Clone)]
pub struct MountEntry {
    /// `major:minor` of the filesystem.
    pub dev: String,
    /// The path inside the filesystem that is mounted (a bind's source).
    pub root: String,
    pub mountpoint: String,
    /// Per-mount options (`ro`, `nosuid`, ...).
    pub options: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, ...).
    pub optional: Vec<String>,
    pub fstype: String,
    /// Per-superblock options (for cgroup v1: the controllers).
    pub super_options: String,
}

/// Every well-formed line of a mountinfo file, in order.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let unescape = |s: &str| {
        s.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\")
    };
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 6 || post.len() < 3 {
                return None;
            }
            Some(MountEntry {
                dev: pre[2].to_string(),
                root: unescape(pre[3]),
                mountpoint: unescape(pre[4]),
                options: pre[5].split(',').map(String::from).collect(),
                optional: pre[6..].iter().map(|s| s.to_string()).collect(),
                fstype: post[0].to_string(),
                super_options: post[2].to_string(),
            })
        })
        .collect()
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
#[derive(Debug)]
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

fn attr_of(flags: MsFlags) -> MountAttr {
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

/// Detached mount trees made by the runtime in the host's mount namespace, sent to the child.
#[derive(Default)]
pub struct Prepared {
    /// The directory the root is attached on (O_PATH), opened by the runtime.
    pub target: Option<OwnedFd>,
    pub rootfs: Option<OwnedFd>,
    /// (index into spec.mounts, tree)
    pub binds: Vec<(usize, OwnedFd)>,
    /// (container path, tree) for device nodes bound from the host (user namespace case).
    pub devices: Vec<(PathBuf, OwnedFd)>,
    pub warnings: Vec<String>,
    /// The cgroup hierarchies as the runtime found them before the clone, when the child's
    /// mount table is a copy of the runtime's: a cgroup mount then reads only its own cgroup.
    pub cgroups: Option<crate::cgroups::Layout>,
}

/// What one descriptor the runtime sends with "go" is: the trees of a [`Prepared`] cross to the
/// child as descriptors plus this list, so the child needs no knowledge of the order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Tree {
    Target,
    Rootfs,
    /// a bind, by index into spec.mounts
    Bind(usize),
    /// a device node bound from the host, by its container path
    Device(PathBuf),
}

impl Prepared {
    /// The descriptors to send, each with what it is.
    pub fn to_wire(&self) -> (Vec<Tree>, Vec<RawFd>) {
        let all = self
            .target
            .iter()
            .map(|f| (Tree::Target, f))
            .chain(self.rootfs.iter().map(|f| (Tree::Rootfs, f)))
            .chain(self.binds.iter().map(|(i, f)| (Tree::Bind(*i), f)))
            .chain(
                self.devices
                    .iter()
                    .map(|(p, f)| (Tree::Device(p.clone()), f)),
            );
        all.map(|(t, f)| (t, f.as_raw_fd())).unzip()
    }

    /// Inverse of [`Prepared::to_wire`], with the descriptors as received.
    pub fn from_wire(trees: Vec<Tree>, fds: Vec<OwnedFd>) -> Result<Prepared> {
        if trees.len() != fds.len() {
            return Err(Error::Other(format!(
                "{} mount trees announced, {} received",
                trees.len(),
                fds.len()
            )));
        }
        let mut p = Prepared::default();
        for (t, f) in trees.into_iter().zip(fds) {
            match t {
                Tree::Target => p.target = Some(f),
                Tree::Rootfs => p.rootfs = Some(f),
                Tree::Bind(i) => p.binds.push((i, f)),
                Tree::Device(path) => p.devices.push((path, f)),
            }
        }
        Ok(p)
    }
}

/// The OCI default devices (runtime-spec "Default Devices").
pub const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Decide whether a tree owned by `owner_uid` on disk should be idmapped into the container:
/// only when that owner is not already one of the container's host ids (an image already
/// shifted into the range must not be shifted twice).
fn wants_idmap(owner_uid: u32, uid_maps: &[oci_spec::runtime::LinuxIdMapping]) -> bool {
    !uid_maps
        .iter()
        .any(|m| owner_uid >= m.host_id() && owner_uid - m.host_id() < m.size())
        && !uid_maps.iter().all(|m| m.container_id() == m.host_id())
}

/// Runtime side: open the rootfs and every bind source as detached trees. `userns` is the
/// container's user namespace (maps already written) when it has a new one and the runtime is
/// privileged enough to idmap.
pub fn prepare(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    child: Option<i32>,
    userns: Option<&fs::File>,
    devices_by_bind: bool,
) -> Result<Prepared> {
    let mut p = Prepared::default();
    // The mount point as the child's mount namespace sees it, opened with the runtime's own
    // privileges (the bundle's parents may be closed to the container's root). Unprivileged, the
    // child opens it itself: its root is the caller.
    if let Some(pid) = child {
        let path = Path::new("/proc")
            .join(pid.to_string())
            .join("root")
            .join(rootfs.strip_prefix("/").unwrap_or(rootfs));
        p.target = Some(
            sys::openat2(
                libc::AT_FDCWD,
                &path,
                libc::O_PATH | libc::O_DIRECTORY,
                0,
                0,
            )
            .ctx(|| format!("open {}", rootfs.display()))?,
        );
    }
    let (uid_maps, _) = crate::namespaces::id_maps(spec);
    if !crate::spec::tmpfs_root(spec) {
        let tree = sys::open_tree(rootfs, sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE)
            .ctx(|| format!("open_tree rootfs {}", rootfs.display()))?;
        if let Some(ns) = userns {
            let owner = fs::metadata(rootfs)
                .ctx(|| format!("stat {}", rootfs.display()))?
                .uid();
            if wants_idmap(owner, &uid_maps) {
                if let Err(e) = idmap(&tree, ns, true) {
                    p.warnings.push(format!(
                        "rootfs {}: the filesystem refused an idmapped mount ({e}); files owned by host ids outside the \
                         container's range will look owned by nobody inside. Chown the rootfs into the mapped range or \
                         run without a user namespace.",
                        rootfs.display()
                    ));
                }
            }
        }
        p.rootfs = Some(tree);
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let o = mount_opts(m);
        let Some(recursive) = o.bind else { continue };
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            bundle.join(src)
        };
        let flags = sys::OPEN_TREE_CLONE | if recursive { sys::AT_RECURSIVE } else { 0 };
        let tree = sys::open_tree(&src, flags)
            .ctx(|| format!("mounts[{i}]: bind source {}", src.display()))?;
        let rro = o.recursive_ro.unwrap_or(false);
        sys::mount_setattr_fd(tree.as_raw_fd(), recursive || rro, &attr_of(o.flags))
            .ctx(|| format!("mounts[{i}]: set flags on bind of {}", src.display()))?;
        if rro {
            let a = MountAttr {
                attr_set: sys::MOUNT_ATTR_RDONLY,
                ..Default::default()
            };
            sys::mount_setattr_fd(tree.as_raw_fd(), true, &a)
                .ctx(|| format!("mounts[{i}]: rro"))?;
        }
        // Idmap when asked, or for a writable bind whose owner the container could not otherwise
        // act as. Read-only host binds stay unmapped on purpose: their files look owned by nobody,
        // so even a container root that regained CAP_SYS_ADMIN could not write them.
        if let Some(ns) = userns {
            let owner = fs::metadata(&src).map(|md| md.uid()).unwrap_or(0);
            let writable = !o.flags.contains(MsFlags::MS_RDONLY) && !rro;
            if o.idmap.is_some() || (writable && wants_idmap(owner, &uid_maps)) {
                if let Err(e) = idmap(&tree, ns, recursive || o.idmap == Some(true)) {
                    p.warnings.push(format!(
                        "mounts[{i}] {}: idmapped mount refused ({e}); ownership shows unmapped",
                        src.display()
                    ));
                }
            }
        }
        p.binds.push((i, tree));
    }
    if devices_by_bind {
        for (path, _, _) in DEFAULT_DEVICES {
            let tree = sys::open_tree(Path::new(path), sys::OPEN_TREE_CLONE)
                .ctx(|| format!("open host {path}"))?;
            let a = MountAttr {
                attr_set: sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
                ..Default::default()
            };
            sys::mount_setattr_fd(tree.as_raw_fd(), false, &a)
                .ctx(|| format!("flags on {path}"))?;
            p.devices.push((PathBuf::from(path), tree));
        }
        for (i, d) in spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            let tree = sys::open_tree(d.path(), sys::OPEN_TREE_CLONE)
                .ctx(|| format!("linux.devices[{i}]: in a user namespace devices are bound from the host; open {}", d.path().display()))?;
            p.devices.push((d.path().clone(), tree));
        }
    }
    Ok(p)
}

fn idmap(tree: &OwnedFd, userns: &fs::File, recursive: bool) -> io::Result<()> {
    let a = MountAttr {
        attr_set: sys::MOUNT_ATTR_IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        ..Default::default()
    };
    sys::mount_setattr_fd(tree.as_raw_fd(), recursive, &a)
}

/// Resolve `path` (absolute, container view) inside the rootfs referred to by `root` without
/// leaving it, creating missing directories (and the last component as a file if `file`).
pub fn resolve_in_root(root: RawFd, path: &Path, create_file: bool) -> Result<OwnedFd> {
    let open = |p: &Path| {
        sys::openat2(
            root,
            p,
            libc::O_PATH,
            0,
            sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
        )
    };
    match open(path) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e).ctx(|| format!("resolve {} in rootfs", path.display())),
    }
    let comps: Vec<_> = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    // The deepest ancestor that exists (most often the parent: one component is missing).
    let mut have = comps.len().saturating_sub(1);
    let mut cur: PathBuf = std::iter::once(Component::RootDir)
        .chain(comps[..have].iter().copied())
        .collect();
    let mut parent = loop {
        match open(&cur) {
            Ok(fd) => break fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && have > 0 => {
                have -= 1;
                cur.pop();
            }
            Err(e) => return Err(e).ctx(|| format!("resolve {} in rootfs", cur.display())),
        }
    };
    for (n, c) in comps.iter().enumerate().skip(have) {
        cur.push(c);
        let name = CString::new(c.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Other("NUL in path".into()))?;
        let last = n + 1 == comps.len();
        // SAFETY: parent is a valid O_PATH directory descriptor and name a valid C string.
        let r = unsafe {
            if last && create_file {
                let fd = libc::openat(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                if fd >= 0 {
                    libc::close(fd);
                }
                fd
            } else {
                libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755)
            }
        };
        parent = if r >= 0 {
            // Made just now, in a directory already resolved inside the root: open it by name,
            // refusing a symlink swapped in meanwhile.
            sys::openat2(
                parent.as_raw_fd(),
                Path::new(c),
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
                sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
            )
            .ctx(|| format!("open new mount point {} in rootfs", cur.display()))?
        } else {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err).ctx(|| format!("create mount point {} in rootfs", cur.display()));
            }
            // There after all (a racing creator, or a symlink): resolve it inside the root.
            open(&cur).ctx(|| {
                format!(
                    "resolve {} in rootfs (a symlink pointing nowhere?)",
                    cur.display()
                )
            })?
        };
    }
    Ok(parent)
}

/// Mount a new `fstype` filesystem on `target` through descriptors only: `fsopen`, `fsconfig`
/// (the source, the superblock flags, each option of `data`), `fsmount` with the mount flags,
/// `move_mount` onto the descriptor. No path is looked up, so neither the rootfs nor whatever is
/// mounted at /proc can redirect it, before or after `pivot_root`.
fn mount_on_fd(
    src: &str,
    target: &OwnedFd,
    fstype: &str,
    flags: MsFlags,
    data: &[&str],
) -> io::Result<()> {
    let fs = sys::fsopen(fstype)?;
    let named = |e: io::Error, what: &str| io::Error::new(e.kind(), format!("{what}: {e}"));
    if !src.is_empty() {
        sys::fsconfig_string(&fs, "source", src).map_err(|e| named(e, "source"))?;
    }
    for (f, key) in [
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
        (MsFlags::MS_LAZYTIME, "lazytime"),
        (MsFlags::MS_MANDLOCK, "mand"),
    ] {
        if flags.contains(f) {
            sys::fsconfig_flag(&fs, key).map_err(|e| named(e, key))?;
        }
    }
    for opt in data
        .iter()
        .flat_map(|d| d.split(','))
        .filter(|o| !o.is_empty())
    {
        match opt.split_once('=') {
            Some((k, v)) => sys::fsconfig_string(&fs, k, v),
            None => sys::fsconfig_flag(&fs, opt),
        }
        .map_err(|e| named(e, &format!("option {opt}")))?;
    }
    sys::fsconfig_create(&fs)?;
    let m = sys::fsmount(&fs, attr_of(flags).attr_set)?;
    sys::move_mount_fd(m.as_raw_fd(), target.as_raw_fd())
}

/// Change the propagation of the mount at `target` (`MS_PRIVATE`, `MS_SLAVE`, ..., with
/// `MS_REC` for the whole tree), through its descriptor.
fn set_propagation(target: &OwnedFd, flag: MsFlags) -> io::Result<()> {
    let a = MountAttr {
        propagation: (flag & !MsFlags::MS_REC).bits(),
        ..Default::default()
    };
    sys::mount_setattr_fd(target.as_raw_fd(), flag.contains(MsFlags::MS_REC), &a)
}

/// Bind `src` (a host path, resolved before `pivot_root`) onto `target`: a clone of its mount
/// (tree) attached through descriptors.
fn bind_on_fd(src: &Path, target: &OwnedFd, recursive: bool) -> io::Result<()> {
    let flags = sys::OPEN_TREE_CLONE | if recursive { sys::AT_RECURSIVE } else { 0 };
    let tree = sys::open_tree(src, flags)?;
    sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd())
}

/// Child side, in the new mount namespace: build the root and pivot into it.
pub fn setup(
    spec: &Spec,
    rootfs: &Path,
    prepared: &mut Prepared,
    ns: InNamespaces,
    before_cgroup: &mut dyn FnMut() -> Result<()>,
    before_pivot: &mut dyn FnMut() -> Result<()>,
) -> Result<Built> {
    let InNamespaces {
        user: in_userns,
        host_mount: host_mount_ns,
        own_cgroup: own_cgroupns,
    } = ns;
    let linux = spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_flag)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    // pivot_root refuses shared parents: a shared (or unbindable) rootfsPropagation is applied
    // after the pivot,
    // and until then the tree is a slave of the host's (as runc does).
    let after_pivot = prop.intersects(MsFlags::MS_SHARED | MsFlags::MS_UNBINDABLE);
    let before = if after_pivot { MsFlags::MS_SLAVE } else { prop };
    // Sharing the runtime's mount namespace (the spec has no "mount" entry), the host's
    // propagation is not ours to change: only the container's own mounts are touched.
    if !host_mount_ns {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            before | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "make / private to the container")?;
    }

    // 1. the root itself, attached through descriptors only: the bundle's directory may not be
    // searchable by the container's root (a 0700 parent), and need not be.
    let target = match prepared.target.take() {
        Some(t) => t,
        None => sys::openat2(
            libc::AT_FDCWD,
            rootfs,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            0,
        )
        .ctx(|| format!("open {}", rootfs.display()))?,
    };
    let root: OwnedFd = if crate::spec::tmpfs_root(spec) {
        let fsfd = sys::fsopen("tmpfs").ctx(|| "fsopen tmpfs")?;
        sys::fsconfig_string(&fsfd, "mode", "0755").ctx(|| "tmpfs root mode")?;
        sys::fsconfig_string(&fsfd, "size", "1m").ctx(|| "tmpfs root size")?;
        sys::fsconfig_create(&fsfd).ctx(|| "create tmpfs root")?;
        let m = sys::fsmount(&fsfd, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)
            .ctx(|| "fsmount tmpfs root")?;
        sys::move_mount_fd(m.as_raw_fd(), target.as_raw_fd())
            .ctx(|| format!("attach tmpfs root at {}", rootfs.display()))?;
        m
    } else {
        let tree = prepared.rootfs.take().expect("rootfs tree prepared");
        sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd())
            .ctx(|| format!("attach rootfs at {}", rootfs.display()))?;
        let a = MountAttr {
            attr_set: sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
            ..Default::default()
        };
        sys::mount_setattr_fd(tree.as_raw_fd(), false, &a).ctx(|| "nosuid,nodev on rootfs")?;
        tree
    };
    drop(target);
    // The parent of the new root must not be shared for pivot_root: make the root a private mount.
    set_propagation(&root, MsFlags::MS_PRIVATE).ctx(|| "make rootfs private")?;
    let rootfd = root.as_raw_fd();

    // 2. every mount, in order
    let mut binds = std::mem::take(&mut prepared.binds).into_iter().peekable();
    let mut deferred_cgroup: Vec<DeferredCgroup> = vec![];
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let o = mount_opts(m);
        let dest = m.destination();
        if o.bind.is_some() {
            let (bi, tree) = binds
                .next()
                .filter(|(bi, _)| *bi == i)
                .ok_or_else(|| Error::Other(format!("mounts[{i}]: bind tree missing")))?;
            debug_assert_eq!(bi, i);

            let src_is_file = nix::sys::stat::fstat(&tree)
                .map(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR)
                .unwrap_or(false);
            let t = resolve_in_root(rootfd, dest, src_is_file)?;
            sys::move_mount_fd(tree.as_raw_fd(), t.as_raw_fd())
                .ctx(|| format!("mounts[{i}]: attach bind at {}", dest.display()))?;
            renew(rootfd, dest, src_is_file)?;
            for p in &o.propagation {
                let t = resolve_in_root(rootfd, dest, false)?;
                set_propagation(&t, *p).ctx(|| format!("mounts[{i}]: propagation"))?;
            }
            continue;
        }
        let fstype = m.typ().clone().unwrap_or_else(|| "none".into());
        let t = resolve_in_root(rootfd, dest, false)?;
        let data: Vec<&str> = o.data.iter().map(String::as_str).collect();
        let src = m
            .source()
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| fstype.clone());
        match fstype.as_str() {
            "cgroup" | "cgroup2" => {
                // It needs the process in its cgroup (the runtime is moving it meanwhile, which
                // can wait for an RCU grace period): mount it last, unless a later mount goes
                // inside it.
                let nested_later = spec
                    .mounts()
                    .iter()
                    .flatten()
                    .skip(i + 1)
                    .any(|n| n.destination().starts_with(dest) && n.destination() != dest);
                if nested_later {
                    before_cgroup()?;
                    mount_cgroup(rootfd, dest, o.flags, &fstype, prepared.cgroups.as_ref())?
                } else {
                    deferred_cgroup.push(DeferredCgroup {
                        index: i,
                        dest: dest.clone(),
                        flags: o.flags,
                        fstype: fstype.clone(),
                    });
                    continue; // its propagation too
                }
            }
            "sysfs" => {
                if let Err(e) = mount_on_fd(&src, &t, "sysfs", o.flags, &data) {
                    // Without its own network namespace a user-namespaced container may not mount
                    // sysfs: bind the host's, read-only (as runc does).
                    if e.raw_os_error() != Some(libc::EPERM) {
                        return Err(e)
                            .ctx(|| format!("mounts[{i}]: mount sysfs at {}", dest.display()));
                    }
                    bind_on_fd(Path::new("/sys"), &t, true).ctx(|| "bind /sys")?;
                    let t = resolve_in_root(rootfd, dest, false)?;
                    sys::mount_setattr_fd(t.as_raw_fd(), true, &READ_ONLY_LOCKED)
                        .ctx(|| "read-only /sys")?;
                }
            }
            _ => mount_on_fd(&src, &t, &fstype, o.flags, &data).ctx(|| {
                format!(
                    "mounts[{i}]: mount {fstype} at {} ({})",
                    dest.display(),
                    data.join(",")
                )
            })?,
        }
        for p in &o.propagation {
            let t = resolve_in_root(rootfd, dest, false)?;
            set_propagation(&t, *p).ctx(|| format!("mounts[{i}]: propagation"))?;
        }
    }

    // 3. devices; the cgroup mounts held back come after the masks (see `finish`), unless
    // createContainer hooks are to see them before pivot_root, or there is no cgroup namespace
    // (the container's own cgroups are then bound from the host's paths, gone after the pivot)
    create_devices(spec, rootfd, prepared, in_userns)?;
    let null = verified_null(rootfd)?;
    if !own_cgroupns || !crate::hooks::list(spec, crate::hooks::Kind::CreateContainer).is_empty() {
        for d in std::mem::take(&mut deferred_cgroup) {
            before_cgroup()?;
            d.mount(spec, rootfd, prepared.cgroups.as_ref())?;
        }
    }

    // 4. createContainer hooks (container namespaces, host paths), then pivot_root
    before_pivot()?;
    nix::unistd::fchdir(&root).ctx(|| "chdir rootfs")?;
    if host_mount_ns {
        // pivot_root would move the root of every process in the host's namespace: chroot.
        nix::unistd::chroot(".").ctx(|| format!("chroot {}", rootfs.display()))?;
        nix::unistd::chdir("/").ctx(|| "chdir /")?;
        return Ok(Built {
            deferred: deferred_cgroup,
            null,
        });
    }
    sys::pivot_root(Path::new("."), Path::new("."))
        .ctx(|| format!("pivot_root {}", rootfs.display()))?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "old root slave")?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach old root")?;
    nix::unistd::chdir("/").ctx(|| "chdir /")?;
    if after_pivot {
        mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .ctx(|| "linux.rootfsPropagation on the new root")?;
    }
    Ok(Built {
        deferred: deferred_cgroup,
        null,
    })
}

/// What [`setup`] leaves to [`finish`].
pub struct Built {
    deferred: Vec<DeferredCgroup>,
    /// The container's `/dev/null`, verified to be the null device (1:3) through its descriptor:
    /// what masked files are covered with (never whatever the image calls `/dev/null`).
    null: OwnedFd,
}

/// Open the rootfs's `dev/null` without following a symlink and check it is the null device.
fn verified_null(rootfd: RawFd) -> Result<OwnedFd> {
    let fd = sys::openat2(
        rootfd,
        Path::new("dev/null"),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
    )
    .ctx(|| "open /dev/null in the rootfs")?;
    let st = nix::sys::stat::fstat(&fd).ctx(|| "stat /dev/null in the rootfs")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(Error::Other(
            "/dev/null in the container is not the null device (char 1:3); masked paths are covered with it".into(),
        ));
    }
    Ok(fd)
}

/// Which namespaces the filesystem is built in.
#[derive(Debug, Clone, Copy)]
pub struct InNamespaces {
    /// A user namespace (of the container, or the caller's own when rootless): no mknod.
    pub user: bool,
    /// The runtime's own mount namespace (the spec lists none): chroot, not pivot_root.
    pub host_mount: bool,
    /// A cgroup namespace of its own: cgroup mounts need no host path and can come last.
    pub own_cgroup: bool,
}

/// A cgroup mount of the spec held back until the process is in its cgroups (and cgroup
/// namespace): the runtime places it there while the rest of the filesystem is built.
pub struct DeferredCgroup {
    index: usize,
    dest: PathBuf,
    flags: MsFlags,
    fstype: String,
}

impl DeferredCgroup {
    fn mount(
        &self,
        spec: &Spec,
        rootfd: RawFd,
        layout: Option<&crate::cgroups::Layout>,
    ) -> Result<()> {
        mount_cgroup(rootfd, &self.dest, self.flags, &self.fstype, layout)?;
        let i = self.index;
        let m = &spec.mounts().as_ref().expect("deferred from mounts")[i];
        for p in &mount_opts(m).propagation {
            let t = resolve_in_root(rootfd, &self.dest, false)?;
            set_propagation(&t, *p).ctx(|| format!("mounts[{i}]: propagation"))?;
        }
        Ok(())
    }
}

/// Replace the bind just attached at `dest` by a clone of itself made now. The runtime made the
/// tree before any other mount of the container, and kernels ≥ 6.8 list a namespace's mounts in
/// creation order: the clone takes its place in the spec's order, as runtime-spec asks mounts to
/// be made. A detached tree from another namespace cannot be cloned directly, an attached one
/// can; where any step fails the original stays (same content, same flags, earlier in
/// mountinfo).
fn renew(rootfd: RawFd, dest: &Path, is_file: bool) -> Result<()> {
    let Ok(top) = resolve_in_root(rootfd, dest, is_file) else {
        return Ok(());
    };
    let Ok(fresh) = sys::open_tree_fd(top.as_raw_fd(), sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE)
    else {
        return Ok(());
    };
    if umount2(&sys::fd_path(&top), MntFlags::MNT_DETACH).is_err() {
        return Ok(());
    }
    drop(top);
    // From here the bind must come back: failing is an error, never a missing mount.
    let under = resolve_in_root(rootfd, dest, is_file)?;
    sys::move_mount_fd(fresh.as_raw_fd(), under.as_raw_fd())
        .ctx(|| format!("re-attach bind at {}", dest.display()))
}

/// A container that shares the runtime's mount namespace leaves its mounts in the host's, on
/// top of its rootfs: detach them all (the runtime, after the container is gone, and `delete`).
pub fn release_host_mounts(rootfs: &Path) {
    let _ = umount2(rootfs, MntFlags::MNT_DETACH);
}

/// After pivot_root: sysctls are written by the caller before this; masked and read-only paths,
/// `/proc/sys` read-only unless the spec mounts it writable itself, and the read-only root. The
/// cgroup mounts held back come between: `before_cgroup` (which waits for the runtime to have
/// made the cgroup, then joins it) is called as late as the masks allow, and masks or read-only
/// paths inside a cgroup mount are applied after it.
pub fn finish(
    spec: &Spec,
    built: Built,
    layout: Option<&crate::cgroups::Layout>,
    before_cgroup: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let Built { deferred, null } = built;
    let linux = spec.linux().as_ref();
    let masked: Vec<&String> = linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
        .collect();
    let mut ro: Vec<String> = linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default();
    let proc_sys_writable = spec.mounts().iter().flatten().any(|m| {
        m.destination() == Path::new("/proc/sys")
            && !m.options().iter().flatten().any(|o| o == "ro")
    });
    if !proc_sys_writable && !ro.iter().any(|p| p == "/proc/sys") && Path::new("/proc/sys").exists()
    {
        ro.push("/proc/sys".into());
    }
    let in_cgroup_mount = |p: &str| deferred.iter().any(|d| Path::new(p).starts_with(&d.dest));
    // the first masked directory's empty tmpfs, which the others are bound to
    let mut empty_dir: Option<OwnedFd> = None;
    let root = sys::openat2(libc::AT_FDCWD, Path::new("/"), libc::O_PATH, 0, 0).ctx(|| "open /")?;
    for late in [false, true] {
        if late && !deferred.is_empty() {
            before_cgroup()?;
            for d in &deferred {
                d.mount(spec, root.as_raw_fd(), layout)?;
            }
        }
        for p in masked.iter().filter(|p| in_cgroup_mount(p) == late) {
            mask(&root, Path::new(p), &null, &mut empty_dir)?;
        }
        for p in ro.iter().filter(|p| in_cgroup_mount(p) == late) {
            readonly(&root, Path::new(p))?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let a = MountAttr {
            attr_set: sys::MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        sys::mount_setattr_path(Path::new("/"), false, &a).ctx(|| "make root read-only")?;
    }
    Ok(())
}

/// `p` (container view, after `pivot_root`) opened inside the root without following magic
/// links; None when it does not exist. A symlink the image placed on the way resolves inside the
/// root, as the image's own programs see it.
fn open_in_root(root: &OwnedFd, p: &Path) -> Result<Option<OwnedFd>> {
    match sys::openat2(
        root.as_raw_fd(),
        p,
        libc::O_PATH,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("resolve {} in the container", p.display())),
    }
}

/// Mask `p`: the verified null device over a file, an empty read-only tmpfs over a directory.
/// Directories share one tmpfs (the first one masked, in `empty_dir`): a clone keeps its
/// read-only, nosuid, nodev, noexec flags and costs no superblock to build now and tear down at
/// exit. Every step acts on descriptors: `open_tree` clones, `move_mount` attaches.
fn mask(root: &OwnedFd, p: &Path, null: &OwnedFd, empty_dir: &mut Option<OwnedFd>) -> Result<()> {
    let Some(target) = open_in_root(root, p)? else {
        return Ok(());
    };
    let what = || format!("mask {}", p.display());
    let st = nix::sys::stat::fstat(&target).ctx(what)?;
    let cover = if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        sys::open_tree_fd(null.as_raw_fd(), sys::OPEN_TREE_CLONE).ctx(what)?
    } else if let Some(first) = empty_dir.as_ref() {
        sys::open_tree_fd(first.as_raw_fd(), sys::OPEN_TREE_CLONE).ctx(what)?
    } else {
        let fs = sys::fsopen("tmpfs").ctx(what)?;
        sys::fsconfig_string(&fs, "mode", "0555").ctx(what)?;
        sys::fsconfig_create(&fs).ctx(what)?;
        sys::fsmount(&fs, READ_ONLY_LOCKED.attr_set).ctx(what)?
    };
    sys::move_mount_fd(cover.as_raw_fd(), target.as_raw_fd()).ctx(what)?;
    if empty_dir.is_none() && st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        *empty_dir = Some(cover);
    }
    Ok(())
}

/// Make `p` read-only: a recursive clone of what is mounted there, locked read-only (and nosuid,
/// nodev, noexec), attached over it.
fn readonly(root: &OwnedFd, p: &Path) -> Result<()> {
    let Some(target) = open_in_root(root, p)? else {
        return Ok(());
    };
    let what = || format!("make {} read-only", p.display());
    let tree = sys::open_tree_fd(target.as_raw_fd(), sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE)
        .ctx(what)?;
    sys::mount_setattr_fd(tree.as_raw_fd(), true, &READ_ONLY_LOCKED).ctx(what)?;
    sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd()).ctx(what)
}

/// The container's cgroup filesystem: on a pure v2 host one cgroup2 mount; on v1 and hybrid hosts
/// a tmpfs with one mount per hierarchy (plus `unified`), as runc lays it out. In the cgroup
/// namespace each shows the container's own cgroup as its root.
fn mount_cgroup(
    rootfd: RawFd,
    dest: &Path,
    flags: MsFlags,
    fstype: &str,
    known: Option<&crate::cgroups::Layout>,
) -> Result<()> {
    let layout = match known {
        Some(l) => l.reread_own()?,
        None => crate::cgroups::Layout::detect()?,
    };
    let ro = if flags.contains(MsFlags::MS_RDONLY) {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    let base = flags
        & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME);
    let target = resolve_in_root(rootfd, dest, false)?;
    if layout.v1.is_empty() || fstype == "cgroup2" {
        return mount_on_fd("cgroup2", &target, "cgroup2", flags, &[]).ctx(|| "mount cgroup2");
    }
    mount_on_fd("tmpfs", &target, "tmpfs", base, &["mode=755,size=64k"])
        .ctx(|| "mount tmpfs for cgroup hierarchies")?;
    let dir = resolve_in_root(rootfd, dest, false)?;
    // Without a cgroup namespace, a fresh mount would show the host's whole hierarchy: bind the
    // container's own cgroup instead (as runc does). In a cgroup namespace, /proc/self/cgroup
    // says "/" and a fresh mount shows exactly the container's cgroup.
    let bind_own = |d: &OwnedFd, mountpoint: &Path, own: &Path, what: &str| -> Result<()> {
        let host = mountpoint.join(own.strip_prefix("/").unwrap_or(own));
        bind_on_fd(&host, d, false)
            .ctx(|| format!("bind own cgroup {what} ({})", host.display()))?;
        let a = MountAttr {
            attr_set: attr_of(base | ro).attr_set,
            ..Default::default()
        };
        sys::mount_setattr_fd(
            resolve_in_root(rootfd, &dest.join(what), false)?.as_raw_fd(),
            false,
            &a,
        )
        .ctx(|| format!("flags on cgroup {what}"))
    };
    for h in &layout.v1 {
        let name = h.mount_name();
        let d = mkdir_at(&dir, &name)?;
        if h.path_of_self != Path::new("/") {
            bind_own(&d, &h.mountpoint, &h.path_of_self, &name)?;
        } else if let Err(e) = mount_on_fd("cgroup", &d, "cgroup", base | ro, &[&h.options]) {
            // A hierarchy the namespace may not mount (e.g. name=systemd): bind the host's own dir.
            bind_own(&d, &h.mountpoint, &h.path_of_self, &name).map_err(|e2| {
                Error::Other(format!(
                    "cgroup {name}: mount ({e}) and bind ({e2}) both failed"
                ))
            })?;
        }
    }
    if let Some(u) = &layout.unified {
        let d = mkdir_at(&dir, "unified")?;
        if layout.unified_self != Path::new("/") {
            bind_own(&d, u, &layout.unified_self, "unified")?;
        } else {
            mount_on_fd("cgroup2", &d, "cgroup2", base | ro, &[])
                .ctx(|| "mount cgroup2 at unified")?;
        }
    }
    for (l, t) in layout.symlinks() {
        let _ = symlink_at(&dir, &t, &l);
    }
    if !ro.is_empty() {
        let a = MountAttr {
            attr_set: sys::MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        sys::mount_setattr_fd(dir.as_raw_fd(), false, &a).ctx(|| "read-only cgroup tmpfs")?;
    }
    Ok(())
}

fn cname(name: &str) -> Result<CString> {
    CString::new(name).map_err(|_| Error::Other(format!("NUL in {name:?}")))
}

/// mkdir `name` in `dir` (if missing) and return it opened O_PATH.
fn mkdir_at(dir: &OwnedFd, name: &str) -> Result<OwnedFd> {
    let c = cname(name)?;
    // SAFETY: dir is a valid directory descriptor and c a valid C string.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e).ctx(|| format!("mkdir {name}"));
        }
    }
    sys::openat2(
        dir.as_raw_fd(),
        Path::new(name),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_IN_ROOT,
    )
    .ctx(|| format!("open {name}"))
}

/// symlink `name` -> `target` in `dir`, replacing what is there when `replace`.
fn symlink_at(dir: &OwnedFd, target: &str, name: &str) -> Result<()> {
    let (t, n) = (cname(target)?, cname(name)?);
    // SAFETY: dir is a valid directory descriptor; both strings are valid C strings.
    if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error()).ctx(|| format!("symlink {name} -> {target}"));
    }
    Ok(())
}

fn create_devices(
    spec: &Spec,
    rootfd: RawFd,
    prepared: &mut Prepared,
    in_userns: bool,
) -> Result<()> {
    let has_dev_mount = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == Path::new("/dev"));
    if in_userns {
        for (path, tree) in prepared.devices.drain(..) {
            let t = place_node(rootfd, &path, Node::MountPoint)?;
            sys::move_mount_fd(tree.as_raw_fd(), t.as_raw_fd())
                .ctx(|| format!("bind device {}", path.display()))?;
        }
    } else {
        let extra = spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default();
        let defaults = DEFAULT_DEVICES
            .iter()
            .filter(|(p, _, _)| !extra.iter().any(|d| d.path() == Path::new(p)))
            .map(|(p, maj, min)| {
                let mut d = LinuxDevice::default();
                d.set_path(PathBuf::from(p));
                d.set_typ(LinuxDeviceType::C);
                d.set_major(*maj as i64);
                d.set_minor(*min as i64);
                d.set_file_mode(Some(0o666));
                d.set_uid(Some(0));
                d.set_gid(Some(0));
                d
            });
        for d in defaults.chain(extra.iter().cloned()) {
            mknod_in_root(rootfd, &d)?;
        }
    }
    if has_dev_mount {
        let dev = resolve_in_root(rootfd, Path::new("/dev"), false)?;
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            match symlink_at(&dev, target, link) {
                Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EEXIST) => {}
                r => r?,
            }
        }
        if spec
            .mounts()
            .iter()
            .flatten()
            .any(|m| m.destination() == Path::new("/dev/pts"))
        {
            let n = cname("ptmx")?;
            // SAFETY: dev is a valid directory descriptor and n a valid C string.
            unsafe { libc::unlinkat(dev.as_raw_fd(), n.as_ptr(), 0) };
            symlink_at(&dev, "pts/ptmx", "ptmx")?;
        }
    }
    Ok(())
}

/// What belongs at a device path of the container.
#[derive(Debug, Clone, Copy)]
enum Node {
    /// A node made with `mknod`: its type (`S_IFCHR`, ...) and number.
    Device {
        kind: libc::mode_t,
        rdev: libc::dev_t,
    },
    /// Something to bind a host device onto (an empty file is made where nothing is).
    MountPoint,
}

impl Node {
    /// Whether what the image already has at the path can stay.
    fn fits(self, st: &libc::stat) -> bool {
        let kind = st.st_mode & libc::S_IFMT;
        match self {
            // a single link: chmod/chown of it reaches no other name
            Node::Device { kind: k, rdev } => {
                kind == k && (k == libc::S_IFIFO || st.st_rdev == rdev) && st.st_nlink == 1
            }
            Node::MountPoint => kind == libc::S_IFREG || kind == libc::S_IFCHR,
        }
    }

    fn create(self, parent: &OwnedFd, name: &std::ffi::OsStr) -> nix::Result<()> {
        use nix::sys::stat::{Mode, SFlag};
        match self {
            Node::Device { kind, rdev } => nix::sys::stat::mknodat(
                parent,
                name,
                SFlag::from_bits_truncate(kind),
                Mode::from_bits_truncate(0o600),
                rdev,
            ),
            Node::MountPoint => nix::fcntl::openat(
                parent,
                name,
                nix::fcntl::OFlag::O_CREAT
                    | nix::fcntl::OFlag::O_EXCL
                    | nix::fcntl::OFlag::O_WRONLY
                    | nix::fcntl::OFlag::O_NOFOLLOW
                    | nix::fcntl::OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop),
        }
    }
}

/// Put `node` at `path` inside the rootfs and return it opened `O_PATH`, never through a
/// symlink. What the image has there is judged by `fstatat(AT_SYMLINK_NOFOLLOW)`: a fitting
/// node stays; a symlink, file, or node of another kind is unlinked and made anew (an image's
/// `/dev/null -> /etc/shadow` is replaced, its target never touched); a directory is refused.
fn place_node(rootfd: RawFd, path: &Path, node: Node) -> Result<OwnedFd> {
    use nix::fcntl::AtFlags;
    let (Some(parent_path), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Other(format!(
            "device path {}: no file name",
            path.display()
        )));
    };
    let parent = resolve_in_root(rootfd, parent_path, false)?;
    let mut replaced = false;
    loop {
        match node.create(&parent, name) {
            Ok(()) => break,
            Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("mknod {}", path.display())),
        }
        let st = nix::sys::stat::fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .ctx(|| format!("stat {} in the rootfs", path.display()))?;
        if node.fits(&st) {
            break;
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(Error::Other(format!(
                "{}: the rootfs has a directory where a device node goes",
                path.display()
            )));
        }
        if replaced {
            return Err(Error::Other(format!(
                "{}: replaced in the rootfs while it was being made",
                path.display()
            )));
        }
        nix::unistd::unlinkat(&parent, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .ctx(|| format!("replace {} (not a device in the rootfs)", path.display()))?;
        replaced = true;
    }
    let fd = sys::openat2(
        parent.as_raw_fd(),
        Path::new(name),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
    )
    .ctx(|| format!("open {} in the rootfs", path.display()))?;
    let st = nix::sys::stat::fstat(&fd).ctx(|| format!("stat {}", path.display()))?;
    if !node.fits(&st) {
        return Err(Error::Other(format!(
            "{}: replaced in the rootfs while it was being made",
            path.display()
        )));
    }
    Ok(fd)
}

/// `/dev/console` of a container with a terminal: the pty's slave bound over it (a file made
/// there, or the image's symlink or node replaced first), all through descriptors.
pub fn bind_console(root: &OwnedFd, slave: &OwnedFd) -> Result<()> {
    let target = place_node(
        root.as_raw_fd(),
        Path::new("/dev/console"),
        Node::MountPoint,
    )?;
    let tree = sys::open_tree_fd(slave.as_raw_fd(), sys::OPEN_TREE_CLONE)
        .ctx(|| "clone the pty for /dev/console")?;
    sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd()).ctx(|| "bind /dev/console")
}

/// `mknod` a device of the spec inside the rootfs, then set its mode and owner through its
/// descriptor.
fn mknod_in_root(rootfd: RawFd, d: &LinuxDevice) -> Result<()> {
    let path = d.path();
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::Other(format!(
                "linux.devices: {}: type 'a' is not a device node",
                path.display()
            )))
        }
    };
    let rdev = libc::makedev(d.major() as u32, d.minor() as u32);
    let fd = place_node(rootfd, path, Node::Device { kind, rdev })?;
    sys::fchmod_fd(&fd, d.file_mode().unwrap_or(0o666))
        .ctx(|| format!("chmod {}", path.display()))?;
    sys::fchown_fd(&fd, d.uid().unwrap_or(0), d.gid().unwrap_or(0))
        .ctx(|| format!("chown {}", path.display()))
}

/// Would resolving `dest` under `root` the way the host does (following symlinks found in the
/// rootfs) climb above `root`? Such a target is refused up front, before anything is created;
/// the mount itself is still resolved with `RESOLVE_IN_ROOT`, which cannot escape.
pub fn escapes(root: &Path, dest: &Path) -> Option<String> {
    use std::collections::VecDeque;
    let mut stack: Vec<std::ffi::OsString> = vec![];
    let owned = |c: Component| -> Option<std::ffi::OsString> {
        match c {
            Component::RootDir | Component::Prefix(_) => Some("/".into()),
            Component::CurDir => None,
            Component::ParentDir => Some("..".into()),
            Component::Normal(n) => Some(n.to_os_string()),
        }
    };
    let mut todo: VecDeque<std::ffi::OsString> = dest.components().filter_map(owned).collect();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.to_str() {
            Some("/") => stack.clear(),
            Some("..") => {
                if stack.pop().is_none() {
                    return Some(format!("{} climbs above the rootfs", dest.display()));
                }
            }
            _ => {
                let n = c;
                let here: PathBuf = stack.iter().collect::<PathBuf>().join(&n);
                match fs::read_link(root.join(&here)) {
                    Ok(target) => {
                        links += 1;
                        if links > 40 {
                            return Some(format!(
                                "{}: too many levels of symlinks",
                                dest.display()
                            ));
                        }
                        if target.components().any(|c| c == Component::ParentDir) {
                            // Replay ".." relative to the link's directory; climbing above root escapes.
                            let mut depth = stack.len() as i64;
                            if target.is_absolute() {
                                depth = 0;
                            }
                            for tc in target.components() {
                                match tc {
                                    Component::ParentDir => depth -= 1,
                                    Component::Normal(_) => depth += 1,
                                    _ => {}
                                }
                                if depth < 0 {
                                    return Some(format!(
                                        "{} passes the symlink {} -> {}, which points outside the rootfs",
                                        dest.display(),
                                        Path::new("/").join(&here).display(),
                                        target.display()
                                    ));
                                }
                            }
                        }
                        for tc in target.components().rev().filter_map(owned) {
                            todo.push_front(tc);
                        }
                    }
                    Err(_) => stack.push(n),
                }
            }
        }
    }
    None
}

/// True if `path` is a character or block device (used by the probe and tests).
pub fn is_device(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.file_type().is_char_device() || m.file_type().is_block_device())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> OwnedFd {
        fs::File::open("/dev/null").unwrap().into()
    }

    /// The trees cross to the child described, not by position: every kind comes back where it
    /// was, the same descriptor with it, and a count that does not match is refused.
    #[test]
    fn prepared_trees_cross_the_wire_by_kind() {
        let p = Prepared {
            target: Some(fd()),
            rootfs: Some(fd()),
            binds: vec![(2, fd()), (5, fd())],
            devices: vec![
                (PathBuf::from("/dev/null"), fd()),
                (PathBuf::from("/dev/x y"), fd()),
            ],
            ..Default::default()
        };
        let (trees, raw) = p.to_wire();
        assert_eq!(
            trees,
            vec![
                Tree::Target,
                Tree::Rootfs,
                Tree::Bind(2),
                Tree::Bind(5),
                Tree::Device("/dev/null".into()),
                Tree::Device("/dev/x y".into()),
            ]
        );
        let json = serde_json::to_string(&trees).unwrap();
        let back: Vec<Tree> = serde_json::from_str(&json).unwrap();
        // duplicates stand in for the received descriptors; their numbers say which is which
        let dups: Vec<OwnedFd> = raw
            .iter()
            .map(|&r| {
                // SAFETY: r is open (owned by p) for the duration of this call.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(r) }
                    .try_clone_to_owned()
                    .unwrap()
            })
            .collect();
        let nums: Vec<RawFd> = dups.iter().map(|f| f.as_raw_fd()).collect();
        let q = Prepared::from_wire(back, dups).unwrap();
        assert_eq!(q.target.as_ref().unwrap().as_raw_fd(), nums[0]);
        assert_eq!(q.rootfs.as_ref().unwrap().as_raw_fd(), nums[1]);
        let binds: Vec<(usize, RawFd)> = q.binds.iter().map(|(i, f)| (*i, f.as_raw_fd())).collect();
        assert_eq!(binds, vec![(2, nums[2]), (5, nums[3])]);
        let devs: Vec<(PathBuf, RawFd)> = q
            .devices
            .iter()
            .map(|(p, f)| (p.clone(), f.as_raw_fd()))
            .collect();
        assert_eq!(
            devs,
            vec![("/dev/null".into(), nums[4]), ("/dev/x y".into(), nums[5])]
        );
        let Err(e) = Prepared::from_wire(trees, vec![fd()]) else {
            panic!("a short count was accepted")
        };
        assert!(
            e.to_string()
                .contains("6 mount trees announced, 1 received"),
            "{e}"
        );
    }
}
