//! The repository a configuration belongs to, and the files it may name.
//!
//! `preview.toml` is untrusted input: any pull request from a branch of the repository can edit
//! it, and deploy runs with every token in its environment. So the files it names (a seed
//! request's `body_file`, a hook's `workdir`) are confined to the repository's checkout:
//!
//! - the path is relative (to the directory holding the configuration file);
//! - it does not leave the repository, neither through `..` nor through a symbolic link (the path
//!   is checked as written, then resolved and checked again);
//! - a `body_file` is a regular file (no FIFO, socket, device or directory) of at most
//!   [`MAX_FILE_BYTES`]; a `workdir` is a directory.
//!
//! Files are read once, before anything is sent anywhere, and those bytes are what is sent.
//!
//! # Which directory is the repository
//! [`Repository::discover`], in this order:
//! 1. `PREVIEW_REPOSITORY_ROOT`, when set (an override, e.g. for tests or unusual checkouts);
//! 2. the nearest directory, from the configuration file's directory upwards, that holds `.git`
//!    (a directory, or a file in worktrees and submodules): the checkout's top level;
//! 3. in GitHub Actions (`GITHUB_ACTIONS=true`), `GITHUB_WORKSPACE` when it holds the
//!    configuration (a checkout made without git has no `.git`);
//! 4. the configuration file's own directory.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::env::EnvLookup;
use crate::error::{Error, Result};

/// The largest file the configuration may name (a seed request's body): 1 MiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The variable that overrides where the repository is.
pub const ROOT_VAR: &str = "PREVIEW_REPOSITORY_ROOT";

/// The checkout the configuration belongs to; files it names must stay inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// Canonical (absolute, no symbolic link).
    root: PathBuf,
}

/// Makes `path` absolute against the current directory and drops `.` and `..` without touching
/// the file system (a `..` above `/` stays at `/`).
fn lexical(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl Repository {
    /// The repository at `root` (it must exist and be a directory).
    ///
    /// # Errors
    /// [`Error::Config`] when it is not a directory.
    pub fn at(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let canonical = root.canonicalize().map_err(|e| {
            Error::config(format!(
                "the repository {} cannot be used: {e}",
                root.display()
            ))
        })?;
        if !canonical.is_dir() {
            return Err(Error::config(format!(
                "the repository {} is not a directory",
                root.display()
            )));
        }
        Ok(Self { root: canonical })
    }

    /// Finds the repository of a configuration in `config_dir` (see the module documentation
    /// for the order of the rules).
    ///
    /// # Errors
    /// [`Error::Config`] when `PREVIEW_REPOSITORY_ROOT` or the directory found cannot be used.
    pub fn discover(config_dir: &Path, env: EnvLookup<'_>) -> Result<Self> {
        if let Some(root) = env(ROOT_VAR).filter(|r| !r.trim().is_empty()) {
            return Self::at(&root).map_err(|e| Error::config(format!("{ROOT_VAR}: {e}")));
        }
        let dir = lexical(config_dir);
        // Walked as written, not resolved: a directory of the checkout that is a symbolic link
        // out of it must not move the repository with it (the files are checked resolved).
        if let Some(top) = dir
            .ancestors()
            .find(|d| std::fs::symlink_metadata(d.join(".git")).is_ok())
        {
            return Self::at(top);
        }
        if env("GITHUB_ACTIONS").as_deref() == Some("true") {
            if let Some(ws) = env("GITHUB_WORKSPACE").filter(|w| !w.trim().is_empty()) {
                let ws = lexical(Path::new(&ws));
                if dir.starts_with(&ws) {
                    return Self::at(ws);
                }
            }
        }
        Self::at(dir)
    }

    /// The repository's directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rel`, named by a file in `base`, resolved and checked: relative, inside the repository as
    /// written and once every symbolic link is resolved. Returns the canonical path.
    fn confine(&self, base: &Path, rel: &Path) -> std::result::Result<PathBuf, String> {
        if rel.as_os_str().is_empty() {
            return Err("is empty; name a path relative to the configuration's directory".into());
        }
        if rel.is_absolute() || rel.has_root() {
            return Err(format!(
                "{:?} is an absolute path; name a path inside the repository, relative to the configuration's directory",
                rel.display().to_string()
            ));
        }
        let base = base.canonicalize().map_err(|e| {
            format!(
                "the configuration's directory {} cannot be resolved: {e}",
                base.display()
            )
        })?;
        if !base.starts_with(&self.root) {
            return Err(format!(
                "the configuration's directory resolves to {}, outside the repository {}",
                base.display(),
                self.root.display()
            ));
        }
        let written = lexical(&base.join(rel));
        if !written.starts_with(&self.root) {
            return Err(format!(
                "{:?} leaves the repository {} (resolves to {})",
                rel.display().to_string(),
                self.root.display(),
                written.display()
            ));
        }
        let resolved = written
            .canonicalize()
            .map_err(|e| format!("{:?}: {e}", rel.display().to_string()))?;
        if !resolved.starts_with(&self.root) {
            return Err(format!(
                "{:?} leads through a symbolic link to {}, outside the repository {}",
                rel.display().to_string(),
                resolved.display(),
                self.root.display()
            ));
        }
        Ok(resolved)
    }

    /// Reads a file named by the configuration in `base`: confined to the repository, a regular
    /// file, at most [`MAX_FILE_BYTES`]. Returns why not, for the caller to name the field.
    ///
    /// # Errors
    /// The reason, as text.
    pub fn read_file(&self, base: &Path, rel: &Path) -> std::result::Result<Vec<u8>, String> {
        let path = self.confine(base, rel)?;
        let shown = rel.display().to_string();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{shown:?}: {e}"))?;
        if !meta.file_type().is_file() {
            return Err(format!(
                "{shown:?} is not a regular file (directories, FIFOs, sockets and devices are refused)"
            ));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(format!(
                "{shown:?} is {} bytes; the limit is {MAX_FILE_BYTES} bytes (1 MiB)",
                meta.len()
            ));
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        // Neither follow a link swapped in since the check nor wait on a FIFO swapped in.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
            options.custom_flags(flags.bits() as i32);
        }
        let file = options.open(&path).map_err(|e| format!("{shown:?}: {e}"))?;
        let opened = file.metadata().map_err(|e| format!("{shown:?}: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if !opened.file_type().is_file()
                || opened.dev() != meta.dev()
                || opened.ino() != meta.ino()
            {
                return Err(format!("{shown:?} changed while it was being read"));
            }
        }
        #[cfg(not(unix))]
        if !opened.file_type().is_file() {
            return Err(format!("{shown:?} changed while it was being read"));
        }
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{shown:?}: {e}"))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(format!(
                "{shown:?} is larger than the limit of {MAX_FILE_BYTES} bytes (1 MiB)"
            ));
        }
        Ok(bytes)
    }

    /// A directory named by the configuration in `base`, confined to the repository; its
    /// canonical path.
    ///
    /// # Errors
    /// The reason, as text.
    pub fn directory(&self, base: &Path, rel: &Path) -> std::result::Result<PathBuf, String> {
        let path = self.confine(base, rel)?;
        if !path.is_dir() {
            return Err(format!(
                "{:?} is not a directory",
                rel.display().to_string()
            ));
        }
        Ok(path)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn tree(tag: &str) -> (PathBuf, Repository) {
        let dir = std::env::temp_dir().join(format!(
            "preview-repo-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(dir.join("repo/.git")).unwrap();
        std::fs::create_dir_all(dir.join("repo/.github/seed")).unwrap();
        std::fs::write(dir.join("repo/.github/seed/body.json"), b"{}").unwrap();
        std::fs::write(dir.join("outside.txt"), b"secret").unwrap();
        let none = |_: &str| None;
        let repo = Repository::discover(&dir.join("repo/.github"), &none).unwrap();
        (dir, repo)
    }

    #[test]
    fn the_git_top_level_is_the_repository_and_files_inside_it_are_read() {
        let (dir, repo) = tree("inside");
        assert_eq!(repo.root(), dir.join("repo").canonicalize().unwrap());
        let base = dir.join("repo/.github");
        assert_eq!(
            repo.read_file(&base, Path::new("seed/body.json")).unwrap(),
            b"{}"
        );
        assert_eq!(
            repo.read_file(&base, Path::new("../.github/./seed/body.json"))
                .unwrap(),
            b"{}"
        );
        assert_eq!(
            repo.directory(&base, Path::new("..")).unwrap(),
            dir.join("repo").canonicalize().unwrap()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn escapes_links_and_special_files_are_refused() {
        let (dir, repo) = tree("escape");
        let base = dir.join("repo/.github");
        std::os::unix::fs::symlink(dir.join("outside.txt"), base.join("link.json")).unwrap();
        std::os::unix::fs::symlink("/proc/self", base.join("proc")).unwrap();
        std::os::unix::fs::symlink(&dir, base.join("up")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            base.join("fifo").as_path(),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        std::fs::write(
            base.join("big.json"),
            vec![b' '; MAX_FILE_BYTES as usize + 1],
        )
        .unwrap();
        let cases: &[(&str, &str)] = &[
            ("/etc/passwd", "absolute path"),
            ("/proc/self/environ", "absolute path"),
            ("../../outside.txt", "leaves the repository"),
            (
                "../../../../../../../../etc/passwd",
                "leaves the repository",
            ),
            ("link.json", "symbolic link"),
            ("proc/environ", "symbolic link"),
            ("up/outside.txt", "symbolic link"),
            ("fifo", "not a regular file"),
            ("seed", "not a regular file"),
            ("big.json", "the limit is 1048576 bytes"),
            ("missing.json", "No such file"),
            ("", "is empty"),
        ];
        for (rel, why) in cases {
            let err = repo.read_file(&base, Path::new(rel)).unwrap_err();
            assert!(err.contains(why), "{rel}: {err}");
        }
        for (rel, why) in [
            ("../..", "leaves the repository"),
            ("up", "symbolic link"),
            ("seed/body.json", "not a directory"),
            ("/tmp", "absolute path"),
        ] {
            let err = repo.directory(&base, Path::new(rel)).unwrap_err();
            assert!(err.contains(why), "{rel}: {err}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_config_directory_linked_out_of_the_repository_is_refused() {
        let (dir, _) = tree("linked");
        std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
        std::fs::write(dir.join("elsewhere/body.json"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), dir.join("repo/conf")).unwrap();
        let none = |_: &str| None;
        let repo = Repository::discover(&dir.join("repo/conf"), &none).unwrap();
        assert_eq!(repo.root(), dir.join("repo").canonicalize().unwrap());
        let err = repo
            .read_file(&dir.join("repo/conf"), Path::new("body.json"))
            .unwrap_err();
        assert!(err.contains("outside the repository"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_override_and_the_actions_workspace_are_honoured() {
        let (dir, _) = tree("override");
        std::fs::create_dir_all(dir.join("plain/conf")).unwrap();
        let root = dir.join("plain").to_string_lossy().into_owned();
        let over = |k: &str| (k == ROOT_VAR).then(|| root.clone());
        let repo = Repository::discover(&dir.join("repo/.github"), &over).unwrap();
        assert_eq!(repo.root(), dir.join("plain").canonicalize().unwrap());
        let actions = |k: &str| match k {
            "GITHUB_ACTIONS" => Some("true".to_string()),
            "GITHUB_WORKSPACE" => Some(root.clone()),
            _ => None,
        };
        let repo = Repository::discover(&dir.join("plain/conf"), &actions).unwrap();
        assert_eq!(repo.root(), dir.join("plain").canonicalize().unwrap());
        let none = |_: &str| None;
        let repo = Repository::discover(&dir.join("plain/conf"), &none).unwrap();
        assert_eq!(repo.root(), dir.join("plain/conf").canonicalize().unwrap());
        let bad = |k: &str| (k == ROOT_VAR).then(|| "/nonexistent/preview".to_string());
        let err = Repository::discover(&dir.join("plain/conf"), &bad).unwrap_err();
        assert!(err.to_string().starts_with(ROOT_VAR), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
