//! A preview's lifetime on Fly over HTTP: the Machine metadata that carries activity and the
//! hooks' mark, stop and suspend (and the start that wakes), the boot that tells a restart, and
//! the organisation's Machines in pages. Every request and every answer of the fake, and every
//! scripted mock answer, is checked against the vendored Machines API description.

mod common;

use common::*;
use preview_core::{DatabaseHost, Mark, Outcome};
use serde_json::json;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer};

fn t(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn marks_are_machine_metadata_read_back_by_get_and_by_the_org_listing() {
    let (_server, fake, host) = fake().await;
    let n = name(5);
    host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    let before = fake.machines("pr-5-agents")[0]["config"].clone();
    for mark in [
        Mark::ActiveAt(t("2026-12-01T10:00:00Z")),
        Mark::Hooks("k1".into()),
        Mark::AsleepSince(Some(t("2026-12-02T10:00:00Z"))),
        Mark::SleptSecs(90),
    ] {
        host.mark_database(&n, &mark).await.unwrap();
    }
    let marks = host.get_database(&n).await.unwrap().unwrap().marks;
    assert_eq!(marks.active_at, Some(t("2026-12-01T10:00:00Z")));
    assert_eq!(marks.hooks.as_deref(), Some("k1"));
    assert_eq!(marks.asleep_since, Some(t("2026-12-02T10:00:00Z")));
    assert_eq!(marks.slept_secs, 90);
    // Metadata only: the rest of the config is what apply wrote.
    let after = fake.machines("pr-5-agents")[0]["config"].clone();
    assert_eq!(after["guest"], before["guest"]);
    assert_eq!(after["containers"], before["containers"]);

    let listed = host.list_lifetimes(&naming()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, n);
    assert_eq!(listed[0].marks, marks);

    // Awake again: the key goes; deleting a key that is gone is no error.
    host.mark_database(&n, &Mark::AsleepSince(None))
        .await
        .unwrap();
    host.mark_database(&n, &Mark::AsleepSince(None))
        .await
        .unwrap();
    let marks = host.get_database(&n).await.unwrap().unwrap().marks;
    assert_eq!(marks.asleep_since, None);
    assert_eq!(marks.hooks.as_deref(), Some("k1"));
    // The unchanged config still covers what apply wants: a re-apply makes no mutating call.
    fake.clear_log();
    let again = host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    assert!(
        again
            .changes
            .iter()
            .all(|c| c.outcome == Outcome::Unchanged)
    );
    assert!(fake.exchanges().iter().all(|x| x.method == "GET"));
    check_exchanges(&fake);
}

#[tokio::test]
async fn stop_under_lease_then_apply_starts_it_on_a_new_boot() {
    let (_server, fake, host) = fake().await;
    let n = name(6);
    let spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    let boot = host.get_database(&n).await.unwrap().unwrap().boot;
    assert!(boot.is_some());
    fake.clear_log();
    assert_eq!(
        host.sleep_database(&n, false).await.unwrap(),
        Outcome::Updated
    );
    let stop = fake
        .exchanges()
        .into_iter()
        .find(|x| x.path.ends_with("/stop"))
        .expect("a stop was sent");
    assert_eq!(stop.method, "POST");
    assert!(stop.nonce.is_some(), "stop carries the lease nonce");
    assert_eq!(fake.machines("pr-6-agents")[0]["state"], "stopped");
    // Asleep already: nothing is sent but reads.
    fake.clear_log();
    assert_eq!(
        host.sleep_database(&n, false).await.unwrap(),
        Outcome::Unchanged
    );
    assert!(fake.exchanges().iter().all(|x| x.method == "GET"));
    // Waking is apply: one start, and the boot changed (memory is fresh after a stop).
    fake.clear_log();
    let woke = host.apply_database(&n, &spec).await.unwrap();
    assert_eq!(woke.database.state, "started");
    let starts = fake
        .exchanges()
        .iter()
        .filter(|x| x.path.ends_with("/start"))
        .count();
    assert_eq!(starts, 1);
    let woke_boot = host.get_database(&n).await.unwrap().unwrap().boot;
    assert_ne!(woke_boot, boot);
    assert_eq!(fake.machines("pr-6-agents").len(), 1);
    check_exchanges(&fake);
}

#[tokio::test]
async fn suspend_then_apply_resumes_on_the_same_boot_and_big_machines_cannot_suspend() {
    let (_server, fake, host) = fake().await;
    let n = name(8);
    let mut spec = prototype_spec(&n);
    // Over Fly's suspend limit (2 GB): refused, nothing changed.
    host.apply_database(&n, &spec).await.unwrap();
    let err = host.sleep_database(&n, true).await.unwrap_err();
    assert!(err.to_string().contains("suspend"), "{err}");
    assert_eq!(fake.machines("pr-8-agents")[0]["state"], "started");

    spec.size.memory_mb = 2048;
    host.apply_database(&n, &spec).await.unwrap();
    let boot = host.get_database(&n).await.unwrap().unwrap().boot;
    assert_eq!(
        host.sleep_database(&n, true).await.unwrap(),
        Outcome::Updated
    );
    assert_eq!(fake.machines("pr-8-agents")[0]["state"], "suspended");
    host.apply_database(&n, &spec).await.unwrap();
    assert_eq!(fake.machines("pr-8-agents")[0]["state"], "started");
    let resumed = host.get_database(&n).await.unwrap().unwrap().boot;
    assert_eq!(resumed, boot, "a resume keeps memory: same boot");
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_restart_behind_our_back_changes_the_boot() {
    let (_server, fake, host) = fake().await;
    let n = name(9);
    host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    let boot = host.get_database(&n).await.unwrap().unwrap().boot;
    let again = host.get_database(&n).await.unwrap().unwrap().boot;
    assert_eq!(boot, again, "reads do not change the boot");
    fake.restart_machines("pr-9-agents");
    let after = host.get_database(&n).await.unwrap().unwrap().boot;
    assert!(after.is_some());
    assert_ne!(after, boot);

    // The reconcile pass's read of the boot alone: one request, the same boot as the whole read.
    fake.clear_log();
    assert_eq!(host.database_boot(&n).await.unwrap(), after);
    let sent: Vec<String> = fake
        .exchanges()
        .iter()
        .map(|x| format!("{} {}", x.method, x.path))
        .collect();
    assert_eq!(sent, ["GET /v1/apps/pr-9-agents/machines"]);
    assert_eq!(host.database_boot(&name(10)).await.unwrap(), None, "no app");
    check_exchanges(&fake);
}

fn org_machine(app: &str, id: &str, active: &str) -> serde_json::Value {
    json!({
        "app_name": app, "id": id, "state": "started", "created_at": "2026-12-01T00:00:00Z",
        "config": {"image": "x", "metadata": {"preview_env": app, "preview_active_at": active}},
    })
}

#[tokio::test]
async fn the_org_listing_follows_cursors_and_refuses_a_repeated_one() {
    let server = MockServer::start().await;
    let p = format!("/v1/orgs/{ORG}/machines");
    Mock::given(method("GET"))
        .and(path(p.as_str()))
        .and(query_param_is_missing("cursor"))
        .and(query_param("limit", "1000"))
        .respond_with(respond(
            "GET",
            &p,
            200,
            json!({"machines": [
                org_machine("pr-1-agents", "m1", "2026-12-01T00:00:00Z"),
                // Not ours: no marker, or a marker naming another app.
                {"app_name": "other", "id": "m2", "config": {"metadata": {}}},
                org_machine("pr-2-agents", "m3", "2026-12-02T00:00:00Z"),
            ], "next_cursor": "page2"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p.as_str()))
        .and(query_param("cursor", "page2"))
        .respond_with(respond(
            "GET",
            &p,
            200,
            json!({"machines": [org_machine("pr-3-agents", "m4", "2026-12-03T00:00:00Z")]}),
        ))
        .mount(&server)
        .await;
    let got = host(&server.uri()).list_lifetimes(&naming()).await.unwrap();
    let names: Vec<String> = got.iter().map(|d| d.name.to_string()).collect();
    assert_eq!(names, ["pr-1-agents", "pr-2-agents", "pr-3-agents"]);
    assert_eq!(got[2].marks.active_at, Some(t("2026-12-03T00:00:00Z")));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    check_requests(&server).await;

    // A cursor that comes back again would loop forever: an error instead.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(p.as_str()))
        .respond_with(respond(
            "GET",
            &p,
            200,
            json!({"machines": [], "next_cursor": "same"}),
        ))
        .mount(&server)
        .await;
    let err = host(&server.uri())
        .list_lifetimes(&naming())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cursor"), "{err}");
}

/// `[database] autostop`: the services ask Fly's proxy to stop (or suspend) the Machine when idle
/// and start it on the next connection. The API answers "stop" in its old boolean format; that is
/// the same config, so a re-apply changes nothing.
#[tokio::test]
async fn autostop_is_sent_on_every_service_and_its_boolean_echo_is_no_drift() {
    let (_server, fake, host) = fake().await;
    let n = name(6);
    let mut spec = prototype_spec(&n);
    spec.autostop = preview_core::AutoStop::Stop;
    host.apply_database(&n, &spec).await.unwrap();
    let sent: serde_json::Value = fake
        .exchanges()
        .iter()
        .find(|x| x.method == "POST" && x.path.ends_with("/machines"))
        .map(|x| x.request.clone())
        .expect("a Machine create");
    let services = sent["config"]["services"].as_array().unwrap();
    assert!(!services.is_empty());
    for s in services {
        assert_eq!(s["autostop"], "stop", "{s}");
        assert_eq!(s["autostart"], true, "{s}");
        assert_eq!(s["min_machines_running"], 0, "{s}");
    }
    let stored = &fake.machines("pr-6-agents")[0]["config"]["services"][0];
    assert_eq!(stored["autostop"], true, "answered in the old format");

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
    assert!(fake.exchanges().iter().all(|x| x.method == "GET"));

    // Turning it off is a change: the services lose the setting.
    spec.autostop = preview_core::AutoStop::Off;
    host.apply_database(&n, &spec).await.unwrap();
    let stored = &fake.machines("pr-6-agents")[0]["config"]["services"][0];
    assert!(stored.get("autostop").is_none(), "{stored}");
    check_exchanges(&fake);
}

#[tokio::test]
async fn the_org_listing_keeps_to_flys_per_action_rate_over_many_pages() {
    use preview_testkit::fakes::fly::{FakeFly, RateLimits};
    // 4,500 Machines: five pages of 1,000. Fly allows a burst of 3 requests of one action on
    // one identifier (here the organisation), then 1 a second; a Fly second is 300 ms here,
    // far longer than a page takes, so an unpaced listing breaks the limit.
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    fake.enforce_rate_limits(RateLimits { time_scale: 0.3 });
    for pr in 1..=4500 {
        let n = name(pr);
        fake.add_empty_app(n.as_str(), ORG);
        fake.add_machine(
            n.as_str(),
            json!({"image": "postgres:17", "metadata": {"preview_env": n.as_str()}}),
        );
    }
    let lister = |interval: std::time::Duration| {
        paged_lister_builder(&server.uri())
            .action_interval(interval)
            .build()
            .unwrap()
    };
    // Unpaced, the listing breaks the limit (429s, retried, so it still lists everything).
    let unpaced = lister(std::time::Duration::ZERO);
    assert_eq!(unpaced.list_lifetimes(&naming()).await.unwrap().len(), 4500);
    let broken = fake.rate_limit_violations();
    assert!(broken > 0, "the fake enforces the limit");
    // The burst refills (3 Fly seconds), then the paced listing keeps to it.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let paced = lister(std::time::Duration::from_millis(300));
    assert_eq!(paced.list_lifetimes(&naming()).await.unwrap().len(), 4500);
    assert_eq!(fake.rate_limit_violations(), broken, "no new violation");
}

fn paged_lister_builder(uri: &str) -> providers_fly::FlyDatabasesBuilder {
    use preview_core::http::ClientSettings;
    providers_fly::FlyDatabases::builder()
        .token(TOKEN)
        .org(ORG)
        .naming(naming())
        .base_url(uri)
        .poll_interval(std::time::Duration::from_millis(5))
}

/// The fake's org listing pages by key, as the API's cursor does (`last_machine_id`): Machines
/// deleted between two pages (a sweep removing closed PRs' apps while the lifetime pass reads)
/// make it skip none of the others.
#[tokio::test]
async fn the_fakes_org_cursor_skips_nothing_when_machines_go_between_pages() {
    let (server, fake, _host) = fake().await;
    for i in 1..=4 {
        let app = format!("pr-{i}-agents");
        fake.add_empty_app(&app, ORG);
        fake.add_machine(&app, json!({"metadata": {"preview_env": app}}));
    }
    let http = reqwest::Client::new();
    let page = |cursor: Option<String>| {
        let mut url = format!("{}/v1/orgs/{ORG}/machines?limit=2", server.uri());
        if let Some(c) = cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let http = http.clone();
        async move {
            let r = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let apps = |p: &serde_json::Value| -> Vec<String> {
        p["machines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["app_name"].as_str().unwrap().to_string())
            .collect()
    };
    let first = page(None).await;
    assert_eq!(apps(&first), ["pr-1-agents", "pr-2-agents"]);
    let r = http
        .delete(format!("{}/v1/apps/pr-1-agents", server.uri()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let second = page(Some(cursor)).await;
    assert_eq!(apps(&second), ["pr-3-agents", "pr-4-agents"]);
    assert!(second.get("next_cursor").is_none(), "{second}");
    check_exchanges(&fake);
}
