//! `preview --version` names the version and the commit it was built from (`build.rs`), and a
//! build without git still works and says `unknown`.

use std::path::Path;
use std::process::Command;

// The build script itself (its `pub(crate)` functions), so the fallbacks are tested with the code
// that runs at build time.
#[allow(dead_code)]
#[path = "../build.rs"]
mod build;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_version_and_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_preview"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Built from this checkout: the commit and date git reports for it now (the build script
    // re-runs when HEAD moves). Without git, the documented fallback.
    let expected = match (
        git(&["rev-parse", "--short=7", "HEAD"]),
        git(&["log", "-1", "--date=short", "--format=%cd", "HEAD"]),
    ) {
        (Some(sha), Some(date)) => format!("{sha} {date}"),
        _ => "unknown".to_string(),
    };
    assert_eq!(
        stdout,
        format!("preview {} ({expected})\n", env!("CARGO_PKG_VERSION"))
    );
    // Subcommands name the same build.
    let sub = Command::new(env!("CARGO_BIN_EXE_preview"))
        .args(["deploy", "--version"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(sub.stdout).unwrap(),
        stdout.replacen("preview ", "preview-deploy ", 1)
    );
}

#[test]
fn without_git_the_build_says_unknown_and_does_not_fail() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // git not installed: running it fails, and the build script gets `None`, not a panic.
    assert_eq!(
        build::run("preview-test-no-such-git", dir, &["rev-parse", "HEAD"]),
        None
    );
    let no_git = |_: &[&str]| None;
    assert_eq!(build::build_info(&no_git, None), "unknown");
    // Not a repository (git runs and fails): the same.
    let outside = std::env::temp_dir();
    let not_a_repo = |args: &[&str]| build::run("git", &outside, args);
    if git(&["--version"]).is_some()
        && build::run("git", &outside, &["rev-parse", "--git-dir"]).is_none()
    {
        assert_eq!(build::build_info(&not_a_repo, None), "unknown");
    }
}

#[test]
fn a_packaged_crate_names_the_commit_it_was_packaged_from() {
    // What `cargo package` writes; it wins over git, which would name an enclosing repository.
    let vcs_info = r#"{
  "git": {
    "sha1": "0123456789abcdef0123456789abcdef01234567"
  },
  "path_in_vcs": "preview-cli"
}"#;
    let enclosing = |args: &[&str]| match args[0] {
        "rev-parse" => Some("fedcba9".to_string()),
        _ => Some("2020-01-01".to_string()),
    };
    assert_eq!(build::build_info(&enclosing, Some(vcs_info)), "0123456");
    assert_eq!(build::build_info(&enclosing, None), "fedcba9 2020-01-01");
    // A git that knows the commit but not its date still names the commit.
    let no_date = |args: &[&str]| (args[0] == "rev-parse").then(|| "abcdef0".to_string());
    assert_eq!(build::build_info(&no_date, None), "abcdef0");
    // Garbage is not a commit.
    let garbage = |_: &[&str]| Some("fatal: not a git repository".to_string());
    assert_eq!(build::build_info(&garbage, Some("{}")), "unknown");
}
