//! One function per Machines API call, over the shared sender
//! ([`preview_core::http::Request::send_retry`]): which request, which statuses are answers here
//! (`/wait`'s 408, a delete's 404), what the request is about for the error table
//! ([`crate::errors`]), and how the body decodes into [`crate::wire`] types. Requests retry there:
//! reads, deletes and set-like writes after a transient failure; creates and leased mutations
//! only when refused outright (429) or never sent, so an ambiguous failure goes back to the
//! caller, whose unit looks the resource up first. Bodies are never logged.
//!
//! To add an endpoint (stop, suspend…): one `pub(crate) async fn` in the section of its resource,
//! built with [`Core::request`], its wire types in `wire.rs`.

use std::time::Duration;

use preview_core::http::{Client, Provider, Request, decode_detail};
use preview_core::{Error, Idempotency, Result, RetryConfig};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::PROVIDER;
use crate::errors;
use crate::wire;

/// The header carrying a lease nonce on every mutating call to a leased Machine.
pub(crate) const NONCE: &str = "fly-machine-lease-nonce";

/// Fly for the shared sender: its request id header and its status → error table.
pub(crate) const API: Provider = Provider {
    name: PROVIDER,
    request_id_header: errors::REQUEST_ID,
    errors: table,
};

/// [`errors::map`] for the sender.
fn table(a: &preview_core::http::Answer, what: &str) -> Error {
    errors::map(
        a.status().as_u16(),
        a.headers(),
        &String::from_utf8_lossy(a.body()),
        what,
    )
}

/// An answer: a success, or a status the request took as an answer.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl From<preview_core::http::Answer> for Answer {
    fn from(a: preview_core::http::Answer) -> Self {
        Self {
            status: a.status(),
            headers: a.headers().clone(),
            body: String::from_utf8_lossy(a.body()).into_owned(),
        }
    }
}

impl Answer {
    /// Fails with the mapped error unless the status is a success.
    pub(crate) fn ok(self, what: &str) -> Result<Answer> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(self.error(what))
        }
    }

    pub(crate) fn error(&self, what: &str) -> Error {
        errors::map(self.status.as_u16(), &self.headers, &self.body, what)
    }

    /// The `fly-request-id` of the answer.
    pub(crate) fn request_id(&self) -> Option<String> {
        preview_core::http::header(&self.headers, errors::REQUEST_ID).map(str::to_string)
    }

    /// Decodes the body. `call` names the request (`create app pr-42-agents`): an answer that is
    /// not JSON, or lacks a field we need, is blamed on that call, never on a later one.
    pub(crate) fn json<T: DeserializeOwned>(&self, call: &str) -> Result<T> {
        serde_json::from_str(&self.body).map_err(|e| self.unreadable(call, &decode_detail(&e)))
    }

    /// The error for an answer to `call` that could not be used, and why.
    pub(crate) fn unreadable(&self, call: &str, why: &str) -> Error {
        Error::Api {
            provider: PROVIDER,
            status: self.status.as_u16(),
            message: format!("{call}: the answer could not be read: {why}"),
            request_id: self.request_id(),
        }
    }
}

/// The Machines API: the shared client (auth, `accept: application/json`, retry) and the base URL.
#[derive(Clone)]
pub(crate) struct Core {
    client: Client,
    base: String,
}

/// The URL of `segments` under `base`, each segment percent-encoded by the `url` crate, so no
/// text can add a segment, a query or a fragment.
///
/// # Errors
/// [`Error::Api`] for a segment no URL can carry: empty, `.` or `..` (URL parsers drop or
/// resolve them, which would address another route), or with a tab or line break (URL parsers
/// drop those characters, which would address another resource); nothing is sent then.
fn url(base: &str, segments: &[&str]) -> Result<reqwest::Url> {
    let bad = |why: String| Error::Api {
        provider: PROVIDER,
        status: 0,
        message: why,
        request_id: None,
    };
    let unaddressable = |s: &str| matches!(s, "" | "." | "..") || s.contains(['\t', '\n', '\r']);
    if let Some(s) = segments.iter().find(|s| unaddressable(s)) {
        return Err(bad(format!(
            "cannot address {s:?} in a URL path (an id from the API, or a name?)"
        )));
    }
    let mut url =
        reqwest::Url::parse(base).map_err(|e| bad(format!("the base URL is invalid: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| bad("the base URL cannot have a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// A request carrying a lease nonce.
fn with_nonce<'c>(req: Request<'c>, nonce: &str) -> Result<Request<'c>> {
    let value = HeaderValue::from_str(nonce).map_err(|_| Error::Api {
        provider: PROVIDER,
        status: 0,
        message: "the lease nonce cannot be sent in a header".into(),
        request_id: None,
    })?;
    Ok(req.header(HeaderName::from_static(NONCE), value))
}

impl Core {
    pub(crate) fn new(client: Client, base: String) -> Self {
        let client = client.default_header(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        Self { client, base }
    }

    /// The base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// How a request (and a unit of [`FlyDatabases`](crate::FlyDatabases)) is retried.
    pub(crate) fn retry(&self) -> &RetryConfig {
        self.client.retry_config()
    }

    /// A request to `path` about `what` (`app pr-42-agents`: what a 404 did not find).
    fn request(&self, method: Method, path: &[&str], what: &str) -> Result<Request<'_>> {
        Ok(self
            .client
            .request(method, url(&self.base, path)?)
            .what(what))
    }

    // ---- apps
    //
    // Each function names its call (`create app pr-42-agents`) in every error it returns, and
    // decodes into wire types whose required fields are the ones we act on (the spec marks none
    // required): an answer without them is an error of that call.

    /// `GET /v1/apps/{app}`, raw: 404 and 403 are answers here (missing; someone else's).
    pub(crate) async fn get_app(&self, app: &str) -> Result<Answer> {
        let what = format!("app {app}");
        let req = self.request(Method::GET, &["v1", "apps", app], &what)?;
        Ok(req.answers(&[403, 404]).send_retry().await?.into())
    }

    /// `POST /v1/apps`; a taken name is `AlreadyExists`. A success is checked by the caller.
    pub(crate) async fn create_app(&self, req: &wire::CreateApp<'_>) -> Result<Answer> {
        let what = format!("app {}", req.name);
        let r = self.request(Method::POST, &["v1", "apps"], &what)?;
        Ok(r.json(req).send_retry().await?.into())
    }

    /// `DELETE /v1/apps/{app}`, raw: 404 is an answer (already gone).
    pub(crate) async fn delete_app(&self, app: &str) -> Result<Answer> {
        let what = format!("app {app}");
        let req = self.request(Method::DELETE, &["v1", "apps", app], &what)?;
        Ok(req.answers(&[404]).send_retry().await?.into())
    }

    pub(crate) async fn list_apps(
        &self,
        org: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<wire::ListApps> {
        let call = format!("list apps of organization {org}");
        let limit = limit.to_string();
        let mut q = vec![("org_slug", org), ("limit", limit.as_str())];
        if let Some(c) = cursor {
            q.push(("cursor", c));
        }
        let req = self.request(Method::GET, &["v1", "apps"], &call)?;
        Answer::from(req.query(&q).send_retry().await?).json(&call)
    }

    // ---- secrets

    pub(crate) async fn list_secrets(&self, app: &str) -> Result<wire::AppSecrets> {
        let call = format!("list secrets of app {app}");
        let what = format!("secrets of app {app}");
        let req = self.request(Method::GET, &["v1", "apps", app, "secrets"], &what)?;
        Answer::from(req.send_retry().await?).json(&call)
    }

    /// `POST /v1/apps/{app}/secrets`: a set-like write (idempotent). An error never carries the
    /// provider's message ([`withhold_message`]).
    pub(crate) async fn update_secrets(
        &self,
        app: &str,
        req: &wire::UpdateSecrets<'_>,
    ) -> Result<wire::UpdateSecretsResp> {
        let call = format!("write secrets of app {app}");
        let what = format!("secrets of app {app}");
        let r = self.request(Method::POST, &["v1", "apps", app, "secrets"], &what)?;
        let a = r
            .json(req)
            .idempotent(true)
            .send_retry()
            .await
            .map_err(withhold_message)?;
        // A decode error quotes nothing of the body: it keeps its text.
        Answer::from(a).json(&call)
    }

    // ---- IPs and volumes

    pub(crate) async fn list_ips(&self, app: &str) -> Result<wire::IpAssignments> {
        let call = format!("list IP assignments of app {app}");
        let what = format!("IP assignments of app {app}");
        let req = self.request(Method::GET, &["v1", "apps", app, "ip_assignments"], &what)?;
        Answer::from(req.send_retry().await?).json(&call)
    }

    pub(crate) async fn assign_ip(&self, app: &str, kind: &str) -> Result<wire::IpAssignment> {
        let call = format!("assign a {kind} IP to app {app}");
        let what = format!("{kind} IP of app {app}");
        let req = self.request(Method::POST, &["v1", "apps", app, "ip_assignments"], &what)?;
        let a = req.json(&wire::AssignIp { kind }).send_retry().await?;
        Answer::from(a).json(&call)
    }

    /// Releases an IP; already released is success.
    pub(crate) async fn release_ip(&self, app: &str, ip: &str) -> Result<()> {
        let what = format!("IP {ip} of app {app}");
        let path = ["v1", "apps", app, "ip_assignments", ip];
        let req = self.request(Method::DELETE, &path, &what)?;
        req.answers(&[404]).send_retry().await?;
        Ok(())
    }

    pub(crate) async fn list_volumes(&self, app: &str) -> Result<Vec<wire::Volume>> {
        let call = format!("list volumes of app {app}");
        let what = format!("volumes of app {app}");
        let req = self.request(Method::GET, &["v1", "apps", app, "volumes"], &what)?;
        Answer::from(req.send_retry().await?).json(&call)
    }

    // ---- machines

    pub(crate) async fn list_machines(&self, app: &str) -> Result<Vec<wire::Machine>> {
        let call = format!("list machines of app {app}");
        let what = format!("machines of app {app}");
        let req = self.request(Method::GET, &["v1", "apps", app, "machines"], &what)?;
        Answer::from(req.send_retry().await?).json(&call)
    }

    pub(crate) async fn get_machine(&self, app: &str, id: &str) -> Result<wire::Machine> {
        let what = format!("machine {id} of app {app}");
        let req = self.request(Method::GET, &["v1", "apps", app, "machines", id], &what)?;
        Answer::from(req.send_retry().await?).json(&format!("read {what}"))
    }

    pub(crate) async fn create_machine(
        &self,
        app: &str,
        req: &wire::MachineRequest<'_>,
    ) -> Result<wire::Machine> {
        let what = format!("machine of app {app}");
        let r = self.request(Method::POST, &["v1", "apps", app, "machines"], &what)?;
        let a = r.json(req).send_retry().await?;
        Answer::from(a).json(&format!("create a machine in app {app}"))
    }

    /// Updates a leased Machine's config (not idempotent: each update makes a new version).
    pub(crate) async fn update_machine(
        &self,
        app: &str,
        id: &str,
        req: &wire::MachineRequest<'_>,
        nonce: &str,
    ) -> Result<wire::Machine> {
        let what = format!("machine {id} of app {app}");
        let r = self.request(Method::POST, &["v1", "apps", app, "machines", id], &what)?;
        let a = with_nonce(r.json(req), nonce)?.send_retry().await?;
        Answer::from(a).json(&format!("update {what}"))
    }

    pub(crate) async fn start_machine(&self, app: &str, id: &str, nonce: &str) -> Result<()> {
        let what = format!("machine {id} of app {app}");
        let path = ["v1", "apps", app, "machines", id, "start"];
        let r = self.request(Method::POST, &path, &what)?;
        with_nonce(r, nonce)?.send_retry().await?;
        Ok(())
    }

    /// Destroys a Machine (forced: it may be running); already gone is success.
    pub(crate) async fn delete_machine(&self, app: &str, id: &str) -> Result<()> {
        let what = format!("machine {id} of app {app}");
        let req = self.request(Method::DELETE, &["v1", "apps", app, "machines", id], &what)?;
        req.query(&[("force", "true")])
            .answers(&[404])
            .send_retry()
            .await?;
        Ok(())
    }

    /// Takes a lease. Its grant is not idempotent (a second ask answers 409 while the first lease
    /// lives), so each ask carries a description no one else uses ([`lease_description`]): when
    /// the answer is lost (408, 5xx, a timeout after sending), the lease is looked up and, if it
    /// carries that description, it is ours and its nonce is used; the lease is never asked for
    /// blindly again.
    pub(crate) async fn acquire_lease(
        &self,
        app: &str,
        id: &str,
        ttl: u64,
        description: &str,
    ) -> Result<wire::Lease> {
        let what = format!("lease on machine {id} of app {app}");
        let call = format!("take a {what}");
        let path = ["v1", "apps", app, "machines", id, "lease"];
        let sent = self
            .request(Method::POST, &path, &what)?
            .json(&wire::CreateLease { ttl, description })
            .send_retry()
            .await;
        match sent {
            Ok(a) => Answer::from(a).json(&call),
            // Refused outright: nothing was granted.
            Err(e @ Error::RateLimited { .. }) => Err(e),
            Err(e) if e.is_retryable(Idempotency::Idempotent) => {
                match self.get_lease(app, id).await {
                    Ok(Some(l)) if l.description.as_deref() == Some(description) => {
                        tracing::info!(app, machine = id, "found the lease whose grant was lost");
                        Ok(l)
                    }
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Extends a lease we hold by `ttl` from now (same nonce; idempotent).
    pub(crate) async fn refresh_lease(
        &self,
        app: &str,
        id: &str,
        ttl: u64,
        nonce: &str,
        description: &str,
    ) -> Result<wire::Lease> {
        let what = format!("lease on machine {id} of app {app}");
        let path = ["v1", "apps", app, "machines", id, "lease"];
        let r = self
            .request(Method::POST, &path, &what)?
            .json(&wire::CreateLease { ttl, description })
            .idempotent(true);
        let a = with_nonce(r, nonce)?.send_retry().await?;
        Answer::from(a).json(&format!("refresh the {what}"))
    }

    /// The Machine's current lease, `None` when there is none.
    pub(crate) async fn get_lease(&self, app: &str, id: &str) -> Result<Option<wire::Lease>> {
        let what = format!("lease on machine {id} of app {app}");
        let path = ["v1", "apps", app, "machines", id, "lease"];
        let req = self.request(Method::GET, &path, &what)?;
        let a = Answer::from(req.answers(&[404]).send_retry().await?);
        if a.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(a.json(&format!("read the {what}"))?))
    }

    pub(crate) async fn release_lease(&self, app: &str, id: &str, nonce: &str) -> Result<()> {
        let what = format!("lease on machine {id} of app {app}");
        let path = ["v1", "apps", app, "machines", id, "lease"];
        let req = self.request(Method::DELETE, &path, &what)?;
        // A lease that already expired is released.
        with_nonce(req.answers(&[404]), nonce)?.send_retry().await?;
        Ok(())
    }

    /// One long-poll for any of `states`: `Ok(Some(state))` with the state the Machine reached,
    /// `Ok(None)` on 408 (none reached within `timeout_secs`: keep polling).
    pub(crate) async fn wait(
        &self,
        app: &str,
        id: &str,
        states: &[&str],
        version: Option<&str>,
        timeout_secs: u64,
    ) -> Result<Option<String>> {
        let what = format!("wait for machine {id} of app {app}");
        // One comma-separated `state` (the API takes them comma-separated or repeated).
        let (state, timeout) = (states.join(","), timeout_secs.to_string());
        let mut q = vec![("state", state.as_str()), ("timeout", timeout.as_str())];
        if let Some(v) = version {
            q.push(("version", v));
        }
        let path = ["v1", "apps", app, "machines", id, "wait"];
        let a = self
            .request(Method::GET, &path, &what)?
            .query(&q)
            .answers(&[408])
            // The server holds the request for up to `timeout`; give the answer room to arrive.
            .timeout(Duration::from_secs(timeout_secs + 15))
            .send_retry()
            .await?;
        let a = Answer::from(a);
        if a.status == StatusCode::REQUEST_TIMEOUT {
            return Ok(None);
        }
        let w: wire::WaitResponse = a.json(&what)?;
        if !w.ok {
            return Ok(None);
        }
        match (w.state, states) {
            (Some(s), _) => Ok(Some(s)),
            // Only one state was asked for: that one was reached.
            (None, [only]) => Ok(Some(only.to_string())),
            (None, _) => Err(a.unreadable(&what, "it does not say which state was reached")),
        }
    }

    /// `POST /v1/apps/{app}/machines/{id}/stop` or `…/suspend` under our lease (not idempotent:
    /// the caller reads the Machine's state before asking again).
    pub(crate) async fn sleep_machine(
        &self,
        app: &str,
        id: &str,
        suspend: bool,
        nonce: &str,
    ) -> Result<()> {
        let what = format!("machine {id} of app {app}");
        let action = if suspend { "suspend" } else { "stop" };
        let r = self.request(
            Method::POST,
            &["v1", "apps", app, "machines", id, action],
            &what,
        )?;
        with_nonce(r, nonce)?.send_retry().await?;
        Ok(())
    }

    // ---- machine metadata and the organisation's machines (a preview's lifetime)

    /// `POST /v1/apps/{app}/machines/{id}/metadata/{key}`: a set (re-sent safely).
    pub(crate) async fn upsert_metadata(
        &self,
        app: &str,
        id: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let what = format!("metadata {key} of machine {id} of app {app}");
        let path = ["v1", "apps", app, "machines", id, "metadata", key];
        let r = self.request(Method::POST, &path, &what)?;
        let body = wire::UpsertMetadata { value };
        r.json(&body).idempotent(true).send_retry().await?;
        Ok(())
    }

    /// `DELETE /v1/apps/{app}/machines/{id}/metadata/{key}`; already gone is success.
    pub(crate) async fn delete_metadata(&self, app: &str, id: &str, key: &str) -> Result<()> {
        let what = format!("metadata {key} of machine {id} of app {app}");
        let path = ["v1", "apps", app, "machines", id, "metadata", key];
        let req = self.request(Method::DELETE, &path, &what)?;
        req.answers(&[404]).send_retry().await?;
        Ok(())
    }

    /// `GET /v1/orgs/{org}/machines`, one page of every Machine of the organisation.
    pub(crate) async fn org_machines(
        &self,
        org: &str,
        cursor: Option<&str>,
    ) -> Result<wire::OrgMachines> {
        let call = format!("list machines of organization {org}");
        let mut q = vec![("limit", "1000")];
        if let Some(c) = cursor {
            q.push(("cursor", c));
        }
        let req = self.request(Method::GET, &["v1", "orgs", org, "machines"], &call)?;
        Answer::from(req.query(&q).send_retry().await?).json(&call)
    }

    pub(crate) async fn events(&self, app: &str, id: &str) -> Result<Vec<wire::MachineEvent>> {
        let what = format!("events of machine {id} of app {app}");
        let path = ["v1", "apps", app, "machines", id, "events"];
        let req = self.request(Method::GET, &path, &what)?;
        let a = req.query(&[("limit", "10")]).send_retry().await?;
        Answer::from(a).json(&format!("list {what}"))
    }
}

/// Drops the provider's message from an error about a request that carried secret values: an
/// API that echoes the rejected value (`invalid value <secret> for …`) would otherwise put it in
/// our error, and from there in logs. Status, code-derived kind and request id stay.
fn withhold_message(mut e: Error) -> Error {
    const WITHHELD: &str = "the provider's message is withheld: the request carried secret values";
    match &mut e {
        Error::Api { message, .. }
        | Error::Unauthorized { message, .. }
        | Error::Conflict { message, .. } => *message = WITHHELD.to_string(),
        Error::RetriesExhausted { last, .. } => {
            let inner = std::mem::replace(&mut **last, Error::config(""));
            **last = withhold_message(inner);
        }
        _ => {}
    }
    e
}

/// How every lease description of ours starts: a lease carrying it was taken by `preview` (this
/// run or another), and is waited out rather than reported as someone else's.
pub(crate) const LEASE_PREFIX: &str = "preview apply ";

/// A lease description no other ask uses: [`LEASE_PREFIX`], the app, and a process-wide sequence
/// number with the time, so a lease whose grant was lost can be told from anyone else's.
pub(crate) fn lease_description(app: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{LEASE_PREFIX}{app} {}-{n}",
        jiff::Timestamp::now().as_nanosecond()
    )
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn path_segments_are_encoded_and_dot_segments_refused() {
        let u = |segs: &[&str]| url("http://x:1/base/", segs).map(|u| u.to_string());
        assert_eq!(
            u(&["v1", "apps", "pr-1-agents"]).unwrap(),
            "http://x:1/base/v1/apps/pr-1-agents"
        );
        assert_eq!(u(&["a/b?c#d"]).unwrap(), "http://x:1/base/a%2Fb%3Fc%23d");
        assert_eq!(u(&["%2e%2e"]).unwrap(), "http://x:1/base/%252e%252e");
        for bad in ["", ".", "..", "a\tb", "a\nb", "\r"] {
            assert!(u(&["v1", bad]).is_err(), "{bad:?}");
        }
    }
}
