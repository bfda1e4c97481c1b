//! Issue 14 item 7: an answer that cannot be used is blamed on the call that got it. For every
//! Machines API call the host decodes, one answer is replaced by a malformed one (the stateful
//! fake answers everything else), and the error must name that call and say the answer could not
//! be read, never a later call's symptom (a 404 of an app that was never created).
//!
//! The malformed answers are valid against the spec where it allows (it marks no field required,
//! so `{}` is a valid `CreateAppResponse`: checked with `common::respond`), and otherwise not JSON
//! at all (which no description can vouch for).

mod common;

use std::time::Duration;

use common::*;
use preview_core::http::ClientSettings;
use preview_core::{DatabaseHost, Error, RetryConfig};
use preview_testkit::fakes::fly::FakeFly;
use providers_fly::FlyDatabases;
use serde_json::{Value as Json, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A host that sends each request once (a malformed answer is not retried anyway; this keeps
/// the request log short) with fast polls.
fn once(uri: &str) -> FlyDatabases {
    FlyDatabases::builder()
        .token(TOKEN)
        .org(ORG)
        .naming(naming())
        .base_url(uri)
        .poll_interval(Duration::from_millis(5))
        .retry(RetryConfig::none())
        .build()
        .unwrap()
}

/// Answers the next `method` request whose path matches `path` with `answer`, in front of the
/// fake.
async fn break_next(server: &MockServer, m: &str, path: &str, answer: ResponseTemplate) {
    Mock::given(method(m))
        .and(path_regex(path))
        .respond_with(answer)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
}

/// A spec-valid answer (checked) that lacks what we need.
fn valid(m: &str, spec_path: &str, status: u16, body: Json) -> ResponseTemplate {
    respond(m, spec_path, status, body)
}

/// An answer that is not JSON.
fn garbage(status: u16) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("fly-request-id", "01MOCKREQ")
        .set_body_string("<html>502 upstream says hello</html>")
}

/// The error names `call` (which may be followed by the Machine's id and app, unknown here) in
/// the same clause as "the answer could not be read: `why`".
fn assert_names(err: &Error, call: &str, why: &str) {
    let text = err.to_string();
    let tail = format!(": the answer could not be read: {why}");
    let named = text.find(call).is_some_and(|at| {
        text[at..]
            .find(&tail)
            .is_some_and(|end| !text[at..at + end].contains(": "))
    });
    assert!(
        named,
        "expected the error to name {call:?} ({why}), got: {text}"
    );
}

#[tokio::test]
async fn a_malformed_answer_to_the_app_create_is_reported_as_such() {
    for (answer, why) in [
        (
            valid("POST", "/v1/apps", 201, json!({})),
            "required field `id` is missing",
        ),
        (garbage(201), "it is not JSON"),
    ] {
        let (server, fake) = FakeFly::start(ORG, TOKEN).await;
        break_next(&server, "POST", "^/v1/apps$", answer).await;
        let n = name(42);
        let err = once(&server.uri())
            .apply_database(&n, &prototype_spec(&n))
            .await
            .unwrap_err();
        assert_names(&err, "create app pr-42-agents", why);
        assert!(!err.to_string().contains("not found"), "{err}");
        // Nothing was sent after the bad answer.
        let last = fake.exchanges().last().map(|x| x.path.clone());
        assert_eq!(last.as_deref(), Some("/v1/apps/pr-42-agents"), "{err}");
        assert!(
            !err.to_string().contains("upstream says hello"),
            "the body is never quoted: {err}"
        );
    }
}

/// A deployed environment whose Machine config changed, so an apply goes through every call of
/// an update (app, secrets, IPs, machines, lease, machine, wait).
async fn deployed(pr: u64) -> (MockServer, FakeFly, preview_core::PreviewName) {
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    let n = name(pr);
    once(&server.uri())
        .apply_database(&n, &prototype_spec(&n))
        .await
        .unwrap();
    (server, fake, n)
}

fn changed(n: &preview_core::PreviewName) -> preview_core::DatabaseSpec {
    let mut spec = prototype_spec(n);
    spec.size.memory_mb = 8192;
    spec
}

#[tokio::test]
async fn every_decoded_answer_names_its_call() {
    // (method, path regex, spec path, bad answer, the call named, why, what runs)
    #[derive(Clone, Copy)]
    enum Run {
        FirstApply,
        Update,
        List,
        Delete,
    }
    let app = "/v1/apps/pr-(\\d+)-agents";
    let cases: Vec<(&str, String, ResponseTemplate, &str, &str, Run)> = vec![
        (
            "GET",
            format!("^{app}$"),
            valid("GET", "/v1/apps/x", 200, json!({"id": "app1"})),
            "read app pr-N-agents",
            "required field `name` is missing",
            Run::Update,
        ),
        (
            "GET",
            format!("^{app}/secrets$"),
            valid("GET", "/v1/apps/x/secrets", 200, json!({})),
            "list secrets of app pr-N-agents",
            "required field `secrets` is missing",
            Run::Update,
        ),
        (
            "POST",
            format!("^{app}/secrets$"),
            garbage(200),
            "write secrets of app pr-N-agents",
            "it is not JSON",
            Run::FirstApply,
        ),
        (
            "GET",
            format!("^{app}/ip_assignments$"),
            valid("GET", "/v1/apps/x/ip_assignments", 200, json!({})),
            "list IP assignments of app pr-N-agents",
            "required field `ips` is missing",
            Run::Update,
        ),
        (
            "POST",
            format!("^{app}/ip_assignments$"),
            garbage(200),
            "assign a v4 IP to app pr-N-agents",
            "it is not JSON",
            Run::FirstApply,
        ),
        (
            "GET",
            format!("^{app}/machines$"),
            valid("GET", "/v1/apps/x/machines", 200, json!([{}])),
            "list machines of app pr-N-agents",
            "required field `id` is missing",
            Run::Update,
        ),
        (
            "POST",
            format!("^{app}/machines$"),
            valid(
                "POST",
                "/v1/apps/x/machines",
                200,
                json!({"state": "created"}),
            ),
            "create a machine in app pr-N-agents",
            "required field `id` is missing",
            Run::FirstApply,
        ),
        (
            "GET",
            format!("^{app}/machines/[^/]+$"),
            valid("GET", "/v1/apps/x/machines/m", 200, json!({"id": "m"})),
            "read machine",
            "required field `state` is missing",
            Run::Update,
        ),
        (
            "POST",
            format!("^{app}/machines/[^/]+$"),
            valid("POST", "/v1/apps/x/machines/m", 200, json!({})),
            "update machine",
            "required field `id` is missing",
            Run::Update,
        ),
        (
            "POST",
            format!("^{app}/machines/[^/]+/lease$"),
            valid("POST", "/v1/apps/x/machines/m/lease", 201, json!({})),
            "take a lease on machine",
            "it carries no nonce",
            Run::Update,
        ),
        (
            "GET",
            format!("^{app}/machines/[^/]+/wait$"),
            valid(
                "GET",
                "/v1/apps/x/machines/m/wait",
                200,
                json!({"state": "started"}),
            ),
            "wait for machine",
            "required field `ok` is missing",
            Run::FirstApply,
        ),
        (
            "GET",
            "^/v1/apps$".to_string(),
            valid("GET", "/v1/apps", 200, json!({"total_apps": 1})),
            "list apps of organization acme",
            "required field `apps` is missing",
            Run::List,
        ),
        (
            "GET",
            format!("^{app}$"),
            valid("GET", "/v1/apps/x", 200, json!({"name": "pr-N-agents"})),
            "read app pr-N-agents",
            "required field `organization` is missing",
            Run::Delete,
        ),
    ];
    for (i, (m, path, answer, call, why, run)) in cases.into_iter().enumerate() {
        let pr = 60 + i as u64;
        let call = call.replace("pr-N-agents", &format!("pr-{pr}-agents"));
        let why = why.replace("pr-N-agents", &format!("pr-{pr}-agents"));
        let err = match run {
            Run::FirstApply => {
                let (server, _fake) = FakeFly::start(ORG, TOKEN).await;
                break_next(&server, m, &path, answer).await;
                let n = name(pr);
                once(&server.uri())
                    .apply_database(&n, &prototype_spec(&n))
                    .await
                    .unwrap_err()
            }
            Run::Update => {
                let (server, _fake, n) = deployed(pr).await;
                break_next(&server, m, &path, answer).await;
                once(&server.uri())
                    .apply_database(&n, &changed(&n))
                    .await
                    .unwrap_err()
            }
            Run::List => {
                let (server, _fake, _n) = deployed(pr).await;
                break_next(&server, m, &path, answer).await;
                once(&server.uri()).list_databases().await.unwrap_err()
            }
            Run::Delete => {
                let (server, _fake, n) = deployed(pr).await;
                break_next(&server, m, &path, answer).await;
                once(&server.uri()).delete_database(&n).await.unwrap_err()
            }
        };
        assert_names(&err, &call, &why);
        assert!(
            matches!(err, Error::Api { .. }),
            "{m} {path}: an API error, never retried as transient: {err:?}"
        );
        assert!(!err.is_retryable(preview_core::Idempotency::Idempotent));
    }
}

/// Reading the Machine's events (for a failure's diagnostics) names its call too, inside the
/// failure it explains.
#[tokio::test]
async fn unreadable_events_are_named_in_the_failure_they_explain() {
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    fake.set_boot_state("failed");
    break_next(
        &server,
        "GET",
        "^/v1/apps/pr-80-agents/machines/[^/]+/events$",
        garbage(200),
    )
    .await;
    let n = name(80);
    let err = once(&server.uri())
        .apply_database(&n, &prototype_spec(&n))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("events unavailable")
            && text.contains("list events of machine")
            && text.contains("the answer could not be read: it is not JSON"),
        "{text}"
    );
}
