//! One module per subcommand, plus what they share.

pub mod deploy;
pub mod exec;
pub mod handle;
pub mod lifetime;
pub mod plan;
pub mod status;
pub mod sweep;
pub mod teardown;

use std::sync::Arc;

use preview_core::render::Inputs;
use preview_core::secrecy::SecretString;
use preview_core::{Config, DerivedSecrets, Error, Hosts, PrNumber, Preview, Result, SecretSource};
use providers_github::{PullRequestEvent, read_pull_request_event};

use crate::cli::Cli;
use crate::context::{Context, Stream};
use crate::progress::{JsonLines, Progress};

/// Loads the configuration named by `--config`.
pub(crate) fn load(cli: &Cli) -> Result<Config> {
    Config::load(&cli.config)
}

/// Loads the configuration and reads the files it names (seed bodies, hook directories),
/// confined to the repository, before anything else happens: a file it may not use is a
/// configuration error (exit 2) before any request of any kind.
pub(crate) fn load_with_files(cli: &Cli, ctx: &Context) -> Result<Config> {
    let mut config = load(cli)?;
    let env = ctx.env.clone();
    let lookup = move |k: &str| env(k);
    let repository = config.repository(&lookup)?;
    config.read_files(repository)?;
    Ok(config)
}

/// Every missing or invalid setting a command needs, checked together so one run reports them
/// all: the repository, the providers' tokens (and whatever else the host factory checks), the
/// variables the configuration reads (app projects; with `secrets`, the master secret and the
/// imported secrets).
///
/// # Errors
/// One [`Error::Config`] listing every problem (or the one problem as it is).
pub(crate) fn check_settings(
    cli: &Cli,
    ctx: &Context,
    config: &Config,
    secrets: bool,
) -> Result<()> {
    let mut problems = Vec::new();
    if let Err(e) = repo(cli, ctx) {
        problems.push(e);
    }
    problems.extend(ctx.factory.check(config, ctx));
    if secrets {
        if let Err(e) = master(ctx) {
            problems.push(e);
        }
    }
    let env = ctx.env.clone();
    let lookup = move |k: &str| env(k);
    problems.extend(preview_core::render::missing_env(config, &lookup, secrets));
    together(problems)
}

/// One error for several: the one as it is, or a list (each on its own line).
fn together(mut problems: Vec<Error>) -> Result<()> {
    match problems.len() {
        0 => Ok(()),
        1 => Err(problems.remove(0)),
        n => {
            // A failure that is not about settings (an unreadable token file is still one) says
            // more on its own.
            if let Some(i) = problems.iter().position(|e| !e.is_config()) {
                return Err(problems.remove(i));
            }
            let lines: Vec<String> = problems.iter().map(|e| format!("  - {e}")).collect();
            Err(Error::config(format!(
                "{n} settings are missing or invalid:\n{}",
                lines.join("\n")
            )))
        }
    }
}

/// The repository: `--repo`, else `$GITHUB_REPOSITORY`; must be `owner/name`.
pub(crate) fn repo(cli: &Cli, ctx: &Context) -> Result<String> {
    let repo = cli
        .repo
        .clone()
        .or_else(|| (ctx.env)("GITHUB_REPOSITORY"))
        .ok_or_else(|| Error::config("--repo OWNER/NAME is required (or set GITHUB_REPOSITORY)"))?;
    let ok = repo.split('/').count() == 2
        && repo.split('/').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if !ok {
        return Err(Error::config(format!(
            "--repo {repo:?}: expected OWNER/NAME, e.g. inkeep/agents"
        )));
    }
    Ok(repo)
}

/// The config (with the files it names, read once) and the PR of a command that runs the PR's
/// code (deploy, wake). A fork's PR is skipped, printed and `Err(exit code)`, before any secret
/// or token is read: fork code must never meet our credentials.
///
/// # Errors
/// Configuration errors (nothing touched).
pub(crate) fn pr_to_run(
    cli: &Cli,
    args: &crate::cli::PrArgs,
    ctx: &Context,
) -> Result<std::result::Result<(Config, PrNumber), u8>> {
    let config = load_with_files(cli, ctx)?;
    let (pr, event) = pr_number(args.pr.as_deref(), ctx)?;
    if event.as_ref().is_some_and(|e| e.is_fork) {
        let msg = format!(
            "skipped: pull request #{pr} comes from a fork; previews run only for branches of this repository"
        );
        crate::output::skipped(cli, ctx, pr, &msg);
        return Ok(Err(crate::EXIT_SKIPPED));
    }
    check_settings(cli, ctx, &config, true)?;
    Ok(Ok((config, pr)))
}

/// `--pr N`, else (in Actions) the triggering pull request.
pub(crate) fn pr_number(
    arg: Option<&str>,
    ctx: &Context,
) -> Result<(PrNumber, Option<PullRequestEvent>)> {
    if let Some(a) = arg {
        let pr = a
            .parse()
            .map_err(|e: Error| Error::config(format!("--pr: {e}")))?;
        return Ok((pr, None));
    }
    match ctx.actions.as_ref().and_then(|a| a.event_path.as_ref()) {
        Some(path) => {
            let ev = read_pull_request_event(path)?;
            Ok((ev.number, Some(ev)))
        }
        None => Err(Error::config(
            "--pr N is required outside GitHub Actions pull_request events",
        )),
    }
}

/// The stable secret source: `PREVIEW_MASTER_SECRET` (or `_FILE`).
pub(crate) fn master(ctx: &Context) -> Result<Arc<dyn SecretSource>> {
    let m: SecretString = ctx.require_token(
        "PREVIEW_MASTER_SECRET",
        "generated secrets are derived from it so re-runs do not rotate them; create one with `openssl rand -base64 48` and store it as a repository secret",
    )?;
    Ok(Arc::new(DerivedSecrets::new(m)?))
}

/// Masks every sensitive value of the environment before anything else is printed (Actions only).
fn mask_up_front(
    cli: &Cli,
    ctx: &Context,
    config: &Config,
    pr: PrNumber,
    repo: &str,
    secrets: &dyn SecretSource,
) -> Result<()> {
    if ctx.actions.is_none() {
        return Ok(());
    }
    let name = config.name(pr);
    let env = ctx.env.clone();
    let lookup = move |k: &str| env(k);
    let values = preview_core::render::secrets(config, &name, secrets, &lookup)?;
    let inputs = Inputs {
        repo: Some(repo.to_string()),
        ..Inputs::default()
    };
    let rendered = preview_core::render::render_all(config, &name, &inputs, values, &lookup)?;
    mask(cli, ctx, &rendered.sensitive_values())
}

/// Where `::add-mask::` lines go: the stream progress is written to, so each mask reaches the
/// runner before any line after it on that stream (the runner reads workflow commands on both).
/// With `--json` that is stderr, which also keeps stdout pure JSON.
fn mask_stream<'a>(cli: &Cli, ctx: &'a Context) -> &'a Stream {
    if cli.json { &ctx.stderr } else { &ctx.stdout }
}

/// Masks `values` in Actions (each once per run); nothing outside Actions.
pub(crate) fn mask(cli: &Cli, ctx: &Context, values: &[String]) -> Result<()> {
    let Some(a) = &ctx.actions else {
        return Ok(());
    };
    mask_stream(cli, ctx)
        .with(|w| a.mask(w, values))
        .map_err(|e| Error::failed("masking secrets", e.to_string()))
}

/// The pipeline of a command that may create `pr`'s environment (deploy, wake): the master secret
/// read and every value it derives masked first (in Actions), pinned to `pin` when a `/preview`
/// command verified that head.
///
/// # Errors
/// A missing master secret or repository, or hosts that cannot be built (nothing touched).
pub(crate) fn pipeline_with_secrets(
    cli: &Cli,
    ctx: &Context,
    config: Config,
    pr: PrNumber,
    pin: Option<String>,
) -> Result<Preview> {
    let repo = repo(cli, ctx)?;
    let secrets = master(ctx)?;
    mask_up_front(cli, ctx, &config, pr, &repo, secrets.as_ref())?;
    let hosts = ctx.factory.hosts(&config, ctx, &repo)?;
    Ok(pipeline(cli, ctx, config, hosts)
        .secrets(secrets)
        .pin_commit(pin))
}

/// The pipeline, wired to the context's hosts, output and environment.
pub(crate) fn pipeline(cli: &Cli, ctx: &Context, config: Config, hosts: Hosts) -> Preview {
    let groups = ctx.actions.is_some() && !cli.json;
    let progress = if groups {
        ctx.stdout.clone()
    } else {
        ctx.stderr.clone()
    };
    let progress = Progress::new(progress, groups);
    let events: Arc<dyn preview_core::EventSink> = if cli.json && cli.command.streams_phases() {
        Arc::new(JsonLines::new(ctx.stdout.clone(), Box::new(progress)))
    } else {
        Arc::new(progress)
    };
    let mut p = Preview::new(config, hosts)
        .hooks(ctx.factory.hooks())
        .http(ctx.factory.http())
        .events(events)
        .env(ctx.env.clone())
        .run_url(ctx.actions.as_ref().and_then(|a| a.run_url.clone()));
    if let Some(a) = ctx.actions.clone() {
        let out = mask_stream(cli, ctx).clone();
        p = p.on_secrets(Arc::new(move |values: &[String]| {
            let _ = out.with(|w| a.mask(w, values));
        }));
    }
    p
}
