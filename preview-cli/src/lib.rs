//! The `preview` command line: one binary for plan, deploy, teardown, sweep, status and exec.
//!
//! Everything but argument parsing lives here so tests call [`run`] in-process with captured
//! streams, an injected environment and in-memory hosts.

pub mod actions;
pub mod cli;
pub mod commands;
pub mod context;
pub mod http;
pub mod output;
pub mod providers;
pub mod render;

use preview_core::Error;

use crate::context::Context;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The operation failed (a provider, a hook, a deployment).
pub const EXIT_FAILURE: u8 = 1;
/// Bad usage or configuration; nothing was touched.
pub const EXIT_USAGE: u8 = 2;
/// Nothing to do on purpose (closed or fork pull request).
pub const EXIT_SKIPPED: u8 = 3;
/// Runs a parsed command line; returns the exit code. Errors go to the context's stderr (and, with
/// `--json`, as a JSON document on stdout).
pub async fn run(cli: cli::Cli, ctx: &Context) -> u8 {
    let result = match &cli.command {
        cli::Command::Plan(args) => commands::plan::run(&cli, args, ctx),
        cli::Command::Deploy(args) => commands::deploy::run(&cli, args, ctx).await,
        cli::Command::Teardown(args) => commands::teardown::run(&cli, args, ctx).await,
        cli::Command::Sweep(args) => commands::sweep::run(&cli, args, ctx).await,
        cli::Command::Status(args) => commands::status::run(&cli, args, ctx).await,
        cli::Command::Exec(args) => commands::exec::run(&cli, args, ctx).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            report_error(&cli, ctx, &err);
            if err.is_config() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            }
        }
    }
}

/// Waits for a signal that should stop `command` (its [`cli::Command::name`]): SIGTERM always,
/// SIGINT unless it is `exec` (the command then gets Ctrl-C itself, e.g. psql cancels a query). Returns the exit code
/// a shell reports for it (143, 130). Dropping the command's future then kills its hooks and
/// tunnels (their processes are killed on drop), which dying of the signal would not.
pub async fn interrupted(command: &'static str) -> u8 {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    // Installed for exec too, so Ctrl-C does not kill us before the command decides.
    let mut int = signal(SignalKind::interrupt()).ok();
    let stop_on_int = command != "exec";
    loop {
        tokio::select! {
            _ = term.recv() => return 143,
            Some(()) = async { match int.as_mut() { Some(i) => i.recv().await, None => std::future::pending().await } } => {
                if stop_on_int {
                    return 130;
                }
            }
        }
    }
}

/// Waits until the runtime has no task left (clean-ups spawned by drop guards, e.g. a Fly lease
/// release after a cancel) or `limit` passed. Tasks spawned on a runtime are dropped at their next
/// await when it shuts down, so whatever must finish has to finish before.
pub async fn drain_tasks(limit: std::time::Duration) {
    let handle = tokio::runtime::Handle::current();
    let deadline = tokio::time::Instant::now() + limit;
    while handle.metrics().num_alive_tasks() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

fn report_error(cli: &cli::Cli, ctx: &Context, err: &Error) {
    let text = actions::inert(&err.to_string());
    let error = ctx.stderr.paint(output::Style::Error, "error");
    ctx.stderr.line(&format!("{error}: {text}"));
    if ctx.actions.is_some() {
        // One line, so the runner shows it as an annotation.
        ctx.stdout.line(&format!(
            "::error title=preview {}::{}",
            cli.command.name(),
            text.replace('\n', " ")
        ));
    }
    if cli.json {
        let doc = serde_json::json!({
            "status": "failed",
            "command": cli.command.name(),
            "phase": err.phase(),
            "error": err.to_string(),
        });
        let _ = ctx.stdout.with(|w| output::json(w, &doc));
    }
}
