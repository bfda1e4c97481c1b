//! The template scope of an environment, and its secrets.

use secrecy::SecretString;

use super::{Fields, Inputs, Mode};
use crate::config::{Config, Field, SecretDef, ServiceDef};
use crate::env::EnvLookup;
use crate::error::{Error, Result};
use crate::host::{Credentials, ServiceEndpoint};
use crate::name::PreviewName;
use crate::secret::{SecretSource, SecretValues};
use crate::template::{Scope, Value, identity_scope};

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

pub(super) fn define_endpoint(
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

pub(super) fn credentials(
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

pub(super) fn render_plain(config: &Config, f: &Field, scope: &Scope) -> Result<String> {
    let mode = Mode::Deploy;
    Fields {
        config,
        scope,
        mode,
    }
    .text(f)
}
