//! `preview.toml`: the whole description of a team's preview environment.
//!
//! Loading validates everything before any provider is called: unknown keys, wrong types, invalid
//! names, malformed durations and templates that reference undefined (or, in that place, forbidden)
//! values are all [`Error::Config`] naming the file, the line and the key. See
//! `examples/inkeep-agents/preview.toml` for a complete file.
//!
//! One module per section turns its raw TOML (`raw`, serde data only) into its public definition:
//! [`naming`](Naming), [`secrets`](SecretDef), [`database`](DatabaseDef), [`apps`](AppDef),
//! [`hooks`](HookDef), [`seed`](SeedDef), [`report`](ReportDef), [`sweep`](SweepDef),
//! [`triggers`](TriggersDef), [`lifetime`](LifetimeDef) and [`cost`](CostDef); a
//! vocabulary of the values the file defines decides what each template may reference.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::name::{Naming, PrNumber, check_hostname};
use crate::template::Template;

mod apps;
mod cost;
mod database;
mod files;
mod hooks;
mod lifetime;
mod loader;
mod naming;
mod raw;
mod report;
mod secrets;
mod seed;
mod sweep;
mod triggers;
mod vocabulary;

pub use apps::{AppDef, BypassSource, ProjectRef};
pub use cost::CostDef;
pub use database::{ContainerDef, DatabaseDef, ServiceDef};
pub use files::ConfigFiles;
pub use hooks::HookDef;
pub use lifetime::{LifetimeDef, SUSPEND_MAX_MEMORY_MB, SleepMode, WhenFull};
pub use loader::parse_duration;
pub use report::ReportDef;
pub use secrets::SecretDef;
pub use seed::{RequestDef, SeedDef};
pub use sweep::SweepDef;
pub use triggers::{PathFilter, TriggersDef};

use loader::Loader;
use vocabulary::Vocabulary;

/// A templated field with the place it came from, for error messages.
#[derive(Debug, Clone)]
pub struct Field {
    /// The template.
    pub template: Template,
    /// Dotted key, e.g. `apps.api.env.SPICEDB_ENDPOINT`.
    pub key: String,
    /// Line in the file.
    pub line: usize,
}

/// A path the configuration names, with the place it was named, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath {
    /// As written: relative to the configuration file's directory.
    pub path: PathBuf,
    /// Dotted key, e.g. `seed.requests[0].body_file`.
    pub key: String,
    /// Line in the file.
    pub line: usize,
}

/// A validated `preview.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages).
    pub origin: String,
    /// The directory relative paths resolve against.
    pub base_dir: PathBuf,
    /// Naming.
    pub naming: Naming,
    /// Secrets by name.
    pub secrets: BTreeMap<String, SecretDef>,
    /// The database stack.
    pub database: DatabaseDef,
    /// Apps, by name.
    pub apps: Vec<AppDef>,
    /// Hooks, in order.
    pub hooks: Vec<HookDef>,
    /// Seeding.
    pub seed: Option<SeedDef>,
    /// Reporting.
    pub report: ReportDef,
    /// Sweep policy.
    pub sweep: SweepDef,
    /// Which pull requests get a preview, and when.
    pub triggers: TriggersDef,
    /// How long previews live, when they sleep, how many may exist.
    pub lifetime: LifetimeDef,
    /// The cost estimate's prices.
    pub cost: CostDef,
    /// The files the configuration names, once read by [`Config::read_files`]; until then they
    /// are read (with the same rules) when the environment is rendered.
    pub files: Option<ConfigFiles>,
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file (and line and key, when the content is at fault).
    ///
    /// # Examples
    /// ```
    /// use preview_core::Config;
    ///
    /// // A file that is not there is a configuration error naming it (exit code 2 in the CLI).
    /// let err = Config::load("does/not/exist/preview.toml").unwrap_err();
    /// assert!(err.is_config());
    /// assert!(err.to_string().contains("does/not/exist/preview.toml"), "{err}");
    ///
    /// // The repository's own example loads.
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/minimal/preview.toml");
    /// # if std::path::Path::new(path).exists() {
    /// let config = Config::load(path)?;
    /// assert_eq!(config.naming.name(preview_core::PrNumber::new(7)?).as_str(), "pr-7-shop");
    /// # }
    /// # Ok::<(), preview_core::Error>(())
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "cannot read {}: {e} (pass the file with --config)",
                path.display()
            ))
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &path.display().to_string(), &base)
    }

    /// Validates configuration text. `origin` names it in messages; relative paths resolve against
    /// `base_dir`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `origin`, the line and the key.
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    ///
    /// use preview_core::{Config, PrNumber};
    ///
    /// let config = Config::parse(
    ///     r#"
    /// version = 1
    ///
    /// [naming]
    /// prefix = "pr"
    /// suffix = "shop"
    ///
    /// [secrets.db_password]
    /// kind = "password"
    ///
    /// [database]
    /// provider = "fly"
    /// org = "acme"
    /// region = "iad"
    /// public_host = "${env.name}.fly.dev"
    /// size = { cpu_kind = "shared", cpus = 1, memory_mb = 512 }
    ///
    /// [[database.containers]]
    /// name = "postgres"
    /// image = "postgres:17"
    ///
    /// [database.containers.env]
    /// POSTGRES_PASSWORD = "${secrets.db_password}"
    ///
    /// [database.services.db]
    /// internal_port = 5432
    /// port = 5432
    /// protocol = "postgres"
    /// tls = "pg_tls"
    /// user = "app"
    /// password = "${secrets.db_password}"
    /// database = "app"
    ///
    /// [apps.web]
    /// provider = "vercel"
    /// project = "prj_web"
    /// domain = "pr-${pr.number}.preview.example.com"
    ///
    /// [apps.web.env]
    /// DATABASE_URL = "${services.db.url}"
    /// "#,
    ///     "preview.toml",
    ///     Path::new("."),
    /// )?;
    /// assert_eq!(config.name(PrNumber::new(42)?).as_str(), "pr-42-shop");
    /// assert_eq!(config.database.region, "iad");
    /// assert!(config.app("web").is_some());
    ///
    /// // Bad input names the file, the line and the key.
    /// let err = Config::parse("version = 1\nnaming = 3\n", "preview.toml", Path::new(".")).unwrap_err();
    /// assert!(err.to_string().starts_with("preview.toml:2:"), "{err}");
    /// assert!(err.is_config());
    /// # Ok::<(), preview_core::Error>(())
    /// ```
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Self> {
        let l = Loader { origin, text };
        let raw = l.read()?;
        let naming = naming::naming(&l, &raw.naming)?;
        let secrets = secrets::secrets(&l, &raw.secrets)?;
        // Every section's templates are checked against the values the file defines.
        let services = database::service_names(&l, &raw.database)?;
        let app_names: Vec<&str> = raw.apps.keys().map(String::as_str).collect();
        let vocab = Vocabulary::new(&secrets, &services, &app_names);
        let config = Config {
            origin: origin.to_string(),
            base_dir: base_dir.to_path_buf(),
            naming,
            database: database::database(&l, &raw.database, &vocab)?,
            apps: apps::apps(&l, &raw.apps, &vocab)?,
            hooks: hooks::hooks(&l, &raw.hooks, &vocab)?,
            seed: seed::seed(&l, raw.seed.as_ref(), &vocab)?,
            report: report::report(&l, &raw.report, &vocab)?,
            sweep: sweep::sweep(&l, &raw.sweep)?,
            triggers: triggers::triggers(&l, &raw.triggers)?,
            lifetime: lifetime::lifetime(
                &l,
                &raw.lifetime,
                raw.database.size.memory_mb.get_ref().to_owned(),
            )?,
            cost: cost::cost(&l, &raw.cost)?,
            secrets,
            files: None,
        };
        config.check_rendered_names()?;
        Ok(config)
    }

    /// Renders name-like fields for the largest PR number, so a domain that can never be valid is a
    /// load-time error rather than a deploy-time one.
    fn check_rendered_names(&self) -> Result<()> {
        let name = self.naming.name(PrNumber::new(u64::from(PrNumber::MAX))?);
        let scope = crate::template::identity_scope(&name, Some("owner/repo"));
        let mut fields: Vec<&Field> = self.apps.iter().filter_map(|a| a.domain.as_ref()).collect();
        fields.push(&self.database.public_host);
        for f in fields {
            let v = f
                .template
                .render(&scope)
                .map_err(|m| self.field_err(f, m))?;
            check_hostname(v.expose()).map_err(|why| {
                self.field_err(f, format!("renders to {:?}, which {why}", v.expose()))
            })?;
        }
        Ok(())
    }

    /// A configuration error at a field.
    pub fn field_err(&self, f: &Field, message: impl std::fmt::Display) -> Error {
        Error::config(format!("{}:{}: {}: {message}", self.origin, f.line, f.key))
    }

    /// The environment name of a PR.
    pub fn name(&self, pr: PrNumber) -> crate::name::PreviewName {
        self.naming.name(pr)
    }

    /// The app definition by name.
    pub fn app(&self, name: &str) -> Option<&AppDef> {
        self.apps.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        for bad in ["", "5", "s", "5 m", "-1s", "1d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
