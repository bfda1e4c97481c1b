//! [`InMemoryApps`]: the app host, in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::host::{
    AppDeployment, AppHost, AppRef, AppSpec, AppStatus, Commit, Outcome, Owned, ResourceChange,
};
use crate::name::PreviewName;

use super::{Journal, PROVIDER, lock};

/// An env var as the in-memory app host stores it. `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredVar {
    /// Project.
    pub project: String,
    /// Branch it is scoped to.
    pub branch: String,
    /// Key.
    pub key: String,
    /// Target (always `preview` for ours).
    pub target: String,
    /// Owner marker (the environment name), `None` for vars someone else made.
    pub owner: Option<String>,
    value: String,
    secret: bool,
}

impl std::fmt::Debug for StoredVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredVar")
            .field("project", &self.project)
            .field("branch", &self.branch)
            .field("key", &self.key)
            .field("target", &self.target)
            .field("owner", &self.owner)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct DomainEntry {
    project: String,
    branch: String,
    owner: Option<String>,
}

#[derive(Debug, Clone)]
struct DeployEntry {
    id: String,
    project: String,
    branch: String,
    sha: String,
    owner: String,
    seq: u64,
    state: String,
}

#[derive(Default)]
struct AppState {
    journal: Journal,
    vars: Vec<StoredVar>,
    domains: BTreeMap<String, DomainEntry>,
    deployments: Vec<DeployEntry>,
    env_seq: BTreeMap<(String, String), u64>,
    seq: u64,
    next_state: BTreeMap<String, String>,
    /// Projects whose previews are protected, with their bypass secret when they have one.
    protected: BTreeMap<String, Option<String>>,
}

/// The header the in-memory app host names for its deployment protection bypass.
pub const PROTECTION_BYPASS_HEADER: &str = "x-memory-protection-bypass";

/// An in-memory [`AppHost`]. `Clone` shares state.
///
/// # Examples
/// A variable someone else set on the branch is a conflict, and nothing is touched:
/// ```
/// use std::time::Duration;
///
/// use preview_core::testing::InMemoryApps;
/// use preview_core::{AppHost, AppRef, AppSpec, EnvVar, Error, Naming, PrNumber};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let name = Naming::new("pr", "shop")?.name(PrNumber::new(42)?);
/// let spec = AppSpec {
///     target: AppRef {
///         app: "web".into(),
///         project: "prj_web".into(),
///         domain: Some("pr-42.preview.example.com".into()),
///     },
///     branch: "feature/login".into(),
///     env: vec![EnvVar { key: "GREETING".into(), value: "hello".into(), sensitive: false }],
///     adopt_existing: false,
///     deploy_timeout: Duration::from_secs(600),
///     fingerprint_key: None,
/// };
/// let apps = InMemoryApps::new();
/// apps.add_foreign_var("prj_web", "feature/login", "GREETING", "preview");
/// let err = apps.apply_app(&name, &spec).await.unwrap_err();
/// assert!(matches!(err, Error::Conflict { .. }), "{err}");
/// assert_eq!(apps.vars().len(), 1);
/// assert!(apps.domains().is_empty());
/// # Ok::<(), preview_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct InMemoryApps {
    inner: Arc<Mutex<AppState>>,
}

impl std::fmt::Debug for InMemoryApps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.inner);
        f.debug_struct("InMemoryApps")
            .field("vars", &s.vars.len())
            .field("domains", &s.domains.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl InMemoryApps {
    /// An empty host.
    pub fn new() -> Self {
        Self::default()
    }

    journal_api!();

    /// Every stored var, sorted by project, branch and key (`Debug` hides values).
    pub fn vars(&self) -> Vec<StoredVar> {
        let mut v = lock(&self.inner).vars.clone();
        v.sort_by(|a, b| (&a.project, &a.branch, &a.key).cmp(&(&b.project, &b.branch, &b.key)));
        v
    }

    /// The value of a stored var (tests only).
    pub fn var_value(&self, project: &str, branch: &str, key: &str) -> Option<String> {
        lock(&self.inner)
            .vars
            .iter()
            .find(|v| v.project == project && v.branch == branch && v.key == key)
            .map(|v| v.value.clone())
    }

    /// Deletes a var out of band (drift tests); not a call.
    pub fn remove_var(&self, project: &str, branch: &str, key: &str) -> bool {
        let mut s = lock(&self.inner);
        let before = s.vars.len();
        s.vars
            .retain(|v| !(v.project == project && v.branch == branch && v.key == key));
        s.vars.len() != before
    }

    /// Detaches a domain out of band (drift tests); not a call.
    pub fn remove_domain(&self, domain: &str) -> bool {
        lock(&self.inner).domains.remove(domain).is_some()
    }

    /// Every attached domain.
    pub fn domains(&self) -> Vec<String> {
        lock(&self.inner).domains.keys().cloned().collect()
    }

    /// Deployments not cancelled: (project, branch, sha, state).
    pub fn deployments(&self) -> Vec<(String, String, String, String)> {
        lock(&self.inner)
            .deployments
            .iter()
            .map(|d| {
                (
                    d.project.clone(),
                    d.branch.clone(),
                    d.sha.clone(),
                    d.state.clone(),
                )
            })
            .collect()
    }

    /// Adds a var someone else owns (conflict tests); `target` may be `production` etc.
    pub fn add_foreign_var(&self, project: &str, branch: &str, key: &str, target: &str) {
        lock(&self.inner).vars.push(StoredVar {
            project: project.into(),
            branch: branch.into(),
            key: key.into(),
            target: target.into(),
            owner: None,
            value: "foreign".into(),
            secret: false,
        });
    }

    /// Attaches a domain to someone else's project (conflict tests).
    pub fn add_foreign_domain(&self, domain: &str, project: &str) {
        lock(&self.inner).domains.insert(
            domain.into(),
            DomainEntry {
                project: project.into(),
                branch: String::new(),
                owner: None,
            },
        );
    }

    /// Protects the previews of `project`, with `bypass` as its automation bypass secret (none:
    /// protected with no way through).
    pub fn protect(&self, project: &str, bypass: Option<&str>) {
        lock(&self.inner)
            .protected
            .insert(project.into(), bypass.map(str::to_string));
    }

    /// The next deployment of `project` ends in `state` (e.g. `ERROR`) instead of `READY`.
    pub fn set_next_deploy_state(&self, project: &str, state: &str) {
        lock(&self.inner)
            .next_state
            .insert(project.into(), state.into());
    }
}

#[async_trait]
impl AppHost for InMemoryApps {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    async fn get_app(&self, name: &PreviewName, target: &AppRef) -> Result<Option<AppStatus>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let owner = name.as_str();
        let env_keys: Vec<String> = s
            .vars
            .iter()
            .filter(|v| v.project == target.project && v.owner.as_deref() == Some(owner))
            .map(|v| v.key.clone())
            .collect();
        let domain = target.domain.clone().filter(|d| {
            s.domains
                .get(d)
                .is_some_and(|e| e.owner.as_deref() == Some(owner))
        });
        let deployment = s
            .deployments
            .iter()
            .rev()
            .find(|d| d.project == target.project && d.owner == owner)
            .map(|d| deployment_of(d, domain.as_deref()));
        let found = (!env_keys.is_empty() || domain.is_some() || deployment.is_some()).then_some(
            AppStatus {
                env_keys,
                domain,
                deployment,
            },
        );
        s.journal.run_as(
            "get_app",
            owner,
            &format!("{owner}/{}", target.project),
            || Ok((found, false)),
        )
    }

    async fn apply_app(&self, name: &PreviewName, spec: &AppSpec) -> Result<Vec<ResourceChange>> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let owner = name.as_str().to_string();
        let project = spec.target.project.clone();
        // Observe and decide first, so a conflict touches nothing.
        conflicts(s, &owner, &project, spec)?;
        let AppState {
            journal,
            vars,
            domains,
            env_seq,
            seq,
            ..
        } = s;
        journal.run_as("apply_app", &owner, &format!("{owner}/{project}"), || {
            let mut changes = Vec::new();
            let env_changed = converge_vars(vars, &owner, &project, spec, &mut changes);
            if env_changed {
                *seq += 1;
                env_seq.insert((project.clone(), spec.branch.clone()), *seq);
            }
            if let Some(d) = &spec.target.domain {
                let outcome = match domains.get(d) {
                    Some(e) if e.branch == spec.branch => Outcome::Unchanged,
                    Some(_) => Outcome::Updated,
                    None => Outcome::Created,
                };
                domains.insert(
                    d.clone(),
                    DomainEntry {
                        project: project.clone(),
                        branch: spec.branch.clone(),
                        owner: Some(owner.clone()),
                    },
                );
                changes.push(ResourceChange::new(PROVIDER, "domain", d.clone(), outcome));
            }
            let mutated = changes.iter().any(|c| c.outcome != Outcome::Unchanged);
            Ok((changes, mutated))
        })
    }

    async fn deploy_app(
        &self,
        name: &PreviewName,
        spec: &AppSpec,
        commit: &Commit,
    ) -> Result<(AppDeployment, Outcome)> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let owner = name.as_str().to_string();
        let project = spec.target.project.clone();
        let env_seq = s
            .env_seq
            .get(&(project.clone(), spec.branch.clone()))
            .copied()
            .unwrap_or(0);
        let next_state = s.next_state.remove(&project);
        let AppState {
            journal,
            deployments,
            seq,
            ..
        } = s;
        let (dep, outcome) =
            journal.run_as("deploy_app", &owner, &format!("{owner}/{project}"), || {
                if let Some(d) = deployments.iter().rev().find(|d| {
                    d.project == project
                        && d.owner == owner
                        && d.sha == commit.sha
                        && d.state == "READY"
                        && d.seq > env_seq
                }) {
                    return Ok(((d.clone(), Outcome::Unchanged), false));
                }
                *seq += 1;
                let d = DeployEntry {
                    id: format!("dpl_{seq}"),
                    project: project.clone(),
                    branch: commit.branch.clone(),
                    sha: commit.sha.clone(),
                    owner: owner.clone(),
                    seq: *seq,
                    state: next_state.unwrap_or_else(|| "READY".into()),
                };
                deployments.push(d.clone());
                Ok(((d, Outcome::Created), true))
            })?;
        if dep.state != "READY" {
            return Err(Error::failed(
                format!("deployment {} of {project}", dep.id),
                format!(
                    "ended in state {} (code BUILD_FAILED: build failed); inspect https://memory.invalid/{}",
                    dep.state, dep.id
                ),
            ));
        }
        Ok((deployment_of(&dep, spec.target.domain.as_deref()), outcome))
    }

    async fn delete_app(&self, name: &PreviewName, target: &AppRef) -> Result<Vec<ResourceChange>> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let owner = name.as_str().to_string();
        let AppState {
            journal,
            vars,
            domains,
            deployments,
            ..
        } = s;
        journal.run_as(
            "delete_app",
            &owner,
            &format!("{owner}/{}", target.project),
            || {
                let mut changes = Vec::new();
                vars.retain(|v| {
                    let ours =
                        v.project == target.project && v.owner.as_deref() == Some(owner.as_str());
                    if ours {
                        changes.push(ResourceChange::new(
                            PROVIDER,
                            "env_var",
                            format!("{}/{}", v.project, v.key),
                            Outcome::Removed,
                        ));
                    }
                    !ours
                });
                if let Some(d) = &target.domain {
                    let ours = domains
                        .get(d)
                        .is_some_and(|e| e.owner.as_deref() == Some(owner.as_str()));
                    if ours {
                        domains.remove(d);
                    }
                    changes.push(ResourceChange::new(
                        PROVIDER,
                        "domain",
                        d.clone(),
                        if ours {
                            Outcome::Removed
                        } else {
                            Outcome::AlreadyGone
                        },
                    ));
                }
                for d in deployments.iter_mut().filter(|d| {
                    d.project == target.project && d.owner == owner && d.state == "BUILDING"
                }) {
                    d.state = "CANCELED".into();
                    changes.push(ResourceChange::new(
                        PROVIDER,
                        "deployment",
                        d.id.clone(),
                        Outcome::Removed,
                    ));
                }
                let mutated = changes.iter().any(|c| c.outcome == Outcome::Removed);
                if changes.is_empty() {
                    changes.push(ResourceChange::new(
                        PROVIDER,
                        "env_vars",
                        format!("{}/{owner}", target.project),
                        Outcome::AlreadyGone,
                    ));
                }
                Ok((changes, mutated))
            },
        )
    }

    async fn list_apps(&self, projects: &[String]) -> Result<Vec<Owned>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let mut out: Vec<Owned> = Vec::new();
        for v in s.vars.iter().filter(|v| projects.contains(&v.project)) {
            if let Some(o) = &v.owner {
                out.push(Owned {
                    name: o.clone(),
                    provider: PROVIDER.into(),
                    resource: format!("env_var {}/{}", v.project, v.key),
                    created_at: None,
                });
            }
        }
        for (d, e) in s
            .domains
            .iter()
            .filter(|(_, e)| projects.contains(&e.project))
        {
            if let Some(o) = &e.owner {
                out.push(Owned {
                    name: o.clone(),
                    provider: PROVIDER.into(),
                    resource: format!("domain {d}"),
                    created_at: None,
                });
            }
        }
        s.journal.run("list_apps", "", || Ok((out, false)))
    }

    async fn get_protection_bypass(
        &self,
        target: &AppRef,
        secret: Option<secrecy::SecretString>,
    ) -> Result<Option<crate::host::ProtectionBypass>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let protected = s.protected.get(&target.project).cloned();
        s.journal.run("get_protection_bypass", &target.project, || {
            let secret = match (secret, protected) {
                (Some(given), _) => Some(given),
                (None, Some(Some(own))) => Some(secrecy::SecretString::from(own)),
                (None, None) => None,
                (None, Some(None)) => {
                    return Err(Error::failed(
                        format!("project {}", target.project),
                        "its previews are protected and it has no bypass secret",
                    ));
                }
            };
            let found = secret.map(|secret| crate::host::ProtectionBypass {
                header: PROTECTION_BYPASS_HEADER.into(),
                secret,
            });
            Ok((found, false))
        })
    }
}

/// Whether applying `spec` would take over a variable or a domain that is not `owner`'s: the
/// conflict, recorded, before anything is touched.
fn conflicts(s: &mut AppState, owner: &str, project: &str, spec: &AppSpec) -> Result<()> {
    for var in &spec.env {
        if let Some(existing) = s.vars.iter().find(|v| {
            v.project == project
                && v.branch == spec.branch
                && v.key == var.key
                && v.target == "preview"
        }) {
            if existing.owner.as_deref() != Some(owner) && !spec.adopt_existing {
                s.journal.record("apply_app", owner, false);
                return Err(Error::Conflict {
                    provider: PROVIDER,
                    message: format!(
                        "env var {} on branch {:?} of {project} is not ours (set adopt_existing to take it over)",
                        var.key, spec.branch
                    ),
                    request_id: None,
                });
            }
        }
    }
    if let Some(d) = &spec.target.domain {
        if let Some(e) = s.domains.get(d) {
            if e.project != project || e.owner.as_deref() != Some(owner) {
                s.journal.record("apply_app", owner, false);
                return Err(Error::Conflict {
                    provider: PROVIDER,
                    message: format!(
                        "domain {d} belongs to project {} and not to this environment",
                        e.project
                    ),
                    request_id: None,
                });
            }
        }
    }
    Ok(())
}

/// Converges `owner`'s variables of `spec`'s branch in `project` to `spec.env`, removing the ones
/// it no longer has; whether any changed.
fn converge_vars(
    vars: &mut Vec<StoredVar>,
    owner: &str,
    project: &str,
    spec: &AppSpec,
    changes: &mut Vec<ResourceChange>,
) -> bool {
    let mut env_changed = false;
    for var in &spec.env {
        let id = format!("{project}/{}", var.key);
        match vars.iter_mut().find(|v| {
            v.project == project
                && v.branch == spec.branch
                && v.key == var.key
                && v.target == "preview"
        }) {
            Some(v)
                if v.value == var.value.expose()
                    && v.owner.as_deref() == Some(owner)
                    && v.secret == var.value.is_secret() =>
            {
                changes.push(ResourceChange::new(
                    PROVIDER,
                    "env_var",
                    id,
                    Outcome::Unchanged,
                ));
            }
            Some(v) => {
                v.value = var.value.expose().to_string();
                v.secret = var.value.is_secret();
                v.owner = Some(owner.to_string());
                env_changed = true;
                changes.push(ResourceChange::new(
                    PROVIDER,
                    "env_var",
                    id,
                    Outcome::Updated,
                ));
            }
            None => {
                vars.push(StoredVar {
                    project: project.to_string(),
                    branch: spec.branch.clone(),
                    key: var.key.clone(),
                    target: "preview".into(),
                    owner: Some(owner.to_string()),
                    value: var.value.expose().to_string(),
                    secret: var.value.is_secret(),
                });
                env_changed = true;
                changes.push(ResourceChange::new(
                    PROVIDER,
                    "env_var",
                    id,
                    Outcome::Created,
                ));
            }
        }
    }
    // Vars we own on this branch that the spec no longer has are stale: remove them.
    let before = vars.len();
    vars.retain(|v| {
        let stale = v.project == project
            && v.owner.as_deref() == Some(owner)
            && !spec
                .env
                .iter()
                .any(|e| e.key == v.key && v.branch == spec.branch);
        if stale {
            changes.push(ResourceChange::new(
                PROVIDER,
                "env_var",
                format!("{project}/{}", v.key),
                Outcome::Removed,
            ));
        }
        !stale
    });
    env_changed || vars.len() != before
}

fn deployment_of(d: &DeployEntry, domain: Option<&str>) -> AppDeployment {
    AppDeployment {
        id: d.id.clone(),
        url: format!("https://{}-{}.memory.invalid", d.project, d.id),
        domain_url: domain.map(|d| format!("https://{d}")),
        state: d.state.clone(),
        inspector_url: Some(format!("https://memory.invalid/{}", d.id)),
        sha: d.sha.clone(),
    }
}
