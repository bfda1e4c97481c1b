//! Embeds the commit `preview` was built from in `preview --version`
//! (`preview 0.1.0 (abc1234 2026-12-05)`), so a release binary, a bug report or a runner's log
//! names the exact source.
//!
//! The commit comes from `git` when the sources are a checkout, else from the
//! `.cargo_vcs_info.json` that `cargo package` writes into a published crate (so `cargo install`
//! knows it too, without the date). Neither is required: without them the build says `unknown`
//! and never fails.

// Cargo reads a build script's instructions from its stdout.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let vcs_info = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok();
    let git = |args: &[&str]| run("git", &dir, args);
    println!(
        "cargo:rustc-env=PREVIEW_BUILD_INFO={}",
        build_info(&git, vcs_info.as_deref())
    );
    println!("cargo:rerun-if-changed=build.rs");
    // A new commit or a checkout of another branch changes HEAD or the ref it points to.
    for path in ["HEAD", "packed-refs"] {
        rerun_if_changed(&git, path);
    }
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        rerun_if_changed(&git, &head_ref);
    }
}

/// `SHA DATE` (short commit, commit date), `SHA` when only the commit is known, else `unknown`.
///
/// A packaged crate's own record comes first: unpacked inside some other repository (a vendored
/// copy), `git` would name that repository's commit.
pub(crate) fn build_info(
    git: &dyn Fn(&[&str]) -> Option<String>,
    vcs_info: Option<&str>,
) -> String {
    let is_sha = |sha: &String| sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit());
    if let Some(sha) = vcs_info.and_then(vcs_info_sha1).filter(is_sha) {
        return sha[..7].to_string();
    }
    let Some(sha) = git(&["rev-parse", "--short=7", "HEAD"]).filter(is_sha) else {
        return "unknown".into();
    };
    let short = &sha[..7];
    match git(&["log", "-1", "--date=short", "--format=%cd", "HEAD"]) {
        Some(date) if !date.is_empty() => format!("{short} {date}"),
        _ => short.to_string(),
    }
}

/// The commit in `.cargo_vcs_info.json` (`{"git": {"sha1": "…"}, …}`), without a JSON parser.
fn vcs_info_sha1(text: &str) -> Option<String> {
    let rest = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let value = rest.strip_prefix('"')?;
    Some(value[..value.find('"')?].to_string())
}

/// The trimmed stdout of `program args…` run in `dir`, or `None` when it cannot run or fails.
pub(crate) fn run(program: &str, dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}

fn rerun_if_changed(git: &dyn Fn(&[&str]) -> Option<String>, path: &str) {
    if let Some(file) = git(&["rev-parse", "--path-format=absolute", "--git-path", path]) {
        if Path::new(&file).exists() {
            println!("cargo:rerun-if-changed={file}");
        }
    }
}
