//! `preview teardown`.

use preview_core::config::Config;
use preview_core::{Error, PrNumber, Result};

use crate::cli::{Cli, PrArgs};
use crate::context::Context;
use crate::{EXIT_OK, output};

/// Runs `teardown`. Needs no generated secret: it removes by name and ownership marker.
///
/// # Errors
/// Configuration errors; every resource that could not be removed.
pub async fn run(cli: &Cli, args: &PrArgs, ctx: &Context) -> Result<u8> {
    let config = super::load(cli)?;
    let (pr, _) = super::pr_number(args.pr.as_deref(), ctx)?;
    super::check_settings(cli, ctx, &config, false)?;
    teardown(cli, ctx, config, pr).await
}

/// Tears `pr`'s preview down and prints the report. `preview teardown` and `preview handle` both
/// end here.
pub(crate) async fn teardown(cli: &Cli, ctx: &Context, config: Config, pr: PrNumber) -> Result<u8> {
    let repo = super::repo(cli, ctx)?;
    let hosts = ctx.factory.hosts(&config, ctx, &repo)?;
    let report = super::pipeline(cli, ctx, config, hosts)
        .teardown(pr)
        .await?;
    output::teardown(cli, ctx, &report)
        .map_err(|e| Error::failed("writing the report", e.to_string()))?;
    Ok(EXIT_OK)
}
