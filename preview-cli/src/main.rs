//! The `preview` binary: parse, set up logging, run, map the outcome to an exit code.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use preview_cli::context::{Context, Stream};

fn main() -> ExitCode {
    let cli = preview_cli::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PREVIEW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let env: preview_cli::context::Env = Arc::new(|k: &str| std::env::var(k).ok());
    let ctx = Context {
        actions: preview_cli::actions::Actions::detect(&env),
        env,
        stdout: Stream::new(std::io::stdout()),
        stderr: Stream::new(std::io::stderr()),
        factory: Arc::new(preview_cli::providers::RealProviders),
    };
    let code = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(async {
            let stop = preview_cli::interrupted(cli.command.name());
            tokio::select! {
                code = preview_cli::run(cli, &ctx) => code,
                code = stop => {
                    ctx.stderr.line("error: interrupted; hooks and tunnels were stopped");
                    code
                }
            }
        }),
        Err(e) => {
            ctx.stderr
                .line(&format!("error: cannot start the async runtime: {e}"));
            preview_cli::EXIT_FAILURE
        }
    };
    ExitCode::from(code)
}
