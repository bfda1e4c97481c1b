//! The test harness of the `preview` workspace (not published).
//!
//! - [`fakes`]: stateful fakes of the Fly Machines, Vercel and GitHub REST APIs (wiremock
//!   responders: [`FakeFly`], [`FakeVercel`], [`FakeGitHub`]) that the providers' tests and the
//!   CLI's end-to-end "world" run the real clients against;
//! - [`http_chaos`]: the seeded fault plan those fakes draw from ([`HttpChaos`]), and the case
//!   counts of the reliability suites ([`cases`], [`full_counts`]);
//! - [`openapi`]: checks request and response bodies against the providers' official API
//!   descriptions, vendored in this crate's `specs/` folder with their provenance
//!   (`specs/SOURCES.md`), so a test's mock cannot drift from the real API unnoticed;
//! - [`postgres`]: a throwaway PostgreSQL cluster, with the server binaries found the way the
//!   platform installs them;
//! - [`flyctl`]: the stand-in `flyctl proxy` binary ([`fake_flyctl`]).
//!
//! Everything a test reads lives inside the repository: no test depends on a folder beside the
//! checkout.

pub mod fakes;
pub mod flyctl;
pub mod http_chaos;
pub mod openapi;
pub mod postgres;

pub use fakes::{FakeFly, FakeGitHub, FakeVercel};
pub use flyctl::fake_flyctl;
pub use http_chaos::{HttpChaos, HttpFault, cases, full_counts};
