//! The triggering pull request of a GitHub Actions run (`GITHUB_EVENT_PATH`).
//!
//! Reads only the event file: no token, no request. The PR number is validated with
//! [`PrNumber`], so a malformed event is rejected before any provider is called.

use std::path::Path;

use preview_core::{Error, PrNumber, Result};

use crate::wire;

/// What the `pull_request` event says about its PR.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullRequestEvent {
    /// The PR number.
    pub number: PrNumber,
    /// Whether the head lives in another repository (or a deleted fork): its code must not get
    /// our secrets.
    pub is_fork: bool,
    /// The event's action (`opened`, `synchronize`, `closed`, …), when present.
    pub action: Option<String>,
    /// The head commit SHA (untrusted until re-read from the API).
    pub head_sha: String,
}

/// Reads a `pull_request` (or `pull_request_target`) event payload.
///
/// # Errors
/// [`Error::Config`] when the file cannot be read, is not such an event, or carries an invalid PR
/// number.
pub fn read_pull_request_event(path: &Path) -> Result<PullRequestEvent> {
    let text = std::fs::read(path).map_err(|e| {
        Error::config(format!(
            "cannot read the GitHub event file {}: {e}",
            path.display()
        ))
    })?;
    parse_pull_request_event(&text)
        .map_err(|why| Error::config(format!("the GitHub event file {} {why}", path.display())))
}

/// The triggering PR when running in Actions: `Ok(None)` when `GITHUB_EVENT_PATH` is unset.
///
/// # Errors
/// As [`read_pull_request_event`].
pub fn pull_request_event_from_env() -> Result<Option<PullRequestEvent>> {
    match std::env::var_os("GITHUB_EVENT_PATH") {
        Some(p) if !p.is_empty() => read_pull_request_event(Path::new(&p)).map(Some),
        _ => Ok(None),
    }
}

fn parse_pull_request_event(text: &[u8]) -> std::result::Result<PullRequestEvent, String> {
    let ev: wire::PullRequestEvent =
        serde_json::from_slice(text).map_err(|e| format!("is not a pull_request event ({e})"))?;
    let n = ev.pull_request.number;
    if let Some(outer) = ev.number {
        if outer != n {
            return Err(format!(
                "names two PR numbers ({outer} and {n}); refusing to guess"
            ));
        }
    }
    let number = PrNumber::new(n).map_err(|e| format!("has an invalid PR number: {e}"))?;
    let base = ev.pull_request.base.repo.map(|r| r.full_name);
    let head = ev.pull_request.head.repo.map(|r| r.full_name);
    let is_fork = match (&head, &base) {
        (Some(h), Some(b)) => h != b,
        _ => true,
    };
    Ok(PullRequestEvent {
        number,
        is_fork,
        action: ev.action,
        head_sha: ev.pull_request.head.sha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(number: u64, head: Option<&str>, base: &str) -> String {
        let head_repo = head.map_or("null".to_string(), |h| format!(r#"{{"full_name":"{h}"}}"#));
        format!(
            r#"{{"action":"synchronize","number":{number},"pull_request":{{"number":{number},
               "head":{{"ref":"feature","sha":"abc123","repo":{head_repo}}},
               "base":{{"ref":"main","sha":"def456","repo":{{"full_name":"{base}"}}}}}}}}"#
        )
    }

    #[test]
    fn reads_number_and_fork_status() {
        let same =
            parse_pull_request_event(event(42, Some("acme/app"), "acme/app").as_bytes()).unwrap();
        assert_eq!(same.number.get(), 42);
        assert!(!same.is_fork);
        assert_eq!(same.action.as_deref(), Some("synchronize"));
        assert_eq!(same.head_sha, "abc123");
        let fork =
            parse_pull_request_event(event(7, Some("mallory/app"), "acme/app").as_bytes()).unwrap();
        assert!(fork.is_fork);
        let deleted = parse_pull_request_event(event(7, None, "acme/app").as_bytes()).unwrap();
        assert!(deleted.is_fork);
    }

    #[test]
    fn rejects_bad_events() {
        assert!(parse_pull_request_event(event(0, Some("a/b"), "a/b").as_bytes()).is_err());
        assert!(
            parse_pull_request_event(event(4_294_967_296, Some("a/b"), "a/b").as_bytes()).is_err()
        );
        assert!(parse_pull_request_event(br#"{"push":{}}"#).is_err());
        let dir = std::env::temp_dir().join(format!("preview-gh-event-{}", std::process::id()));
        std::fs::write(&dir, event(9, Some("a/b"), "a/b")).unwrap();
        assert_eq!(read_pull_request_event(&dir).unwrap().number.get(), 9);
        std::fs::remove_file(&dir).unwrap();
        let err = read_pull_request_event(Path::new("/nonexistent/event.json")).unwrap_err();
        assert!(err.is_config());
    }
}
