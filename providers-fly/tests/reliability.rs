//! Reliability suites of issue 7 against the real Fly client over HTTP, numbered as in
//! the README's reliability table: the same proof as `preview-core/tests/reliability.rs`, but
//! through request building, status mapping and decoding, against the stateful fake with seeded
//! HTTP faults (`preview_testkit::HttpChaos`).
//!
//! Everything that retries runs on a paused tokio clock (the host is built `without_timeouts`),
//! so back-off costs no wall time. Default case counts keep the file fast;
//! `PREVIEW_RELIABILITY_FULL=1` runs the full counts.

mod common;

use std::future::Future;
use std::time::Duration;

use common::spec;
use common::*;
use preview_core::http::ClientSettings;
use preview_core::{
    DatabaseHost, DatabaseSpec, Deleted, Idempotency, PreviewName, Result, RetryConfig, retry,
};
use preview_testkit::fakes::fly::FakeFly;
use preview_testkit::http_chaos::{
    HttpChaos, cases, full_counts as full, percent_decode as decode, random_strings,
};
use providers_fly::FlyDatabases;
use serde_json::{Value as Json, json};

/// What the pipeline does with every provider call: the whole operation, retried as idempotent
/// with the default policy.
async fn retried<T, F, Fut>(what: &str, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    retry(&RetryConfig::default(), what, Idempotency::Idempotent, op).await
}

/// The second spec of a life cycle: the same stack with a changed image and size, so the second
/// apply updates the Machine under a lease.
fn changed(spec: &DatabaseSpec) -> DatabaseSpec {
    let mut s = spec.clone();
    s.containers[1].image = "postgres:18.1".into();
    s.size.memory_mb = 8192;
    s
}

/// The fake's state of `app` with ids, versions, addresses and timestamps left out.
fn snapshot(fake: &FakeFly, app: &str) -> Json {
    let mut ips: Vec<Json> = fake
        .ips(app)
        .iter()
        .map(|i| {
            let ip = i["ip"].as_str().unwrap_or_default();
            json!({
                "family": if ip.contains(':') { "v6" } else { "v4" },
                "shared": i["shared"], "egress": i["egress"], "service_name": i["service_name"],
            })
        })
        .collect();
    ips.sort_by_key(|i| i.to_string());
    let machines: Vec<Json> = fake
        .machines(app)
        .iter()
        .map(|m| {
            let checks: Vec<Json> = m["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| json!({"name": c["name"], "status": c["status"]}))
                .collect();
            json!({
                "name": m["name"], "state": m["state"], "region": m["region"],
                "config": m["config"], "checks": checks,
            })
        })
        .collect();
    // Which known value each secret holds (the fake keeps digests only).
    let secrets: Vec<(String, &str)> = fake
        .secret_names(app)
        .into_iter()
        .map(|s| {
            let holds = [
                (PG_PASSWORD, "pg password"),
                (SPICEDB_KEY, "spicedb key"),
                (app, "marker"),
            ]
            .into_iter()
            .find(|(v, _)| fake.secret_is(app, &s, v))
            .map_or("something else", |(_, what)| what);
            (s, holds)
        })
        .collect();
    json!({
        "apps": fake.apps(),
        "secrets": secrets,
        "ips": ips,
        "machines": machines,
        "leases": fake.leases_of(app),
    })
}

/// Resources of `app` left in the fake (apps, Machines, secrets, IPs, leases).
fn leftovers(fake: &FakeFly, app: &str) -> Vec<String> {
    let mut left = Vec::new();
    if fake.apps().iter().any(|a| a == app) {
        left.push(format!("app {app}"));
    }
    left.extend(
        fake.machines(app)
            .iter()
            .map(|m| format!("machine {}", m["id"])),
    );
    left.extend(fake.secret_names(app).iter().map(|s| format!("secret {s}")));
    left.extend(fake.ips(app).iter().map(|i| format!("ip {}", i["ip"])));
    if fake.leases_of(app) > 0 {
        left.push(format!("{} lease(s)", fake.leases_of(app)));
    }
    left
}

/// Deploys: apply, get, list, apply a changed spec. Returns the state after the deploy.
async fn deploy(host: &FlyDatabases, n: &PreviewName, spec: &DatabaseSpec, case: &str) {
    let first = retried("apply database", || host.apply_database(n, spec))
        .await
        .unwrap_or_else(|e| panic!("{case}: first apply: {e:?}"));
    assert_eq!(first.database.name, *n);
    let got = retried("get database", || host.get_database(n))
        .await
        .unwrap_or_else(|e| panic!("{case}: get: {e:?}"))
        .expect("the applied database is there");
    assert_eq!(got.name, *n);
    let listed = retried("list databases", || host.list_databases())
        .await
        .unwrap_or_else(|e| panic!("{case}: list: {e:?}"));
    assert_eq!(
        listed.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        [n.as_str()]
    );
    let second = changed(spec);
    retried("apply database", || host.apply_database(n, &second))
        .await
        .unwrap_or_else(|e| panic!("{case}: second apply: {e:?}"));
}

async fn teardown(host: &FlyDatabases, n: &PreviewName) -> Deleted {
    retried("delete database", || host.delete_database(n))
        .await
        .unwrap_or_else(|e| panic!("delete of {n}: {e:?}"))
}

/// R1 + R2 + R3 for one seed (or none): the deployed state, and the counts seen.
async fn life_cycle(seed: Option<u64>) -> (Json, usize, u32) {
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    let host = paused_host(&server.uri());
    let n = name(42);
    let app = n.as_str().to_string();
    let spec = prototype_spec(&n);
    let chaos = |k: u64| {
        seed.map(|s| HttpChaos::new(s.wrapping_mul(2).wrapping_add(k), 0.3).max_consecutive(7))
    };
    if let Some(c) = chaos(0) {
        fake.chaos(c);
    }
    deploy(&host, &n, &spec, &format!("seed {seed:?}")).await;
    fake.calm();
    let deployed = snapshot(&fake, &app);
    // R3: a second deploy changes nothing.
    fake.clear_log();
    let second = changed(&spec);
    retried("apply database", || host.apply_database(&n, &second))
        .await
        .unwrap();
    let writes: Vec<String> = fake
        .mutating()
        .iter()
        .map(|x| format!("{} {}", x.method, x.path))
        .collect();
    assert!(
        writes.is_empty(),
        "seed {seed:?}: second deploy wrote {writes:?}"
    );
    // R2: teardown under the same kind of faults leaves nothing.
    if let Some(c) = chaos(1) {
        fake.chaos(c);
    }
    teardown(&host, &n).await;
    fake.calm();
    assert_eq!(
        leftovers(&fake, &app),
        Vec::<String>::new(),
        "seed {seed:?}: teardown left resources"
    );
    fake.clear_log();
    assert_eq!(teardown(&host, &n).await, Deleted::AlreadyGone);
    assert!(
        fake.mutating().is_empty(),
        "seed {seed:?}: second teardown wrote {:?}",
        fake.mutating()
    );
    check_exchanges(&fake);
    (deployed, fake.injected_faults(), fake.max_attempts())
}

#[tokio::test(start_paused = true)]
async fn r1_life_cycle_converges_under_seeded_http_faults_r2_teardown_leaves_nothing_r3_reruns_are_no_ops()
 {
    let (want, none, _) = life_cycle(None).await;
    assert_eq!(none, 0);
    assert_eq!(
        want["machines"].as_array().map(Vec::len),
        Some(1),
        "{want:#}"
    );
    let seeds = cases(30, 200);
    let mut injected = 0;
    let mut worst = 0;
    for seed in 0..seeds {
        let (got, faults, attempts) = life_cycle(Some(seed)).await;
        assert_eq!(
            got, want,
            "seed {seed}: deployed state differs from the fault-free run"
        );
        assert!(
            attempts <= 8,
            "seed {seed}: a request took {attempts} attempts"
        );
        injected += faults;
        worst = worst.max(attempts);
    }
    // The suite must actually have been exercised.
    assert!(
        injected as u64 > seeds * 3,
        "only {injected} faults over {seeds} seeds"
    );
    assert!(worst >= 2, "no request was ever retried");
}

/// Applies `spec` once (so the Machine exists) and returns the host, fake, name and server.
async fn deployed(
    pr: u64,
) -> (
    wiremock::MockServer,
    FakeFly,
    FlyDatabases,
    PreviewName,
    DatabaseSpec,
) {
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    let host = paused_host(&server.uri());
    let n = name(pr);
    let spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    fake.clear_log();
    (server, fake, host, n, spec)
}

/// A lease granted whose answer was lost is still ours: the retry must not run into our own
/// lease (409 until it expires) nor leave it held.
#[tokio::test(start_paused = true)]
async fn r4_a_lease_whose_grant_was_lost_is_found_and_released() {
    for status in [408, 502, 504] {
        let (_server, fake, host, n, spec) = deployed(50).await;
        fake.lose_next_response(
            "POST",
            "/lease",
            status,
            json!({"error": "lost", "status": "unknown"}),
        );
        let second = changed(&spec);
        retried("apply database", || host.apply_database(&n, &second))
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(fake.leases_held(), 0, "{status}: lease left behind");
        let m = &fake.machines(n.as_str())[0];
        assert_eq!(
            m["config"]["guest"]["memory_mb"], 8192,
            "{status}: not updated"
        );
        let grants = fake
            .exchanges()
            .iter()
            .filter(|x| x.method == "POST" && x.path.ends_with("/lease"))
            .count();
        assert_eq!(grants, 1, "{status}: a second lease was asked for");
        check_exchanges(&fake);
    }
}

/// The fault switch itself: a reject answers without acting (spec-valid ErrorResponse, with
/// Retry-After when the plan gives one), a lose acts and then answers its status, a one-shot
/// fault takes precedence, and calm() stops it all.
#[tokio::test]
async fn chaos_rejects_without_acting_and_loses_after_acting() {
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    let client = reqwest::Client::new();
    let create = |name: &str| {
        client
            .post(format!("{}/v1/apps", server.uri()))
            .bearer_auth(TOKEN)
            .json(&json!({"name": name, "org_slug": ORG}))
            .send()
    };
    // Probability 1: every request is faulted; count what each kind did to the state.
    fake.chaos(HttpChaos::new(11, 1.0));
    let (mut rejected, mut lost, mut hinted) = (0, 0, 0);
    for i in 0..60 {
        let app = format!("pr-{i}-agents");
        let r = create(&app).await.unwrap();
        let status = r.status().as_u16();
        assert!([408, 429, 500, 502, 503, 504].contains(&status), "{status}");
        let hint = r.headers().get("retry-after").is_some();
        let body: Json = r.json().await.unwrap();
        spec::check_response("POST", "/v1/apps", status, &body).unwrap();
        if fake.apps().contains(&app) {
            lost += 1;
            assert!(!hint);
        } else {
            rejected += 1;
            hinted += usize::from(hint);
            if status == 429 {
                assert!(hint, "a 429 always says when to come back");
            } else if status != 503 {
                assert!(!hint, "{status}: Retry-After only on 429 and some 503s");
            }
        }
    }
    assert!(
        rejected > 0 && lost > 0 && hinted > 0,
        "{rejected} {lost} {hinted}"
    );
    assert_eq!(fake.injected_faults(), 60);
    assert_eq!(
        fake.max_attempts(),
        60,
        "one path, faulted 60 times in a row"
    );
    // A one-shot fault wins over the plan.
    fake.fail_next("POST", "/v1/apps", 418, json!({"error": "teapot"}));
    assert_eq!(create("pr-99-agents").await.unwrap().status().as_u16(), 418);
    assert_eq!(fake.injected_faults(), 60);
    // Calm: requests act and answer normally; the counts are kept.
    fake.calm();
    assert_eq!(create("pr-98-agents").await.unwrap().status().as_u16(), 201);
    assert_eq!(fake.injected_faults(), 60);
}

// ---------------------------------------------------------------------------------------------
// R4: silent success on every create

/// A create whose request commits but whose answer is lost.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Answered with this status after acting.
    Status(u16),
    /// No answer at all: the client times out after sending.
    Dropped,
}

/// The creates of an apply: the path suffix of the POST, the lookup that must come between a lost
/// POST and any second one, and how many of the resource must exist afterwards.
const CREATES: [(&str, &str, &str); 3] = [
    ("app", "/v1/apps", ""),
    ("machine", "/machines", "/machines"),
    ("ip", "/ip_assignments", "/ip_assignments"),
];

/// Counts the created resource of `kind`: apps named `app`, Machines, IPs per family.
fn created(fake: &FakeFly, kind: &str, app: &str) -> Vec<usize> {
    match kind {
        "app" => vec![fake.apps().iter().filter(|a| *a == app).count()],
        "machine" => vec![fake.machines(app).len()],
        _ => {
            let ips = fake.ips(app);
            let v6 = ips
                .iter()
                .filter(|i| i["ip"].as_str().is_some_and(|s| s.contains(':')))
                .count();
            vec![ips.len() - v6, v6]
        }
    }
}

/// Applies with the first `kind` create lost as `loss`; checks one resource and the lookup.
async fn r4_case(host: &FlyDatabases, fake: &FakeFly, pr: u64, kind: &str, loss: Loss) {
    let (_, suffix, lookup) = CREATES.iter().find(|c| c.0 == kind).copied().unwrap();
    let n = name(pr);
    let app = n.as_str().to_string();
    let create_path = if kind == "app" {
        suffix.to_string()
    } else {
        format!("/v1/apps/{app}{suffix}")
    };
    let lookup_path = format!("/v1/apps/{app}{lookup}");
    if let Loss::Status(status) = loss {
        fake.lose_next_response(
            "POST",
            &create_path,
            status,
            json!({"error": "lost", "status": "unknown"}),
        );
    }
    let spec = prototype_spec(&n);
    let fast = RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(5));
    retry(&fast, "apply database", Idempotency::Idempotent, || {
        host.apply_database(&n, &spec)
    })
    .await
    .unwrap_or_else(|e| panic!("{kind} {loss:?}: {e}"));
    let want = if kind == "ip" { vec![1, 1] } else { vec![1] };
    assert_eq!(
        created(fake, kind, &app),
        want,
        "{kind} {loss:?}: duplicates or none"
    );
    let log: Vec<_> = fake
        .exchanges()
        .into_iter()
        .filter(|x| x.path.starts_with("/v1/apps"))
        .collect();
    let posts: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, x)| x.method == "POST" && x.path == create_path)
        .map(|(i, _)| i)
        .collect();
    let lost = posts[0];
    assert!(
        matches!(loss, Loss::Dropped) || log[lost].status >= 400,
        "{kind} {loss:?}: the first create was not the lost one"
    );
    for &again in &posts[1..] {
        assert!(
            log[lost + 1..again]
                .iter()
                .any(|x| x.method == "GET" && x.path == lookup_path),
            "{kind} {loss:?}: POST {create_path} re-sent without GET {lookup_path} in between"
        );
    }
    check_exchanges(fake);
}

#[tokio::test(start_paused = true)]
async fn r4_creates_whose_answer_was_lost_are_looked_up_not_re_posted() {
    let mut pr = 70;
    for (kind, _, _) in CREATES {
        for status in [408, 502] {
            let (server, fake) = FakeFly::start(ORG, TOKEN).await;
            let host = paused_host(&server.uri());
            r4_case(&host, &fake, pr, kind, Loss::Status(status)).await;
            pr += 1;
        }
    }
}

/// On the real clock: the fake commits the create and holds its answer past the client's timeout.
#[tokio::test]
async fn r4_creates_whose_response_was_dropped_are_looked_up_not_re_posted() {
    for (pr, (kind, suffix, _)) in (80..).zip(CREATES) {
        let (server, fake) = FakeFly::start(ORG, TOKEN).await;
        let app = name(pr).as_str().to_string();
        let create_path = if kind == "app" {
            suffix.to_string()
        } else {
            format!("/v1/apps/{app}{suffix}")
        };
        let held = std::sync::atomic::AtomicBool::new(false);
        fake.set_latency(move |req| {
            let first = req.method.as_str() == "POST"
                && req.url.path() == create_path
                && !held.swap(true, std::sync::atomic::Ordering::SeqCst);
            if first {
                Duration::from_secs(3)
            } else {
                Duration::ZERO
            }
        });
        let host = FlyDatabases::builder()
            .token(TOKEN)
            .org(ORG)
            .naming(naming())
            .base_url(server.uri())
            .timeout(Duration::from_millis(300))
            .poll_interval(Duration::from_millis(5))
            .retry(
                RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(5)),
            )
            .build()
            .unwrap();
        r4_case(&host, &fake, pr, kind, Loss::Dropped).await;
    }
}

// ---------------------------------------------------------------------------------------------
// R7: terminal errors fail at once

/// Checks a terminal failure: one request to `method path`, virtual time < 1 s, the provider and
/// the request id in the message, no secret in it.
fn assert_terminal(
    fake: &FakeFly,
    err: &preview_core::Error,
    method: &str,
    path: &str,
    elapsed: Duration,
    case: &str,
) {
    let sent: Vec<_> = fake
        .exchanges()
        .into_iter()
        .filter(|x| x.method == method && x.path.ends_with(path))
        .collect();
    assert_eq!(
        sent.len(),
        1,
        "{case}: {method} {path} sent {} times",
        sent.len()
    );
    assert!(elapsed < Duration::from_secs(1), "{case}: took {elapsed:?}");
    assert!(
        !err.is_retryable(Idempotency::Idempotent),
        "{case}: {err:?} is retryable"
    );
    let shown = err.to_string();
    assert!(shown.contains("fly"), "{case}: {shown}");
    assert!(
        shown.contains(&sent[0].request_id),
        "{case}: no request id {} in {shown}",
        sent[0].request_id
    );
    for secret in [PG_PASSWORD, SPICEDB_KEY, TOKEN] {
        assert!(!shown.contains(secret), "{case}: a secret in {shown}");
        assert!(
            !format!("{err:?}").contains(secret),
            "{case}: a secret in {err:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn r7_terminal_statuses_are_sent_once_and_name_the_request_id() {
    // The secrets write carries secret values; these answers echo one back.
    let echo = format!("invalid value {PG_PASSWORD} for DOLTGRES_PASSWORD");
    let cases: [(u16, &str, Json); 5] = [
        (400, "/secrets", json!({"error": echo})),
        (
            401,
            "/secrets",
            json!({"error": format!("unauthorized: token {TOKEN}")}),
        ),
        (403, "/secrets", json!({"error": echo, "status": "unknown"})),
        (422, "/secrets", json!({"error": echo})),
        (
            400,
            "/machines",
            json!({"error": "invalid config: guest.cpus"}),
        ),
    ];
    for (i, (status, path, body)) in cases.into_iter().enumerate() {
        let (server, fake) = FakeFly::start(ORG, TOKEN).await;
        let host = paused_host(&server.uri());
        let n = name(90 + i as u64);
        let spec = prototype_spec(&n);
        fake.fail_next("POST", path, status, body);
        let start = tokio::time::Instant::now();
        let err = retried("apply database", || host.apply_database(&n, &spec))
            .await
            .unwrap_err();
        assert_terminal(
            &fake,
            &err,
            "POST",
            path,
            start.elapsed(),
            &format!("{status} on {path}"),
        );
        check_exchanges(&fake);
    }
}

#[tokio::test(start_paused = true)]
async fn r7_a_foreign_lease_is_a_conflict_sent_once() {
    let (_server, fake, host, n, spec) = deployed(97).await;
    fake.hold_foreign_lease(n.as_str());
    let second = changed(&spec);
    let start = tokio::time::Instant::now();
    let err = retried("apply database", || host.apply_database(&n, &second))
        .await
        .unwrap_err();
    assert!(
        matches!(err, preview_core::Error::Conflict { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("lease currently held"), "{err}");
    assert_terminal(
        &fake,
        &err,
        "POST",
        "/lease",
        start.elapsed(),
        "foreign lease",
    );
    assert_eq!(fake.leases_held(), 1, "the foreign lease is left alone");
    assert_eq!(
        fake.machines(n.as_str())[0]["config"]["guest"]["memory_mb"],
        4096,
        "not updated"
    );
}

#[tokio::test(start_paused = true)]
async fn r7_a_name_taken_by_another_org_is_a_conflict_not_adopted() {
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    let host = paused_host(&server.uri());
    let n = name(98);
    fake.add_foreign_app(n.as_str(), "other-org");
    // The other organisation's app is invisible to us, as on Fly; only the create finds it.
    fake.fail_next(
        "GET",
        &format!("/v1/apps/{n}"),
        404,
        json!({"error": "app not found"}),
    );
    let spec = prototype_spec(&n);
    let start = tokio::time::Instant::now();
    let err = retried("apply database", || host.apply_database(&n, &spec))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            preview_core::Error::AlreadyExists { .. } | preview_core::Error::Conflict { .. }
        ),
        "{err:?}"
    );
    assert_terminal(
        &fake,
        &err,
        "POST",
        "/v1/apps",
        start.elapsed(),
        "name_taken",
    );
    let writes: Vec<String> = fake
        .mutating()
        .iter()
        .map(|x| format!("{} {}", x.method, x.path))
        .collect();
    assert_eq!(writes, ["POST /v1/apps"], "nothing adopted or written");
    assert!(fake.secret_names(n.as_str()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// R8: back-off contract over HTTP

/// Answers the first GET of the app with `status` and `retry_after`, then lets the fake answer.
async fn hint_once(
    server: &wiremock::MockServer,
    app: &str,
    status: u16,
    retry_after: Option<String>,
) {
    let p = format!("/v1/apps/{app}");
    let mut t = respond(
        "GET",
        &p,
        status,
        json!({"error": "slow down", "status": "unknown"}),
    );
    if let Some(v) = retry_after {
        t = t.insert_header("retry-after", v.as_str());
    }
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path(p.as_str()))
        .respond_with(t)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
}

#[tokio::test(start_paused = true)]
async fn r8_retry_after_is_obeyed_within_the_budget_and_fails_fast_beyond_it() {
    let defaults = RetryConfig::default();
    assert_eq!(
        (
            defaults.max_retries,
            defaults.initial_backoff,
            defaults.max_backoff,
            defaults.budget
        ),
        (
            7,
            Duration::from_millis(250),
            Duration::from_secs(20),
            Duration::from_secs(120)
        ),
        "the numbers below assume preview_core::retry's defaults"
    );
    let past = "Sun, 06 Nov 1994 08:49:37 GMT".to_string();
    // (status, Retry-After, least wait, most wait)
    let cases = [
        (429, Some("7".to_string()), 7_000, 7_300),
        (
            429,
            Some(preview_testkit::http_chaos::RetryAfter::Date(5).header_value()),
            5_000,
            7_300,
        ),
        (503, Some(past), 0, 300),
        (503, None, 125, 250),
        (429, None, 125, 250),
    ];
    for (i, (status, hint, least, most)) in cases.into_iter().enumerate() {
        let (server, fake) = FakeFly::start(ORG, TOKEN).await;
        let host = paused_host(&server.uri());
        let n = name(100 + i as u64);
        hint_once(&server, n.as_str(), status, hint.clone()).await;
        let start = tokio::time::Instant::now();
        let got = host
            .get_database(&n)
            .await
            .unwrap_or_else(|e| panic!("{status} {hint:?}: {e}"));
        let waited = start.elapsed().as_millis() as u64;
        assert!(got.is_none());
        assert!(
            (least..=most).contains(&waited),
            "{status} {hint:?}: waited {waited} ms, want {least}..={most}"
        );
        let gets = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == format!("/v1/apps/{n}"))
            .count();
        assert_eq!(gets, 2, "{status} {hint:?}: one retry");
        drop(fake);
    }
    // A hint beyond the budget: no sleep, and the error says how long it would have waited.
    let (server, _fake) = FakeFly::start(ORG, TOKEN).await;
    let host = paused_host(&server.uri());
    let n = name(109);
    hint_once(&server, n.as_str(), 429, Some("3600".into())).await;
    let start = tokio::time::Instant::now();
    let err = host.get_database(&n).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "slept {:?}",
        start.elapsed()
    );
    assert!(
        matches!(err, preview_core::Error::RetriesExhausted { would_wait: Some(w), .. } if w == Duration::from_secs(3600)),
        "{err:?}"
    );
    assert!(err.to_string().contains("3600s"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// Without hints, every pause stays under the cap and the retries stop at the count.
#[tokio::test(start_paused = true)]
async fn r8_back_off_without_hints_is_capped_and_bounded() {
    let server = wiremock::MockServer::start().await;
    let n = name(110);
    let p = format!("/v1/apps/{n}");
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(respond("GET", &p, 503, json!({"error": "unavailable"})))
        .mount(&server)
        .await;
    let host = paused_host(&server.uri());
    let start = tokio::time::Instant::now();
    let err = host.get_database(&n).await.unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        matches!(
            err,
            preview_core::Error::RetriesExhausted { attempts: 8, .. }
        ),
        "{err:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 8);
    // Ceilings 0.25, 0.5, 1, 2, 4, 8, 16 s with equal jitter: at least half of each, at most each.
    assert!(
        elapsed >= Duration::from_millis(15_875) && elapsed <= Duration::from_millis(31_750),
        "{elapsed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// I4: URL safety

/// The named hostile strings of reliability.md I1/I4.
fn hostile_named() -> Vec<String> {
    vec![
        r#"zzz";echo${IFS}"hello";#"#.into(),
        "$(curl x|sh)".into(),
        "a/../../b".into(),
        "x?y=1#z".into(),
        "%2F%00".into(),
        "&a=b".into(),
        "with spaces ".into(),
        "\u{202E}evil".into(),
        "🦀emoji🦀".into(),
        "a".repeat(250),
        "..".into(),
        ".".into(),
        "%2e%2e".into(),
        "".into(),
    ]
}

/// Seeded random strings over a hostile alphabet (URL delimiters, escapes, dots, unicode).
fn hostile_random(seed: u64, count: usize) -> Vec<String> {
    let alphabet: Vec<String> = "/?#&=%;.$()\"'` \\+:@[]{}|^~<>!*,azAZ09-_\u{202E}\u{0}\t\nü🦀"
        .chars()
        .map(String::from)
        .collect();
    let alphabet: Vec<&str> = alphabet.iter().map(String::as_str).collect();
    random_strings(seed, count, &alphabet, 12)
}

/// Every request about the Machine must address it by its exact id on an unchanged route.
fn assert_machine_routes(fake: &FakeFly, app: &str, id: &str) {
    let routes = [
        vec![],
        vec!["wait"],
        vec!["lease"],
        vec!["events"],
        vec!["start"],
    ];
    for x in fake.exchanges() {
        let segs: Vec<String> = x
            .path
            .trim_start_matches('/')
            .split('/')
            .map(decode)
            .collect();
        if segs.len() < 5 || segs[3] != "machines" {
            continue;
        }
        assert_eq!(
            &segs[..4],
            ["v1", "apps", app, "machines"],
            "{id:?}: {} {}",
            x.method,
            x.path
        );
        assert_eq!(segs[4], id, "{id:?}: {} {}", x.method, x.path);
        assert!(
            routes.iter().any(|r| segs[5..] == r[..]),
            "{id:?}: route {} {}",
            x.method,
            x.path
        );
        if segs[5..] == ["wait"] {
            let q = x.query.clone().unwrap_or_default();
            let keys: Vec<String> = q
                .split('&')
                .map(|p| p.split('=').next().unwrap_or("").to_string())
                .collect();
            assert_eq!(
                keys,
                ["state", "timeout", "version"],
                "{id:?}: wait query {q}"
            );
        }
    }
}

/// Text a URL cannot carry as a path segment: WHATWG URL parsers drop or resolve dot segments and
/// drop tabs and line breaks anywhere.
fn unaddressable(id: &str) -> bool {
    matches!(id, "" | "." | "..") || id.contains(['\t', '\n', '\r'])
}

#[tokio::test(start_paused = true)]
async fn i4_machine_ids_from_the_api_reach_the_url_intact() {
    let (server, fake, host, n, spec) = deployed(120).await;
    let app = n.as_str().to_string();
    let changed_spec = changed(&spec);
    let mut ids = hostile_named();
    ids.extend(hostile_random(7, if full() { 2000 } else { 500 }));
    for (i, id) in ids.iter().enumerate() {
        fake.set_machine_id(&app, id);
        fake.clear_log();
        // The named strings go through an update (lease, nonce, update, release, wait); the
        // random ones through an unchanged apply (wait and get).
        let spec = if i < hostile_named().len() && i % 2 == 0 {
            &changed_spec
        } else {
            &spec
        };
        let result = host.apply_database(&n, spec).await;
        if unaddressable(id) {
            let err = result.expect_err("an id a URL cannot carry");
            // Only the lookups before the Machine is addressed: nothing on another route.
            let lookups = ["", "/secrets", "/ip_assignments", "/machines"]
                .map(|r| format!("/v1/apps/{app}{r}"));
            for x in fake.exchanges() {
                assert!(
                    x.method == "GET" && lookups.contains(&x.path),
                    "{id:?}: {} {} was sent ({err})",
                    x.method,
                    x.path
                );
            }
        } else {
            result.unwrap_or_else(|e| panic!("{id:?}: {e}"));
            assert_machine_routes(&fake, &app, id);
        }
        assert_eq!(fake.leases_held(), 0, "{id:?}");
    }
    drop(server);
}

#[tokio::test(start_paused = true)]
async fn i4_the_org_slug_reaches_the_query_intact() {
    for org in hostile_named()
        .into_iter()
        .chain(hostile_random(8, 50))
        .filter(|o| !o.trim().is_empty())
    {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(respond(
                "GET",
                "/v1/apps",
                200,
                json!({"apps": [], "total_apps": 0}),
            ))
            .mount(&server)
            .await;
        let host = FlyDatabases::builder()
            .token(TOKEN)
            .org(org.as_str())
            .naming(naming())
            .base_url(server.uri())
            .without_timeouts()
            .build()
            .unwrap();
        host.list_databases()
            .await
            .unwrap_or_else(|e| panic!("{org:?}: {e}"));
        let reqs = server.received_requests().await.unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].url.path(), "/v1/apps", "{org:?}");
        let q: Vec<(String, String)> = reqs[0].url.query_pairs().into_owned().collect();
        assert_eq!(q[0], ("org_slug".to_string(), org.clone()), "{org:?}");
        assert_eq!(q.len(), 2, "{org:?}: {q:?}");
    }
}

/// App names are environment names: hostile text is rejected by the naming before any request.
#[test]
fn i4_hostile_app_names_never_become_environment_names() {
    for s in hostile_named().into_iter().chain(hostile_random(9, 500)) {
        assert!(
            naming().parse(&s).is_none(),
            "{s:?} parsed as an environment name"
        );
        assert!(
            preview_core::Naming::new(s.as_str(), "agents").is_err()
                || s.chars().all(|c| c.is_ascii_lowercase()),
            "{s:?} accepted as a prefix"
        );
        assert!(
            preview_core::Naming::new("pr", s.as_str()).is_err()
                || s.chars().all(|c| c.is_ascii_lowercase()),
            "{s:?} accepted as a suffix"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// R23: leases are released when an update is cancelled (real clock: the fake holds answers on
// its own runtime's clock)

/// Where an update is cancelled: the request held (method, path suffix after the Machine id).
const CANCEL_POINTS: [(&str, &str, &str); 4] = [
    // Granted, but the answer (with the nonce) has not reached us yet.
    ("during acquire", "POST", "/machines/{id}/lease"),
    // The lease is ours and the secrets write (first call under it) is in flight.
    ("after acquire", "POST", "/secrets"),
    ("during the update", "POST", "/machines/{id}"),
    ("during the wait", "GET", "/machines/{id}/wait"),
];

/// Polls until the fake has seen a request matching `pred` (at most 5 s).
async fn seen(
    fake: &FakeFly,
    what: &str,
    pred: impl Fn(&preview_testkit::fakes::fly::Exchange) -> bool,
) {
    for _ in 0..500 {
        if fake.exchanges().iter().any(&pred) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never arrived");
}

#[tokio::test]
async fn r23_a_cancelled_update_releases_its_lease_and_the_next_apply_converges() {
    for (case, (point, method, suffix)) in CANCEL_POINTS.iter().enumerate() {
        for abort in [true, false] {
            let (server, fake) = FakeFly::start(ORG, TOKEN).await;
            let host = host(&server.uri());
            let n = name(130 + case as u64);
            let app = n.as_str().to_string();
            let spec = prototype_spec(&n);
            host.apply_database(&n, &spec).await.unwrap();
            let id = fake.machines(&app)[0]["id"].as_str().unwrap().to_string();
            let held = format!("/v1/apps/{app}{}", suffix.replace("{id}", &id));
            let (m, h) = (method.to_string(), held.clone());
            let once = std::sync::atomic::AtomicBool::new(false);
            fake.set_latency(move |req| {
                let hit = req.method.as_str() == m
                    && req.url.path() == h
                    && !once.swap(true, std::sync::atomic::Ordering::SeqCst);
                if hit {
                    Duration::from_secs(5)
                } else {
                    Duration::ZERO
                }
            });
            fake.clear_log();
            let second = changed(&spec);
            let arrived =
                |x: &preview_testkit::fakes::fly::Exchange| x.method == *method && x.path == held;
            if abort {
                let task = {
                    let (host, n, second) = (host.clone(), n.clone(), second.clone());
                    tokio::spawn(async move { host.apply_database(&n, &second).await })
                };
                seen(&fake, point, arrived).await;
                task.abort();
                assert!(task.await.unwrap_err().is_cancelled());
            } else {
                // Drop the future itself (what a timeout or a select! does).
                tokio::select! {
                    r = host.apply_database(&n, &second) => panic!("{point}: finished first: {r:?}"),
                    () = seen(&fake, point, arrived) => {}
                }
            }
            let how = if abort { "abort" } else { "drop" };
            // The release runs on a spawned task: wait for its DELETE, and prove it carried our nonce.
            seen(&fake, "the lease release", |x| {
                x.method == "DELETE" && x.path.ends_with("/lease")
            })
            .await;
            let granted: Vec<_> = fake
                .exchanges()
                .into_iter()
                .filter(|x| x.method == "POST" && x.path.ends_with("/lease"))
                .collect();
            assert_eq!(granted.len(), 1, "{point} ({how})");
            let nonce = granted[0].response["nonce"].as_str().unwrap().to_string();
            let released = fake
                .exchanges()
                .into_iter()
                .find(|x| x.method == "DELETE" && x.path.ends_with("/lease"))
                .unwrap();
            assert_eq!(
                (released.nonce.as_deref(), released.status),
                (Some(nonce.as_str()), 200),
                "{point} ({how})"
            );
            assert_eq!(fake.leases_held(), 0, "{point} ({how}): lease left behind");
            // The next apply converges: one Machine, the new config, no lease.
            retried("apply database", || host.apply_database(&n, &second))
                .await
                .unwrap_or_else(|e| panic!("{point} ({how}): {e}"));
            let machines = fake.machines(&app);
            assert_eq!(machines.len(), 1, "{point} ({how})");
            assert_eq!(
                machines[0]["config"]["guest"]["memory_mb"], 8192,
                "{point} ({how})"
            );
            assert_eq!(fake.leases_held(), 0, "{point} ({how})");
            check_exchanges(&fake);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn r23_a_failing_update_releases_its_lease() {
    let (_server, fake, host, n, spec) = deployed(140).await;
    let id = fake.machines(n.as_str())[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    fake.fail_next(
        "POST",
        &format!("/machines/{id}"),
        422,
        json!({"error": "invalid guest: memory_mb"}),
    );
    let err = host.apply_database(&n, &changed(&spec)).await.unwrap_err();
    assert!(
        matches!(err, preview_core::Error::Api { status: 422, .. }),
        "{err:?}"
    );
    assert_eq!(fake.leases_held(), 0, "lease left behind");
    let last = fake.mutating().pop().unwrap();
    assert_eq!((last.method.as_str(), last.status), ("DELETE", 200));
    assert!(last.path.ends_with("/lease"));
    check_exchanges(&fake);
}

/// The plan's latency holds answers (a sleep on the fake's runtime, so on the real clock) without
/// faulting them.
#[tokio::test]
async fn chaos_latency_holds_answers_without_faults() {
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    let client = reqwest::Client::new();
    let get = || {
        client
            .get(format!("{}/v1/apps/pr-1-agents", server.uri()))
            .bearer_auth(TOKEN)
            .send()
    };
    let start = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(get().await.unwrap().status().as_u16(), 404);
    }
    let calm = start.elapsed();
    fake.chaos(HttpChaos::new(5, 0.0).latency(1.0, Duration::from_millis(200)));
    let start = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(get().await.unwrap().status().as_u16(), 404);
    }
    let held = start.elapsed();
    assert_eq!(fake.injected_faults(), 0);
    assert!(
        held > calm + Duration::from_millis(100),
        "calm {calm:?}, with latency {held:?}"
    );
    assert!(held < Duration::from_millis(1000) + calm, "{held:?}");
}

/// A list cursor (chosen by the API) goes back in the query exactly as it came.
#[tokio::test(start_paused = true)]
async fn i4_list_cursors_from_the_api_reach_the_query_intact() {
    use wiremock::matchers::{method, path, query_param_is_missing};
    let cursors = hostile_named()
        .into_iter()
        .chain(hostile_random(10, 100))
        .filter(|c| !c.is_empty());
    for cursor in cursors {
        let server = wiremock::MockServer::start().await;
        let first = json!({"apps": [], "total_apps": 0, "next_cursor": cursor});
        wiremock::Mock::given(method("GET"))
            .and(path("/v1/apps"))
            .and(query_param_is_missing("cursor"))
            .respond_with(respond("GET", "/v1/apps", 200, first))
            .with_priority(1)
            .mount(&server)
            .await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(respond(
                "GET",
                "/v1/apps",
                200,
                json!({"apps": [], "total_apps": 0}),
            ))
            .mount(&server)
            .await;
        let host = paused_host(&server.uri());
        host.list_databases()
            .await
            .unwrap_or_else(|e| panic!("{cursor:?}: {e}"));
        let reqs = server.received_requests().await.unwrap();
        assert_eq!(reqs.len(), 2, "{cursor:?}");
        assert_eq!(reqs[1].url.path(), "/v1/apps", "{cursor:?}");
        let q: Vec<(String, String)> = reqs[1].url.query_pairs().into_owned().collect();
        let keys: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["org_slug", "limit", "cursor"], "{cursor:?}");
        assert_eq!(q[2].1, cursor, "{cursor:?}");
    }
}

/// R1's attempt bound made falsifiable. In the convergence runs `max_consecutive(7)` means no
/// request ever *needs* more than 8 attempts; this shows 8 is also the most the client ever
/// *sends*: a read that fails every time goes out 8 times, and giving up (`RetriesExhausted`)
/// is not retried again by the pipeline's own loop, so attempts do not multiply.
#[tokio::test(start_paused = true)]
async fn r1_a_read_that_always_fails_is_sent_eight_times_not_more() {
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    let host = paused_host(&server.uri());
    fake.chaos(HttpChaos::new(5, 1.0));
    let n = name(42);
    let err = retried("get database", || host.get_database(&n))
        .await
        .expect_err("every request fails");
    assert!(
        matches!(
            err,
            preview_core::Error::RetriesExhausted { attempts: 8, .. }
        ),
        "{err:?}"
    );
    assert_eq!(fake.exchanges().len(), 8, "{:?}", fake.exchanges());
}
