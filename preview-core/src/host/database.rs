//! The database side: [`DatabaseHost`] and the types it speaks (the stack's spec, the database as
//! it exists, tunnels to its services).

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{AutoStop, Deleted, MachineSize, Outcome, Owned, ResourceChange, RestartPolicy};
use crate::error::Result;
use crate::name::PreviewName;
use crate::template::Value;

/// Hosts the database stack of each environment (e.g. a Fly.io app with one multi-container Machine).
///
/// # Contract
/// - `get_database` of a missing environment is `Ok(None)`, never an error.
/// - `apply_database` creates or converges to `spec` and returns once the stack is healthy. A second
///   call with the same spec makes no mutating call and reports every resource `Unchanged`. It never
///   creates a second instance of anything. Resources it finds under the environment's name that it
///   does not own are an [`Error::AlreadyExists`](crate::Error::AlreadyExists), never touched.
/// - `delete_database` of a missing environment is `Ok(Deleted::AlreadyGone)`. Something under the
///   environment's name that the host can see but does not own is never deleted and never
///   reported gone: it is an [`Error::AlreadyExists`](crate::Error::AlreadyExists) naming it.
/// - `list_databases` returns only environments this host owns (by name and ownership marker).
/// - `open_tunnels` gives local forwards to each service for hooks run on this machine, reachable
///   when it returns; dropping the [`Tunnels`] closes them.
///
/// # Examples
/// Render a configuration's database spec, then converge it on a host (here the in-memory one):
/// ```
/// use preview_core::render::{self, Inputs};
/// use preview_core::secrecy::SecretString;
/// use preview_core::testing::InMemoryDatabases;
/// use preview_core::{DatabaseHost, Deleted, Outcome, PrNumber, SecretValues};
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
/// let name = config.name(PrNumber::new(42)?);
/// let mut secrets = SecretValues::new();
/// secrets.insert("db_password", SecretString::from("an example password"));
/// let scope = render::scope(&config, &name, &Inputs::default(), Some(&secrets))?;
/// let spec = render::database_spec(&config, &scope)?;
///
/// let host: &dyn DatabaseHost = &InMemoryDatabases::new();
/// let applied = host.apply_database(&name, &spec).await?;
/// assert!(applied.changes.iter().any(|c| c.outcome == Outcome::Created));
/// // A converge: the same spec again changes nothing.
/// let again = host.apply_database(&name, &spec).await?;
/// assert!(again.changes.iter().all(|c| c.outcome == Outcome::Unchanged));
/// assert_eq!(host.delete_database(&name).await?, Deleted::Removed);
/// assert_eq!(host.delete_database(&name).await?, Deleted::AlreadyGone);
/// # Ok::<(), preview_core::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait DatabaseHost: Debug + Send + Sync + 'static {
    /// Provider kind, e.g. `fly`.
    fn kind(&self) -> &'static str;

    /// The database of an environment, if it exists.
    ///
    /// # Errors
    /// Provider errors; a missing database is `Ok(None)`.
    async fn get_database(&self, name: &PreviewName) -> Result<Option<Database>>;

    /// Creates or converges the stack, and waits until it is healthy.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) when the name is taken by something we
    /// do not own; [`Error::Timeout`](crate::Error::Timeout) or
    /// [`Error::Failed`](crate::Error::Failed) when it does not become healthy; provider errors.
    ///
    /// # Idempotency
    /// Idempotent as a whole: safe to retry and to re-run after a crash.
    async fn apply_database(
        &self,
        name: &PreviewName,
        spec: &DatabaseSpec,
    ) -> Result<AppliedDatabase>;

    /// Deletes the environment's stack and waits until it is gone.
    ///
    /// # Errors
    /// Provider errors; already gone is `Ok(Deleted::AlreadyGone)`.
    async fn delete_database(&self, name: &PreviewName) -> Result<Deleted>;

    /// The environments this host owns.
    ///
    /// # Errors
    /// Provider errors.
    async fn list_databases(&self) -> Result<Vec<Owned>>;

    /// Opens a local tunnel to every service of the stack and waits until each answers through it.
    ///
    /// # Errors
    /// When a tunnel cannot be opened or the service does not answer through it in time.
    async fn open_tunnels(&self, name: &PreviewName, spec: &DatabaseSpec) -> Result<Tunnels>;

    /// Checks, without sending anything, what `apply_database` (and, with `tunnels`,
    /// `open_tunnels`) would refuse: every derived name and value against this provider's rules,
    /// and what it needs on this machine (the program that opens tunnels). The pipeline calls it
    /// before its first mutating call of a deploy, so a refusal leaves nothing behind. The
    /// default accepts everything.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) saying what is wrong and what would be valid.
    fn preflight_database(
        &self,
        name: &PreviewName,
        spec: &DatabaseSpec,
        tunnels: bool,
    ) -> Result<()> {
        let _ = (name, spec, tunnels);
        Ok(())
    }

    /// Records `mark` beside the environment's database, where [`get_database`] and
    /// [`list_lifetimes`] give it back. The default records nothing: every deploy then runs its
    /// hooks, and expiry and sleep have no activity to count from (they never act).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) when the database does not exist; provider errors.
    ///
    /// # Idempotency
    /// Idempotent (a key set to a value).
    ///
    /// [`get_database`]: DatabaseHost::get_database
    /// [`list_lifetimes`]: DatabaseHost::list_lifetimes
    async fn mark_database(&self, name: &PreviewName, mark: &Mark) -> Result<()> {
        let _ = (name, mark);
        Ok(())
    }

    /// Puts the database to sleep: suspends it (`suspend`, memory kept) or stops it (in-memory
    /// data lost). `Unchanged` when it already sleeps. Waking is [`apply_database`], which starts
    /// a sleeping database. The default cannot sleep.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) from the default; provider errors.
    ///
    /// [`apply_database`]: DatabaseHost::apply_database
    async fn sleep_database(&self, name: &PreviewName, suspend: bool) -> Result<Outcome> {
        let _ = (name, suspend);
        Err(crate::Error::config(format!(
            "the {} database host cannot put a database to sleep (remove lifetime.sleep_after)",
            self.kind()
        )))
    }

    /// Every database this host owns with its state, boot and marks, in as few reads as the
    /// provider allows (Fly: the organisation's Machines, in pages). The default reads
    /// [`list_databases`](DatabaseHost::list_databases) and then each one.
    ///
    /// # Errors
    /// Provider errors.
    async fn list_lifetimes(&self, naming: &crate::name::Naming) -> Result<Vec<Database>> {
        let mut out = Vec::new();
        for o in self.list_databases().await? {
            let Some(name) = naming.parse(&o.name) else {
                continue;
            };
            if let Some(d) = self.get_database(&name).await? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The boot of a database [`list_lifetimes`](DatabaseHost::list_lifetimes) found without
    /// one (see [`Database::boot`]), in as few reads as the provider allows: the reconcile pass
    /// asks it of each running database whose hooks left a mark, to tell a restart behind our
    /// back. `None` when it cannot tell. The default reads the whole database.
    ///
    /// # Errors
    /// Provider errors.
    async fn database_boot(&self, name: &PreviewName) -> Result<Option<String>> {
        Ok(self.get_database(name).await?.and_then(|d| d.boot))
    }
}

/// How a container health check probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Run a command inside the container (argv).
    Exec {
        /// The argv.
        command: Vec<String>,
    },
    /// An HTTP GET.
    Http {
        /// Port inside the container.
        port: u16,
        /// Path.
        path: String,
    },
    /// A TCP connect.
    Tcp {
        /// Port inside the container.
        port: u16,
    },
}

/// A container health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// Check name, e.g. `pg-ready`.
    pub name: String,
    /// How it probes.
    pub kind: CheckKind,
    /// Time between probes.
    #[serde(with = "super::secs")]
    pub interval: Duration,
    /// Time one probe may take.
    #[serde(with = "super::secs")]
    pub timeout: Duration,
    /// Time after start before failures count.
    #[serde(with = "super::secs")]
    pub grace_period: Duration,
    /// Successes in a row to become healthy.
    pub success_threshold: u32,
    /// Failures in a row to become unhealthy.
    pub failure_threshold: u32,
}

/// When a container may start relative to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DependsOn {
    /// Once the other has started.
    Started,
    /// Once the other is healthy.
    Healthy,
    /// Once the other has exited with 0.
    ExitedSuccessfully,
}

/// One container of the database stack.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerSpec {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command (replaces the image's CMD when non-empty).
    pub cmd: Vec<String>,
    /// Entrypoint (replaces the image's ENTRYPOINT when non-empty).
    pub entrypoint: Vec<String>,
    /// Environment; secret values must reach the container without being stored in readable config.
    pub env: BTreeMap<String, Value>,
    /// Health checks.
    pub healthchecks: Vec<HealthCheck>,
    /// Start ordering.
    pub depends_on: BTreeMap<String, DependsOn>,
}

/// TLS handling of a public service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Raw TCP pass-through (e.g. gRPC, which needs its own ALPN).
    None,
    /// The edge terminates TLS.
    Tls,
    /// The edge terminates Postgres STARTTLS (clients use `sslmode=require`).
    PgTls,
}

/// What speaks on a service port; decides URLs and tunnel readiness probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// PostgreSQL wire protocol.
    Postgres,
    /// gRPC (readiness: the standard health check).
    Grpc,
    /// HTTP.
    Http,
    /// Anything else over TCP.
    Tcp,
}

/// Credentials that go into a service's connection URL.
#[derive(Debug, Clone, Serialize)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password (a secret).
    pub password: Value,
    /// Database name, for Postgres.
    pub database: Option<String>,
}

/// A public TCP service of the stack.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSpec {
    /// Service name, e.g. `manage`.
    pub name: String,
    /// Port inside the Machine.
    pub internal_port: u16,
    /// Public port.
    pub port: u16,
    /// TLS handling at the edge.
    pub tls: TlsMode,
    /// What speaks on it.
    pub protocol: Protocol,
    /// Credentials for its URL.
    pub credentials: Option<Credentials>,
    /// HTTP path for readiness (HTTP services).
    pub health_path: Option<String>,
}

/// The database stack of one environment.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseSpec {
    /// Region, e.g. `iad`.
    pub region: String,
    /// Machine size.
    pub size: MachineSize,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Stop or suspend when idle, start on the next connection (off: left out of the
    /// fingerprint, so specs from before it existed keep theirs).
    #[serde(skip_serializing_if = "AutoStop::is_off")]
    pub autostop: AutoStop,
    /// Containers.
    pub containers: Vec<ContainerSpec>,
    /// Public services.
    pub services: Vec<ServiceSpec>,
    /// Public host name apps use, e.g. `pr-42-agents.fly.dev`.
    pub public_host: String,
    /// How long applying may wait for the stack to become healthy.
    #[serde(with = "super::secs")]
    pub ready_timeout: Duration,
}

impl DatabaseSpec {
    /// Where apps reach each service. Known before the database exists (it depends only on the spec),
    /// so app configuration can proceed while the database boots.
    pub fn endpoints(&self) -> Vec<ServiceEndpoint> {
        self.services
            .iter()
            .map(|s| ServiceEndpoint {
                service: s.name.clone(),
                host: self.public_host.clone(),
                port: s.port,
                protocol: s.protocol,
                tls: s.tls,
            })
            .collect()
    }

    /// A digest of the whole spec, secret values included (hashed, never revealed). Providers may
    /// store it (e.g. in Machine metadata) to tell "unchanged" from "changed" without reading
    /// secrets back.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        let mut feed = |s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        // serde_json of the spec redacts secrets, so hash the exposed values separately.
        feed(&serde_json::to_string(self).unwrap_or_default());
        for c in &self.containers {
            for (k, v) in &c.env {
                feed(k);
                feed(v.expose());
            }
        }
        for s in &self.services {
            if let Some(c) = &s.credentials {
                feed(c.password.expose());
            }
        }
        let digest = h.finalize();
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }
}

/// Where one service is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceEndpoint {
    /// Service name.
    pub service: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// What speaks on it.
    pub protocol: Protocol,
    /// TLS handling on the way.
    pub tls: TlsMode,
}

const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl ServiceEndpoint {
    /// `host:port`.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// A ready-made connection URL. Postgres: `postgresql://USER:PASS@HOST:PORT/DB?sslmode=…`
    /// (`require` through a `pg_tls`/`tls` edge, `disable` otherwise, e.g. through a tunnel), with
    /// user and password percent-encoded. HTTP: `http(s)://HOST:PORT`. Others: `HOST:PORT`.
    /// Secret when credentials went into it.
    pub fn url(&self, credentials: Option<&Credentials>) -> Value {
        match self.protocol {
            Protocol::Postgres => {
                let mut url = String::from("postgresql://");
                let mut secret = false;
                if let Some(c) = credentials {
                    url.push_str(
                        &percent_encoding::utf8_percent_encode(&c.user, USERINFO).to_string(),
                    );
                    url.push(':');
                    url.push_str(
                        &percent_encoding::utf8_percent_encode(c.password.expose(), USERINFO)
                            .to_string(),
                    );
                    url.push('@');
                    secret = c.password.is_secret();
                }
                url.push_str(&self.address());
                if let Some(db) = credentials.and_then(|c| c.database.as_deref()) {
                    url.push('/');
                    url.push_str(&percent_encoding::utf8_percent_encode(db, USERINFO).to_string());
                }
                url.push_str(match self.tls {
                    TlsMode::None => "?sslmode=disable",
                    TlsMode::Tls | TlsMode::PgTls => "?sslmode=require",
                });
                if secret {
                    Value::Secret(url.into())
                } else {
                    Value::Plain(url)
                }
            }
            Protocol::Http => Value::Plain(format!(
                "{}://{}",
                if self.tls == TlsMode::None {
                    "http"
                } else {
                    "https"
                },
                self.address()
            )),
            Protocol::Grpc | Protocol::Tcp => Value::Plain(self.address()),
        }
    }
}

/// A database stack as it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Database {
    /// Its environment.
    pub name: PreviewName,
    /// Public host.
    pub host: String,
    /// Provider's state word (`started`, `stopped`, `failed`, …).
    pub state: String,
    /// The fingerprint of the spec it was last applied from, when known.
    pub fingerprint: Option<String>,
    /// When it was created, when known.
    pub created_at: Option<Timestamp>,
    /// What identifies the current boot of its Machine: it changes whenever in-memory data is
    /// lost (a restart, a crash, a stop and start, a replacement), and not on a suspend and
    /// resume. `None`: the host cannot tell.
    pub boot: Option<String>,
    /// What the pipeline recorded on it ([`DatabaseHost::mark_database`]).
    pub marks: Marks,
}

/// What the pipeline records beside a database (Fly: the Machine's metadata), so the providers
/// hold every piece of state and nothing is kept locally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Marks {
    /// The last activity (push, deploy or command): expiry and sleep count from it.
    pub active_at: Option<Timestamp>,
    /// What the hooks last succeeded for, and on which boot (see the pipeline's `hooks_mark`).
    pub hooks: Option<String>,
    /// Since when it sleeps (set when put to sleep, cleared when woken).
    pub asleep_since: Option<Timestamp>,
    /// Seconds it slept before its current sleep (for the cost estimate).
    pub slept_secs: u64,
}

/// One mark to record ([`DatabaseHost::mark_database`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// Activity at this time.
    ActiveAt(Timestamp),
    /// The hooks succeeded for this key.
    Hooks(String),
    /// Put to sleep at this time (`None`: awake again).
    AsleepSince(Option<Timestamp>),
    /// Total seconds slept before the current sleep.
    SleptSecs(u64),
}

/// The outcome of applying a database stack.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedDatabase {
    /// The database, healthy.
    pub database: Database,
    /// Every resource touched or left alone.
    pub changes: Vec<ResourceChange>,
}

/// A local forward to one service, open while the owning [`Tunnels`] lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tunnel {
    /// Service name.
    pub service: String,
    /// Local host (`127.0.0.1`).
    pub host: String,
    /// Local port.
    pub port: u16,
}

/// Open tunnels; dropping this closes them (stops the processes behind them).
pub struct Tunnels {
    tunnels: Vec<Tunnel>,
    _guard: Box<dyn Send + Sync>,
}

impl fmt::Debug for Tunnels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnels")
            .field("tunnels", &self.tunnels)
            .finish_non_exhaustive()
    }
}

impl Tunnels {
    /// Tunnels kept open by `guard` (whatever it owns is dropped when the tunnels are).
    pub fn new(tunnels: Vec<Tunnel>, guard: impl Send + Sync + 'static) -> Self {
        Self {
            tunnels,
            _guard: Box::new(guard),
        }
    }

    /// The tunnels.
    pub fn list(&self) -> &[Tunnel] {
        &self.tunnels
    }

    /// The tunnel of a service.
    pub fn get(&self, service: &str) -> Option<&Tunnel> {
        self.tunnels.iter().find(|t| t.service == service)
    }
}

macro_rules! forward_database_host {
    ($($ptr:ty),*) => {$(
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: DatabaseHost + ?Sized> DatabaseHost for $ptr {
            fn kind(&self) -> &'static str { (**self).kind() }
            async fn get_database(&self, name: &PreviewName) -> Result<Option<Database>> {
                (**self).get_database(name).await
            }
            async fn apply_database(&self, name: &PreviewName, spec: &DatabaseSpec) -> Result<AppliedDatabase> {
                (**self).apply_database(name, spec).await
            }
            async fn delete_database(&self, name: &PreviewName) -> Result<Deleted> {
                (**self).delete_database(name).await
            }
            async fn list_databases(&self) -> Result<Vec<Owned>> {
                (**self).list_databases().await
            }
            async fn open_tunnels(&self, name: &PreviewName, spec: &DatabaseSpec) -> Result<Tunnels> {
                (**self).open_tunnels(name, spec).await
            }
            fn preflight_database(&self, name: &PreviewName, spec: &DatabaseSpec, tunnels: bool) -> Result<()> {
                (**self).preflight_database(name, spec, tunnels)
            }
            async fn mark_database(&self, name: &PreviewName, mark: &Mark) -> Result<()> {
                (**self).mark_database(name, mark).await
            }
            async fn sleep_database(&self, name: &PreviewName, suspend: bool) -> Result<Outcome> {
                (**self).sleep_database(name, suspend).await
            }
            async fn list_lifetimes(&self, naming: &crate::name::Naming) -> Result<Vec<Database>> {
                (**self).list_lifetimes(naming).await
            }
            async fn database_boot(&self, name: &PreviewName) -> Result<Option<String>> {
                (**self).database_boot(name).await
            }
        }
    )*};
}

forward_database_host!(Arc<T>, Box<T>);

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn pg(tls: TlsMode) -> ServiceEndpoint {
        ServiceEndpoint {
            service: "run".into(),
            host: "pr-1-agents.fly.dev".into(),
            port: 5433,
            protocol: Protocol::Postgres,
            tls,
        }
    }

    #[test]
    fn postgres_urls_encode_credentials_and_pick_sslmode() {
        let creds = Credentials {
            user: "app user".into(),
            password: Value::Secret(SecretString::from("p@ss/w:rd")),
            database: Some("inkeep_agents".into()),
        };
        let v = pg(TlsMode::PgTls).url(Some(&creds));
        assert!(v.is_secret());
        assert_eq!(
            v.expose(),
            "postgresql://app%20user:p%40ss%2Fw%3Ard@pr-1-agents.fly.dev:5433/inkeep_agents?sslmode=require"
        );
        assert!(
            pg(TlsMode::None)
                .url(Some(&creds))
                .expose()
                .ends_with("sslmode=disable")
        );
        let plain = pg(TlsMode::None).url(None);
        assert!(!plain.is_secret());
        assert_eq!(
            plain.expose(),
            "postgresql://pr-1-agents.fly.dev:5433?sslmode=disable"
        );
    }

    #[test]
    fn other_protocols_give_addresses() {
        let mut e = pg(TlsMode::None);
        e.protocol = Protocol::Grpc;
        assert_eq!(e.url(None).expose(), "pr-1-agents.fly.dev:5433");
        e.protocol = Protocol::Http;
        e.tls = TlsMode::Tls;
        assert_eq!(e.url(None).expose(), "https://pr-1-agents.fly.dev:5433");
    }
}
