//! Turns configuration and environment into hosts, in one place.

use std::sync::Arc;

use preview_core::effects::{HookRunner, HttpClient, ProcessHookRunner};
use preview_core::{Config, Error, Hosts, Result};

use crate::context::Context;

/// Builds the hosts a command talks to.
pub trait HostFactory: Send + Sync {
    /// The three hosts for `config`, reading tokens through `ctx`.
    ///
    /// # Errors
    /// [`Error::Config`] for missing tokens or unknown providers.
    fn hosts(&self, config: &Config, ctx: &Context, repo: &str) -> Result<Hosts>;

    /// The HTTP client for readiness checks and seed requests.
    fn http(&self) -> Arc<dyn HttpClient>;

    /// The hook runner.
    fn hooks(&self) -> Arc<dyn HookRunner> {
        Arc::new(ProcessHookRunner)
    }
}

/// The real providers: Fly.io, Vercel and GitHub over their HTTP APIs.
#[derive(Debug, Default)]
pub struct RealProviders;

impl HostFactory for RealProviders {
    fn hosts(&self, config: &Config, _ctx: &Context, _repo: &str) -> Result<Hosts> {
        Err(Error::config(format!(
            "{}: the {} database provider is not built into this binary yet",
            config.origin, config.database.provider
        )))
    }

    fn http(&self) -> Arc<dyn HttpClient> {
        Arc::new(crate::http::ReqwestHttp::new())
    }
}
