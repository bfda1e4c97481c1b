//! `preview sweep`.

use preview_core::{Error, Result};

use crate::cli::{Cli, SweepArgs};
use crate::context::Context;
use crate::{EXIT_FAILURE, EXIT_OK, output};

/// Runs `sweep`.
///
/// # Errors
/// Configuration and listing errors (nothing is removed then).
pub async fn run(cli: &Cli, args: &SweepArgs, ctx: &Context) -> Result<u8> {
    let config = super::load(cli)?;
    super::check_settings(cli, ctx, &config, false)?;
    let repo = super::repo(cli, ctx)?;
    let hosts = ctx.factory.hosts(&config, ctx, &repo)?;
    let report = super::pipeline(cli, ctx, config, hosts)
        .concurrency(usize::from(args.concurrency))
        .sweep(args.dry_run)
        .await?;
    output::sweep(cli, ctx, &report)
        .map_err(|e| Error::failed("writing the report", e.to_string()))?;
    Ok(if report.failures.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}
