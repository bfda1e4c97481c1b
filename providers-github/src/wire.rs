//! GitHub's JSON, private to this crate: only the fields we read, everything else is ignored.

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
pub(crate) struct User {
    pub(crate) login: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Repo {
    pub(crate) full_name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Ref {
    #[serde(rename = "ref")]
    pub(crate) ref_name: String,
    pub(crate) sha: String,
    /// Null when the fork was deleted (the spec says required and not nullable; GitHub sends null).
    #[serde(default)]
    pub(crate) repo: Option<Repo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Label {
    pub(crate) name: String,
}

/// `pull-request` and `pull-request-simple` (the list lacks `merged`, so it is optional).
#[derive(Debug, Deserialize)]
pub(crate) struct PullRequest {
    pub(crate) number: u64,
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) draft: Option<bool>,
    #[serde(default)]
    pub(crate) merged: Option<bool>,
    #[serde(default)]
    pub(crate) merged_at: Option<String>,
    pub(crate) title: String,
    pub(crate) head: Ref,
    pub(crate) base: Ref,
    #[serde(default)]
    pub(crate) labels: Vec<Label>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Comment {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) body: Option<String>,
    /// Nullable in the spec (`nullable-simple-user`): a deleted account ("ghost").
    #[serde(default)]
    pub(crate) user: Option<User>,
    /// `OWNER`, `MEMBER`, `COLLABORATOR`, `CONTRIBUTOR`, `NONE`, …
    #[serde(default)]
    pub(crate) author_association: Option<String>,
}

/// `GET /repos/{owner}/{repo}/collaborators/{username}/permission`.
#[derive(Debug, Deserialize)]
pub(crate) struct CollaboratorPermission {
    /// `admin`, `write`, `read` or `none` (`maintain` reads as `write`, `triage` as `read`).
    pub(crate) permission: String,
    #[serde(default)]
    pub(crate) role_name: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CommentBody<'a> {
    pub(crate) body: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Deployment {
    pub(crate) id: u64,
    pub(crate) sha: String,
    pub(crate) environment: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct CreateDeployment<'a> {
    #[serde(rename = "ref")]
    pub(crate) ref_name: &'a str,
    pub(crate) task: &'a str,
    /// Never merge the default branch in: the deployment is of the PR's head commit, nothing else.
    pub(crate) auto_merge: bool,
    /// Empty: a preview of a commit whose checks are still running (or failing) is still wanted.
    pub(crate) required_contexts: Vec<String>,
    pub(crate) environment: &'a str,
    pub(crate) description: &'a str,
    pub(crate) transient_environment: bool,
    pub(crate) production_environment: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DeploymentStatus {
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) environment_url: Option<String>,
    #[serde(default)]
    pub(crate) log_url: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CreateDeploymentStatus<'a> {
    pub(crate) state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) environment_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_url: Option<&'a str>,
    pub(crate) description: &'a str,
    /// Leave other PRs' environments alone.
    pub(crate) auto_inactive: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Message {
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// `pull_request` webhook event payload (`GITHUB_EVENT_PATH`).
#[derive(Debug, Deserialize)]
pub(crate) struct PullRequestEvent {
    #[serde(default)]
    pub(crate) action: Option<String>,
    #[serde(default)]
    pub(crate) number: Option<u64>,
    pub(crate) pull_request: EventPullRequest,
    /// The label added or removed (`labeled`, `unlabeled`).
    #[serde(default)]
    pub(crate) label: Option<EventLabel>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventPullRequest {
    pub(crate) number: u64,
    pub(crate) head: Ref,
    pub(crate) base: Ref,
}

/// One item of `GET /repos/{owner}/{repo}/pulls/{pull_number}/files` (`diff-entry`).
#[derive(Debug, Deserialize)]
pub(crate) struct DiffEntry {
    pub(crate) filename: String,
    /// The old path of a renamed file.
    #[serde(default)]
    pub(crate) previous_filename: Option<String>,
}

/// `POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions`.
#[derive(Debug, Serialize)]
pub(crate) struct ReactionBody<'a> {
    pub(crate) content: &'a str,
}

/// `POST /repos/{owner}/{repo}/issues/{issue_number}/labels`.
#[derive(Debug, Serialize)]
pub(crate) struct LabelsBody<'a> {
    pub(crate) labels: &'a [&'a str],
}

/// The label of a `labeled` / `unlabeled` event.
#[derive(Debug, Deserialize)]
pub(crate) struct EventLabel {
    pub(crate) name: String,
}

/// `issue_comment` webhook event payload (`GITHUB_EVENT_PATH`).
#[derive(Debug, Deserialize)]
pub(crate) struct IssueCommentEvent {
    pub(crate) action: String,
    pub(crate) issue: EventIssue,
    pub(crate) comment: EventComment,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventIssue {
    pub(crate) number: u64,
    /// Present only when the issue is a pull request.
    #[serde(default)]
    pub(crate) pull_request: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventComment {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) body: Option<String>,
    pub(crate) user: EventUser,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventUser {
    pub(crate) login: String,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<String>,
}
