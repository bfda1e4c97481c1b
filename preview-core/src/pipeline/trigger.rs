//! Who gets a preview, and when: the decision on one GitHub Actions event, as a pure function
//! ([`decide`]) of the event, the pull request's current state (read through the API, never
//! taken from the event), and `[triggers]`.
//!
//! # The rules
//! - A fork's pull request never gets a preview; a command on one is refused with a reply.
//! - A closed or merged pull request is torn down (a command on one is refused with a reply).
//! - `opened`, `synchronize`, `reopened`, `ready_for_review` and `labeled` (with the trigger
//!   label) deploy a pull request that is *eligible*: not a draft unless `drafts = true`, carrying
//!   the label when one is configured, and changing at least one file that matches `paths` when
//!   those are configured. One that is not eligible is skipped, with the reason (the report,
//!   when one shows "torn down" or an earlier skip, is updated to say it). An environment that
//!   exists is left as it is on these events (it may have been deployed by a command).
//! - `unlabeled` (the trigger label) and `converted_to_draft` (with `drafts = false`) take an
//!   eligible pull request out: it is torn down, unless the current state says otherwise (the
//!   label is back, it is no longer a draft).
//! - Other labels, `ready_for_review` when drafts get previews anyway, and `closed` on a pull
//!   request that is open again are skipped.
//! - A comment's command (see [`crate::command`]) runs when commands are on and the commenter's
//!   permission, read through the API, is at least `command_permission`; it overrides drafts,
//!   the label and paths (it is an explicit request). A comment without a command is skipped
//!   silently; an unknown command gets a help reply.

use serde::Serialize;

use crate::command::{Command, Invocation};
use crate::config::TriggersDef;
use crate::host::{ChangedFiles, Permission, PrState, PullRequest, Reaction};

/// The `action` of a `pull_request` event that `preview handle` acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrAction {
    /// `opened`.
    Opened,
    /// `synchronize` (a push).
    Synchronize,
    /// `reopened`.
    Reopened,
    /// `closed` (merged or not).
    Closed,
    /// `labeled`.
    Labeled,
    /// `unlabeled`.
    Unlabeled,
    /// `ready_for_review`.
    ReadyForReview,
    /// `converted_to_draft`.
    ConvertedToDraft,
}

impl PrAction {
    /// Every action, in the order the docs list them.
    pub const ALL: [PrAction; 8] = [
        Self::Opened,
        Self::Synchronize,
        Self::Reopened,
        Self::Closed,
        Self::Labeled,
        Self::Unlabeled,
        Self::ReadyForReview,
        Self::ConvertedToDraft,
    ];

    /// The action named `word` in an event payload.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == word)
    }

    /// Its name in an event payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Synchronize => "synchronize",
            Self::Reopened => "reopened",
            Self::Closed => "closed",
            Self::Labeled => "labeled",
            Self::Unlabeled => "unlabeled",
            Self::ReadyForReview => "ready_for_review",
            Self::ConvertedToDraft => "converted_to_draft",
        }
    }
}

/// The event, as far as the decision uses it: what happened, never the PR's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerEvent {
    /// A `pull_request` event.
    PullRequest {
        /// What happened.
        action: PrAction,
        /// The label added or removed (`labeled`, `unlabeled`).
        label: Option<String>,
    },
    /// An `issue_comment` created on a pull request.
    Comment {
        /// The comment's id (reactions and replies go to it).
        id: u64,
        /// Its author's login (their permission is read through the API).
        author: String,
        /// The command it holds, if any.
        invocation: Option<Invocation>,
    },
}

/// What was read through the API for the decision.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The pull request's current state.
    pub pr: &'a PullRequest,
    /// Its changed files, when [`needs_files`] said so.
    pub files: Option<&'a ChangedFiles>,
    /// The commenter's permission, when [`needs_permission`] said so.
    pub permission: Option<Permission>,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "command")]
pub enum Action {
    /// Deploy (or converge) the pull request's preview.
    Deploy,
    /// Tear its preview down.
    Teardown,
    /// Run an accepted comment command.
    Command(Command),
    /// Nothing, on purpose.
    Skip,
}

impl Action {
    /// `deploy`, `teardown`, the command's word, or `skip`.
    pub fn word(self) -> &'static str {
        match self {
            Action::Deploy => "deploy",
            Action::Teardown => "teardown",
            Action::Command(c) => c.word(),
            Action::Skip => "skip",
        }
    }

    /// Whether it runs the pull request's code (the workflow must check out the verified head
    /// commit first).
    pub fn needs_checkout(self) -> bool {
        match self {
            Action::Deploy => true,
            Action::Command(c) => c.needs_checkout(),
            Action::Teardown | Action::Skip => false,
        }
    }
}

/// The decision on one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Why, in one line of our own text (names only configured values and the PR number).
    pub reason: String,
    /// The reaction acknowledging a comment's command.
    pub reaction: Option<Reaction>,
    /// A reply to the comment (Markdown of our own, never the comment's text).
    pub reply: Option<String>,
    /// A skip that says why the pull request has no preview (draft, label, paths): an existing
    /// report that shows no environment is updated to say it.
    pub explains_no_preview: bool,
}

impl Decision {
    fn new(action: Action, reason: impl Into<String>) -> Self {
        Self {
            action,
            reason: reason.into(),
            reaction: None,
            reply: None,
            explains_no_preview: false,
        }
    }

    fn skip(reason: impl Into<String>) -> Self {
        Self::new(Action::Skip, reason)
    }

    fn no_preview(reason: String) -> Self {
        Self {
            explains_no_preview: true,
            ..Self::skip(reason)
        }
    }

    fn refused(reason: impl Into<String>, reply: String) -> Self {
        Self {
            reply: Some(reply),
            ..Self::skip(reason)
        }
    }
}

/// Whether a pull-request event could deploy (so whether the PR's files must be read).
fn deploys(action: PrAction, label: Option<&str>, triggers: &TriggersDef) -> bool {
    match action {
        PrAction::Opened | PrAction::Synchronize | PrAction::Reopened => true,
        PrAction::ReadyForReview => !triggers.drafts,
        PrAction::Labeled => label.is_some_and(|l| triggers.is_trigger_label(l)),
        PrAction::Closed | PrAction::Unlabeled | PrAction::ConvertedToDraft => false,
    }
}

/// Why `pr` gets no preview by the rules (drafts, label), before its files are looked at.
fn ineligible(pr: &PullRequest, triggers: &TriggersDef) -> Option<String> {
    if pr.draft && !triggers.drafts {
        return Some(
            "no preview: draft (drafts get none here; mark it ready for review to get one)".into(),
        );
    }
    match &triggers.label {
        Some(label) if !triggers.has_label(&pr.labels) => {
            Some(format!("no preview: add the label `{label}` to get one"))
        }
        _ => None,
    }
}

/// Whether [`decide`] needs the pull request's changed files.
pub fn needs_files(event: &TriggerEvent, triggers: &TriggersDef, pr: &PullRequest) -> bool {
    match event {
        TriggerEvent::PullRequest { action, label } => {
            triggers.paths.is_some()
                && pr.state == PrState::Open
                && !pr.is_fork()
                && deploys(*action, label.as_deref(), triggers)
                && ineligible(pr, triggers).is_none()
        }
        TriggerEvent::Comment { .. } => false,
    }
}

/// Whether [`decide`] needs the commenter's permission.
pub fn needs_permission(event: &TriggerEvent, triggers: &TriggersDef, pr: &PullRequest) -> bool {
    matches!(
        event,
        TriggerEvent::Comment {
            invocation: Some(_),
            ..
        }
    ) && triggers.commands
        && !pr.is_fork()
}

/// Decides what to do about one event (see the module docs for the rules).
///
/// Pure: everything it needs was read before, through the API ([`needs_files`],
/// [`needs_permission`] say what); a fact that was needed but not read counts against acting.
pub fn decide(event: &TriggerEvent, triggers: &TriggersDef, facts: Facts<'_>) -> Decision {
    match event {
        TriggerEvent::PullRequest { action, label } => {
            decide_pull_request(*action, label.as_deref(), triggers, facts)
        }
        TriggerEvent::Comment { invocation, .. } => {
            decide_comment(invocation.as_ref(), triggers, facts)
        }
    }
}

fn decide_pull_request(
    action: PrAction,
    label: Option<&str>,
    triggers: &TriggersDef,
    facts: Facts<'_>,
) -> Decision {
    let pr = facts.pr;
    let n = pr.number;
    if pr.is_fork() {
        return Decision::skip(format!(
            "pull request #{n} comes from a fork; previews run only for branches of this repository"
        ));
    }
    match pr.state {
        PrState::Closed | PrState::Merged => {
            let state = if pr.state == PrState::Merged {
                "merged"
            } else {
                "closed"
            };
            return Decision::new(Action::Teardown, format!("pull request #{n} is {state}"));
        }
        PrState::Open => {}
    }
    match action {
        PrAction::Closed => Decision::skip(format!(
            "pull request #{n} is open again; nothing to tear down"
        )),
        PrAction::Labeled | PrAction::Unlabeled
            if !label.is_some_and(|l| triggers.is_trigger_label(l)) =>
        {
            Decision::skip(match &triggers.label {
                Some(want) => format!("only the label `{want}` starts or stops a preview"),
                None => "labels do not start or stop previews here (no triggers.label)".into(),
            })
        }
        PrAction::Unlabeled => {
            if triggers.has_label(&pr.labels) {
                Decision::skip(
                    "the trigger label is back on the pull request; nothing to tear down",
                )
            } else {
                let label = triggers.label.as_deref().unwrap_or_default();
                Decision::new(Action::Teardown, format!("the label `{label}` was removed"))
            }
        }
        PrAction::ConvertedToDraft if triggers.drafts => {
            Decision::skip("drafts keep their preview (triggers.drafts = true)")
        }
        PrAction::ConvertedToDraft if pr.draft => Decision::new(
            Action::Teardown,
            "converted to draft; drafts get no preview (triggers.drafts = false)",
        ),
        PrAction::ConvertedToDraft => {
            Decision::skip("the pull request is no longer a draft; nothing to tear down")
        }
        PrAction::ReadyForReview if triggers.drafts => {
            Decision::skip("drafts get a preview too; marking it ready changes nothing")
        }
        _ => eligible_deploy(action, triggers, facts),
    }
}

/// The deploying events: deploy when eligible, else say why not.
fn eligible_deploy(action: PrAction, triggers: &TriggersDef, facts: Facts<'_>) -> Decision {
    let pr = facts.pr;
    if let Some(why) = ineligible(pr, triggers) {
        return Decision::no_preview(why);
    }
    if let Some(filter) = &triggers.paths {
        let patterns = filter
            .patterns()
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match facts.files {
            None => {
                return Decision::skip("the changed files were not read; not deploying blind");
            }
            Some(files) if !files.complete && !files.paths.iter().any(|p| filter.matches(p)) => {
                // GitHub lists at most 3,000 files: the rest may match, and a preview too many
                // is cheaper than a missing one.
                return Decision::new(
                    Action::Deploy,
                    format!(
                        "pull request #{} changes more files than GitHub lists; none listed matches {patterns}, the rest cannot be checked",
                        pr.number
                    ),
                );
            }
            Some(files) if !files.paths.iter().any(|p| filter.matches(p)) => {
                return Decision::no_preview(format!(
                    "no preview: no changed path matches {patterns}"
                ));
            }
            Some(_) => {}
        }
    }
    Decision::new(
        Action::Deploy,
        format!(
            "pull request #{} ({}) gets a preview",
            pr.number,
            action.as_str().replace('_', " ")
        ),
    )
}

fn decide_comment(
    invocation: Option<&Invocation>,
    triggers: &TriggersDef,
    facts: Facts<'_>,
) -> Decision {
    let pr = facts.pr;
    let Some(invocation) = invocation else {
        return Decision::skip("the comment holds no /preview command");
    };
    if !triggers.commands {
        return Decision::skip("comment commands are off (triggers.commands = false)");
    }
    if pr.is_fork() {
        return Decision::refused(
            format!("refused: pull request #{} comes from a fork", pr.number),
            "`/preview` commands do not run on pull requests from forks: their code must never meet this repository's secrets. A maintainer can push the branch to this repository to get a preview.".into(),
        );
    }
    let need = triggers.command_permission;
    match facts.permission {
        Some(p) if p >= need => {}
        p => {
            let has = p.map_or("an unknown permission".to_string(), |p| format!("`{p}`"));
            return Decision::refused(
                format!("refused: the commenter has {has} permission; commands need `{need}`"),
                format!(
                    "`/preview` commands need `{need}` permission on this repository; the commenter has {has}."
                ),
            );
        }
    }
    if pr.state != PrState::Open {
        return Decision::refused(
            format!("refused: pull request #{} is not open", pr.number),
            "This pull request is closed: it gets no preview, and its preview (if any) is removed."
                .into(),
        );
    }
    match invocation {
        Invocation::Unknown => Decision {
            reaction: Some(Reaction::Unknown),
            reply: Some(help_reply()),
            ..Decision::skip("unknown /preview command; replied with the list")
        },
        Invocation::Known { command, .. } => Decision {
            reaction: Some(Reaction::Accepted),
            ..Decision::new(
                Action::Command(*command),
                format!("`{}` accepted", command.usage()),
            )
        },
    }
}

/// The reply to an unknown command: what there is, and where a command must be written.
pub fn help_reply() -> String {
    let mut out = String::from(
        "That is not a `/preview` command. Write one on a line of its own (not in a quote or a code block):\n\n",
    );
    for line in crate::command::help_lines() {
        out.push_str("- ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
