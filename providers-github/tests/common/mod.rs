//! The one place every request body sent and every mock response body used goes through: each is
//! validated with `preview_testkit::openapi` against GitHub's OpenAPI description
//! (the vendored `github-rest.trimmed.json`, `preview-core/testkit/specs`), and a non-conforming body fails the test.
#![allow(dead_code, unreachable_pub)]

use std::sync::OnceLock;

use preview_testkit::openapi::{OpenApi, specs_dir};
use serde_json::Value;
use wiremock::{MockServer, ResponseTemplate};

use preview_testkit::fakes::github::{FakeGitHub, REPOSITORY, TOKEN};
use providers_github::GitHubSourceBuilder;

/// A builder of the real client pointed at a fake (the fakes live in the test kit, which cannot
/// depend on this crate).
pub trait FakeGitHubExt {
    /// Token, repository, base URL, writes spaced 1 ms apart so real-time tests stay fast, and no
    /// client timeouts so tests on a paused tokio clock work (see
    /// [`GitHubSourceBuilder::without_timeouts`]).
    fn builder(&self) -> GitHubSourceBuilder;
}

impl FakeGitHubExt for FakeGitHub {
    fn builder(&self) -> GitHubSourceBuilder {
        use preview_core::http::ClientSettings;
        GitHubSourceBuilder::new()
            .token(TOKEN)
            .repository(REPOSITORY)
            .base_url(self.uri())
            .write_spacing(std::time::Duration::from_millis(1))
            .without_timeouts()
    }
}

/// GitHub's description, loaded once per test binary.
pub fn spec() -> &'static OpenApi {
    static SPEC: OnceLock<OpenApi> = OnceLock::new();
    SPEC.get_or_init(|| {
        OpenApi::load(specs_dir().join("github-rest.trimmed.json"))
            .unwrap_or_else(|e| panic!("cannot load the GitHub spec: {e}"))
    })
}

/// Validates a request body (`None`: no body was sent).
pub fn check_request(method: &str, path: &str, body: Option<&Value>) {
    if let Err(e) = spec().check_request(method, path, body.unwrap_or(&Value::Null)) {
        panic!("request {method} {path} does not conform to the GitHub spec: {e}");
    }
}

/// Validates a response body (`None`: no body).
///
/// GitHub answers rate limits (403/429) and server errors on endpoints whose description does
/// not list those statuses. Such an error status is checked against GitHub's `basic-error`
/// schema, through an operation that does describe it (a 404 of `GET …/deployments/{id}`).
pub fn check_response(method: &str, path: &str, status: u16, body: Option<&Value>) {
    let body = body.unwrap_or(&Value::Null);
    let result = match spec().check_response(method, path, status, body) {
        Err(e) if status >= 400 && e.contains("status not described") => spec()
            .check_response("GET", "/repos/o/r/deployments/1", 404, body)
            .map_err(|basic| format!("{e}; as a basic-error: {basic}")),
        other => other,
    };
    if let Err(e) = result {
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

/// What the fake holds, with ids dropped, for comparing runs: comments of `issue` (author,
/// body), deployments (sha, environment, statuses as state / URLs / description), environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub comments: Vec<(String, String)>,
    pub deployments: Vec<(String, String, Vec<[String; 4]>)>,
    pub environments: Vec<String>,
}

pub fn observe(fake: &FakeGitHub, issue: u32) -> Observed {
    Observed {
        comments: fake
            .comments(issue)
            .into_iter()
            .map(|c| (c.author, c.body))
            .collect(),
        deployments: fake
            .deployments()
            .into_iter()
            .map(|d| {
                let statuses = d
                    .statuses
                    .into_iter()
                    .map(|s| {
                        [
                            s.state,
                            s.environment_url.unwrap_or_default(),
                            s.log_url.unwrap_or_default(),
                            s.description,
                        ]
                    })
                    .collect();
                (d.sha, d.environment, statuses)
            })
            .collect(),
        environments: fake.environments(),
    }
}
