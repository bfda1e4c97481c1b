//! [`TriggerHost`] for [`GitHubSource`]: what `preview handle` reads and answers on a pull
//! request, besides the sticky report, over the endpoints in `core.rs`:
//! - `GET /repos/{o}/{r}/pulls/{n}/files`, every page (GitHub lists at most 3,000 files);
//! - `GET /repos/{o}/{r}/collaborators/{user}/permission`;
//! - `POST /repos/{o}/{r}/issues/comments/{id}/reactions` (201 created, 200 already there);
//! - `GET`/`POST /repos/{o}/{r}/issues/{n}/comments` for the one reply to a command.

use async_trait::async_trait;
use preview_core::host::{Acknowledged, ChangedFiles, Permission, Reaction, TriggerHost};
use preview_core::{Error, Outcome, PrNumber, Result};

use crate::comment::ACTIONS_BOT;
use crate::host::GitHubSource;

/// GitHub lists at most this many files of a pull request.
pub const MAX_LISTED_FILES: usize = 3000;

/// The hidden first line of our reply to comment `id`.
fn reply_marker(id: u64) -> String {
    format!("<!-- preview:reply-to={id} -->")
}

/// A login as GitHub makes them (letters, digits, `-`; apps end in `[bot]`). Anything else is not
/// sent anywhere, not even as a path segment.
fn valid_login(login: &str) -> bool {
    let core = login.strip_suffix("[bot]").unwrap_or(login);
    (1..=39).contains(&core.len()) && core.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl GitHubSource {
    /// Whether our reply to comment `id` is on `pr` already (ours: by an author we trust).
    async fn has_reply(&self, pr: PrNumber, id: u64) -> Result<bool> {
        let me = self.identity().await?.to_string();
        let marker = reply_marker(id);
        for c in self.core().comments(pr).await? {
            let (Some(body), Some(user)) = (c.body, c.user) else {
                continue;
            };
            if body.lines().next().map(str::trim) != Some(marker.as_str()) {
                continue;
            }
            let author = user.login;
            let member = matches!(
                c.author_association.as_deref(),
                Some("OWNER" | "MEMBER" | "COLLABORATOR")
            );
            if author.eq_ignore_ascii_case(&me)
                || author.eq_ignore_ascii_case(ACTIONS_BOT)
                || (member && self.can_write(&author).await?)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[async_trait]
impl TriggerHost for GitHubSource {
    async fn changed_files(&self, pr: PrNumber) -> Result<ChangedFiles> {
        let entries = self.core().pull_request_files(pr).await?;
        let complete = entries.len() < MAX_LISTED_FILES;
        let mut paths = Vec::with_capacity(entries.len());
        for e in entries {
            paths.extend(e.previous_filename);
            paths.push(e.filename);
        }
        Ok(ChangedFiles { paths, complete })
    }

    async fn permission(&self, user: &str) -> Result<Permission> {
        if !valid_login(user) {
            return Ok(Permission::None);
        }
        match self.core().collaborator_permission(user).await {
            Ok(p) => {
                let base = Permission::parse(&p.permission).unwrap_or(Permission::None);
                // `maintain` shows as `write`, `triage` as `read`; the role name says which.
                let role = p
                    .role_name
                    .as_deref()
                    .and_then(Permission::parse)
                    .unwrap_or(Permission::None);
                Ok(base.max(role))
            }
            Err(Error::NotFound { .. }) => Ok(Permission::None),
            Err(e) => Err(e),
        }
    }

    async fn react(&self, comment: u64, reaction: Reaction) -> Result<Acknowledged> {
        let content = match reaction {
            Reaction::Accepted => "eyes",
            Reaction::Unknown => "confused",
        };
        Ok(if self.core().create_reaction(comment, content).await? {
            Acknowledged::New
        } else {
            Acknowledged::Already
        })
    }

    async fn reply(&self, pr: PrNumber, comment: u64, markdown: &str) -> Result<Outcome> {
        if self.has_reply(pr, comment).await? {
            return Ok(Outcome::Unchanged);
        }
        let body = format!("{}\n{markdown}", reply_marker(comment));
        self.core().create_comment(pr, &body).await?;
        Ok(Outcome::Created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_github_shaped_logins_are_asked_about() {
        for ok in ["octocat", "a-b-1", "dependabot[bot]"] {
            assert!(valid_login(ok), "{ok}");
        }
        for bad in ["", "..", "a/b", "a b", "x%2F", &"a".repeat(40), "[bot]"] {
            assert!(!valid_login(bad), "{bad}");
        }
    }
}
