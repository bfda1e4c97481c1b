//! The `preview` command line: one binary for deploy, teardown, sweep, status, plan and exec.
//!
//! Everything but argument parsing lives here so tests call [`run`] in-process.

pub mod cli;
pub mod commands;
pub mod output;

use std::io::Write;

use preview_core::Error;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The operation failed (a provider, a hook, a deployment).
pub const EXIT_FAILURE: u8 = 1;
/// Bad usage or configuration; nothing was touched.
pub const EXIT_USAGE: u8 = 2;
/// Nothing to do on purpose (closed PR, fork PR).
pub const EXIT_SKIPPED: u8 = 3;

/// Runs a parsed command line, writing results to `out` and errors to stderr; returns the exit code.
pub async fn run(cli: cli::Cli, out: &mut (dyn Write + Send)) -> u8 {
    let result = match &cli.command {
        cli::Command::Plan(args) => commands::plan::run(&cli, args, out),
        cli::Command::Deploy(_)
        | cli::Command::Teardown(_)
        | cli::Command::Sweep(_)
        | cli::Command::Status(_)
        | cli::Command::Exec(_) => Err(Error::failed(
            cli.command.name(),
            "not yet wired to the real providers in this build; `preview plan` works, the rest arrives with the provider crates",
        )),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::print_error(&format!("{err}"));
            if err.is_config() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            }
        }
    }
}
