//! HTTP contract of the Vercel AppHost: wiremock (the stateful fake, and plain mocks where a single
//! answer is scripted). Every request and response body is checked against the spec.

mod common;

use std::time::Duration;

use common::*;
use preview_core::{AppHost, Error, Idempotency, Outcome, RetryConfig, retry};
use preview_testkit::fakes::vercel::{BuildOutcome, FakeEnv};
use serde_json::json;
use wiremock::matchers::{any, bearer_token, method, path};
use wiremock::{Mock, MockServer};

fn outcomes(changes: &[preview_core::ResourceChange]) -> Vec<(String, String, Outcome)> {
    changes
        .iter()
        .map(|c| (c.kind.clone(), c.id.clone(), c.outcome))
        .collect()
}

fn api_spec() -> preview_core::AppSpec {
    spec(
        API,
        Some("pr-42-api.preview.inkeep.com"),
        vec![
            var("SPICEDB_TLS_ENABLED", "false"),
            secret("BETTER_AUTH_SECRET", SECRET),
            preview_core::EnvVar {
                sensitive: true,
                ..secret("OPENAI_API_KEY", "sk-test")
            },
        ],
    )
}

#[tokio::test]
async fn fresh_apply_writes_branch_scoped_vars_in_one_request_and_adds_the_domain() {
    let fake = fake();
    let server = fake.start().await;
    let host = host(&server);
    let changes = host
        .apply_app(&name(42), &api_spec())
        .await
        .expect("applied");
    assert_eq!(
        outcomes(&changes),
        vec![
            (
                "env_var".into(),
                "prj_api/SPICEDB_TLS_ENABLED".into(),
                Outcome::Created
            ),
            (
                "env_var".into(),
                "prj_api/BETTER_AUTH_SECRET".into(),
                Outcome::Created
            ),
            (
                "env_var".into(),
                "prj_api/OPENAI_API_KEY".into(),
                Outcome::Created
            ),
            (
                "domain".into(),
                "pr-42-api.preview.inkeep.com".into(),
                Outcome::Created
            ),
        ]
    );
    let envs = fake.envs(API);
    assert_eq!(envs.len(), 3);
    for e in &envs {
        assert_eq!(e.target, vec!["preview".to_string()]);
        assert_eq!(e.git_branch.as_deref(), Some(BRANCH));
        let comment = e.comment.as_deref().expect("a marker");
        assert!(
            comment.starts_with("managed-by:preview env=pr-42-agents pr=42 fp="),
            "{comment}"
        );
        let want = if e.key == "OPENAI_API_KEY" {
            "sensitive"
        } else {
            "encrypted"
        };
        assert_eq!(e.kind, want, "{}", e.key);
    }
    assert_eq!(
        envs.iter()
            .find(|e| e.key == "BETTER_AUTH_SECRET")
            .map(|e| e.value.as_str()),
        Some(SECRET)
    );
    let domains = fake.domains(API);
    assert_eq!(domains.len(), 1);
    assert_eq!(domains[0].git_branch.as_deref(), Some(BRANCH));
    let mutations = fake.mutations();
    let posts: Vec<_> = mutations
        .iter()
        .map(|m| (m.method.as_str(), m.path.as_str()))
        .collect();
    assert_eq!(
        posts,
        vec![
            ("POST", "/v10/projects/prj_api/env"),
            ("POST", "/v10/projects/prj_api/domains")
        ]
    );
    assert!(
        mutations[0]
            .request
            .as_ref()
            .is_some_and(|b| b.as_array().is_some_and(|a| a.len() == 3))
    );
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn reapplying_with_nothing_changed_makes_no_mutating_call() {
    let fake = fake();
    let server = fake.start().await;
    let host = host(&server);
    host.apply_app(&name(42), &api_spec()).await.expect("first");
    let before = fake.mutations().len();
    let changes = host
        .apply_app(&name(42), &api_spec())
        .await
        .expect("second");
    assert!(
        changes.iter().all(|c| c.outcome == Outcome::Unchanged),
        "{changes:?}"
    );
    assert_eq!(fake.mutations().len(), before, "a re-apply must not write");
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn a_changed_value_rewrites_only_that_var_and_stale_vars_are_removed() {
    let fake = fake();
    let server = fake.start().await;
    let host = host(&server);
    host.apply_app(&name(42), &api_spec()).await.expect("first");
    let mut s = api_spec();
    s.env[0] = var("SPICEDB_TLS_ENABLED", "true");
    s.env.remove(2);
    let before = fake.exchanges().len();
    let changes = host.apply_app(&name(42), &s).await.expect("second");
    assert_eq!(
        outcomes(&changes),
        vec![
            (
                "env_var".into(),
                "prj_api/SPICEDB_TLS_ENABLED".into(),
                Outcome::Updated
            ),
            (
                "env_var".into(),
                "prj_api/BETTER_AUTH_SECRET".into(),
                Outcome::Unchanged
            ),
            (
                "env_var".into(),
                "prj_api/OPENAI_API_KEY".into(),
                Outcome::Removed
            ),
            (
                "domain".into(),
                "pr-42-api.preview.inkeep.com".into(),
                Outcome::Unchanged
            ),
        ]
    );
    let sent: Vec<_> = fake.exchanges()[before..]
        .iter()
        .filter(|x| x.method != "GET")
        .cloned()
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let body = sent[0].request.clone().expect("body");
    assert_eq!(body.as_array().map(Vec::len), Some(1));
    assert_eq!(body[0]["key"], "SPICEDB_TLS_ENABLED");
    assert_eq!(sent[1].method, "DELETE");
    assert_eq!(fake.envs(API).len(), 2);
    assert_eq!(
        fake.envs(API)
            .iter()
            .find(|e| e.key == "SPICEDB_TLS_ENABLED")
            .map(|e| e.value.clone()),
        Some("true".into())
    );
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn failed_items_are_an_error_naming_key_and_code_never_the_value() {
    let fake = fake();
    fake.reject_key("BETTER_AUTH_SECRET", "ENV_CONFLICT");
    let server = fake.start().await;
    let host = host(&server);
    let err = host
        .apply_app(&name(42), &api_spec())
        .await
        .expect_err("failed[]");
    let text = format!("{err} {err:?} {host:?}");
    assert!(text.contains("BETTER_AUTH_SECRET (ENV_CONFLICT)"), "{text}");
    assert!(!text.contains(SECRET), "the value leaked: {text}");
    assert!(!text.contains(TOKEN), "the token leaked: {text}");
    // The fake did echo the value, as Vercel may: we never looked at it.
    let echoed = fake
        .exchanges()
        .iter()
        .any(|x| x.response.to_string().contains(SECRET));
    assert!(echoed);
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn an_unowned_var_with_the_same_key_and_branch_is_a_conflict_and_nothing_is_written() {
    let fake = fake();
    fake.add_env(
        API,
        FakeEnv::new("BETTER_AUTH_SECRET", "theirs", &["preview"], Some(BRANCH)),
    );
    let server = fake.start().await;
    let host = host(&server);
    let err = host
        .apply_app(&name(42), &api_spec())
        .await
        .expect_err("conflict");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(err.to_string().contains("BETTER_AUTH_SECRET"), "{err}");
    assert!(fake.mutations().is_empty(), "{:?}", fake.mutations());

    // Adopting takes it over: one upsert, with our marker.
    let mut s = api_spec();
    s.adopt_existing = true;
    let changes = host.apply_app(&name(42), &s).await.expect("adopted");
    assert!(
        changes
            .iter()
            .any(|c| c.id == "prj_api/BETTER_AUTH_SECRET" && c.outcome == Outcome::Updated)
    );
    let adopted: Vec<FakeEnv> = fake
        .envs(API)
        .into_iter()
        .filter(|e| e.key == "BETTER_AUTH_SECRET")
        .collect();
    assert_eq!(adopted.len(), 1);
    assert!(
        adopted[0]
            .comment
            .as_deref()
            .is_some_and(|c| c.contains("env=pr-42-agents"))
    );
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn vars_of_other_targets_and_branches_are_not_conflicts_and_never_touched() {
    let fake = fake();
    fake.add_env(
        API,
        FakeEnv::new("BETTER_AUTH_SECRET", "prod", &["production"], None),
    );
    fake.add_env(
        API,
        FakeEnv::new("BETTER_AUTH_SECRET", "dev", &["development"], None),
    );
    fake.add_env(
        API,
        FakeEnv::new("BETTER_AUTH_SECRET", "other", &["preview"], Some("main")),
    );
    let server = fake.start().await;
    let host = host(&server);
    host.apply_app(&name(42), &api_spec())
        .await
        .expect("applied");
    host.delete_app(&name(42), &api_spec().target)
        .await
        .expect("deleted");
    let left: Vec<(Vec<String>, Option<String>, String)> = fake
        .envs(API)
        .into_iter()
        .map(|e| (e.target, e.git_branch, e.value))
        .collect();
    assert_eq!(
        left,
        vec![
            (vec!["production".into()], None, "prod".into()),
            (vec!["development".into()], None, "dev".into()),
            (vec!["preview".into()], Some("main".into()), "other".into()),
        ]
    );
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn the_guard_refuses_production_and_unscoped_vars_before_any_request() {
    let fake = fake();
    // A var carrying our marker but targeting production (someone edited it): teardown refuses.
    fake.add_env(
        API,
        FakeEnv::new("DATABASE_URL", "prod-db", &["production"], None)
            .comment("managed-by:preview env=pr-42-agents pr=42 fp=00"),
    );
    fake.add_env(
        API,
        FakeEnv::new("OTHER", "dev", &["development"], None)
            .comment("managed-by:preview env=pr-42-agents pr=42 fp=00"),
    );
    let server = fake.start().await;
    let host = host(&server);
    let err = host
        .delete_app(&name(42), &api_spec().target)
        .await
        .expect_err("refused");
    assert!(err.is_config(), "{err:?}");
    assert!(err.to_string().contains("production"), "{err}");
    assert!(
        fake.mutations().is_empty(),
        "nothing may be deleted: {:?}",
        fake.mutations()
    );
    assert_eq!(fake.envs(API).len(), 2);

    // A write without a branch never leaves the process.
    let mut s = api_spec();
    s.branch = String::new();
    let before = fake.exchanges().len();
    let err = host.apply_app(&name(42), &s).await.expect_err("refused");
    assert!(err.is_config(), "{err:?}");
    assert_eq!(fake.exchanges().len(), before, "no request may be sent");
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn a_domain_already_ours_for_the_branch_is_unchanged() {
    let fake = fake();
    fake.add_domain(API, "pr-42-api.preview.inkeep.com", Some(BRANCH));
    let server = fake.start().await;
    let host = host(&server);
    let changes = host
        .apply_app(&name(42), &api_spec())
        .await
        .expect("applied");
    assert_eq!(changes.last().map(|c| c.outcome), Some(Outcome::Unchanged));
    assert!(fake.mutations().iter().all(|m| !m.path.contains("domains")));
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn a_domain_serving_production_or_another_branch_is_a_clear_conflict_before_any_write() {
    for branch in [None, Some("main")] {
        let fake = fake();
        fake.add_domain(API, "pr-42-api.preview.inkeep.com", branch);
        let server = fake.start().await;
        let host = host(&server);
        let err = host
            .apply_app(&name(42), &api_spec())
            .await
            .expect_err("conflict");
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("pr-42-api.preview.inkeep.com") && text.contains("not this PR's branch"),
            "{text}"
        );
        assert!(fake.mutations().is_empty(), "{:?}", fake.mutations());
        check_exchanges(&fake.exchanges());
    }
}

#[tokio::test]
async fn a_domain_on_another_project_is_a_conflict() {
    let fake = fake();
    fake.add_foreign_domain("pr-42-api.preview.inkeep.com");
    let server = fake.start().await;
    let host = host(&server);
    let err = host
        .apply_app(&name(42), &api_spec())
        .await
        .expect_err("conflict");
    assert!(
        matches!(
            err,
            Error::Conflict {
                request_id: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("another Vercel project"), "{err}");
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn invalid_domains_are_config_errors() {
    let fake = fake();
    let server = fake.start().await;
    let host = host(&server);
    for bad in [
        "x",
        "$(id).preview.inkeep.com",
        "PR-1.example.com",
        "a..b.com",
    ] {
        let mut s = api_spec();
        s.target.domain = Some(bad.into());
        let err = host.apply_app(&name(42), &s).await.expect_err("invalid");
        assert!(err.is_config(), "{bad}: {err:?}");
    }
    assert!(fake.exchanges().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_deployment_is_created_from_git_and_awaited_until_ready() {
    let fake = fake();
    fake.set_build(BuildOutcome::Ready { after_polls: 3 });
    let server = fake.start().await;
    let (host, _clock) = host_with_clock(&server);
    let s = api_spec();
    host.apply_app(&name(42), &s).await.expect("applied");
    let (d, outcome) = host
        .deploy_app(&name(42), &s, &commit())
        .await
        .expect("deployed");
    assert_eq!(outcome, Outcome::Created);
    assert_eq!(d.state, "READY");
    assert_eq!(d.sha, SHA);
    assert!(
        d.url.starts_with("https://agents-api-") && d.url.ends_with(".vercel.app"),
        "{}",
        d.url
    );
    assert_eq!(
        d.domain_url.as_deref(),
        Some("https://pr-42-api.preview.inkeep.com")
    );
    assert!(
        d.inspector_url
            .as_deref()
            .is_some_and(|u| u.contains(&d.id))
    );
    let deployments = fake.deployments();
    assert_eq!(deployments.len(), 1);
    assert!(
        deployments[0]
            .alias
            .iter()
            .any(|a| a == "pr-42-api.preview.inkeep.com")
    );
    let create = fake
        .exchanges()
        .into_iter()
        .find(|x| x.method == "POST" && x.path == "/v13/deployments")
        .and_then(|x| x.request)
        .expect("created");
    // The vars digest follows the fingerprints' scheme: checked for its shape, not its value.
    assert!(
        create["meta"]["previewVars"]
            .as_str()
            .is_some_and(|d| d.len() == 16 && d.bytes().all(|b| b.is_ascii_hexdigit())),
        "{create}"
    );
    insta::assert_json_snapshot!(create, {".meta.previewVars" => "[vars digest]"}, @r#"
    {
      "gitSource": {
        "org": "inkeep",
        "ref": "feat/login-flow",
        "repo": "agents",
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "type": "github"
      },
      "meta": {
        "githubCommitSha": "0123456789abcdef0123456789abcdef01234567",
        "previewEnv": "pr-42-agents",
        "previewVars": "[vars digest]"
      },
      "name": "prj_api",
      "project": "prj_api"
    }
    "#);
    let polls = fake
        .exchanges()
        .iter()
        .filter(|x| x.method == "GET" && x.path.starts_with("/v13/deployments/"))
        .count();
    assert_eq!(polls, 4, "QUEUED→BUILDING×2→READY");

    // Deploying the same commit again reuses it: no mutating call.
    let before = fake.mutations().len();
    let (again, outcome) = host
        .deploy_app(&name(42), &s, &commit())
        .await
        .expect("reused");
    assert_eq!(outcome, Outcome::Unchanged);
    assert_eq!(again.id, d.id);
    assert_eq!(fake.mutations().len(), before);

    // New env values make a new deployment necessary.
    let mut changed = s.clone();
    changed.env[0] = var("SPICEDB_TLS_ENABLED", "true");
    host.apply_app(&name(42), &changed)
        .await
        .expect("re-applied");
    let (newer, outcome) = host
        .deploy_app(&name(42), &changed, &commit())
        .await
        .expect("redeployed");
    assert_eq!(outcome, Outcome::Created);
    assert_ne!(newer.id, d.id);
    check_exchanges(&fake.exchanges());
}

#[tokio::test(start_paused = true)]
async fn a_failed_deployment_reports_state_code_message_and_inspector_url() {
    let fake = fake();
    fake.set_build(BuildOutcome::Error {
        after_polls: 1,
        code: "BUILD_FAILED".into(),
        message: "the build failed".into(),
    });
    let server = fake.start().await;
    let (host, _clock) = host_with_clock(&server);
    let s = api_spec();
    let err = host
        .deploy_app(&name(42), &s, &commit())
        .await
        .expect_err("failed");
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    let text = err.to_string();
    for part in [
        "ERROR",
        "BUILD_FAILED",
        "the build failed",
        "https://vercel.com/fake-team/agents-api/dpl_",
    ] {
        assert!(text.contains(part), "{part} missing in {text}");
    }
    // A re-run does not reuse the failed deployment.
    fake.set_build(BuildOutcome::Ready { after_polls: 0 });
    let (d, outcome) = host
        .deploy_app(&name(42), &s, &commit())
        .await
        .expect("retried");
    assert_eq!((d.state.as_str(), outcome), ("READY", Outcome::Created));
    check_exchanges(&fake.exchanges());
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_the_wait_with_a_timeout_after_backed_off_polls() {
    let fake = fake();
    fake.set_build(BuildOutcome::Never);
    let server = fake.start().await;
    let (host, clock) = host_with_clock(&server);
    let mut s = api_spec();
    s.deploy_timeout = Duration::from_secs(90);
    let err = host
        .deploy_app(&name(42), &s, &commit())
        .await
        .expect_err("timeout");
    let Error::Timeout { detail, waited, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*waited, Duration::from_secs(90));
    assert!(
        detail.contains("BUILDING") && detail.contains("https://vercel.com/"),
        "{detail}"
    );
    // 1 s steps for 15 s, 5 s steps up to a minute, 15 s steps after, cut at the deadline.
    let secs: Vec<u64> = clock.sleeps().iter().map(Duration::as_secs).collect();
    let mut want = vec![1; 15];
    want.extend([5; 9]);
    want.extend([15, 15]);
    assert_eq!(secs, want);
    assert_eq!(clock.now(), Duration::from_secs(90));
    let polls = fake
        .exchanges()
        .iter()
        .filter(|x| x.path.starts_with("/v13/deployments/"))
        .count();
    assert_eq!(
        polls,
        want.len() + 1,
        "one poll after every sleep, plus the first"
    );
    check_exchanges(&fake.exchanges());
}

#[tokio::test(start_paused = true)]
async fn the_last_sleep_is_cut_at_the_deadline() {
    let fake = fake();
    fake.set_build(BuildOutcome::Never);
    let server = fake.start().await;
    let (host, clock) = host_with_clock(&server);
    let mut s = api_spec();
    s.deploy_timeout = Duration::from_millis(2500);
    let err = host
        .deploy_app(&name(42), &s, &commit())
        .await
        .expect_err("timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let ms: Vec<u128> = clock.sleeps().iter().map(Duration::as_millis).collect();
    assert_eq!(ms, vec![1000, 1000, 500]);
}

#[tokio::test]
async fn teardown_deletes_exactly_our_vars_for_the_branch_and_the_domain() {
    let fake = fake();
    let server = fake.start().await;
    let host = host(&server);
    host.apply_app(&name(42), &api_spec()).await.expect("ours");
    let mut other = api_spec();
    other.branch = "other-branch".into();
    other.target.domain = Some("pr-43-api.preview.inkeep.com".into());
    host.apply_app(&name(43), &other)
        .await
        .expect("another env");
    fake.add_env(
        API,
        FakeEnv::new(
            "SPICEDB_TLS_ENABLED",
            "x",
            &["preview"],
            Some("someone-else"),
        ),
    );
    fake.add_env(
        API,
        FakeEnv::new("BETTER_AUTH_SECRET", "prod", &["production"], None),
    );
    assert_eq!(fake.envs(API).len(), 8);

    let changes = host
        .delete_app(&name(42), &api_spec().target)
        .await
        .expect("deleted");
    let removed: Vec<_> = changes
        .iter()
        .filter(|c| c.outcome == Outcome::Removed)
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(
        removed,
        vec![
            "pr-42-api.preview.inkeep.com",
            "prj_api/SPICEDB_TLS_ENABLED",
            "prj_api/BETTER_AUTH_SECRET",
            "prj_api/OPENAI_API_KEY",
        ]
    );
    let left = fake.envs(API);
    assert_eq!(left.len(), 5);
    assert!(left.iter().all(|e| {
        !e.comment
            .as_deref()
            .unwrap_or("")
            .contains("env=pr-42-agents ")
    }));
    assert_eq!(fake.domains(API).len(), 1);
    assert_eq!(fake.domains(API)[0].name, "pr-43-api.preview.inkeep.com");

    // Already gone is success, and sends nothing.
    let before = fake.mutations().len();
    let again = host
        .delete_app(&name(42), &api_spec().target)
        .await
        .expect("again");
    assert!(
        again.iter().all(|c| c.outcome == Outcome::AlreadyGone),
        "{again:?}"
    );
    assert_eq!(fake.mutations().len(), before);
    check_exchanges(&fake.exchanges());
}

#[tokio::test(start_paused = true)]
async fn teardown_cancels_an_in_flight_deployment_of_the_environment() {
    let fake = fake();
    fake.set_build(BuildOutcome::Never);
    let server = fake.start().await;
    let (host, _clock) = host_with_clock(&server);
    let mut s = api_spec();
    s.deploy_timeout = Duration::from_secs(3);
    host.apply_app(&name(42), &s).await.expect("applied");
    host.deploy_app(&name(42), &s, &commit())
        .await
        .expect_err("still building");
    let changes = host
        .delete_app(&name(42), &s.target)
        .await
        .expect("deleted");
    assert!(
        changes
            .iter()
            .any(|c| c.kind == "deployment" && c.outcome == Outcome::Removed),
        "{changes:?}"
    );
    assert_eq!(fake.deployments()[0].state, "CANCELED");
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn get_and_list_find_what_we_own() {
    let fake = fake();
    let server = fake.start().await;
    let host = host(&server);
    assert_eq!(
        host.get_app(&name(42), &api_spec().target)
            .await
            .expect("get"),
        None
    );
    host.apply_app(&name(42), &api_spec())
        .await
        .expect("applied");
    fake.add_env(
        API,
        FakeEnv::new("FOREIGN", "x", &["preview"], Some(BRANCH)).comment("not ours"),
    );
    fake.add_env(
        UI,
        FakeEnv::new("K", "x", &["preview"], Some("b"))
            .comment("managed-by:preview env=garbage pr=1"),
    );
    let status = host
        .get_app(&name(42), &api_spec().target)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        status.env_keys,
        vec![
            "BETTER_AUTH_SECRET",
            "OPENAI_API_KEY",
            "SPICEDB_TLS_ENABLED"
        ]
    );
    assert_eq!(
        status.domain.as_deref(),
        Some("pr-42-api.preview.inkeep.com")
    );
    assert_eq!(status.deployment, None);

    let owned = host
        .list_apps(&[API.to_string(), UI.to_string()])
        .await
        .expect("list");
    let mut resources: Vec<(String, String)> = owned
        .iter()
        .map(|o| (o.name.to_string(), o.resource.clone()))
        .collect();
    resources.sort();
    assert_eq!(
        resources,
        vec![
            (
                "pr-42-agents".into(),
                "domain pr-42-api.preview.inkeep.com".into()
            ),
            (
                "pr-42-agents".into(),
                "env_var prj_api/BETTER_AUTH_SECRET".into()
            ),
            (
                "pr-42-agents".into(),
                "env_var prj_api/OPENAI_API_KEY".into()
            ),
            (
                "pr-42-agents".into(),
                "env_var prj_api/SPICEDB_TLS_ENABLED".into()
            ),
        ]
    );
    assert!(
        owned
            .iter()
            .all(|o| o.provider == "vercel" && o.created_at.is_some())
    );
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn domain_lists_are_followed_across_pages() {
    let fake = fake();
    let server = fake.start().await;
    let host = host(&server);
    host.apply_app(&name(42), &api_spec())
        .await
        .expect("applied");
    for i in 0..230 {
        fake.add_domain(API, &format!("d{i}.example.com"), Some(BRANCH));
    }
    let owned = host.list_apps(&[API.to_string()]).await.expect("list");
    let domains = owned
        .iter()
        .filter(|o| o.resource.starts_with("domain "))
        .count();
    assert_eq!(domains, 231);
    let pages = fake
        .exchanges()
        .iter()
        .filter(|x| x.path == "/v9/projects/prj_api/domains")
        .count();
    assert_eq!(pages, 3);
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn rate_limited_then_success_through_the_pipeline_retry() {
    let fake = fake();
    fake.fail_next(
        Some("POST"),
        429,
        json!({"error": {"code": "rate_limited", "message": "Rate limit exceeded", "limit": {"remaining": 0, "reset": 1, "resetMs": 1000, "total": 100}}}),
        Some("1"),
    );
    let server = fake.start().await;
    let host = host_once(&server);
    let first = host
        .apply_app(&name(42), &api_spec())
        .await
        .expect_err("429");
    assert!(
        matches!(first, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(1)),
        "{first:?}"
    );
    assert!(fake.envs(API).is_empty());

    fake.fail_next(
        Some("POST"),
        429,
        json!({"error": {"code": "rate_limited", "message": "Rate limit exceeded"}}),
        Some("1"),
    );
    let spec = api_spec();
    let env = name(42);
    let changes = retry(
        &RetryConfig::default(),
        "apply vercel app",
        Idempotency::Idempotent,
        || host.apply_app(&env, &spec),
    )
    .await
    .expect("succeeds after the 429");
    assert!(changes.iter().all(|c| c.outcome == Outcome::Created));
    let env_posts = fake
        .exchanges()
        .iter()
        .filter(|x| x.method == "POST" && x.path.ends_with("/env"))
        .count();
    assert_eq!(env_posts, 3);
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn statuses_map_to_error_kinds_with_request_ids_and_no_secrets() {
    type Case = (u16, serde_json::Value, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        (
            400,
            json!({"error": {"code": "bad_request", "message": "invalid"}}),
            |e| matches!(e, Error::Api { status: 400, .. }),
        ),
        (
            401,
            json!({"error": {"code": "forbidden", "message": "invalid token"}}),
            |e| matches!(e, Error::Unauthorized { status: 401, .. }),
        ),
        (
            403,
            json!({"error": {"code": "forbidden", "message": "no access"}}),
            |e| matches!(e, Error::Unauthorized { status: 403, .. }),
        ),
        (
            404,
            json!({"error": {"code": "not_found", "message": "Project not found"}}),
            |e| matches!(e, Error::NotFound { .. }),
        ),
        (
            409,
            json!({"error": {"code": "conflict", "message": "being transferred"}}),
            |e| matches!(e, Error::Conflict { .. }),
        ),
        (
            429,
            json!({"error": {"code": "rate_limited", "message": "slow down"}}),
            |e| matches!(e, Error::RateLimited { .. }),
        ),
        (
            500,
            json!({"error": {"code": "internal_server_error", "message": "boom"}}),
            |e| {
                matches!(e, Error::Api { status: 500, .. })
                    && e.is_retryable(Idempotency::Idempotent)
            },
        ),
    ];
    for (status, body, is) in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v10/projects/prj_api/env"))
            .and(bearer_token(TOKEN))
            .respond_with(respond("GET", "/v10/projects/prj_api/env", status, body))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(any())
            .respond_with(
                wiremock::ResponseTemplate::new(418)
                    .set_body_string("no mock matched this request"),
            )
            .expect(0)
            .mount(&server)
            .await;
        let host = host_once(&server);
        let err = host
            .apply_app(&name(42), &api_spec())
            .await
            .expect_err("error");
        assert!(is(&err), "{status}: {err:?}");
        let text = format!("{err} {err:?} {host:?}");
        assert!(!text.contains(TOKEN) && !text.contains(SECRET), "{text}");
        if status != 404 {
            assert!(text.contains("iad1::mock-request-id"), "{status}: {text}");
        }
        check_received(&server).await;
    }
}

#[tokio::test]
async fn transport_errors_never_show_the_token() {
    let host = providers_vercel::VercelApps::builder()
        .token(TOKEN)
        .team_id(TEAM)
        .base_url("http://127.0.0.1:9")
        .retry(preview_core::RetryConfig::none())
        .build()
        .expect("valid");
    let err = host
        .apply_app(&name(42), &api_spec())
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    let text = format!("{err} {err:?} {err:#?} {host:?} {host}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let fake = fake();
    let server = fake.start().await;
    let host = providers_vercel::VercelApps::builder()
        .token("wrong")
        .team_id(TEAM)
        .base_url(server.uri())
        .build()
        .expect("valid");
    let err = host.list_apps(&[API.to_string()]).await.expect_err("403");
    assert!(
        matches!(err, Error::Unauthorized { status: 403, .. }),
        "{err:?}"
    );
    check_exchanges(&fake.exchanges());
}

fn deployment(state: &str, alias_error: serde_json::Value) -> serde_json::Value {
    json!({
        "id": "dpl_1", "url": "agents-api-abc123-team.vercel.app", "name": "agents-api",
        "projectId": "prj_api", "readyState": state, "status": state,
        "createdAt": 1_763_800_000_000u64, "buildingAt": 1_763_800_000_000u64,
        "bootedAt": 1_763_800_000_000u64, "build": {"env": []}, "env": [],
        "inspectorUrl": "https://vercel.com/team/agents-api/dpl_1",
        "isInConcurrentBuildsQueue": false, "isInSystemBuildsQueue": false,
        "projectSettings": {}, "aliasAssigned": false, "aliasError": alias_error,
        "alias": [], "buildSkipped": false, "creator": {"uid": "usr_1"}, "public": false,
        "type": "LAMBDAS", "meta": {"previewEnv": "pr-42-agents"}, "regions": ["iad1"],
        "version": 2, "plan": "pro", "createdIn": "iad1", "ownerId": "team_1", "routes": null,
    })
}

#[tokio::test]
async fn a_ready_deployment_whose_alias_failed_is_a_failure() {
    let server = MockServer::start().await;
    let env_path = "/v10/projects/prj_api/env";
    Mock::given(method("GET"))
        .and(path(env_path))
        .and(bearer_token(TOKEN))
        .respond_with(respond("GET", env_path, 200, json!({"envs": []})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v6/deployments"))
        .and(bearer_token(TOKEN))
        .respond_with(respond(
            "GET",
            "/v6/deployments",
            200,
            json!({"deployments": [], "pagination": {"count": 0, "next": null, "prev": null}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v13/deployments"))
        .and(bearer_token(TOKEN))
        .respond_with(respond(
            "POST",
            "/v13/deployments",
            200,
            deployment("QUEUED", json!(null)),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v13/deployments/dpl_1"))
        .and(bearer_token(TOKEN))
        .respond_with(respond(
            "GET",
            "/v13/deployments/dpl_1",
            200,
            deployment(
                "READY",
                json!({"code": "cert_missing", "message": "no certificate for the alias"}),
            ),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(
            wiremock::ResponseTemplate::new(418).set_body_string("no mock matched this request"),
        )
        .expect(0)
        .mount(&server)
        .await;
    let (host, _clock) = host_with_clock(&server);
    let err = host
        .deploy_app(&name(42), &api_spec(), &commit())
        .await
        .expect_err("alias failed");
    let text = err.to_string();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
    for part in [
        "READY",
        "cert_missing",
        "no certificate",
        "https://vercel.com/team/agents-api/dpl_1",
    ] {
        assert!(text.contains(part), "{part} missing in {text}");
    }
    check_received(&server).await;
}

#[test]
fn the_host_works_behind_dyn_and_concrete() {
    fn takes<T: AppHost>(_: &T) {}
    let host = providers_vercel::VercelApps::builder()
        .token(TOKEN)
        .build()
        .expect("valid");
    assert_eq!(host.to_string(), "vercel(personal)");
    takes(&host);
    let shared: std::sync::Arc<dyn AppHost> = std::sync::Arc::new(host.clone());
    takes(&shared);
    let boxed: Box<dyn AppHost> = Box::new(host);
    takes(&boxed);
    assert_eq!(shared.kind(), "vercel");
}

#[tokio::test]
async fn the_fake_never_shows_its_token_or_values_in_debug() {
    let fake = fake();
    fake.add_env(API, FakeEnv::new("K", SECRET, &["preview"], Some(BRANCH)));
    let text = format!("{fake:?} {:?}", fake.envs(API));
    assert!(!text.contains(TOKEN) && !text.contains(SECRET), "{text}");
}

#[tokio::test]
async fn a_renamed_head_branch_moves_our_vars_and_domain_to_it() {
    let fake = fake();
    let server = fake.start().await;
    let host = host(&server);
    host.apply_app(&name(42), &api_spec())
        .await
        .expect("old branch");
    let mut renamed = api_spec();
    renamed.branch = "feat/login-flow-v2".into();
    let changes = host
        .apply_app(&name(42), &renamed)
        .await
        .expect("new branch");
    let removed = changes
        .iter()
        .filter(|c| c.outcome == Outcome::Removed)
        .count();
    let created = changes
        .iter()
        .filter(|c| c.outcome == Outcome::Created)
        .count();
    assert_eq!((created, removed), (3, 3), "{changes:?}");
    assert_eq!(changes.last().map(|c| c.outcome), Some(Outcome::Updated));
    assert!(
        fake.envs(API)
            .iter()
            .all(|e| e.git_branch.as_deref() == Some("feat/login-flow-v2"))
    );
    assert_eq!(
        fake.domains(API)[0].git_branch.as_deref(),
        Some("feat/login-flow-v2")
    );
    let again = host.apply_app(&name(42), &renamed).await.expect("settled");
    assert!(
        again.iter().all(|c| c.outcome == Outcome::Unchanged),
        "{again:?}"
    );
    check_exchanges(&fake.exchanges());
}

#[tokio::test(start_paused = true)]
async fn lost_responses_of_creates_are_found_on_retry_not_duplicated() {
    let fake = fake();
    fake.lose_next_response("POST", "/domains", 502);
    fake.lose_next_response("POST", "/v13/deployments", 502);
    let server = fake.start().await;
    let (host, _clock) = host_with_clock(&server);
    let (env, s, c) = (name(42), api_spec(), commit());
    let config = RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(5));
    let changes = retry(&config, "apply", Idempotency::Idempotent, || {
        host.apply_app(&env, &s)
    })
    .await
    .expect("applied on retry");
    assert_eq!(
        changes.last().map(|c| c.outcome),
        Some(Outcome::Unchanged),
        "found, not re-added"
    );
    assert_eq!(fake.domains(API).len(), 1);
    let (d, outcome) = retry(&config, "deploy", Idempotency::Idempotent, || {
        host.deploy_app(&env, &s, &c)
    })
    .await
    .expect("deployed on retry");
    // Found by its marker, not created again; only the alias was still missing.
    assert_eq!(outcome, Outcome::Updated);
    assert_eq!(fake.deployments().len(), 1);
    assert_eq!(d.id, fake.deployments()[0].id);
    let creates = fake
        .exchanges()
        .iter()
        .filter(|x| {
            x.method == "POST" && (x.path.ends_with("/domains") || x.path == "/v13/deployments")
        })
        .count();
    assert_eq!(creates, 2, "one create each");
    check_exchanges(&fake.exchanges());
}

#[tokio::test]
async fn a_var_removed_out_of_band_is_recreated_alone() {
    let fake = fake();
    let server = fake.start().await;
    let host = host(&server);
    host.apply_app(&name(42), &api_spec()).await.expect("first");
    fake.remove_env(API, "BETTER_AUTH_SECRET");
    let before = fake.mutations().len();
    let changes = host
        .apply_app(&name(42), &api_spec())
        .await
        .expect("repair");
    let changed: Vec<_> = changes
        .iter()
        .filter(|c| c.outcome != Outcome::Unchanged)
        .map(|c| (c.id.as_str(), c.outcome))
        .collect();
    assert_eq!(
        changed,
        vec![("prj_api/BETTER_AUTH_SECRET", Outcome::Created)]
    );
    let sent = &fake.mutations()[before..];
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]
            .request
            .as_ref()
            .and_then(|b| b.as_array())
            .map(Vec::len),
        Some(1)
    );
    check_exchanges(&fake.exchanges());
}

#[test]
fn non_conforming_bodies_fail_the_spec_check() {
    let fails = |f: &dyn Fn()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    let domain = json!({"name": "a.example.com", "apexName": "example.com", "projectId": "p", "verified": true});
    check_response("GET", "/v9/projects/p/domains/a.example.com", 200, &domain);
    let mut no_verified = domain.clone();
    no_verified.as_object_mut().map(|o| o.remove("verified"));
    assert!(fails(&|| check_response(
        "GET",
        "/v9/projects/p/domains/a.example.com",
        200,
        &no_verified
    )));
    let bad_type = json!([{"key": "K", "value": "v", "type": "bogus", "target": ["preview"]}]);
    assert!(fails(&|| check_request(
        "POST",
        "/v10/projects/p/env?upsert=true",
        &bad_type
    )));
    let no_target = json!({"key": "K", "value": "v", "type": "encrypted"});
    assert!(fails(&|| check_request(
        "POST",
        "/v10/projects/p/env",
        &no_target
    )));
    let long_branch = json!([{"key": "K", "value": "v", "type": "encrypted", "target": ["preview"], "gitBranch": "b".repeat(251)}]);
    assert!(fails(&|| check_request(
        "POST",
        "/v10/projects/p/env",
        &long_branch
    )));
    let extra_field = json!({"name": "p", "gitSource": {"type": "github", "org": "o", "repo": "r", "ref": "b"}, "bogus": 1});
    assert!(fails(&|| check_request(
        "POST",
        "/v13/deployments",
        &extra_field
    )));
    assert!(fails(&|| check_response(
        "GET",
        "/v9/projects/p/domains/x",
        404,
        &json!({"message": "x"})
    )));
}
