//! Reading a configuration: spans to lines, errors as `FILE:LINE: KEY: why`, and the checks every
//! section shares (templates against the vocabulary, durations, names, paths, variables).

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawConfig, S};
use super::vocabulary::{Ctx, Vocabulary};
use super::{ConfigPath, Field};
use crate::error::{Error, Result};
use crate::name::check_dns_label;
use crate::template::Template;

pub(super) struct Loader<'a> {
    pub(super) origin: &'a str,
    pub(super) text: &'a str,
}

impl Loader<'_> {
    /// The TOML, as serde reads it; a syntax or shape error names the line and the key.
    pub(super) fn read(&self) -> Result<RawConfig> {
        let raw: RawConfig = toml::from_str(self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let line = self.line_of(&span);
            let src = self
                .text
                .lines()
                .nth(line.saturating_sub(1))
                .unwrap_or("")
                .trim();
            let key = src.split('=').next().unwrap_or("").trim();
            let at = if key.is_empty() || src.starts_with('[') {
                if src.is_empty() {
                    String::new()
                } else {
                    format!(" (at `{src}`)")
                }
            } else {
                format!(" (key `{key}`)")
            };
            Error::config(format!(
                "{}:{line}: {}{at}",
                self.origin,
                e.message().trim()
            ))
        })?;
        if let Some(v) = &raw.version {
            if *v.get_ref() != 1 {
                return Err(self.err(
                    &v.span(),
                    "version",
                    format!(
                        "unsupported version {}; this preview understands version 1",
                        v.get_ref()
                    ),
                ));
            }
        }
        Ok(raw)
    }

    pub(super) fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|b| *b == b'\n').count() + 1
    }

    pub(super) fn err(
        &self,
        span: &Range<usize>,
        key: &str,
        message: impl std::fmt::Display,
    ) -> Error {
        Error::config(format!(
            "{}:{}: {key}: {message}",
            self.origin,
            self.line_of(span)
        ))
    }

    pub(super) fn field(&self, s: &S, key: String, ctx: Ctx, vocab: &Vocabulary) -> Result<Field> {
        let template = Template::parse(s.get_ref()).map_err(|m| self.err(&s.span(), &key, m))?;
        for r in template.refs() {
            vocab
                .check(r, ctx)
                .map_err(|m| self.err(&s.span(), &key, m))?;
        }
        Ok(Field {
            template,
            key,
            line: self.line_of(&s.span()),
        })
    }

    pub(super) fn duration(&self, s: &S, key: &str) -> Result<Duration> {
        parse_duration(s.get_ref()).map_err(|m| self.err(&s.span(), key, m))
    }

    pub(super) fn duration_or(
        &self,
        s: &Option<S>,
        key: &str,
        default: Duration,
    ) -> Result<Duration> {
        s.as_ref().map_or(Ok(default), |s| self.duration(s, key))
    }

    pub(super) fn ident(&self, s: &str, span: &Range<usize>, key: &str) -> Result<()> {
        check_dns_label(s).map_err(|why| {
            self.err(
                span,
                key,
                format!("{s:?} {why} (names are DNS labels: lowercase letters, digits, inner '-')"),
            )
        })
    }

    /// A path the configuration names: relative (to the file's directory), not empty. Whether
    /// it stays inside the repository is decided by [`Config::read_files`], which can look.
    pub(super) fn path(&self, s: &S, key: String) -> Result<ConfigPath> {
        let path = PathBuf::from(s.get_ref());
        if s.get_ref().is_empty() {
            return Err(self.err(
                &s.span(),
                &key,
                "is empty; name a path relative to this file's directory",
            ));
        }
        if path.is_absolute() || path.has_root() {
            return Err(self.err(
                &s.span(),
                &key,
                format!(
                    "{:?} is an absolute path; name a path inside the repository, relative to this file's directory",
                    s.get_ref()
                ),
            ));
        }
        if s.get_ref().contains('\0') {
            return Err(self.err(&s.span(), &key, "contains a NUL character"));
        }
        Ok(ConfigPath {
            path,
            key,
            line: self.line_of(&s.span()),
        })
    }

    pub(super) fn env_key(&self, k: &str, span: &Range<usize>, key: &str) -> Result<()> {
        let ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(())
        } else {
            Err(self.err(
                span,
                key,
                format!("{k:?} is not a valid environment variable name (letters, digits, '_', not starting with a digit)"),
            ))
        }
    }
}

/// Parses `30s`, `5m`, `1h`, `500ms`, or combinations such as `1m30s`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad =
        || format!("invalid duration {s:?}: use e.g. \"30s\", \"5m\", \"1h30m\" or \"500ms\"");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let d = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total += d;
        rest = &rest[unit_len..];
    }
    Ok(total)
}
