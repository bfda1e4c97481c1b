//! `preview keep`, `preview extend` and `preview wake`: the lifetime commands. `preview handle`
//! runs the same functions for `/preview keep|extend|wake`.

use preview_core::config::Config;
use preview_core::pipeline::{LifetimeOutcome, LifetimeReport};
use preview_core::{Error, PrNumber, Result};

use crate::cli::{Cli, PrArgs};
use crate::context::Context;
use crate::{EXIT_OK, EXIT_SKIPPED, output};

/// Runs `keep`. Needs no generated secret.
///
/// # Errors
/// Configuration errors (nothing touched), provider errors.
pub async fn run_keep(cli: &Cli, args: &PrArgs, ctx: &Context) -> Result<u8> {
    let config = super::load(cli)?;
    let (pr, _) = super::pr_number(args.pr.as_deref(), ctx)?;
    super::check_settings(cli, ctx, &config, false)?;
    keep(cli, ctx, config, pr).await
}

/// Runs `extend`. Needs no generated secret.
///
/// # Errors
/// Configuration errors (nothing touched), provider errors.
pub async fn run_extend(cli: &Cli, args: &PrArgs, ctx: &Context) -> Result<u8> {
    let config = super::load(cli)?;
    let (pr, _) = super::pr_number(args.pr.as_deref(), ctx)?;
    super::check_settings(cli, ctx, &config, false)?;
    extend(cli, ctx, config, pr).await
}

/// Runs `wake`: a deploy, so it needs what deploy needs (the files the config names, the
/// master secret), and skips a fork's pull request before reading any secret.
///
/// # Errors
/// Configuration errors (nothing touched), pipeline errors.
pub async fn run_wake(cli: &Cli, args: &PrArgs, ctx: &Context) -> Result<u8> {
    match super::pr_to_run(cli, args, ctx)? {
        Ok((config, pr)) => wake(cli, ctx, config, pr, None).await,
        Err(skipped) => Ok(skipped),
    }
}

/// Keeps `pr`'s preview and prints what was done.
pub(crate) async fn keep(cli: &Cli, ctx: &Context, config: Config, pr: PrNumber) -> Result<u8> {
    let repo = super::repo(cli, ctx)?;
    let hosts = ctx.factory.hosts(&config, ctx, &repo)?;
    let report = super::pipeline(cli, ctx, config, hosts).keep(pr).await?;
    print(cli, ctx, &report)
}

/// Restarts `pr`'s inactivity clock and prints what was done.
pub(crate) async fn extend(cli: &Cli, ctx: &Context, config: Config, pr: PrNumber) -> Result<u8> {
    let repo = super::repo(cli, ctx)?;
    let hosts = ctx.factory.hosts(&config, ctx, &repo)?;
    let report = super::pipeline(cli, ctx, config, hosts).extend(pr).await?;
    print(cli, ctx, &report)
}

/// Wakes `pr`'s preview (pinned to `pin`, the head a `/preview wake` verified), with the
/// secrets a deploy may need masked first, and prints whether it woke.
pub(crate) async fn wake(
    cli: &Cli,
    ctx: &Context,
    config: Config,
    pr: PrNumber,
    pin: Option<String>,
) -> Result<u8> {
    let report = super::pipeline_with_secrets(cli, ctx, config, pr, pin)?
        .wake(pr)
        .await?;
    print(cli, ctx, &report)
}

fn print(cli: &Cli, ctx: &Context, report: &LifetimeReport) -> Result<u8> {
    output::lifetime(cli, ctx, report)
        .map_err(|e| Error::failed("writing the report", e.to_string()))?;
    Ok(match report.outcome {
        LifetimeOutcome::Skipped { .. } => EXIT_SKIPPED,
        _ => EXIT_OK,
    })
}
