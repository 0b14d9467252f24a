//! Seed §1 (mount namespace) and §3 (setuid defanged by nosuid mounts): the container's filesystem.
//!
//! Two halves (`prepare.rs` the first). The runtime, still in the host's mount namespace, opens every bind source and the
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
//!
//! **The rule: inside the rootfs, by descriptor only.** The image and the config are hostile
//! input. No path inside the rootfs (or a bind source the container could have written) is
//! opened, stat'ed, chmod'ed, chown'ed or mounted on by name, before or after `pivot_root`:
//! - paths are resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` (or, for what
//!   the runtime just made, `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` and `O_NOFOLLOW`), and the
//!   operation acts on the descriptor: `move_mount`, `mount_setattr`, `fchmodat2`/`fchownat`
//!   with `AT_EMPTY_PATH`, `mknodat`/`unlinkat`/`fstatat(AT_SYMLINK_NOFOLLOW)` relative to a
//!   directory descriptor resolved that way;
//! - filesystems are made with `fsopen`/`fsconfig`/`fsmount` (never `mount(2)` on a
//!   `/proc/self/fd/N` path, which would trust whatever is mounted at `/proc`);
//! - what masks and consoles are made of is verified through its descriptor first: the null
//!   device is char 1:3 ([`devices`]), the pty master is on devpts and its slave comes from
//!   `TIOCGPTPEER`;
//! - procfs writes go through [`crate::procfs`].
//!
//! `tests/hostile.rs` keeps a test per kind of operation.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Mount;

use crate::error::{Context, Error, Result};
use crate::sys::{self, MountAttr};

mod cgroupfs;
mod devices;
mod masks;
mod options;
pub mod overlay;
mod plan;
mod prepare;

use cgroupfs::mount_cgroup;
pub use devices::{bind_console, DEFAULT_DEVICES};
use devices::{create_devices, verified_null};
pub use masks::finish;
use options::attr_of;
pub use options::{mount_opts, parse_option, propagation_flag, MountOpts, Opt};
pub use plan::{Entry, Plan};
pub use prepare::{prepare, Prepared, Tree};

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
    plan: &Plan,
    rootfs: &Path,
    prepared: &mut Prepared,
    ns: InNamespaces,
    before_cgroup: &mut dyn FnMut() -> Result<()>,
    before_pivot: &mut dyn FnMut() -> Result<()>,
) -> Result<Built> {
    let prop = plan.propagation;
    // pivot_root refuses shared parents: a shared (or unbindable) rootfsPropagation is applied
    // after the pivot, and until then the tree is a slave of the host's (as runc does).
    let after_pivot = prop.intersects(MsFlags::MS_SHARED | MsFlags::MS_UNBINDABLE);
    let before = if after_pivot { MsFlags::MS_SLAVE } else { prop };
    // Sharing the runtime's mount namespace (the spec has no "mount" entry), the host's
    // propagation is not ours to change: only the container's own mounts are touched.
    if !ns.host_mount {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            before | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "make / private to the container")?;
    }
    // 1. the root itself; 2. every mount, in order
    let root = attach_root(plan, rootfs, prepared)?;
    let rootfd = root.as_raw_fd();
    let mut deferred_cgroup = mount_all(plan, rootfd, prepared, before_cgroup)?;

    // 3. devices; the cgroup mounts held back come after the masks (see `finish`), unless
    // createContainer hooks are to see them before pivot_root, or there is no cgroup namespace
    // (the container's own cgroups are then bound from the host's paths, gone after the pivot)
    create_devices(plan, rootfd, prepared, ns.user)?;
    let null = verified_null(rootfd)?;
    if !ns.own_cgroup || ns.create_container_hooks {
        for d in std::mem::take(&mut deferred_cgroup) {
            before_cgroup()?;
            d.mount(plan, rootfd, prepared.cgroups.as_ref())?;
        }
    }

    // 4. createContainer hooks (container namespaces, host paths), then pivot_root
    before_pivot()?;
    nix::unistd::fchdir(&root).ctx(|| "chdir rootfs")?;
    if ns.host_mount {
        // pivot_root would move the root of every process in the host's namespace: chroot.
        nix::unistd::chroot(".").ctx(|| format!("chroot {}", rootfs.display()))?;
        nix::unistd::chdir("/").ctx(|| "chdir /")?;
    } else {
        pivot(rootfs, after_pivot.then_some(prop))?;
    }
    Ok(Built {
        deferred: deferred_cgroup,
        null,
    })
}

/// `pivot_root` into the current directory, the old root detached; `prop` applied to the new
/// root afterwards (a shared or unbindable rootfsPropagation).
fn pivot(rootfs: &Path, prop: Option<MsFlags>) -> Result<()> {
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
    if let Some(prop) = prop {
        mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
            .ctx(|| "linux.rootfsPropagation on the new root")?;
    }
    Ok(())
}

/// The root itself (the prepared tree, or a fresh tmpfs for `sandbox`), attached at `rootfs`
/// through descriptors only: the bundle's directory may not be searchable by the container's
/// root (a 0700 parent), and need not be. Returned as the root's mount, private.
fn attach_root(plan: &Plan, rootfs: &Path, prepared: &mut Prepared) -> Result<OwnedFd> {
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
    let root: OwnedFd = if plan.tmpfs_root {
        let fsfd = sys::fsopen("tmpfs").ctx(|| "fsopen tmpfs")?;
        sys::fsconfig_string(&fsfd, "mode", "0755").ctx(|| "tmpfs root mode")?;
        sys::fsconfig_string(&fsfd, "size", "1m").ctx(|| "tmpfs root size")?;
        sys::fsconfig_create(&fsfd).ctx(|| "create tmpfs root")?;
        let m = sys::fsmount(&fsfd, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)
            .ctx(|| "fsmount tmpfs root")?;
        sys::move_mount_fd(m.as_raw_fd(), target.as_raw_fd())
            .ctx(|| format!("attach tmpfs root at {}", rootfs.display()))?;
        // the host's merged-/usr symlinks (`/bin -> usr/bin`), made in the fresh root
        for (name, to) in &plan.root_symlinks {
            nix::unistd::symlinkat(to.as_str(), &m, name.as_str())
                .ctx(|| format!("symlink /{name} -> {to} in the tmpfs root"))?;
        }
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
    // The parent of the new root must not be shared for pivot_root: make the root a private mount.
    set_propagation(&root, MsFlags::MS_PRIVATE).ctx(|| "make rootfs private")?;
    Ok(root)
}

/// Every mount of the spec, in order, under the root `rootfd`: binds from their prepared
/// trees, the rest made. Cgroup mounts are held back (returned) unless a later mount goes
/// inside one.
fn mount_all(
    plan: &Plan,
    rootfd: RawFd,
    prepared: &mut Prepared,
    before_cgroup: &mut dyn FnMut() -> Result<()>,
) -> Result<Vec<DeferredCgroup>> {
    let mut binds = std::mem::take(&mut prepared.binds).into_iter().peekable();
    let mut deferred_cgroup: Vec<DeferredCgroup> = vec![];
    let mounts = &plan.mounts;
    for (i, e) in mounts.iter().enumerate() {
        let (m, o) = (&e.mount, &e.opts);
        let dest = m.destination();
        if o.bind.is_some() {
            let (_, tree) = binds
                .next()
                .filter(|(bi, _)| *bi == i)
                .ok_or_else(|| Error::Other(format!("mounts[{i}]: bind tree missing")))?;
            attach_bind(rootfd, i, dest, &tree)?;
        } else {
            let fstype = m.typ().clone().unwrap_or_else(|| "none".into());
            if fstype == "cgroup" || fstype == "cgroup2" {
                // It needs the process in its cgroup (the runtime is moving it meanwhile,
                // which can wait for an RCU grace period): mount it last, unless a later mount
                // goes inside it.
                let nested_later = mounts[i + 1..]
                    .iter()
                    .any(|n| n.dest().starts_with(dest) && n.dest() != dest);
                if !nested_later {
                    deferred_cgroup.push(DeferredCgroup {
                        index: i,
                        dest: dest.clone(),
                        flags: o.flags,
                        fstype,
                    });
                    continue; // its propagation too
                }
                before_cgroup()?;
                mount_cgroup(rootfd, dest, o.flags, &fstype, prepared.cgroups.as_ref())?;
            } else {
                mount_fs(rootfd, i, m, o, &fstype)?;
            }
        }
        for p in &o.propagation {
            let t = resolve_in_root(rootfd, dest, false)?;
            set_propagation(&t, *p).ctx(|| format!("mounts[{i}]: propagation"))?;
        }
    }
    Ok(deferred_cgroup)
}

/// `mounts[i]`, a bind: its prepared tree attached at `dest` (a file or a directory made
/// there, inside the root).
fn attach_bind(rootfd: RawFd, i: usize, dest: &Path, tree: &OwnedFd) -> Result<()> {
    let src_is_file = nix::sys::stat::fstat(tree)
        .map(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR)
        .unwrap_or(false);
    let t = resolve_in_root(rootfd, dest, src_is_file)?;
    sys::move_mount_fd(tree.as_raw_fd(), t.as_raw_fd())
        .ctx(|| format!("mounts[{i}]: attach bind at {}", dest.display()))?;
    renew(rootfd, dest, src_is_file)
}

/// `mounts[i]`, a filesystem of type `fstype` made at its destination inside the root.
fn mount_fs(rootfd: RawFd, i: usize, m: &Mount, o: &MountOpts, fstype: &str) -> Result<()> {
    let dest = m.destination();
    let t = resolve_in_root(rootfd, dest, false)?;
    let data: Vec<&str> = o.data.iter().map(String::as_str).collect();
    let src = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| fstype.to_string());
    if fstype == "sysfs" {
        if let Err(e) = mount_on_fd(&src, &t, "sysfs", o.flags, &data) {
            // Without its own network namespace a user-namespaced container may not mount
            // sysfs: bind the host's, read-only (as runc does).
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err(e).ctx(|| format!("mounts[{i}]: mount sysfs at {}", dest.display()));
            }
            bind_on_fd(Path::new("/sys"), &t, true).ctx(|| "bind /sys")?;
            let t = resolve_in_root(rootfd, dest, false)?;
            sys::mount_setattr_fd(t.as_raw_fd(), true, &READ_ONLY_LOCKED)
                .ctx(|| "read-only /sys")?;
        }
        return Ok(());
    }
    mount_on_fd(&src, &t, fstype, o.flags, &data).ctx(|| {
        format!(
            "mounts[{i}]: mount {fstype} at {} ({})",
            dest.display(),
            data.join(",")
        )
    })
}

/// What [`setup`] leaves to [`finish`].
pub struct Built {
    deferred: Vec<DeferredCgroup>,
    /// The container's `/dev/null`, verified to be the null device (1:3) through its descriptor:
    /// what masked files are covered with (never whatever the image calls `/dev/null`).
    null: OwnedFd,
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
    /// createContainer hooks run before pivot_root and see the cgroup mounts.
    pub create_container_hooks: bool,
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
        plan: &Plan,
        rootfd: RawFd,
        layout: Option<&crate::cgroups::Layout>,
    ) -> Result<()> {
        mount_cgroup(rootfd, &self.dest, self.flags, &self.fstype, layout)?;
        let i = self.index;
        for p in &plan.mounts[i].opts.propagation {
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
