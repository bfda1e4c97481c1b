//! GitHub Actions integration: workflow commands (masks, groups), step outputs and the step summary.
//!
//! Workflow commands are read from stdout, so mask lines go there, each secret and each derived form
//! on its own line, before anything else is printed. Untrusted text (branch names, PR titles) never
//! reaches stdout unescaped: [`inert`] neutralises a leading `::` so it cannot become a command.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use preview_core::env::EnvSource as Env;

/// The values this process has masked: the runner needs each `::add-mask::` line once, however
/// often a value is learned (up front, then again when the pipeline renders it). `Clone` shares.
#[derive(Debug, Clone, Default)]
pub struct Masks(Arc<Mutex<BTreeSet<String>>>);

impl PartialEq for Masks {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.lock() == *other.lock()
    }
}

impl Eq for Masks {}

impl Masks {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one `::add-mask::` line per line of each value not masked before (multi-line values
    /// are masked line by line).
    pub fn write(&self, out: &mut dyn Write, values: &[String]) -> std::io::Result<()> {
        let mut masked = self.lock();
        for v in values {
            for line in v.lines() {
                let line = line.trim();
                if !line.is_empty() && masked.insert(line.to_string()) {
                    writeln!(out, "::add-mask::{line}")?;
                }
            }
        }
        out.flush()
    }
}

/// What the CLI knows about the Actions run it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions {
    /// `$GITHUB_OUTPUT`, where step outputs are appended.
    pub output: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`, where the summary table is appended.
    pub summary: Option<PathBuf>,
    /// `$GITHUB_EVENT_PATH`, the triggering event.
    pub event_path: Option<PathBuf>,
    /// The link to this run, from `GITHUB_SERVER_URL`, `GITHUB_REPOSITORY` and `GITHUB_RUN_ID`.
    pub run_url: Option<String>,
    /// What this process has masked so far.
    pub masks: Masks,
}

impl Actions {
    /// Detects Actions mode (`GITHUB_ACTIONS=true`).
    pub fn detect(env: &Env) -> Option<Self> {
        if env("GITHUB_ACTIONS").as_deref() != Some("true") {
            return None;
        }
        let run_url = match (
            env("GITHUB_SERVER_URL"),
            env("GITHUB_REPOSITORY"),
            env("GITHUB_RUN_ID"),
        ) {
            (Some(s), Some(r), Some(id)) => Some(format!("{s}/{r}/actions/runs/{id}")),
            _ => None,
        };
        Some(Self {
            output: env("GITHUB_OUTPUT").map(PathBuf::from),
            summary: env("GITHUB_STEP_SUMMARY").map(PathBuf::from),
            event_path: env("GITHUB_EVENT_PATH").map(PathBuf::from),
            run_url,
            masks: Masks::default(),
        })
    }

    /// Writes one `::add-mask::` line per secret line not masked before in this run (multi-line
    /// values are masked line by line).
    pub fn mask(&self, out: &mut dyn Write, values: &[String]) -> std::io::Result<()> {
        self.masks.write(out, values)
    }

    /// Appends `name=value` lines to `$GITHUB_OUTPUT`.
    pub fn set_outputs(&self, outputs: &[(String, String)]) -> std::io::Result<()> {
        let Some(path) = &self.output else {
            return Ok(());
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for (k, v) in outputs {
            // Single-line values only (URLs); anything with a newline is dropped rather than risk
            // injecting another output.
            if !v.contains('\n') && !k.contains('\n') && !k.contains('=') {
                writeln!(f, "{k}={v}")?;
            }
        }
        Ok(())
    }

    /// Appends markdown to `$GITHUB_STEP_SUMMARY`.
    pub fn summary(&self, markdown: &str) -> std::io::Result<()> {
        let Some(path) = &self.summary else {
            return Ok(());
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(markdown.as_bytes())
    }
}

/// Makes untrusted text safe to print on a line of its own in Actions: a line that starts with `::`
/// (after whitespace) would be read as a workflow command, so its colons are escaped.
pub fn inert(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("::") {
                l.replacen("::", ":\u{200b}:", 1)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_line_of_every_value() {
        let mut out = Vec::new();
        Masks::default()
            .write(&mut out, &["one".into(), "two\nthree".into(), "".into()])
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "::add-mask::one\n::add-mask::two\n::add-mask::three\n"
        );
    }

    #[test]
    fn each_value_is_masked_once_per_run() {
        let masks = Masks::default();
        let shared = masks.clone();
        let mut out = Vec::new();
        masks
            .write(&mut out, &["one".into(), "two".into(), "one".into()])
            .unwrap();
        // Learned again later (the pipeline renders the same secrets), plus a new derived form.
        shared
            .write(&mut out, &["two".into(), "one\nthree".into()])
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "::add-mask::one\n::add-mask::two\n::add-mask::three\n"
        );
    }

    #[test]
    fn workflow_commands_in_untrusted_text_are_defused() {
        let t = inert("title\n::add-mask::x\n  ::error title=pwn::owned");
        assert!(!t.lines().any(|l| l.trim_start().starts_with("::")), "{t}");
        assert_eq!(inert("plain"), "plain");
    }

    #[test]
    fn detection_needs_github_actions_true() {
        let off: Env = std::sync::Arc::new(|_: &str| None);
        assert_eq!(Actions::detect(&off), None);
        let on: Env = std::sync::Arc::new(|k: &str| match k {
            "GITHUB_ACTIONS" => Some("true".into()),
            "GITHUB_SERVER_URL" => Some("https://github.com".into()),
            "GITHUB_REPOSITORY" => Some("acme/app".into()),
            "GITHUB_RUN_ID" => Some("7".into()),
            _ => None,
        });
        let a = Actions::detect(&on).unwrap();
        assert_eq!(
            a.run_url.as_deref(),
            Some("https://github.com/acme/app/actions/runs/7")
        );
    }
}
