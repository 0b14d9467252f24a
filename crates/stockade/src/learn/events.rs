//! The events file the seccomp agent writes (see `agent`): one JSON line per distinct call
//! outside a profile. Read back by `learn update` (folded into a learned profile) and by
//! learning under engines (the container's whole recording, see [`super::engine`]).

use std::path::Path;

use serde_json::Value;
use stockade_seccomp::Arch;

use super::record::{Observed, ARG_RULES};
use crate::error::{Error, Result};

/// One line of the events file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub syscall: String,
    /// (argument index, value): those the profile constrained, or for all six raw values
    /// the ones `learn` records for this call
    pub args: Vec<(u32, u64)>,
    /// written once lines were rate-limited (the agent's `count`): some distinct argument
    /// values of this call may have gone unwritten
    pub limited: bool,
}

/// The events of `file`; anything but the agent's lines (blank ones aside) is an error naming
/// FILE:LINE (`flag`, as "--events ", prefixes errors about the file itself).
pub fn read(file: &Path, flag: &str) -> Result<Vec<Event>> {
    let f = file.display();
    let bytes = std::fs::read(file).map_err(|e| Error::Other(format!("{flag}{f}: {e}")))?;
    let text =
        String::from_utf8(bytes).map_err(|_| Error::Other(format!("{flag}{f}: not UTF-8 text")))?;
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |why: String| Error::Other(format!("{f}:{}: {why}", i + 1));
        let v: Value = serde_json::from_str(line).map_err(|e| at(format!("not JSON: {e}")))?;
        if !v.is_object() {
            return Err(at("not a JSON object".into()));
        }
        if v["event"] == "ready" && v["syscall"].is_null() {
            // the agent's phase switch (sandbox --ready), not a call
            continue;
        }
        let name = v["syscall"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| at("no \"syscall\" name".into()))?;
        let known = Arch::native().syscall(name).is_some()
            || name
                .strip_prefix("i386:")
                .is_some_and(|n| Arch::X86.syscall(n).is_some() || n.starts_with('#'))
            || name
                .strip_prefix('#')
                .is_some_and(|n| n.parse::<u32>().is_ok());
        if !known {
            return Err(at(format!("unknown syscall {name:?}")));
        }
        match v["action"].as_str() {
            Some("allowed" | "denied") => {}
            _ => return Err(at("\"action\" is neither \"allowed\" nor \"denied\"".into())),
        }
        let num = |x: &Value, what: &str| {
            x.as_u64()
                .ok_or_else(|| at(format!("{what} is not an unsigned integer: {x}")))
        };
        let args = match &v["args"] {
            Value::Array(a) if a.len() == 6 => {
                let raw: Vec<u64> = a
                    .iter()
                    .enumerate()
                    .map(|(k, x)| num(x, &format!("args[{k}]")))
                    .collect::<Result<_>>()?;
                ARG_RULES
                    .iter()
                    .filter(|(n, _)| *n == name)
                    .map(|(_, idx)| (*idx, raw[*idx as usize]))
                    .collect()
            }
            Value::Object(o) => {
                let mut args = vec![];
                for (k, x) in o {
                    let idx = k
                        .strip_prefix("arg")
                        .and_then(|d| d.parse::<u32>().ok())
                        .filter(|d| *d < 6)
                        .ok_or_else(|| at(format!("args: {k:?} is not arg0 to arg5")))?;
                    args.push((idx, num(x, &format!("args.{k}"))?));
                }
                args
            }
            _ => {
                return Err(at(
                    "\"args\" is neither six numbers nor an object of arg0..arg5".into(),
                ))
            }
        };
        out.push(Event {
            syscall: name.to_string(),
            args,
            limited: !v["count"].is_null(),
        });
    }
    Ok(out)
}

/// What `events` say was called, as the recorder would have observed it: names, the values of
/// the arguments `learn` constrains, i386 calls apart. Once lines were rate-limited, the calls
/// with argument rules are marked overflowed (their rules are left unconstrained: values may
/// be missing).
pub fn observed(events: &[Event]) -> Observed {
    let mut o = Observed::default();
    let limited = events.iter().any(|e| e.limited);
    for e in events {
        if let Some(n) = e.syscall.strip_prefix("i386:") {
            o.compat.insert(n.to_string());
            continue;
        }
        if let Some(nr) = e.syscall.strip_prefix('#') {
            o.unknown_numbers.extend(nr.parse::<u32>().ok());
            continue;
        }
        o.note(&e.syscall, &e.args);
        if limited && ARG_RULES.iter().any(|(n, _)| *n == e.syscall) {
            o.args_overflow.insert(e.syscall.clone());
        }
    }
    o
}
