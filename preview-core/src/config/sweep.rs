//! `[sweep]`: which leftovers `preview sweep` removes.

use std::time::Duration;

use super::loader::Loader;
use super::raw::RawSweep;
use crate::error::Result;

/// Sweep policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepDef {
    /// Environments younger than this are never swept.
    pub grace_period: Duration,
    /// Whether a PR that no longer exists counts as closed.
    pub delete_missing: bool,
}

/// The sweep policy, with its defaults (an hour's grace; missing PRs kept).
pub(super) fn sweep(l: &Loader<'_>, raw: &RawSweep) -> Result<SweepDef> {
    Ok(SweepDef {
        grace_period: l.duration_or(
            &raw.grace_period,
            "sweep.grace_period",
            Duration::from_secs(3600),
        )?,
        delete_missing: raw.delete_missing,
    })
}
