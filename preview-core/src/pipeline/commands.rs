//! The lifetime commands (`/preview keep`, `/preview extend`, `/preview wake`, and `preview
//! keep|extend|wake --pr N`): keep a preview from expiring, restart its inactivity clock, wake
//! its sleeping database. Each observes, then writes only the difference, and republishes the
//! report the PR shows so it says what changed (the expiry, "kept", "ready").

use jiff::Timestamp;
use serde::Serialize;

use super::Preview;
use super::deploy::{DeployReport, DeployStatus};
use super::lifetime::activity_due;
use crate::error::Result;
use crate::host::{
    Database, Lifetime, Mark, Outcome, PrState, PullRequest, Report, ReportKind, ReportState,
    ResourceChange, has_label,
};
use crate::name::{PrNumber, PreviewName};
use crate::render::{self, Inputs};

/// How a lifetime command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LifetimeOutcome {
    /// `keep`: the PR carries the keep label (added now, or already: see the changes).
    Kept {
        /// The label.
        label: String,
    },
    /// `extend`: the inactivity clock counts from the activity recorded now (or moments ago:
    /// see the changes).
    Extended,
    /// `wake`: the database was asleep (or lost its data) and the preview is ready again.
    Woke {
        /// What it was: `stopped` (hooks and seed ran again), `suspended` (only resumed: no
        /// hooks, no seed), `reset` (restarted behind our back: hooks and seed ran again), or
        /// `asleep` (running, but an earlier wake stopped before its marks or report said so).
        was: String,
    },
    /// `wake`: the database was awake and the report said so; nothing was done.
    WasAwake,
    /// Nothing was done, on purpose, and why (a closed PR, no preview, no lifetime policy).
    Skipped {
        /// Why.
        reason: String,
    },
}

/// What a lifetime command did.
#[derive(Debug, Clone, Serialize)]
pub struct LifetimeReport {
    /// The environment.
    pub name: PreviewName,
    /// The PR.
    pub pr: PrNumber,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: LifetimeOutcome,
    /// What was written or left alone (the label, the activity mark, the report).
    pub changes: Vec<ResourceChange>,
    /// What the report now says of expiry, sleep and cost, when there is something to say.
    pub lifetime: Option<Lifetime>,
    /// `wake`: the deploy that woke it.
    pub deploy: Option<DeployReport>,
}

impl LifetimeReport {
    fn skipped(name: PreviewName, pr: PrNumber, reason: String) -> Self {
        Self {
            name,
            pr,
            outcome: LifetimeOutcome::Skipped { reason },
            changes: vec![],
            lifetime: None,
            deploy: None,
        }
    }

    /// Resources a mutating call was made for (the wake's deploy included).
    pub fn mutated(&self) -> usize {
        let own = self
            .changes
            .iter()
            .filter(|c| {
                matches!(
                    c.outcome,
                    Outcome::Created | Outcome::Updated | Outcome::Removed
                )
            })
            .count();
        own + self.deploy.as_ref().map_or(0, DeployReport::mutated)
    }
}

/// Why a lifetime command does nothing for this PR, if it does nothing: it is not open.
fn not_open(pr: PrNumber, pull: &PullRequest) -> Option<String> {
    (pull.state != PrState::Open)
        .then(|| format!("pull request #{pr} is {:?}", pull.state).to_lowercase())
}

impl Preview {
    /// Exempts `pr`'s preview from expiry and eviction: adds the configured
    /// `lifetime.keep_label` to the PR, then republishes the report the PR shows so it says
    /// "kept". The label is added whether or not a preview exists yet (it keeps the one a later
    /// deploy makes). A kept preview may still sleep; `wake` or a push wakes it.
    ///
    /// # Guarantees
    /// - A PR that carries the label (in any case) gets no label write; a report that already
    ///   says "kept" is not written again: a re-run makes no mutating call.
    /// - Converges after a crash between the label and the report (the re-run republishes).
    /// - A closed or merged PR is skipped before anything is written.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) when the PR does not exist; provider errors.
    pub async fn keep(&self, pr: PrNumber) -> Result<LifetimeReport> {
        let now = (self.now)();
        let name = self.config.name(pr);
        let pull = self.existing_pull(pr).await?;
        if let Some(reason) = not_open(pr, &pull) {
            return Ok(LifetimeReport::skipped(name, pr, reason));
        }
        let label = self.config.lifetime.keep_label.clone();
        let mut labels = pull.labels.clone();
        let added = if has_label(&labels, &label) {
            Outcome::Unchanged
        } else {
            let o = self
                .retry("add label", || self.source.add_label(pr, &label))
                .await?;
            labels.push(label.clone());
            o
        };
        let mut changes = vec![ResourceChange::new(
            self.source.kind(),
            "label",
            format!("PR #{pr} {label}"),
            added,
        )];
        self.changes(&changes);
        let db = self.database_of(&name).await?;
        let active_at = db.as_ref().and_then(|d| d.marks.active_at).unwrap_or(now);
        let lifetime = self.note_at(db.as_ref(), &labels, active_at, now);
        changes.extend(
            self.republish(&pull, &name, db.as_ref(), lifetime.clone(), now)
                .await?,
        );
        Ok(LifetimeReport {
            name,
            pr,
            outcome: LifetimeOutcome::Kept { label },
            changes,
            lifetime,
            deploy: None,
        })
    }

    /// Restarts `pr`'s inactivity clock: records activity now on its database (the mark deploy
    /// records), then republishes the report the PR shows with the new expiry. It does not wake
    /// a sleeping database (`wake` does); it keeps it from expiring.
    ///
    /// # Guarantees
    /// - Activity is recorded only when the recorded one is older than a twentieth of the
    ///   shorter of `lifetime.ttl` and `lifetime.sleep_after` (as deploy does), and the expiry
    ///   shown counts from the recorded activity: a re-run makes no mutating call.
    /// - Converges after a crash between the mark and the report (the re-run republishes).
    /// - A closed PR, a PR without a preview, or a configuration without `ttl` and
    ///   `sleep_after` (nothing expires or sleeps) is skipped before anything is written.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) when the PR does not exist; provider errors.
    pub async fn extend(&self, pr: PrNumber) -> Result<LifetimeReport> {
        let now = (self.now)();
        let name = self.config.name(pr);
        let lt = &self.config.lifetime;
        if lt.ttl.is_none() && lt.sleep_after.is_none() {
            let reason = "nothing expires or sleeps: lifetime.ttl and lifetime.sleep_after are not set in the configuration".to_string();
            return Ok(LifetimeReport::skipped(name, pr, reason));
        }
        let pull = self.existing_pull(pr).await?;
        if let Some(reason) = not_open(pr, &pull) {
            return Ok(LifetimeReport::skipped(name, pr, reason));
        }
        let Some(db) = self.database_of(&name).await? else {
            let reason =
                format!("pull request #{pr} has no preview to extend (a deploy makes one)");
            return Ok(LifetimeReport::skipped(name, pr, reason));
        };
        let due = activity_due(&self.config, db.marks.active_at, now);
        let active_at = match (due, db.marks.active_at) {
            (false, Some(recorded)) => recorded,
            _ => now,
        };
        if due {
            let mark = Mark::ActiveAt(now);
            self.retry("mark database", || {
                self.database.mark_database(&name, &mark)
            })
            .await?;
        }
        let outcome = if due {
            Outcome::Updated
        } else {
            Outcome::Unchanged
        };
        let mut changes = vec![ResourceChange::new(
            self.database.kind(),
            "activity",
            name.to_string(),
            outcome,
        )];
        self.changes(&changes);
        let lifetime = self.note_at(Some(&db), &pull.labels, active_at, now);
        changes.extend(
            self.republish(&pull, &name, Some(&db), lifetime.clone(), now)
                .await?,
        );
        Ok(LifetimeReport {
            name,
            pr,
            outcome: LifetimeOutcome::Extended,
            changes,
            lifetime,
            deploy: None,
        })
    }

    /// Wakes `pr`'s sleeping database through [`Preview::deploy`] at the PR's head: the deploy
    /// starts the Machine; after a suspend the hooks' mark still matches its boot, so neither
    /// hooks nor seed run; after a stop (its memory is gone) both run again. Ends with the
    /// report "ready". A database that is awake, whose marks and report say so, is left alone.
    ///
    /// # Guarantees
    /// - Awake already (running, not marked asleep, its report neither "sleeping" nor "reset"):
    ///   no mutating call, [`LifetimeOutcome::WasAwake`].
    /// - Everything [`Preview::deploy`] guarantees: one Machine, no Vercel write at an
    ///   unchanged commit, converging after a crash (a Machine started whose report still says
    ///   "sleeping" is woken again, which finishes the job).
    /// - A closed PR, a fork, or a PR without a preview is skipped before anything is written.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) when the PR does not exist;
    /// [`Error::InPhase`](crate::Error::InPhase) from the deploy.
    pub async fn wake(&self, pr: PrNumber) -> Result<LifetimeReport> {
        let name = self.config.name(pr);
        let pull = self.existing_pull(pr).await?;
        if let Some(reason) = super::deploy::skip_reason(pr, &pull, self.pinned.as_deref()) {
            return Ok(LifetimeReport::skipped(name, pr, reason));
        }
        let Some(db) = self.database_of(&name).await? else {
            let reason = format!(
                "pull request #{pr} has no preview to wake (`/preview deploy` or a push makes one)"
            );
            return Ok(LifetimeReport::skipped(name, pr, reason));
        };
        let shown = self
            .retry("get report", || self.source.get_report(&name, pr))
            .await?
            .map(|s| s.kind);
        let Some(was) = asleep(&db, shown) else {
            return Ok(LifetimeReport {
                name,
                pr,
                outcome: LifetimeOutcome::WasAwake,
                changes: vec![],
                lifetime: None,
                deploy: None,
            });
        };
        let deployed = self.deploy(pr).await?;
        let outcome = match &deployed.status {
            DeployStatus::Ready => LifetimeOutcome::Woke { was },
            DeployStatus::Skipped { reason } => LifetimeOutcome::Skipped {
                reason: reason.clone(),
            },
            DeployStatus::ClosedDuringDeploy => LifetimeOutcome::Skipped {
                reason: format!("pull request #{pr} closed while it woke; it was torn down"),
            },
        };
        Ok(LifetimeReport {
            name,
            pr,
            outcome,
            changes: vec![],
            lifetime: None,
            deploy: Some(deployed),
        })
    }

    async fn database_of(&self, name: &PreviewName) -> Result<Option<Database>> {
        self.retry("get database", || self.database.get_database(name))
            .await
    }

    /// Publishes the report the PR shows again, with `lifetime`: "ready" (its links rendered
    /// as deploy renders them, at the commit it shows), "sleeping" or "reset". Nothing when the
    /// PR shows no report or another state (deploying, failed, torn down, skipped): there is no
    /// running preview to say anything about. A report that says exactly this is not written.
    async fn republish(
        &self,
        pull: &PullRequest,
        name: &PreviewName,
        db: Option<&Database>,
        lifetime: Option<Lifetime>,
        now: Timestamp,
    ) -> Result<Vec<ResourceChange>> {
        let pr = pull.number;
        let Some(shown) = self
            .retry("get report", || self.source.get_report(name, pr))
            .await?
        else {
            return Ok(vec![]);
        };
        let state = match shown.kind {
            ReportKind::Ready => ReportState::Ready {
                links: self.links(name, pull, shown.commit.as_deref())?,
            },
            ReportKind::Sleeping => ReportState::Sleeping {
                suspended: db.is_some_and(|d| d.state == "suspended"),
                links: self.links(name, pull, shown.commit.as_deref())?,
            },
            ReportKind::Reset => ReportState::Reset,
            _ => return Ok(vec![]),
        };
        let report = Report {
            name: name.clone(),
            pr,
            branch: Some(pull.head_branch.clone()),
            commit: shown.commit.clone(),
            state,
            run_url: self.run_url.clone(),
            started_at: Some(now),
            phases: vec![],
            lifetime,
        };
        let o = self
            .retry("publish report", || self.source.publish_report(&report))
            .await?;
        let c = ResourceChange::new(self.source.kind(), "report", format!("PR #{pr}"), o);
        self.changes(std::slice::from_ref(&c));
        Ok(vec![c])
    }

    /// The report's links, rendered without any secret (links are public by rule) at the PR's
    /// branch and the commit the report shows.
    fn links(
        &self,
        name: &PreviewName,
        pull: &PullRequest,
        commit: Option<&str>,
    ) -> Result<Vec<crate::host::Link>> {
        let inputs = Inputs {
            repo: Some(pull.base_repo.clone()),
            branch: Some(pull.head_branch.clone()),
            sha: Some(commit.unwrap_or(&pull.head_sha).to_string()),
        };
        let env = self.env.clone();
        let lookup = move |k: &str| env(k);
        Ok(render::render_plan(&self.config, name, &inputs, &lookup)?.links)
    }
}

/// What a database was when it needs waking, `None` when it is awake: not running (`stopped`,
/// `suspended`), marked asleep, or shown "sleeping" or "reset" on the PR.
fn asleep(db: &Database, shown: Option<ReportKind>) -> Option<String> {
    if db.state != "started" {
        return Some(db.state.clone());
    }
    let marked = db.marks.asleep_since.is_some();
    match shown {
        Some(ReportKind::Reset) => Some("reset".into()),
        Some(ReportKind::Sleeping) => Some("asleep".into()),
        _ if marked => Some("asleep".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Marks;

    fn db(state: &str, asleep: bool) -> Database {
        Database {
            name: crate::name::Naming::new("pr", "x")
                .unwrap()
                .name(PrNumber::new(1).unwrap()),
            host: "h".into(),
            state: state.into(),
            fingerprint: None,
            created_at: None,
            boot: Some("b".into()),
            marks: Marks {
                asleep_since: asleep.then(Timestamp::now),
                ..Marks::default()
            },
        }
    }

    #[test]
    fn only_a_running_database_that_nothing_calls_asleep_is_awake() {
        use ReportKind as K;
        let cases: &[(&str, bool, Option<ReportKind>, Option<&str>)] = &[
            ("started", false, Some(K::Ready), None),
            ("started", false, None, None),
            ("started", false, Some(K::Failed), None),
            ("stopped", true, Some(K::Sleeping), Some("stopped")),
            ("suspended", true, Some(K::Sleeping), Some("suspended")),
            ("stopped", false, Some(K::Ready), Some("stopped")),
            // Started, but the wake did not finish (marks or report still say asleep).
            ("started", true, Some(K::Sleeping), Some("asleep")),
            ("started", true, Some(K::Ready), Some("asleep")),
            ("started", false, Some(K::Sleeping), Some("asleep")),
            ("started", false, Some(K::Reset), Some("reset")),
        ];
        for (state, marked, shown, want) in cases {
            assert_eq!(
                asleep(&db(state, *marked), *shown).as_deref(),
                *want,
                "{state} {marked} {shown:?}"
            );
        }
    }
}
