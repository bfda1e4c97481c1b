//! [`DatabaseHost`] for Fly.io: one app per environment, holding exactly one multi-container
//! Machine. This file is the trait impl (observe, decide, call); the steps it calls live beside it
//! by role: the app and its marker, IPs and secrets (`app`), Machine leases (`lease`), waiting for
//! a Machine to be healthy (`wait`).

mod app;
mod lease;
mod wait;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use preview_core::{
    AppliedDatabase, Database, DatabaseHost, DatabaseSpec, Deleted, Error, Naming, Outcome, Owned,
    PreviewName, ResourceChange, Result, Tunnels,
};
use secrecy::SecretString;

use app::{AppState, Created, owned_by_other};

use crate::core::Core;

use crate::machine::{META_ENV, META_FINGERPRINT, covers, machine_config};
use crate::{PROVIDER, wire};

/// The app secret whose presence marks an app as created by `preview` for that environment.
pub const OWNER_SECRET: &str = "PREVIEW_ENV";

/// How long a Machine lease lives unless refreshed: short, so a lease left by a killed run blocks
/// the next one for seconds, not minutes. Extended between the steps of an update once half of
/// it has passed.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(20);

/// Page size when listing apps.
const PAGE: u32 = 100;
/// Secrets reads in flight while listing apps.
const LIST_CONCURRENCY: usize = 32;

/// The database stacks of preview environments on Fly.io Machines.
///
/// # Ownership
/// App names are one global namespace, and the create request (`POST /v1/apps`) cannot carry a
/// marker. So the marker, the app secret [`OWNER_SECRET`] (secret *names* are readable, values
/// never are), is the very next write after the create, before anything is put in the app (IPs,
/// Machine). An app of our name is then judged like this, by `deploy`, `teardown` and `sweep`
/// alike:
///
/// - **in another organisation** (or `GET` answers 403): not ours. `deploy` fails naming it;
///   `teardown` has nothing of ours to remove there.
/// - **in our organisation, with the marker**: ours, whatever else it holds.
/// - **in our organisation, without the marker and empty** (no Machine, IP, secret or volume): a
///   create whose run died before the marker (a SIGKILL right after `POST /v1/apps`). It is ours by
///   name and organisation, and nothing in it can be anyone else's: `deploy` adopts it (writes the
///   marker and carries on), `teardown` deletes it, and `list_databases` lists it, so `sweep` sees
///   and removes it too.
/// - **in our organisation, without the marker, holding something**: we never put anything in an
///   app before its marker, so what it holds was made by someone else, unless an older run made
///   it before the marker came first. The create is re-sent with our `idempotency_key` (derived
///   from organisation and name): an API that still remembers the key hands back an app created
///   with it (ours), and answers `name_taken` for anyone else's. If it is not proven ours it is
///   never deleted or changed: `deploy` and `teardown` fail (exit 1) naming the app and what it
///   holds, so a person can rename or remove it; `sweep` does not list it.
///
/// Machines are ours when their `config.metadata.preview_env` is the environment name; Machines
/// without it are never touched. Two runs racing on one environment converge: both creates of the
/// app succeed (same idempotency key) or the second finds the first's app; of two Machines or two
/// dedicated IPs of a kind, every run keeps the oldest and removes the others.
///
/// # Leases
/// A Machine is updated (or started) under a lease of [`DEFAULT_LEASE_TTL`] (extended between the
/// update's steps once half its TTL has passed, released on every path). Every lease we take carries a description
/// starting with `preview apply `: a lease found with such a description belongs to another
/// `preview` run (a concurrent one, or one killed before it could release it), and is waited out,
/// with a progress line every few seconds, until it is released or runs out. Any other lease is
/// someone else's and fails the apply at once.
#[derive(Clone)]
pub struct FlyDatabases {
    pub(crate) core: Core,
    pub(crate) token: SecretString,
    pub(crate) org: String,
    pub(crate) naming: Naming,
    pub(crate) flyctl: PathBuf,
    pub(crate) wait_call: Duration,
    pub(crate) delete_timeout: Duration,
    pub(crate) tunnel_timeout: Duration,
    pub(crate) poll_interval: Duration,
    /// Fly's per-action rate: one request per this for an identifier, after a burst of 3.
    pub(crate) action_interval: Duration,
    pub(crate) lease_ttl: Duration,
}

impl fmt::Debug for FlyDatabases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlyDatabases")
            .field("org", &self.org)
            .field("base_url", &self.core.base())
            .field("naming", &self.naming)
            .field("flyctl", &self.flyctl)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for FlyDatabases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fly(org={})", self.org)
    }
}

impl FlyDatabases {
    /// The organisation slug.
    pub fn org(&self) -> &str {
        &self.org
    }

    /// Runs an idempotent unit (look up, then create or update what is missing) until it
    /// succeeds, with the client's retry policy. Errors that are not transient (a conflict, a
    /// refusal, a request that gave up on its own retries) end it at once.
    async fn unit<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        preview_core::retry(
            self.core.retry(),
            what,
            preview_core::Idempotency::Idempotent,
            op,
        )
        .await
    }

    /// Our Machines, oldest first (ties by id, so every run agrees on which is first).
    pub(crate) fn ours<'m>(
        machines: &'m [wire::Machine],
        name: &PreviewName,
    ) -> Vec<&'m wire::Machine> {
        let mut ours: Vec<&wire::Machine> = machines
            .iter()
            .filter(|m| m.metadata(META_ENV) == Some(name.as_str()))
            .collect();
        ours.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        ours
    }

    /// Keeps the oldest of our Machines and destroys the others (two runs created one each at
    /// once, or a run was killed between a create and this). Returns the one kept.
    async fn keep_oldest(
        &self,
        app: &str,
        name: &PreviewName,
        machines: &[wire::Machine],
    ) -> Option<wire::Machine> {
        let ours = Self::ours(machines, name);
        for extra in ours.iter().skip(1) {
            tracing::warn!(app, machine = %extra.id, "destroying a second Machine of this environment");
            if let Err(e) = self.core.delete_machine(app, &extra.id).await {
                // A later run removes it; the one kept is what matters now.
                tracing::warn!(app, machine = %extra.id, error = %e, "could not destroy a second Machine");
            }
        }
        ours.first().map(|m| (*m).clone())
    }

    fn database(name: &PreviewName, host: String, m: Option<&wire::Machine>) -> Database {
        Database {
            name: name.clone(),
            host,
            state: m.map_or_else(|| "empty".to_string(), |m| m.state.clone()),
            fingerprint: m.and_then(|m| m.metadata(META_FINGERPRINT).map(str::to_string)),
            created_at: m
                .and_then(|m| m.created_at.as_deref())
                .and_then(|t| t.parse().ok()),
            boot: m.and_then(crate::machine::boot),
            marks: crate::machine::marks(
                m.and_then(|m| m.config.as_ref())
                    .and_then(|c| c.get("metadata")),
            ),
        }
    }
}

#[async_trait]
impl DatabaseHost for FlyDatabases {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, fields(env = %name))]
    async fn get_database(&self, name: &PreviewName) -> Result<Option<Database>> {
        let app = name.as_str();
        match self.app_state(app).await? {
            AppState::Ours => {}
            AppState::HalfCreated => {
                return Ok(Some(Self::database(name, format!("{app}.fly.dev"), None)));
            }
            _ => return Ok(None),
        }
        let machines = self.core.list_machines(app).await?;
        let ours = Self::ours(&machines, name);
        Ok(Some(Self::database(
            name,
            format!("{app}.fly.dev"),
            ours.first().copied(),
        )))
    }

    #[tracing::instrument(skip_all, fields(env = %name))]
    async fn apply_database(
        &self,
        name: &PreviewName,
        spec: &DatabaseSpec,
    ) -> Result<AppliedDatabase> {
        let app = name.as_str();
        let mut changes = Vec::new();
        // Each get-then-create unit is retried on its own (reliability.md a4): a create whose
        // answer was lost (408, 5xx, timeout) is found by the unit's lookup on the next run, never
        // re-sent blindly, and one unlucky create does not cost a run of the whole apply.
        let (app_outcome, written) = self
            .unit("fly app", || self.ensure_app(app, name, spec))
            .await?;
        changes.push(ResourceChange::new(PROVIDER, "app", app, app_outcome));
        changes.extend(self.unit("fly IPs", || self.ensure_ips(app)).await?);

        let config = machine_config(name, spec);
        let (machine, outcome) = self
            .unit("fly machine", || async {
                let machines = self.core.list_machines(app).await?;
                let done = match self.keep_oldest(app, name, &machines).await {
                    None => {
                        let secrets_version = match written {
                            Some(v) => Some(v),
                            None => self.write_secrets(app, name, spec).await?,
                        };
                        let created = self
                            .core
                            .create_machine(
                                app,
                                &wire::MachineRequest {
                                    name: app,
                                    region: &spec.region,
                                    config: &config,
                                    min_secrets_version: secrets_version,
                                    current_version: None,
                                },
                            )
                            .await?;
                        // Another run may have created one at the same time: every run keeps
                        // the oldest, so both wait on the same Machine.
                        let machines = self.core.list_machines(app).await?;
                        let kept = self
                            .keep_oldest(app, name, &machines)
                            .await
                            .unwrap_or(created);
                        (kept, Outcome::Created)
                    }
                    Some(m) if m.config.as_ref().is_some_and(|c| covers(c, &config)) => {
                        if matches!(m.state.as_str(), "stopped" | "suspended") {
                            // Same config, but not running (stopped by hand, or exited under
                            // restart policy `no`): start it rather than wait for nothing.
                            let id = m.id.as_str();
                            self.leased(app, id, |held| async move {
                                self.core.start_machine(app, id, &held.nonce).await
                            })
                            .await?;
                            (m, Outcome::Updated)
                        } else {
                            (m, Outcome::Unchanged)
                        }
                    }
                    Some(m) => self.update_leased(app, name, spec, &m, &config).await?,
                };
                Ok(done)
            })
            .await?;
        changes.push(ResourceChange::new(
            PROVIDER,
            "machine",
            format!("{app}/{}", machine.id),
            outcome,
        ));
        let healthy = self.wait_healthy(app, &machine, spec).await?;
        Ok(AppliedDatabase {
            database: Self::database(name, spec.public_host.clone(), Some(&healthy)),
            changes,
        })
    }

    #[tracing::instrument(skip_all, fields(env = %name))]
    async fn delete_database(&self, name: &PreviewName) -> Result<Deleted> {
        let app = name.as_str();
        match self.app_state(app).await? {
            AppState::Missing => return Ok(Deleted::AlreadyGone),
            AppState::Ours => {}
            AppState::HalfCreated => {
                tracing::info!(
                    app,
                    "deleting an empty app of our name (a create whose run died before its marker)"
                );
            }
            AppState::Unmarked(held) => {
                if let Created::Taken(rid) = self.create_app(app).await? {
                    // Never deleted, never reported gone: a person has to look at it.
                    return Err(owned_by_other(
                        app,
                        &format!(
                            "it is in our organization without our marker and holds {held} we did not make; remove or rename it by hand"
                        ),
                        rid,
                    ));
                }
            }
            AppState::Foreign(why, _) => {
                // The name is held outside our organisation: nothing of ours exists there.
                tracing::warn!(app, why, "an app of our name is not ours; left untouched");
                return Ok(Deleted::AlreadyGone);
            }
        }
        self.delete_app(app).await
    }

    #[tracing::instrument(skip_all, fields(org = %self.org))]
    async fn list_databases(&self) -> Result<Vec<Owned>> {
        let mut owned = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = self
                .core
                .list_apps(&self.org, cursor.as_deref(), PAGE)
                .await?;
            let mut candidates: Vec<(String, PreviewName)> = Vec::new();
            for app in &page.apps {
                let Some(name) = self.naming.parse(&app.name) else {
                    continue;
                };
                let slug = app.organization.as_ref().and_then(|o| o.slug.as_deref());
                if slug.is_none_or(|s| s == self.org) {
                    candidates.push((app.name.clone(), name));
                }
            }
            // One secrets read per app (more only for an app without the marker), a few apps at
            // a time: each app has its own rate limit, and a page of 100 read one by one would
            // dominate a sweep.
            let checked: Vec<Result<Option<Owned>>> = futures::stream::iter(candidates)
                .map(|(app, name)| async move {
                    Ok(self.listed(&app).await?.map(|kind| Owned {
                        name: name.to_string(),
                        provider: PROVIDER.to_string(),
                        resource: format!("{kind} {app}"),
                        created_at: None,
                    }))
                })
                .buffered(LIST_CONCURRENCY)
                .collect()
                .await;
            for o in checked {
                owned.extend(o?);
            }
            match page.next_cursor.filter(|c| !c.is_empty()) {
                Some(next) => {
                    if !seen.insert(next.clone()) {
                        return Err(Error::Api {
                            provider: PROVIDER,
                            status: 200,
                            message: "the app list repeats a page cursor".into(),
                            request_id: None,
                        });
                    }
                    cursor = Some(next);
                }
                None => break,
            }
        }
        Ok(owned)
    }

    #[tracing::instrument(skip_all, fields(env = %name))]
    async fn mark_database(&self, name: &PreviewName, mark: &preview_core::Mark) -> Result<()> {
        self.mark(name, mark).await
    }

    #[tracing::instrument(skip_all, fields(env = %name))]
    async fn sleep_database(&self, name: &PreviewName, suspend: bool) -> Result<Outcome> {
        self.sleep(name, suspend).await
    }

    #[tracing::instrument(skip_all, fields(org = %self.org))]
    async fn list_lifetimes(&self, naming: &preview_core::Naming) -> Result<Vec<Database>> {
        self.lifetimes(naming).await
    }

    /// One read: the app's Machines (whose answer carries their events), the oldest of ours.
    /// The org listing that found it already showed it ours (its `preview_env` metadata).
    #[tracing::instrument(skip_all, fields(env = %name))]
    async fn database_boot(&self, name: &PreviewName) -> Result<Option<String>> {
        let machines = match self.core.list_machines(name.as_str()).await {
            Err(Error::NotFound { .. }) => return Ok(None),
            other => other?,
        };
        let ours = Self::ours(&machines, name);
        Ok(ours.first().and_then(|m| crate::machine::boot(m)))
    }

    #[tracing::instrument(skip_all, fields(env = %name))]
    async fn open_tunnels(&self, name: &PreviewName, spec: &DatabaseSpec) -> Result<Tunnels> {
        crate::tunnel::open(self, name, spec).await
    }

    fn preflight_database(
        &self,
        _: &PreviewName,
        spec: &DatabaseSpec,
        tunnels: bool,
    ) -> Result<()> {
        if tunnels && !spec.services.is_empty() {
            crate::tunnel::check_flyctl(self)?;
        }
        Ok(())
    }
}
