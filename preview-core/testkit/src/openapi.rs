//! Checks JSON bodies against an OpenAPI 3.0 description (feature `openapi`).
//!
//! Provider tests use this to prove that every request body they send and every mock response body
//! they serve is what the provider's published API description says, so a wiremock fake cannot
//! drift away from the real API unnoticed.
//!
//! ```
//! use preview_testkit::openapi::{OpenApi, specs_dir};
//! use serde_json::json;
//!
//! let fly = OpenApi::load(specs_dir().join("fly-machines.openapi.fixed.json"))?;
//! fly.check_request("POST", "/v1/apps", &json!({"name": "pr-1-agents", "org_slug": "acme"}))?;
//! fly.check_response("DELETE", "/v1/apps/pr-1-agents", 202, &serde_json::Value::Null)?;
//! # Ok::<(), String>(())
//! ```
//!
//! # How a description becomes JSON Schema
//!
//! The whole document is registered as one JSON Schema (draft 4) resource, so a body schema's
//! `$ref: "#/components/schemas/…"` resolves inside it; nothing is ever fetched. At load time the
//! schema objects (under `components/schemas` and every request/response body) are translated where
//! OpenAPI 3.0 differs from JSON Schema: `nullable: true` admits `null` (as a `"null"` type, or as
//! an `anyOf` alternative when the schema has no plain `type`), and `discriminator`, `example`,
//! `xml` and `externalDocs` are dropped. `readOnly`/`writeOnly` stay annotations: they are not
//! enforced in either direction. `format` is checked for the formats the validator knows
//! (`date-time`, `date`, `email`, `uri`, `ipv4`, …); OpenAPI-only ones (`int64`, `binary`, …)
//! are ignored.
//!
//! Each body schema is compiled the first time it is needed and then cached, so loading a large
//! description stays fast.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, Registry, ValidationError, Validator};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Map, Value};

/// Where the document is registered; only ever used to resolve references inside it.
const BASE_URI: &str = "https://openapi.invalid/spec.json";

/// The methods an OpenAPI path item can describe.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Characters a JSON pointer may contain that a URI fragment may not (RFC 3986 §3.5).
const FRAGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The most lines of violations one error message lists.
const MAX_LINES: usize = 40;
/// How deep the reasons a union (`anyOf`/`oneOf`) rejected a value are listed.
const MAX_UNION_DEPTH: usize = 3;
/// How many reasons are listed for each union alternative.
const MAX_PER_ALTERNATIVE: usize = 3;
/// Values whose JSON is longer than this are named by their type in messages.
const MAX_SHOWN_VALUE: usize = 60;

/// Where the vendored API descriptions live.
///
/// `PREVIEW_SPECS_DIR` if set (to check against other versions of the descriptions), otherwise
/// the `specs/` folder of this crate, inside the repository (see `specs/SOURCES.md` for where each
/// file comes from and how to regenerate it).
#[must_use]
pub fn specs_dir() -> PathBuf {
    let dir = match std::env::var_os("PREVIEW_SPECS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("specs"),
    };
    // Shorter file names in error messages; a missing folder is reported by `OpenApi::load`.
    dir.canonicalize().unwrap_or(dir)
}

/// One OpenAPI 3.0 description, ready to check request and response bodies against.
///
/// Cheap to share: checks take `&self`, and compiled schemas are cached behind a mutex.
pub struct OpenApi {
    /// The file it was loaded from, named in every error.
    file: PathBuf,
    /// The translated document; body schemas are addressed by JSON pointers into it.
    doc: Arc<Value>,
    /// Holds `doc` as the one resource every `$ref` resolves against.
    registry: Registry<'static>,
    operations: Vec<Operation>,
    /// Compiled body schemas, keyed by the JSON pointer of the schema in `doc`.
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

impl fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let compiled = self
            .validators
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("OpenApi")
            .field("file", &self.file)
            .field("operations", &self.operations.len())
            .field("compiled_schemas", &compiled)
            .finish_non_exhaustive()
    }
}

/// One method + path template of the description.
#[derive(Debug)]
struct Operation {
    /// Upper case, as in a request line.
    method: String,
    template: String,
    segments: Vec<Segment>,
    /// JSON pointer of the operation object in the document.
    pointer: String,
}

#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param,
    /// A segment mixing text and one parameter, such as `{name}.json`.
    Affixed {
        prefix: String,
        suffix: String,
    },
}

impl Segment {
    fn parse(segment: &str) -> Self {
        match (segment.find('{'), segment.rfind('}')) {
            (Some(0), Some(end)) if end + 1 == segment.len() => Self::Param,
            (Some(start), Some(end)) if start < end => Self::Affixed {
                prefix: segment[..start].to_owned(),
                suffix: segment[end + 1..].to_owned(),
            },
            _ => Self::Literal(segment.to_owned()),
        }
    }

    fn matches(&self, actual: &str) -> bool {
        match self {
            Self::Literal(literal) => literal == actual,
            Self::Param => !actual.is_empty(),
            Self::Affixed { prefix, suffix } => {
                actual.len() > prefix.len() + suffix.len()
                    && actual.starts_with(prefix.as_str())
                    && actual.ends_with(suffix.as_str())
            }
        }
    }
}

impl OpenApi {
    /// Loads and compiles a spec file. Error names the file.
    ///
    /// Only reading, parsing and indexing happen here; each body schema is compiled when a check
    /// first needs it.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is not JSON, is not an OpenAPI 3.0 document (no `paths`), or its
    /// document cannot be registered for reference resolution.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, String> {
        let file = path.as_ref().to_path_buf();
        let name = file.display();
        let text = std::fs::read_to_string(&file).map_err(|err| format!("{name}: {err}"))?;
        let mut doc: Value =
            serde_json::from_str(&text).map_err(|err| format!("{name}: not JSON: {err}"))?;
        match doc.get("openapi").and_then(Value::as_str) {
            Some(version) if version.starts_with("3.0") => {}
            Some(version) => {
                return Err(format!(
                    "{name}: OpenAPI {version} is not supported, only 3.0.x"
                ));
            }
            None => return Err(format!("{name}: not an OpenAPI document (no `openapi`)")),
        }
        let operations = index_operations(&doc).map_err(|err| format!("{name}: {err}"))?;
        translate_document(&mut doc);
        let doc = Arc::new(doc);
        let registry = Registry::new()
            .draft(Draft::Draft4)
            .add(BASE_URI, Arc::clone(&doc))
            .and_then(jsonschema::RegistryBuilder::prepare)
            .map_err(|err| format!("{name}: cannot register the document: {err}"))?;
        Ok(Self {
            file,
            doc,
            registry,
            operations,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// Finds the operation for an actual request path and validates `body` against its
    /// `requestBody` JSON schema.
    ///
    /// `path` is what was requested, e.g. `/v1/apps/pr-1-agents/machines`; a query string is
    /// allowed and ignored, and so are the scheme and host of a full URL. Each `{param}` of a path
    /// template matches one non-empty segment; where two templates match, the one with a literal
    /// segment first wins (`…/certificates/acme` over `…/certificates/{hostname}`). `method` is
    /// case-insensitive. `body` is [`Value::Null`] for a request without a body; that passes unless
    /// the operation marks its body `required`.
    ///
    /// # Errors
    ///
    /// No operation matches method + path; the operation takes no JSON body but one is given; or
    /// the body does not conform: the message then lists the violations, each at a JSON pointer
    /// into the body (and, for `anyOf`/`oneOf`, why each alternative failed). Every message names
    /// the spec file and the operation.
    pub fn check_request(&self, method: &str, path: &str, body: &Value) -> Result<(), String> {
        let op = self.find(method, path)?;
        let what = format!(
            "{}: {} {} request",
            self.file.display(),
            op.method,
            op.template
        );
        let request_body = self
            .node(&op.pointer)
            .and_then(|operation| operation.get("requestBody"));
        let Some(request_body) = request_body else {
            return match body {
                Value::Null => Ok(()),
                _ => Err(format!(
                    "{what}: the operation takes no request body, but a JSON {} was given",
                    kind(body)
                )),
            };
        };
        let (body_pointer, request_body) =
            self.follow(format!("{}/requestBody", op.pointer), request_body)?;
        let required = request_body
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if body.is_null() {
            return if required {
                Err(format!(
                    "{what}: a body is required, but none (Null) was given"
                ))
            } else {
                Ok(())
            };
        }
        match json_schema_pointer(&body_pointer, request_body) {
            Ok(Some(schema_pointer)) => self.validate(&what, &schema_pointer, body),
            Ok(None) => Err(format!(
                "{what}: the request body describes no content, so a JSON {} cannot be checked",
                kind(body)
            )),
            Err(types) => Err(format!(
                "{what}: the body is not JSON (media types: {types}); only JSON bodies can be checked"
            )),
        }
    }

    /// Validates a response body for that operation (found as in
    /// [`check_request`](Self::check_request)) and status.
    ///
    /// The response is the one described for `status`, else for its range (`2XX`), else
    /// `default`: the more specific entry wins, as OpenAPI says. A response without a body schema
    /// (no `content`) takes no body, so `body` must be [`Value::Null`].
    ///
    /// # Errors
    ///
    /// The operation or the status is not described; the status has no body schema but `body` is
    /// not Null; the response is not JSON; or the body does not conform (violations listed as for
    /// [`check_request`](Self::check_request)). Every message names the spec file, the operation
    /// and the status.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        let op = self.find(method, path)?;
        let what = format!(
            "{}: {} {} response {status}",
            self.file.display(),
            op.method,
            op.template
        );
        let responses_pointer = format!("{}/responses", op.pointer);
        let responses = self
            .node(&responses_pointer)
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{what}: the operation describes no responses"))?;
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        let Some((key, response)) = responses
            .iter()
            .find(|(key, _)| **key == exact)
            .or_else(|| {
                responses
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(&range))
            })
            .or_else(|| responses.iter().find(|(key, _)| *key == "default"))
        else {
            let described: Vec<&str> = responses.keys().map(String::as_str).collect();
            return Err(format!(
                "{what}: status not described (described: {})",
                described.join(", ")
            ));
        };
        let (response_pointer, response) =
            self.follow(format!("{responses_pointer}/{}", escape(key)), response)?;
        match json_schema_pointer(&response_pointer, response) {
            Ok(Some(schema_pointer)) => self.validate(&what, &schema_pointer, body),
            Ok(None) if body.is_null() => Ok(()),
            Ok(None) => Err(format!(
                "{what}: the response has no body schema, so the body must be Null, not a JSON {}",
                kind(body)
            )),
            Err(types) => Err(format!(
                "{what}: the body is not JSON (media types: {types}); only JSON bodies can be checked"
            )),
        }
    }

    /// The operation for `method` and the actual `path`; a literal segment beats a parameter.
    fn find(&self, method: &str, path: &str) -> Result<&Operation, String> {
        let method = method.to_ascii_uppercase();
        let path = strip_to_path(path);
        let actual: Vec<&str> = path.split('/').collect();
        let mut candidates: Vec<&Operation> = self
            .operations
            .iter()
            .filter(|op| {
                op.segments.len() == actual.len()
                    && op.segments.iter().zip(&actual).all(|(s, a)| s.matches(a))
            })
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "{}: no operation matches the path {path}",
                self.file.display()
            ));
        }
        let any_template = candidates.first().map(|op| op.template.clone());
        candidates.retain(|op| op.method == method);
        // Prefer the template whose first difference is a literal, e.g. `…/certificates/acme`
        // over `…/certificates/{hostname}`.
        candidates
            .into_iter()
            .max_by_key(|op| {
                op.segments
                    .iter()
                    .map(|s| matches!(s, Segment::Literal(_)))
                    .collect::<Vec<_>>()
            })
            .ok_or_else(|| {
                format!(
                    "{}: no {method} operation for {path} (the path matches {})",
                    self.file.display(),
                    any_template.as_deref().unwrap_or("?")
                )
            })
    }

    fn node(&self, pointer: &str) -> Option<&Value> {
        self.doc.pointer(pointer)
    }

    /// Follows a `$ref` in a non-schema position (a request body or response object) and returns
    /// the pointer of the object reached, and the object.
    fn follow<'a>(
        &'a self,
        mut pointer: String,
        mut node: &'a Value,
    ) -> Result<(String, &'a Value), String> {
        // A chain longer than this is a cycle in any document we use.
        for _ in 0..16 {
            let Some(reference) = node.get("$ref").and_then(Value::as_str) else {
                return Ok((pointer, node));
            };
            let file = self.file.display();
            let target = reference.strip_prefix('#').ok_or_else(|| {
                format!("{file}: {pointer} refers outside the document: {reference}")
            })?;
            pointer = percent_encoding::percent_decode_str(target)
                .decode_utf8_lossy()
                .into_owned();
            node = self
                .node(&pointer)
                .ok_or_else(|| format!("{file}: unresolved reference {reference}"))?;
        }
        Err(format!(
            "{}: reference cycle at {pointer}",
            self.file.display()
        ))
    }

    /// Validates `body` against the schema at `schema_pointer`, compiling it on first use.
    fn validate(&self, what: &str, schema_pointer: &str, body: &Value) -> Result<(), String> {
        let validator = self.validator(schema_pointer).map_err(|err| {
            format!("{what}: cannot compile the body schema at #{schema_pointer}: {err}")
        })?;
        let errors: Vec<ValidationError<'_>> = validator.iter_errors(body).collect();
        if errors.is_empty() {
            return Ok(());
        }
        let schema = self
            .node(schema_pointer)
            .and_then(|schema| schema.get("$ref"))
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{schema_pointer}"), str::to_owned);
        let mut lines = Vec::new();
        for error in &errors {
            describe(error, 1, &mut lines);
        }
        let mut message = format!(
            "{what}: the body does not match {schema} ({} violation{}):",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        );
        for line in lines.iter().take(MAX_LINES) {
            message.push('\n');
            message.push_str(line);
        }
        if lines.len() > MAX_LINES {
            message.push_str(&format!("\n  … and {} more lines", lines.len() - MAX_LINES));
        }
        Err(message)
    }

    fn validator(&self, schema_pointer: &str) -> Result<Arc<Validator>, String> {
        let cached = self
            .validators
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(schema_pointer)
            .cloned();
        if let Some(validator) = cached {
            return Ok(validator);
        }
        // Compiled outside the lock: two threads may both compile a schema once, which is harmless.
        let wrapper = serde_json::json!({
            "$ref": format!("{BASE_URI}#{}", utf8_percent_encode(schema_pointer, FRAGMENT)),
        });
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .with_registry(&self.registry)
            .should_validate_formats(true)
            .build(&wrapper)
            .map_err(|err| err.to_string())?;
        let validator = Arc::new(validator);
        self.validators
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(schema_pointer.to_owned(), Arc::clone(&validator));
        Ok(validator)
    }
}

/// Reduces a URL or a path with a query string to the bare path.
fn strip_to_path(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    match path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |slash| &rest[slash..]),
        None => path,
    }
}

/// Lists every operation of the document.
fn index_operations(doc: &Value) -> Result<Vec<Operation>, String> {
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("no `paths` object")?;
    let mut operations = Vec::new();
    for (template, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for method in METHODS {
            if item.contains_key(method) {
                operations.push(Operation {
                    method: method.to_ascii_uppercase(),
                    template: template.clone(),
                    segments: template.split('/').map(Segment::parse).collect(),
                    pointer: format!("/paths/{}/{method}", escape(template)),
                });
            }
        }
    }
    Ok(operations)
}

/// The pointer of the JSON schema in a request body or response object at `pointer`.
///
/// `Ok(None)`: no content is described. `Err`: only non-JSON media types are described (listed).
/// A JSON media type without a schema is described by the empty schema, which accepts any body.
fn json_schema_pointer(pointer: &str, object: &Value) -> Result<Option<String>, String> {
    let Some(content) = object.get("content").and_then(Value::as_object) else {
        return Ok(None);
    };
    if content.is_empty() {
        return Ok(None);
    }
    let essence = |media_type: &str| {
        media_type
            .split(';')
            .next()
            .unwrap_or(media_type)
            .trim()
            .to_ascii_lowercase()
    };
    let chosen = content
        .keys()
        .find(|mt| essence(mt) == "application/json")
        .or_else(|| content.keys().find(|mt| essence(mt).ends_with("+json")));
    let Some(media_type) = chosen else {
        let types: Vec<&str> = content.keys().map(String::as_str).collect();
        return Err(types.join(", "));
    };
    let media_pointer = format!("{pointer}/content/{}", escape(media_type));
    Ok(Some(
        match content.get(media_type).and_then(|m| m.get("schema")) {
            Some(_) => format!("{media_pointer}/schema"),
            // The empty schema: `{}` at a pointer that resolves is needed, so use a known one.
            None => format!("{media_pointer}/x-preview-any"),
        },
    ))
}

/// Adds one line per violation, indented by `depth`; for a union (`anyOf`/`oneOf`) that no
/// alternative satisfies, why each alternative failed, one level deeper.
fn describe(error: &ValidationError<'_>, depth: usize, lines: &mut Vec<String>) {
    let at = error.instance_path().to_string();
    let at = if at.is_empty() { "/".to_owned() } else { at };
    let instance = error.instance();
    let shown = serde_json::to_string(instance.as_ref()).map_or(usize::MAX, |json| json.len());
    let text = if shown <= MAX_SHOWN_VALUE {
        error.to_string()
    } else {
        // A whole body in the message hides the reason; name its type instead.
        error
            .masked_with(format!("the {}", kind(instance)))
            .to_string()
    };
    let indent = "  ".repeat(depth);
    lines.push(format!("{indent}at {at}: {text}"));
    let (ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context }) =
        error.kind()
    else {
        return;
    };
    if depth >= MAX_UNION_DEPTH {
        return;
    }
    for (index, alternative) in context.iter().enumerate() {
        lines.push(format!("{indent}  alternative {index}:"));
        for inner in alternative.iter().take(MAX_PER_ALTERNATIVE) {
            describe(inner, depth + 2, lines);
        }
        if alternative.len() > MAX_PER_ALTERNATIVE {
            lines.push(format!(
                "{indent}    … and {} more",
                alternative.len() - MAX_PER_ALTERNATIVE
            ));
        }
    }
}

/// Escapes one JSON pointer token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Turns every schema object of the document into JSON Schema (draft 4), in place.
fn translate_document(doc: &mut Value) {
    let Some(root) = doc.as_object_mut() else {
        return;
    };
    if let Some(components) = root.get_mut("components").and_then(Value::as_object_mut) {
        if let Some(schemas) = components.get_mut("schemas").and_then(Value::as_object_mut) {
            schemas.values_mut().for_each(translate_schema);
        }
        for kind in ["requestBodies", "responses"] {
            if let Some(objects) = components.get_mut(kind).and_then(Value::as_object_mut) {
                objects.values_mut().for_each(translate_content);
            }
        }
    }
    let Some(paths) = root.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for method in METHODS {
            let Some(operation) = item.get_mut(method) else {
                continue;
            };
            if let Some(request_body) = operation.get_mut("requestBody") {
                translate_content(request_body);
            }
            if let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            {
                responses.values_mut().for_each(translate_content);
            }
        }
    }
}

/// Translates the schemas of a request body or response object; adds the empty schema
/// `x-preview-any` to JSON media types that describe none.
fn translate_content(object: &mut Value) {
    let Some(content) = object.get_mut("content").and_then(Value::as_object_mut) else {
        return;
    };
    for media in content.values_mut() {
        let Some(media) = media.as_object_mut() else {
            continue;
        };
        match media.get_mut("schema") {
            Some(schema) => translate_schema(schema),
            None => {
                media.insert("x-preview-any".to_owned(), Value::Object(Map::new()));
            }
        }
    }
}

/// Translates one OpenAPI 3.0 schema object and, recursively, its subschemas.
fn translate_schema(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    for keyword in ["discriminator", "example", "xml", "externalDocs"] {
        map.remove(keyword);
    }
    for keyword in ["properties", "patternProperties"] {
        if let Some(children) = map.get_mut(keyword).and_then(Value::as_object_mut) {
            children.values_mut().for_each(translate_schema);
        }
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if let Some(children) = map.get_mut(keyword).and_then(Value::as_array_mut) {
            children.iter_mut().for_each(translate_schema);
        }
    }
    for keyword in ["items", "additionalProperties", "not"] {
        match map.get_mut(keyword) {
            Some(Value::Array(children)) => children.iter_mut().for_each(translate_schema),
            Some(child) => translate_schema(child),
            None => {}
        }
    }
    if map.remove("nullable") != Some(Value::Bool(true)) {
        return;
    }
    let composed = ["$ref", "allOf", "anyOf", "oneOf", "not"]
        .iter()
        .any(|keyword| map.contains_key(*keyword));
    match map.get("type").and_then(Value::as_str) {
        Some(ty) if !composed => {
            let ty = ty.to_owned();
            map.insert("type".to_owned(), serde_json::json!([ty, "null"]));
            if let Some(values) = map.get_mut("enum").and_then(Value::as_array_mut)
                && !values.contains(&Value::Null)
            {
                values.push(Value::Null);
            }
        }
        // Without a plain type (or with a `$ref`, whose siblings draft 4 ignores), `null` has to
        // be a separate alternative.
        _ => {
            let inner = std::mem::take(map);
            map.insert(
                "anyOf".to_owned(),
                serde_json::json!([Value::Object(inner), {"type": "null"}]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nullable_becomes_a_null_type_or_alternative() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "nullable": true, "example": "x"},
                "kind": {"type": "string", "enum": ["a"], "nullable": true},
                "user": {"nullable": true, "allOf": [{"$ref": "#/components/schemas/user"}]},
                "nullable": {"type": "boolean"},
            },
            "discriminator": {"propertyName": "kind"},
        });
        translate_schema(&mut schema);
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": ["string", "null"]},
                    "kind": {"type": ["string", "null"], "enum": ["a", null]},
                    "user": {"anyOf": [{"allOf": [{"$ref": "#/components/schemas/user"}]}, {"type": "null"}]},
                    "nullable": {"type": "boolean"},
                },
            })
        );
    }

    #[test]
    fn segments_and_paths() {
        assert_eq!(Segment::parse("{app_name}"), Segment::Param);
        assert_eq!(Segment::parse("apps"), Segment::Literal("apps".into()));
        assert!(Segment::parse("{name}.json").matches("a.json"));
        assert!(!Segment::parse("{name}.json").matches(".json"));
        assert!(!Segment::Param.matches(""));
        assert_eq!(strip_to_path("/v1/apps?wait=true"), "/v1/apps");
        assert_eq!(strip_to_path("http://127.0.0.1:4010/v1/apps?x"), "/v1/apps");
        assert_eq!(strip_to_path("http://127.0.0.1:4010"), "/");
    }

    /// Every body schema of every description we use compiles: a validator that cannot compile a
    /// schema checks nothing there.
    #[test]
    fn every_body_schema_compiles() {
        for file in [
            "fly-machines.openapi.fixed.json",
            "vercel.trimmed.validatable.json",
            "github-rest.trimmed.json",
        ] {
            let api = match OpenApi::load(specs_dir().join(file)) {
                Ok(api) => api,
                Err(err) => panic!("{err}"),
            };
            let mut compiled = 0;
            for op in &api.operations {
                let operation = api.node(&op.pointer).cloned().unwrap_or_default();
                let mut bodies = Vec::new();
                if let Some(rb) = operation.get("requestBody") {
                    bodies.push(api.follow(format!("{}/requestBody", op.pointer), rb));
                }
                for (status, response) in operation
                    .get("responses")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let pointer = format!("{}/responses/{}", op.pointer, escape(status));
                    bodies.push(api.follow(pointer, response));
                }
                for body in bodies {
                    let (pointer, object) = match body {
                        Ok(found) => found,
                        Err(err) => panic!("{err}"),
                    };
                    if let Ok(Some(schema)) = json_schema_pointer(&pointer, object) {
                        if let Err(err) = api.validator(&schema) {
                            panic!("{file}: #{schema}: {err}");
                        }
                        compiled += 1;
                    }
                }
            }
            assert!(compiled > 10, "{file}: only {compiled} body schemas");
        }
    }
}
