#!/usr/bin/env python3
"""Write a corrected copy of the Fly Machines OpenAPI document.

The published document (fly-machines.openapi.json) has a few
defects that make a strict validator (Prism, openapi-core) reject payloads
the real API accepts or returns. This script applies only those fixes and
records each one in info["x-patches"], so the original stays the reference
and the changes are visible.

Fixes:
 1. Properties written as {"type": "object", "allOf": [{"$ref": X}]} where X
    is a string or integer enum (swag/2->3 conversion artefact): "type" is
    dropped so a plain "healthy" / "readiness" / "http" / "stop" validates.
    Affects fly.ContainerDependency.condition, fly.ContainerHealthcheck.kind,
    fly.ContainerHealthcheck.unhealthy, fly.HTTPHealthcheck.scheme,
    main.TokenAccess.action.
 2. fly.MachineService.autostop: the schema says string enum, but its own
    description says responses still use booleans for "off"/"stop". Made a
    oneOf of the string enum and boolean.
 3. AppSecretsUpdateRequest.values: the operation says "values to set, or
    nil to unset" (fly-go sends map[string]*string), so values are nullable.
 4. GET /v1/apps/{app_name}/machines/{machine_id}/wait: the Fly docs
    (machines-resource) list 408 Request Timeout; added with ErrorResponse.

Usage: fix_fly_openapi.py IN.json OUT.json      (standard library only)
"""

import copy
import json
import sys


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n")[0] + "\nusage: fix_fly_openapi.py IN.json OUT.json", file=sys.stderr)
        return 1
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    out = copy.deepcopy(spec)
    schemas = out["components"]["schemas"]
    patches = []

    # 1. type:object + allOf -> non-object enum
    for sname, sch in schemas.items():
        for pname, prop in (sch.get("properties") or {}).items():
            if prop.get("type") == "object" and isinstance(prop.get("allOf"), list):
                refs = [x.get("$ref") for x in prop["allOf"] if "$ref" in x]
                if len(refs) == 1:
                    target = schemas.get(refs[0].split("/")[-1], {})
                    if target.get("type") not in (None, "object"):
                        del prop["type"]
                        patches.append("dropped type:object on %s.%s (allOf -> %s, a %s enum)"
                                       % (sname, pname, refs[0].split("/")[-1], target.get("type")))

    # 2. autostop string-or-boolean
    svc = schemas.get("fly.MachineService", {}).get("properties", {})
    if "autostop" in svc and svc["autostop"].get("type") == "string":
        old = svc["autostop"]
        svc["autostop"] = {
            "description": old.get("description", ""),
            "oneOf": [{"type": "string", "enum": old.get("enum", [])}, {"type": "boolean"}],
        }
        patches.append("fly.MachineService.autostop: string enum -> oneOf[string enum, boolean]")

    # 3. secrets update values nullable
    upd = schemas.get("AppSecretsUpdateRequest", {}).get("properties", {}).get("values")
    if upd and isinstance(upd.get("additionalProperties"), dict):
        upd["additionalProperties"]["nullable"] = True
        patches.append("AppSecretsUpdateRequest.values: additionalProperties nullable (null unsets)")

    # 4. wait 408
    wait = out["paths"].get("/v1/apps/{app_name}/machines/{machine_id}/wait", {}).get("get")
    if wait is not None and "408" not in wait.get("responses", {}):
        wait["responses"]["408"] = {
            "description": "Request Timeout (documented in fly.io/docs/machines/api/machines-resource)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        }
        patches.append("wait: added 408 response (ErrorResponse)")

    out["info"] = dict(out["info"])
    out["info"]["x-patches"] = {"tool": "tools/fix_fly_openapi.py", "applied": patches}
    with open(argv[2], "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    for p in patches:
        print("patched: " + p, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
