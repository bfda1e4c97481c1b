//! [`GitHubSource`]: the [`SourceHost`] over the GitHub REST API.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use preview_core::http::{auth_header, client, header, transport_error};
use preview_core::{
    Error, Idempotency, Outcome, PrNumber, PrState, PreviewName, PullRequest, Report, ReportState,
    ReportSummary, Result, RetryConfig, SourceHost, retry,
};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use url::Url;

use crate::builder::{ACTIONS_BOT, GitHubSourceBuilder};
use crate::errors::{PROVIDER, map_status};
use crate::render;
use crate::wire;

/// The API version we speak.
pub const API_VERSION: &str = "2022-11-28";

/// The most pages a list may have; a longer `link` chain is treated as a loop.
const MAX_PAGES: usize = 1000;

pub(crate) struct Config {
    pub(crate) token: SecretString,
    pub(crate) owner: String,
    pub(crate) repo: String,
    pub(crate) base: Url,
    pub(crate) identity: Option<String>,
    pub(crate) environment_template: String,
    pub(crate) timeout: Option<Duration>,
    pub(crate) write_spacing: Duration,
    pub(crate) max_concurrent_reads: usize,
    pub(crate) retry: RetryConfig,
}

/// Pull requests, the sticky comment and deployments of one GitHub repository.
///
/// Each request is re-sent after a transient failure as far as its idempotency allows (see
/// [`GitHubSourceBuilder::retry`]); giving up is `RetriesExhausted`, which the pipeline does not
/// retry again, so attempts do not multiply. Mutating requests are serialised and spaced
/// at least `write_spacing` apart (GitHub's guidance for avoiding secondary rate limits); at most
/// `max_concurrent_reads` reads are in flight at once. Reads of a
/// pull request are conditional (`If-None-Match`), so polling an unchanged PR costs no quota.
pub struct GitHubSource {
    http: reqwest::Client,
    auth: HeaderValue,
    base: Url,
    owner: String,
    repo: String,
    configured_identity: Option<String>,
    identity: OnceCell<String>,
    environment_template: String,
    write_spacing: Duration,
    last_write: tokio::sync::Mutex<Option<Instant>>,
    reads: tokio::sync::Semaphore,
    etags: Mutex<HashMap<String, (String, Vec<u8>)>>,
    /// Whether each comment author seen with our marker may write to the repository.
    writers: Mutex<HashMap<String, bool>>,
    retry: RetryConfig,
}

/// One of our sticky comments for an environment.
struct Found {
    id: u64,
    body: String,
    /// Authored by the token's own identity (so it can always be edited and deleted).
    mine: bool,
}

impl fmt::Debug for GitHubSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubSource")
            .field("repository", &format_args!("{}/{}", self.owner, self.repo))
            .field("base_url", &self.base.as_str())
            .field("identity", &self.configured_identity)
            .field("environment_template", &self.environment_template)
            .field("write_spacing", &self.write_spacing)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for GitHubSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "github(repo={}/{})", self.owner, self.repo)
    }
}

/// A response read to the end.
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Api {
            provider: PROVIDER,
            status: self.status.as_u16(),
            message: format!("unexpected response for {what}: {e}"),
            request_id: crate::errors::request_id(&self.headers),
        })
    }
}

impl GitHubSource {
    /// A builder.
    pub fn builder() -> GitHubSourceBuilder {
        GitHubSourceBuilder::new()
    }

    /// A builder from `GITHUB_TOKEN`, `GITHUB_REPOSITORY` and `GITHUB_API_URL`.
    pub fn from_env() -> GitHubSourceBuilder {
        GitHubSourceBuilder::from_env()
    }

    pub(crate) fn new(c: Config) -> Result<Self> {
        // No timeouts only for paused-clock tests (see `GitHubSourceBuilder::without_timeouts`).
        let http = client(c.timeout)?;
        Ok(Self {
            http,
            auth: auth_header("Bearer", &c.token, PROVIDER)?,
            base: c.base,
            owner: c.owner,
            repo: c.repo,
            configured_identity: c.identity,
            identity: OnceCell::new(),
            environment_template: c.environment_template,
            write_spacing: c.write_spacing,
            last_write: tokio::sync::Mutex::new(None),
            reads: tokio::sync::Semaphore::new(c.max_concurrent_reads.max(1)),
            etags: Mutex::new(HashMap::new()),
            writers: Mutex::new(HashMap::new()),
            retry: c.retry,
        })
    }

    /// The repository, `owner/name`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    /// The deployment environment name of an environment (from the template).
    pub fn environment_name(&self, name: &PreviewName) -> String {
        self.environment_template
            .replace("{pr}", &name.pr().to_string())
            .replace("{name}", name.as_str())
    }

    /// `{base}/repos/{owner}/{repo}/{segments…}`, each segment percent-encoded (a `/` in an
    /// environment name stays inside its segment).
    fn repo_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // The builder rejected cannot-be-a-base URLs, so this branch always runs.
            path.pop_if_empty()
                .extend(["repos", self.owner.as_str(), self.repo.as_str()])
                .extend(segments);
        }
        url
    }

    fn root_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends one request (once) and reads the whole response.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        extra: Option<(&'static str, HeaderValue)>,
    ) -> Result<Resp> {
        // Reads queue for a permit (held until the body is read); writes are already serialised.
        let _permit = if method == Method::GET {
            Some(self.reads.acquire().await.map_err(|_| Error::Failed {
                what: "github read".into(),
                message: "the read limiter was closed".into(),
            })?)
        } else {
            None
        };
        let mut req = self
            .http
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, self.auth.clone())
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION);
        if let Some((name, value)) = extra {
            req = req.header(name, value);
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let resp = req.send().await.map_err(|e| transport_error(PROVIDER, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(PROVIDER, e))?
            .to_vec();
        tracing::debug!(
            status = status.as_u16(),
            request_id = header(&headers, "x-github-request-id").unwrap_or(""),
            "github response"
        );
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// A read; non-success statuses become errors. Re-sent after a transient failure (a read
    /// is idempotent), so one flaky answer does not fail the whole operation.
    async fn get(&self, url: Url, what: &str) -> Result<Resp> {
        let label = format!("github GET {what}");
        retry(&self.retry, &label, Idempotency::Idempotent, || async {
            check(self.send(Method::GET, url.clone(), None, None).await?, what)
        })
        .await
    }

    /// A mutating request: serialised with every other write of this client and sent at least
    /// `write_spacing` after the previous one (on tokio's clock). PATCH, PUT and DELETE are
    /// re-sent after a transient failure; a POST (a create) only when GitHub refused it outright
    /// or it never left, so the caller can look up what an ambiguous failure may have created.
    async fn write(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        what: &str,
    ) -> Result<Resp> {
        let idempotency = if method == Method::POST {
            Idempotency::NonIdempotent
        } else {
            Idempotency::Idempotent
        };
        let label = format!("github {method} {what}");
        retry(&self.retry, &label, idempotency, || async {
            let mut last = self.last_write.lock().await;
            if let Some(at) = *last {
                tokio::time::sleep_until(at + self.write_spacing).await;
            }
            let result = self
                .send(method.clone(), url.clone(), body.clone(), None)
                .await;
            *last = Some(Instant::now());
            drop(last);
            check(result?, what)
        })
        .await
    }

    /// Every item of a list, following `link: rel="next"` exactly as given.
    async fn get_all<T: DeserializeOwned>(&self, first: Url, what: &str) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(Error::failed(
                    format!("github: listing {what}"),
                    format!("more than {MAX_PAGES} pages; the link chain may loop"),
                ));
            }
            let r = self.get(url, what).await?;
            if r.status == StatusCode::NO_CONTENT || r.body.is_empty() {
                break;
            }
            let mut items: Vec<T> = r.json(what)?;
            out.append(&mut items);
            if let Some(link) = header(&r.headers, "link").and_then(next_link) {
                next = Some(self.same_origin(&link, what)?);
            }
        }
        Ok(out)
    }

    /// A pagination URL, accepted only on the API's own origin: the token goes with it.
    fn same_origin(&self, raw: &str, what: &str) -> Result<Url> {
        let url = Url::parse(raw).map_err(|_| {
            Error::failed(
                format!("github: listing {what}"),
                "the next-page link is not a URL",
            )
        })?;
        if url.origin() != self.base.origin() {
            return Err(Error::failed(
                format!("github: listing {what}"),
                "the next-page link points outside the API base URL; not following it with our token",
            ));
        }
        Ok(url)
    }

    /// The login our comments are authored by.
    async fn identity(&self) -> Result<&str> {
        let id = self
            .identity
            .get_or_try_init(|| async {
                if let Some(id) = &self.configured_identity {
                    return Ok(id.clone());
                }
                match self.get(self.root_url(&["user"]), "the token's user").await {
                    Ok(r) => Ok(r.json::<wire::User>("the token's user")?.login),
                    Err(Error::Unauthorized { status: 403, .. }) => {
                        tracing::info!(
                            identity = ACTIONS_BOT,
                            "GET /user is forbidden (Actions token); assuming the Actions bot"
                        );
                        Ok(ACTIONS_BOT.to_string())
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(id.as_str())
    }

    /// Whether `login` may write to the repository (admin, maintain or write), asked once per
    /// login. An author who cannot is not one we trust, whatever the comment says.
    async fn can_write(&self, login: &str) -> Result<bool> {
        let key = login.to_ascii_lowercase();
        if let Some(known) = self.writers.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(known);
        }
        let url = self.repo_url(&["collaborators", login, "permission"]);
        let writes = match self.get(url, "a commenter's permission").await {
            Ok(r) => {
                let p: wire::CollaboratorPermission = r.json("a commenter's permission")?;
                matches!(p.permission.as_str(), "admin" | "maintain" | "write")
                    || matches!(p.role_name.as_deref(), Some("admin" | "maintain" | "write"))
            }
            // Not a collaborator, or a token that may not ask: not trusted.
            Err(Error::NotFound { .. } | Error::Unauthorized { .. }) => false,
            Err(e) => return Err(e),
        };
        if let Ok(mut m) = self.writers.lock() {
            m.insert(key, writes);
        }
        Ok(writes)
    }

    /// Our sticky comments for an environment, oldest first: the marker of exactly this
    /// environment, by an author we trust: the token's own identity, [`ACTIONS_BOT`] (the
    /// workflow's token), or anyone who may write to the repository (a maintainer's personal
    /// token, used for a run by hand). A marker in anyone else's comment is pasted or forged: it is
    /// never trusted, edited or deleted. Searches every page. Several are found when runs under
    /// different identities (or two concurrent first runs) each made one; `publish_report`
    /// converges them to one.
    async fn find_comments(&self, name: &PreviewName, pr: PrNumber) -> Result<Vec<Found>> {
        let me = self.identity().await?.to_string();
        let mut url = self.repo_url(&["issues", &pr.to_string(), "comments"]);
        url.query_pairs_mut().append_pair("per_page", "100");
        let comments: Vec<wire::Comment> = match self.get_all(url, "comments").await {
            Ok(c) => c,
            Err(Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        for c in comments {
            let (Some(body), Some(user)) = (c.body, c.user) else {
                continue;
            };
            if render::parse_marker(&body, name).is_none() {
                continue;
            }
            let author = user.login;
            let mine = author.eq_ignore_ascii_case(&me);
            // Only members of the repository can have write access: anyone else is not asked
            // about (a public PR can have any number of commenters).
            let member = matches!(
                c.author_association.as_deref(),
                Some("OWNER" | "MEMBER" | "COLLABORATOR")
            );
            let trusted = mine
                || author.eq_ignore_ascii_case(ACTIONS_BOT)
                || (member && self.can_write(&author).await?);
            if trusted {
                found.push(Found {
                    id: c.id,
                    body,
                    mine,
                });
            } else {
                tracing::warn!(
                    comment = c.id,
                    author = %author,
                    "a comment carries this environment's marker but its author may not write to the repository: ignored"
                );
            }
        }
        Ok(found)
    }

    /// Which of `found` is the sticky comment: our own oldest, else the oldest (so each run under
    /// any identity converges on the same one once the others are gone).
    fn keeper(found: &[Found]) -> Option<usize> {
        found
            .iter()
            .position(|f| f.mine)
            .or(if found.is_empty() { None } else { Some(0) })
    }

    /// Deletes one of our duplicate comments. Returns whether it is gone.
    async fn remove_comment(&self, id: u64) -> Result<bool> {
        match self
            .write(
                Method::DELETE,
                self.repo_url(&["issues", "comments", &id.to_string()]),
                None,
                "comment",
            )
            .await
        {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(true),
            Err(Error::Unauthorized { status: 403, .. }) => {
                tracing::warn!(
                    comment = id,
                    "cannot delete a duplicate preview comment of another identity (the token may not edit others' comments)"
                );
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the deployment and its latest status match the report. Returns whether it wrote.
    async fn sync_deployment(&self, report: &Report, comment_unchanged: bool) -> Result<bool> {
        let env = self.environment_name(&report.name);
        match &report.state {
            ReportState::TornDown => self.tear_down_deployments(&env, comment_unchanged).await,
            state => {
                let Some(sha) = render::clean_sha(report.commit.as_deref()) else {
                    tracing::debug!(env, "no commit in the report: no deployment");
                    return Ok(false);
                };
                let existing = self.find_deployment(&env, sha).await?;
                let (id, created) = match existing {
                    Some(id) => (id, false),
                    // A failure before anything was announced has no deployment to mark.
                    None if matches!(state, ReportState::Failed { .. }) => return Ok(false),
                    None => {
                        let id = self.create_deployment(&env, sha, &report.name).await?;
                        (self.keep_oldest_deployment(&env, sha, id).await?, true)
                    }
                };
                let desired = match state {
                    ReportState::Deploying => "in_progress",
                    ReportState::Ready { .. } => "success",
                    _ => "failure",
                };
                let env_url = render::primary_url(state);
                let log_url = report.run_url.as_deref().and_then(render::safe_url);
                let description = render::status_description(state);
                if !created {
                    if let Some(latest) = self.latest_status(id).await? {
                        let same = latest.state == desired
                            && none_if_empty(latest.environment_url.as_deref())
                                == env_url.as_deref()
                            && none_if_empty(latest.log_url.as_deref()) == log_url.as_deref()
                            && latest.description.as_deref().unwrap_or("") == description;
                        if same {
                            return Ok(false);
                        }
                    }
                }
                self.post_status(
                    id,
                    desired,
                    env_url.as_deref(),
                    log_url.as_deref(),
                    &description,
                )
                .await?;
                Ok(true)
            }
        }
    }

    /// Two runs that announced at once each created a deployment of `sha`: every run uses the
    /// oldest, and the one that created a newer one retires it (inactive, then deleted, as GitHub
    /// requires). The later creator always sees the earlier one, so exactly one is left.
    async fn keep_oldest_deployment(&self, env: &str, sha: &str, created: u64) -> Result<u64> {
        let Some(oldest) = self.find_deployment(env, sha).await? else {
            return Ok(created);
        };
        if oldest < created {
            tracing::info!(
                env,
                deployment = created,
                kept = oldest,
                "another run created a deployment of this commit first; removing ours"
            );
            self.post_status(created, "inactive", None, None, "A duplicate, removed")
                .await?;
            match self
                .write(
                    Method::DELETE,
                    self.repo_url(&["deployments", &created.to_string()]),
                    None,
                    "deployment",
                )
                .await
            {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(oldest)
    }

    /// The oldest deployment of `sha` in `env` (the one every run uses).
    async fn find_deployment(&self, env: &str, sha: &str) -> Result<Option<u64>> {
        let mut url = self.repo_url(&["deployments"]);
        url.query_pairs_mut()
            .append_pair("sha", sha)
            .append_pair("environment", env)
            .append_pair("per_page", "100");
        let existing: Vec<wire::Deployment> = self.get_all(url, "deployments").await?;
        Ok(existing
            .iter()
            .filter(|d| d.sha == sha && d.environment == env)
            .map(|d| d.id)
            .min())
    }

    /// Creates a deployment of `sha` in `env` (transient, never auto-merging).
    async fn create_deployment(&self, env: &str, sha: &str, name: &PreviewName) -> Result<u64> {
        let description = format!("Preview environment {name}");
        let body = wire::CreateDeployment {
            ref_name: sha,
            task: "deploy",
            auto_merge: false,
            required_contexts: Vec::new(),
            environment: env,
            description: &description,
            transient_environment: true,
            production_environment: false,
        };
        let r = self
            .write(
                Method::POST,
                self.repo_url(&["deployments"]),
                Some(json(&body)?),
                "deployment",
            )
            .await?;
        if r.status == StatusCode::ACCEPTED {
            // GitHub merged something instead of deploying; we asked it not to (auto_merge false).
            let msg = r
                .json::<wire::Message>("deployment")
                .ok()
                .and_then(|m| m.message);
            return Err(Error::Conflict {
                provider: PROVIDER,
                message: format!(
                    "deployment of {sha} not created: {}",
                    msg.unwrap_or_else(|| "GitHub answered 202".into())
                ),
                request_id: crate::errors::request_id(&r.headers),
            });
        }
        let d: wire::Deployment = r.json("deployment")?;
        tracing::info!(env, deployment = d.id, "created deployment");
        Ok(d.id)
    }

    async fn latest_status(&self, deployment: u64) -> Result<Option<wire::DeploymentStatus>> {
        let mut url = self.repo_url(&["deployments", &deployment.to_string(), "statuses"]);
        // Newest first: the first item of the first page is the latest.
        url.query_pairs_mut().append_pair("per_page", "1");
        let r = self.get(url, "deployment statuses").await?;
        let mut items: Vec<wire::DeploymentStatus> = r.json("deployment statuses")?;
        Ok(if items.is_empty() {
            None
        } else {
            Some(items.swap_remove(0))
        })
    }

    async fn post_status(
        &self,
        deployment: u64,
        state: &str,
        environment_url: Option<&str>,
        log_url: Option<&str>,
        description: &str,
    ) -> Result<()> {
        let body = wire::CreateDeploymentStatus {
            state,
            environment_url,
            log_url,
            description,
            auto_inactive: true,
        };
        self.write(
            Method::POST,
            self.repo_url(&["deployments", &deployment.to_string(), "statuses"]),
            Some(json(&body)?),
            "deployment status",
        )
        .await?;
        tracing::info!(deployment, state, "posted deployment status");
        Ok(())
    }

    /// Marks every deployment of `env` inactive, then deletes the environment. A 403 on the
    /// delete (the Actions token may not) is a warning. When the comment already says "torn down"
    /// the delete was attempted before, so it is not repeated.
    async fn tear_down_deployments(&self, env: &str, comment_unchanged: bool) -> Result<bool> {
        let mut wrote = false;
        let mut url = self.repo_url(&["deployments"]);
        url.query_pairs_mut()
            .append_pair("environment", env)
            .append_pair("per_page", "100");
        let deployments: Vec<wire::Deployment> = self.get_all(url, "deployments").await?;
        for d in deployments.iter().filter(|d| d.environment == env) {
            let latest = self.latest_status(d.id).await?;
            if latest.as_ref().map(|s| s.state.as_str()) != Some("inactive") {
                self.post_status(d.id, "inactive", None, None, "Preview environment removed")
                    .await?;
                wrote = true;
            }
        }
        if comment_unchanged && !wrote {
            return Ok(false);
        }
        let env_url = self.repo_url(&["environments", env]);
        match self.get(env_url.clone(), "environment").await {
            Err(Error::NotFound { .. }) => return Ok(wrote),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        match self
            .write(Method::DELETE, env_url, None, "environment")
            .await
        {
            Ok(_) => {
                tracing::info!(env, "deleted environment");
                Ok(true)
            }
            Err(Error::NotFound { .. }) => Ok(wrote),
            Err(Error::Unauthorized {
                status: 403,
                message,
                request_id,
                ..
            }) => {
                tracing::warn!(
                    env,
                    message,
                    request_id = request_id.as_deref().unwrap_or(""),
                    "cannot delete the deployment environment (the Actions token lacks administration rights); its deployments are inactive"
                );
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    fn convert(&self, pr: wire::PullRequest) -> Result<PullRequest> {
        let state = if pr.merged == Some(true) || pr.merged_at.is_some() {
            PrState::Merged
        } else if pr.state == "open" {
            PrState::Open
        } else {
            PrState::Closed
        };
        Ok(PullRequest {
            number: PrNumber::new(pr.number)?,
            state,
            draft: pr.draft.unwrap_or(false),
            title: pr.title,
            head_branch: pr.head.ref_name,
            head_sha: pr.head.sha,
            head_repo: pr.head.repo.map(|r| r.full_name),
            base_repo: pr
                .base
                .repo
                .map(|r| r.full_name)
                .unwrap_or_else(|| self.repository()),
            labels: pr.labels.into_iter().map(|l| l.name).collect(),
        })
    }
}

fn none_if_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn check(r: Resp, what: &str) -> Result<Resp> {
    if r.status.is_success() {
        Ok(r)
    } else {
        Err(map_status(
            r.status,
            &r.headers,
            &r.body,
            what,
            jiff::Timestamp::now(),
        ))
    }
}

/// The `rel="next"` target of a `link` header, exactly as given.
pub(crate) fn next_link(link: &str) -> Option<String> {
    let mut rest = link;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = &after[..end];
        let params_end = after[end..].find('<').map_or(after.len(), |i| end + i);
        let params = &after[end + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.strip_prefix("rel=")
                .map(|v| v.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = &after[params_end..];
    }
    None
}

/// A JSON request body.
fn json<T: Serialize>(body: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(body)
        .map_err(|e| Error::config(format!("cannot encode a GitHub request body: {e}")))
}

#[async_trait]
impl SourceHost for GitHubSource {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    #[tracing::instrument(skip_all, fields(pr = %pr))]
    async fn get_pull_request(&self, pr: PrNumber) -> Result<Option<PullRequest>> {
        let url = self.repo_url(&["pulls", &pr.to_string()]);
        let key = url.to_string();
        let cached = self.etags.lock().ok().and_then(|m| m.get(&key).cloned());
        let conditional = cached
            .as_ref()
            .and_then(|(etag, _)| HeaderValue::from_str(etag).ok())
            .map(|v| ("if-none-match", v));
        let what = format!("pull request {pr}");
        let label = format!("github GET {what}");
        let answer = retry(&self.retry, &label, Idempotency::Idempotent, || async {
            let r = self
                .send(Method::GET, url.clone(), None, conditional.clone())
                .await?;
            if r.status == StatusCode::NOT_MODIFIED {
                Ok(r)
            } else {
                check(r, &what)
            }
        })
        .await;
        let r = match answer {
            Ok(r) => r,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let body = if r.status == StatusCode::NOT_MODIFIED {
            match cached {
                Some((_, body)) => body,
                None => {
                    return Err(Error::Api {
                        provider: PROVIDER,
                        status: 304,
                        message: "not modified, but nothing was cached".into(),
                        request_id: crate::errors::request_id(&r.headers),
                    });
                }
            }
        } else {
            if let Some(etag) = header(&r.headers, "etag") {
                if let Ok(mut m) = self.etags.lock() {
                    m.insert(key, (etag.to_string(), r.body.clone()));
                }
            }
            r.body
        };
        let pr: wire::PullRequest = serde_json::from_slice(&body).map_err(|e| Error::Api {
            provider: PROVIDER,
            status: 200,
            message: format!("unexpected pull request body: {e}"),
            request_id: None,
        })?;
        self.convert(pr).map(Some)
    }

    #[tracing::instrument(skip_all)]
    async fn list_open_pull_requests(&self) -> Result<Vec<PullRequest>> {
        let mut url = self.repo_url(&["pulls"]);
        url.query_pairs_mut()
            .append_pair("state", "open")
            .append_pair("per_page", "100");
        let prs: Vec<wire::PullRequest> = self.get_all(url, "pull requests").await?;
        prs.into_iter().map(|p| self.convert(p)).collect()
    }

    #[tracing::instrument(skip_all, fields(env = %name, pr = %pr))]
    async fn get_report(&self, name: &PreviewName, pr: PrNumber) -> Result<Option<ReportSummary>> {
        let found = self.find_comments(name, pr).await?;
        Ok(Self::keeper(&found)
            .and_then(|i| render::parse_marker(&found[i].body, name))
            // Two comments that may disagree: nothing is "already shown".
            .map(|s| ReportSummary {
                digest: s.digest.filter(|_| found.len() == 1),
                ..s
            }))
    }

    /// Converges to one comment, whatever identity ran before: the keeper (ours if we have one)
    /// is updated, the other trusted ones are deleted. A token that may not edit another
    /// identity's keeper gets a clear `Unauthorized` rather than leaving a second comment.
    #[tracing::instrument(skip_all, fields(env = %report.name, pr = %report.pr, state = ?report.state.kind()))]
    async fn publish_report(&self, report: &Report) -> Result<Outcome> {
        let body = render::comment(report);
        let mut found = self.find_comments(&report.name, report.pr).await?;
        let existing = Self::keeper(&found).map(|i| found.remove(i));
        // Never replace the report of a run that started later (a slow run would otherwise
        // overwrite a newer outcome with an older one): nothing is written at all then.
        if let Some(f) = &existing {
            let published = render::parse_marker(&f.body, &report.name);
            if let Some(p) = published.filter(|p| p.is_newer_than(report.started_at)) {
                let ready = matches!(report.state, ReportState::Ready { .. });
                if ready && p.digest.as_deref() == Some(report.digest().as_str()) {
                    // The newer run says the same thing: the comment stays, but the deployment
                    // is brought in line (a status this run posted earlier, e.g. "in progress",
                    // may have landed after the newer run's "success").
                    return Ok(if self.sync_deployment(report, true).await? {
                        Outcome::Updated
                    } else {
                        Outcome::Unchanged
                    });
                }
                tracing::info!(
                    comment = f.id,
                    "the comment shows a newer run's report; not replacing it"
                );
                return Ok(Outcome::Skipped);
            }
        }
        let mut removed_duplicate = false;
        for f in &found {
            tracing::warn!(comment = f.id, "removing a duplicate preview comment");
            removed_duplicate |= self.remove_comment(f.id).await?;
        }
        // The same text (whichever run wrote it) is no change: nothing is written.
        let unchanged = existing.as_ref().is_some_and(|f| {
            render::without_stamp(f.body.replace("\r\n", "\n").trim_end())
                == render::without_stamp(body.trim_end())
        });
        // The first comment of an environment comes before its first deployment, so a
        // deployment never exists without the comment that leads teardown to it (a run killed
        // between the two leaves a comment and no deployment). After that, deployments first:
        // the comment is written last, so what it says (ready, torn down) proves the deployments
        // were brought in line before it.
        let first = existing.is_none() && !matches!(report.state, ReportState::TornDown);
        let create = || async {
            self.write(
                Method::POST,
                self.repo_url(&["issues", &report.pr.to_string(), "comments"]),
                Some(json(&wire::CommentBody { body: &body })?),
                "comment",
            )
            .await
        };
        if first {
            create().await?;
            self.sync_deployment(report, false).await?;
            return Ok(Outcome::Created);
        }
        let deployment_wrote = self.sync_deployment(report, unchanged).await?;
        let outcome = match existing {
            Some(_) if unchanged => Outcome::Unchanged,
            Some(f) => {
                let edited = self
                    .write(
                        Method::PATCH,
                        self.repo_url(&["issues", "comments", &f.id.to_string()]),
                        Some(json(&wire::CommentBody { body: &body })?),
                        "comment",
                    )
                    .await;
                match edited {
                    Ok(_) => {
                        if matches!(report.state, ReportState::Ready { .. }) {
                            // Look once more: an older run racing this one may have posted its
                            // "in progress" after our "success". If it lands even later, that
                            // run's own final publish finds this comment and puts "success"
                            // back (above).
                            self.sync_deployment(report, false).await?;
                        }
                        Outcome::Updated
                    }
                    // Deleted meanwhile: ours replaces it.
                    Err(Error::NotFound { .. }) => {
                        create().await?;
                        Outcome::Created
                    }
                    // Another identity's comment, and this token may not edit it: a comment of
                    // its own would be a second one that the others cannot trust (it may not
                    // write to the repository either), so say so instead.
                    Err(Error::Unauthorized {
                        status: 403,
                        request_id,
                        ..
                    }) if !f.mine => {
                        return Err(Error::Unauthorized {
                            provider: PROVIDER,
                            status: 403,
                            message: format!(
                                "the preview comment of this environment (comment {}) was written by another identity, and this token ({}) may not edit it: run preview with the workflow's GITHUB_TOKEN or a token of someone with write access to the repository",
                                f.id,
                                self.identity().await?
                            ),
                            request_id,
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            None => {
                create().await?;
                Outcome::Created
            }
        };
        Ok(match outcome {
            Outcome::Unchanged if deployment_wrote || removed_duplicate => Outcome::Updated,
            o => o,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_fork_is_a_fork() {
        let gh = GitHubSourceBuilder::new()
            .token("t")
            .repository("acme/app")
            .build()
            .unwrap();
        // GitHub sends `head.repo: null` when the fork was deleted (the spec says it cannot).
        let wire: wire::PullRequest = serde_json::from_str(
            r#"{"number":7,"state":"closed","draft":false,"merged":false,"merged_at":null,
                "title":"t","labels":[{"name":"bug"}],
                "head":{"ref":"f","sha":"abc","repo":null},
                "base":{"ref":"main","sha":"def","repo":{"full_name":"acme/app"}}}"#,
        )
        .unwrap();
        let pr = gh.convert(wire).unwrap();
        assert_eq!(pr.head_repo, None);
        assert!(pr.is_fork());
        assert_eq!(pr.state, PrState::Closed);
        assert_eq!(pr.labels, ["bug"]);
    }

    #[test]
    fn next_links_are_taken_verbatim() {
        let link = r#"<https://api.github.com/repositories/1/pulls?state=open&page=2>; rel="next", <https://api.github.com/repositories/1/pulls?state=open&page=5>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/pulls?state=open&page=2")
        );
        let last = r#"<https://x/a?page=1>; rel="first", <https://x/a?page=4>; rel="prev""#;
        assert_eq!(next_link(last), None);
        assert_eq!(
            next_link(r#"<https://x/a?page=3>; rel="prev next""#).as_deref(),
            Some("https://x/a?page=3")
        );
        assert_eq!(next_link("garbage"), None);
    }
}
