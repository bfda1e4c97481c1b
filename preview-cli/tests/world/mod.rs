//! The e2e world: the built `preview` binary against stateful local fakes of the three APIs (one
//! HTTP server each: Fly Machines, Vercel, GitHub), a stand-in `flyctl` and a real PostgreSQL
//! server. Shared by tests/e2e.rs, tests/cancel.rs and tests/leaks.rs (feature `testing`).
//!
//!
//! The configuration is a copy of `examples/inkeep-agents/preview.toml`, changed only where the
//! real world is out of reach (each edit is asserted to apply, so the example cannot drift away
//! unnoticed):
//! - hooks run `pwd` and `env` (argv, no shell), so their output proves where they ran and which
//!   environment they got; the copy is installed as `.github/preview.toml`, as the README says;
//! - the seed's readiness URL and request go to a local wiremock server instead of the app domain;
//! - deadlines are seconds, and the sweep grace period is zero;
//! - `flyctl` is `fake-flyctl` (the test kit's stand-in, `preview_testkit::fake_flyctl`: Cargo
//!   never builds a dependency's binaries, so the test kit builds it) behind a small wrapper that
//!   sends the Postgres ports to a throwaway PostgreSQL cluster (trust auth, so every PR's derived
//!   password is accepted) and the SpiceDB ports to the local server, which answers the gRPC health
//!   check over h2c and `GET /healthz`.
//!
//! Run with `cargo test -p preview-cli --all-features` (the target needs feature `testing`).
//! Needs the PostgreSQL server binaries, found (or installed on Debian/Ubuntu) by
//! `preview_testkit::postgres`; the tests that use the world live in `mod postgres` so they can be
//! skipped by name (`-- --skip postgres`).

#![allow(dead_code)]

pub(crate) mod state;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use preview_core::{PrNumber, PrState, PullRequest};
use preview_testkit::fakes::fly::FakeFly;
pub(crate) use preview_testkit::fakes::github::{FakeGitHub, REPOSITORY, TOKEN as GITHUB_TOKEN};
use preview_testkit::fakes::vercel::FakeVercel;
pub(crate) use preview_testkit::postgres::{Auth, Postgres};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) const EXAMPLE_DIR: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/inkeep-agents");
pub(crate) const PREVIEW: &str = env!("CARGO_BIN_EXE_preview");

pub(crate) const ORG: &str = "inkeep-46";
pub(crate) const FLY_TOKEN: &str = "fly-token-SENTINEL-e2e";
pub(crate) const VERCEL_TOKEN: &str = "vercel-token-SENTINEL-e2e";
pub(crate) const TEAM: &str = "team_e2e";
pub(crate) const MASTER: &str = "e2e-master-secret-0123456789-abcdefghijklmnop";
pub(crate) const ANTHROPIC: &str = "sk-ant-SENTINEL/e2e+key==";
pub(crate) const OPENAI: &str = "sk-openai-SENTINEL&e2e";

// ---------------------------------------------------------------------------------------------
// A throwaway PostgreSQL cluster (as in providers-fly/tests/tunnel.rs, with trust auth).

pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("preview-e2e-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn id(args: &[&str]) -> Option<String> {
    let out = StdCommand::new("id").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------------------------
// The world: three fakes, the app's local stand-in, PostgreSQL, flyctl and the config copy.

/// Deadlines and hooks of the test copy.
pub(crate) struct Tweaks {
    pub(crate) database_ready: &'static str,
    pub(crate) deploy_timeout: &'static str,
    pub(crate) migrate: &'static str,
    /// Keep the seed's readiness URL and request on the api app's own URL
    /// (`https://pr-N-api.preview.inkeep.com`, as the example has them) instead of the local
    /// stand-in; the test then sends that origin somewhere with `PREVIEW_TEST_HTTP_ORIGINS`.
    pub(crate) app_urls: bool,
}

impl Default for Tweaks {
    fn default() -> Self {
        Self {
            database_ready: "30s",
            deploy_timeout: "30s",
            migrate: r#"["pwd"]"#,
            app_urls: false,
        }
    }
}

pub(crate) struct World {
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) fly_server: MockServer,
    pub(crate) fly: FakeFly,
    pub(crate) vercel_server: MockServer,
    pub(crate) vercel: FakeVercel,
    pub(crate) github: FakeGitHub,
    pub(crate) app: MockServer,
    pub(crate) flyctl: PathBuf,
    pub(crate) _pg: Option<Postgres>,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) struct Output {
    pub(crate) args: String,
    pub(crate) elapsed: std::time::Duration,
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "preview {}: exit {} after {:.1}s\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

pub(crate) fn replace(text: &mut String, from: &str, to: &str) {
    assert!(
        text.contains(from),
        "the example no longer contains {from:?}: update the test copy"
    );
    *text = text.replace(from, to);
}

pub(crate) fn pr(n: u64, state: PrState) -> PullRequest {
    PullRequest {
        number: PrNumber::new(n).unwrap(),
        state,
        draft: false,
        title: format!("Change {n}"),
        head_branch: format!("feature/change-{n}"),
        head_sha: format!("{n:0>40}"),
        head_repo: Some(REPOSITORY.into()),
        base_repo: REPOSITORY.into(),
        labels: Vec::new(),
    }
}

impl World {
    pub(crate) async fn start(tweaks: Tweaks) -> World {
        Self::start_with(tweaks, true).await
    }

    /// The world without PostgreSQL, for runs that must stop before any database is reached
    /// (refused configurations, preflight): the Postgres ports of `flyctl` lead nowhere.
    pub(crate) async fn start_without_postgres(tweaks: Tweaks) -> World {
        Self::start_with(tweaks, false).await
    }

    async fn start_with(tweaks: Tweaks, postgres: bool) -> World {
        let dir = temp_dir("world");
        let pg = postgres.then(|| Postgres::start(Auth::Trust, &["inkeep_agents"]));
        let pg_port = pg.as_ref().map_or(1, |pg| pg.port());

        let app = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/ready"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&app)
            .await;
        Mock::given(method("GET"))
            .and(path("/healthz"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&app)
            .await;
        // grpc.health.v1.HealthCheckResponse{status: SERVING}, framed.
        Mock::given(method("POST"))
            .and(path("/grpc.health.v1.Health/Check"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "application/grpc")
                    .insert_header("grpc-status", "0")
                    .set_body_bytes(vec![0u8, 0, 0, 0, 2, 0x08, 0x01]),
            )
            .mount(&app)
            .await;
        Mock::given(method("PUT"))
            .and(path(
                "/manage/tenants/default/project-full/activities-planner",
            ))
            .and(header("content-type", "application/json"))
            .respond_with(ResponseTemplate::new(201))
            .mount(&app)
            .await;
        let app_port = app.address().port();

        let (fly_server, fly) = FakeFly::start(ORG, FLY_TOKEN).await;
        let vercel = FakeVercel::new(VERCEL_TOKEN)
            .team(TEAM)
            .project("prj_api", "agents-api")
            .project("prj_ui", "agents-ui");
        let vercel_server = vercel.start().await;
        let github = FakeGitHub::start().await;

        // flyctl: the stand-in, with the remote ports of the example's services sent to what
        // answers for them here.
        let flyctl = dir.join("flyctl");
        let fake_flyctl = preview_testkit::fake_flyctl().display();
        std::fs::write(
            &flyctl,
            format!(
                "#!/bin/sh\n\
                 # proxy LOCAL:REMOTE -a APP\n\
                 # A test knob: a slow start when FILE.delay (seconds) is next to this script.\n\
                 if [ -e \"$0.delay\" ]; then sleep \"$(cat \"$0.delay\")\"; fi\n\
                 # Every tunnel opened, one line each, in FILE.calls (World::tunnels_opened).\n\
                 echo \"$*\" >> \"$0.calls\"\n\
                 local=\"${{2%%:*}}\"; remote=\"${{2#*:}}\"\n\
                 case \"$remote\" in\n\
                   5432|5433) remote={pg} ;;\n\
                   50051|8443) remote={app_port} ;;\n\
                 esac\n\
                 exec '{fake_flyctl}' \"$1\" \"$local:$remote\" \"$3\" \"$4\"\n",
                pg = pg_port
            ),
        )
        .unwrap();
        std::fs::set_permissions(&flyctl, std::fs::Permissions::from_mode(0o755)).unwrap();

        let mut text =
            std::fs::read_to_string(Path::new(EXAMPLE_DIR).join("preview.toml")).unwrap();
        replace(
            &mut text,
            r#"run = ["pnpm", "db:migrate"]"#,
            &format!("run = {}", tweaks.migrate),
        );
        replace(
            &mut text,
            r#"run = ["pnpm", "db:auth:init"]"#,
            r#"run = ["env"]"#,
        );
        replace(
            &mut text,
            r#"ready_timeout = "8m""#,
            &format!("ready_timeout = {:?}", tweaks.database_ready),
        );
        replace(
            &mut text,
            r#"deploy_timeout = "20m""#,
            &format!("deploy_timeout = {:?}", tweaks.deploy_timeout),
        );
        if !tweaks.app_urls {
            replace(
                &mut text,
                r#"ready_url = "${apps.api.url}/ready""#,
                &format!("ready_url = \"http://127.0.0.1:{app_port}/ready\""),
            );
        }
        replace(
            &mut text,
            r#"ready_timeout = "5m""#,
            r#"ready_timeout = "20s""#,
        );
        if !tweaks.app_urls {
            replace(
                &mut text,
                r#"url = "${apps.api.url}/manage/tenants"#,
                &format!("url = \"http://127.0.0.1:{app_port}/manage/tenants"),
            );
        }
        replace(
            &mut text,
            r#"grace_period = "1h""#,
            r#"grace_period = "0s""#,
        );
        // Installed as the example's README says: .github/preview.toml with seed/ next to it;
        // `dir` plays the repository root (and the binary's working directory): a checkout's
        // `.git` makes it the directory the files named by the config are confined to.
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        let config = dir.join(".github/preview.toml");
        std::fs::create_dir_all(dir.join(".github/seed")).unwrap();
        std::fs::write(&config, text).unwrap();
        std::fs::copy(
            Path::new(EXAMPLE_DIR).join("seed/activities-planner.json"),
            dir.join(".github/seed/activities-planner.json"),
        )
        .unwrap();

        World {
            dir,
            config,
            fly_server,
            fly,
            vercel_server,
            vercel,
            github,
            app,
            flyctl,
            _pg: pg,
        }
    }

    /// Every request sent to the GitHub fake, one line each: method, path and JSON body.
    pub(crate) fn github_requests(&self) -> Vec<String> {
        self.github
            .exchanges()
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}",
                    e.method,
                    e.path,
                    e.request
                        .as_ref()
                        .map(|r| r.to_string())
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    pub(crate) fn env(&self) -> Vec<(String, String)> {
        [
            ("FLY_API_URL", self.fly_server.uri()),
            ("FLY_API_TOKEN", FLY_TOKEN.into()),
            ("FLYCTL", self.flyctl.to_string_lossy().to_string()),
            ("VERCEL_API_URL", self.vercel_server.uri()),
            ("VERCEL_TOKEN", VERCEL_TOKEN.into()),
            ("VERCEL_TEAM_ID", TEAM.into()),
            ("VERCEL_API_PROJECT_ID", "prj_api".into()),
            ("VERCEL_UI_PROJECT_ID", "prj_ui".into()),
            ("GITHUB_API_URL", self.github.uri()),
            ("GITHUB_TOKEN", GITHUB_TOKEN.into()),
            ("GITHUB_REPOSITORY", REPOSITORY.into()),
            // The test's plumbing: the fake needs no 1 s between writes (feature `testing`).
            ("PREVIEW_TEST_GITHUB_WRITE_SPACING_MS", "20".into()),
            ("PREVIEW_MASTER_SECRET", MASTER.into()),
            ("ANTHROPIC_API_KEY", ANTHROPIC.into()),
            ("OPENAI_API_KEY", OPENAI.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub(crate) async fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut env = self.env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.run_with(args, env).await
    }

    /// Runs the binary with exactly `env` (and PATH).
    pub(crate) async fn run_with(&self, args: &[&str], env: Vec<(String, String)>) -> Output {
        self.wait(args, Instant::now(), self.command(args, env))
            .await
    }

    pub(crate) fn command(
        &self,
        args: &[&str],
        env: Vec<(String, String)>,
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(PREVIEW);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .current_dir(&self.dir)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .kill_on_drop(true);
        cmd
    }

    pub(crate) async fn wait(
        &self,
        args: &[&str],
        started: Instant,
        mut cmd: tokio::process::Command,
    ) -> Output {
        let out = cmd.output().await.expect("run the preview binary");
        Output {
            args: args.join(" "),
            elapsed: started.elapsed(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Mutating requests every fake received so far.
    /// How many tunnels `flyctl` was asked to open so far (every run of every test command).
    pub(crate) fn tunnels_opened(&self) -> usize {
        let calls = self.flyctl.with_extension("calls");
        std::fs::read_to_string(calls).map_or(0, |s| s.lines().count())
    }

    /// How many seed requests (`PUT`) the app's stand-in received so far.
    pub(crate) async fn seeds(&self) -> usize {
        let got = self.app.received_requests().await.unwrap_or_default();
        got.iter().filter(|r| r.method.as_str() == "PUT").count()
    }

    pub(crate) fn mutations(&self) -> (usize, usize, usize) {
        (
            self.fly.mutating().len(),
            self.vercel.mutations().len(),
            self.github.writes().len(),
        )
    }

    pub(crate) fn branch_vars(&self, branch: &str) -> Vec<String> {
        ["prj_api", "prj_ui"]
            .iter()
            .flat_map(|p| self.vercel.envs(p))
            .filter(|e| e.git_branch.as_deref() == Some(branch))
            .map(|e| e.key.clone())
            .collect()
    }

    pub(crate) fn domains(&self) -> Vec<String> {
        ["prj_api", "prj_ui"]
            .iter()
            .flat_map(|p| self.vercel.domains(p))
            .map(|d| d.name)
            .collect()
    }

    pub(crate) fn last_comment(&self, n: u32) -> String {
        self.github
            .comments(n)
            .last()
            .map(|c| c.body.clone())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// GitHub Actions: the runner's event file and the workflow jobs' environments.

/// A deploy as the workflow runs it: `GITHUB_ACTIONS=true`, the PR from a `pull_request` event.
pub(crate) struct ActionsRun {
    pub(crate) out: Output,
    pub(crate) outputs: String,
    pub(crate) summary: String,
}

/// Writes a `pull_request` event for PR 42 with `action` and this `head`, as the runner does.
pub(crate) fn pr_event(w: &World, action: &str, head: serde_json::Value) -> PathBuf {
    let event = w.dir.join(format!("{action}.json"));
    std::fs::write(
        &event,
        serde_json::json!({
            "action": action,
            "number": 42,
            "pull_request": {
                "number": 42,
                "head": head,
                "base": {"ref": "main", "sha": "f".repeat(40), "repo": {"full_name": REPOSITORY}},
            },
        })
        .to_string(),
    )
    .unwrap();
    event
}

/// The head of PR 42 in the e2e world: a branch of the repository itself.
pub(crate) fn own_head() -> serde_json::Value {
    serde_json::json!({"ref": "feature/change-42", "sha": format!("{:0>40}", 42), "repo": {"full_name": REPOSITORY}})
}

pub(crate) async fn deploy_in_actions(w: &World) -> ActionsRun {
    deploy_in_actions_with(w, &[]).await
}

/// [`deploy_in_actions`] with `extra` variables (e.g. another `GITHUB_TOKEN`).
pub(crate) async fn deploy_in_actions_with(w: &World, extra: &[(&str, &str)]) -> ActionsRun {
    let event = pr_event(w, "synchronize", own_head());
    let outputs = w.dir.join("github_output");
    let summary = w.dir.join("step_summary");
    let (event_s, outputs_s, summary_s) = (
        event.to_string_lossy().to_string(),
        outputs.to_string_lossy().to_string(),
        summary.to_string_lossy().to_string(),
    );
    let mut env = vec![
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_PATH", event_s.as_str()),
        ("GITHUB_OUTPUT", outputs_s.as_str()),
        ("GITHUB_STEP_SUMMARY", summary_s.as_str()),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_RUN_ID", "4242"),
    ];
    env.extend_from_slice(extra);
    let out = w.run(&["deploy"], &env).await;
    ActionsRun {
        out,
        outputs: std::fs::read_to_string(&outputs).unwrap_or_default(),
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
    }
}

/// The variables of the example's teardown and sweep jobs, plus what the runner sets.
pub(crate) fn job_env(w: &World, event: &Path) -> Vec<(String, String)> {
    let keep = [
        "FLY_API_TOKEN",
        "VERCEL_TOKEN",
        "VERCEL_API_PROJECT_ID",
        "VERCEL_UI_PROJECT_ID",
        "GITHUB_TOKEN",
        "GITHUB_REPOSITORY",
        "GITHUB_API_URL",
        // The test's plumbing, not the job's: where the fakes and the stand-in flyctl are.
        "FLY_API_URL",
        "VERCEL_API_URL",
        "FLYCTL",
        "PREVIEW_TEST_GITHUB_WRITE_SPACING_MS",
    ];
    let mut env: Vec<(String, String)> = w
        .env()
        .into_iter()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .collect();
    // The workflows pass the team as VERCEL_ORG_ID.
    env.push(("VERCEL_ORG_ID".into(), TEAM.into()));
    env.push(("GITHUB_ACTIONS".into(), "true".into()));
    env.push((
        "GITHUB_EVENT_PATH".into(),
        event.to_string_lossy().to_string(),
    ));
    env.push(("GITHUB_SERVER_URL".into(), "https://github.com".into()));
    env.push(("GITHUB_RUN_ID".into(), "4343".into()));
    env
}

/// Every sensitive value of PR `n`'s environment under the test config, derived forms included,
/// derived the way the binary does (same master, same config).
pub(crate) fn sensitive(config: &Path, n: u64) -> Vec<String> {
    let env = |k: &str| match k {
        "ANTHROPIC_API_KEY" => Some(ANTHROPIC.to_string()),
        "OPENAI_API_KEY" => Some(OPENAI.to_string()),
        "VERCEL_API_PROJECT_ID" => Some("prj_api".to_string()),
        "VERCEL_UI_PROJECT_ID" => Some("prj_ui".to_string()),
        _ => None,
    };
    let mut all = crate::common::derived_secrets(config, n, MASTER, env);
    all.sort();
    all.dedup();
    all
}

// ---------------------------------------------------------------------------------------------
// Processes (Linux `/proc`): what preview started, and what is still running.

/// Command lines of the running processes (Linux `/proc`).
pub(crate) fn processes() -> Vec<String> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .collect()
        })
        .unwrap_or_default()
}

/// Live descendants of `root` (pid, command line), from `/proc/*/stat` parent links (Linux).
pub(crate) fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        if state == "Z" || state == "X" {
            continue;
        }
        if let Some(ppid) = f.next().and_then(|p| p.parse::<u32>().ok()) {
            parent.insert(pid, ppid);
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (&c, &pp) in &parent {
            if pp == p {
                frontier.push(c);
                out.push((c, cmdline(c).unwrap_or_default()));
            }
        }
    }
    out
}

/// `/proc/<pid>/cmdline` with NULs as spaces; `None` once the process is gone (or a zombie).
pub(crate) fn cmdline(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    if matches!(state, Some("Z" | "X")) {
        return None;
    }
    std::fs::read(format!("/proc/{pid}/cmdline")).ok().map(|c| {
        String::from_utf8_lossy(&c)
            .replace('\0', " ")
            .trim_end()
            .to_string()
    })
}

// ---------------------------------------------------------------------------------------------
// A running binary, watched.

/// A running `preview`, its output captured line by line and its process tree watched.
pub(crate) struct Running {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) stderr: Arc<Mutex<String>>,
    pub(crate) stdout: Arc<Mutex<String>>,
    /// Every process seen under preview while it ran, preview included: (pid, command line), each
    /// command line a pid had (a forked child shows its parent's until it execs).
    pub(crate) seen: Arc<Mutex<BTreeSet<(u32, String)>>>,
    pub(crate) done: Arc<AtomicBool>,
}

/// Starts `preview ARGS` with `env` plus TMPDIR and HOME under the world's directory; a thread
/// notes every process under it (pid, command line) every few ms until `done`.
pub(crate) fn spawn(w: &World, args: &[&str], extra: &[(&str, &str)]) -> Running {
    std::fs::create_dir_all(w.dir.join("tmp")).unwrap();
    std::fs::create_dir_all(w.dir.join("home")).unwrap();
    let mut env = w.env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env.push(("TMPDIR".into(), w.dir.join("tmp").to_string_lossy().into()));
    env.push(("HOME".into(), w.dir.join("home").to_string_lossy().into()));
    let mut child = w
        .command(args, env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let capture = |stream: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        let text = Arc::new(Mutex::new(String::new()));
        let t = text.clone();
        if let Some(s) = stream {
            tokio::spawn(async move {
                let mut lines = BufReader::new(s).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let mut t = t.lock().unwrap();
                    t.push_str(&l);
                    t.push('\n');
                }
            });
        }
        text
    };
    let stderr = capture(child.stderr.take().map(|s| Box::new(s) as _));
    let stdout = capture(child.stdout.take().map(|s| Box::new(s) as _));
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let done = Arc::new(AtomicBool::new(false));
    let (s, d) = (seen.clone(), done.clone());
    std::thread::spawn(move || {
        while !d.load(Ordering::SeqCst) {
            // The root too (the watcher is the only one who sees preview's own argv).
            if let Some(c) = cmdline(pid) {
                s.lock().unwrap().insert((pid, c));
            }
            for (p, c) in descendants(pid) {
                s.lock().unwrap().insert((p, c));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    Running {
        child,
        pid,
        stderr,
        stdout,
        seen,
        done,
    }
}

impl Running {
    pub(crate) fn text(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// Waits (bounded) until `ready()`; panics with the output so far otherwise.
    pub(crate) async fn until(&mut self, what: &str, ready: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !ready(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("preview exited ({status}) before {what}\n{}", self.text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(45),
                "never saw {what}\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Every file under `dir` (recursively), with its bytes.
pub(crate) fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => {
                    if let Ok(b) = std::fs::read(&p) {
                        out.push((p, b));
                    }
                }
                _ => {}
            }
        }
    }
    out
}
