//! `stockade sandbox -- CMD`: a host command in a sandbox with no image, bubblewrap-style. The
//! flags become one OCI spec (see `--print-spec`) that goes to the same engine as a bundle.
//!
//! The root is an empty tmpfs; host `/usr`, `/bin`, `/lib*`, `/sbin`, `/etc` are bound read-only,
//! `/tmp` is a fresh size-limited tmpfs, `/proc` is new, `/dev` minimal. Every namespace is new,
//! the user namespace maps container root to the unprivileged range (or, run by a normal user,
//! the caller alone), no capabilities, no_new_privs, the default seccomp profile, cgroup limits.

use std::path::{Path, PathBuf};

use clap::Args;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::spec;

#[derive(Debug, Args, Clone, Default)]
pub struct SandboxArgs {
    /// Bind SRC read-only at DST (default: same path)
    #[arg(long = "ro-bind", value_name = "SRC[:DST]")]
    pub ro_bind: Vec<String>,
    /// Bind SRC read-write at DST (default: same path)
    #[arg(long, value_name = "SRC[:DST]")]
    pub bind: Vec<String>,
    /// Mount a fresh tmpfs at DST (default size 64m)
    #[arg(long, value_name = "DST[:SIZE]")]
    pub tmpfs: Vec<String>,
    /// Set an environment variable
    #[arg(long, value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory inside
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub chdir: String,
    #[arg(long, default_value = "sandbox")]
    pub hostname: String,
    /// Network: none (own namespace, loopback only), host (the host's), bridge (a veth on a host
    /// bridge, NAT, --publish), cni:NAME (a CNI conflist's plugins) or pasta (unprivileged)
    #[arg(long, default_value = "none")]
    pub net: String,
    /// The host bridge of --net bridge (made on first use)
    #[arg(long, value_name = "NAME")]
    pub bridge: Option<String>,
    /// The bridge's subnet, IPv4 and/or IPv6 (default 10.209.0.0/16; one of each family)
    #[arg(long, value_name = "CIDR")]
    pub subnet: Vec<String>,
    /// Publish a container port on the host (also on its loopback)
    #[arg(long, value_name = "HOST:CONTAINER[/tcp|udp]")]
    pub publish: Vec<String>,
    /// No traffic between this sandbox and the others on its bridge
    #[arg(long)]
    pub isolate: bool,
    /// Let the host forward the bridge's traffic (sets net.ipv4.ip_forward=1, and IPv6
    /// forwarding with an IPv6 subnet)
    #[arg(long = "allow-forwarding")]
    pub allow_forwarding: bool,
    /// Where --net cni:NAME finds NAME's conflist (default /etc/cni/net.d)
    #[arg(long = "cni-conf-dir", value_name = "DIR")]
    pub cni_conf_dir: Option<PathBuf>,
    /// Where CNI plugins are, colon-separated (default /usr/lib/cni)
    #[arg(long = "cni-path", value_name = "DIRS")]
    pub cni_path: Option<String>,
    /// Memory limit (e.g. 512m, 2g) or "unlimited"
    #[arg(long, default_value = "1g")]
    pub memory: String,
    /// Process limit or "unlimited"
    #[arg(long, default_value = "1024")]
    pub pids: String,
    /// CPU limit in CPUs (e.g. 0.5, 2) or "unlimited"
    #[arg(long, default_value = "1")]
    pub cpus: String,
    /// Set a resource limit (as podman's --ulimit): nofile=1024[:2048], nproc=512, core=0;
    /// without it every default is at most the caller's own limit
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Give a capability back (CAP_NET_BIND_SERVICE or NET_BIND_SERVICE)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Seccomp profile: default, docker, unconfined, or a JSON file (OCI or Docker format)
    #[arg(long, default_value = "default")]
    pub seccomp: String,
    /// User id inside
    #[arg(long, default_value_t = 0)]
    pub uid: u32,
    /// Group id inside
    #[arg(long, default_value_t = 0)]
    pub gid: u32,
    /// Container id (default: sandbox-PID)
    #[arg(long)]
    pub id: Option<String>,
    /// Print the OCI spec that would run, then exit
    #[arg(long)]
    pub print_spec: bool,
    /// Use what `stockade learn --out DIR` learned: DIR/seccomp.json and the capabilities in
    /// DIR/capabilities.json (instead of --seccomp; --cap-add adds to them)
    #[arg(long, value_name = "DIR")]
    pub learned: Option<PathBuf>,
    /// Landlock derived from the binds: read-only binds read-only (and executable), --bind,
    /// /tmp, --tmpfs and /dev read-write; every other path and every TCP port denied
    #[arg(long)]
    pub landlock: bool,
    /// Landlock: read (and execute) beneath PATH
    #[arg(long = "landlock-ro", value_name = "PATH")]
    pub landlock_ro: Vec<String>,
    /// Landlock: every access beneath PATH
    #[arg(long = "landlock-rw", value_name = "PATH")]
    pub landlock_rw: Vec<String>,
    /// Landlock: execute (and read) beneath PATH
    #[arg(long = "landlock-exec", value_name = "PATH")]
    pub landlock_exec: Vec<String>,
    /// Landlock: allow binding this TCP port (others are denied once Landlock is on)
    #[arg(long = "landlock-bind", value_name = "PORT")]
    pub landlock_bind: Vec<u16>,
    /// Landlock: allow connecting to this TCP port
    #[arg(long = "landlock-connect", value_name = "PORT")]
    pub landlock_connect: Vec<u16>,
    /// Landlock scopes: abstract, signal (default both), or none
    #[arg(
        long = "landlock-scope",
        value_name = "SCOPE,..",
        value_delimiter = ','
    )]
    pub landlock_scope: Option<Vec<String>>,
    /// PID 1 is a small init (stockade itself): it forwards every signal to the command's
    /// process group, reaps orphans, and exits with the command's status (the default)
    #[arg(long, overrides_with = "no_init")]
    pub init: bool,
    /// The command itself is PID 1 (it then ignores signals it has no handler for)
    #[arg(long = "no-init", overrides_with = "init")]
    pub no_init: bool,
    /// When the caller dies (a closed terminal, a killed shell), stop the sandbox: its command
    /// gets SIGHUP, and SIGKILL 2 s later (the default)
    #[arg(long = "die-with-parent", overrides_with = "no_die_with_parent")]
    pub die_with_parent: bool,
    /// Keep the sandbox running when the caller dies
    #[arg(long = "no-die-with-parent", overrides_with = "die_with_parent")]
    pub no_die_with_parent: bool,
    /// Run `stockade probe` inside (the binary is bound read-only); arguments after `--` go to it
    #[arg(long)]
    pub probe: bool,
    /// The command and its arguments
    #[arg(last = true)]
    pub command: Vec<String>,
}

impl SandboxArgs {
    /// Whether PID 1 is stockade's init (`--init`, the default, unless `--no-init`).
    pub fn init(&self) -> bool {
        !self.no_init || self.init
    }

    /// Whether the sandbox stops when its caller dies (the default, unless
    /// `--no-die-with-parent`).
    pub fn die_with_parent(&self) -> bool {
        !self.no_die_with_parent || self.die_with_parent
    }
}

fn split_bind(s: &str) -> (String, String) {
    match s.split_once(':') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (s.to_string(), s.to_string()),
    }
}

/// "512m" / "2g" / "1048576" / "unlimited" → bytes (-1 for unlimited).
pub fn parse_size(flag: &str, s: &str) -> Result<i64> {
    if s == "unlimited" || s == "-1" {
        return Ok(-1);
    }
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (
            &s[..i],
            match c.to_ascii_lowercase() {
                'k' => 1i64 << 10,
                'm' => 1i64 << 20,
                'g' => 1i64 << 30,
                't' => 1i64 << 40,
                'b' => 1,
                _ => {
                    return Err(Error::Other(format!(
                        "{flag} {s:?}: unknown unit {c:?} (use k, m, g, t)"
                    )))
                }
            },
        ),
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error::Other(format!("{flag} {s:?}: not a size")))?;
    if n <= 0.0 || !n.is_finite() {
        return Err(Error::Other(format!(
            "{flag} {s:?}: must be positive (or \"unlimited\")"
        )));
    }
    let bytes = n * mult as f64;
    if bytes > (1u64 << 50) as f64 {
        return Err(Error::Other(format!("{flag} {s:?}: absurdly large")));
    }
    Ok(bytes as i64)
}

/// The spec for these flags. `self_exe` is bound in for `--probe`.
pub fn build(a: &SandboxArgs, self_exe: &Path) -> Result<Spec> {
    let rootless = !nix::unistd::geteuid().is_root();
    let mut args = a.command.clone();
    if a.probe {
        args = crate::probe::command(a.command.iter().cloned());
    }
    if args.is_empty() {
        return Err(Error::Other(
            "sandbox: no command given (stockade sandbox [OPTIONS] -- CMD [ARGS...])".into(),
        ));
    }
    let mut mounts: Vec<Value> = vec![];
    // A merged-/usr host's `/bin -> usr/bin` stays a symlink (as bwrap's --symlink): one mount
    // fewer each, and /bin is beneath /usr for Landlock rules.
    let mut symlinks = serde_json::Map::new();
    for dir in [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
    ] {
        let p = Path::new(dir);
        match std::fs::read_link(p) {
            Ok(to) if to.is_relative() && !to.to_string_lossy().contains("..") => {
                symlinks.insert(dir[1..].to_string(), json!(to.to_string_lossy()));
            }
            _ if p.exists() => {
                mounts.push(json!({"destination": dir, "type": "bind", "source": dir, "options": ["rbind", "ro", "nosuid", "nodev"]}));
            }
            _ => {}
        }
    }
    mounts.push(json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}));
    mounts.push(json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "noexec", "strictatime", "mode=755", "size=65536k"]}));
    mounts.push(json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}));
    mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}));
    mounts.push(json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}));
    mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}));
    // A read-only /sys (masked as `run`'s) with the sandbox's own cgroup view (cgroup namespace):
    // runtimes (JVM, Go, .NET, Node, Python) size themselves from the limits they find there.
    if a.net != "host" {
        mounts.push(json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}));
    } else {
        // sysfs belongs to the network namespace that mounts it: with the host's, bind the host's
        mounts.push(json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}));
    }
    mounts.push(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}));
    for b in &a.ro_bind {
        let (src, dst) = split_bind(b);
        mounts.push(json!({"destination": dst, "type": "bind", "source": abs(&src)?, "options": ["rbind", "ro", "nosuid", "nodev"]}));
    }
    for b in &a.bind {
        let (src, dst) = split_bind(b);
        mounts.push(json!({"destination": dst, "type": "bind", "source": abs(&src)?, "options": ["rbind", "nosuid", "nodev"]}));
    }
    for t in &a.tmpfs {
        let (dst, size) = match t.split_once(':') {
            Some((d, s)) => (d.to_string(), s.to_string()),
            None => (t.clone(), "64m".to_string()),
        };
        let bytes = parse_size("--tmpfs", &size)?;
        if bytes < 0 {
            return Err(Error::Other(format!("--tmpfs {t}: a tmpfs needs a size")));
        }
        mounts.push(json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", format!("size={bytes}")]}));
    }
    if a.probe {
        mounts.push(crate::probe::bind_mount(self_exe));
    }

    let mut caps: Vec<String> = a
        .cap_add
        .iter()
        .map(|c| crate::capabilities::cap_name(c))
        .collect();
    let mut seccomp_arg = a.seccomp.clone();
    if let Some(dir) = &a.learned {
        let file = dir.join("capabilities.json");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::Other(format!("--learned: {}: {e}", file.display())))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Other(format!("--learned: {}: {e}", file.display())))?;
        for c in v["needed"].as_array().into_iter().flatten() {
            let c = c.as_str().unwrap_or_default().to_string();
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
        seccomp_arg = dir.join("seccomp.json").to_string_lossy().into_owned();
    }
    let capabilities = json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps});
    let seccomp = if seccomp_arg == "unconfined" {
        Value::Null
    } else {
        crate::seccomp::profile_for_cli(&seccomp_arg, &caps)?.to_oci_value()
    };

    let mut annotations = net_annotations(a)?;
    let mut namespaces = spec::default_namespaces();
    if a.net == "host" {
        namespaces
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network");
    }
    let (uid_maps, gid_maps) = spec::default_id_maps(rootless, a.uid, a.gid);
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        format!("HOME={}", if a.uid == 0 { "/root" } else { "/" }),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(format!("TERM={term}"));
    }
    env.extend(a.env.iter().cloned());

    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let memory = parse_size("--memory", &a.memory)?;
    if memory > 0 {
        if memory < 4 << 20 {
            return Err(Error::Other(format!(
                "--memory {}: below 4 MiB nothing useful runs",
                a.memory
            )));
        }
        resources["memory"] = json!({"limit": memory, "swap": memory});
    }
    if a.pids != "unlimited" {
        let p: i64 = a
            .pids
            .parse()
            .map_err(|_| Error::Other(format!("--pids {:?}: not a number", a.pids)))?;
        if p <= 0 {
            return Err(Error::Other(format!(
                "--pids {p}: must be positive (or \"unlimited\")"
            )));
        }
        resources["pids"] = json!({"limit": p});
    }
    if a.cpus != "unlimited" {
        let c: f64 = a
            .cpus
            .parse()
            .map_err(|_| Error::Other(format!("--cpus {:?}: not a number", a.cpus)))?;
        if !(0.01..=4096.0).contains(&c) {
            return Err(Error::Other(format!(
                "--cpus {c}: must be between 0.01 and 4096"
            )));
        }
        resources["cpu"] = json!({"quota": (c * spec::DEFAULT_CPU_PERIOD as f64) as i64, "period": spec::DEFAULT_CPU_PERIOD});
    }

    let mut linux = json!({
        "uidMappings": uid_maps,
        "gidMappings": gid_maps,
        "namespaces": namespaces,
        "maskedPaths": spec::MASKED_PATHS,
        "readonlyPaths": spec::READONLY_PATHS,
        "resources": resources,
    });
    if !seccomp.is_null() {
        linux["seccomp"] = seccomp;
    }
    if !symlinks.is_empty() {
        annotations[spec::ANNOTATION_ROOT_SYMLINKS] = json!(Value::Object(symlinks).to_string());
    }
    if let Some(l) = landlock_flags(a) {
        let c = l.to_config().map_err(Error::Other)?;
        annotations[crate::landlock::ANNOTATION] =
            json!(serde_json::to_string(&c).expect("serializable"));
    }
    let v = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": a.uid, "gid": a.gid},
            "args": args,
            "env": env,
            "cwd": a.chdir,
            "capabilities": capabilities,
            "rlimits": rlimits(&a.ulimit)?,
            "noNewPrivileges": true
        },
        "root": {"path": "/", "readonly": true},
        "hostname": a.hostname,
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations
    });
    spec::parse(Path::new("sandbox flags"), &v.to_string())
}

/// The Landlock flags, with `--landlock`'s rules derived from the binds; None without any.
fn landlock_flags(a: &SandboxArgs) -> Option<crate::landlock::Flags> {
    let any = a.landlock
        || !a.landlock_ro.is_empty()
        || !a.landlock_rw.is_empty()
        || !a.landlock_exec.is_empty()
        || !a.landlock_bind.is_empty()
        || !a.landlock_connect.is_empty()
        || a.landlock_scope.is_some();
    if !any {
        return None;
    }
    let mut f = crate::landlock::Flags {
        ro: a.landlock_ro.clone(),
        rw: a.landlock_rw.clone(),
        exec: a.landlock_exec.clone(),
        bind: a.landlock_bind.clone(),
        connect: a.landlock_connect.clone(),
        scope: a.landlock_scope.clone(),
    };
    if a.landlock {
        for dir in [
            "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc",
        ] {
            if Path::new(dir).exists() {
                f.ro.push(dir.into());
            }
        }
        f.ro.extend(a.ro_bind.iter().map(|b| split_bind(b).1));
        f.rw.extend(a.bind.iter().map(|b| split_bind(b).1));
        f.rw.extend(
            a.tmpfs
                .iter()
                .map(|t| t.split(':').next().unwrap_or(t).to_string()),
        );
        f.rw.extend(["/tmp".to_string(), "/dev".to_string()]);
        if a.probe {
            f.exec.push(crate::probe::BOUND_AT.to_string());
        }
    }
    Some(f)
}

/// The sandbox's rlimits: its defaults, each lowered to the caller's own (a sandbox that raised a
/// limit would grant more than its caller had), then the user's `--ulimit`s as given (those may
/// fail at start, with the error naming them).
fn rlimits(ulimits: &[String]) -> Result<Value> {
    let mut out: Vec<(String, u64, u64)> = vec![];
    for r in spec::default_rlimits().as_array().expect("array") {
        let typ = r["type"].as_str().expect("type").to_string();
        let (mut soft, mut hard) = (r["soft"].as_u64().unwrap(), r["hard"].as_u64().unwrap());
        if let Some(t) = rlimit_type(&typ) {
            let (cs, ch) = crate::process::own_rlimit(t)
                .map_err(|e| Error::Other(format!("getrlimit {typ}: {e}")))?;
            hard = hard.min(ch);
            soft = soft.min(cs).min(hard);
        }
        out.push((typ, soft, hard));
    }
    for u in ulimits {
        let bad = |why: &str| Error::Other(format!("--ulimit {u:?}: {why}"));
        let (name, vals) = u
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=SOFT[:HARD]"))?;
        let typ = format!("RLIMIT_{}", name.to_ascii_uppercase());
        if rlimit_type(&typ).is_none() {
            return Err(bad("unknown limit (nofile, nproc, core, stack, memlock, as, cpu, fsize, data, rss, locks, sigpending, msgqueue, nice, rtprio, rttime)"));
        }
        let num = |v: &str| -> Result<u64> {
            if v == "unlimited" || v == "-1" {
                return Ok(u64::MAX);
            }
            v.parse().map_err(|_| bad("not a number"))
        };
        let (soft, hard) = match vals.split_once(':') {
            Some((s, h)) => (num(s)?, num(h)?),
            None => (num(vals)?, num(vals)?),
        };
        if soft > hard {
            return Err(bad("soft limit above hard limit"));
        }
        out.retain(|(t, _, _)| t != &typ);
        out.push((typ, soft, hard));
    }
    Ok(Value::Array(
        out.into_iter()
            .map(|(t, s, h)| json!({"type": t, "soft": s, "hard": h}))
            .collect(),
    ))
}

/// `RLIMIT_NOFILE` and its kind as OCI names them.
fn rlimit_type(typ: &str) -> Option<oci_spec::runtime::PosixRlimitType> {
    serde_json::from_value(json!(typ)).ok()
}

/// The `--net` flags as the annotations the engine reads (see [`crate::net`]), checked here so
/// an error names the flag.
fn net_annotations(a: &SandboxArgs) -> Result<Value> {
    use crate::net;
    let mut ann = serde_json::Map::new();
    ann.insert(spec::ANNOTATION_TMPFS_ROOT.into(), json!("tmpfs"));
    let mode = a.net.as_str();
    let networked = match mode {
        "none" | "host" => false,
        "bridge" | "pasta" => true,
        m if m.starts_with("cni:") && m.len() > 4 => true,
        m => {
            return Err(Error::Other(format!(
                "--net {m:?}: expected none, host, bridge, cni:NAME or pasta"
            )))
        }
    };
    let flag_given = [
        ("--bridge", a.bridge.is_some()),
        ("--subnet", !a.subnet.is_empty()),
        ("--publish", !a.publish.is_empty()),
        ("--isolate", a.isolate),
        ("--allow-forwarding", a.allow_forwarding),
        ("--cni-conf-dir", a.cni_conf_dir.is_some()),
        ("--cni-path", a.cni_path.is_some()),
    ];
    if let Some((f, _)) = flag_given.iter().find(|(_, g)| *g) {
        if !networked {
            return Err(Error::Other(format!(
                "{f} needs --net bridge, cni:NAME or pasta (not --net {mode})"
            )));
        }
    }
    if !networked {
        return Ok(Value::Object(ann));
    }
    ann.insert(net::ANNOTATION.into(), json!(mode));
    if let Some(b) = &a.bridge {
        net::check_ifname(b).map_err(|m| Error::Other(format!("--bridge {m}")))?;
        ann.insert(net::A_BRIDGE.into(), json!(b));
    }
    for s in &a.subnet {
        net::parse_subnet(s).map_err(|m| Error::Other(format!("--subnet {m}")))?;
    }
    if !a.subnet.is_empty() {
        ann.insert(net::A_SUBNET.into(), json!(a.subnet.join(",")));
    }
    for p in &a.publish {
        net::parse_publish(p).map_err(|m| Error::Other(format!("--publish {m}")))?;
    }
    if !a.publish.is_empty() {
        ann.insert(net::A_PUBLISH.into(), json!(a.publish.join(",")));
    }
    if a.isolate {
        ann.insert(net::A_ISOLATE.into(), json!("true"));
    }
    if a.allow_forwarding {
        ann.insert(net::A_FORWARDING.into(), json!("true"));
    }
    if let Some(d) = &a.cni_conf_dir {
        ann.insert(
            net::A_CNI_CONF_DIR.into(),
            json!(abs(&d.to_string_lossy())?),
        );
    }
    if let Some(p) = &a.cni_path {
        ann.insert(net::A_CNI_PATH.into(), json!(p));
    }
    Ok(Value::Object(ann))
}

fn abs(p: &str) -> Result<PathBuf> {
    let path = PathBuf::from(p);
    let full = if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map_err(|e| Error::Other(e.to_string()))?
            .join(path)
    };
    if !full.exists() {
        return Err(Error::Other(format!(
            "bind source {} does not exist",
            full.display()
        )));
    }
    Ok(full)
}
