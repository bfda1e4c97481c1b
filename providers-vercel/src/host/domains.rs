//! The environment's branch domain: added (a conflict resolved by looking again), checked as
//! ours through its branch, removed.

use std::collections::BTreeSet;

use preview_core::{Error, Outcome, ResourceChange, Result};

use super::{VercelApps, change};
use crate::errors::PROVIDER;
use crate::wire;

impl VercelApps {
    /// Is the existing domain ours for this branch? Otherwise a clear conflict.
    pub(super) fn check_domain(project: &str, d: &wire::Domain, branch: &str) -> Result<()> {
        if d.git_branch.as_deref() == Some(branch) && d.redirect.is_none() {
            return Ok(());
        }
        let serves = match (&d.git_branch, &d.redirect) {
            (_, Some(_)) => "redirects elsewhere",
            (Some(_), None) => "serves another branch",
            (None, None) => "serves the production deployment",
        };
        Err(Error::Conflict {
            provider: PROVIDER,
            message: format!(
                "domain {} is already on project {project} but {serves}, not this PR's branch; remove it or pick another domain",
                d.name
            ),
            request_id: None,
        })
    }

    /// Adds the domain for the branch; a 400/409 is resolved by looking again.
    pub(super) async fn add_domain(
        &self,
        project: &str,
        domain: &str,
        branch: &str,
    ) -> Result<Outcome> {
        match self.core.add_domain(project, domain, branch).await {
            Ok(()) => Ok(Outcome::Created),
            Err(err @ (Error::Conflict { .. } | Error::Api { status: 400, .. })) => {
                // Added concurrently (400 "already on the project") or on another project (409).
                match self.core.get_domain(project, domain).await? {
                    Some(d) => Self::check_domain(project, &d, branch).map(|()| Outcome::Unchanged),
                    None => Err(match err {
                        Error::Conflict { request_id, .. } => Error::Conflict {
                            provider: PROVIDER,
                            message: format!(
                                "domain {domain} belongs to another Vercel project or account"
                            ),
                            request_id,
                        },
                        other => other,
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the domain if it leads back to one of `branches` (our vars' branches; any
    /// branch when we have no vars left).
    pub(super) async fn delete_domain(
        &self,
        project: &str,
        domain: &str,
        branches: &BTreeSet<&str>,
    ) -> Result<ResourceChange> {
        let outcome = match self.core.get_domain(project, domain).await? {
            None => Outcome::AlreadyGone,
            Some(d)
                if d.git_branch
                    .as_deref()
                    .is_some_and(|b| branches.is_empty() || branches.contains(b)) =>
            {
                if self.core.delete_domain(project, domain).await? {
                    Outcome::Removed
                } else {
                    Outcome::AlreadyGone
                }
            }
            Some(_) => {
                tracing::warn!(domain = %domain, "domain is not linked to this environment's branch; left alone");
                Outcome::Skipped
            }
        };
        Ok(change("domain", domain, outcome))
    }
}
