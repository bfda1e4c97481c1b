//! `preview status`.

use preview_core::{Error, Result};

use crate::cli::{Cli, StatusArgs};
use crate::context::Context;
use crate::{EXIT_OK, output};

/// Runs `status`.
///
/// # Errors
/// Configuration and listing errors.
pub async fn run(cli: &Cli, _args: &StatusArgs, ctx: &Context) -> Result<u8> {
    let config = super::load(cli)?;
    super::check_settings(cli, ctx, &config, false)?;
    let repo = super::repo(cli, ctx)?;
    let hosts = ctx.factory.hosts(&config, ctx, &repo)?;
    let rows = super::pipeline(cli, ctx, config, hosts).status().await?;
    output::status(cli, ctx, &rows)
        .map_err(|e| Error::failed("writing the report", e.to_string()))?;
    Ok(EXIT_OK)
}
