#!/usr/bin/env bash
# Re-run the offline-reproducible steps from the inputs kept in the specs folder
# and compare the sha256 of each result with the kept file.
#   tools/fix_fly_openapi.py  fly-machines.openapi.json  -> fly-machines.openapi.fixed.json
#   tools/make_validatable.py vercel.trimmed.fixed.json  -> vercel.trimmed.validatable.json
# (The trim and sanitize steps need the full upstream files, not all kept here.)
# Usage: check_regenerate.sh [SPECS_DIR]   (default: the parent of this script's folder)
# Prints OK/DIFF per file; exits 1 on any difference or failure.
set -euo pipefail

specs=${1:-"$(dirname "$0")/.."}
specs=$(cd "$specs" && pwd)
tools="$specs/tools"
python=${PYTHON:-python3}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

status=0
# regen TOOL INPUT KEPT_OUTPUT
regen() {
    local tool=$1 in=$2 out=$3
    if ! "$python" "$tools/$tool" "$specs/$in" "$tmp/$out" 2>"$tmp/$out.log"; then
        echo "FAIL $out ($tool exited non-zero)"
        sed 's/^/    /' "$tmp/$out.log"
        status=1
        return
    fi
    local want got
    want=$(sha256sum "$specs/$out" | cut -d' ' -f1)
    got=$(sha256sum "$tmp/$out" | cut -d' ' -f1)
    if [ "$want" = "$got" ]; then
        echo "OK   $out  $got"
    else
        echo "DIFF $out  kept $want  regenerated $got"
        status=1
    fi
}

regen fix_fly_openapi.py  fly-machines.openapi.json fly-machines.openapi.fixed.json
regen make_validatable.py vercel.trimmed.fixed.json vercel.trimmed.validatable.json
exit $status
