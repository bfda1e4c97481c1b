//! One function per GitHub REST endpoint, over the shared sender
//! ([`preview_core::http::Request::send_retry`]): which request, which statuses are answers, how
//! the body decodes. Requests retry there (reads, edits and deletes on 408, 429, 5xx and rate
//! limits; a create only when it never reached GitHub or was refused outright), and every attempt
//! is paced here ([`GitHubPacing`]: reads capped in flight, writes serialised and spaced).
//!
//! To add an endpoint: one `pub(crate) async fn` in the section of its resource, built from
//! [`Core::get`], [`Core::write`] or [`Core::get_all`], with its wire types in `wire.rs`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore};
use tokio::time::Instant;
use url::Url;

use preview_core::http::{
    Answer, Client, Pacing, Permit, Provider, Request, decode_detail, header,
};
use preview_core::{Error, PrNumber, Result};

use crate::errors::{PROVIDER, map_status, request_id};
use crate::wire;

/// The API version we speak.
pub const API_VERSION: &str = "2022-11-28";

/// The most pages a list may have; a longer `link` chain is treated as a loop.
const MAX_PAGES: usize = 1000;

/// GitHub for the shared sender: its request id header and its status → error table.
pub(crate) const API: Provider = Provider {
    name: PROVIDER,
    request_id_header: "x-github-request-id",
    errors: table,
};

/// [`map_status`] for the sender (which reads the clock itself).
fn table(answer: &Answer, what: &str) -> Error {
    map_status(
        answer.status(),
        answer.headers(),
        answer.body(),
        what,
        jiff::Timestamp::now(),
    )
}

/// GitHub's guidance against secondary rate limits, applied to every attempt: at most
/// `max_reads` reads in flight; writes serialised, each sent at least `spacing` after the previous
/// one's answer (on tokio's clock).
#[derive(Debug)]
pub(crate) struct GitHubPacing {
    reads: Arc<Semaphore>,
    last_write: Arc<Mutex<Option<Instant>>>,
    spacing: Duration,
}

impl GitHubPacing {
    pub(crate) fn new(max_reads: usize, spacing: Duration) -> Self {
        Self {
            reads: Arc::new(Semaphore::new(max_reads.max(1))),
            last_write: Arc::new(Mutex::new(None)),
            spacing,
        }
    }
}

/// Held while a write is in flight; when dropped (its answer read, or the attempt given up) the
/// next write's spacing starts.
struct WriteDone(OwnedMutexGuard<Option<Instant>>);

impl Drop for WriteDone {
    fn drop(&mut self) {
        *self.0 = Some(Instant::now());
    }
}

#[async_trait]
impl Pacing for GitHubPacing {
    async fn admit(&self, method: &Method) -> Result<Permit> {
        if method == Method::GET {
            let permit = self
                .reads
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::failed("github read", "the read limiter was closed"))?;
            return Ok(Permit::new(permit));
        }
        let last = self.last_write.clone().lock_owned().await;
        if let Some(at) = *last {
            tokio::time::sleep_until(at + self.spacing).await;
        }
        Ok(Permit::new(WriteDone(last)))
    }
}

/// The GitHub API of one repository.
pub(crate) struct Core {
    client: Client,
    base: Url,
    owner: String,
    repo: String,
    /// `per_page` of the open pull request listing (1-100).
    list_page_size: usize,
}

/// A JSON body decoded from an answer; `what` names it in the error (never the body's text).
fn decode<T: DeserializeOwned>(answer: &Answer, what: &str) -> Result<T> {
    serde_json::from_slice(answer.body()).map_err(|e| Error::Api {
        provider: PROVIDER,
        status: answer.status().as_u16(),
        message: format!("unexpected response for {what}: {}", decode_detail(&e)),
        request_id: request_id(answer.headers()),
    })
}

/// `Ok(None)` for a 404 (or 410), the value otherwise.
pub(crate) fn found<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Core {
    /// A client for `owner/repo` at `base`, with GitHub's headers and pacing.
    pub(crate) fn new(
        client: Client,
        base: Url,
        owner: String,
        repo: String,
        list_page_size: usize,
    ) -> Self {
        let client = client
            .default_header(
                ACCEPT,
                HeaderValue::from_static("application/vnd.github+json"),
            )
            .default_header(
                HeaderName::from_static("x-github-api-version"),
                HeaderValue::from_static(API_VERSION),
            );
        Self {
            client,
            base,
            owner,
            repo,
            list_page_size: list_page_size.clamp(1, 100),
        }
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// `owner/name`.
    pub(crate) fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
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

    /// A read of `what` (re-sent after a transient failure: a read is idempotent).
    fn get(&self, url: Url, what: &str) -> Request<'_> {
        self.client
            .request(Method::GET, url)
            .what(what)
            .label(format!("github GET {what}"))
    }

    /// A write of `what`. PATCH, PUT and DELETE are re-sent after a transient failure; a POST (a
    /// create) only when GitHub refused it outright or it never left, so the caller can look up
    /// what an ambiguous failure may have created.
    fn write(&self, method: Method, url: Url, what: &str) -> Request<'_> {
        let label = format!("github {method} {what}");
        self.client.request(method, url).what(what).label(label)
    }

    /// Every item of a list, following `link: rel="next"` exactly as given.
    async fn get_all<T: DeserializeOwned>(&self, first: Url, what: &str) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            check_pages(pages, what)?;
            match self.get_page(url, what, None).await? {
                Conditional::Fresh { value, .. } => {
                    let mut page = value;
                    out.append(&mut page.items);
                    next = page.next;
                }
                // Only an `If-None-Match` can earn a 304, and none was sent.
                Conditional::NotModified => return Err(not_modified_uncached(what)),
            }
        }
        Ok(out)
    }

    /// One page of a list, conditional on `etag` when given. A fresh page carries its items,
    /// the ETag GitHub sent and its `rel="next"` link (on this origin only); a 304 carries
    /// nothing (GitHub sends no `link` with it).
    async fn get_page<T: DeserializeOwned>(
        &self,
        url: Url,
        what: &str,
        etag: Option<&str>,
    ) -> Result<Conditional<Page<T>>> {
        let (etag, r) = match self.get_conditional(url, what, etag).await? {
            Conditional::NotModified => return Ok(Conditional::NotModified),
            Conditional::Fresh { etag, value } => (etag, value),
        };
        if r.status() == StatusCode::NO_CONTENT || r.body().is_empty() {
            return Ok(Conditional::Fresh {
                etag,
                value: Page::default(),
            });
        }
        let items: Vec<T> = decode(&r, what)?;
        let next = match header(r.headers(), "link").and_then(next_link) {
            Some(link) => Some(self.same_origin(&link, what)?),
            None => None,
        };
        Ok(Conditional::Fresh {
            etag,
            value: Page { items, next },
        })
    }

    /// A GET sent with `If-None-Match: etag` when given (only that can earn a 304): the answer
    /// and the ETag GitHub sent with it, or `NotModified`.
    async fn get_conditional(
        &self,
        url: Url,
        what: &str,
        etag: Option<&str>,
    ) -> Result<Conditional<Answer>> {
        let mut req = self.get(url, what);
        if let Some(v) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
            req = req
                .answers(&[304])
                .header(HeaderName::from_static("if-none-match"), v);
        }
        let r = req.send_retry().await?;
        if r.status() == StatusCode::NOT_MODIFIED {
            return Ok(Conditional::NotModified);
        }
        let etag = header(r.headers(), "etag").map(str::to_string);
        Ok(Conditional::Fresh { etag, value: r })
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

    // ---- users and collaborators ----

    /// `GET /user`: the token's own login.
    pub(crate) async fn user(&self) -> Result<String> {
        let what = "the token's user";
        let r = self
            .get(self.root_url(&["user"]), what)
            .send_retry()
            .await?;
        Ok(decode::<wire::User>(&r, what)?.login)
    }

    /// `GET /repos/{o}/{r}/collaborators/{login}/permission`.
    pub(crate) async fn collaborator_permission(
        &self,
        login: &str,
    ) -> Result<wire::CollaboratorPermission> {
        let what = "a commenter's permission";
        let url = self.repo_url(&["collaborators", login, "permission"]);
        decode(&self.get(url, what).send_retry().await?, what)
    }

    // ---- pull requests ----

    /// `GET /repos/{o}/{r}/pulls/{n}`, conditional on `etag` when given: `Ok(None)` when GitHub
    /// answers 304 (not modified). `NotFound` when there is no such PR.
    pub(crate) async fn pull_request(
        &self,
        pr: PrNumber,
        etag: Option<&str>,
    ) -> Result<Conditional<wire::PullRequest>> {
        let what = format!("pull request {pr}");
        Ok(
            match self
                .get_conditional(self.pull_request_url(pr), &what, etag)
                .await?
            {
                Conditional::NotModified => Conditional::NotModified,
                Conditional::Fresh { etag, value } => Conditional::Fresh {
                    etag,
                    value: decode(&value, &what)?,
                },
            },
        )
    }

    /// The URL of one pull request (the key of its cached ETag).
    pub(crate) fn pull_request_url(&self, pr: PrNumber) -> Url {
        self.repo_url(&["pulls", &pr.to_string()])
    }

    /// The first page of `GET /repos/{o}/{r}/pulls?state=open` (the rest are its `link`s).
    pub(crate) fn open_pull_requests_url(&self) -> Url {
        let mut url = self.repo_url(&["pulls"]);
        url.query_pairs_mut()
            .append_pair("state", "open")
            .append_pair("per_page", &self.list_page_size.to_string());
        url
    }

    /// How many open pull requests a page of [`Self::open_pull_requests_url`] holds at most.
    pub(crate) fn list_page_size(&self) -> usize {
        self.list_page_size
    }

    /// One page of the open pull requests, conditional on `etag` when given.
    pub(crate) async fn open_pull_requests_page(
        &self,
        url: Url,
        etag: Option<&str>,
    ) -> Result<Conditional<Page<wire::PullRequest>>> {
        self.get_page(url, "pull requests", etag).await
    }

    /// `GET /repos/{o}/{r}/pulls/{n}/files`, every page (GitHub lists at most 3,000 files).
    pub(crate) async fn pull_request_files(&self, pr: PrNumber) -> Result<Vec<wire::DiffEntry>> {
        let mut url = self.repo_url(&["pulls", &pr.to_string(), "files"]);
        url.query_pairs_mut().append_pair("per_page", "100");
        self.get_all(url, "changed files").await
    }

    // ---- issue comments ----

    /// `GET /repos/{o}/{r}/issues/{n}/comments`, every page.
    pub(crate) async fn comments(&self, pr: PrNumber) -> Result<Vec<wire::Comment>> {
        let mut url = self.repo_url(&["issues", &pr.to_string(), "comments"]);
        url.query_pairs_mut().append_pair("per_page", "100");
        self.get_all(url, "comments").await
    }

    /// `POST /repos/{o}/{r}/issues/{n}/comments`.
    pub(crate) async fn create_comment(&self, pr: PrNumber, body: &str) -> Result<()> {
        let url = self.repo_url(&["issues", &pr.to_string(), "comments"]);
        self.write(Method::POST, url, "comment")
            .json(&wire::CommentBody { body })
            .send_retry()
            .await?;
        Ok(())
    }

    /// `POST /repos/{o}/{r}/issues/comments/{id}/reactions`: `true` when GitHub made it (201),
    /// `false` when it was there already (200).
    pub(crate) async fn create_reaction(&self, comment: u64, content: &str) -> Result<bool> {
        let url = self.repo_url(&["issues", "comments", &comment.to_string(), "reactions"]);
        let r = self
            .write(Method::POST, url, "reaction")
            .json(&wire::ReactionBody { content })
            .send_retry()
            .await?;
        Ok(r.status() == StatusCode::CREATED)
    }

    /// `PATCH /repos/{o}/{r}/issues/comments/{id}`.
    pub(crate) async fn update_comment(&self, id: u64, body: &str) -> Result<()> {
        let url = self.repo_url(&["issues", "comments", &id.to_string()]);
        self.write(Method::PATCH, url, "comment")
            .json(&wire::CommentBody { body })
            .send_retry()
            .await?;
        Ok(())
    }

    /// `DELETE /repos/{o}/{r}/issues/comments/{id}`.
    pub(crate) async fn delete_comment(&self, id: u64) -> Result<()> {
        let url = self.repo_url(&["issues", "comments", &id.to_string()]);
        self.write(Method::DELETE, url, "comment")
            .send_retry()
            .await?;
        Ok(())
    }

    // ---- labels ----

    /// `POST /repos/{o}/{r}/issues/{n}/labels`: adds `labels` to the PR (GitHub creates a label
    /// the repository lacks). Adding a label that is there changes nothing, so the request is
    /// re-sent after a transient failure like an edit.
    pub(crate) async fn add_labels(&self, pr: PrNumber, labels: &[&str]) -> Result<()> {
        let what = "labels";
        let url = self.repo_url(&["issues", &pr.to_string(), "labels"]);
        let r = self
            .write(Method::POST, url, what)
            .idempotent(true)
            .json(&wire::LabelsBody { labels })
            .send_retry()
            .await?;
        decode::<Vec<wire::Label>>(&r, what)?;
        Ok(())
    }

    // ---- deployments and environments ----

    /// `GET /repos/{o}/{r}/deployments?environment=…` (and `sha=…` when given), every page.
    pub(crate) async fn deployments(
        &self,
        env: &str,
        sha: Option<&str>,
    ) -> Result<Vec<wire::Deployment>> {
        let mut url = self.repo_url(&["deployments"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(sha) = sha {
                q.append_pair("sha", sha);
            }
            q.append_pair("environment", env)
                .append_pair("per_page", "100");
        }
        self.get_all(url, "deployments").await
    }

    /// `POST /repos/{o}/{r}/deployments`. A 202 (GitHub merged instead of deploying, which
    /// `auto_merge: false` asks it not to) is a `Conflict`.
    pub(crate) async fn create_deployment(
        &self,
        body: &wire::CreateDeployment<'_>,
    ) -> Result<wire::Deployment> {
        let r = self
            .write(Method::POST, self.repo_url(&["deployments"]), "deployment")
            .json(body)
            .send_retry()
            .await?;
        if r.status() == StatusCode::ACCEPTED {
            let msg = decode::<wire::Message>(&r, "deployment")
                .ok()
                .and_then(|m| m.message);
            return Err(Error::Conflict {
                provider: PROVIDER,
                message: format!(
                    "deployment of {} not created: {}",
                    body.ref_name,
                    msg.unwrap_or_else(|| "GitHub answered 202".into())
                ),
                request_id: request_id(r.headers()),
            });
        }
        decode(&r, "deployment")
    }

    /// `DELETE /repos/{o}/{r}/deployments/{id}`.
    pub(crate) async fn delete_deployment(&self, id: u64) -> Result<()> {
        let url = self.repo_url(&["deployments", &id.to_string()]);
        self.write(Method::DELETE, url, "deployment")
            .send_retry()
            .await?;
        Ok(())
    }

    /// The latest status of a deployment (`GET …/statuses?per_page=1`: newest first).
    pub(crate) async fn latest_status(
        &self,
        deployment: u64,
    ) -> Result<Option<wire::DeploymentStatus>> {
        let what = "deployment statuses";
        let mut url = self.repo_url(&["deployments", &deployment.to_string(), "statuses"]);
        url.query_pairs_mut().append_pair("per_page", "1");
        let r = self.get(url, what).send_retry().await?;
        let mut items: Vec<wire::DeploymentStatus> = decode(&r, what)?;
        Ok(if items.is_empty() {
            None
        } else {
            Some(items.swap_remove(0))
        })
    }

    /// `POST /repos/{o}/{r}/deployments/{id}/statuses`.
    pub(crate) async fn create_status(
        &self,
        deployment: u64,
        body: &wire::CreateDeploymentStatus<'_>,
    ) -> Result<()> {
        let url = self.repo_url(&["deployments", &deployment.to_string(), "statuses"]);
        self.write(Method::POST, url, "deployment status")
            .json(body)
            .send_retry()
            .await?;
        Ok(())
    }

    /// `GET /repos/{o}/{r}/environments/{name}`: whether it exists.
    pub(crate) async fn environment_exists(&self, env: &str) -> Result<bool> {
        let url = self.repo_url(&["environments", env]);
        Ok(found(self.get(url, "environment").send_retry().await)?.is_some())
    }

    /// `DELETE /repos/{o}/{r}/environments/{name}`.
    pub(crate) async fn delete_environment(&self, env: &str) -> Result<()> {
        let url = self.repo_url(&["environments", env]);
        self.write(Method::DELETE, url, "environment")
            .send_retry()
            .await?;
        Ok(())
    }
}

/// The answer to a conditional read.
pub(crate) enum Conditional<T> {
    /// 304: unchanged since the read whose ETag was sent.
    NotModified,
    /// A 200 (or 204), with the ETag GitHub sent.
    Fresh { etag: Option<String>, value: T },
}

/// One page of a list.
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    /// The `rel="next"` link, on the API's origin.
    pub(crate) next: Option<Url>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            next: None,
        }
    }
}

/// A list longer than [`MAX_PAGES`] is treated as a loop.
pub(crate) fn check_pages(pages: usize, what: &str) -> Result<()> {
    if pages > MAX_PAGES {
        return Err(Error::failed(
            format!("github: listing {what}"),
            format!("more than {MAX_PAGES} pages; the link chain may loop"),
        ));
    }
    Ok(())
}

/// A 304 to a read we hold no answer for: never taken as "nothing there".
pub(crate) fn not_modified_uncached(what: &str) -> Error {
    Error::Api {
        provider: PROVIDER,
        status: 304,
        message: format!("{what}: not modified, but nothing was cached"),
        request_id: None,
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

#[cfg(test)]
mod tests {
    use super::*;

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
