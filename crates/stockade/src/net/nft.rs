//! stockade's nftables rules, programmed over netlink (`NETLINK_NETFILTER`, one atomic batch per
//! change). Two tables of its own, `inet stockade` and `bridge stockade` (nothing else of the
//! host's ruleset is read or changed, and a CNI or Docker network's iptables/nftables chains
//! are other tables):
//!
//! ```text
//! table inet stockade
//!   chain prerouting  { type nat hook prerouting priority -100 }   published ports (DNAT)
//!   chain output      { type nat hook output priority -100 }       the same, from the host itself
//!   chain postrouting { type nat hook postrouting priority 100 }   masquerade
//! table bridge stockade
//!   chain forward     { type filter hook forward priority 0 }      --isolate
//! ```
//!
//! Per bridge (made with it): `ip saddr SUBNET ip daddr != SUBNET masquerade` for each subnet,
//! and `ip saddr 127.0.0.0/8 oifname BRIDGE masquerade` (a port published on the host's
//! loopback: the DNAT'ed packet leaves with a loopback source, which `route_localnet` on the
//! bridge lets out and this rewrites). Per published port and address: `fib daddr type local
//! meta l4proto P th dport HOST dnat to ADDR:PORT`, in prerouting and output. Per isolated
//! container: `iifname VETH drop` and `oifname VETH drop` in the bridge's forward chain (traffic
//! between two bridge ports is forwarded by the bridge; traffic to the host is not).
//!
//! Every rule carries a comment: `stockade bridge NAME` or `stockade TOKEN ID`. Removal dumps
//! the tables and deletes the rules whose comment has the container's token, so it needs no
//! handle recorded anywhere and a runtime killed at any point leaves nothing `delete` misses.
//!
//! Written by hand: `rustables` (the maintained pure-Rust crate) is GPL-3.0, which this
//! Apache-2.0 project cannot take in; `nftnl`/`mnl` wrap the C libraries libnftnl and libmnl,
//! which the static binary would have to link. The messages for these few rule shapes (meta,
//! payload, bitwise, cmp, fib, immediate, nat, masq) are the kernel's stable UAPI
//! (`linux/netfilter/nf_tables.h`), and the tests check what the kernel made of them with
//! `nft list ruleset`.

use std::io;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_sys::{Socket, SocketAddr};

use super::{BridgeRecord, Proto};

const NETLINK_NETFILTER: isize = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;

const NLM_F_REQUEST: u16 = 1;
const NLM_F_MULTI: u16 = 2;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;

const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_BRIDGE: u8 = 7;
const NFPROTO_IPV6: u8 = 10;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_FORWARD: u32 = 2;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 2;
const RTN_LOCAL: u32 = 2;
const NFT_NAT_DNAT: u32 = 1;
const NF_NAT_RANGE_MAP_IPS: u32 = 1;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;

pub const TABLE: &str = "stockade";

/// Netlink attributes, appended one after the other (4-byte aligned).
#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, typ: u16, val: &[u8]) -> &mut Self {
        let len = 4 + val.len();
        self.0.extend((len as u16).to_ne_bytes());
        self.0.extend(typ.to_ne_bytes());
        self.0.extend(val);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
        self
    }
    fn str(&mut self, typ: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(typ, &v)
    }
    fn be32(&mut self, typ: u16, v: u32) -> &mut Self {
        self.put(typ, &v.to_be_bytes())
    }
    fn nest(&mut self, typ: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::default();
        f(&mut inner);
        self.put(typ | NLA_F_NESTED, &inner.0)
    }
}

/// One expression of a rule.
struct Expr {
    name: &'static str,
    data: Attrs,
}

fn expr(name: &'static str, f: impl FnOnce(&mut Attrs)) -> Expr {
    let mut data = Attrs::default();
    f(&mut data);
    Expr { name, data }
}

fn meta(key: u32) -> Expr {
    expr("meta", |a| {
        a.be32(2, key).be32(1, NFT_REG_1); // NFTA_META_KEY, NFTA_META_DREG
    })
}

fn payload(base: u32, offset: u32, len: u32) -> Expr {
    expr("payload", |a| {
        a.be32(1, NFT_REG_1)
            .be32(2, base)
            .be32(3, offset)
            .be32(4, len);
    })
}

fn cmp(op: u32, data: &[u8]) -> Expr {
    expr("cmp", |a| {
        a.be32(1, NFT_REG_1).be32(2, op).nest(3, |d| {
            d.put(NFTA_DATA_VALUE, data);
        });
    })
}

fn bitwise(mask: &[u8]) -> Expr {
    expr("bitwise", |a| {
        a.be32(1, NFT_REG_1)
            .be32(2, NFT_REG_1)
            .be32(3, mask.len() as u32)
            .nest(4, |d| {
                d.put(NFTA_DATA_VALUE, mask);
            })
            .nest(5, |d| {
                d.put(NFTA_DATA_VALUE, &vec![0; mask.len()]);
            });
    })
}

fn immediate(reg: u32, data: &[u8]) -> Expr {
    expr("immediate", |a| {
        a.be32(1, reg).nest(2, |d| {
            d.put(NFTA_DATA_VALUE, data);
        });
    })
}

fn verdict(code: u32) -> Expr {
    expr("immediate", |a| {
        a.be32(1, NFT_REG_VERDICT).nest(2, |d| {
            d.nest(NFTA_DATA_VERDICT, |v| {
                v.be32(NFTA_VERDICT_CODE, code);
            });
        });
    })
}

fn nfproto(v6: bool) -> [Expr; 2] {
    [
        meta(NFT_META_NFPROTO),
        cmp(NFT_CMP_EQ, &[if v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 }]),
    ]
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `ip saddr|daddr [!=] NET`: the address loaded, masked, compared.
fn addr_in(net: &IpNet, source: bool, op: u32) -> [Expr; 3] {
    let (off, len) = match (net, source) {
        (IpNet::V4(_), true) => (12, 4),
        (IpNet::V4(_), false) => (16, 4),
        (IpNet::V6(_), true) => (8, 16),
        (IpNet::V6(_), false) => (24, 16),
    };
    [
        payload(NFT_PAYLOAD_NETWORK_HEADER, off, len),
        bitwise(&ip_bytes(&net.netmask())),
        cmp(op, &ip_bytes(&net.network())),
    ]
}

fn ifname(key: u32, name: &str) -> [Expr; 2] {
    let mut v = [0u8; 16];
    v[..name.len()].copy_from_slice(name.as_bytes());
    [meta(key), cmp(NFT_CMP_EQ, &v)]
}

/// A message for the batch: nlmsghdr, nfgenmsg, attributes.
fn message(typ: u16, flags: u16, family: u8, seq: u32, attrs: &Attrs) -> Vec<u8> {
    let len = 16 + 4 + attrs.0.len();
    let mut m = Vec::with_capacity(len);
    m.extend((len as u32).to_ne_bytes());
    m.extend(((NFNL_SUBSYS_NFTABLES << 8) | typ).to_ne_bytes());
    m.extend(flags.to_ne_bytes());
    m.extend(seq.to_ne_bytes());
    m.extend(0u32.to_ne_bytes());
    m.push(family);
    m.push(0); // NFNETLINK_V0
    m.extend(0u16.to_be_bytes());
    m.extend(&attrs.0);
    m
}

struct Batch {
    msgs: Vec<Vec<u8>>,
    seq: u32,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            msgs: vec![],
            seq: 1,
        }
    }

    fn push(&mut self, typ: u16, flags: u16, family: u8, attrs: Attrs) {
        self.seq += 1;
        self.msgs.push(message(
            typ,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            family,
            self.seq,
            &attrs,
        ));
    }

    /// `add table FAMILY stockade` (no-op if it is there).
    fn table(&mut self, family: u8) {
        let mut a = Attrs::default();
        a.str(NFTA_TABLE_NAME, TABLE);
        self.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, family, a);
    }

    /// `add chain FAMILY stockade NAME { type TYPE hook HOOK priority PRIO; policy accept; }`.
    fn chain(&mut self, family: u8, name: &str, typ: &str, hook: u32, prio: i32) {
        let mut a = Attrs::default();
        a.str(NFTA_CHAIN_TABLE, TABLE)
            .str(NFTA_CHAIN_NAME, name)
            .nest(NFTA_CHAIN_HOOK, |h| {
                h.be32(NFTA_HOOK_HOOKNUM, hook)
                    .be32(NFTA_HOOK_PRIORITY, prio as u32);
            })
            .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
            .str(NFTA_CHAIN_TYPE, typ);
        self.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, family, a);
    }

    fn nat_chains(&mut self) {
        self.table(NFPROTO_INET);
        self.chain(NFPROTO_INET, "prerouting", "nat", NF_INET_PRE_ROUTING, -100);
        self.chain(NFPROTO_INET, "output", "nat", NF_INET_LOCAL_OUT, -100);
        self.chain(
            NFPROTO_INET,
            "postrouting",
            "nat",
            NF_INET_POST_ROUTING,
            100,
        );
    }

    fn bridge_chain(&mut self) {
        self.table(NFPROTO_BRIDGE);
        self.chain(NFPROTO_BRIDGE, "forward", "filter", NF_INET_FORWARD, 0);
    }

    /// A rule at the end of `chain`, with `comment`.
    fn rule(&mut self, family: u8, chain: &str, comment: &str, exprs: Vec<Expr>) {
        let mut a = Attrs::default();
        a.str(NFTA_RULE_TABLE, TABLE)
            .str(NFTA_RULE_CHAIN, chain)
            .nest(NFTA_RULE_EXPRESSIONS, |l| {
                for e in exprs {
                    l.nest(NFTA_LIST_ELEM, |el| {
                        el.str(NFTA_EXPR_NAME, e.name);
                        if !e.data.0.is_empty() {
                            el.put(NFTA_EXPR_DATA | NLA_F_NESTED, &e.data.0);
                        }
                    });
                }
            });
        // libnftnl's user data: TLV NFTNL_UDATA_RULE_COMMENT (0), NUL-terminated
        let mut ud = vec![0u8, (comment.len() + 1) as u8];
        ud.extend(comment.as_bytes());
        ud.push(0);
        a.put(NFTA_RULE_USERDATA, &ud);
        self.push(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, a);
    }

    /// Send it between BATCH_BEGIN and BATCH_END and wait for every acknowledgement: the kernel
    /// applies all of it or none.
    fn commit(self) -> io::Result<()> {
        if self.msgs.is_empty() {
            return Ok(());
        }
        let sock = socket()?;
        let mut out = message(
            NFNL_MSG_BATCH_BEGIN & 0xff,
            NLM_F_REQUEST,
            0,
            1,
            &Attrs::default(),
        );
        // batch messages are not of the nftables subsystem: plain type, res_id = the subsystem
        out[4..6].copy_from_slice(&NFNL_MSG_BATCH_BEGIN.to_ne_bytes());
        out[18..20].copy_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        let n = self.msgs.len() as u32;
        for m in &self.msgs {
            out.extend(m);
        }
        let mut end = message(0, NLM_F_REQUEST, 0, self.seq + 1, &Attrs::default());
        end[4..6].copy_from_slice(&NFNL_MSG_BATCH_END.to_ne_bytes());
        end[18..20].copy_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
        out.extend(end);
        sock.send(&out, 0)?;
        let mut acked = 0;
        let mut buf = vec![0u8; 64 * 1024];
        while acked < n {
            let len = sock.recv(&mut &mut buf[..], 0)?;
            for (typ, _, seq, body) in parse(&buf[..len]) {
                if typ == NLMSG_ERROR && body.len() >= 4 {
                    let code = i32::from_ne_bytes(body[..4].try_into().expect("4 bytes"));
                    if code != 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    if (2..=self.seq).contains(&seq) {
                        acked += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

fn socket() -> io::Result<Socket> {
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    Ok(sock)
}

/// The netlink messages in `buf`: (type, flags, seq, body after the nlmsghdr).
fn parse(buf: &[u8]) -> Vec<(u16, u16, u32, &[u8])> {
    let mut out = vec![];
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4")) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        let typ = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2"));
        let flags = u16::from_ne_bytes(buf[off + 6..off + 8].try_into().expect("2"));
        let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4"));
        out.push((typ, flags, seq, &buf[off + 16..off + len]));
        off += (len + 3) & !3;
    }
    out
}

/// The attributes in `buf`: (type without flags, value).
fn attrs(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = vec![];
    let mut off = 0;
    while off + 4 <= buf.len() {
        let len = u16::from_ne_bytes(buf[off..off + 2].try_into().expect("2")) as usize;
        let typ = u16::from_ne_bytes(buf[off + 2..off + 4].try_into().expect("2")) & 0x3fff;
        if len < 4 || off + len > buf.len() {
            break;
        }
        out.push((typ, &buf[off + 4..off + len]));
        off += (len + 3) & !3;
    }
    out
}

/// The masquerade rules of a new bridge.
pub fn add_bridge(bridge: &str, subnets: &[IpNet]) -> io::Result<()> {
    let mut b = Batch::new();
    b.nat_chains();
    let tag = format!("stockade bridge {bridge}");
    for s in subnets {
        let v6 = matches!(s, IpNet::V6(_));
        let mut e: Vec<Expr> = nfproto(v6).into();
        e.extend(addr_in(s, true, NFT_CMP_EQ));
        e.extend(addr_in(s, false, NFT_CMP_NEQ));
        e.push(expr("masq", |_| {}));
        b.rule(NFPROTO_INET, "postrouting", &tag, e);
    }
    if subnets.iter().any(|s| matches!(s, IpNet::V4(_))) {
        let lo: IpNet = "127.0.0.0/8".parse().expect("valid");
        let mut e: Vec<Expr> = nfproto(false).into();
        e.extend(addr_in(&lo, true, NFT_CMP_EQ));
        e.extend(ifname(NFT_META_OIFNAME, bridge));
        e.push(expr("masq", |_| {}));
        b.rule(NFPROTO_INET, "postrouting", &tag, e);
    }
    b.commit()
}

/// A container's published ports and isolation.
pub fn add_container(token: &str, id: &str, rec: &BridgeRecord) -> io::Result<()> {
    let mut b = Batch::new();
    let tag = format!("stockade {token} {id}");
    if !rec.publish.is_empty() {
        b.nat_chains();
    }
    for p in &rec.publish {
        for a in &rec.addrs {
            let v6 = matches!(a, IpNet::V6(_));
            for chain in ["prerouting", "output"] {
                let mut e: Vec<Expr> = nfproto(v6).into();
                e.push(expr("fib", |f| {
                    f.be32(1, NFT_REG_1)
                        .be32(2, NFT_FIB_RESULT_ADDRTYPE)
                        .be32(3, NFTA_FIB_F_DADDR);
                }));
                e.push(cmp(NFT_CMP_EQ, &RTN_LOCAL.to_ne_bytes()));
                e.push(meta(NFT_META_L4PROTO));
                e.push(cmp(
                    NFT_CMP_EQ,
                    &[match p.proto {
                        Proto::Tcp => libc::IPPROTO_TCP as u8,
                        Proto::Udp => libc::IPPROTO_UDP as u8,
                    }],
                ));
                e.push(payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2));
                e.push(cmp(NFT_CMP_EQ, &p.host.to_be_bytes()));
                e.push(immediate(NFT_REG_1, &ip_bytes(&a.addr())));
                e.push(immediate(NFT_REG_2, &p.container.to_be_bytes()));
                e.push(expr("nat", |n| {
                    n.be32(1, NFT_NAT_DNAT)
                        .be32(2, if v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 } as u32)
                        .be32(3, NFT_REG_1)
                        .be32(5, NFT_REG_2)
                        .be32(7, NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED);
                }));
                b.rule(NFPROTO_INET, chain, &tag, e);
            }
        }
    }
    if rec.isolate {
        b.bridge_chain();
        for key in [NFT_META_IIFNAME, NFT_META_OIFNAME] {
            let mut e: Vec<Expr> = ifname(key, &rec.veth).into();
            e.push(verdict(NF_DROP));
            b.rule(NFPROTO_BRIDGE, "forward", &tag, e);
        }
    }
    b.commit()
}

/// Delete every rule of stockade's tables whose comment carries `token`.
pub fn delete_tagged(token: &str) -> io::Result<()> {
    let needle = format!("stockade {token} ");
    let mut b = Batch::new();
    for family in [NFPROTO_INET, NFPROTO_BRIDGE] {
        for (chain, handle) in rules(family, &needle)? {
            let mut a = Attrs::default();
            a.str(NFTA_RULE_TABLE, TABLE)
                .str(NFTA_RULE_CHAIN, &chain)
                .put(NFTA_RULE_HANDLE, &handle.to_be_bytes());
            b.push(NFT_MSG_DELRULE, 0, family, a);
        }
    }
    b.commit()
}

/// How many rules carry `token`.
pub fn count_tagged(token: &str) -> io::Result<usize> {
    let needle = format!("stockade {token} ");
    Ok(rules(NFPROTO_INET, &needle)?.len() + rules(NFPROTO_BRIDGE, &needle)?.len())
}

/// (chain, handle) of the rules in `family`'s table whose comment contains `needle`.
fn rules(family: u8, needle: &str) -> io::Result<Vec<(String, u64)>> {
    let sock = socket()?;
    let mut a = Attrs::default();
    a.str(NFTA_RULE_TABLE, TABLE);
    sock.send(
        &message(NFT_MSG_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, family, 1, &a),
        0,
    )?;
    let mut out = vec![];
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let len = sock.recv(&mut &mut buf[..], 0)?;
        for (typ, flags, _, body) in parse(&buf[..len]) {
            match typ {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let code = i32::from_ne_bytes(body[..4].try_into().expect("4 bytes"));
                    return match -code {
                        0 | libc::ENOENT => Ok(out),
                        e => Err(io::Error::from_raw_os_error(e)),
                    };
                }
                _ if body.len() > 4 => {
                    let (mut chain, mut handle, mut mine) = (String::new(), 0, false);
                    for (t, v) in attrs(&body[4..]) {
                        match t {
                            NFTA_RULE_CHAIN => {
                                chain = String::from_utf8_lossy(v).trim_end_matches('\0').into()
                            }
                            NFTA_RULE_HANDLE if v.len() == 8 => {
                                handle = u64::from_be_bytes(v.try_into().expect("8"))
                            }
                            NFTA_RULE_USERDATA => {
                                mine = String::from_utf8_lossy(v).contains(needle)
                            }
                            _ => {}
                        }
                    }
                    if mine && handle != 0 {
                        out.push((chain, handle));
                    }
                    if flags & NLM_F_MULTI == 0 {
                        return Ok(out);
                    }
                }
                _ => {}
            }
        }
    }
}
