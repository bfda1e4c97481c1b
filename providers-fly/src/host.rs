//! [`DatabaseHost`] for Fly.io: one app per environment, holding exactly one multi-container
//! Machine.

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

use crate::core::{Core, LEASE_PREFIX};

use crate::machine::{META_ENV, META_FINGERPRINT, covers, machine_config, secret_values};
use crate::{PROVIDER, wire};

/// The app secret whose presence marks an app as created by `preview` for that environment.
pub const OWNER_SECRET: &str = "PREVIEW_ENV";

/// How long a Machine lease lives unless refreshed: short, so a lease left by a killed run blocks
/// the next one for seconds, not minutes. Extended between the steps of an update once half of
/// it has passed.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(20);

/// The longest we wait for another `preview` run's lease, whatever it says about its expiry (a
/// lease taken by an older version lived 120 s).
const OWN_LEASE_WAIT_CAP: Duration = Duration::from_secs(150);

/// Page size when listing apps.
const PAGE: u32 = 100;
/// Secrets reads in flight while listing apps.
const LIST_CONCURRENCY: usize = 8;

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
    core: Core,
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
        let (api, app, machine) = (self.core.clone(), self.app.clone(), self.machine.clone());
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

/// A lease we hold.
pub(crate) struct Held {
    pub(crate) nonce: String,
    description: String,
    /// When it was taken or last extended.
    taken: Instant,
}

/// What we know about the app of a name (see the module's `# Ownership`).
enum AppState {
    Missing,
    /// In our organisation, with the marker.
    Ours,
    /// In our organisation, without the marker, and empty: a create whose run died before the
    /// marker. Ours by name and organisation.
    HalfCreated,
    /// In our organisation, without the marker, holding what is described.
    Unmarked(String),
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

/// `n things` with the right plural.
fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

impl FlyDatabases {
    /// The organisation slug.
    pub fn org(&self) -> &str {
        &self.org
    }

    fn idempotency_key(&self, app: &str) -> String {
        format!("preview-{}-{}", self.org, app)
    }

    /// What an app without our marker holds, as a phrase (`1 IP, 2 secrets`); empty when nothing.
    async fn contents(&self, app: &str) -> Result<String> {
        let (machines, ips, volumes) = futures::try_join!(
            self.core.list_machines(app),
            self.core.list_ips(app),
            self.core.list_volumes(app),
        )?;
        let mut held = Vec::new();
        if !machines.is_empty() {
            held.push(count(machines.len(), "Machine"));
        }
        if !ips.ips.is_empty() {
            held.push(count(ips.ips.len(), "IP"));
        }
        if !volumes.is_empty() {
            held.push(count(volumes.len(), "volume"));
        }
        Ok(held.join(", "))
    }

    async fn app_state(&self, app: &str) -> Result<AppState> {
        match self.look_at_app(app).await {
            // Gone between our reads (another run deleted it): it is missing.
            Err(Error::NotFound { .. }) => Ok(AppState::Missing),
            other => other,
        }
    }

    async fn look_at_app(&self, app: &str) -> Result<AppState> {
        let a = self.core.get_app(app).await?;
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
        let request_id = a.request_id();
        let a = a.ok(&format!("app {app}"))?;
        let found: wire::App = a.json(&format!("read app {app}"))?;
        if found.name != app {
            return Err(a.unreadable(&format!("read app {app}"), "it describes another app"));
        }
        match found.organization.slug {
            Some(slug) if slug == self.org => {}
            Some(slug) => {
                return Ok(AppState::Foreign(
                    format!("it belongs to organization {slug}"),
                    request_id,
                ));
            }
            None => {
                return Err(a.unreadable(&format!("read app {app}"), "it names no organization"));
            }
        }
        let marked = |s: &wire::AppSecrets| s.secrets.iter().any(|s| s.name == OWNER_SECRET);
        let first = self.core.list_secrets(app).await?;
        if marked(&first) {
            return Ok(AppState::Ours);
        }
        let held = self.contents(app).await?;
        if first.secrets.is_empty() && held.is_empty() {
            return Ok(AppState::HalfCreated);
        }
        // Anything we put in an app comes after its marker: a second look at the secrets, after
        // what we saw in it, finds the marker if a run of ours wrote those things meanwhile.
        let second = self.core.list_secrets(app).await?;
        if marked(&second) {
            return Ok(AppState::Ours);
        }
        let mut all = Vec::new();
        if !second.secrets.is_empty() {
            all.push(count(second.secrets.len(), "secret"));
        }
        if !held.is_empty() {
            all.push(held);
        }
        Ok(AppState::Unmarked(all.join(", ")))
    }

    /// Creates the app, or learns that the name is taken by someone else.
    async fn create_app(&self, app: &str) -> Result<Created> {
        let call = format!("create app {app}");
        let sent = self
            .core
            .create_app(&wire::CreateApp {
                name: app,
                org_slug: &self.org,
                idempotency_key: self.idempotency_key(app),
            })
            .await;
        let a = match sent {
            Ok(a) => a,
            Err(Error::AlreadyExists { request_id, .. }) => return Ok(Created::Taken(request_id)),
            Err(e) => return Err(e),
        };
        // Only a readable answer says the app exists: a proxy's or a broken answer would
        // otherwise be blamed on whichever call next finds no app.
        let _: wire::CreatedApp = a.json(&call)?;
        Ok(Created::Yes)
    }

    /// The app, created or adopted, with its marker. Returns its outcome and the secrets version
    /// written (when it wrote the secrets).
    async fn ensure_app(
        &self,
        app: &str,
        name: &PreviewName,
        spec: &DatabaseSpec,
    ) -> Result<(Outcome, Option<u64>)> {
        let outcome = match self.app_state(app).await? {
            AppState::Ours => return Ok((Outcome::Unchanged, None)),
            AppState::Missing => match self.create_app(app).await? {
                Created::Yes => Outcome::Created,
                // Another run of ours may have created it a moment ago (a create with the same
                // key normally hands that app back; not while it is being deleted): look again.
                Created::Taken(rid) => match self.app_state(app).await? {
                    AppState::Ours => return Ok((Outcome::Unchanged, None)),
                    AppState::HalfCreated => Outcome::Updated,
                    _ => return Err(owned_by_other(app, "the name is taken", rid)),
                },
            },
            AppState::HalfCreated => {
                tracing::info!(
                    app,
                    "adopting an empty app of our name (a create whose run died before its marker)"
                );
                Outcome::Updated
            }
            AppState::Unmarked(held) => match self.create_app(app).await? {
                Created::Yes => {
                    tracing::info!(app, "unmarked app proven ours by its idempotency key");
                    Outcome::Updated
                }
                Created::Taken(rid) => {
                    return Err(owned_by_other(
                        app,
                        &format!(
                            "it is in our organization without our marker and holds {held} we did not make"
                        ),
                        rid,
                    ));
                }
            },
            AppState::Foreign(why, rid) => return Err(owned_by_other(app, &why, rid)),
        };
        // The marker first: from here on the app is recognisably ours.
        let version = self.write_secrets(app, name, spec).await?;
        Ok((outcome, version))
    }

    /// The dedicated IPv4 and IPv6. Of two of a kind (two runs assigned one each at once), every
    /// run keeps the oldest and releases the others.
    async fn ensure_ips(&self, app: &str) -> Result<Vec<ResourceChange>> {
        let ips = self.core.list_ips(app).await?.ips;
        let has = |ips: &[wire::IpAssignment], kind: &str| {
            ips.iter().any(|i| i.public_kind() == Some(kind))
        };
        let mut changes = Vec::new();
        let mut assigned = false;
        for kind in ["v4", "v6"] {
            let outcome = if has(&ips, kind) {
                Outcome::Unchanged
            } else {
                self.core.assign_ip(app, kind).await?;
                assigned = true;
                Outcome::Created
            };
            changes.push(ResourceChange::new(
                PROVIDER,
                "ip",
                format!("{app}/{kind}"),
                outcome,
            ));
        }
        let ips = if assigned {
            self.core.list_ips(app).await?.ips
        } else {
            ips
        };
        for kind in ["v4", "v6"] {
            let mut of_kind: Vec<&wire::IpAssignment> = ips
                .iter()
                .filter(|i| i.public_kind() == Some(kind))
                .collect();
            of_kind.sort_by(|a, b| (&a.created_at, &a.ip).cmp(&(&b.created_at, &b.ip)));
            for extra in of_kind.iter().skip(1) {
                if let Some(ip) = extra.ip.as_deref() {
                    tracing::info!(app, ip, "releasing a second dedicated {kind} address");
                    self.core.release_ip(app, ip).await?;
                }
            }
        }
        Ok(changes)
    }

    /// Writes the ownership marker and the spec's secret env values as app secrets, in one
    /// request; the new secrets version.
    async fn write_secrets(
        &self,
        app: &str,
        name: &PreviewName,
        spec: &DatabaseSpec,
    ) -> Result<Option<u64>> {
        let mut values = secret_values(spec);
        values.insert(OWNER_SECRET.to_string(), name.as_str());
        let resp = self
            .core
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

    /// Takes a lease, waiting out one held by another `preview` run (concurrent, or killed
    /// before it released it) until it is released or runs out. A lease held by anyone else is
    /// the API's conflict, at once.
    async fn take_lease(&self, app: &str, machine: &str, description: &str) -> Result<String> {
        let ttl = self.lease_ttl.as_secs().max(1);
        let started = Instant::now();
        let mut said: Option<Instant> = None;
        loop {
            let conflict = match self
                .core
                .acquire_lease(app, machine, ttl, description)
                .await
            {
                Ok(lease) => {
                    return lease.nonce.ok_or_else(|| Error::Api {
                        provider: PROVIDER,
                        status: 201,
                        message: format!(
                            "take a lease on machine {machine} of app {app}: the answer could not be read: it carries no nonce"
                        ),
                        request_id: None,
                    });
                }
                Err(e @ Error::Conflict { .. }) => e,
                Err(e) => return Err(e),
            };
            // Who holds it? Poll until it is gone, or until it turns out not to be ours.
            loop {
                let Some(held) = self.core.get_lease(app, machine).await? else {
                    break;
                };
                let description = held.description.clone().unwrap_or_default();
                if !description.starts_with(LEASE_PREFIX) {
                    return Err(match conflict {
                        Error::Conflict {
                            provider,
                            message,
                            request_id,
                        } => Error::Conflict {
                            provider,
                            message: format!(
                                "{message} (held for {description:?}; it is not ours: wait for it or release it)"
                            ),
                            request_id,
                        },
                        other => other,
                    });
                }
                let now_s = jiff::Timestamp::now().as_second();
                let left = held.expires_at.map_or(self.lease_ttl, |at| {
                    Duration::from_secs(at.saturating_sub(now_s).max(0) as u64)
                });
                if started.elapsed() >= OWN_LEASE_WAIT_CAP {
                    return Err(conflict);
                }
                if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                    tracing::warn!(
                        "machine {machine} of app {app} is leased by another preview run ({description}, owner {}); waiting for it to be released or to expire in {}s",
                        held.owner.as_deref().unwrap_or("unknown"),
                        left.as_secs()
                    );
                    said = Some(Instant::now());
                }
                // Poll the lease (1 req/s allowed), but never sleep past its expiry by much.
                let pause = left
                    .saturating_add(Duration::from_millis(200))
                    .min(Duration::from_secs(1))
                    .max(Duration::from_millis(100));
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Runs `op` with a lease on the Machine, passing it the [`Held`] lease (its nonce goes on
    /// every mutating call; [`FlyDatabases::fresh`] extends it between steps), and releases the
    /// lease on every path: success, failure, and (through [`LeaseGuard`]) when the future is
    /// dropped (cancel, SIGINT).
    pub(crate) async fn leased<T, F, Fut>(&self, app: &str, machine: &str, op: F) -> Result<T>
    where
        F: FnOnce(Held) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let description = crate::core::lease_description(app);
        let mut guard = LeaseGuard {
            core: self.core.clone(),
            app: app.to_string(),
            machine: machine.to_string(),
            step: LeaseStep::Asking(description.clone()),
        };
        let nonce = match self.take_lease(app, machine, &description).await {
            Ok(nonce) => nonce,
            Err(e) => {
                // Refused, or lost and already looked up by acquire_lease: nothing to release.
                guard.step = LeaseStep::Done;
                return Err(e);
            }
        };
        guard.step = LeaseStep::Held(nonce.clone());
        let result = op(Held {
            nonce: nonce.clone(),
            description,
            taken: Instant::now(),
        })
        .await;
        guard.step = LeaseStep::Done;
        if let Err(e) = self.core.release_lease(app, machine, &nonce).await {
            // It runs out on its own within the lease TTL; the operation's result matters more.
            tracing::warn!(app, machine, error = %e, "could not release the lease");
        }
        result
    }

    /// The nonce of `held`, after extending the lease if half its TTL has passed since it was
    /// taken or last extended (a step of an update took long): it must not run out under us.
    async fn fresh(&self, app: &str, machine: &str, held: &mut Held) -> Result<String> {
        if held.taken.elapsed() >= self.lease_ttl / 2 {
            self.core
                .refresh_lease(
                    app,
                    machine,
                    self.lease_ttl.as_secs().max(1),
                    &held.nonce,
                    &held.description,
                )
                .await?;
            held.taken = Instant::now();
        }
        Ok(held.nonce.clone())
    }

    /// Converges the Machine `m` to `config` under a lease. Under the lease it is read again:
    /// another run may have updated it while we waited for the lease.
    async fn update_leased(
        &self,
        app: &str,
        name: &PreviewName,
        spec: &DatabaseSpec,
        m: &wire::Machine,
        config: &serde_json::Value,
    ) -> Result<(wire::Machine, Outcome)> {
        self.leased(app, &m.id, |mut held| async move {
            let now = self.core.get_machine(app, &m.id).await?;
            if now.config.as_ref().is_some_and(|c| covers(c, config)) {
                return Ok((now, Outcome::Unchanged));
            }
            let secrets_version = self.write_secrets(app, name, spec).await?;
            let nonce = self.fresh(app, &m.id, &mut held).await?;
            let updated = self
                .core
                .update_machine(
                    app,
                    &m.id,
                    &wire::MachineRequest {
                        name: app,
                        region: &spec.region,
                        config,
                        min_secrets_version: secrets_version,
                        current_version: now.version(),
                    },
                    &nonce,
                )
                .await?;
            Ok((updated, Outcome::Updated))
        })
        .await
    }

    async fn diagnostics(&self, app: &str, id: &str) -> String {
        match self.core.events(app, id).await {
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

    /// Waits until the Machine is started, then until every health check passes; fails as soon
    /// as it is `failed`, or at the spec's deadline, with the last events.
    ///
    /// The first part is the `/wait` long poll for `started` *or* `failed`, so a Machine that
    /// fails to boot is reported when it fails, not when a window runs out; windows are short
    /// ([`FlyDatabasesBuilder::wait_call`]), with a look at the Machine between them.
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
        // Phase 1: started (or failed).
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
            let asked = Instant::now();
            match self
                .core
                .wait(app, &m.id, &["started", "failed"], m.version(), secs)
                .await?
                .as_deref()
            {
                Some("failed") => {
                    return Err(failed("failed", self.diagnostics(app, &m.id).await));
                }
                Some(_) => break,
                None => {}
            }
            let now = self.core.get_machine(app, &m.id).await?;
            last_state = now.state.clone();
            if now.state == "failed" {
                return Err(failed(&now.state, self.diagnostics(app, &m.id).await));
            }
            // A 408 normally comes after the server held the call for its window; if it came
            // back early, do not spin.
            if asked.elapsed() < Duration::from_secs(secs) / 2 {
                let pause = self
                    .poll_interval
                    .min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
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
            let now = self.core.get_machine(app, &m.id).await?;
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
            boot: m.and_then(crate::machine::boot),
            marks: crate::machine::marks(
                m.and_then(|m| m.config.as_ref())
                    .and_then(|c| c.get("metadata")),
            ),
        }
    }

    /// Deletes the app and waits until it is gone.
    async fn delete_app(&self, app: &str) -> Result<Deleted> {
        let a = self.core.delete_app(app).await?;
        if a.status == StatusCode::NOT_FOUND {
            return Ok(Deleted::AlreadyGone);
        }
        a.ok(&format!("app {app}"))?;
        // Deletion is asynchronous (202): poll until the app is gone, backing off from half the
        // interval (Get App allows 1 req/s after a burst of 3).
        let start = Instant::now();
        let mut pause = Backoff::new(self.poll_interval / 2, self.poll_interval * 4);
        loop {
            let a = self.core.get_app(app).await?;
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

    /// Whether an app found in the list is ours: marked, or empty (half-created).
    async fn listed(&self, app: &str) -> Result<Option<&'static str>> {
        let secrets = match self.core.list_secrets(app).await {
            // Deleted since the list: nothing to list.
            Err(Error::NotFound { .. }) => return Ok(None),
            other => other?,
        };
        if secrets.secrets.iter().any(|s| s.name == OWNER_SECRET) {
            return Ok(Some("app"));
        }
        if !secrets.secrets.is_empty() {
            return Ok(None);
        }
        Ok(match self.app_state(app).await? {
            AppState::Ours => Some("app"),
            AppState::HalfCreated => Some("half-created app (no marker, nothing in it)"),
            _ => None,
        })
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
