//! Pipeline scenarios over the in-memory hosts: fresh deploy, no-op re-deploy, teardown from every
//! partial state, close during deploy, sweep decisions, failure reports and secret hygiene.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use preview_core::config::{Config, SweepDef};
use preview_core::pipeline::{Candidate, DeployStatus, PrLookup, SweepAction, decide_sweep};
use preview_core::secrecy::SecretString;
use preview_core::testing::{
    InMemoryApps, InMemoryDatabases, InMemoryHttp, InMemorySource, RecordingHooks,
};
use preview_core::{
    CollectEvents, DerivedSecrets, Error, Event, Hosts, Naming, Phase, PrNumber, PrState, Preview,
    ReportState, RetryConfig, SecretSource,
};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);
const REPO: &str = "inkeep/agents";
const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

#[derive(Clone)]
struct World {
    db: InMemoryDatabases,
    apps: InMemoryApps,
    source: InMemorySource,
    hooks: RecordingHooks,
    http: InMemoryHttp,
    events: CollectEvents,
}

fn env_lookup(k: &str) -> Option<String> {
    match k {
        "VERCEL_API_PROJECT_ID" => Some("prj_api".into()),
        "VERCEL_UI_PROJECT_ID" => Some("prj_ui".into()),
        "ANTHROPIC_API_KEY" => Some("SENTINEL-anthropic-key-value".into()),
        "OPENAI_API_KEY" => Some("SENTINEL-openai-key-value".into()),
        _ => None,
    }
}

/// Generated values that are easy to find in any output: `SENTINEL<name>…`.
#[derive(Debug)]
struct SentinelSecrets;

impl SecretSource for SentinelSecrets {
    fn generate(
        &self,
        env: &preview_core::PreviewName,
        name: &str,
        rotation: u32,
        bytes: usize,
    ) -> preview_core::Result<SecretString> {
        let body = format!(
            "SENTINEL{}{}{rotation}",
            name.replace('_', ""),
            env.as_str().replace('-', "")
        );
        Ok(SecretString::from(format!("{body}{}", "x".repeat(bytes))))
    }
    fn is_stable(&self) -> bool {
        true
    }
}

fn world() -> World {
    World {
        db: InMemoryDatabases::new(),
        apps: InMemoryApps::new(),
        source: InMemorySource::new(REPO),
        hooks: RecordingHooks::new(),
        http: InMemoryHttp::new(),
        events: CollectEvents::new(),
    }
}

fn preview(w: &World, secrets: Arc<dyn SecretSource>) -> Preview {
    preview_of(w, Config::load(EXAMPLE).unwrap(), secrets)
}

fn preview_of(w: &World, config: Config, secrets: Arc<dyn SecretSource>) -> Preview {
    Preview::new(
        config,
        Hosts {
            database: Arc::new(w.db.clone()),
            apps: Arc::new(w.apps.clone()),
            source: Arc::new(w.source.clone()),
        },
    )
    .hooks(Arc::new(w.hooks.clone()))
    .http(Arc::new(w.http.clone()))
    .events(Arc::new(w.events.clone()))
    .secrets(secrets)
    .env(Arc::new(env_lookup))
    .retry_config(
        RetryConfig::default().backoff(Duration::from_millis(10), Duration::from_millis(100)),
    )
}

fn stable() -> Arc<dyn SecretSource> {
    Arc::new(DerivedSecrets::new(SecretString::from("m".repeat(48))).unwrap())
}

fn mutating(w: &World) -> usize {
    w.db.mutating_calls() + w.apps.mutating_calls() + w.source.mutating_calls()
}

fn clear(w: &World) {
    w.db.clear_calls();
    w.apps.clear_calls();
    w.source.clear_calls();
}

/// Nothing carrying the environment's marker is left on any host.
fn assert_nothing_left(w: &World) {
    assert!(
        w.db.names().is_empty(),
        "databases left: {:?}",
        w.db.names()
    );
    let owned: Vec<_> = w
        .apps
        .vars()
        .into_iter()
        .filter(|v| v.owner.is_some())
        .collect();
    assert!(owned.is_empty(), "vars left: {owned:?}");
    assert!(
        w.apps.domains().is_empty(),
        "domains left: {:?}",
        w.apps.domains()
    );
    assert_eq!(w.db.open_tunnels(), 0, "tunnels left open");
}

#[tokio::test]
async fn a_fresh_deploy_creates_everything_in_order() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    let p = preview(&w, stable());
    let report = p.deploy(pr).await.unwrap();
    assert_eq!(report.status, DeployStatus::Ready);
    assert_eq!(report.name.as_str(), "pr-42-agents");
    assert_eq!(w.db.names(), ["pr-42-agents"]);
    let vars = w.apps.vars();
    assert_eq!(vars.iter().filter(|v| v.project == "prj_api").count(), 18);
    assert_eq!(vars.iter().filter(|v| v.project == "prj_ui").count(), 6);
    assert!(
        vars.iter()
            .all(|v| v.branch == "feature/login" && v.target == "preview")
    );
    assert_eq!(
        w.apps.domains(),
        [
            "pr-42-api.preview.inkeep.com",
            "pr-42-ui.preview.inkeep.com"
        ]
    );
    assert_eq!(w.apps.deployments().len(), 2);
    assert!(
        w.apps
            .deployments()
            .iter()
            .all(|d| d.2 == SHA1 && d.3 == "READY")
    );
    // Apps get the public URL (sslmode=require), hooks the tunnel (sslmode=disable).
    let url = w
        .apps
        .var_value(
            "prj_api",
            "feature/login",
            "INKEEP_AGENTS_MANAGE_DATABASE_URL",
        )
        .unwrap();
    assert!(
        url.starts_with("postgresql://appuser:")
            && url.ends_with("@pr-42-agents.fly.dev:5432/inkeep_agents?sslmode=require"),
        "{url}"
    );
    let runs = w.hooks.runs();
    assert_eq!(
        runs.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(),
        ["migrate", "auth-init"]
    );
    let hook_url = runs[0]
        .env
        .iter()
        .find(|(k, _)| k == "INKEEP_AGENTS_MANAGE_DATABASE_URL")
        .unwrap()
        .1
        .expose()
        .to_string();
    assert!(
        hook_url.contains("@127.0.0.1:") && hook_url.ends_with("sslmode=disable"),
        "{hook_url}"
    );
    assert_eq!(w.db.open_tunnels(), 0, "tunnels are closed after the hooks");
    // Readiness, then the seed with the bypass secret.
    let sent = w.http.sent();
    assert_eq!(sent[0].url, "https://pr-42-api.preview.inkeep.com/ready");
    assert_eq!(sent[1].method, "PUT");
    assert!(
        sent[1]
            .headers
            .iter()
            .any(|(k, v)| k == "Authorization" && v.is_secret())
    );
    assert!(sent[1].body.as_ref().is_some_and(|b| !b.is_empty()));
    let r = w.source.report("pr-42-agents").unwrap();
    assert_eq!(r.commit.as_deref(), Some(SHA1));
    assert!(matches!(r.state, ReportState::Ready { ref links } if links.len() == 3));
    assert_eq!(
        w.source.report_history().first().map(|r| r.state.clone()),
        Some(ReportState::Deploying)
    );
}

#[tokio::test]
async fn deploy_emits_phases_with_durations_and_resource_outcomes() {
    let w = world();
    let pr = w.source.open_pr(7, "b", SHA1);
    preview(&w, stable()).deploy(pr).await.unwrap();
    let events = w.events.events();
    for phase in [
        Phase::Observe,
        Phase::Announce,
        Phase::Database,
        Phase::Apps,
        Phase::Tunnels,
        Phase::Hooks,
        Phase::Deployments,
        Phase::Readiness,
        Phase::Seed,
        Phase::Verify,
        Phase::Report,
    ] {
        assert!(
            events.contains(&Event::PhaseStarted { phase }),
            "{phase} started"
        );
        assert!(
            events.iter().any(
                |e| matches!(e, Event::PhaseFinished { phase: p, ok: true, .. } if *p == phase)
            ),
            "{phase} finished"
        );
    }
    assert!(events.iter().any(|e| matches!(e, Event::Resource(c) if c.kind == "database" && c.outcome == preview_core::Outcome::Created)));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::HookOutput { hook, .. } if hook == "migrate"))
    );
}

#[tokio::test]
async fn a_second_deploy_with_nothing_changed_makes_no_mutating_call() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    let p = preview(&w, stable());
    p.deploy(pr).await.unwrap();
    clear(&w);
    let again = p.deploy(pr).await.unwrap();
    assert_eq!(again.status, DeployStatus::Ready);
    assert_eq!(
        mutating(&w),
        0,
        "db {:?}\napps {:?}\nsource {:?}",
        w.db.calls(),
        w.apps.calls(),
        w.source.calls()
    );
    assert_eq!(again.mutated(), 0, "{:?}", again.changes);
    // A fresh pipeline (a new CI run) derives the same secrets, so it converges without rotating.
    clear(&w);
    preview(&w, stable()).deploy(pr).await.unwrap();
    assert_eq!(mutating(&w), 0);
}

/// The source's calls of one operation in the log.
fn source_calls(w: &World, op: &str) -> usize {
    w.source.calls().iter().filter(|c| c.op == op).count()
}

#[tokio::test]
async fn an_unchanged_redeploy_reads_the_pr_and_the_report_once_and_publishes_nothing() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    preview(&w, stable())
        .run_url(Some("https://github.com/acme/agents/actions/runs/1".into()))
        .deploy(pr)
        .await
        .unwrap();
    clear(&w);
    // A new CI run (another run link) with nothing changed.
    let again = preview(&w, stable())
        .run_url(Some("https://github.com/acme/agents/actions/runs/2".into()))
        .deploy(pr)
        .await
        .unwrap();
    assert_eq!(again.status, DeployStatus::Ready);
    assert_eq!(mutating(&w), 0, "{:?}", w.source.calls());
    assert_eq!(
        source_calls(&w, "get_pull_request"),
        1,
        "{:?}",
        w.source.calls()
    );
    assert_eq!(source_calls(&w, "get_report"), 1);
    assert_eq!(source_calls(&w, "publish_report"), 0);
    let report = again.changes.iter().find(|c| c.kind == "report").unwrap();
    assert_eq!(report.outcome, preview_core::Outcome::Unchanged);
    // The comment still links the run that deployed it.
    assert_eq!(
        w.source.report("pr-42-agents").unwrap().run_url.as_deref(),
        Some("https://github.com/acme/agents/actions/runs/1")
    );
}

#[tokio::test]
async fn a_redeploy_whose_report_text_changed_publishes_it_and_rechecks_the_pr() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    preview(&w, stable()).deploy(pr).await.unwrap();
    clear(&w);
    // Only a link label differs: no resource changes, but the PR shows stale text.
    let text = std::fs::read_to_string(EXAMPLE)
        .unwrap()
        .replace("label = \"Manage UI\"", "label = \"Manage UI (preview)\"");
    let base = std::path::Path::new(EXAMPLE).parent().unwrap();
    let config = Config::parse(&text, "preview.toml", base).unwrap();
    let p = preview_of(&w, config, stable());
    let again = p.deploy(pr).await.unwrap();
    assert_eq!(w.db.mutating_calls() + w.apps.mutating_calls(), 0);
    assert_eq!(source_calls(&w, "publish_report"), 1);
    assert_eq!(
        source_calls(&w, "get_pull_request"),
        2,
        "observe, then verify"
    );
    let report = again.changes.iter().find(|c| c.kind == "report").unwrap();
    assert_eq!(report.outcome, preview_core::Outcome::Updated);
    match w.source.report("pr-42-agents").unwrap().state {
        ReportState::Ready { links } => {
            assert!(
                links.iter().any(|l| l.label == "Manage UI (preview)"),
                "{links:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_new_commit_redeploys_the_apps_only() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    let p = preview(&w, stable());
    p.deploy(pr).await.unwrap();
    w.source.update_pr(pr, |p| p.head_sha = SHA2.into());
    clear(&w);
    let r = p.deploy(pr).await.unwrap();
    assert_eq!(w.db.mutating_calls(), 0);
    assert_eq!(
        w.apps.deployments().iter().filter(|d| d.2 == SHA2).count(),
        2
    );
    assert_eq!(
        w.source.report("pr-42-agents").unwrap().commit.as_deref(),
        Some(SHA2)
    );
    assert!(
        r.changes
            .iter()
            .any(|c| c.kind == "deployment" && c.outcome == preview_core::Outcome::Created)
    );
}

#[tokio::test]
async fn teardown_removes_everything_and_twice_is_fine() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    let p = preview(&w, stable());
    p.deploy(pr).await.unwrap();
    let t = p.teardown(pr).await.unwrap();
    assert!(
        t.changes
            .iter()
            .any(|c| c.outcome == preview_core::Outcome::Removed)
    );
    assert_nothing_left(&w);
    assert_eq!(
        w.source.report("pr-42-agents").unwrap().state,
        ReportState::TornDown
    );
    clear(&w);
    let again = p.teardown(pr).await.unwrap();
    assert_eq!(mutating(&w), 0, "{:?}", w.source.calls());
    assert!(
        again
            .changes
            .iter()
            .all(|c| c.outcome == preview_core::Outcome::AlreadyGone),
        "{:?}",
        again.changes
    );
}

#[tokio::test]
async fn teardown_of_something_never_deployed_succeeds_without_a_report() {
    let w = world();
    let pr = PrNumber::new(99).unwrap();
    let t = preview(&w, stable()).teardown(pr).await.unwrap();
    assert!(
        t.changes
            .iter()
            .all(|c| c.outcome == preview_core::Outcome::AlreadyGone)
    );
    assert_eq!(w.source.report("pr-99-agents"), None);
}

fn unavailable() -> Error {
    Error::Api {
        provider: "memory",
        status: 400,
        message: "injected".into(),
        request_id: None,
    }
}

/// Every operation deploy performs, on the host that performs it.
const OPS: &[(&str, &str)] = &[
    ("source", "get_report"),
    ("source", "publish_report"),
    ("db", "apply_database"),
    ("db", "open_tunnels"),
    ("apps", "apply_app"),
    ("apps", "deploy_app"),
];

fn inject(w: &World, host: &str, op: &str, after_commit: bool) {
    let e = unavailable();
    match (host, after_commit) {
        ("db", false) => w.db.fail_next(op, e),
        ("db", true) => w.db.fail_after_commit(op, e),
        ("apps", false) => w.apps.fail_next(op, e),
        ("apps", true) => w.apps.fail_after_commit(op, e),
        (_, false) => w.source.fail_next(op, e),
        (_, true) => w.source.fail_after_commit(op, e),
    }
}

#[tokio::test]
async fn teardown_from_every_partial_deploy_state_leaves_nothing() {
    let mut cases = 0;
    for &(host, op) in OPS {
        for after_commit in [false, true] {
            let w = world();
            let pr = w.source.open_pr(42, "feature/login", SHA1);
            let p = preview(&w, stable());
            inject(&w, host, op, after_commit);
            let err = p
                .deploy(pr)
                .await
                .expect_err("the injected fault fails the deploy");
            assert!(err.phase().is_some(), "{op}: {err}");
            p.teardown(pr)
                .await
                .unwrap_or_else(|e| panic!("{op} after_commit={after_commit}: {e}"));
            assert_nothing_left(&w);
            cases += 1;
        }
    }
    // A failing hook leaves a database and apps behind, too.
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    let p = preview(&w, stable());
    w.hooks.fail("auth-init");
    p.deploy(pr).await.unwrap_err();
    p.teardown(pr).await.unwrap();
    assert_nothing_left(&w);
    assert_eq!(cases + 1, OPS.len() * 2 + 1);
}

#[tokio::test]
async fn a_rerun_after_each_partial_deploy_converges() {
    for &(host, op) in OPS {
        for after_commit in [false, true] {
            let reference = world();
            let pr = reference.source.open_pr(42, "feature/login", SHA1);
            preview(&reference, stable()).deploy(pr).await.unwrap();

            let w = world();
            w.source.open_pr(42, "feature/login", SHA1);
            let p = preview(&w, stable());
            inject(&w, host, op, after_commit);
            p.deploy(pr).await.unwrap_err();
            let r = p.deploy(pr).await.unwrap_or_else(|e| panic!("{op}: {e}"));
            assert_eq!(r.status, DeployStatus::Ready);
            assert_eq!(w.db.names(), reference.db.names());
            assert_eq!(
                w.apps.vars(),
                reference.apps.vars(),
                "{op} after_commit={after_commit}"
            );
            assert_eq!(w.apps.domains(), reference.apps.domains());
            // The same report, apart from the run that made it (its start and its timings).
            let unstamped = |r: Option<preview_core::Report>| {
                r.map(|r| preview_core::Report {
                    started_at: None,
                    phases: vec![],
                    lifetime: None,
                    ..r
                })
            };
            assert_eq!(
                unstamped(w.source.report("pr-42-agents")),
                unstamped(reference.source.report("pr-42-agents"))
            );
        }
    }
}

#[tokio::test]
async fn a_pr_closed_during_deploy_ends_with_nothing_left() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    // The first read (Observe) sees it open; by the re-check it is closed.
    w.source.change_state_after_reads(pr, 1, PrState::Closed);
    let r = preview(&w, stable()).deploy(pr).await.unwrap();
    assert_eq!(r.status, DeployStatus::ClosedDuringDeploy);
    assert_nothing_left(&w);
}

#[tokio::test]
async fn a_deploy_that_fails_after_its_pr_closed_tears_down_instead_of_reporting_failure() {
    for &(host, op) in OPS.iter().filter(|(h, _)| *h != "source") {
        let w = world();
        let pr = w.source.open_pr(42, "feature/login", SHA1);
        // Closed after the first read, as when a teardown starts while the deploy runs (and may
        // be why it fails).
        w.source.change_state_after_reads(pr, 1, PrState::Closed);
        inject(&w, host, op, true);
        let r = preview(&w, stable())
            .deploy(pr)
            .await
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        assert_eq!(r.status, DeployStatus::ClosedDuringDeploy, "{op}");
        assert_nothing_left(&w);
        let report = w.source.report("pr-42-agents").expect("a report");
        assert_eq!(report.state, ReportState::TornDown, "{op}");
        assert!(
            w.source
                .report_history()
                .iter()
                .all(|r| !matches!(r.state, ReportState::Failed { .. })),
            "{op}: a failure report was published"
        );
    }
}

#[tokio::test]
async fn an_older_runs_report_never_replaces_a_newer_one() {
    // A teardown that started after a slow deploy has published "torn down"; the deploy then
    // fails late: its failure report must not replace it.
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    let clock = |s: i64| -> Arc<dyn Fn() -> jiff::Timestamp + Send + Sync> {
        Arc::new(move || jiff::Timestamp::from_second(1_763_800_000 + s).unwrap())
    };
    preview(&w, stable())
        .clock(clock(0))
        .deploy(pr)
        .await
        .unwrap();
    preview(&w, stable())
        .clock(clock(100))
        .teardown(pr)
        .await
        .unwrap();
    w.source.set_state(pr, PrState::Open);
    w.db.fail_next("apply_database", unavailable());
    // Its PR is open again (a reopen), but it started before the teardown.
    let err = preview(&w, stable())
        .clock(clock(50))
        .deploy(pr)
        .await
        .unwrap_err();
    assert!(err.phase().is_some(), "{err}");
    let report = w.source.report("pr-42-agents").expect("a report");
    assert_eq!(report.state, ReportState::TornDown);
    assert_eq!(
        report.started_at,
        Some(jiff::Timestamp::from_second(1_763_800_100).unwrap())
    );
}

#[tokio::test]
async fn closed_and_fork_prs_are_skipped_before_any_secret_or_mutation() {
    for kind in ["closed", "merged", "fork"] {
        let w = world();
        let pr = w.source.open_pr(5, "b", SHA1);
        match kind {
            "closed" => w.source.set_state(pr, PrState::Closed),
            "merged" => w.source.set_state(pr, PrState::Merged),
            _ => w
                .source
                .update_pr(pr, |p| p.head_repo = Some("mallory/agents".into())),
        }
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r2 = reads.clone();
        let p = preview(&w, stable()).env(Arc::new(move |k| {
            r2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            env_lookup(k)
        }));
        let r = p.deploy(pr).await.unwrap();
        assert!(
            matches!(r.status, DeployStatus::Skipped { ref reason } if reason.contains(if kind == "fork" { "fork" } else { kind })),
            "{kind}: {:?}",
            r.status
        );
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{kind}: no env var (secret) was read"
        );
        assert_eq!(mutating(&w), 0);
        assert!(w.db.calls().is_empty() && w.apps.calls().is_empty());
    }
}

#[tokio::test]
async fn a_missing_pr_is_a_config_error() {
    let w = world();
    let err = preview(&w, stable())
        .deploy(PrNumber::new(8).unwrap())
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("#8 does not exist"), "{err}");
}

#[tokio::test]
async fn each_failing_phase_publishes_a_failure_report_naming_it() {
    type Setup = Box<dyn Fn(&World)>;
    let cases: Vec<(&str, Setup)> = vec![
        ("hooks", Box::new(|w: &World| w.hooks.fail("migrate"))),
        (
            "deployments",
            Box::new(|w: &World| w.apps.set_next_deploy_state("prj_ui", "ERROR")),
        ),
        (
            "database",
            Box::new(|w: &World| w.db.make_unhealthy("pr-42-agents")),
        ),
        (
            "seed",
            Box::new(|w: &World| {
                w.http.answer("https://pr-42-api.preview.inkeep.com/manage/tenants/default/project-full/activities-planner", &[500])
            }),
        ),
    ];
    for (phase, setup) in cases {
        let w = world();
        let pr = w.source.open_pr(42, "feature/login", SHA1);
        setup(&w);
        let err = preview(&w, stable()).deploy(pr).await.unwrap_err();
        assert_eq!(
            err.phase().map(|p| p.to_string()).as_deref(),
            Some(phase),
            "{err}"
        );
        match w.source.report("pr-42-agents").unwrap().state {
            ReportState::Failed { phase: p, error } => {
                assert_eq!(p, phase);
                assert!(!error.is_empty());
            }
            other => panic!("{phase}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn readiness_times_out_on_a_paused_clock() {
    let w = world();
    let pr = w.source.open_pr(42, "b", SHA1);
    w.http
        .answer("https://pr-42-api.preview.inkeep.com/ready", &[503; 500]);
    tokio::time::pause();
    let err = preview(&w, stable()).deploy(pr).await.unwrap_err();
    assert_eq!(err.phase(), Some(Phase::Readiness));
    assert!(err.to_string().contains("HTTP 503"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn retryable_provider_errors_are_retried() {
    let w = world();
    let pr = w.source.open_pr(42, "b", SHA1);
    let busy = || Error::Api {
        provider: "memory",
        status: 503,
        message: "busy".into(),
        request_id: None,
    };
    w.db.fail_next("apply_database", busy());
    w.apps.fail_next("apply_app", busy());
    w.source.fail_next(
        "get_pull_request",
        Error::RateLimited {
            provider: "memory",
            retry_after: Some(Duration::from_secs(3)),
            request_id: None,
        },
    );
    let r = preview(&w, stable()).deploy(pr).await.unwrap();
    assert_eq!(r.status, DeployStatus::Ready);
}

// ---------------------------------------------------------------------------------------------
// Sweep

fn naming() -> Naming {
    Naming::new("pr", "agents").unwrap()
}

fn cand(n: u64, age_secs: Option<i64>, now: Timestamp) -> Candidate {
    Candidate {
        name: naming().name(PrNumber::new(n).unwrap()),
        created_at: age_secs.map(|a| Timestamp::from_second(now.as_second() - a).unwrap()),
        resources: vec![],
    }
}

#[test]
fn sweep_decision_table() {
    let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
    let hour = 3600;
    // (pr, age, lookup, delete_missing, expected)
    let table: Vec<(u64, Option<i64>, PrLookup, bool, SweepAction)> = vec![
        (
            1,
            Some(10 * hour),
            PrLookup::State(PrState::Open),
            false,
            SweepAction::Keep,
        ),
        (
            2,
            Some(10 * hour),
            PrLookup::State(PrState::Closed),
            false,
            SweepAction::Delete,
        ),
        (
            3,
            Some(10 * hour),
            PrLookup::State(PrState::Merged),
            false,
            SweepAction::Delete,
        ),
        (
            4,
            Some(10 * hour),
            PrLookup::Missing,
            false,
            SweepAction::Keep,
        ),
        (
            5,
            Some(10 * hour),
            PrLookup::Missing,
            true,
            SweepAction::Delete,
        ),
        (
            6,
            Some(10 * hour),
            PrLookup::Error("HTTP 502".into()),
            true,
            SweepAction::Keep,
        ),
        (
            7,
            Some(60),
            PrLookup::State(PrState::Closed),
            false,
            SweepAction::Keep,
        ),
        (
            8,
            Some(60),
            PrLookup::State(PrState::Merged),
            true,
            SweepAction::Keep,
        ),
        (9, Some(60), PrLookup::Missing, true, SweepAction::Keep),
        (
            10,
            None,
            PrLookup::State(PrState::Closed),
            false,
            SweepAction::Delete,
        ),
        (11, None, PrLookup::Missing, true, SweepAction::Keep),
        (
            12,
            None,
            PrLookup::State(PrState::Open),
            true,
            SweepAction::Keep,
        ),
        (
            13,
            Some(10 * hour),
            PrLookup::Error("timeout".into()),
            false,
            SweepAction::Keep,
        ),
    ];
    for (pr, age, lookup, delete_missing, expected) in table {
        let policy = SweepDef {
            grace_period: Duration::from_secs(hour as u64),
            delete_missing,
        };
        let c = cand(pr, age, now);
        let lookups = BTreeMap::from([(c.name.pr(), lookup.clone())]);
        let d = decide_sweep(&[c], &lookups, &policy, now);
        assert_eq!(
            d[0].action, expected,
            "PR {pr} {lookup:?} age {age:?} delete_missing {delete_missing}: {}",
            d[0].reason
        );
        assert!(!d[0].reason.is_empty());
    }
    // No lookup at all: keep.
    let policy = SweepDef {
        grace_period: Duration::ZERO,
        delete_missing: true,
    };
    let d = decide_sweep(&[cand(1, None, now)], &BTreeMap::new(), &policy, now);
    assert_eq!(d[0].action, SweepAction::Keep);
}

#[tokio::test]
async fn sweep_removes_exactly_the_closed_and_merged_and_dry_run_touches_nothing() {
    let w = world();
    let p = preview(&w, stable()).clock(Arc::new(|| {
        Timestamp::now() + jiff::SignedDuration::from_hours(2)
    }));
    let open = w.source.open_pr(1, "a", SHA1);
    let closed = w.source.open_pr(2, "b", SHA1);
    let merged = w.source.open_pr(3, "c", SHA1);
    let missing = w.source.open_pr(4, "d", SHA1);
    for pr in [open, closed, merged, missing] {
        p.deploy(pr).await.unwrap();
    }
    w.source.set_state(closed, PrState::Closed);
    w.source.set_state(merged, PrState::Merged);
    w.source.remove_pr(missing);
    clear(&w);
    let dry = p.sweep(true).await.unwrap();
    assert_eq!(mutating(&w), 0);
    let deletes: Vec<_> = dry
        .decisions
        .iter()
        .filter(|d| d.action == SweepAction::Delete)
        .map(|d| d.name.to_string())
        .collect();
    assert_eq!(deletes, ["pr-2-agents", "pr-3-agents"]);
    assert!(dry.removed.is_empty());
    let real = p.sweep(false).await.unwrap();
    assert_eq!(
        real.removed
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
        ["pr-2-agents", "pr-3-agents"]
    );
    assert_eq!(w.db.names(), ["pr-1-agents", "pr-4-agents"]);
    assert!(w.apps.vars().iter().all(|v| matches!(
        v.owner.as_deref(),
        Some("pr-1-agents") | Some("pr-4-agents")
    )));
    // Foreign resources are never touched: a database named outside our naming is ignored.
    let status = p.status().await.unwrap();
    assert_eq!(status.len(), 2);
    assert_eq!(status[0].pr_state, "open");
    assert_eq!(status[1].pr_state, "missing");
    assert_eq!(
        status[0].urls,
        [
            "https://pr-1-api.preview.inkeep.com",
            "https://pr-1-ui.preview.inkeep.com"
        ]
    );
}

#[tokio::test]
async fn a_lookup_error_keeps_the_environment() {
    let w = world();
    let p = preview(&w, stable()).retry_config(RetryConfig::none());
    let pr = w.source.open_pr(2, "b", SHA1);
    p.deploy(pr).await.unwrap();
    w.source.set_state(pr, PrState::Closed);
    w.source.fail_next(
        "get_pull_request",
        Error::Api {
            provider: "memory",
            status: 500,
            message: "down".into(),
            request_id: None,
        },
    );
    let r = p.sweep(false).await.unwrap();
    assert!(r.removed.is_empty());
    assert!(
        r.decisions[0].reason.contains("lookup failed"),
        "{:?}",
        r.decisions
    );
    assert_eq!(w.db.names(), ["pr-2-agents"]);
}

// ---------------------------------------------------------------------------------------------
// Secret hygiene

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains("SENTINEL"), "{what} leaks a secret: {text}");
}

#[tokio::test]
async fn secrets_never_appear_in_debug_events_reports_or_errors() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    let p = preview(&w, Arc::new(SentinelSecrets));
    let observed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o2 = observed.clone();
    let p = p.on_secrets(Arc::new(move |v: &[String]| {
        o2.lock().unwrap().extend(v.iter().cloned())
    }));
    let report = p.deploy(pr).await.unwrap();
    // The observer (the CLI's masker) did learn the values, URL forms included.
    let seen = observed.lock().unwrap().clone();
    assert!(seen.iter().any(|v| v.starts_with("SENTINELpgpassword")));
    assert!(
        seen.iter()
            .any(|v| v.starts_with("postgresql://appuser:SENTINEL"))
    );
    assert!(seen.iter().any(|v| v == "SENTINEL-openai-key-value"));
    // …and nothing else shows them.
    assert_clean(
        "deploy report json",
        &serde_json::to_string(&report).unwrap(),
    );
    assert_clean("deploy report debug", &format!("{report:?}"));
    assert_clean(
        "events",
        &serde_json::to_string(&w.events.events()).unwrap(),
    );
    assert_clean("events debug", &format!("{:?}", w.events.events()));
    assert_clean("reports", &format!("{:?}", w.source.report_history()));
    assert_clean("pipeline debug", &format!("{p:?}"));
    assert_clean("hook runs debug", &format!("{:?}", w.hooks.runs()));
    assert_clean("http calls debug", &format!("{:?}", w.http.sent()));
    assert_clean(
        "app host debug",
        &format!("{:?} {:?}", w.apps, w.apps.vars()),
    );
    let config = Config::load(EXAMPLE).unwrap();
    let name = config.name(pr);
    let secrets =
        preview_core::render::secrets(&config, &name, &SentinelSecrets, &env_lookup).unwrap();
    assert_clean("secret values debug", &format!("{secrets:?}"));
    let rendered =
        preview_core::render::render_all(&config, &name, &Default::default(), secrets, &env_lookup)
            .unwrap();
    assert_clean("rendered debug", &format!("{rendered:?}"));
    assert_clean(
        "database spec json",
        &serde_json::to_string(&rendered.database).unwrap(),
    );
    assert_clean(
        "app specs json",
        &serde_json::to_string(&rendered.apps).unwrap(),
    );

    // Error paths: a failing hook and a failing deployment carry no secret either.
    for fail in ["hook", "deploy"] {
        let w = world();
        let pr = w.source.open_pr(42, "feature/login", SHA1);
        if fail == "hook" {
            w.hooks.fail("auth-init")
        } else {
            w.apps.set_next_deploy_state("prj_api", "ERROR")
        }
        let err = preview(&w, Arc::new(SentinelSecrets))
            .deploy(pr)
            .await
            .unwrap_err();
        assert_clean("error display", &format!("{err} {err:#}"));
        assert_clean("error debug", &format!("{err:?}"));
        assert_clean(
            "failure report",
            &format!("{:?}", w.source.report_history()),
        );
    }
}

#[tokio::test]
async fn the_plan_never_generates_or_shows_secrets() {
    let config = Config::load(EXAMPLE).unwrap();
    let plan = preview_core::pipeline::plan(
        &config,
        PrNumber::new(42).unwrap(),
        &Default::default(),
        &env_lookup,
    )
    .unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    assert_clean("plan", &json);
    assert!(json.contains("<secret:pg_password>"));
    assert!(json.contains("pr-42-api.preview.inkeep.com"));
}

/// The in-memory apps, refusing in preflight what `refuse` says (as a provider's rules would).
#[derive(Debug)]
struct Strict {
    inner: InMemoryApps,
    refuse: fn(&preview_core::AppSpec) -> Option<String>,
}

#[preview_core::async_trait]
impl preview_core::AppHost for Strict {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn get_app(
        &self,
        name: &preview_core::PreviewName,
        target: &preview_core::AppRef,
    ) -> preview_core::Result<Option<preview_core::AppStatus>> {
        self.inner.get_app(name, target).await
    }
    async fn apply_app(
        &self,
        name: &preview_core::PreviewName,
        spec: &preview_core::AppSpec,
    ) -> preview_core::Result<Vec<preview_core::ResourceChange>> {
        self.inner.apply_app(name, spec).await
    }
    async fn deploy_app(
        &self,
        name: &preview_core::PreviewName,
        spec: &preview_core::AppSpec,
        commit: &preview_core::Commit,
    ) -> preview_core::Result<(preview_core::AppDeployment, preview_core::Outcome)> {
        self.inner.deploy_app(name, spec, commit).await
    }
    async fn delete_app(
        &self,
        name: &preview_core::PreviewName,
        target: &preview_core::AppRef,
    ) -> preview_core::Result<Vec<preview_core::ResourceChange>> {
        self.inner.delete_app(name, target).await
    }
    async fn list_apps(
        &self,
        projects: &[String],
    ) -> preview_core::Result<Vec<preview_core::Owned>> {
        self.inner.list_apps(projects).await
    }
    fn preflight_app(
        &self,
        _: &preview_core::PreviewName,
        spec: &preview_core::AppSpec,
        _: &preview_core::Commit,
    ) -> preview_core::Result<()> {
        match (self.refuse)(spec) {
            Some(why) => Err(Error::config(why)),
            None => Ok(()),
        }
    }
}

#[tokio::test]
async fn a_preflight_refusal_changes_nothing_and_reports_every_problem_once() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/\nline", SHA1);
    let strict = Strict {
        inner: w.apps.clone(),
        refuse: |spec| {
            Some(if spec.branch.contains('\n') {
                "the branch has a newline".to_string()
            } else {
                format!("app {} is refused", spec.target.app)
            })
        },
    };
    let p = Preview::new(
        Config::load(EXAMPLE).unwrap(),
        Hosts {
            database: Arc::new(w.db.clone()),
            apps: Arc::new(strict),
            source: Arc::new(w.source.clone()),
        },
    )
    .hooks(Arc::new(w.hooks.clone()))
    .http(Arc::new(w.http.clone()))
    .secrets(stable())
    .env(Arc::new(env_lookup));
    let err = p.deploy(pr).await.unwrap_err();
    assert!(err.is_config(), "{err:?}");
    // Both apps give the same reason: said once.
    assert_eq!(
        err.to_string(),
        "preflight (nothing was changed): the branch has a newline"
    );
    assert_eq!(mutating(&w), 0);
    assert!(w.source.report("pr-42-agents").is_none());
    assert!(w.hooks.runs().is_empty());
}

#[tokio::test]
async fn a_configuration_error_after_changes_is_a_failure_with_a_report() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    w.apps
        .fail_next("apply_app", Error::config("app api: refused late"));
    let err = preview(&w, stable()).deploy(pr).await.unwrap_err();
    // Something may have been made by then: never "nothing was touched" (exit code 2).
    assert!(!err.is_config(), "{err:?}");
    assert_eq!(err.phase(), Some(Phase::Apps));
    assert!(err.to_string().contains("app api: refused late"), "{err}");
    match w.source.report("pr-42-agents").unwrap().state {
        ReportState::Failed { phase, .. } => assert_eq!(phase, "apps"),
        other => panic!("{other:?}"),
    }
}

/// The plan of a configuration with every kind of field, as JSON, byte for byte: with nothing
/// known (no repository, branch, commit or variable) and with everything known. The re-layout of
/// the pipeline (issue 15) must not change a character of it.
#[test]
fn the_plan_of_every_kind_of_field_is_unchanged() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/every-field.toml"
    );
    let config = Config::load(path).unwrap();
    let pr = PrNumber::new(7).unwrap();
    let none = |_: &str| None;
    let plan = preview_core::pipeline::plan(&config, pr, &Default::default(), &none).unwrap();
    insta::assert_snapshot!(
        "plan_every_field",
        serde_json::to_string_pretty(&plan).unwrap()
    );
    let inputs = preview_core::render::Inputs {
        repo: Some("acme/kit".into()),
        branch: Some("feat/every-field".into()),
        sha: Some("abcdef0123456789abcdef0123456789abcdef01".into()),
    };
    let all = |k: &str| match k {
        "KIT_WEB_PROJECT" => Some("prj_web".to_string()),
        "KIT_WORKER_PROJECT" => Some("prj_worker".to_string()),
        "KIT_BYPASS" => Some("SENTINEL-bypass".to_string()),
        "KIT_TOKEN" => Some("SENTINEL-token".to_string()),
        _ => None,
    };
    let plan = preview_core::pipeline::plan(&config, pr, &inputs, &all).unwrap();
    let json = serde_json::to_string_pretty(&plan).unwrap();
    assert!(!json.contains("SENTINEL"), "{json}");
    insta::assert_snapshot!("plan_every_field_known", json);
}

#[tokio::test]
async fn every_report_says_how_long_each_phase_took() {
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    let r = preview(&w, stable()).deploy(pr).await.unwrap();
    let phases: Vec<Phase> = r.phases.iter().map(|t| t.phase).collect();
    for p in [
        Phase::Observe,
        Phase::Announce,
        Phase::Database,
        Phase::Tunnels,
        Phase::Hooks,
        Phase::Apps,
        Phase::Deployments,
        Phase::Readiness,
        Phase::Seed,
        Phase::Verify,
        Phase::Report,
    ] {
        assert_eq!(
            phases.iter().filter(|&&q| q == p).count(),
            1,
            "{p}: {phases:?}"
        );
    }
    assert!(r.phases.iter().all(|t| t.ok));
    // The PR's report was made after the seed and before it was published.
    let shown = w.source.report("pr-42-agents").unwrap();
    let on_pr: Vec<Phase> = shown.phases.iter().map(|t| t.phase).collect();
    assert!(on_pr.contains(&Phase::Seed), "{on_pr:?}");
    assert!(!on_pr.contains(&Phase::Report), "{on_pr:?}");
    let t = preview(&w, stable()).teardown(pr).await.unwrap();
    assert_eq!(
        t.phases.iter().map(|t| t.phase).collect::<Vec<_>>(),
        [Phase::Teardown]
    );

    // A failure report names the phase that failed, timed and marked failed.
    let w = world();
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    inject(&w, "db", "apply_database", false);
    let err = preview(&w, stable()).deploy(pr).await.unwrap_err();
    assert_eq!(err.phase(), Some(Phase::Database));
    let shown = w.source.report("pr-42-agents").unwrap();
    assert!(matches!(shown.state, ReportState::Failed { .. }));
    let failed: Vec<Phase> = shown
        .phases
        .iter()
        .filter(|t| !t.ok)
        .map(|t| t.phase)
        .collect();
    assert_eq!(failed, [Phase::Database], "{:?}", shown.phases);
}
