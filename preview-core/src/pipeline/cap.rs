//! `lifetime.max_environments` at deploy: a new preview over the cap either evicts the least
//! recently active one (`when_full = "evict"`, whose report says why and how to bring it back) or
//! is refused (`when_full = "refuse"`, the failure report names the limit and the idlest
//! previews). Re-deploying a preview that exists never counts against the cap.
//!
//! The count is read from the providers at the start of the deploy (one paged read of the
//! databases), so two new previews deployed at the same moment may both fit: the cap is soft by
//! at most the number of concurrent first deploys, and the next reconcile pass evicts the excess.

use jiff::Timestamp;

use super::Preview;
use crate::config::WhenFull;
use crate::error::{Error, Result};
use crate::host::ReportState;
use crate::name::PreviewName;

/// Who may make room: open, unlabelled previews with a recorded activity, idlest first.
fn idlest(
    dbs: &[crate::host::Database],
    open: &std::collections::BTreeMap<crate::name::PrNumber, Vec<String>>,
    keep_label: &str,
) -> Vec<(Timestamp, PreviewName)> {
    let mut out: Vec<(Timestamp, PreviewName)> = dbs
        .iter()
        .filter(|d| {
            open.get(&d.name.pr())
                .is_some_and(|l| !crate::host::has_label(l, keep_label))
        })
        .filter_map(|d| d.marks.active_at.map(|t| (t, d.name.clone())))
        .collect();
    out.sort();
    out
}

impl Preview {
    /// Makes room for `name` under `lifetime.max_environments`, or refuses it. Nothing to do
    /// when no cap is set or `name` already has a database.
    ///
    /// # Errors
    /// Listing failures (nothing is evicted then); [`Error::Failed`] when refused or when no
    /// preview may be evicted; teardown failures of the evicted one.
    pub(super) async fn make_room(&self, name: &PreviewName, started: Timestamp) -> Result<()> {
        let lt = &self.config.lifetime;
        let Some(max) = lt.max_environments.map(|m| m as usize) else {
            return Ok(());
        };
        let dbs = self
            .retry("list databases", || {
                self.database.list_lifetimes(&self.config.naming)
            })
            .await?;
        if dbs.iter().any(|d| &d.name == name) || dbs.len() < max {
            return Ok(());
        }
        let open = self
            .retry("list open pull requests", || {
                self.source.list_open_pull_requests()
            })
            .await?
            .into_iter()
            .map(|p| (p.number, p.labels))
            .collect();
        let idle = idlest(&dbs, &open, &lt.keep_label);
        let need = dbs.len() + 1 - max;
        let list = |n: usize| {
            let names: Vec<String> = idle
                .iter()
                .take(n)
                .map(|(t, n)| format!("{n} (last active {t})"))
                .collect();
            if names.is_empty() {
                "none may be evicted (kept, or no recorded activity)".to_string()
            } else {
                format!("the idlest: {}", names.join(", "))
            }
        };
        if lt.when_full == WhenFull::Refuse || idle.len() < need {
            return Err(Error::failed(
                "deploy",
                format!(
                    "{} previews exist and lifetime.max_environments = {max} ({}); {}. Tear one down (`preview teardown --pr N`) or raise the limit",
                    dbs.len(),
                    if lt.when_full == WhenFull::Refuse {
                        "when_full = \"refuse\""
                    } else {
                        "nothing may be evicted"
                    },
                    list(3)
                ),
            ));
        }
        for (t, evicted) in idle.into_iter().take(need) {
            let reason = format!(
                "it was evicted to make room for #{} (lifetime.max_environments = {max}; it was the least recently active, last active {t}). To bring it back: {}",
                name.pr(),
                super::lifetime::bring_back(&self.config, evicted.pr()),
            );
            self.teardown_as(&evicted, started, ReportState::Removed { reason })
                .await?;
        }
        Ok(())
    }
}
