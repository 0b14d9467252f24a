//! The runtime's guards for what a container leaves in the host: its cgroup (removed with
//! anything still in it) and, for a container sharing the host's mount namespace, its mounts
//! (detached) — each undone when dropped, unless the container is set up for good.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::cgroups::Cgroup;
use crate::error::Result;
use crate::rootfs;

/// Mounts left in the host's namespace by a container that shares it, detached when dropped.
pub(super) struct HostMounts(pub(super) Option<PathBuf>);

impl Drop for HostMounts {
    fn drop(&mut self) {
        if let Some(rootfs) = &self.0 {
            rootfs::release_host_mounts(rootfs);
        }
    }
}

/// The container's cgroup, removed (with anything still in it) when dropped.
pub(super) struct CgroupGuard {
    pub(super) cgroup: Option<Cgroup>,
}

impl CgroupGuard {
    /// Before the clone: make the unified directory of the cgroup `planned` (the process is
    /// born in it); the v1 directories and the limits come after, while the child works.
    pub(super) fn begin(
        planned: Option<Cgroup>,
        rootless: bool,
        quiet: bool,
    ) -> Result<(CgroupGuard, Option<OwnedFd>)> {
        let Some(mut cg) = planned.filter(|_| !rootless) else {
            if !quiet {
                crate::diag::warn("running unprivileged, so without cgroup limits (memory, pids and cpu are not limited)");
            }
            return Ok((CgroupGuard { cgroup: None }, None));
        };
        let fd = cg.create_v2()?;
        Ok((CgroupGuard { cgroup: Some(cg) }, fd))
    }

    /// The v1 directories, then every limit: returns the `tasks` files the child writes itself
    /// into before anything of the workload runs. With the systemd driver the unit is started
    /// first, with the (still blocked) child's `pid`: systemd moves it into its cgroup.
    pub(super) fn finish(
        &mut self,
        resources: Option<&oci_spec::runtime::LinuxResources>,
        id: &str,
        pid: i32,
    ) -> Result<Vec<OwnedFd>> {
        let Some(cg) = self.cgroup.as_mut() else {
            return Ok(vec![]);
        };
        cg.start_unit(id, pid, resources)?;
        cg.create_v1()?;
        if let Some(r) = resources {
            cg.apply(r)?;
        }
        cg.v1_tasks_files()
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                crate::diag::warn(&e.to_string());
            }
        }
    }
}
