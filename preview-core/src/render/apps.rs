//! `[apps.NAME]` rendered: each app's target (project, domain) and spec.

use super::scope::render_plain;
use super::{Fields, Mode};
use crate::config::{AppDef, Config, ProjectRef, SecretDef};
use crate::env::EnvLookup;
use crate::error::{Error, Result};
use crate::host::{AppRef, AppSpec, EnvVar};
use crate::name::PreviewName;
use crate::template::identity_scope;

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
pub fn project(config: &Config, app: &AppDef, env: EnvLookup<'_>) -> Result<String> {
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

/// The app targets as a plan shows them: a project from a variable that is not set as `$VAR`,
/// the domain rendered against the whole scope.
fn app_refs_shown(f: Fields<'_>, env: EnvLookup<'_>) -> Result<Vec<AppRef>> {
    f.config
        .apps
        .iter()
        .map(|a| {
            Ok(AppRef {
                app: a.name.clone(),
                project: match &a.project {
                    ProjectRef::Literal(p) => p.clone(),
                    ProjectRef::FromEnv(v) => env(v).unwrap_or_else(|| format!("${v}")),
                },
                domain: a.domain.as_ref().map(|d| f.text(d)).transpose()?,
            })
        })
        .collect()
}

/// The app specs, their env vars rendered.
pub(super) fn app_specs(
    f: Fields<'_>,
    name: &PreviewName,
    branch: &str,
    env: EnvLookup<'_>,
) -> Result<Vec<AppSpec>> {
    let refs = match f.mode {
        Mode::Deploy => app_refs(f.config, name, env)?,
        Mode::Plan => app_refs_shown(f, env)?,
    };
    let mut apps = Vec::new();
    for (def, target) in f.config.apps.iter().zip(refs) {
        let mut vars = Vec::new();
        for (k, v) in &def.env {
            vars.push(EnvVar {
                key: k.clone(),
                value: f.value(v)?,
                sensitive: def.sensitive.contains(k),
            });
        }
        apps.push(AppSpec {
            target,
            branch: branch.to_string(),
            env: vars,
            adopt_existing: def.adopt_existing,
            deploy_timeout: def.deploy_timeout,
            // The pipeline sets it from its secret source (plan and masking never need it).
            fingerprint_key: None,
        });
    }
    Ok(apps)
}
