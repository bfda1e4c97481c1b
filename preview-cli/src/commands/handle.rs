//! `preview handle`: one entry point for every GitHub Actions event (pull_request,
//! issue_comment): read the event, read the pull request's current state through the API,
//! decide ([`preview_core::pipeline::trigger::decide`]), acknowledge a command, then act or skip.
//!
//! Fork safety: the event file is read first, with no token at all; a fork's `pull_request` and a
//! comment without a command stop there. The decision reads the GitHub token only (the PR, its
//! files, the commenter's permission): a command on a fork's pull request is refused before any
//! other secret is read. A deploy runs only with `--sha` equal to the head commit verified
//! through the API in this run, and is pinned to it ([`preview_core::Preview::pin_commit`]).
//!
//! To add a `/preview` command: a line in `preview_core::command`'s table, and an arm in
//! `run_command`.

use std::path::PathBuf;

use preview_core::command::Command;
use preview_core::pipeline::trigger::{
    Action, Decision, Facts, TriggerEvent, decide, needs_files, needs_permission,
};
use preview_core::{
    Config, Error, PrNumber, PullRequest, Report, ReportKind, ReportState, Result, TriggerHost,
};
use providers_github::{HandledEvent, read_trigger_event};

use super::deploy::deploy;
use super::teardown::teardown;
use crate::actions::inert;
use crate::cli::{Cli, HandleArgs};
use crate::context::Context;
use crate::{EXIT_OK, EXIT_SKIPPED, output};

/// What was decided, and about what.
struct Decided {
    pr: PrNumber,
    pull: PullRequest,
    event: TriggerEvent,
    decision: Decision,
}

/// Runs `handle`.
///
/// # Errors
/// Configuration errors (exit 2, nothing touched), provider and pipeline errors.
pub async fn run(cli: &Cli, args: &HandleArgs, ctx: &Context) -> Result<u8> {
    let config = super::load(cli)?;
    let (pr, fork_by_event, event) = match read_event(ctx)? {
        HandledEvent::Act {
            pr,
            fork_by_event,
            event,
        } => (pr, fork_by_event, event),
        HandledEvent::Ignore { reason } => return Ok(skip_early(cli, ctx, None, &reason)),
        _ => {
            return Ok(skip_early(
                cli,
                ctx,
                None,
                "an event preview does not act on",
            ));
        }
    };
    // Before any token is read: fork code must never meet our credentials, and a comment that
    // asks for nothing costs nothing.
    if fork_by_event {
        let reason = format!(
            "pull request #{pr} comes from a fork; previews run only for branches of this repository"
        );
        return Ok(skip_early(cli, ctx, Some(pr), &reason));
    }
    if let TriggerEvent::Comment { invocation, .. } = &event {
        if invocation.is_none() {
            return Ok(skip_early(
                cli,
                ctx,
                Some(pr),
                "the comment holds no /preview command",
            ));
        }
        if !config.triggers.commands {
            let reason = "comment commands are off (triggers.commands = false)";
            return Ok(skip_early(cli, ctx, Some(pr), reason));
        }
    }
    let repo = super::repo(cli, ctx)?;
    let github = ctx.factory.triggers(&config, ctx, &repo)?;
    let decided = decide_on(github.as_ref(), &config, pr, event).await?;
    let action = decided.decision.action;
    // Everything that can refuse does so before the first write (the acknowledgement).
    let acting = !args.decide_only && action != Action::Skip;
    let config = if acting {
        check_commit(args, &decided)?;
        let config = super::load_with_files(cli, ctx)?;
        let secrets = action.needs_checkout();
        super::check_settings(cli, ctx, &config, secrets)?;
        config
    } else {
        config
    };
    acknowledge(github.as_ref(), &decided).await?;
    print_decision(cli, ctx, &decided)?;
    if action == Action::Skip {
        if decided.decision.explains_no_preview {
            explain(github.as_ref(), ctx, &config, &decided).await?;
        }
        return Ok(EXIT_SKIPPED);
    }
    if args.decide_only {
        return Ok(EXIT_OK);
    }
    let pin = decided.pull.head_sha.clone();
    match action {
        Action::Deploy => deploy(cli, ctx, config, pr, Some(pin)).await,
        Action::Teardown => teardown(cli, ctx, config, pr).await,
        Action::Command(c) => run_command(c, cli, ctx, config, &decided, github.as_ref()).await,
        Action::Skip => Ok(EXIT_SKIPPED),
    }
}

/// Runs an accepted `/preview` command. One arm per command.
async fn run_command(
    command: Command,
    cli: &Cli,
    ctx: &Context,
    config: Config,
    decided: &Decided,
    github: &dyn TriggerHost,
) -> Result<u8> {
    let (pr, pin) = (decided.pr, decided.pull.head_sha.clone());
    match command {
        Command::Deploy => deploy(cli, ctx, config, pr, Some(pin)).await,
        Command::Redeploy => {
            teardown(cli, ctx, config.clone(), pr).await?;
            deploy(cli, ctx, config, pr, Some(pin)).await
        }
        Command::Teardown => teardown(cli, ctx, config, pr).await,
        Command::Status => status(cli, ctx, config, decided, github).await,
        Command::Keep => super::lifetime::keep(cli, ctx, config, pr).await,
        Command::Extend => super::lifetime::extend(cli, ctx, config, pr).await,
        Command::Wake => super::lifetime::wake(cli, ctx, config, pr, Some(pin)).await,
    }
}

/// `GITHUB_EVENT_NAME` and the payload at `GITHUB_EVENT_PATH`.
fn read_event(ctx: &Context) -> Result<HandledEvent> {
    let var = |k: &str| (ctx.env)(k).filter(|v| !v.is_empty());
    let (Some(name), Some(path)) = (var("GITHUB_EVENT_NAME"), var("GITHUB_EVENT_PATH")) else {
        return Err(Error::config(
            "preview handle reads the GitHub Actions event: GITHUB_EVENT_NAME and GITHUB_EVENT_PATH must be set (run it in a workflow, or use deploy/teardown --pr N)",
        ));
    };
    read_trigger_event(&name, &PathBuf::from(path))
}

/// A skip decided from the event file alone (no token read, no request sent).
fn skip_early(cli: &Cli, ctx: &Context, pr: Option<PrNumber>, reason: &str) -> u8 {
    let line = format!("skip: {reason}");
    match pr {
        Some(pr) => output::skipped(cli, ctx, pr, &line),
        None if cli.json => {
            let doc = serde_json::json!({ "status": "skipped", "reason": reason });
            let _ = ctx.stdout.with(|w| output::json_line(w, &doc));
        }
        None => ctx.stdout.line(&line),
    }
    EXIT_SKIPPED
}

/// Reads what the decision needs through the API, then decides.
async fn decide_on(
    github: &dyn TriggerHost,
    config: &Config,
    pr: PrNumber,
    event: TriggerEvent,
) -> Result<Decided> {
    let pull = github.get_pull_request(pr).await?.ok_or_else(|| {
        Error::config(format!(
            "pull request #{pr} does not exist in this repository"
        ))
    })?;
    let triggers = &config.triggers;
    let files = match needs_files(&event, triggers, &pull) {
        true => Some(github.changed_files(pr).await?),
        false => None,
    };
    let permission = match (&event, needs_permission(&event, triggers, &pull)) {
        (TriggerEvent::Comment { author, .. }, true) => Some(github.permission(author).await?),
        _ => None,
    };
    let facts = Facts {
        pr: &pull,
        files: files.as_ref(),
        permission,
    };
    let decision = decide(&event, triggers, facts);
    Ok(Decided {
        pr,
        pull,
        event,
        decision,
    })
}

/// A deploy runs the checked-out code: it must be the head verified just now.
fn check_commit(args: &HandleArgs, decided: &Decided) -> Result<()> {
    if !decided.decision.action.needs_checkout() {
        return Ok(());
    }
    let head = &decided.pull.head_sha;
    match args.sha.as_deref() {
        Some(sha) if sha.eq_ignore_ascii_case(head) => Ok(()),
        Some(sha) => Err(Error::config(format!(
            "--sha {}: the checked-out commit is not the head of pull request #{} verified now ({head}); nothing was touched (the run for the newer head deploys it)",
            inert(&sha.chars().take(64).collect::<String>()),
            decided.pr
        ))),
        None => Err(Error::config(format!(
            "--sha is required to {}: check out the verified head (the `sha` output of `preview handle --decide-only`) and pass it, so the code that runs is the code that was checked",
            decided.decision.action.word()
        ))),
    }
}

/// The reaction and the reply the decision asks for.
async fn acknowledge(github: &dyn TriggerHost, decided: &Decided) -> Result<()> {
    let TriggerEvent::Comment { id, .. } = &decided.event else {
        return Ok(());
    };
    if let Some(reaction) = decided.decision.reaction {
        github.react(*id, reaction).await?;
    }
    if let Some(reply) = &decided.decision.reply {
        github.reply(decided.pr, *id, reply).await?;
    }
    Ok(())
}

/// Prints the decision, and writes the step outputs in Actions.
fn print_decision(cli: &Cli, ctx: &Context, decided: &Decided) -> Result<()> {
    let d = &decided.decision;
    let action = d.action.word();
    let checkout = d.action.needs_checkout();
    if cli.json && (d.action == Action::Skip) {
        let doc = serde_json::json!({
            "pr": decided.pr, "status": "skipped", "action": action, "reason": d.reason,
        });
        let _ = ctx.stdout.with(|w| output::json_line(w, &doc));
    } else if cli.json {
        // The decision is the first line; what the action streams and its result follow.
        let doc = serde_json::json!({
            "event": "decided", "pr": decided.pr, "action": action, "reason": d.reason,
            "checkout": checkout, "sha": decided.pull.head_sha,
        });
        let _ = ctx.stdout.with(|w| output::json_line(w, &doc));
    } else {
        ctx.stdout.line(&inert(&format!("{action}: {}", d.reason)));
    }
    if let Some(a) = &ctx.actions {
        let outputs = [
            ("action", action.to_string()),
            ("checkout", checkout.to_string()),
            ("sha", decided.pull.head_sha.clone()),
            ("pr", decided.pr.to_string()),
        ];
        let outputs: Vec<(String, String)> = outputs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        a.set_outputs(&outputs)
            .map_err(|e| Error::failed("writing step outputs", e.to_string()))?;
    }
    Ok(())
}

/// A report that shows no environment (torn down, or an earlier skip) is updated to say why
/// there is none; a report of an environment that exists is left alone, and none is created.
async fn explain(
    github: &dyn TriggerHost,
    ctx: &Context,
    config: &Config,
    decided: &Decided,
) -> Result<()> {
    if !config.report.comment {
        return Ok(());
    }
    let name = config.name(decided.pr);
    let shown = github.get_report(&name, decided.pr).await?;
    if !shown.is_some_and(|s| matches!(s.kind, ReportKind::TornDown | ReportKind::Skipped)) {
        return Ok(());
    }
    let report = Report {
        name,
        pr: decided.pr,
        branch: Some(decided.pull.head_branch.clone()),
        commit: Some(decided.pull.head_sha.clone()),
        state: ReportState::Skipped {
            reason: decided.decision.reason.clone(),
        },
        run_url: ctx.actions.as_ref().and_then(|a| a.run_url.clone()),
        started_at: Some(jiff::Timestamp::now()),
        phases: vec![],
        lifetime: None,
    };
    github.publish_report(&report).await?;
    Ok(())
}

/// `/preview status`: the environment's resources and URLs, printed and replied once.
async fn status(
    cli: &Cli,
    ctx: &Context,
    config: Config,
    decided: &Decided,
    github: &dyn TriggerHost,
) -> Result<u8> {
    let repo = super::repo(cli, ctx)?;
    let name = config.name(decided.pr);
    let hosts = ctx.factory.hosts(&config, ctx, &repo)?;
    let rows = super::pipeline(cli, ctx, config, hosts).status().await?;
    let mine: Vec<_> = rows.into_iter().filter(|r| r.name == name).collect();
    output::status(cli, ctx, &mine)
        .map_err(|e| Error::failed("writing the report", e.to_string()))?;
    let mut reply = match mine.first() {
        None => format!("No preview environment `{name}` exists."),
        Some(row) => format!(
            "Preview environment `{name}`: {} resource(s).\n",
            row.resources.len()
        ),
    };
    for row in &mine {
        for url in &row.urls {
            reply.push_str(&format!("\n- <{url}>"));
        }
    }
    if let TriggerEvent::Comment { id, .. } = &decided.event {
        github.reply(decided.pr, *id, &reply).await?;
    }
    Ok(EXIT_OK)
}
