//! The `DatabaseHost` contract (preview-core `host.rs`, "# Contract") against the stateful fake of
//! the Machines API, so the real request building, mapping and decoding run: preview-core's
//! shared suite (`database_host_conformance!`), then the parts of the contract it does not cover
//! (no mutating call on re-apply, foreign resources untouched), with every exchanged body checked
//! against the spec.

mod common;

use std::sync::Arc;

use std::time::Duration;

use common::*;
use preview_core::http::ClientSettings;
use preview_core::{DatabaseHost, Deleted, Error, Naming, Outcome};
use preview_testkit::fakes::fly::FakeFly;
use providers_fly::FlyDatabases;

/// A host on a fresh fake, with the suite's naming (`pvtest-N`).
async fn conformance_host() -> FlyDatabases {
    let (server, _fake) = FakeFly::start(ORG, TOKEN).await;
    let uri = server.uri();
    // The suite only holds the host: keep the server running for the rest of the test process.
    Box::leak(Box::new(server));
    FlyDatabases::builder()
        .token(TOKEN)
        .org(ORG)
        .naming(Naming::new("pvtest", "").unwrap())
        .base_url(uri)
        .poll_interval(Duration::from_millis(5))
        .build()
        .unwrap()
}

preview_core::database_host_conformance!(conformance_host().await);

fn assert_host<T: DatabaseHost>(_: &T) {}

#[tokio::test]
async fn get_of_a_missing_environment_is_none() {
    let (_s, fake, host) = fake().await;
    assert!(host.get_database(&name(100)).await.unwrap().is_none());
    check_exchanges(&fake);
}

#[tokio::test]
async fn apply_then_apply_again_is_unchanged_and_never_duplicates() {
    let (_s, fake, host) = fake().await;
    let host: Arc<dyn DatabaseHost> = Arc::new(host);
    assert_host(&host);
    let n = name(101);
    let spec = prototype_spec(&n);
    let first = host.apply_database(&n, &spec).await.unwrap();
    assert!(first.changes.iter().any(|c| c.outcome == Outcome::Created));
    let before = fake.exchanges().len();
    let second = host.apply_database(&n, &spec).await.unwrap();
    assert!(
        second
            .changes
            .iter()
            .all(|c| c.outcome == Outcome::Unchanged)
    );
    assert!(fake.exchanges()[before..].iter().all(|x| !x.is_mutating()));
    assert_eq!(fake.machines("pr-101-agents").len(), 1);
    let got = host.get_database(&n).await.unwrap().unwrap();
    assert_eq!(got.fingerprint, first.database.fingerprint);
    check_exchanges(&fake);
}

#[tokio::test]
async fn delete_removes_then_reports_already_gone() {
    let (_s, fake, host) = fake().await;
    let host: Box<dyn DatabaseHost> = Box::new(host);
    let n = name(102);
    host.apply_database(&n, &prototype_spec(&n)).await.unwrap();
    assert_eq!(host.delete_database(&n).await.unwrap(), Deleted::Removed);
    assert!(host.get_database(&n).await.unwrap().is_none());
    assert_eq!(
        host.delete_database(&n).await.unwrap(),
        Deleted::AlreadyGone
    );
    assert!(host.list_databases().await.unwrap().is_empty());
    check_exchanges(&fake);
}

#[tokio::test]
async fn list_returns_only_what_we_own() {
    let (_s, fake, host) = fake().await;
    let ours = name(103);
    host.apply_database(&ours, &prototype_spec(&ours))
        .await
        .unwrap();
    fake.add_foreign_app("pr-104-agents", ORG);
    fake.add_foreign_app("pr-105-agents", "someone-else");
    fake.add_foreign_app("website", ORG);
    let owned = host.list_databases().await.unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].name, ours.as_str());
    assert_eq!(owned[0].provider, "fly");
    check_exchanges(&fake);
}

#[tokio::test]
async fn resources_we_do_not_own_are_already_exists_and_untouched() {
    let (_s, fake, host) = fake().await;
    fake.add_foreign_app("pr-106-agents", ORG);
    let n = name(106);
    let err = host
        .apply_database(&n, &prototype_spec(&n))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert!(fake.mutating().iter().all(|x| x.status >= 400));
    // Teardown never reports success while something it can see under the name remains: the
    // app is in our organisation and not ours, so it is reported (naming it) and left untouched.
    let err = host.delete_database(&n).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert!(err.to_string().contains("pr-106-agents"), "{err}");
    assert!(fake.mutating().iter().all(|x| x.status >= 400));
    assert!(fake.apps().contains(&"pr-106-agents".to_string()));
    check_exchanges(&fake);
}

#[tokio::test]
async fn kind_and_display_name_the_provider() {
    let (_s, _fake, host) = fake().await;
    assert_eq!(host.kind(), "fly");
    assert_eq!(host.to_string(), "fly(org=acme)");
}
