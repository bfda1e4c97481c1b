//! The `preview` binary: the README's quick start, exit codes, JSON output and help text.

use std::process::{Command, Output};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);

/// Runs the built binary with a clean environment (no token of any kind).
fn preview(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preview"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn plan_for_pr_42_works_without_any_account() {
    let out = preview(&["plan", "--config", EXAMPLE, "--pr", "42"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "environment pr-42-agents",
        "app        pr-42-agents",
        "pr-42-api.preview.inkeep.com",
        "pr-42-ui.preview.inkeep.com",
        "api/INKEEP_AGENTS_MANAGE_DATABASE_URL",
        "ui/PUBLIC_INKEEP_AGENTS_API_URL",
        "hook  migrate",
        "hook  auth-init",
        "run: pnpm db:migrate",
        "postgresql://appuser:<secret:pg_password>@pr-42-agents.fly.dev:5432/inkeep_agents?sslmode=require",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
}

#[test]
fn plan_json_is_one_document_with_keys_per_app() {
    let out = preview(&["plan", "--config", EXAMPLE, "--pr", "42", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("exactly one JSON document");
    assert_eq!(v["name"], "pr-42-agents");
    assert_eq!(v["pr"], 42);
    let apps = v["apps"].as_array().unwrap();
    let keys = |app: &str| -> Vec<String> {
        apps.iter()
            .filter(|r| r["kind"] == "env_var")
            .filter_map(|r| r["id"].as_str())
            .filter_map(|id| id.strip_prefix(&format!("{app}/")).map(String::from))
            .collect()
    };
    assert_eq!(keys("api").len(), 18);
    assert_eq!(keys("ui").len(), 6);
    assert!(keys("api").contains(&"SPICEDB_PRESHARED_KEY".to_string()));
    let hooks: Vec<&str> = v["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert_eq!(hooks, ["migrate", "auth-init"]);
}

#[test]
fn the_plan_shows_no_secret_even_when_the_environment_holds_them() {
    let sentinel = "SENTINEL-token-0123456789";
    let out = Command::new(env!("CARGO_BIN_EXE_preview"))
        .args(["plan", "--config", EXAMPLE, "--pr", "42", "--json"])
        .env("FLY_API_TOKEN", sentinel)
        .env("VERCEL_TOKEN", sentinel)
        .env("GITHUB_TOKEN", sentinel)
        .env("PREVIEW_MASTER_SECRET", sentinel)
        .env("ANTHROPIC_API_KEY", sentinel)
        .env("OPENAI_API_KEY", sentinel)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!text(&out.stdout).contains("SENTINEL"));
    assert!(!text(&out.stderr).contains("SENTINEL"));
}

#[test]
fn help_teaches_and_never_shows_token_values() {
    let sentinel = "SENTINEL-token-0123456789";
    for args in [
        &["--help"][..],
        &["deploy", "--help"][..],
        &["plan", "--help"][..],
        &["sweep", "--help"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_preview"))
            .args(args)
            .env("FLY_API_TOKEN", sentinel)
            .env("VERCEL_TOKEN", sentinel)
            .env("GITHUB_TOKEN", sentinel)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        assert!(!help.contains("SENTINEL"), "{help}");
        assert!(help.contains("Exit codes") || args[0] != "--help", "{help}");
    }
    let top = text(&preview(&["--help"]).stdout);
    for cmd in [
        "plan",
        "deploy",
        "teardown",
        "sweep",
        "status",
        "exec",
        "FLY_API_TOKEN",
        "3  skipped",
    ] {
        assert!(top.contains(cmd), "{cmd}: {top}");
    }
}

#[test]
fn config_errors_exit_2_naming_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("preview-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    let cases = [
        (
            "unknown-key",
            example.replacen("region = \"iad\"", "region = \"iad\"\nregoin = \"x\"", 1),
            "unknown field `regoin`",
        ),
        (
            "wrong-type",
            example.replacen("cpus = 4", "cpus = \"four\"", 1),
            "cpus",
        ),
        (
            "undefined",
            example.replacen("${secrets.auth_secret}", "${secrets.auth}", 1),
            "`${secrets.auth}` is not defined",
        ),
        (
            "bad-name",
            example.replacen("suffix = \"agents\"", "suffix = \"Agents!\"", 1),
            "naming",
        ),
    ];
    for (name, text_, expect) in cases {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text_).unwrap();
        let out = preview(&["plan", "--config", path.to_str().unwrap(), "--pr", "42"]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with(&format!("error: {}:", path.display())),
            "{name}: {err}"
        );
        assert!(err.contains(expect), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: nothing printed on stdout");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["plan", "--config", EXAMPLE, "--pr", "0"][..],
        &["plan", "--config", EXAMPLE, "--pr", "abc"],
        &["plan"],
        &["frobnicate"],
    ] {
        let out = preview(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = preview(&["plan", "--config", "/nonexistent/preview.toml", "--pr", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/preview.toml"));
}

#[test]
fn deploy_without_a_repository_is_a_usage_error() {
    let out = preview(&["deploy", "--config", EXAMPLE, "--pr", "42"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--repo OWNER/NAME is required"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn deploy_without_a_master_secret_says_how_to_make_one() {
    let out = preview(&[
        "deploy",
        "--config",
        EXAMPLE,
        "--pr",
        "42",
        "--repo",
        "inkeep/agents",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("PREVIEW_MASTER_SECRET is not set"), "{err}");
    assert!(err.contains("openssl rand"), "{err}");
}

#[cfg(unix)]
#[test]
fn sigint_stops_a_stuck_deploy_quickly_with_the_cancelled_code() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    // A GitHub API that accepts connections and never answers: the deploy blocks in its first call.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(4).flatten() {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(20));
        drop(held);
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_preview"))
        .args([
            "deploy",
            "--config",
            EXAMPLE,
            "--pr",
            "42",
            "--repo",
            "inkeep/agents",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GITHUB_API_URL", format!("http://{addr}"))
        .env("GITHUB_TOKEN", "t")
        .env("FLY_API_TOKEN", "t")
        .env("VERCEL_TOKEN", "t")
        .env("VERCEL_TEAM_ID", "team_1")
        .env("VERCEL_API_PROJECT_ID", "prj_api")
        .env("VERCEL_UI_PROJECT_ID", "prj_ui")
        .env("ANTHROPIC_API_KEY", "k")
        .env("OPENAI_API_KEY", "k")
        .env("PREVIEW_MASTER_SECRET", "m".repeat(40))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let sent = Instant::now();
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(7),
            "still running 7 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    drop(hold);
}

const MINIMAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/minimal/preview.toml"
);

/// `preview plan` of `config` for a PR, in both forms (text, `--json`), exactly as printed.
/// `full`: every input known (repository, branch, commit, the project ids from the environment);
/// otherwise nothing is (a fresh clone, no variable set), so placeholders show.
fn plan_outputs(config: &str, full: bool) -> (String, String) {
    let run = |json: bool| {
        let mut args = vec!["plan", "--config", config, "--pr", "42"];
        if full {
            args.extend([
                "--repo",
                "inkeep/agents",
                "--branch",
                "feat/snapshots",
                "--sha",
                "0123456789abcdef0123456789abcdef01234567",
            ]);
        }
        if json {
            args.push("--json");
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_preview"));
        cmd.args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        if full {
            cmd.env("VERCEL_API_PROJECT_ID", "prj_api")
                .env("VERCEL_UI_PROJECT_ID", "prj_ui")
                .env("VERCEL_PROJECT_ID", "prj_web");
        }
        let out = cmd.output().expect("the binary runs");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    (run(false), run(true))
}

/// The plans of both examples, byte for byte: the re-layout of the pipeline (issue 15) must not
/// change a character of them.
#[test]
fn the_plans_of_both_examples_are_unchanged() {
    let (text_, json) = plan_outputs(EXAMPLE, false);
    insta::assert_snapshot!("plan_inkeep_agents", text_);
    insta::assert_snapshot!("plan_inkeep_agents_json", json);
    let (text_, json) = plan_outputs(EXAMPLE, true);
    insta::assert_snapshot!("plan_inkeep_agents_full", text_);
    insta::assert_snapshot!("plan_inkeep_agents_full_json", json);
    let (text_, json) = plan_outputs(MINIMAL, false);
    insta::assert_snapshot!("plan_minimal", text_);
    insta::assert_snapshot!("plan_minimal_json", json);
    let (text_, json) = plan_outputs(MINIMAL, true);
    insta::assert_snapshot!("plan_minimal_full", text_);
    insta::assert_snapshot!("plan_minimal_full_json", json);
}
