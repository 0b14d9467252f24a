//! The veth pair of one container: the host end (`stkTOKEN`) enslaved to the bridge and up, the
//! inner end made directly in the container's network namespace as `eth0` (one `RTM_NEWLINK`:
//! no rename, no move), then its addresses and default routes set through an rtnetlink socket
//! that lives in that namespace.

use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::netlink::{Req, Rtnl};

/// The name of the container's end.
pub const INNER: &str = "eth0";

fn family(a: &IpAddr) -> AddressFamily {
    match a {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Make the pair: `host` on the bridge `bridge_index`, up; `eth0` in `netns`, up.
pub fn create(rtnl: &mut Rtnl, host: &str, bridge_index: u32, netns: RawFd) -> io::Result<()> {
    // The peer cannot be made up here (veth_open: ENOTCONN until the pair is linked): it is
    // brought up from inside, with its addresses.
    let mut peer = LinkMessage::default();
    peer.attributes = vec![
        LinkAttribute::IfName(INNER.into()),
        LinkAttribute::NetNsFd(netns),
    ];
    let mut m = LinkMessage::default();
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes = vec![
        LinkAttribute::IfName(host.into()),
        LinkAttribute::Controller(bridge_index),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]),
    ];
    rtnl.request(RouteNetlinkMessage::NewLink(m), Req::Create)
}

/// The index of the link called `name`, None if there is none.
pub fn index_of(rtnl: &mut Rtnl, name: &str) -> io::Result<Option<(u32, Option<InfoKind>)>> {
    let mut m = LinkMessage::default();
    m.attributes = vec![LinkAttribute::IfName(name.into())];
    match rtnl.get(RouteNetlinkMessage::GetLink(m)) {
        Ok(RouteNetlinkMessage::NewLink(l)) => {
            let kind = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.clone()),
                    _ => None,
                }),
                _ => None,
            });
            Ok(Some((l.header.index, kind)))
        }
        Ok(_) => Err(io::Error::other(
            "netlink: unexpected answer to RTM_GETLINK",
        )),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The master (bridge) index of link `name`: None if there is no such link, Some(0) if it has
/// no master.
pub fn master_of(rtnl: &mut Rtnl, name: &str) -> io::Result<Option<u32>> {
    let mut m = LinkMessage::default();
    m.attributes = vec![LinkAttribute::IfName(name.into())];
    match rtnl.get(RouteNetlinkMessage::GetLink(m)) {
        Ok(RouteNetlinkMessage::NewLink(l)) => Ok(Some(
            l.attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::Controller(i) => Some(*i),
                    _ => None,
                })
                .unwrap_or(0),
        )),
        Ok(_) => Err(io::Error::other(
            "netlink: unexpected answer to RTM_GETLINK",
        )),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An address message for `addr` on link `index` (IPv6 without duplicate address detection:
/// the address is ours by allocation, and DAD would hold it "tentative" for a second).
pub fn address(index: u32, addr: &IpNet) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family(&addr.addr());
    m.header.prefix_len = addr.prefix_len();
    m.header.index = index;
    m.attributes = vec![AddressAttribute::Local(addr.addr())];
    match addr {
        IpNet::V4(v) => {
            m.attributes.push(AddressAttribute::Address(addr.addr()));
            if v.prefix_len() < 31 {
                m.attributes
                    .push(AddressAttribute::Broadcast(v.broadcast()));
            }
        }
        IpNet::V6(_) => {
            m.attributes.push(AddressAttribute::Address(addr.addr()));
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    m
}

/// Inside the container's namespace (`rtnl` was opened there): addresses on `eth0`, default
/// routes via the gateways, the link up. One send, acknowledged message by message.
pub fn configure_inside(rtnl: &mut Rtnl, addrs: &[IpNet], gateways: &[IpAddr]) -> io::Result<()> {
    let (index, _) = index_of(rtnl, INNER)?
        .ok_or_else(|| io::Error::other("eth0 did not appear in the container's namespace"))?;
    let mut up = LinkMessage::default();
    up.header.index = index;
    up.header.flags = LinkFlags::Up;
    up.header.change_mask = LinkFlags::Up;
    let mut msgs = vec![(RouteNetlinkMessage::SetLink(up), Req::Plain)];
    for a in addrs {
        msgs.push((
            RouteNetlinkMessage::NewAddress(address(index, a)),
            Req::Create,
        ));
    }
    for gw in gateways {
        let mut r = RouteMessage::default();
        r.header.address_family = family(gw);
        r.header.table = libc::RT_TABLE_MAIN;
        r.header.protocol = RouteProtocol::Boot;
        r.header.scope = RouteScope::Universe;
        r.header.kind = RouteType::Unicast;
        r.attributes = vec![
            RouteAttribute::Gateway(match gw {
                IpAddr::V4(a) => RouteAddress::Inet(*a),
                IpAddr::V6(a) => RouteAddress::Inet6(*a),
            }),
            RouteAttribute::Oif(index),
        ];
        msgs.push((RouteNetlinkMessage::NewRoute(r), Req::Create));
    }
    rtnl.batch(msgs)
}

/// Remove the link called `name` (with its peer); gone already counts as done.
pub fn delete(rtnl: &mut Rtnl, name: &str) -> io::Result<()> {
    let mut m = LinkMessage::default();
    m.attributes = vec![LinkAttribute::IfName(name.into())];
    match rtnl.request(RouteNetlinkMessage::DelLink(m), Req::Plain) {
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        r => r,
    }
}
