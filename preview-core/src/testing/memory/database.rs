//! [`InMemoryDatabases`]: the database host, in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;

use crate::error::{Error, Result};
use crate::host::{
    AppliedDatabase, Database, DatabaseHost, DatabaseSpec, Deleted, Mark, Marks, Outcome, Owned,
    ResourceChange, Tunnel, Tunnels,
};
use crate::name::PreviewName;

use super::{Journal, PROVIDER, lock};

#[derive(Debug, Clone)]
struct DbEntry {
    fingerprint: String,
    host: String,
    created_at: Timestamp,
    healthy: bool,
    /// `started`, `stopped` or `suspended`.
    state: &'static str,
    /// Bumped whenever in-memory data would be lost (a restart, a stop and start).
    boot: u64,
    marks: Marks,
}

impl DbEntry {
    fn database(&self, name: &PreviewName) -> Database {
        Database {
            name: name.clone(),
            host: self.host.clone(),
            state: if self.healthy { self.state } else { "failed" }.into(),
            fingerprint: Some(self.fingerprint.clone()),
            created_at: Some(self.created_at),
            boot: Some(format!("boot-{}", self.boot)),
            marks: self.marks.clone(),
        }
    }
}

#[derive(Default)]
struct DbState {
    journal: Journal,
    dbs: BTreeMap<String, DbEntry>,
    foreign: Vec<String>,
    unhealthy: Vec<String>,
    open_tunnels: usize,
}

/// An in-memory [`DatabaseHost`]. `Clone` shares state.
///
/// # Examples
/// Inject a fault, watch the call fail and the next one succeed, and read what was called:
/// ```
/// use preview_core::testing::InMemoryDatabases;
/// use preview_core::{DatabaseHost, Deleted, Error, Naming, PrNumber};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let name = Naming::new("pr", "shop")?.name(PrNumber::new(42)?);
/// let databases = InMemoryDatabases::new();
/// databases.fail_next("delete_database", Error::failed("delete database", "injected"));
/// assert!(databases.delete_database(&name).await.is_err());
/// assert_eq!(databases.delete_database(&name).await?, Deleted::AlreadyGone);
/// assert_eq!(databases.calls().len(), 2);
/// assert!(databases.names().is_empty());
/// # Ok::<(), preview_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct InMemoryDatabases {
    inner: Arc<Mutex<DbState>>,
}

impl std::fmt::Debug for InMemoryDatabases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.inner);
        f.debug_struct("InMemoryDatabases")
            .field("databases", &s.dbs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

struct TunnelGuard(Arc<Mutex<DbState>>);

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        lock(&self.0).open_tunnels -= 1;
    }
}

impl InMemoryDatabases {
    /// An empty host.
    pub fn new() -> Self {
        Self::default()
    }

    journal_api!();

    /// Names of the databases that exist.
    pub fn names(&self) -> Vec<String> {
        lock(&self.inner).dbs.keys().cloned().collect()
    }

    /// Marks a name as taken by someone else (apply must refuse it).
    pub fn add_foreign(&self, name: &str) {
        lock(&self.inner).foreign.push(name.to_string());
    }

    /// Makes the stack of `name` never become healthy (apply fails with a timeout).
    pub fn make_unhealthy(&self, name: &str) {
        lock(&self.inner).unhealthy.push(name.to_string());
    }

    /// Sets the creation time of a database (sweep grace-period tests).
    pub fn set_created_at(&self, name: &str, at: Timestamp) {
        if let Some(d) = lock(&self.inner).dbs.get_mut(name) {
            d.created_at = at;
        }
    }

    /// Deletes a database out of band (drift tests); not a call.
    pub fn remove_database(&self, name: &str) -> bool {
        lock(&self.inner).dbs.remove(name).is_some()
    }

    /// How many tunnel sets are open right now.
    pub fn open_tunnels(&self) -> usize {
        lock(&self.inner).open_tunnels
    }

    /// Restarts a database behind the pipeline's back (host maintenance, a crash): a new boot,
    /// its in-memory data gone. Not a call.
    pub fn restart(&self, name: &str) {
        if let Some(d) = lock(&self.inner).dbs.get_mut(name) {
            d.boot += 1;
        }
    }

    /// The state of a database (`started`, `stopped`, `suspended`).
    pub fn state(&self, name: &str) -> Option<&'static str> {
        lock(&self.inner).dbs.get(name).map(|d| d.state)
    }

    /// Sets what is recorded beside a database (expiry and sleep tests); not a call.
    pub fn set_marks(&self, name: &str, marks: Marks) {
        if let Some(d) = lock(&self.inner).dbs.get_mut(name) {
            d.marks = marks;
        }
    }
}

#[async_trait]
impl DatabaseHost for InMemoryDatabases {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    async fn get_database(&self, name: &PreviewName) -> Result<Option<Database>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let found = s.dbs.get(name.as_str()).map(|d| d.database(name));
        s.journal
            .run("get_database", name.as_str(), || Ok((found, false)))
    }

    async fn apply_database(
        &self,
        name: &PreviewName,
        spec: &DatabaseSpec,
    ) -> Result<AppliedDatabase> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let key = name.as_str().to_string();
        if s.foreign.contains(&key) {
            s.journal.record("apply_database", &key, false);
            return Err(Error::AlreadyExists {
                provider: PROVIDER,
                what: format!("database {key} (owned by someone else)"),
                request_id: None,
            });
        }
        let fp = spec.fingerprint();
        let healthy = !s.unhealthy.contains(&key);
        let dbs = &mut s.dbs;
        let r = s.journal.run("apply_database", &key, || {
            let outcome = match dbs.get_mut(&key) {
                // Asleep: started again (after a stop, as a new boot: memory is gone).
                Some(d) if d.fingerprint == fp && d.state != "started" => {
                    if d.state == "stopped" {
                        d.boot += 1;
                    }
                    d.state = "started";
                    return Ok((Outcome::Updated, true));
                }
                Some(d) if d.fingerprint == fp => Outcome::Unchanged,
                Some(_) => Outcome::Updated,
                None => Outcome::Created,
            };
            let created_at = dbs
                .get(&key)
                .map(|d| d.created_at)
                .unwrap_or_else(Timestamp::now);
            if outcome != Outcome::Unchanged {
                dbs.insert(
                    key.clone(),
                    DbEntry {
                        fingerprint: fp.clone(),
                        host: spec.public_host.clone(),
                        created_at,
                        healthy,
                        state: "started",
                        // An update replaces the Machine: a new boot, and the marks go with
                        // the old config (as Fly's metadata does).
                        boot: dbs.get(&key).map_or(0, |d| d.boot + 1),
                        marks: Marks::default(),
                    },
                );
            }
            Ok((outcome, outcome != Outcome::Unchanged))
        })?;
        if !healthy {
            return Err(Error::Timeout {
                what: format!("database {key} becoming healthy"),
                waited: spec.ready_timeout,
                detail: "health checks never passed".into(),
            });
        }
        let _ = fp;
        let database =
            s.dbs
                .get(&key)
                .map(|d| d.database(name))
                .ok_or_else(|| Error::NotFound {
                    provider: PROVIDER,
                    what: format!("database {key}"),
                })?;
        Ok(AppliedDatabase {
            database,
            changes: vec![ResourceChange::new(PROVIDER, "database", key, r)],
        })
    }

    async fn delete_database(&self, name: &PreviewName) -> Result<Deleted> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let dbs = &mut s.dbs;
        s.journal.run("delete_database", name.as_str(), || {
            Ok(match dbs.remove(name.as_str()) {
                Some(_) => (Deleted::Removed, true),
                None => (Deleted::AlreadyGone, false),
            })
        })
    }

    async fn list_databases(&self) -> Result<Vec<Owned>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let list = s
            .dbs
            .iter()
            .map(|(n, d)| Owned {
                name: n.clone(),
                provider: PROVIDER.into(),
                resource: format!("database {n}"),
                created_at: Some(d.created_at),
            })
            .collect();
        s.journal.run("list_databases", "", || Ok((list, false)))
    }

    async fn mark_database(&self, name: &PreviewName, mark: &Mark) -> Result<()> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let dbs = &mut s.dbs;
        s.journal.run("mark_database", name.as_str(), || {
            let Some(d) = dbs.get_mut(name.as_str()) else {
                return Err(Error::NotFound {
                    provider: PROVIDER,
                    what: format!("database {name}"),
                });
            };
            match mark.clone() {
                Mark::ActiveAt(t) => d.marks.active_at = Some(t),
                Mark::Hooks(h) => d.marks.hooks = Some(h),
                Mark::AsleepSince(t) => d.marks.asleep_since = t,
                Mark::SleptSecs(n) => d.marks.slept_secs = n,
            }
            Ok(((), true))
        })
    }

    async fn sleep_database(&self, name: &PreviewName, suspend: bool) -> Result<Outcome> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let dbs = &mut s.dbs;
        s.journal.run("sleep_database", name.as_str(), || {
            let Some(d) = dbs.get_mut(name.as_str()) else {
                return Err(Error::NotFound {
                    provider: PROVIDER,
                    what: format!("database {name}"),
                });
            };
            if d.state != "started" {
                return Ok((Outcome::Unchanged, false));
            }
            d.state = if suspend { "suspended" } else { "stopped" };
            Ok((Outcome::Updated, true))
        })
    }

    async fn list_lifetimes(&self, naming: &crate::name::Naming) -> Result<Vec<Database>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let list = s
            .dbs
            .iter()
            .filter_map(|(n, d)| Some(d.database(&naming.parse(n)?)))
            .collect();
        s.journal.run("list_lifetimes", "", || Ok((list, false)))
    }

    async fn open_tunnels(&self, name: &PreviewName, spec: &DatabaseSpec) -> Result<Tunnels> {
        self.latency().await;
        let mut s = lock(&self.inner);
        if !s.dbs.contains_key(name.as_str()) {
            s.journal.record("open_tunnels", name.as_str(), false);
            return Err(Error::NotFound {
                provider: PROVIDER,
                what: format!("database {name}"),
            });
        }
        let tunnels: Vec<Tunnel> = spec
            .services
            .iter()
            .enumerate()
            .map(|(i, svc)| Tunnel {
                service: svc.name.clone(),
                host: "127.0.0.1".into(),
                port: 15000 + i as u16,
            })
            .collect();
        s.journal
            .run("open_tunnels", name.as_str(), || Ok(((), false)))?;
        s.open_tunnels += 1;
        drop(s);
        Ok(Tunnels::new(tunnels, TunnelGuard(self.inner.clone())))
    }
}
