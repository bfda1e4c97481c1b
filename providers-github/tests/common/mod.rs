//! The one place every request body sent and every mock response body used goes through: each is
//! validated against GitHub's OpenAPI description (`shared/specs/github-rest.trimmed.json`), and a
//! non-conforming body fails the test.
#![allow(dead_code, unreachable_pub)]

mod schema;

use serde_json::Value;
use wiremock::{MockServer, ResponseTemplate};

use providers_github::testing::FakeGitHub;

/// Validates a request body (`None`: no body was sent).
pub fn check_request(method: &str, path: &str, body: Option<&Value>) {
    if let Err(e) = schema::spec().check_request(method, path, body) {
        panic!("request {method} {path} does not conform to the GitHub spec: {e}");
    }
}

/// Validates a response body (`None`: no body).
pub fn check_response(method: &str, path: &str, status: u16, body: Option<&Value>) {
    if let Err(e) = schema::spec().check_response(method, path, status, body) {
        panic!("response {status} to {method} {path} does not conform to the GitHub spec: {e}");
    }
}

/// A mock response with a JSON body, validated first.
pub fn respond(method: &str, path: &str, status: u16, body: Value) -> ResponseTemplate {
    check_response(method, path, status, Some(&body));
    ResponseTemplate::new(status)
        .insert_header("x-github-request-id", "MOCK:1")
        .set_body_json(body)
}

/// A mock response without a body (204, 304), validated first.
pub fn respond_empty(method: &str, path: &str, status: u16) -> ResponseTemplate {
    check_response(method, path, status, None);
    ResponseTemplate::new(status).insert_header("x-github-request-id", "MOCK:1")
}

/// Validates every request body the server received; returns how many requests there were.
pub async fn check_received(server: &MockServer) -> usize {
    let requests = server.received_requests().await.unwrap_or_default();
    for r in &requests {
        let body: Option<Value> = if r.body.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&r.body).expect("request bodies are JSON"))
        };
        check_request(r.method.as_str(), r.url.path(), body.as_ref());
    }
    requests.len()
}

/// Validates every request and response body of the fake's exchanges (injected faults included).
pub fn check_exchanges(fake: &FakeGitHub) -> usize {
    let exchanges = fake.exchanges();
    for e in &exchanges {
        check_request(&e.method, &e.path, e.request.as_ref());
        check_response(&e.method, &e.path, e.status, e.response.as_ref());
    }
    exchanges.len()
}
