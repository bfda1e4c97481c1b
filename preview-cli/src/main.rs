//! The `preview` binary: parse, set up logging, run, map the outcome to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use preview_cli::context::{Context, Stream};

fn main() -> ExitCode {
    let cli = preview_cli::cli::Cli::parse();
    let env: preview_cli::context::Env = Arc::new(|k: &str| std::env::var(k).ok());
    let colour = |terminal: bool| preview_cli::output::colour(&env, terminal);
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
    let ctx = Context {
        actions: preview_cli::actions::Actions::detect(&env),
        env,
        stdout: Stream::new(std::io::stdout()).coloured(out_colour),
        stderr: Stream::new(std::io::stderr()).coloured(err_colour),
        factory: Arc::new(preview_cli::providers::RealProviders),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let error = ctx.stderr.paint(preview_cli::output::Style::Error, "error");
            ctx.stderr
                .line(&format!("{error}: cannot start the async runtime: {e}"));
            return ExitCode::from(preview_cli::EXIT_FAILURE);
        }
    };
    let code = runtime.block_on(async {
        let stop = preview_cli::interrupted(cli.command.name());
        // The run future is dropped when select! returns, before the arms below run.
        let outcome = tokio::select! {
            code = preview_cli::run(cli, &ctx) => Ok(code),
            code = stop => Err(code),
        };
        match outcome {
            Ok(code) => code,
            Err(code) => {
                // Dropping the run future cancelled it where it stood (every command converges
                // on re-run) and killed hooks and tunnels; providers release what they hold (e.g.
                // Fly leases) from drop guards that spawn the release. Those tasks run only while
                // we are inside block_on: shutdown drops spawned tasks at their next await, so
                // wait for them here. GitHub Actions sends SIGTERM 7.5 s after SIGINT: 5 s at most.
                preview_cli::drain_tasks(Duration::from_secs(5)).await;
                let error = ctx.stderr.paint(preview_cli::output::Style::Error, "error");
                ctx.stderr.line(&format!(
                    "{error}: interrupted; hooks and tunnels were stopped; re-run to converge"
                ));
                code
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(500));
    ExitCode::from(code)
}
