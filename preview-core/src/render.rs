//! Config × PR → [`Rendered`]: one environment's secrets, database spec, app specs, hooks, seed
//! requests and report links, rendered from a [`Config`].
//!
//! Two modes: with secret values (deploy) everything renders to real values; without (plan) the
//! [`Plan`](crate::pipeline::Plan) shows secrets as `<secret:NAME>` and never generates them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{Config, Field, ProjectRef, SecretDef, ServiceDef};
use crate::env::EnvLookup;
use crate::error::{Error, Result};
use crate::host::{
    AppRef, AppSpec, ContainerSpec, Credentials, DatabaseSpec, EnvVar, Link, ServiceEndpoint,
    ServiceSpec, TlsMode, Tunnels,
};
use crate::name::PreviewName;
use crate::secret::{SecretSource, SecretValues};
use crate::template::{Scope, Value, identity_scope};

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
    /// The secret when the configuration names a variable (`from_env`); `None`: the app host
    /// reads it from the project.
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

/// Everything rendered for one environment (deploy mode).
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
    /// The secret values (for masking).
    pub secrets: SecretValues,
    scope: Scope,
    /// Each hook's working directory (canonical, confined to the repository).
    workdirs: Vec<PathBuf>,
}

/// Resolves every secret of an environment: generated ones from `source`, imported ones from
/// the environment.
///
/// # Errors
/// [`Error::Config`] naming a missing imported variable; generator failures.
pub fn secrets(
    config: &Config,
    name: &PreviewName,
    source: &dyn SecretSource,
    env: EnvLookup<'_>,
) -> Result<SecretValues> {
    let mut values = SecretValues::new();
    for (sname, def) in &config.secrets {
        let v = match def {
            SecretDef::Generated {
                bytes, rotation, ..
            } => source.generate(name, sname, *rotation, *bytes)?,
            SecretDef::FromEnv { var } => match env(var) {
                Some(v) if !v.is_empty() => SecretString::from(v),
                _ => {
                    return Err(Error::config(format!(
                        "{}: secrets.{sname}: environment variable {var} is not set (set it, e.g. from a repository secret)",
                        config.origin
                    )));
                }
            },
        };
        values.insert(sname.clone(), v);
    }
    Ok(values)
}

/// The template scope of an environment. Without `secrets` (plan mode), secret values are
/// unknown and only display renders work.
pub fn scope(
    config: &Config,
    name: &PreviewName,
    inputs: &Inputs,
    secrets: Option<&SecretValues>,
) -> Result<Scope> {
    let mut scope = identity_scope(name, inputs.repo.as_deref());
    if let Some(b) = &inputs.branch {
        scope.plain("pr.branch", b.clone());
    }
    if let Some(s) = &inputs.sha {
        scope.plain("pr.sha", s.clone());
    }
    for sname in config.secrets.keys() {
        let value = secrets.and_then(|v| v.get(sname)).cloned();
        scope.secret(format!("secrets.{sname}"), sname.clone(), value);
    }
    let host = render_plain(config, &config.database.public_host, &scope)?;
    scope.plain("database.host", host.clone());
    for svc in &config.database.services {
        let ep = ServiceEndpoint {
            service: svc.name.clone(),
            host: host.clone(),
            port: svc.port,
            protocol: svc.protocol,
            tls: svc.tls,
        };
        define_endpoint(config, &mut scope, "services", svc, &ep, secrets.is_some())?;
    }
    for app in &config.apps {
        if let Some(d) = &app.domain {
            let domain = render_plain(config, d, &scope)?;
            scope.plain(
                format!("apps.{}.url", app.name),
                format!("https://{domain}"),
            );
            scope.plain(format!("apps.{}.domain", app.name), domain);
        }
    }
    Ok(scope)
}

fn define_endpoint(
    config: &Config,
    scope: &mut Scope,
    root: &str,
    svc: &ServiceDef,
    ep: &ServiceEndpoint,
    real: bool,
) -> Result<()> {
    let p = format!("{root}.{}", svc.name);
    scope
        .plain(format!("{p}.host"), ep.host.clone())
        .plain(format!("{p}.port"), ep.port.to_string())
        .plain(format!("{p}.address"), ep.address());
    let creds = credentials(config, svc, scope, real)?;
    match (&svc.password, real) {
        (Some(pw), false) => {
            // Plan mode: show the URL's shape with the password as a placeholder.
            const MARK: &str = "PREVIEWPASSWORDPLACEHOLDER";
            let shape = Credentials {
                user: svc.user.clone().unwrap_or_default(),
                password: Value::Plain(MARK.into()),
                database: svc.database.clone(),
            };
            let shown = ep
                .url(Some(&shape))
                .expose()
                .replace(MARK, &pw.template.render_display(scope));
            scope.secret_shape(format!("{p}.url"), shown);
        }
        _ => {
            scope.value(
                format!("{p}.url"),
                format!("{p}.url"),
                ep.url(creds.as_ref()),
            );
        }
    }
    Ok(())
}

fn credentials(
    config: &Config,
    svc: &ServiceDef,
    scope: &Scope,
    real: bool,
) -> Result<Option<Credentials>> {
    let (Some(user), Some(pw)) = (&svc.user, &svc.password) else {
        return Ok(None);
    };
    if !real {
        return Ok(None);
    }
    let password = pw
        .template
        .render(scope)
        .map_err(|m| config.field_err(pw, m))?;
    Ok(Some(Credentials {
        user: user.clone(),
        password,
        database: svc.database.clone(),
    }))
}

fn render_plain(config: &Config, f: &Field, scope: &Scope) -> Result<String> {
    let v = f
        .template
        .render(scope)
        .map_err(|m| config.field_err(f, m))?;
    Ok(v.expose().to_string())
}

fn render_value(config: &Config, f: &Field, scope: &Scope) -> Result<Value> {
    f.template.render(scope).map_err(|m| config.field_err(f, m))
}

/// Every environment variable the configuration reads that is not set, each as the error
/// rendering would give: the projects of apps (`project_from_env`) and, with `secrets`, the
/// imported secrets (`from_env`). Lets a command report them all in one run.
pub fn missing_env(config: &Config, env: EnvLookup<'_>, secrets: bool) -> Vec<Error> {
    let mut out = Vec::new();
    if secrets {
        for (sname, def) in &config.secrets {
            if let SecretDef::FromEnv { var } = def {
                if env(var).is_none_or(|v| v.is_empty()) {
                    out.push(Error::config(format!(
                        "{}: secrets.{sname}: environment variable {var} is not set (set it, e.g. from a repository secret)",
                        config.origin
                    )));
                }
            }
        }
    }
    for app in &config.apps {
        if let Err(e) = project(config, app, env) {
            out.push(e);
        }
    }
    out
}

/// The project of an app, resolved.
///
/// # Errors
/// [`Error::Config`] when it comes from a variable that is not set.
pub fn project(config: &Config, app: &crate::config::AppDef, env: EnvLookup<'_>) -> Result<String> {
    match &app.project {
        ProjectRef::Literal(p) => Ok(p.clone()),
        ProjectRef::FromEnv(var) => env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            Error::config(format!(
                "{}: apps.{}.project_from_env: environment variable {var} is not set",
                config.origin, app.name
            ))
        }),
    }
}

/// The app targets (project and domain) of an environment; enough to tear it down.
///
/// # Errors
/// [`Error::Config`] when a project variable is missing.
pub fn app_refs(config: &Config, name: &PreviewName, env: EnvLookup<'_>) -> Result<Vec<AppRef>> {
    let scope = identity_scope(name, None);
    config
        .apps
        .iter()
        .map(|a| {
            Ok(AppRef {
                app: a.name.clone(),
                project: project(config, a, env)?,
                domain: a
                    .domain
                    .as_ref()
                    .map(|d| render_plain(config, d, &scope))
                    .transpose()?,
            })
        })
        .collect()
}

/// Renders everything for a deploy. Seed bodies and hook directories are those
/// [`Config::read_files`] read; when it was not called, they are read here, with the same
/// confinement to the repository (found with `env`: see [`crate::repository`]).
///
/// # Errors
/// [`Error::Config`] for missing variables, or files the configuration may not use. Nothing is
/// sent anywhere.
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
    let database = database_spec(config, &scope)?;
    let branch = inputs.branch.clone().unwrap_or_default();
    let refs = app_refs(config, name, env)?;
    let mut apps = Vec::new();
    for (def, target) in config.apps.iter().zip(refs) {
        let mut vars = Vec::new();
        for (k, f) in &def.env {
            vars.push(EnvVar {
                key: k.clone(),
                value: render_value(config, f, &scope)?,
                sensitive: def.sensitive.contains(k),
            });
        }
        apps.push(AppSpec {
            target,
            branch: branch.clone(),
            env: vars,
            adopt_existing: def.adopt_existing,
            deploy_timeout: def.deploy_timeout,
            // The pipeline sets it from its secret source (plan and masking never need it).
            fingerprint_key: None,
        });
    }
    let seed = match &config.seed {
        None => None,
        Some(s) => {
            let mut requests = Vec::new();
            for (i, r) in s.requests.iter().enumerate() {
                let body = files
                    .bodies
                    .get(i)
                    .cloned()
                    .flatten()
                    .map(|b| b.as_ref().clone());
                let mut headers = Vec::new();
                for (k, f) in &r.headers {
                    headers.push((k.clone(), render_value(config, f, &scope)?));
                }
                requests.push(HttpCall {
                    name: r.name.clone(),
                    method: r.method.clone(),
                    url: render_plain(config, &r.url, &scope)?,
                    headers,
                    body,
                    expect_status: r.expect_status.clone(),
                });
            }
            let ready_url = render_plain(config, &s.ready_url, &scope)?;
            let bypass = seed_bypass(config, &apps, &ready_url, &requests, env)?;
            Some(SeedRun {
                ready_url,
                ready_timeout: s.ready_timeout,
                requests,
                bypass,
            })
        }
    };
    let links = config
        .report
        .links
        .iter()
        .map(|(label, f)| {
            Ok(Link {
                label: label.clone(),
                url: render_plain(config, f, &scope)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Rendered {
        name: name.clone(),
        database,
        apps,
        seed,
        links,
        report_environment: render_plain(config, &config.report.environment, &scope)?,
        secrets,
        scope,
        workdirs: files.workdirs,
    })
}

/// The protected apps seeding talks to, with the secret when it comes from a variable.
fn seed_bypass(
    config: &Config,
    apps: &[AppSpec],
    ready_url: &str,
    requests: &[HttpCall],
    env: EnvLookup<'_>,
) -> Result<Vec<SeedBypass>> {
    let mut out = Vec::new();
    for (def, spec) in config.apps.iter().zip(apps) {
        let (Some(source), Some(domain)) = (&def.protection_bypass, &spec.target.domain) else {
            continue;
        };
        let mut b = SeedBypass {
            target: spec.target.clone(),
            origin: format!("https://{domain}"),
            secret: None,
        };
        let used = std::iter::once(ready_url)
            .chain(requests.iter().map(|r| r.url.as_str()))
            .any(|u| b.covers(u));
        if !used {
            continue;
        }
        if let crate::config::BypassSource::FromEnv(var) = source {
            b.secret = Some(match env(var) {
                Some(v) if !v.trim().is_empty() => SecretString::from(v.trim().to_string()),
                _ => {
                    return Err(Error::config(format!(
                        "{}: apps.{}.protection_bypass.from_env: environment variable {var} is not set (set it to the project's Protection Bypass for Automation secret, or use protection_bypass = \"project\" to read it through the Vercel API)",
                        config.origin, def.name
                    )));
                }
            });
        }
        out.push(b);
    }
    Ok(out)
}

/// The database spec, rendered against `scope` (which must hold secret values).
///
/// # Errors
/// [`Error::Config`] if a secret value is missing from the scope.
pub fn database_spec(config: &Config, scope: &Scope) -> Result<DatabaseSpec> {
    let db = &config.database;
    let mut containers = Vec::new();
    for c in &db.containers {
        let mut env = BTreeMap::new();
        for (k, f) in &c.env {
            env.insert(k.clone(), render_value(config, f, scope)?);
        }
        containers.push(ContainerSpec {
            name: c.name.clone(),
            image: c.image.clone(),
            cmd: c.cmd.clone(),
            entrypoint: c.entrypoint.clone(),
            env,
            healthchecks: c.healthchecks.clone(),
            depends_on: c.depends_on.clone(),
        });
    }
    let mut services = Vec::new();
    for s in &db.services {
        services.push(ServiceSpec {
            name: s.name.clone(),
            internal_port: s.internal_port,
            port: s.port,
            tls: s.tls,
            protocol: s.protocol,
            credentials: credentials(config, s, scope, true)?,
            health_path: s.health_path.clone(),
        });
    }
    Ok(DatabaseSpec {
        region: db.region.clone(),
        size: db.size.clone(),
        restart: db.restart,
        containers,
        services,
        public_host: render_plain(config, &db.public_host, scope)?,
        ready_timeout: db.ready_timeout,
    })
}

/// The hooks, rendered with the tunnels open (their addresses and URLs join the scope).
///
/// # Errors
/// [`Error::Config`] if a template cannot render.
pub fn hooks(config: &Config, rendered: &Rendered, tunnels: &Tunnels) -> Result<Vec<HookRun>> {
    let mut scope = rendered.scope.clone();
    for svc in &config.database.services {
        if let Some(t) = tunnels.get(&svc.name) {
            let ep = ServiceEndpoint {
                service: svc.name.clone(),
                host: t.host.clone(),
                port: t.port,
                protocol: svc.protocol,
                // Tunnels bypass the edge: no TLS handler applies.
                tls: TlsMode::None,
            };
            define_endpoint(config, &mut scope, "tunnels", svc, &ep, true)?;
        }
    }
    config
        .hooks
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let argv = h
                .run
                .iter()
                .map(|a| render_plain(config, a, &scope))
                .collect::<Result<Vec<_>>>()?;
            let env = h
                .env
                .iter()
                .map(|(k, f)| Ok((k.clone(), render_value(config, f, &scope)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok(HookRun {
                name: h.name.clone(),
                argv,
                env,
                inherit_env: h.inherit_env.clone(),
                // Read and confined with the seed bodies ([`render_all`]); a hook without one
                // could only come from a Rendered of another configuration.
                workdir: rendered.workdirs.get(i).cloned().ok_or_else(|| {
                    Error::config(format!(
                        "{}: hooks[{i}]: rendered for another configuration",
                        config.origin
                    ))
                })?,
                timeout: h.timeout,
            })
        })
        .collect()
}

impl Rendered {
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
