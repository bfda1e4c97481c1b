//! [`GitHubSource`]: the [`SourceHost`] over the GitHub REST API: observe (the PR, our comments,
//! the deployments), decide, and call the endpoints in `core.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use preview_core::host::has_label;
use preview_core::{
    Error, Outcome, PrNumber, PrState, PreviewName, PullRequest, Report, ReportState,
    ReportSummary, Result, SourceHost,
};
use tokio::sync::OnceCell;

use crate::comment::{self, ACTIONS_BOT};
use crate::core::{Core, found};
use crate::errors::PROVIDER;
use crate::wire;

/// Pull requests, the sticky comment and deployments of one GitHub repository.
///
/// Each request is re-sent after a transient failure as far as its idempotency allows (see
/// [`GitHubSourceBuilder::retry`](crate::GitHubSourceBuilder)); giving up is `RetriesExhausted`,
/// which the pipeline does not retry again, so attempts do not multiply. Mutating requests are
/// serialised and spaced at least `write_spacing` apart (GitHub's guidance for avoiding secondary
/// rate limits); at most `max_concurrent_reads` reads are in flight at once. Reads of a pull
/// request, and of each page of the open ones, are conditional (`If-None-Match`), so polling an
/// unchanged PR or re-listing unchanged pages costs no quota: the ETags and parsed answers are
/// kept in memory (bounded) for as long as this value lives, so only a long-lived process
/// (calling `sweep` again and again) benefits; a new one starts with nothing cached.
pub struct GitHubSource {
    core: Core,
    configured_identity: Option<String>,
    identity: OnceCell<String>,
    environment_template: String,
    /// Help lines of the `/preview` commands the sticky comment lists (none: not listed).
    commands: Vec<String>,
    /// Conditional reads: each pull request read one by one, and each page of the open ones.
    pub(crate) cache: crate::etag_cache::Caches,
    /// Whether each comment author seen with our marker may write to the repository.
    writers: Mutex<HashMap<String, bool>>,
}

/// One of our sticky comments for an environment.
struct Found {
    id: u64,
    body: String,
    /// Authored by the token's own identity (so it can always be edited and deleted).
    mine: bool,
}

impl fmt::Debug for GitHubSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubSource")
            .field("repository", &self.core.repository())
            .field("base_url", &self.core.base().as_str())
            .field("identity", &self.configured_identity)
            .field("environment_template", &self.environment_template)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for GitHubSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "github(repo={})", self.core.repository())
    }
}

impl GitHubSource {
    pub(crate) fn new(core: Core, identity: Option<String>, environment_template: String) -> Self {
        Self {
            core,
            configured_identity: identity,
            identity: OnceCell::new(),
            environment_template,
            commands: Vec::new(),
            cache: crate::etag_cache::Caches::default(),
            writers: Mutex::new(HashMap::new()),
        }
    }

    /// Lists `commands` (help lines) in every sticky comment.
    pub(crate) fn with_commands(mut self, commands: Vec<String>) -> Self {
        self.commands = commands;
        self
    }

    /// The API of the repository (the endpoints `triggers.rs` uses too).
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// The repository, `owner/name`.
    pub fn repository(&self) -> String {
        self.core.repository()
    }

    /// The deployment environment name of an environment (from the template).
    pub fn environment_name(&self, name: &PreviewName) -> String {
        self.environment_template
            .replace("{pr}", &name.pr().to_string())
            .replace("{name}", name.as_str())
    }

    /// The login our comments are authored by.
    pub(crate) async fn identity(&self) -> Result<&str> {
        let id = self
            .identity
            .get_or_try_init(|| async {
                if let Some(id) = &self.configured_identity {
                    return Ok(id.clone());
                }
                match self.core.user().await {
                    Ok(login) => Ok(login),
                    Err(Error::Unauthorized { status: 403, .. }) => {
                        tracing::info!(
                            identity = ACTIONS_BOT,
                            "GET /user is forbidden (Actions token); assuming the Actions bot"
                        );
                        Ok(ACTIONS_BOT.to_string())
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(id.as_str())
    }

    /// Whether `login` may write to the repository (admin, maintain or write), asked once per
    /// login. An author who cannot is not one we trust, whatever the comment says.
    pub(crate) async fn can_write(&self, login: &str) -> Result<bool> {
        let key = login.to_ascii_lowercase();
        if let Some(known) = self.writers.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(known);
        }
        let writes = match self.core.collaborator_permission(login).await {
            Ok(p) => {
                matches!(p.permission.as_str(), "admin" | "maintain" | "write")
                    || matches!(p.role_name.as_deref(), Some("admin" | "maintain" | "write"))
            }
            // Not a collaborator, or a token that may not ask: not trusted.
            Err(Error::NotFound { .. } | Error::Unauthorized { .. }) => false,
            Err(e) => return Err(e),
        };
        if let Ok(mut m) = self.writers.lock() {
            m.insert(key, writes);
        }
        Ok(writes)
    }

    /// Our sticky comments for an environment, oldest first: the marker of exactly this
    /// environment, by an author we trust: the token's own identity, [`ACTIONS_BOT`] (the
    /// workflow's token), or anyone who may write to the repository (a maintainer's personal
    /// token, used for a run by hand). A marker in anyone else's comment is pasted or forged: it is
    /// never trusted, edited or deleted. Searches every page. Several are found when runs under
    /// different identities (or two concurrent first runs) each made one; `publish_report`
    /// converges them to one.
    async fn find_comments(&self, name: &PreviewName, pr: PrNumber) -> Result<Vec<Found>> {
        let me = self.identity().await?.to_string();
        let Some(comments) = found(self.core.comments(pr).await)? else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for c in comments {
            let (Some(body), Some(user)) = (c.body, c.user) else {
                continue;
            };
            if comment::parse_marker(&body, name).is_none() {
                continue;
            }
            let author = user.login;
            let mine = author.eq_ignore_ascii_case(&me);
            // Only members of the repository can have write access: anyone else is not asked
            // about (a public PR can have any number of commenters).
            let member = matches!(
                c.author_association.as_deref(),
                Some("OWNER" | "MEMBER" | "COLLABORATOR")
            );
            let trusted = mine
                || author.eq_ignore_ascii_case(ACTIONS_BOT)
                || (member && self.can_write(&author).await?);
            if trusted {
                found.push(Found {
                    id: c.id,
                    body,
                    mine,
                });
            } else {
                tracing::warn!(
                    comment = c.id,
                    author = %author,
                    "a comment carries this environment's marker but its author may not write to the repository: ignored"
                );
            }
        }
        Ok(found)
    }

    /// Which of `found` is the sticky comment: our own oldest, else the oldest (so each run under
    /// any identity converges on the same one once the others are gone).
    fn keeper(found: &[Found]) -> Option<usize> {
        found
            .iter()
            .position(|f| f.mine)
            .or(if found.is_empty() { None } else { Some(0) })
    }

    /// Deletes one of our duplicate comments. Returns whether it is gone.
    async fn remove_comment(&self, id: u64) -> Result<bool> {
        match self.core.delete_comment(id).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(true),
            Err(Error::Unauthorized { status: 403, .. }) => {
                tracing::warn!(
                    comment = id,
                    "cannot delete a duplicate preview comment of another identity (the token may not edit others' comments)"
                );
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the deployment and its latest status match the report. Returns whether it wrote.
    async fn sync_deployment(&self, report: &Report, comment_unchanged: bool) -> Result<bool> {
        let env = self.environment_name(&report.name);
        match &report.state {
            // No environment: its deployments are inactive (already, when this is a skip).
            ReportState::TornDown | ReportState::Skipped { .. } | ReportState::Removed { .. } => {
                self.tear_down_deployments(&env, comment_unchanged).await
            }
            state => {
                let Some(sha) = comment::clean_sha(report.commit.as_deref()) else {
                    tracing::debug!(env, "no commit in the report: no deployment");
                    return Ok(false);
                };
                let existing = self.find_deployment(&env, sha).await?;
                let (id, created) = match existing {
                    Some(id) => (id, false),
                    // A failure before anything was announced has no deployment to mark.
                    None if matches!(state, ReportState::Failed { .. }) => return Ok(false),
                    None => {
                        let id = self.create_deployment(&env, sha, &report.name).await?;
                        (self.keep_oldest_deployment(&env, sha, id).await?, true)
                    }
                };
                let desired = match state {
                    ReportState::Deploying => "in_progress",
                    ReportState::Ready { .. } | ReportState::Sleeping { .. } => "success",
                    _ => "failure",
                };
                let env_url = comment::primary_url(state);
                let log_url = report.run_url.as_deref().and_then(comment::safe_url);
                let description = comment::status_description(state);
                if !created {
                    if let Some(latest) = self.core.latest_status(id).await? {
                        let same = latest.state == desired
                            && none_if_empty(latest.environment_url.as_deref())
                                == env_url.as_deref()
                            && none_if_empty(latest.log_url.as_deref()) == log_url.as_deref()
                            && latest.description.as_deref().unwrap_or("") == description;
                        if same {
                            return Ok(false);
                        }
                    }
                }
                self.post_status(
                    id,
                    desired,
                    env_url.as_deref(),
                    log_url.as_deref(),
                    &description,
                )
                .await?;
                Ok(true)
            }
        }
    }

    /// Two runs that announced at once each created a deployment of `sha`: every run uses the
    /// oldest, and the one that created a newer one retires it (inactive, then deleted, as GitHub
    /// requires). The later creator always sees the earlier one, so exactly one is left.
    async fn keep_oldest_deployment(&self, env: &str, sha: &str, created: u64) -> Result<u64> {
        let Some(oldest) = self.find_deployment(env, sha).await? else {
            return Ok(created);
        };
        if oldest < created {
            tracing::info!(
                env,
                deployment = created,
                kept = oldest,
                "another run created a deployment of this commit first; removing ours"
            );
            self.post_status(created, "inactive", None, None, "A duplicate, removed")
                .await?;
            found(self.core.delete_deployment(created).await)?;
        }
        Ok(oldest)
    }

    /// The oldest deployment of `sha` in `env` (the one every run uses).
    async fn find_deployment(&self, env: &str, sha: &str) -> Result<Option<u64>> {
        let existing = self.core.deployments(env, Some(sha)).await?;
        Ok(existing
            .iter()
            .filter(|d| d.sha == sha && d.environment == env)
            .map(|d| d.id)
            .min())
    }

    /// Creates a deployment of `sha` in `env` (transient, never auto-merging).
    async fn create_deployment(&self, env: &str, sha: &str, name: &PreviewName) -> Result<u64> {
        let description = format!("Preview environment {name}");
        let body = wire::CreateDeployment {
            ref_name: sha,
            task: "deploy",
            auto_merge: false,
            required_contexts: Vec::new(),
            environment: env,
            description: &description,
            transient_environment: true,
            production_environment: false,
        };
        // A 202 (GitHub merged something instead of deploying) is a conflict: we asked it not to.
        let d = self.core.create_deployment(&body).await?;
        tracing::info!(env, deployment = d.id, "created deployment");
        Ok(d.id)
    }

    async fn post_status(
        &self,
        deployment: u64,
        state: &str,
        environment_url: Option<&str>,
        log_url: Option<&str>,
        description: &str,
    ) -> Result<()> {
        let body = wire::CreateDeploymentStatus {
            state,
            environment_url,
            log_url,
            description,
            auto_inactive: true,
        };
        self.core.create_status(deployment, &body).await?;
        tracing::info!(deployment, state, "posted deployment status");
        Ok(())
    }

    /// Marks every deployment of `env` inactive, then deletes the environment. A 403 on the
    /// delete (the Actions token may not) is a warning. When the comment already says "torn down"
    /// the delete was attempted before, so it is not repeated.
    async fn tear_down_deployments(&self, env: &str, comment_unchanged: bool) -> Result<bool> {
        let mut wrote = false;
        let deployments = self.core.deployments(env, None).await?;
        for d in deployments.iter().filter(|d| d.environment == env) {
            let latest = self.core.latest_status(d.id).await?;
            if latest.as_ref().map(|s| s.state.as_str()) != Some("inactive") {
                self.post_status(d.id, "inactive", None, None, "Preview environment removed")
                    .await?;
                wrote = true;
            }
        }
        if comment_unchanged && !wrote {
            return Ok(false);
        }
        if !self.core.environment_exists(env).await? {
            return Ok(wrote);
        }
        match self.core.delete_environment(env).await {
            Ok(_) => {
                tracing::info!(env, "deleted environment");
                Ok(true)
            }
            Err(Error::NotFound { .. }) => Ok(wrote),
            Err(Error::Unauthorized {
                status: 403,
                message,
                request_id,
                ..
            }) => {
                tracing::warn!(
                    env,
                    message,
                    request_id = request_id.as_deref().unwrap_or(""),
                    "cannot delete the deployment environment (the Actions token lacks administration rights); its deployments are inactive"
                );
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces the text of the keeper `f` with `body`.
    async fn edit_comment(&self, report: &Report, f: &Found, body: &str) -> Result<Outcome> {
        match self.core.update_comment(f.id, body).await {
            Ok(()) => {
                if matches!(report.state, ReportState::Ready { .. }) {
                    // Look once more: an older run racing this one may have posted its
                    // "in progress" after our "success". If it lands even later, that
                    // run's own final publish finds this comment and puts "success"
                    // back (in `publish_report`).
                    self.sync_deployment(report, false).await?;
                }
                Ok(Outcome::Updated)
            }
            // Deleted meanwhile: ours replaces it.
            Err(Error::NotFound { .. }) => {
                self.core.create_comment(report.pr, body).await?;
                Ok(Outcome::Created)
            }
            // Another identity's comment, and this token may not edit it: a comment of
            // its own would be a second one that the others cannot trust (it may not
            // write to the repository either), so say so instead.
            Err(Error::Unauthorized {
                status: 403,
                request_id,
                ..
            }) if !f.mine => Err(Error::Unauthorized {
                provider: PROVIDER,
                status: 403,
                message: format!(
                    "the preview comment of this environment (comment {}) was written by another identity, and this token ({}) may not edit it: run preview with the workflow's GITHUB_TOKEN or a token of someone with write access to the repository",
                    f.id,
                    self.identity().await?
                ),
                request_id,
            }),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn convert(&self, pr: wire::PullRequest) -> Result<PullRequest> {
        let state = if pr.merged == Some(true) || pr.merged_at.is_some() {
            PrState::Merged
        } else if pr.state == "open" {
            PrState::Open
        } else {
            PrState::Closed
        };
        Ok(PullRequest {
            number: PrNumber::new(pr.number)?,
            state,
            draft: pr.draft.unwrap_or(false),
            title: pr.title,
            head_branch: pr.head.ref_name,
            head_sha: pr.head.sha,
            head_repo: pr.head.repo.map(|r| r.full_name),
            base_repo: pr
                .base
                .repo
                .map(|r| r.full_name)
                .unwrap_or_else(|| self.repository()),
            labels: pr.labels.into_iter().map(|l| l.name).collect(),
        })
    }
}

fn none_if_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

#[async_trait]
impl SourceHost for GitHubSource {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, fields(pr = %pr))]
    async fn get_pull_request(&self, pr: PrNumber) -> Result<Option<PullRequest>> {
        self.pull_request(pr).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_open_pull_requests(&self) -> Result<Vec<PullRequest>> {
        self.open_pull_requests().await
    }

    #[tracing::instrument(skip_all, fields(env = %name, pr = %pr))]
    async fn get_report(&self, name: &PreviewName, pr: PrNumber) -> Result<Option<ReportSummary>> {
        let found = self.find_comments(name, pr).await?;
        Ok(Self::keeper(&found)
            .and_then(|i| comment::parse_marker(&found[i].body, name))
            // Two comments that may disagree: nothing is "already shown".
            .map(|s| ReportSummary {
                digest: s.digest.filter(|_| found.len() == 1),
                ..s
            }))
    }

    /// Converges to one comment, whatever identity ran before: the keeper (ours if we have one)
    /// is updated, the other trusted ones are deleted. A token that may not edit another
    /// identity's keeper gets a clear `Unauthorized` rather than leaving a second comment.
    #[tracing::instrument(skip_all, fields(env = %report.name, pr = %report.pr, state = ?report.state.kind()))]
    async fn publish_report(&self, report: &Report) -> Result<Outcome> {
        let body = comment::comment(report, &self.commands);
        let mut found = self.find_comments(&report.name, report.pr).await?;
        let existing = Self::keeper(&found).map(|i| found.remove(i));
        // Never replace the report of a run that started later (a slow run would otherwise
        // overwrite a newer outcome with an older one): nothing is written at all then.
        if let Some(f) = &existing {
            let published = comment::parse_marker(&f.body, &report.name);
            if let Some(p) = published.filter(|p| p.is_newer_than(report.started_at)) {
                let ready = matches!(report.state, ReportState::Ready { .. });
                if ready && p.digest.as_deref() == Some(report.digest().as_str()) {
                    // The newer run says the same thing: the comment stays, but the deployment
                    // is brought in line (a status this run posted earlier, e.g. "in progress",
                    // may have landed after the newer run's "success").
                    return Ok(if self.sync_deployment(report, true).await? {
                        Outcome::Updated
                    } else {
                        Outcome::Unchanged
                    });
                }
                tracing::info!(
                    comment = f.id,
                    "the comment shows a newer run's report; not replacing it"
                );
                return Ok(Outcome::Skipped);
            }
        }
        let mut removed_duplicate = false;
        for f in &found {
            tracing::warn!(comment = f.id, "removing a duplicate preview comment");
            removed_duplicate |= self.remove_comment(f.id).await?;
        }
        // The same text (whichever run wrote it) is no change: nothing is written.
        let unchanged = existing.as_ref().is_some_and(|f| {
            comment::without_stamp(f.body.replace("\r\n", "\n").trim_end())
                == comment::without_stamp(body.trim_end())
        });
        // The first comment of an environment comes before its first deployment, so a
        // deployment never exists without the comment that leads teardown to it (a run killed
        // between the two leaves a comment and no deployment). After that, deployments first:
        // the comment is written last, so what it says (ready, torn down) proves the deployments
        // were brought in line before it.
        let first = existing.is_none()
            && !matches!(
                report.state,
                ReportState::TornDown | ReportState::Skipped { .. }
            );
        if first {
            self.core.create_comment(report.pr, &body).await?;
            self.sync_deployment(report, false).await?;
            return Ok(Outcome::Created);
        }
        let deployment_wrote = self.sync_deployment(report, unchanged).await?;
        let outcome = match existing {
            Some(_) if unchanged => Outcome::Unchanged,
            Some(f) => self.edit_comment(report, &f, &body).await?,
            None => {
                self.core.create_comment(report.pr, &body).await?;
                Outcome::Created
            }
        };
        Ok(match outcome {
            Outcome::Unchanged if deployment_wrote || removed_duplicate => Outcome::Updated,
            o => o,
        })
    }
    /// Reads the PR's labels (a conditional read: usually a free 304 right after the caller's
    /// own read), and adds the label only when it is missing.
    #[tracing::instrument(skip_all, fields(pr = %pr))]
    async fn add_label(&self, pr: PrNumber, label: &str) -> Result<Outcome> {
        let Some(pull) = self.get_pull_request(pr).await? else {
            return Err(Error::NotFound {
                provider: PROVIDER,
                what: format!("pull request {pr}"),
            });
        };
        if has_label(&pull.labels, label) {
            return Ok(Outcome::Unchanged);
        }
        self.core.add_labels(pr, &[label]).await?;
        Ok(Outcome::Updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::GitHubSourceBuilder;

    #[test]
    fn a_deleted_fork_is_a_fork() {
        let gh = GitHubSourceBuilder::new()
            .token("t")
            .repository("acme/app")
            .build()
            .unwrap();
        // GitHub sends `head.repo: null` when the fork was deleted (the spec says it cannot).
        let wire: wire::PullRequest = serde_json::from_str(
            r#"{"number":7,"state":"closed","draft":false,"merged":false,"merged_at":null,
                "title":"t","labels":[{"name":"bug"}],
                "head":{"ref":"f","sha":"abc","repo":null},
                "base":{"ref":"main","sha":"def","repo":{"full_name":"acme/app"}}}"#,
        )
        .unwrap();
        let pr = gh.convert(wire).unwrap();
        assert_eq!(pr.head_repo, None);
        assert!(pr.is_fork());
        assert_eq!(pr.state, PrState::Closed);
        assert_eq!(pr.labels, ["bug"]);
    }
}
