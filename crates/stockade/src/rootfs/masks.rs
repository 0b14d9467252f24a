//! After `pivot_root`: masked and read-only paths (through descriptors: clones of the verified
//! null device or of one empty tmpfs, attached with `move_mount`), `/proc/sys` read-only, the
//! cgroup mounts held back, and the read-only root.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use super::{Built, Plan, READ_ONLY_LOCKED};
use crate::error::{Context, Result};
use crate::sys::{self, MountAttr};

/// After pivot_root: sysctls are written by the caller before this; masked and read-only paths,
/// `/proc/sys` read-only unless the spec mounts it writable itself, and the read-only root. The
/// cgroup mounts held back come between: `before_cgroup` (which waits for the runtime to have
/// made the cgroup, then joins it) is called as late as the masks allow, and masks or read-only
/// paths inside a cgroup mount are applied after it.
pub fn finish(
    plan: &Plan,
    built: Built,
    layout: Option<&crate::cgroups::Layout>,
    before_cgroup: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let Built { deferred, null } = built;
    let masked = &plan.masked_paths;
    let mut ro = plan.readonly_paths.clone();
    let proc_sys_writable = plan.mounts.iter().any(|e| {
        e.dest() == Path::new("/proc/sys") && !e.mount.options().iter().flatten().any(|o| o == "ro")
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
                d.mount(plan, root.as_raw_fd(), layout)?;
            }
        }
        for p in masked.iter().filter(|p| in_cgroup_mount(p) == late) {
            mask(&root, Path::new(p), &null, &mut empty_dir)?;
        }
        for p in ro.iter().filter(|p| in_cgroup_mount(p) == late) {
            readonly(&root, Path::new(p))?;
        }
    }
    if plan.readonly {
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
