//! Configuring a [`FlyDatabases`]: by builder, or from the environment.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use preview_core::http::{Client, ClientOptions, ClientSettings, auth_header};
use preview_core::{Error, Naming, Result};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use crate::FlyDatabases;
use crate::core::{API, Core};

/// Where the Machines API lives unless told otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.machines.dev";

/// Builds a [`FlyDatabases`]. Every setting has a setter; `build` validates and does no I/O.
/// Base URL, timeouts and retry are the shared [`ClientOptions`] ([`ClientSettings`]); the rest
/// is Fly's own.
///
/// ```
/// use providers_fly::FlyDatabases;
/// use preview_core::Naming;
/// let fly = FlyDatabases::builder()
///     .token("fo1_example")
///     .org("acme")
///     .naming(Naming::new("pr", "agents")?)
///     .build()?;
/// assert_eq!(fly.to_string(), "fly(org=acme)");
/// # Ok::<(), preview_core::Error>(())
/// ```
#[derive(Clone)]
pub struct FlyDatabasesBuilder {
    token: Option<SecretString>,
    org: Option<String>,
    naming: Option<Naming>,
    http: ClientOptions,
    flyctl: PathBuf,
    wait_call: Duration,
    delete_timeout: Duration,
    tunnel_timeout: Duration,
    poll_interval: Duration,
    action_interval: Duration,
    lease_ttl: Duration,
}

impl fmt::Debug for FlyDatabasesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlyDatabasesBuilder")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("org", &self.org)
            .field("naming", &self.naming)
            .field("http", &self.http)
            .field("flyctl", &self.flyctl)
            .finish_non_exhaustive()
    }
}

impl Default for FlyDatabasesBuilder {
    fn default() -> Self {
        Self {
            token: None,
            org: None,
            naming: None,
            http: ClientOptions::new(),
            flyctl: PathBuf::from("flyctl"),
            wait_call: Duration::from_secs(60),
            delete_timeout: Duration::from_secs(300),
            tunnel_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_secs(2),
            action_interval: Duration::from_secs(1),
            lease_ttl: crate::DEFAULT_LEASE_TTL,
        }
    }
}

impl FlyDatabases {
    /// A builder with defaults.
    pub fn builder() -> FlyDatabasesBuilder {
        FlyDatabasesBuilder::new()
    }

    /// A builder seeded from `FLY_API_TOKEN`, `FLY_ORG`, `FLY_API_URL` and `FLYCTL`.
    pub fn from_env() -> FlyDatabasesBuilder {
        FlyDatabasesBuilder::from_env()
    }
}

/// Base URL (default [`DEFAULT_BASE_URL`]), per-request timeout (default 30 s; the `/wait`
/// long-poll gets its own, longer one) and retry: how one request is re-sent after a transient
/// failure, and how [`FlyDatabases`] retries each unit of an apply (default
/// `RetryConfig::default()`; `RetryConfig::none()` sends every request once and leaves retries to
/// the caller).
impl ClientSettings for FlyDatabasesBuilder {
    fn client_options_mut(&mut self) -> &mut ClientOptions {
        &mut self.http
    }
}

impl FlyDatabasesBuilder {
    /// A builder with defaults and nothing from the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder seeded from the environment: `FLY_API_TOKEN`, `FLY_ORG`, `FLY_API_URL` (default
    /// `https://api.machines.dev`) and `FLYCTL` (default `flyctl` on `PATH`). Unset or empty
    /// variables leave the setting as it was.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut b = Self::default();
        if let Some(t) = var("FLY_API_TOKEN") {
            b.token = Some(SecretString::from(t));
        }
        if let Some(o) = var("FLY_ORG") {
            b.org = Some(o);
        }
        if let Some(u) = var("FLY_API_URL") {
            b = b.base_url(u);
        }
        if let Some(p) = var("FLYCTL") {
            b.flyctl = PathBuf::from(p);
        }
        b
    }

    /// The API token (`fly tokens create …`). Macaroon tokens (`fm1r_…`, `fm2_…`, or with their
    /// `FlyV1 ` prefix) are sent with the `FlyV1` scheme, others as `Bearer`.
    pub fn token(mut self, token: impl Into<SecretString>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The organisation slug apps are created and listed in.
    pub fn org(mut self, org: impl Into<String>) -> Self {
        self.org = Some(org.into());
        self
    }

    /// How environment names look: `list_databases` recognises our apps by it.
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = Some(naming);
        self
    }

    /// The `flyctl` executable used for tunnels.
    pub fn flyctl_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.flyctl = path.into();
        self
    }

    /// How long one `/wait` long-poll may be held by the server (clamped to 1–60 s).
    pub fn wait_call(mut self, d: impl Into<Duration>) -> Self {
        self.wait_call = d.into();
        self
    }

    /// How long a delete waits for the app to be gone.
    pub fn delete_timeout(mut self, d: impl Into<Duration>) -> Self {
        self.delete_timeout = d.into();
        self
    }

    /// How long opening tunnels waits for every service to answer through them.
    pub fn tunnel_timeout(mut self, d: impl Into<Duration>) -> Self {
        self.tunnel_timeout = d.into();
        self
    }

    /// Pause between polls (health checks, deletion, tunnel probes).
    pub fn poll_interval(mut self, d: impl Into<Duration>) -> Self {
        self.poll_interval = d.into();
        self
    }

    /// Fly's per-action rate limit: one request per `d` for each identifier (an app, a Machine,
    /// the organisation) after a burst of 3 (default 1 s, Fly's documented rate). Paged
    /// listings of the organisation's Machines keep to it.
    pub fn action_interval(mut self, d: impl Into<Duration>) -> Self {
        self.action_interval = d.into();
        self
    }

    /// How long a Machine lease lives unless refreshed (default [`DEFAULT_LEASE_TTL`], at least
    /// 1 s): the longest a run killed while holding one blocks the next. Extended between the
    /// steps of an update once half of it has passed.
    ///
    /// [`DEFAULT_LEASE_TTL`]: crate::DEFAULT_LEASE_TTL
    pub fn lease_ttl(mut self, d: impl Into<Duration>) -> Self {
        self.lease_ttl = d.into();
        self
    }

    /// Validates the settings and builds the host. No I/O.
    ///
    /// # Errors
    /// [`Error::Config`] naming the missing or invalid setting (the token is never echoed).
    pub fn build(self) -> Result<FlyDatabases> {
        let token = self.token.ok_or_else(|| {
            Error::config(
                "fly: no API token: set FLY_API_TOKEN (create one with `fly tokens create org`)",
            )
        })?;
        let org = self
            .org
            .filter(|o| !o.trim().is_empty())
            .ok_or_else(|| Error::config("fly: no organisation: set FLY_ORG or fly.org"))?;
        let naming = self
            .naming
            .ok_or_else(|| Error::config("fly: no naming given to the Fly host"))?;
        let base = self
            .http
            .checked_base_url(DEFAULT_BASE_URL, "FLY_API_URL")?
            .to_string();
        let (auth, bare) = auth(&token)?;
        let client = Client::new(API, &self.http, Some(auth))?;
        Ok(FlyDatabases {
            core: Core::new(client, base),
            token: bare,
            org,
            naming,
            flyctl: self.flyctl,
            wait_call: self
                .wait_call
                .clamp(Duration::from_secs(1), Duration::from_secs(60)),
            delete_timeout: self.delete_timeout,
            tunnel_timeout: self.tunnel_timeout,
            poll_interval: self.poll_interval,
            action_interval: self.action_interval,
            lease_ttl: self.lease_ttl.max(Duration::from_secs(1)),
        })
    }
}

/// The `Authorization` header for a token (marked sensitive), and the bare token (for flyctl).
/// Macaroons (`fm1r_…`, `fm2_…`, `fm1a_…`, or with their `FlyV1 ` prefix) use the `FlyV1`
/// scheme, others `Bearer`.
///
/// # Errors
/// [`Error::Config`] for an empty token, or one a header cannot carry (never echoed).
fn auth(token: &SecretString) -> Result<(HeaderValue, SecretString)> {
    let (scheme, bare) = {
        let t = token.expose_secret().trim();
        if let Some(rest) = t.strip_prefix("FlyV1 ") {
            ("FlyV1", SecretString::from(rest.trim().to_string()))
        } else if t.starts_with("fm1r_") || t.starts_with("fm2_") || t.starts_with("fm1a_") {
            ("FlyV1", SecretString::from(t.to_string()))
        } else if let Some(rest) = t.strip_prefix("Bearer ") {
            ("Bearer", SecretString::from(rest.trim().to_string()))
        } else {
            ("Bearer", SecretString::from(t.to_string()))
        }
    };
    if bare.expose_secret().is_empty() {
        return Err(Error::config("fly: the API token is empty"));
    }
    Ok((auth_header(scheme, &bare, "fly")?, bare))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming() -> Naming {
        Naming::new("pr", "agents").unwrap()
    }

    #[test]
    fn missing_settings_are_config_errors_naming_them() {
        let e = FlyDatabasesBuilder::new()
            .org("a")
            .naming(naming())
            .build()
            .unwrap_err();
        assert!(
            e.is_config() && e.to_string().contains("FLY_API_TOKEN"),
            "{e}"
        );
        let e = FlyDatabasesBuilder::new()
            .token("t")
            .naming(naming())
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("FLY_ORG"), "{e}");
        let e = FlyDatabasesBuilder::new()
            .token("t")
            .org("a")
            .naming(naming())
            .base_url("ftp://x")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("FLY_API_URL"), "{e}");
    }

    #[test]
    fn macaroons_use_the_flyv1_scheme() {
        for (token, scheme) in [
            ("fm2_abc", "FlyV1 fm2_abc"),
            ("FlyV1 fm2_abc,fm2_def", "FlyV1 fm2_abc,fm2_def"),
            ("plain", "Bearer plain"),
        ] {
            FlyDatabasesBuilder::new()
                .token(token)
                .org("a")
                .naming(naming())
                .build()
                .unwrap();
            let (header, _) = auth(&SecretString::from(token)).unwrap();
            assert!(header.is_sensitive());
            assert_eq!(header.to_str().unwrap(), scheme);
        }
    }
}
