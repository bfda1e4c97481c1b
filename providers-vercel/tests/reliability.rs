//! Reliability suites of issue 7 against the REAL Vercel client over HTTP, with the stateful fake
//! (`FakeVercel`) as the server, numbered as in the README's reliability table: R1/R2/R3
//! (convergence under seeded faults, teardown leaves nothing, idempotent re-run), R4 (silent
//! success on every create), R7 (terminal errors fail fast), R8 (back-off contract) and I4 (URL
//! safety).
//!
//! Faults come from `preview_testkit::HttpChaos` (the same seeded plan the other providers'
//! fakes use), retries from the pipeline's own `preview_core::retry` with its default policy.
//! Everything runs on a paused tokio clock with a client that has no timeouts (`paused_host`), so
//! back-off and deployment polls cost no wall time. Default case counts keep the file fast;
//! `PREVIEW_RELIABILITY_FULL=1` runs the full counts.

mod common;

use std::time::Duration;

use common::*;
use preview_core::{AppHost, AppSpec, Error, Idempotency, PreviewName, Result, RetryConfig, retry};
use preview_testkit::fakes::vercel::{BuildOutcome, Exchange, FakeVercel};
use preview_testkit::http_chaos::{HttpChaos, cases, percent_decode, random_strings};
use providers_vercel::MARKER;
use tokio::time::Instant;

const DOMAIN: &str = "pr-42-api.preview.inkeep.com";

fn life_spec(tls: &str) -> AppSpec {
    spec(
        API,
        Some(DOMAIN),
        vec![
            var("SPICEDB_TLS_ENABLED", tls),
            secret("BETTER_AUTH_SECRET", SECRET),
            preview_core::EnvVar {
                sensitive: true,
                ..secret("OPENAI_API_KEY", "sk-test-SENTINEL")
            },
        ],
    )
}

/// One trait call under the pipeline's retry with its default policy, as the pipeline makes it
/// (`Idempotent`: every AppHost method is a whole observe-then-act unit).
async fn retried<T, F, Fut>(what: &str, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    retry(&RetryConfig::default(), what, Idempotency::Idempotent, op).await
}

/// R1 runs each trait call under the pipeline's default policy (8 attempts, 120 s), as the
/// pipeline does. That converges because the client re-sends each idempotent request itself
/// (reads, polls, deletes, the env upsert) and hands only an ambiguous create back; before it
/// did, one flaky poll threw a whole deploy attempt away, and 200 seeds at p = 0.3 gave up in 8
/// applies, 44 deploys and 22 teardowns.
async fn retried_r1<T, F, Fut>(what: &str, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    retried(what, op).await
}

fn is_mutation(x: &Exchange) -> bool {
    x.method != "GET"
}

/// The fake's state with ids and timestamps normalised: env vars (key, value, type, target,
/// branch, comment), domains (name, branch), deployments (state, ref, sha, meta, aliases with the
/// deployment's own URL replaced).
fn normalised(fake: &FakeVercel) -> String {
    let envs: Vec<String> = fake
        .envs(API)
        .iter()
        .map(|e| {
            format!(
                "env {} {} {} {:?} {:?} {:?}",
                e.key, e.value, e.kind, e.target, e.git_branch, e.comment
            )
        })
        .collect();
    let domains: Vec<String> = fake
        .domains(API)
        .iter()
        .map(|d| format!("domain {} {:?}", d.name, d.git_branch))
        .collect();
    let deployments: Vec<String> = fake
        .deployments()
        .iter()
        .map(|d| {
            let alias: Vec<&str> = d
                .alias
                .iter()
                .map(|a| if *a == d.url { "<own url>" } else { a.as_str() })
                .collect();
            format!(
                "deployment {} {} {} {:?} {:?}",
                d.state, d.git_ref, d.sha, d.meta, alias
            )
        })
        .collect();
    [envs, domains, deployments].concat().join("\n")
}

/// What still carries this environment's marker: env vars with our marker or on our branch,
/// domains on our branch, deployments of ours still in flight.
fn leftovers(fake: &FakeVercel, name: &PreviewName) -> Vec<String> {
    let marker = format!("{MARKER} env={name} ");
    let mut out: Vec<String> = fake
        .envs(API)
        .into_iter()
        .filter(|e| {
            e.comment.as_deref().is_some_and(|c| c.starts_with(&marker))
                || e.git_branch.as_deref() == Some(BRANCH)
        })
        .map(|e| format!("env var {}", e.key))
        .collect();
    out.extend(
        fake.domains(API)
            .into_iter()
            .filter(|d| d.name == DOMAIN || d.git_branch.as_deref() == Some(BRANCH))
            .map(|d| format!("domain {}", d.name)),
    );
    out.extend(
        fake.deployments()
            .into_iter()
            .filter(|d| {
                d.meta.get("previewEnv").map(String::as_str) == Some(name.as_str())
                    && matches!(d.state.as_str(), "QUEUED" | "BUILDING" | "INITIALIZING")
            })
            .map(|d| format!("in-flight deployment {}", d.id)),
    );
    out
}

/// What one life-cycle run saw.
struct Run {
    after_deploy: String,
    after_change: String,
    /// Mutating requests of the re-deploy (apply + deploy again, nothing changed) after calm().
    redeploy_mutations: Vec<Exchange>,
    /// Mutating requests of the second teardown after calm().
    reteardown_mutations: Vec<Exchange>,
    leftovers: Vec<String>,
    elapsed: Duration,
}

/// apply → deploy (→ calm: re-apply + re-deploy) → get → list → changed apply → delete (→ calm:
/// second delete), every call under the pipeline's retry; `chaos` is the plan for one seed (or
/// none for the fault-free run).
async fn life_cycle(chaos: Option<(u64, f64)>) -> (FakeVercel, Run) {
    let fake = fake();
    // Two polls still BUILDING: the wait loop, and faults on polls, are part of every run.
    fake.set_build(BuildOutcome::Ready { after_polls: 2 });
    let server = fake.start().await;
    let host = paused_host(&server);
    let n = name(42);
    let plan = |salt: u64| {
        chaos.map(|(seed, p)| {
            HttpChaos::new(seed.wrapping_mul(31).wrapping_add(salt), p)
                .max_consecutive(7)
                // Held on the fake's own runtime (real time): a little, to shuffle timing only.
                .latency(0.05, Duration::from_millis(3))
        })
    };
    let start = Instant::now();
    if let Some(p) = plan(0) {
        fake.chaos(p);
    }
    let spec = life_spec("false");
    let commit = commit();
    let projects = [API.to_string()];
    retried_r1("apply app", || host.apply_app(&n, &spec))
        .await
        .unwrap_or_else(|e| panic!("seed {chaos:?}: apply: {e}"));
    retried_r1("deploy app", || host.deploy_app(&n, &spec, &commit))
        .await
        .unwrap_or_else(|e| panic!("seed {chaos:?}: deploy: {e}"));
    fake.calm();
    let after_deploy = normalised(&fake);

    // R3: nothing changed, so nothing is written.
    let before = fake.exchanges().len();
    host.apply_app(&n, &spec).await.expect("re-apply");
    host.deploy_app(&n, &spec, &commit)
        .await
        .expect("re-deploy");
    let redeploy_mutations: Vec<Exchange> = fake.exchanges()[before..]
        .iter()
        .filter(|x| is_mutation(x))
        .cloned()
        .collect();

    if let Some(p) = plan(1) {
        fake.chaos(p);
    }
    let status = retried_r1("get app", || host.get_app(&n, &spec.target))
        .await
        .unwrap_or_else(|e| panic!("seed {chaos:?}: get: {e}"))
        .expect("the environment exists");
    assert_eq!(
        status.env_keys,
        [
            "BETTER_AUTH_SECRET",
            "OPENAI_API_KEY",
            "SPICEDB_TLS_ENABLED"
        ]
    );
    assert_eq!(status.domain.as_deref(), Some(DOMAIN));
    assert_eq!(
        status.deployment.as_ref().map(|d| d.state.as_str()),
        Some("READY")
    );
    let owned = retried_r1("list apps", || host.list_apps(&projects))
        .await
        .unwrap_or_else(|e| panic!("seed {chaos:?}: list: {e}"));
    assert_eq!(
        owned.iter().filter(|o| o.name == n.as_str()).count(),
        4,
        "three vars and the domain: {owned:?}"
    );
    let changed = life_spec("true");
    retried_r1("apply app", || host.apply_app(&n, &changed))
        .await
        .unwrap_or_else(|e| panic!("seed {chaos:?}: changed apply: {e}"));
    // Read from the fake's state directly: no request, so nothing is drawn from the plan.
    let after_change = normalised(&fake);
    if let Some(p) = plan(2) {
        fake.chaos(p);
    }
    retried_r1("delete app", || host.delete_app(&n, &changed.target))
        .await
        .unwrap_or_else(|e| panic!("seed {chaos:?}: teardown: {e}"));
    fake.calm();
    let elapsed = start.elapsed();
    let leftovers = leftovers(&fake, &n);

    let before = fake.exchanges().len();
    host.delete_app(&n, &changed.target)
        .await
        .expect("second teardown");
    let reteardown_mutations = fake.exchanges()[before..]
        .iter()
        .filter(|x| is_mutation(x))
        .cloned()
        .collect();
    check_exchanges(&fake.exchanges());
    (
        fake,
        Run {
            after_deploy,
            after_change,
            redeploy_mutations,
            reteardown_mutations,
            leftovers,
            elapsed,
        },
    )
}

/// R1 + R2 + R3 over HTTP: for every seed, the whole life cycle succeeds under p = 0.3 faults
/// (rejections, 429 with Retry-After, silent successes), no request needs more than 8 attempts,
/// the state after deploy and after the changed apply equals the fault-free run's, teardown
/// leaves nothing of the environment, and re-running deploy or teardown writes nothing.
#[tokio::test(start_paused = true)]
async fn r1_r2_r3_life_cycle_converges_under_seeded_faults() {
    let (_, calm) = life_cycle(None).await;
    assert!(calm.leftovers.is_empty(), "{:?}", calm.leftovers);
    assert!(
        calm.after_deploy.contains("deployment READY"),
        "{}",
        calm.after_deploy
    );
    let seeds = cases(30, 200);
    let mut injected = 0;
    for seed in 0..seeds {
        let (fake, run) = life_cycle(Some((seed, 0.3))).await;
        injected += fake.injected_faults();
        assert!(
            fake.max_attempts() <= 8,
            "seed {seed}: a request took {} attempts",
            fake.max_attempts()
        );
        assert_eq!(
            run.after_deploy, calm.after_deploy,
            "seed {seed}: state after deploy differs from the fault-free run"
        );
        assert_eq!(
            run.after_change, calm.after_change,
            "seed {seed}: state after the changed apply differs from the fault-free run"
        );
        assert!(
            run.leftovers.is_empty(),
            "seed {seed}: teardown left {:?}",
            run.leftovers
        );
        assert!(
            run.redeploy_mutations.is_empty(),
            "seed {seed}: a re-deploy wrote {:?}",
            run.redeploy_mutations
        );
        assert!(
            run.reteardown_mutations.is_empty(),
            "seed {seed}: a second teardown wrote {:?}",
            run.reteardown_mutations
        );
        assert!(
            run.elapsed <= Duration::from_secs(20 * 60),
            "seed {seed}: {:?} of virtual time",
            run.elapsed
        );
    }
    assert!(
        injected as u64 >= seeds * 3,
        "the plan injected only {injected} faults over {seeds} seeds"
    );
}

/// The fault switch itself: every request draws from the plan (replayed here from the same
/// seed); a rejection is answered without acting, with `Retry-After` on a 429; a lost response
/// acts first; a one-shot fault takes precedence without drawing; `calm()` ends the plan and
/// keeps the counts.
#[tokio::test]
async fn r1_the_fakes_fault_plan_rejects_without_acting_and_loses_after_acting() {
    use preview_testkit::HttpFault;
    let fake = fake();
    let server = fake.start().await;
    let http = reqwest::Client::new();
    let path = "/v10/projects/prj_api/env";
    let post = |key: String| {
        let body = serde_json::json!([{
            "key": key, "value": "v", "type": "encrypted", "target": ["preview"],
            "gitBranch": BRANCH, "comment": "managed-by:preview env=pr-42-agents pr=42 fp=00",
        }]);
        check_request("POST", path, &body);
        http.post(format!("{}{path}?upsert=true&teamId={TEAM}", server.uri()))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    fake.chaos(HttpChaos::new(3, 1.0));
    let mut replay = HttpChaos::new(3, 1.0).start();
    let (mut rejected, mut lost) = (0, 0);
    for i in 0..40 {
        let key = format!("K{i}");
        let answer = post(key.clone()).await.expect("sent");
        let fault = replay.draw("POST", path).expect("p = 1");
        assert_eq!(answer.status().as_u16(), fault.status(), "{key}");
        let retry_after = answer
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("text").to_string());
        let kept = fake.envs(API).iter().any(|e| e.key == key);
        match fault {
            HttpFault::Reject {
                retry_after: hint, ..
            } => {
                rejected += 1;
                assert!(!kept, "{key}: a rejection must not act");
                assert_eq!(retry_after.is_some(), hint.is_some(), "{key}");
            }
            HttpFault::Lose { .. } => {
                lost += 1;
                assert!(kept, "{key}: a lost response acts first");
            }
        }
    }
    assert!(rejected > 0 && lost > 0, "{rejected} {lost}");
    assert_eq!(fake.injected_faults(), 40);
    assert_eq!(fake.max_attempts(), 40, "one request, 40 attempts in a row");

    fake.fail_next(
        Some("POST"),
        400,
        serde_json::json!({"error": {"code": "bad_request", "message": "scripted"}}),
        None,
    );
    let answer = post("ONE_SHOT".into()).await.expect("sent");
    assert_eq!(answer.status().as_u16(), 400, "the one-shot fault wins");
    assert_eq!(fake.injected_faults(), 40, "and the plan did not draw");

    fake.calm();
    let answer = post("CALM".into()).await.expect("sent");
    assert_eq!(answer.status().as_u16(), 201);
    assert!(fake.envs(API).iter().any(|e| e.key == "CALM"));
    assert_eq!(
        (fake.injected_faults(), fake.max_attempts()),
        (40, 40),
        "counts survive calm()"
    );
    let log = fake.exchanges();
    assert_eq!(log.iter().filter(|x| x.injected).count(), 41);
    check_exchanges(&log);
}

// ---------------------------------------------------------------------------------------------
// R4: silent success on every create.

/// The create requests of the Vercel AppHost, and the lookup that must come before any re-send.
#[derive(Debug, Clone, Copy)]
enum Create {
    /// `POST /v10/projects/{id}/env?upsert=true`; looked up with `GET /v10/projects/{id}/env`.
    EnvVars,
    /// `POST /v10/projects/{id}/domains`; looked up with `GET /v9/projects/{id}/domains/{name}`.
    Domain,
    /// `POST /v13/deployments`; looked up with `GET /v6/deployments`.
    Deployment,
}

impl Create {
    fn post_path(self) -> &'static str {
        match self {
            Create::EnvVars => "/v10/projects/prj_api/env",
            Create::Domain => "/v10/projects/prj_api/domains",
            Create::Deployment => "/v13/deployments",
        }
    }

    fn is_lookup(self, x: &Exchange) -> bool {
        x.method == "GET"
            && match self {
                Create::EnvVars => x.path == "/v10/projects/prj_api/env",
                Create::Domain => x.path == format!("/v9/projects/prj_api/domains/{DOMAIN}"),
                Create::Deployment => x.path == "/v6/deployments",
            }
    }

    /// How many of the resource exist.
    fn count(self, fake: &FakeVercel) -> usize {
        match self {
            Create::EnvVars => {
                let envs = fake.envs(API);
                // One var per key: a duplicate would show as a repeated key.
                let keys: std::collections::BTreeSet<&str> =
                    envs.iter().map(|e| e.key.as_str()).collect();
                assert_eq!(keys.len(), envs.len(), "duplicate vars: {envs:?}");
                envs.len() / 3
            }
            Create::Domain => fake
                .domains(API)
                .iter()
                .filter(|d| d.name == DOMAIN)
                .count(),
            Create::Deployment => fake
                .deployments()
                .iter()
                .filter(|d| d.meta.get("previewEnv").map(String::as_str) == Some("pr-42-agents"))
                .count(),
        }
    }
}

/// Between the lost POST and any later POST of the same request there is a lookup; returns the
/// number of POSTs after the lost one.
fn assert_lookup_before_any_resend(log: &[Exchange], create: Create) -> usize {
    let is_post = |x: &Exchange| x.method == "POST" && x.path == create.post_path();
    let lost = log
        .iter()
        .position(|x| is_post(x) && x.injected)
        .unwrap_or_else(|| panic!("{create:?}: the create was never sent"));
    let after = &log[lost + 1..];
    let first_lookup = after
        .iter()
        .position(|x| create.is_lookup(x))
        .unwrap_or_else(|| panic!("{create:?}: no lookup after the lost create"));
    if let Some(resend) = after.iter().position(is_post) {
        assert!(
            first_lookup < resend,
            "{create:?}: POST re-sent before any lookup: {:?}",
            after
                .iter()
                .map(|x| (&x.method, &x.path))
                .collect::<Vec<_>>()
        );
    }
    after.iter().filter(|x| is_post(x)).count()
}

async fn r4_case(create: Create, status: u16) {
    let fake = fake();
    let server = fake.start().await;
    let host = paused_host(&server);
    let n = name(42);
    let spec = life_spec("false");
    let commit = commit();
    if matches!(create, Create::Deployment) {
        host.apply_app(&n, &spec).await.expect("apply");
    }
    fake.lose_next_response("POST", create.post_path(), status);
    retried("apply app", || host.apply_app(&n, &spec))
        .await
        .unwrap_or_else(|e| panic!("{create:?} {status}: apply: {e}"));
    retried("deploy app", || host.deploy_app(&n, &spec, &commit))
        .await
        .unwrap_or_else(|e| panic!("{create:?} {status}: deploy: {e}"));
    let log = fake.exchanges();
    if matches!(create, Create::EnvVars) {
        // The upsert is idempotent (reliability.md a4): the client re-sends it as is, and the
        // upsert leaves one variable per key however often it arrives.
        let posts = log
            .iter()
            .filter(|x| x.method == "POST" && x.path == create.post_path())
            .count();
        assert_eq!(
            posts, 2,
            "{create:?} {status}: the lost upsert, then one re-send"
        );
    } else {
        let resent = assert_lookup_before_any_resend(&log, create);
        assert_eq!(
            resent, 0,
            "{create:?} {status}: the lookup found the create, so it is never re-sent"
        );
    }
    assert_eq!(create.count(&fake), 1, "{create:?} {status}: exactly one");
    check_exchanges(&log);
}

#[tokio::test(start_paused = true)]
async fn r4_lost_env_upsert_is_found_not_duplicated() {
    for status in [408, 502, 504] {
        r4_case(Create::EnvVars, status).await;
    }
}

#[tokio::test(start_paused = true)]
async fn r4_lost_domain_add_is_found_not_posted_again() {
    for status in [408, 502, 504] {
        r4_case(Create::Domain, status).await;
    }
}

#[tokio::test(start_paused = true)]
async fn r4_lost_deployment_create_is_found_not_created_again() {
    for status in [408, 502, 504] {
        r4_case(Create::Deployment, status).await;
    }
}

/// The premises of R4, on the fake itself: the env upsert really is idempotent (the same POST
/// twice leaves one var per key), and a second domain POST answers 400, so a client that re-sent
/// blindly would fail (or duplicate) instead of converging.
#[tokio::test]
async fn r4_the_fake_upserts_idempotently_and_refuses_a_second_domain_post() {
    let fake = fake();
    let server = fake.start().await;
    let http = reqwest::Client::new();
    let post = |path: &str, query: &str, body: serde_json::Value| {
        check_request("POST", path, &body);
        http.post(format!("{}{path}?{query}teamId={TEAM}", server.uri()))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let env = serde_json::json!([{
        "key": "K", "value": "v", "type": "encrypted", "target": ["preview"],
        "gitBranch": BRANCH, "comment": "managed-by:preview env=pr-42-agents pr=42 fp=00",
    }]);
    for _ in 0..2 {
        let r = post("/v10/projects/prj_api/env", "upsert=true&", env.clone())
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 201);
    }
    assert_eq!(fake.envs(API).len(), 1, "{:?}", fake.envs(API));
    let domain = serde_json::json!({"name": DOMAIN, "gitBranch": BRANCH});
    let statuses = [
        post("/v10/projects/prj_api/domains", "", domain.clone())
            .await
            .expect("sent")
            .status()
            .as_u16(),
        post("/v10/projects/prj_api/domains", "", domain)
            .await
            .expect("sent")
            .status()
            .as_u16(),
    ];
    assert_eq!(statuses, [200, 400]);
    assert_eq!(fake.domains(API).len(), 1);
    check_exchanges(&fake.exchanges());
}

// ---------------------------------------------------------------------------------------------
// R7: terminal errors fail fast.

/// How a terminal answer is produced.
enum Terminal {
    /// The env upsert is answered with this status and body.
    Status(u16, serde_json::Value),
    /// The env upsert answers 201 with this key in `failed[]` (the item echoes its value).
    FailedItem(&'static str, &'static str),
}

fn vercel_error(code: &str, message: &str) -> serde_json::Value {
    // `value` as Vercel's env errors may carry it: it must never reach a message.
    serde_json::json!({"error": {"code": code, "message": message, "value": SECRET}})
}

#[tokio::test(start_paused = true)]
async fn r7_terminal_errors_are_sent_once_and_fail_fast_naming_the_request_id() {
    let cases: Vec<(&str, Terminal)> = vec![
        (
            "400 bad_request",
            Terminal::Status(400, vercel_error("bad_request", "Invalid request")),
        ),
        (
            "401",
            Terminal::Status(401, vercel_error("forbidden", "Not authorized")),
        ),
        (
            "plain 403",
            Terminal::Status(403, vercel_error("forbidden", "You don't have permission")),
        ),
        (
            "422",
            Terminal::Status(422, vercel_error("invalid_value", "Unprocessable")),
        ),
        (
            "400 ENV_CONFLICT on a var we do not own",
            Terminal::Status(
                400,
                serde_json::json!({"error": {
                    "code": "ENV_CONFLICT",
                    "message": "A variable with the name BETTER_AUTH_SECRET already exists",
                    "key": "BETTER_AUTH_SECRET", "envVarKey": "BETTER_AUTH_SECRET",
                    "target": ["preview"], "gitBranch": BRANCH, "value": SECRET,
                }}),
            ),
        ),
        (
            "`err` instead of `error`",
            Terminal::Status(
                400,
                serde_json::json!({"err": {"code": "bad_request", "message": "Invalid request", "value": SECRET}}),
            ),
        ),
        (
            "2xx with failed[] echoing the value",
            Terminal::FailedItem("BETTER_AUTH_SECRET", "ENV_CONFLICT"),
        ),
    ];
    for (label, case) in cases {
        let fake = fake();
        match &case {
            Terminal::Status(status, body) => {
                fake.fail_next(Some("POST"), *status, body.clone(), None)
            }
            Terminal::FailedItem(key, code) => fake.reject_key(key, code),
        }
        let server = fake.start().await;
        let host = paused_host(&server);
        let spec = life_spec("false");
        let n = name(42);
        let start = Instant::now();
        let err = retried("apply app", || host.apply_app(&n, &spec))
            .await
            .expect_err(label);
        let elapsed = start.elapsed();
        let log = fake.exchanges();
        let posts: Vec<&Exchange> = log
            .iter()
            .filter(|x| x.method == "POST" && x.path == "/v10/projects/prj_api/env")
            .collect();
        assert_eq!(posts.len(), 1, "{label}: sent {} times", posts.len());
        assert!(
            elapsed < Duration::from_secs(1),
            "{label}: {elapsed:?} of virtual time"
        );
        assert!(
            !matches!(err, Error::RetriesExhausted { .. }),
            "{label}: retried: {err}"
        );
        let text = err.to_string();
        assert!(text.starts_with("vercel: "), "{label}: {text}");
        assert!(
            text.contains(&posts[0].request_id),
            "{label}: request id {} missing from: {text}",
            posts[0].request_id
        );
        let request = posts[0].request.as_ref().expect("a body").to_string();
        let shown = format!("{err} {err:#} {err:?}");
        for secret in [SECRET, "sk-test-SENTINEL", TOKEN] {
            assert!(
                request.contains(secret) || secret == TOKEN,
                "{label}: the request should carry {secret}"
            );
            assert!(!shown.contains(secret), "{label}: leaked {secret}: {shown}");
        }
        if let Terminal::FailedItem(key, code) = case {
            assert!(posts[0].status < 300, "{label}");
            assert!(
                posts[0].response.to_string().contains(SECRET),
                "{label}: the fake echoes the value"
            );
            assert!(
                text.contains(key) && text.contains(code),
                "{label}: key and code: {text}"
            );
        }
        // The `err` body is Vercel's documented quirk, not the spec's error shape.
        let checked: Vec<Exchange> = log
            .into_iter()
            .filter(|x| x.response.get("err").is_none())
            .collect();
        check_exchanges(&checked);
    }
}

// ---------------------------------------------------------------------------------------------
// R8: back-off contract over HTTP.

/// Runs `get_app` under the default retry after `setup` scripted the fake; returns the virtual
/// instants each attempt started at (the client sends the first request of an attempt at once:
/// nothing else moves virtual time here), and the result.
async fn attempts_of_get_app(
    setup: impl FnOnce(&FakeVercel),
) -> (
    Vec<Duration>,
    Result<Option<preview_core::AppStatus>>,
    FakeVercel,
) {
    let fake = fake();
    let server = fake.start().await;
    // Each request once, so every attempt (and its time) is visible to the retry loop here; the
    // client's own re-send runs the same `preview_core::retry` (see r8_the_client_itself_…).
    let host = paused_host_once(&server);
    let spec = life_spec("false");
    let n = name(42);
    host.apply_app(&n, &spec).await.expect("apply");
    setup(&fake);
    let start = Instant::now();
    let stamps = std::sync::Mutex::new(Vec::new());
    let result = retried("get app", || {
        stamps.lock().expect("not poisoned").push(start.elapsed());
        host.get_app(&n, &spec.target)
    })
    .await;
    check_exchanges(&fake.exchanges());
    (stamps.into_inner().expect("not poisoned"), result, fake)
}

fn gaps(stamps: &[Duration]) -> Vec<Duration> {
    stamps.windows(2).map(|w| w[1] - w[0]).collect()
}

fn rate_limited() -> serde_json::Value {
    serde_json::json!({"error": {"code": "rate_limited", "message": "Rate limit exceeded"}})
}

#[tokio::test(start_paused = true)]
async fn r8_retry_after_in_seconds_is_waited_out() {
    let (stamps, result, _) =
        attempts_of_get_app(|f| f.fail_next(Some("GET"), 429, rate_limited(), Some("3"))).await;
    result.expect("succeeds after the wait");
    let g = gaps(&stamps);
    assert_eq!(g.len(), 1, "{stamps:?}");
    // The hint wins over the (smaller) back-off: exactly the hint.
    assert_eq!(g[0], Duration::from_secs(3), "{g:?}");
}

#[tokio::test(start_paused = true)]
async fn r8_the_client_itself_waits_out_a_hint_before_re_sending() {
    let fake = fake();
    let server = fake.start().await;
    let host = paused_host(&server);
    let spec = life_spec("false");
    let n = name(42);
    host.apply_app(&n, &spec).await.expect("apply");
    fake.fail_next(Some("GET"), 429, rate_limited(), Some("3"));
    let before = fake.exchanges().len();
    let start = Instant::now();
    host.get_app(&n, &spec.target)
        .await
        .expect("one call, re-sent inside");
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let sent = &fake.exchanges()[before..];
    assert!(sent[0].injected && sent[0].status == 429, "{sent:?}");
    assert!(sent.len() >= 2, "{sent:?}");
}

#[tokio::test(start_paused = true)]
async fn r8_retry_after_as_an_http_date_is_waited_out() {
    let date = preview_testkit::http_chaos::RetryAfter::Date(4).header_value();
    let (stamps, result, _) =
        attempts_of_get_app(|f| f.fail_next(Some("GET"), 429, rate_limited(), Some(&date))).await;
    result.expect("succeeds after the wait");
    let g = gaps(&stamps);
    assert_eq!(g.len(), 1, "{stamps:?}");
    // The date is whole seconds, rounded up by the plan: 4 to 5 s from now.
    assert!(
        g[0] >= Duration::from_secs(4) && g[0] <= Duration::from_secs(6),
        "{date}: waited {g:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn r8_a_past_retry_after_date_means_the_normal_back_off() {
    let (stamps, result, _) = attempts_of_get_app(|f| {
        f.fail_next(
            Some("GET"),
            429,
            rate_limited(),
            Some("Wed, 21 Oct 2015 07:28:00 GMT"),
        )
    })
    .await;
    result.expect("succeeds");
    let g = gaps(&stamps);
    // The first back-off of the default policy: 250 ms with equal jitter.
    assert_eq!(g.len(), 1, "{stamps:?}");
    assert!(
        g[0] >= Duration::from_millis(125) && g[0] <= Duration::from_millis(250),
        "{g:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn r8_without_a_hint_back_off_grows_and_stays_under_the_cap() {
    let defaults = RetryConfig::default();
    assert_eq!(
        (
            defaults.max_retries,
            defaults.initial_backoff,
            defaults.max_backoff,
            defaults.budget
        ),
        (
            7,
            Duration::from_millis(250),
            Duration::from_secs(20),
            Duration::from_secs(120)
        ),
        "the contract below is written for these defaults"
    );
    let unavailable =
        serde_json::json!({"error": {"code": "service_unavailable", "message": "Try again"}});
    let (stamps, result, fake) = attempts_of_get_app(|f| {
        for _ in 0..7 {
            f.fail_next(Some("GET"), 503, unavailable.clone(), None);
        }
    })
    .await;
    result.expect("the eighth attempt succeeds");
    let g = gaps(&stamps);
    assert_eq!(g.len(), 7, "{stamps:?}");
    for (i, gap) in g.iter().enumerate() {
        let ceiling = (defaults.initial_backoff * 2u32.pow(i as u32)).min(defaults.max_backoff);
        assert!(
            *gap >= ceiling / 2 && *gap <= ceiling,
            "retry {i}: {gap:?} outside [{:?}, {ceiling:?}]",
            ceiling / 2
        );
    }
    assert!(g[6] <= defaults.max_backoff, "{g:?}");
    assert_eq!(
        fake.exchanges().iter().filter(|x| x.injected).count(),
        7,
        "every fault was a request"
    );
}

#[tokio::test(start_paused = true)]
async fn r8_a_hint_beyond_the_budget_fails_at_once_saying_how_long() {
    let (stamps, result, fake) =
        attempts_of_get_app(|f| f.fail_next(Some("GET"), 429, rate_limited(), Some("3600"))).await;
    let err = result.expect_err("no hour-long sleep");
    assert_eq!(stamps.len(), 1, "no second attempt");
    let elapsed = *stamps.last().expect("one attempt");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    let Error::RetriesExhausted {
        would_wait: Some(wait),
        ref last,
        ..
    } = err
    else {
        panic!("not a budget failure: {err:?}");
    };
    assert_eq!(wait, Duration::from_secs(3600));
    let text = err.to_string();
    assert!(text.contains("would have waited 3600s"), "{text}");
    let log = fake.exchanges();
    let id = &log.last().expect("one request").request_id;
    assert!(last.to_string().contains(id.as_str()), "{last}");
}

// ---------------------------------------------------------------------------------------------
// I4: URL safety.

/// Hostile text a caller may hand us (branch names are attacker-controlled and legal with all of
/// these; project ids come from configuration; deployment ids from the API).
fn hostile_fixed() -> Vec<String> {
    vec![
        r#"zzz";echo${IFS}"hello";#"#.into(),
        "$(curl x|sh)".into(),
        "a/../../b".into(),
        "x?y=1#z".into(),
        "%2F%00".into(),
        "&a=b".into(),
        "with  spaces and+plus".into(),
        "\u{202E}gnp.exe".into(),
        "🦀/emoji-ñ".into(),
        "a".repeat(250),
        "..".into(),
        ".".into(),
        "teamId=evil&x".into(),
    ]
}

/// Seeded random strings over a hostile alphabet: URL delimiters, percent and plus, dots, shell
/// metacharacters, quotes, bidi and zero-width marks, non-ASCII (never control characters, which
/// branch validation rejects; see `i4_text_that_cannot_reach_a_url_is_rejected_first`).
fn hostile_random(seed: u64, n: u64) -> Vec<String> {
    const ALPHABET: &[&str] = &[
        "/", "?", "#", "&", "=", "%", "+", " ", ".", ";", "\"", "'", "$", "(", ")", "|", "`", "\\",
        "{", "}", "<", ">", "~", "^", ":", "*", "[", "]", "@", "!", ",", "a", "Z", "0", "9", "-",
        "_", "é", "\u{202E}", "\u{200B}", "\u{FEFF}", "🦀", "2", "F",
    ];
    random_strings(seed, n as usize, ALPHABET, 40)
}

/// The routes the client may call; `{p}` project, `{d}` domain, `{id}` deployment id.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v10/projects/{p}/env"),
    ("POST", "/v10/projects/{p}/env"),
    ("DELETE", "/v1/projects/{p}/env"),
    ("GET", "/v9/projects/{p}/domains"),
    ("POST", "/v10/projects/{p}/domains"),
    ("GET", "/v9/projects/{p}/domains/{d}"),
    ("PATCH", "/v9/projects/{p}/domains/{d}"),
    ("DELETE", "/v9/projects/{p}/domains/{d}"),
    ("GET", "/v6/deployments"),
    ("POST", "/v13/deployments"),
    ("GET", "/v13/deployments/{id}"),
    ("PATCH", "/v12/deployments/{id}/cancel"),
    ("POST", "/v2/deployments/{id}/aliases"),
];

/// What the caller's text was, to compare the decoded URL against.
struct Expect<'a> {
    project: &'a str,
    branch: &'a str,
    deployment_ids: &'a [String],
}

/// Every request the fake received went to one of the client's routes (same number of raw
/// segments, same literal segments), each placeholder segment decodes to exactly the caller's
/// text, and the query holds only known keys, once each, with the caller's text as values.
fn assert_urls_decode_back(log: &[Exchange], want: &Expect<'_>) {
    for x in log {
        let raw: Vec<&str> = x.path.trim_start_matches('/').split('/').collect();
        let route = ROUTES
            .iter()
            .filter(|(m, _)| *m == x.method)
            .map(|(_, r)| r.trim_start_matches('/').split('/').collect::<Vec<_>>())
            .find(|r| {
                r.len() == raw.len()
                    && r.iter()
                        .zip(&raw)
                        .all(|(t, s)| t.starts_with('{') || t == s)
            })
            .unwrap_or_else(|| panic!("{} {} is not a route of the client", x.method, x.path));
        for (t, s) in route.iter().zip(&raw) {
            let decoded = percent_decode(s);
            match *t {
                "{p}" => assert_eq!(decoded, want.project, "{} {}", x.method, x.path),
                "{d}" => assert_eq!(decoded, DOMAIN, "{} {}", x.method, x.path),
                "{id}" => assert!(
                    want.deployment_ids.contains(&decoded),
                    "{} {}: deployment id {decoded:?}",
                    x.method,
                    x.path
                ),
                _ => {}
            }
        }
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(x.query.as_deref().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let mut keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len(), "a repeated key in {:?}", x.query);
        for (k, v) in &pairs {
            match k.as_str() {
                "teamId" => assert_eq!(v, TEAM),
                "gitBranch" | "branch" => assert_eq!(v, want.branch, "{:?}", x.query),
                "projectId" => assert_eq!(v, want.project, "{:?}", x.query),
                "upsert" => assert_eq!(v, "true"),
                "sha" => assert_eq!(v, SHA),
                "limit" | "until" | "state" => {}
                other => panic!("unexpected query key {other:?} in {:?}", x.query),
            }
        }
        assert!(
            keys.contains(&"teamId"),
            "{} {}: no teamId",
            x.method,
            x.path
        );
        // Branch text in bodies arrives as the same JSON string.
        if let Some(body) = &x.request {
            for b in [&body["gitBranch"], &body["gitSource"]["ref"]] {
                if let Some(b) = b.as_str() {
                    assert_eq!(b, want.branch);
                }
            }
            for item in body.as_array().into_iter().flatten() {
                assert_eq!(item["gitBranch"].as_str(), Some(want.branch));
            }
        }
    }
}

/// apply → deploy → get → delete with `branch` as the PR's head branch and `project` as the
/// project id; returns the fake's log. The fake resolved every project, domain and deployment
/// (or the life cycle would fail), so the text also decoded back on the server side.
async fn life_cycle_with(
    fake: &FakeVercel,
    host: &providers_vercel::VercelApps,
    project: &str,
    branch: &str,
    domain: Option<&str>,
) {
    let mut s = spec(project, domain, vec![var("A", "1"), secret("B", SECRET)]);
    s.branch = branch.into();
    let c = preview_core::Commit {
        branch: branch.into(),
        ..commit()
    };
    let n = name(42);
    let label = format!("project {project:?} branch {branch:?}");
    if matches!(project, "." | "..") || project.trim().is_empty() {
        // A dot segment would be resolved away by URL parsing, a blank project is no project:
        // both are refused before any request.
        let before = fake.exchanges().len();
        let err = host.apply_app(&n, &s).await.expect_err(&label);
        assert!(err.is_config(), "{label}: {err}");
        assert_eq!(
            fake.exchanges().len(),
            before,
            "{label}: a request was sent"
        );
        return;
    }
    host.apply_app(&n, &s)
        .await
        .unwrap_or_else(|e| panic!("{label}: apply: {e}"));
    let envs = fake.envs(project);
    assert_eq!(envs.len(), 2, "{label}");
    assert!(
        envs.iter().all(|e| e.git_branch.as_deref() == Some(branch)),
        "{label}: {envs:?}"
    );
    host.deploy_app(&n, &s, &c)
        .await
        .unwrap_or_else(|e| panic!("{label}: deploy: {e}"));
    assert!(
        host.get_app(&n, &s.target)
            .await
            .unwrap_or_else(|e| panic!("{label}: get: {e}"))
            .is_some()
    );
    host.delete_app(&n, &s.target)
        .await
        .unwrap_or_else(|e| panic!("{label}: delete: {e}"));
    assert!(fake.envs(project).is_empty(), "{label}: teardown");
}

#[tokio::test]
async fn i4_hostile_branches_and_project_ids_decode_back_on_every_route() {
    let fixed = hostile_fixed();
    for text in &fixed {
        // As the branch (JSON bodies, gitBranch / branch query filters), with a domain.
        let fake = fake();
        let server = fake.start().await;
        let vercel = host(&server);
        life_cycle_with(&fake, &vercel, API, text, Some(DOMAIN)).await;
        let log = fake.exchanges();
        let ids: Vec<String> = fake.deployments().into_iter().map(|d| d.id).collect();
        assert_urls_decode_back(
            &log,
            &Expect {
                project: API,
                branch: text,
                deployment_ids: &ids,
            },
        );
        check_exchanges(&log);

        // As the project id (path segments, projectId filter).
        let fake = FakeVercel::new(TOKEN).team(TEAM).project(text, "hostile");
        let server = fake.start().await;
        let vercel = host(&server);
        life_cycle_with(&fake, &vercel, text, BRANCH, Some(DOMAIN)).await;
        let ids: Vec<String> = fake.deployments().into_iter().map(|d| d.id).collect();
        assert_urls_decode_back(
            &fake.exchanges(),
            &Expect {
                project: text,
                branch: BRANCH,
                deployment_ids: &ids,
            },
        );
    }
}

/// One fake for a chunk of strings, each used alternately as the branch and as the project id.
async fn random_chunk(chunk: Vec<String>) {
    let fake = fake();
    let server = fake.start().await;
    let vercel = host(&server);
    for (i, text) in chunk.iter().enumerate() {
        let (project, branch) = if i % 2 == 0 {
            (API, text.as_str())
        } else {
            let _ = fake.clone().project(text, "hostile");
            (text.as_str(), BRANCH)
        };
        let before = fake.exchanges().len();
        life_cycle_with(&fake, &vercel, project, branch, None).await;
        let ids: Vec<String> = fake.deployments().into_iter().map(|d| d.id).collect();
        assert_urls_decode_back(
            &fake.exchanges()[before..],
            &Expect {
                project,
                branch,
                deployment_ids: &ids,
            },
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i4_seeded_random_hostile_strings_decode_back() {
    let n = cases(500, 5000);
    // Chunks of 25 keep each fake's log short, and run side by side.
    let mut chunks = tokio::task::JoinSet::new();
    for chunk in hostile_random(7, n).chunks(25) {
        chunks.spawn(random_chunk(chunk.to_vec()));
    }
    while let Some(done) = chunks.join_next().await {
        if let Err(e) = done {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

#[tokio::test]
async fn i4_hostile_deployment_ids_decode_back() {
    for (i, id) in hostile_fixed().into_iter().enumerate() {
        let fake = fake();
        let server = fake.start().await;
        let host = host(&server);
        let n = name(42);
        let s = spec(API, Some(DOMAIN), vec![var("A", "1")]);
        host.apply_app(&n, &s).await.expect("apply");
        let seeded = |id: &str| preview_testkit::fakes::vercel::FakeDeployment {
            id: id.to_string(),
            project_id: API.into(),
            name: "agents-api".into(),
            url: format!("agents-api-{i}-fake-team.vercel.app"),
            state: "BUILDING".into(),
            git_ref: BRANCH.into(),
            sha: SHA.into(),
            meta: [
                ("previewEnv".to_string(), n.to_string()),
                ("githubCommitSha".to_string(), SHA.to_string()),
            ]
            .into_iter()
            .collect(),
            alias: Vec::new(),
            created_at: 0,
            polls: 0,
        };
        // Reused by deploy (polled, then aliased), then a second in-flight one is cancelled.
        fake.add_deployment(seeded(&id));
        if matches!(id.as_str(), "." | "..") {
            // A dot segment would be resolved away by URL parsing: refused, nothing sent there.
            let err = host
                .deploy_app(&n, &s, &commit())
                .await
                .expect_err("a dot id is refused");
            assert!(err.is_config(), "{id:?}: {err}");
            assert_urls_decode_back(
                &fake.exchanges(),
                &Expect {
                    project: API,
                    branch: BRANCH,
                    deployment_ids: &[],
                },
            );
            continue;
        }
        let (d, _) = host
            .deploy_app(&n, &s, &commit())
            .await
            .unwrap_or_else(|e| panic!("{id:?}: deploy: {e}"));
        assert_eq!(d.id, id);
        let other = format!("{id}/2");
        fake.add_deployment(preview_testkit::fakes::vercel::FakeDeployment {
            git_ref: "other".into(),
            ..seeded(&other)
        });
        host.delete_app(&n, &s.target).await.expect("delete");
        let states: Vec<(String, String, Vec<String>)> = fake
            .deployments()
            .into_iter()
            .map(|d| (d.id, d.state, d.alias))
            .collect();
        assert_eq!(states[0].0, id);
        assert_eq!(states[0].1, "READY");
        assert!(states[0].2.contains(&DOMAIN.to_string()), "{states:?}");
        assert_eq!(
            (states[1].0.as_str(), states[1].1.as_str()),
            (other.as_str(), "CANCELED")
        );
        let log = fake.exchanges();
        assert_urls_decode_back(
            &log,
            &Expect {
                project: API,
                branch: BRANCH,
                deployment_ids: &[id.clone(), other.clone()],
            },
        );
        check_exchanges(&log);
    }
}

/// Where text never reaches a URL because it is validated first: the team id (builder), domains
/// (hostname check) and branches with control characters are refused before any request.
#[tokio::test]
async fn i4_text_that_cannot_reach_a_url_is_rejected_first() {
    // One fake for every case: none of them may send a request.
    let silent = fake();
    let server = silent.start().await;
    let vercel = host(&server);
    let n = name(42);
    for text in hostile_fixed()
        .into_iter()
        .chain(hostile_random(11, 50))
        .chain([
            "a\nb".to_string(),
            "\u{0}".to_string(),
            "a\u{7f}".to_string(),
        ])
    {
        let team = providers_vercel::VercelApps::builder()
            .token(TOKEN)
            .team_id(text.as_str())
            .base_url("http://127.0.0.1:9")
            .build();
        let plain = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        match team {
            Ok(_) => assert!(plain, "{text:?}: a hostile team id was accepted"),
            Err(err) => assert!(err.is_config() && !plain, "{text:?}: {err}"),
        }

        let with_domain = spec(API, Some(&text), vec![var("A", "1")]);
        let err = vercel
            .apply_app(&n, &with_domain)
            .await
            .expect_err("a hostile domain is refused");
        assert!(err.is_config(), "{text:?}: {err}");
        let err = vercel
            .delete_app(&n, &with_domain.target)
            .await
            .expect_err("a hostile domain is refused");
        assert!(err.is_config(), "{text:?}: {err}");
    }
    for branch in ["", "a\nb", "tab\there", "nul\u{0}", &"b".repeat(251)] {
        let fake = fake();
        let server = fake.start().await;
        let host = host(&server);
        let mut s = spec(API, Some(DOMAIN), vec![var("A", "1")]);
        s.branch = branch.into();
        let err = host
            .apply_app(&name(42), &s)
            .await
            .expect_err("an invalid branch is refused");
        assert!(err.is_config(), "{branch:?}: {err}");
        assert!(
            fake.exchanges().is_empty(),
            "{branch:?}: a request was sent"
        );
    }
}

/// R1's attempt bound made falsifiable. In the convergence runs `max_consecutive(7)` means no
/// request ever *needs* more than 8 attempts; this shows 8 is also the most the client ever
/// *sends*: a read that fails every time goes out 8 times, and giving up (`RetriesExhausted`)
/// is not retried again by the pipeline's own loop, so attempts do not multiply.
#[tokio::test(start_paused = true)]
async fn r1_a_read_that_always_fails_is_sent_eight_times_not_more() {
    let fake = fake();
    let server = fake.start().await;
    let host = paused_host(&server);
    fake.chaos(HttpChaos::new(5, 1.0));
    let spec = life_spec("false");
    let n = name(42);
    let err = retried("get app", || host.get_app(&n, &spec.target))
        .await
        .expect_err("every request fails");
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 8, .. }),
        "{err:?}"
    );
    assert_eq!(fake.exchanges().len(), 8, "{:?}", fake.exchanges());
}
