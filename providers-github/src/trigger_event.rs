//! The event `preview handle` runs for: `GITHUB_EVENT_NAME` and the payload at
//! `GITHUB_EVENT_PATH`, a `pull_request` or an `issue_comment` on a pull request.
//!
//! Reads only the file: no token, no request. The payload says what happened (the action, the
//! label, the comment); the pull request's state is read through the API afterwards and never
//! taken from here. The one exception refuses, never accepts: a `pull_request` payload whose head
//! is in another repository is a fork's, skipped before any token is read.

use std::path::Path;

use preview_core::command::parse_comment;
use preview_core::pipeline::trigger::{PrAction, TriggerEvent};
use preview_core::{Error, PrNumber, Result};

use crate::wire;

/// What the event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandledEvent {
    /// An event about pull request `pr`.
    Act {
        /// The pull request.
        pr: PrNumber,
        /// The payload says the head is in another repository (`pull_request` events only; a
        /// comment's payload does not say).
        fork_by_event: bool,
        /// What happened.
        event: TriggerEvent,
    },
    /// Nothing to do, and why (our own words: the payload's text is never repeated).
    Ignore {
        /// Why.
        reason: String,
    },
}

/// Reads the event named `name` (`GITHUB_EVENT_NAME`) from the payload at `path`.
///
/// # Errors
/// [`Error::Config`] when the file cannot be read or parsed, or the event is not one `handle`
/// knows (`pull_request`, `issue_comment`).
pub fn read_trigger_event(name: &str, path: &Path) -> Result<HandledEvent> {
    let text = std::fs::read(path).map_err(|e| {
        Error::config(format!(
            "cannot read the GitHub event file {}: {e}",
            path.display()
        ))
    })?;
    let bad = |why: String| Error::config(format!("GITHUB_EVENT_PATH {}: {why}", path.display()));
    match name {
        "pull_request" | "pull_request_target" => parse_pull_request(&text).map_err(bad),
        "issue_comment" => parse_comment_event(&text).map_err(bad),
        other => Err(Error::config(format!(
            "GITHUB_EVENT_NAME {:?}: preview handle acts on pull_request and issue_comment events only",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

fn pr_number(n: u64) -> std::result::Result<PrNumber, String> {
    PrNumber::new(n).map_err(|e| format!("has an invalid pull request number: {e}"))
}

fn parse_pull_request(text: &[u8]) -> std::result::Result<HandledEvent, String> {
    let ev: wire::PullRequestEvent =
        serde_json::from_slice(text).map_err(|e| format!("is not a pull_request event ({e})"))?;
    let n = ev.pull_request.number;
    if ev.number.is_some_and(|outer| outer != n) {
        return Err("names two pull request numbers; refusing to guess".into());
    }
    let pr = pr_number(n)?;
    let word = ev.action.unwrap_or_default();
    let Some(action) = PrAction::parse(&word) else {
        return Ok(HandledEvent::Ignore {
            reason: "this pull_request action does not start or stop previews".into(),
        });
    };
    let fork_by_event = match (&ev.pull_request.head.repo, &ev.pull_request.base.repo) {
        (Some(h), Some(b)) => h.full_name != b.full_name,
        _ => true,
    };
    Ok(HandledEvent::Act {
        pr,
        fork_by_event,
        event: TriggerEvent::PullRequest {
            action,
            label: ev.label.map(|l| l.name),
        },
    })
}

fn parse_comment_event(text: &[u8]) -> std::result::Result<HandledEvent, String> {
    let ev: wire::IssueCommentEvent =
        serde_json::from_slice(text).map_err(|e| format!("is not an issue_comment event ({e})"))?;
    let pr = pr_number(ev.issue.number)?;
    let ignore = |reason: &str| {
        Ok(HandledEvent::Ignore {
            reason: reason.into(),
        })
    };
    if ev.action != "created" {
        return ignore("only new comments are read for commands (not edited or deleted ones)");
    }
    if ev.issue.pull_request.is_none() {
        return ignore("the comment is on an issue, not a pull request");
    }
    if ev.comment.user.kind.as_deref() == Some("Bot") {
        return ignore("comments by bots are never commands");
    }
    Ok(HandledEvent::Act {
        pr,
        fork_by_event: false,
        event: TriggerEvent::Comment {
            id: ev.comment.id,
            author: ev.comment.user.login,
            invocation: parse_comment(ev.comment.body.as_deref().unwrap_or_default()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use preview_core::command::{Command, Invocation};

    fn comment(action: &str, pr: bool, kind: &str, body: &str) -> Vec<u8> {
        let mut issue = serde_json::json!({"number": 5});
        if pr {
            issue["pull_request"] =
                serde_json::json!({"url": "https://api.github.com/repos/a/b/pulls/5"});
        }
        serde_json::to_vec(&serde_json::json!({
            "action": action, "issue": issue,
            "comment": {"id": 99, "body": body, "user": {"login": "octocat", "type": kind}},
        }))
        .unwrap()
    }

    #[test]
    fn comments_on_pull_requests_carry_their_command() {
        let ev = parse_comment_event(&comment("created", true, "User", "/preview deploy")).unwrap();
        let HandledEvent::Act {
            pr,
            event:
                TriggerEvent::Comment {
                    id,
                    author,
                    invocation,
                },
            ..
        } = ev
        else {
            panic!("{ev:?}")
        };
        assert_eq!((pr.get(), id, author.as_str()), (5, 99, "octocat"));
        assert_eq!(
            invocation,
            Some(Invocation::Known {
                command: Command::Deploy,
                args: vec![]
            })
        );
        for (action, pr, kind) in [
            ("edited", true, "User"),
            ("created", false, "User"),
            ("created", true, "Bot"),
        ] {
            let ev = parse_comment_event(&comment(action, pr, kind, "/preview deploy")).unwrap();
            assert!(
                matches!(ev, HandledEvent::Ignore { .. }),
                "{action} {pr} {kind}"
            );
        }
    }

    #[test]
    fn pull_request_events_carry_action_label_and_fork() {
        let ev = serde_json::json!({
            "action": "unlabeled", "number": 3, "label": {"name": "preview"},
            "pull_request": {"number": 3,
                "head": {"ref": "f", "sha": "a", "repo": {"full_name": "mallory/app"}},
                "base": {"ref": "main", "sha": "b", "repo": {"full_name": "acme/app"}}},
        });
        let got = parse_pull_request(&serde_json::to_vec(&ev).unwrap()).unwrap();
        assert_eq!(
            got,
            HandledEvent::Act {
                pr: PrNumber::new(3).unwrap(),
                fork_by_event: true,
                event: TriggerEvent::PullRequest {
                    action: PrAction::Unlabeled,
                    label: Some("preview".into())
                },
            }
        );
        let mut assigned = ev.clone();
        assigned["action"] = "assigned".into();
        let got = parse_pull_request(&serde_json::to_vec(&assigned).unwrap()).unwrap();
        assert!(matches!(got, HandledEvent::Ignore { .. }));
        assert!(
            read_trigger_event("push", Path::new("/nonexistent"))
                .unwrap_err()
                .is_config()
        );
    }
}
