//! Networking (`--net bridge`, `cni:NAME`, `pasta`) for real: bridges, veth pairs, addresses and
//! nftables rules made by the runtime, traffic between sandboxes and from the "host".
//!
//! Every test first moves its own thread into a network namespace it makes ([`enter_netns`]):
//! the runtime, the bridge, the rules and every client it starts live there, so no address
//! outside it is ever used, and nothing reaches the machine's own network. The state root is
//! the test's own too. After each scenario the test lists links, addresses, nftables rules and
//! the address files to check that nothing of a removed container is left.

mod common;
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Move this test's thread into a fresh network namespace with `lo` up; what it spawns inherits
/// it. Asserted to differ from the machine's.
fn enter_netns() {
    require_root();
    let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    let ours = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let process = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(ours, before, "not in a network namespace of the test's own");
    assert_ne!(
        ours, process,
        "the test's thread shares the process's network namespace"
    );
    sh("ip link set lo up");
}

/// A shell command in the test's namespace; its stdout, asserting success.
fn sh(c: &str) -> String {
    let o = Command::new("sh").args(["-c", c]).output().unwrap();
    assert!(o.status.success(), "{c}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

fn links() -> String {
    sh("ip -o link show")
}

/// The links' names and masters (not their changing state).
fn link_names() -> String {
    sh("ip -o link show | awk '{print $2, $(NF-0)}' | sed 's/ .*//' ; ip -o link show | grep -o 'master [^ ]*' || true")
}

fn ruleset() -> String {
    let o = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "nft list ruleset (apt-get install nftables; .ci/run does): {}",
        stderr(&o)
    );
    stdout(&o)
}

/// HTTP GET with a 2 s limit; None if it failed.
fn curl(url: &str) -> Option<String> {
    let o = Command::new("curl")
        .args(["-sS", "-g", "-m", "2", url])
        .output()
        .expect("curl missing (apt-get install curl; .ci/run does)");
    o.status.success().then(|| stdout(&o))
}

/// A sandbox running in the background (a server), killed and waited for when dropped.
struct Running {
    child: Child,
    root: std::path::PathBuf,
    id: String,
}

impl Running {
    fn start(root: &Path, id: &str, flags: &[&str], cmd: &[&str]) -> Running {
        let child = Command::new(bin())
            .arg("--root")
            .arg(root)
            .args(["sandbox", "--id", id])
            .args(flags)
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Running {
            child,
            root: root.to_path_buf(),
            id: id.to_string(),
        }
    }

    /// An HTTP server on :8080 answering `body`.
    fn httpd(root: &Path, id: &str, flags: &[&str], body: &str) -> Running {
        let script = format!(
            "mkdir /tmp/w && echo {body} > /tmp/w/index.html && exec busybox httpd -f -p 8080 -h /tmp/w"
        );
        Running::start(root, id, flags, &["sh", "-c", &script])
    }

    /// Kill the container; the runtime tears its network down and exits 128+9.
    fn stop(mut self) {
        let o = cmd(&self.root, &["kill", &self.id, "KILL"]);
        assert!(o.status.success(), "kill: {}", stderr(&o));
        let st = self.child.wait().unwrap();
        assert_eq!(st.code(), Some(137), "the runtime's exit");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = cmd(&self.root, &["delete", "--force", &self.id]);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A container's network record (`ROOT/ID/net.json`), once it exists.
fn record(root: &Path, id: &str) -> serde_json::Value {
    let f = root.join(id).join("net.json");
    poll_until(&format!("{} never written", f.display()), 20, || {
        let b = std::fs::read(&f).ok()?;
        serde_json::from_slice(&b).ok()
    })
}

fn address(rec: &serde_json::Value) -> String {
    let a = rec["bridge"]["addrs"][0].as_str().unwrap();
    a.split('/').next().unwrap().to_string()
}

/// The address and port files under `root` (each a taken slot or published port).
fn ipam_files(root: &Path) -> Vec<String> {
    let mut out = vec![];
    let net = root.join(".net");
    let Ok(rd) = std::fs::read_dir(&net) else {
        return out;
    };
    for e in rd.flatten() {
        if e.file_type().unwrap().is_dir() {
            for f in std::fs::read_dir(e.path()).unwrap().flatten() {
                out.push(format!(
                    "{}/{}",
                    e.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                ));
            }
        }
    }
    out.sort();
    out
}

/// Nothing of the container with record `rec` left: no veth, no rule with its token, no address
/// or port file, no state, no address of its on any host link.
fn assert_net_gone(root: &Path, id: &str, rec: &serde_json::Value) {
    let token = rec["token"].as_str().unwrap();
    let veth = rec["bridge"]["veth"].as_str().unwrap();
    poll_until(&format!("veth {veth} left"), 10, || {
        (!links().contains(veth)).then_some(())
    });
    let rules = ruleset();
    assert!(!rules.contains(token), "rules of {id} left:\n{rules}");
    let files = ipam_files(root);
    assert!(files.is_empty(), "address/port files left: {files:?}");
    assert!(!root.join(id).exists(), "state of {id} left");
    let addr = address(rec);
    let addrs = sh("ip -o addr show");
    assert!(
        !addrs.contains(&format!("{addr}/")),
        "address {addr} left:\n{addrs}"
    );
}

fn wait_http(url: &str, want: &str) {
    poll_until(&format!("{url} never answered {want:?}"), 20, || {
        curl(url).filter(|b| b.contains(want))
    });
}

#[test]
fn bridge_two_sandboxes_published_port_and_teardown() {
    enter_netns();
    let root = tempfile::tempdir().unwrap();
    let (ida, idb) = (unique("net-a"), unique("net-b"));
    let a = Running::httpd(
        root.path(),
        &ida,
        &["--net", "bridge", "--publish", "18080:8080"],
        "hello-from-a",
    );
    let rec = record(root.path(), &ida);
    let ip = address(&rec);
    assert_eq!(ip, "10.209.0.2", "the first address of the default subnet");
    wait_http(&format!("http://{ip}:8080/"), "hello-from-a");

    // the host bridge, with the gateway address; A's veth on it
    let br = sh("ip -o addr show dev stockade0");
    assert!(br.contains("10.209.0.1/16"), "{br}");
    let veth = rec["bridge"]["veth"].as_str().unwrap();
    assert!(
        sh(&format!("ip -o link show {veth}")).contains("master stockade0"),
        "veth not on the bridge"
    );
    // published: on the bridge's address and on the host's loopback
    assert_eq!(
        curl("http://10.209.0.1:18080/").as_deref(),
        Some("hello-from-a\n")
    );
    assert_eq!(
        curl("http://127.0.0.1:18080/").as_deref(),
        Some("hello-from-a\n")
    );
    let rules = ruleset();
    assert!(
        rules.contains("tcp dport 18080 dnat ip to 10.209.0.2:8080"),
        "{rules}"
    );
    assert!(rules.contains("ip saddr 10.209.0.0/16 ip daddr != 10.209.0.0/16 masquerade"));

    // B reaches A by address; B's own files show its address and name
    let root_s = root.path().to_str().unwrap().to_string();
    let o = cmd(
        root.path(),
        &[
            "sandbox",
            "--id",
            &idb,
            "--hostname",
            "bee",
            "--net",
            "bridge",
            "--",
            "sh",
            "-c",
            &format!(
                "curl -sS -m 2 http://{ip}:8080/ && cat /etc/hosts && ip -o addr show eth0 && ip route"
            ),
        ],
    );
    assert!(o.status.success(), "B: {}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("hello-from-a"), "{out}");
    assert!(out.contains("10.209.0.3\tbee"), "B's /etc/hosts: {out}");
    assert!(out.contains("inet 10.209.0.3/16"), "{out}");
    assert!(out.contains("default via 10.209.0.1 dev eth0"), "{out}");
    assert!(
        !root.path().join(&idb).exists(),
        "B's state left in {root_s}"
    );

    // A killed: the runtime takes down its veth, rules and address
    a.stop();
    assert_net_gone(root.path(), &ida, &rec);
    assert!(curl("http://127.0.0.1:18080/").is_none());
}

#[test]
fn isolate_blocks_traffic_between_sandboxes() {
    enter_netns();
    let root = tempfile::tempdir().unwrap();
    let (ida, idb) = (unique("iso-a"), unique("iso-b"));
    let a = Running::httpd(
        root.path(),
        &ida,
        &["--net", "bridge", "--isolate"],
        "iso-a",
    );
    let rec = record(root.path(), &ida);
    let ip = address(&rec);
    // the host still reaches it (host traffic is not forwarded between bridge ports)
    wait_http(&format!("http://{ip}:8080/"), "iso-a");
    let veth = rec["bridge"]["veth"].as_str().unwrap();
    let rules = ruleset();
    assert!(
        rules.contains(&format!("iifname \"{veth}\" drop")),
        "{rules}"
    );
    assert!(rules.contains(&format!("oifname \"{veth}\" drop")));
    let o = cmd(
        root.path(),
        &[
            "sandbox",
            "--id",
            &idb,
            "--net",
            "bridge",
            "--",
            "curl",
            "-sS",
            "-m",
            "2",
            &format!("http://{ip}:8080/"),
        ],
    );
    assert!(
        !o.status.success() && !stdout(&o).contains("iso-a"),
        "B reached isolated A: {}",
        stdout(&o)
    );
    a.stop();
    assert_net_gone(root.path(), &ida, &rec);
    assert!(!ruleset().contains("drop"), "isolation rules left");
}

#[test]
fn ipv6_subnet_and_published_port() {
    enter_netns();
    let root = tempfile::tempdir().unwrap();
    let id = unique("v6");
    let a = Running::httpd(
        root.path(),
        &id,
        &[
            "--net",
            "bridge",
            "--bridge",
            "stk6",
            "--subnet",
            "10.210.0.0/24",
            "--subnet",
            "fd00:209::/64",
            "--publish",
            "18090:8080",
        ],
        "six",
    );
    let rec = record(root.path(), &id);
    let addrs: Vec<&str> = rec["bridge"]["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["10.210.0.2/24", "fd00:209::2/64"]);
    wait_http("http://[fd00:209::2]:8080/", "six");
    assert_eq!(
        curl("http://[fd00:209::1]:18090/").as_deref(),
        Some("six\n"),
        "published on the bridge's IPv6 address"
    );
    assert_eq!(curl("http://10.210.0.1:18090/").as_deref(), Some("six\n"));
    a.stop();
    assert_net_gone(root.path(), &id, &rec);
}

/// A bundle whose config asks for the bridge by annotation.
fn net_bundle(extra: &[(&str, &str)]) -> Bundle {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Bundle::new(&["sleep", "100"], move |v| {
        v["annotations"]["org.stockade.net"] = "bridge".into();
        for (k, val) in extra {
            v["annotations"][k] = val.into();
        }
    })
}

#[test]
fn fifty_concurrent_creates_get_fifty_addresses() {
    enter_netns();
    let b = net_bundle(&[]);
    let ids: Vec<String> = (0..50).map(|i| unique(&format!("c{i}"))).collect();
    let bundle = b.path().to_str().unwrap().to_string();
    let root = b.root.path().to_path_buf();
    std::thread::scope(|s| {
        for id in &ids {
            let (root, bundle) = (&root, &bundle);
            s.spawn(move || {
                let o = cmd(root, &["create", "--bundle", bundle, id]);
                assert!(o.status.success(), "create {id}: {}", stderr(&o));
            });
        }
    });
    let recs: Vec<serde_json::Value> = ids.iter().map(|id| record(&root, id)).collect();
    let mut addrs: Vec<String> = recs.iter().map(address).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 50, "distinct addresses: {addrs:?}");
    assert_eq!(
        ipam_files(&root).len(),
        50,
        "one address file each: {:?}",
        ipam_files(&root)
    );
    let l = links();
    for r in &recs {
        assert!(l.contains(r["bridge"]["veth"].as_str().unwrap()));
    }
    // a created container's eth0 is configured before anything of it runs
    let st: serde_json::Value =
        serde_json::from_slice(&cmd(&root, &["state", &ids[7]]).stdout).unwrap();
    let inside = sh(&format!("nsenter -t {} -n ip -o addr show eth0", st["pid"]));
    assert!(
        inside.contains(&format!("inet {}/16", address(&recs[7]))),
        "{inside}"
    );
    std::thread::scope(|s| {
        for id in &ids {
            let root = &root;
            s.spawn(move || {
                let o = cmd(root, &["delete", "--force", id]);
                assert!(o.status.success(), "delete {id}: {}", stderr(&o));
            });
        }
    });
    for (id, r) in ids.iter().zip(&recs) {
        assert_net_gone(&root, id, r);
        assert_nothing_left(id, &root);
    }
}

/// The network stages of `create`: the runtime is stopped there, killed with SIGKILL, and
/// `delete --force` must leave no veth, rule, address or port file; the address is then given
/// out again.
#[test]
fn killed_runtime_network_is_removed_and_address_reclaimed() {
    enter_netns();
    // one address only (/30): a leaked slot would make the next create fail
    let b = net_bundle(&[
        ("org.stockade.net.subnet", "10.211.0.0/30"),
        ("org.stockade.net.bridge", "stk-crash"),
        ("org.stockade.net.publish", "18085:80"),
        ("org.stockade.net.isolate", "true"),
    ]);
    let root = b.root.path().to_path_buf();
    let bundle = b.path().to_str().unwrap().to_string();
    for stage in [
        "net: ipam locked",
        "net: record written",
        "net: address taken",
        "net: attach",
        "net: veth made",
        "net: eth0 configured",
        "net: rules added",
        "net ready",
    ] {
        let id = unique("crash");
        let err = tempfile::NamedTempFile::new().unwrap();
        let mut rt = Command::new(bin())
            .arg("--root")
            .arg(&root)
            .args(["create", "--bundle", &bundle, &id])
            .env("STOCKADE_TEST_STOP_AT", stage)
            .stderr(err.reopen().unwrap())
            .spawn()
            .unwrap();
        poll_until(&format!("stage {stage:?} never reached"), 20, || {
            let text = std::fs::read_to_string(err.path()).unwrap();
            assert!(rt.try_wait().unwrap().is_none(), "{stage}: exited: {text}");
            text.contains(&format!("stopped at {stage}\n"))
                .then_some(())
        });
        rt.kill().unwrap();
        rt.wait().unwrap();
        let rec: Option<serde_json::Value> = std::fs::read(root.join(&id).join("net.json"))
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap());
        let o = cmd(&root, &["delete", "--force", &id]);
        assert!(o.status.success(), "{stage}: delete: {}", stderr(&o));
        if let Some(rec) = &rec {
            assert_net_gone(&root, &id, rec);
        }
        assert!(
            ipam_files(&root).is_empty(),
            "{stage}: {:?}",
            ipam_files(&root)
        );
        assert!(
            !links().contains("master stk-crash"),
            "{stage}: a veth left:\n{}",
            links()
        );
        assert!(!ruleset().contains("dnat"), "{stage}: rules left");
        assert_nothing_left(&id, &root);
        // the one address is free again
        let id2 = unique("again");
        let o = cmd(&root, &["create", "--bundle", &bundle, &id2]);
        assert!(o.status.success(), "{stage}: create after: {}", stderr(&o));
        assert_eq!(address(&record(&root, &id2)), "10.211.0.2");
        let o = cmd(&root, &["delete", "--force", &id2]);
        assert!(o.status.success());
    }
}

/// Bad input: a clear error naming the problem, a non-zero exit, and nothing left (state,
/// bridge, veth, rules, address files).
#[test]
fn bad_network_input_is_refused_and_leaves_nothing() {
    enter_netns();
    sh("ip link add stk-dummy type veth peer name stk-dummy1 && ip addr add 10.50.0.1/16 dev stk-dummy && ip link set stk-dummy up");
    let root = tempfile::tempdir().unwrap();
    // a server holding port 18081, for the "already published" case
    let held = unique("held");
    let a = Running::httpd(
        root.path(),
        &held,
        &["--net", "bridge", "--publish", "18081:8080"],
        "held",
    );
    let rec = record(root.path(), &held);
    wait_http(&format!("http://{}:8080/", address(&rec)), "held");
    let before_rules = ruleset();
    let before_links = link_names();
    let before_files = ipam_files(root.path());
    let cases: &[(&[&str], &str)] = &[
        (
            &["--bridge", "stk-ovl", "--subnet", "10.50.0.0/24"],
            "overlaps the host's route to 10.50.0.0/16",
        ),
        (&["--publish", "18081:80"], "already published by container"),
        (
            &["--publish", "18082:80", "--publish", "18082:81"],
            "given twice",
        ),
        (&["--subnet", "10.0.0.0/33"], "is not a CIDR"),
        (&["--subnet", "banana"], "is not a CIDR"),
        (&["--subnet", "10.9.0.1/24"], "has host bits set"),
        (&["--bridge", "a-bridge-name-too-long"], "1 to 15 bytes"),
        (&["--bridge", "bad/name"], "no '/'"),
        (&["--publish", "0:80"], "is not a port"),
        (&["--publish", "80:80/sctp"], "is not tcp or udp"),
        (&["--bridge", "stk-dummy"], "is not a bridge"),
        (&["--subnet", "10.77.0.0/16"], "already has 10.209.0.0/16"),
    ];
    for (flags, want) in cases {
        let id = unique("bad");
        let mut args = vec!["sandbox", "--id", &id, "--net", "bridge"];
        args.extend_from_slice(flags);
        args.extend(["--", "true"]);
        let o = cmd(root.path(), &args);
        let e = stderr(&o);
        assert!(!o.status.success(), "{flags:?} succeeded");
        assert!(e.contains(want), "{flags:?}: expected {want:?} in: {e}");
        assert_nothing_left(&id, root.path());
        assert_eq!(ipam_files(root.path()), before_files, "{flags:?}");
        assert_eq!(link_names(), before_links, "{flags:?}: links changed");
        assert_eq!(ruleset(), before_rules, "{flags:?}: rules changed");
    }
    // flags that need a network
    let o = cmd(root.path(), &["sandbox", "--publish", "1:1", "--", "true"]);
    assert!(
        stderr(&o).contains("--publish needs --net bridge"),
        "{}",
        stderr(&o)
    );
    // a bundle that joins a network namespace by path cannot also ask for a bridge
    let b = Bundle::new(&["true"], |v| {
        v["annotations"]["org.stockade.net"] = "bridge".into();
        let nss = v["linux"]["namespaces"].as_array_mut().unwrap();
        for n in nss.iter_mut() {
            if n["type"] == "network" {
                n["path"] = "/proc/self/ns/net".into();
            }
        }
    });
    let o = b.run(&unique("bypath"));
    assert!(
        stderr(&o).contains("annotations.org.stockade.net: needs a new network namespace"),
        "{}",
        stderr(&o)
    );
    a.stop();
    assert_net_gone(root.path(), &held, &rec);
}

/// A CNI conflist directory of the test's own: `stktest` (Debian's bridge + host-local +
/// portmap) and `stkcheck` (bridge + host-local), their address files under it too.
fn cni_dir() -> tempfile::TempDir {
    assert!(
        Path::new("/usr/lib/cni/bridge").exists() && Path::new("/usr/lib/cni/portmap").exists(),
        "CNI plugins missing: apt-get install containernetworking-plugins (.ci/run does)"
    );
    let d = tempfile::tempdir().unwrap();
    let ipam = d.path().join("ipam");
    let conf = |name: &str, br: &str, subnet: &str, portmap: bool| {
        let mut plugins = vec![serde_json::json!({
            "type": "bridge", "bridge": br, "isGateway": true, "ipMasq": true,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ipam}
        })];
        if portmap {
            plugins.push(
                serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}),
            );
        }
        serde_json::json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins}).to_string()
    };
    std::fs::write(
        d.path().join("10-stktest.conflist"),
        conf("stktest", "stkcni0", "10.222.0.0/24", true),
    )
    .unwrap();
    std::fs::write(
        d.path().join("20-stkcheck.conflist"),
        conf("stkcheck", "stkcni1", "10.223.0.0/24", false),
    )
    .unwrap();
    std::fs::write(
        d.path().join("30-broken.conflist"),
        r#"{"cniVersion":"1.0.0","name":"broken","plugins":[{"type":"no-such-plugin"}]}"#,
    )
    .unwrap();
    d
}

fn cni_address(rec: &serde_json::Value) -> String {
    rec["cni"]["result"]["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn cni_bridge_portmap_and_the_builtin_bridge_side_by_side() {
    enter_netns();
    let conf = cni_dir();
    let dir = conf.path().to_str().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (ida, idb, idc) = (unique("cni-a"), unique("cni-b"), unique("cni-c"));
    let cni = ["--net", "cni:stktest", "--cni-conf-dir", dir];
    let mut flags = cni.to_vec();
    flags.extend(["--publish", "18088:8080"]);
    let a = Running::httpd(root.path(), &ida, &flags, "hello-cni");
    // the built-in bridge beside it, with a port of its own
    let c = Running::httpd(
        root.path(),
        &idc,
        &["--net", "bridge", "--publish", "18089:8080"],
        "hello-builtin",
    );
    let rec = poll_until("A's CNI result never cached", 20, || {
        let r = record(root.path(), &ida);
        (!r["cni"]["result"].is_null()).then_some(r)
    });
    let ip = cni_address(&rec);
    assert!(ip.starts_with("10.222.0."), "{ip}");
    wait_http(&format!("http://{ip}:8080/"), "hello-cni");
    assert_eq!(
        curl("http://10.222.0.1:18088/").as_deref(),
        Some("hello-cni\n")
    );
    assert_eq!(
        curl("http://127.0.0.1:18088/").as_deref(),
        Some("hello-cni\n")
    );
    let crec = record(root.path(), &idc);
    wait_http(&format!("http://{}:8080/", address(&crec)), "hello-builtin");
    assert_eq!(
        curl("http://127.0.0.1:18089/").as_deref(),
        Some("hello-builtin\n")
    );
    // B on the CNI network reaches A by address; its /etc/hosts has the address CNI gave it
    let o = cmd(
        root.path(),
        &[
            "sandbox",
            "--id",
            &idb,
            "--net",
            "cni:stktest",
            "--cni-conf-dir",
            dir,
            "--",
            "sh",
            "-c",
            &format!("curl -sS -m 2 http://{ip}:8080/ && cat /etc/hosts"),
        ],
    );
    assert!(o.status.success(), "B: {}", stderr(&o));
    assert!(stdout(&o).contains("hello-cni"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("10.222.0."),
        "B's hosts: {}",
        stdout(&o)
    );
    // neither touched the other's: CNI's chains are iptables', ours the stockade tables
    let rules = ruleset();
    assert!(rules.contains("table inet stockade") && rules.contains("10.209.0.0/16"));
    let ipt = sh("iptables-save -t nat");
    assert!(ipt.contains(&ida), "portmap's rules name A: {ipt}");
    assert!(
        !ipt.contains("stockade0"),
        "CNI touched the built-in bridge: {ipt}"
    );

    let veth = rec["cni"]["result"]["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    a.stop();
    // DEL ran: the address file, portmap's rules and the veth are gone
    let ipam_dir = conf.path().join("ipam/stktest");
    assert!(!ipam_dir.join(&ip).exists(), "host-local kept {ip}");
    assert!(
        !sh("iptables-save -t nat").contains(&ida),
        "portmap rules of A left"
    );
    poll_until("CNI veth left", 10, || {
        (!links().contains(&veth)).then_some(())
    });
    assert!(!root.path().join(&ida).exists());
    c.stop();
    assert_net_gone(root.path(), &idc, &crec);
}

#[test]
fn cni_check_on_request_and_bad_networks() {
    enter_netns();
    let conf = cni_dir();
    let dir = conf.path().to_str().unwrap();
    let root = tempfile::tempdir().unwrap();
    let id = unique("chk");
    let a = Running::start(
        root.path(),
        &id,
        &["--net", "cni:stkcheck", "--cni-conf-dir", dir],
        &["sleep", "60"],
    );
    let rec = poll_until("result never cached", 20, || {
        let r = record(root.path(), &id);
        (!r["cni"]["result"].is_null()).then_some(r)
    });
    let o = cmd(root.path(), &["net-check", &id]);
    assert!(o.status.success(), "CHECK: {}", stderr(&o));
    assert!(stdout(&o).contains("CHECK passed"));
    // CHECK notices the container's address gone
    let st: serde_json::Value =
        serde_json::from_slice(&cmd(root.path(), &["state", &id]).stdout).unwrap();
    sh(&format!(
        "nsenter -t {} -n ip addr flush dev eth0",
        st["pid"]
    ));
    let o = cmd(root.path(), &["net-check", &id]);
    assert!(!o.status.success(), "CHECK passed without the address");
    assert!(stderr(&o).contains("bridge CHECK failed"), "{}", stderr(&o));
    a.stop();
    let ip = cni_address(&rec);
    assert!(!conf.path().join("ipam/stkcheck").join(&ip).exists());

    for (net, want) in [
        ("cni:nosuch", "no network \"nosuch\""),
        ("cni:broken", "plugin \"no-such-plugin\" not found"),
    ] {
        let bad = unique("cnibad");
        let o = cmd(
            root.path(),
            &[
                "sandbox",
                "--id",
                &bad,
                "--net",
                net,
                "--cni-conf-dir",
                dir,
                "--",
                "true",
            ],
        );
        assert!(!o.status.success());
        assert!(stderr(&o).contains(want), "{net}: {}", stderr(&o));
        assert_nothing_left(&bad, root.path());
    }
}

/// An unprivileged caller (nobody) with `--net pasta`: a server in the sandbox reached through
/// the published port on the host's loopback; pasta gone with the sandbox. The "host" has one
/// veth with a documentation-range address and a default route (pasta copies them), all inside
/// the test's namespace. This machine's /dev/net/tun is 0600: the scenario runs in a private
/// mount namespace with a 0666 node bound over it (the host's node is not changed).
#[test]
fn rootless_pasta_publishes_a_port() {
    enter_netns();
    assert!(
        Path::new("/usr/bin/pasta").exists(),
        "pasta missing: apt-get install passt (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    sh(&format!(
        "chmod 755 {0} && chown 65534:65534 {0}/root",
        dir.path().display()
    ));
    let exe = dir.path().join("stockade");
    std::fs::copy(bin(), &exe).unwrap();
    let id = unique("pasta");
    let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";
    let script = format!(
        r#"set -e
mknod -m 666 {d}/tun c 10 200 && mount --bind {d}/tun /dev/net/tun
ip link add stkp0 type veth peer name stkp1
ip addr add 192.0.2.1/24 dev stkp0 && ip link set stkp0 up && ip link set stkp1 up
ip route add default via 192.0.2.254 dev stkp0
{nobody} {exe} --root {root} sandbox --id {id} --net pasta --publish 18095:8080 -- \
  sh -c 'mkdir /tmp/w; echo hello-pasta > /tmp/w/index.html; exec busybox httpd -f -p 8080 -h /tmp/w' &
for i in $(seq 100); do curl -sS -m 1 http://127.0.0.1:18095/ 2>/dev/null && break; sleep 0.1; done
echo "pasta=$(cat {root}/{id}/pasta.pid)"
{nobody} {exe} --root {root} kill {id} KILL
wait || true
echo "after=$(ls {root} | grep -v '^\.' | wc -l)"
"#,
        d = dir.path().display(),
        exe = exe.display(),
        root = root.display(),
    );
    let o = timeout()
        .args([
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("hello-pasta"),
        "not reached through pasta: {out}{}",
        stderr(&o)
    );
    assert!(out.contains("after=0"), "state left: {out}");
    let pid: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("pasta="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pasta pid: {out}"));
    poll_until("pasta still running", 10, || {
        (!matches!(stat_of(pid), Some((s, _)) if s != 'Z')).then_some(())
    });
    // bridge as an unprivileged caller: a clear error saying why
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .arg("--root")
        .arg(&root)
        .args(["sandbox", "--net", "bridge", "--", "true"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("needs root") && stderr(&o).contains("use pasta"),
        "{}",
        stderr(&o)
    );
}
