//! Configuration of [`VercelApps`]: builder, environment, validation (no I/O).

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use preview_core::{Error, Result, RetryConfig};

use crate::host::VercelApps;

/// The public Vercel API.
pub const DEFAULT_BASE_URL: &str = "https://api.vercel.com";

/// Builds a [`VercelApps`].
///
/// ```
/// use providers_vercel::VercelApps;
/// let vercel = VercelApps::builder()
///     .token("t0ken")
///     .team_id("team_123")
///     .base_url("http://127.0.0.1:4010")
///     .build()?;
/// assert_eq!(vercel.to_string(), "vercel(team=team_123)");
/// # Ok::<(), preview_core::Error>(())
/// ```
#[derive(Clone)]
pub struct VercelAppsBuilder {
    pub(crate) token: Option<SecretString>,
    pub(crate) team_id: Option<String>,
    pub(crate) base_url: Option<String>,
    /// `None`: no client timeouts at all ([`VercelAppsBuilder::without_timeouts`]).
    pub(crate) timeout: Option<Duration>,
    pub(crate) waits: crate::host::Waits,
    pub(crate) poll_unit: Duration,
    pub(crate) retry: RetryConfig,
}

impl fmt::Debug for VercelAppsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VercelAppsBuilder")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("team_id", &self.team_id)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Default for VercelAppsBuilder {
    fn default() -> Self {
        Self {
            token: None,
            team_id: None,
            base_url: None,
            timeout: Some(Duration::from_secs(30)),
            waits: crate::host::Waits::Tokio,
            poll_unit: Duration::from_secs(1),
            retry: RetryConfig::default(),
        }
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl VercelAppsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `VERCEL_TOKEN`, `VERCEL_TEAM_ID` (or, as the prototype's secrets are named,
    /// `VERCEL_ORG_ID`) and `VERCEL_API_URL` from the process environment. Empty values count as
    /// unset. Call setters afterwards to override.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `get` (for tests and for
    /// callers with their own environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut b = Self::new();
        b.token = non_empty(get("VERCEL_TOKEN")).map(SecretString::from);
        b.team_id = non_empty(get("VERCEL_TEAM_ID")).or_else(|| non_empty(get("VERCEL_ORG_ID")));
        b.base_url = non_empty(get("VERCEL_API_URL"));
        b
    }

    /// The API token (sent as `Authorization: Bearer …`).
    pub fn token(mut self, token: impl Into<SecretString>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The team every request is scoped to (`teamId` query parameter); none for a personal account.
    pub fn team_id(mut self, team_id: impl Into<String>) -> Self {
        self.team_id = Some(team_id.into());
        self
    }

    /// The API base URL (default [`DEFAULT_BASE_URL`]); tests point it at a mock server.
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// Per-request timeout (default 30 s). Deployment waits are bounded by the app's
    /// `deploy_timeout` instead.
    pub fn timeout(mut self, timeout: impl Into<Duration>) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    /// No request or connect timeout, for tests on a paused tokio clock: there, the runtime
    /// advances time to the next timer whenever it waits for the network, so a client timeout
    /// would fire while a local fake is still answering. Never use it against Vercel.
    pub fn without_timeouts(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Waits for deployments on `clock` instead of tokio time (tests: no real sleeping, and the
    /// exact sleeps are recorded).
    #[cfg(feature = "testing")]
    pub fn virtual_clock(mut self, clock: crate::testing::VirtualClock) -> Self {
        self.waits = crate::host::Waits::Virtual(clock);
        self
    }

    /// The unit of the deployment poll schedule (default 1 s: polls 1 s apart for 15 s, then 5 s,
    /// 15 s and 30 s, as `@vercel/client`). A smaller unit scales the whole schedule, for
    /// benchmarks that scale time; must be positive.
    pub fn poll_unit(mut self, unit: impl Into<Duration>) -> Self {
        self.poll_unit = unit.into();
        self
    }

    /// How one request is re-sent after a transient failure (default: [`RetryConfig::default`]).
    /// Reads, deletes, edits and the env upsert are re-sent on 408, 429 and 5xx; creates (a
    /// domain, a deployment, an alias) only when they never reached Vercel or were refused
    /// outright (reliability.md a4), so an ambiguous create goes back to the caller, whose retry
    /// looks it up first. `RetryConfig::none()` sends every request once.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Validates the settings and builds the client. No request is sent.
    ///
    /// # Errors
    /// [`Error::Config`] naming the missing or invalid setting.
    pub fn build(self) -> Result<VercelApps> {
        let token = self.token.ok_or_else(|| {
            Error::config("the Vercel token is not set: set VERCEL_TOKEN (or pass a token)")
        })?;
        let raw = self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let base = Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .ok_or_else(|| {
                Error::config(format!(
                    "VERCEL_API_URL {raw:?} is not a valid http(s) URL (e.g. {DEFAULT_BASE_URL})"
                ))
            })?;
        let bad_team = self.team_id.as_ref().filter(|team| {
            !team
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if let Some(team) = bad_team {
            return Err(Error::config(format!(
                "VERCEL_TEAM_ID {team:?} is invalid: expected a team id such as team_1a2b3c"
            )));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::config("the Vercel request timeout must be positive"));
        }
        if self.poll_unit.is_zero() {
            return Err(Error::config("the Vercel poll unit must be positive"));
        }
        // No timeouts only for paused-clock tests (see `without_timeouts`).
        let http = preview_core::http::client(self.timeout)?;
        let auth = preview_core::http::auth_header("Bearer", &token, "vercel")?;
        VercelApps::new(
            http,
            auth,
            base,
            self.team_id,
            self.waits,
            self.poll_unit,
            self.retry,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn reads_the_environment_and_accepts_the_prototype_names() {
        let b = VercelAppsBuilder::from_lookup(env(&[
            ("VERCEL_TOKEN", "tok"),
            ("VERCEL_ORG_ID", "team_org"),
        ]));
        assert_eq!(b.team_id.as_deref(), Some("team_org"));
        let v = b.build().expect("valid settings");
        assert_eq!(v.to_string(), "vercel(team=team_org)");

        let b = VercelAppsBuilder::from_lookup(env(&[
            ("VERCEL_TOKEN", "tok"),
            ("VERCEL_TEAM_ID", "team_a"),
            ("VERCEL_ORG_ID", "team_b"),
            ("VERCEL_API_URL", "http://127.0.0.1:9"),
        ]));
        assert_eq!(b.team_id.as_deref(), Some("team_a"));
        assert_eq!(b.base_url.as_deref(), Some("http://127.0.0.1:9"));
    }

    #[test]
    fn missing_or_invalid_settings_are_config_errors_naming_them() {
        let err = VercelAppsBuilder::from_lookup(env(&[("VERCEL_TOKEN", "  ")]))
            .build()
            .expect_err("no token");
        assert!(
            err.is_config() && err.to_string().contains("VERCEL_TOKEN"),
            "{err}"
        );
        let err = VercelAppsBuilder::new()
            .token("t")
            .base_url("ftp://x")
            .build()
            .expect_err("bad url");
        assert!(err.to_string().contains("VERCEL_API_URL"), "{err}");
        let err = VercelAppsBuilder::new()
            .token("t")
            .team_id("team&x=1")
            .build()
            .expect_err("bad team");
        assert!(err.to_string().contains("VERCEL_TEAM_ID"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let b = VercelAppsBuilder::new()
            .token("SENTINEL-TOKEN")
            .team_id("team_1");
        let text = format!("{b:?}");
        assert!(!text.contains("SENTINEL"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}
