#!/usr/bin/env bash
# Installs a pinned `preview` release for this runner's OS and architecture, verified against the
# SHA-256 committed beside this script (checksums.txt), and puts it on PATH. The install step of the
# repository's GitHub Action (action.yml); runs anywhere bash, curl and tar are.
#
# Trust: the checksum comes from this action's own files, fixed by the ref the workflow pins, never
# from the server the archive comes from. Fails closed: an unknown platform, a version this file
# does not list, a failed download or a different checksum stops here, before anything is
# extracted, and nothing is added to PATH. Nothing is cached: each run downloads afresh into a new
# folder and removes what it did not install.
#
# Environment:
#   PREVIEW_VERSION            version to install (default: the newest one checksums.txt lists)
#   RUNNER_OS, RUNNER_ARCH     platform as GitHub names it (default: uname -s, uname -m)
#   RUNNER_TEMP                where the install folder is made (default: $TMPDIR or /tmp)
#   GITHUB_PATH, GITHUB_OUTPUT Actions files; the folder and `version`/`path` are appended
#   PREVIEW_DOWNLOAD_BASE_URL  release download URL (default: this repository's GitHub releases)
#   PREVIEW_CHECKSUMS_FILE     trusted checksums (default: checksums.txt beside this script)
# The last two exist for this script's tests; action.yml clears them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
checksums="${PREVIEW_CHECKSUMS_FILE:-$here/checksums.txt}"
base_url="${PREVIEW_DOWNLOAD_BASE_URL:-https://github.com/preview-envs/preview/releases/download}"
version="${PREVIEW_VERSION:-}"
work_root="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"
supported="x86_64-unknown-linux-musl (Linux X64), aarch64-unknown-linux-musl (Linux ARM64), aarch64-apple-darwin (macOS ARM64)"

fail() {
  if [ "${GITHUB_ACTIONS:-}" = "true" ]; then
    echo "::error title=preview install::$1"
  fi
  echo "preview install: error: $1" >&2
  exit 1
}

# The platform, as the runner names it or as uname does.
os="${RUNNER_OS:-$(uname -s)}"
arch="${RUNNER_ARCH:-$(uname -m)}"
case "$os/$arch" in
  Linux/X64 | Linux/x86_64 | Linux/amd64) target="x86_64-unknown-linux-musl" ;;
  Linux/ARM64 | Linux/aarch64 | Linux/arm64) target="aarch64-unknown-linux-musl" ;;
  macOS/ARM64 | Darwin/arm64 | Darwin/aarch64) target="aarch64-apple-darwin" ;;
  *) fail "preview has no release build for $os $arch; supported: $supported" ;;
esac
archive="preview-cli-$target.tar.gz"

[ -f "$checksums" ] || fail "trusted checksums file not found: $checksums"
# checksums.txt lines: SHA256 VERSION ARCHIVE; `#` starts a comment.
known_versions="$(awk '!/^#/ && NF == 3 { print $2 }' "$checksums" | sort -u -V | tr '\n' ' ')"
if [ -z "$version" ]; then
  version="$(awk '!/^#/ && NF == 3 { print $2 }' "$checksums" | sort -V | tail -n 1)"
  [ -n "$version" ] || fail "$checksums lists no release yet; nothing can be installed"
fi
version="${version#v}"
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  fail "version '$version' is not a release version like 0.1.0"
fi
expected="$(awk -v v="$version" -v a="$archive" '!/^#/ && $2 == v && $3 == a { print $1 }' "$checksums")"
if [ -z "$expected" ]; then
  fail "no trusted checksum for preview $version ($archive) in $checksums; versions it lists: ${known_versions:-none}"
fi
if ! [[ "$expected" =~ ^[0-9a-f]{64}$ ]]; then
  fail "the checksum listed for $archive $version is not a SHA-256: $expected"
fi

command -v curl > /dev/null || fail "curl is needed to download preview"
command -v tar > /dev/null || fail "tar is needed to unpack preview"
if command -v sha256sum > /dev/null; then
  sha256() { sha256sum "$1" | awk '{ print $1 }'; }
elif command -v shasum > /dev/null; then
  sha256() { shasum -a 256 "$1" | awk '{ print $1 }'; }
else
  fail "sha256sum or shasum is needed to verify preview"
fi

mkdir -p "$work_root"
work="$(mktemp -d "$work_root/preview-install.XXXXXX")"
installed=""
cleanup() {
  # On any failure nothing stays; on success only the verified binary's folder.
  if [ -z "$installed" ]; then
    rm -rf "$work"
  else
    rm -rf "$work/download"
  fi
}
trap cleanup EXIT
mkdir "$work/download"

url="$base_url/v$version/$archive"
echo "preview install: downloading $url"
if ! curl --fail --silent --show-error --location --retry 3 --connect-timeout 20 \
  --output "$work/download/$archive" "$url"; then
  fail "cannot download $url"
fi

actual="$(sha256 "$work/download/$archive")"
if [ "$actual" != "$expected" ]; then
  fail "checksum mismatch for $archive (preview $version): expected $expected (from this action's checksums.txt), got $actual; refusing to install it"
fi
echo "preview install: $archive verified (sha256 $actual)"

mkdir "$work/download/unpacked"
tar -xzf "$work/download/$archive" -C "$work/download/unpacked"
binary="$work/download/unpacked/preview-cli-$target/preview"
[ -f "$binary" ] || fail "$archive has no preview-cli-$target/preview"
mkdir "$work/bin"
mv "$binary" "$work/bin/preview"
chmod 755 "$work/bin/preview"

# The binary runs and is the version asked for.
reported="$("$work/bin/preview" --version 2> /dev/null || true)"
case "$reported" in
  "preview $version "* | "preview $version") ;;
  *)
    fail "the installed binary does not report preview $version (it says: ${reported:-nothing})"
    ;;
esac
installed="yes"

if [ -n "${GITHUB_PATH:-}" ]; then
  echo "$work/bin" >> "$GITHUB_PATH"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  {
    echo "version=$version"
    echo "path=$work/bin/preview"
  } >> "$GITHUB_OUTPUT"
fi
echo "preview install: $reported installed in $work/bin"
