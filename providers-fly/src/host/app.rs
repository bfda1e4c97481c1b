//! The app of an environment: whose it is (the ownership rules on [`FlyDatabases`]), its create
//! or adoption with the marker, its dedicated IPs and secrets, and its deletion.

use preview_core::{DatabaseSpec, Deleted, Error, Outcome, PreviewName, ResourceChange, Result};
use reqwest::StatusCode;
use tokio::time::Instant;

use super::wait::Backoff;
use super::{FlyDatabases, OWNER_SECRET};
use crate::machine::secret_values;
use crate::{PROVIDER, wire};

/// What we know about the app of a name (see the module's `# Ownership`).
pub(super) enum AppState {
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

pub(super) fn owned_by_other(app: &str, why: &str, request_id: Option<String>) -> Error {
    Error::AlreadyExists {
        provider: PROVIDER,
        what: format!("app {app} ({why}; it is not ours and was left untouched)"),
        request_id,
    }
}

/// What a create of the app answered.
pub(super) enum Created {
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

    pub(super) async fn app_state(&self, app: &str) -> Result<AppState> {
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
    pub(super) async fn create_app(&self, app: &str) -> Result<Created> {
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
    pub(super) async fn ensure_app(
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
    pub(super) async fn ensure_ips(&self, app: &str) -> Result<Vec<ResourceChange>> {
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
    pub(super) async fn write_secrets(
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

    /// Deletes the app and waits until it is gone.
    pub(super) async fn delete_app(&self, app: &str) -> Result<Deleted> {
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
    pub(super) async fn listed(&self, app: &str) -> Result<Option<&'static str>> {
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
