//! The lifetime decisions of the reconcile pass, as one pure function over what was observed
//! (each environment's PR, labels and database), with the evidence for each decision. The pass
//! acts only on positive evidence: a lookup error or an unknown activity time never deletes or
//! sleeps anything.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::PrLookup;
use crate::config::Config;
use crate::host::{Database, PrState};
use crate::name::{PrNumber, PreviewName};

/// What the reconcile pass does to one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LifetimeAction {
    /// Leave it.
    Keep,
    /// Tear it down: its PR is closed or merged.
    TearDown,
    /// Tear it down: no activity for longer than `lifetime.ttl`.
    Expire,
    /// Put its database to sleep (suspend when `suspend`).
    Sleep {
        /// Suspend rather than stop.
        suspend: bool,
    },
    /// Tear it down to stay within `lifetime.max_environments` (the least recently active).
    Evict,
    /// Its database booted since the hooks ran: report it reset.
    MarkReset,
}

/// One decision and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifetimeDecision {
    /// The environment.
    pub name: PreviewName,
    /// What to do.
    pub action: LifetimeAction,
    /// The evidence, for people.
    pub evidence: String,
}

/// What was observed of one environment.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The environment.
    pub name: PreviewName,
    /// Its database, when it has one.
    pub database: Option<Database>,
}

fn ago(now: Timestamp, t: Timestamp) -> i64 {
    now.as_second() - t.as_second()
}

/// Decides, for each environment, from its PR (`lookups`, with `labels` of open PRs), its
/// database and the lifetime policy. Pure.
///
/// - A PR lookup that failed, or was not made, keeps it (nothing is deleted or slept on doubt).
/// - A closed or merged PR tears it down.
/// - An open PR: expired (no activity for `ttl`, and no keep label) → expire; inactive for
///   `sleep_after` and running → sleep; its database booted since the hooks ran → mark reset.
///   No recorded activity keeps it: expiry needs a time to count from.
/// - Then, over `max_environments`, the least recently active of those left (never a kept one,
///   never one without a recorded activity) are evicted.
pub fn decide_lifetime(
    config: &Config,
    observed: &[Observed],
    lookups: &BTreeMap<PrNumber, PrLookup>,
    labels: &BTreeMap<PrNumber, Vec<String>>,
    now: Timestamp,
) -> Vec<LifetimeDecision> {
    let lt = &config.lifetime;
    let mut out: Vec<LifetimeDecision> = observed
        .iter()
        .map(|o| {
            let pr = o.name.pr();
            let kept = labels.get(&pr).is_some_and(|l| l.contains(&lt.keep_label));
            let (action, evidence) = match lookups.get(&pr) {
                None => (LifetimeAction::Keep, "the PR was not looked up".to_string()),
                Some(PrLookup::Error(e)) => {
                    (LifetimeAction::Keep, format!("the PR lookup failed: {e}"))
                }
                Some(PrLookup::Missing) => (
                    LifetimeAction::Keep,
                    "the PR does not exist (left to sweep.delete_missing)".into(),
                ),
                Some(PrLookup::State(PrState::Closed)) => {
                    (LifetimeAction::TearDown, "the PR is closed".into())
                }
                Some(PrLookup::State(PrState::Merged)) => {
                    (LifetimeAction::TearDown, "the PR is merged".into())
                }
                Some(PrLookup::State(PrState::Open)) => open(config, o, kept, now),
            };
            LifetimeDecision {
                name: o.name.clone(),
                action,
                evidence,
            }
        })
        .collect();
    if let Some(max) = lt.max_environments {
        evict(
            &mut out,
            observed,
            labels,
            &lt.keep_label,
            max as usize,
            now,
        );
    }
    out
}

fn open(config: &Config, o: &Observed, kept: bool, now: Timestamp) -> (LifetimeAction, String) {
    let lt = &config.lifetime;
    let Some(db) = &o.database else {
        return (
            LifetimeAction::Keep,
            "the PR is open (no database found)".into(),
        );
    };
    if let (Some(boot), Some((_, at))) = (
        db.boot.as_deref(),
        db.marks.hooks.as_deref().and_then(|m| m.rsplit_once('@')),
    ) {
        if boot != at {
            return (
                LifetimeAction::MarkReset,
                format!("its database booted again ({boot}) since the hooks ran ({at})"),
            );
        }
    }
    let Some(active) = db.marks.active_at else {
        return (
            LifetimeAction::Keep,
            "the PR is open; no activity is recorded".into(),
        );
    };
    let idle = ago(now, active);
    if let Some(ttl) = lt.ttl.filter(|t| idle >= t.as_secs() as i64) {
        if kept {
            return (
                LifetimeAction::Keep,
                format!(
                    "inactive for {idle}s (ttl {}s) but the label `{}` keeps it",
                    ttl.as_secs(),
                    lt.keep_label
                ),
            );
        }
        return (
            LifetimeAction::Expire,
            format!(
                "no activity since {active} ({idle}s, ttl {}s)",
                ttl.as_secs()
            ),
        );
    }
    if let Some(after) = lt.sleep_after.filter(|t| idle >= t.as_secs() as i64) {
        if db.state == "started" {
            let suspend = lt.suspends(config.database.size.memory_mb);
            return (
                LifetimeAction::Sleep { suspend },
                format!(
                    "no activity since {active} ({idle}s, sleep_after {}s)",
                    after.as_secs()
                ),
            );
        }
        return (
            LifetimeAction::Keep,
            format!("inactive for {idle}s and already {}", db.state),
        );
    }
    (
        LifetimeAction::Keep,
        format!("active {idle}s ago, within the lifetime"),
    )
}

fn evict(
    out: &mut [LifetimeDecision],
    observed: &[Observed],
    labels: &BTreeMap<PrNumber, Vec<String>>,
    keep_label: &str,
    max: usize,
    now: Timestamp,
) {
    let gone = |a: LifetimeAction| matches!(a, LifetimeAction::TearDown | LifetimeAction::Expire);
    let left = out.iter().filter(|d| !gone(d.action)).count();
    if left <= max {
        return;
    }
    let mut candidates: Vec<(Timestamp, usize)> = out
        .iter()
        .enumerate()
        .filter(|(_, d)| !gone(d.action))
        .filter(|(_, d)| {
            !labels
                .get(&d.name.pr())
                .is_some_and(|l| l.iter().any(|x| x == keep_label))
        })
        .filter_map(|(i, _)| {
            observed[i]
                .database
                .as_ref()
                .and_then(|db| db.marks.active_at)
                .map(|t| (t, i))
        })
        .collect();
    candidates.sort();
    for (t, i) in candidates.into_iter().take(left - max) {
        out[i].action = LifetimeAction::Evict;
        out[i].evidence = format!(
            "{left} previews exceed lifetime.max_environments = {max}; this is the least recently active (last activity {}s ago)",
            ago(now, t)
        );
    }
}
