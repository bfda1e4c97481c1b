//! Checks of the untrusted parts of a spec (branch, env var names, domain, commit, repository),
//! before any request.

use std::collections::BTreeSet;

use preview_core::name::check_hostname;
use preview_core::{AppRef, AppSpec, Commit, Error, Result};

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 256
}

fn validate_branch(branch: &str) -> Result<()> {
    // The branch is untrusted text: say what is wrong with it without printing it.
    let count = branch.chars().count();
    let why = if branch.is_empty() {
        Some("it is empty".to_string())
    } else if count > 250 {
        Some(format!("it has {count} characters"))
    } else {
        branch.chars().position(char::is_control).map(|i| {
            format!(
                "character {} is a control character (a newline, an ANSI escape…)",
                i + 1
            )
        })
    };
    match why {
        None => Ok(()),
        Some(why) => Err(Error::config(format!(
            "vercel: the PR's head branch cannot scope env vars: {why}; Vercel takes 1-250 characters without control characters (rename the branch)"
        ))),
    }
}

pub(super) fn validate_target(target: &AppRef) -> Result<()> {
    if target.project.trim().is_empty() {
        return Err(Error::config(format!(
            "app {}: the Vercel project is empty",
            target.app
        )));
    }
    if let Some(domain) = &target.domain {
        check_hostname(domain)
            .map_err(|why| Error::config(format!("app {}: domain {domain:?} {why}", target.app)))?;
    }
    Ok(())
}

pub(super) fn validate_spec(spec: &AppSpec) -> Result<()> {
    validate_target(&spec.target)?;
    validate_branch(&spec.branch)?;
    let mut seen = BTreeSet::new();
    for var in &spec.env {
        if !valid_key(&var.key) {
            return Err(Error::config(format!(
                "app {}: env var name {:?} is invalid: use letters, digits and '_', not starting with a digit",
                spec.target.app, var.key
            )));
        }
        if !seen.insert(var.key.as_str()) {
            return Err(Error::config(format!(
                "app {}: env var {} is set twice",
                spec.target.app, var.key
            )));
        }
    }
    Ok(())
}

/// The commit a deployment would be made of, against the spec it deploys; its `owner`/`name`.
pub(super) fn validate_commit<'c>(
    spec: &AppSpec,
    commit: &'c Commit,
) -> Result<(&'c str, &'c str)> {
    if commit.branch != spec.branch {
        return Err(Error::config(
            "the commit to deploy is not on the branch the env vars are scoped to",
        ));
    }
    if commit.sha.len() < 7 || !commit.sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::config(format!(
            "commit {:?} is not a hexadecimal SHA",
            commit.sha.escape_debug().take(64).collect::<String>()
        )));
    }
    split_repo(&commit.repo)
}

/// `owner/name` → (`owner`, `name`).
fn split_repo(repo: &str) -> Result<(&str, &str)> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match repo.split_once('/') {
        Some((org, name)) if ok(org) && ok(name) => Ok((org, name)),
        _ => Err(Error::config(format!(
            "repository {repo:?} is not of the form owner/name"
        ))),
    }
}
