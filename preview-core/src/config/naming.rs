//! `[naming]`: how environments are named (`pr-42-agents`).

use super::loader::Loader;
use super::raw::RawNaming;
use crate::error::Result;
use crate::name::Naming;

/// The naming, validated (a DNS label for every provider at every PR number).
pub(super) fn naming(l: &Loader<'_>, raw: &RawNaming) -> Result<Naming> {
    let suffix = raw
        .suffix
        .as_ref()
        .map(|s| s.get_ref().as_str())
        .unwrap_or("");
    Naming::new(raw.prefix.get_ref().as_str(), suffix)
        .map_err(|e| l.err(&raw.prefix.span(), "naming", e))
}
