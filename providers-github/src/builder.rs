//! Configuration of [`GitHubSource`]: builder and environment (no I/O).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use preview_core::http::{Client, ClientOptions, ClientSettings, auth_header};
use preview_core::{Error, Result};
use secrecy::SecretString;

use crate::core::{API, Core, GitHubPacing};
use crate::host::GitHubSource;

/// Default API base URL (GitHub Enterprise Server uses `https://HOST/api/v3`).
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Default deployment environment name template: `{pr}` is the PR number, `{name}` the
/// environment name (e.g. `pr-42-agents`).
pub const DEFAULT_ENVIRONMENT_TEMPLATE: &str = "preview/pr-{pr}";

/// Builds a [`GitHubSource`]. Base URL, timeouts and retry are the shared [`ClientOptions`]
/// ([`ClientSettings`]); the rest is GitHub's own.
///
/// ```
/// use providers_github::GitHubSource;
/// let github = GitHubSource::builder()
///     .token("ghp_example")
///     .repository("acme/app")
///     .build()?;
/// assert_eq!(github.to_string(), "github(repo=acme/app)");
/// # Ok::<(), preview_core::Error>(())
/// ```
#[derive(Clone)]
pub struct GitHubSourceBuilder {
    token: Option<SecretString>,
    repository: Option<String>,
    identity: Option<String>,
    environment_template: String,
    commands: Vec<String>,
    http: ClientOptions,
    write_spacing: Duration,
    max_concurrent_reads: usize,
    list_page_size: usize,
}

impl fmt::Debug for GitHubSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubSourceBuilder")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("repository", &self.repository)
            .field("identity", &self.identity)
            .field("environment_template", &self.environment_template)
            .field("http", &self.http)
            .field("write_spacing", &self.write_spacing)
            .field("max_concurrent_reads", &self.max_concurrent_reads)
            .field("list_page_size", &self.list_page_size)
            .finish_non_exhaustive()
    }
}

impl Default for GitHubSourceBuilder {
    fn default() -> Self {
        Self {
            token: None,
            repository: None,
            identity: None,
            environment_template: DEFAULT_ENVIRONMENT_TEMPLATE.to_string(),
            commands: Vec::new(),
            http: ClientOptions::new(),
            write_spacing: Duration::from_secs(1),
            max_concurrent_reads: 10,
            list_page_size: 100,
        }
    }
}

impl GitHubSource {
    /// A builder.
    pub fn builder() -> GitHubSourceBuilder {
        GitHubSourceBuilder::new()
    }

    /// A builder from `GITHUB_TOKEN`, `GITHUB_REPOSITORY` and `GITHUB_API_URL`.
    pub fn from_env() -> GitHubSourceBuilder {
        GitHubSourceBuilder::from_env()
    }
}

/// Base URL (default [`DEFAULT_API_URL`]; GitHub Enterprise: `https://HOST/api/v3`), per-request
/// timeout (default 30 s) and retry. Reads, comment edits and deletes are re-sent on 408, 429, 5xx
/// and rate limits; creates only when they never reached GitHub or were refused outright
/// (reliability.md a4), so an ambiguous failure of a create goes back to the caller, whose retry
/// looks the comment or deployment up first. `RetryConfig::none()` sends every request once.
impl ClientSettings for GitHubSourceBuilder {
    fn client_options_mut(&mut self) -> &mut ClientOptions {
        &mut self.http
    }
}

impl GitHubSourceBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder from `GITHUB_TOKEN`, `GITHUB_REPOSITORY` (`owner/name`) and `GITHUB_API_URL`
    /// (optional, default [`DEFAULT_API_URL`]), as GitHub Actions sets them.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests and
    /// embedding).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let b = Self {
            token: non_empty("GITHUB_TOKEN").map(SecretString::from),
            repository: non_empty("GITHUB_REPOSITORY"),
            ..Self::default()
        };
        match non_empty("GITHUB_API_URL") {
            Some(url) => b.base_url(url),
            None => b,
        }
    }

    /// The token (a PAT, an App token or the Actions `GITHUB_TOKEN`).
    pub fn token(mut self, token: impl Into<SecretString>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The repository, `owner/name`.
    pub fn repository(mut self, repository: impl Into<String>) -> Self {
        self.repository = Some(repository.into());
        self
    }

    /// The login our comments are authored by. Without it, `GET /user` is asked once, and when
    /// that is forbidden (the Actions token) [`ACTIONS_BOT`](crate::ACTIONS_BOT) is assumed.
    pub fn identity(mut self, login: impl Into<String>) -> Self {
        self.identity = Some(login.into());
        self
    }

    /// The deployment environment name template (`{pr}`, `{name}`); default
    /// [`DEFAULT_ENVIRONMENT_TEMPLATE`].
    pub fn environment_template(mut self, template: impl Into<String>) -> Self {
        self.environment_template = template.into();
        self
    }

    /// The `/preview` commands the sticky comment lists, one help line each (Markdown of your
    /// own, e.g. from `preview_core::command::help_lines`). Default: none, no list.
    pub fn commands(mut self, help: Vec<String>) -> Self {
        self.commands = help;
        self
    }

    /// Minimum time between two mutating requests (default 1 s, GitHub's guidance).
    pub fn write_spacing(mut self, spacing: impl Into<Duration>) -> Self {
        self.write_spacing = spacing.into();
        self
    }

    /// Most reads in flight at once from this client (default 10; at least 1): GitHub's secondary
    /// limits punish bursts of concurrent requests, so fan-outs (sweep) queue here.
    pub fn max_concurrent_reads(mut self, n: usize) -> Self {
        self.max_concurrent_reads = n.max(1);
        self
    }

    /// How many open pull requests one page of their listing asks for (1-100, default 100:
    /// GitHub's most, so the fewest requests). Each page is validated with its own ETag.
    pub fn list_page_size(mut self, n: usize) -> Self {
        self.list_page_size = n.clamp(1, 100);
        self
    }

    /// Validates the settings and builds the client. No I/O.
    ///
    /// # Errors
    /// [`Error::Config`] naming the missing or invalid setting.
    pub fn build(self) -> Result<GitHubSource> {
        let token = self.token.ok_or_else(|| {
            Error::config("GitHub token missing: set GITHUB_TOKEN or pass a token to the builder")
        })?;
        let repository = self.repository.ok_or_else(|| {
            Error::config("GitHub repository missing: set GITHUB_REPOSITORY to owner/name")
        })?;
        let (owner, repo) = parse_repository(&repository)?;
        // A rejected value is shown without credentials or query.
        let base = self
            .http
            .checked_base_url(DEFAULT_API_URL, "GITHUB_API_URL")?;
        check_template(&self.environment_template)?;
        if let Some(id) = &self.identity {
            if id.trim().is_empty() {
                return Err(Error::config("GitHub identity must not be empty"));
            }
        }
        let pacing = GitHubPacing::new(self.max_concurrent_reads, self.write_spacing);
        let client = Client::new(
            API,
            &self.http,
            Some(auth_header("Bearer", &token, crate::errors::PROVIDER)?),
        )?
        .pacing(Arc::new(pacing));
        Ok(GitHubSource::new(
            Core::new(client, base, owner, repo, self.list_page_size),
            self.identity,
            self.environment_template,
        )
        .with_commands(self.commands))
    }
}

fn parse_repository(s: &str) -> Result<(String, String)> {
    let valid = |part: &str| {
        !part.is_empty()
            && part.len() <= 100
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && part != "."
            && part != ".."
    };
    match s.trim().split_once('/') {
        Some((owner, repo)) if valid(owner) && valid(repo) => {
            Ok((owner.to_string(), repo.to_string()))
        }
        _ => Err(Error::config(format!(
            "GitHub repository {s:?} is invalid: expected owner/name (letters, digits, '-', '_', '.')"
        ))),
    }
}

fn check_template(t: &str) -> Result<()> {
    if !(t.contains("{pr}") || t.contains("{name}")) {
        return Err(Error::config(format!(
            "deployment environment template {t:?} must contain {{pr}} or {{name}} so each PR gets its own environment"
        )));
    }
    let rest = t.replace("{pr}", "").replace("{name}", "");
    if rest.contains(['{', '}']) {
        return Err(Error::config(format!(
            "deployment environment template {t:?} has an unknown placeholder: only {{pr}} and {{name}} exist"
        )));
    }
    if t.len() > 200 || t.chars().any(|c| c.is_control()) {
        return Err(Error::config(format!(
            "deployment environment template {t:?} must be at most 200 printable characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lookup_reads_the_actions_variables() {
        let gh = GitHubSourceBuilder::from_lookup(|k| match k {
            "GITHUB_TOKEN" => Some("SENTINEL-TOKEN".into()),
            "GITHUB_REPOSITORY" => Some("acme/app".into()),
            "GITHUB_API_URL" => Some("https://ghe.example.com/api/v3".into()),
            _ => None,
        })
        .build()
        .unwrap();
        assert_eq!(gh.to_string(), "github(repo=acme/app)");
        let dbg = format!("{gh:?}");
        assert!(dbg.contains("ghe.example.com/api/v3"), "{dbg}");
        assert!(!dbg.contains("SENTINEL"), "{dbg}");
    }

    #[test]
    fn missing_or_invalid_settings_are_named() {
        let err = GitHubSourceBuilder::from_lookup(|_| None)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("GITHUB_TOKEN"), "{err}");
        let err = GitHubSourceBuilder::new().token("t").build().unwrap_err();
        assert!(err.to_string().contains("GITHUB_REPOSITORY"), "{err}");
        for bad in ["acme", "acme/", "/app", "a/b/c", "ac me/app", "../x"] {
            let err = GitHubSourceBuilder::new()
                .token("t")
                .repository(bad)
                .build()
                .unwrap_err();
            assert!(err.is_config(), "{bad}");
        }
        for bad in ["ftp://x", "https://u:p@x.com", "nope", "https://x.com/?a=1"] {
            let err = GitHubSourceBuilder::new()
                .token("t")
                .repository("a/b")
                .base_url(bad)
                .build()
                .unwrap_err();
            assert!(err.is_config(), "{bad}");
            assert!(!err.to_string().contains("u:p"), "{err}");
        }
        for bad in ["preview", "preview/{branch}", "x{pr"] {
            let err = GitHubSourceBuilder::new()
                .token("t")
                .repository("a/b")
                .environment_template(bad)
                .build()
                .unwrap_err();
            assert!(err.is_config(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let b = GitHubSourceBuilder::new().token("SENTINEL-TOKEN");
        assert!(!format!("{b:?}").contains("SENTINEL"));
    }
}
