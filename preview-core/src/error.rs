//! The one error type every provider and the pipeline speak, and the pipeline [`Phase`] an error
//! happened in.
//!
//! Variants say what a caller can do about a failure; [`Error::is_retryable`] decides from the variant,
//! never from message text. Messages never contain tokens or secret values: providers build them from
//! (truncated) response bodies, never from request headers.

use std::time::Duration;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed source error, for transport failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whether re-sending an operation is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Sending twice has the same effect as once (GET, PUT, DELETE, upsert, get-then-create units).
    Idempotent,
    /// A bare create: re-sending after an ambiguous failure could duplicate the resource.
    NonIdempotent,
}

/// How a transport-level failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// The host name did not resolve (DNS): the request was never sent.
    Dns,
    /// The connection was refused (nothing listens at that address): never sent.
    Refused,
    /// The TLS handshake failed (certificate, protocol): never sent.
    Tls,
    /// The connection could not be made for another reason (unreachable, connect timeout):
    /// never sent.
    Connect,
    /// The request timed out; it may have reached the server.
    Timeout,
    /// Anything else (connection reset mid-response, malformed response).
    Other,
}

impl TransportKind {
    /// Whether the request provably never reached the server (so even a bare create may be
    /// re-sent).
    pub fn never_sent(self) -> bool {
        matches!(
            self,
            TransportKind::Dns
                | TransportKind::Refused
                | TransportKind::Tls
                | TransportKind::Connect
        )
    }

    /// Whether the same answer is expected on every attempt (a wrong host, nothing listening, a
    /// certificate that does not match): worth a couple of attempts, not the whole retry budget.
    pub fn is_persistent(self) -> bool {
        matches!(
            self,
            TransportKind::Dns | TransportKind::Refused | TransportKind::Tls
        )
    }
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::Dns => "dns",
            TransportKind::Refused => "refused",
            TransportKind::Tls => "tls",
            TransportKind::Connect => "connect",
            TransportKind::Timeout => "timeout",
            TransportKind::Other => "other",
        })
    }
}

/// What a transport failure looked like, for people: the cause, the host, and the innermost
/// reason the system gave (never a URL: reqwest errors are stripped of theirs).
fn transport(kind: &TransportKind, host: &Option<String>, source: &BoxError) -> String {
    let host = host.as_deref().unwrap_or("the server");
    let what = match kind {
        TransportKind::Dns => format!("cannot resolve {host} (DNS)"),
        TransportKind::Refused => {
            format!("connection to {host} refused (nothing listens there)")
        }
        TransportKind::Tls => format!("TLS handshake with {host} failed"),
        TransportKind::Connect => format!("cannot connect to {host}"),
        TransportKind::Timeout => format!("no answer from {host} in time (timeout)"),
        TransportKind::Other => format!("the connection to {host} failed"),
    };
    let mut root: &(dyn std::error::Error + 'static) = source.as_ref();
    while let Some(next) = root.source() {
        root = next;
    }
    format!("{what}: {root}")
}

fn took(d: &Duration) -> String {
    if *d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn rid(request_id: &Option<String>) -> String {
    match request_id {
        Some(id) => format!(" (request id {id})"),
        None => String::new(),
    }
}

/// A phase of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading the PR and what exists.
    Observe,
    /// Publishing the "deploying" report.
    Announce,
    /// Applying the database stack and waiting until healthy.
    Database,
    /// Writing app env vars and domains.
    Apps,
    /// Opening tunnels to the database services.
    Tunnels,
    /// Running hooks (migrations, auth init).
    Hooks,
    /// Deploying the apps and waiting until ready.
    Deployments,
    /// Waiting for the readiness URL.
    Readiness,
    /// Sending the seed requests.
    Seed,
    /// Re-checking the PR after deploying.
    Verify,
    /// Publishing the final report.
    Report,
    /// Removing apps and databases.
    Teardown,
    /// Deciding and removing leftovers.
    Sweep,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

/// How long one phase of an operation took, and whether it succeeded: what
/// [`Event::PhaseFinished`](crate::Event::PhaseFinished) said, kept for the operation's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PhaseTiming {
    /// Which.
    pub phase: Phase,
    /// How long it took, in milliseconds.
    pub elapsed_ms: u64,
    /// Whether it succeeded.
    pub ok: bool,
}

impl PhaseTiming {
    /// How long it took, for people: `850 ms`, `12.3 s`, `2 min 5 s`.
    pub fn elapsed_text(&self) -> String {
        let ms = self.elapsed_ms;
        match ms {
            0..=999 => format!("{ms} ms"),
            1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
            _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
        }
    }
}

/// Every failure in `preview`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The resource does not exist.
    #[error("{provider}: {what} not found")]
    NotFound {
        /// Which provider answered (`fly`, `vercel`, `github`, `memory`).
        provider: &'static str,
        /// What was looked up.
        what: String,
    },
    /// The resource exists and belongs to someone else, or a create found it already there.
    #[error("{provider}: {what} already exists{}", rid(request_id))]
    AlreadyExists {
        /// Which provider answered.
        provider: &'static str,
        /// What exists.
        what: String,
        /// Provider request id, for support.
        request_id: Option<String>,
    },
    /// The token is missing, invalid or lacks a permission.
    #[error(
        "{provider}: unauthorized (HTTP {status}): {message}{}",
        rid(request_id)
    )]
    Unauthorized {
        /// Which provider answered.
        provider: &'static str,
        /// HTTP status (401 or 403).
        status: u16,
        /// The provider's message.
        message: String,
        /// Provider request id, for support.
        request_id: Option<String>,
    },
    /// The provider asked us to slow down.
    #[error("{provider}: rate limited{}{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs_f64().ceil())).unwrap_or_default(), rid(request_id))]
    RateLimited {
        /// Which provider answered.
        provider: &'static str,
        /// How long the provider asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// Provider request id, for support.
        request_id: Option<String>,
    },
    /// The provider is unavailable for now and said when to come back (a 503 with
    /// `Retry-After`). Retried like any server error, so only when the operation is idempotent (a
    /// create may have happened behind it), and never sooner than the hint.
    #[error("{provider}: unavailable (HTTP 503), retry after {}s{}", retry_after.as_secs_f64().ceil(), rid(request_id))]
    Unavailable {
        /// Which provider answered.
        provider: &'static str,
        /// How long the provider asked us to wait.
        retry_after: Duration,
        /// Provider request id, for support.
        request_id: Option<String>,
    },
    /// Someone else holds the resource (a lease, a var with the same key we do not own, a version race).
    #[error("{provider}: conflict: {message}{}", rid(request_id))]
    Conflict {
        /// Which provider answered.
        provider: &'static str,
        /// What conflicts, and with whom.
        message: String,
        /// Provider request id, for support.
        request_id: Option<String>,
    },
    /// The configuration or an input is invalid. Nothing was touched.
    #[error("{message}")]
    Config {
        /// What is wrong, naming the file, line, key or flag, and what would be valid.
        message: String,
    },
    /// The provider rejected or failed the request.
    #[error("{provider}: API error (HTTP {status}): {message}{}", rid(request_id))]
    Api {
        /// Which provider answered.
        provider: &'static str,
        /// HTTP status.
        status: u16,
        /// The provider's message (truncated, secrets dropped).
        message: String,
        /// Provider request id, for support.
        request_id: Option<String>,
    },
    /// The request did not complete at the transport level.
    #[error("{provider}: {}", transport(kind, host, source))]
    Transport {
        /// Which provider was called.
        provider: &'static str,
        /// How it failed.
        kind: TransportKind,
        /// The host (and port) it was sent to, when known; never a whole URL, which may carry
        /// credentials.
        host: Option<String>,
        /// The underlying error (reqwest errors are stripped of their URL).
        #[source]
        source: BoxError,
    },
    /// A wait did not reach its goal before its deadline.
    #[error("{what}: not done after {}s: {detail}", waited.as_secs())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        waited: Duration,
        /// The last state seen, and anything that helps (e.g. a Machine's last events).
        detail: String,
    },
    /// A step of the environment failed in a way that is not an API error (a hook exited non-zero,
    /// a deployment ended in ERROR, a Machine failed).
    #[error("{what}: {message}")]
    Failed {
        /// What failed.
        what: String,
        /// Why, with whatever the caller needs to investigate (state, code, inspector URL).
        message: String,
    },
    /// Retrying did not help.
    #[error("{what}: gave up after {attempts} attempt(s) in {}{}: {last}", took(elapsed), would_wait.map(|d| format!("; the next attempt would have waited {}s, beyond the retry budget", d.as_secs_f64().ceil())).unwrap_or_default())]
    RetriesExhausted {
        /// The operation retried.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// When the server's hint did not fit the budget: how long it asked us to wait.
        would_wait: Option<Duration>,
        /// The last error.
        #[source]
        last: Box<Error>,
    },
    /// A pipeline phase failed.
    #[error("{phase}: {source}")]
    InPhase {
        /// The phase.
        phase: Phase,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// The operation was cancelled (SIGINT, a dropped future).
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// A configuration or input error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
        }
    }

    /// A step failure that is not an API error.
    pub fn failed(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Failed {
            what: what.into(),
            message: message.into(),
        }
    }

    /// Whether retrying the operation may succeed.
    ///
    /// `idempotency` is that of the *unit* being retried: a get-then-create unit is idempotent even
    /// though the create inside it is not. A non-idempotent operation is retried only when the request
    /// provably never reached the server (connect errors) or the server refused it outright (429).
    pub fn is_retryable(&self, idempotency: Idempotency) -> bool {
        let idempotent = idempotency == Idempotency::Idempotent;
        match self {
            Error::Transport { kind, .. } => kind.never_sent() || idempotent,
            Error::RateLimited { .. } => true,
            Error::Unavailable { .. } => idempotent,
            Error::Api { status, .. } => idempotent && (*status == 408 || *status >= 500),
            _ => false,
        }
    }

    /// The server's hint for when to try again, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            Error::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether this is a [`Error::Config`] error (exit code 2 in the CLI).
    pub fn is_config(&self) -> bool {
        match self {
            Error::Config { .. } => true,
            Error::InPhase { source, .. } => source.is_config(),
            _ => false,
        }
    }

    /// This error with every occurrence of each of `secrets` in its text replaced by `***`: as
    /// is, percent-encoded and JSON-escaped (providers echo what they were sent, e.g. a Fly error
    /// quoting a Machine's env, a Vercel `failed[]` item with the value). The variant, status and
    /// phase are kept, so exit codes and retry decisions do not change. Transport sources (reqwest
    /// errors, stripped of their URL) carry no body and are kept as they are.
    #[must_use]
    pub fn redact(self, secrets: &[String]) -> Error {
        let forms = secret_forms(secrets);
        let clean = |t: String| {
            forms.iter().fold(t, |t, f| {
                if t.contains(f.as_str()) {
                    t.replace(f.as_str(), "***")
                } else {
                    t
                }
            })
        };
        let clean_opt = |t: Option<String>| t.map(clean);
        match self {
            Error::NotFound { provider, what } => Error::NotFound {
                provider,
                what: clean(what),
            },
            Error::AlreadyExists {
                provider,
                what,
                request_id,
            } => Error::AlreadyExists {
                provider,
                what: clean(what),
                request_id: clean_opt(request_id),
            },
            Error::Unauthorized {
                provider,
                status,
                message,
                request_id,
            } => Error::Unauthorized {
                provider,
                status,
                message: clean(message),
                request_id: clean_opt(request_id),
            },
            Error::Conflict {
                provider,
                message,
                request_id,
            } => Error::Conflict {
                provider,
                message: clean(message),
                request_id: clean_opt(request_id),
            },
            Error::Config { message } => Error::Config {
                message: clean(message),
            },
            Error::Api {
                provider,
                status,
                message,
                request_id,
            } => Error::Api {
                provider,
                status,
                message: clean(message),
                request_id: clean_opt(request_id),
            },
            Error::Timeout {
                what,
                waited,
                detail,
            } => Error::Timeout {
                what: clean(what),
                waited,
                detail: clean(detail),
            },
            Error::Failed { what, message } => Error::Failed {
                what: clean(what),
                message: clean(message),
            },
            Error::RetriesExhausted {
                what,
                attempts,
                elapsed,
                would_wait,
                last,
            } => Error::RetriesExhausted {
                what: clean(what),
                attempts,
                elapsed,
                would_wait,
                last: Box::new(last.redact(secrets)),
            },
            Error::InPhase { phase, source } => Error::InPhase {
                phase,
                source: Box::new(source.redact(secrets)),
            },
            other => other,
        }
    }

    /// This error as it must be reported once something may have been changed: a
    /// [`Error::Config`] (which promises "nothing was touched", exit code 2) becomes a
    /// [`Error::Failed`] with the same text; every other error, phase and retry decision stays.
    #[must_use]
    pub fn after_changes(self) -> Error {
        match self {
            Error::Config { message } => Error::Failed {
                what: "refused".into(),
                message,
            },
            Error::InPhase { phase, source } => Error::InPhase {
                phase,
                source: Box::new(source.after_changes()),
            },
            Error::RetriesExhausted {
                what,
                attempts,
                elapsed,
                would_wait,
                last,
            } => Error::RetriesExhausted {
                what,
                attempts,
                elapsed,
                would_wait,
                last: Box::new(last.after_changes()),
            },
            other => other,
        }
    }

    /// The phase a pipeline error happened in.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            Error::InPhase { phase, .. } => Some(*phase),
            _ => None,
        }
    }
}

/// Each secret as it may appear in an error's text: as is, percent-encoded (as in a URL's
/// userinfo, and fully) and JSON-escaped.
fn secret_forms(secrets: &[String]) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| {
            let json = serde_json::to_string(s).unwrap_or_default();
            let json = json
                .strip_prefix('"')
                .and_then(|j| j.strip_suffix('"'))
                .unwrap_or_default()
                .to_string();
            // As in a URL's userinfo (unreserved kept) and fully encoded.
            const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
                .remove(b'-')
                .remove(b'.')
                .remove(b'_')
                .remove(b'~');
            let url = percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string();
            let all = percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
            [s.clone(), url, all, json]
        })
        .filter(|f| !f.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> Error {
        Error::Api {
            provider: "test",
            status,
            message: "x".into(),
            request_id: None,
        }
    }

    #[test]
    fn unavailable_is_a_server_error_with_a_hint() {
        let e = Error::Unavailable {
            provider: "test",
            retry_after: Duration::from_secs(4),
            request_id: Some("r1".into()),
        };
        assert!(e.is_retryable(Idempotency::Idempotent));
        assert!(
            !e.is_retryable(Idempotency::NonIdempotent),
            "a create behind a 503 may have happened: look it up, do not re-send blindly"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(4)));
        assert_eq!(
            e.to_string(),
            "test: unavailable (HTTP 503), retry after 4s (request id r1)"
        );
    }

    #[test]
    fn redact_replaces_every_form_of_a_secret_and_keeps_the_kind() {
        let secret = "s3cr/t+pw&x".to_string();
        let inner = Error::Api {
            provider: "fly",
            status: 422,
            message: format!(
                "env PW={secret}; url postgres://u:s3cr%2Ft%2Bpw%26x@h/db; json \"{}\"",
                "s3cr/t+pw&x"
            ),
            request_id: Some("r1".into()),
        };
        let err = Error::InPhase {
            phase: Phase::Database,
            source: Box::new(Error::RetriesExhausted {
                what: "create machine".into(),
                attempts: 2,
                elapsed: Duration::from_millis(5),
                would_wait: None,
                last: Box::new(inner),
            }),
        }
        .redact(std::slice::from_ref(&secret));
        let text = format!("{err} {err:?}");
        assert!(!text.contains("s3cr"), "{text}");
        assert!(text.contains("PW=***"), "{text}");
        assert!(text.contains("u:***@h"), "{text}");
        assert_eq!(err.phase(), Some(Phase::Database));
        assert!(!err.is_config());
        assert!(text.contains("status: 422"), "{text}");
    }

    #[test]
    fn after_changes_a_config_error_is_a_failure_and_nothing_else_moves() {
        let err = Error::InPhase {
            phase: Phase::Apps,
            source: Box::new(Error::config("app api: bad")),
        };
        assert!(err.is_config());
        let err = err.after_changes();
        assert!(!err.is_config());
        assert_eq!(err.phase(), Some(Phase::Apps));
        assert_eq!(err.to_string(), "apps: refused: app api: bad");
        let api = api(503).after_changes();
        assert!(api.is_retryable(Idempotency::Idempotent), "{api}");
    }

    #[test]
    fn retryability_follows_the_variant() {
        use Idempotency::*;
        let connect = Error::Transport {
            provider: "t",
            kind: TransportKind::Connect,
            host: None,
            source: "refused".into(),
        };
        let timeout = Error::Transport {
            provider: "t",
            kind: TransportKind::Timeout,
            host: None,
            source: "slow".into(),
        };
        let limited = Error::RateLimited {
            provider: "t",
            retry_after: None,
            request_id: None,
        };
        let table: Vec<(&Error, bool, bool)> = vec![
            (&connect, true, true),
            (&timeout, true, false),
            (&limited, true, true),
        ];
        for (err, idem, non) in table {
            assert_eq!(err.is_retryable(Idempotent), idem, "{err}");
            assert_eq!(err.is_retryable(NonIdempotent), non, "{err}");
        }
        for s in [408, 500, 502, 503, 504] {
            assert!(api(s).is_retryable(Idempotent), "{s}");
            assert!(!api(s).is_retryable(NonIdempotent), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert!(!api(s).is_retryable(Idempotent), "{s}");
        }
        assert!(!Error::config("bad").is_retryable(Idempotent));
        assert!(!Error::Cancelled.is_retryable(Idempotent));
    }

    #[test]
    fn messages_are_lowercase_and_carry_request_ids() {
        let e = Error::Api {
            provider: "fly",
            status: 422,
            message: "name taken".into(),
            request_id: Some("01ABC".into()),
        };
        assert_eq!(
            e.to_string(),
            "fly: API error (HTTP 422): name taken (request id 01ABC)"
        );
        let r = Error::RateLimited {
            provider: "github",
            retry_after: Some(Duration::from_millis(1500)),
            request_id: None,
        };
        assert_eq!(r.to_string(), "github: rate limited, retry after 2s");
    }
}
