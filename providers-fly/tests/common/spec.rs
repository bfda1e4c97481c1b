//! Checks bodies against `fly-machines.openapi.fixed.json` with preview-core's shared validator
//! (`preview_testkit::openapi`).
//!
//! The Fly description documents almost no error statuses (no 401, 404 on most operations, 429 or
//! 5xx). An error status it does not describe is checked against `ErrorResponse`, the body every
//! Fly error has, through an operation that describes it (`GET /v1/apps` → 400).

use std::sync::OnceLock;

use preview_testkit::openapi::{OpenApi, specs_dir};
use serde_json::Value as Json;

fn fly() -> &'static OpenApi {
    static SPEC: OnceLock<OpenApi> = OnceLock::new();
    SPEC.get_or_init(|| {
        OpenApi::load(specs_dir().join("fly-machines.openapi.fixed.json"))
            .unwrap_or_else(|e| panic!("cannot load the Fly description: {e}"))
    })
}

/// Checks a request body against the operation's request schema.
pub fn check_request(method: &str, path: &str, body: &Json) -> Result<(), String> {
    fly().check_request(method, path, body)
}

/// Checks a response body against the operation's response schema for `status`.
pub fn check_response(method: &str, path: &str, status: u16, body: &Json) -> Result<(), String> {
    match fly().check_response(method, path, status, body) {
        Err(e) if status >= 400 && e.contains("status not described") => fly()
            .check_response("GET", "/v1/apps", 400, body)
            .map_err(|inner| format!("{e}; as an ErrorResponse: {inner}")),
        other => other,
    }
}

#[test]
fn the_checker_rejects_what_it_should() {
    use serde_json::json;
    // A wrong type, a bad enum, a body where none is taken, a wrong shape, an enum inside a config.
    assert!(check_request("POST", "/v1/apps", &json!({"name": 1})).is_err());
    assert!(check_request("POST", "/v1/apps/a/ip_assignments", &json!({"type": "v5"})).is_err());
    assert!(check_request("GET", "/v1/apps/a", &json!({"x": 1})).is_err());
    assert!(
        check_response(
            "GET",
            "/v1/apps/a/machines",
            200,
            &json!({"not": "an array"})
        )
        .is_err()
    );
    assert!(
        check_response(
            "POST",
            "/v1/apps/a/machines",
            200,
            &json!({"config": {"containers": [{"depends_on": [{"condition": "bogus"}]}]}})
        )
        .is_err()
    );
    // Undocumented error statuses must still look like ErrorResponse.
    assert!(check_response("GET", "/v1/apps/a", 503, &json!({"error": 5})).is_err());
    assert!(check_response("GET", "/v1/apps/a", 503, &json!({"error": "down"})).is_ok());
    assert!(check_request("POST", "/v1/apps", &json!({"name": "a", "org_slug": "b"})).is_ok());
}
