//! The reconcile-style pipeline: plan, deploy, teardown, sweep, status, and the lifetime commands
//! (keep, extend, wake).
//!
//! Each operation observes, decides, then acts on the difference, so it is safe to re-run after a
//! crash, a cancel or a concurrent run. Decisions are pure functions ([`plan`], [`decide_sweep`],
//! [`trigger::decide`]) so dry runs print them and tests check them without I/O.
//!
//! One module per operation: `plan` describes what deploy would send, `deploy`
//! converges an environment phase by phase, `teardown` removes one, `sweep` removes those whose PR
//! is gone, `status` lists them, `trigger` decides what one GitHub event asks for, `commands` keeps,
//! extends and wakes one. This module holds [`Preview`], its wiring and the unit-level
//! retry every provider call goes through.

use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;

use crate::config::Config;
use crate::effects::{HookRunner, HttpClient};
use crate::error::{Error, Idempotency, Result};
use crate::event::{Event, EventSink, Phase};
use crate::host::{AppHost, DatabaseHost, PullRequest, ResourceChange, SourceHost};
use crate::name::PrNumber;
use crate::retry::{RetryConfig, retry};
use crate::secret::SecretSource;

mod cap;
mod commands;
mod deploy;
mod lifetime;
mod plan;
mod reconcile;
mod seed;
mod status;
mod sweep;
mod teardown;
pub mod trigger;

pub use commands::{LifetimeOutcome, LifetimeReport};
pub use deploy::{DeployReport, DeployStatus};
pub use lifetime::{
    HooksPlan, activity_due, decide_hooks, hooks_key, hooks_mark, lifetime_note, wake_marks,
};
pub use plan::{Plan, PlannedResource, plan};
pub use reconcile::{LifetimeAction, LifetimeDecision, Observed, decide_lifetime};
pub use status::EnvironmentStatus;
pub use sweep::{Candidate, PrLookup, SweepAction, SweepDecision, SweepReport, decide_sweep};
pub use teardown::TeardownReport;

/// Receives every sensitive value (and derived form) of an environment as soon as it is known, before
/// any output that could contain it (the CLI masks them in GitHub Actions).
pub type SecretsObserver = Arc<dyn Fn(&[String]) + Send + Sync>;

pub use crate::env::EnvSource;

/// The pipeline, wired to its hosts.
///
/// # Examples
/// Deploy a PR's environment on in-memory hosts, deploy it again (nothing changes), tear it down:
/// ```
/// use std::sync::Arc;
///
/// use preview_core::secrecy::SecretString;
/// use preview_core::testing::{InMemoryApps, InMemoryDatabases, InMemoryHttp, InMemorySource};
/// use preview_core::{DerivedSecrets, Hosts, Preview};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let config = preview_core::Config::parse(r#"
/// # version = 1
/// #
/// # [naming]
/// # prefix = "pr"
/// # suffix = "shop"
/// #
/// # [secrets.db_password]
/// # kind = "password"
/// #
/// # [database]
/// # provider = "fly"
/// # org = "acme"
/// # region = "iad"
/// # public_host = "${env.name}.fly.dev"
/// # size = { cpu_kind = "shared", cpus = 1, memory_mb = 512 }
/// #
/// # [[database.containers]]
/// # name = "postgres"
/// # image = "postgres:17"
/// #
/// # [database.containers.env]
/// # POSTGRES_PASSWORD = "${secrets.db_password}"
/// #
/// # [database.services.db]
/// # internal_port = 5432
/// # port = 5432
/// # protocol = "postgres"
/// # tls = "pg_tls"
/// # user = "app"
/// # password = "${secrets.db_password}"
/// # database = "app"
/// #
/// # [apps.web]
/// # provider = "vercel"
/// # project = "prj_web"
/// # domain = "pr-${pr.number}.preview.example.com"
/// #
/// # [apps.web.env]
/// # DATABASE_URL = "${services.db.url}"
/// # "#, "preview.toml", std::path::Path::new("."))?;
/// let source = InMemorySource::new("acme/shop");
/// let pr = source.open_pr(42, "feature/login", "0123456789abcdef0123456789abcdef01234567");
/// let (databases, apps) = (InMemoryDatabases::new(), InMemoryApps::new());
/// let preview = Preview::new(
///     config,
///     Hosts {
///         database: Arc::new(databases.clone()),
///         apps: Arc::new(apps.clone()),
///         source: Arc::new(source.clone()),
///     },
/// )
/// .http(Arc::new(InMemoryHttp::new()))
/// .secrets(Arc::new(DerivedSecrets::new(SecretString::from(
///     "a master secret of at least 32 characters, from a CI secret",
/// ))?));
///
/// let deployed = preview.deploy(pr).await?;
/// assert_eq!(databases.names(), ["pr-42-shop"]);
/// assert_eq!(apps.domains(), ["pr-42.preview.example.com"]);
/// assert!(deployed.mutated() > 0);
///
/// let again = preview.deploy(pr).await?;
/// assert_eq!(again.mutated(), 0, "a re-run with nothing changed changes nothing");
///
/// preview.teardown(pr).await?;
/// assert!(databases.names().is_empty() && apps.vars().is_empty());
/// # Ok::<(), preview_core::Error>(())
/// # }).unwrap();
/// ```
pub struct Preview {
    config: Config,
    database: Arc<dyn DatabaseHost>,
    apps: Arc<dyn AppHost>,
    source: Arc<dyn SourceHost>,
    hooks: Arc<dyn HookRunner>,
    http: Arc<dyn HttpClient>,
    secrets: Arc<dyn SecretSource>,
    events: Arc<dyn EventSink>,
    retry: RetryConfig,
    env: EnvSource,
    on_secrets: Option<SecretsObserver>,
    run_url: Option<String>,
    concurrency: usize,
    now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    pinned: Option<String>,
}

impl std::fmt::Debug for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preview")
            .field("config", &self.config.origin)
            .field("database", &self.database)
            .field("apps", &self.apps)
            .field("source", &self.source)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Wiring for [`Preview::new`].
#[derive(Debug, Clone)]
pub struct Hosts {
    /// The database host.
    pub database: Arc<dyn DatabaseHost>,
    /// The app host.
    pub apps: Arc<dyn AppHost>,
    /// The source host.
    pub source: Arc<dyn SourceHost>,
}

impl Preview {
    /// A pipeline over `hosts`, with process hooks, no HTTP client (seeding fails until one is set
    /// with [`Preview::http`]), fresh random secrets (set a stable source with [`Preview::secrets`]),
    /// no events, and default retries.
    pub fn new(config: Config, hosts: Hosts) -> Self {
        Self {
            config,
            database: hosts.database,
            apps: hosts.apps,
            source: hosts.source,
            hooks: Arc::new(crate::effects::ProcessHookRunner),
            http: Arc::new(NoHttp),
            secrets: Arc::new(crate::secret::RandomSecrets),
            events: Arc::new(crate::event::NoEvents),
            retry: RetryConfig::default(),
            env: Arc::new(crate::env::process_env),
            on_secrets: None,
            run_url: None,
            concurrency: 8,
            now: Arc::new(Timestamp::now),
            pinned: None,
        }
    }

    /// Pins deploy to `sha`, the head commit verified when the deploy was decided (and checked
    /// out): a pull request whose head has moved since is skipped before anything is touched
    /// (the push's own run deploys the new head).
    pub fn pin_commit(mut self, sha: Option<String>) -> Self {
        self.pinned = sha;
        self
    }

    /// Sets the hook runner.
    pub fn hooks(mut self, h: Arc<dyn HookRunner>) -> Self {
        self.hooks = h;
        self
    }
    /// Sets the HTTP client for readiness and seeding.
    pub fn http(mut self, h: Arc<dyn HttpClient>) -> Self {
        self.http = h;
        self
    }
    /// Sets where generated secrets come from.
    pub fn secrets(mut self, s: Arc<dyn SecretSource>) -> Self {
        self.secrets = s;
        self
    }
    /// Sets the event sink.
    pub fn events(mut self, e: Arc<dyn EventSink>) -> Self {
        self.events = e;
        self
    }
    /// Sets the retry policy of every provider call.
    pub fn retry_config(mut self, r: RetryConfig) -> Self {
        self.retry = r;
        self
    }
    /// Sets how environment variables are read (imported secrets, project ids).
    pub fn env(mut self, f: EnvSource) -> Self {
        self.env = f;
        self
    }
    /// Sets the observer that learns sensitive values before anything else happens.
    pub fn on_secrets(mut self, f: SecretsObserver) -> Self {
        self.on_secrets = Some(f);
        self
    }
    /// Sets the CI run link shown in reports.
    pub fn run_url(mut self, url: Option<String>) -> Self {
        self.run_url = url;
        self
    }
    /// Sets how many environments sweep works on at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Sets the clock (sweep ages).
    pub fn clock(mut self, now: Arc<dyn Fn() -> Timestamp + Send + Sync>) -> Self {
        self.now = now;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn emit(&self, e: Event) {
        self.events.emit(e);
    }

    fn changes(&self, changes: &[ResourceChange]) {
        for c in changes {
            self.emit(Event::Resource(c.clone()));
        }
    }

    async fn phase<T>(&self, phase: Phase, fut: impl Future<Output = Result<T>>) -> Result<T> {
        self.emit(Event::PhaseStarted { phase });
        let start = tokio::time::Instant::now();
        let r = crate::event::in_phase(phase, fut).await;
        let timing = crate::event::PhaseTiming {
            phase,
            elapsed_ms: start.elapsed().as_millis() as u64,
            ok: r.is_ok(),
        };
        crate::event::record(timing);
        self.emit(Event::PhaseFinished {
            phase,
            elapsed_ms: timing.elapsed_ms,
            ok: timing.ok,
        });
        r.map_err(|e| match e {
            e @ Error::InPhase { .. } => e,
            e => Error::InPhase {
                phase,
                source: Box::new(e),
            },
        })
    }

    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        retry(&self.retry, what, Idempotency::Idempotent, op).await
    }

    async fn pull_request(&self, pr: PrNumber) -> Result<Option<PullRequest>> {
        self.retry("get pull request", || self.source.get_pull_request(pr))
            .await
    }

    /// The PR, which must exist (a configuration error names it otherwise).
    async fn existing_pull(&self, pr: PrNumber) -> Result<PullRequest> {
        self.pull_request(pr).await?.ok_or_else(|| {
            Error::config(format!(
                "pull request #{pr} does not exist in this repository"
            ))
        })
    }
}

#[derive(Debug)]
struct NoHttp;

#[async_trait::async_trait]
impl HttpClient for NoHttp {
    async fn send(&self, call: &crate::render::HttpCall) -> Result<u16> {
        Err(Error::config(format!(
            "no HTTP client is configured, so {:?} cannot be sent (library users: Preview::http)",
            call.name
        )))
    }
}
