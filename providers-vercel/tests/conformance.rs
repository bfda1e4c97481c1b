//! The AppHost conformance suite of preview-core, run against the stateful fake of the Vercel API
//! (real request building, error mapping and decoding; no network beyond localhost).

mod common;

use common::{TEAM, TOKEN, check_exchanges};
use preview_core::Commit;
use preview_core::http::ClientSettings;
use preview_core::testing::conformance;
use preview_testkit::fakes::vercel::FakeVercel;
use providers_vercel::VercelApps;

const PROJECT: &str = "prj_conformance";
const DOMAIN_BASE: &str = "preview.example.com";

fn commit() -> Commit {
    Commit {
        repo: "acme/app".into(),
        branch: "conformance".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
    }
}

async fn vercel() -> (VercelApps, FakeVercel) {
    let fake = FakeVercel::new(TOKEN)
        .team(TEAM)
        .project(PROJECT, "conformance-app");
    // The server must outlive the host handed to the suite; a test process ends soon anyway.
    let server: &'static wiremock::MockServer = Box::leak(Box::new(fake.start().await));
    let host = VercelApps::builder()
        .token(TOKEN)
        .team_id(TEAM)
        .base_url(server.uri())
        // Deployments build after a few polls: poll 1 ms apart instead of 1 s.
        .poll_unit(std::time::Duration::from_millis(1))
        .build()
        .expect("valid settings");
    (host, fake)
}

async fn suite_input() -> (VercelApps, String, String, Commit) {
    let (host, _fake) = vercel().await;
    (host, PROJECT.into(), DOMAIN_BASE.into(), commit())
}

preview_core::app_host_conformance!(suite_input().await);

/// The same checks in one run, then every exchange they caused is checked against the spec.
#[tokio::test]
async fn the_suite_speaks_the_documented_api() {
    let (host, fake) = vercel().await;
    conformance::check_app_apply_is_idempotent(&host, PROJECT, DOMAIN_BASE).await;
    conformance::check_app_changed_value_updates(&host, PROJECT, DOMAIN_BASE).await;
    conformance::check_app_deploy_is_idempotent(&host, PROJECT, DOMAIN_BASE, &commit()).await;
    conformance::check_app_delete_twice(&host, PROJECT, DOMAIN_BASE).await;
    conformance::check_app_list_owned(&host, PROJECT, DOMAIN_BASE).await;
    // Everything the checks created was cleaned up.
    assert!(fake.envs(PROJECT).is_empty(), "{:?}", fake.envs(PROJECT));
    assert!(
        fake.domains(PROJECT).is_empty(),
        "{:?}",
        fake.domains(PROJECT)
    );
    check_exchanges(&fake.exchanges());
}
