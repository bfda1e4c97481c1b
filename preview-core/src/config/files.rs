//! The files a configuration names (seed bodies, hook directories), read once and confined to the
//! repository (see [`crate::repository`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Config, ConfigPath};
use crate::env::EnvLookup;
use crate::error::{Error, Result};
use crate::repository::Repository;

/// What the files a configuration names hold, read once by [`Config::read_files`] before anything
/// is sent anywhere; rendering uses these bytes, never a second read.
#[derive(Clone)]
pub struct ConfigFiles {
    /// The repository the files were confined to.
    pub repository: Repository,
    /// The body of each seed request, by index (`None` without a `body_file`).
    pub bodies: Vec<Option<Arc<Vec<u8>>>>,
    /// The working directory of each hook, by index (canonical).
    pub workdirs: Vec<PathBuf>,
}

impl std::fmt::Debug for ConfigFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<Option<usize>> = self
            .bodies
            .iter()
            .map(|b| b.as_ref().map(|b| b.len()))
            .collect();
        f.debug_struct("ConfigFiles")
            .field("repository", &self.repository)
            .field("body_sizes", &sizes)
            .field("workdirs", &self.workdirs)
            .finish()
    }
}

impl Config {
    /// The repository this configuration belongs to (see [`crate::repository`] for how it is
    /// found).
    ///
    /// # Errors
    /// [`Error::Config`] when the directory found cannot be used.
    pub fn repository(&self, env: EnvLookup<'_>) -> Result<Repository> {
        Repository::discover(&self.base_dir, env)
    }

    /// Reads every file the configuration names, confined to `repository` (see
    /// [`crate::repository`]): each seed request's `body_file` and each hook's `workdir`. Call it
    /// before anything is sent anywhere; rendering then uses these bytes and never reads again.
    ///
    /// # Errors
    /// [`Error::Config`] as `FILE:LINE: KEY: why`, for the first file that is refused.
    pub fn read_files(&mut self, repository: Repository) -> Result<()> {
        self.files = Some(self.load_files(repository)?);
        Ok(())
    }

    /// The files, as [`Config::read_files`] reads them, without keeping them.
    pub(crate) fn load_files(&self, repository: Repository) -> Result<ConfigFiles> {
        let path_err = |p: &ConfigPath, why: String| {
            Error::config(format!("{}:{}: {}: {why}", self.origin, p.line, p.key))
        };
        let mut bodies = Vec::new();
        for r in self.seed.iter().flat_map(|s| &s.requests) {
            bodies.push(match &r.body_file {
                None => None,
                Some(p) => Some(Arc::new(
                    repository
                        .read_file(&self.base_dir, &p.path)
                        .map_err(|why| path_err(p, why))?,
                )),
            });
        }
        let mut workdirs = Vec::new();
        for (i, h) in self.hooks.iter().enumerate() {
            let dir = match &h.workdir {
                Some(p) => repository
                    .directory(&self.base_dir, &p.path)
                    .map_err(|why| path_err(p, why))?,
                None => repository
                    .directory(&self.base_dir, Path::new("."))
                    .map_err(|why| {
                        Error::config(format!(
                            "{}: hooks[{i}].workdir (unset: this file's directory): {why}",
                            self.origin
                        ))
                    })?,
            };
            workdirs.push(dir);
        }
        Ok(ConfigFiles {
            repository,
            bodies,
            workdirs,
        })
    }
}
