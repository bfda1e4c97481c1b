//! The three provider traits.
//!
//! Each is a minimal contract (observe, converge, delete, list); ordering, retries, get-or-create
//! units and concurrency live once in the pipeline. All are `#[async_trait]` so they can be used as
//! `Arc<dyn …>`. Providers send each request once: the pipeline decides what to retry.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::error::Result;
use crate::model::{
    AppDeployment, AppRef, AppSpec, AppStatus, AppliedDatabase, Commit, Database, DatabaseSpec,
    Deleted, Outcome, Owned, ProtectionBypass, PullRequest, Report, ReportSummary, ResourceChange,
    Tunnels,
};
use crate::name::{PrNumber, PreviewName};

/// Hosts the database stack of each environment (e.g. a Fly.io app with one multi-container Machine).
///
/// # Contract
/// - `get_database` of a missing environment is `Ok(None)`, never an error.
/// - `apply_database` creates or converges to `spec` and returns once the stack is healthy. A second
///   call with the same spec makes no mutating call and reports every resource `Unchanged`. It never
///   creates a second instance of anything. Resources it finds under the environment's name that it
///   does not own are an [`Error::AlreadyExists`](crate::Error::AlreadyExists), never touched.
/// - `delete_database` of a missing environment is `Ok(Deleted::AlreadyGone)`. Something under the
///   environment's name that the host can see but does not own is never deleted and never
///   reported gone: it is an [`Error::AlreadyExists`](crate::Error::AlreadyExists) naming it.
/// - `list_databases` returns only environments this host owns (by name and ownership marker).
/// - `open_tunnels` gives local forwards to each service for hooks run on this machine, reachable
///   when it returns; dropping the [`Tunnels`] closes them.
#[async_trait]
pub trait DatabaseHost: Debug + Send + Sync + 'static {
    /// Provider kind, e.g. `fly`.
    fn kind(&self) -> &'static str;

    /// The database of an environment, if it exists.
    ///
    /// # Errors
    /// Provider errors; a missing database is `Ok(None)`.
    async fn get_database(&self, name: &PreviewName) -> Result<Option<Database>>;

    /// Creates or converges the stack, and waits until it is healthy.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) when the name is taken by something we
    /// do not own; [`Error::Timeout`](crate::Error::Timeout) or
    /// [`Error::Failed`](crate::Error::Failed) when it does not become healthy; provider errors.
    ///
    /// # Idempotency
    /// Idempotent as a whole: safe to retry and to re-run after a crash.
    async fn apply_database(
        &self,
        name: &PreviewName,
        spec: &DatabaseSpec,
    ) -> Result<AppliedDatabase>;

    /// Deletes the environment's stack and waits until it is gone.
    ///
    /// # Errors
    /// Provider errors; already gone is `Ok(Deleted::AlreadyGone)`.
    async fn delete_database(&self, name: &PreviewName) -> Result<Deleted>;

    /// The environments this host owns.
    ///
    /// # Errors
    /// Provider errors.
    async fn list_databases(&self) -> Result<Vec<Owned>>;

    /// Opens a local tunnel to every service of the stack and waits until each answers through it.
    ///
    /// # Errors
    /// When a tunnel cannot be opened or the service does not answer through it in time.
    async fn open_tunnels(&self, name: &PreviewName, spec: &DatabaseSpec) -> Result<Tunnels>;

    /// Checks, without sending anything, what `apply_database` (and, with `tunnels`,
    /// `open_tunnels`) would refuse: every derived name and value against this provider's rules,
    /// and what it needs on this machine (the program that opens tunnels). The pipeline calls it
    /// before its first mutating call of a deploy, so a refusal leaves nothing behind. The
    /// default accepts everything.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) saying what is wrong and what would be valid.
    fn preflight_database(
        &self,
        name: &PreviewName,
        spec: &DatabaseSpec,
        tunnels: bool,
    ) -> Result<()> {
        let _ = (name, spec, tunnels);
        Ok(())
    }
}

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
}

macro_rules! forward_database_host {
    ($($ptr:ty),*) => {$(
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: DatabaseHost + ?Sized> DatabaseHost for $ptr {
            fn kind(&self) -> &'static str { (**self).kind() }
            async fn get_database(&self, name: &PreviewName) -> Result<Option<Database>> {
                (**self).get_database(name).await
            }
            async fn apply_database(&self, name: &PreviewName, spec: &DatabaseSpec) -> Result<AppliedDatabase> {
                (**self).apply_database(name, spec).await
            }
            async fn delete_database(&self, name: &PreviewName) -> Result<Deleted> {
                (**self).delete_database(name).await
            }
            async fn list_databases(&self) -> Result<Vec<Owned>> {
                (**self).list_databases().await
            }
            async fn open_tunnels(&self, name: &PreviewName, spec: &DatabaseSpec) -> Result<Tunnels> {
                (**self).open_tunnels(name, spec).await
            }
            fn preflight_database(&self, name: &PreviewName, spec: &DatabaseSpec, tunnels: bool) -> Result<()> {
                (**self).preflight_database(name, spec, tunnels)
            }
        }
    )*};
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
        }
    )*};
}

forward_database_host!(Arc<T>, Box<T>);
forward_app_host!(Arc<T>, Box<T>);
forward_source_host!(Arc<T>, Box<T>);
#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::{InMemoryApps, InMemoryDatabases, InMemorySource};

    fn takes_db<T: DatabaseHost>(_: &T) {}
    fn takes_app<T: AppHost>(_: &T) {}
    fn takes_source<T: SourceHost>(_: &T) {}

    #[test]
    fn dyn_and_concrete_hosts_satisfy_the_traits() {
        let db = InMemoryDatabases::new();
        let dyn_db: Arc<dyn DatabaseHost> = Arc::new(db.clone());
        takes_db(&db);
        takes_db(&dyn_db);
        let boxed: Box<dyn DatabaseHost> = Box::new(db);
        takes_db(&boxed);
        let apps = InMemoryApps::new();
        let dyn_apps: Arc<dyn AppHost> = Arc::new(apps.clone());
        takes_app(&apps);
        takes_app(&dyn_apps);
        let src = InMemorySource::new("acme/app");
        let dyn_src: Arc<dyn SourceHost> = Arc::new(src.clone());
        takes_source(&src);
        takes_source(&dyn_src);
    }
}
