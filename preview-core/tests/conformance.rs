//! The in-memory hosts pass the public conformance suite.

use preview_core::Commit;
use preview_core::testing::{InMemoryApps, InMemoryDatabases, InMemorySource};

fn apps() -> (InMemoryApps, String, String, Commit) {
    let commit = Commit {
        repo: "acme/app".into(),
        branch: "conformance".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
    };
    (
        InMemoryApps::new(),
        "prj_conformance".into(),
        "preview.example.com".into(),
        commit,
    )
}

fn source() -> (InMemorySource, preview_core::PrNumber) {
    let s = InMemorySource::new("acme/app");
    let pr = s.open_pr(17, "feature/x", "0123456789abcdef0123456789abcdef01234567");
    (s, pr)
}

preview_core::database_host_conformance!(InMemoryDatabases::new());
preview_core::app_host_conformance!(apps());
preview_core::source_host_conformance!(source());
