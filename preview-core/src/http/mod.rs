//! The one HTTP path of the provider crates (feature `http`): [`ClientOptions`] (base URL,
//! timeouts, retry) that every provider builder embeds, and [`Client`], whose requests say whether
//! they are idempotent and are sent, re-sent and mapped to [`Error`] in one loop
//! ([`Request::send_retry`]), modelled on object_store's `RetryExt`.
//!
//! # Two levels of retry
//! Requests retry here, in [`Request::send_retry`]: one trait call is a dozen requests, and
//! retrying the whole call because one of them met a 503 would give up under faults that each
//! request survives alone. Units (a whole trait call: look up, then create what is missing) retry
//! in the pipeline ([`crate::pipeline`]), which is what makes a non-idempotent create safe: its
//! ambiguous failure is not re-sent here, and the unit's next run finds what it made.
//! [`Error::RetriesExhausted`] is never retried, so a request that gave up stops both levels and
//! attempts cannot multiply.
//!
//! A provider keeps only its endpoint functions (which request, which statuses are answers, how
//! the body decodes) and its status → error table ([`Provider::errors`]).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, TransportKind};

mod options;
mod send;

pub use options::{ClientOptions, ClientSettings};
pub use send::{Answer, Client, Pacing, Permit, Provider, Request, decode_detail};

/// A reqwest client with our user agent; with `Some(timeout)`, a per-request timeout and a 10 s
/// connect timeout ([`ClientOptions`] builds its clients with this).
///
/// `None` is only for tests on a paused tokio clock: there the runtime advances time to the next
/// timer whenever it waits for the network, so a client timeout would fire while a local mock
/// server is still answering. Without timeouts no timer runs while a request is in flight, not
/// even the idle-connection reaper, so virtual time only moves for the caller's own waits.
///
/// # Errors
/// [`Error::Config`] if the TLS backend cannot be initialised.
pub fn client(timeout: Option<Duration>) -> Result<reqwest::Client, Error> {
    let builder =
        reqwest::Client::builder().user_agent(concat!("preview/", env!("CARGO_PKG_VERSION")));
    let builder = match timeout {
        Some(timeout) => builder
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10)),
        None => builder.pool_idle_timeout(None),
    };
    builder
        .build()
        .map_err(|e| Error::config(format!("cannot build the HTTP client: {}", e.without_url())))
}

/// `Authorization: <scheme> <token>`, marked sensitive so `Debug` of the request redacts it.
///
/// # Errors
/// [`Error::Config`] when the token contains characters a header cannot carry (the token itself
/// is never echoed).
pub fn auth_header(
    scheme: &str,
    token: &SecretString,
    provider: &str,
) -> Result<HeaderValue, Error> {
    let mut v = HeaderValue::from_str(&format!("{scheme} {}", token.expose_secret())).map_err(|_| {
        Error::config(format!(
            "the {provider} token contains characters that cannot be sent in an HTTP header (newline or control character?)"
        ))
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Classifies a reqwest error (DNS, refused, TLS, other connect failure, timeout), keeping the
/// host it was sent to and dropping its URL (which may carry query secrets or credentials).
pub fn transport_error(provider: &'static str, err: reqwest::Error) -> Error {
    let host = err.url().and_then(|u| {
        let h = u.host_str()?;
        Some(match u.port_or_known_default() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        })
    });
    let kind = classify(&err);
    Error::Transport {
        provider,
        kind,
        host,
        source: Box::new(err.without_url()),
    }
}

/// What went wrong under a reqwest error. reqwest says "connect" or "timeout"; the finer cause
/// is read from its source chain: an I/O error of kind `ConnectionRefused`, hyper's `dns error`,
/// or a TLS failure (rustls reports through an I/O error of kind `InvalidData` while connecting).
fn classify(err: &reqwest::Error) -> TransportKind {
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut next = std::error::Error::source(err);
    while let Some(e) = next {
        chain.push(e);
        next = e.source();
    }
    // I/O errors nest (the TLS stack wraps its own in one of kind `Other`), and an I/O error's
    // `source()` skips the error it wraps: look inside each with `get_ref`.
    let io = |kind: std::io::ErrorKind| {
        chain.iter().any(|e| {
            let mut io = e.downcast_ref::<std::io::Error>();
            while let Some(i) = io {
                if i.kind() == kind {
                    return true;
                }
                io = i
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<std::io::Error>());
            }
            false
        })
    };
    if err.is_connect() {
        if io(std::io::ErrorKind::ConnectionRefused) {
            return TransportKind::Refused;
        }
        if chain.iter().any(|e| e.to_string().starts_with("dns error")) {
            return TransportKind::Dns;
        }
        let https = err.url().is_some_and(|u| u.scheme() == "https");
        if https && io(std::io::ErrorKind::InvalidData) {
            return TransportKind::Tls;
        }
        // Unreachable, a connect timeout…: nothing was sent either way.
        return TransportKind::Connect;
    }
    if err.is_timeout() {
        return TransportKind::Timeout;
    }
    TransportKind::Other
}

/// A response header as text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Retry-After` in seconds or as an HTTP date (relative to `now`); a past date is zero.
pub fn retry_after(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let v = header(headers, "retry-after")?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let delta = when.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(delta.max(0) as u64))
}

/// A 503 that says when to come back (`Retry-After`) as [`Error::Unavailable`]; `None` for any
/// other answer. One rule for every provider: the hint is honoured (reliability.md R8), but the
/// answer stays a server error, so a create behind it is looked up, never re-sent blindly.
pub fn unavailable(
    provider: &'static str,
    status: u16,
    headers: &HeaderMap,
    request_id: Option<String>,
    now: jiff::Timestamp,
) -> Option<Error> {
    let wait = retry_after(headers, now).filter(|_| status == 503)?;
    Some(Error::Unavailable {
        provider,
        retry_after: wait,
        request_id,
    })
}

/// Truncates a response body for an error message (on a char boundary).
pub fn truncate(body: &str, max: usize) -> String {
    if body.len() <= max {
        return body.to_string();
    }
    let mut end = max;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now: jiff::Timestamp = "2026-11-22T08:00:00Z".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 22 Nov 2026 08:00:30 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 22 Nov 2026 07:00:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn auth_headers_are_sensitive_and_never_echo_the_token() {
        let v = auth_header("Bearer", &SecretString::from("SENTINEL"), "fly").unwrap();
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("SENTINEL"));
        let err = auth_header("Bearer", &SecretString::from("SENT\nINEL"), "fly").unwrap_err();
        assert!(!err.to_string().contains("SENT"));
    }

    /// Sends one GET with `client` and classifies its failure.
    async fn failure(client: reqwest::Client, url: &str) -> Error {
        let err = client.get(url).send().await.expect_err("the request fails");
        transport_error("test", err)
    }

    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn transport_failures_name_the_cause_and_the_host_never_the_url() {
        let port = closed_port();
        let err = failure(
            client(Some(Duration::from_secs(5))).unwrap(),
            &format!("http://user:SENTINEL@127.0.0.1:{port}/path?token=SENTINEL"),
        )
        .await;
        assert!(
            matches!(
                err,
                Error::Transport {
                    kind: TransportKind::Refused,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("SENTINEL") && !text.contains("/path"),
            "{text}"
        );
        assert!(
            err.to_string().starts_with(&format!(
                "test: connection to 127.0.0.1:{port} refused (nothing listens there): "
            )),
            "{err}"
        );

        // TLS spoken to a server that answers in plain HTTP.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tls_port = plain.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::Write;
            for mut s in plain.incoming().flatten().take(1) {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            }
        });
        let err = failure(
            client(Some(Duration::from_secs(5))).unwrap(),
            &format!("https://127.0.0.1:{tls_port}/"),
        )
        .await;
        assert!(
            matches!(
                err,
                Error::Transport {
                    kind: TransportKind::Tls,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(&format!(
                "test: TLS handshake with 127.0.0.1:{tls_port} failed: "
            )),
            "{err}"
        );

        // A name that does not resolve (the resolver is the test's: no network).
        let dns = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(NoSuchHost))
            .build()
            .unwrap();
        let err = failure(dns, "https://api.example.invalid/v1").await;
        assert!(
            matches!(
                err,
                Error::Transport {
                    kind: TransportKind::Dns,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "test: cannot resolve api.example.invalid:443 (DNS): no such host"
        );

        // Accepted, never answered.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_port = silent.local_addr().unwrap().port();
        let err = failure(
            client(Some(Duration::from_millis(200))).unwrap(),
            &format!("http://127.0.0.1:{silent_port}/"),
        )
        .await;
        drop(silent);
        assert!(
            matches!(
                err,
                Error::Transport {
                    kind: TransportKind::Timeout,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(&format!(
                "test: no answer from 127.0.0.1:{silent_port} in time (timeout)"
            )),
            "{err}"
        );
    }

    /// A resolver that knows no host.
    struct NoSuchHost;

    impl reqwest::dns::Resolve for NoSuchHost {
        fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
            Box::pin(async { Err("no such host".into()) })
        }
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
