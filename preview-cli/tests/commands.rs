//! The commands end to end, in-process, over the in-memory hosts: deploy, re-deploy, status,
//! teardown, sweep, and GitHub Actions mode (masks first, outputs, summary, fork skip).

mod common;

use common::{Buf, Memory, memory};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use preview_cli::context::Env;
use preview_core::PrState;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);
const MASTER: &str = "test-master-secret-0123456789-abcdefghijklmnop";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

struct Run {
    code: u8,
    stdout: String,
    stderr: String,
}

fn base_env() -> Vec<(String, String)> {
    [
        ("PREVIEW_MASTER_SECRET", MASTER),
        ("GITHUB_REPOSITORY", "inkeep/agents"),
        ("VERCEL_API_PROJECT_ID", "prj_api"),
        ("VERCEL_UI_PROJECT_ID", "prj_ui"),
        ("ANTHROPIC_API_KEY", "SENTINEL-anthropic"),
        ("OPENAI_API_KEY", "SENTINEL-openai"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

async fn run(m: &Memory, env: &[(String, String)], args: &[&str]) -> Run {
    let vars: Vec<(String, String)> = env.to_vec();
    let env: Env =
        Arc::new(move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
    let (out, err) = (Buf::default(), Buf::default());
    let ctx = common::context(m, env, &out, &err);
    let code = common::run_cli(&ctx, EXAMPLE, args).await;
    Run {
        code,
        stdout: out.text(),
        stderr: err.text(),
    }
}

/// Every sensitive value of PR `n`'s environment, derived forms included.
fn sensitive(n: u32) -> Vec<String> {
    let env = |k: &str| base_env().into_iter().find(|(n, _)| n == k).map(|(_, v)| v);
    common::derived_secrets(Path::new(EXAMPLE), u64::from(n), MASTER, env)
}

#[tokio::test]
async fn deploy_redeploy_status_teardown_sweep() {
    let m = memory();
    let env = base_env();
    m.source.open_pr(42, "feature/login", SHA);
    let r = run(&m, &env, &["deploy", "--pr", "42"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("pr-42-agents is ready"), "{}", r.stdout);
    assert!(
        r.stdout.contains("https://pr-42-ui.preview.inkeep.com"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("✓ database"),
        "progress per phase: {}",
        r.stderr
    );
    assert!(
        !r.stdout.contains("::add-mask::") && !r.stderr.contains("::add-mask::"),
        "no mask lines outside Actions"
    );

    m.db.clear_calls();
    m.apps.clear_calls();
    m.source.clear_calls();
    let again = run(&m, &env, &["deploy", "--pr", "42", "--json"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    // JSON Lines: the phases as they run, then the result document as the last line.
    let last = again.stdout.lines().last().unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_str(last).expect("the result document");
    assert_eq!(doc["status"], "ready");
    assert_eq!(
        m.db.mutating_calls() + m.apps.mutating_calls() + m.source.mutating_calls(),
        0
    );

    m.source.open_pr(7, "other", SHA);
    assert_eq!(run(&m, &env, &["deploy", "--pr", "7"]).await.code, 0);
    let status = run(&m, &env, &["status", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let table = run(&m, &env, &["status"]).await;
    assert!(
        table.stdout.contains("pr-42-agents") && table.stdout.contains("open"),
        "{}",
        table.stdout
    );

    let t = run(&m, &env, &["teardown", "--pr", "42"]).await;
    assert_eq!(t.code, 0, "{}", t.stderr);
    assert_eq!(m.db.names(), ["pr-7-agents"]);
    assert_eq!(
        m.source.report("pr-42-agents").unwrap().state,
        preview_core::ReportState::TornDown
    );
    assert_eq!(
        run(&m, &env, &["teardown", "--pr", "42"]).await.code,
        0,
        "teardown twice"
    );

    m.source
        .set_state(preview_core::PrNumber::new(7).unwrap(), PrState::Closed);
    // Older than the grace period (1 h in the example).
    m.db.set_created_at(
        "pr-7-agents",
        jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2),
    );
    let dry = run(&m, &env, &["sweep", "--dry-run"]).await;
    assert_eq!(dry.code, 0);
    assert!(
        dry.stdout.contains("would remove     pr-7-agents"),
        "{}",
        dry.stdout
    );
    assert_eq!(m.db.names(), ["pr-7-agents"]);
    let swept = run(&m, &env, &["sweep"]).await;
    assert_eq!(swept.code, 0, "{}", swept.stderr);
    assert!(
        swept.stdout.contains("removed          pr-7-agents"),
        "{}",
        swept.stdout
    );
    assert!(m.db.names().is_empty());

    for r in [&again, &status, &t, &dry, &swept] {
        for s in sensitive(42).iter().chain(sensitive(7).iter()) {
            assert!(!r.stdout.contains(s.as_str()) && !r.stderr.contains(s.as_str()));
        }
    }
}

#[tokio::test]
async fn a_failing_hook_reports_on_the_pr_and_exits_1() {
    let m = memory();
    m.source.open_pr(42, "b", SHA);
    m.hooks.fail("migrate");
    let r = run(&m, &base_env(), &["deploy", "--pr", "42", "--json"]).await;
    assert_eq!(r.code, 1);
    // After the phase lines, the last line is the failure document.
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let doc = lines.last().unwrap();
    assert_eq!(doc["phase"], "hooks");
    assert!(
        lines.iter().any(|e| e["event"] == "phase_finished"
            && e["phase"] == "hooks"
            && e["outcome"] == "failed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("error: hooks: hook migrate"),
        "{}",
        r.stderr
    );
    assert!(
        matches!(m.source.report("pr-42-agents").unwrap().state, preview_core::ReportState::Failed { ref phase, .. } if phase == "hooks")
    );
}

fn actions_env(dir: &std::path::Path, event: serde_json::Value) -> Vec<(String, String)> {
    let event_path = dir.join("event.json");
    std::fs::write(&event_path, event.to_string()).unwrap();
    let mut env = base_env();
    for (k, v) in [
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_EVENT_PATH", event_path.display().to_string()),
        ("GITHUB_OUTPUT", dir.join("output").display().to_string()),
        (
            "GITHUB_STEP_SUMMARY",
            dir.join("summary").display().to_string(),
        ),
        ("GITHUB_SERVER_URL", "https://github.com".into()),
        ("GITHUB_RUN_ID", "99".into()),
    ] {
        env.push((k.into(), v));
    }
    env
}

fn pr_event(number: u32, head_repo: &str) -> serde_json::Value {
    serde_json::json!({
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "head": { "ref": "feature/x", "sha": SHA, "repo": { "full_name": head_repo } },
            "base": { "ref": "main", "sha": SHA, "repo": { "full_name": "inkeep/agents" } }
        }
    })
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("preview-cmd-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn in_actions_every_secret_is_masked_before_anything_else() {
    let m = memory();
    m.source.open_pr(42, "feature/x", SHA);
    let dir = tempdir("mask");
    let r = run(
        &m,
        &actions_env(&dir, pr_event(42, "inkeep/agents")),
        &["deploy"],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let first_other = lines
        .iter()
        .position(|l| !l.starts_with("::add-mask::"))
        .unwrap();
    assert!(first_other > 0);
    let masked: Vec<&str> = lines[..first_other]
        .iter()
        .map(|l| &l["::add-mask::".len()..])
        .collect();
    for s in sensitive(42) {
        assert!(
            masked.contains(&s.as_str()),
            "not masked up front: a value of {} chars",
            s.len()
        );
        for (i, l) in lines.iter().enumerate() {
            assert!(
                !l.contains(s.as_str()) || l.starts_with("::add-mask::"),
                "line {i} shows a secret"
            );
        }
        assert!(!r.stderr.contains(s.as_str()));
    }
    assert!(r.stdout.contains("::group::"), "phases are log groups");
    let outputs = std::fs::read_to_string(dir.join("output")).unwrap();
    assert!(
        outputs.contains("api_url=https://pr-42-api.preview.inkeep.com"),
        "{outputs}"
    );
    assert!(outputs.contains("environment=pr-42-agents"));
    let summary = std::fs::read_to_string(dir.join("summary")).unwrap();
    assert!(
        summary.contains("| Manage UI | https://pr-42-ui.preview.inkeep.com |"),
        "{summary}"
    );
    for s in sensitive(42) {
        assert!(!outputs.contains(s.as_str()) && !summary.contains(s.as_str()));
    }
    assert_eq!(
        m.source.report("pr-42-agents").unwrap().run_url.as_deref(),
        Some("https://github.com/inkeep/agents/actions/runs/99")
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn a_fork_pr_is_skipped_before_any_secret_is_read() {
    let m = memory();
    let dir = tempdir("fork");
    let mut env = actions_env(&dir, pr_event(5, "mallory/agents"));
    // No master secret and no tokens: a fork run must not even look for them.
    env.retain(|(k, _)| k != "PREVIEW_MASTER_SECRET");
    let r = run(&m, &env, &["deploy"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("skipped: pull request #5 comes from a fork"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("::add-mask::"));
    assert!(m.source.calls().is_empty() && m.db.calls().is_empty());
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn closed_prs_exit_with_the_skipped_code() {
    let m = memory();
    let pr = m.source.open_pr(9, "b", SHA);
    m.source.set_state(pr, PrState::Merged);
    let r = run(&m, &base_env(), &["deploy", "--pr", "9"]).await;
    assert_eq!(r.code, 3);
    assert!(
        r.stdout.contains("skipped: pull request #9 is merged"),
        "{}",
        r.stdout
    );
}
