//! Checks bodies against `fly-machines.openapi.fixed.json`.
//!
//! A small OpenAPI 3.0 schema checker (`$ref`, `allOf`, `oneOf`, `enum`, `type`, `nullable`,
//! `properties`, `required`, `additionalProperties`, `items`), used until the shared validator of
//! preview-core lands. Statuses the spec does not document (429, 401, 5xx: the Fly spec lists
//! almost no error statuses) are checked against `ErrorResponse`.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value as Json;

fn specs_dir() -> PathBuf {
    if let Ok(d) = std::env::var("PREVIEW_SPECS_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/specs")
}

fn doc() -> &'static Json {
    static DOC: OnceLock<Json> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = specs_dir().join("fly-machines.openapi.fixed.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

fn operation(method: &str, path: &str) -> Result<&'static Json, String> {
    let method = method.to_ascii_lowercase();
    let want: Vec<&str> = path.trim_matches('/').split('/').collect();
    let paths = doc()["paths"].as_object().ok_or("spec has no paths")?;
    // Literal segments beat templated ones (`/v1/apps` vs `/v1/apps/{app_name}`).
    let mut best: Option<(usize, &Json)> = None;
    for (template, item) in paths {
        let segs: Vec<&str> = template.trim_matches('/').split('/').collect();
        if segs.len() != want.len() {
            continue;
        }
        let mut literal = 0;
        let matches = segs.iter().zip(&want).all(|(t, w)| {
            if t.starts_with('{') && t.ends_with('}') {
                !w.is_empty()
            } else {
                literal += 1;
                t == w
            }
        });
        if matches {
            if let Some(op) = item.get(&method) {
                if best.is_none_or(|(l, _)| literal > l) {
                    best = Some((literal, op));
                }
            }
        }
    }
    best.map(|(_, op)| op)
        .ok_or_else(|| format!("no operation {method} {path} in the spec"))
}

fn resolve(schema: &Json) -> Result<&Json, String> {
    let mut s = schema;
    for _ in 0..32 {
        match s.get("$ref").and_then(Json::as_str) {
            Some(r) => {
                let ptr = r
                    .strip_prefix('#')
                    .ok_or_else(|| format!("remote ref {r}"))?;
                s = doc()
                    .pointer(ptr)
                    .ok_or_else(|| format!("dangling ref {r}"))?;
            }
            None => return Ok(s),
        }
    }
    Err("ref loop".into())
}

fn type_ok(t: &str, v: &Json) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

/// Checks `v` against `schema`; `at` is the JSON path for messages.
pub fn validate(schema: &Json, v: &Json, at: &str) -> Result<(), String> {
    let s = resolve(schema)?;
    if v.is_null() && s.get("nullable").and_then(Json::as_bool) == Some(true) {
        return Ok(());
    }
    if let Some(all) = s.get("allOf").and_then(Json::as_array) {
        for sub in all {
            validate(sub, v, at)?;
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Json::as_array) {
        let ok = one
            .iter()
            .filter(|sub| validate(sub, v, at).is_ok())
            .count();
        if ok != 1 {
            return Err(format!(
                "{at}: matches {ok} of the oneOf alternatives, not 1"
            ));
        }
    }
    if let Some(en) = s.get("enum").and_then(Json::as_array) {
        if !en.contains(v) {
            return Err(format!("{at}: {v} is not one of {en:?}"));
        }
    }
    if let Some(t) = s.get("type").and_then(Json::as_str) {
        if !type_ok(t, v) {
            return Err(format!("{at}: expected {t}, got {v}"));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Json::as_object);
        if let Some(req) = s.get("required").and_then(Json::as_array) {
            for r in req.iter().filter_map(Json::as_str) {
                if !obj.contains_key(r) {
                    return Err(format!("{at}: missing required {r}"));
                }
            }
        }
        for (k, val) in obj {
            let sub_at = format!("{at}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(sub) => validate(sub, val, &sub_at)?,
                None => match s.get("additionalProperties") {
                    Some(Json::Bool(false)) => {
                        return Err(format!("{sub_at}: not allowed"));
                    }
                    Some(extra @ Json::Object(_)) => validate(extra, val, &sub_at)?,
                    _ => {
                        // Unknown fields in a schema that declares properties are almost always
                        // a typo on our side: reject them in what we send and what we mock.
                        if props.is_some() {
                            return Err(format!("{sub_at}: not in the schema"));
                        }
                    }
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, val) in arr.iter().enumerate() {
            validate(items, val, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Checks a request body against the operation's request schema.
pub fn check_request(method: &str, path: &str, body: &Json) -> Result<(), String> {
    let op = operation(method, path)?;
    match op.pointer("/requestBody/content/application~1json/schema") {
        Some(schema) if !body.is_null() => validate(schema, body, "body"),
        Some(_) => Ok(()),
        None if body.is_null() => Ok(()),
        None => Err(format!("{method} {path} takes no body, got {body}")),
    }
}

/// Checks a response body against the operation's response schema for `status`.
pub fn check_response(method: &str, path: &str, status: u16, body: &Json) -> Result<(), String> {
    let op = operation(method, path)?;
    let responses = &op["responses"];
    let resp = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"));
    match resp {
        Some(r) => match r.pointer("/content/application~1json/schema") {
            Some(schema) => validate(schema, body, "response"),
            None if body.is_null() => Ok(()),
            None => Err(format!(
                "status {status} has no body in the spec, got {body}"
            )),
        },
        None if status >= 400 => validate(
            &serde_json::json!({"$ref": "#/components/schemas/ErrorResponse"}),
            body,
            "error",
        )
        .or_else(|e| if body.is_null() { Ok(()) } else { Err(e) }),
        None => Err(format!(
            "status {status} is not documented for {method} {path}"
        )),
    }
}

#[test]
fn the_checker_rejects_what_it_should() {
    // A wrong type, an unknown field, a bad enum, and a body where none is taken.
    assert!(check_request("POST", "/v1/apps", &serde_json::json!({"name": 1})).is_err());
    assert!(check_request("POST", "/v1/apps", &serde_json::json!({"app_name": "x"})).is_err());
    assert!(
        check_request(
            "POST",
            "/v1/apps/a/ip_assignments",
            &serde_json::json!({"type": "v5"})
        )
        .is_err()
    );
    assert!(check_request("GET", "/v1/apps/a", &serde_json::json!({"x": 1})).is_err());
    assert!(
        check_response(
            "GET",
            "/v1/apps/a/machines",
            200,
            &serde_json::json!({"not": "an array"})
        )
        .is_err()
    );
    assert!(
        check_response(
            "POST",
            "/v1/apps/a/machines",
            200,
            &serde_json::json!({"config": {"containers": [{"depends_on": [{"condition": "bogus"}]}]}})
        )
        .is_err()
    );
    assert!(
        check_request(
            "POST",
            "/v1/apps",
            &serde_json::json!({"name": "a", "org_slug": "b"})
        )
        .is_ok()
    );
}
