//! Machine leases: taken (waiting out another `preview` run's), extended between the steps of an
//! update, and released on every path, a dropped future included.

use std::time::Duration;

use preview_core::{DatabaseSpec, Error, Outcome, PreviewName, Result};
use tokio::time::Instant;

use super::FlyDatabases;
use crate::core::{Core, LEASE_PREFIX};
use crate::machine::covers;
use crate::{PROVIDER, wire};

/// The longest we wait for another `preview` run's lease, whatever it says about its expiry (a
/// lease taken by an older version lived 120 s).
const OWN_LEASE_WAIT_CAP: Duration = Duration::from_secs(150);

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

impl FlyDatabases {
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
    pub(super) async fn update_leased(
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
}
