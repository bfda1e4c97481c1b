//! Reading environment variables, injectably: the pipeline, the configuration and the repository
//! lookup read variables (imported secrets, project ids, the repository root) through these, so
//! tests and library users can hand in their own.

use std::sync::Arc;

/// Looks up an environment variable, borrowed for one call (injectable for tests).
pub type EnvLookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// Looks up an environment variable, owned and shareable (what [`Preview::env`] keeps).
///
/// [`Preview::env`]: crate::Preview::env
pub type EnvSource = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}
