//! Deployment Protection (issue 14, item 9): the automation bypass secret read from the project
//! (`GET /v9/projects/{idOrName}`), or the one the configuration names. Every body is checked
//! against the spec.

mod common;

use common::*;
use preview_core::secrecy::{ExposeSecret, SecretString};
use preview_core::{AppHost, AppRef, Error};
use providers_vercel::PROTECTION_BYPASS_HEADER;
use serde_json::json;
use wiremock::matchers::{bearer_token, method, path};
use wiremock::{Mock, MockServer};

/// Vercel's bypass secrets are 32 alphanumerics.
const BYPASS: &str = "BypassSENTINEL0123456789abcdefgh";
const INTEGRATION: &str = "IntegrationSENTINEL0123456789abc";

fn api() -> AppRef {
    AppRef {
        app: "api".into(),
        project: API.into(),
        domain: Some("pr-42-api.preview.inkeep.com".into()),
    }
}

#[tokio::test]
async fn the_projects_automation_bypass_is_read_never_an_integrations() {
    let fake = fake();
    fake.protect(API, Some(BYPASS));
    // Newer, but an integration's: not ours to use.
    fake.add_protection_bypass(API, INTEGRATION, "integration-automation-bypass");
    let server = fake.start().await;
    let host = host(&server);
    let found = host
        .get_protection_bypass(&api(), None)
        .await
        .expect("read")
        .expect("a bypass");
    assert_eq!(found.header, PROTECTION_BYPASS_HEADER);
    assert_eq!(found.secret.expose_secret(), BYPASS);
    // One read of the project, nothing written.
    let sent: Vec<(String, String)> = fake
        .exchanges()
        .iter()
        .map(|x| (x.method.clone(), x.path.clone()))
        .collect();
    assert_eq!(
        sent,
        [("GET".to_string(), "/v9/projects/prj_api".to_string())]
    );
    assert!(
        !format!("{found:?} {host:?} {fake:?}").contains("SENTINEL"),
        "a bypass secret in Debug"
    );
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn a_configured_secret_needs_no_request() {
    let fake = fake();
    let server = fake.start().await;
    let found = host(&server)
        .get_protection_bypass(&api(), Some(SecretString::from(BYPASS.to_string())))
        .await
        .expect("named")
        .expect("a bypass");
    assert_eq!(found.header, PROTECTION_BYPASS_HEADER);
    assert_eq!(found.secret.expose_secret(), BYPASS);
    assert!(fake.exchanges().is_empty(), "{:?}", fake.exchanges());
}

#[tokio::test]
async fn protected_without_an_automation_bypass_is_a_failure_that_says_what_to_do() {
    let fake = fake();
    fake.protect(API, None);
    fake.add_protection_bypass(API, INTEGRATION, "integration-automation-bypass");
    let server = fake.start().await;
    let host = host(&server);
    let err = host
        .get_protection_bypass(&api(), None)
        .await
        .expect_err("no way through");
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    // Found after the deploy began: exit 1 with a failure report, never "nothing was touched".
    assert!(!err.is_config(), "{err:?}");
    let text = format!("{err} {err:?}");
    for want in [
        "prj_api",
        "Protection Bypass for Automation",
        "apps.api.protection_bypass",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert!(!text.contains("SENTINEL"), "{text}");
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn an_unprotected_project_needs_no_bypass() {
    let fake = fake();
    let server = fake.start().await;
    let found = host(&server)
        .get_protection_bypass(&api(), None)
        .await
        .expect("read");
    assert!(found.is_none());
    check_exchanges(&fake.exchanges());
}

/// A project body as Vercel sends it, checked against the spec, with these protections.
fn project(sso: serde_json::Value, password: serde_json::Value) -> serde_json::Value {
    json!({
        "accountId": "team_preview",
        "directoryListing": false,
        "id": API,
        "name": "agents-api",
        "nodeVersion": "22.x",
        "resourceConfig": {"functionDefaultRegions": ["iad1"]},
        "defaultResourceConfig": {"functionDefaultRegions": ["iad1"]},
        "ssoProtection": sso,
        "passwordProtection": password,
        "protectionBypass": {},
    })
}

#[tokio::test]
async fn only_protections_that_cover_preview_domains_need_a_bypass() {
    for (sso, password, covered) in [
        (
            json!({"deploymentType": "all_except_custom_domains"}),
            json!(null),
            false,
        ),
        (json!(null), json!(null), false),
        (json!({"deploymentType": "all"}), json!(null), true),
        (
            json!({"deploymentType": "prod_deployment_urls_and_all_previews"}),
            json!(null),
            true,
        ),
        (json!(null), json!({"deploymentType": "preview"}), true),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v9/projects/prj_api"))
            .and(bearer_token(TOKEN))
            .respond_with(respond(
                "GET",
                "/v9/projects/prj_api",
                200,
                project(sso.clone(), password.clone()),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let r = host(&server).get_protection_bypass(&api(), None).await;
        match (covered, r) {
            (false, Ok(None)) => {}
            (true, Err(Error::Failed { .. })) => {}
            (_, other) => panic!("sso {sso}, password {password}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_missing_project_is_not_found_and_odd_ids_never_leave_the_route() {
    let fake = fake();
    let server = fake.start().await;
    let mut target = api();
    target.project = "prj_gone".into();
    let err = host(&server)
        .get_protection_bypass(&target, None)
        .await
        .expect_err("missing");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    target.project = "..".into();
    let err = host(&server)
        .get_protection_bypass(&target, None)
        .await
        .expect_err("refused");
    assert!(err.is_config(), "{err:?}");
    assert_eq!(fake.exchanges().len(), 1, "{:?}", fake.exchanges());
}
