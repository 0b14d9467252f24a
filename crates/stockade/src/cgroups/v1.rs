//! cgroup v1 file formats: one hierarchy per controller (or co-mounted group).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxDeviceCgroup;

use super::resources::{device_rule, DEFAULT_ALLOWED_DEVICES};
use super::write;
use crate::error::{Error, Result};

/// Fill empty cpuset.cpus/mems from the nearest ancestor that has them, down to `dir` (parents
/// may be new and empty too). Reads upwards only as far as needed: usually `dir` and its parent.
pub(super) fn inherit_cpuset(dir: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mut empty = vec![];
        let mut value = None;
        for d in dir.ancestors() {
            match fs::read_to_string(d.join(f)) {
                Ok(v) if v.trim().is_empty() => empty.push(d),
                Ok(v) => {
                    value = Some(v);
                    break;
                }
                Err(_) => break, // above the hierarchy's root
            }
        }
        if let Some(v) = value {
            for d in empty.iter().rev() {
                write(d, f, v.trim())?;
            }
        }
    }
    Ok(())
}

pub(super) fn apply_memory_v1(dir: &Path, m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
    let memsw = dir.join("memory.memsw.limit_in_bytes").exists();
    let limit = m
        .limit()
        .filter(|x| *x != 0)
        .map(|l| if l < 0 { -1 } else { l });
    let swap = m
        .swap()
        .filter(|x| *x != 0)
        .map(|s| if s < 0 { -1 } else { s });
    match (limit, swap) {
        (Some(l), Some(s)) if memsw => {
            // memsw must never be below limit: order the two writes so it never is.
            let cur: i64 = fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(i64::MAX);
            if s == -1 || l == -1 || s > cur {
                write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
                write(dir, "memory.limit_in_bytes", &l.to_string())?;
            } else {
                write(dir, "memory.limit_in_bytes", &l.to_string())?;
                write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
            }
        }
        (Some(l), None) if memsw => {
            // Raising the limit above memory+swap fails: raise memory+swap with it (an update
            // that gives only --memory keeps "no more swap than before" semantics).
            let cur_sw: i64 = fs::read_to_string(dir.join("memory.memsw.limit_in_bytes"))
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(i64::MAX);
            if l == -1 || l > cur_sw {
                write(dir, "memory.memsw.limit_in_bytes", &l.to_string())?;
            }
            write(dir, "memory.limit_in_bytes", &l.to_string())?
        }
        (Some(l), _) => write(dir, "memory.limit_in_bytes", &l.to_string())?,
        (None, Some(s)) if memsw => write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?,
        _ => {}
    }
    if let Some(r) = m.reservation().filter(|x| *x != 0) {
        write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    // runtime-spec calls both kernel limits NOT RECOMMENDED; v1 still enforces the TCP one.
    if let Some(t) = m.kernel_tcp().filter(|x| *x != 0) {
        if dir.join("memory.kmem.tcp.limit_in_bytes").exists() {
            write(dir, "memory.kmem.tcp.limit_in_bytes", &t.to_string())?;
        }
    }
    if let Some(s) = m.swappiness().filter(|s| *s <= 100) {
        write(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(dir, "memory.oom_control", "1")?;
    }
    Ok(())
}

pub(super) fn apply_blkio_v1(dir: &Path, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
    // The weight files exist only with CFQ/BFQ; a weight on a host without them is an error.
    let weight_file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| dir.join(f).exists());
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let f = weight_file.ok_or_else(|| Error::Cgroup("linux.resources.blockIO.weight: no I/O scheduler with weights (CFQ/BFQ) on this host".into()))?;
        write(dir, f, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            write(
                dir,
                "blkio.weight_device",
                &format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
        if let Some(w) = d.leaf_weight() {
            write(
                dir,
                "blkio.leaf_weight_device",
                &format!("{}:{} {w}", d.major(), d.minor()),
            )?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for d in list.iter().flatten() {
            write(
                dir,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

pub(super) fn apply_cpu_v1(
    dir: &Path,
    cpuset: Option<&Path>,
    c: &oci_spec::runtime::LinuxCpu,
) -> Result<()> {
    if let Some(s) = c.shares().filter(|x| *x != 0) {
        write(dir, "cpu.shares", &s.to_string())?;
    }
    if let Some(p) = c.period().filter(|x| *x != 0) {
        write(dir, "cpu.cfs_period_us", &p.to_string())?;
    }
    if let Some(q) = c.quota().filter(|x| *x != 0) {
        write(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(b) = c.burst().filter(|x| *x != 0) {
        write(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(p) = c.realtime_period().filter(|x| *x != 0) {
        write(dir, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|x| *x != 0) {
        write(dir, "cpu.rt_runtime_us", &r.to_string())?;
    }
    if let Some(cs) = cpuset {
        if let Some(v) = c.cpus().as_ref().filter(|v| !v.is_empty()) {
            write(cs, "cpuset.cpus", v)?;
        }
        if let Some(v) = c.mems().as_ref().filter(|v| !v.is_empty()) {
            write(cs, "cpuset.mems", v)?;
        }
    }
    Ok(())
}

pub(super) fn apply_devices_v1(dir: &Path, devs: &[LinuxDeviceCgroup]) -> Result<()> {
    // One descriptor per file, one write(2) per rule (cgroupfs takes each write as one rule).
    let open = |file: &str| {
        fs::OpenOptions::new()
            .write(true)
            .open(dir.join(file))
            .map(|f| (f, dir.join(file)))
            .map_err(|e| Error::Cgroup(format!("open {}: {e}", dir.join(file).display())))
    };
    let (mut allow, mut deny) = (open("devices.allow")?, open("devices.deny")?);
    let put = |(f, path): &mut (fs::File, PathBuf), rule: &str| {
        io::Write::write_all(f, rule.as_bytes())
            .map_err(|e| Error::Cgroup(format!("write {rule:?} to {}: {e}", path.display())))
    };
    for d in devs {
        let file = if d.allow() { &mut allow } else { &mut deny };
        put(file, &device_rule(d))?;
    }
    for r in DEFAULT_ALLOWED_DEVICES {
        put(&mut allow, r)?;
    }
    Ok(())
}
