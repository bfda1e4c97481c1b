//! `[triggers]`: which pull requests get a preview, and when (drafts, a label, changed paths,
//! `/preview` comment commands and who may use them).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::loader::Loader;
use super::raw::RawTriggers;
use crate::error::Result;
use crate::host::Permission;

/// GitHub's limit on a label's name, in characters.
const MAX_LABEL: usize = 50;
/// More patterns than anyone writes by hand: a bound on what a PR's config can make us compile.
const MAX_PATTERNS: usize = 100;

/// Trigger policy.
#[derive(Debug, Clone)]
pub struct TriggersDef {
    /// Whether draft pull requests get a preview (default `true`). When `false`, a PR converted
    /// to draft loses its preview and one marked ready for review gets it.
    pub drafts: bool,
    /// A label a pull request must carry to get a preview (compared without regard to case):
    /// adding it deploys, removing it tears down. `None`: no label needed.
    pub label: Option<String>,
    /// Globs of which at least one changed file must match. `None`: any change.
    pub paths: Option<PathFilter>,
    /// Whether `/preview` commands in PR comments are obeyed (default `true`).
    pub commands: bool,
    /// The lowest repository permission a commenter needs for a command (default `write`).
    pub command_permission: Permission,
}

impl Default for TriggersDef {
    fn default() -> Self {
        Self {
            drafts: true,
            label: None,
            paths: None,
            commands: true,
            command_permission: Permission::Write,
        }
    }
}

impl TriggersDef {
    /// Whether `labels` (a pull request's) carry the trigger label; `true` when none is needed.
    pub fn has_label(&self, labels: &[String]) -> bool {
        match &self.label {
            None => true,
            Some(want) => labels.iter().any(|l| l.eq_ignore_ascii_case(want)),
        }
    }

    /// Whether `label` is the trigger label.
    pub fn is_trigger_label(&self, label: &str) -> bool {
        self.label
            .as_deref()
            .is_some_and(|want| want.eq_ignore_ascii_case(label))
    }
}

/// Path globs, compiled once. A pattern matches a path from the repository root as a whole:
/// `*` and `?` stay inside one directory, `**` crosses directories (`apps/**` is everything
/// under `apps/`), `{a,b}` and `[abc]` as in a shell.
#[derive(Debug, Clone)]
pub struct PathFilter {
    patterns: Vec<String>,
    set: GlobSet,
}

impl PathFilter {
    /// Compiles `patterns`; the error says which one is wrong and why.
    ///
    /// # Errors
    /// The pattern at fault and why, as text.
    pub fn new(patterns: &[&str]) -> std::result::Result<Self, (usize, String)> {
        let mut builder = GlobSetBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            let why = if p.trim().is_empty() {
                Some("is empty".to_string())
            } else if p.starts_with('/') {
                Some(format!(
                    "{p:?} starts with '/'; patterns match paths from the repository root without one, e.g. \"apps/**\""
                ))
            } else if p.starts_with('!') {
                Some(format!(
                    "{p:?}: negated patterns are not supported; list only what should trigger a preview"
                ))
            } else if p.chars().any(char::is_control) {
                Some("contains a control character".to_string())
            } else {
                None
            };
            if let Some(why) = why {
                return Err((i, why));
            }
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|e| (i, format!("{p:?} is not a valid glob: {}", e.kind())))?;
            builder.add(glob);
        }
        let set = builder
            .build()
            .map_err(|e| (0, format!("the globs do not compile: {e}")))?;
        Ok(Self {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            set,
        })
    }

    /// The patterns, as written.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `path` matches at least one pattern.
    pub fn matches(&self, path: &str) -> bool {
        self.set.is_match(path)
    }
}

/// The trigger policy, with its defaults (drafts, no label, any path, commands from writers).
pub(super) fn triggers(l: &Loader<'_>, raw: &RawTriggers) -> Result<TriggersDef> {
    let label = match &raw.label {
        None => None,
        Some(s) => {
            let v = s.get_ref();
            let why = if v.trim().is_empty() {
                Some("is empty; name the label a pull request must carry, e.g. \"preview\", or remove the key".to_string())
            } else if v.trim() != v {
                Some(format!("{v:?} has leading or trailing whitespace"))
            } else if v.chars().count() > MAX_LABEL {
                Some(format!(
                    "is {} characters long; GitHub labels have at most {MAX_LABEL}",
                    v.chars().count()
                ))
            } else if v.chars().any(char::is_control) {
                Some("contains a control character".to_string())
            } else {
                None
            };
            if let Some(why) = why {
                return Err(l.err(&s.span(), "triggers.label", why));
            }
            Some(v.clone())
        }
    };
    let paths = match &raw.paths {
        None => None,
        Some(list) => {
            let items = list.get_ref();
            if items.is_empty() {
                return Err(l.err(&list.span(), "triggers.paths", "is empty; list at least one glob, e.g. [\"apps/**\"], or remove the key so any change triggers a preview"));
            }
            if items.len() > MAX_PATTERNS {
                return Err(l.err(
                    &list.span(),
                    "triggers.paths",
                    format!("has {} patterns; at most {MAX_PATTERNS}", items.len()),
                ));
            }
            let raw: Vec<&str> = items.iter().map(|s| s.get_ref().as_str()).collect();
            let filter = PathFilter::new(&raw).map_err(|(i, why)| {
                l.err(&items[i].span(), &format!("triggers.paths[{i}]"), why)
            })?;
            Some(filter)
        }
    };
    let command_permission = match &raw.command_permission {
        None => Permission::Write,
        Some(s) => Permission::parse(s.get_ref())
            .filter(|p| *p != Permission::None)
            .ok_or_else(|| {
                l.err(
                    &s.span(),
                    "triggers.command_permission",
                    format!(
                        "{:?} is not a repository permission; use one of {}",
                        s.get_ref(),
                        Permission::NAMES.join(", ")
                    ),
                )
            })?,
    };
    Ok(TriggersDef {
        drafts: raw.drafts,
        label,
        paths,
        commands: raw.commands,
        command_permission,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_paths_and_stars_stay_in_a_directory() {
        let f = PathFilter::new(&["apps/**", "*.sql", "packages/{db,api}/src/*.rs"]).unwrap();
        for yes in [
            "apps/web/page.tsx",
            "apps/x",
            "schema.sql",
            "packages/db/src/lib.rs",
        ] {
            assert!(f.matches(yes), "{yes}");
        }
        for no in [
            "docs/apps/x",
            "db/schema.sql",
            "packages/ui/src/lib.rs",
            "packages/db/src/a/b.rs",
            "README.md",
        ] {
            assert!(!f.matches(no), "{no}");
        }
    }

    #[test]
    fn bad_patterns_are_named() {
        for (bad, why) in [
            ("", "empty"),
            ("/apps/**", "starts with '/'"),
            ("!apps/**", "negated"),
            ("apps/[", "not a valid glob"),
        ] {
            let (i, msg) = PathFilter::new(&["ok/**", bad]).unwrap_err();
            assert_eq!(i, 1, "{bad}");
            assert!(msg.contains(why), "{bad}: {msg}");
        }
    }
}
