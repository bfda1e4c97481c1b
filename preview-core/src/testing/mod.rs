//! In-memory providers with a call log, inspectable state and fault injection, plus a public
//! conformance suite any implementation of the traits can run (feature `testing`).
//!
//! The in-memory hosts are the swap-in for library users: they behave like the real providers
//! (converge, "already gone", ownership, conflicts) without any network, and pass the same
//! conformance suite.

mod faults;
mod gate;
mod memory;

pub mod conformance;

pub use faults::{
    HttpChaos, HttpChaosState, HttpFault, RetryAfter, cases, full_counts, percent_decode,
    random_strings,
};
pub use gate::Gate;
pub use memory::{
    Call, Chaos, InMemoryApps, InMemoryDatabases, InMemoryHttp, InMemorySource,
    PROTECTION_BYPASS_HEADER, RecordingHooks, StoredVar, Tripwire,
};
