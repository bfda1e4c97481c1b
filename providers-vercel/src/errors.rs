//! Status + headers + body → [`Error`], the one place Vercel's error quirks live.
//!
//! Vercel's error body is `{"error":{"code","message",…}}` (some APIs wrongly say `err`); a
//! `rate_limited` body also carries `error.limit.reset` (epoch seconds). The spec gives 4xx/5xx no
//! body schema, so everything here is optional. Only `code` and `message` are read: other fields
//! (e.g. `failed[].error.value`) may echo a secret and are never looked at.

use reqwest::header::HeaderMap;
use serde::Deserialize;

use preview_core::Error;
use preview_core::http::{Answer, Provider, header, retry_after, truncate, unavailable};

pub(crate) const PROVIDER: &str = "vercel";

/// Vercel for the shared sender: its request id header and this table.
pub(crate) const API: Provider = Provider {
    name: PROVIDER,
    request_id_header: REQUEST_ID,
    errors: table,
};

/// The header Vercel puts its request id in.
const REQUEST_ID: &str = "x-vercel-id";

/// [`from_response`] for the sender (which reads the clock itself).
fn table(answer: &Answer, _what: &str) -> Error {
    from_response(
        answer.status().as_u16(),
        answer.headers(),
        answer.body(),
        jiff::Timestamp::now(),
    )
}

/// The longest provider message kept in an error.
const MAX_MESSAGE: usize = 300;

#[derive(Debug, Default, Deserialize)]
struct Body {
    error: Option<ErrorBody>,
    err: Option<ErrorBody>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    limit: Option<Limit>,
}

#[derive(Debug, Default, Deserialize)]
struct Limit {
    reset: Option<f64>,
}

/// The request id Vercel puts on every response, for support.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    header(headers, REQUEST_ID).map(str::to_string)
}

/// Maps a non-2xx response to an [`Error`]. `now` is used for `Retry-After` dates and `limit.reset`.
pub(crate) fn from_response(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: jiff::Timestamp,
) -> Error {
    let parsed: Body = serde_json::from_slice(body).unwrap_or_default();
    let detail = parsed.error.or(parsed.err).unwrap_or_default();
    let code = detail.code.clone().unwrap_or_default();
    let message = match (&detail.code, &detail.message) {
        (Some(c), Some(m)) => format!("{c}: {}", truncate(m, MAX_MESSAGE)),
        (Some(c), None) => c.clone(),
        (None, Some(m)) => truncate(m, MAX_MESSAGE),
        // A body we cannot read is not echoed: it could be anything.
        (None, None) => "no error details in the response".to_string(),
    };
    let request_id = request_id(headers);
    let rate_limited = status == 429 || code == "rate_limited";
    if rate_limited {
        let hint = retry_after(headers, now).or_else(|| {
            let reset = detail.limit.as_ref()?.reset?;
            let wait = reset - now.as_second() as f64;
            Some(std::time::Duration::from_secs_f64(wait.max(0.0)))
        });
        return Error::RateLimited {
            provider: PROVIDER,
            retry_after: hint,
            request_id,
        };
    }
    // The Vercel CLI honours `Retry-After` on 429 and 503.
    if let Some(e) = unavailable(PROVIDER, status, headers, request_id.clone(), now) {
        return e;
    }
    let conflict_code = {
        let c = code.to_ascii_lowercase();
        c.contains("conflict") || c.contains("already")
    };
    match status {
        401 | 403 => Error::Unauthorized {
            provider: PROVIDER,
            status,
            message,
            request_id,
        },
        404 => Error::NotFound {
            provider: PROVIDER,
            what: message,
        },
        409 => Error::Conflict {
            provider: PROVIDER,
            message,
            request_id,
        },
        400 if conflict_code => Error::Conflict {
            provider: PROVIDER,
            message,
            request_id,
        },
        _ => Error::Api {
            provider: PROVIDER,
            status,
            message,
            request_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::Duration;

    fn now() -> jiff::Timestamp {
        "2026-11-22T08:00:00Z".parse().expect("a valid timestamp")
    }

    #[derive(Debug, PartialEq)]
    enum Kind {
        Unauthorized(u16),
        NotFound,
        Conflict,
        RateLimited(Option<u64>),
        Unavailable(u64),
        Api(u16),
    }

    fn kind(e: &Error) -> Kind {
        match e {
            Error::Unauthorized { status, .. } => Kind::Unauthorized(*status),
            Error::NotFound { .. } => Kind::NotFound,
            Error::Conflict { .. } => Kind::Conflict,
            Error::RateLimited { retry_after, .. } => {
                Kind::RateLimited(retry_after.map(|d| d.as_secs()))
            }
            Error::Unavailable { retry_after, .. } => Kind::Unavailable(retry_after.as_secs()),
            Error::Api { status, .. } => Kind::Api(*status),
            other => panic!("unexpected variant {other:?}"),
        }
    }

    #[test]
    fn every_status_maps_to_its_kind() {
        let reset = now().as_second() + 42;
        let table: Vec<(u16, Option<&str>, String, Kind)> = vec![
            (
                400,
                None,
                r#"{"error":{"code":"bad_request","message":"x"}}"#.into(),
                Kind::Api(400),
            ),
            (
                400,
                None,
                r#"{"error":{"code":"ENV_CONFLICT","message":"exists"}}"#.into(),
                Kind::Conflict,
            ),
            (
                400,
                None,
                r#"{"error":{"code":"domain_already_in_use","message":"in use"}}"#.into(),
                Kind::Conflict,
            ),
            (
                401,
                None,
                r#"{"error":{"code":"forbidden","message":"bad token"}}"#.into(),
                Kind::Unauthorized(401),
            ),
            (
                403,
                None,
                r#"{"error":{"code":"forbidden","message":"no"}}"#.into(),
                Kind::Unauthorized(403),
            ),
            (
                403,
                None,
                r#"{"error":{"code":"rate_limited","message":"slow"}}"#.into(),
                Kind::RateLimited(None),
            ),
            (
                404,
                None,
                r#"{"error":{"code":"not_found","message":"gone"}}"#.into(),
                Kind::NotFound,
            ),
            (
                409,
                None,
                r#"{"error":{"code":"conflict","message":"transfer"}}"#.into(),
                Kind::Conflict,
            ),
            (429, Some("7"), "{}".into(), Kind::RateLimited(Some(7))),
            (
                429,
                None,
                format!(
                    r#"{{"error":{{"code":"rate_limited","message":"slow","limit":{{"remaining":0,"reset":{reset},"resetMs":{},"total":100}}}}}}"#,
                    reset * 1000
                ),
                Kind::RateLimited(Some(42)),
            ),
            (429, None, "not json".into(), Kind::RateLimited(None)),
            (
                500,
                None,
                r#"{"err":{"code":"internal_server_error","message":"boom"}}"#.into(),
                Kind::Api(500),
            ),
            (502, None, "<html>bad gateway</html>".into(), Kind::Api(502)),
            (503, Some("3"), "".into(), Kind::Unavailable(3)),
            (503, None, "".into(), Kind::Api(503)),
            (
                402,
                None,
                r#"{"error":{"code":"payment_required","message":"plan"}}"#.into(),
                Kind::Api(402),
            ),
        ];
        for (status, retry, body, want) in table {
            let mut h = HeaderMap::new();
            h.insert("x-vercel-id", HeaderValue::from_static("iad1::abc"));
            if let Some(r) = retry {
                h.insert(
                    "retry-after",
                    HeaderValue::from_str(r).expect("a valid header"),
                );
            }
            let err = from_response(status, &h, body.as_bytes(), now());
            assert_eq!(kind(&err), want, "{status} {body}");
            let text = err.to_string();
            assert!(text.starts_with("vercel: "), "{text}");
            if !matches!(err, Error::NotFound { .. }) {
                assert!(text.contains("iad1::abc"), "request id missing: {text}");
            }
            assert!(!text.contains("<html>"), "raw body leaked: {text}");
        }
    }

    #[test]
    fn messages_carry_code_and_message_but_not_other_fields() {
        let body = r#"{"error":{"code":"bad_request","message":"invalid key","value":"SENTINEL"}}"#;
        let err = from_response(400, &HeaderMap::new(), body.as_bytes(), now());
        let text = format!("{err} {err:?}");
        assert!(text.contains("bad_request: invalid key"), "{text}");
        assert!(!text.contains("SENTINEL"), "{text}");
    }

    #[test]
    fn a_past_reset_means_no_wait() {
        let body = r#"{"error":{"code":"rate_limited","message":"slow","limit":{"reset":1}}}"#;
        let err = from_response(429, &HeaderMap::new(), body.as_bytes(), now());
        assert_eq!(err.retry_after(), Some(Duration::ZERO));
    }
}
