//! `preview deploy`.

use preview_core::config::Config;
use preview_core::pipeline::DeployStatus;
use preview_core::{Error, PrNumber, Result};

use crate::cli::{Cli, PrArgs};
use crate::context::Context;
use crate::{EXIT_OK, EXIT_SKIPPED, output};

/// Runs `deploy`.
///
/// # Errors
/// Configuration errors before anything is touched; pipeline errors (a failure report has been
/// published on the PR by then).
pub async fn run(cli: &Cli, args: &PrArgs, ctx: &Context) -> Result<u8> {
    match super::pr_to_run(cli, args, ctx)? {
        Ok((config, pr)) => deploy(cli, ctx, config, pr, None).await,
        Err(skipped) => Ok(skipped),
    }
}

/// Deploys `pr` (pinned to `pin`, when a `/preview` command verified that head), with the secrets
/// it needs masked first, and prints the report; the exit code says how it ended. `preview
/// deploy` and `preview handle` both end here.
pub(crate) async fn deploy(
    cli: &Cli,
    ctx: &Context,
    config: Config,
    pr: PrNumber,
    pin: Option<String>,
) -> Result<u8> {
    let report = super::pipeline_with_secrets(cli, ctx, config, pr, pin)?
        .deploy(pr)
        .await?;
    output::deploy(cli, ctx, &report)
        .map_err(|e| Error::failed("writing the report", e.to_string()))?;
    Ok(match report.status {
        DeployStatus::Ready => EXIT_OK,
        DeployStatus::Skipped { .. } | DeployStatus::ClosedDuringDeploy => EXIT_SKIPPED,
    })
}
