//! Issue 14 items 1-3 at the provider level, against the stateful fake: a half-created app is
//! ours (adopted, deleted, listed); an unmarked app holding anything is never touched and never
//! reported gone; two applies at once leave one of everything; a lease of another `preview` run
//! is waited out, anyone else's is not; a long update keeps its lease alive.

mod common;

use std::time::{Duration, Instant};

use common::*;
use preview_core::http::ClientSettings;
use preview_core::{DatabaseHost, Deleted, Error, Outcome};
use preview_testkit::fakes::fly::FakeFly;
use providers_fly::FlyDatabases;
use serde_json::json;

fn short_leases(uri: &str, ttl: Duration) -> FlyDatabases {
    FlyDatabases::builder()
        .token(TOKEN)
        .org(ORG)
        .naming(naming())
        .base_url(uri)
        .poll_interval(Duration::from_millis(5))
        .lease_ttl(ttl)
        .build()
        .unwrap()
}

fn public_ips(fake: &FakeFly, app: &str) -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = fake
        .ips(app)
        .iter()
        .filter(|i| i["shared"] != true)
        .map(|i| {
            if i["ip"].as_str().is_some_and(|ip| ip.contains('.')) {
                "v4"
            } else {
                "v6"
            }
        })
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn an_empty_unmarked_app_is_a_half_created_one_adopted_by_apply() {
    let (_server, fake, host) = fake().await;
    // What `POST /v1/apps` leaves when its run is killed before the marker.
    fake.add_empty_app("pr-50-agents", ORG);
    let n = name(50);
    let applied = host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    assert_eq!(applied.changes[0].kind, "app");
    assert_eq!(applied.changes[0].outcome, Outcome::Updated);
    assert!(
        fake.secret_names("pr-50-agents")
            .contains(&"PREVIEW_ENV".to_string())
    );
    assert_eq!(fake.machines("pr-50-agents").len(), 1);
    assert_eq!(public_ips(&fake, "pr-50-agents"), ["v4", "v6"]);
    // The marker is the first write to it.
    let writes: Vec<String> = fake
        .mutating()
        .iter()
        .map(|x| format!("{} {}", x.method, x.path))
        .collect();
    assert_eq!(
        writes[0], "POST /v1/apps/pr-50-agents/secrets",
        "{writes:#?}"
    );
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_half_created_app_is_listed_and_deleted() {
    let (_server, fake, host) = fake().await;
    fake.add_empty_app("pr-51-agents", ORG);
    let owned = host.list_databases().await.unwrap();
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(owned[0].name, "pr-51-agents");
    assert!(owned[0].resource.contains("half-created"), "{owned:?}");
    assert!(
        host.get_database(&name(51)).await.unwrap().is_some(),
        "get sees it too"
    );
    assert_eq!(
        host.delete_database(&name(51)).await.unwrap(),
        Deleted::Removed
    );
    assert!(fake.apps().is_empty());
    check_exchanges(&fake);
}

#[tokio::test]
async fn an_unmarked_app_holding_anything_is_never_touched_nor_reported_gone() {
    type Fill = fn(&FakeFly, &str);
    let fills: [(&str, Fill); 4] = [
        ("1 IP", |f, a| f.add_foreign_app(a, ORG)),
        ("1 volume", |f, a| {
            f.add_empty_app(a, ORG);
            f.add_volume(a);
        }),
        ("1 secret", |f, a| {
            f.add_empty_app(a, ORG);
            f.add_secret(a, "DATABASE_URL", "postgres://someone-else");
        }),
        ("1 Machine", |f, a| {
            f.add_empty_app(a, ORG);
            // Someone's Machine, without our metadata.
            f.add_machine(
                a,
                json!({"image": "nginx:1", "metadata": {"owner": "web-team"}}),
            );
        }),
    ];
    for (i, (held, fill)) in fills.into_iter().enumerate() {
        let (_server, fake, host) = fake().await;
        let n = name(52 + i as u64);
        fill(&fake, n.as_str());
        let before = (
            fake.secret_names(n.as_str()),
            fake.machines(n.as_str()),
            fake.ips(n.as_str()),
        );
        let err = host
            .apply_database(&n, &prototype_spec(&n))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::AlreadyExists { .. }),
            "{held}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(n.as_str()) && text.contains(held) && text.contains("not ours"),
            "{held}: {text}"
        );
        // Teardown: reported, naming it, never "already gone"; the app is left as it was.
        let err = host.delete_database(&n).await.unwrap_err();
        assert!(
            matches!(err, Error::AlreadyExists { .. }),
            "{held}: {err:?}"
        );
        assert!(err.to_string().contains(held), "{held}: {err}");
        assert!(host.list_databases().await.unwrap().is_empty(), "{held}");
        assert!(host.get_database(&n).await.unwrap().is_none(), "{held}");
        assert!(fake.apps().contains(&n.to_string()), "{held}");
        assert_eq!(
            (
                fake.secret_names(n.as_str()),
                fake.machines(n.as_str()),
                fake.ips(n.as_str())
            ),
            before,
            "{held}: changed"
        );
        // The only writes: our idempotency-key probes, refused.
        for x in fake.mutating() {
            assert_eq!((x.path.as_str(), x.status), ("/v1/apps", 422), "{held}");
        }
        check_exchanges(&fake);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_at_once_leave_one_app_one_machine_and_one_ip_of_each_kind() {
    let mut raced = 0;
    for round in 0..8u64 {
        let (server, fake) = FakeFly::start(ORG, TOKEN).await;
        let (a, b) = (host(&server.uri()), host(&server.uri()));
        let n = name(60 + round);
        let spec = prototype_spec(&n);
        let (ra, rb) = tokio::join!(a.apply_database(&n, &spec), b.apply_database(&n, &spec));
        ra.unwrap_or_else(|e| panic!("round {round}, first: {e}"));
        rb.unwrap_or_else(|e| panic!("round {round}, second: {e}"));
        assert_eq!(fake.apps(), [n.to_string()], "round {round}");
        assert_eq!(fake.machines(n.as_str()).len(), 1, "round {round}");
        assert_eq!(public_ips(&fake, n.as_str()), ["v4", "v6"], "round {round}");
        assert_eq!(fake.leases_held(), 0, "round {round}");
        let removed = fake
            .mutating()
            .iter()
            .filter(|x| x.method == "DELETE")
            .count();
        raced += removed;
        #[allow(clippy::print_stderr)]
        {
            eprintln!("round {round}: {removed} duplicate(s) removed");
        }
        // Both runs converged to that one: nothing left to change for either.
        fake.clear_log();
        a.apply_database(&n, &spec).await.unwrap();
        assert!(
            fake.mutating().is_empty(),
            "round {round}: {:#?}",
            fake.mutating()
        );
        check_exchanges(&fake);
    }
    // The runs did race: both created, and the duplicates were removed.
    assert!(
        raced > 0,
        "no round created a duplicate: the test did not race"
    );
}

#[tokio::test]
async fn a_lease_of_another_preview_run_is_waited_out_until_it_expires() {
    let (server, fake, host) = fake().await;
    let n = name(70);
    let spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    let id = fake.machines(n.as_str())[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A run killed while holding the lease: taken with our description, never released.
    let took = reqwest::Client::new()
        .post(format!("{}/v1/apps/{n}/machines/{id}/lease", server.uri()))
        .bearer_auth(TOKEN)
        .json(&json!({"ttl": 2, "description": "preview apply pr-70-agents 1-0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(took.status(), 201);
    fake.clear_log();
    let mut changed = spec.clone();
    changed.size.memory_mb = 8192;
    let started = Instant::now();
    host.apply_database(&n, &changed).await.unwrap();
    // It waited for the lease to run out (not for a fixed time: it polled the lease).
    assert!(started.elapsed() >= Duration::from_secs(1), "no wait");
    let asks: Vec<u16> = fake
        .exchanges()
        .iter()
        .filter(|x| x.method == "POST" && x.path.ends_with("/lease"))
        .map(|x| x.status)
        .collect();
    assert_eq!(asks, [409, 201]);
    let polls = fake
        .exchanges()
        .iter()
        .filter(|x| x.method == "GET" && x.path.ends_with("/lease"))
        .count();
    assert!((1..=5).contains(&polls), "{polls} lease polls");
    assert_eq!(
        fake.machines(n.as_str())[0]["config"]["guest"]["memory_mb"],
        8192
    );
    assert_eq!(fake.leases_held(), 0);
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_long_update_extends_its_lease_before_the_update() {
    let (server, fake) = FakeFly::start(ORG, TOKEN).await;
    let host = short_leases(&server.uri(), Duration::from_secs(2));
    let n = name(71);
    let spec = prototype_spec(&n);
    host.apply_database(&n, &spec).await.unwrap();
    // The secrets write under the lease takes longer than half its TTL.
    fake.set_latency(|r| {
        if r.method.as_str() == "POST" && r.url.path().ends_with("/secrets") {
            Duration::from_millis(1300)
        } else {
            Duration::ZERO
        }
    });
    fake.clear_log();
    let mut changed = spec.clone();
    changed.size.memory_mb = 8192;
    host.apply_database(&n, &changed).await.unwrap();
    let leases: Vec<_> = fake
        .exchanges()
        .into_iter()
        .filter(|x| x.method == "POST" && x.path.ends_with("/lease"))
        .collect();
    assert_eq!(leases.len(), 2, "taken, then extended: {leases:#?}");
    let nonce = leases[0].response["nonce"].as_str().unwrap();
    assert_eq!(
        leases[1].nonce.as_deref(),
        Some(nonce),
        "extended by its holder"
    );
    assert_eq!(leases[1].response["nonce"], nonce);
    let update = fake
        .exchanges()
        .into_iter()
        .position(|x| {
            x.method == "POST"
                && x.path.ends_with(&format!(
                    "/machines/{}",
                    leases[0].path.split('/').nth(5).unwrap()
                ))
        })
        .unwrap();
    let extended = fake
        .exchanges()
        .iter()
        .position(|x| x.method == "POST" && x.path.ends_with("/lease") && x.nonce.is_some())
        .unwrap();
    assert!(extended < update, "extended before the update");
    assert_eq!(fake.leases_held(), 0);
    check_exchanges(&fake);
}
