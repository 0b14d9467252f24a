//! `stockade sandbox -- CMD`: a host command in a sandbox with no image, bubblewrap-style. The
//! flags become one OCI spec (see `--print-spec`) that goes to the same engine as a bundle.
//!
//! The root is an empty tmpfs; host `/usr`, `/bin`, `/lib*`, `/sbin`, `/etc` are bound read-only,
//! `/tmp` is a fresh size-limited tmpfs, `/proc` is new, `/dev` minimal. Every namespace is new,
//! the user namespace maps container root to the unprivileged range (or, run by a normal user,
//! the caller alone), no capabilities, no_new_privs, the default seccomp profile, cgroup limits.
//!
//! Every flag is checked here, before the spec is built, so that an error names the flag and
//! the value as typed (`--bind proj:rel: ...`), never a field of the OCI spec it became.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use clap::Args;
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::spec;

/// The command's PATH in a clean environment.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// `--memory`, `--pids` and `--cpus` when not given.
pub const DEFAULT_MEMORY: &str = "1g";
pub const DEFAULT_PIDS: &str = "1024";
pub const DEFAULT_CPUS: &str = "1";

#[derive(Debug, Args, Clone, Default)]
pub struct SandboxArgs {
    /// Bind SRC read-only at DST; a relative SRC is found from the current directory, and DST
    /// is by default SRC's absolute path
    #[arg(long = "ro-bind", value_name = "SRC[:DST]")]
    pub ro_bind: Vec<String>,
    /// Bind SRC read-write at DST; a relative SRC is found from the current directory, and DST
    /// is by default SRC's absolute path
    #[arg(long, value_name = "SRC[:DST]")]
    pub bind: Vec<String>,
    /// Mount a fresh tmpfs at DST (default size 64m)
    #[arg(long, value_name = "DST[:SIZE]")]
    pub tmpfs: Vec<String>,
    /// Set NAME to VALUE; NAME alone passes the caller's NAME (not set if the caller has none),
    /// NAME* every variable of the caller's whose name starts with NAME (podman's --env).
    /// The command's environment is, in this order (a later one wins):
    /// PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, HOME=/root (/ with a
    /// --uid other than 0) and the caller's TERM, or with --env-host the caller's whole
    /// environment instead; then each --env-file; then each --env; then --unsetenv removes
    /// names. Nothing else of the caller's passes
    #[arg(long, value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Read variables from FILE: one NAME=VALUE a line (NAME alone: the caller's, as --env
    /// NAME), blank lines and lines starting with # skipped, the value taken as written (no
    /// quotes removed), as podman's --env-file
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Start from the caller's whole environment instead of a clean one (podman's --env-host;
    /// what bwrap does unless --clearenv)
    #[arg(long = "env-host", visible_alias = "keep-env")]
    pub env_host: bool,
    /// Remove NAME from the command's environment (bwrap's --unsetenv)
    #[arg(long, value_name = "NAME")]
    pub unsetenv: Vec<String>,
    /// Working directory inside (absolute)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub chdir: String,
    /// Host name inside (letters, digits, '-' and '.', at most 64)
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
    /// Memory limit (e.g. 512m, 2g) or "unlimited" [default: 1g]. Unprivileged there are no
    /// cgroup limits: the default is then dropped (with a note), a limit given is an error
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Process limit or "unlimited" [default: 1024] (unprivileged: as --memory)
    #[arg(long, value_name = "N")]
    pub pids: Option<String>,
    /// CPU limit in CPUs (e.g. 0.5, 2) or "unlimited" [default: 1] (unprivileged: as --memory)
    #[arg(long, value_name = "CPUS")]
    pub cpus: Option<String>,
    /// Set a resource limit (as podman's --ulimit): nofile=1024[:2048], nproc=512, core=0;
    /// without it every default is at most the caller's own limit
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Give a capability back (CAP_NET_BIND_SERVICE or NET_BIND_SERVICE; ALL for every one)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Seccomp profile: default, docker, unconfined, or a JSON file (OCI or Docker format)
    #[arg(long, default_value = "default")]
    pub seccomp: String,
    /// User id inside (unprivileged, only 0: the caller is root inside)
    #[arg(long, default_value_t = 0)]
    pub uid: u32,
    /// Group id inside (unprivileged, only 0)
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
    /// With --learned: the calls outside its profile go to an agent of stockade's own that
    /// lets them run (complain) or answers EPERM (enforce), and writes each distinct call once
    /// to --seccomp-events. The agent lives as long as the sandbox; were it to die, those calls
    /// fail (ENOSYS), never run
    #[arg(long = "seccomp-mode", value_name = "complain|enforce")]
    pub seccomp_mode: Option<String>,
    /// Where --seccomp-mode appends its events, a JSON line per distinct call: time, syscall,
    /// args (those the profile constrains, or all six), pid, comm, action (allowed or denied);
    /// `stockade learn update DIR --events FILE` adds them to the profile
    #[arg(long = "seccomp-events", value_name = "FILE")]
    pub seccomp_events: Option<String>,
    /// When the workload is ready: tcp:PORT (127.0.0.1:PORT accepts, inside). For `learn`, the
    /// test waits for it, and the calls made only before it are written apart
    /// (seccomp-serving.json); with --learned and --seccomp-mode, those calls are denied
    /// (enforce) or logged (complain) once it holds
    #[arg(long, value_name = "tcp:PORT")]
    pub ready: Option<String>,
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
    /// Keep the caller's stdio even on a terminal (by default a terminal gives the command a pty
    /// of its own, relayed: job control works, and the caller's terminal never enters the
    /// sandbox)
    #[arg(long = "no-tty")]
    pub no_tty: bool,
    /// Run `stockade probe` inside (the binary is bound read-only); arguments after `--` go to it
    #[arg(long)]
    pub probe: bool,
    /// A command given without `--` (an error that says where it goes; clap would only say
    /// "unexpected argument")
    #[arg(hide = true, value_name = "CMD", allow_hyphen_values = true)]
    pub misplaced: Vec<String>,
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

/// A value as the user typed it, quoted only where it would not read back as one word.
fn shown(v: &str) -> Cow<'_, str> {
    if v.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
    {
        Cow::Owned(format!("{v:?}"))
    } else {
        Cow::Borrowed(v)
    }
}

/// `FLAG VALUE: why`: an error naming the flag and the value as typed.
fn flag_err(flag: &str, value: &str, why: impl std::fmt::Display) -> Error {
    Error::Other(format!("{flag} {}: {why}", shown(value)))
}

/// An argv as a shell would read it back (for messages).
pub(crate) fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The error for a command given without `--` (`stockade sandbox ls`): where it goes.
pub fn misplaced_command(front: &str, args: &[String]) -> Error {
    Error::Other(format!(
        "{front}: put the command after --: stockade {front} [OPTIONS] -- {}",
        shell_words(args)
    ))
}

/// `p` without `.` components and with `..` taken lexically (a path inside the sandbox, or one
/// shown to the user; the host resolves symlinks when it binds).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// A path inside the sandbox: absolute, no `..`.
fn inside_path(flag: &str, value: &str, what: &str, p: &str) -> Result<PathBuf> {
    if p.is_empty() {
        return Err(flag_err(flag, value, format!("empty {what}")));
    }
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err(flag_err(
            flag,
            value,
            format!("{what} {p} is not absolute (a path inside the sandbox starts with /)"),
        ));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(flag_err(
            flag,
            value,
            format!("{what} {p} has a '..' component"),
        ));
    }
    Ok(lexical(path))
}

/// A host path as given: relative ones from the current directory.
fn host_path(flag: &str, value: &str, p: &str) -> Result<PathBuf> {
    let path = Path::new(p);
    if path.is_absolute() {
        return Ok(lexical(path));
    }
    let cwd = std::env::current_dir().map_err(|e| {
        flag_err(
            flag,
            value,
            format!("{p} is relative and the current directory is unreadable: {e}"),
        )
    })?;
    Ok(lexical(&cwd.join(path)))
}

/// One `--bind`/`--ro-bind`: the host source (absolute) and where it appears.
#[derive(Debug, Clone)]
struct Bind {
    src: PathBuf,
    dst: PathBuf,
    ro: bool,
}

fn parse_bind(flag: &str, s: &str, ro: bool) -> Result<Bind> {
    let (src, dst) = match s.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    if src.is_empty() {
        return Err(flag_err(flag, s, "empty source (SRC[:DST])"));
    }
    let abs = host_path(flag, s, src)?;
    if std::fs::symlink_metadata(&abs).is_err() || !abs.exists() {
        let looked = if Path::new(src).is_absolute() {
            String::new()
        } else {
            format!(" (looked for {})", abs.display())
        };
        return Err(flag_err(
            flag,
            s,
            format!("source {src} does not exist{looked}"),
        ));
    }
    let dst = match dst {
        Some(d) => inside_path(flag, s, "destination", d)?,
        None => abs.clone(),
    };
    Ok(Bind { src: abs, dst, ro })
}

/// Every bind, `--ro-bind`s first, in the order given.
fn binds(a: &SandboxArgs) -> Result<Vec<Bind>> {
    let ro = a.ro_bind.iter().map(|b| parse_bind("--ro-bind", b, true));
    let rw = a.bind.iter().map(|b| parse_bind("--bind", b, false));
    ro.chain(rw).collect()
}

/// A size for `flag`, the error naming the whole `value` as typed.
fn size(flag: &str, value: &str, s: &str) -> Result<i64> {
    spec::parse_size(flag, s).map_err(|e| {
        let m = e.to_string();
        let why = m.strip_prefix(&format!("{flag} {s:?}: ")).unwrap_or(&m);
        if s == value {
            flag_err(flag, value, why)
        } else {
            flag_err(flag, value, format!("size {}: {why}", shown(s)))
        }
    })
}

/// One `--tmpfs DST[:SIZE]`: where, and its size in bytes.
fn parse_tmpfs(t: &str) -> Result<(PathBuf, i64)> {
    let (dst, sz) = match t.split_once(':') {
        Some((d, s)) => (d, s),
        None => (t, "64m"),
    };
    let dst = inside_path("--tmpfs", t, "destination", dst)?;
    let bytes = size("--tmpfs", t, sz)?;
    if bytes < 0 {
        return Err(flag_err("--tmpfs", t, "a tmpfs needs a size"));
    }
    Ok((dst, bytes))
}

/// `--cap-add`'s names (`ALL`: every capability this runtime knows).
fn cap_add(a: &SandboxArgs) -> Result<Vec<String>> {
    let mut out: Vec<String> = vec![];
    for c in &a.cap_add {
        let names: Vec<String> = if c.eq_ignore_ascii_case("all") {
            caps::all().iter().map(|c| c.to_string()).collect()
        } else {
            let name = crate::capabilities::cap_name(c);
            let known = name.parse::<caps::Capability>().is_ok()
                && serde_json::from_value::<oci_spec::runtime::Capability>(json!(name)).is_ok();
            if c.trim().is_empty() || !known {
                return Err(flag_err(
                    "--cap-add",
                    c,
                    "unknown capability (see capabilities(7); e.g. NET_BIND_SERVICE, or ALL)",
                ));
            }
            vec![name]
        };
        for n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// What `--learned DIR` holds: its capabilities (checked) and its seccomp profile's path.
fn learned(dir: &Path) -> Result<(Vec<String>, PathBuf)> {
    let shown_dir = dir.to_string_lossy();
    let err = |why: String| flag_err("--learned", &shown_dir, why);
    if !dir.is_dir() {
        return Err(err(
            "not a directory (one that `stockade learn --out DIR` wrote)".into(),
        ));
    }
    let caps_file = dir.join("capabilities.json");
    let seccomp_file = dir.join("seccomp.json");
    for f in [&caps_file, &seccomp_file] {
        if !f.is_file() {
            return Err(err(format!(
                "no {} in it (is it a directory `stockade learn --out DIR` wrote?)",
                f.file_name().unwrap_or_default().to_string_lossy()
            )));
        }
    }
    let text =
        std::fs::read_to_string(&caps_file).map_err(|e| err(format!("capabilities.json: {e}")))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| err(format!("capabilities.json: {e}")))?;
    let Some(needed) = v["needed"].as_array() else {
        return Err(err(
            "capabilities.json: no \"needed\" list of capability names".into(),
        ));
    };
    let mut caps = vec![];
    for c in needed {
        let name = c.as_str().unwrap_or_default();
        if name.parse::<caps::Capability>().is_err() {
            return Err(err(format!(
                "capabilities.json: {c} in \"needed\" is not a capability"
            )));
        }
        caps.push(name.to_string());
    }
    Ok((caps, seccomp_file))
}

/// `--seccomp-mode` and `--seccomp-events` as the annotations the engine reads (the mode and the
/// events file's absolute path), checked here so that an error names the flag. The file is not
/// made until the sandbox starts.
fn seccomp_watch(a: &SandboxArgs) -> Result<Option<(String, PathBuf)>> {
    let (mode, events) = match (&a.seccomp_mode, &a.seccomp_events) {
        (None, None) => return Ok(None),
        (None, Some(e)) => {
            return Err(flag_err(
                "--seccomp-events",
                e,
                "needs --seccomp-mode complain or enforce",
            ))
        }
        (Some(m), None) => {
            return Err(flag_err(
                "--seccomp-mode",
                m,
                "needs --seccomp-events FILE (where the calls outside the profile are written)",
            ))
        }
        (Some(m), Some(e)) => (m, e),
    };
    crate::seccomp::Mode::parse(mode).map_err(|why| flag_err("--seccomp-mode", mode, why))?;
    if a.learned.is_none() {
        return Err(flag_err(
            "--seccomp-mode",
            mode,
            "needs --learned DIR (the profile whose calls it leaves alone)",
        ));
    }
    if events.is_empty() {
        return Err(flag_err("--seccomp-events", events, "empty path"));
    }
    let path = host_path("--seccomp-events", events, events)?;
    crate::seccomp::check_events_file(&path)
        .map_err(|why| flag_err("--seccomp-events", events, why))?;
    Ok(Some((mode.clone(), path)))
}

/// The spec's annotations: the network's, complain/enforce's, and with `--ready` the phase
/// switch's (then `seccomp` becomes the serving profile: the kernel enforces it, the agent lets
/// the rest of the whole-life profile run until the workload is ready).
fn annotations(a: &SandboxArgs, capabilities: &Value, seccomp: &mut Value) -> Result<Value> {
    let mut annotations = net_annotations(a)?;
    if let Some((mode, events)) = seccomp_watch(a)? {
        annotations[crate::seccomp::ANNOTATION_MODE] = json!(mode);
        annotations[crate::seccomp::ANNOTATION_EVENTS] = json!(events);
    }
    if let Some((ready, whole, serving)) = ready_phase(a, capabilities)? {
        *seccomp = serving;
        annotations[crate::seccomp::ANNOTATION_READY] = json!(ready);
        annotations[crate::seccomp::ANNOTATION_STARTUP] = json!(whole);
    }
    Ok(annotations)
}

/// `--ready tcp:PORT` with `--learned DIR` and `--seccomp-mode`: the condition, the whole-life
/// profile's path (DIR/seccomp.json) and the serving profile (DIR/seccomp-serving.json, which
/// `learn --ready` wrote).
fn ready_phase(a: &SandboxArgs, caps: &Value) -> Result<Option<(String, PathBuf, Value)>> {
    let Some(r) = &a.ready else {
        return Ok(None);
    };
    if r.strip_prefix("tcp:")
        .and_then(|p| p.parse::<u16>().ok())
        .is_none()
    {
        return Err(flag_err("--ready", r, "use tcp:PORT"));
    }
    let (Some(dir), Some(_)) = (&a.learned, &a.seccomp_mode) else {
        return Err(flag_err(
            "--ready",
            r,
            "needs --learned DIR and --seccomp-mode (the calls made only before the workload is ready are denied or logged once it is)",
        ));
    };
    let serving = dir.join("seccomp-serving.json");
    if !serving.is_file() {
        return Err(flag_err(
            "--ready",
            r,
            format!(
                "{} has no seccomp-serving.json: learn with --ready (and --test) to write it",
                dir.display()
            ),
        ));
    }
    let caps: Vec<String> = caps["bounding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    let profile = seccomp_profile("--ready", &serving.to_string_lossy(), &caps)?;
    let whole = std::path::absolute(dir.join("seccomp.json"))
        .map_err(|e| flag_err("--learned", &dir.to_string_lossy(), e.to_string()))?;
    Ok(Some((r.clone(), whole, profile)))
}

/// The seccomp profile for `arg` (a built-in name or a file), errors naming `flag`.
fn seccomp_profile(flag: &str, arg: &str, caps: &[String]) -> Result<Value> {
    let builtin = stockade_seccomp::builtin(arg).is_some();
    if !builtin {
        let p = Path::new(arg);
        if let Err(e) = std::fs::metadata(p) {
            return Err(flag_err(
                flag,
                arg,
                format!("not default, docker or unconfined, nor a profile file: {e}"),
            ));
        }
        if p.is_dir() {
            return Err(flag_err(
                flag,
                arg,
                "is a directory (a profile is a JSON file)",
            ));
        }
    }
    match crate::seccomp::profile_for_cli(arg, caps) {
        Ok(p) => Ok(p.to_oci_value()),
        // the field of the user's own profile file (its message may already start with it)
        Err(Error::Config { field, msg, .. })
            if field.is_empty() || msg.starts_with(&format!("{field}: ")) =>
        {
            Err(flag_err(flag, arg, msg))
        }
        Err(Error::Config { field, msg, .. }) => {
            Err(flag_err(flag, arg, format!("{field}: {msg}")))
        }
        Err(Error::Io { source, .. }) => Err(flag_err(flag, arg, source)),
        Err(e) => Err(flag_err(flag, arg, e)),
    }
}

/// A host name as `sethostname` takes it and resolvers expect (RFC 1123 labels).
fn check_hostname(h: &str) -> Result<()> {
    let why = if h.is_empty() {
        Some("empty")
    } else if h.len() > 64 {
        Some("longer than 64 bytes")
    } else if !h
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        Some("use letters, digits, '-' and '.'")
    } else if h
        .split('.')
        .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
    {
        Some("each dot-separated part must be non-empty and neither start nor end with '-'")
    } else {
        None
    };
    match why {
        Some(w) => Err(flag_err("--hostname", h, w)),
        None => Ok(()),
    }
}

/// An environment variable's name: non-empty, no '=' (what `--env NAME=VALUE` splits at).
fn check_env_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        Err("empty variable name")
    } else if name.contains('\0') {
        Err("NUL in the variable name")
    } else if name.chars().any(char::is_whitespace) {
        Err("whitespace in the variable name")
    } else {
        Ok(())
    }
}

/// Set `name` (replacing an earlier value, keeping its place).
fn set_var(env: &mut Vec<(String, String)>, name: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == name) {
        Some(e) => e.1 = value,
        None => env.push((name.to_string(), value)),
    }
}

/// The caller's variables (those that are UTF-8: an OCI spec's env is).
fn caller_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// `NAME` (the caller's value, if set) or `NAME*` (each of the caller's starting with NAME).
fn pass_from_caller(env: &mut Vec<(String, String)>, name: &str) {
    if let Some(prefix) = name.strip_suffix('*') {
        for (k, v) in caller_env() {
            if k.starts_with(prefix) {
                set_var(env, &k, v);
            }
        }
    } else if let Some(v) = std::env::var_os(name).and_then(|v| v.into_string().ok()) {
        set_var(env, name, v);
    }
}

/// The variables of one `--env-file` in order; errors name FILE:LINE.
fn read_env_file(file: &Path) -> Result<Vec<(String, Option<String>)>> {
    let f = file.display();
    let bytes = std::fs::read(file).map_err(|e| Error::Other(format!("--env-file {f}: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Other(format!("--env-file {f}: not UTF-8 text")))?;
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (line.trim_end(), None),
        };
        check_env_name(name)
            .map_err(|why| Error::Other(format!("--env-file {f}:{}: {why}: {line}", i + 1)))?;
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// The command's environment (see `--env`'s help).
fn environment(a: &SandboxArgs) -> Result<Vec<String>> {
    let mut env: Vec<(String, String)> = if a.env_host {
        caller_env()
    } else {
        let home = if a.uid == 0 { "/root" } else { "/" };
        let mut v = vec![
            ("PATH".to_string(), DEFAULT_PATH.to_string()),
            ("HOME".to_string(), home.to_string()),
        ];
        if let Some(term) = std::env::var_os("TERM").and_then(|t| t.into_string().ok()) {
            v.push(("TERM".to_string(), term));
        }
        v
    };
    for file in &a.env_file {
        for (name, value) in read_env_file(file)? {
            match value {
                Some(v) => set_var(&mut env, &name, v),
                None => pass_from_caller(&mut env, &name),
            }
        }
    }
    for e in &a.env {
        match e.split_once('=') {
            Some((name, value)) => {
                check_env_name(name).map_err(|why| flag_err("--env", e, why))?;
                set_var(&mut env, name, value.to_string());
            }
            None => {
                check_env_name(e.trim_end_matches('*')).map_err(|why| flag_err("--env", e, why))?;
                pass_from_caller(&mut env, e);
            }
        }
    }
    for name in &a.unsetenv {
        check_env_name(name).map_err(|why| flag_err("--unsetenv", name, why))?;
        env.retain(|(k, _)| k != name);
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// What the sandbox's tree looks like, enough to tell whether a directory exists in it: the
/// mounts (host binds, fresh tmpfs, kernel filesystems) and the root's symlinks.
struct View<'a> {
    mounts: Vec<(PathBuf, Option<Option<PathBuf>>)>,
    symlinks: &'a serde_json::Map<String, Value>,
}

impl View<'_> {
    /// Whether `dir` is (or may be) a directory inside: false only when it surely is not.
    fn may_be_dir(&self, dir: &Path) -> bool {
        let mut path = lexical(dir);
        // the root's symlinks (`/bin -> usr/bin`)
        if let Some(Component::Normal(first)) = path.components().nth(1) {
            if let Some(to) = self.symlinks.get(&*first.to_string_lossy()) {
                let rest: PathBuf = path.components().skip(2).collect();
                path = Path::new("/")
                    .join(to.as_str().unwrap_or_default())
                    .join(rest);
            }
        }
        // an ancestor of a mount point is made for it
        if self.mounts.iter().any(|(m, _)| m.starts_with(&path)) {
            return true;
        }
        let best = self
            .mounts
            .iter()
            .filter(|(m, _)| path.starts_with(m))
            .max_by_key(|(m, _)| m.components().count());
        match best {
            // only the mount points exist in the root's tmpfs
            None => path == Path::new("/"),
            Some((m, Some(Some(src)))) => {
                let rest = path.strip_prefix(m).unwrap_or(Path::new(""));
                src.join(rest).is_dir()
            }
            // a fresh tmpfs: its mount point only (handled above)
            Some((_, Some(None))) => false,
            // proc, sysfs, cgroup: cannot tell from here
            Some((_, None)) => true,
        }
    }
}

/// What a sandbox's mount point shows, for `--chdir`: a host directory, a fresh tmpfs (Some(None)),
/// or unknown (None).
type MountView = Vec<(PathBuf, Option<Option<PathBuf>>)>;

/// The sandbox's mounts: the host's system directories read-only (merged-/usr links kept as
/// links), fresh /proc, /dev, /tmp and /sys, then --bind, --ro-bind, --tmpfs (and the probe).
fn mounts_of(
    a: &SandboxArgs,
    binds: &[Bind],
    tmpfs: &[(PathBuf, i64)],
    self_exe: &Path,
) -> (Vec<Value>, MountView, serde_json::Map<String, Value>) {
    let mut mounts: Vec<Value> = vec![];
    // what each mount point shows, for --chdir: a host directory, a fresh tmpfs, or unknown
    let mut view: MountView = vec![];
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
                view.push((p.into(), Some(Some(p.into()))));
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
    for (m, what) in [
        ("/proc", None),
        ("/dev", Some(None)),
        ("/dev/pts", None),
        ("/dev/shm", Some(None)),
        ("/dev/mqueue", None),
        ("/tmp", Some(None)),
        ("/sys", None),
    ] {
        view.push((m.into(), what));
    }
    // A read-only /sys (masked as `run`'s) with the sandbox's own cgroup view (cgroup namespace):
    // runtimes (JVM, Go, .NET, Node, Python) size themselves from the limits they find there.
    if a.net != "host" {
        mounts.push(json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}));
    } else {
        // sysfs belongs to the network namespace that mounts it: with the host's, bind the host's
        mounts.push(json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}));
    }
    mounts.push(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}));
    for b in binds {
        let opts = if b.ro {
            json!(["rbind", "ro", "nosuid", "nodev"])
        } else {
            json!(["rbind", "nosuid", "nodev"])
        };
        mounts
            .push(json!({"destination": b.dst, "type": "bind", "source": b.src, "options": opts}));
        let dir = b.src.is_dir().then(|| b.src.clone());
        view.push((b.dst.clone(), Some(dir)));
    }
    for (dst, bytes) in tmpfs {
        mounts.push(json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", format!("size={bytes}")]}));
        view.push((dst.clone(), Some(None)));
    }
    if a.probe {
        mounts.push(crate::probe::bind_mount(self_exe));
    }
    (mounts, view, symlinks)
}

/// The capability sets (--cap-add, plus what --learned needs) and the seccomp profile
/// (--seccomp, or --learned's).
fn privileges(a: &SandboxArgs) -> Result<(Value, Value)> {
    let mut caps = cap_add(a)?;
    let mut seccomp_flag = "--seccomp";
    let mut seccomp_arg = a.seccomp.clone();
    if let Some(dir) = &a.learned {
        let (needed, file) = learned(dir)?;
        for c in needed {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
        seccomp_flag = "--learned";
        seccomp_arg = file.to_string_lossy().into_owned();
    }
    let capabilities = json!({"bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps});
    let seccomp = if seccomp_arg == "unconfined" {
        Value::Null
    } else {
        seccomp_profile(seccomp_flag, &seccomp_arg, &caps)?
    };
    Ok((capabilities, seccomp))
}

/// The spec for these flags. `self_exe` is bound in for `--probe`.
pub fn build(a: &SandboxArgs, self_exe: &Path) -> Result<Spec> {
    if !a.misplaced.is_empty() {
        return Err(misplaced_command("sandbox", &a.misplaced));
    }
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
    let binds = binds(a)?;
    let tmpfs: Vec<(PathBuf, i64)> = a
        .tmpfs
        .iter()
        .map(|t| parse_tmpfs(t))
        .collect::<Result<_>>()?;
    let (mounts, view, symlinks) = mounts_of(a, &binds, &tmpfs, self_exe);

    let (capabilities, mut seccomp) = privileges(a)?;
    let mut annotations = annotations(a, &capabilities, &mut seccomp)?;
    let mut namespaces = spec::default_namespaces();
    if a.net == "host" {
        namespaces
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network");
    }
    let (uid_maps, gid_maps) = spec::default_id_maps(rootless, a.uid, a.gid);
    check_ids(a, rootless, &uid_maps, &gid_maps)?;
    check_hostname(&a.hostname)?;
    let cwd = inside_path("--chdir", &a.chdir, "directory", &a.chdir)?;
    let tree = View {
        mounts: view,
        symlinks: &symlinks,
    };
    if !tree.may_be_dir(&cwd) {
        return Err(flag_err(
            "--chdir",
            &a.chdir,
            "no such directory in the sandbox (it has the host's /usr, /etc and the like, /tmp, /dev, /proc, /sys, and what --bind, --ro-bind and --tmpfs add)",
        ));
    }
    let env = environment(a)?;

    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    for (res, v) in limits(a, rootless)? {
        resources[res] = v;
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
    if let Some(l) = landlock_flags(a, &binds, &tmpfs)? {
        let c = l.to_config().map_err(Error::Other)?;
        annotations[crate::landlock::ANNOTATION] =
            json!(serde_json::to_string(&c).expect("serializable"));
    }
    let terminal = !a.no_tty && !a.print_spec && crate::tty::stdin_is_terminal();
    let mut v = json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": a.uid, "gid": a.gid},
            "args": args,
            "env": env,
            "cwd": cwd,
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
    if let Some((rows, cols)) = terminal.then(|| crate::tty::size_of(0)).flatten() {
        v["process"]["consoleSize"] = json!({"height": rows, "width": cols});
    }
    // everything was checked above: an error here is stockade's, not the flags'
    spec::parse(Path::new("sandbox flags"), &v.to_string()).map_err(|e| {
        Error::Other(format!(
            "sandbox: the flags made a spec stockade rejects ({e}): a bug, please report it with the command line"
        ))
    })
}

/// `--uid`/`--gid`: an id the user namespace maps.
fn check_ids(a: &SandboxArgs, rootless: bool, uid_maps: &Value, gid_maps: &Value) -> Result<()> {
    for (flag, id, maps) in [("--uid", a.uid, uid_maps), ("--gid", a.gid, gid_maps)] {
        if id == u32::MAX {
            return Err(flag_err(
                flag,
                &id.to_string(),
                "-1 (4294967295) is not an id",
            ));
        }
        if rootless {
            // the caller is mapped to the id asked for (bwrap's --uid): any id will do
            continue;
        }
        let size = maps[0]["size"].as_u64().unwrap_or(0);
        if u64::from(id) >= size {
            return Err(flag_err(
                flag,
                &id.to_string(),
                format!(
                    "outside the sandbox's id range 0-{} (the host range in /etc/sub{}id's \"stockade\" line, or the default)",
                    size.saturating_sub(1),
                    if flag == "--uid" { "u" } else { "g" }
                ),
            ));
        }
    }
    Ok(())
}

/// `--memory`, `--pids` and `--cpus` as linux.resources entries. Unprivileged nothing is
/// enforced (no cgroup of its own): a limit given on the command line is then an error, the
/// defaults are dropped (the engine notes it).
fn limits(a: &SandboxArgs, rootless: bool) -> Result<Vec<(&'static str, Value)>> {
    let given = |flag: &str, v: &Option<String>| -> Result<()> {
        match v {
            Some(v) if rootless && v != "unlimited" => Err(flag_err(
                flag,
                v,
                format!("cannot be enforced without root (no cgroup delegation); pass {flag} unlimited to run without it"),
            )),
            _ => Ok(()),
        }
    };
    given("--memory", &a.memory)?;
    given("--pids", &a.pids)?;
    given("--cpus", &a.cpus)?;
    let mut out = vec![];
    let memory = a.memory.as_deref().unwrap_or(DEFAULT_MEMORY);
    let bytes = size("--memory", memory, memory)?;
    if bytes > 0 {
        if bytes < 4 << 20 {
            return Err(flag_err(
                "--memory",
                memory,
                "below 4 MiB nothing useful runs",
            ));
        }
        out.push(("memory", json!({"limit": bytes, "swap": bytes})));
    }
    let pids = a.pids.as_deref().unwrap_or(DEFAULT_PIDS);
    if pids != "unlimited" {
        let p: i64 = pids
            .parse()
            .map_err(|_| flag_err("--pids", pids, "not a number (or \"unlimited\")"))?;
        if p <= 0 {
            return Err(flag_err(
                "--pids",
                pids,
                "must be positive (or \"unlimited\")",
            ));
        }
        out.push(("pids", json!({"limit": p})));
    }
    let cpus = a.cpus.as_deref().unwrap_or(DEFAULT_CPUS);
    if cpus != "unlimited" {
        let c: f64 = cpus
            .parse()
            .map_err(|_| flag_err("--cpus", cpus, "not a number (or \"unlimited\")"))?;
        if !(0.01..=4096.0).contains(&c) {
            return Err(flag_err(
                "--cpus",
                cpus,
                "must be between 0.01 and 4096 (or \"unlimited\")",
            ));
        }
        out.push(("cpu", json!({"quota": (c * spec::DEFAULT_CPU_PERIOD as f64) as i64, "period": spec::DEFAULT_CPU_PERIOD})));
    }
    // unprivileged, the defaults are not enforced: leave them out of the spec (the engine
    // notes that it runs without cgroup limits)
    if rootless {
        out.clear();
    }
    Ok(out)
}

/// The Landlock flags, with `--landlock`'s rules derived from the binds; None without any.
fn landlock_flags(
    a: &SandboxArgs,
    binds: &[Bind],
    tmpfs: &[(PathBuf, i64)],
) -> Result<Option<crate::landlock::Flags>> {
    let any = a.landlock
        || !a.landlock_ro.is_empty()
        || !a.landlock_rw.is_empty()
        || !a.landlock_exec.is_empty()
        || !a.landlock_bind.is_empty()
        || !a.landlock_connect.is_empty()
        || a.landlock_scope.is_some();
    if !any {
        return Ok(None);
    }
    for (flag, paths) in [
        ("--landlock-ro", &a.landlock_ro),
        ("--landlock-rw", &a.landlock_rw),
        ("--landlock-exec", &a.landlock_exec),
    ] {
        for p in paths {
            inside_path(flag, p, "path", p)?;
        }
    }
    for s in a.landlock_scope.iter().flatten() {
        if !matches!(s.as_str(), "abstract" | "signal" | "none") {
            return Err(flag_err(
                "--landlock-scope",
                s,
                "use abstract, signal or none",
            ));
        }
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
        let path = |p: &Path| p.to_string_lossy().into_owned();
        f.ro.extend(binds.iter().filter(|b| b.ro).map(|b| path(&b.dst)));
        f.rw.extend(binds.iter().filter(|b| !b.ro).map(|b| path(&b.dst)));
        f.rw.extend(tmpfs.iter().map(|(d, _)| path(d)));
        f.rw.extend(["/tmp".to_string(), "/dev".to_string()]);
        if a.probe {
            f.exec.push(crate::probe::BOUND_AT.to_string());
        }
    }
    Ok(Some(f))
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
        let bad = |why: &str| flag_err("--ulimit", u, why);
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
            return Err(flag_err(
                "--net",
                m,
                "expected none, host, bridge, cni:NAME or pasta",
            ))
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
    if mode == "pasta" {
        net::pasta::find().map_err(|why| flag_err("--net", mode, why))?;
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
            json!(abs("--cni-conf-dir", &d.to_string_lossy())?),
        );
    }
    if let Some(p) = &a.cni_path {
        ann.insert(net::A_CNI_PATH.into(), json!(p));
    }
    Ok(Value::Object(ann))
}

/// `--cni-conf-dir`: from the current directory, and there.
fn abs(flag: &str, p: &str) -> Result<PathBuf> {
    let full = host_path(flag, p, p)?;
    if !full.is_dir() {
        return Err(flag_err(flag, p, "no such directory"));
    }
    Ok(full)
}
