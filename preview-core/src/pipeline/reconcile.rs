//! The lifetime decisions of the reconcile pass, as one pure function over what was observed
//! (each environment's PR, labels and database), with the evidence for each decision. The pass
//! acts only on positive evidence: a lookup error or an unknown activity time never deletes or
//! sleeps anything.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use jiff::Timestamp;
use serde::Serialize;

use super::PrLookup;
use crate::config::Config;
use crate::error::Result;
use crate::host::{Database, Mark, PrState, Report, ReportKind, ReportState};
use crate::name::{PrNumber, PreviewName};

/// A PR lookup for each PR number.
pub(super) type Lookups = BTreeMap<PrNumber, PrLookup>;

/// The databases the pass observed, by environment.
pub(super) type Databases = BTreeMap<PreviewName, Database>;

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

impl LifetimeAction {
    /// Whether the reconcile pass carries it out (closing PRs is sweep's).
    pub fn acts(self) -> bool {
        !matches!(self, Self::Keep | Self::TearDown)
    }
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
            let kept = labels
                .get(&pr)
                .is_some_and(|l| crate::host::has_label(l, &lt.keep_label));
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
    if let Some(max) = lt
        .max_environments
        .filter(|_| lt.when_full == crate::config::WhenFull::Evict)
    {
        let open: Vec<bool> = observed
            .iter()
            .map(|o| {
                matches!(
                    lookups.get(&o.name.pr()),
                    Some(PrLookup::State(PrState::Open))
                )
            })
            .collect();
        evict(
            &mut out,
            observed,
            &open,
            labels,
            &lt.keep_label,
            max as usize,
            now,
        );
    }
    out
}

fn open(config: &Config, o: &Observed, kept: bool, now: Timestamp) -> (LifetimeAction, String) {
    let Some(db) = &o.database else {
        return (
            LifetimeAction::Keep,
            "the PR is open (no database found)".into(),
        );
    };
    // Reset: running, not put to sleep by us, on another boot than the hooks' mark.
    let reset = match (db.boot.as_deref(), db.marks.hooks.as_deref()) {
        (Some(boot), Some(mark)) if db.state == "started" && db.marks.asleep_since.is_none() => {
            mark.rsplit_once('@')
                .filter(|(_, at)| *at != boot)
                .map(|(_, at)| {
                    format!("its database booted again ({boot}) since the hooks ran ({at})")
                })
        }
        _ => None,
    };
    if let Some(active) = db.marks.active_at {
        if let Some(decided) = idle(config, db, active, kept, now) {
            return decided;
        }
    }
    if let Some(evidence) = reset {
        return (LifetimeAction::MarkReset, evidence);
    }
    match db.marks.active_at {
        None => (
            LifetimeAction::Keep,
            "the PR is open; no activity is recorded".into(),
        ),
        Some(active) => (
            LifetimeAction::Keep,
            format!("active {}s ago, within the lifetime", ago(now, active)),
        ),
    }
}

/// Expiry and sleep of an open PR's preview last active at `active`; `None`: neither applies.
fn idle(
    config: &Config,
    db: &Database,
    active: Timestamp,
    kept: bool,
    now: Timestamp,
) -> Option<(LifetimeAction, String)> {
    let lt = &config.lifetime;
    let idle = ago(now, active);
    if let Some(ttl) = lt.ttl.filter(|t| idle >= t.as_secs() as i64) {
        if kept {
            return Some((
                LifetimeAction::Keep,
                format!(
                    "inactive for {idle}s (ttl {}s) but the label `{}` keeps it",
                    ttl.as_secs(),
                    lt.keep_label
                ),
            ));
        }
        return Some((
            LifetimeAction::Expire,
            format!(
                "no activity since {active} ({idle}s, ttl {}s)",
                ttl.as_secs()
            ),
        ));
    }
    let after = lt.sleep_after.filter(|t| idle >= t.as_secs() as i64)?;
    if db.state == "started" {
        let suspend = lt.suspends(config.database.size.memory_mb);
        return Some((
            LifetimeAction::Sleep { suspend },
            format!(
                "no activity since {active} ({idle}s, sleep_after {}s)",
                after.as_secs()
            ),
        ));
    }
    Some((
        LifetimeAction::Keep,
        format!("inactive for {idle}s and already {}", db.state),
    ))
}

fn evict(
    out: &mut [LifetimeDecision],
    observed: &[Observed],
    open: &[bool],
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
        .filter(|(i, d)| !gone(d.action) && open[*i])
        .filter(|(_, d)| {
            !labels
                .get(&d.name.pr())
                .is_some_and(|l| crate::host::has_label(l, keep_label))
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

impl super::Preview {
    /// Every open PR in one paged read (retried as a unit).
    pub(super) async fn list_open_pull_requests(&self) -> Result<Vec<crate::host::PullRequest>> {
        self.retry("list open pull requests", || {
            self.source.list_open_pull_requests()
        })
        .await
    }

    /// From every open PR (`listed`, [`Self::list_open_pull_requests`]) with its labels, then a
    /// lookup of each remaining PR (closed, merged or missing: each looked up once, and removed).
    /// Returns the lookups for sweep, those for the lifetime decisions (an open PR counts as a
    /// failed lookup when the paged read failed: its labels, hence its keep label, are unknown),
    /// and the labels.
    pub(super) async fn lookups_paged(
        &self,
        prs: BTreeSet<PrNumber>,
        listed: Result<Vec<crate::host::PullRequest>>,
    ) -> (Lookups, Lookups, BTreeMap<PrNumber, Vec<String>>) {
        let open = match listed {
            Ok(open) => open,
            Err(e) => {
                let sweep = self.lookups(prs).await;
                let why = format!("listing the open PRs (and their labels) failed: {e}");
                let lifetime = sweep
                    .iter()
                    .map(|(pr, l)| match l {
                        PrLookup::State(PrState::Open) => (*pr, PrLookup::Error(why.clone())),
                        other => (*pr, other.clone()),
                    })
                    .collect();
                return (sweep, lifetime, BTreeMap::new());
            }
        };
        let mut labels = BTreeMap::new();
        let mut lookups: Lookups = BTreeMap::new();
        for p in open.into_iter().filter(|p| prs.contains(&p.number)) {
            lookups.insert(p.number, PrLookup::State(PrState::Open));
            labels.insert(p.number, p.labels);
        }
        let rest = prs
            .into_iter()
            .filter(|p| !lookups.contains_key(p))
            .collect();
        lookups.extend(self.lookups(rest).await);
        (lookups.clone(), lookups, labels)
    }

    /// What the lifetime half of the pass reads: every database with its marks, in one paged
    /// read, and the boot of those the listing leaves unknown ([`Self::fill_boots`]). It changes
    /// nothing, so sweep runs it while it removes closed PRs' environments. `None` when the pass
    /// is off; `Err` (why) when the listing failed.
    pub(super) async fn observe_lifetimes(
        &self,
        lookups: &Lookups,
    ) -> Option<std::result::Result<Databases, String>> {
        if !self.config.lifetime.is_active() {
            return None;
        }
        let dbs = self
            .retry("list databases", || {
                self.database.list_lifetimes(&self.config.naming)
            })
            .await;
        let mut dbs: Databases = match dbs {
            Ok(d) => d.into_iter().map(|d| (d.name.clone(), d)).collect(),
            Err(e) => return Some(Err(format!("listing the databases failed: {e}"))),
        };
        self.fill_boots(&mut dbs, lookups).await;
        Some(Ok(dbs))
    }

    /// The lifetime half of the reconcile pass: decides for every environment in `names`
    /// ([`decide_lifetime`]) from what [`Self::observe_lifetimes`] read, and carries the
    /// decisions out unless `dry_run`. Closing PRs is sweep's: `TearDown` is decided, not acted
    /// on here. A listing failure decides nothing (every environment kept, the failure
    /// reported).
    pub(super) async fn reconcile(
        &self,
        names: &[PreviewName],
        lookups: &Lookups,
        labels: &BTreeMap<PrNumber, Vec<String>>,
        observed: Option<std::result::Result<Databases, String>>,
        dry_run: bool,
    ) -> (Vec<LifetimeDecision>, Vec<PreviewName>, Vec<String>) {
        let dbs = match observed {
            None => return (vec![], vec![], vec![]),
            Some(Ok(dbs)) => dbs,
            Some(Err(why)) => {
                let keep = |n: &PreviewName| LifetimeDecision {
                    name: n.clone(),
                    action: LifetimeAction::Keep,
                    evidence: why.clone(),
                };
                return (names.iter().map(keep).collect(), vec![], vec![why]);
            }
        };
        let now = (self.now)();
        let observed: Vec<Observed> = names
            .iter()
            .map(|n| Observed {
                name: n.clone(),
                database: dbs.get(n).cloned(),
            })
            .collect();
        let decisions = decide_lifetime(&self.config, &observed, lookups, labels, now);
        if dry_run {
            return (decisions, vec![], vec![]);
        }
        let results: Vec<(PreviewName, Option<Result<()>>)> =
            futures::stream::iter(decisions.iter().zip(&observed))
                .map(|(d, o)| async move { (d.name.clone(), self.act(d, o, now).await) })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        let (mut acted, mut failures) = (Vec::new(), Vec::new());
        for (name, r) in results {
            match r {
                Some(Ok(())) => acted.push(name),
                Some(Err(e)) => failures.push(format!("{name}: {e}")),
                None => {}
            }
        }
        acted.sort();
        (decisions, acted, failures)
    }

    /// The boot of each running database of an open PR whose hooks left a mark, when the listing
    /// did not carry it (Fly's organisation listing has no events): one read of that database,
    /// so a Machine restarted behind our back can be reported reset. A failed read leaves the
    /// boot unknown, which decides nothing.
    async fn fill_boots(&self, dbs: &mut Databases, lookups: &Lookups) {
        let wanted: Vec<PreviewName> = dbs
            .values()
            .filter(|d| d.boot.is_none() && d.state == "started")
            .filter(|d| d.marks.hooks.is_some() && d.marks.asleep_since.is_none())
            .filter(|d| {
                matches!(
                    lookups.get(&d.name.pr()),
                    Some(PrLookup::State(PrState::Open))
                )
            })
            .map(|d| d.name.clone())
            .collect();
        let read: Vec<(PreviewName, Option<String>)> = futures::stream::iter(wanted)
            .map(|name| async move {
                let got = self
                    .retry("get database boot", || self.database.database_boot(&name))
                    .await;
                let boot = got.ok().flatten();
                (name, boot)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (name, boot) in read {
            if let Some(d) = dbs.get_mut(&name) {
                d.boot = boot;
            }
        }
    }

    /// Carries out one decision; `None` when there is nothing to do.
    async fn act(&self, d: &LifetimeDecision, o: &Observed, now: Timestamp) -> Option<Result<()>> {
        let name = &d.name;
        let back = super::lifetime::bring_back(&self.config, name.pr());
        let done = match d.action {
            LifetimeAction::Keep | LifetimeAction::TearDown => return None,
            LifetimeAction::Expire | LifetimeAction::Evict => {
                let why = if d.action == LifetimeAction::Expire {
                    "it expired"
                } else {
                    "it was evicted to make room"
                };
                let reason = format!("{why}: {}. To bring it back: {back}.", d.evidence);
                self.teardown_as(name, now, ReportState::Removed { reason })
                    .await
                    .map(drop)
            }
            LifetimeAction::Sleep { suspend } => self.put_to_sleep(name, suspend, now).await,
            LifetimeAction::MarkReset => {
                let asleep = o.database.as_ref().is_some_and(|d| d.state != "started");
                if asleep {
                    return None;
                }
                self.publish_state(name, ReportKind::Reset, ReportState::Reset, now)
                    .await
            }
        };
        Some(done)
    }

    async fn put_to_sleep(&self, name: &PreviewName, suspend: bool, now: Timestamp) -> Result<()> {
        self.retry("sleep database", || {
            self.database.sleep_database(name, suspend)
        })
        .await?;
        let mark = Mark::AsleepSince(Some(now));
        self.retry("mark database", || self.database.mark_database(name, &mark))
            .await?;
        let state = ReportState::Sleeping {
            suspended: suspend,
            links: vec![],
        };
        self.publish_state(name, ReportKind::Sleeping, state, now)
            .await
    }

    /// Publishes `state` on the PR of `name` unless its report already is of `kind` (a re-run
    /// writes nothing) or there is none (never deployed: nothing to say).
    async fn publish_state(
        &self,
        name: &PreviewName,
        kind: ReportKind,
        state: ReportState,
        now: Timestamp,
    ) -> Result<()> {
        let pr = name.pr();
        let Some(s) = self
            .retry("get report", || self.source.get_report(name, pr))
            .await?
        else {
            return Ok(());
        };
        if s.kind == kind || s.kind == ReportKind::TornDown {
            return Ok(());
        }
        let report = Report {
            name: name.clone(),
            pr,
            branch: None,
            commit: s.commit.clone(),
            state,
            run_url: self.run_url.clone(),
            started_at: Some(now),
            lifetime: None,
            phases: vec![],
        };
        self.retry("publish report", || self.source.publish_report(&report))
            .await?;
        Ok(())
    }
}
