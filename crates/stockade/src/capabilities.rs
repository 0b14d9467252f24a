//! Seed §3, capabilities: drop all, add back only what the workload needs.
//!
//! The bounding set is cut first (while the child still holds CAP_SETPCAP), the user switched with
//! keep-caps, then effective/permitted/inheritable set exactly and ambient raised.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use caps::{CapSet, Capability as Cap};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{config_err, Error, Result};

/// The five capability sets of an OCI process, as its JSON names them.
pub const SETS: [&str; 5] = [
    "bounding",
    "effective",
    "permitted",
    "inheritable",
    "ambient",
];

/// A capability as users write it (`sys_admin`, `SYS_ADMIN`, `CAP_SYS_ADMIN`) in the kernel's
/// spelling, `CAP_SYS_ADMIN`.
pub fn cap_name(c: &str) -> String {
    let up = c.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

pub fn name(c: &oci_spec::runtime::Capability) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn convert(set: &Option<Capabilities>) -> HashSet<Cap> {
    set.iter()
        .flatten()
        .filter_map(|c| Cap::from_str(&name(c)).ok())
        .collect()
}

/// The five sets of a spec, as `caps` sets (bounding, effective, permitted, inheritable,
/// ambient), each cut to what the running kernel supports ([`supported`]).
pub struct Sets {
    pub bounding: HashSet<Cap>,
    pub effective: HashSet<Cap>,
    pub permitted: HashSet<Cap>,
    pub inheritable: HashSet<Cap>,
    pub ambient: HashSet<Cap>,
    /// Every capability this kernel knows.
    pub supported: HashSet<Cap>,
}

impl Sets {
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Sets {
        let supported = supported();
        let only = |set: &Option<Capabilities>| -> HashSet<Cap> {
            convert(set).intersection(&supported).copied().collect()
        };
        match c {
            None => Sets {
                bounding: HashSet::new(),
                effective: HashSet::new(),
                permitted: HashSet::new(),
                inheritable: HashSet::new(),
                ambient: HashSet::new(),
                supported,
            },
            Some(c) => {
                let (permitted, inheritable) = (only(c.permitted()), only(c.inheritable()));
                // the kernel raises an ambient capability only if it is permitted and
                // inheritable; the rest are left out with a warning, as runc does
                // ([`unraisable_ambient`])
                let ambient = only(c.ambient())
                    .into_iter()
                    .filter(|a| permitted.contains(a) && inheritable.contains(a))
                    .collect();
                Sets {
                    bounding: only(c.bounding()),
                    effective: only(c.effective()),
                    permitted,
                    inheritable,
                    ambient,
                    supported,
                }
            }
        }
    }
}

/// Every capability the running kernel knows. Their numbers are contiguous from 0: when it knows
/// the highest one the `caps` crate names, it knows them all (one prctl; probing each is 41).
fn supported() -> HashSet<Cap> {
    let all = caps::all();
    let top = all.iter().map(|c| c.index()).max().unwrap_or(0);
    if crate::sys::capbset_read(top).is_ok() {
        return all;
    }
    caps::runtime::thread_all_supported()
}

/// Ambient capabilities the kernel will not raise because they are not also permitted and
/// inheritable (`runc spec`'s config lists ambient ones and no inheritable set): runc warns
/// and goes on without them, and so does stockade. Sorted names.
pub fn unraisable_ambient(c: Option<&LinuxCapabilities>) -> Vec<String> {
    let Some(c) = c else { return vec![] };
    let (p, i) = (convert(c.permitted()), convert(c.inheritable()));
    let mut out: Vec<String> = convert(c.ambient())
        .into_iter()
        .filter(|a| !(p.contains(a) && i.contains(a)))
        .map(|a| a.to_string())
        .collect();
    out.sort();
    out
}

/// Without a new user namespace the container can only get capabilities the runtime itself has
/// in its bounding set; say which are missing instead of failing later with a bare EPERM.
pub fn check_obtainable(
    c: Option<&LinuxCapabilities>,
    new_userns: bool,
    file: &Path,
) -> Result<()> {
    let Some(c) = c.filter(|_| !new_userns) else {
        return Ok(());
    };
    let own = caps::read(None, CapSet::Bounding)
        .map_err(|e| Error::Other(format!("read own bounding set: {e}")))?;
    // The spec's sets as written (no probe of the kernel: a name it lacks is missing too).
    let mut missing: Vec<String> = [c.bounding(), c.permitted(), c.effective()]
        .into_iter()
        .flat_map(convert)
        .filter(|c| !own.contains(c))
        .map(|c| c.to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    missing.sort();
    if !missing.is_empty() {
        return Err(config_err(
            file,
            "process.capabilities",
            format!(
                "{} not in the runtime's own bounding set, so no process it starts can hold {}; \
                 remove {} or run with a user namespace",
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" },
                if missing.len() == 1 { "it" } else { "them" }
            ),
        ));
    }
    Ok(())
}

/// Step 1, as (namespace) root: shrink the bounding set.
pub fn drop_bounding(s: &Sets) -> Result<()> {
    // one prctl each, without reading first (the caps crate's `drop` does: twice the calls)
    for &c in &s.supported {
        if !s.bounding.contains(&c) {
            crate::sys::capbset_drop(c.index())
                .map_err(|e| Error::Other(format!("drop {c} from bounding set: {e}")))?;
        }
    }
    Ok(())
}

/// Step 2, after the uid switch (with keep-caps): set the remaining sets exactly.
pub fn apply(s: &Sets) -> Result<()> {
    // Order matters: inheritable may only grow within permitted, and effective must stay within
    // permitted, so narrow inheritable and effective before permitted.
    caps::set(None, CapSet::Inheritable, &s.inheritable)
        .map_err(|e| Error::Other(format!("set inheritable capabilities: {e}")))?;
    caps::set(None, CapSet::Effective, &s.effective)
        .map_err(|e| Error::Other(format!("set effective capabilities: {e}")))?;
    caps::set(None, CapSet::Permitted, &s.permitted).map_err(|e| {
        Error::Other(format!(
            "set permitted capabilities (effective must be a subset of permitted): {e}"
        ))
    })?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| Error::Other(format!("clear ambient capabilities: {e}")))?;
    for &c in &s.ambient {
        caps::raise(None, CapSet::Ambient, c)
            .map_err(|e| Error::Other(format!("raise ambient {c}: {e}")))?;
    }
    Ok(())
}

/// Capabilities that defeat the isolation on their own (probe and audit agree on this list).
pub const DANGEROUS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_PTRACE",
    "CAP_SYS_BOOT",
    "CAP_SYS_TIME",
    "CAP_DAC_READ_SEARCH",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_NET_ADMIN",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_SYSLOG",
    "CAP_AUDIT_CONTROL",
    "CAP_LINUX_IMMUTABLE",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_SYS_RESOURCE",
];

/// The value of `key:` in the text of a /proc/PID/status file.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

/// A `Cap*:` hex mask of a /proc/PID/status text (0 when absent).
pub fn status_mask(status: &str, key: &str) -> u64 {
    status_field(status, key)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0)
}

/// Decode a `Cap*:` hex mask from /proc/PID/status into names (used by probe and audit).
pub fn decode_mask(mask: u64) -> Vec<String> {
    caps::all()
        .into_iter()
        .filter(|c| mask & c.bitmask() != 0)
        .map(|c| c.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}
