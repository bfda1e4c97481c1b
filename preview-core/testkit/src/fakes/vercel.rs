//! A stateful fake of the Vercel REST API.
//!
//! [`FakeVercel`] is a [`wiremock::Respond`] over shared state that answers the endpoints
//! `providers_vercel::VercelApps` uses the way the real API does: env upserts with `failed[]`,
//! 400 for a domain already on the project and 409 for one on another project, deployments that move
//! from `QUEUED` through `BUILDING` to `READY` (or `ERROR`) as they are polled, timestamp-cursor
//! pagination, and `{"error":{"code","message"}}` bodies. Every exchange is recorded so tests can
//! check request and response bodies against the OpenAPI description.
//!
//! ```no_run
//! # async fn demo() {
//! use preview_testkit::FakeVercel;
//! let fake = FakeVercel::new("test-token").team("team_1").project("prj_api", "agents-api");
//! let server = fake.start().await;
//! // point VercelApps::builder().token("test-token").team_id("team_1").base_url(server.uri()) at it
//! # let _ = server;
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use preview_core::testing::Gate;

use crate::http_chaos::{HttpChaos, HttpChaosState, HttpFault};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

/// An env var held by the fake. `Debug` leaves the value out.
#[derive(Clone, PartialEq)]
pub struct FakeEnv {
    /// Id (`env_…`).
    pub id: String,
    /// Key.
    pub key: String,
    /// Value as written (tests compare it; responses never echo secret types).
    pub value: String,
    /// `encrypted`, `sensitive`, `plain`, ….
    pub kind: String,
    /// Targets.
    pub target: Vec<String>,
    /// Branch scope.
    pub git_branch: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// Creation time (ms).
    pub created_at: u64,
    /// Last update (ms).
    pub updated_at: u64,
}

impl std::fmt::Debug for FakeEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeEnv")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("target", &self.target)
            .field("git_branch", &self.git_branch)
            .field("comment", &self.comment)
            .finish_non_exhaustive()
    }
}

impl FakeEnv {
    /// A var to seed with [`FakeVercel::add_env`]; id and times are set when added.
    pub fn new(key: &str, value: &str, target: &[&str], git_branch: Option<&str>) -> Self {
        Self {
            id: String::new(),
            key: key.into(),
            value: value.into(),
            kind: "encrypted".into(),
            target: target.iter().map(|s| s.to_string()).collect(),
            git_branch: git_branch.map(str::to_string),
            comment: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// With a comment.
    pub fn comment(mut self, comment: &str) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

/// A project domain held by the fake.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDomain {
    /// Domain name.
    pub name: String,
    /// Branch it serves (`None`: production).
    pub git_branch: Option<String>,
    /// Creation time (ms).
    pub created_at: u64,
}

/// A deployment held by the fake.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDeployment {
    /// Id (`dpl_…`).
    pub id: String,
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub name: String,
    /// Host name of the deployment.
    pub url: String,
    /// `QUEUED`, `BUILDING`, `READY`, `ERROR`, `CANCELED`.
    pub state: String,
    /// Git branch it was built from.
    pub git_ref: String,
    /// Commit.
    pub sha: String,
    /// `meta` sent at creation.
    pub meta: BTreeMap<String, String>,
    /// Aliases.
    pub alias: Vec<String>,
    /// Creation time (ms).
    pub created_at: u64,
    /// Status polls seen so far.
    pub polls: u32,
}

/// How builds of new deployments end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// `READY` after the given number of status polls.
    Ready {
        /// Polls answered `BUILDING` before `READY`.
        after_polls: u32,
    },
    /// `ERROR` with a code and message after the given number of polls.
    Error {
        /// Polls answered `BUILDING` before `ERROR`.
        after_polls: u32,
        /// `errorCode`.
        code: String,
        /// `errorMessage`.
        message: String,
    },
    /// Never finishes (`BUILDING` forever).
    Never,
}

/// One request and the fake's answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// HTTP method.
    pub method: String,
    /// URL path (as sent, percent-encoded).
    pub path: String,
    /// The query as sent (percent-encoded), when there was one.
    pub query: Option<String>,
    /// The request body, when there was one.
    pub request: Option<Value>,
    /// Status answered.
    pub status: u16,
    /// Body answered.
    pub response: Value,
    /// The `x-vercel-id` answered (unique per request).
    pub request_id: String,
    /// The answer was an injected fault (one-shot or [`HttpChaos`]), not the API's.
    pub injected: bool,
}

#[derive(Clone)]
struct Project {
    id: String,
    name: String,
    envs: Vec<FakeEnv>,
    domains: Vec<FakeDomain>,
    /// `ssoProtection.deploymentType`, when Vercel Authentication is on.
    sso: Option<String>,
    /// Protection bypass secrets: (secret, scope, createdAt).
    bypass: Vec<(String, String, u64)>,
}

#[derive(Clone)]
struct Fault {
    method: Option<String>,
    path_suffix: Option<String>,
    status: u16,
    body: Value,
    retry_after: Option<String>,
    /// Carry the request out, then answer with the fault (a lost response).
    after: bool,
}

struct State {
    token: String,
    team: Option<String>,
    projects: Vec<Project>,
    foreign_domains: Vec<String>,
    deployments: Vec<FakeDeployment>,
    build: BuildOutcome,
    clock: u64,
    seq: u64,
    faults: VecDeque<Fault>,
    rejected_keys: BTreeMap<String, String>,
    exchanges: Vec<Exchange>,
    /// The log keeps no bodies; see [`FakeVercel::keep_bodies`].
    drop_bodies: bool,
    latency: Option<Latency>,
    build_time: Option<Duration>,
    /// When each deployment created under a build time may first be seen `READY` (wall clock).
    ready_at: BTreeMap<String, std::time::Instant>,
    /// Seeded random faults on every request ([`FakeVercel::chaos`]).
    chaos: Option<HttpChaosState>,
    /// Faults the chaos plan injected, kept across [`FakeVercel::calm`].
    injected: usize,
    /// Most attempts one request took under chaos, kept across [`FakeVercel::calm`].
    max_attempts: u32,
    /// Requests answered so far (numbers the `x-vercel-id`).
    requests: u64,
    /// Shared with other fakes to stop the world after a given mutating request.
    gate: Option<Gate>,
}

/// What [`FakeVercel::snapshot`] keeps: the projects with their env vars and domains, the
/// deployments and their build timers (not the log, faults or knobs).
#[derive(Clone)]
pub struct VercelSnapshot {
    projects: Vec<Project>,
    foreign_domains: Vec<String>,
    deployments: Vec<FakeDeployment>,
    ready_at: BTreeMap<String, std::time::Instant>,
}

impl std::fmt::Debug for VercelSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VercelSnapshot")
            .field("deployments", &self.deployments.len())
            .finish_non_exhaustive()
    }
}

/// How long the fake takes to answer a request (a latency model); see [`FakeVercel::set_latency`].
pub type Latency = Arc<dyn Fn(&Request) -> Duration + Send + Sync>;

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1000;
        self.clock
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}_{:06}", self.seq)
    }

    fn project_mut(&mut self, id_or_name: &str) -> Option<&mut Project> {
        self.projects
            .iter_mut()
            .find(|p| p.id == id_or_name || p.name == id_or_name)
    }
}

/// The stateful fake; `Clone` shares the state. `Debug` shows no token and no value.
#[derive(Clone)]
pub struct FakeVercel {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeVercel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("FakeVercel")
            .field("team", &s.team)
            .field(
                "projects",
                &s.projects.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            )
            .field("deployments", &s.deployments.len())
            .field("exchanges", &s.exchanges.len())
            .finish_non_exhaustive()
    }
}

fn error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (status, json!({"error": {"code": code, "message": message}}))
}

fn not_found(what: &str) -> (u16, Value) {
    error(404, "not_found", &format!("{what} not found"))
}

fn env_json(e: &FakeEnv) -> Value {
    // Like the real API: secret types are never echoed in clear.
    let value = match e.kind.as_str() {
        "plain" => e.value.clone(),
        "sensitive" => String::new(),
        _ => format!("enc_{}", e.id),
    };
    let mut v = json!({
        "id": e.id,
        "key": e.key,
        "value": value,
        "type": e.kind,
        "target": e.target,
        "configurationId": null,
        "createdAt": e.created_at,
        "updatedAt": e.updated_at,
        "createdBy": "usr_fake",
        "updatedBy": null,
        "decrypted": false,
    });
    if let Some(b) = &e.git_branch {
        v["gitBranch"] = json!(b);
    }
    if let Some(c) = &e.comment {
        v["comment"] = json!(c);
    }
    v
}

fn project_json(p: &Project) -> Value {
    let bypass: serde_json::Map<String, Value> = p
        .bypass
        .iter()
        .map(|(secret, scope, at)| {
            let mut v = json!({"createdAt": at, "createdBy": "usr_fake", "scope": scope});
            if scope == "integration-automation-bypass" {
                v["integrationId"] = json!("oac_fake");
                v["configurationId"] = json!("icfg_fake");
            }
            (secret.clone(), v)
        })
        .collect();
    json!({
        "accountId": "team_fake",
        "directoryListing": false,
        "id": p.id,
        "name": p.name,
        "nodeVersion": "22.x",
        "resourceConfig": {"functionDefaultRegions": ["iad1"]},
        "defaultResourceConfig": {"functionDefaultRegions": ["iad1"]},
        "ssoProtection": p.sso.as_ref().map(|t| json!({"deploymentType": t})),
        "passwordProtection": null,
        "protectionBypass": bypass,
    })
}

fn domain_json(project_id: &str, d: &FakeDomain) -> Value {
    let apex = d
        .name
        .rsplitn(3, '.')
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(".");
    json!({
        "name": d.name,
        "apexName": apex,
        "projectId": project_id,
        "redirect": null,
        "redirectStatusCode": null,
        "gitBranch": d.git_branch,
        "customEnvironmentId": null,
        "updatedAt": d.created_at,
        "createdAt": d.created_at,
        "verified": true,
    })
}

fn inspector_url(d: &FakeDeployment) -> String {
    format!("https://vercel.com/fake-team/{}/{}", d.name, d.id)
}

fn deployment_json(d: &FakeDeployment) -> Value {
    let mut v = json!({
        "id": d.id,
        "url": d.url,
        "name": d.name,
        "projectId": d.project_id,
        "readyState": d.state,
        "status": d.state,
        "createdAt": d.created_at,
        "buildingAt": d.created_at,
        "bootedAt": d.created_at,
        "build": {"env": []},
        "env": [],
        "inspectorUrl": inspector_url(d),
        "isInConcurrentBuildsQueue": false,
        "isInSystemBuildsQueue": false,
        "projectSettings": {},
        "aliasAssigned": d.state == "READY",
        "aliasError": null,
        "alias": d.alias,
        "buildSkipped": false,
        "creator": {"uid": "usr_fake", "username": "fake"},
        "public": false,
        "type": "LAMBDAS",
        "meta": d.meta,
        "regions": ["iad1"],
        "version": 2,
        "plan": "pro",
        "createdIn": "iad1",
        "ownerId": "team_fake",
        "routes": null,
        "gitSource": {"type": "github", "org": "fake", "repo": d.name, "ref": d.git_ref, "sha": d.sha},
    });
    if d.state == "ERROR" {
        v["errorCode"] = json!("BUILD_FAILED");
        v["errorMessage"] = json!("the build failed");
    }
    v
}

fn deployment_item(d: &FakeDeployment) -> Value {
    json!({
        "uid": d.id,
        "name": d.name,
        "projectId": d.project_id,
        "url": d.url,
        "created": d.created_at,
        "createdAt": d.created_at,
        "state": d.state,
        "readyState": d.state,
        "type": "LAMBDAS",
        "creator": {"uid": "usr_fake"},
        "meta": d.meta,
        "inspectorUrl": inspector_url(d),
    })
}

fn pagination(count: usize, next: Option<u64>) -> Value {
    json!({"count": count, "next": next, "prev": null})
}

/// `limit`/`until` paging over items sorted newest first.
fn page<T: Clone>(items: Vec<(u64, T)>, query: &BTreeMap<String, String>) -> (Vec<T>, Option<u64>) {
    let mut items = items;
    items.sort_by_key(|b| std::cmp::Reverse(b.0));
    let until = query.get("until").and_then(|u| u.parse::<u64>().ok());
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let rest: Vec<(u64, T)> = items
        .into_iter()
        .filter(|(t, _)| until.is_none_or(|u| *t < u))
        .collect();
    let more = rest.len() > limit;
    let taken: Vec<(u64, T)> = rest.into_iter().take(limit).collect();
    let next = if more {
        taken.last().map(|(t, _)| *t)
    } else {
        None
    };
    (taken.into_iter().map(|(_, v)| v).collect(), next)
}

impl FakeVercel {
    /// A fake that accepts `token` and has no projects yet.
    pub fn new(token: &str) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                token: token.into(),
                team: None,
                projects: Vec::new(),
                foreign_domains: Vec::new(),
                deployments: Vec::new(),
                build: BuildOutcome::Ready { after_polls: 0 },
                clock: 1_763_800_000_000,
                seq: 0,
                faults: VecDeque::new(),
                rejected_keys: BTreeMap::new(),
                exchanges: Vec::new(),
                drop_bodies: false,
                latency: None,
                build_time: None,
                ready_at: BTreeMap::new(),
                chaos: None,
                injected: 0,
                max_attempts: 0,
                requests: 0,
                gate: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent data behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requires `teamId=<team>` on every request.
    pub fn team(self, team: &str) -> Self {
        self.lock().team = Some(team.into());
        self
    }

    /// Adds a project.
    pub fn project(self, id: &str, name: &str) -> Self {
        self.lock().projects.push(Project {
            id: id.into(),
            name: name.into(),
            envs: Vec::new(),
            domains: Vec::new(),
            sso: None,
            bypass: Vec::new(),
        });
        self
    }

    /// Turns Vercel Authentication on for the previews of `project` (as Vercel does by default),
    /// with `bypass` as its Protection Bypass for Automation secret when given.
    pub fn protect(&self, project: &str, bypass: Option<&str>) {
        if let Some(secret) = bypass {
            self.add_protection_bypass(project, secret, "automation-bypass");
        }
        if let Some(p) = self.lock().project_mut(project) {
            p.sso = Some("preview".into());
        }
    }

    /// Adds a protection bypass secret with `scope` (`automation-bypass`, or
    /// `integration-automation-bypass` for one an integration made).
    pub fn add_protection_bypass(&self, project: &str, secret: &str, scope: &str) {
        let mut s = self.lock();
        let now = s.tick();
        if let Some(p) = s.project_mut(project) {
            p.bypass.push((secret.into(), scope.into(), now));
        }
    }

    /// Shares `gate` with this fake: every request passes through it (see [`Gate`]); a request it
    /// holds is neither carried out nor answered (the connection stays open until the test ends).
    pub fn set_gate(&self, gate: Gate) {
        self.lock().gate = Some(gate);
    }

    /// Everything the API would remember, to put back with [`restore`](Self::restore).
    pub fn snapshot(&self) -> VercelSnapshot {
        let s = self.lock();
        VercelSnapshot {
            projects: s.projects.clone(),
            foreign_domains: s.foreign_domains.clone(),
            deployments: s.deployments.clone(),
            ready_at: s.ready_at.clone(),
        }
    }

    /// Puts back what [`snapshot`](Self::snapshot) kept (the clock and ids keep going forward).
    pub fn restore(&self, snap: &VercelSnapshot) {
        let mut s = self.lock();
        s.projects = snap.projects.clone();
        s.foreign_domains = snap.foreign_domains.clone();
        s.deployments = snap.deployments.clone();
        s.ready_at = snap.ready_at.clone();
    }

    /// Starts a mock server answering every request with this fake.
    pub async fn start(&self) -> MockServer {
        let server = MockServer::start().await;
        self.mount(&server).await;
        server
    }

    /// Answers every request to `server` (e.g. one built with
    /// `MockServer::builder().disable_request_recording()` for a benchmark).
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(any())
            .respond_with(self.clone())
            .mount(server)
            .await;
    }

    /// Seeds an env var (e.g. one we do not own); returns its id.
    pub fn add_env(&self, project: &str, mut env: FakeEnv) -> String {
        let mut s = self.lock();
        let now = s.tick();
        let id = s.next_id("env");
        env.id = id.clone();
        env.created_at = now;
        env.updated_at = now;
        if let Some(p) = s.project_mut(project) {
            p.envs.push(env);
        }
        id
    }

    /// The env vars of a project.
    pub fn envs(&self, project: &str) -> Vec<FakeEnv> {
        self.lock()
            .project_mut(project)
            .map(|p| p.envs.clone())
            .unwrap_or_default()
    }

    /// Replaces the comment of env var `id` out of band, leaving its times alone (as if an earlier
    /// version of preview had written it that way).
    pub fn set_env_comment(&self, project: &str, id: &str, comment: &str) {
        if let Some(p) = self.lock().project_mut(project) {
            for e in p.envs.iter_mut().filter(|e| e.id == id) {
                e.comment = Some(comment.into());
            }
        }
    }

    /// Removes the `meta` entry `key` from every deployment (as made by an earlier version that
    /// did not write it).
    pub fn remove_deployment_meta(&self, key: &str) {
        for d in &mut self.lock().deployments {
            d.meta.remove(key);
        }
    }

    /// Removes an env var out of band (drift).
    pub fn remove_env(&self, project: &str, key: &str) {
        if let Some(p) = self.lock().project_mut(project) {
            p.envs.retain(|e| e.key != key);
        }
    }

    /// Seeds a domain on a project.
    pub fn add_domain(&self, project: &str, name: &str, git_branch: Option<&str>) {
        let mut s = self.lock();
        let now = s.tick();
        if let Some(p) = s.project_mut(project) {
            p.domains.push(FakeDomain {
                name: name.into(),
                git_branch: git_branch.map(str::to_string),
                created_at: now,
            });
        }
    }

    /// Marks a domain as taken by a project outside this account (adding it answers 409).
    pub fn add_foreign_domain(&self, name: &str) {
        self.lock().foreign_domains.push(name.into());
    }

    /// The domains of a project.
    pub fn domains(&self, project: &str) -> Vec<FakeDomain> {
        self.lock()
            .project_mut(project)
            .map(|p| p.domains.clone())
            .unwrap_or_default()
    }

    /// Seeds a deployment as given (any id, state, branch and `meta`); its creation time is set
    /// when added.
    pub fn add_deployment(&self, mut deployment: FakeDeployment) {
        let mut s = self.lock();
        deployment.created_at = s.tick();
        s.deployments.push(deployment);
    }

    /// Every deployment.
    pub fn deployments(&self) -> Vec<FakeDeployment> {
        self.lock().deployments.clone()
    }

    /// How builds of deployments created from now on end (default: `READY` at the first status
    /// poll, so nothing sleeps).
    pub fn set_build(&self, outcome: BuildOutcome) {
        self.lock().build = outcome;
    }

    /// Delays every answer by `latency(request)` (default: none). The request takes effect when it
    /// arrives; only the answer waits, as if the server took that long. For benchmarks on the real
    /// clock.
    pub fn set_latency(&self, latency: impl Fn(&Request) -> Duration + Send + Sync + 'static) {
        self.lock().latency = Some(Arc::new(latency));
    }

    /// Deployments created from now on build for `build_time` of wall-clock time: status polls
    /// before then see `BUILDING`, and only polls after it move on as [`set_build`](Self::set_build)
    /// says. `None` (the default) counts polls only.
    pub fn set_build_time(&self, build_time: Option<Duration>) {
        self.lock().build_time = build_time;
    }

    /// Answers the next request (with `method`, or any) with `status` and `body` instead.
    pub fn fail_next(
        &self,
        method: Option<&str>,
        status: u16,
        body: Value,
        retry_after: Option<&str>,
    ) {
        self.lock().faults.push_back(Fault {
            method: method.map(str::to_string),
            path_suffix: None,
            status,
            body,
            retry_after: retry_after.map(str::to_string),
            after: false,
        });
    }

    /// Carries out the next `method` request whose path ends with `path_suffix`, then answers
    /// `status` as if the response was lost on the way (a "silent success").
    pub fn lose_next_response(&self, method: &str, path_suffix: &str, status: u16) {
        self.lock().faults.push_back(Fault {
            method: Some(method.into()),
            path_suffix: Some(path_suffix.into()),
            status,
            body: json!({"error": {"code": "bad_gateway", "message": "upstream connection lost"}}),
            retry_after: None,
            after: true,
        });
    }

    /// Makes env writes of `key` land in `failed[]` with `code` (echoing the value, as Vercel may).
    pub fn reject_key(&self, key: &str, code: &str) {
        self.lock().rejected_keys.insert(key.into(), code.into());
    }

    /// Applies a seeded fault plan to every request from now on: a
    /// [`HttpFault::Reject`] is answered with its status (and `Retry-After`) in Vercel's error
    /// format without acting; a [`HttpFault::Lose`] is carried out, then answered with its status
    /// (a "silent success"); latency holds the answer (on the fake's own runtime, so real time:
    /// keep it small). One-shot faults ([`fail_next`](Self::fail_next),
    /// [`lose_next_response`](Self::lose_next_response)) take precedence.
    pub fn chaos(&self, plan: HttpChaos) {
        self.lock().chaos = Some(plan.start());
    }

    /// Ends the fault plan: requests are answered as the API would again. The counts of
    /// [`injected_faults`](Self::injected_faults) and [`max_attempts`](Self::max_attempts) stay.
    pub fn calm(&self) {
        let mut s = self.lock();
        if let Some(c) = s.chaos.take() {
            s.injected += c.injected();
            s.max_attempts = s.max_attempts.max(c.max_attempts());
        }
    }

    /// Faults injected by fault plans so far.
    pub fn injected_faults(&self) -> usize {
        let s = self.lock();
        s.injected + s.chaos.as_ref().map_or(0, HttpChaosState::injected)
    }

    /// The most attempts one request (method and path) took under fault plans: faulted ones plus
    /// the one that got through.
    pub fn max_attempts(&self) -> u32 {
        let s = self.lock();
        s.max_attempts
            .max(s.chaos.as_ref().map_or(0, HttpChaosState::max_attempts))
    }

    /// Every request answered so far, with the answer.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.lock().exchanges.clone()
    }

    /// Whether [`exchanges`](Self::exchanges) keeps request and response bodies (default: yes,
    /// for spec checks; none and `Null` when not). A benchmark of thousands of requests turns it
    /// off, so the log does not swamp the memory it measures.
    pub fn keep_bodies(&self, keep: bool) {
        self.lock().drop_bodies = !keep;
    }

    /// Requests that changed something (anything but GET) so far.
    pub fn mutations(&self) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(|e| e.method != "GET")
            .collect()
    }

    fn handle(&self, s: &mut State, req: &Request, body: &Option<Value>) -> (u16, Value) {
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if auth != format!("Bearer {}", s.token) {
            return error(403, "forbidden", "Not authorized");
        }
        let query: BTreeMap<String, String> = req.url.query_pairs().into_owned().collect();
        if s.team
            .as_ref()
            .is_some_and(|t| query.get("teamId") != Some(t))
        {
            return error(
                403,
                "forbidden",
                "You don't have permission to access this team",
            );
        }
        let segs: Vec<String> = req
            .url
            .path_segments()
            .map(|s| s.map(percent_decode).collect())
            .unwrap_or_default();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let method = req.method.as_str();
        match (method, segs.as_slice()) {
            ("GET", ["v9", "projects", p]) => match s.project_mut(p) {
                None => not_found("project"),
                Some(p) => (200, project_json(p)),
            },
            ("GET", ["v10", "projects", p, "env"]) => {
                let branch = query.get("gitBranch");
                match s.project_mut(p) {
                    None => not_found("project"),
                    Some(p) => {
                        let envs: Vec<Value> = p
                            .envs
                            .iter()
                            .filter(|e| branch.is_none_or(|b| e.git_branch.as_ref() == Some(b)))
                            .map(env_json)
                            .collect();
                        (200, json!({"envs": envs}))
                    }
                }
            }
            ("POST", ["v10", "projects", p, "env"]) => {
                let upsert = query.get("upsert").map(String::as_str) == Some("true");
                self.create_env(s, p, upsert, body)
            }
            ("DELETE", ["v9", "projects", p, "env", id]) => {
                let Some(p) = s.project_mut(p) else {
                    return not_found("project");
                };
                match p.envs.iter().position(|e| e.id == *id) {
                    Some(i) => {
                        let e = p.envs.remove(i);
                        (200, env_json(&e))
                    }
                    None => not_found("environment variable"),
                }
            }
            ("DELETE", ["v1", "projects", p, "env"]) => {
                let ids: Vec<String> = body
                    .as_ref()
                    .and_then(|b| b.get("ids"))
                    .and_then(|i| serde_json::from_value(i.clone()).ok())
                    .unwrap_or_default();
                if ids.is_empty() {
                    return error(400, "bad_request", "ids is required");
                }
                let Some(p) = s.project_mut(p) else {
                    return not_found("project");
                };
                let removed: Vec<String> = p
                    .envs
                    .iter()
                    .filter(|e| ids.contains(&e.id))
                    .map(|e| e.id.clone())
                    .collect();
                p.envs.retain(|e| !removed.contains(&e.id));
                (200, json!({"deleted": removed.len(), "ids": removed}))
            }
            ("GET", ["v9", "projects", p, "domains"]) => {
                let Some(p) = s.project_mut(p) else {
                    return not_found("project");
                };
                let pid = p.id.clone();
                let items: Vec<(u64, Value)> = p
                    .domains
                    .iter()
                    .map(|d| (d.created_at, domain_json(&pid, d)))
                    .collect();
                let (items, next) = page(items, &query);
                let n = items.len();
                (
                    200,
                    json!({"domains": items, "pagination": pagination(n, next)}),
                )
            }
            ("GET", ["v9", "projects", p, "domains", d]) => {
                let Some(p) = s.project_mut(p) else {
                    return not_found("project");
                };
                match p.domains.iter().find(|x| x.name == *d) {
                    Some(x) => (200, domain_json(&p.id, x)),
                    None => not_found("domain"),
                }
            }
            ("POST", ["v10", "projects", p, "domains"]) => {
                let name = body
                    .as_ref()
                    .and_then(|b| b.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let branch = body
                    .as_ref()
                    .and_then(|b| b.get("gitBranch"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if name.is_empty() {
                    return error(400, "bad_request", "name is required");
                }
                if s.foreign_domains.contains(&name) {
                    return error(
                        409,
                        "domain_already_in_use",
                        "The domain is already in use by another project",
                    );
                }
                let now = s.tick();
                let Some(p) = s.project_mut(p) else {
                    return not_found("project");
                };
                if p.domains.iter().any(|x| x.name == name) {
                    return error(
                        400,
                        "domain_already_in_use",
                        "Cannot add domain since it is already in use by this project",
                    );
                }
                let d = FakeDomain {
                    name,
                    git_branch: branch,
                    created_at: now,
                };
                p.domains.push(d.clone());
                (200, domain_json(&p.id, &d))
            }
            ("PATCH", ["v9", "projects", p, "domains", d]) => {
                let Some(p) = s.project_mut(p) else {
                    return not_found("project");
                };
                let pid = p.id.clone();
                let Some(x) = p.domains.iter_mut().find(|x| x.name == *d) else {
                    return not_found("domain");
                };
                if let Some(b) = body.as_ref().and_then(|b| b.get("gitBranch")) {
                    x.git_branch = b.as_str().map(str::to_string);
                }
                (200, domain_json(&pid, x))
            }
            ("DELETE", ["v9", "projects", p, "domains", d]) => {
                let Some(p) = s.project_mut(p) else {
                    return not_found("project");
                };
                match p.domains.iter().position(|x| x.name == *d) {
                    Some(i) => {
                        p.domains.remove(i);
                        (200, json!({}))
                    }
                    None => not_found("domain"),
                }
            }
            ("POST", ["v13", "deployments"]) => {
                let before = s.deployments.len();
                let answer = self.create_deployment(s, body);
                if let (Some(t), Some(d)) = (s.build_time, s.deployments.get(before)) {
                    let id = d.id.clone();
                    s.ready_at.insert(id, std::time::Instant::now() + t);
                }
                answer
            }
            ("GET", ["v13", "deployments", id]) => {
                let build = s.build.clone();
                let building = s
                    .ready_at
                    .get(*id)
                    .is_some_and(|at| std::time::Instant::now() < *at);
                let Some(d) = s.deployments.iter_mut().find(|d| d.id == *id) else {
                    return not_found("deployment");
                };
                if building {
                    if d.state == "QUEUED" {
                        d.state = "BUILDING".into();
                    }
                } else {
                    advance(d, &build);
                }
                let v = deployment_json(d);
                (200, v)
            }
            ("GET", ["v6", "deployments"]) => {
                let states: Option<Vec<&str>> = query.get("state").map(|v| v.split(',').collect());
                let items: Vec<(u64, Value)> = s
                    .deployments
                    .iter()
                    .filter(|d| {
                        query
                            .get("projectId")
                            .is_none_or(|p| &d.project_id == p || &d.name == p)
                            && query.get("sha").is_none_or(|x| &d.sha == x)
                            && query.get("branch").is_none_or(|x| &d.git_ref == x)
                            && states
                                .as_ref()
                                .is_none_or(|st| st.contains(&d.state.as_str()))
                    })
                    .map(|d| (d.created_at, deployment_item(d)))
                    .collect();
                let (items, next) = page(items, &query);
                let n = items.len();
                (
                    200,
                    json!({"deployments": items, "pagination": pagination(n, next)}),
                )
            }
            ("DELETE", ["v13", "deployments", id]) => {
                match s.deployments.iter().position(|d| d.id == *id) {
                    Some(i) => {
                        let d = s.deployments.remove(i);
                        s.ready_at.remove(&d.id);
                        (200, json!({"uid": d.id, "state": "DELETED"}))
                    }
                    None => not_found("deployment"),
                }
            }
            ("PATCH", ["v12", "deployments", id, "cancel"]) => {
                let Some(d) = s.deployments.iter_mut().find(|d| d.id == *id) else {
                    return not_found("deployment");
                };
                if !matches!(d.state.as_str(), "QUEUED" | "BUILDING" | "INITIALIZING") {
                    return error(400, "bad_request", "The deployment cannot be canceled");
                }
                d.state = "CANCELED".into();
                (200, deployment_json(d))
            }
            ("POST", ["v2", "deployments", id, "aliases"]) => {
                let alias = body
                    .as_ref()
                    .and_then(|b| b.get("alias"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let uid = s.next_id("alias");
                let Some(d) = s.deployments.iter_mut().find(|d| d.id == *id) else {
                    return not_found("deployment");
                };
                if !d.alias.contains(&alias) {
                    d.alias.push(alias.clone());
                }
                (
                    200,
                    json!({"uid": uid, "alias": alias, "created": "2026-11-22T08:00:00.000Z", "oldDeploymentId": null}),
                )
            }
            _ => error(404, "not_found", "The requested path was not found"),
        }
    }

    fn create_env(
        &self,
        s: &mut State,
        project: &str,
        upsert: bool,
        body: &Option<Value>,
    ) -> (u16, Value) {
        let items: Vec<Value> = match body {
            Some(Value::Array(a)) => a.clone(),
            Some(v @ Value::Object(_)) => vec![v.clone()],
            _ => return error(400, "bad_request", "Invalid request body"),
        };
        let now = s.tick();
        let rejected = s.rejected_keys.clone();
        let mut new_ids = Vec::new();
        for _ in &items {
            new_ids.push(s.next_id("env"));
        }
        let Some(p) = s.project_mut(project) else {
            return not_found("project");
        };
        let mut created = Vec::new();
        let mut failed = Vec::new();
        for (item, new_id) in items.iter().zip(new_ids) {
            let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
            let (Some(key), Some(value), Some(kind)) = (text("key"), text("value"), text("type"))
            else {
                return error(400, "bad_request", "key, value and type are required");
            };
            let target: Vec<String> = item
                .get("target")
                .and_then(|t| serde_json::from_value(t.clone()).ok())
                .unwrap_or_default();
            let git_branch = text("gitBranch");
            if git_branch.is_some() && target != ["preview"] {
                return error(400, "bad_request", "gitBranch requires target=preview");
            }
            if let Some(code) = rejected.get(&key) {
                failed.push(json!({"error": {
                    "code": code, "message": format!("The variable {key} could not be saved"),
                    "key": key, "value": value, "gitBranch": git_branch, "target": target,
                }}));
                continue;
            }
            let existing = p.envs.iter_mut().find(|e| {
                e.key == key
                    && e.git_branch == git_branch
                    && e.target.iter().any(|t| target.contains(t))
            });
            match existing {
                Some(e) if upsert => {
                    e.value = value;
                    e.kind = kind;
                    e.target = target;
                    e.comment = text("comment");
                    e.updated_at = now;
                    created.push(env_json(e));
                }
                Some(e) => failed.push(json!({"error": {
                    "code": "ENV_ALREADY_EXISTS",
                    "message": format!("A variable with the name {key} already exists"),
                    "key": key, "envVarId": e.id,
                }})),
                None => {
                    let e = FakeEnv {
                        id: new_id,
                        key,
                        value,
                        kind,
                        target,
                        git_branch,
                        comment: text("comment"),
                        created_at: now,
                        updated_at: now,
                    };
                    created.push(env_json(&e));
                    p.envs.push(e);
                }
            }
        }
        (201, json!({"created": created, "failed": failed}))
    }

    fn create_deployment(&self, s: &mut State, body: &Option<Value>) -> (u16, Value) {
        let Some(b) = body else {
            return error(400, "bad_request", "Invalid request body");
        };
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let Some(project) = text(b, "project").or_else(|| text(b, "name")) else {
            return error(400, "bad_request", "name is required");
        };
        let Some(gs) = b.get("gitSource") else {
            return error(400, "bad_request", "files or gitSource is required");
        };
        let (Some("github"), Some(git_ref)) =
            (gs.get("type").and_then(Value::as_str), text(gs, "ref"))
        else {
            return error(400, "bad_request", "unsupported gitSource");
        };
        let sha = text(gs, "sha").unwrap_or_default();
        let meta: BTreeMap<String, String> = b
            .get("meta")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
        let now = s.tick();
        let id = s.next_id("dpl");
        let Some(p) = s.project_mut(&project) else {
            return not_found("project");
        };
        let (pid, pname) = (p.id.clone(), p.name.clone());
        let d = FakeDeployment {
            url: format!(
                "{pname}-{}-fake-team.vercel.app",
                id.trim_start_matches("dpl_")
            ),
            id,
            project_id: pid,
            name: pname,
            state: "QUEUED".into(),
            git_ref,
            sha,
            meta,
            alias: Vec::new(),
            created_at: now,
            polls: 0,
        };
        let v = deployment_json(&d);
        s.deployments.push(d);
        (200, v)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let (b'%', Some(b)) = (bytes[i], hex) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn advance(d: &mut FakeDeployment, build: &BuildOutcome) {
    if !matches!(d.state.as_str(), "QUEUED" | "BUILDING") {
        return;
    }
    d.polls += 1;
    match build {
        BuildOutcome::Ready { after_polls } if d.polls > *after_polls => {
            d.state = "READY".into();
            let url = d.url.clone();
            d.alias.push(url);
        }
        BuildOutcome::Error { after_polls, .. } if d.polls > *after_polls => {
            d.state = "ERROR".into();
        }
        _ => d.state = "BUILDING".into(),
    }
}

impl Respond for FakeVercel {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let gate = self.lock().gate.clone();
        match gate {
            None => self.respond_now(req),
            Some(g) => g
                .pass(
                    req.method.as_str() != "GET",
                    || format!("vercel {} {}", req.method, req.url.path()),
                    || self.respond_now(req),
                )
                // Held: neither carried out nor answered (until long after any test).
                .unwrap_or_else(|| ResponseTemplate::new(503).set_delay(Duration::from_secs(3600))),
        }
    }
}

impl FakeVercel {
    fn respond_now(&self, req: &Request) -> ResponseTemplate {
        let body: Option<Value> = if req.body.is_empty() {
            None
        } else {
            serde_json::from_slice(&req.body).ok()
        };
        let mut s = self.lock();
        s.requests += 1;
        let request_id = format!("iad1::fake-{:06}", s.requests);
        let fault_at = s.faults.iter().position(|f| {
            f.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(req.method.as_str()))
                && f.path_suffix
                    .as_deref()
                    .is_none_or(|p| req.url.path().ends_with(p))
        });
        let one_shot = fault_at.and_then(|i| s.faults.remove(i));
        // One-shot faults take precedence; the plan is not consulted for those requests.
        let planned = match (&one_shot, s.chaos.as_mut()) {
            (None, Some(c)) => c.draw(req.method.as_str(), req.url.path()),
            _ => None,
        };
        let latency = s.chaos.as_mut().and_then(HttpChaosState::latency);
        let injected = one_shot.is_some() || planned.is_some();
        let (status, response, retry_after) = match (one_shot, planned) {
            (Some(f), _) => {
                if f.after {
                    let _ = self.handle(&mut s, req, &body);
                }
                (f.status, f.body, f.retry_after)
            }
            (
                None,
                Some(HttpFault::Reject {
                    status,
                    retry_after,
                }),
            ) => {
                let (_, body) = injected_error(status);
                (status, body, retry_after.map(|r| r.header_value()))
            }
            (None, Some(HttpFault::Lose { status })) => {
                let _ = self.handle(&mut s, req, &body);
                let (_, body) = injected_error(status);
                (status, body, None)
            }
            (None, None) => {
                let (st, v) = self.handle(&mut s, req, &body);
                (st, v, None)
            }
        };
        let keep = !s.drop_bodies;
        s.exchanges.push(Exchange {
            method: req.method.as_str().to_string(),
            path: req.url.path().to_string(),
            query: req.url.query().map(str::to_string),
            request: body.filter(|_| keep),
            status,
            response: if keep { response.clone() } else { Value::Null },
            request_id: request_id.clone(),
            injected,
        });
        let delay =
            s.latency.as_ref().map(|f| f(req)).unwrap_or_default() + latency.unwrap_or_default();
        let mut t = ResponseTemplate::new(status)
            .set_body_json(response)
            .insert_header("x-vercel-id", request_id.as_str())
            .set_delay(delay);
        if let Some(r) = retry_after {
            t = t.insert_header("retry-after", r.as_str());
        }
        t
    }
}

/// An injected fault's answer in Vercel's error format (`{"error":{"code","message"}}`, with
/// `limit` on a 429 as the API sends it).
fn injected_error(status: u16) -> (u16, Value) {
    match status {
        408 => error(status, "request_timeout", "The request timed out"),
        429 => (
            status,
            json!({"error": {
                "code": "rate_limited",
                "message": "Rate limit exceeded",
                "limit": {"remaining": 0, "total": 100},
            }}),
        ),
        502 => error(status, "bad_gateway", "An upstream error occurred"),
        503 => error(status, "service_unavailable", "The service is unavailable"),
        504 => error(status, "gateway_timeout", "The upstream timed out"),
        _ => error(
            status,
            "internal_server_error",
            "An unexpected error occurred",
        ),
    }
}
