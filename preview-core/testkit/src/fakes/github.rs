//! A stateful fake of the GitHub REST API.
//!
//! [`FakeGitHub`] runs a local wiremock server whose one responder answers the operations
//! `providers_github::GitHubSource` uses the way GitHub does: pull requests with ETags and
//! `304 Not Modified`, `link`-header pagination with a weak ETag per page (and a 304 without
//! `link`; a 304 costs no quota), issue comments, deployments and their statuses,
//! environments, `GET /user` (or 403 as for the Actions token), bearer-token checks, and injected
//! faults. Bodies start from GitHub's own examples in the OpenAPI description, so they have every
//! field the spec requires. Every exchange is recorded for inspection and spec validation.
//!
//! A test points the real client at [`FakeGitHub::uri`] with [`TOKEN`] and [`REPOSITORY`] (the
//! providers' `tests/common` has the helper):
//!
//! ```no_run
//! # async fn run() {
//! use preview_testkit::fakes::github::{FakeGitHub, REPOSITORY, TOKEN};
//! let fake = FakeGitHub::start().await;
//! // GitHubSource::builder().token(TOKEN).repository(REPOSITORY).base_url(fake.uri())
//! # let _ = (fake, REPOSITORY, TOKEN);
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use preview_core::testing::Gate;
use preview_core::{PrState, PullRequest};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

use crate::http_chaos::{HttpChaos, HttpChaosState, HttpFault};

/// The repository the fake serves.
pub const REPOSITORY: &str = "acme/app";
/// The token the fake accepts.
pub const TOKEN: &str = "ghp_fake_token";
/// The login `GET /user` answers with (unless forbidden).
pub const LOGIN: &str = "preview-bot";
/// The author of what the Actions token writes (`providers_github::ACTIONS_BOT`, which the
/// providers' tests check it equals).
pub const ACTIONS_BOT: &str = "github-actions[bot]";

// GitHub's examples from the OpenAPI description. Two repairs: the pull request examples' team
// lacks `type`, which the spec requires (`"type": "organization"` was added), and the
// collaborator permission example's user lacks the required `role_name` (`"admin"` was added).
const PULL_REQUEST: &str = include_str!("github/fixtures/pull-request.json");
const PULL_REQUEST_SIMPLE: &str = include_str!("github/fixtures/pull-request-simple.json");
const ISSUE_COMMENT: &str = include_str!("github/fixtures/issue-comment.json");
const DEPLOYMENT: &str = include_str!("github/fixtures/deployment.json");
const DEPLOYMENT_STATUS: &str = include_str!("github/fixtures/deployment-status.json");
const ENVIRONMENT: &str = include_str!("github/fixtures/environment.json");
const USER: &str = include_str!("github/fixtures/user.json");
const COLLABORATOR_PERMISSION: &str = include_str!("github/fixtures/collaborator-permission.json");
const DIFF_ENTRY: &str = include_str!("github/fixtures/diff-entry.json");
const REACTION: &str = include_str!("github/fixtures/reaction.json");
const LABEL: &str = include_str!("github/fixtures/label.json");

/// GitHub lists at most this many files of a pull request; the fake too.
const MAX_FILES: usize = 3000;

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn set(v: &mut Value, path: &[&str], new: Value) {
    let mut cur = v;
    for (i, key) in path.iter().enumerate() {
        if i + 1 == path.len() {
            if let Some(obj) = cur.as_object_mut() {
                obj.insert((*key).to_string(), new);
            }
            return;
        }
        match cur.get_mut(*key) {
            Some(next) => cur = next,
            None => return,
        }
    }
}

/// Spec-conformant example bodies, built from GitHub's examples with our values patched in.
/// The tests that use plain wiremock mocks build their bodies with these too.
pub mod bodies {
    use super::*;

    fn patch_pull(mut v: Value, pr: &PullRequest, full: bool) -> Value {
        let n = pr.number.get();
        set(&mut v, &["number"], json!(n));
        set(&mut v, &["id"], json!(1000 + u64::from(n)));
        set(
            &mut v,
            &["state"],
            json!(if pr.state == PrState::Open {
                "open"
            } else {
                "closed"
            }),
        );
        set(&mut v, &["title"], json!(pr.title));
        set(&mut v, &["draft"], json!(pr.draft));
        let merged = pr.state == PrState::Merged;
        let closed_at = if pr.state == PrState::Open {
            Value::Null
        } else {
            json!("2026-11-20T10:00:00Z")
        };
        set(&mut v, &["closed_at"], closed_at.clone());
        set(
            &mut v,
            &["merged_at"],
            if merged { closed_at } else { Value::Null },
        );
        if full {
            set(&mut v, &["merged"], json!(merged));
        }
        set(&mut v, &["head", "ref"], json!(pr.head_branch));
        set(&mut v, &["head", "sha"], json!(pr.head_sha));
        match &pr.head_repo {
            Some(full_name) => {
                let (owner, name) = full_name.split_once('/').unwrap_or((full_name, full_name));
                set(
                    &mut v,
                    &["head", "label"],
                    json!(format!("{owner}:{}", pr.head_branch)),
                );
                set(&mut v, &["head", "repo", "full_name"], json!(full_name));
                set(&mut v, &["head", "repo", "name"], json!(name));
                set(&mut v, &["head", "repo", "owner", "login"], json!(owner));
            }
            // A deleted fork: GitHub sends null (the spec says the field is a required object).
            None => set(&mut v, &["head", "repo"], Value::Null),
        }
        let (owner, name) = pr
            .base_repo
            .split_once('/')
            .unwrap_or((&pr.base_repo, &pr.base_repo));
        set(&mut v, &["base", "repo", "full_name"], json!(pr.base_repo));
        set(&mut v, &["base", "repo", "name"], json!(name));
        set(&mut v, &["base", "repo", "owner", "login"], json!(owner));
        let template = v
            .get("labels")
            .and_then(|l| l.get(0))
            .cloned()
            .unwrap_or(Value::Null);
        let labels: Vec<Value> = pr
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut t = template.clone();
                set(&mut t, &["id"], json!(5000 + i));
                set(&mut t, &["name"], json!(l));
                t
            })
            .collect();
        set(&mut v, &["labels"], json!(labels));
        v
    }

    /// A `pull-request` body (`GET /repos/{o}/{r}/pulls/{n}`).
    pub fn pull_request(pr: &PullRequest) -> Value {
        patch_pull(fixture(PULL_REQUEST), pr, true)
    }

    /// A `pull-request-simple` body (an item of `GET /repos/{o}/{r}/pulls`).
    pub fn pull_request_simple(pr: &PullRequest) -> Value {
        // Parsed once: a listing of thousands renders it once per item.
        static SIMPLE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
        let template = SIMPLE.get_or_init(|| fixture(PULL_REQUEST_SIMPLE));
        patch_pull(template.clone(), pr, false)
    }

    /// An `issue-comment` body.
    pub fn issue_comment(id: u64, issue: u32, author: &str, body: &str) -> Value {
        let mut v = fixture(ISSUE_COMMENT);
        set(&mut v, &["id"], json!(id));
        set(&mut v, &["body"], json!(body));
        set(&mut v, &["user", "login"], json!(author));
        set(
            &mut v,
            &["url"],
            json!(format!(
                "https://api.github.com/repos/{REPOSITORY}/issues/comments/{id}"
            )),
        );
        set(
            &mut v,
            &["html_url"],
            json!(format!(
                "https://github.com/{REPOSITORY}/pull/{issue}#issuecomment-{id}"
            )),
        );
        set(
            &mut v,
            &["issue_url"],
            json!(format!(
                "https://api.github.com/repos/{REPOSITORY}/issues/{issue}"
            )),
        );
        v
    }

    /// A `diff-entry` body (an item of `GET /repos/{o}/{r}/pulls/{n}/files`).
    pub fn diff_entry(filename: &str) -> Value {
        let mut v = fixture(DIFF_ENTRY);
        set(&mut v, &["filename"], json!(filename));
        set(&mut v, &["status"], json!("modified"));
        v
    }

    /// A `reaction` body.
    pub fn reaction(id: u64, user: &str, content: &str) -> Value {
        let mut v = fixture(REACTION);
        set(&mut v, &["id"], json!(id));
        set(&mut v, &["user", "login"], json!(user));
        set(&mut v, &["content"], json!(content));
        v
    }

    /// A `label` body (an item of the answer to `POST /repos/{o}/{r}/issues/{n}/labels`).
    pub fn label(id: u64, name: &str) -> Value {
        let mut v = fixture(LABEL);
        set(&mut v, &["id"], json!(id));
        set(&mut v, &["name"], json!(name));
        let url = url::Url::parse(&format!(
            "https://api.github.com/repos/{REPOSITORY}/labels/"
        ))
        .and_then(|u| u.join(&utf8_percent_encode(name, NON_ALPHANUMERIC).to_string()))
        .map(|u| u.to_string())
        .unwrap_or_default();
        set(&mut v, &["url"], json!(url));
        set(&mut v, &["description"], Value::Null);
        set(&mut v, &["default"], json!(false));
        v
    }

    /// A `deployment` body.
    pub fn deployment(id: u64, sha: &str, environment: &str, description: &str) -> Value {
        let mut v = fixture(DEPLOYMENT);
        set(&mut v, &["id"], json!(id));
        set(&mut v, &["sha"], json!(sha));
        set(&mut v, &["ref"], json!(sha));
        set(&mut v, &["environment"], json!(environment));
        set(&mut v, &["original_environment"], json!(environment));
        set(&mut v, &["description"], json!(description));
        set(&mut v, &["transient_environment"], json!(true));
        set(&mut v, &["production_environment"], json!(false));
        set(&mut v, &["creator", "login"], json!(LOGIN));
        set(
            &mut v,
            &["url"],
            json!(format!(
                "https://api.github.com/repos/{REPOSITORY}/deployments/{id}"
            )),
        );
        set(
            &mut v,
            &["statuses_url"],
            json!(format!(
                "https://api.github.com/repos/{REPOSITORY}/deployments/{id}/statuses"
            )),
        );
        v
    }

    /// A `deployment-status` body; unset optional URLs are left out (GitHub sends `""`, which the
    /// spec's `format: uri` does not allow).
    pub fn deployment_status(
        id: u64,
        deployment: u64,
        state: &str,
        environment_url: Option<&str>,
        log_url: Option<&str>,
        description: &str,
    ) -> Value {
        let mut v = fixture(DEPLOYMENT_STATUS);
        set(&mut v, &["id"], json!(id));
        set(&mut v, &["state"], json!(state));
        set(&mut v, &["description"], json!(description));
        set(&mut v, &["creator", "login"], json!(LOGIN));
        set(
            &mut v,
            &["deployment_url"],
            json!(format!(
                "https://api.github.com/repos/{REPOSITORY}/deployments/{deployment}"
            )),
        );
        set(
            &mut v,
            &["url"],
            json!(format!(
                "https://api.github.com/repos/{REPOSITORY}/deployments/{deployment}/statuses/{id}"
            )),
        );
        if let Some(obj) = v.as_object_mut() {
            for (key, value) in [("environment_url", environment_url), ("log_url", log_url)] {
                match value {
                    Some(u) => {
                        obj.insert(key.into(), json!(u));
                    }
                    None => {
                        obj.remove(key);
                    }
                }
            }
            // Required and `format: uri` in the spec, although GitHub sends `""` when unset: a
            // conforming fake shows the repository's deployments page instead.
            let target = log_url.unwrap_or("https://github.com/acme/app/deployments");
            obj.insert("target_url".into(), json!(target));
        }
        v
    }

    /// An `environment` body.
    pub fn environment(id: u64, name: &str) -> Value {
        let mut v = fixture(ENVIRONMENT);
        set(&mut v, &["id"], json!(id));
        set(&mut v, &["name"], json!(name));
        v
    }

    /// A `repository-collaborator-permission` body: `role` is the repository role (`admin`,
    /// `maintain`, `write`, `triage`, `read`, `none`); `permission` is what GitHub derives from it.
    pub fn collaborator_permission(login: &str, role: &str) -> Value {
        let permission = match role {
            "admin" => "admin",
            "maintain" | "write" => "write",
            "triage" | "read" => "read",
            _ => "none",
        };
        let mut v = fixture(COLLABORATOR_PERMISSION);
        set(&mut v, &["permission"], json!(permission));
        set(&mut v, &["role_name"], json!(role));
        set(&mut v, &["user", "login"], json!(login));
        set(&mut v, &["user", "role_name"], json!(role));
        v
    }

    /// A `GET /user` body.
    pub fn user(login: &str) -> Value {
        let mut v = fixture(USER);
        set(&mut v, &["login"], json!(login));
        v
    }

    /// GitHub's `basic-error` body.
    pub fn error(message: &str) -> Value {
        json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
        })
    }
}

/// A comment held by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeComment {
    /// Comment id.
    pub id: u64,
    /// The PR (issue) number.
    pub issue: u32,
    /// Author login.
    pub author: String,
    /// Markdown body.
    pub body: String,
}

/// A deployment held by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeDeployment {
    /// Deployment id.
    pub id: u64,
    /// Commit SHA.
    pub sha: String,
    /// Environment name.
    pub environment: String,
    /// Statuses, oldest first.
    pub statuses: Vec<FakeStatus>,
}

/// A deployment status held by the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeStatus {
    /// Status id.
    pub id: u64,
    /// `in_progress`, `success`, `failure`, `inactive`, …
    pub state: String,
    /// Environment URL, when set.
    pub environment_url: Option<String>,
    /// Log URL, when set.
    pub log_url: Option<String>,
    /// Description.
    pub description: String,
}

/// One request and the answer the fake gave.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// HTTP method.
    pub method: String,
    /// Path (percent-encoded, as sent).
    pub path: String,
    /// Query string (percent-encoded, as sent), when there was one.
    pub query: Option<String>,
    /// Request body, when it had a JSON one.
    pub request: Option<Value>,
    /// Response status.
    pub status: u16,
    /// Response body, when JSON.
    pub response: Option<Value>,
    /// When the fake received it (wall clock: the server runs on its own runtime).
    pub at: std::time::Instant,
}

#[derive(Debug)]
struct Fault {
    /// Only requests with this method and a path ending so; `None` matches any request.
    target: Option<(String, String)>,
    /// Serve the request first (it takes effect), then answer with the fault ("silent success").
    after_commit: bool,
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

#[derive(Debug, Default)]
struct State {
    uri: String,
    login: String,
    user_forbidden: bool,
    /// Personal tokens besides [`TOKEN`]: token → login.
    tokens: BTreeMap<String, String>,
    /// Repository roles by login (lowercase); see [`FakeGitHub::set_permission`].
    roles: BTreeMap<String, String>,
    environment_delete_forbidden: bool,
    pulls: BTreeMap<u32, (PullRequest, u64)>,
    comments: Vec<FakeComment>,
    /// Changed files by PR; see [`FakeGitHub::set_files`].
    files: BTreeMap<u32, Vec<String>>,
    /// Reactions: (comment id, login, content).
    reactions: Vec<(u64, String, String)>,
    deployments: Vec<FakeDeployment>,
    environments: BTreeMap<String, u64>,
    next_id: u64,
    faults: VecDeque<Fault>,
    exchanges: Vec<Exchange>,
    quota_used: u64,
    request_counter: u64,
    latency: Option<LatencyFn>,
    limits: Limits,
    chaos: Option<HttpChaosState>,
    /// Faults and the longest streak of earlier chaos plans (replaced by `chaos` or `calm`).
    chaos_injected: usize,
    chaos_max_attempts: u32,
    /// Shared with other fakes to stop the world after a given mutating request.
    gate: Option<Gate>,
    /// The exchange log keeps no bodies; see [`FakeGitHub::keep_bodies`].
    drop_bodies: bool,
}

/// What [`FakeGitHub::snapshot`] keeps: pull requests, comments, deployments with their statuses,
/// environments (not the log, faults or knobs).
#[derive(Debug, Clone)]
pub struct GitHubSnapshot {
    pulls: BTreeMap<u32, (PullRequest, u64)>,
    comments: Vec<FakeComment>,
    deployments: Vec<FakeDeployment>,
    environments: BTreeMap<String, u64>,
}

/// How long the fake takes to answer a request (a latency model); see [`FakeGitHub::set_latency`].
pub type Latency = Arc<dyn Fn(&Request) -> std::time::Duration + Send + Sync>;

struct LatencyFn(Latency);

impl std::fmt::Debug for LatencyFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LatencyFn")
    }
}

/// Secondary rate limits the fake enforces (wall clock), and how often they were broken.
#[derive(Debug, Default)]
struct Limits {
    /// Minimum gap between a write's answer and the next write's arrival.
    write_spacing: Option<std::time::Duration>,
    /// When the last write was answered.
    last_write_done: Option<std::time::Instant>,
    /// Most reads in flight at once.
    max_concurrent_reads: Option<usize>,
    /// When each read in flight is answered.
    reads_in_flight: Vec<std::time::Instant>,
    violations: u64,
}

impl Limits {
    /// Admits a request arriving now that is answered after `delay`; `false` breaks a limit.
    fn admit(&mut self, write: bool, delay: std::time::Duration) -> bool {
        let now = std::time::Instant::now();
        let ok = if write {
            let ok = match (self.write_spacing, self.last_write_done) {
                (Some(gap), Some(done)) => now >= done + gap,
                _ => true,
            };
            if ok {
                self.last_write_done = Some(now + delay);
            }
            ok
        } else {
            self.reads_in_flight.retain(|end| *end > now);
            let ok = self
                .max_concurrent_reads
                .is_none_or(|max| self.reads_in_flight.len() < max);
            if ok {
                self.reads_in_flight.push(now + delay);
            }
            ok
        };
        if !ok {
            self.violations += 1;
        }
        ok
    }
}

impl State {
    fn retire_chaos(&mut self) {
        if let Some(c) = self.chaos.take() {
            self.chaos_injected += c.injected();
            self.chaos_max_attempts = self.chaos_max_attempts.max(c.max_attempts());
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// The fake GitHub: a local server and its state. Cloning shares both.
#[derive(Clone)]
pub struct FakeGitHub {
    server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeGitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGitHub")
            .field("uri", &self.server.uri())
            .finish_non_exhaustive()
    }
}

impl FakeGitHub {
    /// Starts the fake on a local port.
    pub async fn start() -> Self {
        Self::start_on(MockServer::start().await).await
    }

    /// Answers every request to `server` (e.g. one built with
    /// `MockServer::builder().disable_request_recording()`, so a benchmark of thousands of
    /// requests does not keep them all).
    pub async fn start_on(server: MockServer) -> Self {
        let state = Arc::new(Mutex::new(State {
            uri: server.uri(),
            login: LOGIN.into(),
            next_id: 100,
            ..State::default()
        }));
        Mock::given(any())
            .respond_with(Responder {
                state: state.clone(),
            })
            .mount(&server)
            .await;
        Self {
            server: Arc::new(server),
            state,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server's base URL.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Shares `gate` with this fake: every request passes through it (see [`Gate`]); a request it
    /// holds is neither carried out nor answered (the connection stays open until the test ends).
    pub fn set_gate(&self, gate: Gate) {
        self.lock().gate = Some(gate);
    }

    /// Everything the API would remember, to put back with [`restore`](Self::restore).
    pub fn snapshot(&self) -> GitHubSnapshot {
        let s = self.lock();
        GitHubSnapshot {
            pulls: s.pulls.clone(),
            comments: s.comments.clone(),
            deployments: s.deployments.clone(),
            environments: s.environments.clone(),
        }
    }

    /// Puts back what [`snapshot`](Self::snapshot) kept (ids keep counting up).
    pub fn restore(&self, snap: &GitHubSnapshot) {
        let mut s = self.lock();
        s.pulls = snap.pulls.clone();
        s.comments = snap.comments.clone();
        s.deployments = snap.deployments.clone();
        s.environments = snap.environments.clone();
    }

    /// Adds or replaces a pull request (its ETag changes).
    pub fn set_pull_request(&self, pr: PullRequest) {
        let mut s = self.lock();
        let version = s.pulls.get(&pr.number.get()).map_or(1, |(_, v)| v + 1);
        s.pulls.insert(pr.number.get(), (pr, version));
    }

    /// The labels pull request `pr` carries now (empty when there is no such PR).
    pub fn labels(&self, pr: u32) -> Vec<String> {
        self.lock()
            .pulls
            .get(&pr)
            .map(|(p, _)| p.labels.clone())
            .unwrap_or_default()
    }

    /// Sets the files pull request `pr` changes (GitHub lists at most 3,000 of them; so does the
    /// fake).
    pub fn set_files(&self, pr: u32, files: Vec<String>) {
        self.lock().files.insert(pr, files);
    }

    /// The reactions on comment `id`: (login, content), oldest first.
    pub fn reactions(&self, id: u64) -> Vec<(String, String)> {
        self.lock()
            .reactions
            .iter()
            .filter(|(c, _, _)| *c == id)
            .map(|(_, u, r)| (u.clone(), r.clone()))
            .collect()
    }

    /// Adds a comment by anyone (e.g. a PR author pasting our marker); returns its id.
    pub fn add_comment(&self, issue: u32, author: &str, body: &str) -> u64 {
        let mut s = self.lock();
        let id = s.id();
        s.comments.push(FakeComment {
            id,
            issue,
            author: author.into(),
            body: body.into(),
        });
        id
    }

    /// Adds a deployment of `sha` in `environment` out of band (creating the environment), with
    /// one status in `state` when given; returns its id.
    pub fn add_deployment(&self, sha: &str, environment: &str, state: Option<&str>) -> u64 {
        let mut s = self.lock();
        let id = s.id();
        let statuses = match state {
            Some(state) => {
                let status_id = s.id();
                vec![FakeStatus {
                    id: status_id,
                    state: state.into(),
                    environment_url: None,
                    log_url: None,
                    description: String::new(),
                }]
            }
            None => Vec::new(),
        };
        s.deployments.push(FakeDeployment {
            id,
            sha: sha.into(),
            environment: environment.into(),
            statuses,
        });
        if !s.environments.contains_key(environment) {
            let env_id = s.id();
            s.environments.insert(environment.into(), env_id);
        }
        id
    }

    /// Deletes a comment out of band.
    pub fn remove_comment(&self, id: u64) {
        self.lock().comments.retain(|c| c.id != id);
    }

    /// The comments of a PR, oldest first.
    pub fn comments(&self, issue: u32) -> Vec<FakeComment> {
        self.lock()
            .comments
            .iter()
            .filter(|c| c.issue == issue)
            .cloned()
            .collect()
    }

    /// Every deployment, oldest first.
    pub fn deployments(&self) -> Vec<FakeDeployment> {
        self.lock().deployments.clone()
    }

    /// The environments that exist.
    pub fn environments(&self) -> Vec<String> {
        self.lock().environments.keys().cloned().collect()
    }

    /// Accepts `token` as a personal token of `login` (`GET /user` answers it; comments made with
    /// it are its), who has `role` on the repository. [`TOKEN`] keeps acting as before.
    pub fn add_user_token(&self, token: &str, login: &str, role: &str) {
        let mut s = self.lock();
        s.tokens.insert(token.into(), login.into());
        s.roles.insert(login.to_ascii_lowercase(), role.into());
    }

    /// Sets the repository role of `login`: `admin`, `maintain`, `write`, `triage`, `read` or
    /// `none`. It decides the `author_association` of their comments (a role gives
    /// `COLLABORATOR`, none `NONE`), what `GET …/collaborators/{login}/permission` answers (404
    /// without a role), and whether they may edit or delete others' comments (`write` and up).
    /// [`LOGIN`] and `github-actions[bot]` can write unless set otherwise.
    pub fn set_permission(&self, login: &str, role: &str) {
        self.lock()
            .roles
            .insert(login.to_ascii_lowercase(), role.into());
    }

    /// Answer `GET /user` with 403, as GitHub does for the Actions `GITHUB_TOKEN`; comments
    /// made then are authored by `github-actions[bot]`.
    pub fn act_as_actions_token(&self) {
        let mut s = self.lock();
        s.user_forbidden = true;
        s.login = ACTIONS_BOT.into();
    }

    /// Answer environment deletes with 403 (the Actions token cannot delete environments).
    pub fn forbid_environment_delete(&self) {
        self.lock().environment_delete_forbidden = true;
    }

    /// Answers the next request with this status, headers and body instead of serving it.
    pub fn fail_next(&self, status: u16, headers: &[(&str, &str)], body: Value) {
        self.lock().faults.push_back(Fault {
            target: None,
            after_commit: false,
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            body,
        });
    }

    /// Answers the next `method` request whose path ends with `path_suffix` with `status`. With
    /// `after_commit` the request is served first and only its answer is lost (a "silent success":
    /// the comment or deployment exists, the client sees an error).
    pub fn fail_next_on(&self, method: &str, path_suffix: &str, status: u16, after_commit: bool) {
        self.lock().faults.push_back(Fault {
            target: Some((method.to_ascii_uppercase(), path_suffix.to_string())),
            after_commit,
            status,
            headers: Vec::new(),
            body: bodies::error("Server Error"),
        });
    }

    /// Injects seeded random faults into every request from now on (see [`HttpChaos`]):
    /// [`HttpFault::Reject`] answers its status without acting, in GitHub's error format and
    /// with `Retry-After` when the plan gives one; [`HttpFault::Lose`] serves the request, then
    /// answers its status instead (a silent success); the plan's latency holds the answer back.
    /// One-shot faults ([`fail_next`](Self::fail_next), [`fail_next_on`](Self::fail_next_on))
    /// and enforced secondary limits come first. Replaces an earlier plan.
    pub fn chaos(&self, plan: HttpChaos) {
        let mut s = self.lock();
        s.retire_chaos();
        s.chaos = Some(plan.start());
    }

    /// Stops injecting random faults (one-shot faults still apply).
    pub fn calm(&self) {
        self.lock().retire_chaos();
    }

    /// Random faults injected so far, over every chaos plan.
    pub fn injected_faults(&self) -> usize {
        let s = self.lock();
        s.chaos_injected + s.chaos.as_ref().map_or(0, HttpChaosState::injected)
    }

    /// The most attempts one request took under chaos (its faulted attempts plus the one that got
    /// through), over every chaos plan.
    pub fn max_attempts(&self) -> u32 {
        let s = self.lock();
        s.chaos_max_attempts
            .max(s.chaos.as_ref().map_or(0, HttpChaosState::max_attempts))
    }

    /// Every exchange so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.lock().exchanges.clone()
    }

    /// Mutating requests (POST, PATCH, PUT, DELETE) so far.
    pub fn writes(&self) -> Vec<Exchange> {
        self.exchanges()
            .into_iter()
            .filter(|e| e.method != "GET" && e.method != "HEAD")
            .collect()
    }

    /// Requests charged against the primary rate limit (a 304 is free, as on GitHub).
    pub fn quota_used(&self) -> u64 {
        self.lock().quota_used
    }

    /// Delays every answer by `latency(request)` (default: none). The request takes effect when it
    /// arrives; only the answer waits. For benchmarks on the real clock.
    pub fn set_latency(
        &self,
        latency: impl Fn(&Request) -> std::time::Duration + Send + Sync + 'static,
    ) {
        self.lock().latency = Some(LatencyFn(Arc::new(latency)));
    }

    /// Enforces GitHub's secondary rate limits on the wall clock: a write must arrive at least
    /// `write_spacing` after the previous write was answered, and at most `max_concurrent_reads`
    /// reads may be in flight. A request that breaks one is answered 403 "secondary rate limit"
    /// (with `retry-after: 1`) and counted in [`rate_limit_violations`](Self::rate_limit_violations).
    /// Off by default.
    pub fn enforce_secondary_limits(
        &self,
        write_spacing: std::time::Duration,
        max_concurrent_reads: usize,
    ) {
        let mut s = self.lock();
        s.limits.write_spacing = Some(write_spacing);
        s.limits.max_concurrent_reads = Some(max_concurrent_reads);
    }

    /// Requests that broke an enforced secondary rate limit.
    pub fn rate_limit_violations(&self) -> u64 {
        self.lock().limits.violations
    }

    /// Whether [`exchanges`](Self::exchanges) keeps request and response bodies (default: yes,
    /// for spec checks). A benchmark of thousands of requests turns it off, so the log does not
    /// hold every page it served and swamp the memory it measures.
    pub fn keep_bodies(&self, keep: bool) {
        self.lock().drop_bodies = !keep;
    }
}

struct Responder {
    state: Arc<Mutex<State>>,
}

/// What a handler answers, before headers common to every response are added.
struct Answer {
    status: u16,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

fn ok(status: u16, body: Value) -> Answer {
    Answer {
        status,
        body: Some(body),
        headers: Vec::new(),
    }
}

fn err(status: u16, message: &str) -> Answer {
    ok(status, bodies::error(message))
}

fn empty(status: u16) -> Answer {
    Answer {
        status,
        body: None,
        headers: Vec::new(),
    }
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

fn query(req: &Request, key: &str) -> Option<String> {
    req.url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// One page of `items` (each turned into its body by `body`, only those of the page) with its
/// `link` header, built from the request URL, and its ETag, as GitHub does: a weak validator of
/// the page's own content (`W/"<SHA-256 of the body>"`), so a page answers `304 Not Modified`
/// (no body, no `link`) to an `If-None-Match` that names it, whatever changed on other pages.
fn paginate<T>(state: &State, req: &Request, items: Vec<T>, body: impl Fn(T) -> Value) -> Answer {
    let per_page = query(req, "per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query(req, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(body)
        .collect();
    let chunk = Value::Array(chunk);
    let etag = weak_etag(&chunk);
    if if_none_match(req, &etag) {
        let mut answer = empty(304);
        answer.headers.push(("etag".into(), etag));
        return answer;
    }
    let mut answer = ok(200, chunk);
    answer.headers.push(("etag".into(), etag));
    let page_url = |p: usize| {
        let mut url = match url::Url::parse(&state.uri) {
            Ok(u) => u,
            Err(_) => return String::new(),
        };
        url.set_path(req.url.path());
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in req.url.query_pairs() {
                if k != "page" {
                    q.append_pair(&k, &v);
                }
            }
            q.append_pair("page", &p.to_string());
        }
        url.to_string()
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", page_url(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", page_url(last)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", page_url(1)));
        links.push(format!("<{}>; rel=\"prev\"", page_url(page - 1)));
    }
    if !links.is_empty() {
        answer.headers.push(("link".into(), links.join(", ")));
    }
    answer
}

/// GitHub's ETag of a body: weak, the SHA-256 of its bytes in hex.
fn weak_etag(body: &Value) -> String {
    use sha2::Digest;
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let digest = sha2::Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

/// Whether the request's `If-None-Match` names `etag`, by the weak comparison RFC 9110 asks of
/// it (`W/` ignored on both sides; `*` matches anything that exists).
fn if_none_match(req: &Request, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    req.headers
        .get_all("if-none-match")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || opaque(t) == opaque(etag))
}

impl State {
    /// The repository role of `login`, if any.
    fn role(&self, login: &str) -> Option<&str> {
        let key = login.to_ascii_lowercase();
        match self.roles.get(&key) {
            Some(r) => Some(r.as_str()),
            None if key == LOGIN || key == ACTIONS_BOT => Some("write"),
            None => None,
        }
    }

    fn can_write(&self, login: &str) -> bool {
        matches!(self.role(login), Some("admin" | "maintain" | "write"))
    }

    fn comment_body(&self, c: &FakeComment) -> Value {
        let mut v = bodies::issue_comment(c.id, c.issue, &c.author, &c.body);
        let association = if c.author.eq_ignore_ascii_case(ACTIONS_BOT) {
            "NONE"
        } else if matches!(self.role(&c.author), Some(r) if r != "none") {
            "COLLABORATOR"
        } else {
            "NONE"
        };
        set(&mut v, &["author_association"], json!(association));
        v
    }
}

fn status_body(deployment: u64, s: &FakeStatus) -> Value {
    bodies::deployment_status(
        s.id,
        deployment,
        &s.state,
        s.environment_url.as_deref(),
        s.log_url.as_deref(),
        &s.description,
    )
}

impl Responder {
    fn handle(&self, s: &mut State, req: &Request, json_body: Option<&Value>) -> Answer {
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Who this token is, and whether it is the Actions token (no `GET /user`).
        let (acting, forbidden) = match auth {
            Some(t) if t == TOKEN => (s.login.clone(), s.user_forbidden),
            Some(t) => match s.tokens.get(t) {
                Some(login) => (login.clone(), false),
                None => return err(401, "Bad credentials"),
            },
            None => return err(401, "Bad credentials"),
        };
        let method = req.method.as_str().to_string();
        let segments: Vec<String> = req
            .url
            .path_segments()
            .map(|s| s.map(decode).collect())
            .unwrap_or_default();
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let (owner, repo) = REPOSITORY.split_once('/').unwrap_or((REPOSITORY, ""));
        match (method.as_str(), seg.as_slice()) {
            ("GET", ["user"]) => {
                if forbidden {
                    err(403, "Resource not accessible by integration")
                } else {
                    ok(200, bodies::user(&acting))
                }
            }
            (m, ["repos", o, r, rest @ ..]) if *o == owner && *r == repo => {
                self.repo(s, req, &acting, m, rest, json_body)
            }
            _ => err(404, "Not Found"),
        }
    }

    fn repo(
        &self,
        s: &mut State,
        req: &Request,
        acting: &str,
        method: &str,
        rest: &[&str],
        body: Option<&Value>,
    ) -> Answer {
        match (method, rest) {
            ("GET", ["collaborators", login, "permission"]) => match s.role(login) {
                Some(role) => ok(200, bodies::collaborator_permission(login, role)),
                None => err(404, "Not Found"),
            },
            ("GET", ["pulls"]) => {
                let want = query(req, "state").unwrap_or_else(|| "open".into());
                let mut prs: Vec<&PullRequest> = s
                    .pulls
                    .values()
                    .map(|(p, _)| p)
                    .filter(|p| match want.as_str() {
                        "all" => true,
                        "closed" => p.state != PrState::Open,
                        _ => p.state == PrState::Open,
                    })
                    .collect();
                prs.sort_by_key(|p| std::cmp::Reverse(p.number));
                // Only the asked page is rendered: a listing of thousands stays linear.
                paginate(s, req, prs, bodies::pull_request_simple)
            }
            ("GET", ["pulls", n]) => {
                let Some((pr, version)) = n.parse::<u32>().ok().and_then(|n| s.pulls.get(&n))
                else {
                    return err(404, "Not Found");
                };
                let etag = format!("W/\"pr-{}-{version}\"", pr.number);
                let inm = req
                    .headers
                    .get("if-none-match")
                    .and_then(|v| v.to_str().ok());
                let mut answer = if inm == Some(etag.as_str()) {
                    empty(304)
                } else {
                    ok(200, bodies::pull_request(pr))
                };
                answer.headers.push(("etag".into(), etag));
                answer
            }
            ("GET", ["pulls", n, "files"]) => {
                let Some(n) = n.parse::<u32>().ok().filter(|n| s.pulls.contains_key(n)) else {
                    return err(404, "Not Found");
                };
                let files = s.files.get(&n).cloned().unwrap_or_default();
                let items = files
                    .iter()
                    .take(MAX_FILES)
                    .map(|f| bodies::diff_entry(f))
                    .collect();
                paginate(s, req, items, |v| v)
            }
            ("POST", ["issues", "comments", id, "reactions"]) => {
                let id = id.parse::<u64>().unwrap_or(0);
                if !s.comments.iter().any(|c| c.id == id) {
                    return err(404, "Not Found");
                }
                const CONTENTS: [&str; 8] = [
                    "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
                ];
                let Some(content) = body
                    .and_then(|b| b.get("content"))
                    .and_then(Value::as_str)
                    .filter(|c| CONTENTS.contains(c))
                else {
                    return validation("Reaction", "content", "invalid");
                };
                let existing = s
                    .reactions
                    .iter()
                    .position(|(c, u, r)| *c == id && u == acting && r == content);
                match existing {
                    // GitHub answers 200 with the reaction that was there.
                    Some(i) => ok(200, bodies::reaction(i as u64 + 1, acting, content)),
                    None => {
                        s.reactions.push((id, acting.into(), content.into()));
                        ok(
                            201,
                            bodies::reaction(s.reactions.len() as u64, acting, content),
                        )
                    }
                }
            }
            ("GET", ["issues", n, "comments"]) => {
                let Ok(n) = n.parse::<u32>() else {
                    return err(404, "Not Found");
                };
                if !s.pulls.contains_key(&n) {
                    return err(404, "Not Found");
                }
                let items = s
                    .comments
                    .iter()
                    .filter(|c| c.issue == n)
                    .map(|c| s.comment_body(c))
                    .collect();
                paginate(s, req, items, |v| v)
            }
            ("POST", ["issues", n, "comments"]) => {
                let Ok(n) = n.parse::<u32>() else {
                    return err(404, "Not Found");
                };
                if !s.pulls.contains_key(&n) {
                    return err(404, "Not Found");
                }
                let Some(text) = body.and_then(|b| b.get("body")).and_then(Value::as_str) else {
                    return validation("IssueComment", "body", "missing_field");
                };
                let id = s.id();
                let c = FakeComment {
                    id,
                    issue: n,
                    author: acting.into(),
                    body: text.into(),
                };
                let mut a = ok(201, s.comment_body(&c));
                s.comments.push(c);
                a.headers.push((
                    "location".into(),
                    format!("{}/repos/{REPOSITORY}/issues/comments/{id}", s.uri),
                ));
                a
            }
            ("POST", ["issues", n, "labels"]) => add_labels(s, n, body),
            (m @ ("GET" | "PATCH" | "DELETE"), ["issues", "comments", id]) => {
                let id = id.parse::<u64>().unwrap_or(0);
                let Some(i) = s.comments.iter().position(|c| c.id == id) else {
                    return err(404, "Not Found");
                };
                // Only its author, or someone who may write to the repository, edits or deletes
                // a comment.
                if m != "GET"
                    && !s.comments[i].author.eq_ignore_ascii_case(acting)
                    && !s.can_write(acting)
                {
                    return err(403, "Resource not accessible by integration");
                }
                match m {
                    "GET" => ok(200, s.comment_body(&s.comments[i])),
                    "PATCH" => {
                        let Some(text) = body.and_then(|b| b.get("body")).and_then(Value::as_str)
                        else {
                            return validation("IssueComment", "body", "missing_field");
                        };
                        s.comments[i].body = text.into();
                        ok(200, s.comment_body(&s.comments[i]))
                    }
                    _ => {
                        s.comments.remove(i);
                        empty(204)
                    }
                }
            }
            ("GET", ["deployments"]) => {
                let sha = query(req, "sha");
                let env = query(req, "environment");
                let items = s
                    .deployments
                    .iter()
                    .rev()
                    .filter(|d| sha.as_deref().is_none_or(|x| x == d.sha))
                    .filter(|d| env.as_deref().is_none_or(|x| x == d.environment))
                    .map(|d| bodies::deployment(d.id, &d.sha, &d.environment, "preview"))
                    .collect();
                paginate(s, req, items, |v| v)
            }
            ("POST", ["deployments"]) => {
                let Some(b) = body else {
                    return validation("Deployment", "ref", "missing_field");
                };
                let Some(sha) = b.get("ref").and_then(Value::as_str) else {
                    return validation("Deployment", "ref", "missing_field");
                };
                let env = b
                    .get("environment")
                    .and_then(Value::as_str)
                    .unwrap_or("production")
                    .to_string();
                let description = b
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let id = s.id();
                s.deployments.push(FakeDeployment {
                    id,
                    sha: sha.into(),
                    environment: env.clone(),
                    statuses: Vec::new(),
                });
                if !s.environments.contains_key(&env) {
                    let env_id = s.id();
                    s.environments.insert(env.clone(), env_id);
                }
                ok(201, bodies::deployment(id, sha, &env, &description))
            }
            ("DELETE", ["deployments", id]) => {
                let id = id.parse::<u64>().unwrap_or(0);
                let Some(i) = s.deployments.iter().position(|d| d.id == id) else {
                    return err(404, "Not Found");
                };
                let inactive = s.deployments[i].statuses.last().map(|st| st.state.as_str())
                    == Some("inactive");
                // GitHub: with more than one deployment, only an inactive one can be deleted.
                if !inactive && s.deployments.len() > 1 {
                    return ok(
                        422,
                        json!({"message": "We cannot delete an active deployment unless it is the only deployment in a given environment.",
                               "documentation_url": "https://docs.github.com/rest/deployments/deployments#delete-a-deployment"}),
                    );
                }
                s.deployments.remove(i);
                empty(204)
            }
            ("GET", ["deployments", id, "statuses"]) => {
                let id = id.parse::<u64>().unwrap_or(0);
                let Some(d) = s.deployments.iter().find(|d| d.id == id) else {
                    return err(404, "Not Found");
                };
                let items = d
                    .statuses
                    .iter()
                    .rev()
                    .map(|st| status_body(id, st))
                    .collect();
                paginate(s, req, items, |v| v)
            }
            ("POST", ["deployments", id, "statuses"]) => {
                let id = id.parse::<u64>().unwrap_or(0);
                let Some(b) = body else {
                    return validation("DeploymentStatus", "state", "missing_field");
                };
                let state = b.get("state").and_then(Value::as_str).unwrap_or("");
                if ![
                    "error",
                    "failure",
                    "inactive",
                    "in_progress",
                    "queued",
                    "pending",
                    "success",
                ]
                .contains(&state)
                {
                    return validation("DeploymentStatus", "state", "invalid");
                }
                let description = b
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if description.chars().count() > 140 {
                    return validation("DeploymentStatus", "description", "custom");
                }
                let url = |k: &str| {
                    b.get(k)
                        .and_then(Value::as_str)
                        .filter(|u| !u.is_empty())
                        .map(str::to_string)
                };
                let status_id = s.id();
                let st = FakeStatus {
                    id: status_id,
                    state: state.into(),
                    environment_url: url("environment_url"),
                    log_url: url("log_url"),
                    description,
                };
                let Some(d) = s.deployments.iter_mut().find(|d| d.id == id) else {
                    return err(404, "Not Found");
                };
                d.statuses.push(st.clone());
                let mut a = ok(201, status_body(id, &st));
                a.headers.push((
                    "location".into(),
                    format!(
                        "{}/repos/{REPOSITORY}/deployments/{id}/statuses/{status_id}",
                        s.uri
                    ),
                ));
                a
            }
            ("GET", ["environments", name]) => match s.environments.get(*name) {
                Some(id) => ok(200, bodies::environment(*id, name)),
                None => err(404, "Not Found"),
            },
            ("DELETE", ["environments", name]) => {
                if s.environment_delete_forbidden {
                    return err(403, "Resource not accessible by integration");
                }
                // GitHub answers 204 whether or not it existed.
                s.environments.remove(*name);
                empty(204)
            }
            _ => err(404, "Not Found"),
        }
    }
}

/// A drawn fault in GitHub's error format (`basic-error`), with the plan's `Retry-After`.
fn chaos_fault(f: HttpFault) -> Fault {
    let (after_commit, retry_after) = match &f {
        HttpFault::Reject { retry_after, .. } => (false, retry_after.clone()),
        HttpFault::Lose { .. } => (true, None),
    };
    let status = f.status();
    let message = match status {
        408 => "Request Timeout",
        429 => {
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        }
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Server Error",
    };
    Fault {
        target: None,
        after_commit,
        status,
        headers: retry_after
            .map(|r| vec![("retry-after".to_string(), r.header_value())])
            .unwrap_or_default(),
        body: bodies::error(message),
    }
}

/// `POST /repos/{o}/{r}/issues/{n}/labels`: adds the labels the PR lacks (names match in any
/// case; a label the repository lacks is created, as GitHub does), changes the PR's ETag when one
/// was added, and answers 200 with every label the PR now carries.
fn add_labels(s: &mut State, n: &str, body: Option<&Value>) -> Answer {
    let Some((pr, version)) = n.parse::<u32>().ok().and_then(|n| s.pulls.get_mut(&n)) else {
        return err(404, "Not Found");
    };
    let names: Option<Vec<String>> = body
        .and_then(|b| b.get("labels"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| match i {
                    Value::String(name) => Some(name.clone()),
                    other => other
                        .get("name")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                })
                .collect()
        });
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return validation("Label", "labels", "missing_field");
    };
    let mut added = false;
    for name in names {
        if !pr
            .labels
            .iter()
            .any(|l| l.to_lowercase() == name.to_lowercase())
        {
            pr.labels.push(name);
            added = true;
        }
    }
    if added {
        *version += 1;
    }
    let items = pr
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| bodies::label(5000 + i as u64, l))
        .collect();
    ok(200, Value::Array(items))
}

fn validation(resource: &str, field: &str, code: &str) -> Answer {
    ok(
        422,
        json!({
            "message": "Validation Failed",
            "documentation_url": "https://docs.github.com/rest",
            "errors": [{"resource": resource, "field": field, "code": code}],
        }),
    )
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let gate = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .gate
            .clone();
        match gate {
            None => self.respond_now(req),
            Some(g) => g
                .pass(
                    req.method.as_str() != "GET" && req.method.as_str() != "HEAD",
                    || format!("github {} {}", req.method, req.url.path()),
                    || self.respond_now(req),
                )
                // Held: neither carried out nor answered (until long after any test).
                .unwrap_or_else(|| {
                    ResponseTemplate::new(503).set_delay(std::time::Duration::from_secs(3600))
                }),
        }
    }
}

impl Responder {
    fn respond_now(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.request_counter += 1;
        let request_id = format!("FAKE:{:04}", s.request_counter);
        let json_body: Option<Value> = serde_json::from_slice(&req.body).ok();
        let method = req.method.as_str().to_string();
        let path = req.url.path().to_string();
        let delay = s.latency.as_ref().map(|f| (f.0)(req)).unwrap_or_default();
        let write = method != "GET" && method != "HEAD";
        let admitted = s.limits.admit(write, delay);
        let fault = if admitted {
            None
        } else {
            Some(Fault {
                target: None,
                after_commit: false,
                status: 403,
                headers: vec![("retry-after".into(), "1".into())],
                body: bodies::error(
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                ),
            })
        };
        let fault = fault.or_else(|| {
            s.faults
                .iter()
                .position(|f| match &f.target {
                    None => true,
                    Some((m, suffix)) => *m == method && path.ends_with(suffix.as_str()),
                })
                .and_then(|i| s.faults.remove(i))
        });
        let mut delay = delay;
        let fault = match fault {
            Some(f) => Some(f),
            None => match s.chaos.as_mut() {
                Some(chaos) => {
                    let drawn = chaos.draw(&method, &path);
                    delay += chaos.latency().unwrap_or_default();
                    drawn.map(chaos_fault)
                }
                None => None,
            },
        };
        let answer = match fault {
            Some(f) => {
                if f.after_commit {
                    self.handle(&mut s, req, json_body.as_ref());
                }
                Answer {
                    status: f.status,
                    body: Some(f.body),
                    headers: f.headers,
                }
            }
            None => self.handle(&mut s, req, json_body.as_ref()),
        };
        if answer.status != 304 {
            s.quota_used += 1;
        }
        let keep = !s.drop_bodies;
        s.exchanges.push(Exchange {
            at: std::time::Instant::now(),
            method,
            path,
            query: req.url.query().map(str::to_string),
            request: json_body.filter(|_| keep),
            status: answer.status,
            response: answer.body.clone().filter(|_| keep),
        });
        let mut t = ResponseTemplate::new(answer.status)
            .set_delay(delay)
            .insert_header("x-github-request-id", request_id.as_str())
            .insert_header("x-ratelimit-limit", "5000")
            .insert_header("x-ratelimit-resource", "core");
        let has_remaining = answer
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-ratelimit-remaining"));
        if !has_remaining {
            let remaining = 5000u64.saturating_sub(s.quota_used).to_string();
            t = t.insert_header("x-ratelimit-remaining", remaining.as_str());
        }
        for (k, v) in &answer.headers {
            t = t.insert_header(k.as_str(), v.as_str());
        }
        if let Some(body) = &answer.body {
            t = t.set_body_json(body);
        }
        t
    }
}
