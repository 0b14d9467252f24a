//! The systemd cgroup driver (`--systemd-cgroup`): what kubelet and containerd use on nearly
//! every Kubernetes node. The container gets a transient scope unit, made by systemd over D-Bus
//! ([`crate::dbus`]), and systemd owns its place in the tree; stockade then writes into the
//! delegated cgroup what systemd has no property for, exactly as the cgroupfs driver would.
//!
//! - `linux.cgroupsPath` is runc's `slice:prefix:name`: the scope `prefix-name.scope` (just
//!   `name.scope` without a prefix) in `slice` (`system.slice` when empty; `-.slice` is the root
//!   slice; a dash nests: `kubepods-besteffort-pod1.slice` is
//!   `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice`). No
//!   cgroupsPath is `:stockade:ID`. A `name` that is itself a `.slice` (runc makes a slice unit
//!   then) is refused: a slice cannot hold the container's processes.
//! - `StartTransientUnit` with the container's init as `PIDs`, `Delegate=yes`, `Slice`,
//!   accounting on and the limits systemd knows (`MemoryMax`, `MemoryLow`, `MemorySwapMax`,
//!   `TasksMax`, `CPUWeight` or `CPUShares`, `CPUQuotaPerSecUSec`, `CPUQuotaPeriodUSec`,
//!   `AllowedCPUs`, `AllowedMemoryNodes`, `IOWeight` or `BlockIOWeight`); the job is waited
//!   for (`JobRemoved`), and the unit's `ControlGroup` is where the cgroup is.
//! - The init is cloned into the runtime's own cgroup, not into the container's
//!   (`CLONE_INTO_CGROUP` needs the directory, which systemd makes only with the pid): it is
//!   moved by systemd while it is still blocked, before it takes its cgroup namespace, and no
//!   code of the container runs before that.
//! - Then every limit is written into the files too, as runc does: in the v1 hierarchies systemd
//!   does not manage (on hybrid hosts systemd realizes only the controllers it uses; in a
//!   container it may realize none) stockade makes the directories at the same path, and what
//!   has no property (devices, hugetlb, swappiness, `unified`, throttles, rdma) is only there.
//! - The unit name is in the state before the unit is started; `delete` (and a failed create)
//!   kills what is left, stops the unit (`StopUnit`, then `ResetFailedUnit`) and removes the
//!   directories stockade made. `update` sets the unit's properties (`SetUnitProperties`,
//!   runtime) and the files.
//!
//! systemd ≥ 244 (`AllowedCPUs`; Debian 12 has 252). The system bus is used when it is there,
//! else systemd's private socket. No systemd user manager (rootless) support.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::dbus::{Conn, Error as DbusError, Value};
use crate::error::{Error, Result};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// The container's transient unit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unit {
    /// `prefix-name.scope`
    pub name: String,
    /// `system.slice`, `kubepods-besteffort-pod1.slice`, `-.slice`
    pub slice: String,
}

fn valid_unit_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '\\' | '@'))
}

/// runc's expansion of a slice name to its cgroup path.
pub fn expand_slice(slice: &str) -> std::result::Result<String, String> {
    let bad = || format!("{slice:?} is not a slice name (like system.slice or a-b.slice)");
    let stem = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if stem == "-" {
        return Ok("/".into());
    }
    if stem.is_empty() || slice.contains('/') || !valid_unit_chars(stem) {
        return Err(bad());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err(bad());
        }
        path.push_str(&format!("/{prefix}{part}.slice"));
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

/// Whether a cgroupsPath is meant for the systemd driver (`slice:prefix:name`).
pub fn is_systemd_path(p: &str) -> bool {
    let parts: Vec<&str> = p.split(':').collect();
    parts.len() == 3 && !p.starts_with('/') && (parts[0].is_empty() || parts[0].ends_with(".slice"))
}

impl Unit {
    /// The unit for `cgroups_path` (runc's `slice:prefix:name`; none: `:stockade:ID`).
    pub fn from_cgroups_path(path: Option<&str>, id: &str) -> std::result::Result<Unit, String> {
        let default = format!(":stockade:{id}");
        let p = path.filter(|p| !p.is_empty()).unwrap_or(&default);
        let parts: Vec<&str> = p.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(format!(
                "{p:?}: the systemd cgroup driver takes slice:prefix:name (like system.slice:stockade:ID)"
            ));
        };
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        expand_slice(slice)?;
        if name.is_empty() {
            return Err(format!("{p:?}: the name part is empty"));
        }
        if name.ends_with(".slice") {
            return Err(format!(
                "{p:?}: a .slice name would make the container a slice unit, which cannot hold processes; give a scope name"
            ));
        }
        let name = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        if !valid_unit_chars(&name) || name.len() > 255 {
            return Err(format!(
                "{name:?} is not a valid systemd unit name (letters, digits, _ . - \\ @; at most 255)"
            ));
        }
        Ok(Unit {
            name,
            slice: slice.to_string(),
        })
    }

    /// The unit's cgroup, from the root of every hierarchy: systemd's own root (below which it
    /// runs, in a container), the slice path, the unit.
    pub fn cgroup_path(&self, root: &Path) -> PathBuf {
        let slice = expand_slice(&self.slice).unwrap_or_else(|_| "/".into());
        root.join(slice.trim_start_matches('/')).join(&self.name)
    }
}

/// Where systemd's tree starts, from pid 1's cgroup (`/` on a host; below the container's own
/// cgroup when systemd runs in a container without a cgroup namespace). Confirmed afterwards by
/// the unit's `ControlGroup`.
pub fn systemd_root() -> PathBuf {
    let text = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    let own = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| {
            text.lines()
                .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
        })
        .unwrap_or("/");
    let root = own.strip_suffix("/init.scope").unwrap_or(own);
    PathBuf::from(if root.is_empty() { "/" } else { root })
}

/// Is systemd running here (as PID 1 of this pid namespace's machine)? sd_booted()'s test.
pub fn running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn remote(unit: &str, what: &str, e: DbusError) -> Error {
    Error::Cgroup(format!("systemd: {what} {unit}: {e}"))
}

/// AllowedCPUs / AllowedMemoryNodes: a little-endian bitmask, one bit per cpu.
fn bitmask(list: &str) -> std::result::Result<Value, String> {
    let cpus = super::parse_cpuset(list)?;
    let mut bytes = vec![0u8; cpus.iter().max().map_or(0, |m| *m as usize / 8 + 1)];
    for c in cpus {
        bytes[c as usize / 8] |= 1 << (c % 8);
    }
    Ok(Value::Array(
        "y".into(),
        bytes.into_iter().map(Value::Byte).collect(),
    ))
}

/// The limits systemd has properties for (`v2`: the controllers are on the unified hierarchy).
pub fn resource_properties(r: &LinuxResources, v2: bool) -> Result<Vec<Value>> {
    let mut p = vec![];
    let limit = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            p.push(Value::prop("MemoryMax", Value::U64(limit(l))));
        }
        if v2 {
            if let Some(r) = m.reservation().filter(|r| *r > 0) {
                p.push(Value::prop("MemoryLow", Value::U64(r as u64)));
            }
            if let Some(s) = m.swap().filter(|s| *s != 0) {
                // OCI swap is memory+swap; MemorySwapMax is swap alone
                let v = match (s, m.limit()) {
                    (s, _) if s < 0 => u64::MAX,
                    (s, Some(l)) if l > 0 => (s - l).max(0) as u64,
                    (s, _) => s as u64,
                };
                p.push(Value::prop("MemorySwapMax", Value::U64(v)));
            }
        }
    }
    if let Some(pids) = r.pids().as_ref().filter(|p| p.limit() != 0) {
        p.push(Value::prop("TasksMax", Value::U64(limit(pids.limit()))));
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            p.push(if v2 {
                Value::prop("CPUWeight", Value::U64(super::shares_to_weight(s)))
            } else {
                Value::prop("CPUShares", Value::U64(s))
            });
        }
        let period = c.period().filter(|p| *p != 0);
        if let Some(per) = period {
            p.push(Value::prop("CPUQuotaPeriodUSec", Value::U64(per)));
        }
        match c.quota().filter(|q| *q != 0) {
            Some(q) if q > 0 => {
                // systemd keeps the quota per second in 1 % steps: round up to 10 ms, as runc
                let per = period.unwrap_or(100_000);
                let mut v = (q as u64).saturating_mul(1_000_000) / per;
                if !v.is_multiple_of(10_000) {
                    v = (v / 10_000 + 1) * 10_000;
                }
                p.push(Value::prop("CPUQuotaPerSecUSec", Value::U64(v)));
            }
            Some(_) => p.push(Value::prop("CPUQuotaPerSecUSec", Value::U64(u64::MAX))),
            None => {}
        }
        if v2 {
            for (prop, list) in [("AllowedCPUs", c.cpus()), ("AllowedMemoryNodes", c.mems())] {
                if let Some(l) = list.as_ref().filter(|l| !l.is_empty()) {
                    let mask = bitmask(l)
                        .map_err(|m| Error::Cgroup(format!("linux.resources.cpu: {m}")))?;
                    p.push(Value::prop(prop, mask));
                }
            }
        }
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w != 0)
    {
        p.push(if v2 {
            Value::prop("IOWeight", Value::U64(super::blkio_weight_to_io(w)))
        } else {
            Value::prop("BlockIOWeight", Value::U64(u64::from(w)))
        });
    }
    Ok(p)
}

/// A connection subscribed to job results (the match is in place before any job exists).
fn connect_for_jobs(unit: &str) -> Result<Conn> {
    let mut c = Conn::system().map_err(|e| {
        Error::Cgroup(format!(
            "--systemd-cgroup: {e}{}",
            if running() {
                ""
            } else {
                " (systemd is not running on this host: /run/systemd/system is missing)"
            }
        ))
    })?;
    if c.via_bus {
        let rule = format!("type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',interface='{MANAGER}',member='JobRemoved'");
        c.call(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            &[Value::Str(rule)],
        )
        .map_err(|e| remote(unit, "subscribe to jobs for", e))?;
    }
    c.call(Some(SYSTEMD), MANAGER_PATH, MANAGER, "Subscribe", &[])
        .map_err(|e| remote(unit, "subscribe to jobs for", e))?;
    Ok(c)
}

/// Wait for `job` to finish; its result (`done`, `failed`, `canceled`, ...).
fn wait_job(c: &mut Conn, job: &str, unit: &str) -> Result<String> {
    let m = c
        .wait_signal(JOB_TIMEOUT, |m| {
            m.member.as_deref() == Some("JobRemoved")
                && m.body.get(1).and_then(Value::as_str) == Some(job)
        })
        .map_err(|e| remote(unit, "wait for the job of", e))?;
    Ok(m.body
        .get(3)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string())
}

fn manager_call(
    c: &mut Conn,
    unit: &str,
    what: &str,
    member: &str,
    args: &[Value],
) -> Result<Vec<Value>> {
    c.call(Some(SYSTEMD), MANAGER_PATH, MANAGER, member, args)
        .map_err(|e| remote(unit, what, e))
}

/// Start the scope with `pid` in it and wait until it runs; returns its `ControlGroup`.
pub fn start(unit: &Unit, id: &str, pid: i32, resources: Vec<Value>) -> Result<String> {
    let mut c = connect_for_jobs(&unit.name)?;
    crate::diag::mark("systemd: connected");
    let mut props = vec![
        Value::prop(
            "Description",
            Value::Str(format!("stockade container {id}")),
        ),
        Value::prop("Slice", Value::Str(unit.slice.clone())),
        Value::prop("Delegate", Value::Bool(true)),
        Value::prop("DefaultDependencies", Value::Bool(false)),
        Value::prop(
            "PIDs",
            Value::Array("u".into(), vec![Value::U32(pid as u32)]),
        ),
        Value::prop("MemoryAccounting", Value::Bool(true)),
        Value::prop("TasksAccounting", Value::Bool(true)),
        Value::prop("CPUAccounting", Value::Bool(true)),
    ];
    props.extend(resources);
    let args = [
        Value::Str(unit.name.clone()),
        Value::Str("fail".into()),
        Value::Array("(sv)".into(), props),
        Value::Array("(sa(sv))".into(), vec![]),
    ];
    let mut reply = c.call(
        Some(SYSTEMD),
        MANAGER_PATH,
        MANAGER,
        "StartTransientUnit",
        &args,
    );
    if let Err(DbusError::Remote { name, .. }) = &reply {
        if name == "org.freedesktop.systemd1.UnitExists" {
            // a failed unit of that name (a container killed earlier) keeps it until reset
            let _ = c.call(
                Some(SYSTEMD),
                MANAGER_PATH,
                MANAGER,
                "ResetFailedUnit",
                &args[..1],
            );
            reply = c.call(
                Some(SYSTEMD),
                MANAGER_PATH,
                MANAGER,
                "StartTransientUnit",
                &args,
            );
        }
    }
    let reply = reply.map_err(|e| match &e {
        DbusError::Remote { name, .. } if name == "org.freedesktop.systemd1.UnitExists" => {
            Error::UnitExists(unit.name.clone())
        }
        _ => remote(&unit.name, "start transient unit", e),
    })?;
    let job = reply
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Cgroup("systemd: StartTransientUnit returned no job".into()))?
        .to_string();
    crate::diag::mark("systemd: unit requested");
    let result = wait_job(&mut c, &job, &unit.name)?;
    crate::diag::mark("systemd: unit started");
    if result != "done" {
        return Err(Error::Cgroup(format!(
            "systemd: starting {} ended with result {result:?} (see journalctl -u {})",
            unit.name, unit.name
        )));
    }
    control_group(&mut c, &unit.name)
}

/// The unit's cgroup path (the `ControlGroup` property).
fn control_group(c: &mut Conn, unit: &str) -> Result<String> {
    let path = manager_call(c, unit, "find", "GetUnit", &[Value::Str(unit.into())])?;
    let path = path
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Cgroup("systemd: GetUnit returned no path".into()))?
        .to_string();
    let v = c
        .call(
            Some(SYSTEMD),
            &path,
            "org.freedesktop.DBus.Properties",
            "Get",
            &[
                Value::Str("org.freedesktop.systemd1.Scope".into()),
                Value::Str("ControlGroup".into()),
            ],
        )
        .map_err(|e| remote(unit, "read ControlGroup of", e))?;
    match v.first().and_then(Value::as_str) {
        Some(cg) if cg.starts_with('/') => Ok(cg.to_string()),
        _ => Err(Error::Cgroup(format!(
            "systemd: unit {unit} has no ControlGroup"
        ))),
    }
}

/// `update`: change the unit's properties (runtime only, as runc).
pub fn set_properties(unit: &Unit, props: Vec<Value>) -> Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    let mut c = Conn::system().map_err(|e| Error::Cgroup(format!("--systemd-cgroup: {e}")))?;
    manager_call(
        &mut c,
        &unit.name,
        "set properties of",
        "SetUnitProperties",
        &[
            Value::Str(unit.name.clone()),
            Value::Bool(true),
            Value::Array("(sv)".into(), props),
        ],
    )?;
    Ok(())
}

/// Stop the unit and forget a failed state. A unit that is gone already (systemd collects an
/// empty scope by itself), or a host where systemd is unreachable (no systemd, no unit), is fine.
pub fn stop(unit: &Unit) -> Result<()> {
    let mut c = match connect_for_jobs(&unit.name) {
        Ok(c) => c,
        Err(_) if !running() => return Ok(()),
        Err(e) => return Err(e),
    };
    match c.call(
        Some(SYSTEMD),
        MANAGER_PATH,
        MANAGER,
        "StopUnit",
        &[Value::Str(unit.name.clone()), Value::Str("replace".into())],
    ) {
        Ok(reply) => {
            if let Some(job) = reply.first().and_then(Value::as_str).map(String::from) {
                wait_job(&mut c, &job, &unit.name)?;
            }
        }
        Err(DbusError::Remote { name, .. }) if name == "org.freedesktop.systemd1.NoSuchUnit" => {}
        Err(e) => return Err(remote(&unit.name, "stop", e)),
    }
    let _ = c.call(
        Some(SYSTEMD),
        MANAGER_PATH,
        MANAGER,
        "ResetFailedUnit",
        &[Value::Str(unit.name.clone())],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_as_runc_does() {
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("kubepods-besteffort-pod123.slice").unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice"
        );
        for bad in [
            "system",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            ".slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cgroups_paths_become_units() {
        let u = Unit::from_cgroups_path(
            Some("kubepods-besteffort-pod123.slice:cri-containerd:abc"),
            "x",
        )
        .unwrap();
        assert_eq!(u.name, "cri-containerd-abc.scope");
        assert_eq!(
            u.cgroup_path(Path::new("/")),
            PathBuf::from("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-abc.scope")
        );
        let d = Unit::from_cgroups_path(None, "c1").unwrap();
        assert_eq!(
            (d.name.as_str(), d.slice.as_str()),
            ("stockade-c1.scope", "system.slice")
        );
        assert_eq!(
            d.cgroup_path(Path::new("/libpod_parent/x")),
            PathBuf::from("/libpod_parent/x/system.slice/stockade-c1.scope")
        );
        let root = Unit::from_cgroups_path(Some("-.slice::n"), "c").unwrap();
        assert_eq!(root.cgroup_path(Path::new("/")), PathBuf::from("/n.scope"));
        for bad in [
            "/a/b",
            "a.slice:b",
            "a.slice:p:",
            "a.slice:p:x.slice",
            "a:p:n",
            "s.slice:p:a b",
        ] {
            assert!(Unit::from_cgroups_path(Some(bad), "c").is_err(), "{bad}");
        }
        assert!(is_systemd_path("system.slice:stockade:x"));
        assert!(is_systemd_path(":stockade:x"));
        assert!(!is_systemd_path("/a:b:c"));
    }

    #[test]
    fn limits_become_properties() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory": {"limit": 104857600, "swap": 209715200}, "pids": {"limit": 64},
                "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,9"},
                "blockIO": {"weight": 500}}"#,
        )
        .unwrap();
        let p = resource_properties(&r, true).unwrap();
        let get = |n: &str| {
            p.iter().find_map(|v| match v {
                Value::Struct(f) if f[0] == Value::Str(n.into()) => Some(f[1].clone()),
                _ => None,
            })
        };
        let v = |x: Value| Some(Value::Variant(Box::new(x)));
        assert_eq!(get("MemoryMax"), v(Value::U64(104857600)));
        assert_eq!(get("MemorySwapMax"), v(Value::U64(104857600)));
        assert_eq!(get("TasksMax"), v(Value::U64(64)));
        assert_eq!(get("CPUWeight"), v(Value::U64(39)));
        assert_eq!(get("CPUQuotaPerSecUSec"), v(Value::U64(500_000)));
        assert_eq!(get("IOWeight"), v(Value::U64(4950)));
        assert_eq!(
            get("AllowedCPUs"),
            v(Value::Array(
                "y".into(),
                vec![Value::Byte(3), Value::Byte(2)]
            ))
        );
        let p1 = resource_properties(&r, false).unwrap();
        assert!(p1.iter().any(|v| v.signature() == "(sv)"
            && matches!(v, Value::Struct(f) if f[0] == Value::Str("CPUShares".into()))));
        // 33.333 % rounds up to 340 ms per second
        let r: LinuxResources = serde_json::from_str(
            r#"{"cpu": {"quota": 33333, "period": 100000}, "pids": {"limit": -1}}"#,
        )
        .unwrap();
        let p = resource_properties(&r, true).unwrap();
        assert!(p.contains(&Value::prop("CPUQuotaPerSecUSec", Value::U64(340_000))));
        assert!(p.contains(&Value::prop("TasksMax", Value::U64(u64::MAX))));
    }
}
