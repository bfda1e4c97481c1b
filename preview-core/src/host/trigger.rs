//! What deciding on a pull-request event needs from where pull requests live, beyond
//! [`SourceHost`]: the PR's changed files, a user's repository permission, and the
//! acknowledgements of a `/preview` command (a reaction on its comment, a reply).

use async_trait::async_trait;
use serde::Serialize;

use super::{Outcome, SourceHost};
use crate::error::Result;
use crate::name::PrNumber;

/// A user's permission on the repository, lowest first (GitHub's roles: `read`, `triage`,
/// `write`, `maintain`, `admin`; `none` for a user who is not a collaborator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Not a collaborator (or unknown).
    None,
    /// Read.
    Read,
    /// Triage.
    Triage,
    /// Write.
    Write,
    /// Maintain.
    Maintain,
    /// Admin.
    Admin,
}

impl Permission {
    /// Every permission a configuration may name, lowest first.
    pub const NAMES: [&'static str; 5] = ["read", "triage", "write", "maintain", "admin"];

    /// The permission named `word` (one of [`Permission::NAMES`], or `none`).
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "none" => Self::None,
            "read" => Self::Read,
            "triage" => Self::Triage,
            "write" => Self::Write,
            "maintain" => Self::Maintain,
            "admin" => Self::Admin,
            _ => return None,
        })
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Read => "read",
            Self::Triage => "triage",
            Self::Write => "write",
            Self::Maintain => "maintain",
            Self::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The files a pull request changes, as far as the host lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedFiles {
    /// Paths relative to the repository root (renames: the new path and the old one).
    pub paths: Vec<String>,
    /// `false` when the host stops listing before the end (GitHub lists at most 3,000 files):
    /// the files not listed cannot be checked.
    pub complete: bool,
}

/// A reaction acknowledging a command on its comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reaction {
    /// The command was accepted and runs (GitHub's `eyes`).
    Accepted,
    /// The comment holds no command we know (GitHub's `confused`).
    Unknown,
}

/// Whether an acknowledgement was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Acknowledged {
    /// Made now (GitHub answered 201).
    New,
    /// It was there already (GitHub answered 200): an earlier run of this event made it.
    Already,
}

/// Where pull requests live, as the trigger decision reads and answers them (e.g. GitHub).
///
/// # Contract
/// - Reads only: `changed_files`, `permission`. They never trust an event payload.
/// - `react` is create-if-absent: a second call for the same comment and reaction makes nothing
///   new and answers [`Acknowledged::Already`].
/// - `reply` leaves at most one reply per comment it answers, found by a hidden marker among
///   comments of trusted authors: a second call makes no mutating request
///   ([`Outcome::Unchanged`]).
#[async_trait]
pub trait TriggerHost: SourceHost {
    /// The files `pr` changes (every page the host gives).
    ///
    /// # Errors
    /// Provider errors.
    async fn changed_files(&self, pr: PrNumber) -> Result<ChangedFiles>;

    /// `user`'s permission on the repository (`Permission::None` for a non-collaborator).
    ///
    /// # Errors
    /// Provider errors.
    async fn permission(&self, user: &str) -> Result<Permission>;

    /// Reacts to comment `comment` on the pull request.
    ///
    /// # Errors
    /// Provider errors.
    ///
    /// # Idempotency
    /// Create-if-absent (see the contract).
    async fn react(&self, comment: u64, reaction: Reaction) -> Result<Acknowledged>;

    /// Replies on `pr` to comment `comment` with `markdown` (our own text, never the comment's).
    ///
    /// # Errors
    /// Provider errors.
    ///
    /// # Idempotency
    /// One reply per comment (see the contract).
    async fn reply(&self, pr: PrNumber, comment: u64, markdown: &str) -> Result<Outcome>;
}
