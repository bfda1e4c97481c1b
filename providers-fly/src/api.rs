//! One function per Machines API call. Each sends its request exactly once (the pipeline retries),
//! maps failures at the edge ([`crate::errors`]) and decodes into [`crate::wire`] types. Bodies are
//! never logged.

use std::time::Duration;

use preview_core::http::transport_error;
use preview_core::{Error, Idempotency, Result, RetryConfig, retry};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::PROVIDER;
use crate::errors;
use crate::wire;

/// The header carrying a lease nonce on every mutating call to a leased Machine.
pub(crate) const NONCE: &str = "fly-machine-lease-nonce";

/// A raw answer.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
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

/// Why a body did not decode, without quoting it (serde's own message can quote values from the
/// body, and an answer may echo what we sent).
fn decode_detail(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Eof if e.line() == 1 && e.column() == 0 => "the body is empty".to_string(),
        Category::Eof => format!("the body ends early ({at})"),
        Category::Syntax => format!("it is not JSON (syntax error at {at})"),
        Category::Data => {
            // `missing field `id``: the name is ours (from the wire types), never the body's.
            let text = e.to_string();
            match text.strip_prefix("missing field ") {
                Some(rest) => {
                    let field = rest.split(" at line").next().unwrap_or(rest);
                    format!("required field {field} is missing")
                }
                None => format!("a value has the wrong type or shape ({at})"),
            }
        }
        Category::Io => "reading it failed".to_string(),
    }
}

/// The Machines API client: base URL, sensitive auth header, shared reqwest client.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
    pub(crate) auth: HeaderValue,
    /// Whether requests get timeouts (off only for paused-clock tests).
    pub(crate) timeouts: bool,
    /// How a request is re-sent after a transient failure.
    pub(crate) retry: RetryConfig,
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

impl Api {
    /// Sends one request, re-sending it on a transient failure (408, 429, 5xx, transport) as far
    /// as `idempotency` allows (reliability.md a4): reads, deletes and set-like writes are re-sent;
    /// creates and leased mutations only when the request was refused outright (429) or never left,
    /// so an ambiguous failure goes back to the caller, whose retry looks the resource up first.
    /// Statuses in `answers` are answers, not failures (`/wait` answers 408 when it timed out).
    ///
    /// Why here and not only in the pipeline: one trait operation is a dozen requests; retried only
    /// as a whole it succeeds only if every request does at once. Giving up here is
    /// `RetriesExhausted`, which the pipeline does not retry again, so attempts do not multiply.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        idempotency: Idempotency,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&(dyn erased::Body + Sync)>,
        nonce: Option<&str>,
        timeout: Option<Duration>,
        answers: &[StatusCode],
    ) -> Result<Answer> {
        let url = url(&self.base, path)?;
        let what = format!("fly {method} {}", url.path());
        retry(&self.retry, &what, idempotency, || async {
            let a = self
                .send_once(method.clone(), url.clone(), query, body, nonce, timeout)
                .await?;
            let transient = a.status == StatusCode::REQUEST_TIMEOUT
                || a.status == StatusCode::TOO_MANY_REQUESTS
                || a.status.is_server_error();
            if transient && !answers.contains(&a.status) {
                Err(a.error(&what))
            } else {
                Ok(a)
            }
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(method = %method, path = %url.path()))]
    async fn send_once(
        &self,
        method: Method,
        url: reqwest::Url,
        query: &[(&str, String)],
        body: Option<&(dyn erased::Body + Sync)>,
        nonce: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Answer> {
        let mut req = self
            .client
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, self.auth.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_json());
        }
        if let Some(n) = nonce {
            req = req.header(NONCE, n);
        }
        if let Some(t) = timeout.filter(|_| self.timeouts) {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| transport_error(PROVIDER, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .map_err(|e| transport_error(PROVIDER, e))?;
        tracing::debug!(status = status.as_u16(), "fly answered");
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    // ---- apps
    //
    // Each function names its call (`create app pr-42-agents`) in every error it returns, and
    // decodes into wire types whose required fields are the ones we act on (the spec marks none
    // required): an answer without them is an error of that call.

    /// `GET /v1/apps/{app}`, raw: 404 and 403 are answers here (missing; someone else's).
    pub(crate) async fn get_app(&self, app: &str) -> Result<Answer> {
        self.call(
            Idempotency::Idempotent,
            Method::GET,
            &["v1", "apps", app],
            &[],
            None,
            None,
            None,
            &[],
        )
        .await
    }

    /// `POST /v1/apps`, raw (a `name_taken` 422 is an answer); a success is checked with
    /// [`created_app`].
    pub(crate) async fn create_app(&self, req: &wire::CreateApp<'_>) -> Result<Answer> {
        self.call(
            Idempotency::NonIdempotent,
            Method::POST,
            &["v1", "apps"],
            &[],
            Some(&Json(req)),
            None,
            None,
            &[],
        )
        .await
    }

    pub(crate) async fn delete_app(&self, app: &str) -> Result<Answer> {
        self.call(
            Idempotency::Idempotent,
            Method::DELETE,
            &["v1", "apps", app],
            &[],
            None,
            None,
            None,
            &[],
        )
        .await
    }

    pub(crate) async fn list_apps(
        &self,
        org: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<wire::ListApps> {
        let call = format!("list apps of organization {org}");
        let mut q = vec![("org_slug", org.to_string()), ("limit", limit.to_string())];
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        self.call(
            Idempotency::Idempotent,
            Method::GET,
            &["v1", "apps"],
            &q,
            None,
            None,
            None,
            &[],
        )
        .await?
        .ok(&call)?
        .json(&call)
    }

    // ---- secrets

    pub(crate) async fn list_secrets(&self, app: &str) -> Result<wire::AppSecrets> {
        let call = format!("list secrets of app {app}");
        self.call(
            Idempotency::Idempotent,
            Method::GET,
            &["v1", "apps", app, "secrets"],
            &[],
            None,
            None,
            None,
            &[],
        )
        .await?
        .ok(&format!("secrets of app {app}"))?
        .json(&call)
    }

    pub(crate) async fn update_secrets(
        &self,
        app: &str,
        req: &wire::UpdateSecrets<'_>,
    ) -> Result<wire::UpdateSecretsResp> {
        let call = format!("write secrets of app {app}");
        self.call(
            Idempotency::Idempotent,
            Method::POST,
            &["v1", "apps", app, "secrets"],
            &[],
            Some(&Json(req)),
            None,
            None,
            &[],
        )
        .await
        .and_then(|a| a.ok(&format!("secrets of app {app}")))
        .map_err(withhold_message)?
        // A decode error quotes nothing of the body: it keeps its text.
        .json(&call)
    }

    // ---- IPs and volumes

    pub(crate) async fn list_ips(&self, app: &str) -> Result<wire::IpAssignments> {
        let call = format!("list IP assignments of app {app}");
        self.call(
            Idempotency::Idempotent,
            Method::GET,
            &["v1", "apps", app, "ip_assignments"],
            &[],
            None,
            None,
            None,
            &[],
        )
        .await?
        .ok(&format!("IP assignments of app {app}"))?
        .json(&call)
    }

    pub(crate) async fn assign_ip(&self, app: &str, kind: &str) -> Result<wire::IpAssignment> {
        let call = format!("assign a {kind} IP to app {app}");
        let ip: wire::IpAssignment = self
            .call(
                Idempotency::NonIdempotent,
                Method::POST,
                &["v1", "apps", app, "ip_assignments"],
                &[],
                Some(&Json(&wire::AssignIp { kind })),
                None,
                None,
                &[],
            )
            .await?
            .ok(&format!("{kind} IP of app {app}"))?
            .json(&call)?;
        Ok(ip)
    }

    /// Releases an IP; already released is success.
    pub(crate) async fn release_ip(&self, app: &str, ip: &str) -> Result<()> {
        let a = self
            .call(
                Idempotency::Idempotent,
                Method::DELETE,
                &["v1", "apps", app, "ip_assignments", ip],
                &[],
                None,
                None,
                None,
                &[],
            )
            .await?;
        if a.status != StatusCode::NOT_FOUND {
            a.ok(&format!("IP {ip} of app {app}"))?;
        }
        Ok(())
    }

    pub(crate) async fn list_volumes(&self, app: &str) -> Result<Vec<wire::Volume>> {
        let call = format!("list volumes of app {app}");
        self.call(
            Idempotency::Idempotent,
            Method::GET,
            &["v1", "apps", app, "volumes"],
            &[],
            None,
            None,
            None,
            &[],
        )
        .await?
        .ok(&format!("volumes of app {app}"))?
        .json(&call)
    }

    // ---- machines

    pub(crate) async fn list_machines(&self, app: &str) -> Result<Vec<wire::Machine>> {
        let call = format!("list machines of app {app}");
        self.call(
            Idempotency::Idempotent,
            Method::GET,
            &["v1", "apps", app, "machines"],
            &[],
            None,
            None,
            None,
            &[],
        )
        .await?
        .ok(&format!("machines of app {app}"))?
        .json(&call)
    }

    pub(crate) async fn get_machine(&self, app: &str, id: &str) -> Result<wire::Machine> {
        let what = format!("machine {id} of app {app}");
        self.call(
            Idempotency::Idempotent,
            Method::GET,
            &["v1", "apps", app, "machines", id],
            &[],
            None,
            None,
            None,
            &[],
        )
        .await?
        .ok(&what)?
        .json(&format!("read {what}"))
    }

    pub(crate) async fn create_machine(
        &self,
        app: &str,
        req: &wire::MachineRequest<'_>,
    ) -> Result<wire::Machine> {
        let what = format!("machine of app {app}");
        self.call(
            Idempotency::NonIdempotent,
            Method::POST,
            &["v1", "apps", app, "machines"],
            &[],
            Some(&Json(req)),
            None,
            None,
            &[],
        )
        .await?
        .ok(&what)?
        .json(&format!("create a machine in app {app}"))
    }

    pub(crate) async fn update_machine(
        &self,
        app: &str,
        id: &str,
        req: &wire::MachineRequest<'_>,
        nonce: &str,
    ) -> Result<wire::Machine> {
        let what = format!("machine {id} of app {app}");
        self.call(
            Idempotency::NonIdempotent,
            Method::POST,
            &["v1", "apps", app, "machines", id],
            &[],
            Some(&Json(req)),
            Some(nonce),
            None,
            &[],
        )
        .await?
        .ok(&what)?
        .json(&format!("update {what}"))
    }

    pub(crate) async fn start_machine(&self, app: &str, id: &str, nonce: &str) -> Result<()> {
        let what = format!("machine {id} of app {app}");
        self.call(
            Idempotency::NonIdempotent,
            Method::POST,
            &["v1", "apps", app, "machines", id, "start"],
            &[],
            None,
            Some(nonce),
            None,
            &[],
        )
        .await?
        .ok(&what)?;
        Ok(())
    }

    /// Destroys a Machine (forced: it may be running); already gone is success.
    pub(crate) async fn delete_machine(&self, app: &str, id: &str) -> Result<()> {
        let a = self
            .call(
                Idempotency::Idempotent,
                Method::DELETE,
                &["v1", "apps", app, "machines", id],
                &[("force", "true".to_string())],
                None,
                None,
                None,
                &[],
            )
            .await?;
        if a.status != StatusCode::NOT_FOUND {
            a.ok(&format!("machine {id} of app {app}"))?;
        }
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
        let sent = self
            .call(
                Idempotency::NonIdempotent,
                Method::POST,
                &["v1", "apps", app, "machines", id, "lease"],
                &[],
                Some(&Json(&wire::CreateLease { ttl, description })),
                None,
                None,
                &[],
            )
            .await;
        match sent {
            Ok(a) => a.ok(&what)?.json(&call),
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

    /// Extends a lease we hold by `ttl` from now (same nonce).
    pub(crate) async fn refresh_lease(
        &self,
        app: &str,
        id: &str,
        ttl: u64,
        nonce: &str,
        description: &str,
    ) -> Result<wire::Lease> {
        let what = format!("lease on machine {id} of app {app}");
        self.call(
            Idempotency::Idempotent,
            Method::POST,
            &["v1", "apps", app, "machines", id, "lease"],
            &[],
            Some(&Json(&wire::CreateLease { ttl, description })),
            Some(nonce),
            None,
            &[],
        )
        .await?
        .ok(&what)?
        .json(&format!("refresh the {what}"))
    }

    /// The Machine's current lease, `None` when there is none.
    pub(crate) async fn get_lease(&self, app: &str, id: &str) -> Result<Option<wire::Lease>> {
        let what = format!("lease on machine {id} of app {app}");
        let a = self
            .call(
                Idempotency::Idempotent,
                Method::GET,
                &["v1", "apps", app, "machines", id, "lease"],
                &[],
                None,
                None,
                None,
                &[],
            )
            .await?;
        if a.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(a.ok(&what)?.json(&format!("read the {what}"))?))
    }

    pub(crate) async fn release_lease(&self, app: &str, id: &str, nonce: &str) -> Result<()> {
        let what = format!("lease on machine {id} of app {app}");
        let a = self
            .call(
                Idempotency::Idempotent,
                Method::DELETE,
                &["v1", "apps", app, "machines", id, "lease"],
                &[],
                None,
                Some(nonce),
                None,
                &[],
            )
            .await?;
        // A lease that already expired is released.
        if a.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        a.ok(&what)?;
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
        let mut q = vec![
            ("state", states.join(",")),
            ("timeout", timeout_secs.to_string()),
        ];
        if let Some(v) = version {
            q.push(("version", v.to_string()));
        }
        let a = self
            .call(
                Idempotency::Idempotent,
                Method::GET,
                &["v1", "apps", app, "machines", id, "wait"],
                &q,
                None,
                None,
                // The server holds the request for up to `timeout`; give the answer room to arrive.
                Some(Duration::from_secs(timeout_secs + 15)),
                &[StatusCode::REQUEST_TIMEOUT],
            )
            .await?;
        if a.status == StatusCode::REQUEST_TIMEOUT {
            return Ok(None);
        }
        let a = a.ok(&what)?;
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

    pub(crate) async fn events(&self, app: &str, id: &str) -> Result<Vec<wire::MachineEvent>> {
        let what = format!("events of machine {id} of app {app}");
        self.call(
            Idempotency::Idempotent,
            Method::GET,
            &["v1", "apps", app, "machines", id, "events"],
            &[("limit", "10".to_string())],
            None,
            None,
            None,
            &[],
        )
        .await?
        .ok(&what)?
        .json(&format!("list {what}"))
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

/// A body serialised at the call (keeps `call` non-generic).
struct Json<'a, T: Serialize>(&'a T);

mod erased {
    pub(crate) trait Body {
        fn to_json(&self) -> Vec<u8>;
    }
}

impl<T: Serialize> erased::Body for Json<'_, T> {
    fn to_json(&self) -> Vec<u8> {
        // Serialising our own wire structs (strings, numbers, maps with string keys) cannot fail.
        serde_json::to_vec(self.0).unwrap_or_default()
    }
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
