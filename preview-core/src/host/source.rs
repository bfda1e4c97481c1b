//! Where pull requests live: [`SourceHost`] and the types it speaks (pull requests, the report
//! published on them).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Outcome;
use crate::error::Result;
use crate::name::{PrNumber, PreviewName};

/// Where pull requests live and reports are published (e.g. GitHub).
///
/// # Contract
/// - `get_pull_request` of a missing PR is `Ok(None)`.
/// - `publish_report` keeps exactly one report per environment (created, then updated); publishing
///   the same report twice makes no mutating call the second time (`Outcome::Unchanged`).
/// - `publish_report` never replaces a report of a run that started later
///   ([`Report::started_at`](crate::Report::started_at)): it makes no mutating call then and
///   answers `Outcome::Skipped`. Two runs racing on one environment thus leave the newer run's
///   outcome, whichever publishes last.
/// - `get_report` reads back what was last published, `None` when nothing was.
/// - `add_label` leaves the label on the PR (GitHub creates a label the repository lacks); a PR
///   that carries it already (in any case: label names match case-insensitively, as on GitHub)
///   gets no mutating call (`Outcome::Unchanged`).
///
/// # Examples
/// Read a pull request and publish the environment's report on it:
/// ```
/// use preview_core::testing::InMemorySource;
/// use preview_core::{Naming, Outcome, Report, ReportKind, ReportState, SourceHost};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let source = InMemorySource::new("acme/shop");
/// let pr = source.open_pr(42, "feature/login", "0123456789abcdef0123456789abcdef01234567");
/// let host: &dyn SourceHost = &source;
/// let pull = host.get_pull_request(pr).await?.expect("the PR is open");
/// assert_eq!(pull.head_branch, "feature/login");
///
/// let name = Naming::new("pr", "shop")?.name(pr);
/// let report = Report {
///     name: name.clone(),
///     pr,
///     branch: Some(pull.head_branch.clone()),
///     commit: Some(pull.head_sha.clone()),
///     state: ReportState::Deploying,
///     run_url: None,
///     started_at: None,
///     phases: vec![],
///     lifetime: None,
/// };
/// assert_eq!(host.publish_report(&report).await?, Outcome::Created);
/// let shown = host.get_report(&name, pr).await?.expect("published");
/// assert_eq!(shown.kind, ReportKind::Deploying);
/// # Ok::<(), preview_core::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait SourceHost: Debug + Send + Sync + 'static {
    /// Provider kind, e.g. `github`.
    fn kind(&self) -> &'static str;

    /// A pull request.
    ///
    /// # Errors
    /// Provider errors; missing is `Ok(None)`.
    async fn get_pull_request(&self, pr: PrNumber) -> Result<Option<PullRequest>>;

    /// Every open pull request (all pages).
    ///
    /// # Errors
    /// Provider errors.
    async fn list_open_pull_requests(&self) -> Result<Vec<PullRequest>>;

    /// The report last published for an environment.
    ///
    /// # Errors
    /// Provider errors.
    async fn get_report(&self, name: &PreviewName, pr: PrNumber) -> Result<Option<ReportSummary>>;

    /// Creates or updates the environment's report.
    ///
    /// # Errors
    /// Provider errors.
    ///
    /// # Idempotency
    /// Idempotent: found by its marker before anything is created.
    async fn publish_report(&self, report: &Report) -> Result<Outcome>;

    /// Adds `label` to pull request `pr` (`/preview keep`: the keep label).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) when the PR does not exist; provider errors.
    ///
    /// # Idempotency
    /// Idempotent: a PR that carries the label already is left alone (`Outcome::Unchanged`, no
    /// mutating call); otherwise `Outcome::Updated`.
    async fn add_label(&self, pr: PrNumber, label: &str) -> Result<Outcome>;
}

/// Whether `labels` hold `label`: label names match case-insensitively, as on GitHub (a
/// repository cannot have two labels that differ only in case).
pub fn has_label(labels: &[String], label: &str) -> bool {
    let want = label.to_lowercase();
    labels.iter().any(|l| l.to_lowercase() == want)
}

/// State of a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrState {
    /// Open.
    Open,
    /// Closed without merging.
    Closed,
    /// Merged.
    Merged,
}

/// A pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    /// Number.
    pub number: PrNumber,
    /// State.
    pub state: PrState,
    /// Draft.
    pub draft: bool,
    /// Title (untrusted text).
    pub title: String,
    /// Head branch (untrusted text).
    pub head_branch: String,
    /// Head commit SHA.
    pub head_sha: String,
    /// Head repository `owner/name`; `None` when the fork was deleted.
    pub head_repo: Option<String>,
    /// Base repository `owner/name`.
    pub base_repo: String,
    /// Labels.
    pub labels: Vec<String>,
}

impl PullRequest {
    /// Whether the head lives in another repository (secrets must not reach its code).
    pub fn is_fork(&self) -> bool {
        self.head_repo.as_deref() != Some(self.base_repo.as_str())
    }
}

/// A link in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Label.
    pub label: String,
    /// URL.
    pub url: String,
}

/// The state an environment report shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReportState {
    /// A deploy is in progress.
    Deploying,
    /// Ready, with its links.
    Ready {
        /// URLs to show.
        links: Vec<Link>,
    },
    /// A deploy failed.
    Failed {
        /// Which phase.
        phase: String,
        /// The error (never a secret: errors carry none).
        error: String,
    },
    /// The environment was removed.
    TornDown,
    /// The pull request gets no preview now, and none exists (published only over a report
    /// that says so already or says torn down).
    Skipped {
        /// Why, and how to get one (our own text: it names only configured values).
        reason: String,
    },
    /// Its database sleeps (inactive); a push or `/preview deploy` wakes it.
    Sleeping {
        /// Suspended (memory kept: waking resumes) rather than stopped (waking re-runs the
        /// hooks and the seed).
        suspended: bool,
        /// URLs to show (the apps answer once the database is awake).
        links: Vec<Link>,
    },
    /// Its database restarted behind our back: its data is gone until the next deploy re-runs
    /// the hooks and the seed.
    Reset,
    /// The environment was removed by the lifetime policy (expired, or evicted by the cap).
    Removed {
        /// Why, and how to bring it back.
        reason: String,
    },
}

impl ReportState {
    /// The state's kind.
    pub fn kind(&self) -> ReportKind {
        match self {
            ReportState::Deploying => ReportKind::Deploying,
            ReportState::Ready { .. } => ReportKind::Ready,
            ReportState::Failed { .. } => ReportKind::Failed,
            ReportState::Skipped { .. } => ReportKind::Skipped,
            ReportState::TornDown | ReportState::Removed { .. } => ReportKind::TornDown,
            ReportState::Sleeping { .. } => ReportKind::Sleeping,
            ReportState::Reset => ReportKind::Reset,
        }
    }
}

/// The kind of a report state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Deploying.
    Deploying,
    /// Ready.
    Ready,
    /// Failed.
    Failed,
    /// Torn down.
    TornDown,
    /// No preview, on purpose.
    Skipped,
    /// Asleep.
    Sleeping,
    /// Reset (its database lost its data).
    Reset,
}

/// A status report to publish on the PR (sticky comment, deployment status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The environment.
    pub name: PreviewName,
    /// The PR.
    pub pr: PrNumber,
    /// Head branch (untrusted text; providers escape it).
    pub branch: Option<String>,
    /// The commit deployed.
    pub commit: Option<String>,
    /// What to show.
    pub state: ReportState,
    /// Link to the CI run, when known.
    pub run_url: Option<String>,
    /// When the run that made this report started. Hosts keep it with the published report and
    /// never replace a report of a run that started later (see
    /// [`SourceHost::publish_report`](crate::SourceHost::publish_report)), so a slow run cannot
    /// overwrite a newer outcome with an older one. `None`: unknown, always published.
    pub started_at: Option<Timestamp>,
    /// How long each phase of the run took, as far as it got when the report was made (empty:
    /// not timed). Like `run_url`, it describes the run rather than the environment: it is not
    /// part of [`Report::digest`], so a re-run that only took a different time publishes nothing.
    pub phases: Vec<crate::error::PhaseTiming>,
    /// Expiry, sleep and cost, when the pipeline knows them. Not part of [`Report::digest`]: the
    /// cost so far grows by the second, and a re-deploy that changed nothing does not publish
    /// only to say so.
    pub lifetime: Option<Lifetime>,
}

impl Report {
    /// A digest of what the report says: everything but `run_url`, `started_at` and `phases`,
    /// which describe the run that wrote it rather than the environment's state. Hosts store it with the published report and give it
    /// back in [`ReportSummary::digest`], so a re-run can tell "the PR already shows exactly this"
    /// from one read, without publishing again. 64 bits of SHA-256: a change detector, not a MAC
    /// (a report holds no secret).
    pub fn digest(&self) -> String {
        let what = (&self.name, self.pr, &self.branch, &self.commit, &self.state);
        let json = serde_json::to_string(&what).unwrap_or_default();
        let hash = Sha256::digest(json.as_bytes());
        hash[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What the report says about how long the preview lives and what it costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lifetime {
    /// When it expires unless there is activity (a push, a deploy, a command); `None`: never
    /// (no `lifetime.ttl`, or kept).
    pub expires_at: Option<Timestamp>,
    /// When its database goes to sleep unless there is activity; `None`: never.
    pub sleeps_at: Option<Timestamp>,
    /// Whether the keep label exempts it from expiry.
    pub kept: bool,
    /// The label that keeps it.
    pub keep_label: String,
    /// The cost estimate, when shown.
    pub cost: Option<CostEstimate>,
}

/// An estimate of what one preview costs, in cents of `currency` (always shown as an estimate,
/// with the date of its prices).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostEstimate {
    /// Currency code.
    pub currency: String,
    /// Since it was created, counting the time it slept at the sleeping rate.
    pub so_far_cents: u64,
    /// A day of running.
    pub per_day_running_cents: u64,
    /// A day of sleeping.
    pub per_day_sleeping_cents: u64,
    /// The date of the price table.
    pub prices_dated: String,
}

impl CostEstimate {
    /// One line for people: `≈ $6.65 so far; $0.81/day running, $0.07/day asleep (estimate,
    /// prices of 2024-04)`.
    pub fn line(&self) -> String {
        let money = |c: u64| {
            if self.currency == "USD" {
                format!("${}.{:02}", c / 100, c % 100)
            } else {
                format!("{}.{:02} {}", c / 100, c % 100, self.currency)
            }
        };
        format!(
            "≈ {} so far; {}/day running, {}/day asleep (estimate, prices of {})",
            money(self.so_far_cents),
            money(self.per_day_running_cents),
            money(self.per_day_sleeping_cents),
            self.prices_dated
        )
    }
}

/// What a published report says, read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportSummary {
    /// Its state.
    pub kind: ReportKind,
    /// The commit it names.
    pub commit: Option<String>,
    /// [`Report::digest`] of the published report, when the host stored one (`None`: unknown, so
    /// the pipeline publishes again rather than assume it is current).
    pub digest: Option<String>,
    /// [`Report::started_at`] of the published report, when the host stored one.
    pub started_at: Option<Timestamp>,
}

impl ReportSummary {
    /// Whether the published report comes from a run that started after `started_at` (a report
    /// made then must not replace it). Unknown times on either side are never newer.
    pub fn is_newer_than(&self, started_at: Option<Timestamp>) -> bool {
        matches!((self.started_at, started_at), (Some(published), Some(ours)) if published > ours)
    }
}

macro_rules! forward_source_host {
    ($($ptr:ty),*) => {$(
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: SourceHost + ?Sized> SourceHost for $ptr {
            fn kind(&self) -> &'static str { (**self).kind() }
            async fn get_pull_request(&self, pr: PrNumber) -> Result<Option<PullRequest>> {
                (**self).get_pull_request(pr).await
            }
            async fn list_open_pull_requests(&self) -> Result<Vec<PullRequest>> {
                (**self).list_open_pull_requests().await
            }
            async fn get_report(&self, name: &PreviewName, pr: PrNumber) -> Result<Option<ReportSummary>> {
                (**self).get_report(name, pr).await
            }
            async fn publish_report(&self, report: &Report) -> Result<Outcome> {
                (**self).publish_report(report).await
            }
            async fn add_label(&self, pr: PrNumber, label: &str) -> Result<Outcome> {
                (**self).add_label(pr, label).await
            }
        }
    )*};
}

forward_source_host!(Arc<T>, Box<T>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forks_are_recognised() {
        let mut pr = PullRequest {
            number: PrNumber::new(1).unwrap(),
            state: PrState::Open,
            draft: false,
            title: "t".into(),
            head_branch: "b".into(),
            head_sha: "s".into(),
            head_repo: Some("acme/app".into()),
            base_repo: "acme/app".into(),
            labels: vec![],
        };
        assert!(!pr.is_fork());
        pr.head_repo = Some("mallory/app".into());
        assert!(pr.is_fork());
        pr.head_repo = None;
        assert!(pr.is_fork());
    }
}
