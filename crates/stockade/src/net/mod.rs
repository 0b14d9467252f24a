//! Seed §1's "Ethernet bridges that allow networking between hosts and namespaces": the network
//! a container gets beyond loopback. One [`Plan`] comes from the spec's annotations
//! (`org.stockade.net=bridge|cni:NAME|pasta` and `org.stockade.net.*`, which `sandbox --net`
//! writes; a spec that joins a network namespace by path, as engines' do, is never touched):
//!
//! - **bridge** ([`bridge`], [`veth`], [`ipam`], [`nft`]): a host bridge (`stockade0`), a veth
//!   pair whose inner end is the container's `eth0`, an address per subnet from [`ipam`], a
//!   default route via the bridge, masquerade and published ports in stockade's own nftables
//!   table, `--isolate` in its bridge-family table;
//! - **cni** ([`cni`]): the plugins of a CNI 1.0 conflist, ADD at create, DEL at delete;
//! - **pasta** ([`pasta`]): for unprivileged callers, `pasta` attached to the namespace.
//!
//! Beside any of them (or alone), runtime-spec 1.3's `linux.netDevices` ([`netdev`]): existing
//! interfaces of the runtime's network namespace moved into the container's, and back at delete.
//!
//! The order, for crash consistency (a runtime can be killed at any instant and `delete --force`
//! must remove everything): the container's state is committed first; then, under the address
//! lock, the allocation is chosen and its [`Record`] (`net.json` in the state directory: token,
//! veth name, addresses, ports) is written *before* the address file, the veth or any rule
//! exists. Every object made afterwards is named by the record (the veth by name, rules by a
//! comment carrying the token, address and port files by the token inside them), so teardown
//! needs nothing else and removes only what is this container's. The network is set up by the
//! runtime once the child has made its namespace (the child sends "N" with an rtnetlink socket
//! opened inside it) and before the child gets its seccomp filter, so no user code runs before
//! the network is up.
//!
//! `/etc/hosts` and `/etc/resolv.conf` are files in the state directory, bind-mounted read-only
//! over the image's (which is never written).

pub mod bridge;
pub mod cni;
pub mod ipam;
pub mod netdev;
mod netlink;
pub mod nft;
pub mod pasta;
pub mod veth;

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::error::{config_err, Context, Error, Result};
use crate::procfs::ProcFs;

pub const ANNOTATION: &str = "org.stockade.net";
pub const A_BRIDGE: &str = "org.stockade.net.bridge";
/// Comma-separated CIDRs, at most one IPv4 and one IPv6.
pub const A_SUBNET: &str = "org.stockade.net.subnet";
/// Comma-separated `HOST:CONTAINER[/tcp|udp]`.
pub const A_PUBLISH: &str = "org.stockade.net.publish";
pub const A_ISOLATE: &str = "org.stockade.net.isolate";
pub const A_FORWARDING: &str = "org.stockade.net.allow-forwarding";
pub const A_CNI_CONF_DIR: &str = "org.stockade.net.cni.conf-dir";
/// Colon-separated plugin directories.
pub const A_CNI_PATH: &str = "org.stockade.net.cni.path";

pub const DEFAULT_BRIDGE: &str = "stockade0";
/// The default subnet of a bridge stockade makes (podman's 10.88/16 and Docker's 172.17/16 are
/// left alone, so the three coexist on one host).
pub const DEFAULT_SUBNET: &str = "10.209.0.0/16";
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub const DEFAULT_CNI_PATH: &str = "/usr/lib/cni";

/// The record's name in the state directory.
pub const RECORD: &str = "net.json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Bridge,
    Cni(String),
    Pasta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A published port: traffic to the host's `host` port goes to the container's `container`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub host: u16,
    pub container: u16,
    pub proto: Proto,
}

impl std::fmt::Display for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.container, self.proto.name())
    }
}

/// What the spec asks for.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub bridge: String,
    /// As given; empty: the existing bridge's, or [`DEFAULT_SUBNET`].
    pub subnets: Vec<IpNet>,
    pub publish: Vec<Publish>,
    pub isolate: bool,
    pub allow_forwarding: bool,
    pub cni_conf_dir: PathBuf,
    pub cni_path: Vec<PathBuf>,
    pub hostname: String,
}

/// `HOST:CONTAINER[/tcp|udp]`.
pub fn parse_publish(s: &str) -> std::result::Result<Publish, String> {
    let (ports, proto) = match s.rsplit_once('/') {
        Some((p, "tcp")) => (p, Proto::Tcp),
        Some((p, "udp")) => (p, Proto::Udp),
        Some((_, other)) => return Err(format!("{s:?}: protocol {other:?} is not tcp or udp")),
        None => (s, Proto::Tcp),
    };
    let (h, c) = ports
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected HOST_PORT:CONTAINER_PORT[/tcp|udp]"))?;
    let port = |p: &str| -> std::result::Result<u16, String> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{s:?}: {p:?} is not a port (1-65535)")),
        }
    };
    Ok(Publish {
        host: port(h)?,
        container: port(c)?,
        proto,
    })
}

/// A subnet: a network address with its prefix (host bits zero), room for a gateway and
/// containers.
pub fn parse_subnet(s: &str) -> std::result::Result<IpNet, String> {
    let net: IpNet = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a CIDR (like 10.209.0.0/16 or fd00:5::/64)"))?;
    if net.network() != net.addr() {
        return Err(format!(
            "{s:?} has host bits set (the network is {})",
            net.trunc()
        ));
    }
    let (max, min) = match net {
        IpNet::V4(_) => (30, 8),
        IpNet::V6(_) => (120, 48),
    };
    if net.prefix_len() > max || net.prefix_len() < min {
        return Err(format!(
            "{s:?}: the prefix must be between /{min} and /{max}"
        ));
    }
    if net.addr().is_loopback() || net.addr().is_multicast() || net.addr().is_unspecified() {
        return Err(format!("{s:?} is not a unicast network"));
    }
    if let IpAddr::V6(a) = net.addr() {
        if a.segments()[0] & 0xffc0 == 0xfe80 {
            return Err(format!("{s:?} is link-local"));
        }
    }
    Ok(net)
}

/// A Linux interface name: 1-15 bytes, no '/', ':', whitespace or NUL (`dev_valid_name`).
pub fn check_ifname(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "{name:?}: an interface name has 1 to 15 bytes (it has {})",
            name.len()
        ));
    }
    if name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b <= b' ' || b >= 0x7f)
    {
        return Err(format!(
            "{name:?}: an interface name has no '/', ':', spaces or control characters"
        ));
    }
    Ok(())
}

fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(|s| s.as_str()), Some("true" | "1" | "yes"))
}

impl Plan {
    /// The plan the spec's annotations ask for, checked; None when they ask for nothing.
    pub fn from_spec(spec: &Spec, file: &Path) -> Result<Option<Plan>> {
        let empty = Default::default();
        let ann = spec.annotations().as_ref().unwrap_or(&empty);
        let Some(mode) = ann.get(ANNOTATION) else {
            if let Some(k) = ann.keys().find(|k| k.starts_with("org.stockade.net.")) {
                return Err(config_err(
                    file,
                    field(k),
                    format!("needs {ANNOTATION} (bridge, cni:NAME or pasta)"),
                ));
            }
            return Ok(None);
        };
        let mode = parse_mode(mode, file)?;
        let nss = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        if !nss
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network && n.path().is_none())
        {
            return Err(config_err(
                file,
                field(ANNOTATION),
                "needs a new network namespace (a linux.namespaces entry of type network without a path)",
            ));
        }
        let bridge = ann
            .get(A_BRIDGE)
            .cloned()
            .unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
        check_ifname(&bridge).map_err(|m| config_err(file, field(A_BRIDGE), m))?;
        let subnets = parse_subnets(ann.get(A_SUBNET), file)?;
        let publish = parse_publish_list(ann.get(A_PUBLISH), file)?;
        let isolate = truthy(ann.get(A_ISOLATE));
        let allow_forwarding = truthy(ann.get(A_FORWARDING));
        check_mode(&mode, ann, (&subnets, isolate, allow_forwarding), file)?;
        let cni_conf_dir = ann
            .get(A_CNI_CONF_DIR)
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("STOCKADE_CNI_CONF_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CNI_CONF_DIR));
        let cni_path = ann
            .get(A_CNI_PATH)
            .cloned()
            .or_else(|| std::env::var("STOCKADE_CNI_PATH").ok())
            .unwrap_or_else(|| DEFAULT_CNI_PATH.to_string())
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(Some(Plan {
            mode,
            bridge,
            subnets,
            publish,
            isolate,
            allow_forwarding,
            cni_conf_dir,
            cni_path,
            hostname: spec.hostname().clone().unwrap_or_else(|| "sandbox".into()),
        }))
    }

    /// Whether the child sends the runtime an rtnetlink socket of its namespace with "N".
    pub fn wants_socket(&self) -> bool {
        self.mode == Mode::Bridge
    }
}

fn field(k: &str) -> String {
    format!("annotations.{k}")
}

/// `org.stockade.net`: bridge, pasta or cni:NAME.
fn parse_mode(mode: &str, file: &Path) -> Result<Mode> {
    Ok(match mode {
        "bridge" => Mode::Bridge,
        "pasta" => Mode::Pasta,
        m if m.starts_with("cni:") && m.len() > 4 => {
            let name = &m[4..];
            if name.contains('/') || name.starts_with('.') {
                return Err(config_err(
                    file,
                    field(ANNOTATION),
                    format!("{name:?} is not a network name"),
                ));
            }
            Mode::Cni(name.to_string())
        }
        m => {
            return Err(config_err(
                file,
                field(ANNOTATION),
                format!("{m:?}: expected bridge, cni:NAME or pasta"),
            ))
        }
    })
}

/// `org.stockade.net.subnet`: at most one IPv4 and one IPv6 subnet.
fn parse_subnets(given: Option<&String>, file: &Path) -> Result<Vec<IpNet>> {
    let mut subnets: Vec<IpNet> = vec![];
    if let Some(s) = given {
        for part in s.split(',') {
            let net = parse_subnet(part).map_err(|m| config_err(file, field(A_SUBNET), m))?;
            if subnets.iter().any(|n| {
                matches!(
                    (n, &net),
                    (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
                )
            }) {
                return Err(config_err(
                    file,
                    field(A_SUBNET),
                    "at most one IPv4 and one IPv6 subnet",
                ));
            }
            subnets.push(net);
        }
    }
    Ok(subnets)
}

/// `org.stockade.net.publish`: HOST:CONTAINER[/PROTO], each host port once.
fn parse_publish_list(given: Option<&String>, file: &Path) -> Result<Vec<Publish>> {
    let mut publish: Vec<Publish> = vec![];
    if let Some(s) = given {
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let p = parse_publish(part).map_err(|m| config_err(file, field(A_PUBLISH), m))?;
            if publish
                .iter()
                .any(|q| q.host == p.host && q.proto == p.proto)
            {
                return Err(config_err(
                    file,
                    field(A_PUBLISH),
                    format!("host port {}/{} given twice", p.host, p.proto.name()),
                ));
            }
            publish.push(p);
        }
    }
    Ok(publish)
}

/// What each mode takes: bridge and CNI need root; pasta only published ports; a CNI
/// network's bridge, subnet and isolation come from its conflist.
fn check_mode(
    mode: &Mode,
    ann: &std::collections::HashMap<String, String>,
    (subnets, isolate, allow_forwarding): (&[IpNet], bool, bool),
    file: &Path,
) -> Result<()> {
    let rootless = !nix::unistd::geteuid().is_root();
    match mode {
        Mode::Bridge | Mode::Cni(_) if rootless => {
            return Err(config_err(
                file,
                field(ANNOTATION),
                "needs root: a bridge, veth pairs and nftables rules are made in the host's network namespace, which takes CAP_NET_ADMIN there; unprivileged, use pasta (--net pasta)",
            ));
        }
        Mode::Pasta => {
            if !subnets.is_empty() || isolate || allow_forwarding || ann.contains_key(A_BRIDGE) {
                return Err(config_err(
                    file,
                    field(ANNOTATION),
                    "pasta takes only published ports (it copies the host's addresses and routes)",
                ));
            }
            pasta::find().map_err(|m| config_err(file, field(ANNOTATION), m))?;
        }
        Mode::Cni(_) => {
            if !subnets.is_empty() || isolate || ann.contains_key(A_BRIDGE) {
                return Err(config_err(
                    file,
                    field(ANNOTATION),
                    "a CNI network's bridge, subnet and isolation come from its conflist",
                ));
            }
        }
        Mode::Bridge => {}
    }
    Ok(())
}

/// What one container's network is made of: written before any of it exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Unique to this allocation: in its address and port files and its rules' comments.
    pub token: String,
    pub id: String,
    #[serde(default)]
    pub bridge: Option<BridgeRecord>,
    #[serde(default)]
    pub cni: Option<cni::Record>,
    #[serde(default)]
    pub pasta: Option<pasta::Record>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BridgeRecord {
    pub bridge: String,
    /// Its ifindex (the veth's master).
    #[serde(default)]
    pub bridge_index: u32,
    /// The address slot in [`ipam`] (the same host number in every subnet).
    pub slot: u32,
    /// The host end of the veth pair (the inner end is `eth0`).
    pub veth: String,
    /// The container's addresses, with the subnet's prefix.
    pub addrs: Vec<IpNet>,
    pub gateways: Vec<IpAddr>,
    pub publish: Vec<Publish>,
    pub isolate: bool,
}

impl Record {
    pub fn load(state_dir: &Path) -> Result<Option<Record>> {
        let p = state_dir.join(RECORD);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Other(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx(|| format!("read {}", p.display())),
        }
    }

    fn save(&self, state_dir: &Path) -> Result<()> {
        let tmp = state_dir.join(".net.json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("plain data");
        std::fs::write(&tmp, text).ctx(|| format!("write {}", tmp.display()))?;
        crate::diag::mark("net: record written");
        std::fs::rename(&tmp, state_dir.join(RECORD)).ctx(|| "rename net.json")
    }

    /// The container's addresses (for `/etc/hosts`).
    pub fn addresses(&self) -> Vec<IpAddr> {
        if let Some(b) = &self.bridge {
            return b.addrs.iter().map(|a| a.addr()).collect();
        }
        if let Some(c) = &self.cni {
            return c.addresses();
        }
        vec![]
    }
}

/// A token no other allocation has: time, pid and a counter.
fn new_token(id: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id
        .bytes()
        .chain(t.as_nanos().to_le_bytes())
        .chain(std::process::id().to_le_bytes())
        .chain(N.fetch_add(1, Ordering::Relaxed).to_le_bytes())
    {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The network of one container being created: torn down when dropped unless kept.
pub struct Guard {
    pub record: Record,
    plan: Plan,
    root: PathBuf,
    state_dir: PathBuf,
    armed: bool,
}

/// Before the clone, with the state committed: allocate (record first), and write the
/// container's `/etc/hosts` and `/etc/resolv.conf` into the state directory.
pub fn prepare(plan: &Plan, root: &Path, id: &str, state_dir: &Path) -> Result<Guard> {
    let token = new_token(id);
    let mut g = Guard {
        record: Record {
            token: token.clone(),
            id: id.to_string(),
            bridge: None,
            cni: None,
            pasta: None,
        },
        plan: plan.clone(),
        root: root.to_path_buf(),
        state_dir: state_dir.to_path_buf(),
        armed: true,
    };
    match &plan.mode {
        Mode::Bridge => bridge::allocate(&mut g)?,
        Mode::Cni(name) => {
            g.record.cni = Some(cni::prepare(plan, name, state_dir)?);
            g.record.save(state_dir)?;
        }
        Mode::Pasta => {
            g.record.pasta = Some(pasta::Record::default());
            g.record.save(state_dir)?;
        }
    }
    g.write_etc_files()?;
    Ok(g)
}

impl Guard {
    fn write_etc_files(&self) -> Result<()> {
        let mut hosts =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for a in self.record.addresses() {
            hosts.push_str(&format!("{a}\t{}\n", self.plan.hostname));
        }
        let p = self.state_dir.join("hosts");
        std::fs::write(&p, hosts).ctx(|| format!("write {}", p.display()))?;
        let p = self.state_dir.join("resolv.conf");
        std::fs::write(&p, resolv_conf()).ctx(|| format!("write {}", p.display()))?;
        Ok(())
    }

    /// The bind mounts of the files written by [`prepare`], appended to the spec's (so they
    /// cover whatever the image or an earlier bind has there).
    pub fn mounts(&self) -> Vec<oci_spec::runtime::Mount> {
        ["hosts", "resolv.conf"]
            .iter()
            .map(|f| {
                oci_spec::runtime::MountBuilder::default()
                    .destination(PathBuf::from("/etc").join(f))
                    .typ("bind")
                    .source(self.state_dir.join(f))
                    .options(
                        ["rbind", "ro", "nosuid", "nodev", "noexec"]
                            .map(String::from)
                            .to_vec(),
                    )
                    .build()
                    .expect("all fields set")
            })
            .collect()
    }

    /// After the clone, once the child said "N" (with `sock`, an rtnetlink socket inside its
    /// network namespace, for a bridge): make and configure everything the record names.
    pub fn attach(&mut self, pid: i32, sock: Option<OwnedFd>, proc: &ProcFs) -> Result<()> {
        crate::diag::mark("net: attach");
        match &self.plan.mode {
            Mode::Bridge => {
                let sock =
                    sock.ok_or_else(|| Error::Other("net: the child sent no socket".into()))?;
                let netns = proc
                    .open_ns(pid, "net")
                    .ctx(|| format!("open /proc/{pid}/ns/net"))?;
                bridge::attach(self, netns.as_raw_fd(), sock, proc)
            }
            Mode::Cni(_) => {
                let id = self.record.id.clone();
                let rec = self.record.cni.as_mut().expect("prepared");
                // named before the pin and ADD exist, so a DEL after a kill finds them
                let pin = self.state_dir.join("netns");
                rec.netns = pin.to_string_lossy().into_owned();
                self.record.save(&self.state_dir)?;
                let netns = proc
                    .open_ns(pid, "net")
                    .ctx(|| format!("open /proc/{pid}/ns/net"))?;
                // CNI_NETNS of every call: DEL then still runs in it after the container is
                // gone (the bridge plugin finds there the addresses whose masquerade rules it
                // removes); `cni::del` unmounts it
                pin_netns(&netns, &pin)?;
                crate::diag::mark("net: cni netns pinned");
                let rec = self.record.cni.as_mut().expect("prepared");
                let res = cni::add(rec, &id);
                let res = res.and_then(|_| self.record.save(&self.state_dir));
                // the result's addresses go into /etc/hosts (rewritten in place: the bind follows)
                self.write_etc_files()?;
                res
            }
            Mode::Pasta => {
                let rec = pasta::start(pid, &self.plan.publish, &self.state_dir)?;
                self.record.pasta = Some(rec);
                self.record.save(&self.state_dir)
            }
        }
    }

    /// pasta joins the child's namespaces from outside as the caller, which only works while
    /// the child is still dumpable, that is before it takes "go".
    pub fn before_go(&self) -> bool {
        self.plan.mode == Mode::Pasta
    }

    /// Set up for good: the record stays for `delete`.
    pub fn keep(mut self) {
        self.armed = false;
    }

    /// Remove it now (a foreground run's container has exited).
    pub fn release(mut self) -> Result<()> {
        self.armed = false;
        teardown(&self.root, &self.record)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = teardown(&self.root, &self.record) {
                crate::diag::warn(&format!("network teardown: {e}"));
            }
        }
    }
}

/// Remove everything `rec` names that still exists (each part tolerates its absence: a
/// teardown interrupted at any point can be run again).
pub fn teardown(root: &Path, rec: &Record) -> Result<()> {
    crate::diag::mark("net: teardown");
    if let Some(b) = &rec.bridge {
        bridge::teardown(root, rec, b)?;
    }
    if let Some(c) = &rec.cni {
        cni::del(c, &rec.id)?;
    }
    if let Some(p) = &rec.pasta {
        pasta::stop(p);
    }
    crate::diag::mark("net: torn down");
    Ok(())
}

/// Pin a network namespace at `target` (a bind mount of its nsfs file, in the state directory):
/// it outlives the container's processes, until [`unpin_netns`]. The caller records the path
/// before the mount exists, so a teardown after a kill finds it.
pub fn pin_netns(netns: &std::fs::File, target: &Path) -> Result<()> {
    std::fs::File::create(target).ctx(|| format!("create {}", target.display()))?;
    let tree = crate::sys::open_tree_fd(netns.as_raw_fd(), crate::sys::OPEN_TREE_CLONE)
        .ctx(|| "clone the network namespace's file")?;
    let to = crate::sys::openat2(
        libc::AT_FDCWD,
        target,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        0,
    )
    .ctx(|| format!("open {}", target.display()))?;
    crate::sys::move_mount_fd(tree.as_raw_fd(), to.as_raw_fd())
        .ctx(|| format!("bind the network namespace to {}", target.display()))
}

/// Undo [`pin_netns`]; not mounted (a kill before the mount, or done already) is nothing to do.
pub fn unpin_netns(target: &Path) {
    let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
}

/// `stockade net-check ID`: CNI's CHECK of every plugin; for the bridge, its veth on the
/// bridge and its rules in place. Returns what was checked.
pub fn check(state_dir: &Path) -> Result<String> {
    let rec = Record::load(state_dir)?.ok_or_else(|| {
        Error::Other("net-check: the container has no network of stockade's".into())
    })?;
    if let Some(c) = &rec.cni {
        cni::check(c, &rec.id)?;
        return Ok(format!("cni network {}: CHECK passed", c.name));
    }
    if let Some(b) = &rec.bridge {
        return bridge::check(&rec, b);
    }
    Ok("pasta: nothing to check".into())
}

/// `delete`: tear down what the container's record names.
pub fn delete(root: &Path, state_dir: &Path) -> Result<()> {
    match Record::load(state_dir)? {
        Some(rec) => teardown(root, &rec),
        None => Ok(()),
    }
}

/// The container's resolv.conf: the host's, less loopback name servers (a resolver on the
/// host's loopback is not reachable from another namespace); none left: Docker's fallback.
fn resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let ip: Option<IpAddr> = words.next().and_then(|w| w.parse().ok());
            if ip.is_some_and(|ip| ip.is_loopback()) {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// Enable IPv4 (and, with an IPv6 subnet, IPv6) forwarding on the host: asked for explicitly
/// (`--allow-forwarding`), never undone (other networks may rely on it afterwards).
pub fn allow_forwarding(proc: &ProcFs, v6: bool) -> Result<()> {
    proc.write("sys/net/ipv4/ip_forward", b"1")
        .ctx(|| "--allow-forwarding: write /proc/sys/net/ipv4/ip_forward")?;
    if v6 {
        proc.write("sys/net/ipv6/conf/all/forwarding", b"1")
            .ctx(|| "--allow-forwarding: write /proc/sys/net/ipv6/conf/all/forwarding")?;
    }
    Ok(())
}
