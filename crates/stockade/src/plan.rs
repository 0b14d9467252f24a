//! The plan: a spec and the front end's choices ([`RunOptions`]) become one typed [`Plan`],
//! made once before anything is created. Everything in a config that can be refused is refused
//! here: the spec is checked against what each subsystem accepts ([`validate`]: mount
//! destinations and options, id maps, sysctls, resources, Landlock), every error naming the file
//! and the JSON field; the namespaces to make and join, the network, the learning run, the
//! cgroup and the host ids are decided once, and each subsystem's part of the spec is read into
//! its own plan (namespaces, rootfs, seccomp, hooks, net, netdev, learning). The engine
//! ([`crate::container`]) reads the plan, never the spec: the spec is private here, read only
//! for the process ([`Plan::process`]).

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::cgroups::{Cgroup, Layout};
use crate::error::{config_err, Error, Result};
use crate::spec::{rootfs_path, tmpfs_root};

/// How the runtime was asked to run the container.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub root: PathBuf,
    /// File named in configuration errors (the bundle's config.json, or "sandbox flags").
    pub config_file: PathBuf,
    /// Descriptors 3..3+N passed through to the container.
    pub preserve_fds: u32,
    /// Print nothing but errors.
    pub quiet: bool,
    /// `create`: leave the container blocked before `execve` until `start`; None: run it now.
    pub create: Option<CreateOptions>,
    /// Do not give the container a fresh session keyring (runc's `--no-new-keyring`).
    pub no_new_keyring: bool,
    /// Where to send the pty master when process.terminal is set.
    pub console_socket: Option<PathBuf>,
    /// The systemd cgroup driver (`--systemd-cgroup`): a transient unit per container.
    pub systemd_cgroup: bool,
    /// `--learn-dir`: learn every container, writing DIR/ID at delete (see `learn::engine`).
    pub learn_dir: Option<PathBuf>,
    /// PID 1 is stockade's init, the process its child (see [`crate::init`]): `sandbox`'s
    /// default; `run` of a bundle follows the config (engines add their own).
    pub init: bool,
    /// The caller's pid when the container ends with it (`sandbox --die-with-parent`, see
    /// [`crate::container::die_with_caller`]).
    pub caller: Option<i32>,
}

/// What `create` (and `run --detach`) add.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub pid_file: Option<PathBuf>,
}

/// One container's run, decided: what the engine's two halves read.
pub struct Plan<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    /// The spec as it runs (the caller's, or with the learning run's filter): read by
    /// [`Plan::process`] only; every subsystem's part of it is read into its plan below.
    spec: Cow<'a, Spec>,
    /// What the container's state records.
    pub record: Record,
    pub ns: crate::namespaces::Plan,
    pub net: Option<crate::net::Plan>,
    /// `linux.netDevices`: the interfaces to move in, checked against the host.
    pub netdev: Option<crate::net::netdev::Plan>,
    pub learning: Option<crate::learn::engine::Plan>,
    /// The profile's calls outside it go to stockade's complain/enforce agent (see `agent`),
    /// which the container's listener reaches as soon as the filter is loaded.
    pub agent_ours: bool,
    /// An unprivileged runtime: no cgroups, the child prepares its own trees.
    pub rootless: bool,
    /// The host's cgroup hierarchies (None unprivileged).
    pub layout: Option<Layout>,
    /// The container's cgroup, located (made only later).
    pub cgroup: Option<Cgroup>,
    /// `linux.uidMappings`/`gidMappings`, read once.
    pub uid_maps: Vec<LinuxIdMapping>,
    pub gid_maps: Vec<LinuxIdMapping>,
    /// `hooks`, with what their state JSON says.
    pub hooks: crate::hooks::Plan,
    /// The filesystem: root, mounts, devices, masks.
    pub rootfs: crate::rootfs::Plan,
    /// The seccomp filter to compile (or take cached), and its agent's mode.
    pub seccomp: crate::seccomp::Plan,
    /// `linux.resources`: the cgroup's limits.
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    /// The Landlock ruleset of the annotations.
    pub landlock: Option<crate::landlock::Config>,
    /// `linux.memoryPolicy`: set before `execve`.
    pub memory_policy: Option<oci_spec::runtime::LinuxMemoryPolicy>,
}

/// What the container's state directory records of its config.
pub struct Record {
    /// The config's annotations (the state's, and its hooks').
    pub annotations: std::collections::HashMap<String, String>,
    /// The policy's id slot (its host id range), given back at the end.
    pub id_slot: Option<u32>,
    /// The config as enforced, when it is not the bundle's file (the policy changed it, or a
    /// front end made it): `exec`, hooks, `delete` and `policy explain` read it.
    pub effective_config: Option<Vec<u8>>,
}

impl<'a> Plan<'a> {
    /// Validate, decide, warn once about what is accepted but not applied.
    pub fn make(id: &'a str, bundle: &'a Path, spec: &'a Spec, o: &RunOptions) -> Result<Plan<'a>> {
        crate::state::check_id(id)?;
        // a profile found compiled in the cache was checked when it was compiled
        let cached = crate::seccomp::cached(spec, &o.root);
        let Checked { root, landlock } = check(spec, bundle, &o.config_file, cached.is_none())?;
        // complain/enforce (see `agent`): checked before anything is created
        let watch = crate::seccomp::watch(spec, &o.config_file, true)?;
        let ns = crate::namespaces::Plan::from_spec(spec);
        let (uid_maps, gid_maps) = crate::namespaces::id_maps(spec);
        let joined_user = spec.linux().as_ref().and_then(|l| {
            l.namespaces().iter().flatten().find_map(|n| {
                (n.typ() == LinuxNamespaceType::User)
                    .then(|| n.path().clone())
                    .flatten()
            })
        });
        if let Some(p) = joined_user.filter(|_| !uid_maps.is_empty() || !gid_maps.is_empty()) {
            crate::namespaces::check_joined_maps(&p, &uid_maps, &gid_maps, &o.config_file)?;
        }
        let net = crate::net::Plan::from_spec(spec, &o.config_file)?;
        // a bridge or a CNI network names the container's end eth0
        let eth0 = net
            .as_ref()
            .is_some_and(|n| n.mode != crate::net::Mode::Pasta);
        let netdev = crate::net::netdev::Plan::from_spec(spec, &o.config_file, eth0)?;
        // learning (org.stockade.learn, --learn-dir): the spec with the learning filter
        let (learning, learning_spec) = crate::learn::engine::prepare(
            spec,
            (&o.root, id),
            (o.learn_dir.as_deref(), &o.config_file),
            o.quiet,
        )?;
        let cached = cached.filter(|_| learning_spec.is_none());
        let spec = learning_spec.map_or(Cow::Borrowed(spec), Cow::Owned);
        let process = spec.process().as_ref().expect("validated");
        if !o.quiet {
            for w in accepted_not_applied(&spec) {
                crate::diag::warn(&w);
            }
        }
        crate::capabilities::check_obtainable(
            process.capabilities().as_ref(),
            ns.new_user,
            &o.config_file,
        )?;
        // In the foreground the runtime relays the pty itself (runc's `run`); a container that
        // outlives the runtime needs someone to hand the pty to.
        if process.terminal() == Some(true) && o.console_socket.is_none() && o.create.is_some() {
            return Err(config_err(&o.config_file, "process.terminal", "a detached container's terminal needs --console-socket (or run it in the foreground, or set terminal to false)"));
        }
        let rootless = !nix::unistd::geteuid().is_root();
        let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
        let unit = crate::cgroups::systemd_unit(
            cgroups_path.as_deref(),
            id,
            o.systemd_cgroup,
            rootless,
            &o.config_file,
        )?;
        let layout = (!rootless).then(Layout::detect).transpose()?;
        let cgroup = layout
            .as_ref()
            .map(|l| Cgroup::plan(l, cgroups_path.as_deref(), id, unit));
        let hooks = crate::hooks::Plan::from_spec(&spec, id, bundle);
        let rootfs = crate::rootfs::Plan::from_spec(&spec, bundle, root.unwrap_or_default());
        let seccomp = crate::seccomp::Plan {
            cached,
            ..crate::seccomp::Plan::from_spec(&spec, &o.config_file)?
        };
        let effective =
            crate::spec::policy_changed(&spec) || !o.config_file.ends_with("config.json");
        let record = Record {
            annotations: crate::spec::config_annotations(&spec),
            id_slot: crate::idpool::slot_of(&spec),
            effective_config: effective
                .then(|| serde_json::to_vec(&*spec).map_err(|e| Error::Other(e.to_string())))
                .transpose()?,
        };
        let linux = spec.linux().as_ref();
        let resources = linux.and_then(|l| l.resources().clone());
        let memory_policy = linux.and_then(|l| l.memory_policy().clone());
        Ok(Plan {
            id,
            bundle,
            spec,
            ns,
            net,
            agent_ours: watch.is_some() || learning.is_some(),
            netdev,
            learning,
            rootless,
            layout,
            cgroup,
            uid_maps,
            gid_maps,
            hooks,
            rootfs,
            seccomp,
            record,
            resources,
            landlock,
            memory_policy,
        })
    }

    /// The container runs in a user namespace other than the runtime's (made, or joined by
    /// path): devices are bound, not made.
    pub fn in_user_ns(&self) -> bool {
        self.ns.new_user
            || self.rootless
            || self
                .ns
                .join
                .iter()
                .any(|(t, _)| *t == LinuxNamespaceType::User)
    }

    pub fn process(&self) -> &oci_spec::runtime::Process {
        self.spec.process().as_ref().expect("validated")
    }

    /// The process's user as host ids (the owner of what it must open before its `execve`,
    /// the exec fifo).
    pub fn user_on_host(&self) -> (Option<u32>, Option<u32>) {
        let u = self.process().user();
        // (a user namespace joined by path with its maps given, as a Kubernetes pod's: checked
        // equal to the namespace's own when planned)
        if self.ns.new_user || (self.in_user_ns() && !self.uid_maps.is_empty()) {
            (
                crate::namespaces::to_host(&self.uid_maps, u.uid()),
                crate::namespaces::to_host(&self.gid_maps, u.gid()),
            )
        } else {
            (Some(u.uid()), Some(u.gid()))
        }
    }

    /// The child's side of the network hand-off: does the runtime wait for its network
    /// namespace (then the child sends "N" once the namespace exists: to set up stockade's
    /// network, or to move `linux.netDevices` into a namespace made for it), and with an
    /// rtnetlink socket inside it (a bridge)?
    pub fn net_handoff(&self) -> Option<bool> {
        match &self.net {
            Some(n) => Some(n.mode == crate::net::Mode::Bridge),
            None => (self.netdev.as_ref())
                .is_some_and(|d| matches!(d.target, crate::net::netdev::Target::New))
                .then_some(false),
        }
    }

    /// Bind more mounts (the network's `/etc/hosts` and `/etc/resolv.conf`, files in the
    /// state directory made once it exists).
    pub fn add_mounts(&mut self, more: Vec<oci_spec::runtime::Mount>) {
        let bundle = self.bundle;
        (self.rootfs.mounts).extend(
            more.into_iter()
                .map(|m| crate::rootfs::Entry::new(m, bundle)),
        );
    }
}

/// What the config asks for that runc accepts and does not do, said once: kernel memory
/// limits, ambient capabilities the kernel will not raise.
fn accepted_not_applied(spec: &Spec) -> Vec<String> {
    let mut out = vec![];
    if let Some(m) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
    {
        #[allow(deprecated)]
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            out.push("linux.resources.memory.kernel/kernelTCP are NOT RECOMMENDED by runtime-spec: kernel is ignored (kernels >= 6.x enforce no kernel memory limit), kernelTCP is applied on cgroup v1 only".to_string());
        }
    }
    let process = spec.process().as_ref().expect("validated");
    let unraisable = crate::capabilities::unraisable_ambient(process.capabilities().as_ref());
    if !unraisable.is_empty() {
        out.push(format!(
            "process.capabilities.ambient: {} not also permitted and inheritable, so not raised (runc does the same)",
            unraisable.join(", ")
        ));
    }
    out
}

/// Everything that can be checked before touching the system. `file` is what errors name.
pub fn validate(spec: &Spec, bundle: &Path, file: &Path) -> Result<()> {
    check(spec, bundle, file, true).map(|_| ())
}

/// What checking a config yields besides its verdict.
struct Checked {
    /// `root.path` resolved against the bundle (None for a tmpfs root).
    root: Option<PathBuf>,
    /// The Landlock ruleset of the annotations.
    landlock: Option<crate::landlock::Config>,
}

/// [`validate`], the seccomp profile's check left out unless `seccomp`.
fn check(spec: &Spec, bundle: &Path, file: &Path, seccomp: bool) -> Result<Checked> {
    let major = spec.version().split('.').next().unwrap_or("");
    if major != "1" {
        return Err(config_err(
            file,
            "ociVersion",
            format!(
                "unsupported version {:?} (stockade implements runtime-spec 1.x)",
                spec.version()
            ),
        ));
    }
    let root = (!tmpfs_root(spec)).then(|| rootfs_path(spec, bundle));
    if let Some(root) = &root {
        if !root.is_dir() {
            return Err(config_err(
                file,
                "root.path",
                format!(
                    "rootfs {} does not exist or is not a directory",
                    root.display()
                ),
            ));
        }
    }
    check_process(spec, file)?;
    let landlock = crate::landlock::Config::from_annotations(spec.annotations().as_ref())
        .map_err(|(field, msg)| config_err(file, field, msg))?;
    check_mounts(spec, root.as_deref(), file)?;
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(Checked { root, landlock });
    };
    let seen = check_namespaces(linux, file)?;
    check_linux(linux, &seen, file)?;
    if seccomp {
        check_seccomp(linux, file)?;
    }
    check_since_1_2(spec, linux, file)?;
    Ok(Checked { root, landlock })
}

/// runtime-spec 1.2.1 and 1.3 (`process.execCPUAffinity`, `linux.memoryPolicy`,
/// `linux.intelRdt`; `linux.netDevices` is checked against the host by its plan in
/// [`Plan::make`]), and the LSM labels this host cannot apply: refused by field, as runc refuses
/// them, rather than silently ignored.
fn check_since_1_2(spec: &Spec, linux: &oci_spec::runtime::Linux, file: &Path) -> Result<()> {
    if let Some(a) = spec
        .process()
        .as_ref()
        .and_then(|p| p.exec_cpu_affinity().as_ref())
    {
        for (k, v) in [("initial", a.initial()), ("final", a.cpu_affinity_final())] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                crate::process::parse_id_list(v)
                    .map_err(|m| config_err(file, format!("process.execCPUAffinity.{k}"), m))?;
            }
        }
    }
    if let Some(m) = linux.memory_policy() {
        crate::process::mempolicy_args(m)
            .map_err(|msg| config_err(file, "linux.memoryPolicy", msg))?;
    }
    if linux.intel_rdt().is_some() {
        let why = if Path::new("/sys/fs/resctrl/info").exists() {
            "stockade does not apply Intel RDT (resctrl) settings"
        } else {
            "this host has no resctrl filesystem (Intel RDT / AMD QoS) mounted at /sys/fs/resctrl"
        };
        return Err(config_err(
            file,
            "linux.intelRdt",
            format!("{why}: remove it"),
        ));
    }
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    if let Some(l) = linux
        .mount_label()
        .as_deref()
        .filter(|l| !l.is_empty() && !selinux)
    {
        return Err(config_err(
            file,
            "linux.mountLabel",
            format!("{l:?}: SELinux is not enabled on this host"),
        ));
    }
    if let Some(p) = spec.process() {
        if let Some(l) = p
            .selinux_label()
            .as_deref()
            .filter(|l| !l.is_empty() && !selinux)
        {
            return Err(config_err(
                file,
                "process.selinuxLabel",
                format!("{l:?}: SELinux is not enabled on this host"),
            ));
        }
        let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.trim() == "Y");
        if let Some(l) = p
            .apparmor_profile()
            .as_deref()
            .filter(|l| !l.is_empty() && !apparmor)
        {
            return Err(config_err(
                file,
                "process.apparmorProfile",
                format!("{l:?}: AppArmor is not enabled on this host"),
            ));
        }
    }
    Ok(())
}

/// `process`: present, with a program, an absolute cwd.
fn check_process(spec: &Spec, file: &Path) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| config_err(file, "process", "missing"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(config_err(
            file,
            "process.args",
            "must name the program to run",
        ));
    }
    if !process.cwd().is_absolute() {
        return Err(config_err(file, "process.cwd", "must be an absolute path"));
    }
    Ok(())
}

/// `mounts`: absolute destinations that stay inside the rootfs, no empty option.
fn check_mounts(spec: &Spec, root: Option<&Path>, file: &Path) -> Result<()> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(config_err(
                file,
                format!("mounts[{i}].destination"),
                format!("{} is not absolute", m.destination().display()),
            ));
        }
        if let Some(root) = root {
            if let Some(msg) = crate::rootfs::escapes(root, m.destination()) {
                return Err(config_err(file, format!("mounts[{i}].destination"), msg));
            }
        }
        for opt in m.options().iter().flatten() {
            if crate::rootfs::parse_option(opt).is_none() {
                // Unknown options are passed to the filesystem as data (like runc); flag obvious typos.
                if opt.is_empty() {
                    return Err(config_err(
                        file,
                        format!("mounts[{i}].options"),
                        "empty option",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `linux.namespaces` (each once; a path that exists) and the id maps a user namespace needs.
/// Returns the types listed.
fn check_namespaces(
    linux: &oci_spec::runtime::Linux,
    file: &Path,
) -> Result<HashSet<LinuxNamespaceType>> {
    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(config_err(
                file,
                format!("linux.namespaces[{i}]"),
                format!("namespace {:?} listed twice", ns.typ()),
            ));
        }
        if let Some(p) = ns.path() {
            if !p.exists() {
                return Err(config_err(
                    file,
                    format!("linux.namespaces[{i}].path"),
                    format!("{} does not exist", p.display()),
                ));
            }
        }
    }
    let new_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    for (field, maps) in [
        ("uidMappings", linux.uid_mappings()),
        ("gidMappings", linux.gid_mappings()),
    ] {
        let maps = maps.as_deref().unwrap_or(&[]);
        if new_userns && maps.is_empty() {
            return Err(config_err(
                file,
                format!("linux.{field}"),
                "a new user namespace needs id mappings",
            ));
        }
        if !new_userns && !maps.is_empty() && !seen.contains(&LinuxNamespaceType::User) {
            return Err(config_err(
                file,
                format!("linux.{field}"),
                "id mappings given without a user namespace",
            ));
        }
        crate::namespaces::check_id_maps(maps)
            .map_err(|m| config_err(file, format!("linux.{field}"), m))?;
    }
    Ok(seen)
}

/// The rest of `linux`: sysctls (by the namespaces listed), resources, cgroupsPath, rootfs
/// propagation.
fn check_linux(
    linux: &oci_spec::runtime::Linux,
    seen: &HashSet<LinuxNamespaceType>,
    file: &Path,
) -> Result<()> {
    if let Some(sysctl) = linux.sysctl() {
        let netns = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Network);
        let ipcns = seen.contains(&LinuxNamespaceType::Ipc);
        let utsns = seen.contains(&LinuxNamespaceType::Uts);
        for key in sysctl.keys() {
            if let Err(m) = crate::namespaces::check_sysctl(key, netns, ipcns, utsns) {
                return Err(config_err(file, format!("linux.sysctl.{key}"), m));
            }
        }
    }
    if let Some(res) = linux.resources() {
        crate::cgroups::validate(res)
            .map_err(|(f, m)| config_err(file, format!("linux.resources.{f}"), m))?;
    }
    if let Some(cg) = linux.cgroups_path() {
        if cg
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(config_err(
                file,
                "linux.cgroupsPath",
                "must not contain '..'",
            ));
        }
    }
    if let Some(prop) = linux.rootfs_propagation() {
        if crate::rootfs::propagation_flag(prop).is_none() {
            return Err(config_err(
                file,
                "linux.rootfsPropagation",
                format!("unknown propagation {prop:?}"),
            ));
        }
    }
    Ok(())
}

/// `linux.seccomp`: a profile the compiler takes, errors naming the field.
fn check_seccomp(linux: &oci_spec::runtime::Linux, file: &Path) -> Result<()> {
    if let Some(seccomp) = linux.seccomp() {
        let v = serde_json::to_value(seccomp).map_err(|e| Error::Other(e.to_string()))?;
        stockade_seccomp::Profile::from_value(&v).map_err(|e| {
            config_err(
                file,
                format!("linux.seccomp{}", e.path_suffix()),
                e.to_string(),
            )
        })?;
    }
    Ok(())
}
