//! What documents the command line, all made from `main.rs`'s command table at run time:
//! `stockade completion SHELL` (clap_complete), `stockade man [--dir DIR]` (clap_mangen), and
//! `stockade --version` with what the running kernel offers (worked out only when asked: the
//! other commands never pay for it).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// Write stockade.1 and one page per subcommand (stockade-sandbox.1, stockade-run.1, ...)
    /// into DIR (made if missing) instead of printing stockade(1)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The whole command table, built. `Cmd` is `defer`red (each subcommand's arguments are built
/// only for the one given): `build` makes every one of them, so the pages and the completions
/// have all.
fn command(edit: impl FnOnce(clap::Command) -> clap::Command) -> clap::Command {
    // the default --root depends on who runs `stockade` (the text says so), not on who made the
    // pages
    let mut cmd = edit(crate::Cli::command().mut_arg("root", |a| a.hide_default_value(true)));
    cmd.build();
    cmd
}

/// `stockade completion SHELL`: the completion script on stdout.
#[inline(never)]
pub fn completion(a: &CompletionArgs) -> Result<i32> {
    let mut cmd = command(|c| c);
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "stockade", &mut out);
    Ok(0)
}

/// `stockade man`: stockade(1) on stdout; with `--dir`, every page into that directory.
#[inline(never)]
pub fn man(a: &ManArgs) -> Result<i32> {
    // `help` gets no page of its own
    let cmd = command(|c| c.disable_help_subcommand(true));
    // every page's footer names the program and its version (a subcommand has none of its own)
    let source = format!("stockade {}", env!("CARGO_PKG_VERSION"));
    let page = |c: &clap::Command| clap_mangen::Man::new(c.clone()).source(&source);
    match &a.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            // stockade.1, stockade-sandbox.1, stockade-policy-show.1, ...: the names clap gives
            // the subcommands (`stockade policy show` is stockade-policy-show), as `man` looks up
            let mut todo = vec![&cmd];
            while let Some(c) = todo.pop() {
                todo.extend(c.get_subcommands().filter(|s| !s.is_hide_set()));
                page(c)
                    .generate_to(dir)
                    .with_context(|| format!("write man pages into {}", dir.display()))?;
            }
        }
        None => page(&cmd)
            .render(&mut std::io::stdout().lock())
            .context("write the man page")?,
    }
    Ok(0)
}

/// For `Cli::try_parse().unwrap_or_else(..)`: `-V`/`--version` prints [`version`]; any other
/// error (and `--help`) is clap's own, as `Cli::parse` would have shown it.
pub fn version_or_exit<T>(e: clap::Error) -> T {
    if e.kind() == clap::error::ErrorKind::DisplayVersion {
        print!("{}", version());
        std::process::exit(0);
    }
    e.exit()
}

/// `stockade X.Y.Z (git COMMIT)`, then a line for each kernel feature the runtime builds on.
pub fn version() -> String {
    format!(
        "stockade {} (git {})\nlandlock: {}\ncgroup: {}\nseccomp: {}\nuser namespaces: {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("STOCKADE_GIT_COMMIT"),
        landlock(),
        cgroup_mode(),
        seccomp_actions(),
        user_namespaces(),
    )
}

fn landlock() -> String {
    if let Some(abi) = stockade::landlock::abi() {
        return format!("ABI {abi}");
    }
    // abi() made the query last: its errno says why there is none
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EOPNOTSUPP) => {
            "none (built in, but not enabled: see the lsm= boot option)".into()
        }
        Some(libc::ENOSYS) => "none (the kernel has no Landlock)".into(),
        _ => format!("none ({})", std::io::Error::last_os_error()),
    }
}

/// unified (v2 only), hybrid (v1 with a v2 tree at /sys/fs/cgroup/unified) or legacy (v1 only),
/// from the file system types mounted there (as systemd tells them apart).
fn cgroup_mode() -> String {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, TMPFS_MAGIC};
    match statfs("/sys/fs/cgroup").map(|s| s.filesystem_type()) {
        Ok(CGROUP2_SUPER_MAGIC) => "unified (cgroup v2)".into(),
        Ok(TMPFS_MAGIC) => match statfs("/sys/fs/cgroup/unified").map(|s| s.filesystem_type()) {
            Ok(CGROUP2_SUPER_MAGIC) => {
                "hybrid (cgroup v1, and v2 at /sys/fs/cgroup/unified)".into()
            }
            _ => "legacy (cgroup v1)".into(),
        },
        Ok(t) => format!("unknown (/sys/fs/cgroup is file system type {:#x})", t.0),
        Err(e) => format!("none (/sys/fs/cgroup: {})", e.desc()),
    }
}

fn seccomp_actions() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail") {
        Ok(s) => s.trim().to_string(),
        Err(e) => format!("none (/proc/sys/kernel/seccomp/actions_avail: {e})"),
    }
}

fn user_namespaces() -> String {
    let max = match std::fs::read_to_string("/proc/sys/user/max_user_namespaces") {
        Ok(s) => s.trim().parse::<u64>().unwrap_or(0),
        Err(e) => return format!("no (/proc/sys/user/max_user_namespaces: {e})"),
    };
    if max == 0 {
        return "no (user.max_user_namespaces = 0)".into();
    }
    // Debian's and Ubuntu's switches for users other than root (rootless containers)
    let off = |f: &str, bad: &str| std::fs::read_to_string(f).is_ok_and(|v| v.trim() == bad);
    let unprivileged = if off("/proc/sys/kernel/unprivileged_userns_clone", "0") {
        ", not for unprivileged users: kernel.unprivileged_userns_clone = 0"
    } else if off(
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        "1",
    ) {
        ", restricted for unprivileged users: kernel.apparmor_restrict_unprivileged_userns = 1"
    } else {
        ""
    };
    format!("yes (max {max}{unprivileged})")
}
