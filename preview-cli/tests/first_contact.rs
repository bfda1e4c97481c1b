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
