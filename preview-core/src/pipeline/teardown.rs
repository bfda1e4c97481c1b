//! `teardown`: remove one PR's environment.

use jiff::Timestamp;
use serde::Serialize;

use super::Preview;
use crate::error::{Error, Result};
use crate::event::{Phase, PhaseTiming};
use crate::host::{Report, ReportKind, ReportState, ResourceChange};
use crate::name::{PrNumber, PreviewName};
use crate::render;

/// What teardown did.
#[derive(Debug, Clone, Serialize)]
pub struct TeardownReport {
    /// The environment.
    pub name: PreviewName,
    /// Every resource removed or found already gone.
    pub changes: Vec<ResourceChange>,
    /// How long each phase took, in the order they finished.
    pub phases: Vec<PhaseTiming>,
}

impl Preview {
    /// Removes the environment of `pr` and marks its report torn down.
    ///
    /// # Guarantees
    /// Reverse order (apps, then the database, then the report); "already gone" is success; one
    /// failing resource does not stop the others, and any failure is returned, never swallowed.
    ///
    /// # Errors
    /// [`Error::InPhase`] (teardown) listing every resource that could not be removed.
    pub async fn teardown(&self, pr: PrNumber) -> Result<TeardownReport> {
        let started = (self.now)();
        let name = self.config.name(pr);
        let (report, phases) = crate::event::timed(self.teardown_name(&name, started)).await;
        report.map(|r| TeardownReport { phases, ..r })
    }

    /// Tears `name` down; its report says the run that started at `started` did it.
    pub(super) async fn teardown_name(
        &self,
        name: &PreviewName,
        started: Timestamp,
    ) -> Result<TeardownReport> {
        self.teardown_as(name, started, ReportState::TornDown).await
    }

    /// Tears `name` down; its report ends in `state` (torn down, or removed by the lifetime
    /// policy with why and how to bring it back).
    pub(super) async fn teardown_as(
        &self,
        name: &PreviewName,
        started: Timestamp,
        state: ReportState,
    ) -> Result<TeardownReport> {
        let env = self.env.clone();
        let lookup = move |k: &str| env(k);
        let refs = render::app_refs(&self.config, name, &lookup)?;
        self.phase(Phase::Teardown, async {
            let mut changes = Vec::new();
            let mut failures = Vec::new();
            let apps = futures::future::join_all(refs.iter().map(|t| async move {
                (
                    t,
                    self.retry("delete app", || self.apps.delete_app(name, t))
                        .await,
                )
            }))
            .await;
            for (t, r) in apps {
                match r {
                    Ok(c) => {
                        self.changes(&c);
                        changes.extend(c);
                    }
                    Err(e) => failures.push(format!("app {}: {e}", t.app)),
                }
            }
            match self
                .retry("delete database", || self.database.delete_database(name))
                .await
            {
                Ok(d) => {
                    let c = ResourceChange::new(
                        self.database.kind(),
                        "database",
                        name.as_str(),
                        d.into(),
                    );
                    self.changes(std::slice::from_ref(&c));
                    changes.push(c);
                }
                Err(e) => failures.push(format!("database {name}: {e}")),
            }
            let pr = name.pr();
            match self
                .retry("get report", || self.source.get_report(name, pr))
                .await
            {
                Ok(Some(s)) if s.kind != ReportKind::TornDown => {
                    let report = Report {
                        name: name.clone(),
                        pr,
                        branch: None,
                        commit: s.commit.clone(),
                        state: state.clone(),
                        run_url: self.run_url.clone(),
                        started_at: Some(started),
                        phases: vec![],
                        lifetime: None,
                    };
                    match self
                        .retry("publish report", || self.source.publish_report(&report))
                        .await
                    {
                        Ok(o) => {
                            let c = ResourceChange::new(
                                self.source.kind(),
                                "report",
                                format!("PR #{pr}"),
                                o,
                            );
                            self.changes(std::slice::from_ref(&c));
                            changes.push(c);
                        }
                        Err(e) => failures.push(format!("report on PR #{pr}: {e}")),
                    }
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("report on PR #{pr}: {e}")),
            }
            if failures.is_empty() {
                Ok(TeardownReport {
                    name: name.clone(),
                    changes,
                    phases: vec![],
                })
            } else {
                Err(Error::failed(
                    format!("teardown of {name}"),
                    format!(
                        "{} resource(s) could not be removed: {}",
                        failures.len(),
                        failures.join("; ")
                    ),
                ))
            }
        })
        .await
    }
}
