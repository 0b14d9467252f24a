//! Link the functions `stockade run` executes next to each other (lld's symbol ordering; the
//! list is `hot-symbols.txt`, made by `bench/hot-symbols.sh`). The kernel maps a binary's pages
//! 64 KiB at a time around each page fault: with the start-up path scattered over the 3.5 MiB of
//! text, nearly all of it became resident. Names the list has but the build lacks (another
//! profile, changed code) are skipped: a stale list costs memory, never correctness.
//!
//! Also `STOCKADE_GIT_COMMIT` for `stockade --version`: the checkout's commit, or "unknown" when
//! built outside one (no git, no .git, a crate unpacked by `cargo install`).
fn main() {
    git_commit();
    let list =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("hot-symbols.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    // Rust links x86_64 Linux with its own lld by default; a build told to use another linker
    // (GNU ld has no --symbol-ordering-file) goes without the ordering.
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let other_linker = flags.split('\x1f').any(|f| {
        f.contains("linker-features=-lld")
            || f.contains("link-self-contained=-linker")
            || f.trim_start_matches("-C").starts_with("linker=")
    }) || std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER")
        .is_some();
    let lld = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64")
        && !other_linker;
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    if lld && list.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// `STOCKADE_GIT_COMMIT`: `git rev-parse --short=12 HEAD`, rerun when HEAD or the branch it names
/// moves. Only this crate's own repository counts: a build.rs git does not track is a crate
/// unpacked somewhere else (possibly inside another project's checkout).
fn git_commit() {
    use std::path::{Path, PathBuf};
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(args)
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    // `--git-path` answers relative to the directory git ran in (or absolute): both join
    let git_path = |p: &str| git(&["rev-parse", "--git-path", p]).map(|r| dir.join(r));
    let commit = git(&["ls-files", "--error-unmatch", "build.rs"])
        .and_then(|_| git(&["rev-parse", "--short=12", "HEAD"]));
    if commit.is_some() {
        // HEAD changes at a checkout; the branch's ref at a commit (a packed ref changes in
        // packed-refs, and a new commit writes the loose file again: watch where it will appear)
        let mut watch: Vec<PathBuf> = git_path("HEAD").into_iter().collect();
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git_path(&r)) {
            if r.exists() {
                watch.push(r);
            } else {
                watch.extend(git_path("packed-refs").filter(|p| p.exists()));
                watch.extend(
                    r.ancestors()
                        .skip(1)
                        .find(|d| d.is_dir())
                        .map(Path::to_path_buf),
                );
            }
        }
        for p in watch {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    println!(
        "cargo:rustc-env=STOCKADE_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
