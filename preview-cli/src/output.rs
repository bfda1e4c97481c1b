//! Everything the CLI prints goes through here: human tables, `--json` documents, and in GitHub
//! Actions the step outputs and summary.

use std::io::Write;

use preview_core::pipeline::{
    DeployReport, DeployStatus, EnvironmentStatus, LifetimeAction, LifetimeOutcome, LifetimeReport,
    Plan, PlannedResource, SweepAction, SweepReport, TeardownReport,
};
use preview_core::{Outcome, PrNumber};

use crate::actions::inert;
use crate::cli::Cli;
use crate::context::Context;

pub use crate::stream::{Style, colour};

/// Prints an error line to stderr.
#[allow(clippy::print_stderr)]
pub fn print_error(message: &str) {
    eprintln!("error: {message}");
}

/// Writes `value` as one JSON document.
pub fn json(out: &mut dyn Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// Writes `value` as one line of JSON: the last line of a command that streamed its phases.
pub fn json_line(out: &mut dyn Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)
}

/// Writes a command's result as JSON on stdout: one line after streamed phase lines (JSON
/// Lines, e.g. `handle`'s `/preview status`), else one document.
pub fn json_result(cli: &Cli, ctx: &Context, value: &impl serde::Serialize) -> std::io::Result<()> {
    if cli.command.streams_phases() {
        ctx.stdout.with(|w| json_line(w, value))
    } else {
        ctx.stdout.with(|w| json(w, value))
    }
}

fn section(out: &mut dyn Write, title: &str, items: &[PlannedResource]) -> std::io::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{title}")?;
    let width = items.iter().map(|r| r.kind.len()).max().unwrap_or(0);
    for r in items {
        writeln!(out, "  + {:width$}  {}  ({})", r.kind, r.id, r.provider)?;
        for (k, v) in &r.detail {
            if !v.is_empty() {
                writeln!(out, "      {k}: {v}")?;
            }
        }
    }
    Ok(())
}

/// Renders a plan for people.
pub fn plan(out: &mut dyn Write, plan: &Plan) -> std::io::Result<()> {
    writeln!(
        out,
        "Plan for pull request #{}: environment {}",
        plan.pr, plan.name
    )?;
    writeln!(
        out,
        "(no provider was called: every resource is shown as created; deploy converges what exists)"
    )?;
    section(
        out,
        "Secrets (generated per environment; values never shown)",
        &plan.secrets,
    )?;
    section(out, "Database", &plan.database)?;
    section(out, "Apps", &plan.apps)?;
    section(
        out,
        "Hooks (run through tunnels once the databases answer)",
        &plan.hooks,
    )?;
    section(out, "Seed", &plan.seed)?;
    section(out, "Report", &plan.report)?;
    Ok(())
}

/// A skipped run: a clear line, or a JSON document.
pub fn skipped(cli: &Cli, ctx: &Context, pr: PrNumber, message: &str) {
    if cli.json {
        let doc = serde_json::json!({ "pr": pr, "status": "skipped", "reason": message });
        ctx.stdout.with(|w| json_line(w, &doc)).ok();
    } else {
        ctx.stdout.line(message);
    }
}

fn counts(changes: &[preview_core::ResourceChange]) -> String {
    let mut parts = Vec::new();
    for o in [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Removed,
        Outcome::AlreadyGone,
        Outcome::Unchanged,
    ] {
        let n = changes.iter().filter(|c| c.outcome == o).count();
        if n > 0 {
            parts.push(format!("{n} {o}"));
        }
    }
    if parts.is_empty() {
        "nothing to do".into()
    } else {
        parts.join(", ")
    }
}

/// The deploy report: JSON, or a summary and a table of URLs; in Actions also outputs and summary.
pub fn deploy(cli: &Cli, ctx: &Context, r: &DeployReport) -> std::io::Result<()> {
    if let Some(a) = &ctx.actions {
        let mut outputs = vec![("environment".to_string(), r.name.to_string())];
        for (app, d) in &r.deployments {
            if let Some(u) = &d.domain_url {
                outputs.push((format!("{app}_url"), u.clone()));
            }
            outputs.push((format!("{app}_deployment_url"), d.url.clone()));
        }
        a.set_outputs(&outputs)?;
        let mut md = format!(
            "### Preview `{}` for PR #{}\n\n| | |\n|---|---|\n",
            r.name, r.pr
        );
        for l in &r.links {
            md.push_str(&format!(
                "| {} | {} |\n",
                l.label.replace('|', "\\|"),
                l.url
            ));
        }
        md.push_str(&format!("\n{}\n", counts(&r.changes)));
        if !r.phases.is_empty() {
            md.push_str("\n| Phase | Time |\n|---|---|\n");
            for p in &r.phases {
                let mark = if p.ok { "" } else { " ❌" };
                md.push_str(&format!("| {}{mark} | {} |\n", p.phase, p.elapsed_text()));
            }
        }
        a.summary(&md)?;
    }
    if cli.json {
        return ctx.stdout.with(|w| json_line(w, r));
    }
    ctx.stdout.with(|w| {
        match &r.status {
            DeployStatus::Ready => writeln!(w, "{} is ready ({})", r.name, counts(&r.changes))?,
            DeployStatus::Skipped { reason } => writeln!(w, "skipped: {}", inert(reason))?,
            DeployStatus::ClosedDuringDeploy => writeln!(
                w,
                "pull request #{} closed during the deploy; {} was torn down",
                r.pr, r.name
            )?,
        }
        let width = r.links.iter().map(|l| l.label.len()).max().unwrap_or(0);
        for l in &r.links {
            writeln!(w, "  {:width$}  {}", l.label, l.url)?;
        }
        Ok(())
    })
}

/// The teardown report.
pub fn teardown(cli: &Cli, ctx: &Context, r: &TeardownReport) -> std::io::Result<()> {
    if cli.json {
        return ctx.stdout.with(|w| json_line(w, r));
    }
    ctx.stdout
        .line(&format!("{} torn down ({})", r.name, counts(&r.changes)));
    Ok(())
}

/// What `keep`, `extend` or `wake` did: one line (the woken preview's links below it), or the
/// report as JSON (one line after streamed phases, else a document).
pub fn lifetime(cli: &Cli, ctx: &Context, r: &LifetimeReport) -> std::io::Result<()> {
    if cli.json {
        return json_result(cli, ctx, r);
    }
    let wrote = |kind: &str| {
        r.changes
            .iter()
            .any(|c| c.kind == kind && c.outcome != Outcome::Unchanged)
    };
    let at = |t: Option<jiff::Timestamp>| t.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string());
    let line = match &r.outcome {
        LifetimeOutcome::Kept { label } => format!(
            "{} is kept: the label `{}` {} pull request #{}; it does not expire or get evicted",
            r.name,
            inert(label),
            if wrote("label") {
                "was added to"
            } else {
                "was already on"
            },
            r.pr
        ),
        LifetimeOutcome::Extended => {
            let mut l = format!(
                "{}: the inactivity clock {}",
                r.name,
                if wrote("activity") {
                    "restarts now"
                } else {
                    "restarted moments ago (nothing written)"
                }
            );
            let note = r.lifetime.as_ref();
            if let Some(t) = at(note.and_then(|n| n.expires_at)) {
                l.push_str(&format!("; expires {t} without activity"));
            }
            if let Some(t) = at(note.and_then(|n| n.sleeps_at)) {
                l.push_str(&format!("; sleeps {t}"));
            }
            l
        }
        LifetimeOutcome::Woke { was } => format!(
            "{} woke (it was {}) and is ready ({})",
            r.name,
            inert(was),
            counts(r.deploy.as_ref().map_or(&[][..], |d| &d.changes))
        ),
        LifetimeOutcome::WasAwake => format!("{} was awake; nothing to do", r.name),
        LifetimeOutcome::Skipped { reason } => format!("skipped: {}", inert(reason)),
    };
    ctx.stdout.with(|w| {
        writeln!(w, "{line}")?;
        let links = r.deploy.as_ref().map_or(&[][..], |d| &d.links);
        let width = links.iter().map(|l| l.label.len()).max().unwrap_or(0);
        for l in links {
            writeln!(w, "  {:width$}  {}", l.label, l.url)?;
        }
        Ok(())
    })
}

/// The sweep report: every decision, and what was removed.
pub fn sweep(cli: &Cli, ctx: &Context, r: &SweepReport) -> std::io::Result<()> {
    if cli.json {
        return ctx.stdout.with(|w| json_line(w, r));
    }
    ctx.stdout.with(|w| {
        if r.decisions.is_empty() {
            writeln!(w, "no environments found")?;
        }
        for d in &r.decisions {
            let verb = match (d.action, r.dry_run) {
                (SweepAction::Keep, _) => "keep",
                (SweepAction::Delete, true) => "would remove",
                (SweepAction::Delete, false) if r.removed.contains(&d.name) => "removed",
                (SweepAction::Delete, false) => "FAILED to remove",
            };
            writeln!(
                w,
                "{verb:<16} {:<24} {}",
                d.name.to_string(),
                inert(&d.reason)
            )?;
        }
        // Closed and merged PRs are sweep's, printed above.
        for d in r
            .lifetime
            .iter()
            .filter(|d| d.action != LifetimeAction::TearDown)
        {
            let done = r.acted.contains(&d.name);
            let verb = match (d.action, r.dry_run || !done) {
                (LifetimeAction::Keep | LifetimeAction::TearDown, _) => "lifetime: keep",
                (LifetimeAction::Expire, true) => "would expire",
                (LifetimeAction::Expire, false) => "expired",
                (LifetimeAction::Sleep { .. }, true) => "would sleep",
                (LifetimeAction::Sleep { .. }, false) => "put to sleep",
                (LifetimeAction::Evict, true) => "would evict",
                (LifetimeAction::Evict, false) => "evicted",
                (LifetimeAction::MarkReset, true) => "would mark reset",
                (LifetimeAction::MarkReset, false) => "marked reset",
            };
            let verb = if done || r.dry_run || !d.action.acts() {
                verb
            } else {
                "FAILED to act"
            };
            writeln!(
                w,
                "{verb:<16} {:<24} {}",
                d.name.to_string(),
                inert(&d.evidence)
            )?;
        }
        for f in &r.failures {
            writeln!(w, "error: {}", inert(f))?;
        }
        Ok(())
    })
}

fn age(secs: Option<u64>) -> String {
    match secs {
        None => "?".into(),
        Some(s) if s < 3600 => format!("{}m", s / 60),
        Some(s) if s < 86_400 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

/// The status table.
pub fn status(cli: &Cli, ctx: &Context, rows: &[EnvironmentStatus]) -> std::io::Result<()> {
    if cli.json {
        return json_result(cli, ctx, &rows);
    }
    ctx.stdout.with(|w| {
        if rows.is_empty() {
            return writeln!(w, "no environments");
        }
        writeln!(
            w,
            "{:<24} {:>6}  {:<10} {:>5}  {:>9}  URLS",
            "ENVIRONMENT", "PR", "PR STATE", "AGE", "COST*"
        )?;
        for r in rows {
            let cost = r.cost.as_ref().map_or("-".to_string(), |c| {
                format!("{}.{:02}", c.so_far_cents / 100, c.so_far_cents % 100)
            });
            writeln!(
                w,
                "{:<24} {:>6}  {:<10} {:>5}  {:>9}  {}",
                r.name.to_string(),
                format!("#{}", r.pr),
                inert(&r.pr_state),
                age(r.age_secs),
                cost,
                r.urls.join(" ")
            )?;
        }
        if let Some(c) = rows.iter().find_map(|r| r.cost.as_ref()) {
            writeln!(
                w,
                "* cost so far, an estimate in {} from prices of {} ({}/day running, {}.{:02} asleep); see [cost] in the config",
                c.currency,
                c.prices_dated,
                format_args!("{}.{:02}", c.per_day_running_cents / 100, c.per_day_running_cents % 100),
                c.per_day_sleeping_cents / 100,
                c.per_day_sleeping_cents % 100
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Vars = &'static [(&'static str, &'static str)];

    #[test]
    fn colour_follows_no_color_clicolor_force_and_the_terminal() {
        let cases: [(Vars, bool, bool); 10] = [
            (&[], true, true),
            (&[], false, false),
            (&[("TERM", "dumb")], true, false),
            (&[("NO_COLOR", "1")], true, false),
            (&[("NO_COLOR", "")], true, true),
            (&[("CLICOLOR_FORCE", "1")], false, true),
            (&[("CLICOLOR_FORCE", "0")], false, false),
            (&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], false, false),
            (&[("CLICOLOR", "0")], true, false),
            (&[("CLICOLOR", "1")], false, false),
        ];
        for (vars, terminal, expected) in cases {
            let env: crate::context::Env = std::sync::Arc::new(move |k: &str| {
                vars.iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v.to_string())
            });
            assert_eq!(colour(&env, terminal), expected, "{vars:?} {terminal}");
        }
    }
}
