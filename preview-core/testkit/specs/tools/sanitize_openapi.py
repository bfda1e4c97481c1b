#!/usr/bin/env python3
"""Make an OpenAPI JSON document pass strict meta-validation, without changing what it accepts.

Two generic repairs, both recorded in info["x-sanitized"]:
  * duplicate values inside an "enum" array are removed. JSON Schema requires
    unique enum items, and openapi-spec-validator / openapi-core refuse to load
    a document that has duplicates;
  * an empty "oneOf"/"anyOf"/"allOf" list is deleted. An empty oneOf or anyOf
    can match nothing, which is never what the author meant (Vercel's published
    spec has these where a {"type":"null"} branch was stripped by an overlay).

Needed for vercel*.json (the Fly and GitHub files already pass).
Usage: sanitize_openapi.py IN.json OUT.json   (standard library only)
"""

import json
import sys


def walk(node, path, log):
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list):
            uniq = []
            for v in enum:
                if v not in uniq:
                    uniq.append(v)
            if len(uniq) != len(enum):
                node["enum"] = uniq
                log.append("dedup enum at " + path)
        for comb in ("oneOf", "anyOf", "allOf"):
            if isinstance(node.get(comb), list) and not node[comb]:
                del node[comb]
                log.append("removed empty %s at %s" % (comb, path))
        for k, v in list(node.items()):
            walk(v, path + "/" + k.replace("~", "~0").replace("/", "~1"), log)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, "%s/%d" % (path, i), log)


def main(argv):
    if len(argv) != 3:
        print("usage: sanitize_openapi.py IN.json OUT.json", file=sys.stderr)
        return 1
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    log = []
    walk(spec, "#", log)
    info = dict(spec.get("info", {}))
    info["x-sanitized"] = {"tool": "tools/sanitize_openapi.py", "changes": log}
    spec["info"] = info
    with open(argv[2], "w", encoding="utf-8") as fh:
        json.dump(spec, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    print("%d changes -> %s" % (len(log), argv[2]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
