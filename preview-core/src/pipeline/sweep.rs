//! `sweep`: find every environment we own and remove those whose PR is gone.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use jiff::Timestamp;
use serde::Serialize;

use super::Preview;
use super::reconcile::LifetimeDecision;
use crate::config::SweepDef;
use crate::error::Result;
use crate::event::Phase;
use crate::host::PrState;
use crate::name::{PrNumber, PreviewName};
use crate::render;

impl Preview {
    pub(super) async fn inventory(&self) -> Result<BTreeMap<PreviewName, Candidate>> {
        let env = self.env.clone();
        let lookup = move |k: &str| env(k);
        let projects: Vec<String> = self
            .config
            .apps
            .iter()
            .map(|a| render::project(&self.config, a, &lookup))
            .collect::<Result<Vec<_>>>()?;
        let (dbs, apps) = futures::future::join(
            self.retry("list databases", || self.database.list_databases()),
            self.retry("list apps", || self.apps.list_apps(&projects)),
        )
        .await;
        let mut out: BTreeMap<PreviewName, Candidate> = BTreeMap::new();
        for o in dbs?.into_iter().chain(apps?) {
            let Some(name) = self.config.naming.parse(&o.name) else {
                continue;
            };
            let c = out.entry(name.clone()).or_insert_with(|| Candidate {
                name,
                created_at: None,
                resources: vec![],
            });
            c.resources.push(format!("{}: {}", o.provider, o.resource));
            c.created_at = match (c.created_at, o.created_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(out)
    }

    pub(super) async fn lookups(&self, prs: BTreeSet<PrNumber>) -> BTreeMap<PrNumber, PrLookup> {
        futures::stream::iter(prs)
            .map(|pr| async move {
                let l = match self.pull_request(pr).await {
                    Ok(Some(p)) => PrLookup::State(p.state),
                    Ok(None) => PrLookup::Missing,
                    Err(e) => PrLookup::Error(e.to_string()),
                };
                (pr, l)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await
    }

    /// Finds every environment we own, looks up its PR, and removes those whose PR is closed or
    /// merged (and, with `sweep.delete_missing`, missing) and older than the grace period.
    ///
    /// # Guarantees
    /// Deletes only on positive evidence; a lookup error keeps the environment. With `dry_run`, no
    /// mutating call is made. One failing removal does not stop the others.
    ///
    /// # Errors
    /// Listing failures (nothing is deleted then). Removals that failed (after trying all the
    /// others) are in [`SweepReport::failures`], which the caller must check.
    pub async fn sweep(&self, dry_run: bool) -> Result<SweepReport> {
        self.phase(Phase::Sweep, async {
            // The open PRs are listed while the providers are: neither needs the other, and
            // at thousands of environments each takes seconds before the first removal.
            let lifetime = self.config.lifetime.is_active();
            let (inv, open) = futures::future::join(self.inventory(), async {
                if lifetime {
                    Some(self.list_open_pull_requests().await)
                } else {
                    None
                }
            })
            .await;
            let inv = inv?;
            let prs: BTreeSet<PrNumber> = inv.keys().map(PreviewName::pr).collect();
            let (lookups, lifetime_lookups, labels) = if let Some(open) = open {
                self.lookups_paged(prs, open).await
            } else {
                (self.lookups(prs).await, BTreeMap::new(), BTreeMap::new())
            };
            let inv_names: Vec<PreviewName> = inv.keys().cloned().collect();
            let candidates: Vec<Candidate> = inv.into_values().collect();
            let decisions = decide_sweep(&candidates, &lookups, &self.config.sweep, (self.now)());
            // The lifetime half reads the databases (one read each where the listing has no
            // boot) while the closed PRs' environments are removed: reads that wait on nothing
            // the removals change, hidden behind GitHub's spaced writes.
            let (results, observed) = futures::future::join(
                self.remove(&decisions, dry_run),
                self.observe_lifetimes(&lifetime_lookups),
            )
            .await;
            let (mut removed, mut failures) = (Vec::new(), Vec::new());
            for (name, r) in results {
                match r {
                    Ok(()) => removed.push(name),
                    Err(e) => failures.push(format!("{name}: {e}")),
                }
            }
            removed.sort();
            let (lifetime, acted, lifetime_failures) = self
                .reconcile(&inv_names, &lifetime_lookups, &labels, observed, dry_run)
                .await;
            failures.extend(lifetime_failures);
            Ok(SweepReport {
                lifetime,
                acted,
                dry_run,
                decisions,
                removed,
                failures,
            })
        })
        .await
    }

    /// Tears down the environments `decisions` delete (none on a dry run), `concurrency` at a
    /// time; each with its outcome.
    async fn remove(
        &self,
        decisions: &[SweepDecision],
        dry_run: bool,
    ) -> Vec<(PreviewName, Result<()>)> {
        if dry_run {
            return vec![];
        }
        futures::stream::iter(decisions.iter().filter(|d| d.action == SweepAction::Delete))
            .map(|d| async move {
                let started = (self.now)();
                let r = self.teardown_name(&d.name, started).await.map(drop);
                (d.name.clone(), r)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await
    }
}

/// One environment found on the providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// Its name.
    pub name: PreviewName,
    /// The oldest creation time among its resources, when known.
    pub created_at: Option<Timestamp>,
    /// Its resources, for display.
    pub resources: Vec<String>,
}

/// What looking up a PR gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "lookup", content = "detail", rename_all = "snake_case")]
pub enum PrLookup {
    /// The PR exists in this state.
    State(PrState),
    /// The PR does not exist.
    Missing,
    /// The lookup failed.
    Error(String),
}

/// Delete or keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepAction {
    /// Remove it.
    Delete,
    /// Leave it.
    Keep,
}

/// The decision for one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepDecision {
    /// The environment.
    pub name: PreviewName,
    /// Delete or keep.
    pub action: SweepAction,
    /// Why.
    pub reason: String,
}

/// What sweep did. Check [`SweepReport::failures`]: a failed removal does not stop the others.
#[derive(Debug, Clone, Serialize)]
#[must_use]
pub struct SweepReport {
    /// Whether nothing was removed on purpose.
    pub dry_run: bool,
    /// Every decision.
    pub decisions: Vec<SweepDecision>,
    /// Environments removed.
    pub removed: Vec<PreviewName>,
    /// Removals that failed (and lifetime actions that failed).
    pub failures: Vec<String>,
    /// The lifetime decisions of the reconcile pass (empty when `[lifetime]` sets nothing).
    pub lifetime: Vec<LifetimeDecision>,
    /// The environments a lifetime decision was carried out on (none on a dry run).
    pub acted: Vec<PreviewName>,
}

/// Decides, for each environment found, whether sweep deletes it. Pure.
///
/// Deletes only on positive evidence: the PR is closed or merged (or missing, when
/// `policy.delete_missing`), and the environment is older than the grace period (an unknown age
/// counts as old for closed and merged PRs, and as young for missing ones). A lookup error or an
/// open PR always keeps it.
pub fn decide_sweep(
    candidates: &[Candidate],
    lookups: &BTreeMap<PrNumber, PrLookup>,
    policy: &SweepDef,
    now: Timestamp,
) -> Vec<SweepDecision> {
    let grace = policy.grace_period.as_secs() as i64;
    candidates
        .iter()
        .map(|c| {
            let age = c.created_at.map(|t| now.as_second() - t.as_second());
            let young = age.is_some_and(|a| a < grace);
            // One spelling for every reason: "the PR is merged", never "the pr is merged".
            let word = |s: &PrState| match s {
                PrState::Open => "open",
                PrState::Closed => "closed",
                PrState::Merged => "merged",
            };
            let (action, reason) = match lookups.get(&c.name.pr()) {
                None => (SweepAction::Keep, "the PR was not looked up".to_string()),
                Some(PrLookup::Error(e)) => (SweepAction::Keep, format!("the PR lookup failed: {e}")),
                Some(PrLookup::State(PrState::Open)) => (SweepAction::Keep, "the PR is open".into()),
                Some(PrLookup::State(s)) if young => (
                    SweepAction::Keep,
                    format!("the PR is {} but the environment is younger than the grace period", word(s)),
                ),
                Some(PrLookup::State(s)) => (SweepAction::Delete, format!("the PR is {}", word(s))),
                Some(PrLookup::Missing) if !policy.delete_missing => {
                    (SweepAction::Keep, "the PR does not exist (sweep.delete_missing is off)".into())
                }
                Some(PrLookup::Missing) if young || age.is_none() => (
                    SweepAction::Keep,
                    "the PR does not exist but the environment's age is unknown or within the grace period".into(),
                ),
                Some(PrLookup::Missing) => (SweepAction::Delete, "the PR does not exist".into()),
            };
            SweepDecision { name: c.name.clone(), action, reason }
        })
        .collect()
}
