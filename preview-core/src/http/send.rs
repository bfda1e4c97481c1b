//! The one request sender: [`Client`], [`Request`] and the retry loop in
//! [`Request::send_retry`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::options::ClientOptions;
use super::{header, transport_error};
use crate::error::{Error, Idempotency, Result};
use crate::retry::{RetryConfig, retry};

/// What the sender needs to know about a provider's API.
#[derive(Debug, Clone, Copy)]
pub struct Provider {
    /// The provider's name in errors and logs (`fly`).
    pub name: &'static str,
    /// The response header carrying the provider's request id (`fly-request-id`), for errors and
    /// logs; empty when the API has none.
    pub request_id_header: &'static str,
    /// The provider's status → error table (its `errors.rs`): called with every answer that is
    /// neither a success nor a status the request accepts, and the request's
    /// [`what`](Request::what). Whether the error is retried is then the error's own
    /// [`Error::is_retryable`] under the request's idempotency.
    pub errors: fn(&Answer, &str) -> Error,
}

/// How a provider paces its requests (GitHub: a few reads in flight, writes spaced apart). Every
/// attempt of every request waits in [`Pacing::admit`] before it is sent, and holds the
/// [`Permit`] it gets until its answer has been read.
#[async_trait]
pub trait Pacing: Send + Sync + fmt::Debug {
    /// Waits until a request with `method` may be sent.
    ///
    /// # Errors
    /// When the request must not be sent at all.
    async fn admit(&self, method: &Method) -> Result<Permit>;
}

/// What [`Pacing::admit`] hands out: dropped once the attempt's answer has been read (or the
/// attempt was given up).
pub struct Permit {
    _guard: Option<Box<dyn Send>>,
}

impl Permit {
    /// A permit holding `guard` until the answer is read.
    pub fn new(guard: impl Send + 'static) -> Self {
        Self {
            _guard: Some(Box::new(guard)),
        }
    }

    /// A permit that holds nothing.
    pub fn none() -> Self {
        Self { _guard: None }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

/// A provider's HTTP client: one reqwest client, the auth header and default headers every
/// request carries, the retry policy, the provider's error table and its pacing.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    provider: Provider,
    auth: Option<HeaderValue>,
    headers: HeaderMap,
    retry: RetryConfig,
    /// Whether per-request timeouts apply (off with [`ClientOptions::without_timeouts`]).
    timeouts: bool,
    pacing: Option<Arc<dyn Pacing>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The auth header is sensitive: never shown.
        f.debug_struct("Client")
            .field("provider", &self.provider.name)
            .field("retry", &self.retry)
            .field("timeouts", &self.timeouts)
            .field("pacing", &self.pacing)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `provider` with `options`; `auth` (see [`auth_header`](super::auth_header))
    /// goes on every request.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout, or when the TLS backend cannot be initialised.
    pub fn new(
        provider: Provider,
        options: &ClientOptions,
        auth: Option<HeaderValue>,
    ) -> Result<Self> {
        options.check(provider.name)?;
        Ok(Self {
            http: super::client(options.get_timeout())?,
            provider,
            auth,
            headers: HeaderMap::new(),
            retry: options.get_retry().clone(),
            timeouts: options.get_timeout().is_some(),
            pacing: None,
        })
    }

    /// A client over a reqwest client built elsewhere (its own redirect policy, say), without
    /// auth.
    pub fn from_reqwest(provider: Provider, http: reqwest::Client, retry: RetryConfig) -> Self {
        Self {
            http,
            provider,
            auth: None,
            headers: HeaderMap::new(),
            retry,
            timeouts: true,
            pacing: None,
        }
    }

    /// A header every request carries (`accept`, an API version).
    #[must_use]
    pub fn default_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Paces every attempt of every request through `pacing`.
    #[must_use]
    pub fn pacing(mut self, pacing: Arc<dyn Pacing>) -> Self {
        self.pacing = Some(pacing);
        self
    }

    /// The provider's name.
    pub fn provider(&self) -> &'static str {
        self.provider.name
    }

    /// The retry policy requests are sent with.
    pub fn retry_config(&self) -> &RetryConfig {
        &self.retry
    }

    /// A request; nothing is sent until [`Request::send_retry`].
    pub fn request(&self, method: Method, url: Url) -> Request<'_> {
        Request {
            client: self,
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            content_type: false,
            idempotent: None,
            answers: Answers::Successes(Vec::new()),
            what: None,
            label: None,
            timeout: None,
        }
    }

    /// One attempt: paced, sent, its answer read to the end, then judged.
    async fn attempt(&self, req: &Prepared<'_>) -> Result<Answer> {
        let permit = match &self.pacing {
            Some(p) => Some(p.admit(&req.method).await?),
            None => None,
        };
        let mut out = self.http.request(req.method.clone(), req.url.clone());
        if let Some(auth) = &self.auth {
            out = out.header(AUTHORIZATION, auth.clone());
        }
        for (name, value) in self.headers.iter().chain(req.headers.iter()) {
            out = out.header(name, value.clone());
        }
        if let Some(body) = req.body {
            if req.content_type {
                out = out.header(CONTENT_TYPE, "application/json");
            }
            out = out.body(body.to_vec());
        }
        if let Some(t) = req.timeout.filter(|_| self.timeouts) {
            out = out.timeout(t);
        }
        let name = self.provider.name;
        let mut resp = out.send().await.map_err(|e| transport_error(name, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        // Read chunk by chunk into one buffer sized from `content-length` (capped: the header is
        // the server's word), so a large page is held once, not gathered and then copied.
        let expected = resp.content_length().unwrap_or(0).min(PREALLOCATE_AT_MOST);
        let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(name, e))? {
            body.extend_from_slice(&chunk);
        }
        drop(permit);
        let request_id = Some(self.provider.request_id_header)
            .filter(|h| !h.is_empty())
            .and_then(|h| header(&headers, h))
            .map(str::to_string);
        tracing::debug!(
            provider = name,
            method = %req.method,
            path = req.url.path(),
            status = status.as_u16(),
            request_id = request_id.as_deref().unwrap_or(""),
            "answer"
        );
        let answer = Answer {
            status,
            headers,
            body,
            request_id,
        };
        if status.is_success() || req.answers.accept(status) {
            Ok(answer)
        } else {
            Err((self.provider.errors)(&answer, req.what))
        }
    }
}

/// Which statuses a request takes as answers.
#[derive(Debug, Clone)]
enum Answers {
    /// Successes, and these.
    Successes(Vec<StatusCode>),
    /// Every status.
    All,
}

impl Answers {
    fn accept(&self, status: StatusCode) -> bool {
        match self {
            Answers::Successes(also) => also.contains(&status),
            Answers::All => true,
        }
    }
}

/// A request being built. Sent (and re-sent) by [`Request::send_retry`].
#[must_use = "a request does nothing until it is sent with `send_retry`"]
pub struct Request<'c> {
    client: &'c Client,
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Result<Vec<u8>>>,
    content_type: bool,
    idempotent: Option<bool>,
    answers: Answers,
    what: Option<String>,
    label: Option<String>,
    timeout: Option<Duration>,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies and headers may carry secrets: only the route is shown.
        f.debug_struct("Request")
            .field("provider", &self.client.provider.name)
            .field("method", &self.method)
            .field("path", &self.url.path())
            .finish_non_exhaustive()
    }
}

/// A request's settings, as each attempt reads them.
struct Prepared<'r> {
    method: Method,
    url: Url,
    headers: &'r HeaderMap,
    body: Option<&'r [u8]>,
    content_type: bool,
    answers: &'r Answers,
    what: &'r str,
    timeout: Option<Duration>,
}

impl<'c> Request<'c> {
    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL (with the query so far).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Appends query pairs (form-encoded: no text can add a pair or end the query).
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        if !pairs.is_empty() {
            let mut q = self.url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
        }
        self
    }

    /// A header of this request.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// A JSON body (`content-type: application/json`).
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        let provider = self.client.provider.name;
        self.body = Some(serde_json::to_vec(body).map_err(|e| {
            Error::failed(format!("{provider}: encode a request body"), e.to_string())
        }));
        self.content_type = true;
        self
    }

    /// A body sent as it is, with whatever `content-type` the request's headers say.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(Ok(body.into()));
        self.content_type = false;
        self
    }

    /// Whether sending this request twice has the same effect as once. The default comes from
    /// the method: `POST` creates and is not idempotent, every other method is. Say `true` for
    /// a `POST` that is an upsert or a set-like write.
    ///
    /// A non-idempotent request is re-sent only when it never left (connect errors) or was
    /// refused outright (429): after an ambiguous failure (a timeout, 408, 5xx) the error goes
    /// back to the caller, whose unit looks up what the request may have made before asking
    /// again.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = Some(idempotent);
        self
    }

    /// Statuses that are answers here rather than failures (Fly's `/wait` answers 408 when its
    /// window ran out; a read may take 404 as "missing"). Successes always are.
    pub fn answers(mut self, statuses: &[u16]) -> Self {
        let statuses = statuses
            .iter()
            .filter_map(|s| StatusCode::from_u16(*s).ok())
            .collect();
        self.answers = Answers::Successes(statuses);
        self
    }

    /// Every status is an answer (the caller judges it): only transport failures are errors.
    pub fn answers_all(mut self) -> Self {
        self.answers = Answers::All;
        self
    }

    /// What the request is about (`app pr-42-agents`), for the provider's error table (e.g. what
    /// a 404 did not find). Default: the [`label`](Request::label).
    pub fn what(mut self, what: impl Into<String>) -> Self {
        self.what = Some(what.into());
        self
    }

    /// How retries and giving up name the request. Default: `<provider> <METHOD> <path>`.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// A timeout for this request's attempts instead of the client's (a long poll). Ignored
    /// without timeouts ([`ClientOptions::without_timeouts`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request, re-sending it after a transient failure as far as its idempotency
    /// allows, within the client's [`RetryConfig`]: its retry count, its time budget, the
    /// server's `Retry-After`, and at most
    /// [`PERSISTENT_ATTEMPTS`](crate::retry::PERSISTENT_ATTEMPTS) attempts in a row that cannot
    /// connect. Each attempt is paced ([`Pacing`]), carries the auth and default headers, and is
    /// read to the end.
    ///
    /// # Errors
    /// A transport failure ([`Error::Transport`], never with the URL), the provider's error for
    /// a status the request does not accept, or [`Error::RetriesExhausted`] wrapping the last of
    /// those when retries ran out (the pipeline never retries that again).
    pub async fn send_retry(self) -> Result<Answer> {
        let Request {
            client,
            method,
            url,
            headers,
            body,
            content_type,
            idempotent,
            answers,
            what,
            label,
            timeout,
        } = self;
        let body = body.transpose()?;
        let idempotency = if idempotent.unwrap_or(method != Method::POST) {
            Idempotency::Idempotent
        } else {
            Idempotency::NonIdempotent
        };
        let label =
            label.unwrap_or_else(|| format!("{} {method} {}", client.provider.name, url.path()));
        let what = what.unwrap_or_else(|| label.clone());
        let prepared = Prepared {
            method,
            url,
            headers: &headers,
            body: body.as_deref(),
            content_type,
            answers: &answers,
            what: &what,
            timeout,
        };
        retry(&client.retry, &label, idempotency, || {
            client.attempt(&prepared)
        })
        .await
    }
}

/// The most a response's `content-length` reserves up front (a larger body still reads whole).
const PREALLOCATE_AT_MOST: u64 = 16 * 1024 * 1024;

/// An answer, read to the end: a success, or a status the request accepted.
#[derive(Clone)]

pub struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    request_id: Option<String>,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A body may echo what was sent: never shown.
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("request_id", &self.request_id)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// An answer built by hand (for error tables' tests).
    pub fn new(status: StatusCode, headers: HeaderMap, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers,
            body: body.into(),
            request_id: None,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The provider's request id ([`Provider::request_id_header`]), for support.
    pub fn request_id(&self) -> Option<String> {
        self.request_id.clone()
    }
}

/// Why a body did not decode, without quoting it (serde's own message can quote values from the
/// body, and an answer may echo what was sent).
pub fn decode_detail(e: &serde_json::Error) -> String {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use secrecy::SecretString;
    use wiremock::matchers::{body_json, header as has_header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::http::auth_header;

    /// A table like a provider's: 404 is `NotFound` of `what`, 429 a rate limit with its hint,
    /// anything else an API error with the request id.
    fn table(a: &Answer, what: &str) -> Error {
        match a.status().as_u16() {
            404 => Error::NotFound {
                provider: "test",
                what: what.to_string(),
            },
            429 => Error::RateLimited {
                provider: "test",
                retry_after: super::super::retry_after(a.headers(), jiff::Timestamp::now()),
                request_id: a.request_id(),
            },
            status => Error::Api {
                provider: "test",
                status,
                message: String::from_utf8_lossy(a.body()).into_owned(),
                request_id: a.request_id(),
            },
        }
    }

    const TEST: Provider = Provider {
        name: "test",
        request_id_header: "x-request-id",
        errors: table,
    };

    fn test_client(server: &MockServer) -> (Client, Url) {
        let auth = auth_header("Bearer", &SecretString::from("t0k"), "test").unwrap();
        let options = ClientOptions::new().without_timeouts().retry(
            RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(4)),
        );
        let client = Client::new(TEST, &options, Some(auth)).unwrap();
        (client, Url::parse(&server.uri()).unwrap())
    }

    fn at(base: &Url, p: &str) -> Url {
        base.join(p).unwrap()
    }

    async fn requests(server: &MockServer) -> usize {
        server.received_requests().await.unwrap_or_default().len()
    }

    /// Answers `first` once, then 200 with `{"ok":true}`.
    async fn flaky(server: &MockServer, verb: &str, first: ResponseTemplate) {
        Mock::given(method(verb))
            .respond_with(first)
            .up_to_n_times(1)
            .with_priority(1)
            .mount(server)
            .await;
        Mock::given(method(verb))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn reads_are_resent_after_a_server_error_with_auth_and_headers() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/thing"))
            .and(has_header("authorization", "Bearer t0k"))
            .and(has_header("accept", "application/json"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/thing"))
            .and(has_header("authorization", "Bearer t0k"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("x-request-id", "req-1")
                    .set_body_string("{}"),
            )
            .mount(&server)
            .await;
        let (client, base) = test_client(&server);
        let client = client.default_header(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let a = client
            .request(Method::GET, at(&base, "/v1/thing"))
            .send_retry()
            .await
            .unwrap();
        assert_eq!(a.status(), StatusCode::OK);
        assert_eq!(a.request_id().as_deref(), Some("req-1"));
        assert_eq!(requests(&server).await, 2);
    }

    #[tokio::test]
    async fn a_post_is_not_resent_after_an_ambiguous_failure_unless_it_is_idempotent() {
        let server = MockServer::start().await;
        flaky(
            &server,
            "POST",
            ResponseTemplate::new(502).set_body_string("bad gateway"),
        )
        .await;
        let (client, base) = test_client(&server);
        let err = client
            .request(Method::POST, at(&base, "/v1/apps"))
            .json(&serde_json::json!({"name": "a"}))
            .send_retry()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Api { status: 502, .. }), "{err:?}");
        assert_eq!(requests(&server).await, 1, "a create was re-sent");

        let server = MockServer::start().await;
        flaky(&server, "POST", ResponseTemplate::new(502)).await;
        Mock::given(method("POST"))
            .and(body_json(serde_json::json!({"k": "v"})))
            .and(has_header("content-type", "application/json"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let (client, base) = test_client(&server);
        client
            .request(Method::POST, at(&base, "/v1/env"))
            .json(&serde_json::json!({"k": "v"}))
            .idempotent(true)
            .send_retry()
            .await
            .unwrap();
        assert_eq!(requests(&server).await, 2, "an upsert is re-sent");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_create_is_resent_after_the_servers_wait() {
        let server = MockServer::start().await;
        flaky(
            &server,
            "POST",
            ResponseTemplate::new(429).insert_header("retry-after", "3"),
        )
        .await;
        let (client, base) = test_client(&server);
        let start = tokio::time::Instant::now();
        client
            .request(Method::POST, at(&base, "/v1/apps"))
            .send_retry()
            .await
            .unwrap();
        assert!(
            start.elapsed() >= Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(requests(&server).await, 2);
    }

    #[tokio::test]
    async fn accepted_statuses_are_answers_and_others_go_through_the_table() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        let (client, base) = test_client(&server);
        let a = client
            .request(Method::GET, at(&base, "/v1/apps/x"))
            .answers(&[404])
            .send_retry()
            .await
            .unwrap();
        assert_eq!(a.status(), StatusCode::NOT_FOUND);
        let err = client
            .request(Method::GET, at(&base, "/v1/apps/x"))
            .what("app x")
            .send_retry()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { what, .. } if what == "app x"),
            "{err:?}"
        );
        let a = client
            .request(Method::GET, at(&base, "/v1/apps/x"))
            .answers_all()
            .send_retry()
            .await
            .unwrap();
        assert_eq!(a.status(), StatusCode::NOT_FOUND);
        assert_eq!(requests(&server).await, 3, "a 404 is never re-sent");
    }

    #[tokio::test]
    async fn giving_up_names_the_request_and_wraps_the_last_error() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500).insert_header("x-request-id", "req-9"))
            .mount(&server)
            .await;
        let (client, base) = test_client(&server);
        let client = Client {
            retry: RetryConfig::default()
                .backoff(Duration::from_millis(1), Duration::from_millis(2))
                .max_retries(2),
            ..client
        };
        let err = client
            .request(Method::GET, at(&base, "/v1/apps/x"))
            .query(&[("state", "started,failed"), ("a&b", "=")])
            .send_retry()
            .await
            .unwrap_err();
        match &err {
            Error::RetriesExhausted {
                what,
                attempts,
                last,
                ..
            } => {
                assert_eq!(what, "test GET /v1/apps/x");
                assert_eq!(*attempts, 3);
                assert!(
                    matches!(**last, Error::Api { status: 500, ref request_id, .. } if request_id.as_deref() == Some("req-9")),
                    "{last:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        let sent = server.received_requests().await.unwrap();
        assert_eq!(
            sent[0].url.query(),
            Some("state=started%2Cfailed&a%26b=%3D")
        );
    }

    /// Counts admissions and holds each permit until dropped.
    #[derive(Debug, Default)]
    struct Counting {
        admitted: AtomicUsize,
        held: Arc<AtomicUsize>,
    }

    struct Held(Arc<AtomicUsize>);

    impl Drop for Held {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl Pacing for Counting {
        async fn admit(&self, _: &Method) -> Result<Permit> {
            self.admitted.fetch_add(1, Ordering::SeqCst);
            self.held.fetch_add(1, Ordering::SeqCst);
            Ok(Permit::new(Held(self.held.clone())))
        }
    }

    #[tokio::test]
    async fn every_attempt_is_paced_and_releases_its_permit() {
        let server = MockServer::start().await;
        flaky(&server, "DELETE", ResponseTemplate::new(503)).await;
        let (client, base) = test_client(&server);
        let pacing = Arc::new(Counting::default());
        let client = client.pacing(pacing.clone());
        client
            .request(Method::DELETE, at(&base, "/v1/apps/x"))
            .send_retry()
            .await
            .unwrap();
        assert_eq!(pacing.admitted.load(Ordering::SeqCst), 2);
        assert_eq!(pacing.held.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn debug_shows_neither_the_token_nor_the_body() {
        let server = MockServer::start().await;
        let (client, base) = test_client(&server);
        let req = client
            .request(Method::POST, at(&base, "/v1/secrets"))
            .json(&serde_json::json!({"value": "SENTINEL"}));
        let text = format!("{client:?} {req:?}");
        assert!(
            !text.contains("SENTINEL") && !text.contains("t0k"),
            "{text}"
        );
        let a = Answer::new(StatusCode::OK, HeaderMap::new(), "SENTINEL");
        assert!(!format!("{a:?}").contains("SENTINEL"));
    }
}
