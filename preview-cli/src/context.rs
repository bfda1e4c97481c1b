//! What a command runs with: its environment, its output streams, Actions mode, and how hosts are
//! built. Tests build one with in-memory hosts and captured streams.

use std::sync::Arc;

use preview_core::effects::{HookRunner, HttpClient, ProcessHookRunner};
use preview_core::secrecy::SecretString;
use preview_core::{Config, Error, Hosts, Result};

use crate::actions::Actions;

/// Reads environment variables.
pub type Env = preview_core::env::EnvSource;

pub use crate::stream::Stream;

/// Builds the hosts a command talks to.
pub trait HostFactory: Send + Sync {
    /// The three hosts for `config`, reading tokens through `ctx`.
    ///
    /// # Errors
    /// [`Error::Config`] for missing tokens or unknown providers.
    fn hosts(&self, config: &Config, ctx: &Context, repo: &str) -> Result<Hosts>;

    /// Every setting [`HostFactory::hosts`] would find missing or invalid (tokens, provider
    /// kinds), all of them, without building anything: a command reports them together with its
    /// own, in one run. The default finds nothing.
    fn check(&self, config: &Config, ctx: &Context) -> Vec<Error> {
        let _ = (config, ctx);
        Vec::new()
    }

    /// The HTTP client for readiness checks and seed requests.
    fn http(&self) -> Arc<dyn HttpClient>;

    /// The GitHub side alone, for `preview handle`'s decision: it reads only the GitHub token,
    /// so a fork's pull request is refused before any other secret is read. The default has
    /// none.
    ///
    /// # Errors
    /// [`preview_core::Error::Config`] for a missing token, or a factory without one.
    fn triggers(
        &self,
        config: &Config,
        ctx: &Context,
        repo: &str,
    ) -> Result<Arc<dyn preview_core::TriggerHost>> {
        let _ = (config, ctx, repo);
        Err(preview_core::Error::config(
            "this host factory cannot read pull-request events",
        ))
    }

    /// The hook runner.
    fn hooks(&self) -> Arc<dyn HookRunner> {
        Arc::new(ProcessHookRunner)
    }
}

/// Everything a command needs from the outside world.
pub struct Context {
    /// Environment variables.
    pub env: Env,
    /// Standard output (results, JSON, workflow commands).
    pub stdout: Stream,
    /// Standard error (progress, errors).
    pub stderr: Stream,
    /// Set when running in GitHub Actions.
    pub actions: Option<Actions>,
    /// Builds the hosts.
    pub factory: Arc<dyn HostFactory>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Reads a token from `NAME`, or from the file named by `NAME_FILE`. Never from a flag.
    ///
    /// # Errors
    /// [`preview_core::Error::Config`] when the file cannot be read.
    pub fn token(&self, name: &str) -> Result<Option<SecretString>> {
        if let Some(v) = (self.env)(name).filter(|v| !v.trim().is_empty()) {
            return Ok(Some(SecretString::from(v.trim().to_string())));
        }
        let file_var = format!("{name}_FILE");
        match (self.env)(&file_var) {
            None => Ok(None),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    preview_core::Error::config(format!("{file_var}: cannot read {path}: {e}"))
                })?;
                let t = text.trim();
                Ok((!t.is_empty()).then(|| SecretString::from(t.to_string())))
            }
        }
    }

    /// Like [`Context::token`], but missing is a configuration error naming both variables.
    ///
    /// # Errors
    /// [`preview_core::Error::Config`] when neither is set.
    pub fn require_token(&self, name: &str, what: &str) -> Result<SecretString> {
        self.token(name)?.ok_or_else(|| {
            preview_core::Error::config(format!(
                "{name} is not set: {what} (or put it in a file and set {name}_FILE)"
            ))
        })
    }
}
