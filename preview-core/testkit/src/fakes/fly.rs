//! A stateful fake of the Fly Machines API.
//!
//! [`FakeFly`] is a [`wiremock::Respond`] over shared state that answers the calls this crate makes
//! the way the real API does (statuses, bodies shaped by `fly-machines.openapi.fixed.json`, leases,
//! versions, asynchronous app deletion, cursors), so tests exercise the real request building,
//! status mapping and decoding. It records every exchange for assertions and spec validation, and
//! can inject faults.
//!
//! ```
//! # async fn demo() {
//! use preview_testkit::FakeFly;
//! let (server, fake) = FakeFly::start("acme", "test-token").await;
//! // point FlyDatabases::builder().base_url(server.uri()).token("test-token") at it
//! # let _ = (server, fake);
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use preview_core::testing::Gate;

use crate::http_chaos::{HttpChaos, HttpChaosState, HttpFault};
use serde_json::{Value as Json, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

mod lifecycle;

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Request body as JSON (`Null` when empty).
    pub request: Json,
    /// The lease nonce header, when sent.
    pub nonce: Option<String>,
    /// Status answered.
    pub status: u16,
    /// Response body as JSON (`Null` when empty).
    pub response: Json,
    /// The `fly-request-id` the fake answered with.
    pub request_id: String,
}

impl Exchange {
    /// Whether the call can change state (anything but GET).
    pub fn is_mutating(&self) -> bool {
        self.method != "GET"
    }
}

#[derive(Debug, Clone)]
struct Fault {
    method: String,
    path_suffix: String,
    status: u16,
    body: Json,
    /// Carry the request out, then answer with the fault (a response lost on the way back).
    execute: bool,
}

/// A Machine lease: it lives until released or until its TTL runs out (wall clock).
#[derive(Debug, Clone)]
struct FakeLease {
    nonce: String,
    owner: String,
    description: String,
    /// When it runs out.
    expires: Instant,
    /// The same, as the API reports it (Unix seconds).
    expires_at: i64,
}

impl FakeLease {
    fn new(nonce: String, owner: String, description: String, ttl: Duration) -> Self {
        let expires_at = jiff::Timestamp::now().as_second() + ttl.as_secs() as i64;
        Self {
            nonce,
            owner,
            description,
            expires: Instant::now() + ttl,
            expires_at,
        }
    }

    fn json(&self, version: &Json) -> Json {
        json!({"nonce": self.nonce, "expires_at": self.expires_at, "owner": self.owner,
               "description": self.description, "version": version.clone()})
    }

    fn held_by(&self, id: &str) -> String {
        let at = jiff::Timestamp::from_second(self.expires_at)
            .map(|t| t.to_string())
            .unwrap_or_default();
        format!(
            "aborted: machine ID {id} lease currently held by {}, expires at {at}",
            self.owner
        )
    }
}

#[derive(Debug, Clone, Default)]
struct FakeApp {
    id: String,
    org: String,
    idempotency_key: Option<String>,
    secrets: BTreeMap<String, String>,
    secrets_version: u64,
    ips: Vec<Json>,
    volumes: Vec<Json>,
    machines: Vec<Json>,
    events: BTreeMap<String, Vec<Json>>,
    /// Live leases by Machine id (expired ones are dropped whenever the app is looked at).
    leases: BTreeMap<String, FakeLease>,
    /// GETs that still see the app after a DELETE (deletion is asynchronous).
    deleting: Option<u32>,
}

impl FakeApp {
    fn prune_leases(&mut self) {
        let now = Instant::now();
        self.leases.retain(|_, l| l.expires > now);
    }
}

/// What [`FakeFly::snapshot`] keeps: everything the API would remember (apps and all they hold,
/// idempotency keys, boot timers, id counters), not the log, faults or knobs.
#[derive(Clone)]
pub struct FlySnapshot {
    apps: BTreeMap<String, FakeApp>,
    keys: BTreeMap<String, String>,
    counter: u64,
    ready_at: BTreeMap<String, Instant>,
}

impl fmt::Debug for FlySnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlySnapshot")
            .field("apps", &self.apps.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    org: String,
    token: String,
    /// Who the token is, as leases name their owner.
    identity: String,
    apps: BTreeMap<String, FakeApp>,
    /// Idempotency keys of app creates (per organisation) and the app name each was used for.
    keys: BTreeMap<String, String>,
    counter: u64,
    faults: VecDeque<Fault>,
    log: Vec<Exchange>,
    /// The log keeps no bodies; see [`FakeFly::keep_bodies`].
    drop_bodies: bool,
    delete_polls: u32,
    boot_state: String,
    check_status: String,
    latency: Option<Latency>,
    boot_time: Option<Duration>,
    /// When each Machine created, updated or started under a boot time reaches its boot state.
    ready_at: BTreeMap<String, Instant>,
    limits: Option<RateLimits>,
    buckets: BTreeMap<(String, String), (f64, Instant)>,
    app_deletes: VecDeque<Instant>,
    violations: u64,
    /// Seeded faults drawn for every request (after the one-shot faults).
    chaos: Option<HttpChaosState>,
    /// Totals of chaos plans already ended by [`FakeFly::calm`].
    calmed: (usize, u32),
    /// Shared with other fakes to stop the world after a given mutating request.
    gate: Option<Gate>,
}

/// How long the fake takes to answer a request (a latency model); see [`FakeFly::set_latency`].
pub type Latency = Arc<dyn Fn(&Request) -> Duration + Send + Sync>;

/// The Machines API's documented rate limits ("per action, per Machine or app ID: 1 req/s with
/// bursts up to 3; Get Machine 5 req/s, burst 10; app deletions 100 per minute"), with time
/// divided by `time_scale` (0.01 makes 1 req/s into 100 req/s) for benchmarks on a scaled clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Real seconds per modelled second.
    pub time_scale: f64,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("org", &self.org)
            .field("apps", &self.apps.len())
            .finish_non_exhaustive()
    }
}

/// The fake Machines API. `Clone` shares state.
#[derive(Clone)]
pub struct FakeFly {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FakeFly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("FakeFly")
            .field("org", &s.org)
            .field("apps", &s.apps.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A Machine config as the API answers it: `autostop` "off" and "stop" in the old boolean format
/// (the spec's description of `fly.MachineService.autostop`).
fn echoed(config: &Json) -> Json {
    let mut c = config.clone();
    for svc in c["services"].as_array_mut().into_iter().flatten() {
        let old = match svc.get("autostop").and_then(Json::as_str) {
            Some("off") => json!(false),
            Some("stop") => json!(true),
            _ => continue,
        };
        svc["autostop"] = old;
    }
    c
}

fn now_iso() -> String {
    jiff::Timestamp::now().to_string()
}

fn digest(v: &str) -> String {
    // Not Fly's digest, just a stable stand-in that never reveals the value.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in v.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn error(status: u16, msg: &str) -> (u16, Json) {
    (status, json!({"error": msg}))
}

impl FakeFly {
    /// A fake whose token owns organisation `org`; requests must carry `Bearer {token}` (or
    /// `FlyV1 {token}`).
    pub fn new(org: &str, token: &str) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                org: org.to_string(),
                token: token.to_string(),
                identity: format!("{}@tokens.fly.io", &digest(token)[..12]),
                delete_polls: 1,
                boot_state: "started".into(),
                check_status: "passing".into(),
                ..State::default()
            })),
        }
    }

    /// Starts a mock server answering everything with a new fake.
    pub async fn start(org: &str, token: &str) -> (MockServer, FakeFly) {
        let server = MockServer::start().await;
        let fake = Self::new(org, token);
        fake.mount(&server).await;
        (server, fake)
    }

    /// Answers every request to `server` (mount other, more specific mocks first to override).
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(wiremock::matchers::any())
            .respond_with(self.clone())
            .mount(server)
            .await;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Adds an app of organisation `org` that this crate does not own: someone else's app, with
    /// something in it this crate never makes (a shared IPv4 its owner allocated), and no marker.
    pub fn add_foreign_app(&self, name: &str, org: &str) {
        let mut s = self.lock();
        s.counter += 1;
        let id = format!("app{}", s.counter);
        let ip = json!({"ip": "66.241.124.9", "region": "global", "shared": true, "egress": false,
                        "created_at": now_iso(), "service_name": "app"});
        s.apps.insert(
            name.to_string(),
            FakeApp {
                id,
                org: org.to_string(),
                ips: vec![ip],
                ..FakeApp::default()
            },
        );
    }

    /// Adds an empty app of organisation `org` (nothing in it, no marker, no idempotency key): what
    /// `fly apps create` leaves, or a create whose run died before anything else was written.
    pub fn add_empty_app(&self, name: &str, org: &str) {
        let mut s = self.lock();
        s.counter += 1;
        let id = format!("app{}", s.counter);
        s.apps.insert(
            name.to_string(),
            FakeApp {
                id,
                org: org.to_string(),
                ..FakeApp::default()
            },
        );
    }

    /// Puts a volume in `app` (this crate never makes one: for an app, it is foreign).
    pub fn add_volume(&self, app: &str) {
        let mut s = self.lock();
        s.counter += 1;
        let id = format!("vol_{:012}", s.counter);
        if let Some(a) = s.apps.get_mut(app) {
            a.volumes.push(
                json!({"id": id, "name": "data", "region": "iad", "size_gb": 1,
                                  "state": "created", "created_at": now_iso()}),
            );
        }
    }

    /// Puts a Machine with `config` in `app`, as someone else would (no metadata of ours unless
    /// `config` has it).
    pub fn add_machine(&self, app: &str, config: Json) {
        let mut s = self.lock();
        s.counter += 1;
        let n = s.counter;
        let id = format!("{:014x}", 0x5eed_0000_0000u64 + n);
        if let Some(a) = s.apps.get_mut(app) {
            a.machines.push(json!({
                "id": id, "name": id, "state": "started", "region": "iad",
                "config": config, "version": version(n), "instance_id": version(n),
                "checks": [], "host_status": "ok", "created_at": now_iso(), "updated_at": now_iso(),
            }));
        }
    }

    /// Sets the app secret `name` of `app` (e.g. a secret its owner set by hand).
    pub fn add_secret(&self, app: &str, name: &str, value: &str) {
        if let Some(a) = self.lock().apps.get_mut(app) {
            a.secrets.insert(name.to_string(), digest(value));
            a.secrets_version += 1;
        }
    }

    /// Shares `gate` with this fake: every request passes through it (see [`Gate`]); a request it
    /// holds is neither carried out nor answered (the connection stays open until the test ends).
    pub fn set_gate(&self, gate: Gate) {
        self.lock().gate = Some(gate);
    }

    /// Everything the API would remember, to put back with [`restore`](Self::restore).
    pub fn snapshot(&self) -> FlySnapshot {
        let s = self.lock();
        FlySnapshot {
            apps: s.apps.clone(),
            keys: s.keys.clone(),
            counter: s.counter,
            ready_at: s.ready_at.clone(),
        }
    }

    /// Puts back what [`snapshot`](Self::snapshot) kept (ids keep counting up from the highest seen).
    pub fn restore(&self, snap: &FlySnapshot) {
        let mut s = self.lock();
        s.apps = snap.apps.clone();
        s.keys = snap.keys.clone();
        s.counter = s.counter.max(snap.counter);
        s.ready_at = snap.ready_at.clone();
    }

    /// The next request whose method is `method` and whose path ends with `path_suffix` is
    /// answered with `status` and `body` instead (one shot; queue several for "408 twice").
    pub fn fail_next(&self, method: &str, path_suffix: &str, status: u16, body: Json) {
        self.lock().faults.push_back(Fault {
            method: method.to_string(),
            path_suffix: path_suffix.to_string(),
            status,
            body,
            execute: false,
        });
    }

    /// Like [`fail_next`](Self::fail_next), but the request is carried out first: the change is
    /// made and only the answer is replaced (a timeout or 5xx after the side effect).
    pub fn lose_next_response(&self, method: &str, path_suffix: &str, status: u16, body: Json) {
        self.lock().faults.push_back(Fault {
            method: method.to_string(),
            path_suffix: path_suffix.to_string(),
            status,
            body,
            execute: true,
        });
    }

    /// Draws a fault from `chaos` for every request from now on (a one-shot fault queued with
    /// [`fail_next`](Self::fail_next) or [`lose_next_response`](Self::lose_next_response) takes
    /// precedence): [`HttpFault::Reject`] answers its status (an `ErrorResponse`, with
    /// `Retry-After` when the plan gives one) without acting, [`HttpFault::Lose`] acts and then
    /// answers its status; the plan's latency holds the answer (a tokio sleep on the server).
    pub fn chaos(&self, chaos: HttpChaos) {
        let mut s = self.lock();
        s.calm_down();
        s.chaos = Some(chaos.start());
    }

    /// Stops injecting seeded faults (the counts so far are kept).
    pub fn calm(&self) {
        self.lock().calm_down();
    }

    /// Seeded faults injected so far (over every plan since the fake started).
    pub fn injected_faults(&self) -> usize {
        let s = self.lock();
        s.calmed.0 + s.chaos.as_ref().map_or(0, HttpChaosState::injected)
    }

    /// The most attempts one request (method and path) took under the seeded faults: the faulted
    /// ones plus the one that got through.
    pub fn max_attempts(&self) -> u32 {
        let s = self.lock();
        s.calmed
            .1
            .max(s.chaos.as_ref().map_or(0, HttpChaosState::max_attempts))
    }

    /// How many GETs still see an app after its DELETE (default 1).
    pub fn set_delete_polls(&self, n: u32) {
        self.lock().delete_polls = n;
    }

    /// The state Machines reach when created or updated (default `started`; `failed` adds an
    /// OOM exit event; anything else, e.g. `starting`, never reaches `started`).
    pub fn set_boot_state(&self, state: &str) {
        self.lock().boot_state = state.to_string();
    }

    /// The status health checks of new or updated Machines report (default `passing`; `none`
    /// reports no checks at all).
    pub fn set_check_status(&self, status: &str) {
        self.lock().check_status = status.to_string();
    }

    /// Delays every answer by `latency(request)` (default: none). The request takes effect when it
    /// arrives; only the answer waits. For benchmarks on the real clock.
    pub fn set_latency(&self, latency: impl Fn(&Request) -> Duration + Send + Sync + 'static) {
        self.lock().latency = Some(Arc::new(latency));
    }

    /// Machines created, updated or started from now on take `boot_time` of wall-clock time to
    /// reach their boot state: until then they read as `starting` with checks `warning`, and a
    /// `/wait` for the boot state is held (a long poll) until they get there, or answers 408 after
    /// its `timeout`. `None` (the default): at once.
    pub fn set_boot_time(&self, boot_time: Option<Duration>) {
        self.lock().boot_time = boot_time;
    }

    /// Enforces the documented rate limits (wall clock, scaled); a request over a limit is answered
    /// 429 and counted in [`rate_limit_violations`](Self::rate_limit_violations). Off by default.
    pub fn enforce_rate_limits(&self, limits: RateLimits) {
        self.lock().limits = Some(limits);
    }

    /// Requests that broke an enforced rate limit.
    pub fn rate_limit_violations(&self) -> u64 {
        self.lock().violations
    }

    /// Every exchange so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.lock().log.clone()
    }

    /// Whether [`exchanges`](Self::exchanges) keeps request and response bodies (default: yes,
    /// for spec checks; `Null` when not). A benchmark of thousands of requests turns it off, so
    /// the log does not swamp the memory it measures.
    pub fn keep_bodies(&self, keep: bool) {
        self.lock().drop_bodies = !keep;
    }

    /// The mutating exchanges so far.
    pub fn mutating(&self) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(Exchange::is_mutating)
            .collect()
    }

    /// Forgets the exchange log.
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// App names in the fake.
    pub fn apps(&self) -> Vec<String> {
        self.lock().apps.keys().cloned().collect()
    }

    /// The IP assignments of an app, as the API would return them.
    pub fn ips(&self, app: &str) -> Vec<Json> {
        self.lock()
            .apps
            .get(app)
            .map(|a| a.ips.clone())
            .unwrap_or_default()
    }

    /// Leases held on the Machines of `app`.
    pub fn leases_of(&self, app: &str) -> usize {
        self.lock().apps.get_mut(app).map_or(0, |a| {
            a.prune_leases();
            a.leases.len()
        })
    }

    /// The live leases of `app`: (owner, description, seconds left).
    pub fn lease_details(&self, app: &str) -> Vec<(String, String, u64)> {
        let now = Instant::now();
        self.lock().apps.get_mut(app).map_or(Vec::new(), |a| {
            a.prune_leases();
            a.leases
                .values()
                .map(|l| {
                    (
                        l.owner.clone(),
                        l.description.clone(),
                        l.expires.saturating_duration_since(now).as_secs(),
                    )
                })
                .collect()
        })
    }

    /// Who the fake's token is, as leases name their owner.
    pub fn identity(&self) -> String {
        self.lock().identity.clone()
    }

    /// The Machines of an app, as the API would return them.
    pub fn machines(&self, app: &str) -> Vec<Json> {
        self.lock()
            .apps
            .get(app)
            .map(|a| a.machines.clone())
            .unwrap_or_default()
    }

    /// Secret names of an app.
    pub fn secret_names(&self, app: &str) -> Vec<String> {
        self.lock()
            .apps
            .get(app)
            .map(|a| a.secrets.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the app's secret `name` has `value` (compared by digest; values are not kept).
    pub fn secret_is(&self, app: &str, name: &str, value: &str) -> bool {
        self.lock()
            .apps
            .get(app)
            .and_then(|a| a.secrets.get(name))
            .is_some_and(|d| *d == digest(value))
    }

    /// Leases currently held, over all apps.
    pub fn leases_held(&self) -> usize {
        self.lock()
            .apps
            .values_mut()
            .map(|a| {
                a.prune_leases();
                a.leases.len()
            })
            .sum()
    }

    /// Someone else (another identity, with `flyctl deploy`) takes a lease on every Machine of
    /// `app`, for an hour.
    pub fn hold_foreign_lease(&self, app: &str) {
        if let Some(a) = self.lock().apps.get_mut(app) {
            let ids: Vec<String> = a
                .machines
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_string))
                .collect();
            for id in ids {
                a.leases.insert(
                    id,
                    FakeLease::new(
                        "foreign-nonce".into(),
                        "someone@example.com".into(),
                        "flyctl deploy".into(),
                        Duration::from_secs(3600),
                    ),
                );
            }
        }
    }

    /// Edits the config of every Machine of `app` behind our back (drift).
    pub fn edit_machines(&self, app: &str, edit: impl Fn(&mut Json)) {
        if let Some(a) = self.lock().apps.get_mut(app) {
            for m in &mut a.machines {
                edit(&mut m["config"]);
            }
        }
    }

    /// Gives the Machines of `app` the id `id` (as if the API had chosen it), for URL-safety tests.
    pub fn set_machine_id(&self, app: &str, id: &str) {
        let mut s = self.lock();
        if let Some(a) = s.apps.get_mut(app) {
            for m in &mut a.machines {
                let old = m["id"].as_str().unwrap_or_default().to_string();
                m["id"] = json!(id);
                if let Some(ev) = a.events.remove(&old) {
                    a.events.insert(id.to_string(), ev);
                }
            }
        }
    }

    /// Makes every Machine of `app` crash (state `failed`, an OOM exit event).
    pub fn fail_machines(&self, app: &str) {
        if let Some(a) = self.lock().apps.get_mut(app) {
            for m in &mut a.machines {
                m["state"] = json!("failed");
                let id = m["id"].as_str().unwrap_or_default().to_string();
                a.events.entry(id).or_default().insert(0, exit_event());
            }
        }
    }

    /// Sets the state of every Machine of `app` (e.g. `stopped`).
    pub fn set_machine_state(&self, app: &str, state: &str) {
        if let Some(a) = self.lock().apps.get_mut(app) {
            for m in &mut a.machines {
                m["state"] = json!(state);
            }
        }
    }

    /// Sets the health check statuses of every Machine of `app` (e.g. `"critical"`).
    pub fn set_checks(&self, app: &str, status: &str) {
        if let Some(a) = self.lock().apps.get_mut(app) {
            for m in &mut a.machines {
                if let Some(checks) = m["checks"].as_array_mut() {
                    for c in checks {
                        c["status"] = json!(status);
                    }
                }
            }
        }
    }

    /// The answer, and how long the long poll holds it beyond the latency.
    fn answer(&self, req: &Request) -> (u16, Json, Duration) {
        let mut s = self.lock();
        let method = req.method.as_str().to_string();
        let path = req.url.path().to_string();
        if let Some(pos) = s
            .faults
            .iter()
            .position(|f| f.method == method && path.ends_with(&f.path_suffix))
        {
            if let Some(f) = s.faults.remove(pos) {
                if f.execute {
                    drop(s);
                    let _ = self.answer(req);
                }
                return (f.status, f.body, Duration::ZERO);
            }
        }
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("FlyV1 "));
        if token != Some(s.token.as_str()) {
            let (status, body) = error(401, "unauthorized");
            return (status, body, Duration::ZERO);
        }
        if !s.admit(&method, &path) {
            let (status, body) = error(429, "rate limit exceeded");
            return (status, body, Duration::ZERO);
        }
        let body: Json = serde_json::from_slice(&req.body).unwrap_or(Json::Null);
        let query: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
        let nonce = req
            .headers
            .get("fly-machine-lease-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Route on decoded segments, as a real router does: an id with `/` or `?` in it arrives
        // percent-encoded.
        let decoded: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let boot = s.boot_state.clone();
        let check = s.check_status.clone();
        let (status, mut out) = match (method.as_str(), segs.as_slice()) {
            ("GET", ["v1", "apps"]) => s.list_apps(&query),
            ("POST", ["v1", "apps"]) => s.create_app(&body),
            ("GET", ["v1", "apps", app]) => s.show_app(app),
            ("DELETE", ["v1", "apps", app]) => s.delete_app(app),
            ("GET", ["v1", "apps", app, "secrets"]) => s.with_app(app, |a, _| {
                let secrets: Vec<Json> = a.secrets.iter().map(|(n, d)| json!({"name": n, "digest": d, "created_at": now_iso(), "updated_at": now_iso()})).collect();
                (200, json!({"secrets": secrets}))
            }),
            ("POST", ["v1", "apps", app, "secrets"]) => s.with_app(app, |a, _| {
                let Some(values) = body.get("values").and_then(Json::as_object) else {
                    return error(400, "values is required");
                };
                for (k, v) in values {
                    match v.as_str() {
                        Some(v) => {
                            a.secrets.insert(k.clone(), digest(v));
                        }
                        None => {
                            a.secrets.remove(k);
                        }
                    }
                }
                a.secrets_version += 1;
                let secrets: Vec<Json> = a.secrets.iter().map(|(n, d)| json!({"name": n, "digest": d})).collect();
                (200, json!({"secrets": secrets, "version": a.secrets_version}))
            }),
            ("GET", ["v1", "apps", app, "ip_assignments"]) => {
                s.with_app(app, |a, _| (200, json!({"ips": a.ips})))
            }
            ("POST", ["v1", "apps", app, "ip_assignments"]) => s.with_app(app, |a, n| {
                let ip = match body.get("type").and_then(Json::as_str) {
                    Some("v4") => format!("137.66.{}.{}", n % 250, a.ips.len() + 1),
                    Some("v6") => format!("2a09:8280:1::{n:x}:{}", a.ips.len() + 1),
                    Some("shared_v4") => "66.241.124.1".to_string(),
                    _ => return error(400, "invalid ip type"),
                };
                let shared = body["type"] == "shared_v4";
                let entry = json!({"ip": ip, "region": "global", "shared": shared, "egress": false, "created_at": now_iso(), "service_name": "app"});
                a.ips.push(entry.clone());
                (200, entry)
            }),
            ("DELETE", ["v1", "apps", app, "ip_assignments", ip]) => s.with_app(app, |a, _| {
                let before = a.ips.len();
                a.ips.retain(|i| i["ip"].as_str() != Some(*ip));
                if a.ips.len() == before {
                    error(404, "ip assignment not found")
                } else {
                    (204, Json::Null)
                }
            }),
            ("GET", ["v1", "apps", app, "volumes"]) => {
                s.with_app(app, |a, _| (200, Json::Array(a.volumes.clone())))
            }
            ("GET", ["v1", "apps", app, "machines"]) => s.with_app(app, |a, _| {
                (200, Json::Array(a.machines.iter().map(|m| lifecycle::with_events(a, m)).collect()))
            }),
            ("POST", ["v1", "apps", app, "machines"]) => s.with_app(app, |a, n| {
                let Some(config) = body.get("config").filter(|c| c.is_object()) else {
                    return error(400, "config is required");
                };
                if let Some(min) = body.get("min_secrets_version").and_then(Json::as_u64) {
                    if min > a.secrets_version {
                        return error(400, "secrets version not yet available");
                    }
                }
                let id = format!("{:014x}", 0x3d8d_0000_0000u64 + n);
                let machine = json!({
                    "id": id,
                    "name": body.get("name").cloned().unwrap_or(json!(id)),
                    "state": boot,
                    "region": body.get("region").cloned().unwrap_or(json!("iad")),
                    "private_ip": format!("fdaa:0:1::{n:x}"),
                    "config": echoed(config),
                    "version": version(n),
                    "instance_id": version(n),
                    "checks": checks_of(config, &check),
                    "host_status": "ok",
                    "created_at": now_iso(),
                    "updated_at": now_iso(),
                });
                let mut events = vec![
                    json!({"id": format!("ev{n}b"), "type": "start", "status": "started", "source": "flyd", "timestamp": 1_763_800_000_100i64}),
                    json!({"id": format!("ev{n}a"), "type": "launch", "status": "created", "source": "user", "timestamp": 1_763_800_000_000i64}),
                ];
                if boot == "failed" {
                    events.insert(0, exit_event());
                }
                a.events.insert(id.clone(), events);
                a.machines.push(machine.clone());
                (200, machine)
            }),
            ("GET", ["v1", "apps", app, "machines", id]) => s.with_app(app, |a, _| {
                match a.machines.iter().find(|m| m["id"] == *id) {
                    Some(m) => (200, lifecycle::with_events(a, m)),
                    None => error(404, "machine not found"),
                }
            }),
            ("POST", ["v1", "apps", app, "machines", id, action @ ("stop" | "suspend")]) => {
                lifecycle::sleep(&mut s, app, id, action, nonce.as_ref())
            }
            (m @ ("POST" | "DELETE"), ["v1", "apps", app, "machines", id, "metadata", key]) => {
                lifecycle::metadata(&mut s, m, app, id, key, &body)
            }
            ("GET", ["v1", "orgs", org, "machines"]) => lifecycle::org_machines(&s, org, &query),
            ("POST", ["v1", "apps", app, "machines", id]) => {
                s.with_machine(app, id, |leases, m, n| {
                    if let Some(l) = leases.get(*id).filter(|l| Some(&l.nonce) != nonce.as_ref()) {
                        return error(409, &l.held_by(id));
                    }
                    if let Some(cur) = body.get("current_version").and_then(Json::as_str) {
                        if Some(cur) != m["version"].as_str() {
                            return error(409, "machine version mismatch");
                        }
                    }
                    let Some(config) = body.get("config").filter(|c| c.is_object()) else {
                        return error(400, "config is required");
                    };
                    m["config"] = echoed(config);
                    m["checks"] = checks_of(config, &check);
                    m["version"] = json!(version(n));
                    m["instance_id"] = json!(version(n));
                    m["state"] = json!(boot);
                    m["updated_at"] = json!(now_iso());
                    (200, m.clone())
                })
            }
            ("DELETE", ["v1", "apps", app, "machines", id]) => s.with_app(app, |a, _| {
                if let Some(l) = a.leases.get(*id).filter(|l| Some(&l.nonce) != nonce.as_ref()) {
                    return error(409, &l.held_by(id));
                }
                let Some(pos) = a.machines.iter().position(|m| m["id"] == *id) else {
                    return error(404, "machine not found");
                };
                a.machines.remove(pos);
                a.events.remove(*id);
                a.leases.remove(*id);
                (200, Json::Null)
            }),
            ("POST", ["v1", "apps", app, "machines", id, "start"]) => {
                s.with_machine(app, id, |leases, m, _| {
                    if let Some(l) = leases.get(*id).filter(|l| Some(&l.nonce) != nonce.as_ref()) {
                        return error(409, &l.held_by(id));
                    }
                    match m["state"].as_str() {
                        Some("stopped" | "suspended" | "created") => {
                            m["state"] = json!(boot);
                            m["updated_at"] = json!(now_iso());
                            (200, Json::Null)
                        }
                        Some(other) => error(400, &format!("unable to start machine from current state: '{other}'")),
                        None => error(400, "unknown state"),
                    }
                })
            }
            ("POST", ["v1", "apps", app, "machines", id, "lease"]) => {
                let description = body.get("description").and_then(Json::as_str).unwrap_or("").to_string();
                let ttl = Duration::from_secs(body.get("ttl").and_then(Json::as_u64).unwrap_or(30));
                let owner = s.identity.clone();
                s.with_machine(app, id, |leases, m, n| {
                    match leases.get_mut(*id) {
                        // The holder refreshes its lease: same nonce, a new expiry.
                        Some(l) if nonce.as_ref() == Some(&l.nonce) => {
                            *l = FakeLease::new(l.nonce.clone(), l.owner.clone(), l.description.clone(), ttl);
                            (201, l.json(&m["version"]))
                        }
                        Some(l) => error(409, &l.held_by(id)),
                        None => {
                            let lease = FakeLease::new(format!("nonce{n:06}"), owner, description, ttl);
                            let out = lease.json(&m["version"]);
                            leases.insert(id.to_string(), lease);
                            (201, out)
                        }
                    }
                })
            }
            ("GET", ["v1", "apps", app, "machines", id, "lease"]) => {
                s.with_machine(app, id, |leases, m, _| match leases.get(*id) {
                    None => error(404, "no lease"),
                    Some(l) => (200, l.json(&m["version"])),
                })
            }
            ("DELETE", ["v1", "apps", app, "machines", id, "lease"]) => {
                s.with_machine(app, id, |leases, _, _| match leases.get(*id) {
                    None => error(404, "no lease"),
                    Some(held) if Some(&held.nonce) != nonce.as_ref() => error(409, "lease nonce mismatch"),
                    Some(_) => {
                        leases.remove(*id);
                        (200, Json::Null)
                    }
                })
            }
            ("GET", ["v1", "apps", app, "machines", id, "wait"]) => {
                return s.wait(app, id, req, &query);
            }
            ("GET", ["v1", "apps", app, "machines", id, "events"]) => s.with_app(app, |a, _| {
                match a.events.get(*id) {
                    Some(ev) => (200, Json::Array(ev.clone())),
                    None => error(404, "machine not found"),
                }
            }),
            _ => error(404, &format!("the fake does not know {method} {path}")),
        };
        if status < 300 && method == "POST" {
            // The events a start or an update leaves (a boot: memory is fresh after either).
            let event = match segs.as_slice() {
                ["v1", "apps", app, "machines", id, "start"] => Some((*app, *id, "start")),
                ["v1", "apps", app, "machines", id] => Some((*app, *id, "update")),
                _ => None,
            };
            if let Some((app, id, kind)) = event {
                if let Some(a) = s.apps.get_mut(app) {
                    lifecycle::push_event(a, id, kind, "started", "user");
                }
            }
        }
        if status < 300 {
            let (status, out) = s.boot(&method, &segs, status, &mut out);
            (status, out, Duration::ZERO)
        } else {
            (status, out, Duration::ZERO)
        }
    }
}

/// `%XX` to bytes (invalid escapes kept as they are), then UTF-8 (lossy).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn exit_event() -> Json {
    json!({"id": "ev-exit", "type": "exit", "status": "failed", "source": "flyd",
           "timestamp": 1_763_800_000_200i64,
           "request": {"exit_event": {"exit_code": 137, "oom_killed": true}}})
}

fn version(n: u64) -> String {
    format!("01JFAKEVERSION{n:012}")
}

/// One passing check per container health check, as the API reports them.
fn checks_of(config: &Json, status: &str) -> Json {
    let mut out = Vec::new();
    if status == "none" {
        return Json::Array(out);
    }
    for c in config["containers"].as_array().into_iter().flatten() {
        for h in c["healthchecks"].as_array().into_iter().flatten() {
            out.push(json!({"name": h["name"].clone(), "status": status, "output": "ok", "updated_at": now_iso()}));
        }
    }
    Json::Array(out)
}

impl State {
    fn calm_down(&mut self) {
        if let Some(c) = self.chaos.take() {
            self.calmed.0 += c.injected();
            self.calmed.1 = self.calmed.1.max(c.max_attempts());
        }
    }

    /// Whether a one-shot fault is queued for this request.
    fn one_shot_for(&self, method: &str, path: &str) -> bool {
        self.faults
            .iter()
            .any(|f| f.method == method && path.ends_with(&f.path_suffix))
    }

    /// Counts the request against the rate limits; `false` when it is over one.
    fn admit(&mut self, method: &str, path: &str) -> bool {
        let Some(limits) = self.limits else {
            return true;
        };
        let now = Instant::now();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let Some(app) = segs.get(2).filter(|_| segs.len() >= 3) else {
            return true;
        };
        if method == "DELETE" && segs.len() == 3 {
            let window = Duration::from_secs_f64(60.0 * limits.time_scale);
            while self
                .app_deletes
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                self.app_deletes.pop_front();
            }
            if self.app_deletes.len() >= 100 {
                self.violations += 1;
                return false;
            }
            self.app_deletes.push_back(now);
        }
        // The action: method and route, with the app name and Machine id left out.
        let action: Vec<&str> = segs
            .iter()
            .enumerate()
            .map(|(i, s)| if i == 2 || i == 4 { "*" } else { s })
            .collect();
        let get_machine = method == "GET" && segs.len() == 5 && segs[3] == "machines";
        let (rate, burst) = if get_machine { (5.0, 10.0) } else { (1.0, 3.0) };
        let rate = rate / limits.time_scale;
        let id = segs.get(4).copied().unwrap_or(app);
        let key = (id.to_string(), format!("{method} {}", action.join("/")));
        let (tokens, at) = self.buckets.entry(key).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            self.violations += 1;
            false
        }
    }

    /// Applies the boot time to a successful answer: new Machines start booting, booting ones
    /// read as `starting`, and a `/wait` is held until the boot ends.
    fn boot(&mut self, method: &str, segs: &[&str], status: u16, out: &mut Json) -> (u16, Json) {
        let now = Instant::now();
        let Some(boot_time) = self.boot_time else {
            return (status, out.take());
        };
        match (method, segs) {
            ("POST", ["v1", "apps", _, "machines"]) => {
                if let Some(id) = out["id"].as_str() {
                    self.ready_at.insert(id.to_string(), now + boot_time);
                }
            }
            (
                "POST",
                ["v1", "apps", _, "machines", id] | ["v1", "apps", _, "machines", id, "start"],
            ) => {
                self.ready_at.insert((*id).to_string(), now + boot_time);
            }
            ("GET", ["v1", "apps", _, "machines", ..]) => {
                let booting = |m: &Json| {
                    m["id"]
                        .as_str()
                        .and_then(|id| self.ready_at.get(id))
                        .is_some_and(|at| now < *at)
                };
                let mut hide = |m: &mut Json| {
                    if booting(m) {
                        m["state"] = json!("starting");
                        for c in m["checks"].as_array_mut().into_iter().flatten() {
                            c["status"] = json!("warning");
                        }
                    }
                };
                match &mut *out {
                    Json::Array(ms) => ms.iter_mut().for_each(&mut hide),
                    m if m.get("config").is_some() => hide(m),
                    _ => {}
                }
            }
            _ => {}
        }
        (status, out.take())
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// `GET …/wait`: answers at once when the Machine is in one of the wanted states; a Machine
    /// still booting (under a boot time) holds the call until it gets there, or answers 408 at the
    /// call's `timeout` (holding it that long) if it will not. Without a boot time, a Machine in
    /// another state gets its 408 at once.
    fn wait(
        &mut self,
        app: &str,
        id: &str,
        req: &Request,
        query: &BTreeMap<String, String>,
    ) -> (u16, Json, Duration) {
        const STATES: [&str; 6] = [
            "started",
            "stopped",
            "suspended",
            "destroyed",
            "failed",
            "settled",
        ];
        // `state` may repeat or be comma-separated.
        let mut wanted: Vec<String> = req
            .url
            .query_pairs()
            .filter(|(k, _)| k == "state")
            .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
            .collect();
        if wanted.is_empty() {
            wanted.push("started".into());
        }
        let bad = |msg: &str| {
            let (status, body) = error(400, msg);
            (status, body, Duration::ZERO)
        };
        if let Some(w) = wanted.iter().find(|w| !STATES.contains(&w.as_str())) {
            return bad(&format!("invalid_argument: unknown state {w:?}"));
        }
        let timeout = query
            .get("timeout")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(60);
        if !(1..=60).contains(&timeout) {
            return bad("invalid_argument: timeout must be between 1 and 60 seconds");
        }
        let timeout = Duration::from_secs(timeout);
        let now = Instant::now();
        let left = self
            .ready_at
            .get(id)
            .map(|at| at.saturating_duration_since(now))
            .filter(|d| !d.is_zero());
        let booted_hold = self.boot_time.is_some();
        let (status, body) = self.with_machine(app, id, |_, m, _| (200, m.clone()));
        if status != 200 {
            return (status, body, Duration::ZERO);
        }
        let state = body["state"].as_str().unwrap_or("").to_string();
        let version = body["version"].clone();
        let reached = |state: &str| {
            (
                200,
                json!({"ok": true, "state": state, "version": version, "event_id": "ev-wait"}),
            )
        };
        let not_reached = |current: &str| {
            error(
                408,
                &format!(
                    "machine failed to reach desired state, {}, currently {current}",
                    wanted.join(",")
                ),
            )
        };
        match left {
            // Booting: it reads `starting` until `left` has passed, then `state`.
            Some(left) if wanted.contains(&state) && left <= timeout => {
                let (s, b) = reached(&state);
                (s, b, left)
            }
            Some(left) => {
                let current = if left <= timeout {
                    state.as_str()
                } else {
                    "starting"
                };
                let (s, b) = not_reached(current);
                (s, b, timeout)
            }
            None if wanted.contains(&state) => {
                let (s, b) = reached(&state);
                (s, b, Duration::ZERO)
            }
            None => {
                let (s, b) = not_reached(&state);
                (s, b, if booted_hold { timeout } else { Duration::ZERO })
            }
        }
    }

    fn with_app(
        &mut self,
        app: &str,
        f: impl FnOnce(&mut FakeApp, u64) -> (u16, Json),
    ) -> (u16, Json) {
        let n = self.next();
        let org = self.org.clone();
        match self.apps.get_mut(app) {
            Some(a) if a.org == org => f(a, n),
            Some(_) => error(403, "unauthorized: app belongs to another organization"),
            None => error(404, &format!("app {app} not found")),
        }
    }

    fn with_machine(
        &mut self,
        app: &str,
        id: &str,
        f: impl FnOnce(&mut BTreeMap<String, FakeLease>, &mut Json, u64) -> (u16, Json),
    ) -> (u16, Json) {
        self.with_app(app, |a, n| {
            a.prune_leases();
            let FakeApp {
                machines, leases, ..
            } = a;
            match machines.iter_mut().find(|m| m["id"] == id) {
                Some(m) => f(leases, m, n),
                None => error(404, "machine not found"),
            }
        })
    }

    fn app_json(&self, name: &str, a: &FakeApp) -> Json {
        json!({
            "id": a.id,
            "name": name,
            "status": "deployed",
            "network": "default",
            "machine_count": a.machines.len(),
            "volume_count": 0,
            "organization": {"name": a.org, "slug": a.org},
        })
    }

    fn list_apps(&mut self, query: &BTreeMap<String, String>) -> (u16, Json) {
        let Some(org) = query.get("org_slug") else {
            return error(400, "org_slug is required");
        };
        // Only the page is rendered: listing thousands of apps stays linear.
        let all: Vec<(&String, &FakeApp)> =
            self.apps.iter().filter(|(_, a)| &a.org == org).collect();
        let start = match query.get("cursor") {
            Some(c) => match c.strip_prefix("cur-").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => n,
                None => return error(400, "invalid cursor"),
            },
            None => 0,
        };
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        let page: Vec<Json> = all
            .iter()
            .skip(start)
            .take(limit)
            .map(|(n, a)| self.app_json(n, a))
            .collect();
        let end = start.saturating_add(page.len());
        let mut out = json!({"apps": page, "total_apps": all.len()});
        if end < all.len() {
            out["next_cursor"] = json!(format!("cur-{end}"));
        }
        (200, out)
    }

    fn create_app(&mut self, body: &Json) -> (u16, Json) {
        let (Some(name), Some(org)) = (body["name"].as_str(), body["org_slug"].as_str()) else {
            return error(400, "name and org_slug are required");
        };
        if org != self.org {
            return error(403, "unauthorized for organization");
        }
        let key = body["idempotency_key"].as_str().map(str::to_string);
        // The spec: "a second create with the same key but a different name is rejected outright".
        if let Some(k) = &key {
            if let Some(other) = self.keys.get(&format!("{org}/{k}")).filter(|n| *n != name) {
                return error(
                    400,
                    &format!("idempotency_key was already used to create app {other}"),
                );
            }
        }
        if let Some(a) = self.apps.get(name) {
            if a.org == org && key.is_some() && a.idempotency_key == key && a.deleting.is_none() {
                return (201, json!({"id": a.id, "created_at": 1_763_800_000i64}));
            }
            return (
                422,
                json!({"error": format!("app name {name} is already taken"), "status": "name_taken"}),
            );
        }
        let n = self.next();
        let id = format!("app{n}");
        if let Some(k) = &key {
            self.keys.insert(format!("{org}/{k}"), name.to_string());
        }
        self.apps.insert(
            name.to_string(),
            FakeApp {
                id: id.clone(),
                org: org.to_string(),
                idempotency_key: key,
                ..FakeApp::default()
            },
        );
        (201, json!({"id": id, "created_at": 1_763_800_000i64}))
    }

    fn show_app(&mut self, name: &str) -> (u16, Json) {
        let Some(a) = self.apps.get_mut(name) else {
            return error(404, &format!("app {name} not found"));
        };
        if let Some(left) = a.deleting {
            if left == 0 {
                self.apps.remove(name);
                return error(404, &format!("app {name} not found"));
            }
            a.deleting = Some(left - 1);
        }
        let a = self.apps.get(name).cloned().unwrap_or_default();
        (200, self.app_json(name, &a))
    }

    fn delete_app(&mut self, name: &str) -> (u16, Json) {
        let polls = self.delete_polls;
        let org = self.org.clone();
        match self.apps.get_mut(name) {
            Some(a) if a.org != org => error(403, "unauthorized"),
            Some(a) if a.deleting.is_none() => {
                a.deleting = Some(polls);
                a.leases.clear();
                (202, Json::Null)
            }
            Some(_) => (202, Json::Null),
            None => error(404, &format!("app {name} not found")),
        }
    }
}

impl Respond for FakeFly {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let gate = self.lock().gate.clone();
        match gate {
            None => self.respond_now(req),
            Some(g) => g
                .pass(
                    req.method.as_str() != "GET",
                    || format!("fly {} {}", req.method, req.url.path()),
                    || self.respond_now(req),
                )
                // Held: neither carried out nor answered (until long after any test).
                .unwrap_or_else(|| ResponseTemplate::new(503).set_delay(Duration::from_secs(3600))),
        }
    }
}

impl FakeFly {
    fn respond_now(&self, req: &Request) -> ResponseTemplate {
        let method = req.method.as_str().to_string();
        let path = req.url.path().to_string();
        let (latency, fault, chaos_delay) = {
            let mut s = self.lock();
            let (fault, delay) = if s.one_shot_for(&method, &path) {
                (None, None)
            } else {
                match s.chaos.as_mut() {
                    Some(c) => (c.draw(&method, &path), c.latency()),
                    None => (None, None),
                }
            };
            (s.latency.clone(), fault, delay)
        };
        let base = latency.map(|f| f(req)).unwrap_or_default() + chaos_delay.unwrap_or_default();
        let mut retry_after = None;
        let (status, body, hold) = match &fault {
            None => self.answer(req),
            Some(HttpFault::Reject {
                status,
                retry_after: hint,
            }) => {
                retry_after = hint.as_ref().map(|h| h.header_value());
                (*status, injected_body(*status), Duration::ZERO)
            }
            Some(HttpFault::Lose { status }) => {
                // Carry the request out, then lose its answer.
                let _ = self.answer(req);
                (*status, injected_body(*status), Duration::ZERO)
            }
        };
        let mut s = self.lock();
        let delay = base + hold;
        s.counter += 1;
        let rid = format!("01FAKEREQ{:08}", s.counter);
        let keep = !s.drop_bodies;
        s.log.push(Exchange {
            method,
            path,
            query: req.url.query().map(str::to_string),
            request: if keep {
                serde_json::from_slice(&req.body).unwrap_or(Json::Null)
            } else {
                Json::Null
            },
            nonce: req
                .headers
                .get("fly-machine-lease-nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            status,
            response: if keep { body.clone() } else { Json::Null },
            request_id: rid.clone(),
        });
        let mut t = ResponseTemplate::new(status)
            .insert_header("fly-request-id", rid.as_str())
            .set_delay(delay);
        if let Some(v) = retry_after {
            t = t.insert_header("retry-after", v.as_str());
        }
        if body.is_null() {
            t
        } else {
            t.set_body_json(body)
        }
    }
}

/// The `ErrorResponse` of an injected fault, worded like the API's own.
fn injected_body(status: u16) -> Json {
    let text = match status {
        408 => "request timed out",
        429 => "rate limit exceeded",
        500 => "internal server error",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => "injected fault",
    };
    json!({"error": text, "status": "unknown"})
}
