#!/usr/bin/env bash
# Adds the checksums of a published release's archives to checksums.txt, the only checksums the
# action trusts. Each archive is first checked with GitHub's build-provenance attestation: it must
# have been built by this repository's release workflow. Run by the update-action-checksums
# workflow after each release (which proposes the change as a pull request), or by hand:
#
#   GH_TOKEN=… .github/action/update-checksums.sh v0.1.0
#
# Needs gh (authenticated through GH_TOKEN) and sha256sum or shasum.
set -euo pipefail

tag="${1:?usage: update-checksums.sh TAG (e.g. v0.1.0)}"
version="${tag#v}"
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "update-checksums: '$tag' is not a release tag like v0.1.0" >&2
  exit 2
fi
repo="${GITHUB_REPOSITORY:-preview-envs/preview}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
checksums="$here/checksums.txt"
# The targets dist-workspace.toml builds, as install.sh names them.
targets="x86_64-unknown-linux-musl aarch64-unknown-linux-musl aarch64-apple-darwin"

if command -v sha256sum > /dev/null; then
  sha256() { sha256sum "$1" | awk '{ print $1 }'; }
else
  sha256() { shasum -a 256 "$1" | awk '{ print $1 }'; }
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gh release download "$tag" --repo "$repo" --pattern "sha256.sum" --dir "$work"

lines=""
for target in $targets; do
  archive="preview-cli-$target.tar.gz"
  gh release download "$tag" --repo "$repo" --pattern "$archive" --dir "$work"
  gh attestation verify "$work/$archive" --repo "$repo" \
    --signer-workflow "$repo/.github/workflows/release.yml"
  sum="$(sha256 "$work/$archive")"
  # The release's own checksums file must agree (it is not trusted alone, but a difference means
  # something is wrong with the release).
  if ! grep -q "^$sum [ *]*$archive\$" "$work/sha256.sum"; then
    echo "update-checksums: $archive: sha256 $sum is not what the release's sha256.sum says" >&2
    exit 1
  fi
  lines="$lines$sum $version $archive"$'\n'
done

# Replace any earlier lines for this version, keep the rest in order.
awk -v v="$version" '/^#/ || NF != 3 || $2 != v' "$checksums" > "$work/checksums.txt"
printf '%s' "$lines" >> "$work/checksums.txt"
cp "$work/checksums.txt" "$checksums"
echo "update-checksums: $checksums now lists preview $version for: $targets"
