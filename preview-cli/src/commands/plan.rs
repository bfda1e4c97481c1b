//! `preview plan`: what deploy would do, with no provider call and no secret generated.

use std::io::Write;

use preview_core::resolve::{Inputs, process_env};
use preview_core::{Config, Error, PrNumber, Result};

use crate::cli::{Cli, PlanArgs};
use crate::{EXIT_OK, output};

/// Runs `plan`.
///
/// # Errors
/// [`Error::Config`] for a bad file or `--pr`.
pub fn run(cli: &Cli, args: &PlanArgs, out: &mut (dyn Write + Send)) -> Result<u8> {
    let pr: PrNumber = args
        .pr
        .parse()
        .map_err(|e: Error| Error::config(format!("--pr: {e}")))?;
    let config = Config::load(&cli.config)?;
    let inputs = Inputs {
        repo: cli
            .repo
            .clone()
            .or_else(|| process_env("GITHUB_REPOSITORY")),
        branch: args.branch.clone(),
        sha: args.sha.clone(),
    };
    let plan = preview_core::pipeline::plan(&config, pr, &inputs, &process_env)?;
    let written = if cli.json {
        output::json(out, &plan)
    } else {
        output::plan(out, &plan)
    };
    written.map_err(|e| Error::failed("writing the plan", e.to_string()))?;
    Ok(EXIT_OK)
}
