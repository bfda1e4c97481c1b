//! Secret-hygiene and hostile-input suites of issue 7 for the CLI, in-process over the in-memory
//! hosts, numbered as in the README's reliability table: S1 (sentinel scan of every output on
//! success and error paths), S2/S3 (mask lines only in Actions mode, and first), S4 (no secret in
//! `Debug` of public types or in `--help` with token variables set) and I5 (workflow commands in PR
//! titles and branches never reach stdout as commands).

mod common;

use common::{Buf, Memory, assert_clean, memory, percent_encode};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{CommandFactory, Parser};
use preview_cli::actions::Actions;
use preview_cli::cli::Cli;
use preview_cli::context::{Context, Env, Stream};
use preview_cli::providers::{HostFactory, RealProviders};
use preview_core::effects::{HookRunner, HttpClient};
use preview_core::secrecy::{ExposeSecret, SecretString};
use preview_core::testing::InMemoryApps;
use preview_core::{Config, DerivedSecrets, Error, Hosts, PrNumber, PrState};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Sentinel tokens and imported secrets: high-entropy, easy to find.
const TOKENS: &[(&str, &str)] = &[
    (
        "PREVIEW_MASTER_SECRET",
        "SENTINELmasterQ7vX2kP9zL4mN8rT1wY6bC3dF5gH0jK",
    ),
    (
        "FLY_API_TOKEN",
        "SENTINELflyTokenA1b2C3d4E5f6G7h8I9j0K1l2M3n4",
    ),
    (
        "VERCEL_TOKEN",
        "SENTINELvercelTokenZ9y8X7w6V5u4T3s2R1q0P9o8",
    ),
    (
        "GITHUB_TOKEN",
        "SENTINELgithubTokenM1n2B3v4C5x6Z7l8K9j0H1g2",
    ),
    (
        "ANTHROPIC_API_KEY",
        "SENTINELanthropic+/=Key&?#%40withReservedChars",
    ),
    (
        "OPENAI_API_KEY",
        "SENTINELopenai\"quoted\\backslash\u{e9}key0123",
    ),
];

fn base_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("GITHUB_REPOSITORY", "inkeep/agents"),
        ("VERCEL_API_PROJECT_ID", "prj_api"),
        ("VERCEL_UI_PROJECT_ID", "prj_ui"),
        ("VERCEL_TEAM_ID", "team_1"),
        ("PREVIEW_LOG", "trace"),
        ("RUST_BACKTRACE", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(TOKENS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("preview-secrets-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn actions_env(dir: &Path) -> Vec<(String, String)> {
    let mut env = base_env();
    for (k, v) in [
        ("GITHUB_ACTIONS", "true".to_string()),
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

/// One run's captured output: stdout, stderr and every log line at trace level.
struct Run {
    args: String,
    code: u8,
    stdout: String,
    stderr: String,
    logs: String,
}

async fn run(m: &Memory, env: &[(String, String)], args: &[&str]) -> Run {
    let vars: Vec<(String, String)> = env.to_vec();
    let env: Env =
        Arc::new(move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
    let (out, err, logs) = (Buf::default(), Buf::default(), Buf::default());
    let writer = logs.clone();
    // PREVIEW_LOG=trace, as main.rs would set it up, but into a buffer we can scan.
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let ctx = common::context(m, env, &out, &err);
    let code = common::run_cli(&ctx, EXAMPLE, args).await;
    Run {
        args: args.join(" "),
        code,
        stdout: out.text(),
        stderr: err.text(),
        logs: logs.text(),
    }
}

/// Every generated secret of PR `n` and every sensitive rendered value (URLs with passwords).
fn generated(n: u32, env: &[(String, String)]) -> Vec<String> {
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    common::derived_secrets(Path::new(EXAMPLE), u64::from(n), TOKENS[0].1, lookup)
}

fn unauthorized() -> Error {
    Error::Unauthorized {
        provider: "memory",
        status: 401,
        message: "bad credentials".into(),
        request_id: Some("req-1".into()),
    }
}

/// Every command, on success and on each error path the in-memory hosts can produce.
async fn every_command(m: &Memory, env: &[(String, String)]) -> Vec<Run> {
    let mut runs = Vec::new();
    m.source.open_pr(42, "feature/login", SHA);
    runs.push(run(m, env, &["plan", "--pr", "42"]).await);
    runs.push(run(m, env, &["plan", "--pr", "42", "--branch", "b", "--json"]).await);
    runs.push(run(m, env, &["deploy", "--pr", "42"]).await);
    runs.push(run(m, env, &["deploy", "--pr", "42", "--json"]).await);
    runs.push(run(m, env, &["status"]).await);
    runs.push(run(m, env, &["status", "--json"]).await);
    // A failing hook.
    m.source.open_pr(43, "b43", SHA);
    m.hooks.fail("migrate");
    runs.push(run(m, env, &["deploy", "--pr", "43"]).await);
    runs.push(run(m, env, &["deploy", "--pr", "43", "--json"]).await);
    // A retried 502 (logged at warn), then 401 from the database host, a conflict with someone else's var, retries exhausted.
    m.source.open_pr(44, "b44", SHA);
    m.db.fail_next(
        "apply_database",
        Error::Api {
            provider: "memory",
            status: 502,
            message: "bad gateway".into(),
            request_id: None,
        },
    );
    m.db.fail_next("apply_database", unauthorized());
    runs.push(run(m, env, &["deploy", "--pr", "44", "--json"]).await);
    m.apps
        .add_foreign_var("prj_api", "b44", "NODE_ENV", "preview");
    runs.push(run(m, env, &["deploy", "--pr", "44"]).await);
    m.source.open_pr(45, "b45", SHA);
    // Rate limited beyond the retry budget: fails at once, naming the wait (no paused clock here).
    m.db.fail_next(
        "apply_database",
        Error::RateLimited {
            provider: "memory",
            retry_after: Some(Duration::from_secs(3600)),
            request_id: None,
        },
    );
    runs.push(run(m, env, &["deploy", "--pr", "45", "--json"]).await);
    // A build that ends in ERROR, a missing PR, a bad PR number.
    m.source.open_pr(46, "b46", SHA);
    m.apps.set_next_deploy_state("prj_api", "ERROR");
    runs.push(run(m, env, &["deploy", "--pr", "46"]).await);
    runs.push(run(m, env, &["deploy", "--pr", "999", "--json"]).await);
    runs.push(run(m, env, &["deploy", "--pr=-1"]).await);
    // Teardown: failing, then succeeding, then already gone.
    m.db.fail_next("delete_database", unauthorized());
    runs.push(run(m, env, &["teardown", "--pr", "42", "--json"]).await);
    runs.push(run(m, env, &["teardown", "--pr", "42"]).await);
    runs.push(run(m, env, &["teardown", "--pr", "42", "--json"]).await);
    // Sweep with closed PRs and a failing lookup and listing.
    for n in [43, 44, 46] {
        m.source
            .set_state(PrNumber::new(n).unwrap(), PrState::Closed);
    }
    runs.push(run(m, env, &["sweep", "--dry-run"]).await);
    m.source.fail_next("get_pull_request", unauthorized());
    runs.push(run(m, env, &["sweep", "--json"]).await);
    m.db.fail_next("list_databases", unauthorized());
    runs.push(run(m, env, &["sweep"]).await);
    runs.push(run(m, env, &["status", "--json"]).await);
    runs
}

fn sentinels(env: &[(String, String)]) -> Vec<String> {
    let mut all: Vec<String> = TOKENS.iter().map(|(_, v)| v.to_string()).collect();
    for n in 42..=46 {
        all.extend(generated(n, env));
    }
    all.sort();
    all.dedup();
    all
}

#[tokio::test]
async fn s1_s3_no_sentinel_anywhere_outside_actions_and_no_mask_lines() {
    let m = memory();
    let env = base_env();
    let runs = every_command(&m, &env).await;
    let values = sentinels(&env);
    assert!(values.len() > TOKENS.len() + 5, "{}", values.len());
    // The error paths were reached (so the scan covers them).
    let codes: Vec<u8> = runs.iter().map(|r| r.code).collect();
    assert!(
        codes.contains(&0) && codes.contains(&1) && codes.contains(&2),
        "{codes:?}"
    );
    for r in &runs {
        assert_clean(
            &format!("stdout of `{}`", r.args),
            &r.stdout,
            &values,
            false,
        );
        assert_clean(
            &format!("stderr of `{}`", r.args),
            &r.stderr,
            &values,
            false,
        );
        assert_clean(&format!("logs of `{}`", r.args), &r.logs, &values, false);
        // S3: no mask line outside Actions.
        for (what, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(
                !text.contains("::add-mask::"),
                "S3: {what} of `{}` has a mask line",
                r.args
            );
        }
    }
    // PR reports (comments) carry no secret either.
    for rep in m.source.report_history() {
        assert_clean("a PR report", &format!("{rep:?}"), &values, false);
        assert_clean(
            "a PR report (JSON)",
            &serde_json::to_string(&rep).unwrap(),
            &values,
            false,
        );
    }
    // Logging was on: the scan read something.
    assert!(runs.iter().any(|r| !r.logs.is_empty()), "no logs captured");
}

#[tokio::test]
async fn s1_s2_in_actions_secrets_show_only_on_mask_lines_which_come_first() {
    let m = memory();
    let dir = tempdir("s2");
    let env = actions_env(&dir);
    let runs = every_command(&m, &env).await;
    let values = sentinels(&env);
    for r in &runs {
        // Masks go where the progress goes: stdout, or stderr with --json (stdout is JSON then).
        let json = r.args.split(' ').any(|a| a == "--json");
        assert_clean(
            &format!("stdout of `{}`", r.args),
            &r.stdout,
            &values,
            !json,
        );
        assert_clean(&format!("stderr of `{}`", r.args), &r.stderr, &values, json);
        assert_clean(&format!("logs of `{}`", r.args), &r.logs, &values, false);
        // S2: mask lines only on that one stream, and all before any other line.
        let (masks, other) = if json {
            (&r.stderr, &r.stdout)
        } else {
            (&r.stdout, &r.stderr)
        };
        assert!(!other.contains("::add-mask::"), "`{}`", r.args);
        let lines: Vec<&str> = masks.lines().collect();
        // A value may be masked again later (the pipeline's observer), but only one already masked
        // before the first other line: each secret's first mask line precedes all other output.
        let first_other = lines
            .iter()
            .position(|l| !l.starts_with("::add-mask::"))
            .unwrap_or(lines.len());
        let up_front = &lines[..first_other];
        for l in &lines[first_other..] {
            assert!(
                !l.starts_with("::add-mask::") || up_front.contains(l),
                "S2: `{}` masks a new value after other output",
                r.args
            );
        }
    }
    // Every deploy that got as far as secrets masked every sensitive value of its environment.
    let deploy42 = runs.iter().find(|r| r.args == "deploy --pr 42").unwrap();
    let json42 = runs
        .iter()
        .find(|r| r.args == "deploy --pr 42 --json")
        .unwrap();
    for s in generated(42, &env) {
        for masks in [&deploy42.stdout, &json42.stderr] {
            assert!(
                masks.lines().any(|l| l == format!("::add-mask::{s}")),
                "S2: a {}-char value is not masked",
                s.len()
            );
        }
        assert!(
            s.len() >= 32 || !s.is_empty(),
            "short values are not masked well"
        );
    }
    for f in ["output", "summary"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        assert_clean(&format!("$GITHUB_{f}"), &text, &values, false);
    }
    for rep in m.source.report_history() {
        assert_clean("a PR report", &format!("{rep:?}"), &values, false);
    }
    std::fs::remove_dir_all(dir).ok();
}

// ---------------------------------------------------------------------------------------------
// S4

#[tokio::test]
async fn s4_no_secret_in_debug_of_public_types() {
    let env = base_env();
    let vars = env.clone();
    let env_fn: Env =
        Arc::new(move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
    let ctx = Context {
        actions: Actions::detect(&env_fn),
        env: env_fn.clone(),
        stdout: Stream::new(Buf::default()),
        stderr: Stream::new(Buf::default()),
        factory: Arc::new(RealProviders),
    };
    let config = Config::load(EXAMPLE).unwrap();
    let values = sentinels(&env);
    // The real hosts, built from sentinel tokens.
    let hosts = RealProviders
        .hosts(&config, &ctx, "inkeep/agents")
        .expect("the real hosts build from environment tokens");
    assert_clean(
        "Debug of the real hosts",
        &format!("{hosts:?}"),
        &values,
        false,
    );
    assert_clean("Debug of Context", &format!("{ctx:?}"), &values, false);
    let token = ctx.token("FLY_API_TOKEN").unwrap().unwrap();
    assert_eq!(token.expose_secret(), TOKENS[1].1);
    assert_clean("Debug of a token", &format!("{token:?}"), &values, false);
    // Secrets, rendered specs and the pipeline.
    let name = config.name(PrNumber::new(42).unwrap());
    let lookup = {
        let vars = env.clone();
        move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    };
    let master = DerivedSecrets::new(SecretString::from(TOKENS[0].1)).unwrap();
    assert_clean(
        "Debug of DerivedSecrets",
        &format!("{master:?}"),
        &values,
        false,
    );
    let secrets = preview_core::render::secrets(&config, &name, &master, &lookup).unwrap();
    assert_clean(
        "Debug of SecretValues",
        &format!("{secrets:?}"),
        &values,
        false,
    );
    let rendered =
        preview_core::render::render_all(&config, &name, &Default::default(), secrets, &lookup)
            .unwrap();
    assert_clean(
        "Debug of Rendered",
        &format!("{rendered:?}"),
        &values,
        false,
    );
    assert_clean(
        "Debug of DatabaseSpec",
        &format!("{:?}", rendered.database),
        &values,
        false,
    );
    for a in &rendered.apps {
        assert_clean("Debug of AppSpec", &format!("{a:?}"), &values, false);
    }
    if let Some(seed) = &rendered.seed {
        assert_clean("Debug of SeedRun", &format!("{seed:?}"), &values, false);
    }
    assert_clean("Debug of Config", &format!("{config:?}"), &values, false);
    let p = preview_core::Preview::new(config, hosts);
    assert_clean("Debug of Preview", &format!("{p:?}"), &values, false);
}

#[test]
fn s4_help_never_shows_token_values_and_env_backed_args_hide_values() {
    // Structural: any argument backed by an environment variable hides its value.
    fn walk(cmd: &clap::Command) {
        for a in cmd.get_arguments() {
            if a.get_env().is_some() {
                assert!(
                    a.is_hide_env_values_set(),
                    "--{} shows its env value in --help",
                    a.get_id()
                );
            }
        }
        for s in cmd.get_subcommands() {
            walk(s);
        }
    }
    walk(&Cli::command());
    // Rendered: the binary's --help of every command, with every token variable set.
    let bin = env!("CARGO_BIN_EXE_preview");
    let values: Vec<String> = TOKENS.iter().map(|(_, v)| v.to_string()).collect();
    for sub in [
        vec!["--help"],
        vec!["deploy", "--help"],
        vec!["teardown", "--help"],
        vec!["sweep", "--help"],
        vec!["status", "--help"],
        vec!["plan", "--help"],
        vec!["exec", "--help"],
        vec!["--version"],
    ] {
        let out = std::process::Command::new(bin)
            .args(&sub)
            .env_clear()
            .envs(TOKENS.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{sub:?}");
        assert!(!out.stdout.is_empty());
        for text in [&out.stdout, &out.stderr] {
            assert_clean(
                &format!("{sub:?}"),
                &String::from_utf8_lossy(text),
                &values,
                false,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// I5

#[tokio::test]
async fn i5_workflow_commands_in_titles_and_branches_never_reach_stdout_as_commands() {
    let hostile = "x\n::add-mask::x\n::error title=pwn::owned\n::stop-commands::y\n  ::warning::w";
    let m = memory();
    let dir = tempdir("i5");
    let env = actions_env(&dir);
    let pr = m.source.open_pr(50, hostile, SHA);
    m.source.update_pr(pr, |p| p.title = hostile.into());
    let mut runs = vec![
        run(&m, &env, &["deploy", "--pr", "50"]).await,
        run(&m, &env, &["deploy", "--pr", "50", "--json"]).await,
        run(&m, &env, &["status"]).await,
    ];
    // An error whose message carries the branch.
    let pr51 = m.source.open_pr(51, hostile, SHA);
    m.source.update_pr(pr51, |p| p.title = hostile.into());
    m.apps
        .add_foreign_var("prj_api", hostile, "NODE_ENV", "preview");
    runs.push(run(&m, &env, &["deploy", "--pr", "51"]).await);
    m.source.set_state(pr, PrState::Closed);
    runs.push(run(&m, &env, &["teardown", "--pr", "50"]).await);
    runs.push(run(&m, &env, &["sweep"]).await);
    let ours = generated(50, &env)
        .into_iter()
        .chain(generated(51, &env))
        .collect::<Vec<_>>();
    let mut commands = 0;
    for r in &runs {
        for line in r.stdout.lines() {
            let cmd = line.trim_start();
            if !cmd.starts_with("::") {
                continue;
            }
            commands += 1;
            let allowed = cmd.starts_with("::group::")
                || cmd == "::endgroup::"
                || cmd.starts_with("::error title=preview ")
                || cmd
                    .strip_prefix("::add-mask::")
                    .is_some_and(|v| ours.iter().any(|o| o == v));
            assert!(
                allowed,
                "I5: `{}` printed a foreign command: {line}",
                r.args
            );
            assert!(
                !cmd.contains("pwn") || cmd.starts_with("::error title=preview "),
                "{line}"
            );
        }
    }
    assert!(commands > 0, "Actions mode printed no command at all");
    assert!(
        runs.iter().any(|r| r.code == 1),
        "the conflict path was reached"
    );
    std::fs::remove_dir_all(dir).ok();
}

// ---------------------------------------------------------------------------------------------
// S2: masks precede the first request that carries a secret

/// The app host, noting what stdout held when the first secret left for the provider.
struct Watching {
    inner: InMemoryApps,
    stdout: Buf,
    at_first_apply: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Watching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watching")
    }
}

#[preview_core::async_trait]
impl preview_core::AppHost for Watching {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn get_app(
        &self,
        name: &preview_core::PreviewName,
        target: &preview_core::AppRef,
    ) -> preview_core::Result<Option<preview_core::AppStatus>> {
        self.inner.get_app(name, target).await
    }
    async fn apply_app(
        &self,
        name: &preview_core::PreviewName,
        spec: &preview_core::AppSpec,
    ) -> preview_core::Result<Vec<preview_core::ResourceChange>> {
        self.at_first_apply
            .lock()
            .unwrap()
            .get_or_insert_with(|| self.stdout.text());
        self.inner.apply_app(name, spec).await
    }
    async fn deploy_app(
        &self,
        name: &preview_core::PreviewName,
        spec: &preview_core::AppSpec,
        commit: &preview_core::Commit,
    ) -> preview_core::Result<(preview_core::AppDeployment, preview_core::Outcome)> {
        self.inner.deploy_app(name, spec, commit).await
    }
    async fn delete_app(
        &self,
        name: &preview_core::PreviewName,
        target: &preview_core::AppRef,
    ) -> preview_core::Result<Vec<preview_core::ResourceChange>> {
        self.inner.delete_app(name, target).await
    }
    async fn list_apps(
        &self,
        projects: &[String],
    ) -> preview_core::Result<Vec<preview_core::Owned>> {
        self.inner.list_apps(projects).await
    }
}

struct WatchingFactory {
    m: Memory,
    apps: Arc<Watching>,
}

impl HostFactory for WatchingFactory {
    fn hosts(&self, _: &Config, _: &Context, _: &str) -> preview_core::Result<Hosts> {
        Ok(Hosts {
            database: Arc::new(self.m.db.clone()),
            apps: self.apps.clone(),
            source: Arc::new(self.m.source.clone()),
        })
    }
    fn http(&self) -> Arc<dyn HttpClient> {
        Arc::new(self.m.http.clone())
    }
    fn hooks(&self) -> Arc<dyn HookRunner> {
        Arc::new(self.m.hooks.clone())
    }
}

#[tokio::test]
async fn s2_every_secret_is_masked_before_the_first_request_carrying_it() {
    let m = memory();
    m.source.open_pr(42, "feature/login", SHA);
    let dir = tempdir("s2-order");
    let env = actions_env(&dir);
    let out = Buf::default();
    let apps = Arc::new(Watching {
        inner: m.apps.clone(),
        stdout: out.clone(),
        at_first_apply: Arc::default(),
    });
    let vars = env.clone();
    let env_fn: Env =
        Arc::new(move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
    let ctx = Context {
        actions: Actions::detect(&env_fn),
        env: env_fn,
        stdout: Stream::new(out.clone()),
        stderr: Stream::new(Buf::default()),
        factory: Arc::new(WatchingFactory {
            m: m.clone(),
            apps: apps.clone(),
        }),
    };
    let argv = ["preview", "--config", EXAMPLE, "deploy", "--pr", "42"];
    let code = preview_cli::run(Cli::try_parse_from(argv).unwrap(), &ctx).await;
    assert_eq!(code, 0, "{}", out.text());
    let before = apps
        .at_first_apply
        .lock()
        .unwrap()
        .clone()
        .expect("the app host was called");
    let secret_vars: Vec<String> = m
        .apps
        .vars()
        .iter()
        .filter_map(|v| m.apps.var_value(&v.project, &v.branch, &v.key))
        .filter(|v| generated(42, &env).contains(v) || TOKENS.iter().any(|(_, t)| t == v))
        .collect();
    assert!(!secret_vars.is_empty(), "secrets reached the app host");
    for v in secret_vars {
        for line in v.lines() {
            assert!(
                before
                    .lines()
                    .any(|l| l == format!("::add-mask::{}", line.trim())),
                "S2: a {}-char value reached the provider before its mask line",
                v.len()
            );
        }
    }
    // The generated secrets use only URL-unreserved characters, so the mask of the raw value
    // also covers its percent-encoded form inside database URLs.
    let config = Config::load(EXAMPLE).unwrap();
    let name = config.name(PrNumber::new(42).unwrap());
    let master = DerivedSecrets::new(SecretString::from(TOKENS[0].1)).unwrap();
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    for (n, v) in preview_core::render::secrets(&config, &name, &master, &lookup)
        .unwrap()
        .iter()
    {
        if TOKENS.iter().any(|(_, t)| *t == v.expose_secret()) {
            continue; // imported as is
        }
        assert_eq!(
            percent_encode(v.expose_secret()),
            v.expose_secret(),
            "S2: generated secret {n} has URL-reserved characters"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}
