//! Deployments of the environment: the current ones of a commit, a create that keeps the oldest
//! when two runs race, and the cancel of ours still in flight.

use preview_core::{AppSpec, Commit, Outcome, PreviewName, ResourceChange, Result};

use super::validate::validate_commit;
use super::{VercelApps, change};
use crate::core::{MAX_PAGES, is_failed_state};
use crate::ownership::{META_ENV, META_VARS};
use crate::wire;

/// Deployment states that are still moving.
const IN_PROGRESS: &str = "QUEUED,BUILDING,INITIALIZING";

impl VercelApps {
    /// Deployments of this commit for this environment, built with our current vars (created
    /// after `vars_at`, or carrying `digest`), not failed; oldest first.
    pub(super) async fn current_deployments(
        &self,
        name: &PreviewName,
        spec: &AppSpec,
        commit: &Commit,
        vars_at: f64,
        digest: Option<&str>,
    ) -> Result<Vec<wire::DeploymentItem>> {
        let mut found: Vec<wire::DeploymentItem> = self
            .core
            .list_deployments(
                &spec.target.project,
                &[
                    ("sha", commit.sha.as_str()),
                    ("branch", spec.branch.as_str()),
                ],
                1,
            )
            .await?
            .into_iter()
            .filter(|d| {
                let current =
                    d.created > vars_at || digest.is_some() && d.meta(META_VARS) == digest;
                d.meta(META_ENV) == Some(name.as_str()) && current && !is_failed_state(d.state())
            })
            .collect();
        found.sort_by(|a, b| a.created.total_cmp(&b.created).then(a.uid.cmp(&b.uid)));
        Ok(found)
    }

    /// Creates a deployment of `commit` and returns the id every run uses: two runs that found
    /// none each created one, so every run uses the oldest, and the one that created a newer one
    /// deletes it (the later creator always sees the earlier one, so exactly one is left).
    pub(super) async fn create_deployment(
        &self,
        name: &PreviewName,
        spec: &AppSpec,
        commit: &Commit,
        (vars_at, digest): (f64, Option<&str>),
    ) -> Result<String> {
        let (org, repo) = validate_commit(spec, commit)?;
        let project = spec.target.project.as_str();
        let body = wire::CreateDeployment {
            name: project,
            project,
            git_source: wire::GitSource {
                kind: "github",
                org,
                repo,
                git_ref: &commit.branch,
                sha: &commit.sha,
            },
            meta: [
                (META_ENV, name.as_str()),
                ("githubCommitSha", commit.sha.as_str()),
            ]
            .into_iter()
            .chain(digest.map(|d| (META_VARS, d)))
            .collect(),
        };
        let created = self.core.create_deployment(&body).await?;
        let oldest = self
            .current_deployments(name, spec, commit, vars_at, digest)
            .await?
            .into_iter()
            .next()
            .map_or_else(|| created.id.clone(), |d| d.uid);
        if oldest != created.id {
            tracing::info!(
                project,
                deployment = %created.id,
                kept = %oldest,
                "another run created a deployment of this commit first; deleting ours"
            );
            self.core.delete_deployment(&created.id).await?;
        }
        Ok(oldest)
    }

    /// Cancels our in-flight deployments of `name`.
    pub(super) async fn cancel_deployments(
        &self,
        project: &str,
        name: &PreviewName,
    ) -> Result<Vec<ResourceChange>> {
        let inflight: Vec<wire::DeploymentItem> = self
            .core
            .list_deployments(project, &[("state", IN_PROGRESS)], MAX_PAGES)
            .await?
            .into_iter()
            .filter(|d| d.meta(META_ENV) == Some(name.as_str()) && !is_failed_state(d.state()))
            .filter(|d| d.state() != "READY")
            .collect();
        let mut changes = Vec::new();
        for d in inflight {
            let outcome = if self.core.cancel_deployment(&d.uid).await? {
                Outcome::Removed
            } else {
                Outcome::AlreadyGone
            };
            changes.push(change("deployment", d.uid, outcome));
        }
        Ok(changes)
    }
}
