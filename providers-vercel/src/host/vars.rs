//! The environment's env vars: ours found by their marker, the spec's decided against what
//! exists, written in one upsert, deleted in one request.

use std::collections::BTreeSet;

use preview_core::{AppSpec, Error, Outcome, PreviewName, ResourceChange, Result};

use super::{VercelApps, change};
use crate::core::found;
use crate::errors::PROVIDER;
use crate::ownership::{fingerprint, guard_preview_only, marker_comment, owned_by, parse_mark};
use crate::wire;

impl VercelApps {
    /// Our vars of `name` on `project`, every branch.
    pub(super) async fn our_env(
        &self,
        project: &str,
        name: &PreviewName,
    ) -> Result<Vec<wire::Env>> {
        Ok(self
            .core
            .list_env(project, None)
            .await?
            .into_iter()
            .filter(|e| owned_by(e, name))
            .collect())
    }

    /// Decides each var of the spec against what exists on its branch: the change to report,
    /// and the write to send unless it is unchanged. Refuses (before any write) vars of the same
    /// key that are not ours, unless the spec adopts them.
    pub(super) fn plan_vars<'s>(
        &self,
        name: &PreviewName,
        spec: &'s AppSpec,
        existing: &[wire::Env],
    ) -> Result<(Vec<ResourceChange>, Vec<wire::EnvWrite<'s>>)> {
        let project = spec.target.project.as_str();
        let preview = vec!["preview".to_string()];
        let mut changes = Vec::new();
        let mut writes = Vec::new();
        let mut unowned = Vec::new();
        let fp_key = spec.fingerprint_key.as_ref().unwrap_or(&self.own_key);
        for var in &spec.env {
            let kind = if var.sensitive {
                "sensitive"
            } else {
                "encrypted"
            };
            // A var still carrying an unkeyed fingerprint (written before they were keyed)
            // differs here, so it is rewritten once with the keyed one.
            let fp = fingerprint(fp_key, name, &var.key, kind, var.value.expose());
            let same_key: Vec<&wire::Env> = existing.iter().filter(|e| e.key == var.key).collect();
            let outcome = match same_key.iter().find(|e| owned_by(e, name)) {
                Some(e) => {
                    let mark = e.comment.as_deref().and_then(parse_mark);
                    let same = mark.and_then(|m| m.fp).as_deref() == Some(fp.as_str())
                        && e.kind == kind
                        && e.targets() == preview;
                    if same {
                        Outcome::Unchanged
                    } else {
                        Outcome::Updated
                    }
                }
                None if same_key.is_empty() => Outcome::Created,
                None if spec.adopt_existing => Outcome::Updated,
                None => {
                    unowned.push(var.key.as_str());
                    continue;
                }
            };
            changes.push(change("env_var", format!("{project}/{}", var.key), outcome));
            if outcome != Outcome::Unchanged {
                guard_preview_only(&var.key, &preview, Some(&spec.branch))?;
                writes.push(wire::EnvWrite {
                    key: &var.key,
                    value: var.value.expose(),
                    kind,
                    target: ["preview"],
                    git_branch: &spec.branch,
                    comment: marker_comment(name, &fp),
                });
            }
        }
        if !unowned.is_empty() {
            return Err(Error::Conflict {
                provider: PROVIDER,
                message: format!(
                    "env vars {} already exist on project {project} for this branch and are not managed by preview; remove them or set adopt_existing",
                    unowned.join(", ")
                ),
                request_id: None,
            });
        }
        Ok((changes, writes))
    }

    /// Sends the env upsert; a `failed[]` in its 2xx answer is an error naming the keys.
    pub(super) async fn write_vars(
        &self,
        project: &str,
        writes: &[wire::EnvWrite<'_>],
    ) -> Result<()> {
        let (created, request_id) = self.core.upsert_env(project, writes).await?;
        if created.failed.is_empty() {
            return Ok(());
        }
        let failed: Vec<String> = created
            .failed
            .iter()
            .map(|f| {
                let key = f
                    .error
                    .key
                    .as_deref()
                    .or(f.error.env_var_key.as_deref())
                    .unwrap_or("(unknown key)");
                format!("{key} ({})", f.error.code)
            })
            .collect();
        tracing::warn!(failed = %failed.join(", "), "vercel rejected some env vars");
        Err(Error::Api {
            provider: PROVIDER,
            status: 201,
            message: format!(
                "env vars not written on project {project}: {}",
                failed.join(", ")
            ),
            request_id,
        })
    }

    /// Deletes our vars (`ours`) in one request.
    pub(super) async fn delete_vars(
        &self,
        project: &str,
        ours: &[wire::Env],
    ) -> Result<Vec<ResourceChange>> {
        let ids: Vec<&str> = ours.iter().filter_map(|e| e.id.as_deref()).collect();
        if ids.is_empty() {
            return Ok(vec![change(
                "env_var",
                format!("{project}/*"),
                Outcome::AlreadyGone,
            )]);
        }
        let removed: BTreeSet<String> = found(self.core.remove_env(project, &ids).await)?
            .map(|r| r.ids.into_iter().collect())
            .unwrap_or_default();
        Ok(ours
            .iter()
            .map(|e| {
                let gone = e.id.as_ref().is_some_and(|id| removed.contains(id));
                change(
                    "env_var",
                    format!("{project}/{}", e.key),
                    if gone {
                        Outcome::Removed
                    } else {
                        Outcome::AlreadyGone
                    },
                )
            })
            .collect())
    }
}
