//! The arguments of `exec`, `create`/`run` and `update`, turned into what the engine takes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use stockade::spec;

#[derive(clap::Args)]
pub struct ExecArgs {
    /// A process.json with the whole process (what engines pass)
    #[arg(long, short)]
    pub process: Option<PathBuf>,
    /// Allocate a terminal (needs --console-socket)
    #[arg(long, short)]
    pub tty: bool,
    #[arg(long, short)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(long, short)]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(long, short)]
    pub user: Option<String>,
    /// Additional gids
    #[arg(long, short = 'g')]
    pub additional_gids: Vec<u32>,
    /// Add a capability (to all sets)
    #[arg(long = "cap", short = 'c')]
    pub caps: Vec<String>,
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The process for `exec`: the file given, or the container's process with these overrides.
#[inline(never)]
pub fn exec_process(root: &Path, a: &ExecArgs) -> Result<oci_spec::runtime::Process> {
    if let Some(f) = &a.process {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("--process {}", f.display()))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        return serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: {}: {}", f.display(), e.path(), e.inner()));
    }
    if a.command.is_empty() {
        bail!("exec: give a command after the container id, or --process FILE");
    }
    let (_, st) = stockade::lifecycle::load(root, &a.id)?;
    let spec = spec::load(&stockade::state::config_file(root, &st))?;
    let mut p = spec
        .process()
        .clone()
        .context("the container's config.json has no process")?;
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(c) = &a.cwd {
        p.set_cwd(c.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        p.user_mut().set_uid(
            uid.parse()
                .with_context(|| format!("--user {u}: numeric uid[:gid]"))?,
        );
        p.user_mut().set_gid(
            gid.parse()
                .with_context(|| format!("--user {u}: numeric uid[:gid]"))?,
        );
    }
    if !a.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(a.additional_gids.clone()));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !a.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let add: Vec<oci_spec::runtime::Capability> = a
            .caps
            .iter()
            .map(|c| {
                serde_json::from_value(serde_json::json!(stockade::capabilities::cap_name(c)))
                    .with_context(|| format!("--cap {c}: unknown capability"))
            })
            .collect::<Result<_>>()?;
        let with = |set: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.extend(add.iter().copied());
            Some(s)
        };
        let (b, e, pm, i, am) = (
            with(caps.bounding()),
            with(caps.effective()),
            with(caps.permitted()),
            with(caps.inheritable()),
            with(caps.ambient()),
        );
        caps.set_bounding(b)
            .set_effective(e)
            .set_permitted(pm)
            .set_inheritable(i)
            .set_ambient(am);
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Bundle directory (holds config.json)
    #[arg(long, short, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's pid here
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to receive the pty master (process.terminal)
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass descriptors 3..3+N to the container
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Do not use pivot_root (refused: stockade always pivots)
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long)]
    pub no_new_keyring: bool,
    pub id: String,
}

/// runc's `update` flags; `--resources` (a linux.resources JSON file, or - for stdin) first,
/// then the flags on top of it.
#[derive(clap::Args)]
pub struct UpdateArgs {
    pub id: String,
    #[arg(long, short)]
    pub resources: Option<String>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_share: Option<u64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with k/m/g; -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap (bytes, or with k/m/g; -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

#[inline(never)]
pub fn update_resources(u: &UpdateArgs) -> Result<oci_spec::runtime::LinuxResources> {
    let mut v = match u.resources.as_deref() {
        None => serde_json::json!({}),
        Some(src) => {
            let (text, name) = if src == "-" {
                let mut t = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
                (t, "stdin".to_string())
            } else {
                (
                    std::fs::read_to_string(src).with_context(|| format!("--resources {src}"))?,
                    src.to_string(),
                )
            };
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("--resources {name}: not JSON"))?
        }
    };
    if !v.is_object() {
        bail!("--resources: expected a JSON object (linux.resources)");
    }
    let size = |flag: &str, s: &str| -> Result<i64> { Ok(stockade::spec::parse_size(flag, s)?) };
    let mut set = |path: &[&str], val: serde_json::Value| {
        let mut cur = &mut v;
        for k in &path[..path.len() - 1] {
            if !cur[*k].is_object() {
                cur[*k] = serde_json::json!({});
            }
            cur = &mut cur[*k];
        }
        cur[path[path.len() - 1]] = val;
    };
    if let Some(w) = u.blkio_weight {
        set(&["blockIO", "weight"], w.into());
    }
    if let Some(x) = u.cpu_period {
        set(&["cpu", "period"], x.into());
    }
    if let Some(x) = u.cpu_quota {
        set(&["cpu", "quota"], x.into());
    }
    if let Some(x) = u.cpu_share {
        set(&["cpu", "shares"], x.into());
    }
    if let Some(x) = u.cpu_rt_period {
        set(&["cpu", "realtimePeriod"], x.into());
    }
    if let Some(x) = u.cpu_rt_runtime {
        set(&["cpu", "realtimeRuntime"], x.into());
    }
    if let Some(x) = &u.cpuset_cpus {
        set(&["cpu", "cpus"], x.clone().into());
    }
    if let Some(x) = &u.cpuset_mems {
        set(&["cpu", "mems"], x.clone().into());
    }
    if let Some(x) = &u.memory {
        set(&["memory", "limit"], size("--memory", x)?.into());
    }
    if let Some(x) = &u.memory_reservation {
        set(
            &["memory", "reservation"],
            size("--memory-reservation", x)?.into(),
        );
    }
    if let Some(x) = &u.memory_swap {
        set(&["memory", "swap"], size("--memory-swap", x)?.into());
    }
    if let Some(x) = u.pids_limit {
        set(&["pids", "limit"], x.into());
    }
    if v.as_object().is_some_and(|o| o.is_empty()) {
        bail!("update: nothing to change (give --resources or a flag such as --memory)");
    }
    let r: oci_spec::runtime::LinuxResources = serde_path_to_error::deserialize(&v)
        .map_err(|e| anyhow::anyhow!("update: resources: {}: {}", e.path(), e.inner()))?;
    Ok(r)
}
