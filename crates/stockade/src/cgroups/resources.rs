//! Writing `linux.resources` into a container's cgroup: each controller where this host mounts
//! it (v1 on hybrid hosts), the file formats in [`super::v1`] and [`super::v2`].

use std::fs;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::v1::{apply_blkio_v1, apply_cpu_v1, apply_devices_v1, apply_memory_v1};
use super::v2::{apply_cpu_v2, apply_io_v2, apply_memory_v2};
use super::{device_filter, write, Cgroup};
use crate::error::{Error, Result};

impl Cgroup {
    /// Apply `resources`, controller by controller. On hybrid hosts a controller lives where it
    /// is mounted (v1 here).
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        let v2_has = |c: &str| {
            self.v2.as_ref().is_some_and(|d| {
                fs::read_to_string(d.join("cgroup.controllers"))
                    .is_ok_and(|s| s.split_whitespace().any(|x| x == c))
            })
        };
        type Step = fn(&Cgroup, &LinuxResources, &dyn Fn(&str) -> bool) -> Result<()>;
        const STEPS: [Step; 9] = [
            Cgroup::apply_memory,
            Cgroup::apply_pids,
            Cgroup::apply_cpu,
            Cgroup::apply_devices,
            Cgroup::apply_block_io,
            Cgroup::apply_hugepages,
            Cgroup::apply_network,
            Cgroup::apply_rdma,
            Cgroup::apply_unified,
        ];
        for step in STEPS {
            step(self, r, &v2_has)?;
        }
        Ok(())
    }

    fn apply_memory(&self, r: &LinuxResources, v2_has: &dyn Fn(&str) -> bool) -> Result<()> {
        if let Some(m) = r.memory() {
            if let Some(dir) = self.v1("memory") {
                apply_memory_v1(dir, m)?;
            } else if v2_has("memory") {
                apply_memory_v2(self.v2.as_ref().unwrap(), m)?;
            } else if m.limit().is_some() || m.swap().is_some() || m.reservation().is_some() {
                return Err(Error::Cgroup(
                    "linux.resources.memory: this host has no memory controller".into(),
                ));
            }
        }
        Ok(())
    }

    fn apply_pids(&self, r: &LinuxResources, v2_has: &dyn Fn(&str) -> bool) -> Result<()> {
        if let Some(p) = r.pids() {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            if let Some(dir) = self.v1("pids") {
                write(dir, "pids.max", &v)?;
            } else if v2_has("pids") {
                write(self.v2.as_ref().unwrap(), "pids.max", &v)?;
            } else {
                return Err(Error::Cgroup(
                    "linux.resources.pids: this host has no pids controller".into(),
                ));
            }
        }
        Ok(())
    }

    fn apply_cpu(&self, r: &LinuxResources, v2_has: &dyn Fn(&str) -> bool) -> Result<()> {
        if let Some(c) = r.cpu() {
            if let Some(dir) = self.v1("cpu") {
                if c.idle().is_some_and(|i| i != 0) {
                    return Err(Error::Cgroup("linux.resources.cpu.idle: needs the cgroup v2 cpu controller, which this host does not have".into()));
                }
                apply_cpu_v1(dir, self.v1("cpuset"), c)?;
            } else if v2_has("cpu") || v2_has("cpuset") {
                apply_cpu_v2(self.v2.as_ref().unwrap(), c)?;
            } else if c.shares().is_some() || c.quota().is_some() {
                return Err(Error::Cgroup(
                    "linux.resources.cpu: this host has no cpu controller".into(),
                ));
            }
        }
        Ok(())
    }

    fn apply_devices(&self, r: &LinuxResources, _v2_has: &dyn Fn(&str) -> bool) -> Result<()> {
        if let Some(devs) = r.devices() {
            if let Some(dir) = self.v1("devices") {
                apply_devices_v1(dir, devs)?;
            } else if let Some(v2) = &self.v2 {
                // cgroup v2: the rules become a BPF_PROG_TYPE_CGROUP_DEVICE program
                let mut rules: Vec<device_filter::Rule> =
                    devs.iter().map(device_filter::Rule::from_oci).collect();
                rules.extend(
                    DEFAULT_ALLOWED_DEVICES
                        .iter()
                        .filter_map(|r| device_filter::Rule::parse(r, true)),
                );
                device_filter::attach(&device_filter::program(&rules), v2)
                    .map_err(|e| Error::Cgroup(format!("linux.resources.devices: {e}")))?;
            }
        }
        Ok(())
    }

    fn apply_block_io(&self, r: &LinuxResources, v2_has: &dyn Fn(&str) -> bool) -> Result<()> {
        if let Some(b) = r.block_io() {
            if let Some(dir) = self.v1("blkio") {
                apply_blkio_v1(dir, b)?;
            } else if v2_has("io") {
                apply_io_v2(self.v2.as_ref().unwrap(), b)?;
            } else if !is_empty_blkio(b) {
                return Err(Error::Cgroup(
                    "linux.resources.blockIO: this host has no blkio/io controller".into(),
                ));
            }
        }
        Ok(())
    }

    fn apply_hugepages(&self, r: &LinuxResources, v2_has: &dyn Fn(&str) -> bool) -> Result<()> {
        for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
            let size = h.page_size();
            if let Some(dir) = self.v1("hugetlb") {
                write(
                    dir,
                    &format!("hugetlb.{size}.limit_in_bytes"),
                    &h.limit().to_string(),
                )?;
            } else if v2_has("hugetlb") {
                let v = if h.limit() < 0 {
                    "max".to_string()
                } else {
                    h.limit().to_string()
                };
                let dir = self.v2.as_ref().unwrap();
                if !dir.join(format!("hugetlb.{size}.max")).exists() {
                    return Err(Error::Cgroup(format!("linux.resources.hugepageLimits[{i}].pageSize: no {size} huge pages on this host")));
                }
                write(dir, &format!("hugetlb.{size}.max"), &v)?;
            } else {
                return Err(Error::Cgroup(
                    "linux.resources.hugepageLimits: this host has no hugetlb controller".into(),
                ));
            }
        }
        Ok(())
    }

    fn apply_network(&self, r: &LinuxResources, _v2_has: &dyn Fn(&str) -> bool) -> Result<()> {
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                let dir = self.v1("net_cls").ok_or_else(|| {
                    Error::Cgroup(
                        "linux.resources.network.classID: this host has no net_cls controller"
                            .into(),
                    )
                })?;
                write(dir, "net_cls.classid", &id.to_string())?;
            }
            for p in n.priorities().iter().flatten() {
                let dir = self.v1("net_prio").ok_or_else(|| {
                    Error::Cgroup(
                        "linux.resources.network.priorities: this host has no net_prio controller"
                            .into(),
                    )
                })?;
                write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name(), p.priority()),
                )?;
            }
        }
        Ok(())
    }

    fn apply_rdma(&self, r: &LinuxResources, v2_has: &dyn Fn(&str) -> bool) -> Result<()> {
        for (dev, limit) in r.rdma().iter().flatten() {
            let mut v = dev.clone();
            if let Some(h) = limit.hca_handles() {
                v.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = limit.hca_objects() {
                v.push_str(&format!(" hca_object={o}"));
            }
            let dir = self.v1("rdma").or(if v2_has("rdma") {
                self.v2.as_deref()
            } else {
                None
            });
            let dir = dir.ok_or_else(|| {
                Error::Cgroup("linux.resources.rdma: this host has no rdma controller".into())
            })?;
            write(dir, "rdma.max", &v)?;
        }
        Ok(())
    }

    fn apply_unified(&self, r: &LinuxResources, _v2_has: &dyn Fn(&str) -> bool) -> Result<()> {
        if let Some(u) = r.unified() {
            let dir = self.v2.as_ref().ok_or_else(|| {
                Error::Cgroup(
                    "linux.resources.unified: this host has no cgroup v2 hierarchy".into(),
                )
            })?;
            for (k, v) in u {
                if k.contains('/') || k.starts_with('.') || !k.contains('.') {
                    return Err(Error::Cgroup(format!(
                        "linux.resources.unified.{k}: not a cgroup file name"
                    )));
                }
                if !dir.join(k).exists() {
                    let ctrl = k.split('.').next().unwrap_or(k);
                    return Err(Error::Cgroup(format!("linux.resources.unified.{k}: no such file (is the {ctrl} controller enabled in {}?)", dir.display())));
                }
                write(dir, k, v)?;
            }
        }
        Ok(())
    }
}

/// Devices always allowed on top of the spec's rules (runc's defaults): the OCI default device
/// nodes, ptys and the pts multiplexer.
pub const DEFAULT_ALLOWED_DEVICES: &[&str] = &[
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let t = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::B) => "b",
        _ => "a",
    };
    let n = |v: Option<i64>| {
        v.filter(|v| *v >= 0)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "*".into())
    };
    if t == "a" && d.major().is_none() && d.minor().is_none() {
        return "a".into();
    }
    format!(
        "{t} {}:{} {}",
        n(d.major()),
        n(d.minor()),
        d.access().clone().unwrap_or_else(|| "rwm".into())
    )
}

fn is_empty_blkio(b: &oci_spec::runtime::LinuxBlockIo) -> bool {
    b.weight().unwrap_or(0) == 0
        && b.leaf_weight().unwrap_or(0) == 0
        && b.weight_device().as_ref().is_none_or(|v| v.is_empty())
        && b.throttle_read_bps_device()
            .as_ref()
            .is_none_or(|v| v.is_empty())
        && b.throttle_write_bps_device()
            .as_ref()
            .is_none_or(|v| v.is_empty())
        && b.throttle_read_iops_device()
            .as_ref()
            .is_none_or(|v| v.is_empty())
        && b.throttle_write_iops_device()
            .as_ref()
            .is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_unified_keys_are_written_and_unknown_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("memory.high"), "").unwrap();
        let cg = Cgroup {
            v1: vec![],
            v2: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let r: LinuxResources =
            serde_json::from_str(r#"{"unified": {"memory.high": "1048576"}}"#).unwrap();
        cg.apply(&r).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("memory.high")).unwrap(),
            "1048576"
        );
        let r: LinuxResources =
            serde_json::from_str(r#"{"unified": {"io.latency": "x"}}"#).unwrap();
        let e = cg.apply(&r).unwrap_err().to_string();
        assert!(
            e.contains("linux.resources.unified.io.latency") && e.contains("io"),
            "{e}"
        );
        let r: LinuxResources = serde_json::from_str(r#"{"unified": {"../escape": "1"}}"#).unwrap();
        assert!(cg.apply(&r).is_err());
        // a v1-only host has nowhere to put them
        let v1only = Cgroup {
            v1: vec![],
            v2: None,
            ..Default::default()
        };
        let r: LinuxResources =
            serde_json::from_str(r#"{"unified": {"memory.high": "1"}}"#).unwrap();
        assert!(v1only
            .apply(&r)
            .unwrap_err()
            .to_string()
            .contains("no cgroup v2"));
    }
}
