//! Seed §2 ("Hardware"): cgroups ration what namespaces divide, so one sandbox cannot starve the
//! others. cgroup v1, v2 and hybrid hosts, detected from `/proc/self/mountinfo`.
//!
//! Written by hand rather than with youki's `libcgroups`: that crate brings a systemd D-Bus client,
//! an eBPF loader and async plumbing for what is, here, writing a few dozen small files in an order
//! that matters; keeping the file writes in one module makes that order easy to read and test
//! (the v2 file logic runs against a temporary directory tree in the tests).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use crate::error::{Error, Result};

/// One cgroup v1 hierarchy as mounted on this host.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// Controllers (and `name=...`) of the hierarchy, e.g. `["cpu", "cpuacct"]`.
    pub controllers: Vec<String>,
    /// The super-block options to mount it again (`cpu,cpuacct`).
    pub options: String,
    /// This process's cgroup in it (from /proc/self/cgroup).
    pub path_of_self: PathBuf,
}

impl Hierarchy {
    pub fn mount_name(&self) -> String {
        self.mountpoint
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.options.clone())
    }
    pub fn has(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub v1: Vec<Hierarchy>,
    /// The cgroup2 mount (the whole tree on v2 hosts, `/sys/fs/cgroup/unified` on hybrid ones).
    pub unified: Option<PathBuf>,
    pub unified_self: PathBuf,
}

impl Layout {
    pub fn detect() -> Result<Layout> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::Cgroup(format!("read mountinfo: {e}")))?;
        let selfcg = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| Error::Cgroup(format!("read /proc/self/cgroup: {e}")))?;
        Ok(Self::parse(&mountinfo, &selfcg))
    }

    pub fn parse(mountinfo: &str, selfcg: &str) -> Layout {
        let mut layout = Layout::default();
        let own = |key: &dyn Fn(&str) -> bool| -> PathBuf {
            selfcg
                .lines()
                .find_map(|l| {
                    let mut it = l.splitn(3, ':');
                    let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
                    key(ctrls).then(|| PathBuf::from(path))
                })
                .unwrap_or_else(|| PathBuf::from("/"))
        };
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let mountpoint = PathBuf::from(unescape(pre[4]));
            match post[0] {
                "cgroup2" => {
                    layout.unified = Some(mountpoint);
                    layout.unified_self = own(&|c| c.is_empty());
                }
                "cgroup" => {
                    let controllers: Vec<String> = post[2]
                        .split(',')
                        .filter(|o| {
                            !matches!(*o, "rw" | "ro")
                                && !o.starts_with("release_agent")
                                && *o != "clone_children"
                                && *o != "xattr"
                        })
                        .map(String::from)
                        .collect();
                    if layout.v1.iter().any(|h| h.controllers == controllers) {
                        continue;
                    }
                    let set = controllers.clone();
                    let path_of_self = own(&|c| {
                        let mut a: Vec<&str> = c.split(',').collect();
                        let mut b: Vec<&str> = set.iter().map(String::as_str).collect();
                        a.sort();
                        b.sort();
                        a == b
                    });
                    layout.v1.push(Hierarchy {
                        mountpoint,
                        options: controllers.join(","),
                        controllers,
                        path_of_self,
                    });
                }
                _ => {}
            }
        }
        layout
    }

    pub fn is_v2(&self) -> bool {
        self.v1
            .iter()
            .all(|h| h.controllers.iter().all(|c| c.starts_with("name=")))
    }

    /// Symlinks for co-mounted controllers (`cpu` → `cpu,cpuacct`), for the container's view.
    pub fn symlinks(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        for h in &self.v1 {
            if h.controllers.len() > 1 {
                for c in &h.controllers {
                    if *c != h.mount_name() && !c.starts_with("name=") {
                        out.push((c.clone(), h.mount_name()));
                    }
                }
            }
        }
        out
    }

    pub fn v1_dir(&self, controller: &str) -> Option<&Hierarchy> {
        self.v1.iter().find(|h| h.has(controller))
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Field-level checks of `linux.resources`: (field, message).
pub fn validate(r: &LinuxResources) -> std::result::Result<(), (String, String)> {
    let err = |f: &str, m: String| Err((f.to_string(), m));
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            if l == 0 || l < -1 {
                return err(
                    "memory.limit",
                    format!("{l} is not a limit (use -1 for none)"),
                );
            }
            if l > 0 && l < 1 << 20 {
                return err(
                    "memory.limit",
                    format!("{l} bytes is below 1 MiB: nothing could run"),
                );
            }
            if let Some(s) = m.swap() {
                if s != -1 && s < l {
                    return err(
                        "memory.swap",
                        format!("{s} is below memory.limit {l} (swap is memory+swap)"),
                    );
                }
            }
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return err("memory.swappiness", format!("{s} is above 100"));
            }
        }
    }
    if let Some(p) = r.pids() {
        if p.limit() == 0 || p.limit() < -1 {
            return err(
                "pids.limit",
                format!("{} is not a limit (use -1 for none)", p.limit()),
            );
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            if !(2..=262_144).contains(&s) {
                return err("cpu.shares", format!("{s} is outside 2..262144"));
            }
        }
        if let Some(p) = c.period() {
            if !(1000..=1_000_000).contains(&p) {
                return err("cpu.period", format!("{p} µs is outside 1000..1000000"));
            }
        }
        if let Some(q) = c.quota() {
            if q == 0 || (q < 1000 && q != -1) {
                return err(
                    "cpu.quota",
                    format!("{q} µs is below 1000 (use -1 for none)"),
                );
            }
        }
        for (f, v) in [("cpu.cpus", c.cpus()), ("cpu.mems", c.mems())] {
            if let Some(v) = v {
                parse_cpuset(v).map_err(|m| (f.to_string(), m))?;
            }
        }
    }
    for (i, d) in r.devices().iter().flatten().enumerate() {
        if let Some(a) = d.access() {
            if a.is_empty() || !a.chars().all(|c| "rwm".contains(c)) {
                return err(
                    &format!("devices[{i}].access"),
                    format!("{a:?} is not a combination of r, w, m"),
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

/// cgroup v1 `cpu.shares` (2..262144) to v2 `cpu.weight` (1..10000), as the OCI and runc convert it.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// A container's cgroup: one directory per v1 hierarchy, and/or one in the unified tree.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Default)]
pub struct Cgroup {
    /// (controllers, directory) per v1 hierarchy.
    pub v1: Vec<(String, PathBuf)>,
    pub v2: Option<PathBuf>,
}

impl Cgroup {
    /// The cgroup for `cgroups_path` (default `/stockade/<id>`): absolute paths from each hierarchy's
    /// root, relative ones below this process's own cgroup.
    pub fn locate(layout: &Layout, cgroups_path: Option<&Path>, id: &str) -> Cgroup {
        let rel = cgroups_path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(format!("/stockade/{id}")));
        let under = |mount: &Path, own: &Path| -> PathBuf {
            if rel.is_absolute() {
                mount.join(rel.strip_prefix("/").unwrap())
            } else {
                mount.join(own.strip_prefix("/").unwrap_or(own)).join(&rel)
            }
        };
        let v1 = layout
            .v1
            .iter()
            .map(|h| (h.options.clone(), under(&h.mountpoint, &h.path_of_self)))
            .collect();
        let v2 = layout
            .unified
            .as_ref()
            .map(|u| under(u, &layout.unified_self));
        Cgroup { v1, v2 }
    }

    pub fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.v1.iter().map(|(_, d)| d).chain(self.v2.iter())
    }

    fn v1(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.split(',').any(|x| x == controller))
            .map(|(_, d)| d.as_path())
    }

    /// Create every directory; fails (creating nothing it keeps) if the cgroup already exists.
    pub fn create(&self) -> Result<()> {
        let mut made = vec![];
        for d in self.dirs() {
            if let Some(parent) = d.parent() {
                if let Err(e) = fs::create_dir_all(parent) {
                    self.remove_dirs(&made);
                    return Err(Error::Cgroup(format!("mkdir {}: {e}", parent.display())));
                }
            }
            match fs::create_dir(d) {
                Ok(()) => made.push(d.clone()),
                Err(e) => {
                    self.remove_dirs(&made);
                    return Err(Error::Cgroup(if e.kind() == io::ErrorKind::AlreadyExists {
                        format!(
                            "{} already exists (another container with this cgroupsPath?)",
                            d.display()
                        )
                    } else {
                        format!("mkdir {}: {e}", d.display())
                    }));
                }
            }
        }
        if let Some(v2) = &self.v2 {
            enable_v2_controllers(v2);
        }
        // A new v1 cpuset starts with no cpus and no memory nodes, and takes no task until given
        // some: inherit the parent's (cpu.cpus / cpu.mems narrow them later).
        if let Some(cs) = self.v1("cpuset") {
            if let Err(e) = inherit_cpuset(cs) {
                self.remove_dirs(&made);
                return Err(e);
            }
        }
        Ok(())
    }

    fn remove_dirs(&self, dirs: &[PathBuf]) {
        for d in dirs {
            let _ = fs::remove_dir(d);
        }
    }

    /// Move `pid` into every hierarchy.
    pub fn add(&self, pid: i32) -> Result<()> {
        for d in self.dirs() {
            write(d, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Apply `resources`. On hybrid hosts a controller lives where it is mounted (v1 here).
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        let v2_has = |c: &str| {
            self.v2.as_ref().is_some_and(|d| {
                fs::read_to_string(d.join("cgroup.controllers"))
                    .is_ok_and(|s| s.split_whitespace().any(|x| x == c))
            })
        };
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
        if let Some(c) = r.cpu() {
            if let Some(dir) = self.v1("cpu") {
                apply_cpu_v1(dir, self.v1("cpuset"), c)?;
            } else if v2_has("cpu") || v2_has("cpuset") {
                apply_cpu_v2(self.v2.as_ref().unwrap(), c)?;
            } else if c.shares().is_some() || c.quota().is_some() {
                return Err(Error::Cgroup(
                    "linux.resources.cpu: this host has no cpu controller".into(),
                ));
            }
        }
        if let Some(devs) = r.devices() {
            if let Some(dir) = self.v1("devices") {
                apply_devices_v1(dir, devs)?;
            }
            // On v2 the device filter is a BPF program (cgroups issue); without it the user
            // namespace already forbids mknod and only bound host devices exist.
        }
        Ok(())
    }

    /// Kill what is left and remove every directory. Safe to call repeatedly.
    pub fn destroy(&self) -> Result<()> {
        let mut errs = vec![];
        for d in self.dirs() {
            for attempt in 0..200 {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 199 => {
                        if fs::write(d.join("cgroup.kill"), "1").is_err() {
                            for pid in procs(d) {
                                let _ = nix::sys::signal::kill(
                                    nix::unistd::Pid::from_raw(pid),
                                    nix::sys::signal::Signal::SIGKILL,
                                );
                            }
                        }
                        std::thread::sleep(std::time::Duration::from_micros(
                            200 * (attempt as u64 + 1).min(25),
                        ));
                    }
                    Err(e) => {
                        errs.push(format!("rmdir {}: {e}", d.display()));
                        break;
                    }
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(Error::Cgroup(errs.join("; ")))
        }
    }
}

/// Fill empty cpuset.cpus/mems from the nearest ancestor down (parents may be new and empty too).
fn inherit_cpuset(dir: &Path) -> Result<()> {
    let mut chain: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| p.join("cpuset.cpus").exists())
        .collect();
    chain.reverse();
    for w in chain.windows(2) {
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if fs::read_to_string(w[1].join(f))
                .map(|s| s.trim().is_empty())
                .unwrap_or(false)
            {
                let v = fs::read_to_string(w[0].join(f)).unwrap_or_default();
                write(w[1], f, v.trim())?;
            }
        }
    }
    Ok(())
}

pub fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    fs::write(dir.join(file), value).map_err(|e| {
        Error::Cgroup(format!(
            "write {:?} to {}: {e}",
            value,
            dir.join(file).display()
        ))
    })
}

/// Enable every available controller from the v2 root down to `dir`'s parent.
fn enable_v2_controllers(dir: &Path) {
    let mut chain: Vec<&Path> = dir.ancestors().skip(1).collect();
    chain.reverse();
    for p in chain {
        if let Ok(avail) = fs::read_to_string(p.join("cgroup.controllers")) {
            let want: String = avail.split_whitespace().map(|c| format!("+{c} ")).collect();
            let _ = fs::write(p.join("cgroup.subtree_control"), want.trim());
        }
    }
}

fn apply_memory_v1(dir: &Path, m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
    let memsw = dir.join("memory.memsw.limit_in_bytes").exists();
    let limit = m.limit().map(|l| if l < 0 { -1 } else { l });
    let swap = m.swap().map(|s| if s < 0 { -1 } else { s });
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
        (Some(l), _) => write(dir, "memory.limit_in_bytes", &l.to_string())?,
        (None, Some(s)) if memsw => write(dir, "memory.memsw.limit_in_bytes", &s.to_string())?,
        _ => {}
    }
    if let Some(r) = m.reservation() {
        write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        write(dir, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(dir, "memory.oom_control", "1")?;
    }
    Ok(())
}

pub fn apply_memory_v2(dir: &Path, m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    if let Some(l) = m.limit() {
        write(dir, "memory.max", &max(l))?;
    }
    if let Some(s) = m.swap() {
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
    if let Some(r) = m.reservation() {
        write(dir, "memory.low", &r.to_string())?;
    }
    Ok(())
}

fn apply_cpu_v1(dir: &Path, cpuset: Option<&Path>, c: &oci_spec::runtime::LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares() {
        write(dir, "cpu.shares", &s.to_string())?;
    }
    if let Some(p) = c.period() {
        write(dir, "cpu.cfs_period_us", &p.to_string())?;
    }
    if let Some(q) = c.quota() {
        write(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(b) = c.burst() {
        write(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(p) = c.realtime_period() {
        write(dir, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime() {
        write(dir, "cpu.rt_runtime_us", &r.to_string())?;
    }
    if let Some(cs) = cpuset {
        if let Some(v) = c.cpus() {
            write(cs, "cpuset.cpus", v)?;
        }
        if let Some(v) = c.mems() {
            write(cs, "cpuset.mems", v)?;
        }
    }
    Ok(())
}

pub fn apply_cpu_v2(dir: &Path, c: &oci_spec::runtime::LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares() {
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
    if let Some(b) = c.burst() {
        write(dir, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string())?;
    }
    if let Some(v) = c.cpus() {
        write(dir, "cpuset.cpus", v)?;
    }
    if let Some(v) = c.mems() {
        write(dir, "cpuset.mems", v)?;
    }
    Ok(())
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

fn apply_devices_v1(dir: &Path, devs: &[LinuxDeviceCgroup]) -> Result<()> {
    for d in devs {
        let file = if d.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(dir, file, &device_rule(d))?;
    }
    for r in DEFAULT_ALLOWED_DEVICES {
        write(dir, "devices.allow", r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str =
        "30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/systemd rw shared:13 - cgroup cgroup rw,xattr,name=systemd";
    const SELF: &str =
        "4:memory:/user/x\n3:cpu,cpuacct:/\n2:name=systemd:/init.scope\n0::/unified/y\n";

    #[test]
    fn hybrid_layout_is_parsed_from_mountinfo() {
        let l = Layout::parse(HYBRID, SELF);
        assert_eq!(
            l.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert_eq!(l.unified_self, PathBuf::from("/unified/y"));
        assert_eq!(l.v1.len(), 3);
        let cpu = l.v1_dir("cpuacct").unwrap();
        assert_eq!(cpu.options, "cpu,cpuacct");
        assert_eq!(
            l.v1_dir("memory").unwrap().path_of_self,
            PathBuf::from("/user/x")
        );
        assert_eq!(l.v1_dir("name=systemd").unwrap().options, "name=systemd");
        assert!(!l.is_v2());
        assert_eq!(
            l.symlinks(),
            vec![
                ("cpu".into(), "cpu,cpuacct".into()),
                ("cpuacct".into(), "cpu,cpuacct".into())
            ]
        );
        let cg = Cgroup::locate(&l, None, "c1");
        assert!(cg
            .v1
            .iter()
            .any(|(_, d)| d == Path::new("/sys/fs/cgroup/memory/stockade/c1")));
        let rel = Cgroup::locate(&l, Some(Path::new("sub/c1")), "c1");
        assert!(rel
            .v1
            .iter()
            .any(|(_, d)| d == Path::new("/sys/fs/cgroup/memory/user/x/sub/c1")));
        assert_eq!(
            rel.v2.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified/unified/y/sub/c1"))
        );
    }

    #[test]
    fn shares_convert_to_weight_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn cpuset_lists_parse_and_reject_garbage() {
        assert_eq!(parse_cpuset("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpuset("2-1").is_err());
        assert!(parse_cpuset("x").is_err());
        assert!(parse_cpuset("").is_err());
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
