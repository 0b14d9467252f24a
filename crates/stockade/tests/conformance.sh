#!/usr/bin/env bash
# Builds the OCI runtime conformance programs of opencontainers/runtime-tools (its validation/
# directory: one Go program per directory, each driving the runtime named by $RUNTIME and
# printing TAP) and runtimetest (the static program they run inside the containers), from
# Debian's source package golang-github-opencontainers-runtime-tools and Debian's Go -dev
# packages: no Go module proxy, no git. Built once per machine under a lock into
#   /var/cache/stockade-test/runtime-tools/<debian version>-<hash of this script and tap.go>/
# (validation/<name>.t, runtimetest, rootfs-amd64.tar.gz), moved into place whole; never in git.
# Prints that directory on stdout; progress goes to stderr. tests/conformance.rs runs it.
#
# Needs (.ci/run installs them): golang-go golang-github-google-uuid-dev
#   golang-github-hashicorp-go-multierror-dev golang-github-mrunalp-fileutils-dev
#   golang-github-opencontainers-selinux-dev golang-github-opencontainers-specs-dev
#   golang-github-sirupsen-logrus-dev golang-github-urfave-cli-dev golang-gocapability-dev
#   golang-golang-x-sys-dev
# The one import Debian does not package, github.com/mndrix/tap-go, is stood in for by
# conformance/tap.go beside this script.
set -euo pipefail

PKG=golang-github-opencontainers-runtime-tools
# the newest upstream snapshot Debian has (trixie and sid); bookworm's older one is upstream's
# tree of April 2022
VERSION=0.9.0.109.ge931285-1
CACHE=/var/cache/stockade-test/runtime-tools
GO_DEV=(golang-go golang-github-google-uuid-dev golang-github-hashicorp-go-multierror-dev
  golang-github-mrunalp-fileutils-dev golang-github-opencontainers-selinux-dev
  golang-github-opencontainers-specs-dev golang-github-sirupsen-logrus-dev
  golang-github-urfave-cli-dev golang-gocapability-dev golang-golang-x-sys-dev)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tap_go=$here/conformance/tap.go
key=$(cat "${BASH_SOURCE[0]}" "$tap_go" | sha256sum | cut -c1-12)
dest=$CACHE/$VERSION-$key

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$dest/.complete" ]; then
  echo "$dest"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "conformance.sh: building into $CACHE needs root" >&2
  exit 1
fi
for p in "${GO_DEV[@]}"; do
  if ! dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    echo "conformance.sh: missing Debian package $p: apt-get install ${GO_DEV[*]}" \
      "(.ci/run does)" >&2
    exit 1
  fi
done

t0=$(date +%s%N)
work=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The source package, through apt with a private state: the machine's own apt sources and lists
# stay as they are. The mirror is the one the machine's Debian sources name; apt checks the
# tarballs against the signed index.
# shellcheck disable=SC2016 # $(REPO_URI) is apt's format field, not the shell's
mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Label: Debian' | sort -u | head -n1)
if [ -z "$mirror" ]; then
  echo "conformance.sh: no Debian archive in apt's sources (run apt-get update first)" >&2
  exit 1
fi
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
for suite in trixie sid; do
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main"
done >"$work/apt/sources.list"
apt_private=(
  -o "Dir::Etc::sourcelist=$work/apt/sources.list"
  -o Dir::Etc::sourceparts=/nonexistent
  -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::Cache=$work/apt/cache"
  -o APT::Sandbox::User=root
)
apt-get "${apt_private[@]}" -qq update >&2
# --tar-only: the upstream tarball (and Debian's packaging); the .dsc is not needed to build
(cd "$work/src" && apt-get "${apt_private[@]}" -qq source --download-only --tar-only \
  "$PKG=$VERSION" >&2)
orig=$(ls "$work/src/${PKG}_"*.orig.tar.*)
t1=$(date +%s%N)

gopath=$work/gopath
tree=$gopath/src/github.com/opencontainers/runtime-tools
mkdir -p "$tree" "$gopath/src/github.com/mndrix/tap-go"
tar -C "$tree" --strip-components=1 -xf "$orig"
cp "$tap_go" "$gopath/src/github.com/mndrix/tap-go/tap.go"

# GOPATH mode over Debian's /usr/share/gocode, as dh-golang builds Debian's Go packages
export GOPATH=$gopath:/usr/share/gocode GO111MODULE=off GOPROXY=off GOFLAGS='' \
  GOCACHE=$work/gocache CGO_ENABLED=0
out=$work/out
mkdir -p "$out/validation"
cd "$tree"
# runtimetest is copied into each container's rootfs: static, as upstream's Makefile builds it
go build -tags "netgo osusergo" -o "$out/runtimetest" ./cmd/runtimetest
n=0
for dir in validation/*/; do
  name=$(basename "$dir")
  [ "$name" = util ] && continue
  go build -o "$out/validation/$name.t" "./$dir"
  n=$((n + 1))
done
# upstream's test rootfs (a static busybox, /etc/passwd and /etc/group, empty /dev, /proc, /sys)
cp rootfs-amd64.tar.gz "$out/"
{
  echo "debian source: $PKG $VERSION"
  go version
  echo "programs: $n"
} >"$out/VERSION"
touch "$out/.complete"
t2=$(date +%s%N)

rm -rf "$dest"
mv -T "$out" "$dest"
echo "conformance.sh: $n programs built into $dest (source $(((t1 - t0) / 1000000)) ms," \
  "build $(((t2 - t1) / 1000000)) ms)" >&2
echo "$dest"
