//! [`DatabaseHost`] for Fly.io: one app per environment, holding exactly one multi-container
//! Machine.
//!
//! # Ownership
//! An app is ours when it is in our organisation and carries the app secret [`OWNER_SECRET`]
//! (secret *names* are readable, values never are). It is written with the first secrets write
//! after the app is created. If a run dies between creating the app and writing the marker, the
//! next run finds an unmarked app in our organisation and proves it is ours by re-sending the
//! create with the same `idempotency_key` (derived from org and name): the API hands back an app it
//! created for that key and answers `name_taken` for anyone else's. Machines are ours when their
//! `config.metadata.preview_env` is the environment name; Machines without it are never touched.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use preview_core::{
    AppliedDatabase, Database, DatabaseHost, DatabaseSpec, Deleted, Error, Naming, Outcome, Owned,
    PreviewName, ResourceChange, Result, Tunnels,
};
use reqwest::StatusCode;
use secrecy::SecretString;
use tokio::time::Instant;

use crate::api::Api;
use crate::builder::FlyDatabasesBuilder;
use crate::config::{META_ENV, META_FINGERPRINT, covers, machine_config, secret_values};
use crate::{PROVIDER, wire};

/// The app secret whose presence marks an app as created by `preview` for that environment.
pub const OWNER_SECRET: &str = "PREVIEW_ENV";

/// Lease time-to-live while updating a Machine (released explicitly on every path).
const LEASE_TTL_SECS: u64 = 120;

/// Page size when listing apps.
const PAGE: u32 = 100;
/// Secrets reads in flight while listing apps.
const LIST_CONCURRENCY: usize = 8;

/// The database stacks of preview environments on Fly.io Machines.
#[derive(Clone)]
pub struct FlyDatabases {
    pub(crate) api: Api,
    pub(crate) token: SecretString,
    pub(crate) org: String,
    pub(crate) naming: Naming,
    pub(crate) flyctl: PathBuf,
    pub(crate) wait_call: Duration,
    pub(crate) delete_timeout: Duration,
    pub(crate) tunnel_timeout: Duration,
    pub(crate) poll_interval: Duration,
}

impl fmt::Debug for FlyDatabases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlyDatabases")
            .field("org", &self.org)
            .field("base_url", &self.api.base)
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

/// Where a lease stands, for [`LeaseGuard`].
enum LeaseStep {
    /// Asked for with this description; the grant may have happened without us seeing it.
    Asking(String),
    /// Held with this nonce.
    Held(String),
    /// Released, or never granted.
    Done,
}

/// Releases a lease whose holder was dropped (cancel, SIGINT) before it could release it itself,
/// including one granted while its answer was still on the way: that one is found by the
/// description it was asked for with.
struct LeaseGuard {
    api: Api,
    app: String,
    machine: String,
    step: LeaseStep,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let step = std::mem::replace(&mut self.step, LeaseStep::Done);
        if matches!(step, LeaseStep::Done) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (api, app, machine) = (self.api.clone(), self.app.clone(), self.machine.clone());
        rt.spawn(async move {
            let nonce = match step {
                LeaseStep::Held(nonce) => nonce,
                LeaseStep::Asking(description) => match api.get_lease(&app, &machine).await {
                    Ok(Some(l)) if l.description.as_deref() == Some(description.as_str()) => {
                        match l.nonce {
                            Some(n) => n,
                            None => return,
                        }
                    }
                    _ => return,
                },
                LeaseStep::Done => return,
            };
            if let Err(e) = api.release_lease(&app, &machine, &nonce).await {
                tracing::warn!(app, machine, error = %e, "could not release the lease after a cancel");
            }
        });
    }
}

/// What we know about the app of a name.
enum AppState {
    Missing,
    Ours,
    /// In our organisation, without the marker (maybe ours after a crash, maybe not).
    Unmarked,
    /// Not ours; why, and the request id of the answer that showed it.
    Foreign(String, Option<String>),
}

/// Pauses between polls: `first`, doubling up to `max` (never a fixed period).
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(first: Duration, max: Duration) -> Self {
        Self {
            next: first.min(max),
            max,
        }
    }

    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

fn owned_by_other(app: &str, why: &str, request_id: Option<String>) -> Error {
    Error::AlreadyExists {
        provider: PROVIDER,
        what: format!("app {app} ({why}; it is not ours and was left untouched)"),
        request_id,
    }
}

/// What a create of the app answered.
enum Created {
    Yes,
    /// `name_taken`: someone else's app; the request id of that answer.
    Taken(Option<String>),
}

impl FlyDatabases {
    /// A builder with defaults.
    pub fn builder() -> FlyDatabasesBuilder {
        FlyDatabasesBuilder::new()
    }

    /// A builder seeded from `FLY_API_TOKEN`, `FLY_ORG`, `FLY_API_URL` and `FLYCTL`.
    pub fn from_env() -> FlyDatabasesBuilder {
        FlyDatabasesBuilder::from_env()
    }

    /// The organisation slug.
    pub fn org(&self) -> &str {
        &self.org
    }

    fn idempotency_key(&self, app: &str) -> String {
        format!("preview-{}-{}", self.org, app)
    }

    async fn app_state(&self, app: &str) -> Result<AppState> {
        let a = self.api.get_app(app).await?;
        match a.status {
            StatusCode::NOT_FOUND => return Ok(AppState::Missing),
            // fly-go reads 403 on a named app as "exists, in someone else's organisation".
            StatusCode::FORBIDDEN => {
                return Ok(AppState::Foreign(
                    "the name is held by another organization".into(),
                    a.request_id(),
                ));
            }
            _ => {}
        }
        let what = format!("app {app}");
        let request_id = a.request_id();
        let found: wire::App = a.ok(&what)?.json(&what)?;
        if let Some(slug) = found.organization.and_then(|o| o.slug) {
            if slug != self.org {
                return Ok(AppState::Foreign(
                    format!("it belongs to organization {slug}"),
                    request_id,
                ));
            }
        }
        let secrets = self.api.list_secrets(app).await?;
        if secrets.secrets.iter().any(|s| s.name == OWNER_SECRET) {
            Ok(AppState::Ours)
        } else {
            Ok(AppState::Unmarked)
        }
    }

    /// Creates the app, or learns that the name is taken by someone else.
    async fn create_app(&self, app: &str) -> Result<Created> {
        let a = self
            .api
            .create_app(&wire::CreateApp {
                name: app,
                org_slug: &self.org,
                idempotency_key: self.idempotency_key(app),
            })
            .await?;
        if a.status.is_success() {
            return Ok(Created::Yes);
        }
        match a.error(&format!("app {app}")) {
            Error::AlreadyExists { request_id, .. } => Ok(Created::Taken(request_id)),
            e => Err(e),
        }
    }

    /// The app, created or adopted. Returns its outcome and whether the marker must be written.
    async fn ensure_app(&self, app: &str) -> Result<(Outcome, bool)> {
        match self.app_state(app).await? {
            AppState::Ours => Ok((Outcome::Unchanged, false)),
            AppState::Missing => match self.create_app(app).await? {
                Created::Yes => Ok((Outcome::Created, true)),
                Created::Taken(rid) => Err(owned_by_other(app, "the name is taken", rid)),
            },
            AppState::Unmarked => match self.create_app(app).await? {
                Created::Yes => {
                    tracing::info!(app, "unmarked app proven ours by its idempotency key");
                    Ok((Outcome::Updated, true))
                }
                Created::Taken(rid) => {
                    Err(owned_by_other(app, "it carries no ownership marker", rid))
                }
            },
            AppState::Foreign(why, rid) => Err(owned_by_other(app, &why, rid)),
        }
    }

    async fn ensure_ips(&self, app: &str) -> Result<Vec<ResourceChange>> {
        let ips = self.api.list_ips(app).await?.ips;
        let public = |i: &&wire::IpAssignment| !i.shared && !i.egress;
        let has_v4 = ips
            .iter()
            .filter(public)
            .any(|i| i.ip.as_deref().is_some_and(|ip| ip.contains('.')));
        let has_v6 = ips.iter().filter(public).any(|i| {
            i.ip.as_deref()
                .is_some_and(|ip| ip.contains(':') && !ip.to_ascii_lowercase().starts_with("fdaa"))
        });
        let mut changes = Vec::new();
        for (kind, present) in [("v4", has_v4), ("v6", has_v6)] {
            let outcome = if present {
                Outcome::Unchanged
            } else {
                self.api.assign_ip(app, kind).await?;
                Outcome::Created
            };
            changes.push(ResourceChange::new(
                PROVIDER,
                "ip",
                format!("{app}/{kind}"),
                outcome,
            ));
        }
        Ok(changes)
    }

    /// Writes the spec's secret env values (and the ownership marker when asked) as app secrets;
    /// the new secrets version, when anything was written.
    async fn write_secrets(
        &self,
        app: &str,
        name: &PreviewName,
        spec: &DatabaseSpec,
        marker: bool,
    ) -> Result<Option<u64>> {
        let mut values = secret_values(spec);
        if marker {
            values.insert(OWNER_SECRET.to_string(), name.as_str());
        }
        if values.is_empty() {
            return Ok(None);
        }
        let resp = self
            .api
            .update_secrets(app, &wire::UpdateSecrets { values })
            .await?;
        Ok(resp.version)
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
            &self.api.retry,
            what,
            preview_core::Idempotency::Idempotent,
            op,
        )
        .await
    }

    fn ours<'m>(machines: &'m [wire::Machine], name: &PreviewName) -> Vec<&'m wire::Machine> {
        let mut ours: Vec<&wire::Machine> = machines
            .iter()
            .filter(|m| m.metadata(META_ENV) == Some(name.as_str()))
            .collect();
        ours.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        ours
    }

    /// Runs `op` with a lease on the Machine, passing it the nonce for every mutating call, and
    /// releases the lease on every path: success, failure, and (through [`LeaseGuard`]) when the
    /// future is dropped (cancel, SIGINT).
    async fn leased<T, F, Fut>(&self, app: &str, machine: &str, op: F) -> Result<T>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let description = crate::api::lease_description();
        let mut guard = LeaseGuard {
            api: self.api.clone(),
            app: app.to_string(),
            machine: machine.to_string(),
            step: LeaseStep::Asking(description.clone()),
        };
        let nonce = match self
            .api
            .acquire_lease(app, machine, LEASE_TTL_SECS, &description)
            .await
        {
            Ok(nonce) => nonce,
            Err(e) => {
                // Refused, or lost and already looked up by acquire_lease: nothing to release.
                guard.step = LeaseStep::Done;
                return Err(e);
            }
        };
        guard.step = LeaseStep::Held(nonce.clone());
        let result = op(nonce.clone()).await;
        guard.step = LeaseStep::Done;
        if let Err(e) = self.api.release_lease(app, machine, &nonce).await {
            // It expires on its own after LEASE_TTL_SECS; the operation's result matters more.
            tracing::warn!(app, machine, error = %e, "could not release the lease");
        }
        result
    }

    async fn update_leased(
        &self,
        app: &str,
        name: &PreviewName,
        spec: &DatabaseSpec,
        m: &wire::Machine,
        config: &serde_json::Value,
        marker: bool,
    ) -> Result<wire::Machine> {
        self.leased(app, &m.id, |nonce| async move {
            let secrets_version = self.write_secrets(app, name, spec, marker).await?;
            self.api
                .update_machine(
                    app,
                    &m.id,
                    &wire::MachineRequest {
                        name: app,
                        region: &spec.region,
                        config,
                        min_secrets_version: secrets_version,
                        current_version: m.version(),
                    },
                    &nonce,
                )
                .await
        })
        .await
    }

    async fn diagnostics(&self, app: &str, id: &str) -> String {
        match self.api.events(app, id).await {
            Ok(events) if !events.is_empty() => {
                let lines: Vec<String> = events.iter().take(10).map(|e| e.line()).collect();
                format!("last events: {}", lines.join("; "))
            }
            Ok(_) => "no events recorded".to_string(),
            Err(e) => format!("events unavailable: {e}"),
        }
    }

    fn checks_pass(m: &wire::Machine, expected: usize) -> bool {
        let passing = m.checks.iter().filter(|c| c.status == "passing").count();
        passing >= expected && passing == m.checks.len()
    }

    /// Waits with the `/wait` long-poll until the Machine is started, then until every health
    /// check passes; fails on `failed` or at the spec's deadline, with the last events.
    async fn wait_healthy(
        &self,
        app: &str,
        m: &wire::Machine,
        spec: &DatabaseSpec,
    ) -> Result<wire::Machine> {
        let start = Instant::now();
        let deadline = start + spec.ready_timeout;
        let what = format!("machine {} of app {app}", m.id);
        let expected: usize = spec.containers.iter().map(|c| c.healthchecks.len()).sum();
        let mut last_state = m.state.clone();
        let failed = |state: &str, detail: String| Error::Failed {
            what: what.clone(),
            message: format!("the machine is {state}; {detail}"),
        };
        // Phase 1: started.
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Timeout {
                    what: what.clone(),
                    waited: start.elapsed(),
                    detail: format!("state {last_state}; {}", self.diagnostics(app, &m.id).await),
                });
            }
            let secs = self.wait_call.min(remaining).as_secs().clamp(1, 60);
            if self
                .api
                .wait(app, &m.id, "started", m.version(), secs)
                .await?
                .is_some()
            {
                break;
            }
            let now = self.api.get_machine(app, &m.id).await?;
            last_state = now.state.clone();
            if now.state == "failed" {
                return Err(failed(&now.state, self.diagnostics(app, &m.id).await));
            }
            // A 408 normally comes after the server held the call; if it came back at once,
            // do not spin.
            let pause = self
                .poll_interval
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
        }
        // Phase 2: every health check passes.
        let started = Instant::now();
        // If the API reports no check at all for this long after the start, every check has had
        // its grace period and enough intervals to pass: the API does not report container
        // checks for this Machine, and waiting longer cannot tell us more.
        let silent_window = spec
            .containers
            .iter()
            .flat_map(|c| &c.healthchecks)
            .map(|h| h.grace_period + h.interval * h.success_threshold + h.timeout)
            .max()
            .unwrap_or_default();
        // Get Machine allows 5 req/s: start at an eighth of the interval and back off to it.
        let mut pause = Backoff::new(self.poll_interval / 8, self.poll_interval);
        loop {
            let now = self.api.get_machine(app, &m.id).await?;
            if now.state == "failed" {
                return Err(failed(&now.state, self.diagnostics(app, &m.id).await));
            }
            if Self::checks_pass(&now, expected) {
                return Ok(now);
            }
            if now.checks.is_empty() && started.elapsed() >= silent_window {
                tracing::warn!(
                    app,
                    machine = %m.id,
                    expected,
                    "the Machine reports no health checks; relying on its started state"
                );
                return Ok(now);
            }
            let wait = pause.next();
            if Instant::now() + wait >= deadline {
                let checks: Vec<String> = now
                    .checks
                    .iter()
                    .map(|c| format!("{}={}", c.name, c.status))
                    .collect();
                return Err(Error::Timeout {
                    what,
                    waited: start.elapsed(),
                    detail: format!(
                        "state {}, checks [{}] ({expected} expected); {}",
                        now.state,
                        checks.join(", "),
                        self.diagnostics(app, &m.id).await
                    ),
                });
            }
            tokio::time::sleep(wait).await;
        }
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
            _ => return Ok(None),
        }
        let machines = self.api.list_machines(app).await?;
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
        let (app_outcome, marker) = self.unit("fly app", || self.ensure_app(app)).await?;
        changes.push(ResourceChange::new(PROVIDER, "app", app, app_outcome));
        changes.extend(self.unit("fly IPs", || self.ensure_ips(app)).await?);

        let config = machine_config(name, spec);
        let (machine, outcome) = self
            .unit("fly machine", || async {
                let machines = self.api.list_machines(app).await?;
                let ours = Self::ours(&machines, name);
                if ours.len() > 1 {
                    tracing::warn!(
                        app,
                        count = ours.len(),
                        "more than one machine carries our marker; converging the oldest"
                    );
                }
                let done = match ours.first() {
                    None => {
                        let secrets_version = self.write_secrets(app, name, spec, marker).await?;
                        let m = self
                            .api
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
                        (m, Outcome::Created)
                    }
                    Some(m) if m.config.as_ref().is_some_and(|c| covers(c, &config)) => {
                        if marker {
                            // Only the marker is missing (app re-claimed after a crash).
                            self.api
                                .update_secrets(
                                    app,
                                    &wire::UpdateSecrets {
                                        values: [(OWNER_SECRET.to_string(), name.as_str())]
                                            .into_iter()
                                            .collect(),
                                    },
                                )
                                .await?;
                        }
                        if matches!(m.state.as_str(), "stopped" | "suspended") {
                            // Same config, but not running (stopped by hand, or exited under
                            // restart policy `no`): start it rather than wait for nothing.
                            self.leased(app, &m.id, |nonce| async move {
                                self.api.start_machine(app, &m.id, &nonce).await
                            })
                            .await?;
                            ((*m).clone(), Outcome::Updated)
                        } else {
                            ((*m).clone(), Outcome::Unchanged)
                        }
                    }
                    Some(m) => {
                        let updated = self
                            .update_leased(app, name, spec, m, &config, marker)
                            .await?;
                        (updated, Outcome::Updated)
                    }
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
            AppState::Unmarked => {
                if let Created::Taken(_) = self.create_app(app).await? {
                    tracing::warn!(
                        app,
                        "an app of our name exists without our marker; left untouched"
                    );
                    return Ok(Deleted::AlreadyGone);
                }
            }
            AppState::Foreign(why, _) => {
                tracing::warn!(app, why, "an app of our name is not ours; left untouched");
                return Ok(Deleted::AlreadyGone);
            }
        }
        let a = self.api.delete_app(app).await?;
        if a.status == StatusCode::NOT_FOUND {
            return Ok(Deleted::AlreadyGone);
        }
        a.ok(&format!("app {app}"))?;
        // Deletion is asynchronous (202): poll until the app is gone, backing off from half the
        // interval (Get App allows 1 req/s after a burst of 3).
        let start = Instant::now();
        let mut pause = Backoff::new(self.poll_interval / 2, self.poll_interval * 4);
        loop {
            let a = self.api.get_app(app).await?;
            if a.status == StatusCode::NOT_FOUND {
                return Ok(Deleted::Removed);
            }
            a.ok(&format!("app {app}"))?;
            let wait = pause.next();
            if start.elapsed() + wait > self.delete_timeout {
                return Err(Error::Timeout {
                    what: format!("deletion of app {app}"),
                    waited: start.elapsed(),
                    detail: "the app still exists (pending deletion); a later teardown or sweep will finish it".into(),
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    #[tracing::instrument(skip_all, fields(org = %self.org))]
    async fn list_databases(&self) -> Result<Vec<Owned>> {
        let mut owned = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = self
                .api
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
            // One secrets read per app, a few apps at a time: each app has its own rate limit,
            // and a page of 100 read one by one would dominate a sweep.
            let checked: Vec<Result<Option<Owned>>> = futures::stream::iter(candidates)
                .map(|(app, name)| async move {
                    let secrets = self.api.list_secrets(&app).await?;
                    Ok(secrets
                        .secrets
                        .iter()
                        .any(|s| s.name == OWNER_SECRET)
                        .then(|| Owned {
                            name: name.to_string(),
                            provider: PROVIDER.to_string(),
                            resource: format!("app {app}"),
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
