//! Shared test setup, and the ONE place bodies are checked against the Vercel OpenAPI description.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

// The builders' base URL, timeout and retry setters, for every test file (`use common::*`).
#[allow(unused_imports)]
pub use preview_core::http::ClientSettings;
use preview_core::{AppRef, AppSpec, EnvVar, Naming, PrNumber, PreviewName, Value};
use preview_testkit::fakes::vercel::{Exchange, FakeVercel};
use providers_vercel::VercelApps;
use serde_json::Value as Json;
use wiremock::{MockServer, ResponseTemplate};

/// A token no message may ever show.
pub const TOKEN: &str = "tok-SENTINEL-4f9a2c";
/// A secret value no message may ever show.
pub const SECRET: &str = "sekret-SENTINEL-77e1";
pub const TEAM: &str = "team_preview";
pub const API: &str = "prj_api";
pub const UI: &str = "prj_ui";
pub const BRANCH: &str = "feat/login-flow";
pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

pub fn fake() -> FakeVercel {
    FakeVercel::new(TOKEN)
        .team(TEAM)
        .project(API, "agents-api")
        .project(UI, "agents-manage-ui")
}

pub fn host(server: &MockServer) -> VercelApps {
    VercelApps::builder()
        .token(TOKEN)
        .team_id(TEAM)
        .base_url(server.uri())
        .build()
        .expect("valid settings")
}

/// A host that sends every request once, to see how one answer is classified.
#[allow(dead_code)] // not every test file uses it
pub fn host_once(server: &MockServer) -> VercelApps {
    VercelApps::builder()
        .token(TOKEN)
        .team_id(TEAM)
        .base_url(server.uri())
        .retry(preview_core::RetryConfig::none())
        .build()
        .expect("valid settings")
}

/// A host for a test on tokio's paused clock (`start_paused = true`, so every wait lands on
/// whole milliseconds), with the deployment waits it logs recorded: no real sleeping. The host
/// has no client timeouts, which would fire while the local fake answers.
pub fn host_with_clock(server: &MockServer) -> (VercelApps, WaitClock) {
    let clock = WaitClock::start();
    let host = VercelApps::builder()
        .token(TOKEN)
        .team_id(TEAM)
        .base_url(server.uri())
        .without_timeouts()
        .build()
        .expect("valid settings");
    (host, clock)
}

/// Time on the test's paused tokio clock since [`host_with_clock`], and every deployment wait
/// the host logged (`waiting for the deployment`, `delay_ms`), in order. Records on this thread
/// while it lives.
pub struct WaitClock {
    start: tokio::time::Instant,
    sleeps: Arc<Mutex<Vec<Duration>>>,
    _recording: tracing::subscriber::DefaultGuard,
}

impl WaitClock {
    fn start() -> Self {
        let sleeps = Arc::new(Mutex::new(Vec::new()));
        let recording = tracing::subscriber::set_default(WaitLog(sleeps.clone()));
        Self {
            start: tokio::time::Instant::now(),
            sleeps,
            _recording: recording,
        }
    }

    /// Time slept so far (virtual).
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Every deployment wait, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

/// A subscriber keeping the `delay_ms` of each `waiting for the deployment` event.
struct WaitLog(Arc<Mutex<Vec<Duration>>>);

#[derive(Default)]
struct WaitFields {
    message: String,
    delay_ms: Option<u64>,
}

impl tracing::field::Visit for WaitFields {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "delay_ms" {
            self.delay_ms = Some(value);
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for WaitLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = WaitFields::default();
        event.record(&mut fields);
        if let (true, Some(ms)) = (
            fields.message == "waiting for the deployment",
            fields.delay_ms,
        ) {
            self.0.lock().unwrap().push(Duration::from_millis(ms));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

pub fn name(pr: u64) -> PreviewName {
    Naming::new("pr", "agents")
        .expect("valid naming")
        .name(PrNumber::new(pr).expect("valid PR number"))
}

pub fn var(key: &str, value: &str) -> EnvVar {
    EnvVar {
        key: key.into(),
        value: Value::Plain(value.into()),
        sensitive: false,
    }
}

pub fn secret(key: &str, value: &str) -> EnvVar {
    EnvVar {
        key: key.into(),
        value: Value::Secret(value.to_string().into()),
        sensitive: false,
    }
}

pub fn spec(project: &str, domain: Option<&str>, env: Vec<EnvVar>) -> AppSpec {
    AppSpec {
        target: AppRef {
            app: if project == UI {
                "ui".into()
            } else {
                "api".into()
            },
            project: project.into(),
            domain: domain.map(str::to_string),
        },
        branch: BRANCH.into(),
        env,
        adopt_existing: false,
        deploy_timeout: Duration::from_secs(600),
        // As the pipeline sends it: a key derived from the master secret (here a fixed one), so
        // runs with the same spec compare equal, comments included.
        fingerprint_key: Some(preview_core::DigestKey::from_bytes([0x5a; 32])),
    }
}

pub fn commit() -> preview_core::Commit {
    preview_core::Commit {
        repo: "inkeep/agents".into(),
        branch: BRANCH.into(),
        sha: SHA.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Spec validation: every request body sent and every response body used goes through here.

/// Checks one request body against the spec.
pub fn check_request(method: &str, path: &str, body: &Json) {
    spec_check::request(method, path, body);
}

/// Checks one response body against the spec. Error statuses have no body schema in the spec:
/// they are checked against the documented `{"error":{"code","message"}}` shape instead.
pub fn check_response(method: &str, path: &str, status: u16, body: &Json) {
    if status >= 400 {
        let e = body.get("error").unwrap_or_else(|| {
            panic!("{method} {path} {status}: error body without `error`: {body}")
        });
        assert!(
            e.get("code").is_some_and(Json::is_string)
                && e.get("message").is_some_and(Json::is_string),
            "{method} {path} {status}: error body must carry code and message: {body}"
        );
        return;
    }
    spec_check::response(method, path, status, body);
}

/// Checks every exchange the fake answered (requests sent by the client, responses it used).
pub fn check_exchanges(exchanges: &[Exchange]) {
    assert!(!exchanges.is_empty(), "no exchange to check");
    for x in exchanges {
        if let Some(body) = &x.request {
            check_request(&x.method, &x.path, body);
        }
        check_response(&x.method, &x.path, x.status, &x.response);
    }
}

/// Checks every request body a plain wiremock server received.
pub async fn check_received(server: &MockServer) {
    let received = server.received_requests().await.expect("recording is on");
    for r in received {
        if r.body.is_empty() {
            continue;
        }
        let body: Json = serde_json::from_slice(&r.body).expect("JSON request body");
        check_request(r.method.as_str(), r.url.path(), &body);
    }
}

/// A mock response whose body is checked against the spec first.
pub fn respond(method: &str, path: &str, status: u16, body: Json) -> ResponseTemplate {
    check_response(method, path, status, &body);
    ResponseTemplate::new(status)
        .set_body_json(body)
        .insert_header("x-vercel-id", "iad1::mock-request-id")
}

mod spec_check {
    use std::sync::OnceLock;

    use preview_testkit::openapi::{OpenApi, specs_dir};
    use serde_json::Value as Json;

    /// The strict-validator form of `vercel.trimmed.fixed.json` (same operations and schemas; see
    /// `preview-core/testkit/specs/SOURCES.md`): without its two repairs, half the body schemas do not compile.
    const SPEC: &str = "vercel.trimmed.validatable.json";

    fn spec() -> &'static OpenApi {
        static SPEC_DOC: OnceLock<OpenApi> = OnceLock::new();
        SPEC_DOC.get_or_init(|| {
            OpenApi::load(specs_dir().join(SPEC))
                .unwrap_or_else(|e| panic!("cannot load {SPEC}: {e}"))
        })
    }

    pub(super) fn request(method: &str, path: &str, body: &Json) {
        if let Err(e) = spec().check_request(method, path, body) {
            panic!("request body does not conform to the Vercel spec:\n{e}\nbody: {body}");
        }
    }

    pub(super) fn response(method: &str, path: &str, status: u16, body: &Json) {
        if let Err(e) = spec().check_response(method, path, status, body) {
            panic!("response body does not conform to the Vercel spec:\n{e}\nbody: {body}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reliability suites (tests/reliability.rs).

/// A host for tests on a paused tokio clock: no client timeouts (they would fire spuriously while
/// the local fake answers), deployment waits and retry back-off on tokio's virtual time.
pub fn paused_host(server: &MockServer) -> VercelApps {
    VercelApps::builder()
        .token(TOKEN)
        .team_id(TEAM)
        .base_url(server.uri())
        .without_timeouts()
        .build()
        .expect("valid settings")
}

/// [`paused_host`] sending every request once (the caller's retry loop sees each attempt).
#[allow(dead_code)] // not every test file uses it
pub fn paused_host_once(server: &MockServer) -> VercelApps {
    VercelApps::builder()
        .token(TOKEN)
        .team_id(TEAM)
        .base_url(server.uri())
        .without_timeouts()
        .retry(preview_core::RetryConfig::none())
        .build()
        .expect("valid settings")
}
