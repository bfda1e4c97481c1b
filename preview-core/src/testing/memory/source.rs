//! [`InMemorySource`]: the source host, in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::host::{
    Lifetime, Outcome, PrState, PullRequest, Report, ReportSummary, SourceHost, has_label,
};
use crate::name::{PrNumber, PreviewName};

use super::{Journal, PROVIDER, lock};

#[derive(Default)]
struct SourceState {
    journal: Journal,
    prs: BTreeMap<PrNumber, PullRequest>,
    reports: BTreeMap<String, Report>,
    history: Vec<Report>,
    close_after_reads: BTreeMap<PrNumber, (usize, PrState)>,
}

/// An in-memory [`SourceHost`]. `Clone` shares state.
///
/// # Examples
/// Open a pull request, close it, and see what the host says:
/// ```
/// use preview_core::testing::InMemorySource;
/// use preview_core::{PrState, SourceHost};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let source = InMemorySource::new("acme/shop");
/// let pr = source.open_pr(7, "fix/typo", "89abcdef0123456789abcdef0123456789abcdef");
/// assert_eq!(source.get_pull_request(pr).await?.map(|p| p.state), Some(PrState::Open));
/// source.set_state(pr, PrState::Closed);
/// assert_eq!(source.get_pull_request(pr).await?.map(|p| p.state), Some(PrState::Closed));
/// assert!(source.report("pr-7-shop").is_none());
/// # Ok::<(), preview_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct InMemorySource {
    repo: String,
    inner: Arc<Mutex<SourceState>>,
}

impl std::fmt::Debug for InMemorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemorySource")
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl InMemorySource {
    /// A repository `owner/name` with no PRs.
    pub fn new(repo: &str) -> Self {
        Self {
            repo: repo.into(),
            inner: Arc::default(),
        }
    }

    journal_api!();

    /// Adds (or replaces) an open PR from a branch of this repository.
    pub fn open_pr(&self, number: u32, branch: &str, sha: &str) -> PrNumber {
        let n = PrNumber::new(u64::from(number))
            .unwrap_or_else(|_| panic!("invalid PR number {number}"));
        lock(&self.inner).prs.insert(
            n,
            PullRequest {
                number: n,
                state: PrState::Open,
                draft: false,
                title: format!("PR {number}"),
                head_branch: branch.into(),
                head_sha: sha.into(),
                head_repo: Some(self.repo.clone()),
                base_repo: self.repo.clone(),
                labels: vec![],
            },
        );
        n
    }

    /// Changes a PR (state, head, fork …).
    pub fn update_pr(&self, pr: PrNumber, f: impl FnOnce(&mut PullRequest)) {
        if let Some(p) = lock(&self.inner).prs.get_mut(&pr) {
            f(p);
        }
    }

    /// Sets a PR's state.
    pub fn set_state(&self, pr: PrNumber, state: PrState) {
        self.update_pr(pr, |p| p.state = state);
    }

    /// Removes a PR (as if it never existed).
    pub fn remove_pr(&self, pr: PrNumber) {
        lock(&self.inner).prs.remove(&pr);
    }

    /// After `reads` more reads of `pr`, it becomes `state` (close-during-deploy tests).
    pub fn change_state_after_reads(&self, pr: PrNumber, reads: usize, state: PrState) {
        lock(&self.inner)
            .close_after_reads
            .insert(pr, (reads, state));
    }

    /// The current report of an environment.
    pub fn report(&self, name: &str) -> Option<Report> {
        lock(&self.inner).reports.get(name).cloned()
    }

    /// Every report ever published, in order.
    pub fn report_history(&self) -> Vec<Report> {
        lock(&self.inner).history.clone()
    }
}

#[async_trait]
impl SourceHost for InMemorySource {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    async fn get_pull_request(&self, pr: PrNumber) -> Result<Option<PullRequest>> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let found = s.prs.get(&pr).cloned();
        if let Some((left, state)) = s.close_after_reads.get_mut(&pr) {
            if *left <= 1 {
                let state = *state;
                s.close_after_reads.remove(&pr);
                if let Some(p) = s.prs.get_mut(&pr) {
                    p.state = state;
                }
            } else {
                *left -= 1;
            }
        }
        s.journal
            .run("get_pull_request", &pr.to_string(), || Ok((found, false)))
    }

    async fn list_open_pull_requests(&self) -> Result<Vec<PullRequest>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let open = s
            .prs
            .values()
            .filter(|p| p.state == PrState::Open)
            .cloned()
            .collect();
        s.journal
            .run("list_open_pull_requests", "", || Ok((open, false)))
    }

    async fn get_report(&self, name: &PreviewName, pr: PrNumber) -> Result<Option<ReportSummary>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let found = s
            .reports
            .get(name.as_str())
            .filter(|r| r.pr == pr)
            .map(|r| ReportSummary {
                kind: r.state.kind(),
                commit: r.commit.clone(),
                digest: Some(r.digest()),
                started_at: r.started_at,
            });
        s.journal
            .run("get_report", name.as_str(), || Ok((found, false)))
    }

    async fn publish_report(&self, report: &Report) -> Result<Outcome> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let key = report.name.as_str().to_string();
        let SourceState {
            journal,
            reports,
            history,
            ..
        } = s;
        journal.run("publish_report", &key, || {
            let outcome = match reports.get(&key) {
                // The same report (whichever run made it) is no change; as on GitHub, where the
                // comment's text is compared, a new expiry or sleep time is one.
                Some(r)
                    if Report {
                        started_at: report.started_at,
                        phases: report.phases.clone(),
                        lifetime: without_cost(r.lifetime.as_ref()),
                        ..r.clone()
                    } == Report {
                        lifetime: without_cost(report.lifetime.as_ref()),
                        ..report.clone()
                    } =>
                {
                    return Ok((Outcome::Unchanged, false));
                }
                // Never replace the report of a run that started later.
                Some(r)
                    if matches!((r.started_at, report.started_at), (Some(p), Some(o)) if p > o) =>
                {
                    return Ok((Outcome::Skipped, false));
                }
                Some(_) => Outcome::Updated,
                None => Outcome::Created,
            };
            reports.insert(key.clone(), report.clone());
            history.push(report.clone());
            Ok((outcome, true))
        })
    }

    async fn add_label(&self, pr: PrNumber, label: &str) -> Result<Outcome> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let SourceState { journal, prs, .. } = s;
        journal.run("add_label", &pr.to_string(), || {
            let Some(p) = prs.get_mut(&pr) else {
                return Err(Error::NotFound {
                    provider: PROVIDER,
                    what: format!("pull request {pr}"),
                });
            };
            if has_label(&p.labels, label) {
                return Ok((Outcome::Unchanged, false));
            }
            p.labels.push(label.to_string());
            Ok((Outcome::Updated, true))
        })
    }
}

/// A lifetime note without its cost estimate, whose "so far" grows by the second (GitHub's
/// comment shows it in cents, so a re-run moments later writes the same text).
fn without_cost(l: Option<&Lifetime>) -> Option<Lifetime> {
    l.map(|l| Lifetime {
        cost: None,
        ..l.clone()
    })
}
