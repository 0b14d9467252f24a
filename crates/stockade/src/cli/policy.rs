//! `--policy` at the binary's edge: `policy show`, `policy check CONFIG`, and the policy applied
//! to `create`/`run` configs and `exec` processes, each change logged as a warning (stderr and
//! `--log`, where engines read runtime messages).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use stockade::policy::{self, ids, Policy, Unmappable};

#[derive(clap::Subcommand)]
pub enum PolicyCmd {
    /// Print the effective policy, each value with its origin (built-in or the file)
    Show,
    /// Print what the policy would change in (or refuse of) a config.json; runs nothing
    Check {
        /// config.json, or a bundle directory
        config: PathBuf,
    },
    /// What the policy changed in a container's config, rule by rule (from the config it runs
    /// with, kept in its state directory)
    Explain { id: String },
}

/// Where the policy's warnings go: [`stockade::diag::warn`] (the log under an engine, stderr
/// on a terminal).
pub struct Log;

impl Log {
    pub fn warn(&self, msg: &str) {
        stockade::diag::warn(msg);
    }
}

#[inline(never)]
pub fn policy_cmd(flag: Option<&str>, root: &Path, c: PolicyCmd) -> Result<i32> {
    if let PolicyCmd::Explain { id } = &c {
        return explain(root, id);
    }
    let p = policy::load(flag)?;
    match c {
        PolicyCmd::Explain { .. } => unreachable!("handled above"),
        PolicyCmd::Show => {
            match p {
                None => println!("{{\"policy\": \"none\"}}"),
                Some(p) => println!("{}", serde_json::to_string_pretty(&p.show())?),
            }
            Ok(0)
        }
        PolicyCmd::Check { config } => {
            let file = if config.is_dir() {
                config.join("config.json")
            } else {
                config
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            let mut v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", file.display()))?;
            let caps = serde_json::from_value::<oci_spec::runtime::LinuxCapabilities>(
                v["process"]["capabilities"].clone(),
            )
            .ok();
            let unraisable = stockade::capabilities::unraisable_ambient(caps.as_ref());
            if !unraisable.is_empty() {
                println!(
                    "note   {:<20} process.capabilities.ambient: {} not also permitted and inheritable: not raised (warned at create, as runc does)",
                    "ambient",
                    unraisable.join(", ")
                );
            }
            let Some(p) = p else {
                println!("policy none: nothing is changed");
                return Ok(0);
            };
            match policy::apply(&p, &mut v, &file) {
                Err(e) => {
                    println!("refused: {e}");
                    Ok(1)
                }
                Ok(out) => {
                    for c in &out.changes {
                        println!("raise  {:<20} {}: {}", c.rule, c.field, c.what);
                    }
                    if out.add_user_ns {
                        println!("raise  {:<20} linux.namespaces: a user namespace with a host id range of its own (allocated at create)", "userNamespace");
                    }
                    if let Some(of) = &out.join_user_of {
                        println!("raise  {:<20} linux.namespaces: joins the user namespace that owns {of} (a pod's: its pause container's), with its maps (found at create)", "userNamespace");
                    }
                    if out.changes.is_empty() && !out.add_user_ns && out.join_user_of.is_none() {
                        println!("meets the policy: nothing to change");
                    }
                    Ok(0)
                }
            }
        }
    }
}

/// `policy explain ID`: the records the policy left in the effective config, one rule a line.
fn explain(root: &Path, id: &str) -> Result<i32> {
    let (_, st) = stockade::lifecycle::load(root, id)?;
    let file = stockade::state::config_file(root, &st);
    let spec = stockade::spec::load(&file)?;
    let mut records: Vec<(String, String)> = spec
        .annotations()
        .iter()
        .flatten()
        .filter_map(|(k, v)| {
            Some((
                k.strip_prefix(policy::ANNOTATION_PREFIX)?.to_string(),
                v.clone(),
            ))
        })
        .collect();
    records.sort();
    if records.is_empty() {
        println!(
            "{id}: the policy changed nothing (config {})",
            file.display()
        );
    }
    for (rule, what) in records {
        println!("{rule:<20} {what}");
    }
    Ok(0)
}

/// The filesystems that take idmapped mounts (and overlayfs, rebuilt from idmapped layers).
fn rootfs_mappable(root: &Path) -> std::result::Result<(), String> {
    let st =
        nix::sys::statfs::statfs(root).map_err(|e| format!("statfs {}: {e}", root.display()))?;
    let magic = st.filesystem_type().0 as u64;
    const OK: &[(u64, &str)] = &[
        (0xEF53, "ext4"),
        (0x5846_5342, "xfs"),
        (0x9123_683E, "btrfs"),
        (0x0102_1994, "tmpfs"),
        (0xF2F5_2010, "f2fs"),
        (stockade::rootfs::overlay::OVERLAYFS_MAGIC as u64, "overlay"),
        (0xE0F5_E1E2, "erofs"),
    ];
    if OK.iter().any(|(m, _)| *m == magic) {
        Ok(())
    } else {
        Err(format!(
            "rootfs {} is on a filesystem (magic {magic:#x}) that takes no idmapped mount",
            root.display()
        ))
    }
}

/// Apply the policy to a `create`/`run` config: returns the spec to run and the id slot taken
/// (the caller releases it if the create fails).
pub fn apply_to_create(
    p: &Policy,
    root: &Path,
    id: &str,
    mut spec: oci_spec::runtime::Spec,
    file: &Path,
    bundle: &Path,
    log: &Log,
) -> Result<(oci_spec::runtime::Spec, Option<ids::Range>)> {
    // The seccomp profile (an engine's is hundreds of rules) stays out of the JSON round trip:
    // the rules only ask whether there is one, which a placeholder answers.
    let profile = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.seccomp_mut().take());
    let mut v = serde_json::to_value(&spec)?;
    if profile.is_some() {
        v["linux"]["seccomp"] = serde_json::json!({});
    }
    let out = policy::apply(p, &mut v, file)?;
    if profile.is_some() {
        v["linux"]["seccomp"] = serde_json::Value::Null;
    }
    for c in &out.changes {
        log.warn(&format!("policy {}: {}: {}", c.rule, c.field, c.what));
    }
    let mut range = None;
    if let Some(of) = &out.join_user_of {
        join_pod_user_ns(&mut v, of, log)?;
    }
    if out.add_user_ns {
        let rootfs = stockade::spec::rootfs_path(&spec, bundle);
        let mappable = if stockade::spec::tmpfs_root(&spec) {
            Ok(())
        } else {
            rootfs_mappable(&rootfs)
        };
        match (mappable, p.rules.unmappable_rootfs) {
            (Err(why), Some(Unmappable::Refuse)) => {
                return Err(stockade::error::config_err(
                    file,
                    "root.path",
                    format!("refused by policy rule unmappableRootfs: {why}, so no user namespace can be added"),
                )
                .into())
            }
            (Err(why), _) => log.warn(&format!(
                "policy userNamespace: {why}: running WITHOUT an added user namespace (unmappableRootfs: run-without)"
            )),
            (Ok(()), _) => {
                stockade::state::check_id(id)?;
                let pool = p.rules.id_pool.clone().unwrap_or_else(ids::Pool::from_subuid);
                let r = ids::allocate(root, &pool, id)?;
                stockade::diag::mark("id range taken");
                policy::set_id_maps(&mut v, &r);
                if let Some(n) = v["annotations"]["org.stockade.policy.sysctl"].as_str() {
                    log.warn(&format!("policy userNamespace: {n}"));
                }
                log.warn(&format!(
                    "policy userNamespace: linux.namespaces: added a user namespace, container root = host uid {} ({} ids)",
                    r.start, r.size
                ));
                range = Some(r);
            }
        }
    }
    let mut spec: oci_spec::runtime::Spec = serde_json::from_value(v).map_err(|e| {
        if let Some(r) = &range {
            ids::release(root, r.slot, id);
        }
        anyhow::anyhow!("{}: after the policy: {e}", file.display())
    })?;
    if let (Some(prof), Some(l)) = (profile, spec.linux_mut().as_mut()) {
        l.set_seccomp(Some(prof));
    }
    Ok((spec, range))
}

/// A pod's container under `userNamespace: auto`: the user namespace owning the joined
/// namespace `of`, if not the host's, is joined (kept open for the runtime's life at
/// /proc/self/fd/N, which the runtime and its child resolve), with its maps.
fn join_pod_user_ns(v: &mut serde_json::Value, of: &str, log: &Log) -> Result<()> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::File::open(of).map_err(|e| anyhow::anyhow!("open {of}: {e}"))?;
    let owner = stockade::sys::ns_get_userns(&ns)
        .map_err(|e| anyhow::anyhow!("the user namespace owning {of} (NS_GET_USERNS): {e}"))?;
    let host = std::fs::metadata("/proc/self/ns/user")?;
    let own = std::fs::File::from(owner);
    let md = own.metadata()?;
    if (md.dev(), md.ino()) == (host.dev(), host.ino()) {
        log.warn(&format!(
            "policy userNamespace: linux.namespaces: NOT added: the pod's namespace {of} belongs to the host's user namespace (its pause container runs without one)"
        ));
        return Ok(());
    }
    let path = format!("/proc/self/fd/{}", own.as_raw_fd());
    let maps = stockade::namespaces::maps_of_userns(std::path::Path::new(&path))?;
    policy::set_joined_user_ns(v, &path, &maps, of);
    log.warn(&format!(
        "policy userNamespace: linux.namespaces: joined the user namespace that owns {of} (the pod's)"
    ));
    // the runtime's own descriptor, for its life: the plan and the child resolve the path
    let _ = own.into_raw_fd();
    Ok(())
}

/// The policy's ceiling and no_new_privs for an `exec` process.
pub fn apply_to_exec(
    p: &Policy,
    process: oci_spec::runtime::Process,
    log: &Log,
) -> Result<oci_spec::runtime::Process> {
    let mut v = serde_json::to_value(&process)?;
    for c in policy::apply_exec(p, &mut v, Path::new("exec process"))? {
        log.warn(&format!("policy {}: {}: {}", c.rule, c.field, c.what));
    }
    Ok(serde_json::from_value(v)?)
}
