//! Turns configuration and environment into hosts, in one place.

use std::sync::Arc;

use preview_core::effects::HttpClient;
use preview_core::http::ClientSettings;
use preview_core::{Config, Error, Hosts, Result, TriggerHost};

use crate::context::Context;

pub use crate::context::HostFactory;

/// The real providers: Fly.io, Vercel and GitHub over their HTTP APIs. Tokens come from the
/// environment (`NAME` or `NAME_FILE`); base URLs from `FLY_API_URL`, `VERCEL_API_URL` and
/// `GITHUB_API_URL`.
#[derive(Debug, Default)]
pub struct RealProviders;

/// Translates `report.environment` into the GitHub provider's `{pr}` / `{name}` template.
fn environment_template(config: &Config) -> Result<String> {
    let src = config.report.environment.template.source();
    let t = src
        .replace("${pr.number}", "{pr}")
        .replace("${env.name}", "{name}");
    if t.contains("${") {
        return Err(Error::config(format!(
            "{}: report.environment {src:?}: only ${{pr.number}} and ${{env.name}} are supported here",
            config.origin
        )));
    }
    Ok(t)
}

/// The tokens, as `hosts` reads them: (variable, what it is).
const FLY_TOKEN: (&str, &str) = ("FLY_API_TOKEN", "the Fly.io token (fly tokens create org)");
const VERCEL_TOKEN: (&str, &str) = ("VERCEL_TOKEN", "the Vercel token");
const GITHUB_TOKEN: (&str, &str) = (
    "GITHUB_TOKEN",
    "a GitHub token (in Actions: secrets.GITHUB_TOKEN)",
);

/// The GitHub source, from `GITHUB_TOKEN` alone; its reports list the `/preview` commands when
/// they are on.
fn github(config: &Config, ctx: &Context, repo: &str) -> Result<providers_github::GitHubSource> {
    let env = ctx.env.clone();
    let lookup = move |k: &str| env(k);
    let commands = if config.triggers.commands {
        preview_core::command::help_lines()
    } else {
        Vec::new()
    };
    let github = providers_github::GitHubSourceBuilder::from_lookup(&lookup)
        .token(ctx.require_token(GITHUB_TOKEN.0, GITHUB_TOKEN.1)?)
        .repository(repo)
        .environment_template(environment_template(config)?)
        .commands(commands);
    // Test builds only (feature `testing`, never in an install): the end-to-end suites run
    // the binary against a local fake, where GitHub's 1 s between writes only makes every
    // run seconds longer.
    #[cfg(feature = "testing")]
    let github =
        match lookup("PREVIEW_TEST_GITHUB_WRITE_SPACING_MS").and_then(|v| v.parse::<u64>().ok()) {
            Some(ms) => github.write_spacing(std::time::Duration::from_millis(ms)),
            None => github,
        };
    github.build()
}

impl HostFactory for RealProviders {
    fn check(&self, config: &Config, ctx: &Context) -> Vec<Error> {
        let mut out = Vec::new();
        if config.database.provider != "fly" {
            out.push(Error::config(format!(
                "{}: database.provider {:?} is not available in the preview binary (use \"fly\")",
                config.origin, config.database.provider
            )));
        }
        if let Some(a) = config.apps.iter().find(|a| a.provider != "vercel") {
            out.push(Error::config(format!(
                "{}: apps.{}.provider {:?} is not available in the preview binary (use \"vercel\")",
                config.origin, a.name, a.provider
            )));
        }
        if let Err(e) = environment_template(config) {
            out.push(e);
        }
        for (var, what) in [FLY_TOKEN, VERCEL_TOKEN, GITHUB_TOKEN] {
            if let Err(e) = ctx.require_token(var, what) {
                out.push(e);
            }
        }
        out
    }

    fn hosts(&self, config: &Config, ctx: &Context, repo: &str) -> Result<Hosts> {
        let env = ctx.env.clone();
        let lookup = move |k: &str| env(k);

        let database: Arc<dyn preview_core::DatabaseHost> = match config.database.provider.as_str()
        {
            "fly" => {
                let mut b = providers_fly::FlyDatabasesBuilder::new()
                    .naming(config.naming.clone())
                    .token(ctx.require_token(FLY_TOKEN.0, FLY_TOKEN.1)?);
                if let Some(org) = &config.database.org {
                    b = b.org(org.clone());
                }
                if let Some(url) = lookup("FLY_API_URL").filter(|u| !u.is_empty()) {
                    b = b.base_url(url);
                }
                if let Some(path) = lookup("FLYCTL").filter(|p| !p.is_empty()) {
                    b = b.flyctl_path(path);
                }
                // Test builds only (feature `testing`): the kill suites SIGKILL the binary while it
                // holds a Machine lease at many points; each next deploy waits the lease out, and
                // the real 20 s TTL would make that suite minutes longer. The lease test itself
                // runs with the real TTL.
                #[cfg(feature = "testing")]
                if let Some(secs) =
                    lookup("PREVIEW_TEST_FLY_LEASE_TTL_SECS").and_then(|v| v.parse::<u64>().ok())
                {
                    b = b.lease_ttl(std::time::Duration::from_secs(secs));
                }
                Arc::new(b.build()?)
            }
            other => {
                return Err(Error::config(format!(
                    "{}: database.provider {other:?} is not available in the preview binary (use \"fly\")",
                    config.origin
                )));
            }
        };

        if let Some(a) = config.apps.iter().find(|a| a.provider != "vercel") {
            return Err(Error::config(format!(
                "{}: apps.{}.provider {:?} is not available in the preview binary (use \"vercel\")",
                config.origin, a.name, a.provider
            )));
        }
        let apps = providers_vercel::VercelAppsBuilder::from_lookup(&lookup)
            .token(ctx.require_token(VERCEL_TOKEN.0, VERCEL_TOKEN.1)?)
            .build()?;

        let source = github(config, ctx, repo)?;

        Ok(Hosts {
            database,
            apps: Arc::new(apps),
            source: Arc::new(source),
        })
    }

    fn triggers(&self, config: &Config, ctx: &Context, repo: &str) -> Result<Arc<dyn TriggerHost>> {
        Ok(Arc::new(github(config, ctx, repo)?))
    }

    fn http(&self) -> Arc<dyn HttpClient> {
        let http = crate::seed_client::ReqwestHttp::new();
        // Test builds only: the end-to-end suites send an app's own URL to a local stand-in.
        #[cfg(feature = "testing")]
        let http = match std::env::var("PREVIEW_TEST_HTTP_ORIGINS") {
            Ok(spec) => http.with_test_origins(&spec),
            Err(_) => http,
        };
        Arc::new(http)
    }
}
