//! Environment identity: PR numbers and the [`PreviewName`] every resource is named after.
//!
//! A name is derived only from the PR number and a configured prefix/suffix, never from a branch
//! name (branch names are untrusted input). It is a valid DNS label for every provider: 1–63
//! characters of `[a-z0-9-]`, starting with a letter, not ending in `-`, no `--` at positions 3–4
//! (reserved for IDNA's `xn--`). It is also the ownership marker: sweeps only touch names that parse
//! back to a PR number.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::error::{Error, Result};

/// A pull-request number: 1 to 2³¹−1 (GitHub's range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PrNumber(u32);

impl PrNumber {
    /// The largest PR number GitHub can issue.
    pub const MAX: u32 = i32::MAX as u32;

    /// Validates a PR number.
    ///
    /// # Errors
    /// [`Error::Config`] when `n` is 0 or above [`PrNumber::MAX`].
    pub fn new(n: u64) -> Result<Self> {
        if n == 0 || n > u64::from(Self::MAX) {
            return Err(Error::config(format!(
                "invalid PR number {n}: expected an integer from 1 to {}",
                Self::MAX
            )));
        }
        Ok(Self(n as u32))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for PrNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for PrNumber {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        // A negative number gets the range message `0` gets, not "not a number".
        if let Some(digits) = t.strip_prefix('-') {
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::config(format!(
                    "invalid PR number {t}: expected an integer from 1 to {}",
                    Self::MAX
                )));
            }
        }
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) || t.len() > 10 {
            return Err(Error::config(format!(
                "invalid PR number {s:?}: expected an integer from 1 to {}",
                Self::MAX
            )));
        }
        Self::new(t.parse::<u64>().map_err(|_| {
            Error::config(format!(
                "invalid PR number {s:?}: expected an integer from 1 to {}",
                Self::MAX
            ))
        })?)
    }
}

/// Checks that `s` is a DNS label every provider accepts; returns why not.
pub fn check_dns_label(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > 63 {
        return Err(format!("is {} characters long; the limit is 63", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "contains {c:?}; only lowercase letters, digits and '-' are allowed"
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".into());
    }
    if s.ends_with('-') {
        return Err("must not end with '-'".into());
    }
    if s.get(2..4) == Some("--") {
        return Err("must not have '--' at positions 3-4 (reserved for IDNA)".into());
    }
    Ok(())
}

/// Checks that `s` is a fully qualified host name made of valid labels (≤ 253 characters).
pub fn check_hostname(s: &str) -> std::result::Result<(), String> {
    if s.len() > 253 {
        return Err(format!("is {} characters long; the limit is 253", s.len()));
    }
    let labels: Vec<&str> = s.split('.').collect();
    if labels.len() < 2 {
        return Err("must have at least two labels (e.g. pr-1.example.com)".into());
    }
    for label in labels {
        if label.is_empty() {
            return Err("has an empty label".into());
        }
        if label.len() > 63 {
            return Err(format!(
                "has a label of {} characters; the limit is 63",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "contains {c:?}; only a-z, 0-9, '-' and '.' are allowed"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} must not start or end with '-'"));
        }
    }
    Ok(())
}

/// How environment names are formed: `{prefix}-{pr}` or `{prefix}-{pr}-{suffix}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Naming {
    prefix: String,
    suffix: String,
}

impl Naming {
    /// Validates a prefix and an optional suffix (`""` for none) so that every PR number, up to
    /// [`PrNumber::MAX`], gives a valid DNS label.
    ///
    /// # Errors
    /// [`Error::Config`] naming the part and what is wrong with it.
    pub fn new(prefix: impl Into<String>, suffix: impl Into<String>) -> Result<Self> {
        let naming = Self {
            prefix: prefix.into(),
            suffix: suffix.into(),
        };
        let check_part = |what: &str, part: &str| -> Result<()> {
            if part
                .chars()
                .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                || part.starts_with('-')
                || part.ends_with('-')
            {
                return Err(Error::config(format!(
                    "naming.{what} {part:?} is invalid: use lowercase letters, digits and inner '-'"
                )));
            }
            Ok(())
        };
        check_part("prefix", &naming.prefix)?;
        check_part("suffix", &naming.suffix)?;
        let longest = naming.render(PrNumber(PrNumber::MAX));
        check_dns_label(&longest).map_err(|why| {
            Error::config(format!(
                "naming: the name for the largest PR number, {longest:?}, {why}; shorten naming.prefix or naming.suffix"
            ))
        })?;
        Ok(naming)
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The suffix (`""` for none).
    pub fn suffix(&self) -> &str {
        &self.suffix
    }

    fn render(&self, pr: PrNumber) -> String {
        if self.suffix.is_empty() {
            format!("{}-{}", self.prefix, pr)
        } else {
            format!("{}-{}-{}", self.prefix, pr, self.suffix)
        }
    }

    /// The environment name of a PR. Deterministic; depends on nothing but `pr` and this naming.
    pub fn name(&self, pr: PrNumber) -> PreviewName {
        PreviewName {
            name: self.render(pr),
            pr,
        }
    }

    /// Parses a resource name back into the environment it belongs to; `None` for anything that is
    /// not exactly a name this naming would produce (foreign resources are never touched).
    pub fn parse(&self, s: &str) -> Option<PreviewName> {
        let rest = s.strip_prefix(&self.prefix)?.strip_prefix('-')?;
        let digits = if self.suffix.is_empty() {
            rest
        } else {
            rest.strip_suffix(&self.suffix)?.strip_suffix('-')?
        };
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let pr = PrNumber::new(digits.parse().ok()?).ok()?;
        let name = self.name(pr);
        (name.name == s).then_some(name)
    }
}

/// The identity of one preview environment, e.g. `pr-42-agents`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PreviewName {
    name: String,
    pr: PrNumber,
}

impl PreviewName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The PR it belongs to.
    pub fn pr(&self) -> PrNumber {
        self.pr
    }
}

impl fmt::Display for PreviewName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Serialize for PreviewName {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_dns_labels_and_parse_back() {
        let n = Naming::new("pr", "agents").unwrap();
        let name = n.name(PrNumber::new(42).unwrap());
        assert_eq!(name.as_str(), "pr-42-agents");
        assert_eq!(n.parse("pr-42-agents"), Some(name));
        for pr in [1u64, 9, 10, 99_999, u64::from(PrNumber::MAX)] {
            let name = n.name(PrNumber::new(pr).unwrap());
            check_dns_label(name.as_str()).unwrap();
            assert_eq!(n.parse(name.as_str()).unwrap().pr().get() as u64, pr);
        }
    }

    #[test]
    fn foreign_names_do_not_parse() {
        let n = Naming::new("pr", "agents").unwrap();
        for s in [
            "pr-42",
            "pr-042-agents",
            "pr--42-agents",
            "pr-42-agents-x",
            "xpr-42-agents",
            "pr-0-agents",
            "pr-abc-agents",
            "pr-99999999999-agents",
            "pr-4294967295-agents",
            "",
        ] {
            assert_eq!(n.parse(s), None, "{s}");
        }
        let bare = Naming::new("preview", "").unwrap();
        assert_eq!(bare.parse("preview-7").unwrap().as_str(), "preview-7");
        assert_eq!(bare.parse("preview-7-x"), None);
    }

    #[test]
    fn naming_rejects_parts_that_could_break_a_label() {
        assert!(Naming::new("PR", "").is_err());
        assert!(Naming::new("pr_", "").is_err());
        assert!(Naming::new("-pr", "").is_err());
        assert!(Naming::new("7pr", "").is_err());
        assert!(Naming::new("xn", "").is_ok());
        let err = Naming::new("p", "a".repeat(60)).unwrap_err();
        assert!(err.to_string().contains("limit is 63"), "{err}");
    }

    #[test]
    fn pr_numbers_are_validated() {
        assert_eq!("42".parse::<PrNumber>().unwrap().get(), 42);
        for bad in [
            "0",
            "-1",
            "abc",
            "",
            "2147483648",
            "99999999999",
            "4 2",
            "+4",
        ] {
            let err = bad.parse::<PrNumber>().unwrap_err();
            assert!(err.to_string().contains("1 to 2147483647"), "{bad}: {err}");
        }
    }

    #[test]
    fn hostnames_are_checked() {
        check_hostname("pr-42-api.preview.inkeep.com").unwrap();
        for bad in [
            "Pr.example.com",
            "a..b",
            "nodot",
            "-a.example.com",
            "a_b.example.com",
            "$(x).example.com",
        ] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
    }
}
