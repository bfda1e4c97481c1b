//! Domain types that cross the provider traits.
//!
//! Provider JSON stays private to each provider crate; these are the only shapes the pipeline and
//! providers exchange. Anything holding a secret redacts it in `Debug` and `Serialize`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::name::{PrNumber, PreviewName};
use crate::template::Value;

// ---------------------------------------------------------------------------------------------
// Outcomes

/// What an operation did to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did not exist and was created.
    Created,
    /// It existed and was changed to match.
    Updated,
    /// It already matched; no mutating call was made.
    Unchanged,
    /// It existed and was removed.
    Removed,
    /// It was already gone (teardown success).
    AlreadyGone,
    /// Nothing was attempted (e.g. dry run, or a precondition not met).
    Skipped,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Removed => "removed",
            Outcome::AlreadyGone => "already gone",
            Outcome::Skipped => "skipped",
        })
    }
}

/// Result of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Deleted {
    /// It existed and is gone now.
    Removed,
    /// It did not exist.
    AlreadyGone,
}

impl From<Deleted> for Outcome {
    fn from(d: Deleted) -> Self {
        match d {
            Deleted::Removed => Outcome::Removed,
            Deleted::AlreadyGone => Outcome::AlreadyGone,
        }
    }
}

/// One resource touched (or left alone) by an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceChange {
    /// Provider kind (`fly`, `vercel`, `github`, `memory`).
    pub provider: String,
    /// Resource kind (`app`, `machine`, `ip`, `env_var`, `domain`, `deployment`, `comment`, …).
    pub kind: String,
    /// Its identifier (never a secret value).
    pub id: String,
    /// What happened.
    pub outcome: Outcome,
}

impl ResourceChange {
    /// Builds a change record.
    pub fn new(
        provider: impl Into<String>,
        kind: impl Into<String>,
        id: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        Self {
            provider: provider.into(),
            kind: kind.into(),
            id: id.into(),
            outcome,
        }
    }
}

/// Something a provider holds for an environment we own (for status and sweep).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owned {
    /// The environment name it carries (the pipeline parses it with its [`Naming`](crate::Naming)
    /// and ignores anything that does not parse).
    pub name: String,
    /// Provider kind.
    pub provider: String,
    /// Resource kind and id, for display (`app pr-42-agents`, `env_var prj_1/KEY`).
    pub resource: String,
    /// When it was created, when the provider says.
    pub created_at: Option<Timestamp>,
}

// ---------------------------------------------------------------------------------------------
// Database stack

/// CPU class of a Machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuKind {
    /// Shared vCPUs.
    Shared,
    /// Dedicated vCPUs.
    Performance,
}

/// Machine size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineSize {
    /// CPU class.
    pub cpu_kind: CpuKind,
    /// Number of vCPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
}

/// What to do when the stack's process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Always restart.
    Always,
    /// Restart after a non-zero exit.
    OnFailure,
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
    #[serde(with = "secs")]
    pub interval: Duration,
    /// Time one probe may take.
    #[serde(with = "secs")]
    pub timeout: Duration,
    /// Time after start before failures count.
    #[serde(with = "secs")]
    pub grace_period: Duration,
    /// Successes in a row to become healthy.
    pub success_threshold: u32,
    /// Failures in a row to become unhealthy.
    pub failure_threshold: u32,
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
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
    /// Containers.
    pub containers: Vec<ContainerSpec>,
    /// Public services.
    pub services: Vec<ServiceSpec>,
    /// Public host name apps use, e.g. `pr-42-agents.fly.dev`.
    pub public_host: String,
    /// How long applying may wait for the stack to become healthy.
    #[serde(with = "secs")]
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

// ---------------------------------------------------------------------------------------------
// Apps

/// One environment variable for an app.
#[derive(Debug, Clone, Serialize)]
pub struct EnvVar {
    /// Key.
    pub key: String,
    /// Value (secret when a secret went into it).
    pub value: Value,
    /// Store with the host's write-only ("sensitive") type.
    pub sensitive: bool,
}

/// Which app, on which project, for which branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppRef {
    /// Logical app name from the config (`api`, `ui`).
    pub app: String,
    /// Provider project id or name.
    pub project: String,
    /// Custom domain of this environment, if any.
    pub domain: Option<String>,
}

/// Desired state of one app for one environment.
#[derive(Debug, Clone, Serialize)]
pub struct AppSpec {
    /// Which app and project.
    pub target: AppRef,
    /// The PR's head branch (untrusted text: a value, never a name).
    pub branch: String,
    /// Branch-scoped env vars.
    pub env: Vec<EnvVar>,
    /// Take over vars with the same key and branch that we do not own, instead of failing.
    pub adopt_existing: bool,
    /// How long a deployment may take to become ready.
    #[serde(with = "secs")]
    pub deploy_timeout: Duration,
    /// The key of the ownership fingerprints a host keeps next to each value it writes, so an
    /// unchanged value is recognised without reading it back and the fingerprint reveals nothing
    /// about it (the pipeline derives it from the master secret:
    /// [`FINGERPRINT_KEY`](crate::secret::FINGERPRINT_KEY)). `None`: the host uses a key of its
    /// own, so its fingerprints only compare within its own life (another process rewrites the
    /// values once).
    #[serde(skip)]
    pub fingerprint_key: Option<crate::secret::DigestKey>,
}

/// The commit to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commit {
    /// Repository `owner/name`.
    pub repo: String,
    /// Branch.
    pub branch: String,
    /// Full commit SHA.
    pub sha: String,
}

/// A deployment of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppDeployment {
    /// Provider id.
    pub id: String,
    /// The deployment's own URL.
    pub url: String,
    /// The custom domain's URL, when it points at this deployment.
    pub domain_url: Option<String>,
    /// Provider state (`READY`, …).
    pub state: String,
    /// Where to look at it (build logs).
    pub inspector_url: Option<String>,
    /// The commit it was built from.
    pub sha: String,
}

/// How automation gets through an app's deployment protection: a header sent with readiness and
/// seed requests to the app's own URL, and to nothing else. `Debug` shows the header name only.
#[derive(Clone)]
pub struct ProtectionBypass {
    /// The header (Vercel: `x-vercel-protection-bypass`).
    pub header: String,
    /// Its value.
    pub secret: secrecy::SecretString,
}

impl fmt::Debug for ProtectionBypass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectionBypass")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// What exists of an app for an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppStatus {
    /// Keys of the env vars we own on that branch.
    pub env_keys: Vec<String>,
    /// The custom domain, when attached.
    pub domain: Option<String>,
    /// The latest deployment of the branch we made, if any.
    pub deployment: Option<AppDeployment>,
}

// ---------------------------------------------------------------------------------------------
// Source

/// State of a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrState {
    /// Open.
    Open,
    /// Closed without merging.
    Closed,
    /// Merged.
    Merged,
}

/// A pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    /// Number.
    pub number: PrNumber,
    /// State.
    pub state: PrState,
    /// Draft.
    pub draft: bool,
    /// Title (untrusted text).
    pub title: String,
    /// Head branch (untrusted text).
    pub head_branch: String,
    /// Head commit SHA.
    pub head_sha: String,
    /// Head repository `owner/name`; `None` when the fork was deleted.
    pub head_repo: Option<String>,
    /// Base repository `owner/name`.
    pub base_repo: String,
    /// Labels.
    pub labels: Vec<String>,
}

impl PullRequest {
    /// Whether the head lives in another repository (secrets must not reach its code).
    pub fn is_fork(&self) -> bool {
        self.head_repo.as_deref() != Some(self.base_repo.as_str())
    }
}

/// A link in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Label.
    pub label: String,
    /// URL.
    pub url: String,
}

/// The state an environment report shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReportState {
    /// A deploy is in progress.
    Deploying,
    /// Ready, with its links.
    Ready {
        /// URLs to show.
        links: Vec<Link>,
    },
    /// A deploy failed.
    Failed {
        /// Which phase.
        phase: String,
        /// The error (never a secret: errors carry none).
        error: String,
    },
    /// The environment was removed.
    TornDown,
}

impl ReportState {
    /// The state's kind.
    pub fn kind(&self) -> ReportKind {
        match self {
            ReportState::Deploying => ReportKind::Deploying,
            ReportState::Ready { .. } => ReportKind::Ready,
            ReportState::Failed { .. } => ReportKind::Failed,
            ReportState::TornDown => ReportKind::TornDown,
        }
    }
}

/// The kind of a report state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Deploying.
    Deploying,
    /// Ready.
    Ready,
    /// Failed.
    Failed,
    /// Torn down.
    TornDown,
}

/// A status report to publish on the PR (sticky comment, deployment status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The environment.
    pub name: PreviewName,
    /// The PR.
    pub pr: PrNumber,
    /// Head branch (untrusted text; providers escape it).
    pub branch: Option<String>,
    /// The commit deployed.
    pub commit: Option<String>,
    /// What to show.
    pub state: ReportState,
    /// Link to the CI run, when known.
    pub run_url: Option<String>,
    /// When the run that made this report started. Hosts keep it with the published report and
    /// never replace a report of a run that started later (see
    /// [`SourceHost::publish_report`](crate::SourceHost::publish_report)), so a slow run cannot
    /// overwrite a newer outcome with an older one. `None`: unknown, always published.
    pub started_at: Option<Timestamp>,
}

impl Report {
    /// A digest of what the report says: everything but `run_url` and `started_at`, which name
    /// the run that wrote it rather than the environment's state. Hosts store it with the published report and give it
    /// back in [`ReportSummary::digest`], so a re-run can tell "the PR already shows exactly this"
    /// from one read, without publishing again. 64 bits of SHA-256: a change detector, not a MAC
    /// (a report holds no secret).
    pub fn digest(&self) -> String {
        let what = (&self.name, self.pr, &self.branch, &self.commit, &self.state);
        let json = serde_json::to_string(&what).unwrap_or_default();
        let hash = Sha256::digest(json.as_bytes());
        hash[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a published report says, read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportSummary {
    /// Its state.
    pub kind: ReportKind,
    /// The commit it names.
    pub commit: Option<String>,
    /// [`Report::digest`] of the published report, when the host stored one (`None`: unknown, so
    /// the pipeline publishes again rather than assume it is current).
    pub digest: Option<String>,
    /// [`Report::started_at`] of the published report, when the host stored one.
    pub started_at: Option<Timestamp>,
}

impl ReportSummary {
    /// Whether the published report comes from a run that started after `started_at` (a report
    /// made then must not replace it). Unknown times on either side are never newer.
    pub fn is_newer_than(&self, started_at: Option<Timestamp>) -> bool {
        matches!((self.started_at, started_at), (Some(published), Some(ours)) if published > ours)
    }
}

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

    #[test]
    fn forks_are_recognised() {
        let mut pr = PullRequest {
            number: PrNumber::new(1).unwrap(),
            state: PrState::Open,
            draft: false,
            title: "t".into(),
            head_branch: "b".into(),
            head_sha: "s".into(),
            head_repo: Some("acme/app".into()),
            base_repo: "acme/app".into(),
            labels: vec![],
        };
        assert!(!pr.is_fork());
        pr.head_repo = Some("mallory/app".into());
        assert!(pr.is_fork());
        pr.head_repo = None;
        assert!(pr.is_fork());
    }
}
