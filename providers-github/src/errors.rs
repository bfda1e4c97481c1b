//! Status + headers + body → [`Error`], at the edge.
//!
//! GitHub's quirk: a 403 is ambiguous. It is a rate limit when `x-ratelimit-remaining: 0`, a
//! `retry-after` header or a "secondary rate limit" message says so; otherwise it is a plain
//! permission refusal and must not be retried.

use std::time::Duration;

use preview_core::Error;
use preview_core::http::{header, retry_after, truncate, unavailable};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

pub(crate) const PROVIDER: &str = "github";

/// How long to wait after a secondary rate limit that names no time (GitHub: "at least one minute").
pub(crate) const SECONDARY_WAIT: Duration = Duration::from_secs(60);

/// The longest provider message kept in an error.
const MAX_MESSAGE: usize = 300;

/// GitHub's error bodies (`basic-error`, `validation-error`); every other field is dropped.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The provider's request id, for support.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    header(headers, "x-github-request-id").map(str::to_string)
}

/// The message of an error body: `message` plus the validation items (codes and fields only, never
/// a submitted value), truncated. A body that is not GitHub's JSON is reduced to its status text.
fn message(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let Some(parsed) = parsed else {
        return status
            .canonical_reason()
            .unwrap_or("unexpected response")
            .to_lowercase();
    };
    let mut out = parsed
        .message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("unexpected response")
                .to_lowercase()
        });
    let items: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| {
            let mut parts = Vec::new();
            if let Some(r) = &e.resource {
                parts.push(r.clone());
            }
            if let Some(f) = &e.field {
                parts.push(f.clone());
            }
            if let Some(c) = &e.code {
                parts.push(c.clone());
            }
            // `custom` items carry their explanation in `message`.
            if e.code.as_deref() == Some("custom") {
                if let Some(m) = &e.message {
                    parts.push(m.clone());
                }
            }
            parts.join(" ")
        })
        .filter(|s| !s.is_empty())
        .collect();
    if !items.is_empty() {
        out.push_str(" (");
        out.push_str(&items.join("; "));
        out.push(')');
    }
    truncate(&out, MAX_MESSAGE)
}

/// Whether a 403/429 is a rate limit, and how long GitHub asks us to wait.
///
/// Order follows GitHub's guidance: `retry-after` first, then an exhausted primary limit
/// (`x-ratelimit-remaining: 0`, wait until `x-ratelimit-reset` plus a second), then a message
/// naming the secondary limit (at least a minute). A 429 is always a rate limit.
fn rate_limit(
    status: StatusCode,
    headers: &HeaderMap,
    msg: &str,
    now: jiff::Timestamp,
) -> Option<Option<Duration>> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    if let Some(wait) = retry_after(headers, now) {
        return Some(Some(wait));
    }
    if header(headers, "x-ratelimit-remaining").map(str::trim) == Some("0") {
        let wait = header(headers, "x-ratelimit-reset")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|reset| {
                let secs = (reset - now.as_second()).max(0) as u64;
                Duration::from_secs(secs + 1)
            });
        return Some(wait.or(Some(SECONDARY_WAIT)));
    }
    let lower = msg.to_lowercase();
    if lower.contains("secondary rate limit") || lower.contains("abuse detection") {
        return Some(Some(SECONDARY_WAIT));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(Some(SECONDARY_WAIT));
    }
    None
}

/// Maps a non-success response to an [`Error`]. `what` names the resource for `NotFound`.
pub(crate) fn map_status(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
    now: jiff::Timestamp,
) -> Error {
    let request_id = request_id(headers);
    let msg = message(status, body);
    if let Some(e) = unavailable(PROVIDER, status.as_u16(), headers, request_id.clone(), now) {
        return e;
    }
    if let Some(retry_after) = rate_limit(status, headers, &msg, now) {
        return Error::RateLimited {
            provider: PROVIDER,
            retry_after,
            request_id,
        };
    }
    match status.as_u16() {
        401 | 403 => Error::Unauthorized {
            provider: PROVIDER,
            status: status.as_u16(),
            message: msg,
            request_id,
        },
        404 | 410 => Error::NotFound {
            provider: PROVIDER,
            what: what.to_string(),
        },
        409 => Error::Conflict {
            provider: PROVIDER,
            message: msg,
            request_id,
        },
        s => Error::Api {
            provider: PROVIDER,
            status: s,
            message: msg,
            request_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h.insert("x-github-request-id", HeaderValue::from_static("CAFE:1"));
        h
    }

    #[derive(Debug, PartialEq)]
    enum Kind {
        Unauthorized(u16),
        RateLimited(Option<u64>),
        Unavailable(u64),
        NotFound,
        Conflict,
        Api(u16),
    }

    fn kind(e: &Error) -> Kind {
        match e {
            Error::Unauthorized { status, .. } => Kind::Unauthorized(*status),
            Error::RateLimited { retry_after, .. } => {
                Kind::RateLimited(retry_after.map(|d| d.as_secs()))
            }
            Error::Unavailable { retry_after, .. } => Kind::Unavailable(retry_after.as_secs()),
            Error::NotFound { .. } => Kind::NotFound,
            Error::Conflict { .. } => Kind::Conflict,
            Error::Api { status, .. } => Kind::Api(*status),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_status_maps_to_its_kind() {
        let now: jiff::Timestamp = "2026-11-22T08:00:00Z".parse().unwrap();
        let reset = (now.as_second() + 30).to_string();
        let plain = br#"{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com"}"#;
        let secondary = br#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#;
        type Row<'a> = (u16, Vec<(&'static str, &'a str)>, &'a [u8], Kind);
        let table: Vec<Row> = vec![
            (401, vec![], br#"{"message":"Bad credentials"}"#, Kind::Unauthorized(401)),
            (403, vec![], plain, Kind::Unauthorized(403)),
            (
                403,
                vec![("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &reset)],
                plain,
                Kind::RateLimited(Some(31)),
            ),
            (
                429,
                vec![("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &reset)],
                b"",
                Kind::RateLimited(Some(31)),
            ),
            (403, vec![("retry-after", "7")], secondary, Kind::RateLimited(Some(7))),
            (429, vec![("retry-after", "7")], b"", Kind::RateLimited(Some(7))),
            (403, vec![], secondary, Kind::RateLimited(Some(60))),
            (429, vec![], b"", Kind::RateLimited(Some(60))),
            (
                403,
                vec![("x-ratelimit-remaining", "12"), ("x-ratelimit-reset", &reset)],
                plain,
                Kind::Unauthorized(403),
            ),
            (404, vec![], br#"{"message":"Not Found"}"#, Kind::NotFound),
            (410, vec![], br#"{"message":"Gone"}"#, Kind::NotFound),
            (409, vec![], br#"{"message":"Conflict merging main"}"#, Kind::Conflict),
            (422, vec![], br#"{"message":"Validation Failed","documentation_url":"x","errors":[{"resource":"Deployment","field":"ref","code":"invalid","value":"SECRET"}]}"#, Kind::Api(422)),
            (400, vec![], b"not json", Kind::Api(400)),
            (500, vec![], b"", Kind::Api(500)),
            (502, vec![], b"<html>bad gateway</html>", Kind::Api(502)),
            (503, vec![], br#"{"message":"Service unavailable"}"#, Kind::Api(503)),
            (
                503,
                vec![("retry-after", "5")],
                br#"{"message":"Service unavailable"}"#,
                Kind::Unavailable(5),
            ),
        ];
        for (status, hs, body, want) in table {
            let err = map_status(
                StatusCode::from_u16(status).unwrap(),
                &headers(&hs),
                body,
                "pull request 7",
                now,
            );
            assert_eq!(kind(&err), want, "{status} {hs:?}: {err}");
            if !matches!(err, Error::NotFound { .. }) {
                assert!(err.to_string().contains("CAFE:1"), "{err}");
            }
            assert!(!err.to_string().contains("SECRET"), "{err}");
            assert!(!err.to_string().contains("<html>"), "{err}");
        }
    }

    #[test]
    fn validation_messages_name_fields_and_codes() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let err = map_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &headers(&[]),
            br#"{"message":"Validation Failed","errors":[{"resource":"DeploymentStatus","field":"description","code":"custom","message":"is too long"}]}"#,
            "x",
            now,
        );
        assert_eq!(
            err.to_string(),
            "github: API error (HTTP 422): Validation Failed (DeploymentStatus description custom is too long) (request id CAFE:1)"
        );
    }
}
