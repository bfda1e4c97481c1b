//! Stateful fakes of the three APIs the providers call, one module each: [`fly`] (the Machines
//! API), [`vercel`] (the Vercel REST API) and [`github`] (the GitHub REST API).
//!
//! Each answers the calls its provider makes the way the real API does, shaped by the vendored
//! OpenAPI description, records every exchange, and injects faults ([`crate::HttpChaos`]). They
//! depend on no provider crate: a test builds the real host pointed at a fake's URL (the
//! providers' `tests/common` modules have a helper for it).

// The fakes were written under the providers' MSRV (1.85, no `let` chains); this crate's 1.89
// makes clippy suggest chains. They stay as written, so branches that extend them rebase cleanly.
#[allow(clippy::collapsible_if)]
pub mod fly;
#[allow(clippy::collapsible_if)]
pub mod github;
#[allow(clippy::collapsible_if)]
pub mod vercel;

pub use fly::FakeFly;
pub use github::FakeGitHub;
pub use vercel::FakeVercel;
