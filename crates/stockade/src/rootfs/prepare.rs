//! The runtime's half, still in the host's mount namespace: the rootfs and every bind source
//! opened as detached trees (idmapped for a container with its own user namespace, an overlay
//! rebuilt from idmapped layers), handed to the child as descriptors.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{attr_of, overlay, Plan, DEFAULT_DEVICES};
use crate::error::{Context, Error, Result};
use crate::sys::{self, MountAttr};
use nix::mount::MsFlags;

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

/// Decide whether a tree owned by `owner_uid` on disk should be idmapped into the container:
/// only when that owner is not already one of the container's host ids (an image already
/// shifted into the range must not be shifted twice).
fn wants_idmap(owner_uid: u32, uid_maps: &[oci_spec::runtime::LinuxIdMapping]) -> bool {
    !uid_maps
        .iter()
        .any(|m| owner_uid >= m.host_id() && owner_uid - m.host_id() < m.size())
        && !uid_maps.iter().all(|m| m.container_id() == m.host_id())
}

/// The rootfs as a detached tree: idmapped into the container's user namespace when its owner
/// is outside the range (an overlay rebuilt from idmapped layers, as overlayfs takes no idmap).
fn rootfs_tree(
    plan: &Plan,
    rootfs: &Path,
    userns: Option<&fs::File>,
    warnings: &mut Vec<String>,
) -> Result<OwnedFd> {
    let (uid_maps, gid_maps) = (&plan.uid_maps[..], &plan.gid_maps[..]);
    let mut tree = sys::open_tree(rootfs, sys::OPEN_TREE_CLONE | sys::AT_RECURSIVE)
        .ctx(|| format!("open_tree rootfs {}", rootfs.display()))?;
    if let Some(ns) = userns {
        let owner = fs::metadata(rootfs)
            .ctx(|| format!("stat {}", rootfs.display()))?
            .uid();
        if wants_idmap(owner, uid_maps) {
            // overlayfs takes no idmapping itself (EINVAL): it is rebuilt from idmapped
            // layers instead
            let layers = overlay::layers_of(rootfs)
                .ctx(|| format!("read the overlay at {}", rootfs.display()))?;
            let res = match layers {
                Some(layers) => {
                    let root = (
                        crate::namespaces::to_host(uid_maps, 0).unwrap_or(0),
                        crate::namespaces::to_host(gid_maps, 0).unwrap_or(0),
                    );
                    overlay::rebuild(&layers, ns, root).map(|t| tree = t)
                }
                None => idmap(&tree, ns, true),
            };
            if let (Err(e), true) = (&res, plan.idmap_required) {
                return Err(Error::Other(format!(
                    "rootfs {}: the user namespace the policy added needs an idmapped rootfs, and {e} (run with --policy none, or a policy with userNamespace: off)",
                    rootfs.display()
                )));
            }
            if let Err(e) = res {
                warnings.push(format!(
                    "rootfs {}: the filesystem refused an idmapped mount ({e}); files owned by host ids outside the \
                     container's range will look owned by nobody inside. Chown the rootfs into the mapped range or \
                     run without a user namespace.",
                    rootfs.display()
                ));
            }
        }
    }
    Ok(tree)
}

/// Runtime side: open the rootfs and every bind source as detached trees. `userns` is the
/// container's user namespace (maps already written) when it has a new one and the runtime is
/// privileged enough to idmap.
pub fn prepare(
    plan: &Plan,
    rootfs: &Path,
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
    let (uid_maps, gid_maps) = (&plan.uid_maps[..], &plan.gid_maps[..]);
    if !plan.tmpfs_root {
        p.rootfs = Some(rootfs_tree(plan, rootfs, userns, &mut p.warnings)?);
    }
    for (i, e) in plan.mounts.iter().enumerate() {
        let (m, o) = (&e.mount, &e.opts);
        let (Some(recursive), Some(src)) = (o.bind, e.bind_source.as_deref()) else {
            continue;
        };
        let flags = sys::OPEN_TREE_CLONE | if recursive { sys::AT_RECURSIVE } else { 0 };
        let tree = sys::open_tree(src, flags)
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
        let own_maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
        if own_maps {
            // per-mount maps (containerd's for a pod's volumes): asked for, so never skipped
            let ns = mount_userns(m, i, userns, (uid_maps, gid_maps))?;
            crate::diag::mark("volume idmapped");
            idmap(&tree, &ns, recursive || o.idmap == Some(true))
                .ctx(|| format!("mounts[{i}] {}: idmapped mount", src.display()))?;
        } else if let Some(ns) = userns {
            let owner = fs::metadata(src).map(|md| md.uid()).unwrap_or(0);
            let writable = !o.flags.contains(MsFlags::MS_RDONLY) && !rro;
            if o.idmap.is_some() || (writable && wants_idmap(owner, uid_maps)) {
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
        for (i, d) in plan.devices.iter().enumerate() {
            let tree = sys::open_tree(d.path(), sys::OPEN_TREE_CLONE)
                .ctx(|| format!("linux.devices[{i}]: in a user namespace devices are bound from the host; open {}", d.path().display()))?;
            p.devices.push((d.path().clone(), tree));
        }
    }
    Ok(p)
}

/// The user namespace a mount with its own `uidMappings`/`gidMappings` is idmapped into: the
/// container's when the maps are its own (a pod's volumes), else a throwaway one with them.
fn mount_userns(
    m: &oci_spec::runtime::Mount,
    i: usize,
    container: Option<&fs::File>,
    (uids, gids): (
        &[oci_spec::runtime::LinuxIdMapping],
        &[oci_spec::runtime::LinuxIdMapping],
    ),
) -> Result<fs::File> {
    let (mu, mg) = (
        m.uid_mappings().clone().unwrap_or_default(),
        m.gid_mappings().clone().unwrap_or_default(),
    );
    if mu.is_empty() || mg.is_empty() {
        return Err(Error::Other(format!(
            "mounts[{i}]: uidMappings and gidMappings go together (one of them is missing)"
        )));
    }
    for (field, maps) in [("uidMappings", &mu), ("gidMappings", &mg)] {
        crate::namespaces::check_id_maps(maps)
            .map_err(|e| Error::Other(format!("mounts[{i}].{field}{e}")))?;
    }
    let key = |v: &[oci_spec::runtime::LinuxIdMapping]| {
        let mut k: Vec<_> = v
            .iter()
            .map(|m| (m.container_id(), m.host_id(), m.size()))
            .collect();
        k.sort();
        k
    };
    if let Some(ns) = container.filter(|_| key(&mu) == key(uids) && key(&mg) == key(gids)) {
        return ns.try_clone().ctx(|| "dup user namespace");
    }
    crate::namespaces::userns_with_maps(&mu, &mg).map_err(|e| {
        Error::Other(format!(
            "mounts[{i}]: a user namespace for its uidMappings/gidMappings: {e}"
        ))
    })
}

fn idmap(tree: &OwnedFd, userns: &fs::File, recursive: bool) -> io::Result<()> {
    let a = MountAttr {
        attr_set: sys::MOUNT_ATTR_IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        ..Default::default()
    };
    sys::mount_setattr_fd(tree.as_raw_fd(), recursive, &a)
}
