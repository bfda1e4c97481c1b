//! In-memory providers with a call log, inspectable state and fault injection, plus a public
//! conformance suite any implementation of the traits can run (feature `testing`).
//!
//! The in-memory hosts are the swap-in for library users: they behave like the real providers
//! (converge, "already gone", ownership, conflicts) without any network, and pass the same
//! conformance suite.
//!
//! The stateful fakes of the Fly, Vercel and GitHub APIs and their seeded HTTP fault plan are
//! test machinery of this workspace, not product: they live in its test kit (`preview-testkit`,
//! not published).

mod gate;
mod memory;
pub mod rng;

pub mod conformance;

pub use gate::Gate;
pub use memory::{
    Call, Chaos, InMemoryApps, InMemoryDatabases, InMemoryHttp, InMemorySource,
    PROTECTION_BYPASS_HEADER, RecordingHooks, StoredVar, Tripwire,
};
