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

use std::os::fd::OwnedFd;

use crate::error::{Error, Result};

pub mod device_filter;

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
        let mountinfo = crate::sys::read_proc("/proc/self/mountinfo")
            .map_err(|e| Error::Cgroup(format!("read mountinfo: {e}")))?;
        let selfcg = crate::sys::read_proc("/proc/self/cgroup")
            .map_err(|e| Error::Cgroup(format!("read /proc/self/cgroup: {e}")))?;
        Ok(Self::parse(&mountinfo, &selfcg))
    }

    /// The same hierarchies with this process's own cgroup in each read again: for a process
    /// that has moved (or entered a cgroup namespace) since `self` was detected, in the same
    /// mount namespace. Saves reading and parsing the whole mount table.
    pub fn reread_own(&self) -> Result<Layout> {
        let selfcg = crate::sys::read_proc("/proc/self/cgroup")
            .map_err(|e| Error::Cgroup(format!("read /proc/self/cgroup: {e}")))?;
        let mut l = self.clone();
        l.set_own(&selfcg);
        Ok(l)
    }

    pub fn parse(mountinfo: &str, selfcg: &str) -> Layout {
        let mut layout = Layout::default();
        // One mount per hierarchy: the first of those showing the hierarchy's root (`/`), then
        // the first of any other. Later ones are other containers' views (a container sharing
        // this mount namespace mounts its own cgroups under its rootfs: read-only, rooted at its
        // cgroup), never the host's.
        let (whole, part): (Vec<_>, Vec<_>) = crate::rootfs::parse_mountinfo(mountinfo)
            .into_iter()
            .partition(|m| m.root == "/");
        for m in whole.into_iter().chain(part) {
            let mountpoint = PathBuf::from(m.mountpoint);
            match m.fstype.as_str() {
                "cgroup2" if layout.unified.is_none() => layout.unified = Some(mountpoint),
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_options
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
                    layout.v1.push(Hierarchy {
                        mountpoint,
                        options: controllers.join(","),
                        controllers,
                        path_of_self: PathBuf::new(),
                    });
                }
                _ => {}
            }
        }
        layout.set_own(selfcg);
        layout
    }

    /// This process's cgroup in every hierarchy, from /proc/self/cgroup's text.
    fn set_own(&mut self, selfcg: &str) {
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
        if self.unified.is_some() {
            self.unified_self = own(&|c| c.is_empty());
        }
        for h in &mut self.v1 {
            let mut want: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
            want.sort();
            h.path_of_self = own(&|c| {
                let mut a: Vec<&str> = c.split(',').collect();
                a.sort();
                a == want
            });
        }
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

/// The systemd cgroup driver (`slice:prefix:name`) is not implemented; say so, and whether
/// systemd even runs here, instead of silently using the cgroupfs driver.
pub fn systemd_unsupported(path: &str) -> String {
    let running = Path::new("/run/systemd/system").is_dir();
    format!(
        "{path:?} is a systemd slice:prefix:name path; stockade has no systemd cgroup driver yet{}. Use a plain path such as /stockade/ID",
        if running { "" } else { " (and systemd is not running on this host)" }
    )
}

/// Field-level checks of `linux.resources`: (field, message).
pub fn validate(r: &LinuxResources) -> std::result::Result<(), (String, String)> {
    // 0 means "not set" for limits and weights in specs from Docker and friends (runc reads it
    // so); negative values other than -1 and out-of-range values are errors.
    let err = |f: &str, m: String| Err((f.to_string(), m));
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
    if let Some(p) = r.pids() {
        if p.limit() < -1 {
            return err(
                "pids.limit",
                format!("{} is not a limit (-1 or 0: none)", p.limit()),
            );
        }
    }
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
    /// Ancestors `create` had to make (`/stockade`, or the parents of a nested `cgroupsPath`):
    /// removed again by `destroy` once empty, so nothing is left behind.
    #[serde(default)]
    pub made_parents: Vec<PathBuf>,
    /// The default `/stockade` parent is shared: never recorded as made.
    #[serde(skip)]
    pub keep_parent: bool,
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
        let mut cg = Cgroup {
            v1,
            v2,
            made_parents: vec![],
            keep_parent: false,
        };
        // stockade's own `/stockade` parent stays (like /run/stockade): made once, shared by all
        // containers, and removing it would cost two RCU-bound cgroup operations per hierarchy
        // for every container.
        cg.keep_parent = cgroups_path.is_none();
        cg
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
    pub fn create(&mut self) -> Result<()> {
        self.create_v2()?;
        if let Err(e) = self.create_v1() {
            if let Some(v2) = &self.v2 {
                self.remove_dirs(std::slice::from_ref(v2));
            }
            return Err(e);
        }
        Ok(())
    }

    /// The unified directory alone, before the container's process exists, so it can be born
    /// in it (`CLONE_INTO_CGROUP`): returns the directory, opened for that.
    pub fn create_v2(&mut self) -> Result<Option<OwnedFd>> {
        let Some(v2) = self.v2.clone() else {
            return Ok(None);
        };
        self.make_dirs(std::slice::from_ref(&v2))?;
        enable_v2_controllers(&v2);
        let fd = fs::File::open(&v2)
            .map_err(|e| Error::Cgroup(format!("open {}: {e}", v2.display())))?;
        Ok(Some(fd.into()))
    }

    /// Every v1 hierarchy's directory (a v1 cpuset gets its parent's cpus and mems).
    pub fn create_v1(&mut self) -> Result<()> {
        let dirs: Vec<PathBuf> = self.v1.iter().map(|(_, d)| d.clone()).collect();
        self.make_dirs(&dirs)?;
        // A new v1 cpuset starts with no cpus and no memory nodes, and takes no task until given
        // some: inherit the parent's (cpu.cpus / cpu.mems narrow them later).
        if let Some(cs) = self.v1("cpuset") {
            if let Err(e) = inherit_cpuset(cs) {
                self.remove_dirs(&dirs);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Each v1 hierarchy's `tasks` file, open for writing. A thread that writes "0" to one moves
    /// itself, which the kernel does without the global lock a write of a pid to
    /// `cgroup.procs` takes (and whose RCU grace period costs milliseconds): the container's
    /// process joins its v1 cgroups this way, through descriptors the runtime opened.
    pub fn v1_tasks_files(&self) -> Result<Vec<OwnedFd>> {
        self.v1
            .iter()
            .map(|(_, d)| {
                fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("tasks"))
                    .map(OwnedFd::from)
                    .map_err(|e| Error::Cgroup(format!("open {}/tasks: {e}", d.display())))
            })
            .collect()
    }

    fn make_dirs(&mut self, dirs: &[PathBuf]) -> Result<()> {
        let mut made = vec![];
        for d in dirs {
            let mut attempt = 0;
            loop {
                // The common case first: the parent (`/stockade`) is there already.
                let err = match fs::create_dir(d) {
                    Ok(()) => {
                        made.push(d.clone());
                        break;
                    }
                    Err(e) => e,
                };
                // A missing parent (the first container, a nested cgroupsPath, or one removed
                // under us by a concurrent `delete` of its last child): make it, then retry.
                if err.kind() == io::ErrorKind::NotFound && attempt < 3 {
                    attempt += 1;
                    if let Some(parent) = d.parent() {
                        let missing: Vec<PathBuf> = parent
                            .ancestors()
                            .take_while(|a| !a.exists())
                            .map(Path::to_path_buf)
                            .collect();
                        if let Err(e) = fs::create_dir_all(parent) {
                            self.remove_dirs(&made);
                            return Err(Error::Cgroup(format!("mkdir {}: {e}", parent.display())));
                        }
                        for m in missing {
                            if !self.keep_parent && !self.made_parents.contains(&m) {
                                self.made_parents.push(m);
                            }
                        }
                    }
                    continue;
                }
                self.remove_dirs(&made);
                return Err(Error::Cgroup(
                    if err.kind() == io::ErrorKind::AlreadyExists {
                        format!(
                            "{} already exists (another container with this cgroupsPath?)",
                            d.display()
                        )
                    } else {
                        format!("mkdir {}: {err}", d.display())
                    },
                ));
            }
        }
        Ok(())
    }

    fn remove_dirs(&self, dirs: &[PathBuf]) {
        for d in dirs {
            let _ = fs::remove_dir(d);
        }
        self.remove_made_parents();
    }

    /// The parents `create` made, deepest first; those still holding other cgroups stay.
    fn remove_made_parents(&self) {
        let mut parents = self.made_parents.clone();
        parents.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in parents {
            let _ = fs::remove_dir(p);
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

    /// Every pid in the container's cgroup (any hierarchy that lists them).
    pub fn pids(&self) -> Vec<i32> {
        let mut all: Vec<i32> = self.dirs().flat_map(|d| procs(d)).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Freeze (`true`) or thaw every process: v1 freezer, or v2 `cgroup.freeze`; waits until the
    /// kernel reports the state reached.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        if let Some(dir) = self.v1("freezer") {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            for _ in 0..2000 {
                write(dir, "freezer.state", want)?;
                if fs::read_to_string(dir.join("freezer.state"))
                    .map(|s| s.trim() == want)
                    .unwrap_or(false)
                {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
            return Err(Error::Cgroup(format!(
                "{}: did not become {want}",
                dir.display()
            )));
        }
        let dir = self
            .v2
            .as_ref()
            .filter(|d| d.join("cgroup.freeze").exists())
            .ok_or_else(|| Error::Cgroup("no freezer on this host".into()))?;
        write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        for _ in 0..2000 {
            if fs::read_to_string(dir.join("cgroup.events"))
                .map(|s| s.lines().any(|l| l == want))
                .unwrap_or(false)
            {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        Err(Error::Cgroup(format!(
            "{}: did not reach {want}",
            dir.display()
        )))
    }

    pub fn is_frozen(&self) -> bool {
        if let Some(dir) = self.v1("freezer") {
            return fs::read_to_string(dir.join("freezer.state"))
                .map(|s| s.trim() == "FROZEN")
                .unwrap_or(false);
        }
        self.v2.as_ref().is_some_and(|d| {
            fs::read_to_string(d.join("cgroup.freeze"))
                .map(|s| s.trim() == "1")
                .unwrap_or(false)
        })
    }

    /// Signal every process of the container. SIGKILL on v2 is `cgroup.kill` (race-free); elsewhere
    /// freeze, signal each member, thaw, so nothing forks away in between.
    pub fn signal_all(&self, sig: nix::sys::signal::Signal) -> Result<()> {
        use nix::sys::signal::{kill, Signal};
        if sig == Signal::SIGKILL {
            if let Some(d) = self
                .v2
                .as_ref()
                .filter(|d| d.join("cgroup.kill").exists() && !procs(d).is_empty())
            {
                return write(d, "cgroup.kill", "1");
            }
        }
        let frozen = self.freeze(true).is_ok();
        for pid in self.pids() {
            let _ = kill(nix::unistd::Pid::from_raw(pid), sig);
        }
        if frozen {
            self.freeze(false)?;
        }
        Ok(())
    }

    /// Statistics in the shape of runc's `events --stats` data.
    pub fn stats(&self) -> serde_json::Value {
        let read = |d: &Path, f: &str| fs::read_to_string(d.join(f)).ok();
        let num = |d: &Path, f: &str| {
            read(d, f)
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let kv = |d: &Path, f: &str| -> serde_json::Map<String, serde_json::Value> {
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
        };
        let mut out = serde_json::json!({});
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
        out
    }

    /// Kill what is left and remove every directory. Safe to call repeatedly.
    pub fn destroy(&self) -> Result<()> {
        // One after the other: every cgroup rmdir takes the kernel's cgroup_mutex, so threads
        // would only queue on it (measured: slower than this loop).
        let errs: Vec<String> = self.dirs().filter_map(|d| remove_cgroup_dir(d)).collect();
        if errs.is_empty() {
            self.remove_made_parents();
            Ok(())
        } else {
            Err(Error::Cgroup(errs.join("; ")))
        }
    }
}

/// rmdir one cgroup directory, killing what is still in it; the error, if any.
fn remove_cgroup_dir(d: &Path) -> Option<String> {
    for attempt in 0..200 {
        match fs::remove_dir(d) {
            Ok(()) => return None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
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
            Err(e) => return Some(format!("rmdir {}: {e}", d.display())),
        }
    }
    None
}

/// Fill empty cpuset.cpus/mems from the nearest ancestor that has them, down to `dir` (parents
/// may be new and empty too). Reads upwards only as far as needed: usually `dir` and its parent.
fn inherit_cpuset(dir: &Path) -> Result<()> {
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

pub fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    fs::write(dir.join(file), value).map_err(|e| {
        if !dir.join(file).exists() && dir.exists() {
            // cgroupfs cannot create files: the controller or this kernel lacks the knob
            // (blkio weights need the BFQ scheduler; kernel memory limits are gone since 6.x)
            return Error::Cgroup(format!(
                "{file}: this host's kernel does not offer it in {} (cannot set {value:?})",
                dir.display()
            ));
        }
        Error::Cgroup(format!(
            "write {:?} to {}: {e}",
            value,
            dir.join(file).display()
        ))
    })
}

/// Enable every available controller from the v2 root down to `dir`'s parent.
fn enable_v2_controllers(dir: &Path) {
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

fn apply_memory_v1(dir: &Path, m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
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

fn apply_blkio_v1(dir: &Path, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
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

fn apply_cpu_v1(dir: &Path, cpuset: Option<&Path>, c: &oci_spec::runtime::LinuxCpu) -> Result<()> {
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

    /// A container sharing the host's mount namespace has its own cgroup mounts under its
    /// rootfs, later in the table and rooted at its cgroup: the host's hierarchies still win.
    #[test]
    fn other_containers_cgroup_mounts_are_not_the_hosts() {
        let with_container = format!(
            "{HYBRID}
90 80 0:27 /stockade/c /tmp/b/rootfs/sys/fs/cgroup/unified ro,nosuid - cgroup2 cgroup2 rw
91 80 0:33 /stockade/c /tmp/b/rootfs/sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
92 80 0:44 / /tmp/b/rootfs/sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids"
        );
        let l = Layout::parse(&with_container, SELF);
        assert_eq!(l.unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(
            l.v1_dir("memory").unwrap().mountpoint,
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        // a hierarchy only a container shows is still found (nested runtimes see only theirs)
        assert_eq!(
            l.v1_dir("pids").unwrap().mountpoint,
            PathBuf::from("/tmp/b/rootfs/sys/fs/cgroup/pids")
        );
        // a table listing the container's unified mount first, rooted below: the host's still wins
        let reordered = with_container.replace(
            "31 30 0:27 / /sys/fs/cgroup/unified",
            "31 30 0:27 /x /sys/fs/cgroup/elsewhere",
        );
        let l = Layout::parse(
            &format!("{reordered}\n93 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw"),
            SELF,
        );
        assert_eq!(l.unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
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

    #[test]
    fn systemd_paths_are_refused_with_a_reason() {
        let m = systemd_unsupported("system.slice:stockade:abc");
        assert!(m.contains("systemd cgroup driver"), "{m}");
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
