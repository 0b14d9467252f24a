//! Where the cgroup hierarchies are: v1, v2 or hybrid, read from `/proc/self/mountinfo`, and
//! this process's own cgroup in each.

use std::path::{Path, PathBuf};

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
    /// The cgroup the mount shows at its mountpoint (`/`, or a container's own cgroup when an
    /// engine bound only that).
    pub root: PathBuf,
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
    /// The cgroup the unified mount shows at its mountpoint.
    pub unified_root: PathBuf,
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
        let (whole, part): (Vec<_>, Vec<_>) = crate::mountinfo::parse_mountinfo(mountinfo)
            .into_iter()
            .partition(|m| m.root == "/");
        for m in whole.into_iter().chain(part) {
            let mountpoint = PathBuf::from(m.mountpoint);
            match m.fstype.as_str() {
                "cgroup2" if layout.unified.is_none() => {
                    layout.unified = Some(mountpoint);
                    layout.unified_root = PathBuf::from(&m.root);
                }
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
                        root: PathBuf::from(&m.root),
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

    /// Where the cgroup `path` (from the hierarchy's root, as /proc/PID/cgroup and systemd
    /// name it) is under a mount showing `root` at `mountpoint`.
    pub fn under_mount(mountpoint: &Path, root: &Path, path: &Path) -> PathBuf {
        let rel = path.strip_prefix(root).unwrap_or(path);
        mountpoint.join(rel.strip_prefix("/").unwrap_or(rel))
    }

    pub fn v1_dir(&self, controller: &str) -> Option<&Hierarchy> {
        self.v1.iter().find(|h| h.has(controller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::Cgroup;

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
}
