//! runtime-spec 1.3's `linux.netDevices`: existing interfaces of the runtime's network namespace
//! (the host's) moved into the container's, renamed when the entry gives a `name` (a `%d`
//! template lets the kernel number it), as runc 1.3 and crun do it: one `RTM_SETLINK` of the
//! device's index carrying `IFLA_IFNAME` and `IFLA_NET_NS_FD` (rename and move at once, so no
//! name is ever taken twice), then, through an rtnetlink socket opened inside the container's
//! namespace, the device's permanent addresses of global scope put back (a move drops every
//! address; runtime-spec: "MUST preserve ... all permanent IP addresses ... with global scope")
//! and the link set up.
//!
//! [`Plan::from_spec`] refuses, before anything exists, what cannot work: a bad name (empty,
//! longer than 15 bytes, `/`, `:`, whitespace, `.`/`..`, a `%` that is not one `%d`), two
//! devices given one name inside, `lo` inside a new namespace (it has one), `eth0` beside
//! stockade's own bridge or CNI network, a device the runtime's namespace does not have, no network
//! namespace of the container's own (none listed, or the path of the runtime's own), and an
//! unprivileged runtime (as runc).
//!
//! When: the runtime moves the devices once the child's network namespace exists (the child's
//! "N", see `net`) and before the child gets its seccomp filter, so before anything of the
//! container runs; a namespace joined by path is opened by its path.
//!
//! Crash consistency, and what `delete` does: a record (`netdev.json` in the state directory)
//! names each device, with its index, hardware address, addresses and up state, *before* it is
//! moved. A network namespace the container made is pinned first (a bind mount at
//! `STATE/netdev.netns`): it outlives the container's processes and a killed runtime, so a
//! virtual device (veth, macvlan, ...) is not destroyed with it. `delete` (also `--force`, and a
//! foreground `run` once the container exits) moves every recorded device still in the pinned
//! namespace back into the runtime's namespace under its original name (the kernel's `dev%d` if
//! that name was taken meanwhile, with a warning), with its addresses and up state, then unpins.
//! A container that exits on its own keeps its devices in the pinned namespace until `delete`.
//! This goes beyond runtime-spec, whose words are that the runtime "MUST NOT attempt to move the
//! interface out of the namespace before deletion" and leave it to the kernel (physical devices
//! go to the initial namespace under their container name, virtual ones are destroyed): for a
//! namespace stockade made, stockade is its owner and gives back what it was lent. A namespace
//! joined by path belongs to whoever made it (a pod's, Kubernetes' DRA drivers): its devices
//! stay there at `delete`, as with runc; they are moved back only when the container never
//! came to exist (its setup failed, or its runtime was killed before the commit).

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use super::netlink::{Req, Rtnl};
use crate::diag::{mark, warn};
use crate::error::{config_err, Context, Error, Result};
use crate::procfs::ProcFs;

/// The record's name in the state directory.
pub const RECORD: &str = "netdev.json";
/// Where a network namespace the container made is pinned.
const PIN: &str = "netdev.netns";
const FIELD: &str = "linux.netDevices";

/// The container's network namespace.
#[derive(Debug, Clone)]
pub enum Target {
    /// Made for it (by its clone or its child).
    New,
    /// Joined by `path`: another's.
    Joined(PathBuf),
}

/// What the config asks for, checked: (name in the runtime's namespace, name inside), sorted.
#[derive(Debug, Clone)]
pub struct Plan {
    pub devices: Vec<(String, String)>,
    pub target: Target,
}

/// A name the kernel takes (`dev_valid_name`), `%d` only where a template may be.
fn check_name(name: &str, template: bool) -> std::result::Result<(), String> {
    super::check_ifname(name)?;
    let percent = name.matches('%').count();
    if percent > 0 && !(template && percent == 1 && name.contains("%d")) {
        return Err(format!(
            "{name:?}: '%' only as one \"%d\" in the name inside (a template the kernel numbers)"
        ));
    }
    Ok(())
}

/// The container's network namespace entry: none, or the runtime's own given by path, is
/// refused (the devices would never leave the host's).
fn target(spec: &Spec, file: &Path) -> Result<Target> {
    let entry = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::Network));
    let Some(entry) = entry else {
        return Err(config_err(file, FIELD, "moving interfaces needs a network namespace of the container's own: add {\"type\": \"network\"} to linux.namespaces (without one the container shares the runtime's)"));
    };
    let Some(path) = entry.path() else {
        return Ok(Target::New);
    };
    let id = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).map(|m| (m.dev(), m.ino()))
    };
    let own =
        id(Path::new("/proc/thread-self/ns/net")).ctx(|| "stat the runtime's network namespace")?;
    if id(path).ok() == Some(own) {
        return Err(config_err(
            file,
            FIELD,
            format!("the network namespace given by path ({}) is the runtime's own: the devices would stay on the host; give the container a network namespace of its own", path.display()),
        ));
    }
    Ok(Target::Joined(path.clone()))
}

impl Plan {
    /// The devices `linux.netDevices` names, checked against the runtime's namespace; None when
    /// it names none. `eth0`: stockade's own network (bridge or CNI) gives the container an `eth0`.
    pub fn from_spec(spec: &Spec, file: &Path, eth0: bool) -> Result<Option<Plan>> {
        let Some(map) = spec
            .linux()
            .as_ref()
            .and_then(|l| l.net_devices().as_ref())
            .filter(|m| !m.is_empty())
        else {
            return Ok(None);
        };
        let mut devices: Vec<(String, String)> = map
            .iter()
            .map(|(host, d)| {
                let inside = d.name().clone().filter(|n| !n.is_empty());
                (host.clone(), inside.unwrap_or_else(|| host.clone()))
            })
            .collect();
        devices.sort();
        for (host, inside) in &devices {
            check_name(host, false).map_err(|m| config_err(file, FIELD, m))?;
            check_name(inside, true)
                .map_err(|m| config_err(file, format!("{FIELD}.{host}.name"), m))?;
        }
        if !nix::unistd::geteuid().is_root() {
            return Err(config_err(file, FIELD, "needs root: an interface is moved out of the runtime's network namespace, which takes CAP_NET_ADMIN there (runc refuses it unprivileged too)"));
        }
        let target = target(spec, file)?;
        check_inside_names(&devices, &target, eth0, file)?;
        let mut rtnl = Rtnl::new().ctx(|| "rtnetlink socket")?;
        for (host, _) in &devices {
            if get_link(&mut rtnl, host)
                .ctx(|| format!("{FIELD}: look up {host:?}"))?
                .is_none()
            {
                return Err(config_err(
                    file,
                    format!("{FIELD}.{host}"),
                    format!("no interface {host:?} in the runtime's network namespace"),
                ));
            }
        }
        Ok(Some(Plan { devices, target }))
    }
}

/// Names inside: each once (templates aside), not one the new namespace already has.
fn check_inside_names(
    devices: &[(String, String)],
    target: &Target,
    eth0: bool,
    file: &Path,
) -> Result<()> {
    for (i, (host, inside)) in devices.iter().enumerate() {
        let field = format!("{FIELD}.{host}.name");
        if !inside.contains('%') && devices[..i].iter().any(|(_, o)| o == inside) {
            return Err(config_err(
                file,
                field,
                format!("{inside:?} is given to two devices"),
            ));
        }
        if matches!(target, Target::New) && inside == "lo" {
            return Err(config_err(
                file,
                field,
                "\"lo\": a new network namespace has its own loopback",
            ));
        }
        if eth0 && inside == super::veth::INNER {
            return Err(config_err(
                file,
                field,
                "\"eth0\" is the container's end of its network (org.stockade.net)",
            ));
        }
    }
    Ok(())
}

/// One address as it was on the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Addr {
    pub net: IpNet,
    #[serde(default)]
    pub broadcast: Option<Ipv4Addr>,
    /// `IFA_F_NODAD | IFA_F_NOPREFIXROUTE` as it had them.
    #[serde(default)]
    pub flags: u32,
}

/// One device, recorded before it moves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    /// Its name in the runtime's namespace (what it gets back).
    pub host: String,
    /// Its name inside: as asked (maybe a template) until moved, then the kernel's.
    pub inside: String,
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub mac: Vec<u8>,
    #[serde(default)]
    pub addrs: Vec<Addr>,
    #[serde(default)]
    pub up: bool,
}

/// What is (to be) moved, and where: written before any of it happens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// A namespace the container made, pinned: its devices come back at delete.
    #[serde(default)]
    pub pin: Option<PathBuf>,
    /// A namespace joined by path: its devices come back only if the container never ran.
    #[serde(default)]
    pub joined: Option<PathBuf>,
    pub devices: Vec<Device>,
}

impl Record {
    fn load(state_dir: &Path) -> Result<Option<Record>> {
        let p = state_dir.join(RECORD);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Other(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx(|| format!("read {}", p.display())),
        }
    }

    fn save(&self, state_dir: &Path) -> Result<()> {
        let tmp = state_dir.join(".netdev.json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("plain data");
        std::fs::write(&tmp, text).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, state_dir.join(RECORD)).ctx(|| format!("rename {RECORD}"))
    }
}

/// The devices of one container being created: given back when dropped unless kept.
pub struct Guard {
    record: Record,
    target: Target,
    state_dir: PathBuf,
    file: PathBuf,
    armed: bool,
}

/// Before the clone, with the state committed: the record, naming every device and the pin.
pub fn prepare(plan: &Plan, state_dir: &Path, file: &Path) -> Result<Guard> {
    let record = Record {
        pin: matches!(plan.target, Target::New).then(|| state_dir.join(PIN)),
        joined: match &plan.target {
            Target::Joined(p) => Some(p.clone()),
            Target::New => None,
        },
        devices: plan
            .devices
            .iter()
            .map(|(host, inside)| Device {
                host: host.clone(),
                inside: inside.clone(),
                index: 0,
                mac: vec![],
                addrs: vec![],
                up: false,
            })
            .collect(),
    };
    record.save(state_dir)?;
    Ok(Guard {
        record,
        target: plan.target.clone(),
        state_dir: state_dir.to_path_buf(),
        file: file.to_path_buf(),
        armed: true,
    })
}

impl Guard {
    /// Whether the runtime waits for the child's "N" first (its namespace is made for it).
    pub fn waits_for_child(&self) -> bool {
        matches!(self.target, Target::New)
    }

    /// The container's network namespace exists: pin it (if it is the container's), move each
    /// device in, put its addresses back, set it up.
    pub fn move_in(&mut self, pid: i32, proc: &ProcFs) -> Result<()> {
        let netns = match &self.target {
            Target::New => {
                let ns = proc
                    .open_ns(pid, "net")
                    .ctx(|| format!("open /proc/{pid}/ns/net"))?;
                let pin = self.record.pin.as_ref().expect("a new namespace is pinned");
                super::pin_netns(&ns, pin)?;
                ns
            }
            Target::Joined(p) => File::open(p)
                .ctx(|| format!("{FIELD}: open the network namespace {}", p.display()))?,
        };
        let mut host = Rtnl::new().ctx(|| "rtnetlink socket")?;
        let mut inner =
            rtnl_in(&netns).ctx(|| "rtnetlink socket in the container's network namespace")?;
        for i in 0..self.record.devices.len() {
            self.move_one(i, &mut host, &mut inner, netns.as_raw_fd())?;
        }
        Ok(())
    }

    fn move_one(
        &mut self,
        i: usize,
        host: &mut Rtnl,
        inner: &mut Rtnl,
        netns: RawFd,
    ) -> Result<()> {
        let d = &mut self.record.devices[i];
        let field = format!("{FIELD}.{}", d.host);
        let link = get_link(host, &d.host)
            .ctx(|| format!("{field}: look up {:?}", d.host))?
            .ok_or_else(|| {
                config_err(
                    &self.file,
                    &field,
                    format!(
                        "no interface {:?} in the runtime's network namespace",
                        d.host
                    ),
                )
            })?;
        d.index = link.header.index;
        d.mac = mac_of(&link);
        d.up = link.header.flags.contains(LinkFlags::Up);
        d.addrs = kept_addresses(host, d.index).ctx(|| format!("{field}: read its addresses"))?;
        self.record.save(&self.state_dir)?;
        let d = &mut self.record.devices[i];
        move_link(host, d.index, &d.inside, netns).map_err(|e| match e.raw_os_error() {
            Some(libc::EEXIST) => config_err(
                &self.file,
                format!("{field}.name"),
                format!(
                    "{:?} already exists in the container's network namespace",
                    d.inside
                ),
            ),
            _ => Error::Other(format!(
                "{field}: move {:?} into the container's network namespace as {:?}: {e}",
                d.host, d.inside
            )),
        })?;
        mark("netdev: moved");
        let moved = find(inner, d, None)
            .ctx(|| format!("{field}: look it up in the container's network namespace"))?
            .ok_or_else(|| {
                Error::Other(format!(
                    "{field}: moved, but not found in the container's network namespace"
                ))
            })?;
        d.inside = name_of(&moved).unwrap_or_else(|| d.inside.clone());
        let index = moved.header.index;
        let addrs = d.addrs.clone();
        let inside = d.inside.clone();
        self.record.save(&self.state_dir)?;
        configure(inner, index, &addrs, true)
            .ctx(|| format!("{field}: addresses and link up on {inside:?} in the container"))
    }

    /// Set up for good: the record stays for `delete`.
    pub fn keep(mut self) {
        self.armed = false;
    }

    /// The container has exited (a foreground run): give the devices back now.
    pub fn release(mut self) {
        self.armed = false;
        give_back(&self.record, true, &self.state_dir);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            // the container never came to exist: every device goes back, a joined namespace's too
            give_back(&self.record, false, &self.state_dir);
        }
    }
}

/// `delete`: give back what the container's record names (`committed`: the container came to
/// exist, so a joined namespace's devices stay its owner's).
pub fn delete(state_dir: &Path, committed: bool) -> Result<()> {
    if let Some(rec) = Record::load(state_dir)? {
        give_back(&rec, committed, state_dir);
    }
    Ok(())
}

/// Move every recorded device still in the container's namespace back, then unpin and drop
/// the record. Never fails: what cannot be done is said (a device left in a namespace that is
/// unpinned now goes where the kernel sends it), and the rest still done, so `delete` ends.
fn give_back(rec: &Record, committed: bool, state_dir: &Path) {
    mark("netdev: give back");
    let from = match (&rec.pin, &rec.joined) {
        (Some(pin), _) => Some(pin),
        (None, Some(joined)) if !committed => Some(joined),
        _ => None,
    };
    if let Some(from) = from {
        return_devices(rec, from);
    }
    if let Some(pin) = &rec.pin {
        super::unpin_netns(pin);
        if let Err(e) = std::fs::remove_file(pin) {
            if e.kind() != io::ErrorKind::NotFound {
                warn(&format!("{FIELD}: remove {}: {e}", pin.display()));
            }
        }
    }
    let _ = std::fs::remove_file(state_dir.join(RECORD));
    mark("netdev: given back");
}

fn return_devices(rec: &Record, from: &Path) {
    // a pin never mounted is an empty file, not a namespace: nothing was moved
    let Ok(ns) = File::open(from) else { return };
    let Ok(mut inner) = rtnl_in(&ns) else { return };
    let own = File::open("/proc/thread-self/ns/net");
    let (Ok(own), Ok(mut host)) = (own, Rtnl::new()) else {
        warn(&format!(
            "{FIELD}: cannot reach the runtime's network namespace: devices left in {}",
            from.display()
        ));
        return;
    };
    for d in &rec.devices {
        if let Err(e) = return_one(d, &mut inner, &mut host, own.as_raw_fd()) {
            warn(&format!("{FIELD}.{}: give it back: {e}", d.host));
        }
    }
}

fn return_one(d: &Device, inner: &mut Rtnl, host: &mut Rtnl, own: RawFd) -> io::Result<()> {
    // not there: never moved (or already back, or gone with its peer)
    let Some(link) = find(inner, d, None)? else {
        return Ok(());
    };
    let index = link.header.index;
    let mut name = d.host.as_str();
    if let Err(e) = move_link(inner, index, name, own) {
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
        // the name was taken meanwhile: the kernel numbers it
        move_link(inner, index, "dev%d", own)?;
        name = "";
    }
    let Some(back) = find(host, d, Some(name).filter(|n| !n.is_empty()))? else {
        return Err(io::Error::other(
            "moved back, but not found in the runtime's network namespace",
        ));
    };
    if name.is_empty() {
        warn(&format!(
            "{FIELD}.{}: the name was taken meanwhile: given back as {:?}",
            d.host,
            name_of(&back).unwrap_or_default()
        ));
    }
    configure(host, back.header.index, &d.addrs, d.up)
}

/// An rtnetlink socket in the namespace `ns` (made by a thread that enters it: a socket stays
/// in the namespace it was made in).
fn rtnl_in(ns: &File) -> io::Result<Rtnl> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            Rtnl::new()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("rtnetlink thread panicked")))
    })
}

/// The link called `name`, None if there is none.
fn get_link(rtnl: &mut Rtnl, name: &str) -> io::Result<Option<LinkMessage>> {
    let mut m = LinkMessage::default();
    m.attributes = vec![LinkAttribute::IfName(name.into())];
    link_answer(rtnl.get(RouteNetlinkMessage::GetLink(m)))
}

fn link_answer(r: io::Result<RouteNetlinkMessage>) -> io::Result<Option<LinkMessage>> {
    match r {
        Ok(RouteNetlinkMessage::NewLink(l)) => Ok(Some(l)),
        Ok(_) => Err(io::Error::other(
            "netlink: unexpected answer to RTM_GETLINK",
        )),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The device `d` in the namespace of `rtnl`. By its hardware address when it has one (the
/// kernel keeps the index across a move only when it is free there, and a move whose rename
/// fails with EEXIST has already moved the device, under its old name): the one with its index
/// first, then the one called `name`, then any. Without one (all zeros, as loopback's), by
/// `name` alone. `name` defaults to its name inside (none for a template).
fn find(rtnl: &mut Rtnl, d: &Device, name: Option<&str>) -> io::Result<Option<LinkMessage>> {
    let name = name.unwrap_or(&d.inside);
    if d.mac.iter().any(|b| *b != 0) {
        let mut same: Vec<LinkMessage> = rtnl
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) if mac_of(&l) == d.mac => Some(l),
                _ => None,
            })
            .collect();
        let pick = same
            .iter()
            .position(|l| l.header.index == d.index)
            .or_else(|| {
                same.iter()
                    .position(|l| name_of(l).as_deref() == Some(name))
            })
            .or((!same.is_empty()).then_some(0));
        return Ok(pick.map(|i| same.swap_remove(i)));
    }
    if name.contains('%') {
        return Ok(None);
    }
    get_link(rtnl, name)
}

fn mac_of(l: &LinkMessage) -> Vec<u8> {
    l.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn name_of(l: &LinkMessage) -> Option<String> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// Rename and move in one request (`name` may be a `%d` template).
fn move_link(rtnl: &mut Rtnl, index: u32, name: &str, netns: RawFd) -> io::Result<()> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes = vec![
        LinkAttribute::IfName(name.into()),
        LinkAttribute::NetNsFd(netns),
    ];
    rtnl.request(RouteNetlinkMessage::SetLink(m), Req::Plain)
}

/// The addresses a move must keep: permanent ones of global scope (runtime-spec, runc, crun).
fn kept_addresses(rtnl: &mut Rtnl, index: u32) -> io::Result<Vec<Addr>> {
    let mut out = vec![];
    for m in rtnl.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))? {
        let RouteNetlinkMessage::NewAddress(a) = m else {
            continue;
        };
        if a.header.index != index || a.header.scope != AddressScope::Universe {
            continue;
        }
        let flags = a
            .attributes
            .iter()
            .find_map(|x| match x {
                AddressAttribute::Flags(f) => Some(*f),
                _ => None,
            })
            .unwrap_or_else(|| AddressFlags::from_bits_truncate(a.header.flags.bits() as u32));
        if !flags.contains(AddressFlags::Permanent) {
            continue;
        }
        let local = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let addr = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        });
        let Some(ip) = local.or(addr) else { continue };
        let Ok(net) = IpNet::new(ip, a.header.prefix_len) else {
            continue;
        };
        let broadcast = a.attributes.iter().find_map(|x| match x {
            AddressAttribute::Broadcast(b) => Some(*b),
            _ => None,
        });
        let keep = AddressFlags::Nodad | AddressFlags::Noprefixroute;
        out.push(Addr {
            net,
            broadcast,
            flags: (flags & keep).bits(),
        });
    }
    Ok(out)
}

/// Addresses on link `index` (one there already counts as done), then the link up if `up`.
fn configure(rtnl: &mut Rtnl, index: u32, addrs: &[Addr], up: bool) -> io::Result<()> {
    for a in addrs {
        let mut m = AddressMessage::default();
        m.header.family = match a.net.addr() {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.prefix_len = a.net.prefix_len();
        m.header.index = index;
        m.attributes = vec![
            AddressAttribute::Local(a.net.addr()),
            AddressAttribute::Address(a.net.addr()),
        ];
        if let Some(b) = a.broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        if a.flags != 0 {
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::from_bits_truncate(
                    a.flags,
                )));
        }
        match rtnl.request(RouteNetlinkMessage::NewAddress(m), Req::Create) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
            _ => {}
        }
    }
    if up {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        rtnl.request(RouteNetlinkMessage::SetLink(m), Req::Plain)?;
    }
    Ok(())
}
