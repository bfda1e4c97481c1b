//! The Vercel [`AppHost`](preview_core::AppHost) of `preview`: branch-scoped env vars, branch
//! domains and git deployments of each pull request's preview, over the Vercel REST API.
//!
//! - Env vars are written in one upsert per app with `target: ["preview"]`, `gitBranch` = the PR's
//!   head branch, type `encrypted` (or `sensitive`), and an ownership marker in `comment`
//!   ([`MARKER`]). Nothing ever writes or deletes a production or development var: every write
//!   and delete passes a guard that admits only branch-scoped `preview` vars.
//! - The app's domain is added to its project for the PR's branch.
//! - Deployments are created from the git source (so branch-scoped vars apply), awaited with
//!   back-off (1 s steps, then 5, 15 and 30 s, as `@vercel/client`) and aliased to the domain.
//! - Teardown removes the domain, cancels in-flight deployments, and deletes every var we own.
//!
//! ```no_run
//! use providers_vercel::VercelApps;
//! // VERCEL_TOKEN, VERCEL_TEAM_ID (or VERCEL_ORG_ID), optional VERCEL_API_URL
//! let vercel = VercelApps::from_env().build()?;
//! println!("{vercel}");
//! # Ok::<(), preview_core::Error>(())
//! ```
//!
//! The workspace's offline tests run it against a stateful fake of the API,
//! `preview_testkit::FakeVercel` (the unpublished test kit in `preview-core/testkit`).

mod builder;
mod core;
mod errors;
mod host;
mod ownership;
mod wire;

pub use builder::{DEFAULT_BASE_URL, VercelAppsBuilder};
pub use host::{PROTECTION_BYPASS_HEADER, VercelApps};
pub use ownership::{MARKER, META_ENV, META_VARS};
