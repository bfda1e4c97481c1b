//! `preview plan`: what deploy would do, with no provider call and no secret generated.

use preview_core::render::Inputs;
use preview_core::{Error, PrNumber, Result};

use crate::cli::{Cli, PlanArgs};
use crate::context::Context;
use crate::{EXIT_OK, output};

/// Runs `plan`.
///
/// # Errors
/// [`Error::Config`] for a bad file or `--pr`.
pub fn run(cli: &Cli, args: &PlanArgs, ctx: &Context) -> Result<u8> {
    let pr: PrNumber = args
        .pr
        .parse()
        .map_err(|e: Error| Error::config(format!("--pr: {e}")))?;
    let config = super::load_with_files(cli, ctx)?;
    let inputs = Inputs {
        repo: cli.repo.clone().or_else(|| (ctx.env)("GITHUB_REPOSITORY")),
        branch: args.branch.clone(),
        sha: args.sha.clone(),
    };
    let env = ctx.env.clone();
    let plan = preview_core::pipeline::plan(&config, pr, &inputs, &move |k: &str| env(k))?;
    ctx.stdout
        .with(|w| {
            if cli.json {
                output::json(w, &plan)
            } else {
                output::plan(w, &plan)
            }
        })
        .map_err(|e| Error::failed("writing the plan", e.to_string()))?;
    Ok(EXIT_OK)
}
