//! A preview's lifetime on Fly: the Machine's metadata that records activity and the hooks'
//! mark (keys and their reading in `machine.rs`), putting it to sleep (stop or suspend), and every Machine of
//! the organisation in pages for the reconcile pass. Endpoints: `POST|DELETE
//! /v1/apps/{app}/machines/{id}/metadata/{key}`, `POST …/stop`, `POST …/suspend` (waking is
//! `apply_database`'s `start`), `GET /v1/orgs/{org}/machines`.

use crate::machine::{META_ACTIVE_AT, META_ASLEEP_SINCE, META_ENV, META_HOOKS, META_SLEPT, marks};
use crate::{FlyDatabases, PROVIDER, wire};
use preview_core::{Database, Error, Mark, Naming, Outcome, PreviewName, Result};

impl FlyDatabases {
    /// Our Machine of `name`: the oldest carrying its marker.
    async fn our_machine(&self, name: &PreviewName) -> Result<wire::Machine> {
        let app = name.as_str();
        let machines = match self.core.list_machines(app).await {
            Err(Error::NotFound { .. }) => vec![],
            other => other?,
        };
        Self::ours(&machines, name)
            .first()
            .map(|m| (*m).clone())
            .ok_or_else(|| Error::NotFound {
                provider: PROVIDER,
                what: format!("the machine of {name}"),
            })
    }

    pub(crate) async fn mark(&self, name: &PreviewName, mark: &Mark) -> Result<()> {
        let m = self.our_machine(name).await?;
        let (app, id) = (name.as_str(), m.id.as_str());
        let set = |key: &'static str, value: String| async move {
            self.core.upsert_metadata(app, id, key, &value).await
        };
        match mark {
            Mark::ActiveAt(t) => set(META_ACTIVE_AT, t.to_string()).await,
            Mark::Hooks(h) => set(META_HOOKS, h.clone()).await,
            Mark::AsleepSince(Some(t)) => set(META_ASLEEP_SINCE, t.to_string()).await,
            Mark::AsleepSince(None) => self.core.delete_metadata(app, id, META_ASLEEP_SINCE).await,
            Mark::SleptSecs(n) => set(META_SLEPT, n.to_string()).await,
        }
    }

    pub(crate) async fn sleep(&self, name: &PreviewName, suspend: bool) -> Result<Outcome> {
        let m = self.our_machine(name).await?;
        if m.state != "started" {
            return Ok(Outcome::Unchanged);
        }
        let (app, id) = (name.as_str(), m.id.as_str());
        self.leased(app, id, |held| async move {
            self.core.sleep_machine(app, id, suspend, &held.nonce).await
        })
        .await?;
        Ok(Outcome::Updated)
    }

    /// Every Machine of the organisation that carries an environment's marker, in pages.
    pub(crate) async fn lifetimes(&self, naming: &Naming) -> Result<Vec<Database>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        // Listing the organisation's Machines is one action on one identifier: 1 request a
        // second after a burst of 3. Page `n` (from 0) waits until `n - 2` intervals after the
        // first page's answer, which came after its request was counted.
        let mut first_answer = None;
        for page_no in 0u32.. {
            if let Some(at) = first_answer.filter(|_| page_no >= 3) {
                tokio::time::sleep_until(at + self.action_interval * (page_no - 2)).await;
            }
            let page = self
                .core
                .org_machines(self.org(), cursor.as_deref())
                .await?;
            first_answer.get_or_insert_with(tokio::time::Instant::now);
            for m in page.machines {
                let meta = m.config.as_ref().and_then(|c| c.get("metadata"));
                let env = meta.and_then(|v| v.get(META_ENV)).and_then(|v| v.as_str());
                let Some(name) = env
                    .filter(|e| *e == m.app_name)
                    .and_then(|e| naming.parse(e))
                else {
                    continue;
                };
                out.push(Database {
                    host: format!("{}.fly.dev", m.app_name),
                    state: m.state.unwrap_or_default(),
                    fingerprint: None,
                    created_at: m.created_at.and_then(|t| t.parse().ok()),
                    boot: None,
                    marks: marks(meta),
                    name,
                });
                let _ = m.id;
            }
            match page.next_cursor.filter(|c| !c.is_empty()) {
                Some(next) if seen.insert(next.clone()) => cursor = Some(next),
                Some(_) => {
                    return Err(Error::Api {
                        provider: PROVIDER,
                        status: 200,
                        message: "the machine list repeats a page cursor".into(),
                        request_id: None,
                    });
                }
                None => break,
            }
        }
        Ok(out)
    }
}
