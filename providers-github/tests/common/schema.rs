//! A small OpenAPI 3.0 body validator for the GitHub description: resolves `$ref`, and checks
//! `type`, `nullable`, `enum`, `required`, `properties`, `additionalProperties`, `items`, `allOf`,
//! `anyOf`, `oneOf`, `maxLength`, `minItems`/`maxItems` and `format: uri`.
//!
//! Statuses the spec does not declare for an operation (GitHub's rate-limit 403/429 on ordinary
//! endpoints, which the description leaves out) are checked against `basic-error`.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

pub struct Spec {
    doc: Value,
}

pub fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/specs/github-rest.trimmed.json")
}

pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = spec_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Spec {
            doc: serde_json::from_str(&text).expect("the spec is JSON"),
        }
    })
}

impl Spec {
    fn operation(&self, method: &str, path: &str) -> Result<&Value, String> {
        let method = method.to_ascii_lowercase();
        let want: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let paths = self.doc["paths"].as_object().ok_or("spec has no paths")?;
        for (template, item) in paths {
            let t: Vec<&str> = template.split('/').collect();
            if t.len() == want.len()
                && t.iter().zip(&want).all(|(a, b)| {
                    (a.starts_with('{') && a.ends_with('}') && !b.is_empty()) || a == b
                })
            {
                if let Some(op) = item.get(&method) {
                    return Ok(op);
                }
            }
        }
        Err(format!(
            "no operation {} {path} in the spec",
            method.to_uppercase()
        ))
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..32 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => {
                    let pointer = r
                        .strip_prefix('#')
                        .ok_or_else(|| format!("external $ref {r}"))?;
                    v = self
                        .doc
                        .pointer(pointer)
                        .ok_or_else(|| format!("unresolved $ref {r}"))?;
                }
                None => return Ok(v),
            }
        }
        Err("$ref chain too long".into())
    }

    pub fn check_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), String> {
        let op = self.operation(method, path)?;
        let rb = op.get("requestBody").map(|r| self.resolve(r)).transpose()?;
        match (rb, body) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err("a body was sent to an operation that takes none".into()),
            (Some(rb), None) => {
                if rb.get("required").and_then(Value::as_bool) == Some(true) {
                    Err("the operation requires a body; none was sent".into())
                } else {
                    Ok(())
                }
            }
            (Some(rb), Some(body)) => {
                let schema = rb
                    .pointer("/content/application~1json/schema")
                    .ok_or("no application/json request schema")?;
                self.validate(body, schema, "$")
            }
        }
    }

    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: Option<&Value>,
    ) -> Result<(), String> {
        let op = self.operation(method, path)?;
        let declared = op
            .get("responses")
            .and_then(|r| r.get(status.to_string()).or_else(|| r.get("default")));
        let schema = match declared {
            Some(resp) => {
                let resp = self.resolve(resp)?;
                resp.pointer("/content/application~1json/schema").cloned()
            }
            None if status >= 400 => {
                Some(serde_json::json!({"$ref": "#/components/schemas/basic-error"}))
            }
            None => {
                return Err(format!(
                    "status {status} is not declared for this operation"
                ));
            }
        };
        match (schema, body) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(format!(
                "status {status} has no body in the spec, but one was sent"
            )),
            (Some(_), None) if status == 304 || status == 204 => Ok(()),
            (Some(_), None) => Err(format!("status {status} needs a body; none was sent")),
            (Some(schema), Some(body)) => self.validate(body, &schema, "$"),
        }
    }

    fn validate(&self, v: &Value, schema: &Value, at: &str) -> Result<(), String> {
        let s = self.resolve(schema)?;
        if v.is_null() && s.get("nullable").and_then(Value::as_bool) == Some(true) {
            return Ok(());
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.validate(v, sub, at)?;
            }
        }
        if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
            let errors: Vec<String> = any
                .iter()
                .filter_map(|sub| self.validate(v, sub, at).err())
                .collect();
            if errors.len() == any.len() {
                return Err(format!(
                    "{at}: matches no anyOf branch ({})",
                    errors.join(" | ")
                ));
            }
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
            let errors: Vec<String> = one
                .iter()
                .filter_map(|sub| self.validate(v, sub, at).err())
                .collect();
            let matched = one.len() - errors.len();
            if matched != 1 {
                return Err(format!(
                    "{at}: matches {matched} oneOf branches, expected exactly 1 ({})",
                    errors.join(" | ")
                ));
            }
        }
        if let Some(options) = s.get("enum").and_then(Value::as_array) {
            if !options.contains(v) {
                return Err(format!("{at}: {v} is not one of {options:?}"));
            }
        }
        let ty = s.get("type").and_then(Value::as_str);
        match ty {
            Some("object") => {
                let obj = v
                    .as_object()
                    .ok_or_else(|| format!("{at}: expected an object, got {v}"))?;
                if let Some(req) = s.get("required").and_then(Value::as_array) {
                    for k in req.iter().filter_map(Value::as_str) {
                        if !obj.contains_key(k) {
                            return Err(format!("{at}: missing required field {k:?}"));
                        }
                    }
                }
                let props = s.get("properties").and_then(Value::as_object);
                for (k, val) in obj {
                    match props.and_then(|p| p.get(k)) {
                        Some(ps) => self.validate(val, ps, &format!("{at}.{k}"))?,
                        None => match s.get("additionalProperties") {
                            Some(Value::Bool(false)) => {
                                return Err(format!("{at}: unexpected field {k:?}"));
                            }
                            Some(extra @ Value::Object(_)) => {
                                self.validate(val, extra, &format!("{at}.{k}"))?
                            }
                            _ => {}
                        },
                    }
                }
            }
            Some("array") => {
                let arr = v
                    .as_array()
                    .ok_or_else(|| format!("{at}: expected an array, got {v}"))?;
                if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
                    if (arr.len() as u64) < min {
                        return Err(format!("{at}: fewer than {min} items"));
                    }
                }
                if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                    if (arr.len() as u64) > max {
                        return Err(format!("{at}: more than {max} items"));
                    }
                }
                if let Some(items) = s.get("items") {
                    for (i, item) in arr.iter().enumerate() {
                        self.validate(item, items, &format!("{at}[{i}]"))?;
                    }
                }
            }
            Some("string") => {
                let text = v
                    .as_str()
                    .ok_or_else(|| format!("{at}: expected a string, got {v}"))?;
                if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                    if text.chars().count() as u64 > max {
                        return Err(format!("{at}: longer than {max} characters"));
                    }
                }
                if s.get("format").and_then(Value::as_str) == Some("uri")
                    && url::Url::parse(text).is_err()
                {
                    return Err(format!("{at}: {text:?} is not a URI"));
                }
            }
            Some("integer") => {
                if !(v.is_i64() || v.is_u64()) {
                    return Err(format!("{at}: expected an integer, got {v}"));
                }
            }
            Some("number") => {
                if !v.is_number() {
                    return Err(format!("{at}: expected a number, got {v}"));
                }
            }
            Some("boolean") => {
                if !v.is_boolean() {
                    return Err(format!("{at}: expected a boolean, got {v}"));
                }
            }
            Some(other) => return Err(format!("{at}: unknown schema type {other}")),
            None => {
                if v.is_null() && (s.get("properties").is_some() || s.get("items").is_some()) {
                    return Err(format!("{at}: null where the spec does not allow it"));
                }
            }
        }
        if v.is_null() && ty.is_some() {
            return Err(format!("{at}: null where the spec does not allow it"));
        }
        Ok(())
    }
}

#[test]
fn the_validator_rejects_non_conforming_bodies() {
    let s = spec();
    // A comment without its required `body`.
    assert!(
        s.check_request(
            "POST",
            "/repos/a/b/issues/1/comments",
            Some(&serde_json::json!({}))
        )
        .is_err()
    );
    assert!(
        s.check_request(
            "POST",
            "/repos/a/b/issues/1/comments",
            Some(&serde_json::json!({"body": 1}))
        )
        .is_err()
    );
    s.check_request(
        "POST",
        "/repos/a/b/issues/1/comments",
        Some(&serde_json::json!({"body": "x"})),
    )
    .unwrap();
    // A deployment status with an unknown state.
    assert!(
        s.check_request(
            "POST",
            "/repos/a/b/deployments/1/statuses",
            Some(&serde_json::json!({"state": "done"}))
        )
        .is_err()
    );
    // A comment response missing required fields.
    assert!(
        s.check_response(
            "GET",
            "/repos/a/b/issues/comments/1",
            200,
            Some(&serde_json::json!({"id": 1}))
        )
        .is_err()
    );
    // An operation that is not in the spec.
    assert!(s.check_request("GET", "/repos/a/b/nope", None).is_err());
    // A status that is not declared and is not an error.
    assert!(
        s.check_response(
            "GET",
            "/repos/a/b/pulls/1",
            201,
            Some(&serde_json::json!({}))
        )
        .is_err()
    );
}
