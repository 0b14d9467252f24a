//! Link the functions `stockade run` executes next to each other (lld's symbol ordering; the
//! list is `hot-symbols.txt`, made by `bench/hot-symbols.sh`). The kernel maps a binary's pages
//! 64 KiB at a time around each page fault: with the start-up path scattered over the 3.5 MiB of
//! text, nearly all of it became resident. Names the list has but the build lacks (another
//! profile, changed code) are skipped: a stale list costs memory, never correctness.
fn main() {
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
