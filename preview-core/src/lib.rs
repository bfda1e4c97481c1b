//! Per-pull-request preview environments.
//!
//! `preview-core` holds the provider traits ([`DatabaseHost`], [`AppHost`], [`SourceHost`]), the
//! domain types that cross them, one [`Error`] type, the retry helper, the `preview.toml`
//! configuration, and the reconcile-style pipeline: [`plan`](pipeline::plan), deploy, teardown,
//! sweep and status. Provider crates implement the traits over their HTTP APIs; the `testing`
//! feature has in-memory implementations and a conformance suite any implementation can run.
//!
//! ```
//! use preview_core::{Naming, PrNumber};
//! let naming = Naming::new("pr", "agents")?;
//! assert_eq!(naming.name(PrNumber::new(42)?).as_str(), "pr-42-agents");
//! # Ok::<(), preview_core::Error>(())
//! ```

pub mod command;
pub mod config;
pub mod cost;
pub mod effects;
pub mod env;
pub mod error;
pub mod event;
pub mod host;
#[cfg(feature = "http")]
pub mod http;
pub mod name;
pub mod pipeline;
pub mod render;
pub mod repository;
pub mod retry;
pub mod secret;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::Config;
pub use error::{Error, Idempotency, Phase, Result, TransportKind};
pub use event::{CollectEvents, Event, EventSink, NoEvents, PhaseTiming};
pub use host::{
    AppDeployment, AppHost, AppRef, AppSpec, AppStatus, AppliedDatabase, AutoStop, CheckKind,
    Commit, ContainerSpec, CostEstimate, CpuKind, Credentials, Database, DatabaseHost,
    DatabaseSpec, Deleted, DependsOn, EnvVar, HealthCheck, Lifetime, Link, MachineSize, Mark,
    Marks, Outcome, Owned, PrState, ProtectionBypass, Protocol, PullRequest, Report, ReportKind,
    ReportState, ReportSummary, ResourceChange, RestartPolicy, ServiceEndpoint, ServiceSpec,
    SourceHost, TlsMode, TriggerHost, Tunnel, Tunnels,
};
pub use name::{Naming, PrNumber, PreviewName};
pub use pipeline::{Hosts, Plan, Preview};
pub use render::Rendered;
pub use repository::Repository;
pub use retry::{RetryConfig, retry};
pub use secret::{
    DerivedSecrets, DigestKey, FINGERPRINT_KEY, RandomSecrets, SecretKind, SecretSource,
    SecretValues,
};
pub use template::{Scope, Template, Value};

pub use async_trait::async_trait;
pub use secrecy;
