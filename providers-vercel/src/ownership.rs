//! What makes a Vercel resource ours: the marker in an env var's `comment`, the fingerprints it
//! carries, the `meta` of our deployments, and the guard every env write and delete passes.

use preview_core::{DigestKey, Error, Naming, PreviewName, Result};

use crate::wire;

/// Start of the ownership marker kept in the `comment` of every env var we write:
/// `managed-by:preview env=<PreviewName> pr=<n> fp=<fingerprint>`. Ownership is the `env=` field
/// alone; `fp=` is a keyed digest of what was written (see
/// [`AppSpec::fingerprint_key`](preview_core::AppSpec::fingerprint_key)), 32 hex digits. Vars
/// written before fingerprints were keyed carry a 16-digit unkeyed one: they are still ours
/// (teardown and sweep read only `env=`), and the next deploy rewrites them once.
pub const MARKER: &str = "managed-by:preview";

/// The deployment `meta` key naming the environment a deployment was made for.
pub const META_ENV: &str = "previewEnv";

/// The deployment `meta` key holding a digest of the env vars it was built with (their keys and
/// fingerprints): a deployment carrying the current digest has the current values, even if a
/// var was re-written with the same value after it was created (two runs at once both write).
pub const META_VARS: &str = "previewVars";

/// The guard every env write and delete passes through: only vars whose target is exactly
/// `["preview"]` and that are scoped to a git branch are ever touched. Anything else (a
/// production or development var, a project-wide preview var) is refused before a request is sent.
///
/// # Errors
/// [`Error::Config`] naming the key.
pub(crate) fn guard_preview_only(
    key: &str,
    target: &[String],
    git_branch: Option<&str>,
) -> Result<()> {
    let preview_only = target.len() == 1 && target[0] == "preview";
    let branch_scoped = git_branch.is_some_and(|b| !b.is_empty());
    if preview_only && branch_scoped {
        return Ok(());
    }
    Err(Error::config(format!(
        "refusing to write or delete Vercel env var {key}: preview only manages branch-scoped vars \
         whose target is exactly [\"preview\"] (this one targets {target:?}{})",
        if branch_scoped {
            ""
        } else {
            " and has no gitBranch"
        }
    )))
}

/// The marker parsed back from an env var's comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) env: String,
    pub(crate) pr: u32,
    pub(crate) fp: Option<String>,
}

pub(crate) fn parse_mark(comment: &str) -> Option<Mark> {
    let rest = comment.strip_prefix(MARKER)?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let (mut env, mut pr, mut fp) = (None, None, None);
    for field in rest.split_whitespace() {
        if let Some(v) = field.strip_prefix("env=") {
            env = Some(v.to_string());
        } else if let Some(v) = field.strip_prefix("pr=") {
            pr = v.parse::<u32>().ok();
        } else if let Some(v) = field.strip_prefix("fp=") {
            fp = Some(v.to_string());
        }
    }
    Some(Mark {
        env: env?,
        pr: pr?,
        fp,
    })
}

pub(crate) fn marker_comment(name: &PreviewName, fingerprint: &str) -> String {
    format!("{MARKER} env={name} pr={} fp={fingerprint}", name.pr())
}

/// Recovers the [`PreviewName`] of a marker: the name must be `{prefix}-{pr}` or
/// `{prefix}-{pr}-{suffix}` for a valid [`Naming`]; anything else is not ours.
pub(crate) fn preview_name(mark: &Mark) -> Option<PreviewName> {
    let s = mark.env.as_str();
    let digits = mark.pr.to_string();
    for (i, _) in s.match_indices(&digits) {
        let Some(prefix) = s[..i].strip_suffix('-') else {
            continue;
        };
        let after = &s[i + digits.len()..];
        let suffix = match after.strip_prefix('-') {
            Some(sfx) => sfx,
            None if after.is_empty() => "",
            None => continue,
        };
        let found = Naming::new(prefix, suffix)
            .ok()
            .and_then(|n| n.parse(s))
            .filter(|name| name.pr().get() == mark.pr);
        if found.is_some() {
            return found;
        }
    }
    None
}

pub(crate) fn owned_by(env: &wire::Env, name: &PreviewName) -> bool {
    env.comment
        .as_deref()
        .and_then(parse_mark)
        .is_some_and(|m| m.env == name.as_str())
}

/// A keyed digest of what we wrote (environment, key, type, value), kept in the comment so an
/// unchanged var is recognised without reading its value back (a `sensitive` value cannot be read
/// back at all). Keyed (HMAC-SHA256), because the comment is readable by everyone on the team: an
/// unkeyed hash of a low-entropy value could be confirmed offline by hashing guesses. 128 bits.
pub(crate) fn fingerprint(
    key: &DigestKey,
    name: &PreviewName,
    var: &str,
    kind: &str,
    value: &str,
) -> String {
    key.hex(&[name.as_str(), var, kind, value], 16)
}

/// A digest of our vars' keys and fingerprints (`None` when one has no fingerprint): what a
/// deployment built with them carries in [`META_VARS`]. Keyed like the fingerprints, so runs of
/// one environment (same master) agree on it.
pub(crate) fn vars_digest(key: &DigestKey, vars: &[wire::Env]) -> Option<String> {
    let mut pairs: Vec<(&str, String)> = vars
        .iter()
        .map(|e| {
            let fp = e.comment.as_deref().and_then(parse_mark)?.fp?;
            Some((e.key.as_str(), fp))
        })
        .collect::<Option<_>>()?;
    if pairs.is_empty() {
        return None;
    }
    pairs.sort();
    let parts: Vec<&str> = pairs.iter().flat_map(|(k, fp)| [*k, fp.as_str()]).collect();
    Some(key.hex(&parts, 8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use preview_core::PrNumber;

    fn name(pr: u64) -> PreviewName {
        Naming::new("pr", "agents")
            .expect("valid naming")
            .name(PrNumber::new(pr).expect("valid pr"))
    }

    #[test]
    fn markers_round_trip_to_the_preview_name() {
        let n = name(42);
        let c = marker_comment(&n, "00ff");
        assert_eq!(c, "managed-by:preview env=pr-42-agents pr=42 fp=00ff");
        assert!(c.len() <= 500);
        let m = parse_mark(&c).expect("our marker");
        assert_eq!(preview_name(&m), Some(n));
        // Names whose prefix itself has digit groups still resolve to the right PR.
        let odd = Naming::new("v-2-pr", "")
            .expect("valid naming")
            .name(PrNumber::new(2).expect("pr"));
        let m = parse_mark(&marker_comment(&odd, "x")).expect("marker");
        assert_eq!(preview_name(&m).map(|n| n.pr().get()), Some(2));
        assert_eq!(
            preview_name(&m).as_ref().map(PreviewName::as_str),
            Some("v-2-pr-2")
        );
    }

    #[test]
    fn foreign_comments_are_not_ours() {
        for c in [
            "",
            "database connection string",
            "managed-by:previewer env=pr-1 pr=1",
            "managed-by:preview pr=1",
            "managed-by:preview env=pr-1",
        ] {
            assert_eq!(parse_mark(c), None, "{c}");
        }
        let m = parse_mark("managed-by:preview env=pr-7-x pr=8").expect("parses");
        assert_eq!(preview_name(&m), None, "pr mismatch must not parse");
        let m = parse_mark("managed-by:preview env=PR_7 pr=7").expect("parses");
        assert_eq!(preview_name(&m), None, "invalid naming must not parse");
    }

    #[test]
    fn the_guard_admits_only_branch_scoped_preview_vars() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        guard_preview_only("K", &p(&["preview"]), Some("feat")).expect("allowed");
        for (target, branch) in [
            (p(&["production"]), Some("feat")),
            (p(&["development"]), Some("feat")),
            (p(&["preview", "production"]), Some("feat")),
            (p(&[]), Some("feat")),
            (p(&["preview"]), None),
            (p(&["preview"]), Some("")),
        ] {
            let err = guard_preview_only("K", &target, branch).expect_err("refused");
            assert!(err.is_config(), "{err}");
        }
    }

    #[test]
    fn fingerprints_change_with_value_type_env_and_key() {
        let k = DigestKey::from_bytes([7; 32]);
        let a = fingerprint(&k, &name(1), "K", "encrypted", "v");
        assert_eq!(a.len(), 32);
        assert_ne!(a, fingerprint(&k, &name(1), "K", "encrypted", "w"));
        assert_ne!(a, fingerprint(&k, &name(1), "K", "sensitive", "v"));
        assert_ne!(a, fingerprint(&k, &name(2), "K", "encrypted", "v"));
        assert_ne!(a, fingerprint(&k, &name(1), "L", "encrypted", "v"));
        assert_eq!(a, fingerprint(&k, &name(1), "K", "encrypted", "v"));
        let other = DigestKey::from_bytes([8; 32]);
        assert_ne!(a, fingerprint(&other, &name(1), "K", "encrypted", "v"));
    }
}
