//! Everything the CLI prints goes through here.

use std::io::Write;

use preview_core::pipeline::{Plan, PlannedResource};

/// Prints an error line to stderr.
#[allow(clippy::print_stderr)]
pub fn print_error(message: &str) {
    eprintln!("error: {message}");
}

/// Writes `value` as one JSON document.
pub fn json(out: &mut (dyn Write + Send), value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

fn section(
    out: &mut (dyn Write + Send),
    title: &str,
    items: &[PlannedResource],
) -> std::io::Result<()> {
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
pub fn plan(out: &mut (dyn Write + Send), plan: &Plan) -> std::io::Result<()> {
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
