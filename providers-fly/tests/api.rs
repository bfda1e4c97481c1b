//! The HTTP contract of the Fly provider, against wiremock: scripted mocks for the edge cases, the
//! stateful fake for flows. Every request body sent and every mock/fake response body is checked
//! against the Machines API spec (`common::respond`, `common::check_requests`,
//! `common::check_exchanges`).

mod common;

use std::time::Duration;

use common::*;
use preview_core::http::ClientSettings;
use preview_core::{DatabaseHost, Deleted, Error, Idempotency, Outcome, RetryConfig, retry};
use providers_fly::machine::machine_config;
use serde_json::{Value as Json, json};
use wiremock::matchers::{
    body_partial_json, header, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer};

fn outcomes(applied: &preview_core::AppliedDatabase) -> Vec<(String, Outcome)> {
    applied
        .changes
        .iter()
        .map(|c| (c.kind.clone(), c.outcome))
        .collect()
}

fn calls(fake: &preview_testkit::fakes::fly::FakeFly) -> Vec<String> {
    fake.exchanges()
        .iter()
        .map(|x| format!("{} {}", x.method, x.path))
        .collect()
}

/// Mounts a catch-all that answers 599 so an unexpected request fails loudly.
async fn catch_all(server: &MockServer) {
    Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(599).set_body_string("no mock matched this request"),
        )
        .mount(server)
        .await;
}

async fn mount_get(server: &MockServer, p: &str, status: u16, body: Json) {
    Mock::given(method("GET"))
        .and(path(p))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(respond("GET", p, status, body))
        .mount(server)
        .await;
}

/// Mocks the read side of an environment that is ours and converged, with `config` on its Machine.
async fn mount_converged(server: &MockServer, app: &str, config: Json) {
    mount_get(
        server,
        &format!("/v1/apps/{app}"),
        200,
        json!({"id": "app1", "name": app, "status": "deployed", "organization": {"slug": ORG, "name": ORG}}),
    )
    .await;
    mount_get(
        server,
        &format!("/v1/apps/{app}/secrets"),
        200,
        json!({"secrets": [{"name": "PREVIEW_ENV", "digest": "d1"}, {"name": "POSTGRES_POSTGRES_PASSWORD", "digest": "d2"}]}),
    )
    .await;
    mount_get(
        server,
        &format!("/v1/apps/{app}/ip_assignments"),
        200,
        json!({"ips": [
            {"ip": "137.66.1.1", "shared": false, "region": "global"},
            {"ip": "2a09:8280:1::1", "shared": false, "region": "global"},
            {"ip": "fdaa:0:1::3", "shared": false, "region": "iad"}
        ]}),
    )
    .await;
    let checks: Vec<Json> = ["doltgres-check", "pg-ready", "spicedb-grpc"]
        .iter()
        .map(|n| json!({"name": n, "status": "passing"}))
        .collect();
    let machine = json!({"id": "m1", "state": "started", "version": "01V1", "region": "iad",
        "config": config, "checks": checks, "created_at": "2026-11-22T08:00:00Z"});
    mount_get(
        server,
        &format!("/v1/apps/{app}/machines"),
        200,
        json!([machine]),
    )
    .await;
    mount_get(server, &format!("/v1/apps/{app}/machines/m1"), 200, machine).await;
    mount_get(
        server,
        &format!("/v1/apps/{app}/machines/m1/wait"),
        200,
        json!({"ok": true, "state": "started", "version": "01V1"}),
    )
    .await;
}

async fn no_mutations(server: &MockServer) {
    for m in ["POST", "PUT", "PATCH", "DELETE"] {
        Mock::given(method(m))
            .respond_with(wiremock::ResponseTemplate::new(599))
            .expect(0)
            .named(format!("no {m}"))
            .mount(server)
            .await;
    }
}

// ---------------------------------------------------------------------------------------------
// apply: create, adopt, converge

#[tokio::test]
async fn apply_creates_app_ips_secrets_and_one_machine() {
    let (_server, fake, host) = fake().await;
    let n = name(42);
    let applied = host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    assert_eq!(
        outcomes(&applied),
        vec![
            ("app".into(), Outcome::Created),
            ("ip".into(), Outcome::Created),
            ("ip".into(), Outcome::Created),
            ("machine".into(), Outcome::Created),
        ]
    );
    assert_eq!(applied.database.state, "started");
    assert_eq!(applied.database.host, "pr-42-agents.fly.dev");
    assert_eq!(
        applied.database.fingerprint.as_deref(),
        Some(prototype_spec(&n).fingerprint().as_str())
    );
    insta::assert_debug_snapshot!(calls(&fake), @r#"
    [
        "GET /v1/apps/pr-42-agents",
        "POST /v1/apps",
        "POST /v1/apps/pr-42-agents/secrets",
        "GET /v1/apps/pr-42-agents/ip_assignments",
        "POST /v1/apps/pr-42-agents/ip_assignments",
        "POST /v1/apps/pr-42-agents/ip_assignments",
        "GET /v1/apps/pr-42-agents/ip_assignments",
        "GET /v1/apps/pr-42-agents/machines",
        "POST /v1/apps/pr-42-agents/machines",
        "GET /v1/apps/pr-42-agents/machines",
        "GET /v1/apps/pr-42-agents/machines/003d8d00000010/wait",
        "GET /v1/apps/pr-42-agents/machines/003d8d00000010",
    ]
    "#);
    // Secrets went to the vault, by reference from the containers; never into the config.
    assert!(fake.secret_is("pr-42-agents", "POSTGRES_POSTGRES_PASSWORD", PG_PASSWORD));
    assert!(fake.secret_is(
        "pr-42-agents",
        "SPICEDB_SPICEDB_GRPC_PRESHARED_KEY",
        SPICEDB_KEY
    ));
    assert!(fake.secret_is("pr-42-agents", "PREVIEW_ENV", "pr-42-agents"));
    let machines = fake.machines("pr-42-agents");
    assert_eq!(machines.len(), 1);
    let echoed = machines[0].to_string();
    assert!(!echoed.contains(PG_PASSWORD) && !echoed.contains(SPICEDB_KEY));
    for x in fake.exchanges() {
        if !x.path.ends_with("/secrets") {
            let sent = x.request.to_string();
            assert!(!sent.contains(PG_PASSWORD), "{} {}", x.method, x.path);
        }
    }
    let create = fake
        .exchanges()
        .into_iter()
        .find(|x| x.method == "POST" && x.path.ends_with("/machines"))
        .unwrap();
    assert_eq!(create.request["region"], "iad");
    assert_eq!(create.request["min_secrets_version"], 1);
    assert_eq!(
        create.request["config"]["guest"],
        json!({"cpu_kind": "shared", "cpus": 4, "memory_mb": 4096})
    );
    let wait = fake
        .exchanges()
        .into_iter()
        .find(|x| x.path.ends_with("/wait"))
        .unwrap();
    assert!(wait.query.unwrap().contains("timeout=60"));
    check_exchanges(&fake);
}

#[tokio::test]
async fn re_apply_with_nothing_changed_makes_no_mutating_call() {
    let (_server, fake, host) = fake().await;
    let n = name(7);
    let spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    fake.clear_log();
    let again = host.apply_database(&n, &spec).await.unwrap();
    assert!(
        again
            .changes
            .iter()
            .all(|c| c.outcome == Outcome::Unchanged),
        "{:?}",
        again.changes
    );
    assert_eq!(
        fake.mutating(),
        vec![],
        "a converged re-run must not mutate"
    );
    assert_eq!(fake.machines("pr-7-agents").len(), 1);
    check_exchanges(&fake);
}

#[tokio::test]
async fn app_already_ours_is_adopted_without_mutation() {
    let server = MockServer::start().await;
    let n = name(42);
    let spec = prototype_spec(&n);
    mount_converged(&server, "pr-42-agents", machine_config(&n, &spec)).await;
    no_mutations(&server).await;
    catch_all(&server).await;
    let applied = host(&server.uri()).apply_database(&n, &spec).await.unwrap();
    assert!(
        applied
            .changes
            .iter()
            .all(|c| c.outcome == Outcome::Unchanged)
    );
    assert_eq!(applied.changes[0].kind, "app");
    check_requests(&server).await;
}

#[tokio::test]
async fn app_of_another_org_is_an_error_and_untouched() {
    let (_server, fake, host) = fake().await;
    fake.add_foreign_app("pr-5-agents", "someone-else");
    let n = name(5);
    let err = host
        .apply_database(&n, &prototype_spec(&n))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert!(err.to_string().contains("someone-else"), "{err}");
    assert_eq!(fake.mutating(), vec![]);
    // Delete of a name we do not own touches nothing either.
    assert_eq!(
        host.delete_database(&n).await.unwrap(),
        Deleted::AlreadyGone
    );
    assert_eq!(fake.mutating(), vec![]);
    assert!(host.get_database(&n).await.unwrap().is_none());
    check_exchanges(&fake);
}

#[tokio::test]
async fn unmarked_app_in_our_org_that_we_did_not_create_is_an_error() {
    let (_server, fake, host) = fake().await;
    fake.add_foreign_app("pr-6-agents", ORG);
    let n = name(6);
    let err = host
        .apply_database(&n, &prototype_spec(&n))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    // The only write attempted is the ownership proof (a create with our idempotency key), which
    // the API refused: nothing changed.
    let writes = fake.mutating();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        (writes[0].path.as_str(), writes[0].status),
        ("/v1/apps", 422)
    );
    assert!(fake.secret_names("pr-6-agents").is_empty());
    assert!(fake.machines("pr-6-agents").is_empty());
    check_exchanges(&fake);
}

#[tokio::test]
async fn app_name_held_by_another_org_403_is_an_error_without_mutation() {
    let server = MockServer::start().await;
    mount_get(
        &server,
        "/v1/apps/pr-8-agents",
        403,
        json!({"error": "unauthorized"}),
    )
    .await;
    no_mutations(&server).await;
    catch_all(&server).await;
    let n = name(8);
    let err = host(&server.uri())
        .apply_database(&n, &prototype_spec(&n))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    check_requests(&server).await;
}

#[tokio::test]
async fn a_crash_between_app_create_and_marker_is_recovered_by_the_idempotency_key() {
    let (server, fake, host) = fake().await;
    let n = name(9);
    let spec = prototype_spec(&n);
    // First run: the secrets write (which carries the marker) fails after the app was created
    // and the run dies there (a host that sends each request once; the default one would re-send
    // the idempotent secrets write).
    let once = providers_fly::FlyDatabases::builder()
        .token(TOKEN)
        .org(ORG)
        .naming(naming())
        .base_url(server.uri())
        .retry(RetryConfig::none())
        .build()
        .unwrap();
    fake.fail_next("POST", "/secrets", 503, json!({"error": "unavailable"}));
    let err = once.apply_database(&n, &spec).await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 503, .. }), "{err:?}");
    assert!(fake.secret_names("pr-9-agents").is_empty());
    // Second run adopts it (the API hands back the app for our key) and finishes.
    let applied = host.apply_database(&n, &spec).await.unwrap();
    assert_eq!(applied.changes[0].outcome, Outcome::Updated);
    assert!(
        fake.secret_names("pr-9-agents")
            .contains(&"PREVIEW_ENV".to_string())
    );
    assert_eq!(fake.machines("pr-9-agents").len(), 1);
    check_exchanges(&fake);
    drop(server);
}

#[tokio::test]
async fn ip_already_present_is_not_allocated_again() {
    let server = MockServer::start().await;
    let n = name(42);
    let spec = prototype_spec(&n);
    // Only a shared v4 and a private v6: a dedicated v4 and a public v6 are missing.
    mount_get(
        &server,
        "/v1/apps/pr-42-agents/ip_assignments",
        200,
        json!({"ips": [{"ip": "66.241.124.1", "shared": true}, {"ip": "fdaa:0:1::3", "shared": false}]}),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/v1/apps/pr-42-agents/ip_assignments"))
        .and(body_partial_json(json!({"type": "v4"})))
        .respond_with(respond(
            "POST",
            "/v1/apps/pr-42-agents/ip_assignments",
            200,
            json!({"ip": "137.66.1.1", "shared": false}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/apps/pr-42-agents/ip_assignments"))
        .and(body_partial_json(json!({"type": "v6"})))
        .respond_with(respond(
            "POST",
            "/v1/apps/pr-42-agents/ip_assignments",
            200,
            json!({"ip": "2a09:8280:1::1", "shared": false}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    mount_converged(&server, "pr-42-agents", machine_config(&n, &spec)).await;
    catch_all(&server).await;
    let applied = host(&server.uri()).apply_database(&n, &spec).await.unwrap();
    let ips: Vec<Outcome> = applied
        .changes
        .iter()
        .filter(|c| c.kind == "ip")
        .map(|c| c.outcome)
        .collect();
    assert_eq!(ips, vec![Outcome::Created, Outcome::Created]);
    check_requests(&server).await;

    // With both present (mount_converged's list), nothing is allocated.
    let server = MockServer::start().await;
    mount_converged(&server, "pr-42-agents", machine_config(&n, &spec)).await;
    no_mutations(&server).await;
    catch_all(&server).await;
    let applied = host(&server.uri()).apply_database(&n, &spec).await.unwrap();
    let ips: Vec<Outcome> = applied
        .changes
        .iter()
        .filter(|c| c.kind == "ip")
        .map(|c| c.outcome)
        .collect();
    assert_eq!(ips, vec![Outcome::Unchanged, Outcome::Unchanged]);
}

#[tokio::test]
async fn changed_machine_is_updated_with_version_under_a_released_lease() {
    let (_server, fake, host) = fake().await;
    let n = name(11);
    let mut spec = prototype_spec(&n);
    let first = host.apply_database(&n, &spec).await.unwrap();
    let before = fake.machines("pr-11-agents")[0].clone();
    fake.clear_log();
    spec.containers[1].image = "postgres:18.1".into();
    let applied = host.apply_database(&n, &spec).await.unwrap();
    assert_eq!(applied.changes.last().unwrap().outcome, Outcome::Updated);
    assert_ne!(applied.database.fingerprint, first.database.fingerprint);
    let writes = fake.mutating();
    let summary: Vec<String> = writes
        .iter()
        .map(|x| format!("{} {} {}", x.method, x.path, x.status))
        .collect();
    insta::assert_debug_snapshot!(summary, @r#"
    [
        "POST /v1/apps/pr-11-agents/machines/003d8d00000010/lease 201",
        "POST /v1/apps/pr-11-agents/secrets 200",
        "POST /v1/apps/pr-11-agents/machines/003d8d00000010 200",
        "DELETE /v1/apps/pr-11-agents/machines/003d8d00000010/lease 200",
    ]
    "#);
    let nonce = writes[0].response["nonce"].as_str().unwrap().to_string();
    let update = &writes[2];
    assert_eq!(update.nonce.as_deref(), Some(nonce.as_str()));
    assert_eq!(writes[3].nonce.as_deref(), Some(nonce.as_str()));
    assert_eq!(update.request["current_version"], before["version"]);
    assert_eq!(
        update.request["config"]["containers"][1]["image"],
        "postgres:18.1"
    );
    assert_eq!(fake.leases_held(), 0);
    assert_eq!(
        fake.machines("pr-11-agents").len(),
        1,
        "never a second machine"
    );
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_stopped_machine_with_the_same_config_is_started_not_replaced() {
    let (_server, fake, host) = fake().await;
    let n = name(26);
    let spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    fake.set_machine_state("pr-26-agents", "stopped");
    fake.clear_log();
    let applied = host.apply_database(&n, &spec).await.unwrap();
    assert_eq!(applied.changes.last().unwrap().outcome, Outcome::Updated);
    let writes: Vec<String> = fake
        .mutating()
        .iter()
        .map(|x| format!("{} {}", x.method, x.path))
        .collect();
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert!(
        writes[0].ends_with("/lease") && writes[0].starts_with("POST"),
        "{writes:?}"
    );
    assert!(writes[1].ends_with("/start"), "{writes:?}");
    assert!(
        writes[2].ends_with("/lease") && writes[2].starts_with("DELETE"),
        "{writes:?}"
    );
    let nonce = fake.mutating()[0].response["nonce"].clone();
    assert_eq!(json!(fake.mutating()[1].nonce), nonce);
    assert_eq!(fake.leases_held(), 0);
    assert_eq!(fake.machines("pr-26-agents")[0]["state"], "started");
    check_exchanges(&fake);
}

#[tokio::test]
async fn drift_made_behind_our_back_is_converged() {
    let (_server, fake, host) = fake().await;
    let n = name(12);
    let spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    fake.edit_machines("pr-12-agents", |c| c["guest"]["memory_mb"] = json!(2048));
    let applied = host.apply_database(&n, &spec).await.unwrap();
    assert_eq!(applied.changes.last().unwrap().outcome, Outcome::Updated);
    assert_eq!(
        fake.machines("pr-12-agents")[0]["config"]["guest"]["memory_mb"],
        4096
    );
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_lease_held_by_someone_else_is_a_conflict_and_nothing_changes() {
    let (_server, fake, host) = fake().await;
    let n = name(13);
    let mut spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    fake.hold_foreign_lease("pr-13-agents");
    fake.clear_log();
    spec.size.memory_mb = 8192;
    let err = host.apply_database(&n, &spec).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(err.to_string().contains("lease currently held"), "{err}");
    assert!(err.to_string().contains("01FAKEREQ"), "request id in {err}");
    let ok_writes: Vec<_> = fake
        .mutating()
        .into_iter()
        .filter(|x| x.status < 300)
        .collect();
    assert_eq!(ok_writes, vec![]);
    check_exchanges(&fake);
}

#[tokio::test]
async fn the_lease_is_released_when_the_update_fails() {
    let (_server, fake, host) = fake().await;
    let n = name(14);
    let mut spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    spec.size.cpus = 8;
    let id = fake.machines("pr-14-agents")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    fake.fail_next(
        "POST",
        &format!("/machines/{id}"),
        409,
        json!({"error": "machine version mismatch"}),
    );
    fake.clear_log();
    let err = host.apply_database(&n, &spec).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(fake.leases_held(), 0, "lease left behind");
    let last = fake.mutating().pop().unwrap();
    assert_eq!((last.method.as_str(), last.status), ("DELETE", 200));
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_cancelled_update_still_releases_its_lease() {
    let (server, fake, host) = fake().await;
    let n = name(24);
    let mut spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    let id = fake.machines("pr-24-agents")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The update hangs; the caller gives up (as on SIGINT) while the lease is held.
    let update = format!("/v1/apps/pr-24-agents/machines/{id}");
    Mock::given(method("POST"))
        .and(path(update.as_str()))
        .respond_with(wiremock::ResponseTemplate::new(599).set_delay(Duration::from_secs(30)))
        .with_priority(1)
        .mount(&server)
        .await;
    spec.size.cpus = 8;
    let task = {
        let host = host.clone();
        tokio::spawn(async move { host.apply_database(&n, &spec).await })
    };
    // Cancel once the update is in flight, i.e. while the lease is held.
    let mut in_flight = false;
    for _ in 0..500 {
        let reqs = server.received_requests().await.unwrap_or_default();
        if reqs
            .iter()
            .any(|r| r.method.as_str() == "POST" && r.url.path() == update)
        {
            in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(in_flight, "the update never started");
    assert_eq!(fake.leases_held(), 1);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    for _ in 0..100 {
        if fake.leases_held() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.leases_held(), 0, "lease left behind after a cancel");
}

#[tokio::test]
async fn a_machine_create_whose_answer_was_lost_is_found_not_duplicated() {
    let (_server, fake, host) = fake().await;
    let n = name(25);
    let spec = prototype_spec(&n);
    // The Machine is created, but the answer is a 503: the pipeline retries the whole apply.
    fake.lose_next_response(
        "POST",
        "/machines",
        503,
        json!({"error": "upstream timeout"}),
    );
    let cfg = RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(5));
    let applied = retry(&cfg, "apply database", Idempotency::Idempotent, || {
        host.apply_database(&n, &spec)
    })
    .await
    .unwrap();
    assert_eq!(
        fake.machines("pr-25-agents").len(),
        1,
        "never a second machine"
    );
    assert_eq!(applied.changes.last().unwrap().outcome, Outcome::Unchanged);
    let creates = fake
        .exchanges()
        .into_iter()
        .filter(|x| x.method == "POST" && x.path.ends_with("/machines"))
        .count();
    assert_eq!(creates, 1);
    check_exchanges(&fake);
}

// ---------------------------------------------------------------------------------------------
// waiting

#[tokio::test]
async fn wait_answering_408_twice_then_200_succeeds() {
    let (_server, fake, host) = fake().await;
    let n = name(15);
    let body =
        json!({"error": "machine failed to reach desired state, started, currently starting"});
    fake.fail_next("GET", "/wait", 408, body.clone());
    fake.fail_next("GET", "/wait", 408, body);
    host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    let waits: Vec<_> = fake
        .exchanges()
        .into_iter()
        .filter(|x| x.path.ends_with("/wait"))
        .collect();
    assert_eq!(
        waits.iter().map(|x| x.status).collect::<Vec<_>>(),
        vec![408, 408, 200]
    );
    for w in &waits {
        let q = w.query.clone().unwrap_or_default();
        let t: u64 = q
            .split('&')
            .find_map(|kv| kv.strip_prefix("timeout="))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!((1..=60).contains(&t), "{q}");
        assert!(q.contains("state=started"), "{q}");
    }
    check_exchanges(&fake);
}

#[tokio::test]
async fn wait_answering_400_fails_at_once() {
    let (_server, fake, host) = fake().await;
    let n = name(28);
    fake.fail_next(
        "GET",
        "/wait",
        400,
        json!({"error": "invalid_argument: bad state"}),
    );
    let err = host
        .apply_database(&n, &prototype_spec(&n))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { status: 400, .. }), "{err:?}");
    assert!(!err.is_retryable(Idempotency::Idempotent));
    let waits = fake
        .exchanges()
        .into_iter()
        .filter(|x| x.path.ends_with("/wait"))
        .count();
    assert_eq!(waits, 1);
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_failed_machine_is_an_error_with_its_last_events() {
    let (_server, fake, host) = fake().await;
    fake.set_boot_state("failed");
    let n = name(16);
    let err = host
        .apply_database(&n, &prototype_spec(&n))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("failed") && msg.contains("exit_code=137") && msg.contains("oom_killed=true"),
        "{msg}"
    );
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_machine_that_never_starts_times_out_with_events() {
    let (_server, fake, host) = fake().await;
    fake.set_boot_state("starting");
    let n = name(17);
    let mut spec = prototype_spec(&n);
    spec.ready_timeout = Duration::from_millis(300);
    let err = host.apply_database(&n, &spec).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("state starting") && err.to_string().contains("launch"),
        "{err}"
    );
    check_exchanges(&fake);
}

#[tokio::test]
async fn health_checks_that_never_pass_time_out_naming_them() {
    let (_server, fake, host) = fake().await;
    fake.set_check_status("critical");
    let n = name(18);
    let mut spec = prototype_spec(&n);
    spec.ready_timeout = Duration::from_millis(200);
    let err = host.apply_database(&n, &spec).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("pg-ready=critical"), "{err}");
}

#[tokio::test]
async fn a_machine_reporting_no_checks_is_accepted_once_every_check_had_its_window() {
    let (_server, fake, host) = fake().await;
    fake.set_check_status("none");
    let n = name(27);
    let mut spec = prototype_spec(&n);
    for c in &mut spec.containers {
        for h in &mut c.healthchecks {
            h.grace_period = Duration::from_millis(150);
            h.interval = Duration::ZERO;
            h.timeout = Duration::ZERO;
        }
    }
    let started = std::time::Instant::now();
    host.apply_database(&n, &spec).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "accepted before the grace period"
    );
    check_exchanges(&fake);
}

// ---------------------------------------------------------------------------------------------
// get, delete, list

#[tokio::test]
async fn get_reports_missing_and_existing() {
    let (_server, fake, host) = fake().await;
    let n = name(19);
    assert!(host.get_database(&n).await.unwrap().is_none());
    host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    let db = host.get_database(&n).await.unwrap().unwrap();
    assert_eq!(
        (db.state.as_str(), db.host.as_str()),
        ("started", "pr-19-agents.fly.dev")
    );
    assert!(db.created_at.is_some() && db.fingerprint.is_some());
    check_exchanges(&fake);
}

#[tokio::test]
async fn delete_answering_202_then_polls_until_404() {
    let server = MockServer::start().await;
    let app = "/v1/apps/pr-20-agents";
    let shown = json!({"id": "a", "name": "pr-20-agents", "organization": {"slug": ORG}});
    // Before the delete: found. After: found once more (pending), then gone.
    Mock::given(method("GET"))
        .and(path(app))
        .respond_with(respond("GET", app, 200, shown.clone()))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    mount_get(
        &server,
        &format!("{app}/secrets"),
        200,
        json!({"secrets": [{"name": "PREVIEW_ENV"}]}),
    )
    .await;
    Mock::given(method("DELETE"))
        .and(path(app))
        .respond_with(respond("DELETE", app, 202, Json::Null))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(app))
        .respond_with(respond("GET", app, 404, json!({"error": "app not found"})))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let d = host(&server.uri())
        .delete_database(&name(20))
        .await
        .unwrap();
    assert_eq!(d, Deleted::Removed);
    check_requests(&server).await;
}

#[tokio::test]
async fn delete_of_a_missing_app_is_already_gone_without_delete_call() {
    let server = MockServer::start().await;
    mount_get(
        &server,
        "/v1/apps/pr-21-agents",
        404,
        json!({"error": "app not found"}),
    )
    .await;
    no_mutations(&server).await;
    catch_all(&server).await;
    let d = host(&server.uri())
        .delete_database(&name(21))
        .await
        .unwrap();
    assert_eq!(d, Deleted::AlreadyGone);
}

#[tokio::test]
async fn delete_then_delete_again_against_the_fake() {
    let (_server, fake, host) = fake().await;
    let n = name(22);
    host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    fake.set_delete_polls(3);
    assert_eq!(host.delete_database(&n).await.unwrap(), Deleted::Removed);
    assert!(fake.apps().is_empty());
    assert_eq!(
        host.delete_database(&n).await.unwrap(),
        Deleted::AlreadyGone
    );
    check_exchanges(&fake);
}

#[tokio::test]
async fn delete_that_never_finishes_times_out_as_pending() {
    let (server, fake, _) = fake().await;
    let host = providers_fly::FlyDatabases::builder()
        .token(TOKEN)
        .org(ORG)
        .naming(naming())
        .base_url(server.uri())
        .poll_interval(Duration::from_millis(5))
        .delete_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let n = name(23);
    host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    fake.set_delete_polls(u32::MAX);
    let err = host.delete_database(&n).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("pending deletion"), "{err}");
}

#[tokio::test]
async fn list_follows_the_cursor_over_two_pages_and_keeps_only_ours() {
    let server = MockServer::start().await;
    let app = |n: &str, org: &str| json!({"name": n, "organization": {"slug": org}});
    Mock::given(method("GET"))
        .and(path("/v1/apps"))
        .and(query_param("org_slug", ORG))
        .and(query_param_is_missing("cursor"))
        .respond_with(respond(
            "GET",
            "/v1/apps",
            200,
            json!({"apps": [app("pr-1-agents", ORG), app("website", ORG), app("pr-2-agents", ORG)],
                   "next_cursor": "c2", "total_apps": 5}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/apps"))
        .and(query_param("cursor", "c2"))
        .respond_with(respond(
            "GET",
            "/v1/apps",
            200,
            json!({"apps": [app("pr-3-agents", ORG), app("pr-04-agents", ORG)], "total_apps": 5}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let marked = json!({"secrets": [{"name": "PREVIEW_ENV"}]});
    mount_get(&server, "/v1/apps/pr-1-agents/secrets", 200, marked.clone()).await;
    // pr-2-agents has our naming but not our marker, and holds a Machine we did not make: not
    // ours (an empty one would be a create whose run died before the marker: ours).
    mount_get(
        &server,
        "/v1/apps/pr-2-agents/secrets",
        200,
        json!({"secrets": []}),
    )
    .await;
    mount_get(
        &server,
        "/v1/apps/pr-2-agents",
        200,
        json!({"id": "app2", "name": "pr-2-agents", "organization": {"slug": ORG, "name": ORG}}),
    )
    .await;
    mount_get(
        &server,
        "/v1/apps/pr-2-agents/machines",
        200,
        json!([{"id": "m9", "state": "started", "config": {"image": "nginx"}}]),
    )
    .await;
    mount_get(
        &server,
        "/v1/apps/pr-2-agents/ip_assignments",
        200,
        json!({"ips": []}),
    )
    .await;
    mount_get(&server, "/v1/apps/pr-2-agents/volumes", 200, json!([])).await;
    mount_get(&server, "/v1/apps/pr-3-agents/secrets", 200, marked).await;
    no_mutations(&server).await;
    catch_all(&server).await;
    let owned = host(&server.uri()).list_databases().await.unwrap();
    let names: Vec<&str> = owned.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, vec!["pr-1-agents", "pr-3-agents"]);
    assert_eq!(owned[0].resource, "app pr-1-agents");
    check_requests(&server).await;
}

#[tokio::test]
async fn list_against_the_fake_sees_applied_environments() {
    let (_server, fake, host) = fake().await;
    for pr in [31, 32] {
        let n = name(pr);
        host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    }
    fake.add_foreign_app("pr-33-agents", ORG);
    let owned = host.list_databases().await.unwrap();
    let names: Vec<&str> = owned.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, vec!["pr-31-agents", "pr-32-agents"]);
    check_exchanges(&fake);
}

// ---------------------------------------------------------------------------------------------
// errors and retries

async fn retried_get(server: &MockServer) -> preview_core::Result<Option<preview_core::Database>> {
    let host = host(&server.uri());
    let n = name(40);
    let cfg = RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(5));
    retry(&cfg, "get database", Idempotency::Idempotent, || {
        host.get_database(&n)
    })
    .await
}

#[tokio::test]
async fn status_429_is_retried() {
    let server = MockServer::start().await;
    let p = "/v1/apps/pr-40-agents";
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            respond("GET", p, 429, json!({"error": "rate limited"}))
                .insert_header("retry-after", "0"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_get(&server, p, 404, json!({"error": "not found"})).await;
    catch_all(&server).await;
    assert!(retried_get(&server).await.unwrap().is_none());
}

#[tokio::test]
async fn status_503_is_retried() {
    let server = MockServer::start().await;
    let p = "/v1/apps/pr-40-agents";
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(respond("GET", p, 503, json!({"error": "unavailable"})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_get(&server, p, 404, json!({"error": "not found"})).await;
    catch_all(&server).await;
    assert!(retried_get(&server).await.unwrap().is_none());
}

#[tokio::test]
async fn status_401_is_not_retried_and_never_shows_the_token() {
    let server = MockServer::start().await;
    let p = "/v1/apps/pr-40-agents";
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(respond("GET", p, 401, json!({"error": "token invalid"})))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let err = retried_get(&server).await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("01MOCKREQ"), "request id in {err}");
    let h = host(&server.uri());
    for shown in [
        format!("{err}"),
        format!("{err:?}"),
        format!("{h:?}"),
        format!("{h}"),
    ] {
        assert!(!shown.contains("SENTINEL"), "{shown}");
    }
}

#[tokio::test]
async fn secrets_never_reach_errors_debug_or_the_machine_config() {
    let (_server, fake, host) = fake().await;
    let n = name(41);
    let spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    fake.set_boot_state("failed");
    let mut changed = spec.clone();
    changed.size.cpus = 8;
    let err = host.apply_database(&n, &changed).await.unwrap_err();
    for shown in [
        format!("{err}"),
        format!("{err:?}"),
        format!("{host:?}"),
        format!("{spec:?}"),
        machine_config(&n, &spec).to_string(),
    ] {
        for secret in [TOKEN, PG_PASSWORD, SPICEDB_KEY] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

#[tokio::test]
async fn name_taken_on_create_is_already_exists() {
    let server = MockServer::start().await;
    mount_get(
        &server,
        "/v1/apps/pr-43-agents",
        404,
        json!({"error": "not found"}),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/v1/apps"))
        .and(body_partial_json(
            json!({"name": "pr-43-agents", "org_slug": ORG}),
        ))
        .respond_with(respond(
            "POST",
            "/v1/apps",
            422,
            json!({"error": "taken", "status": "name_taken"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let n = name(43);
    let err = host(&server.uri())
        .apply_database(&n, &prototype_spec(&n))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    check_requests(&server).await;
}

#[tokio::test]
async fn insufficient_capacity_on_machine_create_says_so() {
    let (server, fake, _host) = fake().await;
    fake.fail_next(
        "POST",
        "/machines",
        503,
        json!({"error": "no capacity in iad", "status": "insufficient_capacity"}),
    );
    let n = name(44);
    // Sent once: the default host retries the Machine unit, and one 503 would not surface.
    let once = providers_fly::FlyDatabases::builder()
        .token(TOKEN)
        .org(ORG)
        .naming(naming())
        .base_url(server.uri())
        .retry(RetryConfig::none())
        .build()
        .unwrap();
    let err = once
        .apply_database(&n, &prototype_spec(&n))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("insufficient capacity"), "{err}");
    assert!(err.is_retryable(Idempotency::Idempotent));
    check_exchanges(&fake);
}

#[tokio::test]
async fn flyv1_tokens_are_sent_with_their_scheme() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/apps/pr-45-agents"))
        .and(header("authorization", "FlyV1 fm2_abc"))
        .respond_with(respond(
            "GET",
            "/v1/apps/pr-45-agents",
            404,
            json!({"error": "not found"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let host = providers_fly::FlyDatabases::builder()
        .token("FlyV1 fm2_abc")
        .org(ORG)
        .naming(naming())
        .base_url(server.uri())
        .build()
        .unwrap();
    assert!(host.get_database(&name(45)).await.unwrap().is_none());
}
