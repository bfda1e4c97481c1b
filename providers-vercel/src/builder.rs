//! Configuration of [`VercelApps`]: builder, environment, validation (no I/O).

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

use preview_core::http::{Client, ClientOptions, ClientSettings, auth_header};
use preview_core::{Error, Result};

use crate::core::Core;
use crate::host::VercelApps;

/// The public Vercel API.
pub const DEFAULT_BASE_URL: &str = "https://api.vercel.com";

/// Builds a [`VercelApps`]. Base URL, timeouts and retry are the shared
/// [`ClientOptions`] ([`ClientSettings`]); the rest is Vercel's own.
///
/// ```
/// use preview_core::http::ClientSettings;
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
    token: Option<SecretString>,
    team_id: Option<String>,
    http: ClientOptions,
    poll_unit: Duration,
}

impl fmt::Debug for VercelAppsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VercelAppsBuilder")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("team_id", &self.team_id)
            .field("http", &self.http)
            .field("poll_unit", &self.poll_unit)
            .finish_non_exhaustive()
    }
}

impl Default for VercelAppsBuilder {
    fn default() -> Self {
        Self {
            token: None,
            team_id: None,
            http: ClientOptions::new(),
            poll_unit: Duration::from_secs(1),
        }
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl VercelApps {
    /// A builder.
    pub fn builder() -> VercelAppsBuilder {
        VercelAppsBuilder::new()
    }

    /// A builder from `VERCEL_TOKEN`, `VERCEL_TEAM_ID`/`VERCEL_ORG_ID` and `VERCEL_API_URL`.
    pub fn from_env() -> VercelAppsBuilder {
        VercelAppsBuilder::from_env()
    }
}

/// Base URL (default [`DEFAULT_BASE_URL`]), per-request timeout (default 30 s; deployment waits
/// are bounded by the app's `deploy_timeout` instead) and retry. Reads, deletes, edits and the env
/// upsert are re-sent on 408, 429 and 5xx; creates (a domain, a deployment, an alias) only when
/// they never reached Vercel or were refused outright (reliability.md a4), so an ambiguous create
/// goes back to the caller, whose retry looks it up first.
impl ClientSettings for VercelAppsBuilder {
    fn client_options_mut(&mut self) -> &mut ClientOptions {
        &mut self.http
    }
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
        if let Some(url) = non_empty(get("VERCEL_API_URL")) {
            b = b.base_url(url);
        }
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

    /// The unit of the deployment poll schedule (default 1 s: polls 1 s apart for 15 s, then 5 s,
    /// 15 s and 30 s, as `@vercel/client`). A smaller unit scales the whole schedule, for
    /// benchmarks that scale time; must be positive.
    pub fn poll_unit(mut self, unit: impl Into<Duration>) -> Self {
        self.poll_unit = unit.into();
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
        let base = self
            .http
            .checked_base_url(DEFAULT_BASE_URL, "VERCEL_API_URL")?;
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
        if self.poll_unit.is_zero() {
            return Err(Error::config("the Vercel poll unit must be positive"));
        }
        let auth = auth_header("Bearer", &token, "vercel")?;
        let client = Client::new(crate::errors::API, &self.http, Some(auth))?;
        VercelApps::new(Core::new(client, base, self.team_id, self.poll_unit))
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
        assert_eq!(b.http.get_base_url(), Some("http://127.0.0.1:9"));
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
