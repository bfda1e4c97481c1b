//! [`VercelApps`]: the [`AppHost`] over the Vercel REST API. Observe, decide, then call
//! [`Core`](crate::core::Core); the requests themselves live there. This file is the trait impl;
//! the steps it calls live beside it by role: input checks (`validate`), env vars (`vars`), the
//! branch domain (`domains`), deployments (`deployments`).

mod deployments;
mod domains;
mod validate;
mod vars;

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;

use preview_core::secrecy::SecretString;
use preview_core::{
    AppDeployment, AppHost, AppRef, AppSpec, AppStatus, Commit, DigestKey, Error, Outcome, Owned,
    PreviewName, ProtectionBypass, ResourceChange, Result,
};

use crate::core::Core;
use crate::errors::PROVIDER;
use crate::ownership::{
    META_ENV, guard_preview_only, owned_by, parse_mark, preview_name, vars_digest,
};
use crate::wire;
use validate::{validate_commit, validate_spec, validate_target};

/// The header that lets automation through a project's Deployment Protection ("Protection
/// Bypass for Automation"); its value is the project's bypass secret.
pub const PROTECTION_BYPASS_HEADER: &str = "x-vercel-protection-bypass";

/// The Vercel [`AppHost`]: branch-scoped env vars, branch domains and git deployments.
///
/// Ownership: every env var we write carries [`MARKER`](crate::MARKER) (with the environment's
/// name) in its `comment`; deployments carry the name in `meta.previewEnv`. Domains cannot carry
/// a marker: a domain is recognised as ours through its `gitBranch`, which must be the branch of
/// our marked env vars. Teardown therefore removes the domain *before* the vars, so an
/// interrupted teardown still leaves the marked vars that lead back to it.
///
/// - `apply_app` reads the project's whole env list: our vars left on another branch (the PR's
///   head branch was renamed) are removed and our domain is moved to the new branch.
/// - `deploy_app` reuses a deployment of the same commit carrying our `meta` and created after our
///   vars' last update; otherwise it creates one from `gitSource`, waits, and aliases the domain.
/// - `delete_app` cancels only in-flight deployments carrying our `meta` (never git-triggered
///   ones, which may be a branch's production builds); finished deployments are left to Vercel's
///   retention and do not count in `get_app`.
///
/// Each request is re-sent after a transient failure as far as its idempotency allows
/// ([`preview_core::http`]); giving up is `RetriesExhausted`, which the pipeline does not retry
/// again.
#[derive(Clone)]
pub struct VercelApps {
    core: Core,
    /// Fingerprint key for specs that bring none (see [`AppSpec::fingerprint_key`]).
    own_key: DigestKey,
}

impl fmt::Debug for VercelApps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VercelApps")
            .field("base_url", &self.core.base().as_str())
            .field("team_id", &self.core.team_id())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for VercelApps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.core.team_id() {
            Some(t) => write!(f, "vercel(team={t})"),
            None => f.write_str("vercel(personal)"),
        }
    }
}

fn timestamp(ms: f64) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(ms as i64).ok()
}

fn https(host: &str) -> String {
    if host.starts_with("https://") || host.starts_with("http://") {
        host.to_string()
    } else {
        format!("https://{host}")
    }
}

fn change(kind: &str, id: impl Into<String>, outcome: Outcome) -> ResourceChange {
    ResourceChange::new(PROVIDER, kind, id, outcome)
}

/// What `apply_app` found before deciding: the vars on the spec's branch, our vars on other
/// branches (a renamed head branch), and the domain as the project has it.
struct Observed<'s> {
    existing: Vec<wire::Env>,
    elsewhere: Vec<wire::Env>,
    domain: Option<(&'s str, Option<wire::Domain>)>,
}

impl Observed<'_> {
    /// Whether `d` is our domain still serving one of our old branches (it moves to the new one).
    fn moved(&self, d: &wire::Domain) -> bool {
        d.redirect.is_none()
            && d.git_branch.as_deref().is_some_and(|b| {
                self.elsewhere
                    .iter()
                    .any(|e| e.git_branch.as_deref() == Some(b))
            })
    }
}

impl VercelApps {
    pub(crate) fn new(core: Core) -> Result<Self> {
        Ok(Self {
            core,
            own_key: DigestKey::random()?,
        })
    }

    #[cfg(test)]
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// Reads what `apply_app` decides on.
    async fn observe<'s>(&self, name: &PreviewName, spec: &'s AppSpec) -> Result<Observed<'s>> {
        let project = spec.target.project.as_str();
        let branch = spec.branch.as_str();
        // The whole list, not only this branch: vars we own on another branch (the PR's head
        // branch was renamed) are stale, and lead back to a domain that is still ours.
        let all = self.core.list_env(project, None).await?;
        let (existing, elsewhere): (Vec<wire::Env>, Vec<wire::Env>) = all
            .into_iter()
            .partition(|e| e.git_branch.as_deref() == Some(branch));
        let elsewhere = elsewhere
            .into_iter()
            .filter(|e| owned_by(e, name) && e.git_branch.is_some())
            .collect();
        let domain = match &spec.target.domain {
            Some(d) => Some((d.as_str(), self.core.get_domain(project, d).await?)),
            None => None,
        };
        Ok(Observed {
            existing,
            elsewhere,
            domain,
        })
    }
}

#[async_trait]
impl AppHost for VercelApps {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, fields(env = %name, project = %target.project))]
    async fn get_app(&self, name: &PreviewName, target: &AppRef) -> Result<Option<AppStatus>> {
        validate_target(target)?;
        let project = target.project.as_str();
        let ours = self.our_env(project, name).await?;
        let branches: BTreeSet<&str> = ours
            .iter()
            .filter_map(|e| e.git_branch.as_deref())
            .collect();
        let mut env_keys: Vec<String> = ours.iter().map(|e| e.key.clone()).collect();
        env_keys.sort();
        env_keys.dedup();
        let domain = match &target.domain {
            Some(d) => self.core.get_domain(project, d).await?.and_then(|d| {
                let linked = d
                    .git_branch
                    .as_deref()
                    .is_some_and(|b| branches.is_empty() || branches.contains(b));
                linked.then_some(d.name)
            }),
            None => None,
        };
        // Deployments alone are not something the environment still holds: teardown leaves
        // finished ones to Vercel's retention, so they do not keep an environment alive.
        if env_keys.is_empty() && domain.is_none() {
            return Ok(None);
        }
        let branch_filter: Vec<(&str, &str)> = match branches.iter().next() {
            Some(b) if branches.len() == 1 => vec![("branch", *b)],
            _ => Vec::new(),
        };
        let deployment = self
            .core
            .list_deployments(project, &branch_filter, 1)
            .await?
            .into_iter()
            .filter(|d| d.meta(META_ENV) == Some(name.as_str()))
            .max_by(|a, b| a.created.total_cmp(&b.created))
            .map(|d| AppDeployment {
                id: d.uid.clone(),
                url: https(&d.url),
                domain_url: None,
                state: d.state().to_string(),
                inspector_url: d.inspector_url.clone(),
                sha: d.meta("githubCommitSha").unwrap_or_default().to_string(),
            });
        Ok(Some(AppStatus {
            env_keys,
            domain,
            deployment,
        }))
    }

    #[tracing::instrument(skip_all, fields(env = %name, project = %spec.target.project))]
    async fn apply_app(&self, name: &PreviewName, spec: &AppSpec) -> Result<Vec<ResourceChange>> {
        validate_spec(spec)?;
        let project = spec.target.project.as_str();
        let branch = spec.branch.as_str();
        let seen = self.observe(name, spec).await?;

        // Decide, refusing before any write.
        let (mut changes, writes) = self.plan_vars(name, spec, &seen.existing)?;
        let wanted: BTreeSet<&str> = spec.env.iter().map(|v| v.key.as_str()).collect();
        let stale: Vec<&wire::Env> = seen
            .existing
            .iter()
            .filter(|e| owned_by(e, name) && !wanted.contains(e.key.as_str()))
            .chain(seen.elsewhere.iter())
            .collect();
        for e in &stale {
            guard_preview_only(&e.key, &e.targets(), e.git_branch.as_deref())?;
        }
        // Our domain still serving the old branch moves to the new one; anyone else's is refused.
        let foreign_domain = seen
            .domain
            .as_ref()
            .and_then(|(_, d)| d.as_ref())
            .filter(|d| !seen.moved(d));
        if let Some(d) = foreign_domain {
            Self::check_domain(project, d, branch)?;
        }

        // Act.
        if !writes.is_empty() {
            self.write_vars(project, &writes).await?;
        }
        let stale_ids: Vec<&str> = stale.iter().filter_map(|e| e.id.as_deref()).collect();
        if !stale_ids.is_empty() {
            self.core.remove_env(project, &stale_ids).await?;
            for e in &stale {
                changes.push(change(
                    "env_var",
                    format!("{project}/{}", e.key),
                    Outcome::Removed,
                ));
            }
        }
        if let Some((d, found)) = &seen.domain {
            let outcome = match found {
                Some(existing) if seen.moved(existing) => {
                    self.core.move_domain(project, d, branch).await?;
                    Outcome::Updated
                }
                Some(_) => Outcome::Unchanged,
                None => self.add_domain(project, d, branch).await?,
            };
            changes.push(change("domain", *d, outcome));
        }
        Ok(changes)
    }

    #[tracing::instrument(skip_all, fields(env = %name, project = %spec.target.project))]
    async fn deploy_app(
        &self,
        name: &PreviewName,
        spec: &AppSpec,
        commit: &Commit,
    ) -> Result<(AppDeployment, Outcome)> {
        validate_spec(spec)?;
        validate_commit(spec, commit)?;
        let project = spec.target.project.as_str();

        // Env changes only reach deployments created after them, or carrying their digest.
        let ours: Vec<wire::Env> = self
            .core
            .list_env(project, Some(&spec.branch))
            .await?
            .into_iter()
            .filter(|e| owned_by(e, name))
            .collect();
        let vars_at = ours
            .iter()
            .filter_map(|e| e.updated_at.or(e.created_at))
            .fold(0.0_f64, f64::max);
        let digest = vars_digest(
            spec.fingerprint_key.as_ref().unwrap_or(&self.own_key),
            &ours,
        );
        let existing = self
            .current_deployments(name, spec, commit, vars_at, digest.as_deref())
            .await?;
        let (id, mut outcome) = match existing.last() {
            // The newest when several exist (left by earlier runs): the freshest build.
            Some(d) => (d.uid.clone(), Outcome::Unchanged),
            None => {
                let id = self
                    .create_deployment(name, spec, commit, (vars_at, digest.as_deref()))
                    .await?;
                (id, Outcome::Created)
            }
        };
        let d = self.core.wait_ready(&id, spec.deploy_timeout).await?;
        let domain_url = match &spec.target.domain {
            Some(domain) => {
                if !d.alias.iter().any(|a| a == domain) {
                    self.core.assign_alias(&d.id, domain).await?;
                    if outcome == Outcome::Unchanged {
                        outcome = Outcome::Updated;
                    }
                }
                Some(https(domain))
            }
            None => None,
        };
        Ok((
            AppDeployment {
                id: d.id.clone(),
                url: https(&d.url),
                domain_url,
                state: d.ready_state.clone(),
                inspector_url: d.inspector_url.clone(),
                sha: commit.sha.clone(),
            },
            outcome,
        ))
    }

    #[tracing::instrument(skip_all, fields(env = %name, project = %target.project))]
    async fn delete_app(&self, name: &PreviewName, target: &AppRef) -> Result<Vec<ResourceChange>> {
        validate_target(target)?;
        let project = target.project.as_str();
        let ours = self.our_env(project, name).await?;
        // Refuse before anything is deleted.
        for e in &ours {
            guard_preview_only(&e.key, &e.targets(), e.git_branch.as_deref())?;
        }
        let branches: BTreeSet<&str> = ours
            .iter()
            .filter_map(|e| e.git_branch.as_deref())
            .collect();
        let mut changes = Vec::new();
        // The domain first: the marked vars are what lead back to it.
        if let Some(domain) = &target.domain {
            changes.push(self.delete_domain(project, domain, &branches).await?);
        }
        changes.extend(self.cancel_deployments(project, name).await?);
        changes.extend(self.delete_vars(project, &ours).await?);
        Ok(changes)
    }

    fn preflight_app(&self, _: &PreviewName, spec: &AppSpec, commit: &Commit) -> Result<()> {
        // What apply_app and deploy_app refuse. The branch and the commit are the same for every
        // app, and so is their message: the pipeline reports it once.
        validate_spec(spec)?;
        validate_commit(spec, commit).map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(projects = projects.len()))]
    async fn list_apps(&self, projects: &[String]) -> Result<Vec<Owned>> {
        let mut out = Vec::new();
        for project in projects {
            let mut by_branch: Vec<(String, PreviewName)> = Vec::new();
            for e in self.core.list_env(project, None).await? {
                let Some(mark) = e.comment.as_deref().and_then(parse_mark) else {
                    continue;
                };
                let Some(name) = preview_name(&mark) else {
                    continue;
                };
                if let Some(b) = &e.git_branch {
                    by_branch.push((b.clone(), name.clone()));
                }
                out.push(Owned {
                    name: name.to_string(),
                    provider: PROVIDER.to_string(),
                    resource: format!("env_var {project}/{}", e.key),
                    created_at: e.created_at.and_then(timestamp),
                });
            }
            if by_branch.is_empty() {
                continue;
            }
            for d in self.core.list_domains(project).await? {
                let Some(branch) = &d.git_branch else {
                    continue;
                };
                let names: BTreeSet<&PreviewName> = by_branch
                    .iter()
                    .filter(|(b, _)| b == branch)
                    .map(|(_, n)| n)
                    .collect();
                for name in names {
                    out.push(Owned {
                        name: name.to_string(),
                        provider: PROVIDER.to_string(),
                        resource: format!("domain {}", d.name),
                        created_at: d.created_at.and_then(timestamp),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Reads the project (`GET /v9/projects/{id}`) unless `secret` is given: the newest
    /// `automation-bypass` secret of `protectionBypass` (an integration's bypass is not ours to
    /// use). No secret while a protection covers preview domains is an error, found before any
    /// request waits 401s out to the readiness deadline.
    #[tracing::instrument(skip_all, fields(project = %target.project))]
    async fn get_protection_bypass(
        &self,
        target: &AppRef,
        secret: Option<SecretString>,
    ) -> Result<Option<ProtectionBypass>> {
        validate_target(target)?;
        let bypass = |secret| ProtectionBypass {
            header: PROTECTION_BYPASS_HEADER.into(),
            secret,
        };
        if let Some(secret) = secret {
            return Ok(Some(bypass(secret)));
        }
        let project = target.project.as_str();
        let p = self.core.get_project(project).await?;
        let protected = p.protects_preview_domains();
        let newest = p
            .protection_bypass
            .into_iter()
            .filter(|(_, e)| e.scope == "automation-bypass")
            .max_by(|a, b| {
                let at = |e: &wire::BypassEntry| e.created_at.unwrap_or(0.0);
                at(&a.1).total_cmp(&at(&b.1))
            })
            .map(|(secret, _)| SecretString::from(secret));
        match newest {
            Some(secret) => Ok(Some(bypass(secret))),
            None if protected => Err(Error::Failed {
                what: format!("vercel project {project}"),
                message: format!(
                    "Deployment Protection covers its previews, and it has no Protection Bypass for Automation secret, so readiness and seed requests to app {} would get 401: create one (Project Settings → Deployment Protection → Protection Bypass for Automation), or name a variable holding one with apps.{}.protection_bypass = {{ from_env = \"…\" }}",
                    target.app, target.app
                ),
            }),
            None => Ok(None),
        }
    }
}
