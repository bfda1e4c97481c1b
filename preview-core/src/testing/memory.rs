use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::effects::{HookRunner, HttpClient, LineSink};
use crate::error::{Error, Result, TransportKind};
use crate::host::{
    AppDeployment, AppHost, AppRef, AppSpec, AppStatus, AppliedDatabase, Commit, Database,
    DatabaseHost, DatabaseSpec, Deleted, Outcome, Owned, PrState, PullRequest, Report,
    ReportSummary, ResourceChange, SourceHost, Tunnel, Tunnels,
};
use crate::name::{PrNumber, PreviewName};
use crate::render::{HookRun, HttpCall};

use super::faults::SplitMix64;

const PROVIDER: &str = "memory";

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Operation (the trait method's name).
    pub op: String,
    /// What it was about (environment name, PR number, …).
    pub target: String,
    /// Whether it changed state.
    pub mutating: bool,
}

/// A fault to inject: fail before acting, or act and then fail ("silent success").
enum Fault {
    Before(Error),
    After(Error),
}

#[derive(Default)]
struct Faults {
    queue: BTreeMap<String, VecDeque<Fault>>,
}

impl Faults {
    fn take(&mut self, op: &str) -> Option<Fault> {
        self.queue.get_mut(op).and_then(VecDeque::pop_front)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep the state readable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Seeded random faults for every call of an in-memory host (see `chaos` on each host).
///
/// Each call fails with `probability`, uniformly as one of: a transport error before sending
/// (connect), HTTP 408, 429 with `Retry-After` of 1–5 s, 500, 502, 503, 504 (all without acting),
/// or a "silent success" (the call acts, then answers 408, 502 or a transport timeout). Separately,
/// each call may first sleep on the tokio clock (free under a paused clock). The same seed gives the
/// same faults for the same sequence of calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Chaos {
    seed: u64,
    probability: f64,
    latency_probability: f64,
    max_latency: Duration,
    max_consecutive: Option<u32>,
}

impl Chaos {
    /// Faults with `probability` per call (0.0–1.0), from `seed`; no latency.
    pub fn new(seed: u64, probability: f64) -> Self {
        Self {
            seed,
            probability,
            latency_probability: 0.0,
            max_latency: Duration::ZERO,
            max_consecutive: None,
        }
    }

    /// Never fails one call more than `n` times in a row: attempt `n + 1` of a call (the same
    /// operation on the same resource, retried) always gets through. Without it, some seed
    /// eventually fails a call any finite number of times.
    pub fn max_consecutive(mut self, n: u32) -> Self {
        self.max_consecutive = Some(n);
        self
    }

    /// Also delays a call with `probability`, uniformly up to `max`.
    pub fn latency(mut self, probability: f64, max: Duration) -> Self {
        self.latency_probability = probability;
        self.max_latency = max;
        self
    }
}

/// A simulated crash shared by several hosts: after the n-th mutating call among them, the process
/// is "gone", so every later call fails with [`Error::Cancelled`] without acting. In mid-call mode
/// the n-th call itself acts and then fails (the server committed, the response was never read).
#[derive(Debug, Clone)]
pub struct Tripwire {
    inner: Arc<Mutex<TripState>>,
}

#[derive(Debug)]
struct TripState {
    left: usize,
    mid_call: bool,
    tripped: bool,
}

impl Tripwire {
    /// Crashes after the `n`-th mutating call has answered.
    pub fn after(n: usize) -> Self {
        Self::new(n, false)
    }

    /// Crashes during the `n`-th mutating call, after it acted and before it answered.
    pub fn mid_call(n: usize) -> Self {
        Self::new(n, true)
    }

    fn new(n: usize, mid_call: bool) -> Self {
        Self {
            inner: Arc::new(Mutex::new(TripState {
                left: n,
                mid_call,
                tripped: n == 0,
            })),
        }
    }

    /// Whether the crash happened.
    pub fn tripped(&self) -> bool {
        lock(&self.inner).tripped
    }

    /// Counts a call that acted; returns whether this call must fail (mid-call crash).
    fn acted(&self, mutating: bool) -> bool {
        let mut s = lock(&self.inner);
        if !mutating || s.tripped {
            return false;
        }
        s.left = s.left.saturating_sub(1);
        if s.left == 0 {
            s.tripped = true;
            return s.mid_call;
        }
        false
    }
}

struct ChaosState {
    config: Chaos,
    rng: SplitMix64,
}

fn injected_api(status: u16) -> Error {
    Error::Api {
        provider: PROVIDER,
        status,
        message: format!("injected fault (HTTP {status})"),
        request_id: Some("injected".into()),
    }
}

fn injected_transport(kind: TransportKind) -> Error {
    Error::Transport {
        provider: PROVIDER,
        kind,
        host: None,
        source: "injected transport fault".into(),
    }
}

impl ChaosState {
    fn draw(&mut self, attempt: u32) -> Option<Fault> {
        if self.rng.unit() >= self.config.probability
            || self.config.max_consecutive.is_some_and(|n| attempt > n)
        {
            return None;
        }
        Some(match self.rng.below(10) {
            0 => Fault::Before(injected_transport(TransportKind::Connect)),
            1 => Fault::Before(injected_api(408)),
            2 => Fault::Before(Error::RateLimited {
                provider: PROVIDER,
                retry_after: Some(Duration::from_secs(1 + self.rng.below(5))),
                request_id: Some("injected".into()),
            }),
            3 => Fault::Before(injected_api(500)),
            4 => Fault::Before(injected_api(502)),
            5 => Fault::Before(injected_api(503)),
            6 => Fault::Before(injected_api(504)),
            7 => Fault::After(injected_api(408)),
            8 => Fault::After(injected_api(502)),
            _ => Fault::After(injected_transport(TransportKind::Timeout)),
        })
    }

    fn latency(&mut self) -> Option<Duration> {
        self.rng
            .delay(self.config.latency_probability, self.config.max_latency)
    }
}

/// Shared call log and fault queue.
#[derive(Default)]
struct Journal {
    calls: Vec<Call>,
    faults: Faults,
    chaos: Option<ChaosState>,
    tripwire: Option<Tripwire>,
    /// Attempts of each call not yet answered with success, by op and what it is about.
    streaks: BTreeMap<String, u32>,
    max_attempts: u32,
    injected: usize,
}

impl Journal {
    fn record(&mut self, op: &str, target: &str, mutating: bool) {
        self.calls.push(Call {
            op: op.into(),
            target: target.into(),
            mutating,
        });
    }

    /// Runs `act` under fault injection: a `Before` fault fails without acting; an `After` fault
    /// acts (state changes) and then fails.
    fn run<T>(
        &mut self,
        op: &str,
        target: &str,
        act: impl FnOnce() -> Result<(T, bool)>,
    ) -> Result<T> {
        self.run_as(op, target, target, act)
    }

    /// [`Journal::run`], counting attempts by `key` (calls that share a target but not a resource,
    /// like two apps of one environment, are different calls).
    fn run_as<T>(
        &mut self,
        op: &str,
        target: &str,
        key: &str,
        act: impl FnOnce() -> Result<(T, bool)>,
    ) -> Result<T> {
        if self.tripwire.as_ref().is_some_and(Tripwire::tripped) {
            self.record(op, target, false);
            return Err(Error::Cancelled);
        }
        let streak_key = format!("{op} {key}");
        let attempts = self.streaks.entry(streak_key.clone()).or_insert(0);
        *attempts += 1;
        let attempt = *attempts;
        self.max_attempts = self.max_attempts.max(attempt);
        let fault = match self.faults.take(op) {
            Some(f) => Some(f),
            None => {
                let f = self.chaos.as_mut().and_then(|c| c.draw(attempt));
                self.injected += usize::from(f.is_some());
                f
            }
        };
        let r = match fault {
            Some(Fault::Before(e)) => {
                self.record(op, target, false);
                Err(e)
            }
            Some(Fault::After(e)) => {
                let r = act();
                let mutating = matches!(r, Ok((_, true)));
                self.record(op, target, mutating);
                self.crashed(mutating);
                Err(e)
            }
            None => {
                let r = act();
                let mutating = matches!(r, Ok((_, true)));
                self.record(op, target, mutating);
                if self.crashed(mutating) {
                    return Err(Error::Cancelled);
                }
                r.map(|(v, _)| v)
            }
        };
        if r.is_ok() {
            self.streaks.remove(&streak_key);
        }
        r
    }

    fn crashed(&self, mutating: bool) -> bool {
        self.tripwire.as_ref().is_some_and(|t| t.acted(mutating))
    }

    fn latency(&mut self) -> Option<Duration> {
        self.chaos.as_mut().and_then(ChaosState::latency)
    }
}

macro_rules! journal_api {
    () => {
        /// Fails the next call of `op` (a trait method name) with `err`, without acting.
        pub fn fail_next(&self, op: &str, err: Error) {
            lock(&self.inner)
                .journal
                .faults
                .queue
                .entry(op.to_string())
                .or_default()
                .push_back(Fault::Before(err));
        }

        /// Lets the next call of `op` act, then fails it with `err` (the response was lost).
        pub fn fail_after_commit(&self, op: &str, err: Error) {
            lock(&self.inner)
                .journal
                .faults
                .queue
                .entry(op.to_string())
                .or_default()
                .push_back(Fault::After(err));
        }

        /// Every call so far.
        pub fn calls(&self) -> Vec<Call> {
            lock(&self.inner).journal.calls.clone()
        }

        /// How many calls changed state.
        pub fn mutating_calls(&self) -> usize {
            lock(&self.inner)
                .journal
                .calls
                .iter()
                .filter(|c| c.mutating)
                .count()
        }

        /// Forgets the call log.
        pub fn clear_calls(&self) {
            lock(&self.inner).journal.calls.clear();
        }

        /// From now on, every call may fail or be delayed at random, as `chaos` says. Faults queued
        /// with `fail_next` / `fail_after_commit` still come first.
        pub fn chaos(&self, chaos: Chaos) {
            let rng = SplitMix64(chaos.seed);
            lock(&self.inner).journal.chaos = Some(ChaosState { config: chaos, rng });
        }

        /// Simulates a crash shared with the other hosts given the same tripwire (`None`: no crash).
        pub fn tripwire(&self, tripwire: Option<Tripwire>) {
            lock(&self.inner).journal.tripwire = tripwire;
        }

        /// Stops random faults and latency.
        pub fn calm(&self) {
            lock(&self.inner).journal.chaos = None;
        }

        /// How many random faults were injected so far.
        pub fn injected_faults(&self) -> usize {
            lock(&self.inner).journal.injected
        }

        /// The most attempts any one call took: consecutive calls of the same operation on the same
        /// resource, up to and including the one that succeeded (or the last one, if none did).
        pub fn max_attempts(&self) -> u32 {
            lock(&self.inner).journal.max_attempts
        }

        /// Forgets attempt counts (not the call log).
        pub fn reset_attempts(&self) {
            let mut s = lock(&self.inner);
            s.journal.streaks.clear();
            s.journal.max_attempts = 0;
        }

        /// Sleeps as long as chaos says, before a call (never while holding the state lock).
        async fn latency(&self) {
            let delay = lock(&self.inner).journal.latency();
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Databases

#[derive(Debug, Clone)]
struct DbEntry {
    fingerprint: String,
    host: String,
    created_at: Timestamp,
    healthy: bool,
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
}

#[async_trait]
impl DatabaseHost for InMemoryDatabases {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    async fn get_database(&self, name: &PreviewName) -> Result<Option<Database>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let found = s.dbs.get(name.as_str()).cloned();
        s.journal.run("get_database", name.as_str(), || {
            Ok((
                found.map(|d| Database {
                    name: name.clone(),
                    host: d.host,
                    state: if d.healthy { "started" } else { "failed" }.into(),
                    fingerprint: Some(d.fingerprint),
                    created_at: Some(d.created_at),
                }),
                false,
            ))
        })
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
            let outcome = match dbs.get(&key) {
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
        Ok(AppliedDatabase {
            database: Database {
                name: name.clone(),
                host: spec.public_host.clone(),
                state: "started".into(),
                fingerprint: Some(fp),
                created_at: s.dbs.get(&key).map(|d| d.created_at),
            },
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

// ---------------------------------------------------------------------------------------------
// Apps

/// An env var as the in-memory app host stores it. `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredVar {
    /// Project.
    pub project: String,
    /// Branch it is scoped to.
    pub branch: String,
    /// Key.
    pub key: String,
    /// Target (always `preview` for ours).
    pub target: String,
    /// Owner marker (the environment name), `None` for vars someone else made.
    pub owner: Option<String>,
    value: String,
    secret: bool,
}

impl std::fmt::Debug for StoredVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredVar")
            .field("project", &self.project)
            .field("branch", &self.branch)
            .field("key", &self.key)
            .field("target", &self.target)
            .field("owner", &self.owner)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct DomainEntry {
    project: String,
    branch: String,
    owner: Option<String>,
}

#[derive(Debug, Clone)]
struct DeployEntry {
    id: String,
    project: String,
    branch: String,
    sha: String,
    owner: String,
    seq: u64,
    state: String,
}

#[derive(Default)]
struct AppState {
    journal: Journal,
    vars: Vec<StoredVar>,
    domains: BTreeMap<String, DomainEntry>,
    deployments: Vec<DeployEntry>,
    env_seq: BTreeMap<(String, String), u64>,
    seq: u64,
    next_state: BTreeMap<String, String>,
    /// Projects whose previews are protected, with their bypass secret when they have one.
    protected: BTreeMap<String, Option<String>>,
}

/// The header the in-memory app host names for its deployment protection bypass.
pub const PROTECTION_BYPASS_HEADER: &str = "x-memory-protection-bypass";

/// An in-memory [`AppHost`]. `Clone` shares state.
#[derive(Clone, Default)]
pub struct InMemoryApps {
    inner: Arc<Mutex<AppState>>,
}

impl std::fmt::Debug for InMemoryApps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.inner);
        f.debug_struct("InMemoryApps")
            .field("vars", &s.vars.len())
            .field("domains", &s.domains.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl InMemoryApps {
    /// An empty host.
    pub fn new() -> Self {
        Self::default()
    }

    journal_api!();

    /// Every stored var, sorted by project, branch and key (`Debug` hides values).
    pub fn vars(&self) -> Vec<StoredVar> {
        let mut v = lock(&self.inner).vars.clone();
        v.sort_by(|a, b| (&a.project, &a.branch, &a.key).cmp(&(&b.project, &b.branch, &b.key)));
        v
    }

    /// The value of a stored var (tests only).
    pub fn var_value(&self, project: &str, branch: &str, key: &str) -> Option<String> {
        lock(&self.inner)
            .vars
            .iter()
            .find(|v| v.project == project && v.branch == branch && v.key == key)
            .map(|v| v.value.clone())
    }

    /// Deletes a var out of band (drift tests); not a call.
    pub fn remove_var(&self, project: &str, branch: &str, key: &str) -> bool {
        let mut s = lock(&self.inner);
        let before = s.vars.len();
        s.vars
            .retain(|v| !(v.project == project && v.branch == branch && v.key == key));
        s.vars.len() != before
    }

    /// Detaches a domain out of band (drift tests); not a call.
    pub fn remove_domain(&self, domain: &str) -> bool {
        lock(&self.inner).domains.remove(domain).is_some()
    }

    /// Every attached domain.
    pub fn domains(&self) -> Vec<String> {
        lock(&self.inner).domains.keys().cloned().collect()
    }

    /// Deployments not cancelled: (project, branch, sha, state).
    pub fn deployments(&self) -> Vec<(String, String, String, String)> {
        lock(&self.inner)
            .deployments
            .iter()
            .map(|d| {
                (
                    d.project.clone(),
                    d.branch.clone(),
                    d.sha.clone(),
                    d.state.clone(),
                )
            })
            .collect()
    }

    /// Adds a var someone else owns (conflict tests); `target` may be `production` etc.
    pub fn add_foreign_var(&self, project: &str, branch: &str, key: &str, target: &str) {
        lock(&self.inner).vars.push(StoredVar {
            project: project.into(),
            branch: branch.into(),
            key: key.into(),
            target: target.into(),
            owner: None,
            value: "foreign".into(),
            secret: false,
        });
    }

    /// Attaches a domain to someone else's project (conflict tests).
    pub fn add_foreign_domain(&self, domain: &str, project: &str) {
        lock(&self.inner).domains.insert(
            domain.into(),
            DomainEntry {
                project: project.into(),
                branch: String::new(),
                owner: None,
            },
        );
    }

    /// Protects the previews of `project`, with `bypass` as its automation bypass secret (none:
    /// protected with no way through).
    pub fn protect(&self, project: &str, bypass: Option<&str>) {
        lock(&self.inner)
            .protected
            .insert(project.into(), bypass.map(str::to_string));
    }

    /// The next deployment of `project` ends in `state` (e.g. `ERROR`) instead of `READY`.
    pub fn set_next_deploy_state(&self, project: &str, state: &str) {
        lock(&self.inner)
            .next_state
            .insert(project.into(), state.into());
    }
}

#[async_trait]
impl AppHost for InMemoryApps {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    async fn get_app(&self, name: &PreviewName, target: &AppRef) -> Result<Option<AppStatus>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let owner = name.as_str();
        let env_keys: Vec<String> = s
            .vars
            .iter()
            .filter(|v| v.project == target.project && v.owner.as_deref() == Some(owner))
            .map(|v| v.key.clone())
            .collect();
        let domain = target.domain.clone().filter(|d| {
            s.domains
                .get(d)
                .is_some_and(|e| e.owner.as_deref() == Some(owner))
        });
        let deployment = s
            .deployments
            .iter()
            .rev()
            .find(|d| d.project == target.project && d.owner == owner)
            .map(|d| deployment_of(d, domain.as_deref()));
        let found = (!env_keys.is_empty() || domain.is_some() || deployment.is_some()).then_some(
            AppStatus {
                env_keys,
                domain,
                deployment,
            },
        );
        s.journal.run_as(
            "get_app",
            owner,
            &format!("{owner}/{}", target.project),
            || Ok((found, false)),
        )
    }

    async fn apply_app(&self, name: &PreviewName, spec: &AppSpec) -> Result<Vec<ResourceChange>> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let owner = name.as_str().to_string();
        let project = spec.target.project.clone();
        // Observe and decide first, so a conflict touches nothing.
        for var in &spec.env {
            if let Some(existing) = s.vars.iter().find(|v| {
                v.project == project
                    && v.branch == spec.branch
                    && v.key == var.key
                    && v.target == "preview"
            }) {
                if existing.owner.as_deref() != Some(owner.as_str()) && !spec.adopt_existing {
                    s.journal.record("apply_app", &owner, false);
                    return Err(Error::Conflict {
                        provider: PROVIDER,
                        message: format!(
                            "env var {} on branch {:?} of {project} is not ours (set adopt_existing to take it over)",
                            var.key, spec.branch
                        ),
                        request_id: None,
                    });
                }
            }
        }
        if let Some(d) = &spec.target.domain {
            if let Some(e) = s.domains.get(d) {
                if e.project != project || e.owner.as_deref() != Some(owner.as_str()) {
                    s.journal.record("apply_app", &owner, false);
                    return Err(Error::Conflict {
                        provider: PROVIDER,
                        message: format!(
                            "domain {d} belongs to project {} and not to this environment",
                            e.project
                        ),
                        request_id: None,
                    });
                }
            }
        }
        let AppState {
            journal,
            vars,
            domains,
            env_seq,
            seq,
            ..
        } = s;
        journal.run_as("apply_app", &owner, &format!("{owner}/{project}"), || {
            let mut changes = Vec::new();
            let mut env_changed = false;
            for var in &spec.env {
                let id = format!("{project}/{}", var.key);
                match vars.iter_mut().find(|v| {
                    v.project == project
                        && v.branch == spec.branch
                        && v.key == var.key
                        && v.target == "preview"
                }) {
                    Some(v)
                        if v.value == var.value.expose()
                            && v.owner.as_deref() == Some(owner.as_str())
                            && v.secret == var.value.is_secret() =>
                    {
                        changes.push(ResourceChange::new(
                            PROVIDER,
                            "env_var",
                            id,
                            Outcome::Unchanged,
                        ));
                    }
                    Some(v) => {
                        v.value = var.value.expose().to_string();
                        v.secret = var.value.is_secret();
                        v.owner = Some(owner.clone());
                        env_changed = true;
                        changes.push(ResourceChange::new(
                            PROVIDER,
                            "env_var",
                            id,
                            Outcome::Updated,
                        ));
                    }
                    None => {
                        vars.push(StoredVar {
                            project: project.clone(),
                            branch: spec.branch.clone(),
                            key: var.key.clone(),
                            target: "preview".into(),
                            owner: Some(owner.clone()),
                            value: var.value.expose().to_string(),
                            secret: var.value.is_secret(),
                        });
                        env_changed = true;
                        changes.push(ResourceChange::new(
                            PROVIDER,
                            "env_var",
                            id,
                            Outcome::Created,
                        ));
                    }
                }
            }
            // Vars we own on this branch that the spec no longer has are stale: remove them.
            let before = vars.len();
            vars.retain(|v| {
                let stale = v.project == project
                    && v.owner.as_deref() == Some(owner.as_str())
                    && !spec
                        .env
                        .iter()
                        .any(|e| e.key == v.key && v.branch == spec.branch);
                if stale {
                    changes.push(ResourceChange::new(
                        PROVIDER,
                        "env_var",
                        format!("{project}/{}", v.key),
                        Outcome::Removed,
                    ));
                }
                !stale
            });
            env_changed |= vars.len() != before;
            if env_changed {
                *seq += 1;
                env_seq.insert((project.clone(), spec.branch.clone()), *seq);
            }
            if let Some(d) = &spec.target.domain {
                let outcome = match domains.get(d) {
                    Some(e) if e.branch == spec.branch => Outcome::Unchanged,
                    Some(_) => Outcome::Updated,
                    None => Outcome::Created,
                };
                domains.insert(
                    d.clone(),
                    DomainEntry {
                        project: project.clone(),
                        branch: spec.branch.clone(),
                        owner: Some(owner.clone()),
                    },
                );
                changes.push(ResourceChange::new(PROVIDER, "domain", d.clone(), outcome));
            }
            let mutated = changes.iter().any(|c| c.outcome != Outcome::Unchanged);
            Ok((changes, mutated))
        })
    }

    async fn deploy_app(
        &self,
        name: &PreviewName,
        spec: &AppSpec,
        commit: &Commit,
    ) -> Result<(AppDeployment, Outcome)> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let owner = name.as_str().to_string();
        let project = spec.target.project.clone();
        let env_seq = s
            .env_seq
            .get(&(project.clone(), spec.branch.clone()))
            .copied()
            .unwrap_or(0);
        let next_state = s.next_state.remove(&project);
        let AppState {
            journal,
            deployments,
            seq,
            ..
        } = s;
        let (dep, outcome) =
            journal.run_as("deploy_app", &owner, &format!("{owner}/{project}"), || {
                if let Some(d) = deployments.iter().rev().find(|d| {
                    d.project == project
                        && d.owner == owner
                        && d.sha == commit.sha
                        && d.state == "READY"
                        && d.seq > env_seq
                }) {
                    return Ok(((d.clone(), Outcome::Unchanged), false));
                }
                *seq += 1;
                let d = DeployEntry {
                    id: format!("dpl_{seq}"),
                    project: project.clone(),
                    branch: commit.branch.clone(),
                    sha: commit.sha.clone(),
                    owner: owner.clone(),
                    seq: *seq,
                    state: next_state.unwrap_or_else(|| "READY".into()),
                };
                deployments.push(d.clone());
                Ok(((d, Outcome::Created), true))
            })?;
        if dep.state != "READY" {
            return Err(Error::failed(
                format!("deployment {} of {project}", dep.id),
                format!(
                    "ended in state {} (code BUILD_FAILED: build failed); inspect https://memory.invalid/{}",
                    dep.state, dep.id
                ),
            ));
        }
        Ok((deployment_of(&dep, spec.target.domain.as_deref()), outcome))
    }

    async fn delete_app(&self, name: &PreviewName, target: &AppRef) -> Result<Vec<ResourceChange>> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let owner = name.as_str().to_string();
        let AppState {
            journal,
            vars,
            domains,
            deployments,
            ..
        } = s;
        journal.run_as(
            "delete_app",
            &owner,
            &format!("{owner}/{}", target.project),
            || {
                let mut changes = Vec::new();
                vars.retain(|v| {
                    let ours =
                        v.project == target.project && v.owner.as_deref() == Some(owner.as_str());
                    if ours {
                        changes.push(ResourceChange::new(
                            PROVIDER,
                            "env_var",
                            format!("{}/{}", v.project, v.key),
                            Outcome::Removed,
                        ));
                    }
                    !ours
                });
                if let Some(d) = &target.domain {
                    let ours = domains
                        .get(d)
                        .is_some_and(|e| e.owner.as_deref() == Some(owner.as_str()));
                    if ours {
                        domains.remove(d);
                    }
                    changes.push(ResourceChange::new(
                        PROVIDER,
                        "domain",
                        d.clone(),
                        if ours {
                            Outcome::Removed
                        } else {
                            Outcome::AlreadyGone
                        },
                    ));
                }
                for d in deployments.iter_mut().filter(|d| {
                    d.project == target.project && d.owner == owner && d.state == "BUILDING"
                }) {
                    d.state = "CANCELED".into();
                    changes.push(ResourceChange::new(
                        PROVIDER,
                        "deployment",
                        d.id.clone(),
                        Outcome::Removed,
                    ));
                }
                let mutated = changes.iter().any(|c| c.outcome == Outcome::Removed);
                if changes.is_empty() {
                    changes.push(ResourceChange::new(
                        PROVIDER,
                        "env_vars",
                        format!("{}/{owner}", target.project),
                        Outcome::AlreadyGone,
                    ));
                }
                Ok((changes, mutated))
            },
        )
    }

    async fn list_apps(&self, projects: &[String]) -> Result<Vec<Owned>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let mut out: Vec<Owned> = Vec::new();
        for v in s.vars.iter().filter(|v| projects.contains(&v.project)) {
            if let Some(o) = &v.owner {
                out.push(Owned {
                    name: o.clone(),
                    provider: PROVIDER.into(),
                    resource: format!("env_var {}/{}", v.project, v.key),
                    created_at: None,
                });
            }
        }
        for (d, e) in s
            .domains
            .iter()
            .filter(|(_, e)| projects.contains(&e.project))
        {
            if let Some(o) = &e.owner {
                out.push(Owned {
                    name: o.clone(),
                    provider: PROVIDER.into(),
                    resource: format!("domain {d}"),
                    created_at: None,
                });
            }
        }
        s.journal.run("list_apps", "", || Ok((out, false)))
    }

    async fn get_protection_bypass(
        &self,
        target: &AppRef,
        secret: Option<secrecy::SecretString>,
    ) -> Result<Option<crate::host::ProtectionBypass>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let protected = s.protected.get(&target.project).cloned();
        s.journal.run("get_protection_bypass", &target.project, || {
            let secret = match (secret, protected) {
                (Some(given), _) => Some(given),
                (None, Some(Some(own))) => Some(secrecy::SecretString::from(own)),
                (None, None) => None,
                (None, Some(None)) => {
                    return Err(Error::failed(
                        format!("project {}", target.project),
                        "its previews are protected and it has no bypass secret",
                    ));
                }
            };
            let found = secret.map(|secret| crate::host::ProtectionBypass {
                header: PROTECTION_BYPASS_HEADER.into(),
                secret,
            });
            Ok((found, false))
        })
    }
}

fn deployment_of(d: &DeployEntry, domain: Option<&str>) -> AppDeployment {
    AppDeployment {
        id: d.id.clone(),
        url: format!("https://{}-{}.memory.invalid", d.project, d.id),
        domain_url: domain.map(|d| format!("https://{d}")),
        state: d.state.clone(),
        inspector_url: Some(format!("https://memory.invalid/{}", d.id)),
        sha: d.sha.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Source

#[derive(Default)]
struct SourceState {
    journal: Journal,
    prs: BTreeMap<PrNumber, PullRequest>,
    reports: BTreeMap<String, Report>,
    history: Vec<Report>,
    close_after_reads: BTreeMap<PrNumber, (usize, PrState)>,
}

/// An in-memory [`SourceHost`]. `Clone` shares state.
#[derive(Clone)]
pub struct InMemorySource {
    repo: String,
    inner: Arc<Mutex<SourceState>>,
}

impl std::fmt::Debug for InMemorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemorySource")
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

impl InMemorySource {
    /// A repository `owner/name` with no PRs.
    pub fn new(repo: &str) -> Self {
        Self {
            repo: repo.into(),
            inner: Arc::default(),
        }
    }

    journal_api!();

    /// Adds (or replaces) an open PR from a branch of this repository.
    pub fn open_pr(&self, number: u32, branch: &str, sha: &str) -> PrNumber {
        let n = PrNumber::new(u64::from(number))
            .unwrap_or_else(|_| panic!("invalid PR number {number}"));
        lock(&self.inner).prs.insert(
            n,
            PullRequest {
                number: n,
                state: PrState::Open,
                draft: false,
                title: format!("PR {number}"),
                head_branch: branch.into(),
                head_sha: sha.into(),
                head_repo: Some(self.repo.clone()),
                base_repo: self.repo.clone(),
                labels: vec![],
            },
        );
        n
    }

    /// Changes a PR (state, head, fork …).
    pub fn update_pr(&self, pr: PrNumber, f: impl FnOnce(&mut PullRequest)) {
        if let Some(p) = lock(&self.inner).prs.get_mut(&pr) {
            f(p);
        }
    }

    /// Sets a PR's state.
    pub fn set_state(&self, pr: PrNumber, state: PrState) {
        self.update_pr(pr, |p| p.state = state);
    }

    /// Removes a PR (as if it never existed).
    pub fn remove_pr(&self, pr: PrNumber) {
        lock(&self.inner).prs.remove(&pr);
    }

    /// After `reads` more reads of `pr`, it becomes `state` (close-during-deploy tests).
    pub fn change_state_after_reads(&self, pr: PrNumber, reads: usize, state: PrState) {
        lock(&self.inner)
            .close_after_reads
            .insert(pr, (reads, state));
    }

    /// The current report of an environment.
    pub fn report(&self, name: &str) -> Option<Report> {
        lock(&self.inner).reports.get(name).cloned()
    }

    /// Every report ever published, in order.
    pub fn report_history(&self) -> Vec<Report> {
        lock(&self.inner).history.clone()
    }
}

#[async_trait]
impl SourceHost for InMemorySource {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    async fn get_pull_request(&self, pr: PrNumber) -> Result<Option<PullRequest>> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let found = s.prs.get(&pr).cloned();
        if let Some((left, state)) = s.close_after_reads.get_mut(&pr) {
            if *left <= 1 {
                let state = *state;
                s.close_after_reads.remove(&pr);
                if let Some(p) = s.prs.get_mut(&pr) {
                    p.state = state;
                }
            } else {
                *left -= 1;
            }
        }
        s.journal
            .run("get_pull_request", &pr.to_string(), || Ok((found, false)))
    }

    async fn list_open_pull_requests(&self) -> Result<Vec<PullRequest>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let open = s
            .prs
            .values()
            .filter(|p| p.state == PrState::Open)
            .cloned()
            .collect();
        s.journal
            .run("list_open_pull_requests", "", || Ok((open, false)))
    }

    async fn get_report(&self, name: &PreviewName, pr: PrNumber) -> Result<Option<ReportSummary>> {
        self.latency().await;
        let mut s = lock(&self.inner);
        let found = s
            .reports
            .get(name.as_str())
            .filter(|r| r.pr == pr)
            .map(|r| ReportSummary {
                kind: r.state.kind(),
                commit: r.commit.clone(),
                digest: Some(r.digest()),
                started_at: r.started_at,
            });
        s.journal
            .run("get_report", name.as_str(), || Ok((found, false)))
    }

    async fn publish_report(&self, report: &Report) -> Result<Outcome> {
        self.latency().await;
        let mut guard = lock(&self.inner);
        let s = &mut *guard;
        let key = report.name.as_str().to_string();
        let SourceState {
            journal,
            reports,
            history,
            ..
        } = s;
        journal.run("publish_report", &key, || {
            let outcome = match reports.get(&key) {
                // The same report (whichever run made it) is no change.
                Some(r)
                    if Report {
                        started_at: report.started_at,
                        ..r.clone()
                    } == *report =>
                {
                    return Ok((Outcome::Unchanged, false));
                }
                // Never replace the report of a run that started later.
                Some(r)
                    if matches!((r.started_at, report.started_at), (Some(p), Some(o)) if p > o) =>
                {
                    return Ok((Outcome::Skipped, false));
                }
                Some(_) => Outcome::Updated,
                None => Outcome::Created,
            };
            reports.insert(key.clone(), report.clone());
            history.push(report.clone());
            Ok((outcome, true))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Hooks and HTTP

/// A [`HookRunner`] that records hooks instead of running them, and can fail one by name.
#[derive(Debug, Clone, Default)]
pub struct RecordingHooks {
    inner: Arc<Mutex<(Vec<HookRun>, Vec<String>)>>,
}

impl RecordingHooks {
    /// A runner where every hook succeeds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes hook `name` fail.
    pub fn fail(&self, name: &str) {
        lock(&self.inner).1.push(name.into());
    }

    /// The hooks run so far.
    pub fn runs(&self) -> Vec<HookRun> {
        lock(&self.inner).0.clone()
    }
}

#[async_trait]
impl HookRunner for RecordingHooks {
    async fn run(&self, hook: &HookRun, out: LineSink<'_>) -> Result<()> {
        let fail = {
            let mut s = lock(&self.inner);
            s.0.push(hook.clone());
            s.1.contains(&hook.name)
        };
        out(&format!("running {}", hook.argv.join(" ")));
        if fail {
            return Err(Error::failed(
                format!("hook {}", hook.name),
                "exited with code 1",
            ));
        }
        Ok(())
    }
}

/// An [`HttpClient`] that answers from a script: every URL answers 200 unless told otherwise.
#[derive(Debug, Clone, Default)]
pub struct InMemoryHttp {
    inner: Arc<Mutex<HttpState>>,
}

#[derive(Debug, Default)]
struct HttpState {
    sent: Vec<HttpCall>,
    answers: BTreeMap<String, VecDeque<u16>>,
    /// (URL prefix, header, value): requests under the prefix without that header answer 401.
    walls: Vec<(String, String, String)>,
}

impl InMemoryHttp {
    /// A client where everything answers 200.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues statuses for `url` (then 200).
    pub fn answer(&self, url: &str, statuses: &[u16]) {
        lock(&self.inner)
            .answers
            .entry(url.into())
            .or_default()
            .extend(statuses);
    }

    /// Puts an auth wall in front of every URL starting with `prefix`: a request without
    /// `header: value` answers 401 (a protected preview).
    pub fn protect(&self, prefix: &str, header: &str, value: &str) {
        lock(&self.inner)
            .walls
            .push((prefix.into(), header.into(), value.into()));
    }

    /// The requests sent so far.
    pub fn sent(&self) -> Vec<HttpCall> {
        lock(&self.inner).sent.clone()
    }
}

#[async_trait]
impl HttpClient for InMemoryHttp {
    async fn send(&self, call: &HttpCall) -> Result<u16> {
        let mut s = lock(&self.inner);
        s.sent.push(call.clone());
        let walled = s.walls.iter().any(|(prefix, header, value)| {
            call.url.starts_with(prefix.as_str())
                && !call
                    .headers
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case(header) && v.expose() == value)
        });
        if walled {
            return Ok(401);
        }
        Ok(s.answers
            .get_mut(&call.url)
            .and_then(VecDeque::pop_front)
            .unwrap_or(200))
    }
}
