//! The container's filesystem, read once from its spec: the root, each mount with its options
//! parsed and its bind source resolved against the bundle, the devices, the masked and
//! read-only paths, and the id maps the trees are idmapped with. Both halves of the engine
//! (the runtime's [`super::prepare`], the child's [`super::setup`] and [`super::finish`]) read
//! this, never the spec.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxDevice, LinuxIdMapping, Mount, Spec};

use super::{mount_opts, propagation_flag, MountOpts};

/// One entry of `mounts`, in the config's order.
#[derive(Debug, Clone)]
pub struct Entry {
    pub mount: Mount,
    pub opts: MountOpts,
    /// A bind's source on the host: absolute, or the bundle's path joined.
    pub bind_source: Option<PathBuf>,
}

impl Entry {
    pub fn new(mount: Mount, bundle: &Path) -> Entry {
        let opts = mount_opts(&mount);
        let bind_source = opts.bind.map(|_| {
            let src = mount.source().clone().unwrap_or_default();
            if src.is_absolute() {
                src
            } else {
                bundle.join(src)
            }
        });
        Entry {
            mount,
            opts,
            bind_source,
        }
    }

    pub fn dest(&self) -> &Path {
        self.mount.destination()
    }
}

/// What the filesystem is built from.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `root.path`, resolved against the bundle (unused with a tmpfs root).
    pub path: PathBuf,
    /// `sandbox`'s fresh tmpfs root, made in the state directory.
    pub tmpfs_root: bool,
    /// With a tmpfs root: the top-level symlinks made in it.
    pub root_symlinks: Vec<(String, String)>,
    /// `root.readonly`.
    pub readonly: bool,
    /// `linux.rootfsPropagation` (rslave when not given).
    pub propagation: MsFlags,
    pub mounts: Vec<Entry>,
    /// `linux.devices`.
    pub devices: Vec<LinuxDevice>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    /// `linux.uidMappings`/`gidMappings`: what the trees are idmapped into.
    pub uid_maps: Vec<LinuxIdMapping>,
    pub gid_maps: Vec<LinuxIdMapping>,
    /// The user namespace is the policy's: a rootfs that refuses an idmap is an error, not a
    /// warning.
    pub idmap_required: bool,
}

impl Plan {
    /// `path`: `root.path` resolved (`crate::spec::rootfs_path`), empty for a tmpfs root.
    pub fn from_spec(spec: &Spec, bundle: &Path, path: PathBuf) -> Plan {
        let linux = spec.linux().as_ref();
        let tmpfs_root = crate::spec::tmpfs_root(spec);
        Plan {
            path,
            tmpfs_root,
            root_symlinks: crate::spec::root_symlinks(spec),
            readonly: (spec.root().as_ref()).is_some_and(|r| r.readonly() == Some(true)),
            propagation: linux
                .and_then(|l| l.rootfs_propagation().as_deref())
                .and_then(propagation_flag)
                .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            mounts: (spec.mounts().iter().flatten())
                .map(|m| Entry::new(m.clone(), bundle))
                .collect(),
            devices: linux.and_then(|l| l.devices().clone()).unwrap_or_default(),
            masked_paths: (linux.and_then(|l| l.masked_paths().clone())).unwrap_or_default(),
            readonly_paths: (linux.and_then(|l| l.readonly_paths().clone())).unwrap_or_default(),
            uid_maps: linux
                .and_then(|l| l.uid_mappings().clone())
                .unwrap_or_default(),
            gid_maps: linux
                .and_then(|l| l.gid_mappings().clone())
                .unwrap_or_default(),
            idmap_required: (spec.annotations().as_ref())
                .is_some_and(|a| a.contains_key(crate::spec::POLICY_ANNOTATION_ID_SLOT)),
        }
    }

    /// The directory the root is attached on: `path`, or for a tmpfs root the `rootfs`
    /// directory in the container's state directory.
    pub fn dir(&self, state_dir: &Path) -> PathBuf {
        if self.tmpfs_root {
            state_dir.join("rootfs")
        } else {
            self.path.clone()
        }
    }

    /// Some mount has `dest` as its destination.
    pub fn mounts_at(&self, dest: &str) -> bool {
        self.mounts.iter().any(|e| e.dest() == Path::new(dest))
    }
}
