//! Everything in a config that can be refused is refused here, before anything is created:
//! the spec is checked against what each subsystem accepts (mount destinations and options,
//! id maps, sysctls, resources, Landlock), every error naming the file and the JSON field.
//! The engine ([`crate::container`]) calls [`validate`] first.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{config_err, Error, Result};
use crate::spec::{rootfs_path, tmpfs_root};

/// Everything that can be checked before touching the system. `file` is what errors name.
pub fn validate(spec: &Spec, bundle: &Path, file: &Path) -> Result<()> {
    let major = spec.version().split('.').next().unwrap_or("");
    if major != "1" {
        return Err(config_err(
            file,
            "ociVersion",
            format!(
                "unsupported version {:?} (stockade implements runtime-spec 1.x)",
                spec.version()
            ),
        ));
    }
    let root = (!tmpfs_root(spec)).then(|| rootfs_path(spec, bundle));
    if let Some(root) = &root {
        if !root.is_dir() {
            return Err(config_err(
                file,
                "root.path",
                format!(
                    "rootfs {} does not exist or is not a directory",
                    root.display()
                ),
            ));
        }
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| config_err(file, "process", "missing"))?;
    crate::landlock::Config::from_annotations(spec.annotations().as_ref())
        .map_err(|(field, msg)| config_err(file, field, msg))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(config_err(
            file,
            "process.args",
            "must name the program to run",
        ));
    }
    if !process.cwd().is_absolute() {
        return Err(config_err(file, "process.cwd", "must be an absolute path"));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(config_err(
                file,
                format!("mounts[{i}].destination"),
                format!("{} is not absolute", m.destination().display()),
            ));
        }
        if let Some(root) = &root {
            if let Some(msg) = crate::rootfs::escapes(root, m.destination()) {
                return Err(config_err(file, format!("mounts[{i}].destination"), msg));
            }
        }
        for opt in m.options().iter().flatten() {
            if crate::rootfs::parse_option(opt).is_none() {
                // Unknown options are passed to the filesystem as data (like runc); flag obvious typos.
                if opt.is_empty() {
                    return Err(config_err(
                        file,
                        format!("mounts[{i}].options"),
                        "empty option",
                    ));
                }
            }
        }
    }
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(config_err(
                file,
                format!("linux.namespaces[{i}]"),
                format!("namespace {:?} listed twice", ns.typ()),
            ));
        }
        if let Some(p) = ns.path() {
            if !p.exists() {
                return Err(config_err(
                    file,
                    format!("linux.namespaces[{i}].path"),
                    format!("{} does not exist", p.display()),
                ));
            }
        }
    }
    let new_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    for (field, maps) in [
        ("uidMappings", linux.uid_mappings()),
        ("gidMappings", linux.gid_mappings()),
    ] {
        let maps = maps.as_deref().unwrap_or(&[]);
        if new_userns && maps.is_empty() {
            return Err(config_err(
                file,
                format!("linux.{field}"),
                "a new user namespace needs id mappings",
            ));
        }
        if !new_userns && !maps.is_empty() && !seen.contains(&LinuxNamespaceType::User) {
            return Err(config_err(
                file,
                format!("linux.{field}"),
                "id mappings given without a user namespace",
            ));
        }
        crate::namespaces::check_id_maps(maps)
            .map_err(|m| config_err(file, format!("linux.{field}"), m))?;
    }
    if let Some(sysctl) = linux.sysctl() {
        let netns = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Network);
        let ipcns = seen.contains(&LinuxNamespaceType::Ipc);
        let utsns = seen.contains(&LinuxNamespaceType::Uts);
        for key in sysctl.keys() {
            if let Err(m) = crate::namespaces::check_sysctl(key, netns, ipcns, utsns) {
                return Err(config_err(file, format!("linux.sysctl.{key}"), m));
            }
        }
    }
    if let Some(res) = linux.resources() {
        crate::cgroups::validate(res)
            .map_err(|(f, m)| config_err(file, format!("linux.resources.{f}"), m))?;
    }
    if let Some(cg) = linux.cgroups_path() {
        if cg
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(config_err(
                file,
                "linux.cgroupsPath",
                "must not contain '..'",
            ));
        }
    }
    if let Some(prop) = linux.rootfs_propagation() {
        if crate::rootfs::propagation_flag(prop).is_none() {
            return Err(config_err(
                file,
                "linux.rootfsPropagation",
                format!("unknown propagation {prop:?}"),
            ));
        }
    }
    if let Some(seccomp) = linux.seccomp() {
        let v = serde_json::to_value(seccomp).map_err(|e| Error::Other(e.to_string()))?;
        stockade_seccomp::Profile::from_value(&v).map_err(|e| {
            config_err(
                file,
                format!("linux.seccomp{}", e.path_suffix()),
                e.to_string(),
            )
        })?;
    }
    Ok(())
}
