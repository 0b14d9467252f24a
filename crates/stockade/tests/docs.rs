//! What documents the command line, as a user and a packager meet it: `stockade completion`,
//! `stockade man`, `--version`, `sandbox --help`'s order, and install.sh.
//!
//! Needs bash, and man-db and groff-base for `man -l` (Debian packages of those names).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stockade")
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "stockade {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(run(args).stdout).unwrap()
}

#[test]
fn bash_completion_registers_and_knows_the_subcommands_arguments() {
    let script = stdout(&["completion", "bash"]);
    assert!(script.contains("_stockade()"), "{script}");
    assert!(script.contains("sandbox"), "{script}");
    // `sandbox` is deferred in the command table: its arguments are there only if it was built
    assert!(script.contains("--ro-bind"), "{script}");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <('{}' completion bash) && complete -p stockade",
            bin()
        ))
        .output()
        .expect("bash");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && said.contains("-F _stockade")
            && said.trim_end().ends_with(" stockade"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shell in ["zsh", "fish"] {
        let script = stdout(&["completion", shell]);
        assert!(script.contains("ro-bind"), "{shell}: {script}");
    }
    let out = Command::new(bin())
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// A roff page: requests (`.ie`/`.el`, the apostrophe string clap_mangen defines) until `.TH`,
/// then NAME.
fn assert_roff(page: &str, title: &str) {
    let th = page
        .lines()
        .position(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no .TH:\n{page}"));
    assert!(
        page.lines().take(th).all(|l| l.starts_with('.')),
        "text before .TH:\n{page}"
    );
    let th_line = page.lines().nth(th).unwrap();
    assert!(th_line.starts_with(&format!(".TH {title} 1 ")), "{th_line}");
    assert!(page.contains("\n.SH NAME\n"), "{page}");
}

#[test]
fn man_prints_stockade_1() {
    let page = stdout(&["man"]);
    assert_roff(&page, "stockade");
    // the subcommands, each a page of its own
    assert!(page.contains("stockade\\-sandbox(1)"), "{page}");
}

/// `man -l PAGE` as text (no pager, no terminal: man-db leaves out the bold and underlining).
fn render(page: &Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C")
        .output()
        .expect("man (Debian: apt-get install man-db groff-base)");
    assert!(
        out.status.success(),
        "man -l {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn man_dir_writes_a_page_per_subcommand_that_man_renders() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("man1"); // made by `man --dir`
    run(&["man", "--dir", dir.to_str().unwrap()]);
    for name in [
        "stockade",
        "stockade-sandbox",
        "stockade-run",
        "stockade-exec",
        "stockade-policy-show",
        "stockade-seccomp-compile",
    ] {
        let page = std::fs::read_to_string(dir.join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert_roff(&page, name);
    }
    assert!(!dir.join("stockade-help.1").exists());
    let sandbox = std::fs::read_to_string(dir.join("stockade-sandbox.1")).unwrap();
    // roff's hyphens are escaped: this is --ro-bind
    assert!(sandbox.contains("\\-\\-ro\\-bind"), "{sandbox}");
    let text = render(&dir.join("stockade-sandbox.1"));
    assert!(text.contains("--ro-bind <SRC[:DST]>"), "{text}");
    let own = text.find("\nOPTIONS\n").expect(&text);
    let global = text.find("\nGLOBAL OPTIONS\n").expect(&text);
    let ro_bind = text[own..].find("--ro-bind").unwrap() + own;
    let root = text[own..].find("--root <ROOT>").unwrap() + own;
    assert!(ro_bind < global && global < root, "{text}");
    // the environment variables, not their values where the pages were made
    assert!(
        text.contains("STOCKADE_POLICY environment variable"),
        "{text}"
    );
    // the default --root is the reader's, not the one of whoever made the pages
    assert!(!text.contains("[default: /run/stockade]"), "{text}");
}

#[test]
fn version_names_the_commit_and_what_the_kernel_offers() {
    for flag in ["--version", "-V"] {
        let v = stdout(&[flag]);
        let mut lines = v.lines();
        let first = lines.next().unwrap();
        let prefix = format!("stockade {} (git ", env!("CARGO_PKG_VERSION"));
        let commit = first
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{first}"));
        // a checkout's commit (others may have committed since the build: any commit will do)
        let manifest = env!("CARGO_MANIFEST_DIR");
        let in_git = Command::new("git")
            .args(["-C", manifest, "ls-files", "--error-unmatch", "build.rs"])
            .output()
            .is_ok_and(|o| o.status.success());
        if in_git {
            assert!(
                commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
                "{first}"
            );
            let known = Command::new("git")
                .args(["-C", manifest, "cat-file", "-e"])
                .arg(format!("{commit}^{{commit}}"))
                .status()
                .unwrap();
            assert!(known.success(), "{first}: no such commit");
        } else {
            assert_eq!(commit, "unknown");
        }
        let rest: Vec<&str> = lines.collect();
        let labels = ["landlock: ", "cgroup: ", "seccomp: ", "user namespaces: "];
        assert_eq!(rest.len(), labels.len(), "{v}");
        for (line, label) in rest.iter().zip(labels) {
            assert!(line.starts_with(label) && line.len() > label.len(), "{v}");
        }
        if Path::new("/proc/sys/kernel/seccomp/actions_avail").exists() {
            assert!(
                rest[2].contains("errno") && rest[2].contains("allow"),
                "{v}"
            );
        }
        if std::fs::read_to_string("/sys/kernel/security/lsm").is_ok_and(|l| l.contains("landlock"))
        {
            assert!(rest[0].starts_with("landlock: ABI "), "{v}");
        }
    }
    // only the top level has it; the subcommands keep -V free
    let out = Command::new(bin()).args(["list", "-V"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn sandbox_help_lists_its_own_options_before_the_global_ones() {
    let help = stdout(&["sandbox", "--help"]);
    let heading = help.find("\nGlobal options:\n").expect(&help);
    let options = help.find("\nOptions:\n").expect(&help);
    let at = |flag: &str| {
        help.find(&format!(" {flag}"))
            .unwrap_or_else(|| panic!("{flag}:\n{help}"))
    };
    assert!(
        options < at("--ro-bind") && at("--ro-bind") < heading,
        "{help}"
    );
    for flag in ["--landlock", "--die-with-parent", "--print-spec"] {
        assert!(at(flag) < heading, "{flag}:\n{help}");
    }
    for flag in [
        "--root",
        "--log",
        "--log-format",
        "--debug",
        "--policy",
        "--learn-dir",
        "--systemd-cgroup",
        "--quiet",
    ] {
        assert!(at(flag) > heading, "{flag}:\n{help}");
    }
    // and the globals still work after the subcommand, as before
    let out = stdout(&[
        "sandbox",
        "--root",
        "/nonexistent",
        "--quiet",
        "--print-spec",
        "--",
        "true",
    ]);
    assert!(out.contains("\"ociVersion\""), "{out}");
}

fn install_sh(prefix: &Path, args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../install.sh");
    let out = Command::new("sh")
        .arg(script)
        .arg("--prefix")
        .arg(prefix)
        .args(args)
        .env("STOCKADE_BIN", bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn install_sh_installs_everything_and_uninstall_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let said = install_sh(p, &["--no-build"]);
    let snippet = format!(
        "{{\"runtimes\": {{\"stockade\": {{\"path\": \"{}/bin/stockade\"}}}}}}",
        p.display()
    );
    assert!(said.contains(&snippet), "{said}");
    for f in [
        "bin/stockade",
        "share/man/man1/stockade.1",
        "share/man/man1/stockade-sandbox.1",
        "share/bash-completion/completions/stockade",
        "share/zsh/site-functions/_stockade",
        "share/fish/vendor_completions.d/stockade.fish",
    ] {
        assert!(p.join(f).is_file(), "{f}");
    }
    let installed = p.join("bin/stockade");
    let out = Command::new(&installed).arg("--version").output().unwrap();
    assert!(out.status.success());
    let zsh = std::fs::read_to_string(p.join("share/zsh/site-functions/_stockade")).unwrap();
    assert!(zsh.starts_with("#compdef stockade"), "{zsh}");
    // again: idempotent, and from the installed binary itself
    let out = Command::new("sh")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../install.sh"))
        .arg("--prefix")
        .arg(p)
        .arg("--no-build")
        .env("STOCKADE_BIN", &installed)
        .output()
        .unwrap();
    assert!(
        out.status.success() && installed.is_file(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    install_sh(p, &["--uninstall"]);
    let left: Vec<_> = walk(p);
    assert!(left.is_empty(), "left behind: {left:?}");
    install_sh(p, &["--uninstall"]);
    // directories that were there before are left
    std::fs::create_dir_all(p.join("bin")).unwrap();
    install_sh(p, &["--no-build"]);
    install_sh(p, &["--uninstall"]);
    assert_eq!(walk(p), vec![p.join("bin")]);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}
