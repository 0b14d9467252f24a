//! Profile formats: OCI `linux.seccomp` and Docker's seccomp JSON (which adds `archMap`, the
//! singular `name`, `comment`, `includes` and `excludes`). One type reads both.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0x0000_0000;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;

impl Action {
    /// The filter's return value; `ret` is the errno (ERRNO) or message (TRACE), EPERM if unset.
    pub fn ret(self, ret: Option<u32>) -> u32 {
        let data = ret.unwrap_or(libc::EPERM as u32) & 0xffff;
        match self {
            Action::Kill | Action::KillThread => RET_KILL_THREAD,
            Action::KillProcess => RET_KILL_PROCESS,
            Action::Trap => RET_TRAP,
            Action::Errno => RET_ERRNO | data,
            Action::Trace => RET_TRACE | data,
            Action::Allow => RET_ALLOW,
            Action::Log => RET_LOG,
            Action::Notify => RET_USER_NOTIF,
        }
    }
}

/// The kernel's ranking of return values (higher wins), as `seccomp(2)` documents it.
pub fn precedence(ret: u32) -> u32 {
    match ret & 0xffff_0000 {
        RET_KILL_PROCESS => 8,
        RET_KILL_THREAD => 7,
        RET_TRAP => 6,
        RET_ERRNO => 5,
        RET_USER_NOTIF => 4,
        RET_TRACE => 3,
        RET_LOG => 2,
        RET_ALLOW => 1,
        _ => 7,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

impl Op {
    /// Does `arg` satisfy the condition? (`value` is the mask for MASKED_EQ, `value_two` the datum.)
    pub fn eval(self, arg: u64, value: u64, value_two: u64) -> bool {
        match self {
            Op::Ne => arg != value,
            Op::Lt => arg < value,
            Op::Le => arg <= value,
            Op::Eq => arg == value,
            Op::Ge => arg >= value,
            Op::Gt => arg > value,
            Op::MaskedEq => arg & value == value_two,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: Op,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Docker's legacy singular form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub args: Vec<Arg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub includes: Filter,
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub excludes: Filter,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub sub_architectures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub architectures: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub arch_map: Vec<ArchMap>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub syscalls: Vec<Rule>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

pub const KNOWN_FLAGS: &[(&str, u32)] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", 1),
    ("SECCOMP_FILTER_FLAG_LOG", 2),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
    ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 32),
];

impl Profile {
    pub fn from_json(text: &str) -> Result<Profile> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let p: Profile = serde_path_to_error::deserialize(de).map_err(|e| Error::Parse {
            path: path_of(&e),
            msg: e.into_inner().to_string(),
        })?;
        p.check()?;
        Ok(p)
    }

    pub fn from_value(v: &Value) -> Result<Profile> {
        let p: Profile = serde_path_to_error::deserialize(v).map_err(|e| Error::Parse {
            path: path_of(&e),
            msg: e.into_inner().to_string(),
        })?;
        p.check()?;
        Ok(p)
    }

    /// Checks serde cannot make: argument indexes, errno range, arch and flag names.
    pub fn check(&self) -> Result<()> {
        let perr = |path: String, msg: String| Err(Error::Parse { path, msg });
        if self.default_errno_ret.is_some_and(|e| e > 4095) {
            return perr("defaultErrnoRet".into(), "must be at most 4095".into());
        }
        for (i, a) in self.architectures.iter().enumerate() {
            if crate::Arch::from_scmp(a).is_none() && !crate::arch::is_known_foreign(a) {
                return perr(
                    format!("architectures[{i}]"),
                    format!("unknown architecture {a:?}"),
                );
            }
        }
        if !self.architectures.is_empty() && !self.arch_map.is_empty() {
            return perr(
                "archMap".into(),
                "use either 'architectures' or 'archMap', not both".into(),
            );
        }
        for (i, f) in self.flags.iter().enumerate() {
            if !KNOWN_FLAGS.iter().any(|(n, _)| n == f) {
                return perr(format!("flags[{i}]"), format!("unknown flag {f:?}"));
            }
        }
        for (i, r) in self.syscalls.iter().enumerate() {
            if r.name.is_some() && !r.names.is_empty() {
                return perr(
                    format!("syscalls[{i}]"),
                    "use either 'name' or 'names', not both".into(),
                );
            }
            if r.name.is_none() && r.names.is_empty() {
                return perr(format!("syscalls[{i}].names"), "names no syscall".into());
            }
            if r.errno_ret.is_some_and(|e| e > 4095) && matches!(r.action, Action::Errno) {
                return perr(
                    format!("syscalls[{i}].errnoRet"),
                    "must be at most 4095".into(),
                );
            }
            if r.errno_ret.is_some_and(|e| e > 0xffff) {
                return perr(
                    format!("syscalls[{i}].errnoRet"),
                    "must fit in 16 bits".into(),
                );
            }
            for (j, a) in r.args.iter().enumerate() {
                if a.index > 5 {
                    return perr(
                        format!("syscalls[{i}].args[{j}].index"),
                        format!("{} is above 5 (syscalls have 6 arguments)", a.index),
                    );
                }
            }
        }
        Ok(())
    }

    pub fn names(rule: &Rule) -> Vec<&str> {
        rule.name
            .iter()
            .map(String::as_str)
            .chain(rule.names.iter().map(String::as_str))
            .collect()
    }

    /// The profile as OCI `linux.seccomp` JSON.
    pub fn to_oci_value(&self) -> Value {
        serde_json::to_value(self).expect("profile serialises")
    }

    pub fn flag_bits(&self) -> u32 {
        self.flags
            .iter()
            .filter_map(|f| KNOWN_FLAGS.iter().find(|(n, _)| n == f).map(|(_, b)| *b))
            .fold(0, |a, b| a | b)
    }
}

fn path_of<E>(e: &serde_path_to_error::Error<E>) -> String {
    let p = e.path().to_string();
    if p == "." {
        String::new()
    } else {
        p
    }
}
