//! Config × PR → [`Rendered`]: one environment's secrets, database spec, app specs, hooks, seed
//! requests and report links, rendered from a [`Config`].
//!
//! One walk over the configuration, two modes. [`render_all`] (deploy) renders every value for
//! real: a reference without a value is an error naming the field. [`render_plan`] reads and
//! generates no secret and reads no file: what is not known shows as a placeholder
//! (`<secret:NAME>`, `<repo.owner>`, `<head commit of PR #N>`, `$VAR` for a project id from an
//! unset variable), and a value a secret goes into is still a [`Value::Secret`]. The
//! [`Plan`](crate::pipeline::Plan) is a description of that [`Rendered`]: a field rendered here is
//! what deploy sends and what plan shows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{BypassSource, Config, Field, SecretDef};
use crate::env::EnvLookup;
use crate::error::Result;
use crate::host::{AppRef, AppSpec, DatabaseSpec, Link};
use crate::name::PreviewName;
use crate::secret::SecretValues;
use crate::template::{Scope, Value};

mod apps;
mod database;
mod hooks;
mod scope;
mod seed;

pub use apps::{app_refs, missing_env, project};
pub use database::database_spec;
pub use hooks::hooks;
pub use scope::{scope, secrets};

/// What identifies one run: the PR and, when known, its repository, branch and commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Repository `owner/name`.
    pub repo: Option<String>,
    /// Head branch (untrusted text).
    pub branch: Option<String>,
    /// Head commit.
    pub sha: Option<String>,
}

/// One hook, ready to run.
#[derive(Debug, Clone)]
pub struct HookRun {
    /// Name.
    pub name: String,
    /// argv (no secrets: checked at load).
    pub argv: Vec<String>,
    /// Environment for the child (may hold secrets).
    pub env: Vec<(String, Value)>,
    /// Variables passed through from the caller's environment.
    pub inherit_env: Vec<String>,
    /// Working directory.
    pub workdir: PathBuf,
    /// Timeout.
    pub timeout: Duration,
}

/// One seed request, ready to send.
#[derive(Debug, Clone)]
pub struct HttpCall {
    /// Name.
    pub name: String,
    /// Method.
    pub method: String,
    /// URL (no secrets).
    pub url: String,
    /// Headers (may hold secrets).
    pub headers: Vec<(String, Value)>,
    /// Body.
    pub body: Option<Vec<u8>>,
    /// Accepted statuses.
    pub expect_status: Vec<u16>,
}

/// Seeding, ready to run.
#[derive(Debug, Clone)]
pub struct SeedRun {
    /// Readiness URL.
    pub ready_url: String,
    /// How long to wait for it.
    pub ready_timeout: Duration,
    /// Requests.
    pub requests: Vec<HttpCall>,
    /// Apps behind deployment protection that the readiness URL or a request goes to.
    pub bypass: Vec<SeedBypass>,
}

/// An app with `protection_bypass` that seeding talks to: requests whose origin is the app's own
/// URL (`https://<domain>`) get its bypass header, no other request does.
#[derive(Debug, Clone)]
pub struct SeedBypass {
    /// The app, its project and domain.
    pub target: AppRef,
    /// `https://<domain>`: the origin requests must have to get the header.
    pub origin: String,
    /// Where the secret comes from, as configured.
    pub source: BypassSource,
    /// The secret when the configuration names a variable (`from_env`); `None`: the app host
    /// reads it from the project (or this is a plan, which reads no secret).
    pub secret: Option<SecretString>,
}

impl SeedBypass {
    /// Whether `url` goes to this app (same scheme, host and port as its own URL).
    pub fn covers(&self, url: &str) -> bool {
        match (url::Url::parse(url), url::Url::parse(&self.origin)) {
            (Ok(a), Ok(b)) => a.origin() == b.origin() && a.origin().is_tuple(),
            _ => false,
        }
    }
}

/// Everything rendered for one environment: for real by [`render_all`] (deploy), with
/// placeholders for what is not known by [`render_plan`] (plan).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The environment.
    pub name: PreviewName,
    /// The database stack.
    pub database: DatabaseSpec,
    /// The apps.
    pub apps: Vec<AppSpec>,
    /// Seeding.
    pub seed: Option<SeedRun>,
    /// Links for the report.
    pub links: Vec<Link>,
    /// Deployment environment name for the report.
    pub report_environment: String,
    /// The commit deployed (in a plan without one, a placeholder naming it).
    pub commit: String,
    /// The secret values (for masking; none in a plan).
    pub secrets: SecretValues,
    /// What the specs came from, as configured: what a plan shows and no host is sent.
    pub sources: Sources,
    scope: Scope,
    /// Each hook's working directory (canonical, confined to the repository; in a plan without
    /// [`Config::read_files`], as configured).
    workdirs: Vec<PathBuf>,
    mode: Mode,
}

/// What a [`Rendered`] environment's specs came from, as configured: what a plan shows beside
/// them, and no host is sent.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The database provider (`database.provider`).
    pub database_provider: String,
    /// The database provider's organization (`database.org`).
    pub database_org: Option<String>,
    /// Each app's provider, in the order of [`Rendered::apps`].
    pub app_providers: Vec<String>,
    /// The secrets' definitions, by name (a plan shows these instead of values).
    pub secrets: BTreeMap<String, SecretDef>,
    /// Whether the report includes the PR comment (`report.comment`).
    pub comment: bool,
}

/// How what is not known renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Deploy: every value is known; a reference without one is an error naming the field.
    Deploy,
    /// Plan: placeholders for what is not known (`<secret:NAME>`, `<repo.owner>`); a value a
    /// secret goes into is still a [`Value::Secret`], holding the placeholder.
    Plan,
}

/// Renders fields against one scope, in one mode.
#[derive(Clone, Copy)]
struct Fields<'a> {
    config: &'a Config,
    scope: &'a Scope,
    mode: Mode,
}

impl Fields<'_> {
    /// `f` rendered: for real (deploy), or with placeholders (plan).
    fn value(&self, f: &Field) -> Result<Value> {
        match self.mode {
            Mode::Deploy => f
                .template
                .render(self.scope)
                .map_err(|m| self.config.field_err(f, m)),
            Mode::Plan => {
                let shown = f.template.render_display(self.scope);
                Ok(if f.template.is_secret(self.scope) {
                    Value::Secret(SecretString::from(shown))
                } else {
                    Value::Plain(shown)
                })
            }
        }
    }

    /// `f` rendered as text (deploy: the value, exposed; plan: what it shows).
    fn text(&self, f: &Field) -> Result<String> {
        Ok(self.value(f)?.expose().to_string())
    }
}

/// Renders everything for a deploy. Seed bodies and hook directories are those
/// [`Config::read_files`] read; when it was not called, they are read here, with the same
/// confinement to the repository (found with `env`: see [`crate::repository`]).
///
/// # Errors
/// [`Error::Config`](crate::Error::Config) for missing variables, or files the configuration
/// may not use. Nothing is sent anywhere.
pub fn render_all(
    config: &Config,
    name: &PreviewName,
    inputs: &Inputs,
    secrets: SecretValues,
    env: EnvLookup<'_>,
) -> Result<Rendered> {
    let files = match &config.files {
        Some(f) => f.clone(),
        None => config.load_files(config.repository(env)?)?,
    };
    let scope = scope(config, name, inputs, Some(&secrets))?;
    let branch = inputs.branch.clone().unwrap_or_default();
    let commit = inputs.sha.clone().unwrap_or_default();
    let head = Head {
        branch,
        commit,
        bodies: files.bodies,
        workdirs: files.workdirs,
    };
    render_with(config, name, scope, Mode::Deploy, head, secrets, env)
}

/// Renders everything as a plan shows it: nothing is generated or read (no secret, no variable
/// but the projects' ids, no file); what is not known is a placeholder: secrets as
/// `<secret:NAME>` (still [`Value::Secret`]s), the branch and commit when `inputs` lack them as
/// `<head branch of PR #N>` and `<head commit of PR #N>`, other unknown references as
/// `<PATH>`, a project from a variable that is not set as `$VAR`. Seed bodies and hook
/// directories are those [`Config::read_files`] read, if it was called.
///
/// # Errors
/// [`Error::Config`](crate::Error::Config) if a name-like template cannot render (ruled out at
/// load).
pub fn render_plan(
    config: &Config,
    name: &PreviewName,
    inputs: &Inputs,
    env: EnvLookup<'_>,
) -> Result<Rendered> {
    let mut scope = scope(config, name, inputs, None)?;
    let pr = name.pr();
    let branch = inputs
        .branch
        .clone()
        .unwrap_or_else(|| format!("<head branch of PR #{pr}>"));
    let commit = inputs
        .sha
        .clone()
        .unwrap_or_else(|| format!("<head commit of PR #{pr}>"));
    scope
        .plain("pr.branch", branch.clone())
        .plain("pr.sha", commit.clone());
    let (bodies, workdirs) = match &config.files {
        Some(f) => (f.bodies.clone(), f.workdirs.clone()),
        None => (Vec::new(), configured_workdirs(config)),
    };
    let head = Head {
        branch,
        commit,
        bodies,
        workdirs,
    };
    render_with(
        config,
        name,
        scope,
        Mode::Plan,
        head,
        SecretValues::new(),
        env,
    )
}

/// Each hook's working directory as configured (not read, so not confined yet).
fn configured_workdirs(config: &Config) -> Vec<PathBuf> {
    let base = &config.base_dir;
    config
        .hooks
        .iter()
        .map(|h| {
            h.workdir
                .as_ref()
                .map_or(base.clone(), |p| base.join(&p.path))
        })
        .collect()
}

/// What one run deploys, beside the configuration: the PR's head and the files read for it.
struct Head {
    branch: String,
    commit: String,
    bodies: Vec<Option<Arc<Vec<u8>>>>,
    workdirs: Vec<PathBuf>,
}

/// The one walk over the configuration both modes share.
fn render_with(
    config: &Config,
    name: &PreviewName,
    scope: Scope,
    mode: Mode,
    head: Head,
    secrets: SecretValues,
    env: EnvLookup<'_>,
) -> Result<Rendered> {
    let f = Fields {
        config,
        scope: &scope,
        mode,
    };
    let database = database::database_in(f)?;
    let apps = apps::app_specs(f, name, &head.branch, env)?;
    let seed = match &config.seed {
        None => None,
        Some(s) => Some(seed::seed_run(f, s, &head.bodies, &apps, env)?),
    };
    let links = config
        .report
        .links
        .iter()
        .map(|(label, l)| {
            Ok(Link {
                label: label.clone(),
                url: f.text(l)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let sources = Sources {
        database_provider: config.database.provider.clone(),
        database_org: config.database.org.clone(),
        app_providers: config.apps.iter().map(|a| a.provider.clone()).collect(),
        secrets: config.secrets.clone(),
        comment: config.report.comment,
    };
    Ok(Rendered {
        name: name.clone(),
        database,
        apps,
        seed,
        links,
        report_environment: f.text(&config.report.environment)?,
        commit: head.commit,
        secrets,
        sources,
        workdirs: head.workdirs,
        mode,
        scope,
    })
}

impl Rendered {
    /// How `value`, one of this rendering's values, shows in a plan: as rendered when it comes
    /// from [`render_plan`] (its secrets are placeholders such as `<secret:NAME>`), and as
    /// `<redacted>` when it is a secret from [`render_all`] (a real value).
    pub fn shown(&self, value: &Value) -> String {
        match self.mode {
            Mode::Plan => value.expose().to_string(),
            Mode::Deploy => value.to_string(),
        }
    }

    /// Every secret value and every derived form that could appear in output (URLs with credentials,
    /// rendered env values that contain a secret), for masking. Values are exposed: handle with care.
    pub fn sensitive_values(&self) -> Vec<String> {
        use secrecy::ExposeSecret;
        let mut out: Vec<String> = self
            .secrets
            .iter()
            .map(|(_, v)| v.expose_secret().to_string())
            .collect();
        for app in &self.apps {
            for var in &app.env {
                if var.value.is_secret() {
                    out.push(var.value.expose().to_string());
                }
            }
        }
        for c in &self.database.containers {
            for v in c.env.values() {
                if v.is_secret() {
                    out.push(v.expose().to_string());
                }
            }
        }
        let bypass = self.seed.iter().flat_map(|s| &s.bypass);
        out.extend(
            bypass
                .filter_map(|b| b.secret.as_ref())
                .map(|v| v.expose_secret().to_string()),
        );
        out.sort();
        out.dedup();
        out
    }
}
