//! The `preview` command line: one binary for plan, deploy, teardown, sweep, status, exec, handle
//! and the lifetime commands (keep, extend, wake).
//!
//! The binary is a door: its `main` calls [`main`], which parses the command line, builds the
//! process's [`Context`], and runs [`run`] until it ends or a signal stops it. Tests call [`run`]
//! in-process with captured streams, an injected environment and in-memory hosts.

pub mod actions;
pub mod cli;
pub mod commands;
pub mod context;
pub mod output;
pub mod progress;
pub mod providers;
pub mod seed_client;
pub mod stream;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use preview_core::Error;

use crate::context::{Context, Env, Stream};

/// Success.
pub const EXIT_OK: u8 = 0;
/// The operation failed (a provider, a hook, a deployment).
pub const EXIT_FAILURE: u8 = 1;
/// Bad usage or configuration; nothing was touched.
pub const EXIT_USAGE: u8 = 2;
/// Nothing to do on purpose (closed or fork pull request).
pub const EXIT_SKIPPED: u8 = 3;
/// The `preview` binary: parse the command line, set up logging and the process's context, run
/// the command until it ends or a signal stops it; the exit code is [`run`]'s (or the signal's).
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let ctx = process_context();
    ExitCode::from(run_to_end(cli, &ctx))
}

/// The real environment, standard output and error (coloured per [`output::colour`]), the
/// Actions mode it detects, the real providers; logging to stderr per `PREVIEW_LOG`.
fn process_context() -> Context {
    let env: Env = Arc::new(|k: &str| std::env::var(k).ok());
    let colour = |terminal: bool| output::colour(&env, terminal);
    let (out_colour, err_colour) = (
        colour(std::io::stdout().is_terminal()),
        colour(std::io::stderr().is_terminal()),
    );
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(err_colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PREVIEW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    Context {
        actions: actions::Actions::detect(&env),
        env,
        stdout: Stream::new(std::io::stdout()).coloured(out_colour),
        stderr: Stream::new(std::io::stderr()).coloured(err_colour),
        factory: Arc::new(providers::RealProviders),
    }
}

/// Runs `cli` on a fresh runtime until it ends ([`run`]'s exit code) or a signal stops it (the
/// signal's, see [`interrupted`]).
fn run_to_end(cli: cli::Cli, ctx: &Context) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let error = ctx.stderr.paint(output::Style::Error, "error");
            ctx.stderr
                .line(&format!("{error}: cannot start the async runtime: {e}"));
            return EXIT_FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let stop = interrupted(cli.command.name());
        // The run future is dropped when select! returns, before the arms below run.
        // `biased`, the signal first: its handlers are installed when it is first polled, which
        // must be before the command's first poll prints anything (a SIGINT sent on seeing
        // "… observe" would otherwise kill the process, exit code none instead of 130).
        let outcome = tokio::select! {
            biased;
            code = stop => Err(code),
            code = run(cli, ctx) => Ok(code),
        };
        match outcome {
            Ok(code) => code,
            Err(code) => {
                // Dropping the run future cancelled it where it stood (every command converges
                // on re-run) and killed hooks and tunnels; providers release what they hold (e.g.
                // Fly leases) from drop guards that spawn the release. Those tasks run only while
                // we are inside block_on: shutdown drops spawned tasks at their next await, so
                // wait for them here. GitHub Actions sends SIGTERM 7.5 s after SIGINT: 5 s at most.
                drain_tasks(Duration::from_secs(5)).await;
                let error = ctx.stderr.paint(output::Style::Error, "error");
                ctx.stderr.line(&format!(
                    "{error}: interrupted; hooks and tunnels were stopped; re-run to converge"
                ));
                code
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}

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
        cli::Command::Handle(args) => commands::handle::run(&cli, args, ctx).await,
        cli::Command::Keep(args) => commands::lifetime::run_keep(&cli, args, ctx).await,
        cli::Command::Extend(args) => commands::lifetime::run_extend(&cli, args, ctx).await,
        cli::Command::Wake(args) => commands::lifetime::run_wake(&cli, args, ctx).await,
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
        let _ = output::json_result(cli, ctx, &doc);
    }
}
