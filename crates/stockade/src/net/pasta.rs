//! `--net pasta`: networking for unprivileged callers through `pasta` (Debian's `passt`), which
//! joins the container's user and network namespaces, makes a tap interface there with the
//! host's addresses and routes (`--config-net`), and carries the container's traffic through
//! ordinary sockets of the caller: no privilege, nothing changed on the host. `--publish
//! HOST:CONTAINER/tcp|udp` becomes pasta's `-t`/`-u` forwarding; nothing else is forwarded in
//! either direction (`-t none -u none -T none -U none` otherwise: the container reaches no port
//! of the host's loopback).
//!
//! Run by root, pasta would switch to `nobody` (its default), which may not open the namespaces
//! of a process root made: it is told to stay root (`--runas 0:0`; it still drops its
//! capabilities and confines itself). Unprivileged, it opens `/dev/net/tun` as the caller:
//! without udev (whose rules make it 0666) the kernel leaves it 0600 root, and pasta cannot
//! make its tap; [`find`] says so before anything is made.
//!
//! pasta puts itself in the background once the namespace is configured and writes its pid
//! (`--pid`), which is recorded; it quits when the namespace goes, and teardown kills it if it
//! is still there (checked to be the same process by its start time).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    pub pid: i32,
    pub pid_start: u64,
}

/// The TUN/TAP device pasta opens to make the container's interface.
pub const TUN: &str = "/dev/net/tun";

/// The `pasta` binary on PATH, or a message saying what is missing (pasta itself, or, run
/// unprivileged, access to /dev/net/tun).
pub fn find() -> std::result::Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let bin = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("pasta"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "pasta is not installed (Debian: apt-get install passt); without it an unprivileged sandbox has --net none or host only".to_string()
        })?;
    if !nix::unistd::geteuid().is_root() {
        check_tun()?;
    }
    Ok(bin)
}

/// Whether this (unprivileged) process may open /dev/net/tun read-write, as pasta will.
fn check_tun() -> std::result::Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let uid = nix::unistd::geteuid();
    let Ok(meta) = std::fs::metadata(TUN) else {
        return Err(format!(
            "{TUN} does not exist: pasta makes the sandbox's interface with it (load the tun module: modprobe tun)"
        ));
    };
    if !meta.file_type().is_char_device() {
        return Err(format!("{TUN} is not a character device"));
    }
    let flags = nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK;
    if nix::unistd::access(TUN, flags).is_err() {
        return Err(format!(
            "{TUN} is mode {:04o} owned by uid {}: uid {uid} may not open it, and pasta, run as the caller, makes the sandbox's interface with it; udev's default rules make it 0666 (this host has none): as root, chmod 0666 {TUN}",
            meta.mode() & 0o7777,
            meta.uid(),
        ));
    }
    Ok(())
}

/// pasta's stderr without its complaints that there is no syslog to write to.
fn messages(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !(l.starts_with("Failed to send ") && l.ends_with(" bytes to syslog")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn port_spec(publish: &[super::Publish], proto: super::Proto) -> String {
    let v: Vec<String> = publish
        .iter()
        .filter(|p| p.proto == proto)
        .map(|p| format!("{}:{}", p.host, p.container))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

/// Attach pasta to the namespaces of `pid`; returns once it configured them.
pub fn start(pid: i32, publish: &[super::Publish], state_dir: &Path) -> Result<Record> {
    let bin = find().map_err(Error::Other)?;
    let pidfile = state_dir.join("pasta.pid");
    let mut cmd = Command::new(&bin);
    if nix::unistd::geteuid().is_root() {
        // as nobody (pasta's default for root) it could not open the child's namespaces
        cmd.args(["--runas", "0:0"]);
    }
    let out = cmd
        .args(["--config-net", "--quiet", "--ns-ifname", super::veth::INNER])
        .args(["-t", &port_spec(publish, super::Proto::Tcp)])
        .args(["-u", &port_spec(publish, super::Proto::Udp)])
        .args(["-T", "none", "-U", "none", "--pid"])
        .arg(&pidfile)
        .arg(pid.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .ctx(|| format!("run {}", bin.display()))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "pasta failed ({}): {}",
            out.status,
            messages(&out.stderr)
        )));
    }
    let text = std::fs::read_to_string(&pidfile).ctx(|| format!("read {}", pidfile.display()))?;
    let pasta: i32 = text
        .trim()
        .parse()
        .map_err(|_| Error::Other(format!("pasta wrote {text:?} as its pid")))?;
    crate::diag::mark("net: pasta attached");
    Ok(Record {
        pid: pasta,
        pid_start: crate::state::pid_start_time(pasta),
    })
}

/// Stop pasta if it is still the process recorded.
pub fn stop(rec: &Record) {
    // SIGKILL: pasta holds nothing to flush, and it ignored SIGTERM here
    if rec.pid > 0 && crate::state::pid_start_time(rec.pid) == rec.pid_start {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(rec.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
