//! Address and port allocation under the state root, `ROOT/.net/`:
//!
//! ```text
//! ROOT/.net/lock                  flock'ed while allocating (and while a bridge is made)
//! ROOT/.net/BRIDGE.json           the subnets of a bridge stockade made, and its ifindex
//! ROOT/.net/BRIDGE/SLOT           "ID TOKEN": host number SLOT is taken in every subnet
//! ROOT/.net/ports/PROTO-PORT      "ID TOKEN": a published host port
//! ```
//!
//! A slot's address is the SLOT-th host of each subnet of the bridge (the gateway is 1), so one
//! file holds a container's IPv4 and IPv6 address. Files are made with `O_EXCL` under the lock
//! and removed only by the holder of their token, after the container's record (which names the
//! slot) was written: a runtime killed at any point leaves either a record naming a file, which
//! `delete` removes, or no file. A file whose owner has no record with its token (a state
//! directory removed by hand, a runtime killed before its record was committed and its id then
//! reclaimed) is stale and taken over when the subnet is full or the port is asked for.

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::error::{Context, Error, Result};

/// The allocation lock, held while this exists.
pub struct Ipam {
    pub dir: PathBuf,
    root: PathBuf,
    _lock: OwnedFd,
}

impl Ipam {
    pub fn lock(root: &Path) -> Result<Ipam> {
        let dir = root.join(".net");
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(dir.join("lock"))
            .ctx(|| format!("open {}/lock", dir.display()))?;
        let fd = OwnedFd::from(f);
        crate::sys::flock(&fd, libc::LOCK_EX).ctx(|| format!("lock {}/lock", dir.display()))?;
        crate::diag::mark("net: ipam locked");
        Ok(Ipam {
            dir,
            root: root.to_path_buf(),
            _lock: fd,
        })
    }

    /// A free slot of `bridge` with room in every one of `subnets`, taken for (`id`, `token`).
    /// `record` is called with the slot first and must write the container's record.
    pub fn allocate(
        &self,
        bridge: &str,
        subnets: &[IpNet],
        id: &str,
        token: &str,
        record: impl FnOnce(u32) -> Result<()>,
    ) -> Result<u32> {
        let dir = self.dir.join(bridge);
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let cap = subnets.iter().map(capacity).min().unwrap_or(0);
        let mut used = std::collections::HashSet::new();
        for e in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let e = e.ctx(|| format!("read {}", dir.display()))?;
            if let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                used.insert(n);
            }
        }
        let mut slot = (2..cap).find(|n| !used.contains(n));
        if slot.is_none() {
            // full: take back the slots of containers that no longer exist
            for n in used.iter().copied().collect::<Vec<_>>() {
                let f = dir.join(n.to_string());
                if self.is_stale(&f) {
                    let _ = fs::remove_file(&f);
                    used.remove(&n);
                }
            }
            slot = (2..cap).find(|n| !used.contains(n));
        }
        let slot = slot.ok_or_else(|| {
            Error::Other(format!(
                "net: bridge {bridge}: no free address in {} ({} in use)",
                subnets
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                used.len()
            ))
        })?;
        record(slot)?;
        write_excl(&dir.join(slot.to_string()), id, token)?;
        crate::diag::mark("net: address taken");
        Ok(slot)
    }

    /// Refuse host ports another container has published or a program on the host listens on.
    pub fn check_ports(&self, ports: &[super::Publish]) -> Result<()> {
        for p in ports {
            let f = self.port_file(p);
            if f.exists() {
                if !self.is_stale(&f) {
                    let owner = owner(&f).map(|(i, _)| i).unwrap_or_default();
                    return Err(Error::Other(format!(
                        "--publish {p}: host port {}/{} is already published by container {owner:?}",
                        p.host,
                        p.proto.name()
                    )));
                }
                let _ = fs::remove_file(&f);
            }
            host_port_free(p)?;
        }
        Ok(())
    }

    /// Take the host ports checked by [`Ipam::check_ports`] for (`id`, `token`).
    pub fn take_ports(&self, ports: &[super::Publish], id: &str, token: &str) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let dir = self.dir.join("ports");
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        for p in ports {
            write_excl(&self.port_file(p), id, token)?;
        }
        Ok(())
    }

    fn port_file(&self, p: &super::Publish) -> PathBuf {
        self.dir
            .join("ports")
            .join(format!("{}-{}", p.proto.name(), p.host))
    }

    /// The owner of a slot or port file has no record carrying its token.
    fn is_stale(&self, f: &Path) -> bool {
        let Some((id, token)) = owner(f) else {
            return true;
        };
        if crate::state::check_id(&id).is_err() {
            return true;
        }
        match super::Record::load(&self.root.join(&id)) {
            Ok(Some(r)) => r.token != token,
            Ok(None) => {
                // a runtime between its state commit and its record holds the state lock
                !self.root.join(&id).join("state.json").exists()
            }
            Err(_) => false,
        }
    }
}

/// A program on the host that listens on the port would be shadowed by the DNAT rule: refuse.
fn host_port_free(p: &super::Publish) -> Result<()> {
    let r = match p.proto {
        super::Proto::Tcp => std::net::TcpListener::bind(("0.0.0.0", p.host)).map(drop),
        super::Proto::Udp => std::net::UdpSocket::bind(("0.0.0.0", p.host)).map(drop),
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(Error::Other(format!(
            "--publish {p}: host port {}/{} is in use by a program on the host",
            p.host,
            p.proto.name()
        ))),
        _ => Ok(()),
    }
}

fn owner(f: &Path) -> Option<(String, String)> {
    let s = fs::read_to_string(f).ok()?;
    let (id, token) = s.trim().split_once(' ')?;
    Some((id.to_string(), token.to_string()))
}

fn write_excl(f: &Path, id: &str, token: &str) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(f)
        .ctx(|| format!("create {}", f.display()))?;
    file.write_all(format!("{id} {token}\n").as_bytes())
        .ctx(|| format!("write {}", f.display()))
}

/// Remove `f` if it carries `token` (it may be gone, or another allocation's by now).
fn remove_if_ours(f: &Path, token: &str) -> io::Result<()> {
    match owner(f) {
        Some((_, t)) if t == token => match fs::remove_file(f) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Give back a container's slot and ports (under the lock).
pub fn release(
    root: &Path,
    bridge: &str,
    slot: u32,
    ports: &[super::Publish],
    token: &str,
) -> Result<()> {
    let ipam = Ipam::lock(root)?;
    for p in ports {
        let f = ipam.port_file(p);
        remove_if_ours(&f, token).ctx(|| format!("remove {}", f.display()))?;
    }
    let f = ipam.dir.join(bridge).join(slot.to_string());
    remove_if_ours(&f, token).ctx(|| format!("remove {}", f.display()))?;
    crate::diag::mark("net: address released");
    Ok(())
}

/// Host numbers in a subnet (slots 2..capacity: the network, the gateway and the IPv4
/// broadcast address are never given out; IPv6 is capped at 2^24 slots).
fn capacity(net: &IpNet) -> u32 {
    let bits = net.max_prefix_len() - net.prefix_len();
    let n: u64 = if bits >= 24 { 1 << 24 } else { 1 << bits };
    match net {
        IpNet::V4(_) => (n - 1) as u32,
        IpNet::V6(_) => n as u32,
    }
}

/// The `n`-th host of `net`.
pub fn nth(net: &IpNet, n: u32) -> IpAddr {
    match net {
        IpNet::V4(v) => IpAddr::V4((u32::from(v.network()) + n).into()),
        IpNet::V6(v) => IpAddr::V6((u128::from(v.network()) + n as u128).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_to_hosts() {
        let v4: IpNet = "10.209.0.0/16".parse().unwrap();
        let v6: IpNet = "fd00:5::/64".parse().unwrap();
        assert_eq!(nth(&v4, 2).to_string(), "10.209.0.2");
        assert_eq!(nth(&v4, 300).to_string(), "10.209.1.44");
        assert_eq!(nth(&v6, 2).to_string(), "fd00:5::2");
        assert_eq!(capacity(&"10.0.0.0/30".parse().unwrap()), 3);
        assert_eq!(capacity(&v6), 1 << 24);
    }
}
