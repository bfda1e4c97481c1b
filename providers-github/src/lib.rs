//! The [`SourceHost`](preview_core::SourceHost) over the GitHub REST API: pull requests, the
//! sticky PR comment, and GitHub deployments of each preview environment.
//!
//! - Pull requests: one, or every open one (all pages, following `link` headers exactly), read
//!   conditionally (`If-None-Match`, each page with its own ETag), so polling or re-listing what
//!   did not change is free of quota for as long as the [`GitHubSource`] lives.
//! - The sticky comment: exactly one per environment, found by a hidden marker **and** our author
//!   (a marker pasted by anyone else is never edited), created or updated, never rewritten when
//!   unchanged. Untrusted text is rendered inert.
//! - Deployments: one per head commit in a per-PR environment (`preview/pr-<N>` by default), with
//!   statuses in progress → success or failure, and inactive on teardown.
//! - Requests retry in [`preview_core::http`]'s one sender (reads, edits and deletes after a
//!   transient failure; a create only when it never reached GitHub or was refused outright);
//!   units (a whole trait call) retry in the pipeline; `RetriesExhausted` stops both. 403/429 rate
//!   limits become [`Error::RateLimited`](preview_core::Error::RateLimited) with GitHub's wait, so
//!   both levels wait as long as GitHub asks. Writes are spaced at least a second apart.
//!
//! ```no_run
//! use preview_core::{PrNumber, SourceHost};
//! use providers_github::GitHubSource;
//! # async fn run() -> preview_core::Result<()> {
//! // GITHUB_TOKEN, GITHUB_REPOSITORY, optional GITHUB_API_URL
//! let github = GitHubSource::from_env().build()?;
//! if let Some(pr) = github.get_pull_request(PrNumber::new(42)?).await? {
//!     println!("{} is {:?}, fork: {}", pr.number, pr.state, pr.is_fork());
//! }
//! # Ok(()) }
//! ```
//!
//! The workspace's offline tests run it against a stateful fake of the API on a local wiremock
//! server, `preview_testkit::FakeGitHub` (the unpublished test kit in `preview-core/testkit`).

mod actions_event;
mod builder;
mod comment;
mod core;
mod errors;
mod etag_cache;
mod host;
mod listing;
mod trigger_event;
mod triggers;
mod wire;

pub use actions_event::{PullRequestEvent, pull_request_event_from_env, read_pull_request_event};
pub use builder::{DEFAULT_API_URL, DEFAULT_ENVIRONMENT_TEMPLATE, GitHubSourceBuilder};
pub use comment::ACTIONS_BOT;
pub use core::API_VERSION;
pub use host::GitHubSource;
pub use trigger_event::{HandledEvent, read_trigger_event};
pub use triggers::MAX_LISTED_FILES;

/// Renders the sticky comment of a report exactly as [`GitHubSource`] publishes it (for previews
/// and snapshot tests).
pub fn render_comment(report: &preview_core::Report) -> String {
    comment::comment(report, &[])
}

/// [`render_comment`] with the `/preview` commands listed (see
/// [`GitHubSourceBuilder::commands`]).
pub fn render_comment_with_commands(report: &preview_core::Report, commands: &[String]) -> String {
    comment::comment(report, commands)
}
