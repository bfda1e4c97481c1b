//! The `preview` binary: parse, set up logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = preview_cli::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PREVIEW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            preview_cli::output::print_error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(preview_cli::EXIT_FAILURE);
        }
    };
    let mut stdout = std::io::stdout();
    let code = runtime.block_on(preview_cli::run(cli, &mut stdout));
    ExitCode::from(code)
}
