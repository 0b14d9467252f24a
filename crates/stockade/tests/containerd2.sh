#!/usr/bin/env bash
# Fetches containerd 2.x (containerd, ctr, containerd-shim-runc-v2) from Debian sid's binary
# package `containerd`, which runs on Debian 12 as it is (it needs only libc6 >= 2.34), and
# unpacks it once per machine under a lock into
#   /var/cache/stockade-test/containerd-2/<debian version>/usr/bin/
# moved into place whole, with `current` pointing at it; never in git, the system's own
# containerd (1.6) untouched. Once cached, no network: `current` is used as it is.
# Prints that directory on stdout; progress goes to stderr. tests/cri and bench/pods.sh run it.
#
# apt runs with a private state (its own sources file for sid, lists and cache): the machine's
# apt sources and lists stay as they are. apt checks the package against the signed index.
# Sid's candidate is taken (2.1.9+ds1-5 when this was written); fails loudly when the archive
# cannot be reached or sid's containerd is no longer 2.x.
set -euo pipefail

CACHE=/var/cache/stockade-test/containerd-2

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$CACHE/current/.complete" ]; then
  readlink -f "$CACHE/current"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "containerd2.sh: unpacking into $CACHE needs root" >&2
  exit 1
fi

t0=$(date +%s%N)
work=$(mktemp -d "$CACHE/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2016 # $(REPO_URI) is apt's format field, not the shell's
mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Label: Debian' | sort -u | head -n1)
mirror=${mirror:-http://deb.debian.org/debian/}
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/parts" "$work/deb"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main" \
  >"$work/apt/sources.list"
apt_private=(
  -o "Dir::Etc::sourcelist=$work/apt/sources.list"
  -o "Dir::Etc::sourceparts=$work/parts"
  -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::Cache=$work/apt/cache"
  -o APT::Sandbox::User=root
)
if ! apt-get "${apt_private[@]}" -qq update >&2; then
  echo "containerd2.sh: apt-get update of Debian sid from $mirror failed" >&2
  exit 1
fi
VERSION=$(apt-cache "${apt_private[@]}" show --no-all-versions containerd |
  sed -n 's/^Version: //p' | head -n1)
case "$VERSION" in
  2.*) ;;
  *)
    echo "containerd2.sh: sid's containerd is '$VERSION', not 2.x" >&2
    exit 1
    ;;
esac
dest=$CACHE/$VERSION
(cd "$work/deb" && apt-get "${apt_private[@]}" -qq download "containerd=$VERSION" >&2)
out=$work/out
mkdir -p "$out"
dpkg -x "$work"/deb/containerd_*.deb "$out"
for b in containerd ctr containerd-shim-runc-v2; do
  if [ ! -x "$out/usr/bin/$b" ]; then
    echo "containerd2.sh: the package has no usr/bin/$b" >&2
    exit 1
  fi
done
# it must run here: a newer glibc than this machine's would show now, not in the test
if ! "$out/usr/bin/containerd" --version >"$out/VERSION" 2>&1; then
  echo "containerd2.sh: $out/usr/bin/containerd does not run here: $(cat "$out/VERSION")" >&2
  exit 1
fi
touch "$out/.complete"
rm -rf "$dest"
mv -T "$out" "$dest"
ln -sfn "$VERSION" "$CACHE/current"
echo "containerd2.sh: $(cat "$dest/VERSION") unpacked into $dest in" \
  "$((($(date +%s%N) - t0) / 1000000)) ms" >&2
echo "$dest"
