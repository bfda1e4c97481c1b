//! Fly.io for `preview`: the database stack of each preview environment as one Fly app holding
//! exactly one multi-container Machine, driven through the Machines REST API directly (no
//! `fly deploy`, no sidecar image, no `fly.toml`).
//!
//! [`FlyDatabases`] implements [`preview_core::DatabaseHost`]: it creates or adopts the app (see
//! [`FlyDatabases`] for how ownership is decided), makes sure a dedicated IPv4 and IPv6 exist, creates the
//! Machine or updates it under a lease when its config differs, waits with the `/wait` long-poll
//! and then for every container health check, and opens `flyctl proxy` tunnels for hooks.
//!
//! ```no_run
//! use preview_core::{DatabaseHost, Naming};
//! use providers_fly::FlyDatabases;
//! # async fn run() -> preview_core::Result<()> {
//! let fly = FlyDatabases::from_env()          // FLY_API_TOKEN, FLY_ORG, FLY_API_URL, FLYCTL
//!     .naming(Naming::new("pr", "agents")?)
//!     .build()?;
//! let owned = fly.list_databases().await?;
//! # let _ = owned; Ok(()) }
//! ```
//!
//! # Retries
//! Requests retry in [`preview_core::http`]'s one sender (reads, deletes and set-like writes after
//! a transient failure; creates and leased updates only when refused outright or never sent).
//! Units retry in the pipeline, and `apply_database` is the one provider operation that also
//! retries its own units (the app, its IPs, the Machine: each a look-up-then-create, so a create
//! whose answer was lost is found by the unit's next look-up). `RetriesExhausted` stops every
//! level, so attempts never multiply.
//!
//! The workspace's offline tests run it against a stateful fake of the Machines API,
//! `preview_testkit::FakeFly` (the unpublished test kit in `preview-core/testkit`).

mod builder;
mod core;
mod errors;
mod host;
mod lifecycle;
pub mod machine;
mod tunnel;
mod wire;

pub use builder::{DEFAULT_BASE_URL, FlyDatabasesBuilder};
pub use host::{DEFAULT_LEASE_TTL, FlyDatabases, OWNER_SECRET};
pub use tunnel::FLYCTL_INSTALL_URL;

/// Provider kind, as reported in errors and changes.
pub(crate) const PROVIDER: &str = "fly";
