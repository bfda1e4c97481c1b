//! The app side: [`AppHost`] and the types it speaks (an app's spec for one environment, its
//! deployments and status, the deployment protection bypass).

use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;

use super::{Outcome, Owned, ResourceChange};
use crate::error::Result;
use crate::name::PreviewName;
use crate::template::Value;

/// Hosts the apps (e.g. Vercel projects): branch-scoped env vars, custom domains, deployments.
///
/// # Contract
/// - Env vars are scoped to the PR's branch and the preview target only; nothing here ever writes or
///   deletes a production or development var.
/// - `apply_app` writes the env vars and attaches the domain; a second call with the same spec makes
///   no mutating call. A var with the same key and branch that we do not own is an
///   [`Error::Conflict`](crate::Error::Conflict) unless `spec.adopt_existing`.
/// - `deploy_app` makes sure a ready deployment of `commit` built *after* the current env vars
///   exists, and that the domain points at it; when one already does, it makes no mutating call.
/// - `delete_app` removes every var we own for the environment, the domain, and cancels an in-flight
///   deployment; each already-gone resource is reported `AlreadyGone`.
/// - `list_apps` returns the environments that still own something on the given projects.
///
/// # Examples
/// Converge an app's branch-scoped variables and domain, then remove them:
/// ```
/// use std::time::Duration;
///
/// use preview_core::testing::InMemoryApps;
/// use preview_core::{AppHost, AppRef, AppSpec, EnvVar, Naming, Outcome, PrNumber};
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
/// let host: &dyn AppHost = &InMemoryApps::new();
/// let changes = host.apply_app(&name, &spec).await?;
/// assert!(changes.iter().all(|c| c.outcome == Outcome::Created), "{changes:?}");
/// let again = host.apply_app(&name, &spec).await?;
/// assert!(again.iter().all(|c| c.outcome == Outcome::Unchanged));
/// let removed = host.delete_app(&name, &spec.target).await?;
/// assert!(removed.iter().all(|c| c.outcome == Outcome::Removed), "{removed:?}");
/// # Ok::<(), preview_core::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait AppHost: Debug + Send + Sync + 'static {
    /// Provider kind, e.g. `vercel`.
    fn kind(&self) -> &'static str;

    /// What exists of the app for this environment; `None` when nothing does.
    ///
    /// # Errors
    /// Provider errors.
    async fn get_app(&self, name: &PreviewName, target: &AppRef) -> Result<Option<AppStatus>>;

    /// Writes the branch-scoped env vars and attaches the domain.
    ///
    /// # Errors
    /// [`Error::Conflict`](crate::Error::Conflict) for unowned vars or a domain owned elsewhere;
    /// provider errors.
    ///
    /// # Idempotency
    /// Idempotent (upserts; lookups before creates).
    async fn apply_app(&self, name: &PreviewName, spec: &AppSpec) -> Result<Vec<ResourceChange>>;

    /// Deploys `commit` (when needed), points the domain at it, and waits until it is ready.
    ///
    /// # Errors
    /// [`Error::Failed`](crate::Error::Failed) when the deployment ends in an error state (with
    /// state, code, message and inspector URL); [`Error::Timeout`](crate::Error::Timeout) at the
    /// deadline; provider errors.
    ///
    /// # Idempotency
    /// Idempotent: an existing deployment of the same commit, newer than the env vars, is reused.
    async fn deploy_app(
        &self,
        name: &PreviewName,
        spec: &AppSpec,
        commit: &Commit,
    ) -> Result<(AppDeployment, Outcome)>;

    /// Removes everything the environment owns on this app.
    ///
    /// # Errors
    /// Provider errors; already gone is success.
    async fn delete_app(&self, name: &PreviewName, target: &AppRef) -> Result<Vec<ResourceChange>>;

    /// Environments that own something on these projects.
    ///
    /// # Errors
    /// Provider errors.
    async fn list_apps(&self, projects: &[String]) -> Result<Vec<Owned>>;

    /// Checks, without sending anything, what `apply_app` and `deploy_app` would refuse for
    /// `spec` and `commit`: the branch, the domain, the env keys and values, the commit, against
    /// this provider's rules. The pipeline calls it before its first mutating call of a deploy,
    /// so a refusal leaves nothing behind. The default accepts everything.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) saying what is wrong and what would be valid.
    fn preflight_app(&self, name: &PreviewName, spec: &AppSpec, commit: &Commit) -> Result<()> {
        let _ = (name, spec, commit);
        Ok(())
    }

    /// What lets automation through the deployment protection in front of `target`'s previews
    /// (Vercel: the project's "Protection Bypass for Automation" secret). With `secret` (from
    /// the configuration) the host only names its header; without, it reads the secret from the
    /// project. `Ok(None)`: nothing stands in the way. The pipeline sends it only with readiness
    /// and seed requests to the app's own URL.
    ///
    /// The default knows no protection: `Ok(None)`, and a configured secret is an error.
    ///
    /// # Errors
    /// When the previews are protected and no bypass exists (never a config error: it is found
    /// after the deploy began); provider errors.
    async fn get_protection_bypass(
        &self,
        target: &AppRef,
        secret: Option<SecretString>,
    ) -> Result<Option<ProtectionBypass>> {
        match secret {
            None => Ok(None),
            Some(_) => Err(crate::Error::failed(
                format!("app {}", target.app),
                format!(
                    "a protection bypass secret is configured, but the {} app host has no deployment protection to send it to",
                    self.kind()
                ),
            )),
        }
    }
}

/// One environment variable for an app.
#[derive(Debug, Clone, Serialize)]
pub struct EnvVar {
    /// Key.
    pub key: String,
    /// Value (secret when a secret went into it).
    pub value: Value,
    /// Store with the host's write-only ("sensitive") type.
    pub sensitive: bool,
}

/// Which app, on which project, for which branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppRef {
    /// Logical app name from the config (`api`, `ui`).
    pub app: String,
    /// Provider project id or name.
    pub project: String,
    /// Custom domain of this environment, if any.
    pub domain: Option<String>,
}

/// Desired state of one app for one environment.
#[derive(Debug, Clone, Serialize)]
pub struct AppSpec {
    /// Which app and project.
    pub target: AppRef,
    /// The PR's head branch (untrusted text: a value, never a name).
    pub branch: String,
    /// Branch-scoped env vars.
    pub env: Vec<EnvVar>,
    /// Take over vars with the same key and branch that we do not own, instead of failing.
    pub adopt_existing: bool,
    /// How long a deployment may take to become ready.
    #[serde(with = "super::secs")]
    pub deploy_timeout: Duration,
    /// The key of the ownership fingerprints a host keeps next to each value it writes, so an
    /// unchanged value is recognised without reading it back and the fingerprint reveals nothing
    /// about it (the pipeline derives it from the master secret:
    /// [`FINGERPRINT_KEY`](crate::secret::FINGERPRINT_KEY)). `None`: the host uses a key of its
    /// own, so its fingerprints only compare within its own life (another process rewrites the
    /// values once).
    #[serde(skip)]
    pub fingerprint_key: Option<crate::secret::DigestKey>,
}

/// The commit to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commit {
    /// Repository `owner/name`.
    pub repo: String,
    /// Branch.
    pub branch: String,
    /// Full commit SHA.
    pub sha: String,
}

/// A deployment of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppDeployment {
    /// Provider id.
    pub id: String,
    /// The deployment's own URL.
    pub url: String,
    /// The custom domain's URL, when it points at this deployment.
    pub domain_url: Option<String>,
    /// Provider state (`READY`, …).
    pub state: String,
    /// Where to look at it (build logs).
    pub inspector_url: Option<String>,
    /// The commit it was built from.
    pub sha: String,
}

/// How automation gets through an app's deployment protection: a header sent with readiness and
/// seed requests to the app's own URL, and to nothing else. `Debug` shows the header name only.
#[derive(Clone)]
pub struct ProtectionBypass {
    /// The header (Vercel: `x-vercel-protection-bypass`).
    pub header: String,
    /// Its value.
    pub secret: secrecy::SecretString,
}

impl fmt::Debug for ProtectionBypass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectionBypass")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// What exists of an app for an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppStatus {
    /// Keys of the env vars we own on that branch.
    pub env_keys: Vec<String>,
    /// The custom domain, when attached.
    pub domain: Option<String>,
    /// The latest deployment of the branch we made, if any.
    pub deployment: Option<AppDeployment>,
}

macro_rules! forward_app_host {
    ($($ptr:ty),*) => {$(
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: AppHost + ?Sized> AppHost for $ptr {
            fn kind(&self) -> &'static str { (**self).kind() }
            async fn get_app(&self, name: &PreviewName, target: &AppRef) -> Result<Option<AppStatus>> {
                (**self).get_app(name, target).await
            }
            async fn apply_app(&self, name: &PreviewName, spec: &AppSpec) -> Result<Vec<ResourceChange>> {
                (**self).apply_app(name, spec).await
            }
            async fn deploy_app(&self, name: &PreviewName, spec: &AppSpec, commit: &Commit) -> Result<(AppDeployment, Outcome)> {
                (**self).deploy_app(name, spec, commit).await
            }
            async fn delete_app(&self, name: &PreviewName, target: &AppRef) -> Result<Vec<ResourceChange>> {
                (**self).delete_app(name, target).await
            }
            async fn list_apps(&self, projects: &[String]) -> Result<Vec<Owned>> {
                (**self).list_apps(projects).await
            }
            fn preflight_app(&self, name: &PreviewName, spec: &AppSpec, commit: &Commit) -> Result<()> {
                (**self).preflight_app(name, spec, commit)
            }
            async fn get_protection_bypass(&self, target: &AppRef, secret: Option<SecretString>) -> Result<Option<ProtectionBypass>> {
                (**self).get_protection_bypass(target, secret).await
            }
        }
    )*};
}

forward_app_host!(Arc<T>, Box<T>);
