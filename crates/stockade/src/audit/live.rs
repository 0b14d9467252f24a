//! `stockade audit --pid PID`: the posture of a live process, read from the host's `/proc`.
//!
//! Namespaces are compared by inode with pid 1's (the host's init, when run on the host);
//! capabilities, no_new_privs and seccomp come from `/proc/PID/status`; cgroup limits in effect
//! are the smallest along the process's cgroup path up to the hierarchy's root; mounts come from
//! `/proc/PID/mountinfo`, and a bind mount is traced back to its host path by matching its device
//! and root with the host's mount table. A process that exits mid-read yields what was read,
//! marked partial.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::{ev, AuditError, Ev, HostMount, Posture, Result, Seccomp, MUST_MASK};
use crate::capabilities::{status_field, status_mask};
use crate::cgroups::Layout;
use crate::mountinfo::{parse_mountinfo, MountEntry};

/// The process went away while being read.
struct Gone(String);

struct Proc {
    pid: i32,
    dir: PathBuf,
}

impl Proc {
    fn read(&self, file: &str) -> std::result::Result<String, Gone> {
        fs::read_to_string(self.dir.join(file)).map_err(|e| {
            if self.dir.exists() {
                Gone(format!("/proc/{}/{file}: {e}", self.pid))
            } else {
                Gone(format!(
                    "the process exited while /proc/{}/{file} was being read",
                    self.pid
                ))
            }
        })
    }
    fn path(&self, file: &str) -> String {
        format!("/proc/{}/{file}", self.pid)
    }
}

/// Read a live process's posture. A missing pid is an error; a process that exits part-way
/// gives a posture with `partial` set.
pub fn read(pid: i32) -> Result<Posture> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    if pid <= 0 || !dir.join("status").exists() {
        return Err(AuditError::Pid(pid, "no such process".into()));
    }
    let proc_ = Proc { pid, dir };
    let comm = proc_
        .read("comm")
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    let mut p = Posture::new(format!("pid {pid} ({comm})"), None);
    if let Err(Gone(why)) = fill(&proc_, &mut p) {
        if p.caps.is_none() {
            return Err(AuditError::Pid(pid, why));
        }
        p.partial = Some(why);
    }
    Ok(p)
}

/// Read what `p` says of the process, in this order (a read that fails ends it: the process is
/// gone): namespaces, uid, privileges, cgroup limits, mounts.
fn fill(pr: &Proc, p: &mut Posture) -> std::result::Result<(), Gone> {
    let status = pr.read("status")?;
    namespaces(pr, p)?;
    user(pr, &status, p)?;
    privileges(pr, &status, p);
    cgroup_limits(pr, p)?;
    mounts(pr, p)
}

/// Namespaces, by inode against the host's: pid 1's where they can be read (some init processes
/// cannot be inspected even by root), else this auditing process's own.
fn namespaces(pr: &Proc, p: &mut Posture) -> std::result::Result<(), Gone> {
    let host_ns_dir = if fs::read_link("/proc/1/ns/mnt").is_ok() {
        "/proc/1/ns"
    } else {
        "/proc/self/ns"
    };
    for (file, ns) in [
        ("pid", "pid"),
        ("net", "network"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("user", "user"),
        ("cgroup", "cgroup"),
        ("mnt", "mount"),
        ("time", "time"),
    ] {
        let mine = fs::read_link(pr.dir.join("ns").join(file));
        let host = fs::read_link(format!("{host_ns_dir}/{file}"));
        match (mine, host) {
            (Ok(a), Ok(h)) if a == h => p.shared_ns.push((
                ns,
                format!(
                    "{} = {} (same as {host_ns_dir}/{file})",
                    pr.path(&format!("ns/{file}")),
                    a.display()
                ),
            )),
            (Ok(_), Ok(_)) => {}
            (Err(e), _) if !pr.dir.exists() => return Err(Gone(format!("ns/{file}: {e}"))),
            (Err(e), _) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Gone(format!("{}: {e}", pr.path(&format!("ns/{file}")))))
            }
            _ => {} // this kernel lacks it
        }
    }
    Ok(())
}

/// The uid inside (the effective uid through uid_map).
fn user(pr: &Proc, status: &str, p: &mut Posture) -> std::result::Result<(), Gone> {
    let uid_map = pr.read("uid_map")?;
    let host_uid: u64 = status_field(status, "Uid")
        .and_then(|u| u.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or(u64::MAX);
    let inside = uid_map.lines().find_map(|l| {
        let v: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.len() == 3 && host_uid >= v[1] && host_uid < v[1] + v[2]).then(|| v[0] + host_uid - v[1])
    });
    p.runs_as_root = Some(ev(
        inside == Some(0),
        format!(
            "{} Uid (effective, host view) = {host_uid}; uid_map {:?} → uid {} inside",
            pr.path("status"),
            uid_map.trim(),
            inside.map(|u| u.to_string()).unwrap_or("unmapped".into())
        ),
    ));
    Ok(())
}

/// Capabilities reachable (effective, permitted, ambient; the bounding set too when
/// no_new_privs is off: a setuid-root binary or file capabilities raise up to it), no_new_privs
/// and seccomp, from /proc/PID/status.
fn privileges(pr: &Proc, status: &str, p: &mut Posture) {
    let nnp = status_field(status, "NoNewPrivs") == Some("1");
    let mut mask = status_mask(status, "CapEff")
        | status_mask(status, "CapPrm")
        | status_mask(status, "CapAmb");
    if !nnp {
        mask |= status_mask(status, "CapBnd");
    }
    let caps: BTreeSet<String> = crate::capabilities::decode_mask(mask).into_iter().collect();
    p.caps = Some(ev(
        caps,
        format!(
            "{} CapEff {} CapPrm {} CapAmb {} CapBnd {}{}",
            pr.path("status"),
            status_field(status, "CapEff").unwrap_or("?"),
            status_field(status, "CapPrm").unwrap_or("?"),
            status_field(status, "CapAmb").unwrap_or("?"),
            status_field(status, "CapBnd").unwrap_or("?"),
            if nnp {
                ""
            } else {
                " (bounding counted: no_new_privs is off)"
            }
        ),
    ));
    p.no_new_privs = Some(ev(
        nnp,
        format!(
            "{} NoNewPrivs: {}",
            pr.path("status"),
            status_field(status, "NoNewPrivs").unwrap_or("?")
        ),
    ));
    let sc_at = format!(
        "{} Seccomp: {}, Seccomp_filters: {}",
        pr.path("status"),
        status_field(status, "Seccomp").unwrap_or("?"),
        status_field(status, "Seccomp_filters").unwrap_or("?")
    );
    p.seccomp = match status_field(status, "Seccomp") {
        Some("0") => Some(ev(Seccomp::Unconfined, sc_at)),
        Some(_) => Some(ev(
            Seccomp::Filtered {
                blocks_keyctl: None,
            },
            sc_at,
        )),
        None => None,
    };
}

/// The cgroup limits in effect.
fn cgroup_limits(pr: &Proc, p: &mut Posture) -> std::result::Result<(), Gone> {
    let cg = pr.read("cgroup")?;
    let layout = Layout::detect().ok();
    if let Some(layout) = &layout {
        p.memory_limit = limit(layout, &cg, "memory", "memory.limit_in_bytes", "memory.max")
            .map(|e| map_ev(e, |v| v.and_then(|x| u64::try_from(x).ok())));
        p.pids_limit = limit(layout, &cg, "pids", "pids.max", "pids.max");
        p.cpu_limit = limit(layout, &cg, "cpu", "cpu.cfs_quota_us", "cpu.max")
            .map(|e| map_ev(e, |v| v.map(|q| format!("quota {q}"))));
    }
    Ok(())
}

/// Filesystems that hold no files a setuid bit could be on.
const NO_FILES: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "mqueue",
    "devpts",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "pstore",
    "fusectl",
    "configfs",
    "hugetlbfs",
    "binfmt_misc",
    "autofs",
    "efivarfs",
];

/// What /proc/PID/mountinfo says: the root's mode, mounts without nosuid, what is left unmasked,
/// /proc/sys; then, for a process in a mount namespace of its own, host paths and devices.
fn mounts(pr: &Proc, p: &mut Posture) -> std::result::Result<(), Gone> {
    let mi = parse_mountinfo(&pr.read("mountinfo")?);
    let mi_at = pr.path("mountinfo");
    if let Some(root) = mi.iter().rev().find(|m| m.mountpoint == "/") {
        let ro = root.options.iter().any(|o| o == "ro");
        p.readonly_root = Some(ev(
            ro,
            format!("{mi_at}: / is {}", if ro { "ro" } else { "rw" }),
        ));
    }
    let suid: Vec<String> = mi
        .iter()
        .filter(|m| {
            !m.options.iter().any(|o| o == "nosuid") && !NO_FILES.contains(&m.fstype.as_str())
        })
        .map(|m| m.mountpoint.clone())
        .collect();
    p.suid_mounts = Some(ev(suid, format!("{mi_at}: mounts without nosuid")));
    p.unmasked = Some(ev(
        unmasked(pr, &mi),
        format!("{mi_at}: no mount over these"),
    ));
    if let Some(m) = covering(&mi, "/proc/sys") {
        if m.fstype == "proc" {
            let rw = m.options.iter().any(|o| o == "rw");
            p.proc_sys_writable = Some(ev(
                rw,
                format!(
                    "{mi_at}: {} ({}) is {}",
                    m.mountpoint,
                    m.fstype,
                    if rw { "rw" } else { "ro" }
                ),
            ));
        }
    }
    // Host paths behind bind mounts, and propagation peers shared with the host. Only for a
    // process in its own mount namespace: one that shares the host's sees the host as it is.
    if p.shared_ns.iter().all(|(n, _)| *n != "mount") {
        host_mounts(&mi, &mi_at, p);
        host_devices(pr, p);
    }
    Ok(())
}

/// The deepest mount (the last one mounted of those) that `path` is at or under.
fn covering(mi: &[MountEntry], path: &str) -> Option<MountEntry> {
    mi.iter()
        .rev()
        .filter(|m| {
            path == m.mountpoint
                || path.starts_with(&format!("{}/", m.mountpoint.trim_end_matches('/')))
        })
        .max_by_key(|m| m.mountpoint.len())
        .cloned()
}

/// The files of [`MUST_MASK`] with no mount of their own over them, under a proc or sysfs
/// mount, present in the process's root.
fn unmasked(pr: &Proc, mi: &[MountEntry]) -> Vec<String> {
    let mounted_at = |path: &str| mi.iter().rev().find(|m| m.mountpoint == path);
    let root_dir = pr.dir.join("root");
    MUST_MASK
        .iter()
        .filter(|f| {
            mounted_at(f).is_none()
                && covering(mi, f).is_some_and(|m| m.fstype == "proc" || m.fstype == "sysfs")
                && root_dir.join(f.trim_start_matches('/')).exists()
        })
        .map(|f| f.to_string())
        .collect()
}

/// Mounts of the process whose host path is sensitive, or that are propagation peers of a host
/// mount.
fn host_mounts(mi: &[MountEntry], mi_at: &str, p: &mut Posture) {
    let host = parse_mountinfo(
        &fs::read_to_string("/proc/1/mountinfo")
            .or_else(|_| fs::read_to_string("/proc/self/mountinfo"))
            .unwrap_or_default(),
    );
    let host_groups: BTreeSet<&str> = host
        .iter()
        .flat_map(|m| {
            m.optional
                .iter()
                .filter(|o| o.starts_with("shared:"))
                .map(String::as_str)
        })
        .collect();
    for m in mi {
        let Some(src) = host_path(&host, m) else {
            continue;
        };
        let shared = m.optional.iter().any(|o| host_groups.contains(o.as_str()));
        let sensitive = super::is_sensitive_dir(&src) || super::is_engine_socket(&src);
        if sensitive || shared {
            p.host_mounts.push(HostMount {
                writable: m.options.iter().any(|o| o == "rw"),
                shared_propagation: shared,
                at: format!(
                    "{mi_at}: {} (dev {}, root {}, {}{}) is host {src}",
                    m.mountpoint,
                    m.dev,
                    m.root,
                    m.options.join(","),
                    if shared {
                        ", propagation peer of the host"
                    } else {
                        ""
                    }
                ),
                source: src,
                destination: m.mountpoint.clone(),
            });
        }
    }
}

/// Host devices: block devices and character devices beyond the standard set.
fn host_devices(pr: &Proc, p: &mut Posture) {
    const STANDARD: &[&str] = &[
        "null", "zero", "full", "random", "urandom", "tty", "console", "ptmx", "fuse",
    ];
    let Ok(rd) = fs::read_dir(pr.dir.join("root").join("dev")) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_block_device() || (ft.is_char_device() && !STANDARD.contains(&name.as_str())) {
            p.devices.push(ev(
                format!("/dev/{name}"),
                format!(
                    "{}/dev/{name} is a {} device",
                    pr.path("root"),
                    if ft.is_block_device() {
                        "block"
                    } else {
                        "character"
                    }
                ),
            ));
        }
    }
}

/// Where on the host a mount of the container comes from: a host mount on the same device whose
/// root is a prefix of this one's root. `None` for mounts of their own (proc, tmpfs, overlay).
fn host_path(host: &[MountEntry], m: &MountEntry) -> Option<String> {
    if matches!(
        m.fstype.as_str(),
        "proc" | "sysfs" | "tmpfs" | "devpts" | "mqueue" | "cgroup" | "cgroup2" | "overlay"
    ) {
        return None;
    }
    let h = host
        .iter()
        .filter(|h| {
            h.dev == m.dev
                && (m.root == h.root
                    || m.root
                        .starts_with(&format!("{}/", h.root.trim_end_matches('/'))))
        })
        .max_by_key(|h| h.root.len())?;
    let rel = m
        .root
        .strip_prefix(h.root.trim_end_matches('/'))
        .unwrap_or("");
    let path = format!("{}{}", h.mountpoint.trim_end_matches('/'), rel);
    Some(if path.is_empty() { "/".into() } else { path })
}

fn map_ev<T, U>(e: Ev<T>, f: impl FnOnce(T) -> U) -> Ev<U> {
    Ev {
        value: f(e.value),
        at: e.at,
    }
}

/// The smallest limit along the process's cgroup path (v1 `controller` hierarchy, else v2).
/// `None` inside when no level sets one; outer `None` when the controller is nowhere.
fn limit(
    layout: &Layout,
    proc_cgroup: &str,
    controller: &str,
    v1_file: &str,
    v2_file: &str,
) -> Option<Ev<Option<i64>>> {
    let (mount, rel, file) = if let Some(h) = layout.v1_dir(controller) {
        let rel = proc_cgroup.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            ctrls
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })?;
        (h.mountpoint.clone(), rel, v1_file)
    } else {
        let mount = layout.unified.clone()?;
        let rel = proc_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(String::from))?;
        (mount, rel, v2_file)
    };
    let mut dir = mount.join(rel.trim_start_matches('/'));
    let mut best: Option<(i64, PathBuf)> = None;
    let mut seen_file = false;
    loop {
        if let Ok(text) = fs::read_to_string(dir.join(file)) {
            seen_file = true;
            if let Some(v) = parse_limit(&text) {
                if best.as_ref().is_none_or(|(b, _)| v < *b) {
                    best = Some((v, dir.join(file)));
                }
            }
        }
        if dir == mount || !dir.pop() || !dir.starts_with(&mount) {
            break;
        }
    }
    if !seen_file {
        return None;
    }
    let start = mount.join(rel.trim_start_matches('/')).join(file);
    Some(match best {
        Some((v, at)) => ev(Some(v), format!("{} = {v}", at.display())),
        None => ev(
            None,
            format!("{} and every parent: no limit", Path::new(&start).display()),
        ),
    })
}

/// A limit file's value: `max`, -1, or a v1 "unlimited" (≥ 2^62) is no limit; `cpu.max` is
/// "QUOTA PERIOD".
fn parse_limit(text: &str) -> Option<i64> {
    let first = text.split_whitespace().next()?;
    if first == "max" {
        return None;
    }
    let v: i64 = first.parse().ok()?;
    (v > 0 && v < (1i64 << 62)).then_some(v)
}
