//! Secret hygiene of the built binary over the real providers (the README's reliability table),
//! in the e2e world (tests/world): the three providers' stateful fakes, a stand-in flyctl and a real
//! PostgreSQL.
//! - S5: no secret in any process argument (preview, its hooks, flyctl proxies, exec's command),
//!   read from `/proc/<pid>/cmdline` while they run; and no flag of the CLI takes a secret value.
//! - S1: sentinel tokens, the master secret and every generated secret (with their derived forms)
//!   never appear in stdout, stderr, files written, requests to GitHub or Vercel env comments, on
//!   success and on the error paths the fakes drive (401/403/422 from each provider, a Vercel
//!   `failed[]` item and a Fly error that echo a secret, a failing hook printing secrets, a Vercel
//!   build ERROR, an unhealthy Machine), with `--json`, trace logging and `RUST_BACKTRACE=1`.
//!   Outside Actions zero matches; in Actions only on `::add-mask::` lines.
//!
//! In-process S1–S4 over in-memory hosts: tests/secrets.rs.

mod common;
mod world;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::CommandFactory;
use preview_core::secrecy::{ExposeSecret, SecretString};
use preview_core::{Config, DerivedSecrets, PrNumber, PrState};
use preview_testkit::fakes::github::bodies;
use preview_testkit::fakes::vercel::BuildOutcome;
use serde_json::json;

use common::{assert_clean, forms};
use world::*;

/// Every test here starts the world, which needs PostgreSQL: `-- --skip postgres` skips them by name.
mod postgres {
    use super::*;

    /// Tokens, the master secret and the imported secrets of the world.
    fn sentinels() -> Vec<String> {
        [
            FLY_TOKEN,
            VERCEL_TOKEN,
            GITHUB_TOKEN,
            MASTER,
            ANTHROPIC,
            OPENAI,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Every secret of the world for PRs `prs`: sentinels, generated values and rendered ones.
    fn secrets(w: &World, prs: &[u64]) -> Vec<String> {
        let mut all = sentinels();
        for n in prs {
            all.extend(sensitive(&w.config, *n));
        }
        all.sort();
        all.dedup();
        all
    }

    /// The generated secret `key` of PR `n`, as the binary derives it.
    fn generated(config: &Path, n: u64, key: &str) -> String {
        let config = Config::load(config).unwrap();
        let name = config.name(PrNumber::new(n).unwrap());
        let d = DerivedSecrets::new(SecretString::from(MASTER)).unwrap();
        let env = |k: &str| match k {
            "ANTHROPIC_API_KEY" => Some(ANTHROPIC.to_string()),
            "OPENAI_API_KEY" => Some(OPENAI.to_string()),
            _ => None,
        };
        let values = preview_core::render::secrets(&config, &name, &d, &env).unwrap();
        values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.expose_secret().to_string())
            .unwrap_or_else(|| panic!("no generated secret {key}"))
    }

    // ---------------------------------------------------------------------------------------------
    // S5

    /// The hook of the S5 world lives long enough to be seen, and forks (`sh` starts `sleep`).
    const SLOW_HOOK: &str = r#"["sh", "-c", "sleep 0.3; pwd"]"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s5_no_secret_in_the_arguments_of_preview_or_anything_it_starts() {
        let w = World::start(Tweaks {
            migrate: SLOW_HOOK,
            ..Tweaks::default()
        })
        .await;
        w.github.set_pull_request(pr(42, PrState::Open));
        let mut argv: Vec<String> = Vec::new();
        for args in [
            &["deploy", "--pr", "42"][..],
            &["exec", "--pr", "42", "--", "sleep", "0.4"][..],
        ] {
            let mut run = spawn(&w, args, &[]);
            let status = tokio::time::timeout(Duration::from_secs(60), run.child.wait())
                .await
                .unwrap()
                .unwrap();
            run.done.store(true, Ordering::SeqCst);
            assert!(status.success(), "{args:?}: {status}\n{}", run.text());
            argv.extend(run.seen.lock().unwrap().iter().map(|(_, c)| c.clone()));
        }
        // Not vacuous: preview itself, the hook and what it forked, every flyctl proxy (the wrapper
        // and the stand-in it runs) and exec's command were all seen.
        for expected in [
            "deploy --pr 42",
            "exec --pr 42 -- sleep 0.4",
            "sh -c sleep 0.3; pwd",
            "sleep 0.3",
            "sleep 0.4",
            "proxy",
            "fake-flyctl",
        ] {
            assert!(
                argv.iter().any(|a| if expected.starts_with("sleep") {
                    a == expected
                } else {
                    a.contains(expected)
                }),
                "no process with {expected:?} seen: {argv:#?}"
            );
        }
        let values = secrets(&w, &[42]);
        assert!(values.len() > 10, "{}", values.len());
        assert_clean("process arguments", &argv.join("\n"), &values, false);
    }

    /// Arguments whose name says they carry a secret, and take a value that is not a file path.
    fn secret_valued_args(cmd: &clap::Command) -> Vec<String> {
        let mut found = Vec::new();
        let secretish = |s: &str| {
            let s = s.to_ascii_lowercase();
            ["token", "secret", "password", "passwd", "key", "credential"]
                .iter()
                .any(|w| s.contains(w))
        };
        fn walk(
            cmd: &clap::Command,
            path: &str,
            f: &dyn Fn(&clap::Arg) -> bool,
            out: &mut Vec<String>,
        ) {
            for a in cmd.get_arguments() {
                if f(a) {
                    out.push(format!("{path} {}", a.get_id()));
                }
            }
            for s in cmd.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()), f, out);
            }
        }
        let takes_secret = |a: &clap::Arg| {
            let names: Vec<String> = std::iter::once(a.get_id().to_string())
                .chain(a.get_long().map(str::to_string))
                .chain(
                    a.get_value_names()
                        .into_iter()
                        .flatten()
                        .map(|v| v.to_string()),
                )
                .collect();
            let takes_value = a.get_action().takes_values();
            let is_file = names
                .iter()
                .any(|n| n.to_ascii_lowercase().ends_with("-file") || n.ends_with("_file"));
            takes_value && !is_file && names.iter().any(|n| secretish(n))
        };
        walk(cmd, cmd.get_name(), &takes_secret, &mut found);
        found
    }

    #[test]
    fn s5_no_flag_takes_a_secret_value() {
        // The predicate finds what it must (a control), and lets `*-file` paths through.
        let control = clap::Command::new("x")
            .arg(clap::Arg::new("api_token").long("api-token"))
            .arg(clap::Arg::new("token_file").long("token-file"))
            .subcommand(clap::Command::new("deploy").arg(clap::Arg::new("pw").long("db-password")))
            .arg(clap::Arg::new("key_id").long("keep").value_name("KEY"));
        assert_eq!(
            secret_valued_args(&control),
            ["x api_token", "x key_id", "x deploy pw"],
        );
        let found = secret_valued_args(&preview_cli::cli::Cli::command());
        assert!(found.is_empty(), "flags taking a secret value: {found:?}");
        // The real tree was walked (not an empty command).
        assert!(
            preview_cli::cli::Cli::command()
                .get_subcommands()
                .any(|s| s.get_name() == "exec")
        );
    }

    // ---------------------------------------------------------------------------------------------
    // S1

    /// The error bodies this file makes the fakes answer, checked against the providers' published
    /// descriptions (`preview_testkit::openapi`): Fly's `ErrorResponse` (through `GET /v1/apps` → 400,
    /// an operation that describes it) and GitHub's `basic-error` (through a deployment's 404).
    fn fly_error(text: String) -> serde_json::Value {
        let body = json!({ "error": text });
        spec("fly-machines.openapi.fixed.json")
            .check_response("GET", "/v1/apps", 400, &body)
            .unwrap_or_else(|e| panic!("not a Fly ErrorResponse: {e}"));
        body
    }

    fn github_error(message: &str) -> serde_json::Value {
        let body = bodies::error(message);
        spec("github-rest.trimmed.json")
            .check_response("GET", "/repos/o/r/deployments/1", 404, &body)
            .unwrap_or_else(|e| panic!("not a GitHub basic-error: {e}"));
        body
    }

    fn spec(file: &str) -> preview_testkit::openapi::OpenApi {
        preview_testkit::openapi::OpenApi::load(preview_testkit::openapi::specs_dir().join(file))
            .unwrap_or_else(|e| panic!("cannot load {file}: {e}"))
    }

    /// (provider, status) of the terminal errors: each status once by default (a deploy is ~4 s, its
    /// GitHub writes paced 1 s apart), every provider with every status with
    /// `PREVIEW_RELIABILITY_FULL=1`.
    fn terminal_errors() -> Vec<(&'static str, u16)> {
        if preview_testkit::full_counts() {
            ["fly", "vercel", "github"]
                .into_iter()
                .flat_map(|p| [401, 403, 422].map(|s| (p, s)))
                .collect()
        } else {
            vec![("fly", 401), ("vercel", 403), ("github", 422)]
        }
    }

    /// The hook of the S1 world: with `hook.fail` in the repository root it prints its whole
    /// environment (generated secrets included) on stdout and stderr and fails.
    const LEAKY_HOOK: &str =
        r#"["sh", "-c", "if [ -e hook.fail ]; then env; env >&2; exit 3; fi; pwd"]"#;

    /// One run: what it printed.
    struct Ran {
        what: String,
        out: Output,
    }

    struct S1 {
        w: World,
        actions: bool,
        runs: Vec<Ran>,
        prs: Vec<u64>,
    }

    impl S1 {
        fn env(&self) -> Vec<(String, String)> {
            let dir = &self.w.dir;
            for d in ["tmp", "home"] {
                std::fs::create_dir_all(dir.join(d)).unwrap();
            }
            let p = |f: &str| dir.join(f).to_string_lossy().to_string();
            let mut env = vec![
                ("RUST_LOG".to_string(), "trace".to_string()),
                ("PREVIEW_LOG".to_string(), "trace".to_string()),
                ("RUST_BACKTRACE".to_string(), "1".to_string()),
                ("TMPDIR".to_string(), p("tmp")),
                ("HOME".to_string(), p("home")),
            ];
            if self.actions {
                env.extend([
                    ("GITHUB_ACTIONS".to_string(), "true".to_string()),
                    ("GITHUB_OUTPUT".to_string(), p("github_output")),
                    ("GITHUB_STEP_SUMMARY".to_string(), p("step_summary")),
                    (
                        "GITHUB_SERVER_URL".to_string(),
                        "https://github.com".to_string(),
                    ),
                    ("GITHUB_RUN_ID".to_string(), "4242".to_string()),
                ]);
            }
            env
        }

        async fn run(&mut self, what: &str, args: &[&str]) -> i32 {
            self.run_extra(what, args, &[]).await
        }

        async fn run_extra(&mut self, what: &str, args: &[&str], more: &[(&str, &str)]) -> i32 {
            let mut extra = self.env();
            extra.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            let extra: Vec<(&str, &str)> = extra
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let out = self.w.run(args, &extra).await;
            let code = out.code;
            self.runs.push(Ran {
                what: what.to_string(),
                out,
            });
            code
        }

        /// `deploy --pr n --json` of a fresh open PR, expected to fail.
        async fn failing_deploy(&mut self, what: &str, n: u64) -> &Output {
            self.w.github.set_pull_request(pr(n, PrState::Open));
            if !self.prs.contains(&n) {
                self.prs.push(n);
            }
            let code = self
                .run(what, &["deploy", "--pr", &n.to_string(), "--json"])
                .await;
            let last = &self.runs.last().unwrap().out;
            assert_ne!(code, 0, "{what}: {last:?}");
            last
        }

        /// Scans every place a secret must not reach.
        fn scan(&self) {
            let values = secrets(&self.w, &self.prs);
            for r in &self.runs {
                // In Actions the mask lines go where the progress goes: stderr with --json.
                let json = r.out.args.split(' ').any(|a| a == "--json");
                assert_clean(
                    &format!("stdout of {} ({})", r.what, r.out.args),
                    &r.out.stdout,
                    &values,
                    self.actions && !json,
                );
                assert_clean(
                    &format!("stderr of {} ({})", r.what, r.out.args),
                    &r.out.stderr,
                    &values,
                    self.actions && json,
                );
            }
            let files = files(&self.w.dir);
            assert!(
                !self.actions
                    || files
                        .iter()
                        .any(|(p, b)| p.ends_with("step_summary") && !b.is_empty()),
                "the step summary was written"
            );
            for (path, bytes) in files {
                assert_clean(
                    &format!("file {}", path.display()),
                    &String::from_utf8_lossy(&bytes),
                    &values,
                    false,
                );
            }
            let requests = self.w.github_requests();
            assert!(requests.iter().any(|r| r.contains("comments")));
            assert_clean("requests to GitHub", &requests.join("\n"), &values, false);
            let comments: Vec<String> = ["prj_api", "prj_ui"]
                .iter()
                .flat_map(|p| self.w.vercel.envs(p))
                .filter_map(|e| e.comment.clone())
                .collect();
            assert!(!comments.is_empty(), "Vercel env vars carry comments");
            assert_clean(
                "Vercel env var comments",
                &comments.join("\n"),
                &values,
                false,
            );
            // Outside Actions, no workflow command at all (S3).
            if !self.actions {
                for r in &self.runs {
                    assert!(!r.out.stdout.contains("::add-mask::"), "{:?}", r.out);
                }
            }
        }
    }

    async fn s1_every_command_and_error_path(actions: bool) {
        let w = World::start(Tweaks {
            database_ready: "3s",
            migrate: LEAKY_HOOK,
            ..Tweaks::default()
        })
        .await;
        let mut s = S1 {
            w,
            actions,
            runs: Vec::new(),
            prs: vec![42],
        };
        s.w.github.set_pull_request(pr(42, PrState::Open));

        // Success paths, text and JSON.
        for (what, args) in [
            ("plan", &["plan", "--pr", "42"][..]),
            ("plan --json", &["plan", "--pr", "42", "--json"][..]),
            ("deploy", &["deploy", "--pr", "42"][..]),
            ("re-deploy --json", &["deploy", "--pr", "42", "--json"][..]),
            ("status", &["status"][..]),
            ("status --json", &["status", "--json"][..]),
            ("exec", &["exec", "--pr", "42", "--", "true"][..]),
        ] {
            let code = s.run(what, args).await;
            assert_eq!(code, 0, "{what}: {:?}", s.runs.last().unwrap().out);
        }

        // Terminal errors from each provider, on the first request each gets. Every failing deploy
        // is of one PR (its report is updated in place): GitHub writes are paced 1 s apart.
        const FAILING: u64 = 50;
        for (provider, status) in terminal_errors() {
            match provider {
            "fly" => {
                s.w.fly
                    .fail_next("GET", "", status, fly_error(format!("fly says {status}")))
            }
            "vercel" => s.w.vercel.fail_next(
                None,
                status,
                json!({"error": {"code": "forbidden", "message": format!("vercel says {status}")}}),
                None,
            ),
            _ => {
                s.w.github
                    .fail_next(status, &[], github_error(&format!("github says {status}")))
            }
        }
            let out = s
                .failing_deploy(&format!("{provider} {status}"), FAILING)
                .await;
            assert!(
                out.stdout.contains(&format!("{status}")),
                "the error names the status: {out:?}"
            );
        }
        // The other commands on an error path each.
        s.w.fly
            .fail_next("GET", "", 401, fly_error("unauthorized".into()));
        assert_ne!(s.run("status, fly 401", &["status", "--json"]).await, 0);
        // exec needs no API (tunnels only): its error path is flyctl that cannot start.
        let code = s
            .run_extra(
                "exec, no flyctl",
                &["exec", "--pr", "42", "--json", "--", "true"],
                &[("FLYCTL", "/nonexistent/flyctl")],
            )
            .await;
        assert_ne!(code, 0, "{:?}", s.runs.last().unwrap().out);

        // Each case below on a PR of its own: on an existing environment the request it fails (a
        // Machine create, a new deployment, a var write) would not be sent.
        // A Fly error that echoes a generated secret.
        let n = 51;
        let pg = generated(&s.w.config, n, "pg_password");
        s.w.fly.fail_next(
            "POST",
            "/machines",
            422,
            fly_error(format!(
                "invalid config: DOLTGRES_PASSWORD={pg} is not allowed"
            )),
        );
        s.failing_deploy("fly error echoing a secret", n).await;
        assert!(
            s.w.fly
                .exchanges()
                .iter()
                .any(|e| e.status == 422 && e.response.to_string().contains(&pg)),
            "the Fly fake echoed the secret"
        );

        // A failing hook that prints the secrets of its environment.
        std::fs::write(s.w.dir.join("hook.fail"), "").unwrap();
        let out = s
            .failing_deploy("a failing hook printing secrets", 61)
            .await;
        let hook_lines = format!("{}{}", out.stdout, out.stderr);
        assert!(
            hook_lines.contains("[migrate] INKEEP_AGENTS_MANAGE_DATABASE_URL=***"),
            "the hook printed its secrets (masked): {out:?}"
        );
        std::fs::remove_file(s.w.dir.join("hook.fail")).unwrap();

        // A Vercel build in ERROR.
        s.w.vercel.set_build(BuildOutcome::Error {
            after_polls: 1,
            code: "BUILD_FAILED".into(),
            message: "Command \"pnpm build\" exited with 1".into(),
        });
        s.failing_deploy("vercel build ERROR", 53).await;
        s.w.vercel.set_build(BuildOutcome::Ready { after_polls: 0 });

        // A Machine that never gets healthy.
        s.w.fly.set_check_status("critical");
        s.failing_deploy("unhealthy machine", 54).await;
        s.w.fly.set_check_status("passing");

        // Teardown and sweep (42 and 50 close; the others stay open and are kept), text and JSON.
        for p in [42, FAILING] {
            s.w.github.set_pull_request(pr(p, PrState::Closed));
        }
        s.w.vercel.fail_next(
            None,
            403,
            json!({"error": {"code": "forbidden", "message": "no"}}),
            None,
        );
        assert_ne!(
            s.run("teardown, vercel 403", &["teardown", "--pr", "42"])
                .await,
            0
        );

        for (what, args) in [
            ("teardown --json", &["teardown", "--pr", "42", "--json"][..]),
            ("sweep --dry-run", &["sweep", "--dry-run"][..]),
            ("sweep --json", &["sweep", "--json"][..]),
        ] {
            let code = s.run(what, args).await;
            assert_eq!(code, 0, "{what}: {:?}", s.runs.last().unwrap().out);
        }
        // Last (the fake keeps rejecting the key): a Vercel `failed[]` item echoing the value.
        s.w.vercel
            .reject_key("INKEEP_AGENTS_MANAGE_DATABASE_URL", "invalid_value");
        let n = FAILING;
        let pg = generated(&s.w.config, n, "pg_password");
        s.failing_deploy("vercel failed[] echoing a secret", n)
            .await;
        assert!(
            s.w.vercel
                .exchanges()
                .iter()
                .any(|e| e.response.to_string().contains(&percent(&pg))
                    || e.response.to_string().contains(&pg)),
            "the Vercel fake echoed the secret"
        );

        s.scan();
    }

    fn percent(v: &str) -> String {
        forms(v)
            .into_iter()
            .find(|f| f.contains('%'))
            .unwrap_or_else(|| v.to_string())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s1_no_secret_leaks_outside_actions_on_any_path() {
        s1_every_command_and_error_path(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s1_no_secret_leaks_in_actions_but_on_mask_lines() {
        s1_every_command_and_error_path(true).await;
    }
}
