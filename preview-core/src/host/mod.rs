//! The three provider traits, each beside the types it speaks: [`DatabaseHost`] (the database
//! stack), [`AppHost`] (the apps) and [`SourceHost`] (pull requests and reports), plus the outcome
//! types all three share ([`Outcome`], [`Deleted`], [`ResourceChange`], [`Owned`]).
//!
//! Each trait is a minimal contract (observe, converge, delete, list); ordering, get-or-create
//! units and concurrency live once in the pipeline. All are `#[async_trait]` so they can be used as
//! `Arc<dyn …>`, and `Arc<T>` and `Box<T>` forward every method. Retrying has two levels: a
//! provider retries each request it sends when that is safe (a transient failure of an idempotent
//! request), and the pipeline retries each trait call as a whole. A provider that gives up returns
//! [`Error::RetriesExhausted`](crate::Error::RetriesExhausted), which is never retried again, so
//! the two levels cannot multiply attempts. Provider JSON stays private to each provider crate;
//! anything here holding a secret redacts it in `Debug` and `Serialize`.

use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

mod app;
mod database;
mod machine;
mod source;
mod trigger;

pub use app::{
    AppDeployment, AppHost, AppRef, AppSpec, AppStatus, Commit, EnvVar, ProtectionBypass,
};
pub use database::{
    AppliedDatabase, CheckKind, ContainerSpec, Credentials, Database, DatabaseHost, DatabaseSpec,
    DependsOn, HealthCheck, Mark, Marks, Protocol, ServiceEndpoint, ServiceSpec, TlsMode, Tunnel,
    Tunnels,
};
pub use machine::{AutoStop, CpuKind, MachineSize, RestartPolicy};
pub use source::{
    CostEstimate, Lifetime, Link, PrState, PullRequest, Report, ReportKind, ReportState,
    ReportSummary, SourceHost, has_label,
};
pub use trigger::{Acknowledged, ChangedFiles, Permission, Reaction, TriggerHost};

/// What an operation did to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did not exist and was created.
    Created,
    /// It existed and was changed to match.
    Updated,
    /// It already matched; no mutating call was made.
    Unchanged,
    /// It existed and was removed.
    Removed,
    /// It was already gone (teardown success).
    AlreadyGone,
    /// Nothing was attempted (e.g. dry run, or a precondition not met).
    Skipped,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Removed => "removed",
            Outcome::AlreadyGone => "already gone",
            Outcome::Skipped => "skipped",
        })
    }
}

/// Result of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Deleted {
    /// It existed and is gone now.
    Removed,
    /// It did not exist.
    AlreadyGone,
}

impl From<Deleted> for Outcome {
    fn from(d: Deleted) -> Self {
        match d {
            Deleted::Removed => Outcome::Removed,
            Deleted::AlreadyGone => Outcome::AlreadyGone,
        }
    }
}

/// One resource touched (or left alone) by an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceChange {
    /// Provider kind (`fly`, `vercel`, `github`, `memory`).
    pub provider: String,
    /// Resource kind (`app`, `machine`, `ip`, `env_var`, `domain`, `deployment`, `comment`, …).
    pub kind: String,
    /// Its identifier (never a secret value).
    pub id: String,
    /// What happened.
    pub outcome: Outcome,
}

impl ResourceChange {
    /// Builds a change record.
    pub fn new(
        provider: impl Into<String>,
        kind: impl Into<String>,
        id: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        Self {
            provider: provider.into(),
            kind: kind.into(),
            id: id.into(),
            outcome,
        }
    }
}

/// Something a provider holds for an environment we own (for status and sweep).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owned {
    /// The environment name it carries (the pipeline parses it with its [`Naming`](crate::Naming)
    /// and ignores anything that does not parse).
    pub name: String,
    /// Provider kind.
    pub provider: String,
    /// Resource kind and id, for display (`app pr-42-agents`, `env_var prj_1/KEY`).
    pub resource: String,
    /// When it was created, when the provider says.
    pub created_at: Option<Timestamp>,
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::sync::Arc;

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
