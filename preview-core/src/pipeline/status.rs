//! `status`: the environments that exist, with their PR state, age and URLs.

use serde::Serialize;

use super::Preview;
use super::sweep::PrLookup;
use crate::error::Result;
use crate::name::{PrNumber, PreviewName};
use crate::render;

impl Preview {
    /// The environments that exist, with their PR state, age and URLs.
    ///
    /// # Errors
    /// Listing failures.
    pub async fn status(&self) -> Result<Vec<EnvironmentStatus>> {
        let inv = self.inventory().await?;
        let lookups = self
            .lookups(inv.keys().map(PreviewName::pr).collect())
            .await;
        let now = (self.now)();
        let env = self.env.clone();
        let lookup = move |k: &str| env(k);
        let mut out = Vec::new();
        for (name, c) in inv {
            let urls = render::app_refs(&self.config, &name, &lookup)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.domain.map(|d| format!("https://{d}")))
                .collect();
            out.push(EnvironmentStatus {
                pr: name.pr(),
                pr_state: match lookups.get(&name.pr()) {
                    Some(PrLookup::State(s)) => format!("{s:?}").to_lowercase(),
                    Some(PrLookup::Missing) => "missing".into(),
                    Some(PrLookup::Error(e)) => format!("unknown ({e})"),
                    None => "unknown".into(),
                },
                age_secs: c
                    .created_at
                    .map(|t| (now.as_second() - t.as_second()).max(0) as u64),
                cost: self.status_cost(c.created_at, now),
                resources: c.resources,
                urls,
                name,
            });
        }
        Ok(out)
    }
}

/// One row of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentStatus {
    /// The environment.
    pub name: PreviewName,
    /// Its PR.
    pub pr: PrNumber,
    /// The PR's state (`open`, `closed`, `merged`, `missing`, `unknown (…)`).
    pub pr_state: String,
    /// Age in seconds, when known.
    pub age_secs: Option<u64>,
    /// Its resources.
    pub resources: Vec<String>,
    /// Its app URLs.
    pub urls: Vec<String>,
    /// An estimate of its cost (from its age, at the configured size; `None` when hidden).
    pub cost: Option<crate::host::CostEstimate>,
}
