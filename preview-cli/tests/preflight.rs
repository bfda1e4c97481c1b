//! Hostile configurations and pull requests meet the built `preview` binary and the HTTP fakes of
//! the three APIs (issue 14, acceptance 4 and 5): whatever can be checked before the first mutating
//! request is checked before it, and a refusal is exit code 2 with nothing touched.
//!
//! - Files named by `preview.toml` (a PR can edit it) stay inside the repository: an absolute
//!   `body_file`, a `..` escape, a symbolic link out of the checkout, `/proc/self/environ`, a FIFO,
//!   a hook `workdir` outside: each is exit 2 naming the file, line and field, and not one request
//!   of any kind is sent.
//! - A head branch no provider accepts (a newline, ANSI escapes, 10,000 characters) and a missing
//!   `flyctl` are refused before the first mutating request.
//!
//! No PostgreSQL: every run here ends before a database is reached.

mod common;
mod world;

use std::path::Path;

use preview_core::PrState;
use world::*;

/// Every request any fake received: (fly, vercel, github, the app).
async fn requests(w: &World) -> (usize, usize, usize, usize) {
    (
        w.fly.exchanges().len(),
        w.vercel.exchanges().len(),
        w.github.exchanges().len(),
        w.app.received_requests().await.unwrap_or_default().len(),
    )
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in the config"))
        + 1
}

/// Rewrites the world's config with `from` replaced by `to`; returns the line where `to` starts.
fn edit(w: &World, from: &str, to: &str) -> usize {
    let mut text = std::fs::read_to_string(&w.config).unwrap();
    replace(&mut text, from, to);
    std::fs::write(&w.config, &text).unwrap();
    line_of(&text, to.lines().next().unwrap_or(to))
}

/// No token, master secret or imported secret in `out`.
fn assert_no_credentials(out: &Output) {
    for s in [
        FLY_TOKEN,
        VERCEL_TOKEN,
        GITHUB_TOKEN,
        MASTER,
        ANTHROPIC,
        OPENAI,
    ] {
        for f in common::forms(s) {
            assert!(
                !out.stdout.contains(&f) && !out.stderr.contains(&f),
                "a credential leaked\n{out:?}"
            );
        }
    }
}

const BODY: &str = r#"body_file = "seed/activities-planner.json""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_file_outside_the_repository_is_refused_before_any_request() {
    let w = World::start_without_postgres(Tweaks::default()).await;
    w.github.set_pull_request(pr(42, PrState::Open));
    let seed = w.dir.join(".github/seed");
    // Outside the repository (the world's directory, which holds `.git`), and links to it.
    let outside = w.dir.with_extension("outside.json");
    std::fs::write(&outside, r#"{"stolen": true}"#).unwrap();
    std::os::unix::fs::symlink(&outside, seed.join("link.json")).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", seed.join("environ.json")).unwrap();
    std::os::unix::fs::symlink("/proc/self", seed.join("proc")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        seed.join("fifo.json").as_path(),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let escape = format!(
        "../{}",
        Path::new(&outside).file_name().unwrap().to_string_lossy()
    );
    let cases: Vec<(String, &str)> = vec![
        ("/etc/passwd".into(), "is an absolute path"),
        ("/proc/self/environ".into(), "is an absolute path"),
        (format!("../{escape}"), "leaves the repository"),
        (
            "../../../../../../../../../../proc/self/environ".into(),
            "leaves the repository",
        ),
        ("seed/link.json".into(), "symbolic link"),
        ("seed/environ.json".into(), "symbolic link"),
        ("seed/proc/environ".into(), "symbolic link"),
        ("seed/fifo.json".into(), "not a regular file"),
    ];
    let mut current = BODY.to_string();
    for (path, why) in cases {
        let to = format!("body_file = {path:?}");
        let line = edit(&w, &current, &to);
        current = to;
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 2, "{path}: {out:?}");
        let expected = format!(
            "error: {}:{line}: seed.requests[0].body_file: ",
            w.config.display()
        );
        assert!(out.stderr.starts_with(&expected), "{path}: {out:?}");
        assert!(out.stderr.contains(why), "{path}: {out:?}");
        assert!(!out.stderr.contains("stolen"), "{out:?}");
        assert_no_credentials(&out);
        assert_eq!(requests(&w).await, (0, 0, 0, 0), "{path}: {out:?}");
        // `plan` refuses it the same way, and `exec` (which renders the same files).
        let plan = w.run(&["plan", "--pr", "42"], &[]).await;
        assert_eq!(plan.code, 2, "{path}: {plan:?}");
        assert!(plan.stderr.starts_with(&expected), "{path}: {plan:?}");
        let exec = w.run(&["exec", "--pr", "42", "--", "true"], &[]).await;
        assert_eq!(exec.code, 2, "{path}: {exec:?}");
        assert_eq!(requests(&w).await, (0, 0, 0, 0), "{path}: {exec:?}");
    }
    std::fs::remove_file(outside).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_workdir_outside_the_repository_is_refused_before_any_request() {
    let w = World::start_without_postgres(Tweaks::default()).await;
    w.github.set_pull_request(pr(42, PrState::Open));
    std::os::unix::fs::symlink("/etc", w.dir.join("etc")).unwrap();
    let mut current = r#"workdir = ".."
timeout = "10m""#
        .to_string();
    for (dir, why) in [
        ("../..", "leaves the repository"),
        ("/tmp", "is an absolute path"),
        ("../etc", "symbolic link"),
        ("seed/activities-planner.json", "not a directory"),
    ] {
        let to = format!("workdir = {dir:?}\ntimeout = \"10m\"");
        let line = edit(&w, &current, &to);
        current = to;
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 2, "{dir}: {out:?}");
        let expected = format!("error: {}:{line}: hooks[0].workdir: ", w.config.display());
        assert!(out.stderr.starts_with(&expected), "{dir}: {out:?}");
        assert!(out.stderr.contains(why), "{dir}: {out:?}");
        assert_no_credentials(&out);
        assert_eq!(requests(&w).await, (0, 0, 0, 0), "{dir}: {out:?}");
    }
}

/// (fly, vercel, github) mutating requests so far.
fn mutating(w: &World) -> (usize, usize, usize) {
    w.mutations()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_head_branches_are_refused_before_the_first_mutating_request() {
    let w = World::start_without_postgres(Tweaks::default()).await;
    let long = "a".repeat(10_000);
    for (n, branch, why) in [
        (
            42,
            "feature/new\nline",
            "character 12 is a control character",
        ),
        (
            43,
            "feature/\u{1b}[31mred\u{1b}[0m",
            "character 9 is a control character",
        ),
        (44, long.as_str(), "it has 10000 characters"),
    ] {
        let mut p = pr(n, PrState::Open);
        p.head_branch = branch.to_string();
        w.github.set_pull_request(p);
        let out = w.run(&["deploy", "--pr", &n.to_string()], &[]).await;
        assert_eq!(out.code, 2, "{branch:?}: {out:?}");
        assert!(
            out.stderr.contains(&format!(
                "error: preflight (nothing was changed): vercel: the PR's head branch cannot scope env vars: {why}"
            )),
            "{out:?}"
        );
        // Said once for both apps, and never echoed: no escape reaches the terminal.
        assert_eq!(out.stderr.matches("head branch").count(), 1, "{out:?}");
        assert!(!out.stderr.contains('\u{1b}'), "{out:?}");
        assert!(!out.stderr.contains(&long[..300]), "{out:?}");
        assert_eq!(mutating(&w), (0, 0, 0), "{branch:?}: {out:?}");
        assert!(w.github.comments(n as u32).is_empty());
        assert!(w.fly.apps().is_empty());
        assert_no_credentials(&out);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_flyctl_or_hook_program_is_found_before_the_first_mutating_request() {
    let w = World::start_without_postgres(Tweaks {
        migrate: r#"["preview-test-no-such-program", "db:migrate"]"#,
        ..Tweaks::default()
    })
    .await;
    w.github.set_pull_request(pr(42, PrState::Open));
    let out = w
        .run(
            &["deploy", "--pr", "42"],
            &[("FLYCTL", "/nonexistent/bin/flyctl")],
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("\nerror: preflight (nothing was changed): 2 problems:\n"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(
            "  - fly: the tunnels the hooks need are opened with flyctl, which cannot be started: /nonexistent/bin/flyctl does not exist; install flyctl (https://fly.io/docs/flyctl/install/) or set FLYCTL to its path\n"
        ),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(
            "  - hook migrate: cannot start \"preview-test-no-such-program\": \"preview-test-no-such-program\" is not on PATH"
        ),
        "{out:?}"
    );
    assert_eq!(mutating(&w), (0, 0, 0), "{out:?}");
    assert!(w.github.comments(42).is_empty());

    // flyctl looked up on PATH, as when FLYCTL is not set.
    let mut env: Vec<(String, String)> =
        w.env().into_iter().filter(|(k, _)| k != "FLYCTL").collect();
    env.push(("PATH".into(), "/nonexistent".into()));
    let out = w.run_with(&["deploy", "--pr", "42"], env).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("flyctl, which cannot be started: \"flyctl\" is not on PATH"),
        "{out:?}"
    );
    assert_eq!(mutating(&w), (0, 0, 0), "{out:?}");
}
