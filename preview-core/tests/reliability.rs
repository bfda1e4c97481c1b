//! Reliability suites of issue 7 over the in-memory hosts, numbered as in
//! the README's reliability table: R1 (convergence under seeded faults), R2 (teardown leaves
//! nothing), R3 (idempotent re-run), R4 (silent success on every create), R5 (crash-resume after
//! and during every mutating call), R8 (back-off contract), R21 (concurrent deploys), R22 (sweep
//! property test) and I1 (naming property test).
//!
//! Everything runs on a paused tokio clock, so back-off and injected latency cost no wall time.
//! Default case counts keep the file fast; `PREVIEW_RELIABILITY_FULL=1` runs the full counts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use preview_core::config::{Config, SweepDef};
use preview_core::pipeline::{Candidate, DeployStatus, PrLookup, SweepAction, decide_sweep};
use preview_core::render::Inputs;
use preview_core::secrecy::SecretString;
use preview_core::testing::{
    Chaos, InMemoryApps, InMemoryDatabases, InMemoryHttp, InMemorySource, RecordingHooks, Tripwire,
};
use preview_core::{
    DerivedSecrets, Error, Hosts, Naming, Outcome, PrNumber, PrState, Preview, ReportState,
    RetryConfig, SecretSource,
};
use preview_testkit::cases;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);
const REPO: &str = "inkeep/agents";
const SHA1: &str = "1111111111111111111111111111111111111111";
const BRANCH: &str = "feature/login";
const NAME: &str = "pr-42-agents";

#[derive(Clone)]
struct World {
    db: InMemoryDatabases,
    apps: InMemoryApps,
    source: InMemorySource,
    hooks: RecordingHooks,
}

fn env_lookup(k: &str) -> Option<String> {
    match k {
        "VERCEL_API_PROJECT_ID" => Some("prj_api".into()),
        "VERCEL_UI_PROJECT_ID" => Some("prj_ui".into()),
        "ANTHROPIC_API_KEY" => Some("anthropic-key-value".into()),
        "OPENAI_API_KEY" => Some("openai-key-value".into()),
        _ => None,
    }
}

fn world() -> World {
    World {
        db: InMemoryDatabases::new(),
        apps: InMemoryApps::new(),
        source: InMemorySource::new(REPO),
        hooks: RecordingHooks::new(),
    }
}

fn stable() -> Arc<dyn SecretSource> {
    Arc::new(DerivedSecrets::new(SecretString::from("m".repeat(48))).unwrap())
}

/// The pipeline as the CLI builds it: the default retry policy.
fn preview(w: &World) -> Preview {
    Preview::new(
        Config::load(EXAMPLE).unwrap(),
        Hosts {
            database: Arc::new(w.db.clone()),
            apps: Arc::new(w.apps.clone()),
            source: Arc::new(w.source.clone()),
        },
    )
    .hooks(Arc::new(w.hooks.clone()))
    .http(Arc::new(InMemoryHttp::new()))
    .secrets(stable())
    .env(Arc::new(env_lookup))
}

/// Seeded faults with p = 0.3 on every host, plus latency on a fifth of the calls. R1's fault
/// model: a call fails at most 7 times in a row, so its 8th attempt gets through (without a cap,
/// 0.3^8 per call makes some seed fail any finite retry count).
fn chaos(w: &World, seed: u64) {
    let c = |k: u64| {
        Chaos::new(seed.wrapping_mul(3).wrapping_add(k), 0.3)
            .latency(0.2, Duration::from_millis(1500))
            .max_consecutive(7)
    };
    w.db.chaos(c(0));
    w.apps.chaos(c(1));
    w.source.chaos(c(2));
}

fn calm(w: &World) {
    w.db.calm();
    w.apps.calm();
    w.source.calm();
}

fn injected(w: &World) -> usize {
    w.db.injected_faults() + w.apps.injected_faults() + w.source.injected_faults()
}

fn max_attempts(w: &World) -> u32 {
    w.db.max_attempts()
        .max(w.apps.max_attempts())
        .max(w.source.max_attempts())
}

fn mutating(w: &World) -> usize {
    w.db.mutating_calls() + w.apps.mutating_calls() + w.source.mutating_calls()
}

fn clear(w: &World) {
    w.db.clear_calls();
    w.apps.clear_calls();
    w.source.clear_calls();
}

fn tripwire(w: &World, t: Option<Tripwire>) {
    w.db.tripwire(t.clone());
    w.apps.tripwire(t.clone());
    w.source.tripwire(t);
}

/// The observable state of every host, IDs and timestamps left out.
#[derive(Debug, PartialEq)]
struct State {
    databases: Vec<String>,
    vars: Vec<preview_core::testing::StoredVar>,
    domains: Vec<String>,
    deployments: Vec<(String, String, String, String)>,
    report: Option<preview_core::Report>,
}

fn state(w: &World) -> State {
    State {
        databases: w.db.names(),
        vars: w.apps.vars(),
        domains: w.apps.domains(),
        // Deployment order is creation order, which concurrency may change; IDs are left out.
        deployments: {
            let mut d = w.apps.deployments();
            d.sort();
            d
        },
        // Which run published the report (its start, its timings) is no part of the state.
        report: w.source.report(NAME).map(|r| preview_core::Report {
            started_at: None,
            phases: vec![],
            lifetime: None,
            ..r
        }),
    }
}

/// R2's predicate: nothing carrying the environment's marker is left on any host.
fn assert_nothing_left(w: &World, what: &str) {
    assert!(w.db.names().is_empty(), "{what}: databases left");
    let owned: Vec<_> = w
        .apps
        .vars()
        .into_iter()
        .filter(|v| v.owner.is_some())
        .collect();
    assert!(owned.is_empty(), "{what}: vars left: {owned:?}");
    assert!(w.apps.domains().is_empty(), "{what}: domains left");
    assert!(
        w.apps.deployments().iter().all(|d| d.3 != "BUILDING"),
        "{what}: builds left running"
    );
    assert_eq!(w.db.open_tunnels(), 0, "{what}: tunnels left open");
}

/// The state a fault-free deploy of PR 42 ends in.
async fn reference() -> State {
    let w = world();
    let pr = w.source.open_pr(42, BRANCH, SHA1);
    let r = preview(&w).deploy(pr).await.unwrap();
    assert_eq!(r.status, DeployStatus::Ready);
    state(&w)
}

// ---------------------------------------------------------------------------------------------
// R1, R2

#[tokio::test(start_paused = true)]
async fn r1_deploy_converges_under_seeded_faults_and_r2_teardown_leaves_nothing() {
    let want = reference().await;
    let seeds = cases(200, 2000);
    let mut faults = 0;
    for seed in 0..seeds {
        let w = world();
        let pr = w.source.open_pr(42, BRANCH, SHA1);
        chaos(&w, seed);
        let p = preview(&w);
        let start = tokio::time::Instant::now();
        let r = p
            .deploy(pr)
            .await
            .unwrap_or_else(|e| panic!("R1 seed {seed}: deploy failed: {e:#}"));
        assert_eq!(r.status, DeployStatus::Ready, "R1 seed {seed}");
        assert!(
            start.elapsed() <= Duration::from_secs(20 * 60),
            "R1 seed {seed}: took {:?} of virtual time",
            start.elapsed()
        );
        assert!(
            max_attempts(&w) <= 8,
            "R1 seed {seed}: a call took {} attempts",
            max_attempts(&w)
        );
        faults += injected(&w);
        calm(&w);
        assert_eq!(state(&w), want, "R1 seed {seed}: state differs");

        // R2: teardown under the same kind of schedule (continuing the seed's stream).
        chaos(&w, seed + 1_000_000);
        w.db.reset_attempts();
        w.apps.reset_attempts();
        w.source.reset_attempts();
        p.teardown(pr)
            .await
            .unwrap_or_else(|e| panic!("R2 seed {seed}: teardown failed: {e:#}"));
        assert!(max_attempts(&w) <= 8, "R2 seed {seed}");
        calm(&w);
        assert_nothing_left(&w, &format!("R2 seed {seed}"));
        assert_eq!(
            w.source.report(NAME).map(|r| r.state),
            Some(ReportState::TornDown),
            "R2 seed {seed}: the one report says torn down"
        );
    }
    // The schedule did inject faults (≈ 0.3 per call), so the suite cannot pass vacuously.
    assert!(faults as u64 >= seeds * 2, "only {faults} faults injected");
}

// ---------------------------------------------------------------------------------------------
// R3

#[tokio::test(start_paused = true)]
async fn r3_a_rerun_with_nothing_changed_makes_no_mutating_call_even_under_faults() {
    for seed in 0..cases(20, 200) {
        let w = world();
        let pr = w.source.open_pr(42, BRANCH, SHA1);
        let p = preview(&w);
        p.deploy(pr).await.unwrap();
        clear(&w);
        chaos(&w, seed);
        let again = p.deploy(pr).await.unwrap();
        assert_eq!(again.status, DeployStatus::Ready);
        assert_eq!(mutating(&w), 0, "R3 seed {seed}: re-deploy mutated");
        assert_eq!(again.mutated(), 0, "R3 seed {seed}: {:?}", again.changes);
        calm(&w);
        p.teardown(pr).await.unwrap();
        clear(&w);
        chaos(&w, seed + 7);
        let t = p.teardown(pr).await.unwrap();
        assert_eq!(mutating(&w), 0, "R3 seed {seed}: second teardown mutated");
        assert!(
            t.changes.iter().all(|c| c.outcome == Outcome::AlreadyGone),
            "R3 seed {seed}: {:?}",
            t.changes
        );
    }
}

// ---------------------------------------------------------------------------------------------
// R4

fn lost(status: u16) -> Error {
    Error::Api {
        provider: "memory",
        status,
        message: "response lost".into(),
        request_id: None,
    }
}

#[tokio::test(start_paused = true)]
async fn r4_silent_success_on_every_create_leaves_exactly_one_of_each() {
    let want = reference().await;
    for status in [408, 502] {
        let w = world();
        let pr = w.source.open_pr(42, BRANCH, SHA1);
        w.db.fail_after_commit("apply_database", lost(status));
        for _ in 0..2 {
            w.apps.fail_after_commit("apply_app", lost(status));
            w.apps.fail_after_commit("deploy_app", lost(status));
            w.source.fail_after_commit("publish_report", lost(status));
        }
        let r = preview(&w).deploy(pr).await.unwrap();
        assert_eq!(r.status, DeployStatus::Ready);
        assert_eq!(state(&w), want, "R4 {status}");
        // Exactly one deployment per app, one database, one sticky report with two revisions
        // (deploying, ready), as without faults.
        assert_eq!(w.apps.deployments().len(), 2, "R4 {status}");
        assert_eq!(w.db.names(), [NAME]);
        assert_eq!(w.source.report_history().len(), 2, "R4 {status}");
        // Every create was retried once and answered "unchanged", never created twice.
        let created = r
            .changes
            .iter()
            .filter(|c| c.outcome == Outcome::Created)
            .count();
        assert_eq!(created, 0, "R4 {status}: retries report unchanged");
    }
}

// ---------------------------------------------------------------------------------------------
// R5

#[tokio::test(start_paused = true)]
async fn r5_crash_after_and_during_every_mutating_call_resumes_and_tears_down() {
    let want = reference().await;
    let k = {
        let w = world();
        let pr = w.source.open_pr(42, BRANCH, SHA1);
        preview(&w).deploy(pr).await.unwrap();
        mutating(&w)
    };
    assert!(k >= 6, "a deploy makes at least 6 mutating calls, saw {k}");
    let mut cases = 0;
    for i in 1..=k {
        for mid in [false, true] {
            let what = format!(
                "R5 crash {} call {i}/{k}",
                if mid { "during" } else { "after" }
            );
            let wire = || {
                if mid {
                    Tripwire::mid_call(i)
                } else {
                    Tripwire::after(i)
                }
            };
            // Crash, then re-deploy: converges to the fault-free state.
            let w = world();
            let pr = w.source.open_pr(42, BRANCH, SHA1);
            let t = wire();
            tripwire(&w, Some(t.clone()));
            let crashed = preview(&w).deploy(pr).await;
            assert!(t.tripped(), "{what}: never tripped");
            if i < k || mid {
                assert!(crashed.is_err(), "{what}: a crashed deploy cannot succeed");
            }
            tripwire(&w, None);
            let r = preview(&w)
                .deploy(pr)
                .await
                .unwrap_or_else(|e| panic!("{what}: re-deploy failed: {e:#}"));
            assert_eq!(r.status, DeployStatus::Ready, "{what}");
            assert_eq!(state(&w), want, "{what}: re-deploy did not converge");

            // Crash, then teardown: nothing left.
            let w = world();
            let pr = w.source.open_pr(42, BRANCH, SHA1);
            tripwire(&w, Some(wire()));
            let _ = preview(&w).deploy(pr).await;
            tripwire(&w, None);
            preview(&w)
                .teardown(pr)
                .await
                .unwrap_or_else(|e| panic!("{what}: teardown failed: {e:#}"));
            assert_nothing_left(&w, &what);
            cases += 1;
        }
    }
    assert_eq!(cases, k * 2);
}

// ---------------------------------------------------------------------------------------------
// R8

#[tokio::test]
async fn r8_backoff_never_undercuts_the_hint_nor_exceeds_the_cap() {
    let cfg = RetryConfig::default();
    let mut rng = 0x5eed_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..cases(20_000, 200_000) {
        let retry = (next() % 16) as u32;
        let hint = match next() % 3 {
            0 => None,
            1 => Some(Duration::from_millis(next() % 60_000)),
            _ => Some(Duration::from_secs(next() % 400)),
        };
        let d = cfg.delay(retry, hint);
        if let Some(h) = hint {
            assert!(d >= h, "retry {retry}: {d:?} below the hint {h:?}");
        }
        let cap = hint.map_or(cfg.max_backoff, |h| h.max(cfg.max_backoff));
        assert!(d <= cap, "retry {retry} hint {hint:?}: {d:?} above the cap");
        assert!(
            hint.is_some() || d >= Duration::from_millis(125).min(cfg.max_backoff / 2),
            "no collapse to zero: {d:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn r8_a_hint_beyond_the_budget_fails_deploy_fast_naming_the_wait() {
    let w = world();
    let pr = w.source.open_pr(42, BRANCH, SHA1);
    w.db.fail_next(
        "apply_database",
        Error::RateLimited {
            provider: "memory",
            retry_after: Some(Duration::from_secs(3600)),
            request_id: None,
        },
    );
    let start = tokio::time::Instant::now();
    let err = preview(&w).deploy(pr).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "slept {:?}",
        start.elapsed()
    );
    let text = format!("{err:#}");
    assert!(text.contains("would have waited 3600s"), "{text}");
    assert_eq!(
        w.db.calls()
            .iter()
            .filter(|c| c.op == "apply_database")
            .count(),
        1,
        "no second attempt"
    );
}

// ---------------------------------------------------------------------------------------------
// R21

#[tokio::test(start_paused = true)]
async fn r21_two_concurrent_deploys_of_one_pr_end_valid_without_duplicates() {
    let want = reference().await;
    for seed in 0..cases(30, 300) {
        let w = world();
        let pr = w.source.open_pr(42, BRANCH, SHA1);
        // Latency only: both runs interleave at every call.
        for (i, c) in [0u64, 1, 2].into_iter().enumerate() {
            let chaos = Chaos::new(seed * 3 + c, 0.0).latency(1.0, Duration::from_millis(400));
            match i {
                0 => w.db.chaos(chaos),
                1 => w.apps.chaos(chaos),
                _ => w.source.chaos(chaos),
            }
        }
        let (a, b) = (preview(&w), preview(&w));
        let (ra, rb) = futures::join!(a.deploy(pr), b.deploy(pr));
        let (ra, rb) = (
            ra.unwrap_or_else(|e| panic!("R21 seed {seed}: {e:#}")),
            rb.unwrap_or_else(|e| panic!("R21 seed {seed}: {e:#}")),
        );
        calm(&w);
        assert_eq!(state(&w), want, "R21 seed {seed}");
        // At most one run reports "created" per resource.
        let mut created = BTreeMap::<(String, String), usize>::new();
        for c in ra.changes.iter().chain(&rb.changes) {
            if c.outcome == Outcome::Created {
                *created.entry((c.kind.clone(), c.id.clone())).or_default() += 1;
            }
        }
        assert!(
            created.values().all(|n| *n == 1),
            "R21 seed {seed}: created twice: {created:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// R22

/// xorshift64*: the suites' own tiny generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Whether deleting is ever allowed (the safety property, written from the spec, not the code).
fn deletion_allowed(lookup: Option<&PrLookup>, age: Option<i64>, policy: &SweepDef) -> bool {
    let grace = policy.grace_period.as_secs() as i64;
    match lookup {
        Some(PrLookup::State(PrState::Closed | PrState::Merged)) => age.is_none_or(|a| a >= grace),
        Some(PrLookup::Missing) => policy.delete_missing && age.is_some_and(|a| a >= grace),
        _ => false,
    }
}

#[test]
fn r22_sweep_decisions_never_delete_wrongly_over_generated_inventories() {
    let naming = Naming::new("pr", "agents").unwrap();
    let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut deletes = 0;
    let mut keeps = 0;
    for case in 0..cases(10_000, 100_000) {
        let policy = SweepDef {
            grace_period: Duration::from_secs(rng.below(3) * 3600),
            delete_missing: rng.below(2) == 0,
        };
        let n = 1 + rng.below(8);
        let mut candidates = Vec::new();
        let mut lookups = BTreeMap::new();
        let mut ages = BTreeMap::new();
        for _ in 0..n {
            let pr = PrNumber::new(1 + rng.below(2_147_483_647)).unwrap();
            let age = match rng.below(4) {
                0 => None,
                1 => Some(rng.below(3600) as i64),
                _ => Some(rng.below(30 * 86_400) as i64),
            };
            candidates.push(Candidate {
                name: naming.name(pr),
                created_at: age.map(|a| Timestamp::from_second(now.as_second() - a).unwrap()),
                resources: vec![],
            });
            ages.insert(pr, age);
            let lookup = match rng.below(7) {
                0 => None,
                1 => Some(PrLookup::State(PrState::Open)),
                2 => Some(PrLookup::State(PrState::Closed)),
                3 => Some(PrLookup::State(PrState::Merged)),
                4 => Some(PrLookup::Missing),
                5 => Some(PrLookup::Error("HTTP 502".into())),
                _ => Some(PrLookup::Error("rate limited".into())),
            };
            if let Some(l) = lookup {
                lookups.insert(pr, l);
            }
        }
        let decisions = decide_sweep(&candidates, &lookups, &policy, now);
        assert_eq!(decisions.len(), candidates.len());
        for (c, d) in candidates.iter().zip(&decisions) {
            assert_eq!(d.name, c.name);
            let pr = c.name.pr();
            let allowed = deletion_allowed(lookups.get(&pr), ages[&pr], &policy);
            if d.action == SweepAction::Delete {
                assert!(
                    allowed,
                    "case {case}: wrong deletion of {} ({:?}, age {:?}, {policy:?}): {}",
                    c.name,
                    lookups.get(&pr),
                    ages[&pr],
                    d.reason
                );
                deletes += 1;
            } else {
                // Nothing that is allowed and clearly due is kept (closed/merged and old).
                let due = matches!(
                    lookups.get(&pr),
                    Some(PrLookup::State(PrState::Closed | PrState::Merged))
                ) && allowed;
                assert!(!due, "case {case}: {} kept: {}", c.name, d.reason);
                keeps += 1;
            }
            assert!(!d.reason.is_empty());
        }
    }
    assert!(deletes > 1000 && keeps > 1000, "{deletes} / {keeps}");
}

#[tokio::test(start_paused = true)]
async fn r22_sweep_over_generated_worlds_deletes_only_what_it_may_and_dry_run_mutates_nothing() {
    let config = Config::load(EXAMPLE).unwrap();
    let policy = config.sweep.clone();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let now = Timestamp::now();
    for case in 0..cases(60, 600) {
        let w = world();
        let p = preview(&w).clock(Arc::new(move || now));
        // Foreign resources without our marker on the same projects.
        w.apps
            .add_foreign_var("prj_api", "main", "DATABASE_URL", "production");
        w.apps.add_foreign_domain("api.inkeep.com", "prj_api");
        let mut expected: BTreeMap<u32, (PrState, bool, i64)> = BTreeMap::new();
        for n in 1..=(1 + rng.below(5) as u32) {
            let pr = w.source.open_pr(n, &format!("b{n}"), SHA1);
            p.deploy(pr).await.unwrap();
            let age = rng.below(3 * 3600) as i64;
            w.db.set_created_at(
                &config.name(pr).to_string(),
                Timestamp::from_second(now.as_second() - age).unwrap(),
            );
            let state = match rng.below(4) {
                0 => PrState::Open,
                1 => PrState::Closed,
                2 => PrState::Merged,
                _ => PrState::Open,
            };
            let missing = rng.below(5) == 0;
            w.source.set_state(pr, state);
            if missing {
                w.source.remove_pr(pr);
            }
            expected.insert(n, (state, missing, age));
        }
        // Lookup errors and other faults on a third of the source calls, no retries.
        let p = p.retry_config(RetryConfig::none());
        w.source.chaos(Chaos::new(case, 0.3));
        clear(&w);
        let dry = p.sweep(true).await.unwrap();
        assert_eq!(mutating(&w), 0, "R22 case {case}: dry run mutated");
        assert!(dry.removed.is_empty());
        let real = match p.sweep(false).await {
            Ok(r) => r,
            Err(e) => panic!("R22 case {case}: {e:#}"),
        };
        w.source.calm();
        for name in &real.removed {
            let n = name.pr().get();
            let (state, missing, age) = expected[&n];
            let lookup = if missing {
                PrLookup::Missing
            } else {
                PrLookup::State(state)
            };
            assert!(
                deletion_allowed(Some(&lookup), Some(age), &policy),
                "R22 case {case}: wrongly removed {name} ({lookup:?}, age {age}s)"
            );
        }
        let removed: BTreeSet<u32> = real.removed.iter().map(|n| n.pr().get()).collect();
        for n in expected.keys().filter(|n| !removed.contains(n)) {
            let name = config.name(PrNumber::new(u64::from(*n)).unwrap());
            let failed = real.failures.iter().any(|f| f.contains(name.as_str()));
            if !failed {
                assert!(
                    w.db.names().contains(&name.to_string()),
                    "R22 case {case}: {name} vanished without being reported"
                );
            }
        }
        // Foreign resources are never touched.
        assert!(
            w.apps.vars().iter().any(|v| v.owner.is_none()),
            "R22 case {case}: foreign var removed"
        );
        assert!(
            w.apps.domains().contains(&"api.inkeep.com".to_string()),
            "R22 case {case}: foreign domain removed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// I1

fn valid_label(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && !(b.len() >= 4 && &b[2..4] == b"--")
}

const HOSTILE: &[&str] = &[
    "zzz\";echo${IFS}\"hello\";#",
    "$(curl x|sh)",
    "`id`",
    "a\u{202e}gnp.exe",
    "🦀/feature-🚀",
    "main",
    "-leading-dash",
    "UPPER/Case",
    "x\n::add-mask::y",
    "../../etc/passwd",
    "%2e%2e%2f",
    "",
];

#[test]
fn i1_every_derived_name_is_a_dns_label_and_never_depends_on_the_branch() {
    let config = Config::load(EXAMPLE).unwrap();
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let long = "a".repeat(255);
    let mut hostile: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    hostile.push(long);
    let mut seen = BTreeSet::new();
    let count = cases(2_000, 100_000);
    for i in 0..count {
        let n = match i {
            0 => 1,
            1 => 2_147_483_647,
            _ => 1 + rng.below(2_147_483_647),
        };
        let pr = PrNumber::new(n).unwrap();
        let name = config.name(pr);
        assert!(valid_label(name.as_str()), "{n}: {name}");
        assert_eq!(config.naming.parse(name.as_str()).map(|p| p.pr()), Some(pr));
        seen.insert(name.to_string());
        let refs = preview_core::render::app_refs(&config, &name, &env_lookup).unwrap();
        for r in &refs {
            let d = r.domain.as_deref().unwrap();
            assert!(d.len() <= 253, "{d}");
            for label in d.split('.') {
                assert!(valid_label(label), "{n}: label {label:?} of {d}");
            }
        }
        // The branch never changes a name: render with two hostile branches and compare.
        if i < 200 {
            let secrets =
                || preview_core::render::secrets(&config, &name, stable().as_ref(), &env_lookup);
            let render = |branch: &str| {
                preview_core::render::render_all(
                    &config,
                    &name,
                    &Inputs {
                        repo: Some(REPO.into()),
                        branch: Some(branch.into()),
                        sha: Some(SHA1.into()),
                    },
                    secrets().unwrap(),
                    &env_lookup,
                )
                .unwrap()
            };
            let a = render(&hostile[i as usize % hostile.len()]);
            let b = render(&hostile[(i as usize + 5) % hostile.len()]);
            assert_eq!(a.name, b.name);
            assert_eq!(a.database.public_host, b.database.public_host);
            let targets = |r: &preview_core::render::Rendered| {
                r.apps
                    .iter()
                    .map(|s| (s.target.project.clone(), s.target.domain.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(targets(&a), targets(&b));
            assert!(
                a.database.public_host.split('.').all(valid_label),
                "{}",
                a.database.public_host
            );
        }
    }
    assert_eq!(
        seen.len() as u64,
        count - dupes(count),
        "names are injective"
    );
}

/// Random PR numbers may repeat; count how often the generator drew a number twice.
fn dupes(count: u64) -> u64 {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut nums = BTreeSet::new();
    let mut d = 0;
    for i in 0..count {
        let n = match i {
            0 => 1,
            1 => 2_147_483_647,
            _ => 1 + rng.below(2_147_483_647),
        };
        if !nums.insert(n) {
            d += 1;
        }
    }
    d
}

// ---------------------------------------------------------------------------------------------
// R7

#[tokio::test(start_paused = true)]
async fn r7_terminal_errors_fail_on_the_first_attempt_naming_provider_and_request_id() {
    let rid = || Some("req-7f3a".to_string());
    let terminal: Vec<(&str, Error)> = vec![
        (
            "400",
            Error::Api {
                provider: "memory",
                status: 400,
                message: "bad request".into(),
                request_id: rid(),
            },
        ),
        (
            "401",
            Error::Unauthorized {
                provider: "memory",
                status: 401,
                message: "bad token".into(),
                request_id: rid(),
            },
        ),
        (
            "plain 403",
            Error::Unauthorized {
                provider: "memory",
                status: 403,
                message: "forbidden".into(),
                request_id: rid(),
            },
        ),
        (
            "422",
            Error::Api {
                provider: "memory",
                status: 422,
                message: "name taken".into(),
                request_id: rid(),
            },
        ),
        (
            "lease held",
            Error::Conflict {
                provider: "memory",
                message: "lease currently held by someone@else".into(),
                request_id: rid(),
            },
        ),
    ];
    for (what, err) in terminal {
        let w = world();
        let pr = w.source.open_pr(42, BRANCH, SHA1);
        w.db.fail_next("apply_database", err);
        let start = tokio::time::Instant::now();
        let e = preview(&w).deploy(pr).await.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1), "R7 {what}");
        assert_eq!(w.db.max_attempts(), 1, "R7 {what}: retried");
        let text = format!("{e:#}");
        assert!(
            text.contains("memory") && text.contains("req-7f3a"),
            "R7 {what}: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// R6

#[tokio::test(start_paused = true)]
async fn r6_drift_is_repaired_by_recreating_exactly_what_disappeared() {
    let want = reference().await;
    // (what disappears, the resources the next deploy must change: kind and id)
    type Drift = fn(&World) -> bool;
    type Expected = Vec<(&'static str, &'static str)>;
    let cases: Vec<(&str, Drift, Expected)> = vec![
        (
            "database",
            |w| w.db.remove_database(NAME),
            vec![("database", NAME)],
        ),
        (
            "env var",
            |w| w.apps.remove_var("prj_api", BRANCH, "NODE_ENV"),
            // An env var reaches the app only with a new deployment of that app.
            vec![("env_var", "prj_api/NODE_ENV"), ("deployment", "")],
        ),
        (
            "domain",
            |w| w.apps.remove_domain("pr-42-ui.preview.inkeep.com"),
            vec![("domain", "pr-42-ui.preview.inkeep.com")],
        ),
    ];
    for (what, drift, expected) in cases {
        let w = world();
        let pr = w.source.open_pr(42, BRANCH, SHA1);
        let p = preview(&w);
        p.deploy(pr).await.unwrap();
        assert!(drift(&w), "R6 {what}: nothing was removed");
        clear(&w);
        let r = p.deploy(pr).await.unwrap();
        let changed: Vec<(String, String)> = r
            .changes
            .iter()
            .filter(|c| c.outcome != Outcome::Unchanged)
            .map(|c| (c.kind.clone(), c.id.clone()))
            .collect();
        assert_eq!(changed.len(), expected.len(), "R6 {what}: {changed:?}");
        for (kind, id) in &expected {
            assert!(
                changed
                    .iter()
                    .any(|(k, i)| k == kind && (id.is_empty() || i == id)),
                "R6 {what}: {kind} {id} not repaired: {changed:?}"
            );
        }
        let mut got = state(&w);
        let mut want_now = State {
            deployments: vec![],
            ..state(&w)
        };
        want_now.databases.clone_from(&want.databases);
        want_now.vars.clone_from(&want.vars);
        want_now.domains.clone_from(&want.domains);
        want_now.report.clone_from(&want.report);
        got.deployments = vec![];
        assert_eq!(got, want_now, "R6 {what}: state not repaired");
    }
}

// ---------------------------------------------------------------------------------------------
// R22: one failing removal does not stop the others

#[tokio::test(start_paused = true)]
async fn r22_one_failing_removal_does_not_stop_the_others() {
    let w = world();
    let now = Timestamp::now() + jiff::SignedDuration::from_hours(2);
    let p = preview(&w).clock(Arc::new(move || now));
    for n in 1..=4 {
        let pr = w.source.open_pr(n, &format!("b{n}"), SHA1);
        p.deploy(pr).await.unwrap();
        w.source.set_state(pr, PrState::Closed);
    }
    w.apps.fail_next(
        "delete_app",
        Error::Unauthorized {
            provider: "memory",
            status: 403,
            message: "forbidden".into(),
            request_id: None,
        },
    );
    let r = p.sweep(false).await.unwrap();
    assert_eq!(r.removed.len(), 3, "{:?} / {:?}", r.removed, r.failures);
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    // The failed one is still findable, so the next sweep finishes it.
    let again = p.sweep(false).await.unwrap();
    assert_eq!(again.removed.len(), 1, "{:?}", again.failures);
    assert!(w.db.names().is_empty());
    assert!(w.apps.vars().iter().all(|v| v.owner.is_none()));
}

// ---------------------------------------------------------------------------------------------
// R5 for teardown: a crash after or during each of its mutating calls; the next teardown finishes

#[tokio::test(start_paused = true)]
async fn r5_a_teardown_crashed_at_every_mutating_call_is_finished_by_the_next() {
    let k = {
        let w = world();
        let pr = w.source.open_pr(42, BRANCH, SHA1);
        let p = preview(&w);
        p.deploy(pr).await.unwrap();
        clear(&w);
        p.teardown(pr).await.unwrap();
        mutating(&w)
    };
    assert!(
        k >= 3,
        "a teardown makes at least 3 mutating calls, saw {k}"
    );
    let mut cases = 0;
    for i in 1..=k {
        for mid in [false, true] {
            let what = format!(
                "R5 teardown crash {} call {i}/{k}",
                if mid { "during" } else { "after" }
            );
            let w = world();
            let pr = w.source.open_pr(42, BRANCH, SHA1);
            let p = preview(&w);
            p.deploy(pr).await.unwrap();
            let t = if mid {
                Tripwire::mid_call(i)
            } else {
                Tripwire::after(i)
            };
            tripwire(&w, Some(t.clone()));
            let crashed = p.teardown(pr).await;
            assert!(t.tripped(), "{what}: never tripped");
            if i < k || mid {
                assert!(
                    crashed.is_err(),
                    "{what}: a crashed teardown cannot succeed"
                );
            }
            tripwire(&w, None);
            p.teardown(pr)
                .await
                .unwrap_or_else(|e| panic!("{what}: the next teardown failed: {e:#}"));
            assert_nothing_left(&w, &what);
            assert_eq!(
                w.source.report(NAME).map(|r| r.state),
                Some(ReportState::TornDown),
                "{what}"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, k * 2);
}
