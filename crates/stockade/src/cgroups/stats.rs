//! A container's cgroup statistics, in the shape of runc's `events --stats` data.

use std::fs;
use std::path::Path;

use super::Cgroup;

impl Cgroup {
    /// Statistics in the shape of runc's `events --stats` data.
    pub fn stats(&self) -> serde_json::Value {
        let mut out = serde_json::json!({});
        self.stats_cpu(&mut out);
        self.stats_memory(&mut out);
        self.stats_pids(&mut out);
        self.stats_blkio(&mut out);
        self.stats_hugetlb(&mut out);
        out
    }

    /// cpu: usage (cpuacct, or v2's cpu.stat) and throttling.
    fn stats_cpu(&self, out: &mut serde_json::Value) {
        if let Some(d) = self.v1("cpuacct") {
            let percpu: Vec<u64> = read(d, "cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let st = kv(d, "cpuacct.stat");
            let tick = 10_000_000u64; // USER_HZ 100 → ns
            out["cpu"] = serde_json::json!({"usage": {"total": num(d, "cpuacct.usage"), "percpu": percpu,
                "user": st.get("user").and_then(|v| v.as_u64()).unwrap_or(0) * tick,
                "kernel": st.get("system").and_then(|v| v.as_u64()).unwrap_or(0) * tick}});
        } else if let Some(d) = self.v2.as_ref().filter(|d| d.join("cpu.stat").exists()) {
            let st = kv(d, "cpu.stat");
            let g = |k: &str| st.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            out["cpu"] = serde_json::json!({"usage": {"total": g("usage_usec") * 1000, "user": g("user_usec") * 1000, "kernel": g("system_usec") * 1000},
                "throttling": {"periods": g("nr_periods"), "throttledPeriods": g("nr_throttled"), "throttledTime": g("throttled_usec") * 1000}});
        }
        if let Some(d) = self.v1("cpu") {
            let st = kv(d, "cpu.stat");
            let g = |k: &str| st.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
            out["cpu"]["throttling"] = serde_json::json!({"periods": g("nr_periods"), "throttledPeriods": g("nr_throttled"), "throttledTime": g("throttled_time")});
        }
    }

    /// memory: usage, swap, the raw counters, OOM kills.
    fn stats_memory(&self, out: &mut serde_json::Value) {
        if let Some(d) = self.v1("memory") {
            let oom = kv(d, "memory.oom_control");
            out["memory"] = serde_json::json!({
                "usage": {"usage": num(d, "memory.usage_in_bytes"), "max": num(d, "memory.max_usage_in_bytes"), "limit": num(d, "memory.limit_in_bytes"), "failcnt": num(d, "memory.failcnt")},
                "swap": {"usage": num(d, "memory.memsw.usage_in_bytes"), "max": num(d, "memory.memsw.max_usage_in_bytes"), "limit": num(d, "memory.memsw.limit_in_bytes"), "failcnt": num(d, "memory.memsw.failcnt")},
                "raw": kv(d, "memory.stat"),
                "oom_kill": oom.get("oom_kill").cloned().unwrap_or(serde_json::json!(0)),
                "under_oom": oom.get("under_oom").cloned().unwrap_or(serde_json::json!(0)),
            });
        } else if let Some(d) = self
            .v2
            .as_ref()
            .filter(|d| d.join("memory.current").exists())
        {
            let ev = kv(d, "memory.events");
            let max = read(d, "memory.max")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            out["memory"] = serde_json::json!({
                "usage": {"usage": num(d, "memory.current"), "max": num(d, "memory.peak"), "limit": max, "failcnt": ev.get("max").cloned().unwrap_or(serde_json::json!(0))},
                "swap": {"usage": num(d, "memory.swap.current")},
                "raw": kv(d, "memory.stat"),
                "oom_kill": ev.get("oom_kill").cloned().unwrap_or(serde_json::json!(0)),
            });
        }
    }

    /// pids: current and limit.
    fn stats_pids(&self, out: &mut serde_json::Value) {
        let pids_dir = self
            .v1("pids")
            .map(Path::to_path_buf)
            .or_else(|| self.v2.clone().filter(|d| d.join("pids.current").exists()));
        if let Some(d) = pids_dir {
            let limit = read(&d, "pids.max")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0);
            out["pids"] = serde_json::json!({"current": num(&d, "pids.current"), "limit": limit});
        }
    }

    /// blkio (v1): bytes and operations per device.
    fn stats_blkio(&self, out: &mut serde_json::Value) {
        if let Some(d) = self.v1("blkio") {
            let entries = |f: &str| -> Vec<serde_json::Value> {
                read(d, f)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| {
                        let mut it = l.split_whitespace();
                        let (dev, op, v) = (it.next()?, it.next()?, it.next()?);
                        let (maj, min) = dev.split_once(':')?;
                        Some(serde_json::json!({"major": maj.parse::<u64>().ok()?, "minor": min.parse::<u64>().ok()?, "op": op, "value": v.parse::<u64>().ok()?}))
                    })
                    .collect()
            };
            out["blkio"] = serde_json::json!({"ioServiceBytesRecursive": entries("blkio.throttle.io_service_bytes"), "ioServicedRecursive": entries("blkio.throttle.io_serviced")});
        }
    }

    /// hugetlb: usage per page size.
    fn stats_hugetlb(&self, out: &mut serde_json::Value) {
        let hugetlb_dir = self
            .v1("hugetlb")
            .map(Path::to_path_buf)
            .or_else(|| self.v2.clone());
        if let Some(d) = hugetlb_dir {
            let mut h = serde_json::Map::new();
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let size = name.strip_prefix("hugetlb.").and_then(|n| {
                    n.strip_suffix(".usage_in_bytes")
                        .or_else(|| n.strip_suffix(".current"))
                });
                if let Some(size) = size {
                    h.insert(
                        size.to_string(),
                        serde_json::json!({"usage": num(&d, &name)}),
                    );
                }
            }
            if !h.is_empty() {
                out["hugetlb"] = serde_json::Value::Object(h);
            }
        }
    }
}

fn read(d: &Path, f: &str) -> Option<String> {
    fs::read_to_string(d.join(f)).ok()
}

fn num(d: &Path, f: &str) -> u64 {
    read(d, f)
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// A `key value` file as a map.
fn kv(d: &Path, f: &str) -> serde_json::Map<String, serde_json::Value> {
    read(d, f)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((
                k.to_string(),
                serde_json::json!(v.trim().parse::<u64>().ok()?),
            ))
        })
        .collect()
}
