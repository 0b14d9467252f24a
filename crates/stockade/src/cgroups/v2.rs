//! cgroup v2 (unified) file formats and the conversions from the OCI's v1-shaped values.

use std::fs;
use std::path::Path;

use super::write;
use crate::error::Result;

/// cgroup v1 `cpu.shares` (2..262144) to v2 `cpu.weight` (1..10000), as the OCI and runc convert it.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// Enable every available controller from the v2 root down to `dir`'s parent.
pub(super) fn enable_v2_controllers(dir: &Path) {
    // Upwards while the directories are cgroups (they have `cgroup.controllers`), then apply
    // from the root down.
    let mut chain: Vec<(&Path, String)> = dir
        .ancestors()
        .skip(1)
        .map_while(|p| Some((p, fs::read_to_string(p.join("cgroup.controllers")).ok()?)))
        .collect();
    chain.reverse();
    for (p, avail) in chain {
        // Only what is missing: a write re-applies the control of the whole subtree (all
        // running containers), under the global cgroup lock.
        let on = fs::read_to_string(p.join("cgroup.subtree_control")).unwrap_or_default();
        let want: String = avail
            .split_whitespace()
            .filter(|c| !on.split_whitespace().any(|o| o == *c))
            .map(|c| format!("+{c} "))
            .collect();
        if !want.is_empty() {
            let _ = fs::write(p.join("cgroup.subtree_control"), want.trim());
        }
    }
}

pub fn apply_memory_v2(dir: &Path, m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    if let Some(l) = m.limit().filter(|x| *x != 0) {
        write(dir, "memory.max", &max(l))?;
    }
    if let Some(s) = m.swap().filter(|x| *x != 0) {
        // OCI swap is memory+swap; v2 swap.max is swap alone.
        let v = match (s, m.limit()) {
            (s, _) if s < 0 => "max".to_string(),
            (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
            (s, _) => s.to_string(),
        };
        if dir.join("memory.swap.max").exists() || !dir.join("memory.max").exists() {
            write(dir, "memory.swap.max", &v)?;
        }
    }
    if let Some(r) = m.reservation().filter(|x| *x != 0) {
        write(dir, "memory.low", &r.to_string())?;
    }
    Ok(())
}

/// blkio weight (10..1000) → io.weight (1..10000), as runc converts it.
pub fn blkio_weight_to_io(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (w.clamp(10, 1000) as u64 - 10) * 9999 / 990
}

pub fn apply_io_v2(dir: &Path, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if dir.join("io.bfq.weight").exists() {
            write(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            write(
                dir,
                "io.weight",
                &format!("default {}", blkio_weight_to_io(w)),
            )?;
        }
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            write(
                dir,
                "io.weight",
                &format!("{}:{} {}", d.major(), d.minor(), blkio_weight_to_io(w)),
            )?;
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for d in list.iter().flatten() {
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            write(
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", d.major(), d.minor()),
            )?;
        }
    }
    Ok(())
}

pub fn apply_cpu_v2(dir: &Path, c: &oci_spec::runtime::LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares().filter(|x| *x != 0) {
        write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    if c.quota().is_some() || c.period().is_some() {
        let q = match c.quota() {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".into(),
        };
        write(
            dir,
            "cpu.max",
            &format!("{q} {}", c.period().unwrap_or(100_000)),
        )?;
    }
    if let Some(b) = c.burst().filter(|x| *x != 0) {
        write(dir, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string())?;
    }
    if let Some(v) = c.cpus().as_ref().filter(|v| !v.is_empty()) {
        write(dir, "cpuset.cpus", v)?;
    }
    if let Some(v) = c.mems().as_ref().filter(|v| !v.is_empty()) {
        write(dir, "cpuset.mems", v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_convert_to_weight_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }
    #[test]
    fn v2_io_files_and_weight_conversion() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("io.weight"), "").unwrap();
        fs::write(dir.path().join("io.max"), "").unwrap();
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(500), 4950);
        assert_eq!(blkio_weight_to_io(1000), 10_000);
        let b: oci_spec::runtime::LinuxBlockIo =
            serde_json::from_str(r#"{"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]}"#).unwrap();
        apply_io_v2(dir.path(), &b).unwrap();
        // the last write wins in a plain file; the kernel file keeps one line per device
        assert_eq!(
            fs::read_to_string(dir.path().join("io.weight")).unwrap(),
            "default 4950"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("io.max")).unwrap(),
            "8:0 rbps=1048576"
        );
    }
    #[test]
    fn v2_files_are_written_with_v2_semantics() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "cpu.weight",
            "cpu.max",
        ] {
            fs::write(dir.path().join(f), "").unwrap();
        }
        let m: oci_spec::runtime::LinuxMemory = serde_json::from_str(
            r#"{"limit": 104857600, "swap": 209715200, "reservation": 1048576}"#,
        )
        .unwrap();
        apply_memory_v2(dir.path(), &m).unwrap();
        let rd = |f: &str| fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(rd("memory.max"), "104857600");
        assert_eq!(rd("memory.swap.max"), "104857600");
        assert_eq!(rd("memory.low"), "1048576");
        let c: oci_spec::runtime::LinuxCpu =
            serde_json::from_str(r#"{"shares": 1024, "quota": 50000, "period": 100000}"#).unwrap();
        apply_cpu_v2(dir.path(), &c).unwrap();
        assert_eq!(rd("cpu.weight"), "39");
        assert_eq!(rd("cpu.max"), "50000 100000");
        let c: oci_spec::runtime::LinuxCpu = serde_json::from_str(r#"{"quota": -1}"#).unwrap();
        apply_cpu_v2(dir.path(), &c).unwrap();
        assert_eq!(rd("cpu.max"), "max 100000");
    }
}
