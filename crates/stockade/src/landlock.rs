//! Landlock (seed: "plenty of things to take care of" beyond namespaces): the container's process
//! restricts its own filesystem access (by path beneath), TCP binds and connects (by port), and
//! scopes (abstract unix sockets and signals to processes outside its domain). runc, crun and
//! youki have none of it.
//!
//! The ruleset comes from the annotation `org.stockade.landlock`, JSON in the shape of the
//! runtime-spec Landlock proposal (PR 1241): `ruleset` (`handledAccessFS`,
//! `handledAccessNetwork`, and `scoped`), `rules` (`pathBeneath`, `netPort`) and
//! `disableBestEffort`. `sandbox --landlock-*` flags produce the same annotation. The `landlock`
//! crate negotiates the ABI: best effort by default (what this kernel cannot enforce is dropped
//! and said), a hard requirement with `disableBestEffort`.
//!
//! Enforced in the child last before `execve`, after the exec fifo, the startContainer hooks and
//! no_new_privs (which a ruleset implies, as the kernel requires without CAP_SYS_ADMIN), and
//! before the seccomp filter, so the profile need not allow Landlock's own calls. Rule paths are
//! the container's (after `pivot_root`); a missing one is an error naming it.

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use serde::{Deserialize, Serialize};

pub const ANNOTATION: &str = "org.stockade.landlock";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    pub ruleset: RulesetConfig,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default)]
    pub disable_best_effort: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RulesetConfig {
    #[serde(default, rename = "handledAccessFS")]
    pub handled_access_fs: Vec<String>,
    #[serde(default)]
    pub handled_access_network: Vec<String>,
    #[serde(default)]
    pub scoped: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub path_beneath: Vec<PathRule>,
    #[serde(default)]
    pub net_port: Vec<PortRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathRule {
    pub allowed_access: Vec<String>,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRule {
    pub allowed_access: Vec<String>,
    pub ports: Vec<u64>,
}

const FS: &[(&str, AccessFs)] = &[
    ("execute", AccessFs::Execute),
    ("write_file", AccessFs::WriteFile),
    ("read_file", AccessFs::ReadFile),
    ("read_dir", AccessFs::ReadDir),
    ("remove_dir", AccessFs::RemoveDir),
    ("remove_file", AccessFs::RemoveFile),
    ("make_char", AccessFs::MakeChar),
    ("make_dir", AccessFs::MakeDir),
    ("make_reg", AccessFs::MakeReg),
    ("make_sock", AccessFs::MakeSock),
    ("make_fifo", AccessFs::MakeFifo),
    ("make_block", AccessFs::MakeBlock),
    ("make_sym", AccessFs::MakeSym),
    ("refer", AccessFs::Refer),
    ("truncate", AccessFs::Truncate),
    ("ioctl_dev", AccessFs::IoctlDev),
    ("resolve_unix", AccessFs::ResolveUnix),
];

const NET: &[(&str, AccessNet)] = &[
    ("bind_tcp", AccessNet::BindTcp),
    ("connect_tcp", AccessNet::ConnectTcp),
    ("bind_udp", AccessNet::BindUdp),
    ("connect_send_udp", AccessNet::ConnectSendUdp),
];

const SCOPES: &[(&str, Scope)] = &[
    ("abstract_unix_socket", Scope::AbstractUnixSocket),
    ("signal", Scope::Signal),
];

fn flags<T: enumflags2::BitFlag + Copy>(
    names: &[String],
    table: &[(&str, T)],
    field: &str,
) -> Result<BitFlags<T>, String> {
    let mut out = BitFlags::<T>::empty();
    for n in names {
        let Some((_, f)) = table.iter().find(|(name, _)| name == n) else {
            return Err(format!(
                "{field}: unknown access {n:?} (known: {})",
                table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ));
        };
        out |= *f;
    }
    Ok(out)
}

impl Config {
    /// The annotation of a config, parsed and checked (names, ports, rules within what is
    /// handled): the error names the field.
    pub fn from_annotations(
        ann: Option<&std::collections::HashMap<String, String>>,
    ) -> Result<Option<Config>, (String, String)> {
        let Some(text) = ann.and_then(|a| a.get(ANNOTATION)) else {
            return Ok(None);
        };
        let field = format!("annotations.{ANNOTATION}");
        let de = &mut serde_json::Deserializer::from_str(text);
        let c: Config = serde_path_to_error::deserialize(de)
            .map_err(|e| (format!("{field}: {}", e.path()), e.inner().to_string()))?;
        c.check().map_err(|m| (field, m))?;
        Ok(Some(c))
    }

    fn check(&self) -> Result<(), String> {
        let fs = flags(
            &self.ruleset.handled_access_fs,
            FS,
            "ruleset.handledAccessFS",
        )?;
        let net = flags(
            &self.ruleset.handled_access_network,
            NET,
            "ruleset.handledAccessNetwork",
        )?;
        flags(&self.ruleset.scoped, SCOPES, "ruleset.scoped")?;
        if fs.is_empty() && net.is_empty() && self.ruleset.scoped.is_empty() {
            return Err("the ruleset handles nothing".into());
        }
        for (i, r) in self.rules.path_beneath.iter().enumerate() {
            let a = flags(&r.allowed_access, FS, &format!("rules.pathBeneath[{i}]"))?;
            if !fs.contains(a) {
                return Err(format!(
                    "rules.pathBeneath[{i}]: allows access the ruleset does not handle"
                ));
            }
            for p in &r.paths {
                if !p.starts_with('/') {
                    return Err(format!(
                        "rules.pathBeneath[{i}]: {p:?} is not an absolute path"
                    ));
                }
            }
        }
        for (i, r) in self.rules.net_port.iter().enumerate() {
            let a = flags(&r.allowed_access, NET, &format!("rules.netPort[{i}]"))?;
            if !net.contains(a) {
                return Err(format!(
                    "rules.netPort[{i}]: allows access the ruleset does not handle"
                ));
            }
            if let Some(p) = r.ports.iter().find(|p| **p > 65535) {
                return Err(format!("rules.netPort[{i}]: port {p} out of range"));
            }
        }
        Ok(())
    }

    /// Restrict the calling process (the container's, about to `execve`). Returns a note when
    /// the kernel enforced less than asked (best effort).
    pub fn enforce(&self) -> Result<Option<String>, String> {
        let fs = flags(&self.ruleset.handled_access_fs, FS, "").expect("checked");
        let net = flags(&self.ruleset.handled_access_network, NET, "").expect("checked");
        let scopes = flags(&self.ruleset.scoped, SCOPES, "").expect("checked");
        let level = if self.disable_best_effort {
            CompatLevel::HardRequirement
        } else {
            CompatLevel::BestEffort
        };
        let e = |what: &str, err: landlock::RulesetError| {
            format!(
                "Landlock {what}: {err} (this kernel's ABI: {}{})",
                abi()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "none".into()),
                if self.disable_best_effort {
                    "; disableBestEffort is set"
                } else {
                    ""
                }
            )
        };
        let mut rs = Ruleset::default().set_compatibility(level);
        if !fs.is_empty() {
            rs = rs.handle_access(fs).map_err(|x| e("handledAccessFS", x))?;
        }
        if !net.is_empty() {
            rs = rs
                .handle_access(net)
                .map_err(|x| e("handledAccessNetwork", x))?;
        }
        if !scopes.is_empty() {
            rs = rs.scope(scopes).map_err(|x| e("scoped", x))?;
        }
        let mut created = rs.create().map_err(|x| e("create ruleset", x))?;
        for r in &self.rules.path_beneath {
            let access = flags(&r.allowed_access, FS, "").expect("checked");
            for p in &r.paths {
                let fd = PathFd::new(p).map_err(|x| format!("Landlock rule path {p}: {x}"))?;
                created = created
                    .add_rule(PathBeneath::new(fd, access))
                    .map_err(|x| e(&format!("rule for {p}"), x))?;
            }
        }
        for r in &self.rules.net_port {
            let access = flags(&r.allowed_access, NET, "").expect("checked");
            for p in &r.ports {
                created = created
                    .add_rule(NetPort::new(*p as u16, access))
                    .map_err(|x| e(&format!("rule for port {p}"), x))?;
            }
        }
        let status = created.restrict_self().map_err(|x| e("restrict", x))?;
        Ok(match status.ruleset {
            RulesetStatus::FullyEnforced => None,
            RulesetStatus::PartiallyEnforced => Some(format!(
                "Landlock partially enforced: this kernel's ABI {} lacks some of the ruleset",
                abi().unwrap_or(0)
            )),
            RulesetStatus::NotEnforced => {
                Some("Landlock not enforced: the kernel has no Landlock".into())
            }
        })
    }
}

/// The running kernel's Landlock ABI (`landlock_create_ruleset(NULL, 0, VERSION)`), or None.
pub fn abi() -> Option<u32> {
    // SAFETY: the VERSION query takes no attribute pointer and size 0; it only returns a number.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    (r > 0).then_some(r as u32)
}

/// What the `sandbox --landlock-*` flags ask for.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub ro: Vec<String>,
    pub rw: Vec<String>,
    pub exec: Vec<String>,
    pub bind: Vec<u16>,
    pub connect: Vec<u16>,
    /// None: both scopes (strict by default)
    pub scope: Option<Vec<String>>,
}

impl Flags {
    /// The ruleset: every filesystem access and TCP bind/connect handled (all denied but what
    /// is listed), read-only = read files, list directories and execute (as Landlock's own
    /// sandboxer), read-write = everything, exec = execute and read files.
    pub fn to_config(&self) -> Result<Config, String> {
        // what this kernel enforces (the sandbox runs here); none at all is an error below
        let abi = ABI::from(abi().unwrap_or(0) as i32);
        if abi == ABI::Unsupported {
            return Err(
                "--landlock: this kernel has no Landlock (not built, or not in the lsm= list)"
                    .into(),
            );
        }
        let names = |f: BitFlags<AccessFs>| -> Vec<String> {
            FS.iter()
                .filter(|(_, a)| f.contains(*a))
                .map(|(n, _)| n.to_string())
                .collect()
        };
        let all = AccessFs::from_all(abi);
        let ro = AccessFs::from_read(abi);
        let exec = AccessFs::Execute | AccessFs::ReadFile;
        let mut rules = Rules::default();
        for (paths, access) in [(&self.ro, ro), (&self.rw, all), (&self.exec, exec)] {
            if !paths.is_empty() {
                rules.path_beneath.push(PathRule {
                    allowed_access: names(access),
                    paths: paths.clone(),
                });
            }
        }
        for (ports, access) in [(&self.bind, "bind_tcp"), (&self.connect, "connect_tcp")] {
            if !ports.is_empty() {
                rules.net_port.push(PortRule {
                    allowed_access: vec![access.into()],
                    ports: ports.iter().map(|p| *p as u64).collect(),
                });
            }
        }
        let scoped = match &self.scope {
            None => vec!["abstract_unix_socket".into(), "signal".into()],
            Some(s) => s
                .iter()
                .filter(|s| s.as_str() != "none")
                .map(|s| match s.as_str() {
                    "abstract" => Ok("abstract_unix_socket".to_string()),
                    "signal" => Ok("signal".to_string()),
                    o => Err(format!(
                        "--landlock-scope {o:?}: use abstract, signal or none"
                    )),
                })
                .collect::<Result<_, _>>()?,
        };
        let c = Config {
            ruleset: RulesetConfig {
                handled_access_fs: names(all),
                handled_access_network: vec!["bind_tcp".into(), "connect_tcp".into()],
                scoped,
            },
            rules,
            disable_best_effort: false,
        };
        c.check()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(text: &str) -> Result<Option<Config>, (String, String)> {
        Config::from_annotations(Some(&HashMap::from([(
            ANNOTATION.to_string(),
            text.to_string(),
        )])))
    }

    #[test]
    fn annotations_are_checked_naming_the_field() {
        let ok = r#"{"ruleset": {"handledAccessFS": ["read_file", "write_file"]},
                     "rules": {"pathBeneath": [{"allowedAccess": ["read_file"], "paths": ["/usr"]}]}}"#;
        assert!(parse(ok).unwrap().is_some());
        for (bad, want) in [
            (
                r#"{"ruleset": {"handledAccessFS": ["fly"]}}"#,
                "unknown access",
            ),
            (r#"{"ruleset": {}}"#, "handles nothing"),
            (
                r#"{"ruleset": {"handledAccessFS": ["read_file"]}, "rules": {"pathBeneath": [{"allowedAccess": ["write_file"], "paths": ["/"]}]}}"#,
                "does not handle",
            ),
            (
                r#"{"ruleset": {"handledAccessNetwork": ["bind_tcp"]}, "rules": {"netPort": [{"allowedAccess": ["bind_tcp"], "ports": [70000]}]}}"#,
                "out of range",
            ),
            (
                r#"{"ruleset": {"handledAccessFS": ["read_file"]}, "rules": {"pathBeneath": [{"allowedAccess": ["read_file"], "paths": ["usr"]}]}}"#,
                "absolute",
            ),
            (
                r#"{"ruleset": {"handledAccessFS": ["read_file"]}, "extra": 1}"#,
                "unknown field",
            ),
        ] {
            let (field, msg) = parse(bad).unwrap_err();
            assert!(
                field.starts_with("annotations.org.stockade.landlock"),
                "{field}"
            );
            assert!(msg.contains(want), "{bad}: {msg}");
        }
    }

    #[test]
    fn flags_become_a_ruleset_that_handles_everything() {
        let f = Flags {
            ro: vec!["/usr".into()],
            rw: vec!["/tmp".into()],
            connect: vec![80],
            ..Default::default()
        };
        let c = f.to_config().unwrap();
        assert!(c.ruleset.handled_access_fs.len() >= 16, "ABI 5 and later");
        assert_eq!(
            c.rules.path_beneath[0].allowed_access,
            ["execute", "read_file", "read_dir"]
        );
        assert_eq!(c.rules.net_port[0].ports, [80]);
        assert_eq!(c.ruleset.scoped.len(), 2);
        let bad = Flags {
            scope: Some(vec!["everything".into()]),
            ..f
        };
        assert!(bad.to_config().unwrap_err().contains("--landlock-scope"));
    }
}
