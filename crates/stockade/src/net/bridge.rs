//! The built-in bridge network: the host bridge (made on first use, kept afterwards like
//! `docker0`), one veth pair and address slot per container, nftables rules for masquerade,
//! published ports and isolation.
//!
//! What a bridge stockade makes changes on the host: a link `BRIDGE` (default `stockade0`) with
//! the first address of each subnet, `net.ipv4.conf.BRIDGE.route_localnet=1` (so a port
//! published on the host's loopback can be forwarded to a container), and in stockade's own
//! nftables tables ([`super::nft`]) the masquerade of the subnets' traffic leaving them.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::{Deserialize, Serialize};

use super::ipam::{self, Ipam};
use super::netlink::{Req, Rtnl};
use super::{nft, veth, BridgeRecord, Guard};
use crate::error::{Context, Error, Result};
use crate::procfs::ProcFs;

/// What stockade knows of a bridge it made (`ROOT/.net/BRIDGE.json`).
#[derive(Debug, Serialize, Deserialize)]
struct Info {
    index: u32,
    subnets: Vec<IpNet>,
}

fn net_err(what: impl std::fmt::Display, e: std::io::Error) -> Error {
    Error::Other(format!("net: {what}: {e}"))
}

/// Choose the container's address (record first) and make the bridge if it is missing.
pub fn allocate(g: &mut Guard) -> Result<()> {
    let plan = g.plan.clone();
    let ipam = Ipam::lock(&g.root)?;
    let mut rtnl = Rtnl::new().map_err(|e| net_err("rtnetlink socket", e))?;
    let (index, subnets) = ensure(&mut rtnl, &ipam, &plan.bridge, &plan.subnets)?;
    ipam.check_ports(&plan.publish)?;
    let token = g.record.token.clone();
    let mut rec = BridgeRecord {
        bridge: plan.bridge.clone(),
        bridge_index: index,
        slot: 0,
        veth: format!("stk{}", &token[..12]),
        addrs: vec![],
        gateways: subnets.iter().map(|s| ipam::nth(s, 1)).collect(),
        publish: plan.publish.clone(),
        isolate: plan.isolate,
    };
    let id = g.record.id.clone();
    ipam.allocate(&plan.bridge, &subnets, &id, &token, |slot| {
        rec.slot = slot;
        rec.addrs = subnets
            .iter()
            .map(|s| IpNet::new(ipam::nth(s, slot), s.prefix_len()).expect("valid prefix"))
            .collect();
        g.record.bridge = Some(rec);
        g.record.save(&g.state_dir)
    })?;
    ipam.take_ports(&plan.publish, &id, &token)?;
    Ok(())
}

/// Once the child's namespace exists: the veth pair, the inner end's addresses and routes,
/// then the container's rules.
pub fn attach(g: &mut Guard, netns: RawFd, sock: OwnedFd, proc: &ProcFs) -> Result<()> {
    let b = g.record.bridge.clone().expect("allocated");
    let mut host = Rtnl::new().map_err(|e| net_err("rtnetlink socket", e))?;
    veth::create(&mut host, &b.veth, b.bridge_index, netns)
        .map_err(|e| net_err(format!("create veth {} on {}", b.veth, b.bridge), e))?;
    crate::diag::mark("net: veth made");
    let mut inner = Rtnl::from_fd(sock).map_err(|e| net_err("container's rtnetlink", e))?;
    veth::configure_inside(&mut inner, &b.addrs, &b.gateways)
        .map_err(|e| net_err("configure eth0 in the container", e))?;
    crate::diag::mark("net: eth0 configured");
    if !b.publish.is_empty() || b.isolate {
        nft::add_container(&g.record.token, &g.record.id, &b)
            .map_err(|e| net_err("nftables rules", e))?;
        crate::diag::mark("net: rules added");
    }
    if g.plan.allow_forwarding {
        super::allow_forwarding(proc, b.addrs.iter().any(|a| matches!(a, IpNet::V6(_))))?;
    }
    Ok(())
}

/// Remove the container's veth, rules, address and ports (each gone already counts as done).
pub fn teardown(root: &Path, rec: &super::Record, b: &BridgeRecord) -> Result<()> {
    let mut host = Rtnl::new().map_err(|e| net_err("rtnetlink socket", e))?;
    veth::delete(&mut host, &b.veth).map_err(|e| net_err(format!("delete {}", b.veth), e))?;
    crate::diag::mark("net: veth removed");
    if !b.publish.is_empty() || b.isolate {
        nft::delete_tagged(&rec.token).map_err(|e| net_err("remove nftables rules", e))?;
        crate::diag::mark("net: rules removed");
    }
    if b.slot != 0 {
        ipam::release(root, &b.bridge, b.slot, &b.publish, &rec.token)?;
    }
    Ok(())
}

/// The container's veth is on its bridge, and its rules are there.
pub fn check(rec: &super::Record, b: &BridgeRecord) -> Result<String> {
    let mut host = Rtnl::new().map_err(|e| net_err("rtnetlink socket", e))?;
    let found = veth::master_of(&mut host, &b.veth)
        .map_err(|e| net_err(format!("look up {}", b.veth), e))?;
    match found {
        None => {
            return Err(Error::Other(format!(
                "net-check: veth {} is missing",
                b.veth
            )))
        }
        Some(m) if m != b.bridge_index => {
            return Err(Error::Other(format!(
                "net-check: veth {} is not on {}",
                b.veth, b.bridge
            )))
        }
        Some(_) => {}
    }
    let want = b.publish.len() * b.addrs.len() * 2 + if b.isolate { 2 } else { 0 };
    let have = nft::count_tagged(&rec.token).map_err(|e| net_err("list nftables rules", e))?;
    if have != want {
        return Err(Error::Other(format!(
            "net-check: {have} of the container's {want} nftables rules are there"
        )));
    }
    Ok(format!(
        "bridge {}: veth {} on it, {} rules",
        b.bridge, b.veth, have
    ))
}

/// The bridge's ifindex and subnets: the existing bridge's (which must match the subnets
/// asked for, if any), or a new one's.
fn ensure(
    rtnl: &mut Rtnl,
    ipam: &Ipam,
    name: &str,
    requested: &[IpNet],
) -> Result<(u32, Vec<IpNet>)> {
    let info_file = ipam.dir.join(format!("{name}.json"));
    let found = veth::index_of(rtnl, name).map_err(|e| net_err(format!("look up {name}"), e))?;
    let existed = found.is_some();
    let (index, subnets) = match found {
        Some((index, kind)) => {
            if kind != Some(InfoKind::Bridge) {
                return Err(Error::Other(format!(
                    "net: {name} exists and is not a bridge ({kind:?}): choose another --bridge"
                )));
            }
            let known = std::fs::read(&info_file)
                .ok()
                .and_then(|b| serde_json::from_slice::<Info>(&b).ok())
                .filter(|i| i.index == index);
            let subnets = match known {
                Some(i) => i.subnets,
                None => bridge_subnets(rtnl, index)?,
            };
            if subnets.is_empty() {
                return Err(Error::Other(format!(
                    "net: bridge {name} exists but has no address (not made by stockade?): choose another --bridge"
                )));
            }
            let (a, b): (BTreeSet<_>, BTreeSet<_>) =
                (requested.iter().collect(), subnets.iter().collect());
            if !requested.is_empty() && a != b {
                return Err(Error::Other(format!(
                    "net: --subnet {}: bridge {name} already has {} (choose another --bridge for another subnet)",
                    list(requested),
                    list(&subnets)
                )));
            }
            (index, subnets)
        }
        None => {
            let subnets = if requested.is_empty() {
                vec![super::DEFAULT_SUBNET.parse().expect("valid")]
            } else {
                requested.to_vec()
            };
            let index = create(rtnl, name, &subnets)?;
            (index, subnets)
        }
    };
    if !existed {
        let text = serde_json::to_vec(&Info {
            index,
            subnets: subnets.clone(),
        })
        .expect("plain data");
        std::fs::write(&info_file, text).ctx(|| format!("write {}", info_file.display()))?;
    }
    Ok((index, subnets))
}

fn list(nets: &[IpNet]) -> String {
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The subnets of the global addresses on link `index`.
fn bridge_subnets(rtnl: &mut Rtnl, index: u32) -> Result<Vec<IpNet>> {
    let all = rtnl
        .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
        .map_err(|e| net_err("dump addresses", e))?;
    let mut out = vec![];
    for m in all {
        if let RouteNetlinkMessage::NewAddress(a) = m {
            if a.header.index != index {
                continue;
            }
            for attr in &a.attributes {
                if let AddressAttribute::Local(ip) | AddressAttribute::Address(ip) = attr {
                    if is_link_local(ip) {
                        continue;
                    }
                    if let Ok(n) = IpNet::new(*ip, a.header.prefix_len) {
                        if !out.contains(&n.trunc()) {
                            out.push(n.trunc());
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Refuse a subnet that overlaps a route the host already has (another network, a VPN, a
/// Docker or CNI bridge): its traffic would go astray.
fn check_routes(rtnl: &mut Rtnl, subnets: &[IpNet]) -> Result<()> {
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut q = RouteMessage::default();
        q.header.address_family = family;
        let routes = rtnl
            .dump(RouteNetlinkMessage::GetRoute(q))
            .map_err(|e| net_err("dump routes", e))?;
        for m in routes {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            let len = r.header.destination_prefix_length;
            if len == 0 {
                continue;
            }
            let Some(dst) = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                _ => None,
            }) else {
                continue;
            };
            if dst.is_multicast() || is_link_local(&dst) || dst.is_loopback() {
                continue;
            }
            let Ok(route) = IpNet::new(dst, len) else {
                continue;
            };
            let route = route.trunc();
            for s in subnets {
                if s.contains(&route.network()) || route.contains(&s.network()) {
                    return Err(Error::Other(format!(
                        "net: --subnet {s} overlaps the host's route to {route}: choose another subnet"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A new bridge: checked against the host's routes, made up, given the gateway addresses,
/// `route_localnet`, and its masquerade rules. Removed again if any step fails.
fn create(rtnl: &mut Rtnl, name: &str, subnets: &[IpNet]) -> Result<u32> {
    check_routes(rtnl, subnets)?;
    let mut m = LinkMessage::default();
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes = vec![
        LinkAttribute::IfName(name.into()),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
    ];
    rtnl.request(RouteNetlinkMessage::NewLink(m), Req::Create)
        .map_err(|e| net_err(format!("create bridge {name}"), e))?;
    crate::diag::mark("net: bridge made");
    let r = (|| -> Result<u32> {
        let (index, _) = veth::index_of(rtnl, name)
            .map_err(|e| net_err(format!("look up {name}"), e))?
            .ok_or_else(|| Error::Other(format!("net: bridge {name} vanished")))?;
        let msgs = subnets
            .iter()
            .map(|s| {
                let gw = IpNet::new(ipam::nth(s, 1), s.prefix_len()).expect("valid prefix");
                (
                    RouteNetlinkMessage::NewAddress(veth::address(index, &gw)),
                    Req::Create,
                )
            })
            .collect();
        rtnl.batch(msgs)
            .map_err(|e| net_err(format!("address {name}"), e))?;
        if subnets.iter().any(|s| matches!(s, IpNet::V4(_))) {
            let proc = ProcFs::host().ctx(|| "open /proc")?;
            proc.write(&format!("sys/net/ipv4/conf/{name}/route_localnet"), b"1")
                .ctx(|| format!("write net.ipv4.conf.{name}.route_localnet"))?;
        }
        nft::add_bridge(name, subnets).map_err(|e| net_err("nftables masquerade rules", e))?;
        Ok(index)
    })();
    if r.is_err() {
        let _ = veth::delete(rtnl, name);
    }
    r
}
