//! Reliability suites of issue 7 against the real GitHub client over HTTP, talking to the stateful
//! fake (`FakeGitHub`) with seeded faults (`preview_testkit::HttpChaos`). Numbered as in
//! the README's reliability table: R1/R2/R3 (convergence, teardown leaves nothing, idempotent
//! re-run), R4 (silent success on every create), R7/R10 (terminal errors vs rate limits), R8
//! (back-off contract), I4 (URL safety), S1/I6 (no secret in any body, inert untrusted text).
//!
//! The retry around each trait call is the pipeline's: `preview_core::retry` with the unit
//! marked idempotent (each call looks up before it creates). Everything runs on a paused tokio
//! clock (the fake's builder has no client timeouts, so only our own waits move virtual time),
//! except the dropped-answer case of R4, which needs reqwest's request timeout on the real clock.
//! Default case counts keep the file fast; `PREVIEW_RELIABILITY_FULL=1` runs the full counts.

mod common;

use std::time::Duration;

use preview_core::http::ClientSettings;
use preview_core::{
    Error, Idempotency, Link, Naming, Outcome, PrNumber, PrState, PreviewName, PullRequest, Report,
    ReportState, RetryConfig, SourceHost, retry,
};
use preview_testkit::fakes::github::{Exchange, FakeGitHub, LOGIN, TOKEN, bodies};
use preview_testkit::http_chaos::{HttpChaos, cases, percent_decode as decode, random_strings};
use providers_github::GitHubSource;
use serde_json::json;
use tokio::time::Instant;

use common::{FakeGitHubExt, check_exchanges, observe};

const PR: u32 = 7;
const OTHER_PR: u32 = 8;
const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

fn pr_number(n: u32) -> PrNumber {
    PrNumber::new(u64::from(n)).unwrap()
}

fn name(n: u32) -> PreviewName {
    Naming::new("pr", "agents").unwrap().name(pr_number(n))
}

fn pull(n: u32, state: PrState) -> PullRequest {
    PullRequest {
        number: pr_number(n),
        state,
        draft: false,
        title: format!("Change {n}"),
        head_branch: format!("feature/{n}"),
        head_sha: SHA.into(),
        head_repo: Some("acme/app".into()),
        base_repo: "acme/app".into(),
        labels: vec![],
    }
}

fn ready() -> ReportState {
    ReportState::Ready {
        links: vec![Link {
            label: "ui".into(),
            url: "https://pr-7-ui.preview.example.com".into(),
        }],
    }
}

fn report(state: ReportState) -> Report {
    report_for(PR, state)
}

fn report_for(n: u32, state: ReportState) -> Report {
    Report {
        name: name(n),
        pr: pr_number(n),
        branch: Some(format!("feature/{n}")),
        commit: Some(SHA.into()),
        state,
        run_url: Some("https://github.com/acme/app/actions/runs/99".into()),
        started_at: None,
        phases: vec![],
        lifetime: None,
    }
}

/// A fake with PR 7 (ours) and PR 8 (someone else's) open.
async fn fake() -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(PR, PrState::Open));
    fake.set_pull_request(pull(OTHER_PR, PrState::Open));
    fake
}

/// Runs one trait call the way the pipeline does: retried as an idempotent unit.
async fn call<T, F, Fut>(policy: &RetryConfig, what: &str, op: F) -> preview_core::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = preview_core::Result<T>>,
{
    retry(policy, what, Idempotency::Idempotent, op).await
}

/// `METHOD path` of every mutating request after the first `before` exchanges.
fn writes_since(fake: &FakeGitHub, before: usize) -> Vec<String> {
    fake.exchanges()
        .into_iter()
        .skip(before)
        .filter(|e| e.method != "GET" && e.method != "HEAD")
        .map(|e| format!("{} {}", e.method, e.path))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// R1 / R2 / R3: the life cycle under seeded faults

/// Deploy: read the PR and the report, announce "deploying", then "ready" (comment PATCHed,
/// a new status).
async fn deploy(gh: &GitHubSource, policy: &RetryConfig) -> preview_core::Result<()> {
    let pr = call(policy, "get pull request", || {
        gh.get_pull_request(pr_number(PR))
    })
    .await?;
    assert_eq!(pr.map(|p| p.state), Some(PrState::Open));
    let (env, deploying, ready) = (name(PR), report(ReportState::Deploying), report(ready()));
    call(policy, "get report", || gh.get_report(&env, pr_number(PR))).await?;
    call(policy, "publish deploying", || {
        gh.publish_report(&deploying)
    })
    .await?;
    call(policy, "publish ready", || gh.publish_report(&ready)).await?;
    Ok(())
}

/// Teardown, as the sweep sees it: PR 7 is no longer open, so its report says "torn down".
async fn teardown(gh: &GitHubSource, policy: &RetryConfig) -> preview_core::Result<()> {
    let open = call(policy, "list open pull requests", || {
        gh.list_open_pull_requests()
    })
    .await?;
    let open: Vec<u32> = open.iter().map(|p| p.number.get()).collect();
    assert_eq!(open, [OTHER_PR], "PR 7 was closed before teardown");
    let env = name(PR);
    let summary = call(policy, "get report", || gh.get_report(&env, pr_number(PR))).await?;
    let mut torn = report(ReportState::TornDown);
    torn.branch = None;
    torn.commit = summary.and_then(|s| s.commit);
    call(policy, "publish torn down", || gh.publish_report(&torn)).await?;
    Ok(())
}

/// The R2 predicate: exactly one sticky comment of ours, saying torn down; no deployment of the
/// environment whose latest status is not inactive; the environment deleted.
fn assert_nothing_left(fake: &FakeGitHub, seed: u64) {
    let env = "preview/pr-7";
    let ours: Vec<_> = fake
        .comments(PR)
        .into_iter()
        .filter(|c| c.author == LOGIN && c.body.contains("<!-- preview:env=pr-7-agents "))
        .collect();
    assert_eq!(ours.len(), 1, "seed {seed}: one sticky comment: {ours:#?}");
    assert!(
        ours[0].body.contains("state=torn_down"),
        "seed {seed}: {}",
        ours[0].body
    );
    let active: Vec<_> = fake
        .deployments()
        .into_iter()
        .filter(|d| d.environment == env)
        .filter(|d| d.statuses.last().map(|s| s.state.as_str()) != Some("inactive"))
        .collect();
    assert!(
        active.is_empty(),
        "seed {seed}: active deployments {active:#?}"
    );
    assert!(
        !fake.environments().iter().any(|e| e == env),
        "seed {seed}: environment left: {:?}",
        fake.environments()
    );
}

/// The retry policy for the life cycle: the pipeline's default (8 attempts of a unit, 120 s).
///
/// It converges because the client re-sends each idempotent request itself (reads, comment edits,
/// deletes) and hands only an ambiguous create back; before it did, a `publish_report` of 3–7
/// requests got through a unit attempt with probability 0.7^k, and 25 of 60 seeds gave up.
fn lifecycle_policy() -> RetryConfig {
    RetryConfig::default()
}

#[tokio::test(start_paused = true)]
async fn r1_r2_r3_life_cycle_converges_under_seeded_http_faults() {
    let policy = lifecycle_policy();
    // The fault-free run defines the expected states.
    let (want_deployed, want_torn) = {
        let fake = fake().await;
        let gh = fake.builder().build().unwrap();
        deploy(&gh, &policy).await.unwrap();
        let deployed = observe(&fake, PR);
        fake.set_pull_request(pull(PR, PrState::Closed));
        teardown(&gh, &policy).await.unwrap();
        assert_nothing_left(&fake, u64::MAX);
        (deployed, observe(&fake, PR))
    };
    assert_eq!(want_deployed.deployments.len(), 1);
    assert_eq!(
        want_deployed.deployments[0].2.len(),
        2,
        "in progress, success"
    );

    let seeds = cases(30, 200);
    let (mut injected, mut max_attempts) = (0, 0);
    let started = Instant::now();
    for seed in 0..seeds {
        let fake = fake().await;
        let gh = fake.builder().build().unwrap();
        let chaos = |salt: u64| {
            HttpChaos::new(seed.wrapping_mul(2).wrapping_add(salt), 0.3)
                .max_consecutive(7)
                .latency(0.1, Duration::from_millis(5))
        };
        fake.chaos(chaos(0));
        deploy(&gh, &policy)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: deploy failed: {e}"));
        fake.calm();
        assert_eq!(
            observe(&fake, PR),
            want_deployed,
            "seed {seed}: deployed state"
        );

        // R3: a second deploy with nothing changed writes nothing.
        let before = fake.exchanges().len();
        let ready = report(ready());
        let again = call(&policy, "publish ready", || gh.publish_report(&ready))
            .await
            .unwrap();
        assert_eq!(again, Outcome::Unchanged, "seed {seed}");
        assert_eq!(
            writes_since(&fake, before),
            [""; 0],
            "seed {seed}: R3 deploy"
        );

        fake.set_pull_request(pull(PR, PrState::Closed));
        fake.chaos(chaos(1));
        teardown(&gh, &policy)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: teardown failed: {e}"));
        fake.calm();
        assert_nothing_left(&fake, seed);
        assert_eq!(
            observe(&fake, PR),
            want_torn,
            "seed {seed}: torn-down state"
        );

        // R3: a second teardown writes nothing either.
        let before = fake.exchanges().len();
        teardown(&gh, &policy).await.unwrap();
        assert_eq!(
            writes_since(&fake, before),
            [""; 0],
            "seed {seed}: R3 teardown"
        );

        assert!(
            fake.max_attempts() <= 8,
            "seed {seed}: a request took {} attempts",
            fake.max_attempts()
        );
        injected += fake.injected_faults();
        max_attempts = max_attempts.max(fake.max_attempts());
        check_exchanges(&fake);
    }
    // The plan really faulted: about 0.3 of some 30 requests per seed.
    assert!(
        injected as u64 >= seeds * 3,
        "{injected} faults in {seeds} seeds"
    );
    assert!(max_attempts >= 2, "{max_attempts}");
    // Virtual time: back-off and Retry-After waits only.
    let per_seed = started.elapsed() / seeds as u32;
    assert!(per_seed < Duration::from_secs(20 * 60), "{per_seed:?}");
}

// ---------------------------------------------------------------------------------------------
// R4: silent success on every create

/// A create whose response is lost after GitHub committed it.
struct LostCreate {
    what: &'static str,
    /// The POST's path suffix.
    post: &'static str,
    /// A GET that finds what the POST made (the lookup by marker / sha and environment).
    lookup: &'static str,
    /// Whether the lost POST is the teardown's `inactive` status (else a deploy's create).
    teardown: bool,
}

const LOST_CREATES: [LostCreate; 4] = [
    LostCreate {
        what: "comment",
        post: "/repos/acme/app/issues/7/comments",
        lookup: "/repos/acme/app/issues/7/comments",
        teardown: false,
    },
    LostCreate {
        what: "deployment",
        post: "/repos/acme/app/deployments",
        lookup: "/repos/acme/app/deployments",
        teardown: false,
    },
    LostCreate {
        what: "in-progress status",
        post: "/statuses",
        lookup: "/statuses",
        teardown: false,
    },
    LostCreate {
        what: "inactive status",
        post: "/statuses",
        lookup: "/statuses",
        teardown: true,
    },
];

/// Statuses are creates too, and GitHub keeps every one. The client looks the latest status up
/// before posting, so a lost status is found, not posted again: we require exactly one status
/// per transition (not merely "the latest is right"), which also keeps the deployment's history
/// readable.
#[tokio::test(start_paused = true)]
async fn r4_a_lost_create_is_found_by_a_lookup_not_posted_again() {
    let policy = RetryConfig::default();
    for create in &LOST_CREATES {
        for status in [408, 502, 504] {
            let case = format!("{} answered {status} after commit", create.what);
            let fake = fake().await;
            let gh = fake.builder().build().unwrap();
            let deploying = report(ReportState::Deploying);
            let mut torn = report(ReportState::TornDown);
            torn.branch = None;
            if create.teardown {
                gh.publish_report(&deploying).await.unwrap();
            }
            let from = fake.exchanges().len();
            fake.fail_next_on("POST", create.post, status, true);
            let target = if create.teardown { &torn } else { &deploying };
            call(&policy, "publish report", || gh.publish_report(target))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));

            // Exactly one of each resource exists.
            let ours = fake
                .comments(PR)
                .into_iter()
                .filter(|c| c.author == LOGIN)
                .count();
            assert_eq!(ours, 1, "{case}: comments");
            let deployments = fake.deployments();
            assert_eq!(deployments.len(), 1, "{case}: deployments");
            let states: Vec<&str> = deployments[0]
                .statuses
                .iter()
                .map(|s| s.state.as_str())
                .collect();
            let want: &[&str] = if create.teardown {
                &["in_progress", "inactive"]
            } else {
                &["in_progress"]
            };
            assert_eq!(states, want, "{case}: statuses");

            // The log: the lost POST, then a lookup before any further POST of the same kind.
            let log: Vec<Exchange> = fake.exchanges().into_iter().skip(from).collect();
            let is_post = |e: &Exchange| e.method == "POST" && e.path.ends_with(create.post);
            let lost = log
                .iter()
                .position(|e| is_post(e) && e.status == status)
                .unwrap_or_else(|| panic!("{case}: the fault was not hit: {log:#?}"));
            let lookups_after = log[lost + 1..]
                .iter()
                .filter(|e| e.method == "GET" && e.path.ends_with(create.lookup))
                .count();
            assert!(lookups_after >= 1, "{case}: no lookup after the lost POST");
            for (j, e) in log.iter().enumerate().skip(lost + 1) {
                if is_post(e) {
                    let looked = log[lost + 1..j]
                        .iter()
                        .any(|e| e.method == "GET" && e.path.ends_with(create.lookup));
                    assert!(looked, "{case}: blind re-POST at {j}: {log:#?}");
                }
            }
            let posts = log.iter().filter(|e| is_post(e)).count();
            assert_eq!(
                posts, 1,
                "{case}: the create was found, so never sent again"
            );
            check_exchanges(&fake);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// R7 / R10: terminal errors fail at once; rate limits are waited out

/// A URL echoing the token, as a careless proxy or error page might.
fn echo_url() -> String {
    format!("https://api.github.com/repos/acme/app?access_token={TOKEN}")
}

/// GitHub's `basic-error`, with the token echoed in the fields we drop.
fn basic_error(message: &str) -> serde_json::Value {
    json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "url": echo_url(),
    })
}

/// (label, status, headers, body) of an injected error answer.
type Injected = (
    &'static str,
    u16,
    Vec<(&'static str, String)>,
    serde_json::Value,
);

fn terminal_cases() -> Vec<Injected> {
    let reset = (jiff::Timestamp::now().as_second() + 30).to_string();
    vec![
        ("400", 400, vec![], basic_error("Problems parsing JSON")),
        ("401", 401, vec![], basic_error("Bad credentials")),
        (
            "plain 403",
            403,
            vec![],
            basic_error("Resource not accessible by integration"),
        ),
        (
            // Quota left, a reset time, no retry-after, no rate-limit words: a refusal.
            "403 without rate-limit signals",
            403,
            vec![
                ("x-ratelimit-remaining", "4711".into()),
                ("x-ratelimit-reset", reset),
            ],
            basic_error("Must have admin rights to Repository."),
        ),
        (
            "422",
            422,
            vec![],
            json!({
                "message": "Validation Failed",
                "documentation_url": "https://docs.github.com/rest",
                "errors": [{"resource": "Deployment", "field": "ref", "code": "invalid", "value": TOKEN}],
            }),
        ),
    ]
}

#[tokio::test(start_paused = true)]
async fn r7_terminal_errors_are_sent_once_and_name_the_request_id() {
    for (label, status, headers, body) in terminal_cases() {
        for op in ["get pull request", "publish report"] {
            let case = format!("{label} on {op}");
            let fake = fake().await;
            // A configured identity: the first request is the operation's own.
            let gh = fake.builder().identity(LOGIN).build().unwrap();
            let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            fake.fail_next(status, &hs, body.clone());
            let start = Instant::now();
            let deploying = report(ReportState::Deploying);
            let err = match op {
                "get pull request" => call(&RetryConfig::default(), op, || {
                    gh.get_pull_request(pr_number(PR))
                })
                .await
                .map(|_| ()),
                _ => call(&RetryConfig::default(), op, || {
                    gh.publish_report(&deploying)
                })
                .await
                .map(|_| ()),
            }
            .expect_err(&case);
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{case}: {:?}",
                start.elapsed()
            );
            assert_eq!(fake.exchanges().len(), 1, "{case}: sent once: {err}");
            assert!(
                !matches!(
                    err,
                    Error::RateLimited { .. } | Error::RetriesExhausted { .. }
                ),
                "{case}: {err:?}"
            );
            let shown = err.to_string();
            assert!(shown.starts_with("github"), "{case}: {shown}");
            assert!(shown.contains("FAKE:0001"), "{case}: request id in {shown}");
            for text in [shown, format!("{err:#}"), format!("{err:?}")] {
                assert!(!text.contains(TOKEN), "{case}: token in {text}");
                assert!(!text.contains("access_token"), "{case}: echo in {text}");
            }
            check_exchanges(&fake);
        }
    }
}

/// R7 on the create itself: a terminal answer to the comment POST (after the lookups passed)
/// is not retried either, and the deployment work before it is not redone.
#[tokio::test(start_paused = true)]
async fn r7_a_terminal_answer_to_a_create_is_not_retried() {
    for status in [400, 401, 403, 422] {
        let fake = fake().await;
        let gh = fake.builder().identity(LOGIN).build().unwrap();
        fake.fail_next_on("POST", "/issues/7/comments", status, false);
        let deploying = report(ReportState::Deploying);
        let start = Instant::now();
        let err = call(&RetryConfig::default(), "publish report", || {
            gh.publish_report(&deploying)
        })
        .await
        .expect_err("terminal");
        assert!(start.elapsed() < Duration::from_secs(1), "{status}");
        let log = fake.exchanges();
        let posts = log
            .iter()
            .filter(|e| e.method == "POST" && e.path.ends_with("/comments"))
            .count();
        assert_eq!(posts, 1, "{status}: {err}");
        assert_eq!(log.last().unwrap().status, status, "nothing after it");
        let id = format!("FAKE:{:04}", log.len());
        assert!(err.to_string().contains(&id), "{status}: {err} lacks {id}");
        assert!(fake.comments(PR).is_empty());
        check_exchanges(&fake);
    }
}

/// The contrast to R7: a 403 that *is* a rate limit is retried after GitHub's wait.
#[tokio::test(start_paused = true)]
async fn r10_rate_limited_403s_are_retried_after_the_wait() {
    let reset = (jiff::Timestamp::now().as_second() + 30).to_string();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, serde_json::Value, u64);
    let cases: Vec<Case> = vec![
        (
            "primary: remaining 0 until reset",
            vec![
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", reset.as_str()),
            ],
            bodies::error("API rate limit exceeded for installation ID 1."),
            30,
        ),
        (
            "secondary, no retry-after: at least a minute",
            vec![],
            bodies::error(
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            ),
            60,
        ),
    ];
    for (label, headers, body, at_least) in cases {
        let fake = fake().await;
        let gh = fake.builder().build().unwrap();
        fake.fail_next(403, &headers, body);
        let start = Instant::now();
        let pr = call(&RetryConfig::default(), "get pull request", || {
            gh.get_pull_request(pr_number(PR))
        })
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(pr.is_some());
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(at_least) && waited <= Duration::from_secs(at_least + 2),
            "{label}: {waited:?}"
        );
        assert_eq!(fake.exchanges().len(), 2, "{label}");
        check_exchanges(&fake);
    }
}

// ---------------------------------------------------------------------------------------------
// R8: the back-off contract over HTTP

/// Retries `get_pull_request`, recording the virtual time of every attempt.
async fn attempts(
    gh: &GitHubSource,
    policy: &RetryConfig,
) -> (preview_core::Result<()>, Vec<Duration>) {
    let start = Instant::now();
    let times = std::sync::Mutex::new(Vec::new());
    let r = call(policy, "get pull request", || {
        times.lock().unwrap().push(start.elapsed());
        gh.get_pull_request(pr_number(PR))
    })
    .await
    .map(|_| ());
    (r, times.into_inner().unwrap())
}

fn past_date() -> String {
    let then = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&then)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn r8_retry_after_is_waited_out_as_seconds_dates_and_past_dates() {
    use preview_testkit::http_chaos::RetryAfter;
    let ms = Duration::from_millis;
    // (Retry-After, least wait, most wait). A past date is no hint: the first back-off,
    // 125–250 ms, applies.
    let cases = [
        (RetryAfter::Seconds(3).header_value(), ms(3000), ms(3000)),
        (RetryAfter::Date(5).header_value(), ms(5000), ms(7000)),
        (past_date(), ms(125), ms(250)),
    ];
    for (hint, least, most) in cases {
        let fake = fake().await;
        // The client's own re-send (default policy) waits out the hint: one call, two requests.
        let gh = fake.builder().build().unwrap();
        fake.fail_next(
            429,
            &[("retry-after", hint.as_str())],
            bodies::error("You have exceeded a secondary rate limit."),
        );
        let start = Instant::now();
        gh.get_pull_request(pr_number(PR))
            .await
            .unwrap_or_else(|e| panic!("{hint}: {e}"));
        let waited = start.elapsed();
        assert_eq!(fake.exchanges().len(), 2, "{hint}");
        assert!(
            waited >= least && waited <= most,
            "{hint}: waited {waited:?}"
        );
        check_exchanges(&fake);
    }
}

#[tokio::test(start_paused = true)]
async fn r8_without_a_hint_back_off_grows_within_jitter_and_the_cap() {
    let fake = fake().await;
    // Each request once, so every attempt (and its time) is visible to the retry loop here.
    let gh = fake.builder().retry(RetryConfig::none()).build().unwrap();
    for _ in 0..7 {
        fake.fail_next(502, &[], bodies::error("Bad Gateway"));
    }
    let policy = RetryConfig::default();
    let (r, at) = attempts(&gh, &policy).await;
    r.unwrap();
    assert_eq!(at.len(), 8);
    for (n, pair) in at.windows(2).enumerate() {
        let delay = pair[1] - pair[0];
        let ceiling = (policy.initial_backoff * 2u32.pow(n as u32)).min(policy.max_backoff);
        assert!(
            delay >= ceiling / 2 && delay <= ceiling,
            "retry {n}: {delay:?} outside [{:?}, {ceiling:?}]",
            ceiling / 2
        );
        assert!(delay <= policy.max_backoff);
    }
    check_exchanges(&fake);
}

#[tokio::test(start_paused = true)]
async fn r8_a_hint_beyond_the_budget_fails_fast_saying_how_long() {
    let fake = fake().await;
    let gh = fake.builder().build().unwrap();
    fake.fail_next(
        403,
        &[("retry-after", "3600")],
        bodies::error("You have exceeded a secondary rate limit."),
    );
    let (r, at) = attempts(&gh, &RetryConfig::default()).await;
    let err = r.unwrap_err();
    assert_eq!(at, [Duration::ZERO], "one attempt, no sleep");
    assert_eq!(fake.exchanges().len(), 1);
    assert!(
        matches!(err, Error::RetriesExhausted { would_wait: Some(w), .. } if w == Duration::from_secs(3600)),
        "{err:?}"
    );
    assert!(err.to_string().contains("would have waited 3600s"), "{err}");
    // The chain still names GitHub and its request id.
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(
        chain.contains("github") && chain.contains("FAKE:0001"),
        "{chain}"
    );
    check_exchanges(&fake);
}

// ---------------------------------------------------------------------------------------------
// I4: URL safety

/// The hostile strings of I4, named in the issue.
fn hostile_fixed() -> Vec<String> {
    vec![
        r#"zzz";echo${IFS}"hello";#"#.into(),
        "$(curl x|sh)".into(),
        "a/../../b".into(),
        "x?y=1#z".into(),
        "%2F%00".into(),
        "&a=b".into(),
        "with spaces and + plus".into(),
        "rtl\u{202E}gnp.exe".into(),
        "emoji 🚀 preview".into(),
        "a".repeat(250),
        "..".into(),
        "%2e%2e".into(),
        "a%2Fb".into(),
        "back\\slash".into(),
    ]
}

/// Seeded random strings over a hostile alphabet (the same seed, the same strings).
fn hostile_random(seed: u64, n: usize) -> Vec<String> {
    const ALPHABET: &[&str] = &[
        "/", "?", "#", "&", "=", "%", "+", ";", "\"", "'", "$", "(", ")", "{", "}", "\\", ".",
        "..", " ", "\u{202E}", "\u{200B}", "🚀", "é", "a", "Z", "0", "-", "_", "~", ":", "@", "!",
        "*", ",", "<", ">", "[", "]", "|", "^", "`", "%2F", "%00", "%", "\n", "\t",
    ];
    random_strings(seed, n, ALPHABET, 16)
}

/// The named strings, then `n` seeded random ones.
fn hostile(n: u64) -> Vec<String> {
    let mut all = hostile_fixed();
    all.extend(hostile_random(0x14, n as usize));
    all
}

/// The decoded path segments of a received request.
fn segments(e: &Exchange) -> Vec<String> {
    e.path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect()
}

/// The decoded query pairs of a received request.
fn query(e: &Exchange) -> Vec<(String, String)> {
    url::form_urlencoded::parse(e.query.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// owner/repo never reach a URL unvalidated: the builder rejects anything but GitHub's name
/// characters (and `.`/`..`), before any I/O; what it accepts arrives intact.
#[tokio::test(start_paused = true)]
async fn i4_hostile_repository_names_are_rejected_or_arrive_intact() {
    let fake = fake().await;
    let (mut rejected, mut accepted) = (0, 0);
    for h in hostile(cases(500, 5000)) {
        for (owner, repo) in [(h.as_str(), "app"), ("acme", h.as_str())] {
            let before = fake.exchanges().len();
            match fake.builder().repository(format!("{owner}/{repo}")).build() {
                Err(e) => {
                    rejected += 1;
                    assert!(e.is_config(), "{h:?}: {e}");
                    assert_eq!(fake.exchanges().len(), before, "{h:?}: no request");
                }
                Ok(gh) => {
                    accepted += 1;
                    gh.get_pull_request(pr_number(PR)).await.unwrap();
                    let ex = fake.exchanges();
                    assert_eq!(ex.len(), before + 1);
                    // The builder trims surrounding whitespace (a variable's trailing newline);
                    // what is left arrives as it is.
                    let full = format!("{owner}/{repo}");
                    let (owner, repo) = full.trim().split_once('/').unwrap();
                    assert_eq!(
                        segments(&ex[before]),
                        ["repos", owner, repo, "pulls", "7"],
                        "{h:?}"
                    );
                }
            }
        }
    }
    assert!(rejected > 0 && accepted > 0, "{rejected} {accepted}");
}

/// The environment name (from the configured template) goes into a path segment
/// (`environments/{name}`) and the `environment` query filter: it arrives as the same value,
/// under the same route, or the template is refused before any request.
#[tokio::test(start_paused = true)]
async fn i4_hostile_environment_names_round_trip_through_paths_and_queries() {
    let (mut rejected, mut accepted) = (0, 0);
    let fixed = hostile_fixed().len();
    for (i, h) in hostile(cases(100, 2000)).into_iter().enumerate() {
        let fake = FakeGitHub::start().await;
        let n = 100 + i as u32;
        let before = 0;
        let template = format!("{h}-{{pr}}");
        let gh = match fake
            .builder()
            .identity(LOGIN)
            .environment_template(&template)
            .build()
        {
            Err(e) => {
                rejected += 1;
                assert!(e.is_config(), "{h:?}: {e}");
                assert_eq!(fake.exchanges().len(), before, "{h:?}: no request");
                continue;
            }
            Ok(gh) => gh,
        };
        accepted += 1;
        fake.set_pull_request(pull(n, PrState::Open));
        let env = format!("{h}-{n}");
        let ours = |fake: &FakeGitHub| -> Vec<_> {
            fake.deployments()
                .into_iter()
                .filter(|d| d.environment == env)
                .collect()
        };
        gh.publish_report(&report_for(n, ReportState::Deploying))
            .await
            .unwrap_or_else(|e| panic!("{h:?}: {e}"));
        assert_eq!(ours(&fake).len(), 1, "{h:?}: created under its name");
        assert!(fake.environments().contains(&env), "{h:?}");
        let mut torn = report_for(n, ReportState::TornDown);
        torn.branch = None;
        gh.publish_report(&torn).await.unwrap();
        // The lookup by environment found the deployment (it was marked inactive, not missed),
        // and the environment was deleted by its name.
        let d = ours(&fake);
        assert_eq!(d.len(), 1, "{h:?}");
        assert_eq!(d[0].statuses.last().unwrap().state, "inactive", "{h:?}");
        assert!(
            !fake.environments().contains(&env),
            "{h:?}: deleted by name"
        );

        let mut env_paths = 0;
        for e in fake.exchanges().iter().skip(before) {
            let seg = segments(e);
            assert_eq!(seg[..3], ["repos", "acme", "app"], "{h:?}: {}", e.path);
            let route: Vec<&str> = seg[3..].iter().map(String::as_str).collect();
            let pr = n.to_string();
            match route[..] {
                ["environments", name] => {
                    env_paths += 1;
                    assert_eq!(name, env, "{h:?}: {}", e.path);
                }
                ["deployments"] if e.method == "GET" => {
                    let filter: Vec<String> = query(e)
                        .into_iter()
                        .filter(|(k, _)| k == "environment")
                        .map(|(_, v)| v)
                        .collect();
                    assert_eq!(filter, std::slice::from_ref(&env), "{h:?}: {:?}", e.query);
                }
                ["issues", p, "comments"] if p == pr => {}
                ["issues", "comments", _] | ["deployments"] | ["deployments", _, "statuses"] => {}
                ref other => panic!("{h:?}: unexpected route {other:?} ({})", e.path),
            }
        }
        assert_eq!(env_paths, 2, "{h:?}: GET then DELETE of the environment");
        // Bodies do not depend on the name's characters: validating the named cases suffices.
        if i < fixed {
            check_exchanges(&fake);
        }
    }
    assert!(rejected > 0 && accepted > 0, "{rejected} {accepted}");
}

/// Branch and commit text is never put in a URL: the branch only reaches the comment body
/// (inert), and a commit that is not a hex SHA makes no deployment request at all.
#[tokio::test(start_paused = true)]
async fn i4_branch_and_commit_text_never_reach_a_url() {
    for h in hostile_fixed() {
        let fake = FakeGitHub::start().await;
        let mut pr = pull(PR, PrState::Open);
        pr.head_branch = h.clone();
        fake.set_pull_request(pr);
        let gh = fake.builder().build().unwrap();
        let got = gh.get_pull_request(pr_number(PR)).await.unwrap().unwrap();
        assert_eq!(
            got.head_branch, h,
            "the branch survives the round trip as data"
        );
        let mut r = report(ReportState::Deploying);
        r.branch = Some(h.clone());
        r.commit = Some(h.clone());
        gh.publish_report(&r).await.unwrap();
        assert!(
            fake.deployments().is_empty(),
            "{h:?}: not a SHA, no deployment"
        );
        for e in fake.exchanges() {
            let url_text = format!("{} {:?}", segments(&e).join("/"), query(&e));
            assert!(!url_text.contains(&h), "{h:?} in {url_text}");
            assert!(!e.path.contains("deployments"), "{h:?}: {}", e.path);
        }
        let comment = &fake.comments(PR)[0].body;
        let marker = comment.lines().next().unwrap();
        assert!(!marker.contains("sha="), "{marker}");
        check_exchanges(&fake);
    }
}

/// A next-page link whose query carries a hostile environment name is followed as given: page
/// two asks for the same filter, and the one active deployment, on page two, is found.
#[tokio::test(start_paused = true)]
async fn i4_next_page_links_with_hostile_queries_are_followed_verbatim() {
    let mut tried = 0;
    for h in hostile_fixed() {
        let fake = fake().await;
        let Ok(gh) = fake
            .builder()
            .environment_template(format!("{h}-{{pr}}"))
            .build()
        else {
            continue;
        };
        tried += 1;
        let env = format!("{h}-7");
        // Newest first: the oldest, still active, lands on page two of 100 each.
        let active = fake.add_deployment(SHA, &env, Some("success"));
        for i in 0..100 {
            fake.add_deployment(&format!("{i:040x}"), &env, Some("inactive"));
        }
        let mut torn = report(ReportState::TornDown);
        torn.branch = None;
        gh.publish_report(&torn).await.unwrap();
        let lists: Vec<Exchange> = fake
            .exchanges()
            .into_iter()
            .filter(|e| e.method == "GET" && e.path == "/repos/acme/app/deployments")
            .collect();
        assert_eq!(lists.len(), 2, "{h:?}: two pages");
        let mut first = query(&lists[0]);
        first.push(("page".into(), "2".into()));
        assert_eq!(query(&lists[1]), first, "{h:?}: page two keeps the filter");
        let d = fake
            .deployments()
            .into_iter()
            .find(|d| d.id == active)
            .unwrap();
        assert_eq!(d.statuses.last().unwrap().state, "inactive", "{h:?}");
        check_exchanges(&fake);
    }
    assert!(tried >= 5, "{tried}");
}

// ---------------------------------------------------------------------------------------------
// S1 / I6: no secret in any body GitHub receives; untrusted text stays inert

// Why a Report cannot hold a secret, by construction:
// - `Report` has no `SecretString` field: `name` is a validated `PreviewName`, `pr` a number,
//   `branch`/`commit` come from GitHub (public), `run_url` from the CI run.
// - `ReportState::Ready` links are rendered from `report.links` templates in the config's
//   `Public` context, which refuses every secret reference when the config is loaded
//   (`preview-core/src/config.rs`, `Ctx::Public`).
// - `ReportState::Failed.error` is the `Display` of a `preview_core::Error`, which never carries
//   a secret (errors are built from truncated response bodies with echoing fields dropped, never
//   from request headers; S10 in core).
// - Every secret in the pipeline is a `SecretString`: no `Display`, a redacted `Debug`, and its
//   text only through `expose_secret()`, which this crate never calls (its one use, the auth
//   header, is `preview_core::http::auth_header`, sensitive). The test below checks that.
// What remains is a careless *caller* putting a credential into a URL (userinfo), which the
// renderer drops; the test feeds sentinels exactly there.

const LINK_USER: &str = "S1linkUSERsentinel7f3a";
const LINK_PASS: &str = "S1linkPASSsentinel91c2";
const RUN_PASS: &str = "S1runPASSsentinel04be";

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A sentinel and the forms a careless encoder could turn it into.
fn forms(s: &str) -> Vec<String> {
    let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
    // Sentinels are alphanumeric: percent-encoding and JSON escaping leave them as they are.
    vec![s.to_string(), hex, base64(s.as_bytes())]
}

#[test]
fn s1_this_crate_never_exposes_a_secret_itself() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut files = vec![std::path::PathBuf::from(src)];
    let mut seen = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") {
            seen += 1;
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(!text.contains("expose_secret"), "{}", p.display());
        }
    }
    assert!(seen >= 8, "{seen} source files");
}

#[tokio::test(start_paused = true)]
async fn s1_sentinels_in_report_urls_never_reach_a_github_body() {
    let fake = fake().await;
    let gh = fake.builder().build().unwrap();
    let run_url = format!("https://ci:{RUN_PASS}@github.com/acme/app/actions/runs/99");
    let ready = ReportState::Ready {
        links: vec![Link {
            label: "ui".into(),
            url: format!("https://{LINK_USER}:{LINK_PASS}@pr-7-ui.preview.example.com/"),
        }],
    };
    let failed = ReportState::Failed {
        phase: "apps".into(),
        error: "vercel: API error (HTTP 500)".into(),
    };
    let mut torn = report(ReportState::TornDown);
    torn.branch = None;
    for state in [ReportState::Deploying, ready, failed] {
        let mut r = report(state);
        r.run_url = Some(run_url.clone());
        gh.publish_report(&r).await.unwrap();
    }
    torn.run_url = Some(run_url);
    gh.publish_report(&torn).await.unwrap();

    let mut sent = String::new();
    for e in fake.exchanges() {
        if let Some(body) = &e.request {
            sent.push_str(&body.to_string());
            sent.push('\n');
        }
    }
    // What is at rest in the fake: comments and deployment statuses.
    let at_rest = format!("{:?} {:?}", fake.comments(PR), fake.deployments());
    // The URLs themselves did arrive (the scan looks where they would be), without userinfo.
    assert!(sent.contains("pr-7-ui.preview.example.com"), "{sent}");
    assert!(sent.contains("actions/runs/99"), "{sent}");
    assert!(
        at_rest.contains("https://pr-7-ui.preview.example.com/"),
        "{at_rest}"
    );
    for secret in [LINK_USER, LINK_PASS, RUN_PASS, TOKEN] {
        for form in forms(secret) {
            assert!(!sent.contains(&form), "{secret} as {form} sent: {sent}");
            assert!(!at_rest.contains(&form), "{secret} as {form} stored");
        }
    }
    check_exchanges(&fake);
}

#[tokio::test(start_paused = true)]
async fn i6_hostile_branch_text_is_inert_and_only_our_marked_comment_is_ours() {
    let benign_lines = {
        let fake = fake().await;
        let gh = fake.builder().build().unwrap();
        gh.publish_report(&report(ReportState::Deploying))
            .await
            .unwrap();
        fake.comments(PR)[0].body.lines().count()
    };
    for h in hostile_fixed().into_iter().chain([
        "\n::add-mask::x\n::error title=pwn::owned\n::stop-commands::y".to_string(),
        "<!-- preview:env=pr-7-agents state=ready --> `code` <img src=x onerror=alert(1)> @admin [x](javascript:alert(1))".to_string(),
    ]) {
        let fake = fake().await;
        let gh = fake.builder().build().unwrap();
        // Someone else pastes our exact comment (marker included), saying "ready".
        let forged = providers_github::render_comment(&report(ready()));
        let mallory = fake.add_comment(PR, "mallory", &forged);
        assert_eq!(
            gh.get_report(&name(PR), pr_number(PR)).await.unwrap(),
            None,
            "a marker by another author is not our report"
        );
        let mut r = report(ReportState::Deploying);
        r.branch = Some(h.clone());
        assert_eq!(gh.publish_report(&r).await.unwrap(), Outcome::Created);
        let comments = fake.comments(PR);
        assert_eq!(comments.len(), 2);
        assert_eq!(comments[0].id, mallory);
        assert_eq!(comments[0].body, forged, "the forged comment is left alone");
        let ours = &comments[1];
        assert_eq!(ours.author, LOGIN);
        // The branch is one inert line: no extra lines, no markup, no hidden characters.
        assert_eq!(ours.body.lines().count(), benign_lines, "{h:?}:\n{}", ours.body);
        let row = ours
            .body
            .lines()
            .find(|l| l.starts_with("| **Branch** |"))
            .unwrap();
        let shown = row
            .trim_start_matches("| **Branch** | <code>")
            .trim_end_matches("</code> |");
        let punctuation_left = shown
            .replace(['&', '#', ';'], "")
            .chars()
            .filter(|c| c.is_ascii_punctuation())
            .collect::<String>();
        assert_eq!(punctuation_left, "", "{h:?}: {row}");
        assert!(!shown.contains(['\u{202E}', '\u{200B}']), "{h:?}: {row}");
        assert!(!ours.body.lines().any(|l| l.starts_with("::")), "{h:?}");
        // Our report reads back; the forged one still does not count.
        let summary = gh
            .get_report(&name(PR), pr_number(PR))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(summary.kind, preview_core::ReportKind::Deploying, "{h:?}");
        check_exchanges(&fake);
    }
}

/// R4 with a dropped response: GitHub commits the create, but its answer never arrives (the
/// client's request timeout fires first). Real clock: reqwest's timeout needs it; the fake holds
/// only that one answer back, and the back-off is shortened.
#[tokio::test]
async fn r4_a_create_whose_answer_never_arrives_is_found_not_resent() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let policy = RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(5));
    for create in LOST_CREATES.iter().filter(|c| !c.teardown) {
        let fake = fake().await;
        let held = Arc::new(AtomicBool::new(false));
        let post = create.post;
        let once = held.clone();
        fake.set_latency(move |req| {
            let hit = req.method.as_str() == "POST" && req.url.path().ends_with(post);
            if hit && !once.swap(true, Ordering::SeqCst) {
                Duration::from_secs(2)
            } else {
                Duration::ZERO
            }
        });
        let gh = fake
            .builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let deploying = report(ReportState::Deploying);
        let started = std::time::Instant::now();
        call(&policy, "publish report", || gh.publish_report(&deploying))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", create.what));
        assert!(
            held.load(Ordering::SeqCst),
            "{}: the answer was held",
            create.what
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{}: the client gave up on the held answer and moved on",
            create.what
        );
        let mine = fake
            .comments(PR)
            .into_iter()
            .filter(|c| c.author == LOGIN)
            .count();
        let deployments = fake.deployments();
        assert_eq!(mine, 1, "{}", create.what);
        assert_eq!(deployments.len(), 1, "{}", create.what);
        assert_eq!(deployments[0].statuses.len(), 1, "{}", create.what);
        // The fake logs each request when it arrives: one POST of the kind, then a lookup.
        let log = fake.exchanges();
        let is_post = |e: &Exchange| e.method == "POST" && e.path.ends_with(post);
        assert_eq!(
            log.iter().filter(|e| is_post(e)).count(),
            1,
            "{}",
            create.what
        );
        let at = log.iter().position(is_post).unwrap();
        assert!(
            log[at + 1..]
                .iter()
                .any(|e| e.method == "GET" && e.path.ends_with(create.lookup)),
            "{}: no lookup after the dropped POST",
            create.what
        );
        check_exchanges(&fake);
    }
}

/// R1's attempt bound made falsifiable. In the convergence runs `max_consecutive(7)` means no
/// request ever *needs* more than 8 attempts; this shows 8 is also the most the client ever
/// *sends*: a read that fails every time goes out 8 times, and giving up (`RetriesExhausted`)
/// is not retried again by the pipeline's own loop, so attempts do not multiply.
#[tokio::test(start_paused = true)]
async fn r1_a_read_that_always_fails_is_sent_eight_times_not_more() {
    let fake = fake().await;
    let gh = fake.builder().build().unwrap();
    fake.chaos(HttpChaos::new(5, 1.0));
    let err = call(&RetryConfig::default(), "get pull request", || {
        gh.get_pull_request(pr_number(PR))
    })
    .await
    .expect_err("every request fails");
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 8, .. }),
        "{err:?}"
    );
    assert_eq!(fake.exchanges().len(), 8, "{:?}", fake.exchanges());
}
