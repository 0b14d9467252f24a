//! The `stockade` command: runc's CLI shape plus `sandbox` and the seccomp tools.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod cli;

use cli::lifecycle::{exec_process, update_resources, CreateArgs, ExecArgs, UpdateArgs};
use cli::seccomp::{seccomp_cmd, SeccompCmd};
use stockade::container::{self, RunOptions};
use stockade::sandbox::SandboxArgs;
use stockade::spec;

// Every argument of `Cli` is global: under a heading of their own, after a subcommand's options.
#[derive(Parser)]
#[command(
    name = "stockade",
    version,
    about = "A container sandbox runtime: every isolation layer on by default",
    next_help_heading = "Global options"
)]
struct Cli {
    /// Directory for container state (made 0700): /run/stockade for root; for another user
    /// $XDG_RUNTIME_DIR/stockade, or /tmp/stockade-UID without it
    #[arg(long, global = true, default_value_os_t = stockade::state::default_root())]
    root: PathBuf,
    /// Print only errors
    #[arg(long, global = true)]
    quiet: bool,
    /// Log file (runc compatibility; errors also go to stderr)
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json (runc compatibility)
    #[arg(long, global = true, default_value = "text")]
    log_format: String,
    /// More output (runc compatibility)
    #[arg(long, global = true)]
    debug: bool,
    /// Hardening policy for create/run/exec: a policy.json, "none", or "default" (the built-in
    /// floor); without it /etc/stockade/policy.json if present, else the built-in floor
    #[arg(
        long,
        global = true,
        value_name = "FILE|none|default",
        env = "STOCKADE_POLICY"
    )]
    policy: Option<String>,
    /// Learn every container created: record its syscalls and capability checks for its whole
    /// life (under a permissive seccomp filter) and write its profile to DIR/ID at delete; the
    /// annotation org.stockade.learn=DIR does it for one container
    #[arg(long, global = true, value_name = "DIR", env = "STOCKADE_LEARN_DIR")]
    learn_dir: Option<PathBuf>,
    /// Use the systemd cgroup driver: a transient scope per container, cgroupsPath slice:prefix:name
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

// `defer`: each subcommand's arguments are built only when it is the one given (building all of
// them took about a third of a millisecond at every start).
#[derive(Subcommand)]
#[command(defer = true)]
enum Cmd {
    /// Create and run a container from a bundle, in the foreground; exits with its exit code
    Run {
        #[command(flatten)]
        c: CreateArgs,
        /// Create and start, then return (the container keeps running)
        #[arg(long, short)]
        detach: bool,
        /// Run `stockade probe` in the container instead of its process (the binary is bound
        /// in read-only): --probe, --probe=json, --probe=json,stress
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "table")]
        probe: Option<String>,
    },
    /// Create a container, blocked before it runs its process until `start`
    Create {
        #[command(flatten)]
        c: CreateArgs,
    },
    /// Run the process of a created container
    Start { id: String },
    /// Print a container's state (runtime-spec JSON)
    State { id: String },
    /// Send a signal (name or number, default SIGTERM) to a container's init, or with --all to all
    Kill {
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
        #[arg(long, short)]
        all: bool,
    },
    /// Remove a container (--force: kill it first)
    Delete {
        id: String,
        #[arg(long, short)]
        force: bool,
    },
    /// List containers
    List {
        #[arg(long, short, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Only ids
        #[arg(short)]
        q: bool,
    },
    /// Processes of a container
    Ps {
        id: String,
        #[arg(long, short, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Change a running container's cgroup limits
    Update(Box<UpdateArgs>),
    /// Thaw a paused container
    Resume { id: String },
    /// Container events; with --stats one statistics record
    Events {
        id: String,
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// What this runtime supports (runtime-spec features JSON)
    Features,
    /// Check a container's network: CNI's CHECK of each plugin; for --net bridge its veth on
    /// the bridge and its nftables rules
    #[command(name = "net-check")]
    NetCheck { id: String },
    /// Look at the isolation from inside: run this in a container or sandbox
    Probe {
        /// JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Also try to exhaust processes, memory, descriptors, /tmp and /dev/shm (bounded; all
        /// given back afterwards)
        #[arg(long)]
        stress: bool,
    },
    /// Check containers' configuration against the seed and the CIS Docker Benchmark: OCI
    /// config.json, `docker inspect` output, Kubernetes manifests, or live processes (--pid)
    Audit {
        /// Files (or bundle directories, or - for stdin) to audit
        inputs: Vec<String>,
        /// A live process to audit from the host's /proc (repeatable)
        #[arg(long)]
        pid: Vec<i32>,
        #[arg(long, default_value = "table", value_parser = ["table", "json", "sarif"])]
        format: String,
        /// Exit with status 3 when a finding is at least this severe
        #[arg(long, value_parser = ["low", "medium", "high"])]
        fail_on: Option<String>,
    },
    /// Run another process in a running container
    Exec(Box<ExecArgs>),
    /// update, checkpoint, restore: not implemented yet (each refuses with a clear error)
    #[command(external_subcommand)]
    Other(Vec<String>),
    /// Write a hardened default config.json into the bundle directory
    Spec {
        #[arg(long, short, default_value = ".")]
        bundle: PathBuf,
        /// For running as a normal user: map only the caller, no cgroup limits
        #[arg(long)]
        rootless: bool,
        /// Use what `stockade learn --out DIR` learned: its seccomp profile and capabilities
        #[arg(long, value_name = "DIR")]
        learned: Option<PathBuf>,
    },
    /// Run a host command in a sandbox (no image needed)
    Sandbox(Box<SandboxArgs>),
    /// The hardening policy applied to engine configs: show it, or check a config against it
    #[command(subcommand)]
    Policy(cli::policy::PolicyCmd),
    /// Learn the syscalls (with arguments) and capabilities a workload needs from its own test
    /// scenario, and verify the result by running it again
    Learn(Box<stockade::scenario::LearnCmd>),
    /// Inspect seccomp profiles
    #[command(subcommand)]
    Seccomp(SeccompCmd),
    /// Print the shell completion script: e.g. `source <(stockade completion bash)`
    Completion(cli::docs::CompletionArgs),
    /// Print the man page stockade(1); with --dir write it and every subcommand's into DIR
    Man(cli::docs::ManArgs),
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE; restore the default so `stockade ... | head` ends quietly and, above
    // all, so containers do not inherit an ignored SIGPIPE through execve.
    // SAFETY: setting a signal disposition to SIG_DFL has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // the engine verbs are read by hand (cli/fast.rs says why); anything else, and anything
    // that reader does not know exactly, by clap
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = cli::fast::parse(&args)
        .unwrap_or_else(|| Cli::try_parse_from(&args).unwrap_or_else(cli::docs::version_or_exit));
    // Engines (containerd's runc shim, Podman's conmon) read the runtime's messages from
    // `--log`, as JSON lines with `--log-format json`, the way runc writes them.
    stockade::diag::init(cli.log.as_deref(), cli.log_format == "json", cli.quiet);
    match real_main(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("stockade: error: {msg}");
            stockade::diag::log_error(&msg);
            ExitCode::from(1)
        }
    }
}

/// `stockade audit`: every input becomes postures, every posture a report. Exit status: 0, or 3
/// when a finding reaches `--fail-on`, or 1 on an error (including a partial live read).
#[inline(never)]
fn audit(
    inputs: &[String],
    pids: &[i32],
    (format, fail_on): (&str, Option<&str>),
    policy: Option<&str>,
) -> Result<i32> {
    use stockade::audit;
    if inputs.is_empty() && pids.is_empty() {
        bail!("audit: name a config.json, `docker inspect` output, a Kubernetes manifest, or --pid PID");
    }
    let mut postures = vec![];
    for i in inputs {
        postures.extend(audit::inputs::load(i)?);
    }
    // a container an engine ran with stockade runs with the policy's raises
    let engine_policy = stockade::policy::load(policy)?;
    for p in postures.iter_mut() {
        let rt = p.runtime.clone();
        if let (Some(pol), Some(rt)) = (&engine_policy, rt) {
            if audit::engine_policy::names_stockade(&rt.value) {
                audit::engine_policy::raise(p, pol, &format!("{} = {:?}", rt.at, rt.value));
            }
        }
    }
    for &p in pids {
        postures.push(audit::live::read(p)?);
    }
    let reports: Vec<audit::Report> = postures.iter().map(audit::report).collect();
    match format {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&audit::to_json(&reports))?
        ),
        "sarif" => println!(
            "{}",
            serde_json::to_string_pretty(&audit::to_sarif(&reports))?
        ),
        _ => {
            use std::io::IsTerminal;
            print!(
                "{}",
                audit::to_table(&reports, std::io::stdout().is_terminal())
            );
        }
    }
    if let Some(r) = reports.iter().find(|r| r.partial.is_some()) {
        bail!(
            "{}: partial audit: {}",
            r.target,
            r.partial.as_deref().unwrap_or_default()
        );
    }
    let threshold = fail_on.and_then(audit::Severity::parse);
    Ok(match (threshold, audit::worst(&reports)) {
        (Some(t), Some(w)) if w >= t => 3,
        _ => 0,
    })
}

/// The dispatch. The commands other than the engine verbs are `#[inline(never)]`: inlined here
/// they made this function ~96 KiB of code in the middle of the start path's (the kernel maps a
/// binary 64 KiB around each fault; see build.rs), where `run` executes a few hundred bytes of it.
fn real_main(cli: Cli) -> Result<i32> {
    let log = cli::policy::Log;
    let policy = || stockade::policy::load(cli.policy.as_deref());
    match cli.cmd {
        Cmd::Run { c, detach, probe } => {
            let code = create(
                &cli.root,
                &c,
                (cli.quiet, cli.systemd_cgroup),
                detach,
                probe.as_deref(),
                (policy()?.as_ref(), &log),
                cli.learn_dir.as_deref(),
            )?;
            if detach {
                stockade::lifecycle::start(&cli.root, &c.id)?;
            }
            Ok(code)
        }
        Cmd::Create { c } => create(
            &cli.root,
            &c,
            (cli.quiet, cli.systemd_cgroup),
            true,
            None,
            (policy()?.as_ref(), &log),
            cli.learn_dir.as_deref(),
        ),
        Cmd::Policy(c) => cli::policy::policy_cmd(cli.policy.as_deref(), &cli.root, c),
        Cmd::Start { id } => done(stockade::lifecycle::start(&cli.root, &id)),
        Cmd::State { id } => print_json(&stockade::lifecycle::state_json(&cli.root, &id)?),
        Cmd::Kill { id, signal, all } => {
            let sig = stockade::lifecycle::parse_signal(&signal)?;
            done(stockade::lifecycle::kill(&cli.root, &id, sig, all))
        }
        Cmd::Delete { id, force } => done(stockade::lifecycle::delete(&cli.root, &id, force)),
        Cmd::List { format, q } => list(&cli.root, &format, q),
        Cmd::Ps { id, format } => ps(&cli.root, &id, &format),
        Cmd::Update(u) => {
            let r = update_resources(&u)?;
            stockade::lifecycle::update(&cli.root, &u.id, &r)?;
            Ok(0)
        }
        Cmd::Pause { id } => done(stockade::lifecycle::pause(&cli.root, &id, true)),
        Cmd::Resume { id } => done(stockade::lifecycle::pause(&cli.root, &id, false)),
        Cmd::Events {
            id,
            stats,
            interval,
        } => events(&cli.root, &id, stats, &interval),
        Cmd::Exec(a) => exec(&cli.root, &a, policy()?.as_ref()),
        Cmd::Probe { json, stress } => probe(json, stress),
        Cmd::NetCheck { id } => {
            let dir = stockade::state::StateDir::open(&cli.root, &id)?;
            println!("{}", stockade::net::check(&dir.dir)?);
            Ok(0)
        }
        Cmd::Features => print_json(&stockade::lifecycle::features()),
        Cmd::Audit {
            inputs,
            pid,
            format,
            fail_on,
        } => audit(
            &inputs,
            &pid,
            (&format, fail_on.as_deref()),
            cli.policy.as_deref(),
        ),
        Cmd::Other(args) => {
            let what = args.first().map(String::as_str).unwrap_or("");
            match what {
                "checkpoint" | "restore" => {
                    bail!("`{what}` is not implemented in stockade yet")
                }
                _ => bail!("unknown command {what:?} (see stockade --help)"),
            }
        }
        Cmd::Spec {
            bundle,
            rootless,
            learned,
        } => write_spec(&bundle, rootless, learned.as_deref()),
        Cmd::Sandbox(args) => sandbox(cli.root, &args, (cli.quiet, cli.systemd_cgroup)),
        Cmd::Learn(l) => {
            let exe = std::fs::read_link("/proc/self/exe").context("find own binary")?;
            Ok(stockade::scenario::learn(&l, &cli.root, &exe)?)
        }
        Cmd::Seccomp(c) => seccomp_cmd(c),
        Cmd::Completion(a) => cli::docs::completion(&a),
        Cmd::Man(a) => cli::docs::man(&a),
    }
}

/// `exec`: the process (`--process` or the arguments), raised by the policy, in the container.
#[inline(never)]
fn exec(root: &Path, a: &ExecArgs, policy: Option<&stockade::policy::Policy>) -> Result<i32> {
    let mut p = exec_process(root, a)?;
    if let Some(pol) = policy {
        p = cli::policy::apply_to_exec(pol, p, &cli::policy::Log)?;
    }
    let opts = container::ExecOptions {
        console_socket: a.console_socket.clone(),
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
    };
    Ok(container::exec(root, &a.id, &p, &opts)?)
}

/// A command that prints nothing: exit 0.
fn done(r: stockade::Result<()>) -> Result<i32> {
    r?;
    Ok(0)
}

/// A command that prints JSON, indented.
fn print_json(v: &serde_json::Value) -> Result<i32> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(0)
}

/// `list`: the containers of the state root, as a table, ids, or JSON.
#[inline(never)]
fn list(root: &Path, format: &str, q: bool) -> Result<i32> {
    let all = stockade::lifecycle::list(root)?;
    if q {
        for c in &all {
            println!("{}", c["id"].as_str().unwrap_or(""));
        }
    } else if format == "json" {
        println!("{}", serde_json::to_string(&all)?);
    } else {
        println!(
            "{:<24} {:<8} {:<10} {:<40} CREATED",
            "ID", "PID", "STATUS", "BUNDLE"
        );
        for c in &all {
            let f = |k: &str| c[k].as_str().unwrap_or("").to_string();
            println!(
                "{:<24} {:<8} {:<10} {:<40} {}",
                f("id"),
                c["pid"],
                f("status"),
                f("bundle"),
                f("created")
            );
        }
    }
    Ok(0)
}

/// `ps`: the processes of a container.
#[inline(never)]
fn ps(root: &Path, id: &str, format: &str) -> Result<i32> {
    let pids = stockade::lifecycle::pids(root, id)?;
    if format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
    } else {
        println!("{:<8} CMD", "PID");
        for p in pids {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            println!("{p:<8} {}", cmd.trim());
        }
    }
    Ok(0)
}

/// `events`: statistics records, once (`--stats`) or every interval until the container stops.
#[inline(never)]
fn events(root: &Path, id: &str, stats: bool, interval: &str) -> Result<i32> {
    let every = parse_duration(interval)?;
    loop {
        let s = stockade::lifecycle::stats(root, id)?;
        println!("{}", serde_json::to_string(&s)?);
        if stats {
            return Ok(0);
        }
        std::thread::sleep(every);
        if stockade::lifecycle::state_json(root, id)?["status"] == "stopped" {
            return Ok(0);
        }
    }
}

/// `probe`: the isolation seen from inside.
#[inline(never)]
fn probe(json: bool, stress: bool) -> Result<i32> {
    let mut checks = stockade::probe::run_all();
    if stress {
        checks.extend(stockade::probe::run_stress());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        use std::io::IsTerminal;
        print!(
            "{}",
            stockade::probe::table(&checks, std::io::stdout().is_terminal())
        );
    }
    Ok(0)
}

/// `spec`: the hardened config.json (with `--learned`, what `learn` found).
#[inline(never)]
fn write_spec(bundle: &Path, rootless: bool, learned: Option<&Path>) -> Result<i32> {
    let file = bundle.join("config.json");
    if file.exists() {
        bail!("{} exists already; remove it first", file.display());
    }
    let mut v = spec::hardened_default(rootless);
    if let Some(dir) = learned {
        stockade::learn::apply_learned(&mut v, dir)?;
    }
    std::fs::write(&file, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("write {}", file.display()))?;
    Ok(0)
}

/// `sandbox`: the flags' spec run in the foreground; a command that cannot run exits 127 or
/// 126 with bwrap's words.
#[inline(never)]
fn sandbox(
    root: PathBuf,
    args: &SandboxArgs,
    (quiet, systemd_cgroup): (bool, bool),
) -> Result<i32> {
    let exe = std::fs::read_link("/proc/self/exe").context("find own binary")?;
    let spec = stockade::sandbox::build(args, &exe)?;
    if args.print_spec {
        println!("{}", serde_json::to_string_pretty(&spec)?);
        return Ok(0);
    }
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("sandbox-{}", std::process::id()));
    let opts = RunOptions {
        root,
        config_file: PathBuf::from("sandbox flags"),
        preserve_fds: 0,
        quiet,
        create: None,
        no_new_keyring: false,
        console_socket: None,
        systemd_cgroup,
        learn_dir: None,
        init: args.init(),
        caller: if args.die_with_parent() {
            Some(container::die_with_caller()?)
        } else {
            None
        },
    };
    match container::run(&id, Path::new("/"), &spec, &opts) {
        // a command that cannot run: the shells' and bwrap's codes and words
        Err(stockade::Error::Child(msg)) if msg.starts_with("exec: ") => {
            let arg0 = spec
                .process()
                .as_ref()
                .and_then(|p| p.args().as_ref()?.first().cloned())
                .unwrap_or_default();
            let (code, why) = if msg.contains("permission denied") {
                (126, "Permission denied")
            } else if msg.contains("not found") || msg.contains("no such file") {
                (127, "No such file or directory")
            } else {
                return Err(stockade::Error::Child(msg).into());
            };
            eprintln!("stockade: execvp {arg0}: {why}");
            Ok(code)
        }
        r => Ok(r?),
    }
}

/// `run` (keep = false: foreground) and `create`/`run -d` (keep = true).
fn create(
    root: &Path,
    c: &CreateArgs,
    (quiet, systemd_cgroup): (bool, bool),
    keep: bool,
    probe: Option<&str>,
    (policy, log): (Option<&stockade::policy::Policy>, &cli::policy::Log),
    learn_dir: Option<&Path>,
) -> Result<i32> {
    if c.no_pivot {
        bail!("--no-pivot is not supported: stockade always uses pivot_root");
    }
    let bundle = std::fs::canonicalize(&c.bundle)
        .with_context(|| format!("bundle {}", c.bundle.display()))?;
    let file = bundle.join("config.json");
    let mut spec = spec::load(&file)?;
    if let Some(how) = probe {
        spec = with_probe(spec, how)?;
    }
    // the policy first: everything below validates and runs what it made of the config
    let mut range = None;
    if let Some(p) = policy {
        (spec, range) = cli::policy::apply_to_create(p, root, &c.id, spec, &file, &bundle, log)?;
    }
    let opts = RunOptions {
        root: root.to_path_buf(),
        config_file: file,
        preserve_fds: c.preserve_fds,
        quiet,
        create: keep.then(|| container::CreateOptions {
            pid_file: c.pid_file.clone(),
        }),
        no_new_keyring: c.no_new_keyring,
        console_socket: c.console_socket.clone(),
        systemd_cgroup,
        learn_dir: learn_dir.map(Path::to_path_buf),
        init: false,
        caller: None,
    };
    let code = container::run(&c.id, &bundle, &spec, &opts);
    if let (Err(_), Some(r)) = (&code, &range) {
        stockade::policy::ids::release(root, r.slot, &c.id);
    }
    Ok(code?)
}

/// The bundle's spec with its process replaced by `stockade probe`, this binary bound in
/// read-only as `sandbox --probe` does.
#[inline(never)]
fn with_probe(spec: oci_spec::runtime::Spec, how: &str) -> Result<oci_spec::runtime::Spec> {
    let mut flags = vec![];
    for w in how.split(',') {
        match w {
            "table" => {}
            "json" => flags.push("--json".to_string()),
            "stress" => flags.push("--stress".to_string()),
            other => bail!("--probe={other}: use table, json or stress (comma-separated)"),
        }
    }
    let args = stockade::probe::command(flags);
    let exe = std::env::current_exe().context("locating the stockade binary")?;
    let mut v = serde_json::to_value(&spec)?;
    v["process"]["args"] = serde_json::json!(args);
    v["process"]["terminal"] = serde_json::json!(false);
    if !v["mounts"].is_array() {
        v["mounts"] = serde_json::json!([]);
    }
    v["mounts"]
        .as_array_mut()
        .unwrap()
        .push(stockade::probe::bind_mount(&exe));
    Ok(serde_json::from_value(v)?)
}

fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("--interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => bail!("--interval {s:?}: use ms, s or m"),
    };
    Ok(std::time::Duration::from_secs_f64(secs.max(0.01)))
}
