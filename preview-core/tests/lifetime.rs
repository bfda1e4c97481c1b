//! A preview's lifetime over the in-memory hosts: the unchanged re-deploy that skips tunnels and
//! hooks, data-loss detection (a restart behind our back, a stop), a suspend that keeps the data,
//! and the cost estimate on the report.

use std::sync::Arc;
use std::time::Duration;

use preview_core::config::Config;
use preview_core::secrecy::SecretString;
use preview_core::testing::{
    InMemoryApps, InMemoryDatabases, InMemoryHttp, InMemorySource, RecordingHooks,
};
use preview_core::{
    DatabaseHost, DerivedSecrets, Hosts, PrNumber, Preview, ReportState, RetryConfig,
};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);
const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";
const NAME: &str = "pr-42-agents";

struct World {
    db: InMemoryDatabases,
    apps: InMemoryApps,
    source: InMemorySource,
    hooks: RecordingHooks,
    http: InMemoryHttp,
}

fn env_lookup(k: &str) -> Option<String> {
    match k {
        "VERCEL_API_PROJECT_ID" => Some("prj_api".into()),
        "VERCEL_UI_PROJECT_ID" => Some("prj_ui".into()),
        "ANTHROPIC_API_KEY" | "OPENAI_API_KEY" => Some("k".into()),
        _ => None,
    }
}

fn world() -> World {
    World {
        db: InMemoryDatabases::new(),
        apps: InMemoryApps::new(),
        source: InMemorySource::new("inkeep/agents"),
        hooks: RecordingHooks::new(),
        http: InMemoryHttp::new(),
    }
}

fn preview(w: &World, config: Config) -> Preview {
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
    .secrets(Arc::new(
        DerivedSecrets::new(SecretString::from("m".repeat(48))).unwrap(),
    ))
    .env(Arc::new(env_lookup))
    .retry_config(
        RetryConfig::default().backoff(Duration::from_millis(10), Duration::from_millis(100)),
    )
}

fn flagship() -> Config {
    Config::load(EXAMPLE).unwrap()
}

/// What one deploy did: hook runs, tunnel sets opened, seed requests sent.
fn counts(w: &World) -> (usize, usize, usize) {
    let tunnels =
        w.db.calls()
            .iter()
            .filter(|c| c.op == "open_tunnels")
            .count();
    let seeds = w
        .http
        .sent()
        .iter()
        .filter(|c| c.name != "readiness")
        .count();
    (w.hooks.runs().len(), tunnels, seeds)
}

async fn deployed(w: &World) -> (Preview, PrNumber) {
    let pr = w.source.open_pr(42, "feature/login", SHA1);
    let p = preview(w, flagship());
    p.deploy(pr).await.unwrap();
    (p, pr)
}

#[tokio::test]
async fn an_unchanged_redeploy_opens_no_tunnel_and_runs_no_hook() {
    let w = world();
    let (p, pr) = deployed(&w).await;
    let first = counts(&w);
    assert_eq!(first.0, 2, "both hooks ran on the first deploy");
    assert_eq!(first.1, 1);
    assert!(first.2 > 0, "seeded");
    w.db.clear_calls();
    p.deploy(pr).await.unwrap();
    assert_eq!(counts(&w).0, first.0, "no hook ran again");
    assert_eq!(counts(&w).1, 0, "no tunnel opened");
    assert_eq!(counts(&w).2, first.2, "no seed again");
    assert_eq!(w.db.mutating_calls(), 0);
}

#[tokio::test]
async fn a_new_commit_runs_the_hooks_again_without_touching_the_database() {
    let w = world();
    let (p, pr) = deployed(&w).await;
    let first = counts(&w);
    w.source.update_pr(pr, |p| p.head_sha = SHA2.into());
    w.db.clear_calls();
    p.deploy(pr).await.unwrap();
    assert_eq!(
        counts(&w).0,
        first.0 + 2,
        "migrations run for the new commit"
    );
    assert_eq!(
        w.db.mutating_calls(),
        0,
        "the hooks' mark does not name the commit"
    );
}

#[tokio::test]
async fn a_restart_behind_our_back_reruns_the_hooks_and_the_seed() {
    let w = world();
    let (p, pr) = deployed(&w).await;
    let first = counts(&w);
    w.db.restart(NAME);
    let r = p.deploy(pr).await.unwrap();
    let after = counts(&w);
    assert_eq!(after.0, first.0 + 2, "hooks ran again");
    assert_eq!(after.2, first.2 * 2, "seeded again");
    assert!(matches!(
        w.source.report(NAME).unwrap().state,
        ReportState::Ready { .. }
    ));
    assert_eq!(r.mutated(), 0, "no resource was created or changed");
    // And once re-seeded, the next deploy is unchanged again.
    w.db.clear_calls();
    p.deploy(pr).await.unwrap();
    assert_eq!(counts(&w).0, after.0);
    assert_eq!(w.db.mutating_calls(), 0);
}

#[tokio::test]
async fn waking_after_a_stop_reseeds_and_after_a_suspend_does_not() {
    for (suspend, reruns) in [(false, true), (true, false)] {
        let w = world();
        let (p, pr) = deployed(&w).await;
        let name = p.config().name(pr);
        let first = counts(&w);
        w.db.sleep_database(&name, suspend).await.unwrap();
        assert_eq!(
            w.db.state(NAME),
            Some(if suspend { "suspended" } else { "stopped" })
        );
        p.deploy(pr).await.unwrap();
        assert_eq!(w.db.state(NAME), Some("started"));
        let after = counts(&w);
        if reruns {
            assert_eq!(after.0, first.0 + 2, "stopped: hooks again");
            assert_eq!(after.2, first.2 * 2, "stopped: seed again");
        } else {
            assert_eq!(after.0, first.0, "suspended: no hook");
            assert_eq!(after.1, first.1, "suspended: no tunnel");
            assert_eq!(after.2, first.2, "suspended: no seed");
        }
        assert!(matches!(
            w.source.report(NAME).unwrap().state,
            ReportState::Ready { .. }
        ));
        assert_eq!(w.db.names(), vec![NAME.to_string()], "one database");
    }
}

#[tokio::test]
async fn the_ready_report_carries_the_flagships_cost_estimate() {
    let w = world();
    deployed(&w).await;
    let report = w.source.report(NAME).unwrap();
    let lifetime = report.lifetime.expect("a lifetime note");
    let cost = lifetime.cost.expect("a cost estimate");
    // By hand from the documented table: (4 × 0.69 + 4 × 5.00 + 2.00) / 730 × 24 = $0.814.
    assert_eq!(cost.per_day_running_cents, 81);
    assert_eq!(cost.per_day_sleeping_cents, 7);
    assert_eq!(cost.prices_dated, "2024-04");
    assert!(cost.line().contains("(estimate, prices of 2024-04)"));
    assert_eq!(lifetime.expires_at, None, "no ttl in the flagship");
}

mod decisions {
    use std::collections::BTreeMap;

    use jiff::Timestamp;
    use preview_core::config::Config;
    use preview_core::pipeline::{LifetimeAction, Observed, PrLookup, decide_lifetime};
    use preview_core::{Database, Marks, Naming, PrNumber, PrState};

    const NOW: i64 = 1_800_000_000;

    fn config(extra: &str) -> Config {
        let text = std::fs::read_to_string(super::EXAMPLE).unwrap() + extra;
        let base = std::path::Path::new(super::EXAMPLE).parent().unwrap();
        Config::parse(&text, "preview.toml", base).unwrap()
    }

    fn env(n: u32, idle_secs: Option<i64>, state: &str) -> Observed {
        let name = Naming::new("pr", "agents")
            .unwrap()
            .name(PrNumber::new(n.into()).unwrap());
        Observed {
            database: Some(Database {
                name: name.clone(),
                host: format!("{name}.fly.dev"),
                state: state.into(),
                fingerprint: None,
                created_at: None,
                boot: None,
                marks: Marks {
                    active_at: idle_secs.map(|s| Timestamp::from_second(NOW - s).unwrap()),
                    ..Marks::default()
                },
            }),
            name,
        }
    }

    fn pr(n: u32) -> PrNumber {
        PrNumber::new(n.into()).unwrap()
    }

    const POLICY: &str =
        "\n[lifetime]\nttl = \"168h\"\nsleep_after = \"24h\"\nkeep_label = \"keep\"\n";
    const HOUR: i64 = 3600;

    #[test]
    fn each_rule_acts_only_on_positive_evidence() {
        let c = config(POLICY);
        let envs = vec![
            env(1, Some(HOUR), "started"),       // active inside the TTL
            env(2, Some(200 * HOUR), "started"), // expired
            env(3, Some(200 * HOUR), "started"), // expired, but kept
            env(4, Some(30 * HOUR), "started"),  // idle: sleep
            env(5, Some(30 * HOUR), "stopped"),  // idle, already asleep
            env(6, Some(300 * HOUR), "started"), // lookup failed
            env(7, None, "started"),             // no activity recorded
            env(8, Some(HOUR), "started"),       // closed
            env(9, Some(HOUR), "started"),       // merged
        ];
        let mut lookups = BTreeMap::new();
        for n in 1..=7 {
            lookups.insert(pr(n), PrLookup::State(PrState::Open));
        }
        lookups.insert(pr(6), PrLookup::Error("github: 502".into()));
        lookups.insert(pr(8), PrLookup::State(PrState::Closed));
        lookups.insert(pr(9), PrLookup::State(PrState::Merged));
        let labels = BTreeMap::from([(pr(3), vec!["keep".to_string()])]);
        let d = decide_lifetime(
            &c,
            &envs,
            &lookups,
            &labels,
            Timestamp::from_second(NOW).unwrap(),
        );
        let actions: Vec<_> = d.iter().map(|d| d.action).collect();
        assert_eq!(
            actions,
            vec![
                LifetimeAction::Keep,
                LifetimeAction::Expire,
                LifetimeAction::Keep,
                LifetimeAction::Sleep { suspend: false }, // 4 GB: Fly cannot suspend it
                LifetimeAction::Keep,
                LifetimeAction::Keep,
                LifetimeAction::Keep,
                LifetimeAction::TearDown,
                LifetimeAction::TearDown,
            ],
            "{d:#?}"
        );
        assert!(
            d[2].evidence.contains("the label `keep` keeps it"),
            "{}",
            d[2].evidence
        );
        assert!(d[5].evidence.contains("lookup failed"), "{}", d[5].evidence);
    }

    #[test]
    fn eviction_picks_the_least_recently_active() {
        let c = config("\n[lifetime]\nmax_environments = 3\nkeep_label = \"keep\"\n");
        let envs = vec![
            env(1, Some(5 * HOUR), "started"),
            env(2, Some(50 * HOUR), "started"), // the idlest, but kept
            env(3, Some(9 * HOUR), "started"),  // the idlest not kept
            env(4, Some(HOUR), "started"),
            env(5, None, "started"), // unknown activity: never evicted
        ];
        let lookups = (1..=5)
            .map(|n| (pr(n), PrLookup::State(PrState::Open)))
            .collect();
        let labels = BTreeMap::from([(pr(2), vec!["keep".to_string()])]);
        let d = decide_lifetime(
            &c,
            &envs,
            &lookups,
            &labels,
            Timestamp::from_second(NOW).unwrap(),
        );
        let evicted: Vec<u32> = d
            .iter()
            .filter(|d| d.action == LifetimeAction::Evict)
            .map(|d| d.name.pr().get())
            .collect();
        // Five left, three allowed: the two least recently active that may go (3, then 1),
        // not the kept one (2) nor the one without a recorded activity (5), nor the freshest (4).
        assert_eq!(evicted, vec![1, 3], "{d:#?}");
        assert!(d[2].evidence.contains("max_environments = 3"));
    }
}

/// The reconcile pass (`sweep` with a `[lifetime]` policy) over the in-memory hosts: each
/// decision carried out, `--dry-run` changing nothing, a lookup error acting on nothing.
mod reconcile {
    use jiff::{SignedDuration, Timestamp};
    use preview_core::pipeline::{LifetimeAction, SweepReport};
    use preview_core::{Error, Marks, PrState, PreviewName};

    use super::*;

    const POLICY: &str =
        "\n[lifetime]\nttl = \"168h\"\nsleep_after = \"24h\"\nkeep_label = \"keep\"\n";

    fn config(extra: &str) -> Config {
        let text = std::fs::read_to_string(EXAMPLE).unwrap() + extra;
        let base = std::path::Path::new(EXAMPLE).parent().unwrap();
        Config::parse(&text, "preview.toml", base).unwrap()
    }

    fn name(n: u32) -> String {
        format!("pr-{n}-agents")
    }

    /// Deploys PR `n` (created two days ago) last active `idle_hours` ago.
    async fn deploy(w: &World, n: u32, idle_hours: i64) -> PrNumber {
        let pr = w.source.open_pr(n, &format!("feature/{n}"), SHA1);
        preview(w, flagship()).deploy(pr).await.unwrap();
        let now = Timestamp::now();
        let db = w.db.clone();
        let pn: PreviewName = preview(w, flagship()).config().name(pr);
        let marks = db.get_database(&pn).await.unwrap().unwrap().marks;
        w.db.set_marks(
            &name(n),
            Marks {
                active_at: Some(now - SignedDuration::from_hours(idle_hours)),
                ..marks
            },
        );
        w.db.set_created_at(&name(n), now - SignedDuration::from_hours(48));
        pr
    }

    fn states(w: &World, ns: &[u32]) -> Vec<Option<&'static str>> {
        ns.iter().map(|n| w.db.state(&name(*n))).collect()
    }

    fn action(r: &SweepReport, n: u32) -> (LifetimeAction, String) {
        let d = r
            .lifetime
            .iter()
            .find(|d| d.name.as_str() == name(n))
            .unwrap_or_else(|| panic!("no decision for {n}: {r:#?}"));
        (d.action, d.evidence.clone())
    }

    #[tokio::test]
    async fn each_decision_is_carried_out_and_a_dry_run_changes_nothing() {
        use LifetimeAction as A;
        let w = world();
        deploy(&w, 1, 1).await; // active inside the TTL
        deploy(&w, 2, 200).await; // expired
        let kept = deploy(&w, 3, 200).await; // expired, but labelled
        w.source.update_pr(kept, |p| p.labels = vec!["keep".into()]);
        deploy(&w, 4, 30).await; // idle: sleeps
        let closed = deploy(&w, 5, 1).await;
        w.source.set_state(closed, PrState::Closed);
        deploy(&w, 6, 1).await; // restarted behind our back
        w.db.restart(&name(6));
        let p = preview(&w, config(POLICY));
        let all = [1, 2, 3, 4, 5, 6];
        let reports = w.source.report_history().len();
        let before = w.source.calls().len();

        let dry = p.sweep(true).await.unwrap();
        assert_eq!(w.db.names().len(), 6, "{dry:#?}");
        assert_eq!(states(&w, &all), vec![Some("started"); 6]);
        assert_eq!(
            w.source.report_history().len(),
            reports,
            "a dry run publishes nothing"
        );
        assert!(dry.acted.is_empty());
        assert_eq!(action(&dry, 1).0, A::Keep);
        assert_eq!(action(&dry, 2).0, A::Expire);
        assert!(action(&dry, 3).1.contains("the label `keep` keeps it"));
        assert_eq!(action(&dry, 4).0, A::Sleep { suspend: false });
        assert_eq!(action(&dry, 6).0, A::MarkReset);
        // Open PRs came from one paged read; only the closed one was looked up on its own.
        let singles = w.source.calls()[before..]
            .iter()
            .filter(|c| c.op == "get_pull_request")
            .count();
        assert_eq!(singles, 1, "{:?}", w.source.calls());

        let r = p.sweep(false).await.unwrap();
        assert!(r.failures.is_empty(), "{r:#?}");
        assert_eq!(w.db.names(), vec![name(1), name(3), name(4), name(6)]);
        assert_eq!(w.db.state(&name(4)), Some("stopped"));
        let removed = w.source.report(&name(2)).unwrap();
        let ReportState::Removed { reason } = removed.state else {
            panic!("{removed:?}")
        };
        assert!(
            reason.contains("expired") && reason.contains("keep"),
            "{reason}"
        );
        assert!(matches!(
            w.source.report(&name(4)).unwrap().state,
            ReportState::Sleeping {
                suspended: false,
                ..
            }
        ));
        assert!(matches!(
            w.source.report(&name(6)).unwrap().state,
            ReportState::Reset
        ));
        assert!(
            w.db.get_database(&p.config().name(PrNumber::new(4).unwrap()))
                .await
                .unwrap()
                .unwrap()
                .marks
                .asleep_since
                .is_some()
        );

        // Again: converged, nothing more is written.
        let (reports, calls) = (w.source.report_history().len(), w.db.calls().len());
        let again = p.sweep(false).await.unwrap();
        assert!(again.failures.is_empty(), "{again:#?}");
        assert_eq!(w.source.report_history().len(), reports, "{again:#?}");
        let mutating = w.db.calls()[calls..]
            .iter()
            .filter(|c| c.op != "list_lifetimes" && c.op != "list_databases")
            .map(|c| c.op.clone())
            .collect::<Vec<_>>();
        assert!(mutating.is_empty(), "{mutating:?}");
        assert_eq!(action(&again, 4).0, A::Keep);
    }

    #[tokio::test]
    async fn a_lookup_error_never_deletes_or_sleeps_anything() {
        for failing in ["list_open_pull_requests", "list_lifetimes"] {
            let w = world();
            deploy(&w, 2, 200).await; // expired
            deploy(&w, 4, 30).await; // idle
            let p = preview(&w, config(POLICY));
            let fault = || Error::failed("list", "injected");
            if failing == "list_open_pull_requests" {
                w.source.fail_next(failing, fault());
            } else {
                w.db.fail_next(failing, fault());
            }
            let r = p.sweep(false).await.unwrap();
            assert_eq!(w.db.names(), vec![name(2), name(4)], "{failing}: {r:#?}");
            assert_eq!(states(&w, &[2, 4]), vec![Some("started"); 2], "{failing}");
            assert!(r.acted.is_empty(), "{failing}: {r:#?}");
            assert!(
                r.lifetime
                    .iter()
                    .all(|d| d.action == LifetimeAction::Keep && d.evidence.contains("failed")),
                "{failing}: {r:#?}"
            );
        }
    }

    #[tokio::test]
    async fn over_the_cap_the_least_recently_active_is_evicted_with_its_reason() {
        let w = world();
        deploy(&w, 1, 5).await;
        deploy(&w, 2, 9).await; // the idlest
        deploy(&w, 3, 1).await;
        let p = preview(&w, config("\n[lifetime]\nmax_environments = 2\n"));
        let r = p.sweep(false).await.unwrap();
        assert!(r.failures.is_empty(), "{r:#?}");
        assert_eq!(w.db.names(), vec![name(1), name(3)], "{r:#?}");
        let ReportState::Removed { reason } = w.source.report(&name(2)).unwrap().state else {
            panic!()
        };
        assert!(
            reason.contains("evicted") && reason.contains("max_environments = 2"),
            "{reason}"
        );
    }
}

/// `lifetime.max_environments` at deploy.
mod cap {
    use jiff::{SignedDuration, Timestamp};
    use preview_core::{Marks, PreviewName};

    use super::*;

    fn config(extra: &str) -> Config {
        let text = std::fs::read_to_string(EXAMPLE).unwrap() + extra;
        let base = std::path::Path::new(EXAMPLE).parent().unwrap();
        Config::parse(&text, "preview.toml", base).unwrap()
    }

    /// Deploys PR `n` under `c`, then ages its activity by `idle_hours`.
    async fn deploy(w: &World, c: &Config, n: u32, idle_hours: i64) -> PrNumber {
        let pr = w.source.open_pr(n, &format!("feature/{n}"), SHA1);
        preview(w, c.clone()).deploy(pr).await.unwrap();
        let name: PreviewName = c.name(pr);
        let marks = w.db.get_database(&name).await.unwrap().unwrap().marks;
        let at = Timestamp::now() - SignedDuration::from_hours(idle_hours);
        w.db.set_marks(
            name.as_str(),
            Marks {
                active_at: Some(at),
                ..marks
            },
        );
        pr
    }

    #[tokio::test]
    async fn a_new_preview_over_the_cap_evicts_the_least_recently_active() {
        let w = world();
        let c = config("\n[lifetime]\nmax_environments = 2\nkeep_label = \"keep\"\n");
        let kept = deploy(&w, &c, 1, 50).await; // the idlest, but labelled
        w.source.update_pr(kept, |p| p.labels = vec!["keep".into()]);
        deploy(&w, &c, 2, 9).await;
        // Re-deploying one that exists does not count as new.
        preview(&w, c.clone()).deploy(kept).await.unwrap();
        assert_eq!(w.db.names(), vec!["pr-1-agents", "pr-2-agents"]);

        deploy(&w, &c, 3, 0).await;
        assert_eq!(w.db.names(), vec!["pr-1-agents", "pr-3-agents"]);
        let ReportState::Removed { reason } = w.source.report("pr-2-agents").unwrap().state else {
            panic!("{:?}", w.source.report("pr-2-agents"))
        };
        assert!(
            reason.contains("make room for #3")
                && reason.contains("max_environments = 2")
                && reason.contains("preview deploy --pr 2"),
            "{reason}"
        );
        assert!(matches!(
            w.source.report("pr-3-agents").unwrap().state,
            ReportState::Ready { .. }
        ));
    }

    #[tokio::test]
    async fn refuse_names_the_limit_and_the_idlest_and_creates_nothing() {
        let w = world();
        let c = config("\n[lifetime]\nmax_environments = 2\nwhen_full = \"refuse\"\n");
        deploy(&w, &c, 1, 50).await;
        deploy(&w, &c, 2, 9).await;
        let pr = w.source.open_pr(3, "feature/3", SHA1);
        let err = preview(&w, c.clone()).deploy(pr).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("max_environments = 2"), "{text}");
        assert!(
            text.contains("pr-1-agents") && text.contains("pr-2-agents"),
            "{text}"
        );
        assert!(
            text.find("pr-1-agents") < text.find("pr-2-agents"),
            "idlest first: {text}"
        );
        assert_eq!(w.db.names(), vec!["pr-1-agents", "pr-2-agents"]);
        assert!(
            w.apps
                .calls()
                .iter()
                .all(|c| !c.target.contains("pr-3") || !c.mutating)
        );
        let ReportState::Failed { error, .. } = w.source.report("pr-3-agents").unwrap().state
        else {
            panic!()
        };
        assert!(
            error.contains("max_environments = 2") && error.contains("pr-1-agents"),
            "{error}"
        );
    }
}

/// The lifetime commands over the in-memory hosts: `keep` (the label), `extend` (the activity
/// mark), `wake` (the deploy path), each converging and writing nothing on a re-run, and what
/// the next reconcile pass makes of them.
mod commands {
    use jiff::{SignedDuration, Timestamp};
    use preview_core::pipeline::{LifetimeAction, LifetimeOutcome, SweepReport};
    use preview_core::{Marks, PrState, PreviewName, ReportKind, SourceHost};

    use super::*;

    const POLICY: &str =
        "\n[lifetime]\nttl = \"168h\"\nsleep_after = \"24h\"\nkeep_label = \"keep\"\n";

    fn config(extra: &str) -> Config {
        let text = std::fs::read_to_string(EXAMPLE).unwrap() + extra;
        let base = std::path::Path::new(EXAMPLE).parent().unwrap();
        Config::parse(&text, "preview.toml", base).unwrap()
    }

    /// A flagship that fits Fly's suspend limit (2 GB), sleeping by suspend.
    fn suspending() -> Config {
        let text = std::fs::read_to_string(EXAMPLE)
            .unwrap()
            .replace("memory_mb = 4096", "memory_mb = 2048")
            + POLICY
            + "sleep = \"suspend\"\n";
        let base = std::path::Path::new(EXAMPLE).parent().unwrap();
        Config::parse(&text, "preview.toml", base).unwrap()
    }

    /// Deploys PR 42 under `c`, then ages its recorded activity by `idle_hours`.
    async fn aged(w: &World, c: &Config, idle_hours: i64) -> (Preview, PrNumber, PreviewName) {
        let pr = w.source.open_pr(42, "feature/login", SHA1);
        let p = preview(w, c.clone());
        p.deploy(pr).await.unwrap();
        let name = c.name(pr);
        let marks = w.db.get_database(&name).await.unwrap().unwrap().marks;
        assert!(
            marks.active_at.is_some(),
            "the deploy recorded its activity"
        );
        let at = Timestamp::now() - SignedDuration::from_hours(idle_hours);
        w.db.set_marks(
            NAME,
            Marks {
                active_at: Some(at),
                ..marks
            },
        );
        (p, pr, name)
    }

    fn decision(r: &SweepReport) -> (LifetimeAction, String) {
        let d = r.lifetime.iter().find(|d| d.name.as_str() == NAME).unwrap();
        (d.action, d.evidence.clone())
    }

    /// Mutating calls of all three hosts.
    fn writes(w: &World) -> usize {
        w.db.mutating_calls() + w.apps.mutating_calls() + w.source.mutating_calls()
    }

    #[tokio::test]
    async fn keep_labels_the_pr_once_says_kept_and_wins_over_expiry() {
        let w = world();
        let c = config(POLICY);
        let (p, pr, _) = aged(&w, &c, 200).await;
        let before = w.source.report(NAME).unwrap();
        assert!(before.lifetime.as_ref().unwrap().expires_at.is_some());

        let r = p.keep(pr).await.unwrap();
        assert_eq!(
            r.outcome,
            LifetimeOutcome::Kept {
                label: "keep".into()
            }
        );
        assert_eq!(r.mutated(), 2, "the label and the report: {r:#?}");
        let pull = w.source.get_pull_request(pr).await.unwrap().unwrap();
        assert_eq!(pull.labels, ["keep"]);
        let shown = w.source.report(NAME).unwrap();
        let lifetime = shown.lifetime.clone().unwrap();
        assert!(
            lifetime.kept && lifetime.expires_at.is_none(),
            "{lifetime:?}"
        );
        // The same "ready" the deploy published (its links rendered alike): one digest.
        assert_eq!(shown.digest(), before.digest());
        assert_eq!(shown.state.kind(), ReportKind::Ready);

        // Again: read only.
        w.source.clear_calls();
        let (dbw, sw) = (w.db.mutating_calls(), w.source.mutating_calls());
        let again = p.keep(pr).await.unwrap();
        assert_eq!(again.mutated(), 0, "{again:#?}");
        assert_eq!(
            (w.db.mutating_calls(), w.source.mutating_calls()),
            (dbw, sw)
        );
        assert!(!w.source.calls().iter().any(|c| c.op == "add_label"));

        // Inactive for 200 h with a ttl of 168 h: the label keeps it.
        let swept = p.sweep(false).await.unwrap();
        assert_eq!(decision(&swept).0, LifetimeAction::Keep, "{swept:#?}");
        assert!(decision(&swept).1.contains("the label `keep` keeps it"));
        assert_eq!(w.db.names(), [NAME]);
    }

    #[tokio::test]
    async fn extend_restarts_the_clock_once_and_the_next_sweep_keeps_the_preview() {
        let w = world();
        let c = config(POLICY);
        let (p, pr, name) = aged(&w, &c, 200).await;
        let started = Timestamp::now();

        let r = p.extend(pr).await.unwrap();
        assert_eq!(r.outcome, LifetimeOutcome::Extended);
        assert_eq!(r.mutated(), 2, "the activity mark and the report: {r:#?}");
        let active =
            w.db.get_database(&name)
                .await
                .unwrap()
                .unwrap()
                .marks
                .active_at;
        let active = active.unwrap();
        assert!(active >= started - SignedDuration::from_secs(1), "{active}");
        let shown = w.source.report(NAME).unwrap().lifetime.unwrap();
        assert_eq!(
            shown.expires_at,
            Some(active + SignedDuration::from_hours(168)),
            "the report shows the new expiry"
        );

        let before = writes(&w);
        let again = p.extend(pr).await.unwrap();
        assert_eq!(again.outcome, LifetimeOutcome::Extended);
        assert_eq!(writes(&w), before, "a re-run writes nothing: {again:#?}");

        // Would have expired (200 h idle, ttl 168 h): extended, it is kept.
        let swept = p.sweep(false).await.unwrap();
        assert_eq!(decision(&swept).0, LifetimeAction::Keep, "{swept:#?}");
        assert_eq!(w.db.names(), [NAME]);
        assert_eq!(w.db.state(NAME), Some("started"));
    }

    #[tokio::test]
    async fn extend_and_keep_skip_what_they_cannot_act_on() {
        let w = world();
        let c = config(POLICY);
        let pr = w.source.open_pr(42, "feature/login", SHA1);
        let p = preview(&w, c);
        let r = p.extend(pr).await.unwrap();
        assert!(
            matches!(&r.outcome, LifetimeOutcome::Skipped { reason } if reason.contains("no preview")),
            "{r:?}"
        );
        let r = preview(&w, flagship()).extend(pr).await.unwrap();
        assert!(
            matches!(&r.outcome, LifetimeOutcome::Skipped { reason } if reason.contains("lifetime.ttl")),
            "{r:?}"
        );
        w.source.set_state(pr, PrState::Closed);
        for r in [p.keep(pr).await.unwrap(), p.extend(pr).await.unwrap()] {
            assert!(
                matches!(&r.outcome, LifetimeOutcome::Skipped { reason } if reason.contains("closed")),
                "{r:?}"
            );
        }
        assert_eq!(writes(&w), 0);
        assert!(
            p.keep(PrNumber::new(7).unwrap())
                .await
                .unwrap_err()
                .is_config()
        );
    }

    #[tokio::test]
    async fn wake_after_a_stop_reruns_hooks_and_seed_after_a_suspend_only_resumes() {
        for (c, was, reruns) in [
            (config(POLICY), "stopped", true),
            (suspending(), "suspended", false),
        ] {
            let w = world();
            let (p, pr, name) = aged(&w, &c, 30).await;
            let swept = p.sweep(false).await.unwrap();
            assert!(
                matches!(decision(&swept).0, LifetimeAction::Sleep { .. }),
                "{swept:#?}"
            );
            assert_eq!(w.db.state(NAME), Some(was));
            assert_eq!(
                w.source.report(NAME).unwrap().state.kind(),
                ReportKind::Sleeping
            );
            let first = counts(&w);
            let app_writes = w.apps.mutating_calls();

            let r = p.wake(pr).await.unwrap();
            assert_eq!(
                r.outcome,
                LifetimeOutcome::Woke { was: was.into() },
                "{r:#?}"
            );
            assert_eq!(w.db.state(NAME), Some("started"));
            let after = counts(&w);
            if reruns {
                assert_eq!(after.0, first.0 + 2, "stopped: the hooks again");
                assert_eq!(after.2, first.2 * 2, "stopped: the seed again");
            } else {
                assert_eq!(after, first, "suspended: no hook, no tunnel, no seed");
            }
            assert_eq!(
                w.apps.mutating_calls(),
                app_writes,
                "no app write at an unchanged commit"
            );
            assert_eq!(
                w.source.report(NAME).unwrap().state.kind(),
                ReportKind::Ready
            );
            let marks = w.db.get_database(&name).await.unwrap().unwrap().marks;
            assert_eq!(marks.asleep_since, None, "awake in the marks too");
            assert_eq!(w.db.names(), [NAME], "one database");

            // Awake: nothing to do, nothing written.
            let before = writes(&w);
            let again = p.wake(pr).await.unwrap();
            assert_eq!(again.outcome, LifetimeOutcome::WasAwake);
            assert_eq!(writes(&w), before);
            assert_eq!(counts(&w), after);
        }
    }

    #[tokio::test]
    async fn a_wake_that_failed_after_starting_the_machine_is_finished_by_the_next() {
        let w = world();
        let c = config(POLICY);
        let (p, pr, name) = aged(&w, &c, 30).await;
        let _ = p.sweep(false).await.unwrap();
        // The Machine starts, then recording that it is awake fails for good.
        w.db.fail_next("mark_database", preview_core::Error::config("injected"));
        assert!(p.wake(pr).await.is_err());
        assert_eq!(w.db.state(NAME), Some("started"));
        let marks = w.db.get_database(&name).await.unwrap().unwrap().marks;
        assert!(marks.asleep_since.is_some(), "still marked asleep");

        let r = p.wake(pr).await.unwrap();
        assert_eq!(
            r.outcome,
            LifetimeOutcome::Woke {
                was: "asleep".into()
            },
            "{r:#?}"
        );
        assert_eq!(
            w.source.report(NAME).unwrap().state.kind(),
            ReportKind::Ready
        );
        let marks = w.db.get_database(&name).await.unwrap().unwrap().marks;
        assert_eq!(marks.asleep_since, None);
        assert_eq!(p.wake(pr).await.unwrap().outcome, LifetimeOutcome::WasAwake);
        assert!(
            p.wake(PrNumber::new(7).unwrap())
                .await
                .unwrap_err()
                .is_config()
        );
    }
}
