//! The container's cgroup filesystem: one cgroup2 mount, or on v1 and hybrid hosts a tmpfs with a
//! mount (or a bind of the container's own directory) per hierarchy, as runc lays it out.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::mount::MsFlags;

use super::{attr_of, bind_on_fd, mkdir_at, mount_on_fd, resolve_in_root, symlink_at};
use crate::error::{Context, Error, Result};
use crate::sys::{self, MountAttr};

/// The container's cgroup filesystem: on a pure v2 host one cgroup2 mount; on v1 and hybrid hosts
/// a tmpfs with one mount per hierarchy (plus `unified`), as runc lays it out. In the cgroup
/// namespace each shows the container's own cgroup as its root.
pub(super) fn mount_cgroup(
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
    // (`own` is named from the hierarchy's root; a mount may show only a subtree: `root`)
    let bind_own = |d: &OwnedFd, (mountpoint, root): (&Path, &Path), own: &Path, what: &str| {
        let host = crate::cgroups::Layout::under_mount(mountpoint, root, own);
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
            bind_own(&d, (&h.mountpoint, &h.root), &h.path_of_self, &name)?;
        } else if let Err(e) = mount_on_fd("cgroup", &d, "cgroup", base | ro, &[&h.options]) {
            // A hierarchy the namespace may not mount (e.g. name=systemd): bind the host's own dir.
            bind_own(&d, (&h.mountpoint, &h.root), &h.path_of_self, &name).map_err(|e2| {
                Error::Other(format!(
                    "cgroup {name}: mount ({e}) and bind ({e2}) both failed"
                ))
            })?;
        }
    }
    if let Some(u) = &layout.unified {
        let d = mkdir_at(&dir, "unified")?;
        if layout.unified_self != Path::new("/") {
            bind_own(
                &d,
                (u, &layout.unified_root),
                &layout.unified_self,
                "unified",
            )?;
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
