//! [`VercelApps`]: the [`AppHost`] over the Vercel REST API.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::de::DeserializeOwned;
use url::Url;

use preview_core::name::check_hostname;
use preview_core::secrecy::SecretString;
use preview_core::{
    AppDeployment, AppHost, AppRef, AppSpec, AppStatus, Commit, DigestKey, Error, Idempotency,
    Naming, Outcome, Owned, PreviewName, ProtectionBypass, ResourceChange, Result, RetryConfig,
    retry,
};

use crate::builder::VercelAppsBuilder;
use crate::errors::{self, PROVIDER};
use crate::wire;

/// Start of the ownership marker kept in the `comment` of every env var we write:
/// `managed-by:preview env=<PreviewName> pr=<n> fp=<fingerprint>`. Ownership is the `env=` field
/// alone; `fp=` is a keyed digest of what was written (see [`AppSpec::fingerprint_key`]), 32 hex
/// digits. Vars written before fingerprints were keyed carry a 16-digit unkeyed one: they are still
/// ours (teardown and sweep read only `env=`), and the next deploy rewrites them once.
pub const MARKER: &str = "managed-by:preview";

/// The header that lets automation through a project's Deployment Protection ("Protection
/// Bypass for Automation"); its value is the project's bypass secret.
pub const PROTECTION_BYPASS_HEADER: &str = "x-vercel-protection-bypass";

/// The deployment `meta` key naming the environment a deployment was made for.
pub const META_ENV: &str = "previewEnv";

/// The deployment `meta` key holding a digest of the env vars it was built with (their keys and
/// fingerprints): a deployment carrying the current digest has the current values, even if a
/// var was re-written with the same value after it was created (two runs at once both write).
pub const META_VARS: &str = "previewVars";

/// Deployment states that are still moving.
const IN_PROGRESS: &str = "QUEUED,BUILDING,INITIALIZING";

/// Most pages of a list we follow (a safety bound, 100 items each).
const MAX_PAGES: usize = 50;

/// The Vercel [`AppHost`]: branch-scoped env vars, branch domains and git deployments.
///
/// Ownership: every env var we write carries [`MARKER`] (with the environment's name) in its
/// `comment`; deployments carry the name in `meta.previewEnv`. Domains cannot carry a marker: a
/// domain is recognised as ours through its `gitBranch`, which must be the branch of our marked env
/// vars. Teardown therefore removes the domain *before* the vars, so an interrupted teardown still
/// leaves the marked vars that lead back to it.
///
/// - `apply_app` reads the project's whole env list: our vars left on another branch (the PR's head
///   branch was renamed) are removed and our domain is moved to the new branch.
/// - `deploy_app` reuses a deployment of the same commit carrying our `meta` and created after our
///   vars' last update; otherwise it creates one from `gitSource`, waits, and aliases the domain.
/// - `delete_app` cancels only in-flight deployments carrying our `meta` (never git-triggered
///   ones, which may be a branch's production builds); finished deployments are left to Vercel's
///   retention and do not count in `get_app`.
#[derive(Clone)]
pub struct VercelApps {
    http: reqwest::Client,
    auth: HeaderValue,
    base: Url,
    team_id: Option<String>,
    waits: Waits,
    poll_unit: Duration,
    retry: RetryConfig,
    /// Fingerprint key for specs that bring none (see [`AppSpec::fingerprint_key`]).
    own_key: DigestKey,
}

/// The time source of deployment waits: tokio time, or (feature `testing`) a virtual clock.
///
/// Why not only tokio's paused clock in tests: with real sockets (wiremock), a paused runtime that
/// waits for a response is idle, so it auto-advances to the next timer, which is reqwest's
/// request or connect timeout, and the request fails spuriously.
#[derive(Debug, Clone, Default)]
pub(crate) enum Waits {
    #[default]
    Tokio,
    #[cfg(feature = "testing")]
    Virtual(crate::testing::VirtualClock),
}

struct Stopwatch {
    tokio: tokio::time::Instant,
    #[cfg(feature = "testing")]
    virt: Duration,
}

impl Waits {
    fn start(&self) -> Stopwatch {
        Stopwatch {
            tokio: tokio::time::Instant::now(),
            #[cfg(feature = "testing")]
            virt: match self {
                Waits::Virtual(c) => c.now(),
                Waits::Tokio => Duration::ZERO,
            },
        }
    }

    fn elapsed(&self, sw: &Stopwatch) -> Duration {
        match self {
            Waits::Tokio => sw.tokio.elapsed(),
            #[cfg(feature = "testing")]
            Waits::Virtual(c) => c.now().saturating_sub(sw.virt),
        }
    }

    async fn sleep(&self, d: Duration) {
        match self {
            Waits::Tokio => tokio::time::sleep(d).await,
            #[cfg(feature = "testing")]
            Waits::Virtual(c) => c.advance(d),
        }
    }
}

impl fmt::Debug for VercelApps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VercelApps")
            .field("base_url", &self.base.as_str())
            .field("team_id", &self.team_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for VercelApps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.team_id {
            Some(t) => write!(f, "vercel(team={t})"),
            None => f.write_str("vercel(personal)"),
        }
    }
}

/// Delay before the next status poll, after `elapsed` of waiting: 1 s for the first 15 s, then
/// 5 s up to a minute, 15 s up to five minutes, 30 s after that (as `@vercel/client` does).
pub fn poll_delay(elapsed: Duration) -> Duration {
    Duration::from_secs(match elapsed.as_secs() {
        0..15 => 1,
        15..60 => 5,
        60..300 => 15,
        _ => 30,
    })
}

/// Whether a deployment state is final and failed: `ERROR`, `CANCELED` or any `*_ERROR`.
pub fn is_failed_state(state: &str) -> bool {
    state == "ERROR" || state == "CANCELED" || state.ends_with("_ERROR")
}

/// The guard every env write and delete passes through: only vars whose target is exactly
/// `["preview"]` and that are scoped to a git branch are ever touched. Anything else (a
/// production or development var, a project-wide preview var) is refused before a request is sent.
///
/// # Errors
/// [`Error::Config`] naming the key.
pub fn guard_preview_only(key: &str, target: &[String], git_branch: Option<&str>) -> Result<()> {
    let preview_only = target.len() == 1 && target[0] == "preview";
    let branch_scoped = git_branch.is_some_and(|b| !b.is_empty());
    if preview_only && branch_scoped {
        return Ok(());
    }
    Err(Error::config(format!(
        "refusing to write or delete Vercel env var {key}: preview only manages branch-scoped vars \
         whose target is exactly [\"preview\"] (this one targets {target:?}{})",
        if branch_scoped {
            ""
        } else {
            " and has no gitBranch"
        }
    )))
}

/// The marker parsed back from an env var's comment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    env: String,
    pr: u32,
    fp: Option<String>,
}

fn parse_mark(comment: &str) -> Option<Mark> {
    let rest = comment.strip_prefix(MARKER)?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let (mut env, mut pr, mut fp) = (None, None, None);
    for field in rest.split_whitespace() {
        if let Some(v) = field.strip_prefix("env=") {
            env = Some(v.to_string());
        } else if let Some(v) = field.strip_prefix("pr=") {
            pr = v.parse::<u32>().ok();
        } else if let Some(v) = field.strip_prefix("fp=") {
            fp = Some(v.to_string());
        }
    }
    Some(Mark {
        env: env?,
        pr: pr?,
        fp,
    })
}

fn marker_comment(name: &PreviewName, fingerprint: &str) -> String {
    format!("{MARKER} env={name} pr={} fp={fingerprint}", name.pr())
}

/// Recovers the [`PreviewName`] of a marker: the name must be `{prefix}-{pr}` or
/// `{prefix}-{pr}-{suffix}` for a valid [`Naming`]; anything else is not ours.
fn preview_name(mark: &Mark) -> Option<PreviewName> {
    let s = mark.env.as_str();
    let digits = mark.pr.to_string();
    for (i, _) in s.match_indices(&digits) {
        let Some(prefix) = s[..i].strip_suffix('-') else {
            continue;
        };
        let after = &s[i + digits.len()..];
        let suffix = match after.strip_prefix('-') {
            Some(sfx) => sfx,
            None if after.is_empty() => "",
            None => continue,
        };
        let found = Naming::new(prefix, suffix)
            .ok()
            .and_then(|n| n.parse(s))
            .filter(|name| name.pr().get() == mark.pr);
        if found.is_some() {
            return found;
        }
    }
    None
}

fn owned_by(env: &wire::Env, name: &PreviewName) -> bool {
    env.comment
        .as_deref()
        .and_then(parse_mark)
        .is_some_and(|m| m.env == name.as_str())
}

/// A keyed digest of what we wrote (environment, key, type, value), kept in the comment so an
/// unchanged var is recognised without reading its value back (a `sensitive` value cannot be read
/// back at all). Keyed (HMAC-SHA256), because the comment is readable by everyone on the team: an
/// unkeyed hash of a low-entropy value could be confirmed offline by hashing guesses. 128 bits.
fn fingerprint(key: &DigestKey, name: &PreviewName, var: &str, kind: &str, value: &str) -> String {
    key.hex(&[name.as_str(), var, kind, value], 16)
}

/// A digest of our vars' keys and fingerprints (`None` when one has no fingerprint): what a
/// deployment built with them carries in [`META_VARS`]. Keyed like the fingerprints, so runs of
/// one environment (same master) agree on it.
fn vars_digest(key: &DigestKey, vars: &[wire::Env]) -> Option<String> {
    let mut pairs: Vec<(&str, String)> = vars
        .iter()
        .map(|e| {
            let fp = e.comment.as_deref().and_then(parse_mark)?.fp?;
            Some((e.key.as_str(), fp))
        })
        .collect::<Option<_>>()?;
    if pairs.is_empty() {
        return None;
    }
    pairs.sort();
    let parts: Vec<&str> = pairs.iter().flat_map(|(k, fp)| [*k, fp.as_str()]).collect();
    Some(key.hex(&parts, 8))
}

fn timestamp(ms: f64) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(ms as i64).ok()
}

fn https(host: &str) -> String {
    if host.starts_with("https://") || host.starts_with("http://") {
        host.to_string()
    } else {
        format!("https://{host}")
    }
}

fn change(kind: &str, id: impl Into<String>, outcome: Outcome) -> ResourceChange {
    ResourceChange::new(PROVIDER, kind, id, outcome)
}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 256
}

fn validate_branch(branch: &str) -> Result<()> {
    // The branch is untrusted text: say what is wrong with it without printing it.
    let count = branch.chars().count();
    let why = if branch.is_empty() {
        Some("it is empty".to_string())
    } else if count > 250 {
        Some(format!("it has {count} characters"))
    } else {
        branch.chars().position(char::is_control).map(|i| {
            format!(
                "character {} is a control character (a newline, an ANSI escape…)",
                i + 1
            )
        })
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Error::config(format!(
            "vercel: the PR's head branch cannot scope env vars: {why}; Vercel takes 1-250 characters without control characters (rename the branch)"
        ))),
    }
}

fn validate_target(target: &AppRef) -> Result<()> {
    if target.project.trim().is_empty() {
        return Err(Error::config(format!(
            "app {}: the Vercel project is empty",
            target.app
        )));
    }
    if let Some(domain) = &target.domain {
        check_hostname(domain)
            .map_err(|why| Error::config(format!("app {}: domain {domain:?} {why}", target.app)))?;
    }
    Ok(())
}

fn validate_spec(spec: &AppSpec) -> Result<()> {
    validate_target(&spec.target)?;
    validate_branch(&spec.branch)?;
    let mut seen = BTreeSet::new();
    for var in &spec.env {
        if !valid_key(&var.key) {
            return Err(Error::config(format!(
                "app {}: env var name {:?} is invalid: use letters, digits and '_', not starting with a digit",
                spec.target.app, var.key
            )));
        }
        if !seen.insert(var.key.as_str()) {
            return Err(Error::config(format!(
                "app {}: env var {} is set twice",
                spec.target.app, var.key
            )));
        }
    }
    Ok(())
}

/// The commit a deployment would be made of, against the spec it deploys; its `owner`/`name`.
fn validate_commit<'c>(spec: &AppSpec, commit: &'c Commit) -> Result<(&'c str, &'c str)> {
    if commit.branch != spec.branch {
        return Err(Error::config(
            "the commit to deploy is not on the branch the env vars are scoped to",
        ));
    }
    if commit.sha.len() < 7 || !commit.sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::config(format!(
            "commit {:?} is not a hexadecimal SHA",
            commit.sha.escape_debug().take(64).collect::<String>()
        )));
    }
    split_repo(&commit.repo)
}

/// `owner/name` → (`owner`, `name`).
fn split_repo(repo: &str) -> Result<(&str, &str)> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((org, name)) if ok(org) && ok(name) => Ok((org, name)),
        _ => Err(Error::config(format!(
            "repository {repo:?} is not of the form owner/name"
        ))),
    }
}

impl VercelApps {
    /// A builder.
    pub fn builder() -> VercelAppsBuilder {
        VercelAppsBuilder::new()
    }

    /// A builder from `VERCEL_TOKEN`, `VERCEL_TEAM_ID`/`VERCEL_ORG_ID` and `VERCEL_API_URL`.
    pub fn from_env() -> VercelAppsBuilder {
        VercelAppsBuilder::from_env()
    }

    pub(crate) fn new(
        http: reqwest::Client,
        auth: HeaderValue,
        base: Url,
        team_id: Option<String>,
        waits: Waits,
        poll_unit: Duration,
        retry: RetryConfig,
    ) -> Result<Self> {
        Ok(Self {
            http,
            auth,
            base,
            team_id,
            waits,
            poll_unit,
            retry,
            own_key: DigestKey::random()?,
        })
    }

    /// Builds a URL from path segments (each percent-encoded) and query pairs; adds `teamId`.
    ///
    /// # Errors
    /// [`Error::Config`] for a segment that is empty, `.` or `..`: percent-encoding leaves those
    /// as they are and URL parsing resolves them (`/v10/projects/../env` is `/v10/env`), so a
    /// project or deployment id spelled that way would change the route.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url> {
        if let Some(bad) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
            return Err(Error::config(format!(
                "{bad:?} cannot be a Vercel project or deployment id: it would change the request's path"
            )));
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::config("the Vercel base URL cannot carry a path"))?
            .pop_if_empty()
            .extend(segments);
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
            if let Some(team) = &self.team_id {
                q.append_pair("teamId", team);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    /// Sends one request and decodes a 2xx body, re-sending it after a transient failure as far as
    /// its idempotency allows (see [`VercelAppsBuilder::retry`](crate::VercelAppsBuilder::retry)).
    ///
    /// Why here and not only in the pipeline: one trait call is several requests (a deploy polls
    /// many times); retried only as a whole, one flaky poll throws the whole attempt away. Giving
    /// up here is `RetriesExhausted`, which the pipeline does not retry again.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        self.call_with_id(method, url, body).await.map(|(v, _)| v)
    }

    /// Like [`call`](Self::call), also returning the response's request id (`x-vercel-id`), for
    /// errors that a 2xx body reports (env `failed[]`).
    async fn call_with_id<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<(T, Option<String>)> {
        // A POST creates, except the env write, which is an upsert (`?upsert=true`): sending it
        // twice leaves the same variables.
        let upsert = url.query_pairs().any(|(k, v)| k == "upsert" && v == "true");
        let idempotency = if method == Method::POST && !upsert {
            Idempotency::NonIdempotent
        } else {
            Idempotency::Idempotent
        };
        let what = format!("vercel {method} {}", url.path());
        retry(&self.retry, &what, idempotency, || {
            self.send_once(method.clone(), url.clone(), body.as_ref())
        })
        .await
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<(T, Option<String>)> {
        let path = url.path().to_string();
        let mut req = self
            .http
            .request(method.clone(), url)
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| preview_core::http::transport_error(PROVIDER, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| preview_core::http::transport_error(PROVIDER, e))?;
        tracing::debug!(%method, %path, status, "vercel request");
        if !(200..300).contains(&status) {
            return Err(errors::from_response(
                status,
                &headers,
                &bytes,
                jiff::Timestamp::now(),
            ));
        }
        let bytes = if bytes.is_empty() { &b"{}"[..] } else { &bytes };
        // The decode error's position is enough; its text could quote the body.
        let value = serde_json::from_slice(bytes).map_err(|e| Error::Api {
            provider: PROVIDER,
            status,
            message: format!(
                "unexpected response body for {method} {path} ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
            request_id: errors::request_id(&headers),
        })?;
        Ok((value, errors::request_id(&headers)))
    }

    async fn call_opt<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>> {
        match self.call(method, url, body).await {
            Ok(v) => Ok(Some(v)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Env vars of a project; with `branch`, only those scoped to it.
    async fn list_env(&self, project: &str, branch: Option<&str>) -> Result<Vec<wire::Env>> {
        let query: Vec<(&str, &str)> = branch.map(|b| ("gitBranch", b)).into_iter().collect();
        let url = self.url(&["v10", "projects", project, "env"], &query)?;
        let list: wire::EnvList = self.call(Method::GET, url, None).await?;
        let envs = list.into_vec();
        Ok(match branch {
            Some(b) => envs
                .into_iter()
                .filter(|e| e.git_branch.as_deref() == Some(b))
                .collect(),
            None => envs,
        })
    }

    async fn get_domain(&self, project: &str, domain: &str) -> Result<Option<wire::Domain>> {
        let url = self.url(&["v9", "projects", project, "domains", domain], &[])?;
        self.call_opt(Method::GET, url, None).await
    }

    async fn list_domains(&self, project: &str) -> Result<Vec<wire::Domain>> {
        let mut out = Vec::new();
        let mut until: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("limit", "100")];
            if let Some(u) = &until {
                query.push(("until", u));
            }
            let url = self.url(&["v9", "projects", project, "domains"], &query)?;
            let page: wire::DomainList = self.call(Method::GET, url, None).await?;
            let empty = page.domains.is_empty();
            out.extend(page.domains);
            match page.pagination.and_then(|p| p.next) {
                Some(next) if !empty => until = Some(format!("{}", next as i64)),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Deployments of a project, newest first, following at most `pages` pages.
    async fn list_deployments(
        &self,
        project: &str,
        filters: &[(&str, &str)],
        pages: usize,
    ) -> Result<Vec<wire::DeploymentItem>> {
        let mut out = Vec::new();
        let mut until: Option<String> = None;
        for _ in 0..pages.min(MAX_PAGES) {
            let mut query = vec![("projectId", project), ("limit", "100")];
            query.extend_from_slice(filters);
            if let Some(u) = &until {
                query.push(("until", u));
            }
            let url = self.url(&["v6", "deployments"], &query)?;
            let page: wire::DeploymentList = self.call(Method::GET, url, None).await?;
            let empty = page.deployments.is_empty();
            out.extend(page.deployments);
            match page.pagination.and_then(|p| p.next) {
                Some(next) if !empty => until = Some(format!("{}", next as i64)),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn get_deployment(&self, id: &str) -> Result<wire::Deployment> {
        let url = self.url(&["v13", "deployments", id], &[])?;
        self.call(Method::GET, url, None).await
    }

    /// Is the existing domain ours for this branch? Otherwise a clear conflict.
    fn check_domain(project: &str, d: &wire::Domain, branch: &str) -> Result<()> {
        if d.git_branch.as_deref() == Some(branch) && d.redirect.is_none() {
            return Ok(());
        }
        let serves = match (&d.git_branch, &d.redirect) {
            (_, Some(_)) => "redirects elsewhere",
            (Some(_), None) => "serves another branch",
            (None, None) => "serves the production deployment",
        };
        Err(Error::Conflict {
            provider: PROVIDER,
            message: format!(
                "domain {} is already on project {project} but {serves}, not this PR's branch; remove it or pick another domain",
                d.name
            ),
            request_id: None,
        })
    }

    /// Adds the domain for the branch; a 400/409 is resolved by looking again.
    async fn add_domain(&self, project: &str, domain: &str, branch: &str) -> Result<Outcome> {
        let body = serde_json::to_value(wire::AddDomain {
            name: domain,
            git_branch: branch,
        })
        .map_err(|e| Error::failed("vercel: encode domain", e.to_string()))?;
        let url = self.url(&["v10", "projects", project, "domains"], &[])?;
        match self
            .call::<serde_json::Value>(Method::POST, url, Some(body))
            .await
        {
            Ok(_) => Ok(Outcome::Created),
            Err(err @ (Error::Conflict { .. } | Error::Api { status: 400, .. })) => {
                // Added concurrently (400 "already on the project") or on another project (409).
                match self.get_domain(project, domain).await? {
                    Some(d) => Self::check_domain(project, &d, branch).map(|()| Outcome::Unchanged),
                    None => Err(match err {
                        Error::Conflict { request_id, .. } => Error::Conflict {
                            provider: PROVIDER,
                            message: format!(
                                "domain {domain} belongs to another Vercel project or account"
                            ),
                            request_id,
                        },
                        other => other,
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Polls a deployment until it is ready, fails, or `timeout` passes.
    async fn wait_ready(&self, id: &str, timeout: Duration) -> Result<wire::Deployment> {
        let start = self.waits.start();
        loop {
            let d = self.get_deployment(id).await?;
            if d.ready_state == "READY" {
                if let Some(ae) = &d.alias_error {
                    return Err(Error::failed(
                        format!("vercel deployment {id}"),
                        format!(
                            "state READY but aliasing failed, code {}: {}; inspect at {}",
                            ae.code,
                            preview_core::http::truncate(&ae.message, 300),
                            d.inspector_url.as_deref().unwrap_or("(no inspector URL)")
                        ),
                    ));
                }
                return Ok(d);
            }
            if is_failed_state(&d.ready_state) {
                return Err(Error::failed(
                    format!("vercel deployment {id}"),
                    format!(
                        "state {}, code {}: {}; inspect at {}",
                        d.ready_state,
                        d.error_code.as_deref().unwrap_or("(none)"),
                        preview_core::http::truncate(
                            d.error_message.as_deref().unwrap_or("(no message)"),
                            300
                        ),
                        d.inspector_url.as_deref().unwrap_or("(no inspector URL)")
                    ),
                ));
            }
            let elapsed = self.waits.elapsed(&start);
            if elapsed >= timeout {
                return Err(Error::Timeout {
                    what: format!("vercel deployment {id}"),
                    waited: elapsed,
                    detail: format!(
                        "last state {}; inspect at {}",
                        d.ready_state,
                        d.inspector_url.as_deref().unwrap_or("(no inspector URL)")
                    ),
                });
            }
            // The schedule is in units of `poll_unit` (1 s unless a benchmark scales time).
            let ratio = self.poll_unit.as_secs_f64();
            let delay = poll_delay(elapsed.div_f64(ratio))
                .mul_f64(ratio)
                .min(timeout - elapsed);
            tracing::debug!(id, state = %d.ready_state, delay_ms = delay.as_millis() as u64, "waiting for the deployment");
            self.waits.sleep(delay).await;
        }
    }
}

#[async_trait]
impl AppHost for VercelApps {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, fields(env = %name, project = %target.project))]
    async fn get_app(&self, name: &PreviewName, target: &AppRef) -> Result<Option<AppStatus>> {
        validate_target(target)?;
        let project = target.project.as_str();
        let ours: Vec<wire::Env> = self
            .list_env(project, None)
            .await?
            .into_iter()
            .filter(|e| owned_by(e, name))
            .collect();
        let branches: BTreeSet<&str> = ours
            .iter()
            .filter_map(|e| e.git_branch.as_deref())
            .collect();
        let mut env_keys: Vec<String> = ours.iter().map(|e| e.key.clone()).collect();
        env_keys.sort();
        env_keys.dedup();
        let domain = match &target.domain {
            Some(d) => self.get_domain(project, d).await?.and_then(|d| {
                let linked = d
                    .git_branch
                    .as_deref()
                    .is_some_and(|b| branches.is_empty() || branches.contains(b));
                linked.then_some(d.name)
            }),
            None => None,
        };
        // Deployments alone are not something the environment still holds: teardown leaves
        // finished ones to Vercel's retention, so they do not keep an environment alive.
        if env_keys.is_empty() && domain.is_none() {
            return Ok(None);
        }
        let branch_filter: Vec<(&str, &str)> = match branches.iter().next() {
            Some(b) if branches.len() == 1 => vec![("branch", *b)],
            _ => Vec::new(),
        };
        let deployment = self
            .list_deployments(project, &branch_filter, 1)
            .await?
            .into_iter()
            .filter(|d| d.meta(META_ENV) == Some(name.as_str()))
            .max_by(|a, b| a.created.total_cmp(&b.created))
            .map(|d| AppDeployment {
                id: d.uid.clone(),
                url: https(&d.url),
                domain_url: None,
                state: d.state().to_string(),
                inspector_url: d.inspector_url.clone(),
                sha: d.meta("githubCommitSha").unwrap_or_default().to_string(),
            });
        Ok(Some(AppStatus {
            env_keys,
            domain,
            deployment,
        }))
    }

    #[tracing::instrument(skip_all, fields(env = %name, project = %spec.target.project))]
    async fn apply_app(&self, name: &PreviewName, spec: &AppSpec) -> Result<Vec<ResourceChange>> {
        validate_spec(spec)?;
        let project = spec.target.project.as_str();
        let branch = spec.branch.as_str();
        let preview = vec!["preview".to_string()];

        // Observe. The whole list, not only this branch: vars we own on another branch (the PR's
        // head branch was renamed) are stale, and lead back to a domain that is still ours.
        let all = self.list_env(project, None).await?;
        let (existing, elsewhere): (Vec<wire::Env>, Vec<wire::Env>) = all
            .into_iter()
            .partition(|e| e.git_branch.as_deref() == Some(branch));
        let elsewhere: Vec<wire::Env> = elsewhere
            .into_iter()
            .filter(|e| owned_by(e, name) && e.git_branch.is_some())
            .collect();
        let old_branches: BTreeSet<&str> = elsewhere
            .iter()
            .filter_map(|e| e.git_branch.as_deref())
            .collect();
        let domain = match &spec.target.domain {
            Some(d) => Some((d.as_str(), self.get_domain(project, d).await?)),
            None => None,
        };

        // Decide, refusing before any write.
        let mut changes = Vec::new();
        let mut writes = Vec::new();
        let mut unowned = Vec::new();
        let fp_key = spec.fingerprint_key.as_ref().unwrap_or(&self.own_key);
        for var in &spec.env {
            let kind = if var.sensitive {
                "sensitive"
            } else {
                "encrypted"
            };
            // A var still carrying an unkeyed fingerprint (written before they were keyed)
            // differs here, so it is rewritten once with the keyed one.
            let fp = fingerprint(fp_key, name, &var.key, kind, var.value.expose());
            let same_key: Vec<&wire::Env> = existing.iter().filter(|e| e.key == var.key).collect();
            let ours = same_key.iter().find(|e| owned_by(e, name));
            let outcome = match ours {
                Some(e) => {
                    let mark = e.comment.as_deref().and_then(parse_mark);
                    let same = mark.and_then(|m| m.fp).as_deref() == Some(fp.as_str())
                        && e.kind == kind
                        && e.targets() == preview;
                    if same {
                        Outcome::Unchanged
                    } else {
                        Outcome::Updated
                    }
                }
                None if same_key.is_empty() => Outcome::Created,
                None if spec.adopt_existing => Outcome::Updated,
                None => {
                    unowned.push(var.key.as_str());
                    continue;
                }
            };
            changes.push(change("env_var", format!("{project}/{}", var.key), outcome));
            if outcome != Outcome::Unchanged {
                guard_preview_only(&var.key, &preview, Some(branch))?;
                writes.push(wire::EnvWrite {
                    key: &var.key,
                    value: var.value.expose(),
                    kind,
                    target: ["preview"],
                    git_branch: branch,
                    comment: marker_comment(name, &fp),
                });
            }
        }
        if !unowned.is_empty() {
            return Err(Error::Conflict {
                provider: PROVIDER,
                message: format!(
                    "env vars {} already exist on project {project} for this branch and are not managed by preview; remove them or set adopt_existing",
                    unowned.join(", ")
                ),
                request_id: None,
            });
        }
        let wanted: BTreeSet<&str> = spec.env.iter().map(|v| v.key.as_str()).collect();
        let stale: Vec<&wire::Env> = existing
            .iter()
            .filter(|e| owned_by(e, name) && !wanted.contains(e.key.as_str()))
            .chain(elsewhere.iter())
            .collect();
        for e in &stale {
            guard_preview_only(&e.key, &e.targets(), e.git_branch.as_deref())?;
        }
        // Our domain still serving the old branch moves to the new one.
        let moved = |d: &wire::Domain| {
            d.redirect.is_none()
                && d.git_branch
                    .as_deref()
                    .is_some_and(|b| old_branches.contains(b))
        };
        let foreign_domain = domain
            .as_ref()
            .and_then(|(_, d)| d.as_ref())
            .filter(|d| !moved(d));
        if let Some(d) = foreign_domain {
            Self::check_domain(project, d, branch)?;
        }

        // Act.
        if !writes.is_empty() {
            let body = serde_json::to_value(&writes)
                .map_err(|e| Error::failed("vercel: encode env vars", e.to_string()))?;
            let url = self.url(&["v10", "projects", project, "env"], &[("upsert", "true")])?;
            let (created, request_id): (wire::EnvCreated, _) =
                self.call_with_id(Method::POST, url, Some(body)).await?;
            if !created.failed.is_empty() {
                let failed: Vec<String> = created
                    .failed
                    .iter()
                    .map(|f| {
                        let key = f
                            .error
                            .key
                            .as_deref()
                            .or(f.error.env_var_key.as_deref())
                            .unwrap_or("(unknown key)");
                        format!("{key} ({})", f.error.code)
                    })
                    .collect();
                tracing::warn!(failed = %failed.join(", "), "vercel rejected some env vars");
                return Err(Error::Api {
                    provider: PROVIDER,
                    status: 201,
                    message: format!(
                        "env vars not written on project {project}: {}",
                        failed.join(", ")
                    ),
                    request_id,
                });
            }
        }
        let stale_ids: Vec<&str> = stale.iter().filter_map(|e| e.id.as_deref()).collect();
        if !stale_ids.is_empty() {
            let body = serde_json::to_value(wire::BatchRemove { ids: stale_ids })
                .map_err(|e| Error::failed("vercel: encode env ids", e.to_string()))?;
            let url = self.url(&["v1", "projects", project, "env"], &[])?;
            let _: wire::BatchRemoved = self.call(Method::DELETE, url, Some(body)).await?;
            for e in &stale {
                changes.push(change(
                    "env_var",
                    format!("{project}/{}", e.key),
                    Outcome::Removed,
                ));
            }
        }
        if let Some((d, found)) = domain {
            let outcome = match found {
                Some(existing) if moved(&existing) => {
                    let body = serde_json::to_value(wire::UpdateDomain { git_branch: branch })
                        .map_err(|e| Error::failed("vercel: encode domain", e.to_string()))?;
                    let url = self.url(&["v9", "projects", project, "domains", d], &[])?;
                    let _: serde_json::Value = self.call(Method::PATCH, url, Some(body)).await?;
                    Outcome::Updated
                }
                Some(_) => Outcome::Unchanged,
                None => self.add_domain(project, d, branch).await?,
            };
            changes.push(change("domain", d, outcome));
        }
        Ok(changes)
    }

    #[tracing::instrument(skip_all, fields(env = %name, project = %spec.target.project))]
    async fn deploy_app(
        &self,
        name: &PreviewName,
        spec: &AppSpec,
        commit: &Commit,
    ) -> Result<(AppDeployment, Outcome)> {
        validate_spec(spec)?;
        let (org, repo) = validate_commit(spec, commit)?;
        let project = spec.target.project.as_str();

        // Env changes only reach deployments created after them, or carrying their digest.
        let ours: Vec<wire::Env> = self
            .list_env(project, Some(&spec.branch))
            .await?
            .into_iter()
            .filter(|e| owned_by(e, name))
            .collect();
        let vars_at = ours
            .iter()
            .filter_map(|e| e.updated_at.or(e.created_at))
            .fold(0.0_f64, f64::max);
        let digest = vars_digest(
            spec.fingerprint_key.as_ref().unwrap_or(&self.own_key),
            &ours,
        );
        // Deployments of this commit for this environment, built with our current vars, not
        // failed; oldest first.
        let candidates = || async {
            let mut found: Vec<wire::DeploymentItem> = self
                .list_deployments(
                    project,
                    &[
                        ("sha", commit.sha.as_str()),
                        ("branch", spec.branch.as_str()),
                    ],
                    1,
                )
                .await?
                .into_iter()
                .filter(|d| {
                    let current = d.created > vars_at
                        || digest.is_some() && d.meta(META_VARS) == digest.as_deref();
                    d.meta(META_ENV) == Some(name.as_str())
                        && current
                        && !is_failed_state(d.state())
                })
                .collect();
            found.sort_by(|a, b| a.created.total_cmp(&b.created).then(a.uid.cmp(&b.uid)));
            Ok::<_, Error>(found)
        };
        let existing = candidates().await?;
        let (id, mut outcome) = match existing.last() {
            // The newest when several exist (left by earlier runs): the freshest build.
            Some(d) => (d.uid.clone(), Outcome::Unchanged),
            None => {
                let body = serde_json::to_value(wire::CreateDeployment {
                    name: project,
                    project,
                    git_source: wire::GitSource {
                        kind: "github",
                        org,
                        repo,
                        git_ref: &commit.branch,
                        sha: &commit.sha,
                    },
                    meta: [
                        (META_ENV, name.as_str()),
                        ("githubCommitSha", commit.sha.as_str()),
                    ]
                    .into_iter()
                    .chain(digest.as_deref().map(|d| (META_VARS, d)))
                    .collect(),
                })
                .map_err(|e| Error::failed("vercel: encode deployment", e.to_string()))?;
                let url = self.url(&["v13", "deployments"], &[])?;
                let created: wire::Deployment = self.call(Method::POST, url, Some(body)).await?;
                // Two runs that found none each created one: every run uses the oldest, and the
                // one that created a newer one deletes it (the later creator always sees the
                // earlier one, so exactly one is left).
                let oldest = candidates()
                    .await?
                    .into_iter()
                    .next()
                    .map_or_else(|| created.id.clone(), |d| d.uid);
                if oldest != created.id {
                    tracing::info!(
                        project,
                        deployment = %created.id,
                        kept = %oldest,
                        "another run created a deployment of this commit first; deleting ours"
                    );
                    let url = self.url(&["v13", "deployments", &created.id], &[])?;
                    let _: Option<serde_json::Value> =
                        self.call_opt(Method::DELETE, url, None).await?;
                }
                (oldest, Outcome::Created)
            }
        };
        let d = self.wait_ready(&id, spec.deploy_timeout).await?;
        let domain_url = match &spec.target.domain {
            Some(domain) => {
                if !d.alias.iter().any(|a| a == domain) {
                    let body = serde_json::to_value(wire::AssignAlias { alias: domain })
                        .map_err(|e| Error::failed("vercel: encode alias", e.to_string()))?;
                    let url = self.url(&["v2", "deployments", &d.id, "aliases"], &[])?;
                    let _: serde_json::Value = self.call(Method::POST, url, Some(body)).await?;
                    if outcome == Outcome::Unchanged {
                        outcome = Outcome::Updated;
                    }
                }
                Some(https(domain))
            }
            None => None,
        };
        Ok((
            AppDeployment {
                id: d.id.clone(),
                url: https(&d.url),
                domain_url,
                state: d.ready_state.clone(),
                inspector_url: d.inspector_url.clone(),
                sha: commit.sha.clone(),
            },
            outcome,
        ))
    }

    #[tracing::instrument(skip_all, fields(env = %name, project = %target.project))]
    async fn delete_app(&self, name: &PreviewName, target: &AppRef) -> Result<Vec<ResourceChange>> {
        validate_target(target)?;
        let project = target.project.as_str();
        let ours: Vec<wire::Env> = self
            .list_env(project, None)
            .await?
            .into_iter()
            .filter(|e| owned_by(e, name))
            .collect();
        // Refuse before anything is deleted.
        for e in &ours {
            guard_preview_only(&e.key, &e.targets(), e.git_branch.as_deref())?;
        }
        let branches: BTreeSet<&str> = ours
            .iter()
            .filter_map(|e| e.git_branch.as_deref())
            .collect();
        let mut changes = Vec::new();

        // The domain first: the marked vars are what lead back to it.
        if let Some(domain) = &target.domain {
            let outcome = match self.get_domain(project, domain).await? {
                None => Outcome::AlreadyGone,
                Some(d)
                    if d.git_branch
                        .as_deref()
                        .is_some_and(|b| branches.is_empty() || branches.contains(b)) =>
                {
                    let url = self.url(&["v9", "projects", project, "domains", domain], &[])?;
                    match self
                        .call_opt::<serde_json::Value>(Method::DELETE, url, None)
                        .await?
                    {
                        Some(_) => Outcome::Removed,
                        None => Outcome::AlreadyGone,
                    }
                }
                Some(_) => {
                    tracing::warn!(domain = %domain, "domain is not linked to this environment's branch; left alone");
                    Outcome::Skipped
                }
            };
            changes.push(change("domain", domain.as_str(), outcome));
        }

        let inflight: Vec<wire::DeploymentItem> = self
            .list_deployments(project, &[("state", IN_PROGRESS)], MAX_PAGES)
            .await?
            .into_iter()
            .filter(|d| d.meta(META_ENV) == Some(name.as_str()) && !is_failed_state(d.state()))
            .filter(|d| d.state() != "READY")
            .collect();
        for d in inflight {
            let url = self.url(&["v12", "deployments", &d.uid, "cancel"], &[])?;
            let outcome = match self
                .call_opt::<serde_json::Value>(Method::PATCH, url, None)
                .await?
            {
                Some(_) => Outcome::Removed,
                None => Outcome::AlreadyGone,
            };
            changes.push(change("deployment", d.uid, outcome));
        }

        let ids: Vec<&str> = ours.iter().filter_map(|e| e.id.as_deref()).collect();
        if ids.is_empty() {
            changes.push(change(
                "env_var",
                format!("{project}/*"),
                Outcome::AlreadyGone,
            ));
        } else {
            let body = serde_json::to_value(wire::BatchRemove { ids })
                .map_err(|e| Error::failed("vercel: encode env ids", e.to_string()))?;
            let url = self.url(&["v1", "projects", project, "env"], &[])?;
            let removed: Option<wire::BatchRemoved> =
                self.call_opt(Method::DELETE, url, Some(body)).await?;
            let removed: BTreeSet<String> = removed
                .map(|r| r.ids.into_iter().collect())
                .unwrap_or_default();
            for e in &ours {
                let gone = e.id.as_ref().is_some_and(|id| removed.contains(id));
                changes.push(change(
                    "env_var",
                    format!("{project}/{}", e.key),
                    if gone {
                        Outcome::Removed
                    } else {
                        Outcome::AlreadyGone
                    },
                ));
            }
        }
        Ok(changes)
    }

    fn preflight_app(&self, _: &PreviewName, spec: &AppSpec, commit: &Commit) -> Result<()> {
        // What apply_app and deploy_app refuse. The branch and the commit are the same for every
        // app, and so is their message: the pipeline reports it once.
        validate_spec(spec)?;
        validate_commit(spec, commit).map(|_| ())
    }

    #[tracing::instrument(skip_all, fields(projects = projects.len()))]
    async fn list_apps(&self, projects: &[String]) -> Result<Vec<Owned>> {
        let mut out = Vec::new();
        for project in projects {
            let mut by_branch: Vec<(String, PreviewName)> = Vec::new();
            for e in self.list_env(project, None).await? {
                let Some(mark) = e.comment.as_deref().and_then(parse_mark) else {
                    continue;
                };
                let Some(name) = preview_name(&mark) else {
                    continue;
                };
                if let Some(b) = &e.git_branch {
                    by_branch.push((b.clone(), name.clone()));
                }
                out.push(Owned {
                    name: name.to_string(),
                    provider: PROVIDER.to_string(),
                    resource: format!("env_var {project}/{}", e.key),
                    created_at: e.created_at.and_then(timestamp),
                });
            }
            if by_branch.is_empty() {
                continue;
            }
            for d in self.list_domains(project).await? {
                let Some(branch) = &d.git_branch else {
                    continue;
                };
                let names: BTreeSet<&PreviewName> = by_branch
                    .iter()
                    .filter(|(b, _)| b == branch)
                    .map(|(_, n)| n)
                    .collect();
                for name in names {
                    out.push(Owned {
                        name: name.to_string(),
                        provider: PROVIDER.to_string(),
                        resource: format!("domain {}", d.name),
                        created_at: d.created_at.and_then(timestamp),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Reads the project (`GET /v9/projects/{id}`) unless `secret` is given: the newest
    /// `automation-bypass` secret of `protectionBypass` (an integration's bypass is not ours to
    /// use). No secret while a protection covers preview domains is an error, found before any
    /// request waits 401s out to the readiness deadline.
    #[tracing::instrument(skip_all, fields(project = %target.project))]
    async fn get_protection_bypass(
        &self,
        target: &AppRef,
        secret: Option<SecretString>,
    ) -> Result<Option<ProtectionBypass>> {
        validate_target(target)?;
        let bypass = |secret| ProtectionBypass {
            header: PROTECTION_BYPASS_HEADER.into(),
            secret,
        };
        if let Some(secret) = secret {
            return Ok(Some(bypass(secret)));
        }
        let project = target.project.as_str();
        let url = self.url(&["v9", "projects", project], &[])?;
        let p: wire::Project = self.call(Method::GET, url, None).await?;
        let protected = p.protects_preview_domains();
        let newest = p
            .protection_bypass
            .into_iter()
            .filter(|(_, e)| e.scope == "automation-bypass")
            .max_by(|a, b| {
                let at = |e: &wire::BypassEntry| e.created_at.unwrap_or(0.0);
                at(&a.1).total_cmp(&at(&b.1))
            })
            .map(|(secret, _)| SecretString::from(secret));
        match newest {
            Some(secret) => Ok(Some(bypass(secret))),
            None if protected => Err(Error::Failed {
                what: format!("vercel project {project}"),
                message: format!(
                    "Deployment Protection covers its previews, and it has no Protection Bypass for Automation secret, so readiness and seed requests to app {} would get 401: create one (Project Settings → Deployment Protection → Protection Bypass for Automation), or name a variable holding one with apps.{}.protection_bypass = {{ from_env = \"…\" }}",
                    target.app, target.app
                ),
            }),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use preview_core::PrNumber;

    fn name(pr: u64) -> PreviewName {
        Naming::new("pr", "agents")
            .expect("valid naming")
            .name(PrNumber::new(pr).expect("valid pr"))
    }

    #[test]
    fn markers_round_trip_to_the_preview_name() {
        let n = name(42);
        let c = marker_comment(&n, "00ff");
        assert_eq!(c, "managed-by:preview env=pr-42-agents pr=42 fp=00ff");
        assert!(c.len() <= 500);
        let m = parse_mark(&c).expect("our marker");
        assert_eq!(preview_name(&m), Some(n));
        // Names whose prefix itself has digit groups still resolve to the right PR.
        let odd = Naming::new("v-2-pr", "")
            .expect("valid naming")
            .name(PrNumber::new(2).expect("pr"));
        let m = parse_mark(&marker_comment(&odd, "x")).expect("marker");
        assert_eq!(preview_name(&m).map(|n| n.pr().get()), Some(2));
        assert_eq!(
            preview_name(&m).as_ref().map(PreviewName::as_str),
            Some("v-2-pr-2")
        );
    }

    #[test]
    fn foreign_comments_are_not_ours() {
        for c in [
            "",
            "database connection string",
            "managed-by:previewer env=pr-1 pr=1",
            "managed-by:preview pr=1",
            "managed-by:preview env=pr-1",
        ] {
            assert_eq!(parse_mark(c), None, "{c}");
        }
        let m = parse_mark("managed-by:preview env=pr-7-x pr=8").expect("parses");
        assert_eq!(preview_name(&m), None, "pr mismatch must not parse");
        let m = parse_mark("managed-by:preview env=PR_7 pr=7").expect("parses");
        assert_eq!(preview_name(&m), None, "invalid naming must not parse");
    }

    #[test]
    fn the_guard_admits_only_branch_scoped_preview_vars() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        guard_preview_only("K", &p(&["preview"]), Some("feat")).expect("allowed");
        for (target, branch) in [
            (p(&["production"]), Some("feat")),
            (p(&["development"]), Some("feat")),
            (p(&["preview", "production"]), Some("feat")),
            (p(&[]), Some("feat")),
            (p(&["preview"]), None),
            (p(&["preview"]), Some("")),
        ] {
            let err = guard_preview_only("K", &target, branch).expect_err("refused");
            assert!(err.is_config(), "{err}");
        }
    }

    #[test]
    fn polling_backs_off_in_steps() {
        let s = |n| Duration::from_secs(n);
        assert_eq!(poll_delay(s(0)), s(1));
        assert_eq!(poll_delay(s(14)), s(1));
        assert_eq!(poll_delay(s(15)), s(5));
        assert_eq!(poll_delay(s(59)), s(5));
        assert_eq!(poll_delay(s(60)), s(15));
        assert_eq!(poll_delay(s(300)), s(30));
        assert_eq!(poll_delay(s(3000)), s(30));
    }

    #[test]
    fn failed_states() {
        for s in ["ERROR", "CANCELED", "BUILD_ERROR", "DEPLOY_ERROR"] {
            assert!(is_failed_state(s), "{s}");
        }
        for s in ["READY", "BUILDING", "QUEUED", "INITIALIZING", "ERRORED_NOT"] {
            assert!(!is_failed_state(s), "{s}");
        }
    }

    #[test]
    fn urls_encode_segments_and_queries() {
        let v = VercelApps::builder()
            .token("t")
            .team_id("team_1")
            .base_url("http://127.0.0.1:1/")
            .build()
            .expect("valid");
        let u = v
            .url(
                &["v9", "projects", "p/../x", "domains", "a.b"],
                &[("gitBranch", "feat/x?y=1#z&teamId=evil")],
            )
            .expect("url");
        assert_eq!(u.path(), "/v9/projects/p%2F..%2Fx/domains/a.b");
        for dots in ["..", ".", ""] {
            let err = v
                .url(&["v10", "projects", dots, "env"], &[])
                .expect_err("a dot segment would change the route");
            assert!(err.is_config(), "{err}");
        }
        let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("gitBranch".into(), "feat/x?y=1#z&teamId=evil".into()),
                ("teamId".into(), "team_1".into())
            ]
        );
    }

    #[test]
    fn fingerprints_change_with_value_type_env_and_key() {
        let k = DigestKey::from_bytes([7; 32]);
        let a = fingerprint(&k, &name(1), "K", "encrypted", "v");
        assert_eq!(a.len(), 32);
        assert_ne!(a, fingerprint(&k, &name(1), "K", "encrypted", "w"));
        assert_ne!(a, fingerprint(&k, &name(1), "K", "sensitive", "v"));
        assert_ne!(a, fingerprint(&k, &name(2), "K", "encrypted", "v"));
        assert_ne!(a, fingerprint(&k, &name(1), "L", "encrypted", "v"));
        assert_eq!(a, fingerprint(&k, &name(1), "K", "encrypted", "v"));
        let other = DigestKey::from_bytes([8; 32]);
        assert_ne!(a, fingerprint(&other, &name(1), "K", "encrypted", "v"));
    }
}
