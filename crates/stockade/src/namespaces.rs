//! Seed §1, namespaces: PID, mount, UTS, IPC, network, user, plus cgroup and time.
//!
//! The child is cloned straight into new user, PID, mount, UTS and IPC namespaces (the kernel
//! makes the user namespace first, so the others are owned by it); under a new user namespace
//! it makes its network namespace itself, first thing, while the runtime writes its id maps
//! (see [`Plan::net_made_by_child`]). The cgroup namespace is
//! unshared only after the runtime has moved the child into its cgroup, so the container sees its
//! own cgroup as `/`; the time namespace likewise, so its clock offsets can be written before
//! `execve` enters it. Namespaces given by `path` are joined with `setns`.

use std::fs::File;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};

/// What to do for each namespace type, in the order it must happen.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Flags given to clone3.
    pub clone_flags: CloneFlags,
    /// Namespaces to unshare in the child after the parent's setup (cgroup, time, and everything
    /// when the user namespace is joined rather than created).
    pub unshare_flags: CloneFlags,
    /// (type, path) to join, user namespace first.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    pub new_user: bool,
    pub new_pid: bool,
    pub new_net: bool,
    pub new_mount: bool,
    /// A PID namespace to join: entered by the runtime before cloning.
    pub join_pid: Option<PathBuf>,
    /// A new PID namespace while the user namespace is joined by path (a Kubernetes pod with
    /// `hostUsers: false`): it must be owned by that user namespace, or the container's root
    /// could not mount its /proc. The child is cloned from inside it ([`clone_under_user`]);
    /// holds the user namespace's path.
    pub pid_under_user: Option<PathBuf>,
    /// With a new user namespace: the network, IPC and UTS namespaces given by path, entered by
    /// the runtime before cloning (as runc's nsexec joins before it unshares the user
    /// namespace). From inside the new user namespace the child could not join them: they
    /// belong to another user namespace (an engine's, the host's).
    pub pre_join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// `linux.sysctl`, in the config's order.
    pub sysctls: Vec<(String, String)>,
    /// The network namespace joined by path whose `net.*` sysctls the runtime writes from
    /// outside (see [`Plan::runtime_written_netns`]).
    pub runtime_net_sysctls: Option<PathBuf>,
    /// `linux.timeOffsets`: (clock, seconds, nanoseconds).
    pub time_offsets: Vec<(String, i64, u32)>,
    /// `hostname` and `domainname` (UTS namespace).
    pub hostname: Option<String>,
    pub domainname: Option<String>,
}

impl Plan {
    /// A new network namespace under a new user namespace is made by the child itself, first
    /// thing, instead of by its clone: building one (loopback device, per-namespace sysctl
    /// tables, IPv6 configuration) is the largest single cost of starting a container, ~0.8 ms
    /// here, and the child would otherwise spend that time waiting for the runtime to write its
    /// id maps. Made by the child inside its user namespace, it is owned by that namespace,
    /// exactly as if the clone had made it.
    pub fn net_made_by_child(&self) -> bool {
        self.new_net && self.clone_flags.contains(CloneFlags::CLONE_NEWUSER)
    }

    /// The flags for clone3, less the network namespace when the child makes it.
    pub fn clone_flags_early_net(&self) -> CloneFlags {
        let mut f = self.clone_flags;
        if self.net_made_by_child() {
            f.remove(CloneFlags::CLONE_NEWNET);
        }
        f
    }
}

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

impl Plan {
    /// No mount namespace of its own nor one to join: the container shares the runtime's.
    pub fn host_mount_ns(&self) -> bool {
        !self.new_mount
            && !self
                .join
                .iter()
                .any(|(t, _)| *t == LinuxNamespaceType::Mount)
    }

    pub fn from_spec(spec: &Spec) -> Plan {
        let mut plan = Plan {
            clone_flags: CloneFlags::empty(),
            unshare_flags: CloneFlags::empty(),
            join: vec![],
            new_user: false,
            new_pid: false,
            new_net: false,
            new_mount: false,
            join_pid: None,
            pid_under_user: None,
            pre_join: vec![],
            sysctls: vec![],
            runtime_net_sysctls: None,
            time_offsets: vec![],
            hostname: spec.hostname().clone(),
            domainname: spec.domainname().clone(),
        };
        if let Some(l) = spec.linux() {
            plan.sysctls = (l.sysctl().iter().flatten())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            plan.time_offsets = (l.time_offsets().iter().flatten())
                .map(|(c, o)| (c.clone(), o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0)))
                .collect();
        }
        let nss = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        let user_path = nss
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::User)
            .and_then(|n| n.path().clone());
        let user_joined = user_path.is_some();
        let mut order = nss.clone();
        // The user namespace is joined first, so the others are joined with its privileges.
        order.sort_by_key(|n| n.typ() != LinuxNamespaceType::User);
        for ns in &order {
            let t = ns.typ();
            match (t, ns.path()) {
                (LinuxNamespaceType::Pid, Some(p)) => plan.join_pid = Some(p.clone()),
                (_, Some(p)) => plan.join.push((t, p.clone())),
                (LinuxNamespaceType::User, None) => {
                    plan.new_user = true;
                    plan.clone_flags |= flag(t);
                }
                (LinuxNamespaceType::Pid, None) => {
                    plan.new_pid = true;
                    match &user_path {
                        Some(u) => plan.pid_under_user = Some(u.clone()),
                        None => plan.clone_flags |= flag(t),
                    }
                }
                (LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time, None) => {
                    plan.unshare_flags |= flag(t)
                }
                (_, None) => {
                    if user_joined {
                        plan.unshare_flags |= flag(t);
                    } else {
                        plan.clone_flags |= flag(t);
                    }
                }
            }
            if ns.path().is_none() {
                match t {
                    LinuxNamespaceType::Network => plan.new_net = true,
                    LinuxNamespaceType::Mount => plan.new_mount = true,
                    _ => {}
                }
            }
        }
        if plan.new_user {
            let (pre, rest): (Vec<_>, Vec<_>) = plan.join.drain(..).partition(|(t, _)| {
                matches!(
                    t,
                    LinuxNamespaceType::Network | LinuxNamespaceType::Ipc | LinuxNamespaceType::Uts
                )
            });
            plan.pre_join = pre;
            plan.join = rest;
        } else if user_joined {
            // a pod's network namespace (CNI's) may belong to the host's user namespace, which
            // the child cannot reach from the pod's: entered before cloning, as above
            let (pre, rest): (Vec<_>, Vec<_>) =
                (plan.join.drain(..)).partition(|(t, _)| *t == LinuxNamespaceType::Network);
            plan.pre_join = pre;
            plan.join = rest;
        }
        plan.runtime_net_sysctls = plan.runtime_written_netns();
        plan
    }

    /// The network namespace a container joins by path while it has a user namespace of its
    /// own: that namespace belongs to another user namespace (an engine's, the host's), so the
    /// container may not write its sysctls; the runtime does, from outside (Docker sets
    /// `net.ipv4.ip_unprivileged_port_start` and `ping_group_range` in nearly every config).
    fn runtime_written_netns(&self) -> Option<PathBuf> {
        if !self.new_user || !self.sysctls.iter().any(|(k, _)| k.starts_with("net.")) {
            return None;
        }
        (self.join.iter().chain(&self.pre_join))
            .find(|(t, _)| *t == LinuxNamespaceType::Network)
            .map(|(_, p)| p.clone())
    }
}

/// The spec's uid and gid mappings (empty where it has none).
pub fn id_maps(spec: &Spec) -> (Vec<LinuxIdMapping>, Vec<LinuxIdMapping>) {
    let linux = spec.linux().as_ref();
    (
        linux
            .and_then(|l| l.uid_mappings().clone())
            .unwrap_or_default(),
        linux
            .and_then(|l| l.gid_mappings().clone())
            .unwrap_or_default(),
    )
}

/// Validate one uidMappings/gidMappings list: non-empty ranges, no overflow, no overlap inside or
/// outside, at most 340 lines (the kernel's limit).
pub fn check_id_maps(maps: &[LinuxIdMapping]) -> std::result::Result<(), String> {
    if maps.len() > 340 {
        return Err(format!(
            "{} mappings; the kernel accepts at most 340",
            maps.len()
        ));
    }
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            return Err(format!("[{i}]: size is 0"));
        }
        if m.container_id().checked_add(m.size()).is_none()
            || m.host_id().checked_add(m.size()).is_none()
        {
            return Err(format!("[{i}]: range overflows 32 bits"));
        }
    }
    for (i, m) in maps.iter().enumerate() {
        for (j, o) in maps.iter().enumerate().skip(i + 1) {
            // in 64 bits: every range was checked above, but not yet summed with another's size
            let overlap = |a: u32, b: u32| {
                u64::from(a) < u64::from(b) + u64::from(o.size())
                    && u64::from(b) < u64::from(a) + u64::from(m.size())
            };
            if overlap(m.container_id(), o.container_id()) || overlap(m.host_id(), o.host_id()) {
                return Err(format!("[{i}] and [{j}] overlap"));
            }
        }
    }
    Ok(())
}

/// Write `/proc/PID/{uid_map,gid_map}` (and `setgroups` = deny when unprivileged, as the kernel requires).
pub fn write_id_maps(
    proc: &crate::procfs::ProcFs,
    pid: i32,
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
    rootless: bool,
) -> Result<()> {
    let fmt = |maps: &[LinuxIdMapping]| {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    if rootless {
        proc.write(&format!("{pid}/setgroups"), b"deny")
            .ctx(|| format!("write /proc/{pid}/setgroups"))?;
    }
    proc.write(&format!("{pid}/uid_map"), fmt(uids).as_bytes())
        .ctx(|| format!("write /proc/{pid}/uid_map ({})", fmt(uids).trim()))?;
    proc.write(&format!("{pid}/gid_map"), fmt(gids).as_bytes())
        .ctx(|| format!("write /proc/{pid}/gid_map ({})", fmt(gids).trim()))?;
    Ok(())
}

/// Map a container id to the host id through `maps` (None if unmapped).
pub fn to_host(maps: &[LinuxIdMapping], id: u32) -> Option<u32> {
    maps.iter()
        .find(|m| id >= m.container_id() && id - m.container_id() < m.size())
        .map(|m| m.host_id() + (id - m.container_id()))
}

/// Enter a namespace by path.
pub fn join(t: LinuxNamespaceType, path: &std::path::Path) -> Result<()> {
    let f =
        File::open(path).ctx(|| format!("open {} namespace {}", proc_name(t), path.display()))?;
    nix::sched::setns(f, flag(t))
        .ctx(|| format!("setns {} namespace {}", proc_name(t), path.display()))
}

pub fn unshare(flags: CloneFlags) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).ctx(|| format!("unshare {flags:?}"))
}

/// Clock offsets of a new time namespace: written after `unshare(CLONE_NEWTIME)` and before the
/// first process enters it (our `execve`).
pub fn write_time_offsets(plan: &Plan, proc: &crate::procfs::ProcFs) -> Result<()> {
    if plan.time_offsets.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for (clock, secs, nanos) in &plan.time_offsets {
        let id = match clock.as_str() {
            "monotonic" => "monotonic",
            "boottime" => "boottime",
            other => {
                return Err(Error::Other(format!(
                    "linux.timeOffsets.{other}: only monotonic and boottime can be offset"
                )))
            }
        };
        text.push_str(&format!("{id} {secs} {nanos}\n"));
    }
    proc.write("self/timens_offsets", text.as_bytes())
        .ctx(|| "write /proc/self/timens_offsets")
}

/// `hostname` and `domainname` (UTS namespace).
pub fn set_names(plan: &Plan) -> Result<()> {
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).ctx(|| format!("hostname {h:?}"))?;
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: d points to d.len() valid bytes for the duration of the call.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| format!("domainname {d:?}"));
        }
    }
    Ok(())
}

/// Sysctls a container may set: only those its own namespaces isolate (runc's list).
pub fn check_sysctl(
    key: &str,
    netns: bool,
    ipcns: bool,
    utsns: bool,
) -> std::result::Result<(), String> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        return if ipcns {
            Ok(())
        } else {
            Err("needs a new IPC namespace".into())
        };
    }
    if key.starts_with("net.") {
        return if netns {
            Ok(())
        } else {
            Err("needs a network namespace (not the host's)".into())
        };
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return if utsns {
            Ok(())
        } else {
            Err("needs a new UTS namespace".into())
        };
    }
    Err("is not namespaced: setting it would change the host for everyone".into())
}

/// Runtime side: write the `net.*` sysctls into the network namespace at `netns`, from a thread
/// that enters it (a sysctl file under /proc/sys/net is the opener's namespace's).
pub fn write_net_sysctls_in(plan: &Plan) -> Result<()> {
    let Some(netns) = plan.runtime_net_sysctls.as_deref() else {
        return Ok(());
    };
    let ns =
        std::fs::File::open(netns).ctx(|| format!("open network namespace {}", netns.display()))?;
    let list: Vec<&(String, String)> = (plan.sysctls.iter())
        .filter(|(k, _)| k.starts_with("net."))
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET)
                .ctx(|| format!("enter network namespace {}", netns.display()))?;
            let proc = crate::procfs::ProcFs::host().ctx(|| "open /proc")?;
            for (k, v) in list {
                let path = format!("sys/{}", k.replace('.', "/"));
                proc.write(&path, v.as_bytes()).ctx(|| {
                    format!(
                        "linux.sysctl.{k}: write /proc/{path} in {}",
                        netns.display()
                    )
                })?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Other("sysctl thread panicked".into())))
    })
}

/// Child side: every sysctl, but those the runtime writes (see
/// [`Plan::runtime_written_netns`]).
pub fn write_sysctls(plan: &Plan, proc: &crate::procfs::ProcFs) -> Result<()> {
    let skip_net = plan.runtime_net_sysctls.is_some();
    for (k, v) in (plan.sysctls.iter()).filter(|(k, _)| !(skip_net && k.starts_with("net."))) {
        let path = format!("sys/{}", k.replace('.', "/"));
        proc.write(&path, v.as_bytes())
            .ctx(|| format!("linux.sysctl.{k}: write /proc/{path}"))?;
    }
    Ok(())
}

/// The uid and gid maps of the user namespace at `path` (an nsfs file), as `(inside, outside,
/// count)` lines: read by a short-lived child that enters it and reads its own
/// `/proc/self/{uid,gid}_map` (the namespace need hold no process we know).
pub fn maps_of_userns(path: &std::path::Path) -> Result<[Vec<(u32, u32, u32)>; 2]> {
    let ns = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let (r, w) = nix::unistd::pipe().ctx(|| "pipe")?;
    // SAFETY: the runtime is single-threaded here; the child only makes async-signal-safe-enough
    // calls (setns, open/read of /proc, write, _exit) before it exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "fork");
    }
    if pid == 0 {
        drop(r);
        let mut text = String::new();
        if nix::sched::setns(&ns, CloneFlags::CLONE_NEWUSER).is_ok() {
            for f in ["uid_map", "gid_map"] {
                text.push_str(
                    &std::fs::read_to_string(format!("/proc/self/{f}")).unwrap_or_default(),
                );
                text.push('|');
            }
        }
        let _ = nix::unistd::write(&w, text.as_bytes());
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(0) }
    }
    drop(w);
    let mut text = String::new();
    use std::io::Read;
    let _ = File::from(r).read_to_string(&mut text);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    let parse = |t: &str| -> Vec<(u32, u32, u32)> {
        let mut v: Vec<(u32, u32, u32)> = t
            .lines()
            .filter_map(|l| {
                let f: Vec<u32> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (f.len() == 3).then(|| (f[0], f[1], f[2]))
            })
            .collect();
        v.sort();
        v
    };
    let mut parts = text.split('|');
    match (parts.next(), parts.next()) {
        (Some(u), Some(g)) => Ok([parse(u), parse(g)]),
        _ => Err(Error::Other(format!(
            "cannot enter the user namespace {} to read its id maps",
            path.display()
        ))),
    }
}

/// A user namespace joined by path while the config also gives id maps (Kubernetes' user
/// namespaces for pods): the maps must be the namespace's own (runc's rule); different ones
/// are an error naming both.
pub fn check_joined_maps(
    path: &std::path::Path,
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
    file: &std::path::Path,
) -> Result<()> {
    let [have_u, have_g] = maps_of_userns(path)?;
    let lines = |m: &[LinuxIdMapping]| {
        let mut v: Vec<(u32, u32, u32)> = m
            .iter()
            .map(|m| (m.container_id(), m.host_id(), m.size()))
            .collect();
        v.sort();
        v
    };
    for (field, want, have) in [
        ("uidMappings", lines(uids), have_u),
        ("gidMappings", lines(gids), have_g),
    ] {
        if !want.is_empty() && want != have {
            return Err(crate::error::config_err(
                file,
                format!("linux.{field}"),
                format!(
                    "{want:?} differ from the maps of the user namespace joined at {} ({have:?})",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// `clone3` from inside the user namespace at `userns` (nsfs) with a new PID namespace owned
/// by it: a short-lived helper joins the user namespace, unshares a PID namespace and clones
/// with `CLONE_PARENT`, so the child is PID 1 there and still the caller's child. Returns 0 in
/// that child (already in the user namespace) and its pid in the caller; the helper exits. For
/// single-threaded callers (the runtime).
pub fn clone_under_user(
    userns: &std::path::Path,
    flags: u64,
    cgroup_fd: Option<std::os::fd::RawFd>,
) -> Result<libc::pid_t> {
    let ns = File::open(userns).ctx(|| format!("open user namespace {}", userns.display()))?;
    let (r, w) = nix::unistd::pipe().ctx(|| "pipe")?;
    // SAFETY: the runtime is single-threaded here; the helper joins, unshares, clones (the
    // same as the runtime's own clone3), writes the pid and _exits; only its child goes on.
    let helper = unsafe { libc::fork() };
    if helper < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "fork");
    }
    if helper == 0 {
        drop(r);
        let pid = if nix::sched::setns(&ns, CloneFlags::CLONE_NEWUSER).is_err() {
            -1
        } else if nix::sched::unshare(CloneFlags::CLONE_NEWPID).is_err() {
            -2
        } else {
            match crate::sys::clone3(flags | libc::CLONE_PARENT as u64, cgroup_fd) {
                Ok(0) => return Ok(0),
                Ok(pid) => pid,
                Err(_) => -3,
            }
        };
        let _ = nix::unistd::write(&w, &pid.to_ne_bytes());
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(0) }
    }
    drop(w);
    let mut b = [0u8; 4];
    let got = nix::unistd::read(&r, &mut b);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(helper), None);
    let pid = i32::from_ne_bytes(b);
    match (got, pid) {
        (Ok(4), p) if p > 0 => Ok(p),
        (_, p) => Err(Error::Other(format!(
            "cannot start the container in the user namespace {}: {}",
            userns.display(),
            match p {
                -1 => "setns refused",
                -2 => "unshare of a pid namespace refused",
                _ => "clone3 refused",
            }
        ))),
    }
}

/// A user namespace with `uids`/`gids` and no process (an idmapped mount's): a short-lived
/// child unshares it and waits while its maps are written; the namespace outlives it through
/// the returned descriptor.
pub fn userns_with_maps(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<File> {
    let (ready_r, ready_w) = nix::unistd::pipe().ctx(|| "pipe")?;
    let (done_r, done_w) = nix::unistd::pipe().ctx(|| "pipe")?;
    // SAFETY: the runtime is single-threaded here; the child only unshares, writes, reads and
    // _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "fork");
    }
    if pid == 0 {
        drop((ready_r, done_w));
        let ok = nix::sched::unshare(CloneFlags::CLONE_NEWUSER).is_ok();
        let _ = nix::unistd::write(&ready_w, if ok { b"1" } else { b"0" });
        let mut b = [0u8; 1];
        let _ = nix::unistd::read(&done_r, &mut b);
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(0) }
    }
    drop((ready_w, done_r));
    let mut b = [0u8; 1];
    let made = match nix::unistd::read(&ready_r, &mut b) {
        Ok(1) if b[0] == b'1' => crate::procfs::ProcFs::host()
            .ctx(|| "open /proc")
            .and_then(|proc| write_id_maps(&proc, pid, uids, gids, false))
            .and_then(|()| {
                File::open(format!("/proc/{pid}/ns/user")).ctx(|| "open the new user namespace")
            }),
        _ => Err(Error::Other("unshare of a user namespace refused".into())),
    };
    drop(done_w);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    made
}

/// Become uid and gid 0 of the user namespace just made or joined (`which` says which, for
/// the error): our host ids mean nothing there.
pub fn become_root(which: &str) -> Result<()> {
    let (u, g) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    nix::unistd::setresgid(g, g, g).ctx(|| format!("become root of {which} (gid 0 unmapped?)"))?;
    nix::unistd::setresuid(u, u, u).ctx(|| format!("become root of {which} (uid 0 unmapped?)"))
}
