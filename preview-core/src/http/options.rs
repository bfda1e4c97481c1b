//! [`ClientOptions`]: the settings every provider's HTTP client has, written once and embedded in
//! each provider builder (as object_store's builders embed its `ClientOptions`).

use std::time::Duration;

use url::Url;

use crate::error::{Error, Result};
use crate::retry::RetryConfig;

/// The per-request timeout unless told otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Base URL, timeouts and retry policy of a provider's client.
///
/// Provider builders embed one and take these settings through [`ClientSettings`]; they add only
/// their own (token, organisation, repository…).
///
/// ```
/// use std::time::Duration;
/// use preview_core::RetryConfig;
/// use preview_core::http::ClientOptions;
/// let options = ClientOptions::new()
///     .base_url("http://127.0.0.1:4010")
///     .timeout(Duration::from_secs(10))
///     .retry(RetryConfig::none());
/// assert_eq!(options.get_base_url(), Some("http://127.0.0.1:4010"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    base_url: Option<String>,
    /// `None`: no client timeouts at all ([`ClientOptions::without_timeouts`]).
    timeout: Option<Duration>,
    retry: RetryConfig,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            base_url: None,
            timeout: Some(DEFAULT_TIMEOUT),
            retry: RetryConfig::default(),
        }
    }
}

impl ClientOptions {
    /// The defaults: the provider's public API, a 30 s request timeout (10 s to connect), and
    /// [`RetryConfig::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The API base URL (default: the provider's public API); tests point it at a local fake.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Per-request timeout (default 30 s; connecting may take at most 10 s of it). Long polls set
    /// their own per request.
    #[must_use]
    pub fn timeout(mut self, timeout: impl Into<Duration>) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    /// No request or connect timeout, for tests on a paused tokio clock: there the runtime
    /// advances time to the next timer whenever it waits for the network, so a client timeout
    /// would fire while a local fake is still answering. Never use it against a real API.
    #[must_use]
    pub fn without_timeouts(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// How one request is re-sent after a transient failure (default [`RetryConfig::default`]);
    /// [`RetryConfig::none`] sends every request once. Which requests may be re-sent at all is
    /// each request's idempotency ([`Request::idempotent`](super::Request::idempotent)).
    #[must_use]
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The base URL, if one was set.
    pub fn get_base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }

    /// The per-request timeout; `None` after [`ClientOptions::without_timeouts`].
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The retry policy.
    pub fn get_retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// The base URL (or `default`), checked: a plain `http(s)` URL that can carry a path, without
    /// credentials, query or fragment. `variable` names the setting in the error
    /// (`FLY_API_URL`); a rejected value is shown without its credentials and query.
    ///
    /// # Errors
    /// [`Error::Config`] naming `variable` and what would be valid.
    pub fn checked_base_url(&self, default: &str, variable: &str) -> Result<Url> {
        let raw = self.base_url.as_deref().unwrap_or(default).trim();
        let url = Url::parse(raw).map_err(|e| {
            Error::config(format!(
                "{variable} is not a URL ({e}); expected an http(s) URL such as {default}"
            ))
        })?;
        let plain = matches!(url.scheme(), "http" | "https")
            && !url.cannot_be_a_base()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        if !plain {
            let mut shown = url.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            shown.set_query(None);
            shown.set_fragment(None);
            return Err(Error::config(format!(
                "{variable} {:?} is not a plain http(s) URL (no credentials, query or fragment), e.g. {default}",
                shown.as_str()
            )));
        }
        Ok(url)
    }

    /// Checks the settings a client is built from.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout.
    pub(crate) fn check(&self, provider: &str) -> Result<()> {
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::config(format!(
                "{provider}: the request timeout must be positive"
            )));
        }
        Ok(())
    }
}

/// The [`ClientOptions`] setters on every provider builder, written once: a builder implements
/// [`client_options_mut`](ClientSettings::client_options_mut) and gets the rest.
///
/// ```
/// use preview_core::http::{ClientOptions, ClientSettings};
///
/// #[derive(Default)]
/// struct MyBuilder {
///     http: ClientOptions,
/// }
///
/// impl ClientSettings for MyBuilder {
///     fn client_options_mut(&mut self) -> &mut ClientOptions {
///         &mut self.http
///     }
/// }
///
/// let b = MyBuilder::default().base_url("http://127.0.0.1:1").without_timeouts();
/// assert_eq!(b.http.get_timeout(), None);
/// ```
pub trait ClientSettings: Sized {
    /// The embedded options.
    fn client_options_mut(&mut self) -> &mut ClientOptions;

    /// Replaces all client options at once.
    #[must_use]
    fn client_options(mut self, options: ClientOptions) -> Self {
        *self.client_options_mut() = options;
        self
    }

    /// See [`ClientOptions::base_url`].
    #[must_use]
    fn base_url(mut self, url: impl Into<String>) -> Self {
        let o = self.client_options_mut();
        *o = std::mem::take(o).base_url(url);
        self
    }

    /// See [`ClientOptions::timeout`].
    #[must_use]
    fn timeout(mut self, timeout: impl Into<Duration>) -> Self {
        let o = self.client_options_mut();
        *o = std::mem::take(o).timeout(timeout);
        self
    }

    /// See [`ClientOptions::without_timeouts`].
    #[must_use]
    fn without_timeouts(mut self) -> Self {
        let o = self.client_options_mut();
        *o = std::mem::take(o).without_timeouts();
        self
    }

    /// See [`ClientOptions::retry`].
    #[must_use]
    fn retry(mut self, retry: RetryConfig) -> Self {
        let o = self.client_options_mut();
        *o = std::mem::take(o).retry(retry);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_plain_http_urls_and_never_echo_credentials() {
        let ok = ClientOptions::new().base_url(" http://127.0.0.1:9/api/ ");
        assert_eq!(
            ok.checked_base_url("https://api.example.com", "X_URL")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/api/"
        );
        let default = ClientOptions::new()
            .checked_base_url("https://api.example.com", "X_URL")
            .unwrap();
        assert_eq!(default.as_str(), "https://api.example.com/");
        for bad in [
            "ftp://x",
            "not a url",
            "mailto:a@b",
            "https://user:SENTINEL@h/",
            "https://h/?token=SENTINEL",
            "https://h/#SENTINEL",
        ] {
            let err = ClientOptions::new()
                .base_url(bad)
                .checked_base_url("https://api.example.com", "X_URL")
                .unwrap_err();
            let text = err.to_string();
            assert!(err.is_config() && text.contains("X_URL"), "{bad}: {text}");
            assert!(!text.contains("SENTINEL"), "{bad}: {text}");
        }
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let err = ClientOptions::new()
            .timeout(Duration::ZERO)
            .check("fly")
            .unwrap_err();
        assert_eq!(err.to_string(), "fly: the request timeout must be positive");
        ClientOptions::new()
            .without_timeouts()
            .check("fly")
            .unwrap();
    }
}
