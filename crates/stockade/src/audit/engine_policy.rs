//! A container an engine ran with stockade as its runtime (`docker inspect`'s
//! `HostConfig.Runtime`) runs with the hardening policy's raises, which the engine's own record
//! does not show: its posture is read as the policy leaves it, each raised fact's evidence
//! saying so. (`audit --pid` reads what is enforced from the live process instead.)

use super::{Posture, Seccomp};
use crate::policy::{Action, Policy, SeccompRule, UserNs};

/// Whether an engine's runtime name is stockade (`stockade`, a path to it, `stockade-policy`).
pub fn names_stockade(runtime: &str) -> bool {
    std::path::Path::new(runtime)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.to_ascii_lowercase().contains("stockade"))
}

/// Raise `p` as `pol` raises a config at create. `why` is the runtime's evidence.
pub fn raise(p: &mut Posture, pol: &Policy, why: &str) {
    let r = &pol.rules;
    p.notes.push(format!(
        "{why}: read as stockade's hardening policy ({}) raises it at create; `audit --pid` reads what is enforced",
        pol.source
    ));
    let by = |rule: &str, was: &str| {
        format!(
            "{was}; raised by stockade's policy ({}: {rule}) since {why}",
            pol.source
        )
    };
    if r.user_namespace == Some(UserNs::Auto) {
        if let Some(i) = p.shared_ns.iter().position(|(n, _)| *n == "user") {
            let (_, was) = p.shared_ns.remove(i);
            // the id range is allocated at create; root inside is root of that namespace only
            let note = by(
                "userNamespace",
                &format!("{was}: a user namespace is added"),
            );
            p.notes.push(note);
        }
    }
    if let Some(hn) = &r.host_namespaces {
        let mut notes = vec![];
        p.shared_ns.retain(|(n, was)| {
            let raised = hn.get(*n) == Some(&Action::Raise);
            if raised {
                notes.push(by(
                    "hostNamespaces",
                    &format!("{was}: a {n} namespace is added"),
                ));
            }
            !raised
        });
        p.notes.extend(notes);
    }
    if let (Some(ceiling), Some(Action::Raise), Some(caps)) = (
        &r.capability_ceiling,
        r.capabilities_above_ceiling,
        p.caps.as_mut(),
    ) {
        if caps.value.iter().any(|c| !ceiling.contains(c)) {
            caps.value.retain(|c| ceiling.contains(c));
            caps.at = by("capabilityCeiling", &caps.at);
        }
    }
    if r.no_new_privileges == Some(Action::Raise) {
        if let Some(n) = p.no_new_privs.as_mut().filter(|n| !n.value) {
            n.value = true;
            n.at = by("noNewPrivileges", &n.at);
        }
    }
    if r.seccomp == Some(SeccompRule::DefaultIfUnconfined) {
        if let Some(s) = p
            .seccomp
            .as_mut()
            .filter(|s| matches!(s.value, Seccomp::Unconfined))
        {
            s.value = Seccomp::Filtered {
                blocks_keyctl: Some(true),
            };
            s.at = by("seccomp", &format!("{}: stockade's default profile", s.at));
        }
    }
    if r.masked_paths == Some(Action::Raise) {
        if let Some(u) = p.unmasked.as_mut().filter(|u| !u.value.is_empty()) {
            u.value.clear();
            u.at = by("maskedPaths", &u.at);
        }
    }
    if r.readonly_paths == Some(Action::Raise) {
        if let Some(w) = p.proc_sys_writable.as_mut().filter(|w| w.value) {
            w.value = false;
            w.at = by("readonlyPaths", &w.at);
        }
    }
    if let Some(l) = &r.limits {
        let memory = l
            .memory
            .as_ref()
            .and_then(|m| crate::policy::memory_bytes(m).ok());
        if let (Some(bytes), Some(m)) = (memory, p.memory_limit.as_mut()) {
            if m.value.is_none() {
                m.value = Some(bytes as u64);
                m.at = by("limits", &m.at);
            }
        }
        if let (Some(n), Some(pl)) = (l.pids, p.pids_limit.as_mut()) {
            if pl.value.is_none() {
                pl.value = Some(n);
                pl.at = by("limits", &pl.at);
            }
        }
    }
}
