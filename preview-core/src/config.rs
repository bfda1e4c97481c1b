//! `preview.toml`: the whole description of a team's preview environment.
//!
//! Loading validates everything before any provider is called: unknown keys, wrong types, invalid
//! names, malformed durations and templates that reference undefined (or, in that place, forbidden)
//! values are all [`Error::Config`] naming the file, the line and the key. See
//! `examples/inkeep-agents/preview.toml` for a complete file.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::host::{CpuKind, DependsOn, Protocol, RestartPolicy, TlsMode};
use crate::name::{Naming, PrNumber, check_dns_label, check_hostname};
use crate::secret::SecretKind;
use crate::template::Template;

// ---------------------------------------------------------------------------------------------
// Raw TOML shape (private): what serde reads, with spans for error messages.

type S = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: Option<Spanned<u32>>,
    naming: RawNaming,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<RawSecret>>,
    database: RawDatabase,
    #[serde(default)]
    apps: BTreeMap<String, Spanned<RawApp>>,
    #[serde(default)]
    hooks: Vec<RawHook>,
    seed: Option<RawSeed>,
    #[serde(default)]
    report: RawReport,
    #[serde(default)]
    sweep: RawSweep,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNaming {
    prefix: S,
    #[serde(default)]
    suffix: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    kind: Option<SecretKind>,
    bytes: Option<Spanned<usize>>,
    #[serde(default)]
    rotation: u32,
    from_env: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    provider: S,
    org: Option<S>,
    region: S,
    public_host: Option<S>,
    ready_timeout: Option<S>,
    #[serde(default = "default_restart")]
    restart: RestartPolicy,
    size: RawSize,
    containers: Vec<RawContainer>,
    #[serde(default)]
    services: BTreeMap<String, Spanned<RawService>>,
}

fn default_restart() -> RestartPolicy {
    RestartPolicy::Always
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSize {
    cpu_kind: CpuKind,
    cpus: Spanned<u32>,
    memory_mb: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainer {
    name: S,
    image: S,
    #[serde(default)]
    cmd: Vec<String>,
    #[serde(default)]
    entrypoint: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, S>,
    #[serde(default)]
    healthchecks: Vec<RawCheck>,
    #[serde(default)]
    depends_on: BTreeMap<String, DependsOn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: S,
    exec: Option<Vec<String>>,
    http_port: Option<u16>,
    http_path: Option<String>,
    tcp_port: Option<u16>,
    interval: S,
    timeout: S,
    grace_period: Option<S>,
    #[serde(default = "one")]
    success_threshold: u32,
    #[serde(default = "three")]
    failure_threshold: u32,
}

fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    internal_port: u16,
    port: u16,
    tls: TlsMode,
    protocol: Protocol,
    user: Option<String>,
    password: Option<S>,
    database: Option<String>,
    health_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    provider: S,
    project: Option<S>,
    project_from_env: Option<S>,
    domain: Option<S>,
    #[serde(default)]
    env: BTreeMap<String, S>,
    #[serde(default)]
    sensitive: Vec<S>,
    #[serde(default)]
    adopt_existing: bool,
    deploy_timeout: Option<S>,
    protection_bypass: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHook {
    name: S,
    run: Spanned<Vec<S>>,
    timeout: Option<S>,
    workdir: Option<S>,
    #[serde(default)]
    env: BTreeMap<String, S>,
    #[serde(default)]
    inherit_env: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeed {
    ready_url: S,
    ready_timeout: Option<S>,
    #[serde(default)]
    requests: Vec<RawRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    name: S,
    method: S,
    url: S,
    #[serde(default)]
    headers: BTreeMap<String, S>,
    body_file: Option<S>,
    #[serde(default = "ok_statuses")]
    expect_status: Vec<u16>,
}

fn ok_statuses() -> Vec<u16> {
    vec![200, 201, 204]
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    #[serde(default = "yes")]
    comment: bool,
    environment: Option<S>,
    #[serde(default)]
    links: Vec<RawLink>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    label: String,
    url: S,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    grace_period: Option<S>,
    #[serde(default)]
    delete_missing: bool,
}

// ---------------------------------------------------------------------------------------------
// Validated configuration (public).

/// A generated or imported secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretDef {
    /// Generated per environment.
    Generated {
        /// What it is for.
        kind: SecretKind,
        /// Bytes of entropy.
        bytes: usize,
        /// Bump to rotate.
        rotation: u32,
    },
    /// Read from an environment variable at deploy time (e.g. a repository secret).
    FromEnv {
        /// The variable.
        var: String,
    },
}

/// A templated field with the place it came from, for error messages.
#[derive(Debug, Clone)]
pub struct Field {
    /// The template.
    pub template: Template,
    /// Dotted key, e.g. `apps.api.env.SPICEDB_ENDPOINT`.
    pub key: String,
    /// Line in the file.
    pub line: usize,
}

/// A path the configuration names, with the place it was named, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath {
    /// As written: relative to the configuration file's directory.
    pub path: PathBuf,
    /// Dotted key, e.g. `seed.requests[0].body_file`.
    pub key: String,
    /// Line in the file.
    pub line: usize,
}

/// What the files a configuration names hold, read once by [`Config::read_files`] before anything
/// is sent anywhere; rendering uses these bytes, never a second read.
#[derive(Clone)]
pub struct ConfigFiles {
    /// The repository the files were confined to.
    pub repository: crate::repository::Repository,
    /// The body of each seed request, by index (`None` without a `body_file`).
    pub bodies: Vec<Option<std::sync::Arc<Vec<u8>>>>,
    /// The working directory of each hook, by index (canonical).
    pub workdirs: Vec<PathBuf>,
}

impl std::fmt::Debug for ConfigFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<Option<usize>> = self
            .bodies
            .iter()
            .map(|b| b.as_ref().map(|b| b.len()))
            .collect();
        f.debug_struct("ConfigFiles")
            .field("repository", &self.repository)
            .field("body_sizes", &sizes)
            .field("workdirs", &self.workdirs)
            .finish()
    }
}

/// A container, before rendering.
#[derive(Debug, Clone)]
pub struct ContainerDef {
    /// Name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Command.
    pub cmd: Vec<String>,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Env templates.
    pub env: BTreeMap<String, Field>,
    /// Health checks (no templates: they are passed as written).
    pub healthchecks: Vec<crate::host::HealthCheck>,
    /// Start ordering.
    pub depends_on: BTreeMap<String, DependsOn>,
}

/// A public service, before rendering.
#[derive(Debug, Clone)]
pub struct ServiceDef {
    /// Name.
    pub name: String,
    /// Port inside the Machine.
    pub internal_port: u16,
    /// Public port.
    pub port: u16,
    /// TLS at the edge.
    pub tls: TlsMode,
    /// Protocol.
    pub protocol: Protocol,
    /// User for URLs.
    pub user: Option<String>,
    /// Password template.
    pub password: Option<Field>,
    /// Database name for URLs.
    pub database: Option<String>,
    /// HTTP readiness path.
    pub health_path: Option<String>,
}

/// The database stack, before rendering.
#[derive(Debug, Clone)]
pub struct DatabaseDef {
    /// Provider kind (`fly`).
    pub provider: String,
    /// Organisation, for providers that have one.
    pub org: Option<String>,
    /// Region.
    pub region: String,
    /// Public host template.
    pub public_host: Field,
    /// How long to wait until healthy.
    pub ready_timeout: Duration,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Size.
    pub size: crate::host::MachineSize,
    /// Containers.
    pub containers: Vec<ContainerDef>,
    /// Services, by name.
    pub services: Vec<ServiceDef>,
}

/// Where an app's project id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    /// Written in the file.
    Literal(String),
    /// Read from an environment variable.
    FromEnv(String),
}

/// Where the secret comes from that lets readiness and seed requests through an app's deployment
/// protection (Vercel: "Protection Bypass for Automation", sent as `x-vercel-protection-bypass`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BypassSource {
    /// Read from the project through the provider's API at deploy time.
    Project,
    /// Read from an environment variable at deploy time (e.g. a repository secret).
    FromEnv(String),
}

/// An app, before rendering.
#[derive(Debug, Clone)]
pub struct AppDef {
    /// Logical name (`api`).
    pub name: String,
    /// Provider kind (`vercel`).
    pub provider: String,
    /// Project.
    pub project: ProjectRef,
    /// Domain template (validated as a host name after rendering).
    pub domain: Option<Field>,
    /// Env templates.
    pub env: BTreeMap<String, Field>,
    /// Keys stored as write-only.
    pub sensitive: BTreeSet<String>,
    /// Adopt same-key vars we do not own.
    pub adopt_existing: bool,
    /// Deployment deadline.
    pub deploy_timeout: Duration,
    /// Readiness and seed requests to this app's own URL carry the deployment protection bypass
    /// secret from here; `None`: they carry none.
    pub protection_bypass: Option<BypassSource>,
}

/// A hook run once the databases are reachable.
#[derive(Debug, Clone)]
pub struct HookDef {
    /// Name.
    pub name: String,
    /// argv templates (never a shell string).
    pub run: Vec<Field>,
    /// Timeout.
    pub timeout: Duration,
    /// Working directory, relative to the config file's directory (confined to the repository:
    /// see [`crate::repository`]); the config file's directory when unset.
    pub workdir: Option<ConfigPath>,
    /// Env templates.
    pub env: BTreeMap<String, Field>,
    /// Extra variables passed through from the caller's environment.
    pub inherit_env: Vec<String>,
}

/// One seed request.
#[derive(Debug, Clone)]
pub struct RequestDef {
    /// Name.
    pub name: String,
    /// HTTP method.
    pub method: String,
    /// URL template (no secrets).
    pub url: Field,
    /// Header templates (may hold secrets).
    pub headers: BTreeMap<String, Field>,
    /// Body file, relative to the config file's directory (confined to the repository: see
    /// [`crate::repository`]).
    pub body_file: Option<ConfigPath>,
    /// Accepted statuses.
    pub expect_status: Vec<u16>,
}

/// Seeding: requests sent once the readiness URL answers.
#[derive(Debug, Clone)]
pub struct SeedDef {
    /// Readiness URL template.
    pub ready_url: Field,
    /// How long to wait for it.
    pub ready_timeout: Duration,
    /// Requests.
    pub requests: Vec<RequestDef>,
}

/// How the PR is told.
#[derive(Debug, Clone)]
pub struct ReportDef {
    /// Post a sticky comment.
    pub comment: bool,
    /// Deployment environment name template.
    pub environment: Field,
    /// Links shown when ready.
    pub links: Vec<(String, Field)>,
}

/// Sweep policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepDef {
    /// Environments younger than this are never swept.
    pub grace_period: Duration,
    /// Whether a PR that no longer exists counts as closed.
    pub delete_missing: bool,
}

/// A validated `preview.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages).
    pub origin: String,
    /// The directory relative paths resolve against.
    pub base_dir: PathBuf,
    /// Naming.
    pub naming: Naming,
    /// Secrets by name.
    pub secrets: BTreeMap<String, SecretDef>,
    /// The database stack.
    pub database: DatabaseDef,
    /// Apps, by name.
    pub apps: Vec<AppDef>,
    /// Hooks, in order.
    pub hooks: Vec<HookDef>,
    /// Seeding.
    pub seed: Option<SeedDef>,
    /// Reporting.
    pub report: ReportDef,
    /// Sweep policy.
    pub sweep: SweepDef,
    /// The files the configuration names, once read by [`Config::read_files`]; until then they
    /// are read (with the same rules) when the environment is rendered.
    pub files: Option<ConfigFiles>,
}

// ---------------------------------------------------------------------------------------------
// Template contexts: which values a field may reference.

/// Where a template is used; decides what it may reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Names and domains: only values that cannot carry untrusted text or secrets.
    Name,
    /// Container env: identity and secrets.
    Container,
    /// A service password: secrets.
    Password,
    /// App env and seed headers: everything but tunnels.
    App,
    /// Hook env: everything.
    HookEnv,
    /// Hook argv, URLs, report text: everything that is not secret (argv and URLs get logged).
    Public,
    /// Hook argv: public values plus tunnel addresses.
    HookArgv,
}

struct Vocabulary {
    /// path → (secret, root class)
    paths: BTreeMap<String, (bool, Root)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Identity,
    PrRuntime,
    Secret,
    Database,
    App,
    Tunnel,
}

impl Vocabulary {
    fn new(
        secrets: &BTreeMap<String, SecretDef>,
        services: &[ServiceDef],
        apps: &[String],
    ) -> Self {
        let mut paths = BTreeMap::new();
        for p in [
            "pr.number",
            "env.name",
            "repo.owner",
            "repo.name",
            "repo.full_name",
        ] {
            paths.insert(p.to_string(), (false, Root::Identity));
        }
        for p in ["pr.branch", "pr.sha"] {
            paths.insert(p.to_string(), (false, Root::PrRuntime));
        }
        for s in secrets.keys() {
            paths.insert(format!("secrets.{s}"), (true, Root::Secret));
        }
        paths.insert("database.host".into(), (false, Root::Database));
        for s in services {
            let creds = s.password.is_some();
            for (f, secret) in [
                ("host", false),
                ("port", false),
                ("address", false),
                ("url", creds),
            ] {
                paths.insert(format!("services.{}.{f}", s.name), (secret, Root::Database));
                paths.insert(format!("tunnels.{}.{f}", s.name), (secret, Root::Tunnel));
            }
        }
        for a in apps {
            for f in ["domain", "url"] {
                paths.insert(format!("apps.{a}.{f}"), (false, Root::App));
            }
        }
        Self { paths }
    }

    fn check(&self, path: &str, ctx: Ctx) -> std::result::Result<(), String> {
        let Some(&(secret, root)) = self.paths.get(path) else {
            let mut parts = path.split('.');
            let root_word = parts.next().unwrap_or("");
            let second: Vec<&str> = self
                .paths
                .keys()
                .filter(|k| k.split('.').next() == Some(root_word))
                .filter_map(|k| k.split('.').nth(1))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let hint = match (second.is_empty(), parts.next()) {
                (true, _) => "values start with pr., env., repo., secrets., database., services., tunnels. or apps.".to_string(),
                (false, Some(name)) if !second.contains(&name) => {
                    format!("defined {root_word}: {}", second.join(", "))
                }
                (false, _) => {
                    let fields: Vec<&str> = self
                        .paths
                        .keys()
                        .filter(|k| k.starts_with(&format!("{}.", path.rsplit_once('.').map_or(path, |p| p.0))))
                        .map(String::as_str)
                        .collect();
                    format!("defined: {}", fields.join(", "))
                }
            };
            return Err(format!("`${{{path}}}` is not defined ({hint})"));
        };
        let allowed = match ctx {
            Ctx::Name => root == Root::Identity,
            Ctx::Container => matches!(root, Root::Identity | Root::Secret),
            Ctx::Password => root == Root::Secret,
            Ctx::App => root != Root::Tunnel,
            Ctx::HookEnv => true,
            Ctx::Public => root != Root::Tunnel && !secret,
            Ctx::HookArgv => !secret,
        };
        if allowed {
            return Ok(());
        }
        let why = match ctx {
            Ctx::Name => {
                "names and domains may use only pr.number, env.name and repo.* (branch names are untrusted and secrets must not become names)"
            }
            Ctx::Container => {
                "container env may use only identity values and secrets (the database does not know app domains yet)"
            }
            Ctx::Password => "a service password must be a secret, e.g. `${secrets.pg_password}`",
            Ctx::App => "tunnels exist only on the machine running hooks; apps must use services.*",
            Ctx::Public if secret => {
                "this value is printed and logged, so it must not contain a secret (put secrets in env or headers)"
            }
            Ctx::Public => "tunnels exist only while hooks run",
            Ctx::HookArgv => {
                "process arguments are visible to other processes; pass secrets through hook env instead"
            }
            Ctx::HookEnv => "",
        };
        Err(format!("`${{{path}}}` cannot be used here: {why}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Loading.

struct Loader<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Loader<'_> {
    fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|b| *b == b'\n').count() + 1
    }

    fn err(&self, span: &Range<usize>, key: &str, message: impl std::fmt::Display) -> Error {
        Error::config(format!(
            "{}:{}: {key}: {message}",
            self.origin,
            self.line_of(span)
        ))
    }

    fn field(&self, s: &S, key: String, ctx: Ctx, vocab: &Vocabulary) -> Result<Field> {
        let template = Template::parse(s.get_ref()).map_err(|m| self.err(&s.span(), &key, m))?;
        for r in template.refs() {
            vocab
                .check(r, ctx)
                .map_err(|m| self.err(&s.span(), &key, m))?;
        }
        Ok(Field {
            template,
            key,
            line: self.line_of(&s.span()),
        })
    }

    fn duration(&self, s: &S, key: &str) -> Result<Duration> {
        parse_duration(s.get_ref()).map_err(|m| self.err(&s.span(), key, m))
    }

    fn duration_or(&self, s: &Option<S>, key: &str, default: Duration) -> Result<Duration> {
        s.as_ref().map_or(Ok(default), |s| self.duration(s, key))
    }

    fn ident(&self, s: &str, span: &Range<usize>, key: &str) -> Result<()> {
        check_dns_label(s).map_err(|why| {
            self.err(
                span,
                key,
                format!("{s:?} {why} (names are DNS labels: lowercase letters, digits, inner '-')"),
            )
        })
    }

    /// A path the configuration names: relative (to the file's directory), not empty. Whether
    /// it stays inside the repository is decided by [`Config::read_files`], which can look.
    fn path(&self, s: &S, key: String) -> Result<ConfigPath> {
        let path = PathBuf::from(s.get_ref());
        if s.get_ref().is_empty() {
            return Err(self.err(
                &s.span(),
                &key,
                "is empty; name a path relative to this file's directory",
            ));
        }
        if path.is_absolute() || path.has_root() {
            return Err(self.err(
                &s.span(),
                &key,
                format!(
                    "{:?} is an absolute path; name a path inside the repository, relative to this file's directory",
                    s.get_ref()
                ),
            ));
        }
        if s.get_ref().contains('\0') {
            return Err(self.err(&s.span(), &key, "contains a NUL character"));
        }
        Ok(ConfigPath {
            path,
            key,
            line: self.line_of(&s.span()),
        })
    }

    fn bypass(&self, v: &Spanned<toml::Value>, key: &str) -> Result<BypassSource> {
        const VALID: &str = "use \"project\" (the project's Protection Bypass for Automation secret, read through the Vercel API) or { from_env = \"VARIABLE\" } (a variable holding it)";
        match v.get_ref() {
            toml::Value::String(word) if word == "project" => Ok(BypassSource::Project),
            toml::Value::Table(t) if t.len() == 1 => match t.get("from_env") {
                Some(toml::Value::String(var)) => {
                    self.env_key(var, &v.span(), &format!("{key}.from_env"))?;
                    Ok(BypassSource::FromEnv(var.clone()))
                }
                _ => Err(self.err(&v.span(), key, VALID)),
            },
            toml::Value::String(word) => {
                Err(self.err(&v.span(), key, format!("{word:?} is not a source: {VALID}")))
            }
            _ => Err(self.err(&v.span(), key, VALID)),
        }
    }

    fn env_key(&self, k: &str, span: &Range<usize>, key: &str) -> Result<()> {
        let ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(())
        } else {
            Err(self.err(
                span,
                key,
                format!("{k:?} is not a valid environment variable name (letters, digits, '_', not starting with a digit)"),
            ))
        }
    }
}

/// Parses `30s`, `5m`, `1h`, `500ms`, or combinations such as `1m30s`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad =
        || format!("invalid duration {s:?}: use e.g. \"30s\", \"5m\", \"1h30m\" or \"500ms\"");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let d = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total += d;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file (and line and key, when the content is at fault).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "cannot read {}: {e} (pass the file with --config)",
                path.display()
            ))
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &path.display().to_string(), &base)
    }

    /// Validates configuration text. `origin` names it in messages; relative paths resolve against
    /// `base_dir`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `origin`, the line and the key.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Self> {
        let l = Loader { origin, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let line = l.line_of(&span);
            let src = text
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or("")
                .trim();
            let key = src.split('=').next().unwrap_or("").trim();
            let at = if key.is_empty() || src.starts_with('[') {
                if src.is_empty() {
                    String::new()
                } else {
                    format!(" (at `{src}`)")
                }
            } else {
                format!(" (key `{key}`)")
            };
            Error::config(format!("{origin}:{line}: {}{at}", e.message().trim()))
        })?;

        if let Some(v) = &raw.version {
            if *v.get_ref() != 1 {
                return Err(l.err(
                    &v.span(),
                    "version",
                    format!(
                        "unsupported version {}; this preview understands version 1",
                        v.get_ref()
                    ),
                ));
            }
        }

        // Naming.
        let suffix = raw
            .naming
            .suffix
            .as_ref()
            .map(|s| s.get_ref().as_str())
            .unwrap_or("");
        let naming = Naming::new(raw.naming.prefix.get_ref().as_str(), suffix)
            .map_err(|e| l.err(&raw.naming.prefix.span(), "naming", e))?;

        // Secrets.
        let mut secrets = BTreeMap::new();
        for (name, s) in &raw.secrets {
            let key = format!("secrets.{name}");
            let span = s.span();
            let sd = s.get_ref();
            if !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(l.err(
                    &span,
                    &key,
                    "secret names use lowercase letters, digits and '_'",
                ));
            }
            let def = match &sd.from_env {
                Some(var) => {
                    if sd.kind.is_some() || sd.bytes.is_some() {
                        return Err(l.err(
                            &span,
                            &key,
                            "`from_env` secrets are not generated: remove `kind` and `bytes`",
                        ));
                    }
                    l.env_key(var.get_ref(), &var.span(), &format!("{key}.from_env"))?;
                    SecretDef::FromEnv {
                        var: var.get_ref().clone(),
                    }
                }
                None => {
                    let kind = sd.kind.unwrap_or(SecretKind::Password);
                    let bytes = match &sd.bytes {
                        Some(b) => {
                            let n = *b.get_ref();
                            if n < kind.min_bytes() || n > 64 {
                                return Err(l.err(&b.span(), &format!("{key}.bytes"), format!(
                                    "{n} bytes is out of range for a {kind:?} secret: use {} to 64 ({} bits minimum)",
                                    kind.min_bytes(), kind.min_bytes() * 8
                                )));
                            }
                            n
                        }
                        None => kind.min_bytes(),
                    };
                    SecretDef::Generated {
                        kind,
                        bytes,
                        rotation: sd.rotation,
                    }
                }
            };
            secrets.insert(name.clone(), def);
        }

        // Services first: the vocabulary needs their names.
        let db = &raw.database;
        let mut services_pre = Vec::new();
        for (name, s) in &db.services {
            l.ident(name, &s.span(), &format!("database.services.{name}"))?;
            let sv = s.get_ref();
            services_pre.push(ServiceDef {
                name: name.clone(),
                internal_port: sv.internal_port,
                port: sv.port,
                tls: sv.tls,
                protocol: sv.protocol,
                user: sv.user.clone(),
                password: None,
                database: sv.database.clone(),
                health_path: sv.health_path.clone(),
            });
        }
        // Password presence decides whether `services.X.url` is secret, so mark it before checking.
        let mut vocab_services = services_pre.clone();
        for (svc, (_, raw_s)) in vocab_services.iter_mut().zip(&db.services) {
            if let Some(p) = &raw_s.get_ref().password {
                svc.password = Some(Field {
                    template: Template::parse("").map_err(Error::config)?,
                    key: String::new(),
                    line: l.line_of(&p.span()),
                });
            }
        }
        let app_names: Vec<String> = raw.apps.keys().cloned().collect();
        let vocab = Vocabulary::new(&secrets, &vocab_services, &app_names);

        let mut services = Vec::new();
        for (mut svc, (name, raw_s)) in services_pre.into_iter().zip(&db.services) {
            let sv = raw_s.get_ref();
            let key = format!("database.services.{name}");
            if let Some(p) = &sv.password {
                svc.password =
                    Some(l.field(p, format!("{key}.password"), Ctx::Password, &vocab)?);
                if sv.user.is_none() {
                    return Err(l.err(
                        &raw_s.span(),
                        &key,
                        "a service with a password needs a `user`",
                    ));
                }
            }
            if sv.protocol == Protocol::Postgres && sv.tls == TlsMode::Tls {
                return Err(l.err(&raw_s.span(), &format!("{key}.tls"), "Postgres needs `pg_tls` (the edge speaks Postgres STARTTLS) or `none`, not `tls`"));
            }
            if sv.protocol == Protocol::Grpc && sv.tls != TlsMode::None {
                return Err(l.err(
                    &raw_s.span(),
                    &format!("{key}.tls"),
                    "gRPC needs `none` (raw pass-through): an edge TLS handler breaks its ALPN",
                ));
            }
            services.push(svc);
        }

        // Database.
        let mut containers = Vec::new();
        let mut names = BTreeSet::new();
        for (i, c) in db.containers.iter().enumerate() {
            let key = format!("database.containers[{i}]");
            l.ident(c.name.get_ref(), &c.name.span(), &format!("{key}.name"))?;
            if !names.insert(c.name.get_ref().clone()) {
                return Err(l.err(
                    &c.name.span(),
                    &format!("{key}.name"),
                    format!("container {:?} is defined twice", c.name.get_ref()),
                ));
            }
            if c.image.get_ref().trim().is_empty()
                || c.image.get_ref().contains(char::is_whitespace)
            {
                return Err(l.err(
                    &c.image.span(),
                    &format!("{key}.image"),
                    "an image reference such as \"postgres:18\" is required",
                ));
            }
            let mut env = BTreeMap::new();
            for (k, v) in &c.env {
                let fk = format!("{key}.env.{k}");
                l.env_key(k, &v.span(), &fk)?;
                env.insert(k.clone(), l.field(v, fk, Ctx::Container, &vocab)?);
            }
            let mut checks = Vec::new();
            for (j, h) in c.healthchecks.iter().enumerate() {
                let hk = format!("{key}.healthchecks[{j}]");
                let kinds = [
                    h.exec.is_some(),
                    h.http_port.is_some(),
                    h.tcp_port.is_some(),
                ];
                if kinds.iter().filter(|b| **b).count() != 1 {
                    return Err(l.err(
                        &h.name.span(),
                        &hk,
                        "set exactly one of `exec`, `http_port` or `tcp_port`",
                    ));
                }
                let kind = if let Some(cmd) = &h.exec {
                    if cmd.is_empty() {
                        return Err(l.err(
                            &h.name.span(),
                            &format!("{hk}.exec"),
                            "the command is empty",
                        ));
                    }
                    crate::host::CheckKind::Exec {
                        command: cmd.clone(),
                    }
                } else if let Some(port) = h.http_port {
                    crate::host::CheckKind::Http {
                        port,
                        path: h.http_path.clone().unwrap_or_else(|| "/".into()),
                    }
                } else {
                    crate::host::CheckKind::Tcp {
                        port: h.tcp_port.unwrap_or_default(),
                    }
                };
                checks.push(crate::host::HealthCheck {
                    name: h.name.get_ref().clone(),
                    kind,
                    interval: l.duration(&h.interval, &format!("{hk}.interval"))?,
                    timeout: l.duration(&h.timeout, &format!("{hk}.timeout"))?,
                    grace_period: l.duration_or(
                        &h.grace_period,
                        &format!("{hk}.grace_period"),
                        Duration::ZERO,
                    )?,
                    success_threshold: h.success_threshold,
                    failure_threshold: h.failure_threshold,
                });
            }
            containers.push(ContainerDef {
                name: c.name.get_ref().clone(),
                image: c.image.get_ref().clone(),
                cmd: c.cmd.clone(),
                entrypoint: c.entrypoint.clone(),
                env,
                healthchecks: checks,
                depends_on: c.depends_on.clone(),
            });
        }
        if containers.is_empty() {
            return Err(Error::config(format!(
                "{origin}: database.containers: at least one container is required"
            )));
        }
        for (i, c) in containers.iter().enumerate() {
            for dep in c.depends_on.keys() {
                if !names.contains(dep) {
                    return Err(l.err(
                        &db.containers[i].name.span(),
                        &format!("database.containers[{i}].depends_on"),
                        format!("no container is named {dep:?}"),
                    ));
                }
            }
        }
        let size = crate::host::MachineSize {
            cpu_kind: db.size.cpu_kind,
            cpus: *db.size.cpus.get_ref(),
            memory_mb: *db.size.memory_mb.get_ref(),
        };
        if !(1..=16).contains(&size.cpus) {
            return Err(l.err(&db.size.cpus.span(), "database.size.cpus", "use 1 to 16"));
        }
        if size.memory_mb < 256 || size.memory_mb % 256 != 0 {
            return Err(l.err(
                &db.size.memory_mb.span(),
                "database.size.memory_mb",
                "use a multiple of 256, at least 256",
            ));
        }
        let provider = db.provider.get_ref().clone();
        let public_host = match &db.public_host {
            Some(h) => l.field(h, "database.public_host".into(), Ctx::Name, &vocab)?,
            None if provider == "fly" => Field {
                template: Template::parse("${env.name}.fly.dev").map_err(Error::config)?,
                key: "database.public_host".into(),
                line: l.line_of(&db.provider.span()),
            },
            None => {
                return Err(l.err(
                    &db.provider.span(),
                    "database.public_host",
                    format!("provider {provider:?} has no default public host: set `public_host`"),
                ));
            }
        };
        if !["fly", "memory"].contains(&provider.as_str()) {
            return Err(l.err(
                &db.provider.span(),
                "database.provider",
                format!("unknown provider {provider:?}: use \"fly\" (or \"memory\" for tests)"),
            ));
        }
        if provider == "fly" && db.org.is_none() {
            return Err(l.err(
                &db.provider.span(),
                "database.org",
                "the fly provider needs `org` (your Fly organisation slug)",
            ));
        }
        if !db.region.get_ref().chars().all(|c| c.is_ascii_lowercase())
            || db.region.get_ref().is_empty()
        {
            return Err(l.err(
                &db.region.span(),
                "database.region",
                "a region code such as \"iad\" is required",
            ));
        }
        let database = DatabaseDef {
            provider,
            org: db.org.as_ref().map(|o| o.get_ref().clone()),
            region: db.region.get_ref().clone(),
            public_host,
            ready_timeout: l.duration_or(
                &db.ready_timeout,
                "database.ready_timeout",
                Duration::from_secs(480),
            )?,
            restart: db.restart,
            size,
            containers,
            services,
        };

        // Apps.
        let mut apps = Vec::new();
        for (name, a) in &raw.apps {
            let key = format!("apps.{name}");
            l.ident(name, &a.span(), &key)?;
            let ar = a.get_ref();
            if !["vercel", "memory"].contains(&ar.provider.get_ref().as_str()) {
                return Err(l.err(
                    &ar.provider.span(),
                    &format!("{key}.provider"),
                    format!(
                        "unknown provider {:?}: use \"vercel\" (or \"memory\" for tests)",
                        ar.provider.get_ref()
                    ),
                ));
            }
            let project = match (&ar.project, &ar.project_from_env) {
                (Some(p), None) => ProjectRef::Literal(p.get_ref().clone()),
                (None, Some(v)) => {
                    l.env_key(v.get_ref(), &v.span(), &format!("{key}.project_from_env"))?;
                    ProjectRef::FromEnv(v.get_ref().clone())
                }
                _ => {
                    return Err(l.err(
                        &a.span(),
                        &key,
                        "set exactly one of `project` or `project_from_env`",
                    ));
                }
            };
            let domain = ar
                .domain
                .as_ref()
                .map(|d| l.field(d, format!("{key}.domain"), Ctx::Name, &vocab))
                .transpose()?;
            let mut env = BTreeMap::new();
            for (k, v) in &ar.env {
                let fk = format!("{key}.env.{k}");
                l.env_key(k, &v.span(), &fk)?;
                env.insert(k.clone(), l.field(v, fk, Ctx::App, &vocab)?);
            }
            let mut sensitive = BTreeSet::new();
            for s in &ar.sensitive {
                if !env.contains_key(s.get_ref()) {
                    return Err(l.err(
                        &s.span(),
                        &format!("{key}.sensitive"),
                        format!("{:?} is not a key of {key}.env", s.get_ref()),
                    ));
                }
                sensitive.insert(s.get_ref().clone());
            }
            let protection_bypass = match &ar.protection_bypass {
                None => None,
                Some(v) => Some(l.bypass(v, &format!("{key}.protection_bypass"))?),
            };
            apps.push(AppDef {
                protection_bypass,
                name: name.clone(),
                provider: ar.provider.get_ref().clone(),
                project,
                domain,
                env,
                sensitive,
                adopt_existing: ar.adopt_existing,
                deploy_timeout: l.duration_or(
                    &ar.deploy_timeout,
                    &format!("{key}.deploy_timeout"),
                    Duration::from_secs(1200),
                )?,
            });
        }

        // Hooks.
        let mut hooks = Vec::new();
        for (i, h) in raw.hooks.iter().enumerate() {
            let key = format!("hooks[{i}]");
            l.ident(h.name.get_ref(), &h.name.span(), &format!("{key}.name"))?;
            if h.run.get_ref().is_empty() {
                return Err(l.err(
                    &h.run.span(),
                    &format!("{key}.run"),
                    "give the command as an argv list, e.g. [\"pnpm\", \"db:migrate\"]",
                ));
            }
            let first = h.run.get_ref()[0].get_ref();
            if h.run.get_ref().len() == 1 && first.contains(' ') {
                return Err(l.err(&h.run.span(), &format!("{key}.run"), format!("{first:?} looks like a shell string; hooks take argv, e.g. [\"pnpm\", \"db:migrate\"] (no shell is ever started)")));
            }
            let mut run = Vec::new();
            for (j, a) in h.run.get_ref().iter().enumerate() {
                run.push(l.field(a, format!("{key}.run[{j}]"), Ctx::HookArgv, &vocab)?);
            }
            let mut env = BTreeMap::new();
            for (k, v) in &h.env {
                let fk = format!("{key}.env.{k}");
                l.env_key(k, &v.span(), &fk)?;
                env.insert(k.clone(), l.field(v, fk, Ctx::HookEnv, &vocab)?);
            }
            hooks.push(HookDef {
                name: h.name.get_ref().clone(),
                run,
                timeout: l.duration_or(
                    &h.timeout,
                    &format!("{key}.timeout"),
                    Duration::from_secs(600),
                )?,
                workdir: h
                    .workdir
                    .as_ref()
                    .map(|w| l.path(w, format!("{key}.workdir")))
                    .transpose()?,
                env,
                inherit_env: h.inherit_env.clone(),
            });
        }

        // Seed.
        let seed = match &raw.seed {
            None => None,
            Some(s) => {
                let mut requests = Vec::new();
                for (i, r) in s.requests.iter().enumerate() {
                    let key = format!("seed.requests[{i}]");
                    let method = r.method.get_ref().to_ascii_uppercase();
                    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                        return Err(l.err(
                            &r.method.span(),
                            &format!("{key}.method"),
                            "use GET, POST, PUT, PATCH or DELETE",
                        ));
                    }
                    let mut headers = BTreeMap::new();
                    for (k, v) in &r.headers {
                        headers.insert(
                            k.clone(),
                            l.field(v, format!("{key}.headers.{k}"), Ctx::App, &vocab)?,
                        );
                    }
                    requests.push(RequestDef {
                        name: r.name.get_ref().clone(),
                        method,
                        url: l.field(&r.url, format!("{key}.url"), Ctx::Public, &vocab)?,
                        headers,
                        body_file: r
                            .body_file
                            .as_ref()
                            .map(|b| l.path(b, format!("{key}.body_file")))
                            .transpose()?,
                        expect_status: r.expect_status.clone(),
                    });
                }
                Some(SeedDef {
                    ready_url: l.field(
                        &s.ready_url,
                        "seed.ready_url".into(),
                        Ctx::Public,
                        &vocab,
                    )?,
                    ready_timeout: l.duration_or(
                        &s.ready_timeout,
                        "seed.ready_timeout",
                        Duration::from_secs(300),
                    )?,
                    requests,
                })
            }
        };

        // Report.
        let environment = match &raw.report.environment {
            Some(e) => l.field(e, "report.environment".into(), Ctx::Name, &vocab)?,
            None => Field {
                template: Template::parse("preview/pr-${pr.number}").map_err(Error::config)?,
                key: "report.environment".into(),
                line: 0,
            },
        };
        let mut links = Vec::new();
        for (i, link) in raw.report.links.iter().enumerate() {
            links.push((
                link.label.clone(),
                l.field(
                    &link.url,
                    format!("report.links[{i}].url"),
                    Ctx::Public,
                    &vocab,
                )?,
            ));
        }
        let report = ReportDef {
            comment: raw.report.comment,
            environment,
            links,
        };
        let sweep = SweepDef {
            grace_period: l.duration_or(
                &raw.sweep.grace_period,
                "sweep.grace_period",
                Duration::from_secs(3600),
            )?,
            delete_missing: raw.sweep.delete_missing,
        };

        let config = Config {
            origin: origin.to_string(),
            base_dir: base_dir.to_path_buf(),
            naming,
            secrets,
            database,
            apps,
            hooks,
            seed,
            report,
            sweep,
            files: None,
        };
        config.check_rendered_names()?;
        Ok(config)
    }

    /// Renders name-like fields for the largest PR number, so a domain that can never be valid is a
    /// load-time error rather than a deploy-time one.
    fn check_rendered_names(&self) -> Result<()> {
        let name = self.naming.name(PrNumber::new(u64::from(PrNumber::MAX))?);
        let scope = crate::template::identity_scope(&name, Some("owner/repo"));
        let mut fields: Vec<&Field> = self.apps.iter().filter_map(|a| a.domain.as_ref()).collect();
        fields.push(&self.database.public_host);
        for f in fields {
            let v = f
                .template
                .render(&scope)
                .map_err(|m| self.field_err(f, m))?;
            check_hostname(v.expose()).map_err(|why| {
                self.field_err(f, format!("renders to {:?}, which {why}", v.expose()))
            })?;
        }
        Ok(())
    }

    /// The repository this configuration belongs to (see [`crate::repository`] for how it is
    /// found).
    ///
    /// # Errors
    /// [`Error::Config`] when the directory found cannot be used.
    pub fn repository(
        &self,
        env: crate::env::EnvLookup<'_>,
    ) -> Result<crate::repository::Repository> {
        crate::repository::Repository::discover(&self.base_dir, env)
    }

    /// Reads every file the configuration names, confined to `repository` (see
    /// [`crate::repository`]): each seed request's `body_file` and each hook's `workdir`. Call it
    /// before anything is sent anywhere; rendering then uses these bytes and never reads again.
    ///
    /// # Errors
    /// [`Error::Config`] as `FILE:LINE: KEY: why`, for the first file that is refused.
    pub fn read_files(&mut self, repository: crate::repository::Repository) -> Result<()> {
        self.files = Some(self.load_files(repository)?);
        Ok(())
    }

    /// The files, as [`Config::read_files`] reads them, without keeping them.
    pub(crate) fn load_files(
        &self,
        repository: crate::repository::Repository,
    ) -> Result<ConfigFiles> {
        let path_err = |p: &ConfigPath, why: String| {
            Error::config(format!("{}:{}: {}: {why}", self.origin, p.line, p.key))
        };
        let mut bodies = Vec::new();
        for r in self.seed.iter().flat_map(|s| &s.requests) {
            bodies.push(match &r.body_file {
                None => None,
                Some(p) => Some(std::sync::Arc::new(
                    repository
                        .read_file(&self.base_dir, &p.path)
                        .map_err(|why| path_err(p, why))?,
                )),
            });
        }
        let mut workdirs = Vec::new();
        for (i, h) in self.hooks.iter().enumerate() {
            let dir = match &h.workdir {
                Some(p) => repository
                    .directory(&self.base_dir, &p.path)
                    .map_err(|why| path_err(p, why))?,
                None => repository
                    .directory(&self.base_dir, Path::new("."))
                    .map_err(|why| {
                        Error::config(format!(
                            "{}: hooks[{i}].workdir (unset: this file's directory): {why}",
                            self.origin
                        ))
                    })?,
            };
            workdirs.push(dir);
        }
        Ok(ConfigFiles {
            repository,
            bodies,
            workdirs,
        })
    }

    /// A configuration error at a field.
    pub fn field_err(&self, f: &Field, message: impl std::fmt::Display) -> Error {
        Error::config(format!("{}:{}: {}: {message}", self.origin, f.line, f.key))
    }

    /// The app definition by name.
    pub fn app(&self, name: &str) -> Option<&AppDef> {
        self.apps.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        for bad in ["", "5", "s", "5 m", "-1s", "1d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
