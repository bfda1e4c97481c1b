//! The conformance checks against a real Vercel account, run by hand:
//!
//! ```text
//! VERCEL_TOKEN=… VERCEL_TEAM_ID=… VERCEL_LIVE_PROJECT=prj_… VERCEL_LIVE_DOMAIN_BASE=preview.example.com \
//!   cargo test -p providers-vercel --test live -- --ignored
//! ```
//!
//! Each check uses a fresh environment name and cleans up after itself. Deployments are not
//! exercised here: they need a git repository connected to the project.

use preview_core::testing::conformance;
use providers_vercel::VercelApps;

fn live() -> (VercelApps, String, String) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("set {k} to run live tests"));
    let host = VercelApps::from_env()
        .build()
        .expect("VERCEL_TOKEN and friends");
    (
        host,
        var("VERCEL_LIVE_PROJECT"),
        var("VERCEL_LIVE_DOMAIN_BASE"),
    )
}

#[tokio::test]
#[ignore = "needs VERCEL_TOKEN, VERCEL_LIVE_PROJECT and VERCEL_LIVE_DOMAIN_BASE"]
async fn live_apply_is_idempotent() {
    let (h, p, d) = live();
    conformance::check_app_apply_is_idempotent(&h, &p, &d).await;
}

#[tokio::test]
#[ignore = "needs VERCEL_TOKEN, VERCEL_LIVE_PROJECT and VERCEL_LIVE_DOMAIN_BASE"]
async fn live_changed_value_updates() {
    let (h, p, d) = live();
    conformance::check_app_changed_value_updates(&h, &p, &d).await;
}

#[tokio::test]
#[ignore = "needs VERCEL_TOKEN, VERCEL_LIVE_PROJECT and VERCEL_LIVE_DOMAIN_BASE"]
async fn live_delete_twice() {
    let (h, p, d) = live();
    conformance::check_app_delete_twice(&h, &p, &d).await;
}

#[tokio::test]
#[ignore = "needs VERCEL_TOKEN, VERCEL_LIVE_PROJECT and VERCEL_LIVE_DOMAIN_BASE"]
async fn live_list_owned() {
    let (h, p, d) = live();
    conformance::check_app_list_owned(&h, &p, &d).await;
}
