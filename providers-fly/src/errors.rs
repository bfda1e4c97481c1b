//! Status mapping at the edge: every Machines API answer that is not a success becomes one
//! [`Error`] variant here, with the `fly-request-id` when the response has one.
//!
//! Messages come from the `error` field of the API's `ErrorResponse` (truncated), never from the
//! request, so tokens and secret values cannot reach them.

use preview_core::Error;
use preview_core::http::{header, retry_after, truncate, unavailable};
use reqwest::header::HeaderMap;

use crate::PROVIDER;
use crate::wire::ErrorBody;

/// Longest provider message kept in an error.
const MAX_MESSAGE: usize = 300;

/// The header Fly puts its request id in.
pub(crate) const REQUEST_ID: &str = "fly-request-id";

/// The provider's message from a response body: `error` (plus `status` when it says more than
/// `unknown`), or the raw body, truncated.
pub(crate) fn message(body: &str) -> (String, Option<String>) {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) if e.error.is_some() || e.message.is_some() => {
            let text = e.error.or(e.message).unwrap_or_default();
            (truncate(&text, MAX_MESSAGE), e.status)
        }
        _ if body.trim().is_empty() => ("no details given".to_string(), None),
        _ => (truncate(body.trim(), MAX_MESSAGE), None),
    }
}

/// Maps a non-success answer to an [`Error`].
///
/// `what` names the resource for `NotFound`/`AlreadyExists` (`app pr-42-agents`).
pub(crate) fn map(status: u16, headers: &HeaderMap, body: &str, what: &str) -> Error {
    let request_id = header(headers, REQUEST_ID).map(str::to_string);
    let (msg, code) = message(body);
    let code = code.as_deref().unwrap_or("");
    if let Some(e) = unavailable(
        PROVIDER,
        status,
        headers,
        request_id.clone(),
        jiff::Timestamp::now(),
    ) {
        return e;
    }
    match (status, code) {
        (401 | 403, _) => Error::Unauthorized {
            provider: PROVIDER,
            status,
            message: msg,
            request_id,
        },
        (404, _) => Error::NotFound {
            provider: PROVIDER,
            what: what.to_string(),
        },
        (409, _) => Error::Conflict {
            provider: PROVIDER,
            message: format!("{what}: {msg}"),
            request_id,
        },
        (_, "name_taken") => Error::AlreadyExists {
            provider: PROVIDER,
            what: format!("{what} (the name is taken, possibly by another organization)"),
            request_id,
        },
        (429, _) => Error::RateLimited {
            provider: PROVIDER,
            retry_after: retry_after(headers, jiff::Timestamp::now()),
            request_id,
        },
        (_, "insufficient_capacity" | "volume_placement_capacity") => Error::Api {
            provider: PROVIDER,
            status,
            message: format!("insufficient capacity in the region for {what}: {msg}"),
            request_id,
        },
        _ => Error::Api {
            provider: PROVIDER,
            status,
            message: msg,
            request_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::Duration;

    fn headers(rid: Option<&'static str>, retry: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(r) = rid {
            h.insert(REQUEST_ID, HeaderValue::from_static(r));
        }
        if let Some(r) = retry {
            h.insert("retry-after", HeaderValue::from_static(r));
        }
        h
    }

    #[derive(Debug, PartialEq)]
    enum Kind {
        Unauthorized(u16),
        NotFound,
        Conflict,
        AlreadyExists,
        RateLimited(Option<Duration>),
        Unavailable(Duration),
        Api(u16),
    }

    fn kind(e: &Error) -> Kind {
        match e {
            Error::Unauthorized { status, .. } => Kind::Unauthorized(*status),
            Error::NotFound { .. } => Kind::NotFound,
            Error::Conflict { .. } => Kind::Conflict,
            Error::AlreadyExists { .. } => Kind::AlreadyExists,
            Error::RateLimited { retry_after, .. } => Kind::RateLimited(*retry_after),
            Error::Unavailable { retry_after, .. } => Kind::Unavailable(*retry_after),
            Error::Api { status, .. } => Kind::Api(*status),
            other => panic!("unexpected variant {other:?}"),
        }
    }

    #[test]
    fn every_documented_status_maps_to_its_kind() {
        let table: &[(u16, &str, Option<&'static str>, Kind, bool)] = &[
            (
                400,
                r#"{"error":"invalid config"}"#,
                None,
                Kind::Api(400),
                false,
            ),
            (
                401,
                r#"{"error":"unauthorized"}"#,
                None,
                Kind::Unauthorized(401),
                false,
            ),
            (
                403,
                r#"{"error":"forbidden"}"#,
                None,
                Kind::Unauthorized(403),
                false,
            ),
            (404, r#"{"error":"not found"}"#, None, Kind::NotFound, false),
            // wait timed out: retryable when idempotent; the wait loop itself re-issues it
            (
                408,
                r#"{"error":"machine failed to reach desired state, started, currently stopped"}"#,
                None,
                Kind::Api(408),
                true,
            ),
            (
                409,
                r#"{"error":"aborted: lease currently held by x@tokens.fly.io"}"#,
                None,
                Kind::Conflict,
                false,
            ),
            (
                422,
                r#"{"error":"app name taken","status":"name_taken"}"#,
                None,
                Kind::AlreadyExists,
                false,
            ),
            (
                422,
                r#"{"error":"invalid name"}"#,
                None,
                Kind::Api(422),
                false,
            ),
            (
                429,
                "",
                Some("3"),
                Kind::RateLimited(Some(Duration::from_secs(3))),
                true,
            ),
            (429, "", None, Kind::RateLimited(None), true),
            (
                412,
                r#"{"error":"no capacity","status":"insufficient_capacity"}"#,
                None,
                Kind::Api(412),
                false,
            ),
            (500, "boom", None, Kind::Api(500), true),
            (502, "", None, Kind::Api(502), true),
            (
                503,
                r#"{"error":"unavailable"}"#,
                None,
                Kind::Api(503),
                true,
            ),
            (
                503,
                r#"{"error":"unavailable"}"#,
                Some("7"),
                Kind::Unavailable(Duration::from_secs(7)),
                true,
            ),
            (504, "", None, Kind::Api(504), true),
        ];
        for (status, body, retry, want, retryable) in table {
            let e = map(*status, &headers(Some("01REQ"), *retry), body, "app pr-1-a");
            assert_eq!(kind(&e), *want, "{status} {body}");
            assert_eq!(
                e.is_retryable(preview_core::Idempotency::Idempotent),
                *retryable,
                "{status}"
            );
            if !matches!(e, Error::NotFound { .. }) {
                assert!(e.to_string().contains("01REQ"), "{status}: {e}");
            }
        }
    }

    #[test]
    fn capacity_errors_say_so() {
        let e = map(
            503,
            &headers(None, None),
            r#"{"error":"no room","status":"insufficient_capacity"}"#,
            "machine of pr-1-a",
        );
        assert!(e.to_string().contains("insufficient capacity"), "{e}");
        assert!(e.is_retryable(preview_core::Idempotency::Idempotent));
    }

    #[test]
    fn long_bodies_are_truncated() {
        let body = "x".repeat(5000);
        let e = map(500, &headers(None, None), &body, "app");
        assert!(e.to_string().len() < 400, "{e}");
    }
}
