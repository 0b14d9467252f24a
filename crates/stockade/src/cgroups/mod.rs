//! Seed §2 ("Hardware"): cgroups ration what namespaces divide, so one sandbox cannot starve the
//! others. cgroup v1, v2 and hybrid hosts, detected from `/proc/self/mountinfo`.
//!
//! Written by hand rather than with youki's `libcgroups`: that crate brings a systemd D-Bus client,
//! an eBPF loader and async plumbing for what is, here, writing a few dozen small files in an order
//! that matters; keeping the file writes in one module makes that order easy to read and test
//! (the v2 file logic runs against a temporary directory tree in the tests).
//!
//! `layout.rs` finds the hierarchies, `validate.rs` checks `linux.resources` before anything is
//! made, `resources.rs` writes them (file formats in `v1.rs` and `v2.rs`), `stats.rs` reads the
//! statistics back, `device_filter.rs` builds the v2 device program, `systemd.rs` is the systemd
//! driver (a transient unit per container over [`crate::dbus`]; the files are then written the
//! same way); this file is the container's cgroup itself: its directories, made and removed, and
//! the processes in them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use std::os::fd::OwnedFd;

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};

pub mod device_filter;
mod layout;
mod resources;
mod stats;
pub mod systemd;
mod v1;
mod v2;
mod validate;

pub use layout::{Hierarchy, Layout};
pub use resources::{device_rule, DEFAULT_ALLOWED_DEVICES};
use v1::inherit_cpuset;
use v2::enable_v2_controllers;
pub use v2::{apply_cpu_v2, apply_io_v2, apply_memory_v2, blkio_weight_to_io, shares_to_weight};
pub use validate::{parse_cpuset, validate};

/// The container's systemd unit (`--systemd-cgroup`), or None for the cgroupfs driver. Refuses,
/// before anything exists, what the chosen driver cannot take.
pub fn systemd_unit(
    cgroups_path: Option<&Path>,
    id: &str,
    systemd: bool,
    rootless: bool,
    config_file: &Path,
) -> Result<Option<systemd::Unit>> {
    let path = cgroups_path.map(|p| p.to_string_lossy().into_owned());
    if !systemd {
        if let Some(p) = path.as_deref().filter(|p| systemd::is_systemd_path(p)) {
            return Err(crate::error::config_err(
                config_file,
                "linux.cgroupsPath",
                format!("{p:?} is a systemd slice:prefix:name path: give --systemd-cgroup (systemd must be running), or use a plain path such as /stockade/ID"),
            ));
        }
        return Ok(None);
    }
    if rootless {
        return Err(Error::Cgroup(
            "--systemd-cgroup needs root: systemd's user manager is not supported".into(),
        ));
    }
    let unit = systemd::Unit::from_cgroups_path(path.as_deref(), id)
        .map_err(|m| crate::error::config_err(config_file, "linux.cgroupsPath", m))?;
    if !systemd::running() {
        return Err(Error::Cgroup("--systemd-cgroup: systemd is not running on this host (/run/systemd/system is missing): run without --systemd-cgroup and give a plain cgroupsPath such as /stockade/ID".into()));
    }
    Ok(Some(unit))
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
    /// The systemd driver's transient unit: systemd makes (and removes) its cgroup.
    #[serde(default)]
    pub systemd: Option<systemd::Unit>,
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
            systemd: None,
        };
        // stockade's own `/stockade` parent stays (like /run/stockade): made once, shared by all
        // containers, and removing it would cost two RCU-bound cgroup operations per hierarchy
        // for every container.
        cg.keep_parent = cgroups_path.is_none();
        cg
    }

    /// The cgroup for the container: under systemd's `unit`, or cgroupfs's `cgroups_path`.
    pub fn plan(
        layout: &Layout,
        cgroups_path: Option<&Path>,
        id: &str,
        unit: Option<systemd::Unit>,
    ) -> Cgroup {
        let Some(unit) = unit else {
            return Cgroup::locate(layout, cgroups_path, id);
        };
        let mut cg = Cgroup::at(layout, &unit.cgroup_path(&systemd::systemd_root()));
        // The slices' directories stockade will have to make in the v1 hierarchies systemd does
        // not manage, named in the state before anything exists: a `delete --force` after a
        // crash removes them too (once empty). Those systemd makes are dropped after the start.
        cg.made_parents = (cg.v1.iter())
            .filter(|(c, _)| !c.starts_with("name="))
            .flat_map(|(_, d)| {
                d.ancestors()
                    .skip(1)
                    .take_while(|a| !a.exists())
                    .map(Path::to_path_buf)
                    .collect::<Vec<_>>()
            })
            .collect();
        cg.systemd = Some(unit);
        cg
    }

    /// The cgroup `path` as the kernel names it (from each hierarchy's root), through this
    /// mount namespace's cgroup mounts.
    fn at(layout: &Layout, path: &Path) -> Cgroup {
        Cgroup {
            v1: (layout.v1.iter())
                .map(|h| {
                    let d = Layout::under_mount(&h.mountpoint, &h.root, path);
                    (h.options.clone(), d)
                })
                .collect(),
            v2: (layout.unified.as_ref())
                .map(|u| Layout::under_mount(u, &layout.unified_root, path)),
            ..Default::default()
        }
    }

    /// Whether every controller is on the unified hierarchy (systemd's property names differ).
    fn controllers_on_v2(&self) -> bool {
        self.v1
            .iter()
            .all(|(c, _)| c.split(',').all(|x| x.starts_with("name=")))
    }

    /// systemd driver: start the unit with `pid` in it (it moves the process), then take the
    /// directories where systemd put them. Nothing for the cgroupfs driver.
    pub fn start_unit(&mut self, id: &str, pid: i32, r: Option<&LinuxResources>) -> Result<()> {
        let Some(unit) = self.systemd.clone() else {
            return Ok(());
        };
        let v2 = self.controllers_on_v2();
        let mut props = match r {
            Some(r) => systemd::resource_properties(r, v2)?,
            None => vec![],
        };
        props.push(crate::dbus::Value::prop(
            if v2 {
                "IOAccounting"
            } else {
                "BlockIOAccounting"
            },
            crate::dbus::Value::Bool(true),
        ));
        let actual = match systemd::start(&unit, id, pid, props) {
            Ok(cg) => cg,
            Err(e @ Error::UnitExists(_)) => {
                // another container's unit: nothing here is ours to stop, kill or remove
                *self = Cgroup::default();
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if Path::new(&actual) != unit.cgroup_path(&systemd::systemd_root()) {
            // systemd's tree starts elsewhere than pid 1's cgroup said: follow the unit
            let at = Cgroup::at(&Layout::detect()?, Path::new(&actual));
            (self.v1, self.v2) = (at.v1, at.v2);
            self.made_parents.clear();
        }
        // where systemd made the unit's directory, the slices above it are systemd's
        let systemds: Vec<PathBuf> = (self.v1.iter())
            .map(|(_, d)| d.clone())
            .filter(|d| d.exists())
            .collect();
        self.made_parents
            .retain(|p| !systemds.iter().any(|d| d.starts_with(p)));
        Ok(())
    }

    /// `update`: the unit's properties (systemd driver), then the files.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        if let Some(unit) = &self.systemd {
            systemd::set_properties(
                unit,
                systemd::resource_properties(r, self.controllers_on_v2())?,
            )?;
        }
        self.apply(r)
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
        let Some(v2) = self.v2.clone().filter(|_| self.systemd.is_none()) else {
            // systemd makes the unit's directory, and only once it has the pid
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
                    // the systemd driver's unit: systemd made it (and put the process in it)
                    Err(e)
                        if e.kind() == io::ErrorKind::AlreadyExists && self.systemd.is_some() =>
                    {
                        break
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

    /// Kill what is left and remove every directory. Safe to call repeatedly.
    pub fn destroy(&self) -> Result<()> {
        let mut errs: Vec<String> = vec![];
        if let Some(unit) = &self.systemd {
            // nothing left to stop when systemd stops the unit: it is quick and kills nobody
            for d in self.dirs() {
                if fs::write(d.join("cgroup.kill"), "1").is_err() {
                    for pid in procs(d) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            if let Err(e) = systemd::stop(unit) {
                errs.push(e.to_string());
            }
        }
        // One after the other: every cgroup rmdir takes the kernel's cgroup_mutex, so threads
        // would only queue on it (measured: slower than this loop).
        errs.extend(self.dirs().filter_map(|d| remove_cgroup_dir(d)));
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
