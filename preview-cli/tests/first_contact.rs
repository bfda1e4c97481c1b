//! First contact (issue 12 item 4): the errors a newcomer meets first, each with its exact
//! behaviour and exit code, from the built `preview` binary.
//!
//! - a network failure names the provider, the host, the cause and how long it tried, and a
//!   refused connection does not spend the whole retry budget;
//! - every missing credential or setting is reported in one run;
//! - `--pr -1` gets the same range message as `--pr 0`;
//! - a closed stdout (`plan --json | head`) ends quietly with the command's own exit code;
//! - colour only on a terminal, `NO_COLOR` and `CLICOLOR_FORCE` respected;
//! - `exec --pr 42 pnpm …` without `--` says to add `--`.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);
const PREVIEW: &str = env!("CARGO_BIN_EXE_preview");

const FLY_TOKEN: &str = "fly-token-SENTINEL-first";
const VERCEL_TOKEN: &str = "vercel-token-SENTINEL-first";
const GITHUB_TOKEN: &str = "github-token-SENTINEL-first";
const MASTER: &str = "first-contact-master-SENTINEL-0123456789abcdef";

/// Everything a deploy of the example needs, with the three APIs at `fly`, `vercel`, `github`.
fn full_env(fly: &str, vercel: &str, github: &str) -> Vec<(&'static str, String)> {
    vec![
        ("FLY_API_TOKEN", FLY_TOKEN.into()),
        ("FLY_API_URL", fly.into()),
        ("VERCEL_TOKEN", VERCEL_TOKEN.into()),
        ("VERCEL_TEAM_ID", "team_first".into()),
        ("VERCEL_API_URL", vercel.into()),
        ("VERCEL_API_PROJECT_ID", "prj_api".into()),
        ("VERCEL_UI_PROJECT_ID", "prj_ui".into()),
        ("GITHUB_TOKEN", GITHUB_TOKEN.into()),
        ("GITHUB_API_URL", github.into()),
        ("GITHUB_REPOSITORY", "inkeep/agents".into()),
        ("PREVIEW_MASTER_SECRET", MASTER.into()),
        ("ANTHROPIC_API_KEY", "sk-ant-SENTINEL-first".into()),
        ("OPENAI_API_KEY", "sk-openai-SENTINEL-first".into()),
    ]
}

/// `preview ARGS` with exactly `env` (and PATH), stdout and stderr captured.
fn preview(args: &[&str], env: &[(&str, String)]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(PREVIEW)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("the binary runs");
    (out, start.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// No token, master secret or imported secret in either stream.
fn assert_no_credentials(out: &Output) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for s in [FLY_TOKEN, VERCEL_TOKEN, GITHUB_TOKEN, MASTER] {
        for f in common::forms(s) {
            assert!(!all.contains(&f), "a credential leaked:\n{all}");
        }
    }
    assert!(!all.contains("SENTINEL"), "a secret leaked:\n{all}");
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The last line of stderr (the error).
fn last_line(out: &Output) -> String {
    text(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Network failures.

#[test]
fn a_refused_connection_names_provider_host_cause_and_time_and_fails_fast() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let (out, elapsed) = preview(
        &["--config", EXAMPLE, "deploy", "--pr", "42"],
        &full_env(&url, &url, &url),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = last_line(&out);
    // The PR is read first (GitHub): three attempts, then the cause.
    let prefix = "error: observe: github GET pull request 42: gave up after 3 attempt(s) in ";
    assert!(err.starts_with(prefix), "{err}");
    let took = &err[prefix.len()..];
    let took = took.split(':').next().unwrap_or_default();
    assert!(
        took.ends_with("ms") || took.ends_with('s'),
        "how long it tried: {err}"
    );
    assert!(
        err.contains(&format!(
            ": github: connection to 127.0.0.1:{port} refused (nothing listens there): "
        )),
        "{err}"
    );
    // Not the whole retry budget (about 25 s before): three attempts, two short back-offs.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_no_credentials(&out);
}

#[test]
fn a_tls_failure_names_provider_host_and_cause() {
    // A server that answers TLS with plain HTTP (a wrong scheme or port in GITHUB_API_URL).
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = plain.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in plain.incoming().flatten() {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let (out, elapsed) = preview(
        &["--config", EXAMPLE, "deploy", "--pr", "42"],
        &full_env(&dead, &dead, &format!("https://127.0.0.1:{port}")),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = last_line(&out);
    assert!(
        err.starts_with(
            "error: observe: github GET pull request 42: gave up after 3 attempt(s) in "
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            ": github: TLS handshake with 127.0.0.1:{port} failed: "
        )),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_no_credentials(&out);
}

// ---------------------------------------------------------------------------------------------
// Missing settings: all of them, in one run.

#[test]
fn every_missing_setting_is_reported_in_one_run() {
    let dead = format!("http://127.0.0.1:{}", closed_port());
    // Nothing but the API URLs (at a closed port: a check that let anything through would fail
    // differently, never reach the network).
    let urls = vec![
        ("FLY_API_URL", dead.clone()),
        ("VERCEL_API_URL", dead.clone()),
        ("GITHUB_API_URL", dead.clone()),
    ];
    let (out, _) = preview(&["--config", EXAMPLE, "deploy", "--pr", "42"], &urls);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let config = EXAMPLE;
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: 9 settings are missing or invalid:
  - --repo OWNER/NAME is required (or set GITHUB_REPOSITORY)
  - FLY_API_TOKEN is not set: the Fly.io token (fly tokens create org) (or put it in a file and set FLY_API_TOKEN_FILE)
  - VERCEL_TOKEN is not set: the Vercel token (or put it in a file and set VERCEL_TOKEN_FILE)
  - GITHUB_TOKEN is not set: a GitHub token (in Actions: secrets.GITHUB_TOKEN) (or put it in a file and set GITHUB_TOKEN_FILE)
  - PREVIEW_MASTER_SECRET is not set: generated secrets are derived from it so re-runs do not rotate them; create one with `openssl rand -base64 48` and store it as a repository secret (or put it in a file and set PREVIEW_MASTER_SECRET_FILE)
  - {config}: secrets.anthropic_api_key: environment variable ANTHROPIC_API_KEY is not set (set it, e.g. from a repository secret)
  - {config}: secrets.openai_api_key: environment variable OPENAI_API_KEY is not set (set it, e.g. from a repository secret)
  - {config}: apps.api.project_from_env: environment variable VERCEL_API_PROJECT_ID is not set
  - {config}: apps.ui.project_from_env: environment variable VERCEL_UI_PROJECT_ID is not set
"
        )
    );
    assert!(out.stdout.is_empty());

    // Teardown needs no secret: only what it reads.
    let (out, _) = preview(&["--config", EXAMPLE, "teardown", "--pr", "42"], &urls);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: 6 settings are missing or invalid:\n"),
        "{err}"
    );
    assert!(!err.contains("PREVIEW_MASTER_SECRET"), "{err}");
    assert!(!err.contains("ANTHROPIC_API_KEY"), "{err}");

    // Two left: both, and nothing else.
    let mut env = full_env(&dead, &dead, &dead);
    env.retain(|(k, _)| !["GITHUB_TOKEN", "OPENAI_API_KEY"].contains(k));
    let (out, _) = preview(&["--config", EXAMPLE, "deploy", "--pr", "42"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: 2 settings are missing or invalid:\n  - GITHUB_TOKEN is not set"),
        "{err}"
    );
    assert!(
        err.contains(
            "\n  - {config}: secrets.openai_api_key:"
                .replace("{config}", config)
                .as_str()
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 3, "{err}");
    assert_no_credentials(&out);

    // One left: said as it is.
    let mut env = full_env(&dead, &dead, &dead);
    env.retain(|(k, _)| *k != "VERCEL_TOKEN");
    let (out, _) = preview(&["--config", EXAMPLE, "status"], &env);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "error: VERCEL_TOKEN is not set: the Vercel token (or put it in a file and set VERCEL_TOKEN_FILE)\n"
    );
}

// ---------------------------------------------------------------------------------------------
// `--pr -1`.

#[test]
fn a_negative_pr_gets_the_range_message_of_pr_zero() {
    for cmd in [
        &["plan"][..],
        &["deploy"][..],
        &["teardown"][..],
        &["exec", "--", "true"][..],
    ] {
        for n in ["0", "-1", "-42"] {
            let mut args = vec!["--config", EXAMPLE, cmd[0], "--pr", n];
            args.extend_from_slice(&cmd[1..]);
            let (out, _) = preview(&args, &[]);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{args:?}: {}",
                text(&out.stderr)
            );
            assert_eq!(
                text(&out.stderr),
                format!(
                    "error: --pr: invalid PR number {n}: expected an integer from 1 to 2147483647\n"
                ),
                "{args:?}"
            );
            assert!(out.stdout.is_empty());
        }
    }
    let (out, _) = preview(&["--config", EXAMPLE, "plan", "--pr=-1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid PR number -1: expected an integer from 1 to"));
}

// ---------------------------------------------------------------------------------------------
// A closed stdout.

/// `preview ARGS` whose stdout is a pipe nobody reads any more (closed before it starts, so
/// every write meets EPIPE, as `| head` does once it has its lines).
fn with_closed_stdout(args: &[&str]) -> Output {
    let (read, write) = rustix::pipe::pipe().unwrap();
    drop(read);
    Command::new(PREVIEW)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("the binary runs")
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_commands_own_exit_code() {
    // `plan --json | head`: the plan is the whole job; a reader that stopped reading is not an
    // error (no panic, no "Broken pipe"), so the exit code is plan's own, 0.
    for args in [
        &["--config", EXAMPLE, "plan", "--pr", "42", "--json"][..],
        &["--config", EXAMPLE, "plan", "--pr", "42"][..],
    ] {
        let out = with_closed_stdout(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
    // A failing command keeps its code and says only its error.
    let out = with_closed_stdout(&["--config", EXAMPLE, "deploy", "--pr", "0", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: --pr: invalid PR number 0: expected an integer from 1 to 2147483647\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Colour.

#[test]
fn colour_only_when_asked_for_or_on_a_terminal() {
    let run = |env: &[(&str, &str)]| {
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        preview(&["--config", EXAMPLE, "plan", "--pr", "0"], &env).0
    };
    let plain = "error: --pr: invalid PR number 0: expected an integer from 1 to 2147483647\n";
    let red = "\u{1b}[1;31merror\u{1b}[0m: --pr: invalid PR number 0: expected an integer from 1 to 2147483647\n";
    // A pipe (what tests, CI logs and `2> file` are): plain text, even with TERM set.
    assert_eq!(text(&run(&[("TERM", "xterm-256color")]).stderr), plain);
    assert_eq!(text(&run(&[("CLICOLOR_FORCE", "1")]).stderr), red);
    assert_eq!(text(&run(&[("CLICOLOR_FORCE", "0")]).stderr), plain);
    assert_eq!(
        text(&run(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).stderr),
        plain
    );
    // Log lines follow the same rule: a retry warning through a pipe has no escape.
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let (out, _) = preview(
        &["--config", EXAMPLE, "deploy", "--pr", "42"],
        &full_env(&url, &url, &url),
    );
    let err = text(&out.stderr);
    assert!(err.contains("WARN"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
    let mut forced = full_env(&url, &url, &url);
    forced.push(("CLICOLOR_FORCE", "1".into()));
    let (out, _) = preview(&["--config", EXAMPLE, "deploy", "--pr", "42"], &forced);
    let err = text(&out.stderr);
    assert!(err.contains("\u{1b}[33m WARN"), "{err}");
    assert!(err.contains("\u{1b}[31m✗\u{1b}[0m observe"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// `exec` without `--`.

#[test]
fn exec_without_the_separator_says_to_add_it() {
    let hint = "error: exec: put the command after `--`, e.g. `preview exec --pr 42 -- pnpm db:migrate` (without `--`, the command's own flags would be read as preview's)\n";
    for args in [
        &["pnpm", "db:migrate"][..],
        &["pnpm", "--filter", "api", "db:migrate"][..],
        &["psql", "-c", "select 1"][..],
    ] {
        let mut argv = vec!["--config", EXAMPLE, "exec", "--pr", "42"];
        argv.extend_from_slice(args);
        let (out, _) = preview(&argv, &[]);
        assert_eq!(out.status.code(), Some(2), "{argv:?}");
        assert_eq!(text(&out.stderr), hint, "{argv:?}");
    }
    let (out, _) = preview(&["--config", EXAMPLE, "exec", "--pr", "42"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: exec: give the command after `--`, e.g. `preview exec --pr 42 -- pnpm db:migrate`\n"
    );
}
