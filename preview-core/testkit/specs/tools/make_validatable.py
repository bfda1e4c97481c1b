#!/usr/bin/env python3
"""Make vercel.trimmed.fixed.json loadable by strict JSON-Schema validators.

AJV (which Prism uses) and the Rust validators refuse to compile some of the
body schemas in the sanitized Vercel document, and a validator that skips what
it cannot compile checks nothing there. Two repairs fix that. Each changed node
is listed in info["x-validatable-patches"]:

 1. nullable without a type.
    * "nullable_without_type": a schema with "nullable": true and no "type"
       (in Vercel's file it always sits beside a "oneOf"). OpenAPI 3.0 says that
       "nullable" only counts next to "type", so strict validators either reject
       the keyword or ignore it. Then null is refused where the API sends it.
       "nullable" is removed and null becomes an explicit alternative: {"type":
       "null"} is appended to the oneOf list.
    * "null_in_nullable_enum": an "enum" that lists null next to
       "nullable": true (and a "type"). null is already allowed by "nullable",
       and some validators reject a null item inside a typed enum. So that null
       is dropped from the enum, and "nullable" stays.
 2. "oneOf_to_anyOf_in_responses": every "oneOf" inside a response
    (paths/<path>/<method>/responses/...) becomes "anyOf", keeping its place
    among the keys. Several response unions overlap (getDeployment is full or
    public-only, and public-only is a subset), so a real body matches two
    branches and fails "oneOf". Request bodies, parameters and components keep
    "oneOf", so what a client sends is still checked strictly.

Pointers are written as "/" + the raw keys (no RFC 6901 ~0/~1 escaping, so a
path key "/v9/x" gives "/paths//v9/x"). They use the keys after the rename, so
nodes below a renamed union read ".../anyOf/0/...". Lists follow document order
(pre-order). Output is compact JSON (separators "," and ":") with no trailing
newline, like the kept vercel.trimmed.validatable.json.

Usage: make_validatable.py IN.json OUT.json      (standard library only)
"""

import json
import os
import sys

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Kept word for word from the original vercel.trimmed.validatable.json, which
# was made before this script existed, so the regenerated file stays identical.
TOOL = "made from vercel.trimmed.fixed.json by the two repairs described in SOURCES.md"


def walk(node, ptr, in_response, log, responses):
    if isinstance(node, dict):
        # 1a. nullable without type, beside a oneOf/anyOf -> explicit null branch
        if node.get("nullable") is True and "type" not in node:
            union = "oneOf" if isinstance(node.get("oneOf"), list) else (
                "anyOf" if isinstance(node.get("anyOf"), list) else None)
            if union is not None:
                node[union].append({"type": "null"})
                del node["nullable"]
                log["nullable_without_type"].append(ptr)
        # 1b. null inside an enum that is already nullable -> drop the null
        enum = node.get("enum")
        if node.get("nullable") is True and isinstance(enum, list) and None in enum:
            node["enum"] = [v for v in enum if v is not None]
            log["null_in_nullable_enum"].append(ptr)
        # 2. oneOf -> anyOf inside responses (key position kept)
        if in_response and "oneOf" in node and "anyOf" not in node:
            items = [("anyOf" if k == "oneOf" else k, v) for k, v in node.items()]
            node.clear()
            node.update(items)
            log["oneOf_to_anyOf_in_responses"].append(ptr)
        for k, v in node.items():
            walk(v, ptr + "/" + k, in_response or id(v) in responses, log, responses)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, "%s/%d" % (ptr, i), in_response, log, responses)


def operation_responses(spec):
    """ids of every paths/<path>/<method>/responses object."""
    ids = set()
    for item in (spec.get("paths") or {}).values():
        for method, op in item.items():
            if method in METHODS and isinstance(op, dict) and isinstance(op.get("responses"), dict):
                ids.add(id(op["responses"]))
    return ids


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n")[0] + "\nusage: make_validatable.py IN.json OUT.json", file=sys.stderr)
        return 1
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    log = {"nullable_without_type": [], "null_in_nullable_enum": [], "oneOf_to_anyOf_in_responses": []}
    walk(spec, "", False, log, operation_responses(spec))
    patches = {"tool": TOOL, "source": os.path.basename(argv[1])}
    for name, ptrs in log.items():
        patches[name] = {"count": len(ptrs), "pointers": ptrs}
    info = dict(spec.get("info", {}))
    info["x-validatable-patches"] = patches
    spec["info"] = info
    with open(argv[2], "w", encoding="utf-8") as fh:
        json.dump(spec, fh, separators=(",", ":"), ensure_ascii=False)
    for name, ptrs in log.items():
        print("%s: %d" % (name, len(ptrs)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
