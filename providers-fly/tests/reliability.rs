//! Reliability suites of issue 7 against the real Fly client over HTTP, numbered as in
//! `shared/reference/reliability.md`: the same proof as `preview-core/tests/reliability.rs`, but
//! through request building, status mapping and decoding, against the stateful fake with seeded
//! HTTP faults (`preview_core::testing::HttpChaos`).
//!
//! Everything that retries runs on a paused tokio clock (the host is built `without_timeouts`),
//! so back-off costs no wall time. Default case counts keep the file fast;
//! `PREVIEW_RELIABILITY_FULL=1` runs the full counts.

mod common;

use std::future::Future;

use common::spec;
use common::*;
use preview_core::testing::HttpChaos;
use preview_core::{
    DatabaseHost, DatabaseSpec, Deleted, Idempotency, PreviewName, Result, RetryConfig, retry,
};
use providers_fly::FlyDatabases;
use providers_fly::testing::FakeFly;
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
async fn deploy(host: &FlyDatabases, fake: &FakeFly, n: &PreviewName, spec: &DatabaseSpec) {
    let first = retried("apply database", || host.apply_database(n, spec))
        .await
        .unwrap_or_else(|e| panic!("first apply: {e}"));
    assert_eq!(first.database.name, *n);
    let got = retried("get database", || host.get_database(n))
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .expect("the applied database is there");
    assert_eq!(got.name, *n);
    let listed = retried("list databases", || host.list_databases())
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(
        listed.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        [n.as_str()]
    );
    let second = changed(spec);
    retried("apply database", || host.apply_database(n, &second))
        .await
        .unwrap_or_else(|e| panic!("second apply: {e}"));
    let _ = fake;
}

async fn teardown(host: &FlyDatabases, n: &PreviewName) -> Deleted {
    retried("delete database", || host.delete_database(n))
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"))
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
    deploy(&host, &fake, &n, &spec).await;
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
            assert_eq!(hint, status == 429, "{status}: Retry-After only on 429");
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
