#!/bin/sh
# Install stockade: the binary, its man pages and its shell completions (both made by the binary
# itself: `stockade man --dir`, `stockade completion SHELL`). Running it again updates what it
# installed; --uninstall removes it.
#
#   ./install.sh [--prefix DIR] [--no-build] [--uninstall]
#
#   --prefix DIR  where to install (default /usr/local): DIR/bin/stockade, DIR/share/man/man1,
#                 DIR/share/bash-completion/completions/stockade,
#                 DIR/share/zsh/site-functions/_stockade,
#                 DIR/share/fish/vendor_completions.d/stockade.fish
#   --no-build    do not run `cargo build --release -p stockade`; install the release binary
#                 already built (e.g. built as yourself, then `sudo ./install.sh --no-build`)
#   --uninstall   remove those files, and the directories this script made for them
#
#   STOCKADE_BIN  the stockade binary to install (no build then)
#
# Directories the script had to make are listed in DIR/share/stockade/installed-dirs, so that
# --uninstall removes them (when empty) and no others. Docker's /etc/docker/daemon.json is never
# touched: the script prints the lines to add.
set -eu

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
die() {
    echo "install.sh: $*" >&2
    exit 1
}

prefix=/usr/local
build=1
action=install
while [ $# -gt 0 ]; do
    case $1 in
    --prefix)
        [ $# -ge 2 ] || die "--prefix needs a directory"
        prefix=$2
        shift
        ;;
    --prefix=*) prefix=${1#--prefix=} ;;
    --no-build) build=0 ;;
    --uninstall) action=uninstall ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[ -n "$prefix" ] || die "--prefix is empty"
case $prefix in
/*) ;;
*) prefix=$(pwd)/$prefix ;;
esac
[ "$prefix" = / ] || prefix=${prefix%/}

src=$(cd "$(dirname "$0")" && pwd)
bindir=$prefix/bin
man1=$prefix/share/man/man1
bashdir=$prefix/share/bash-completion/completions
zshdir=$prefix/share/zsh/site-functions
fishdir=$prefix/share/fish/vendor_completions.d
record=$prefix/share/stockade/installed-dirs

# every page stockade makes is stockade.1 or stockade-SUBCOMMAND.1 (an older version's too)
remove_pages() { rm -f "$man1/stockade.1" "$man1"/stockade-*.1; }

if [ "$action" = uninstall ]; then
    rm -f "$bindir/stockade" "$bindir/.stockade.new" \
        "$bashdir/stockade" "$zshdir/_stockade" "$fishdir/stockade.fish"
    remove_pages
    if [ -f "$record" ]; then
        dirs=$(cat "$record")
        rm -f "$record"
        # reverse order: a directory's subdirectories before it
        printf '%s\n' "$dirs" | sort -ru | while IFS= read -r d; do
            [ -z "$d" ] || rmdir "$d" 2>/dev/null || true
        done
    fi
    echo "removed stockade from $prefix"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

if [ -n "${STOCKADE_BIN:-}" ]; then
    bin=$STOCKADE_BIN
elif [ "$build" = 1 ]; then
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install Rust, or build first and use --no-build (or STOCKADE_BIN)"
    # the path cargo reports (the workspace builds for an explicit --target, so it is not
    # simply target/release)
    (cd "$src" && cargo build --release -p stockade --message-format=json-render-diagnostics) \
        >"$tmp/build.json"
    bin=$(sed -n 's/.*"executable":"\([^"]*\/stockade\)".*/\1/p' "$tmp/build.json" | tail -n 1)
else
    target=${CARGO_TARGET_DIR:-$src/target}
    case $target in
    /*) ;;
    *) target=$src/$target ;;
    esac
    # .cargo/config.toml names the target: target/TRIPLE/release (target/release without it)
    bin=
    for b in "$target"/*/release/stockade "$target"/release/stockade; do
        if [ -z "$bin" ] && [ -x "$b" ]; then bin=$b; fi
    done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    die "no stockade binary${bin:+ at $bin}: build it (cargo build --release -p stockade) or set STOCKADE_BIN"
fi

# everything made before anything is installed: a binary that cannot run changes nothing (and a
# copy: STOCKADE_BIN may be the installed binary itself, or cargo may rebuild it meanwhile)
cp "$bin" "$tmp/stockade"
bin=$tmp/stockade
"$bin" man --dir "$tmp/man"
for sh in bash zsh fish; do
    "$bin" completion "$sh" >"$tmp/completion.$sh"
done

# mkdir -p, noting each directory it makes (for --uninstall)
made=
makedir() {
    d=$1
    while [ ! -d "$d" ]; do
        made="$made$d
"
        d=$(dirname "$d")
    done
    mkdir -p "$1"
}
for d in "$bindir" "$man1" "$bashdir" "$zshdir" "$fishdir" "$(dirname "$record")"; do
    makedir "$d"
done
{
    [ ! -f "$record" ] || cat "$record"
    printf '%s' "$made"
} | sort -u >"$tmp/installed-dirs"

remove_pages
# the binary by rename: an engine starting a container meanwhile finds the old one or the new one
install -m 0755 "$bin" "$bindir/.stockade.new"
mv -f "$bindir/.stockade.new" "$bindir/stockade"
install -m 0644 "$tmp"/man/*.1 "$man1/"
install -m 0644 "$tmp/completion.bash" "$bashdir/stockade"
install -m 0644 "$tmp/completion.zsh" "$zshdir/_stockade"
install -m 0644 "$tmp/completion.fish" "$fishdir/stockade.fish"
install -m 0644 "$tmp/installed-dirs" "$record"

path=$(printf '%s' "$bindir/stockade" | sed 's/[\\"]/\\&/g')
echo "installed $("$bindir/stockade" --version | head -n 1) into $prefix"
echo "For Docker, add the runtime to /etc/docker/daemon.json (then restart dockerd):"
echo "{\"runtimes\": {\"stockade\": {\"path\": \"$path\"}}}"
