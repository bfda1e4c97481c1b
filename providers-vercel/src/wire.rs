//! Private serde types of the Vercel REST API (only the fields we use).
//!
//! Env var `value`s are never deserialised: what we need to know about a value is in the
//! fingerprint we keep in the var's `comment`, so secrets read back never enter this process. The
//! one secret read on purpose is a project's automation bypass ([`Project`]), which has no `Debug`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `target` is a string or an array of strings in responses.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Target {
    One(String),
    Many(Vec<String>),
}

impl Target {
    pub(crate) fn to_vec(&self) -> Vec<String> {
        match self {
            Target::One(s) => vec![s.clone()],
            Target::Many(v) => v.clone(),
        }
    }
}

/// An env var as listed (value deliberately absent).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Env {
    pub(crate) id: Option<String>,
    pub(crate) key: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) target: Option<Target>,
    pub(crate) git_branch: Option<String>,
    pub(crate) comment: Option<String>,
    pub(crate) created_at: Option<f64>,
    pub(crate) updated_at: Option<f64>,
}

impl Env {
    pub(crate) fn targets(&self) -> Vec<String> {
        self.target.as_ref().map(Target::to_vec).unwrap_or_default()
    }
}

/// `GET /v10/projects/{idOrName}/env`: `{envs, pagination?}` or a single env.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum EnvList {
    List { envs: Vec<Env> },
    One(Env),
}

impl EnvList {
    pub(crate) fn into_vec(self) -> Vec<Env> {
        match self {
            EnvList::List { envs } => envs,
            EnvList::One(e) => vec![e],
        }
    }
}

/// One item of the `POST /v10/projects/{idOrName}/env` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EnvWrite<'a> {
    pub(crate) key: &'a str,
    /// Exposed here only: this is where the value leaves the process.
    pub(crate) value: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) target: [&'static str; 1],
    pub(crate) git_branch: &'a str,
    pub(crate) comment: String,
}

/// `201 {created, failed[]}`; only `failed` matters.
#[derive(Debug, Deserialize)]
pub(crate) struct EnvCreated {
    #[serde(default)]
    pub(crate) failed: Vec<Failed>,
}

/// One failed item. Its `error.value` may echo a secret and is never read.
#[derive(Debug, Deserialize)]
pub(crate) struct Failed {
    pub(crate) error: FailedError,
}

/// The error of a failed item.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FailedError {
    pub(crate) code: String,
    pub(crate) key: Option<String>,
    pub(crate) env_var_key: Option<String>,
}

/// `DELETE /v1/projects/{idOrName}/env` body.
#[derive(Debug, Serialize)]
pub(crate) struct BatchRemove<'a> {
    pub(crate) ids: Vec<&'a str>,
}

/// `{deleted, ids}`.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchRemoved {
    pub(crate) ids: Vec<String>,
}

/// A project domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Domain {
    pub(crate) name: String,
    pub(crate) git_branch: Option<String>,
    pub(crate) redirect: Option<String>,
    pub(crate) created_at: Option<f64>,
}

/// `GET /v9/projects/{idOrName}/domains`.
#[derive(Debug, Deserialize)]
pub(crate) struct DomainList {
    pub(crate) domains: Vec<Domain>,
    pub(crate) pagination: Option<Pagination>,
}

/// Vercel's timestamp cursor.
#[derive(Debug, Deserialize)]
pub(crate) struct Pagination {
    pub(crate) next: Option<f64>,
}

/// `POST /v10/projects/{idOrName}/domains` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AddDomain<'a> {
    pub(crate) name: &'a str,
    pub(crate) git_branch: &'a str,
}

/// `PATCH /v9/projects/{idOrName}/domains/{domain}` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateDomain<'a> {
    pub(crate) git_branch: &'a str,
}

/// `POST /v13/deployments` body.
#[derive(Debug, Serialize)]
pub(crate) struct CreateDeployment<'a> {
    pub(crate) name: &'a str,
    pub(crate) project: &'a str,
    #[serde(rename = "gitSource")]
    pub(crate) git_source: GitSource<'a>,
    pub(crate) meta: BTreeMap<&'static str, &'a str>,
}

/// `{type:"github", org, repo, ref, sha}`.
#[derive(Debug, Serialize)]
pub(crate) struct GitSource<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) org: &'a str,
    pub(crate) repo: &'a str,
    #[serde(rename = "ref")]
    pub(crate) git_ref: &'a str,
    pub(crate) sha: &'a str,
}

/// `{code, message}` of a failed alias.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AliasError {
    pub(crate) code: String,
    pub(crate) message: String,
}

/// A deployment (create, get, cancel).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Deployment {
    pub(crate) id: String,
    pub(crate) url: String,
    pub(crate) ready_state: String,
    pub(crate) inspector_url: Option<String>,
    #[serde(default)]
    pub(crate) alias: Vec<String>,
    pub(crate) alias_error: Option<AliasError>,
    pub(crate) error_code: Option<String>,
    pub(crate) error_message: Option<String>,
}

/// An item of `GET /v6/deployments`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeploymentItem {
    pub(crate) uid: String,
    pub(crate) url: String,
    pub(crate) created: f64,
    pub(crate) state: Option<String>,
    pub(crate) ready_state: Option<String>,
    #[serde(default)]
    pub(crate) meta: BTreeMap<String, serde_json::Value>,
    pub(crate) inspector_url: Option<String>,
}

impl DeploymentItem {
    pub(crate) fn state(&self) -> &str {
        self.ready_state
            .as_deref()
            .or(self.state.as_deref())
            .unwrap_or("")
    }

    pub(crate) fn meta(&self, key: &str) -> Option<&str> {
        self.meta.get(key).and_then(|v| v.as_str())
    }
}

/// `GET /v6/deployments`.
#[derive(Debug, Deserialize)]
pub(crate) struct DeploymentList {
    pub(crate) deployments: Vec<DeploymentItem>,
    pub(crate) pagination: Option<Pagination>,
}

/// `POST /v2/deployments/{id}/aliases` body.
#[derive(Debug, Serialize)]
pub(crate) struct AssignAlias<'a> {
    pub(crate) alias: &'a str,
}

/// `GET /v9/projects/{idOrName}`: whether previews are protected, and the protection bypasses.
/// The keys of `protectionBypass` are the secrets themselves, hence no `Debug`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Project {
    #[serde(default)]
    pub(crate) protection_bypass: BTreeMap<String, BypassEntry>,
    #[serde(default)]
    pub(crate) sso_protection: Option<Protection>,
    #[serde(default)]
    pub(crate) password_protection: Option<Protection>,
    #[serde(default)]
    pub(crate) trusted_ips: Option<Protection>,
}

/// One of a project's protections (`ssoProtection`, `passwordProtection`, `trustedIps`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Protection {
    #[serde(default)]
    pub(crate) deployment_type: Option<String>,
}

/// What `protectionBypass` says about one secret.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BypassEntry {
    pub(crate) scope: String,
    #[serde(default)]
    pub(crate) created_at: Option<f64>,
}

impl Project {
    /// Whether a request to a custom domain of a preview meets a protection (every
    /// `deploymentType` but `all_except_custom_domains` covers them; an unknown one is assumed to).
    pub(crate) fn protects_preview_domains(&self) -> bool {
        [
            &self.sso_protection,
            &self.password_protection,
            &self.trusted_ips,
        ]
        .into_iter()
        .flatten()
        .any(|p| p.deployment_type.as_deref() != Some("all_except_custom_domains"))
    }
}
