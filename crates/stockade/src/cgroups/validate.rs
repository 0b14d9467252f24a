//! Field-level checks of `linux.resources`, before anything is created (`create` and `update`).

use oci_spec::runtime::{LinuxDeviceType, LinuxResources};

/// A check's result: Ok, or (field, message).
type Checked = std::result::Result<(), (String, String)>;

fn err(f: &str, m: String) -> Checked {
    Err((f.to_string(), m))
}

/// Field-level checks of `linux.resources`: (field, message). 0 means "not set" for limits
/// and weights in specs from Docker and friends (runc reads it so); negative values other than
/// -1 and out-of-range values are errors.
pub fn validate(r: &LinuxResources) -> Checked {
    const CHECKS: [fn(&LinuxResources) -> Checked; 6] = [
        check_memory,
        check_block_io,
        check_hugepages,
        check_pids,
        check_cpu,
        check_devices,
    ];
    CHECKS.iter().try_for_each(|c| c(r))
}

fn check_memory(r: &LinuxResources) -> Checked {
    if let Some(m) = r.memory() {
        let l = m.limit().unwrap_or(0);
        if l < -1 {
            return err(
                "memory.limit",
                format!("{l} is not a limit (-1 or 0: none)"),
            );
        }
        if l > 0 && l < 1 << 20 {
            return err(
                "memory.limit",
                format!("{l} bytes is below 1 MiB: nothing could run"),
            );
        }
        let s = m.swap().unwrap_or(0);
        if s < -1 {
            return err("memory.swap", format!("{s} is not a limit (-1 or 0: none)"));
        }
        if s > 0 && l > 0 && s < l {
            return err(
                "memory.swap",
                format!("{s} is below memory.limit {l} (swap is memory+swap)"),
            );
        }
        if let Some(sw) = m.swappiness() {
            if sw > 100 && sw != u64::MAX {
                return err("memory.swappiness", format!("{sw} is above 100"));
            }
        }
    }
    Ok(())
}

fn check_block_io(r: &LinuxResources) -> Checked {
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight() {
            if w != 0 && !(10..=1000).contains(&w) {
                return err(
                    "blockIO.weight",
                    format!("{w} is outside 10..1000 (0: unset)"),
                );
            }
        }
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            if d.major() < 0 || d.minor() < 0 {
                return err(
                    &format!("blockIO.weightDevice[{i}]"),
                    "major and minor must be given".into(),
                );
            }
        }
    }
    Ok(())
}

fn check_hugepages(r: &LinuxResources) -> Checked {
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let size = h.page_size();
        // By characters, not byte offsets: a non-ASCII pageSize is an error, not a panic.
        let ok = size
            .strip_suffix('B')
            .and_then(|s| s.strip_suffix(['K', 'M', 'G']))
            .is_some_and(|n| n.parse::<u64>().is_ok());
        if !ok {
            return err(
                &format!("hugepageLimits[{i}].pageSize"),
                format!("{size:?} is not a page size like 2MB or 1GB"),
            );
        }
    }
    Ok(())
}

fn check_pids(r: &LinuxResources) -> Checked {
    if let Some(p) = r.pids() {
        if p.limit() < -1 {
            return err(
                "pids.limit",
                format!("{} is not a limit (-1 or 0: none)", p.limit()),
            );
        }
    }
    Ok(())
}

fn check_cpu(r: &LinuxResources) -> Checked {
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            if !(2..=262_144).contains(&s) {
                return err("cpu.shares", format!("{s} is outside 2..262144"));
            }
        }
        if let Some(p) = c.period().filter(|p| *p != 0) {
            if !(1000..=1_000_000).contains(&p) {
                return err("cpu.period", format!("{p} µs is outside 1000..1000000"));
            }
        }
        if let Some(q) = c.quota().filter(|q| *q != 0) {
            if q < 1000 && q != -1 {
                return err("cpu.quota", format!("{q} µs is below 1000 (-1 or 0: none)"));
            }
        }
        for (f, v) in [("cpu.cpus", c.cpus()), ("cpu.mems", c.mems())] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                parse_cpuset(v).map_err(|m| (f.to_string(), m))?;
            }
        }
    }
    Ok(())
}

fn check_devices(r: &LinuxResources) -> Checked {
    for (i, d) in r.devices().iter().flatten().enumerate() {
        if let Some(a) = d.access() {
            if a.is_empty() || !a.chars().all(|c| "rwm".contains(c)) {
                return err(
                    &format!("devices[{i}].access"),
                    format!("{a:?} is not a combination of r, w, m"),
                );
            }
        }
        // Negative means "any" (as `*`); above 32 bits the cgroup v2 program would truncate
        // the number and match another device (4294967297 is 1).
        for (f, v) in [("major", d.major()), ("minor", d.minor())] {
            if let Some(v) = v.filter(|v| *v > i64::from(u32::MAX)) {
                return err(
                    &format!("devices[{i}].{f}"),
                    format!("{v} is not a device number (at most {}; -1: any)", u32::MAX),
                );
            }
        }
        if matches!(d.typ(), Some(LinuxDeviceType::P)) {
            return err(
                &format!("devices[{i}].type"),
                "p (FIFO) is not a cgroup device type".into(),
            );
        }
    }
    Ok(())
}

/// Parse a cpuset list ("0-3,5") into its members.
pub fn parse_cpuset(s: &str) -> std::result::Result<Vec<u32>, String> {
    let mut out = vec![];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u32 = a
            .parse()
            .map_err(|_| format!("{s:?}: {part:?} is not a number or range"))?;
        let b: u32 = b
            .parse()
            .map_err(|_| format!("{s:?}: {part:?} is not a number or range"))?;
        if a > b || b > 8192 {
            return Err(format!("{s:?}: bad range {part:?}"));
        }
        out.extend(a..=b);
    }
    if out.is_empty() {
        return Err(format!("{s:?} names no cpu"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuset_lists_parse_and_reject_garbage() {
        assert_eq!(parse_cpuset("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpuset("2-1").is_err());
        assert!(parse_cpuset("x").is_err());
        assert!(parse_cpuset("").is_err());
    }
}
