//! The test harness of the `preview` workspace (not published).
//!
//! - [`openapi`]: checks request and response bodies against the providers' official API
//!   descriptions, vendored in this crate's `specs/` folder with their provenance
//!   (`specs/SOURCES.md`), so a test's mock cannot drift from the real API unnoticed;
//! - [`postgres`]: a throwaway PostgreSQL cluster, with the server binaries found the way the
//!   platform installs them;
//! - [`flyctl`]: the stand-in `flyctl proxy` binary ([`fake_flyctl`]).
//!
//! Everything a test reads lives inside the repository: no test depends on a folder beside the
//! checkout.

pub mod flyctl;
pub mod openapi;
pub mod postgres;

pub use flyctl::fake_flyctl;
