//! `[apps.NAME]`: the apps every environment configures (branch-scoped env vars, a domain, a
//! deployment of the PR's head).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use toml::Spanned;

use super::Field;
use super::loader::Loader;
use super::raw::RawApp;
use super::vocabulary::{Ctx, Vocabulary};
use crate::error::Result;

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

/// Every app, in name order.
pub(super) fn apps(
    l: &Loader<'_>,
    raw: &BTreeMap<String, Spanned<RawApp>>,
    vocab: &Vocabulary,
) -> Result<Vec<AppDef>> {
    let mut apps = Vec::new();
    for (name, a) in raw {
        apps.push(app(l, name, a, vocab)?);
    }
    Ok(apps)
}

fn app(l: &Loader<'_>, name: &str, a: &Spanned<RawApp>, vocab: &Vocabulary) -> Result<AppDef> {
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
        .map(|d| l.field(d, format!("{key}.domain"), Ctx::Name, vocab))
        .transpose()?;
    let mut env = BTreeMap::new();
    for (k, v) in &ar.env {
        let fk = format!("{key}.env.{k}");
        l.env_key(k, &v.span(), &fk)?;
        env.insert(k.clone(), l.field(v, fk, Ctx::App, vocab)?);
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
        Some(v) => Some(bypass(l, v, &format!("{key}.protection_bypass"))?),
    };
    Ok(AppDef {
        protection_bypass,
        name: name.to_string(),
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
    })
}

fn bypass(l: &Loader<'_>, v: &Spanned<toml::Value>, key: &str) -> Result<BypassSource> {
    const VALID: &str = "use \"project\" (the project's Protection Bypass for Automation secret, read through the Vercel API) or { from_env = \"VARIABLE\" } (a variable holding it)";
    match v.get_ref() {
        toml::Value::String(word) if word == "project" => Ok(BypassSource::Project),
        toml::Value::Table(t) if t.len() == 1 => match t.get("from_env") {
            Some(toml::Value::String(var)) => {
                l.env_key(var, &v.span(), &format!("{key}.from_env"))?;
                Ok(BypassSource::FromEnv(var.clone()))
            }
            _ => Err(l.err(&v.span(), key, VALID)),
        },
        toml::Value::String(word) => {
            Err(l.err(&v.span(), key, format!("{word:?} is not a source: {VALID}")))
        }
        _ => Err(l.err(&v.span(), key, VALID)),
    }
}
