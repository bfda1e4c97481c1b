//! `cargo bench -p preview-cli --bench deploy`: the real Fly, Vercel and GitHub hosts over HTTP
//! against the stateful fakes of the three APIs, with a per-endpoint latency model on the real
//! clock, scaled by `PREVIEW_BENCH_SCALE` (default 0.025: one modelled second takes 25 ms).
//!
//! Prints one JSON line per scenario. `wall_ms` is measured; `critical_path_ms` and
//! `sequential_ms` are computed from the same latency model over the calls the scenario actually
//! made (see `Sim`), then scaled like the run, so all three compare directly. The fakes enforce the
//! APIs' rate limits (Fly per action and app or Machine, GitHub write spacing and concurrent
//! reads) and count violations.
//!
//! The reconcile scenario (`reconcile_scenario`) runs `sweep` with `[lifetime]` over
//! `PREVIEW_BENCH_RECONCILE` environments (default 10,000) of a fixed mix, then over a tenth of
//! them twice (GitHub pages of 100 and of 10), reporting wall time against the rate-limit bound
//! and the pass's heap. `PREVIEW_BENCH_ONLY=deploy,sweep,reconcile` picks scenarios.
//!
//! Why the real clock: on a paused tokio clock reqwest's timers fire spuriously while a runtime
//! waits for a local server, so the providers' own waits would not be exercised faithfully.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use preview_core::effects::HttpClient;
use preview_core::http::ClientSettings;
use preview_core::render::HttpCall;
use preview_core::secrecy::SecretString;
use preview_core::{
    Config, DerivedSecrets, Hosts, PrNumber, PrState, Preview, PreviewName, PullRequest, Report,
    ReportState, RetryConfig, SourceHost,
};
use preview_testkit::fakes::fly::{FakeFly, RateLimits};
use preview_testkit::fakes::github::FakeGitHub;
use preview_testkit::fakes::vercel::FakeVercel;
use serde_json::{Value, json};

const FLY_TOKEN: &str = "fly-bench-token";
const VERCEL_TOKEN: &str = "vercel-bench-token";
const TEAM: &str = "team_bench";
const API_PROJECT: &str = "prj_api";
const UI_PROJECT: &str = "prj_ui";
const PR: u32 = 42;

// ---------------------------------------------------------------------------------------------
// The latency model (modelled milliseconds, before scaling)

/// A Machine reaches `started` with passing checks this long after its create (or update).
const MACHINE_BOOT_MS: f64 = 20_000.0;
/// A Vercel deployment is `READY` this long after its create.
const VERCEL_BUILD_MS: f64 = 45_000.0;
/// GitHub: at least this long between one write's answer and the next write.
const GITHUB_WRITE_SPACING_MS: f64 = 1_000.0;
/// GitHub: at most this many reads in flight.
const GITHUB_MAX_READS: usize = 10;
/// The prototype's fixed `sleep 3` after starting its proxies (step 9).
const PROTOTYPE_SLEEPS_MS: f64 = 3_000.0;

/// Modelled latency of one call, from realistic figures: app create 300 ms, Machine create (or
/// update) 2 s, every other call 100-300 ms (reads 100-150, writes 200-300).
fn model_ms(provider: &str, method: &str, path: &str) -> f64 {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (provider, method, segs.as_slice()) {
        ("fly", "POST", ["v1", "apps"]) => 300.0,
        ("fly", "POST", ["v1", "apps", _, "machines"]) => 2_000.0,
        ("fly", "POST", ["v1", "apps", _, "machines", _]) => 2_000.0,
        ("fly", "POST", ["v1", "apps", _, "ip_assignments"]) => 300.0,
        ("fly", "POST", ["v1", "apps", _, "secrets"]) => 200.0,
        ("fly", "DELETE", ["v1", "apps", _]) => 300.0,
        ("fly", "GET", ["v1", "apps"]) => 150.0,
        ("fly", "GET", _) => 100.0,
        ("fly", _, _) => 150.0,
        ("vercel", "POST", ["v13", "deployments"]) => 300.0,
        ("vercel", "POST", ["v2", "deployments", ..]) => 300.0,
        ("vercel", "POST", [_, "projects", _, "domains"]) => 300.0,
        ("vercel", "POST", [_, "projects", _, "env"]) => 200.0,
        ("vercel", "GET", ["v13", "deployments", _]) => 100.0,
        ("vercel", "GET", _) => 150.0,
        ("vercel", _, _) => 200.0,
        ("github", "GET", [.., "comments"] | [.., "deployments"]) => 150.0,
        ("github", "GET", _) => 100.0,
        ("github", _, _) => 250.0,
        ("app", "GET", _) => 100.0,
        ("app", _, _) => 300.0,
        _ => 200.0,
    }
}

#[derive(Debug, Clone)]
struct Call {
    provider: &'static str,
    method: String,
    path: String,
    query: String,
    body: Option<Value>,
    ms: f64,
}

impl Call {
    fn mutating(&self) -> bool {
        self.method != "GET" && self.method != "HEAD"
    }
    fn segs(&self) -> Vec<&str> {
        self.path.trim_start_matches('/').split('/').collect()
    }
}

#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<Vec<Call>>>);

impl Log {
    fn record(&self, provider: &'static str, req: &wiremock::Request, scale: f64) -> Duration {
        let method = req.method.as_str().to_string();
        let path = req.url.path().to_string();
        let ms = model_ms(provider, &method, &path);
        let body = (provider == "vercel" && !req.body.is_empty())
            .then(|| serde_json::from_slice(&req.body).ok())
            .flatten();
        self.push(Call {
            provider,
            method,
            path,
            query: req.url.query().unwrap_or("").to_string(),
            body,
            ms,
        });
        Duration::from_secs_f64(ms * scale / 1000.0)
    }
    fn push(&self, c: Call) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The deployed app's readiness endpoint and seed API, with the same latency model.
#[derive(Debug)]
struct ModelApp {
    log: Log,
    scale: f64,
}

#[async_trait::async_trait]
impl HttpClient for ModelApp {
    async fn send(&self, call: &HttpCall) -> preview_core::Result<u16> {
        let path = call
            .url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
            .unwrap_or_else(|| "/".into());
        let ms = model_ms("app", &call.method, &path);
        self.log.push(Call {
            provider: "app",
            method: call.method.clone(),
            path,
            query: String::new(),
            body: None,
            ms,
        });
        tokio::time::sleep(Duration::from_secs_f64(ms * self.scale / 1000.0)).await;
        Ok(call.expect_status.first().copied().unwrap_or(200))
    }
}

// ---------------------------------------------------------------------------------------------
// The environment under test

struct Bench {
    scale: f64,
    log: Log,
    fly: FakeFly,
    vercel: FakeVercel,
    github: FakeGitHub,
    preview: Preview,
    _servers: (wiremock::MockServer, wiremock::MockServer),
}

fn config() -> Config {
    // The example stack, minus its hooks: they run pnpm through flyctl tunnels on the runner,
    // which is neither an API call nor something this machine has.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/inkeep-agents");
    let text = std::fs::read_to_string(dir.join("preview.toml")).expect("example config exists");
    let (head, rest) = text.split_at(text.find("[[hooks]]").expect("example has hooks"));
    let tail = &rest[rest.find("\n[seed]").expect("example has a seed")..];
    Config::parse(&format!("{head}{tail}"), "bench preview.toml", &dir).expect("valid config")
}

fn env_lookup(k: &str) -> Option<String> {
    match k {
        "VERCEL_API_PROJECT_ID" => Some(API_PROJECT.into()),
        "VERCEL_UI_PROJECT_ID" => Some(UI_PROJECT.into()),
        "ANTHROPIC_API_KEY" => Some("sk-ant-bench".into()),
        "OPENAI_API_KEY" => Some("sk-openai-bench".into()),
        _ => None,
    }
}

/// The "ready" report a seeded environment's PR shows.
fn ready(name: PreviewName, pr: &PullRequest) -> Report {
    Report {
        name,
        pr: pr.number,
        branch: Some(pr.head_branch.clone()),
        commit: Some(pr.head_sha.clone()),
        state: ReportState::Ready { links: vec![] },
        run_url: None,
        started_at: None,
        phases: vec![],
        lifetime: None,
    }
}

fn pull(n: u32, state: PrState, sha: &str) -> PullRequest {
    PullRequest {
        number: PrNumber::new(u64::from(n)).expect("valid PR number"),
        state,
        draft: false,
        title: format!("PR {n}"),
        head_branch: format!("feature-{n}"),
        head_sha: sha.into(),
        head_repo: Some(preview_testkit::fakes::github::REPOSITORY.into()),
        base_repo: preview_testkit::fakes::github::REPOSITORY.into(),
        labels: vec![],
    }
}

/// The GitHub client pointed at the fake, as the fake's own tests build it (writes 1 ms apart, no
/// client timeouts); each scenario sets its own spacing.
fn github_builder(fake: &FakeGitHub) -> providers_github::GitHubSourceBuilder {
    providers_github::GitHubSourceBuilder::new()
        .token(preview_testkit::fakes::github::TOKEN)
        .repository(preview_testkit::fakes::github::REPOSITORY)
        .base_url(fake.uri())
        .write_spacing(Duration::from_millis(1))
        .without_timeouts()
}

fn github_template(config: &Config) -> String {
    config
        .report
        .environment
        .template
        .source()
        .replace("${pr.number}", "{pr}")
        .replace("${env.name}", "{name}")
}

impl Bench {
    async fn start(scale: f64, concurrency: usize) -> Self {
        Self::start_with(scale, concurrency, config(), 100).await
    }

    /// With `config`, and `page_size` open PRs a page in GitHub's listing.
    async fn start_with(scale: f64, concurrency: usize, config: Config, page_size: usize) -> Self {
        let log = Log::default();
        let org = config.database.org.clone().expect("example has an org");

        // The servers keep no copy of each request: the reconcile scenario measures the heap.
        let unrecorded = || {
            wiremock::MockServer::builder()
                .disable_request_recording()
                .start()
        };
        let fly_server = unrecorded().await;
        let fly = FakeFly::new(&org, FLY_TOKEN);
        fly.mount(&fly_server).await;
        fly.set_boot_time(Some(Duration::from_secs_f64(
            MACHINE_BOOT_MS * scale / 1000.0,
        )));
        fly.enforce_rate_limits(RateLimits { time_scale: scale });
        let l = log.clone();
        fly.set_latency(move |r| l.record("fly", r, scale));

        let vercel = FakeVercel::new(VERCEL_TOKEN)
            .team(TEAM)
            .project(API_PROJECT, "agents-api")
            .project(UI_PROJECT, "agents-manage-ui");
        let vercel_server = unrecorded().await;
        vercel.mount(&vercel_server).await;
        vercel.set_build_time(Some(Duration::from_secs_f64(
            VERCEL_BUILD_MS * scale / 1000.0,
        )));
        let l = log.clone();
        vercel.set_latency(move |r| l.record("vercel", r, scale));

        let github = FakeGitHub::start_on(unrecorded().await).await;
        github.enforce_secondary_limits(
            Duration::from_secs_f64(GITHUB_WRITE_SPACING_MS * scale / 1000.0),
            GITHUB_MAX_READS,
        );
        let l = log.clone();
        github.set_latency(move |r| l.record("github", r, scale));

        // The same builders as `preview_cli::providers::RealProviders`, pointed at the fakes, with
        // the providers' own waits scaled like the model.
        let database = providers_fly::FlyDatabasesBuilder::new()
            .naming(config.naming.clone())
            .token(FLY_TOKEN)
            .org(org)
            .base_url(fly_server.uri())
            .poll_interval(Duration::from_secs_f64(2.0 * scale))
            .action_interval(Duration::from_secs_f64(scale))
            .build()
            .expect("fly host");
        let apps = providers_vercel::VercelAppsBuilder::new()
            .token(VERCEL_TOKEN)
            .team_id(TEAM)
            .base_url(vercel_server.uri())
            .poll_unit(Duration::from_secs_f64(scale))
            .build()
            .expect("vercel host");
        let source = github_builder(&github)
            .timeout(Duration::from_secs(30))
            .write_spacing(Duration::from_secs_f64(
                GITHUB_WRITE_SPACING_MS * scale / 1000.0,
            ))
            .max_concurrent_reads(GITHUB_MAX_READS)
            .list_page_size(page_size)
            .environment_template(github_template(&config))
            .build()
            .expect("github host");
        let preview = Preview::new(
            config,
            Hosts {
                database: Arc::new(database),
                apps: Arc::new(apps),
                source: Arc::new(source),
            },
        )
        .http(Arc::new(ModelApp {
            log: log.clone(),
            scale,
        }))
        .secrets(Arc::new(
            DerivedSecrets::new(SecretString::from("bench-master-secret-".repeat(4)))
                .expect("long enough"),
        ))
        .env(Arc::new(env_lookup))
        .retry_config(RetryConfig::default())
        .concurrency(concurrency);
        Self {
            scale,
            log,
            fly,
            vercel,
            github,
            preview,
            _servers: (fly_server, vercel_server),
        }
    }

    fn violations(&self) -> Value {
        json!({"fly": self.fly.rate_limit_violations(), "github": self.github.rate_limit_violations()})
    }
}

// ---------------------------------------------------------------------------------------------
// Critical path and sequential time, from the model

/// Replays calls on the model's clock: each call takes its modelled latency, a Machine's `/wait`
/// ends when the Machine has booted, the poll that sees a deployment `READY` cannot start before
/// the build ends (polls that saw it building are waiting, not work, and are left out), and each
/// GitHub write starts at least the spacing after the previous write ended.
#[derive(Default)]
struct Sim {
    machine_ready: Option<f64>,
    build_ready: BTreeMap<String, f64>,
    last_write: Option<f64>,
}

struct Lanes<'c> {
    /// Which Vercel project each deployment belongs to.
    deployment_project: BTreeMap<String, String>,
    /// Vercel GET deployment calls that saw the build unfinished (by index in the log).
    waiting: Vec<bool>,
    calls: &'c [Call],
}

impl<'c> Lanes<'c> {
    fn new(calls: &'c [Call], vercel: &FakeVercel, vercel_exchanges_from: usize) -> Self {
        let deployment_project = vercel
            .deployments()
            .into_iter()
            .map(|d| (d.id, d.project_id))
            .collect();
        // The fake records its exchanges in the order it calls the latency model.
        let ex = vercel.exchanges();
        let mut vi = vercel_exchanges_from;
        let waiting = calls
            .iter()
            .map(|c| {
                if c.provider != "vercel" {
                    return false;
                }
                let e = ex.get(vi);
                vi += 1;
                c.method == "GET"
                    && c.path.starts_with("/v13/deployments/")
                    && e.is_some_and(|e| e.response["readyState"] != "READY")
            })
            .collect();
        Self {
            deployment_project,
            waiting,
            calls,
        }
    }

    fn vercel_project(&self, c: &Call) -> String {
        let segs = c.segs();
        match segs.as_slice() {
            [_, "projects", p, ..] => (*p).to_string(),
            ["v6", "deployments"] => c
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("projectId="))
                .unwrap_or("")
                .to_string(),
            ["v13", "deployments"] => c
                .body
                .as_ref()
                .and_then(|b| b["project"].as_str())
                .unwrap_or("")
                .to_string(),
            [_, "deployments", id, ..] => self
                .deployment_project
                .get(*id)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Indices of the calls of `provider` (and Vercel `project`, when given).
    fn of(&self, provider: &str, project: Option<&str>) -> Vec<usize> {
        (0..self.calls.len())
            .filter(|&i| self.calls[i].provider == provider)
            .filter(|&i| project.is_none_or(|p| self.vercel_project(&self.calls[i]) == p))
            .collect()
    }

    fn run(&self, sim: &mut Sim, lane: &[usize], start: f64) -> f64 {
        let mut t = start;
        for &i in lane {
            let c = &self.calls[i];
            let segs = c.segs();
            match (c.provider, c.method.as_str(), segs.as_slice()) {
                ("fly", "POST", ["v1", "apps", _, "machines"])
                | ("fly", "POST", ["v1", "apps", _, "machines", _])
                | ("fly", "POST", ["v1", "apps", _, "machines", _, "start"]) => {
                    sim.machine_ready = Some(t + MACHINE_BOOT_MS);
                    t += c.ms;
                }
                ("fly", "GET", ["v1", "apps", _, "machines", _, "wait"]) => {
                    t = t.max(sim.machine_ready.unwrap_or(t)) + c.ms;
                }
                ("vercel", "POST", ["v13", "deployments"]) => {
                    sim.build_ready
                        .insert(self.vercel_project(c), t + VERCEL_BUILD_MS);
                    t += c.ms;
                }
                ("vercel", "GET", ["v13", "deployments", _]) => {
                    if !self.waiting[i] {
                        let ready = sim.build_ready.get(&self.vercel_project(c)).copied();
                        t = t.max(ready.unwrap_or(t)) + c.ms;
                    }
                }
                ("github", _, _) if c.mutating() => {
                    let s = sim
                        .last_write
                        .map_or(t, |e| t.max(e + GITHUB_WRITE_SPACING_MS));
                    t = s + c.ms;
                    sim.last_write = Some(t);
                }
                _ => t += c.ms,
            }
        }
        t
    }
}

struct Figures {
    critical_ms: f64,
    sequential_ms: f64,
}

/// Deploy: observe the PR, then announce, the database and each app side by side, then the seed,
/// the verification read and the final report.
fn deploy_figures(calls: &[Call], vercel: &FakeVercel, vercel_from: usize) -> Figures {
    let lanes = Lanes::new(calls, vercel, vercel_from);
    let github = lanes.of("github", None);
    let is_pull = |i: &usize| calls[*i].method == "GET" && calls[*i].path.contains("/pulls/");
    let observe: Vec<usize> = github.iter().copied().take(1).collect();
    let verify_at = github.iter().rposition(is_pull).unwrap_or(0).max(1);
    let announce: Vec<usize> = github[1.min(github.len())..verify_at].to_vec();
    let verify: Vec<usize> = github[verify_at..(verify_at + 1).min(github.len())].to_vec();
    let report: Vec<usize> = github[(verify_at + 1).min(github.len())..].to_vec();
    let fly = lanes.of("fly", None);
    let api = lanes.of("vercel", Some(API_PROJECT));
    let ui = lanes.of("vercel", Some(UI_PROJECT));
    let app = lanes.of("app", None);

    let mut sim = Sim::default();
    let t0 = lanes.run(&mut sim, &observe, 0.0);
    let mut join = t0;
    for lane in [&announce, &fly, &api, &ui] {
        join = join.max(lanes.run(&mut sim, lane, t0));
    }
    let t = lanes.run(&mut sim, &app, join);
    let t = lanes.run(&mut sim, &verify, t);
    let critical_ms = lanes.run(&mut sim, &report, t);

    let mut sim = Sim::default();
    let mut t = 0.0;
    for lane in [&observe, &announce, &fly, &api, &ui, &app, &verify, &report] {
        t = lanes.run(&mut sim, lane, t);
    }
    Figures {
        critical_ms,
        sequential_ms: t + PROTOTYPE_SLEEPS_MS,
    }
}

/// Teardown: the apps side by side, then the database, then the report.
fn teardown_figures(calls: &[Call], vercel: &FakeVercel, vercel_from: usize) -> Figures {
    let lanes = Lanes::new(calls, vercel, vercel_from);
    let api = lanes.of("vercel", Some(API_PROJECT));
    let ui = lanes.of("vercel", Some(UI_PROJECT));
    let fly = lanes.of("fly", None);
    let github = lanes.of("github", None);
    let mut sim = Sim::default();
    let apps = lanes
        .run(&mut sim, &api, 0.0)
        .max(lanes.run(&mut sim, &ui, 0.0));
    let t = lanes.run(&mut sim, &fly, apps);
    let critical_ms = lanes.run(&mut sim, &github, t);
    let mut sim = Sim::default();
    let mut t = 0.0;
    for lane in [&api, &ui, &fly, &github] {
        t = lanes.run(&mut sim, lane, t);
    }
    Figures {
        critical_ms,
        sequential_ms: t,
    }
}

fn counts(calls: &[Call]) -> (Value, Value) {
    let mut all: BTreeMap<&str, usize> = BTreeMap::new();
    let mut mutating: BTreeMap<&str, usize> = BTreeMap::new();
    for p in ["fly", "vercel", "github", "app"] {
        all.insert(p, 0);
        mutating.insert(p, 0);
    }
    for c in calls {
        *all.entry(c.provider).or_default() += 1;
        if c.mutating() {
            *mutating.entry(c.provider).or_default() += 1;
        }
    }
    (json!(all), json!(mutating))
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[allow(clippy::print_stdout)] // a benchmark's output is its report
fn emit(line: &Value) {
    println!("{line}");
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn deploy_scenario(b: &Bench, scenario: &str) -> Value {
    b.log.take();
    let vercel_from = b.vercel.exchanges().len();
    let start = Instant::now();
    let report = b
        .preview
        .deploy(PrNumber::new(u64::from(PR)).expect("valid"))
        .await
        .unwrap_or_else(|e| panic!("{scenario}: deploy failed: {e:#}"));
    let wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    let calls = b.log.take();
    let f = deploy_figures(&calls, &b.vercel, vercel_from);
    let (requests, mutating) = counts(&calls);
    let reads = calls.iter().filter(|c| !c.mutating()).count();
    // Acceptance 2 counts reads per resource: the same URL read twice is a wasted round trip.
    let mut per_resource: BTreeMap<String, usize> = BTreeMap::new();
    for c in calls.iter().filter(|c| !c.mutating()) {
        let q = if c.query.is_empty() { "" } else { "?" };
        *per_resource
            .entry(format!("{} {}{q}{}", c.provider, c.path, c.query))
            .or_default() += 1;
    }
    let max_reads_per_resource = per_resource.values().copied().max().unwrap_or(0);
    let reread: Vec<&String> = per_resource
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    let critical_ms = f.critical_ms * b.scale;
    let sequential_ms = f.sequential_ms * b.scale;
    json!({
        "scenario": scenario,
        "scale": b.scale,
        "wall_ms": round(wall_ms),
        "critical_path_ms": round(critical_ms),
        "sequential_ms": round(sequential_ms),
        "wall_over_critical_path": round(wall_ms / critical_ms),
        "sequential_over_wall": round(sequential_ms / wall_ms),
        "requests": requests,
        "mutating_requests": mutating,
        "reads": reads,
        "max_reads_per_resource": max_reads_per_resource,
        "reread": reread,
        "resources": report.changes.len(),
        "mutated_resources": report.mutated(),
        "rate_limit_violations": b.violations(),
    })
}

async fn teardown_scenario(b: &Bench) -> Value {
    b.log.take();
    let vercel_from = b.vercel.exchanges().len();
    let start = Instant::now();
    let report = b
        .preview
        .teardown(PrNumber::new(u64::from(PR)).expect("valid"))
        .await
        .unwrap_or_else(|e| panic!("teardown failed: {e:#}"));
    let wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    let calls = b.log.take();
    let f = teardown_figures(&calls, &b.vercel, vercel_from);
    let (requests, mutating) = counts(&calls);
    let critical_ms = f.critical_ms * b.scale;
    json!({
        "scenario": "teardown",
        "scale": b.scale,
        "wall_ms": round(wall_ms),
        "critical_path_ms": round(critical_ms),
        "sequential_ms": round(f.sequential_ms * b.scale),
        "wall_over_critical_path": round(wall_ms / critical_ms),
        "requests": requests,
        "mutating_requests": mutating,
        "resources": report.changes.len(),
        "rate_limit_violations": b.violations(),
    })
}

/// Seeds `n` environments (PRs 1..=n, every odd one closed) on Fly (owned apps), Vercel (each
/// app's branch domain) and GitHub (PR, sticky comment, deployment), with latency and limits off.
async fn seed(b: &Bench, fly_uri: &str, n: u32) {
    let http = reqwest::Client::new();
    let org = b
        .preview
        .config()
        .database
        .org
        .clone()
        .expect("example has an org");
    let seeder = github_builder(&b.github)
        .write_spacing(Duration::ZERO)
        .environment_template(github_template(b.preview.config()))
        .build()
        .expect("github seeder");
    futures::stream::iter(1..=n)
        .map(|i| {
            let (http, org, seeder) = (&http, &org, &seeder);
            async move {
                let name = b.preview.config().name(PrNumber::new(u64::from(i)).expect("valid"));
                let state = if i % 2 == 1 {
                    PrState::Closed
                } else {
                    PrState::Open
                };
                let pr = pull(i, state, &format!("{i:040x}"));
                b.github.set_pull_request(pr.clone());
                for (path, body) in [
                    (
                        "/v1/apps".to_string(),
                        json!({"name": name.as_str(), "org_slug": org, "idempotency_key": format!("preview-{org}-{name}")}),
                    ),
                    (
                        format!("/v1/apps/{name}/secrets"),
                        json!({"values": {providers_fly::OWNER_SECRET: name.as_str()}}),
                    ),
                ] {
                    let r = http
                        .post(format!("{fly_uri}{path}"))
                        .bearer_auth(FLY_TOKEN)
                        .json(&body)
                        .send()
                        .await
                        .expect("seed fly");
                    assert!(r.status().is_success(), "seed fly {path}: {}", r.status());
                }
                b.vercel.add_domain(
                    API_PROJECT,
                    &format!("pr-{i}-api.preview.inkeep.com"),
                    Some(&pr.head_branch),
                );
                b.vercel.add_domain(
                    UI_PROJECT,
                    &format!("pr-{i}-ui.preview.inkeep.com"),
                    Some(&pr.head_branch),
                );
                seeder
                    .publish_report(&ready(name, &pr))
                    .await
                    .expect("seed github");
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
}

/// The lower bound the APIs' rate limits set on a pass that made `calls` (modelled ms): GitHub's
/// writes one after another, each at least the spacing after the previous one's answer; its reads
/// at most 10 at a time; Fly's app deletions at most 100 per minute. (Fly's per-app and
/// per-Machine limits bind no pass here: no app or Machine gets more than 3 calls, its burst.)
fn rate_limit_bound_ms(calls: &[Call]) -> f64 {
    let gh_writes: Vec<&Call> = calls
        .iter()
        .filter(|c| c.provider == "github" && c.mutating())
        .collect();
    let write_chain = gh_writes.iter().map(|c| c.ms).sum::<f64>()
        + gh_writes.len().saturating_sub(1) as f64 * GITHUB_WRITE_SPACING_MS;
    let read_bound = calls
        .iter()
        .filter(|c| c.provider == "github" && !c.mutating())
        .map(|c| c.ms)
        .sum::<f64>()
        / GITHUB_MAX_READS as f64;
    let app_deletes = calls
        .iter()
        .filter(|c| c.provider == "fly" && c.method == "DELETE" && c.segs().len() == 3)
        .count();
    let delete_bound = app_deletes.saturating_sub(100) as f64 * 600.0;
    write_chain.max(read_bound).max(delete_bound)
}

async fn sweep_scenario(scale: f64, concurrency: usize, n: u32) -> Value {
    let b = Bench::start(scale, concurrency).await;
    let fly_uri = b._servers.0.uri();
    // Seeding is set-up, not part of the measurement: no latency, no limits.
    b.fly.set_latency(|_| Duration::ZERO);
    b.vercel.set_latency(|_| Duration::ZERO);
    b.github.set_latency(|_| Duration::ZERO);
    b.github
        .enforce_secondary_limits(Duration::ZERO, usize::MAX);
    seed(&b, &fly_uri, n).await;
    let fly_violations_before = b.fly.rate_limit_violations();
    let (l1, l2, l3) = (b.log.clone(), b.log.clone(), b.log.clone());
    b.fly.set_latency(move |r| l1.record("fly", r, scale));
    b.vercel.set_latency(move |r| l2.record("vercel", r, scale));
    b.github.set_latency(move |r| l3.record("github", r, scale));
    b.github.enforce_secondary_limits(
        Duration::from_secs_f64(GITHUB_WRITE_SPACING_MS * scale / 1000.0),
        GITHUB_MAX_READS,
    );
    let github_violations_before = b.github.rate_limit_violations();
    b.log.take();

    let start = Instant::now();
    let report = b.preview.sweep(false).await.expect("sweep lists");
    let wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    let calls = b.log.take();
    assert!(
        report.failures.is_empty(),
        "sweep failures: {:?}",
        report.failures
    );

    let bound_ms = rate_limit_bound_ms(&calls) * scale;
    let gh_writes = calls
        .iter()
        .filter(|c| c.provider == "github" && c.mutating())
        .count();
    // The prototype's cleanup: every call one after another (writes still spaced).
    let sequential_ms = (calls.iter().map(|c| c.ms).sum::<f64>()
        + gh_writes.saturating_sub(1) as f64 * GITHUB_WRITE_SPACING_MS)
        * scale;
    let (requests, mutating) = counts(&calls);
    json!({
        "scenario": "sweep",
        "scale": scale,
        "environments": n,
        "removed": report.removed.len(),
        "concurrency": concurrency,
        "wall_ms": round(wall_ms),
        "critical_path_ms": round(bound_ms),
        "rate_limit_bound_ms": round(bound_ms),
        "wall_over_bound": round(wall_ms / bound_ms),
        "sequential_ms": round(sequential_ms),
        "requests": requests,
        "mutating_requests": mutating,
        "github_writes": gh_writes,
        "rate_limit_violations": {
            "fly": b.fly.rate_limit_violations() - fly_violations_before,
            "github": b.github.rate_limit_violations() - github_violations_before,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// The reconcile pass at scale

/// What an environment of the reconcile scenario is, by its PR number (out of every 200: 4
/// closed, 2 expired, 2 idle, 2 over the cap, 1 inactive past the ttl but labelled to keep, 189
/// open and active). Few act, so GitHub's write spacing (3 writes a teardown, 2 a sleep, each
/// at least 1 s after the last) keeps 10,000 environments at about half an hour of modelled
/// time rather than hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Active,
    Closed,
    Expired,
    Idle,
    OverCap,
    Kept,
}

fn kind(pr: u32) -> Kind {
    match pr % 200 {
        0..=3 => Kind::Closed,
        4 | 5 => Kind::Expired,
        6 | 7 => Kind::Idle,
        8 | 9 => Kind::OverCap,
        10 => Kind::Kept,
        _ => Kind::Active,
    }
}

const KEEP_LABEL: &str = "preview:keep";

/// Seconds since the last activity. ttl is 7 days and sleep_after 1 day; the over-cap ones (5
/// days) are the least recently active of those the ttl leaves, so eviction picks exactly them.
fn inactive_secs(k: Kind, pr: u32) -> i64 {
    let jitter = i64::from(pr % 1000);
    match k {
        Kind::Active | Kind::Closed => 600 + jitter,
        Kind::Idle => 2 * 86_400 + jitter,
        Kind::OverCap => 5 * 86_400 + jitter,
        Kind::Expired => 8 * 86_400 + jitter,
        Kind::Kept => 9 * 86_400 + jitter,
    }
}

fn kinds(n: u32) -> BTreeMap<Kind, usize> {
    let mut out = BTreeMap::new();
    for pr in 1..=n {
        *out.entry(kind(pr)).or_default() += 1;
    }
    out
}

/// The bench config with a `[lifetime]` whose cap is exactly the over-cap ones short.
fn reconcile_config(n: u32) -> Config {
    let k = kinds(n);
    let count = |x: Kind| k.get(&x).copied().unwrap_or(0);
    let left = n as usize - count(Kind::Closed) - count(Kind::Expired);
    let max = left - count(Kind::OverCap);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/inkeep-agents");
    let text = std::fs::read_to_string(dir.join("preview.toml")).expect("example config exists");
    let (head, rest) = text.split_at(text.find("[[hooks]]").expect("example has hooks"));
    let tail = &rest[rest.find("\n[seed]").expect("example has a seed")..];
    let lifetime = format!(
        "\n[lifetime]\nttl = \"168h\"\nsleep_after = \"24h\"\nkeep_label = \"{KEEP_LABEL}\"\nmax_environments = {max}\nwhen_full = \"evict\"\n"
    );
    Config::parse(
        &format!("{head}{tail}{lifetime}"),
        "bench preview.toml",
        &dir,
    )
    .expect("valid config")
}

/// Seeds `n` environments of [`kind`] in the fakes' memory (no request): each a Fly app with its
/// ownership marker and one started Machine carrying its activity mark, both Vercel domains, the
/// PR, its sticky comment as the provider renders it and a successful deployment.
fn seed_reconcile(b: &Bench, n: u32) {
    let config = b.preview.config();
    let org = config.database.org.clone().expect("example has an org");
    let template = github_template(config);
    let now = jiff::Timestamp::now().as_second();
    for i in 1..=n {
        let k = kind(i);
        let number = PrNumber::new(u64::from(i)).expect("valid");
        let name = config.name(number);
        let state = if k == Kind::Closed {
            PrState::Closed
        } else {
            PrState::Open
        };
        let mut pr = pull(i, state, &format!("{i:040x}"));
        if k == Kind::Kept {
            pr.labels = vec![KEEP_LABEL.into()];
        }
        b.github.set_pull_request(pr.clone());
        let comment = providers_github::render_comment(&ready(name.clone(), &pr));
        b.github
            .add_comment(i, preview_testkit::fakes::github::LOGIN, &comment);
        let env = template
            .replace("{pr}", &i.to_string())
            .replace("{name}", name.as_str());
        b.github.add_deployment(&pr.head_sha, &env, Some("success"));
        b.fly.add_empty_app(name.as_str(), &org);
        b.fly
            .add_secret(name.as_str(), providers_fly::OWNER_SECRET, name.as_str());
        let active = jiff::Timestamp::from_second(now - inactive_secs(k, i)).expect("in range");
        // The metadata keys providers-fly writes (`preview_env`, `preview_active_at`, and the
        // hooks' mark `preview_hooks`, as the flagship's hooks leave it): a running Machine with
        // a mark is read on its own for its boot, which the org listing does not carry. The
        // seeded Machines have no events, so the read finds no boot and decides nothing.
        b.fly.add_machine(
            name.as_str(),
            json!({"image": "postgres:17", "metadata": {
                "preview_env": name.as_str(),
                "preview_active_at": active.to_string(),
                "preview_hooks": "seeded@boot",
            }}),
        );
        for (project, app) in [(API_PROJECT, "api"), (UI_PROJECT, "ui")] {
            b.vercel.add_domain(
                project,
                &format!("pr-{i}-{app}.preview.inkeep.com"),
                Some(&pr.head_branch),
            );
        }
    }
}

/// One reconcile pass (`sweep` with `[lifetime]`) over `n` environments, measured: wall time
/// against the rate-limit bound, requests, and the pass's heap. Then the same pass again in the
/// same process, where the open PRs' pages are unchanged: GitHub answers each with a 304 (no
/// quota).
///
/// The pass runs alone on this thread (a current-thread runtime), and its heap is counted on
/// this thread only (`allocation_counter`): the fakes answer on their servers' own threads, so
/// what they allocate (wiremock keeps a copy of every request it matched) is not the product's.
fn reconcile_scenario(scale: f64, concurrency: usize, n: u32, page_size: usize) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let b = rt.block_on(Bench::start_with(
        scale,
        concurrency,
        reconcile_config(n),
        page_size,
    ));
    // Set-up: no latency, no limits, and logs without bodies.
    b.fly.set_latency(|_| Duration::ZERO);
    b.vercel.set_latency(|_| Duration::ZERO);
    b.github.set_latency(|_| Duration::ZERO);
    b.fly.keep_bodies(false);
    b.vercel.keep_bodies(false);
    b.github.keep_bodies(false);
    seed_reconcile(&b, n);
    let fly_violations_before = b.fly.rate_limit_violations();
    let github_violations_before = b.github.rate_limit_violations();
    let (l1, l2, l3) = (b.log.clone(), b.log.clone(), b.log.clone());
    b.fly.set_latency(move |r| l1.record("fly", r, scale));
    b.vercel.set_latency(move |r| l2.record("vercel", r, scale));
    b.github.set_latency(move |r| l3.record("github", r, scale));
    b.log.take();
    let quota_before = b.github.quota_used();

    let mut report = None;
    let start = Instant::now();
    let heap = allocation_counter::measure(|| {
        report = Some(rt.block_on(b.preview.sweep(false)).expect("the pass lists"));
    });
    let wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    let report = report.expect("measured");
    let calls = b.log.take();
    // Before its first write the pass lists everything (providers, open PRs) and looks up the
    // rest: that part is not set by any rate limit, and it is most of what wall adds to the bound.
    let first_write_ms = b
        .github
        .exchanges()
        .iter()
        .find(|e| e.method != "GET" && e.at >= start)
        .map_or(0.0, |e| e.at.duration_since(start).as_secs_f64() * 1000.0);
    assert!(
        report.failures.is_empty(),
        "reconcile failures: {:?}",
        report.failures
    );
    // The pass did what the mix asks, no more.
    let k = kinds(n);
    let count = |x: Kind| k.get(&x).copied().unwrap_or(0);
    let mut decided: BTreeMap<String, usize> = BTreeMap::new();
    for d in &report.lifetime {
        let action = serde_json::to_value(d.action).expect("serialisable");
        let key = match action {
            Value::String(s) => s,
            other => other
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default(),
        };
        *decided.entry(key).or_default() += 1;
    }
    assert_eq!(
        report.removed.len(),
        count(Kind::Closed),
        "closed PRs removed"
    );
    assert_eq!(
        decided.get("expire").copied().unwrap_or(0),
        count(Kind::Expired)
    );
    assert_eq!(
        decided.get("sleep").copied().unwrap_or(0),
        count(Kind::Idle)
    );
    assert_eq!(
        decided.get("evict").copied().unwrap_or(0),
        count(Kind::OverCap)
    );
    assert_eq!(
        report.acted.len(),
        count(Kind::Expired) + count(Kind::Idle) + count(Kind::OverCap)
    );

    let bound_ms = rate_limit_bound_ms(&calls) * scale;
    let (requests, mutating) = counts(&calls);
    let github_pages = calls
        .iter()
        .filter(|c| c.provider == "github" && c.method == "GET" && c.path.ends_with("/pulls"))
        .count();
    let violations = json!({
        "fly": b.fly.rate_limit_violations() - fly_violations_before,
        "github": b.github.rate_limit_violations() - github_violations_before,
    });
    let quota = b.github.quota_used() - quota_before;

    // The same pass again, in the same process: nothing left to do, and the listing's pages
    // unchanged.
    let exchanges_before = b.github.exchanges().len();
    let quota_before = b.github.quota_used();
    let start = Instant::now();
    let again = rt.block_on(b.preview.sweep(false)).expect("the pass lists");
    let again_wall_ms = start.elapsed().as_secs_f64() * 1000.0;
    assert!(again.failures.is_empty(), "{:?}", again.failures);
    assert!(again.removed.is_empty() && again.acted.is_empty());
    let again_calls = b.log.take();
    let (again_requests, again_mutating) = counts(&again_calls);
    let listing: Vec<u16> = b.github.exchanges()[exchanges_before..]
        .iter()
        .filter(|e| e.method == "GET" && e.path.ends_with("/pulls"))
        .map(|e| e.status)
        .collect();
    json!({
        "scenario": "reconcile",
        "scale": scale,
        "environments": n,
        "mix": {
            "active": count(Kind::Active), "closed": count(Kind::Closed),
            "expired": count(Kind::Expired), "idle": count(Kind::Idle),
            "over_cap": count(Kind::OverCap), "kept_by_label": count(Kind::Kept),
        },
        "decided": decided,
        "removed": report.removed.len(),
        "acted": report.acted.len(),
        "concurrency": concurrency,
        "github_page_size": page_size,
        "github_list_pages": github_pages,
        "wall_ms": round(wall_ms),
        "rate_limit_bound_ms": round(bound_ms),
        "wall_over_bound": round(wall_ms / bound_ms),
        "first_github_write_ms": round(first_write_ms),
        "requests": requests,
        "mutating_requests": mutating,
        "github_quota_used": quota,
        "rate_limit_violations": violations,
        "heap_peak_bytes": heap.bytes_max,
        "heap_peak_bytes_per_environment": heap.bytes_max / u64::from(n),
        "heap_allocated_bytes": heap.bytes_total,
        "heap_left_bytes": heap.bytes_current,
        "second_pass": {
            "wall_ms": round(again_wall_ms),
            "requests": again_requests,
            "mutating_requests": again_mutating,
            "github_quota_used": b.github.quota_used() - quota_before,
            "github_list_pages": listing.len(),
            "github_list_pages_304": listing.iter().filter(|s| **s == 304).count(),
        },
    })
}

fn main() {
    let scale: f64 = std::env::var("PREVIEW_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(0.025);
    let concurrency: usize = std::env::var("PREVIEW_BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let environments: u32 = std::env::var("PREVIEW_BENCH_ENVIRONMENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let reconcile: u32 = std::env::var("PREVIEW_BENCH_RECONCILE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    // Two workers: the machine is shared, and the work is waiting, not computing.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // `PREVIEW_BENCH_ONLY=deploy,sweep,reconcile` (any of them) runs those alone.
    let only = std::env::var("PREVIEW_BENCH_ONLY").unwrap_or_default();
    let run = |group: &str| only.is_empty() || only.split(',').any(|g| g.trim() == group);
    rt.block_on(async {
        if run("deploy") {
            let b = Bench::start(scale, concurrency).await;
            b.github
                .set_pull_request(pull(PR, PrState::Open, &"a".repeat(40)));
            emit(&deploy_scenario(&b, "first_deploy").await);
            emit(&deploy_scenario(&b, "redeploy_unchanged").await);
            b.github
                .set_pull_request(pull(PR, PrState::Open, &"b".repeat(40)));
            emit(&deploy_scenario(&b, "redeploy_new_commit").await);
            emit(&teardown_scenario(&b).await);
        }
        if run("sweep") {
            emit(&sweep_scenario(scale, concurrency, environments).await);
        }
    });
    if run("reconcile") {
        // The reconcile pass at `PREVIEW_BENCH_RECONCILE` environments, then at a tenth of them
        // (bytes per environment should match), and that tenth again with pages a tenth the size
        // (ten times the pages: the peak should not move).
        let small = (reconcile / 10).max(200);
        emit(&reconcile_scenario(scale, concurrency, reconcile, 100));
        emit(&reconcile_scenario(scale, concurrency, small, 100));
        emit(&reconcile_scenario(scale, concurrency, small, 10));
    }
}
