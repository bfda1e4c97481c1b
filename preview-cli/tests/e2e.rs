//! The built `preview` binary end to end, against stateful local fakes of the three APIs (one HTTP
//! server each: Fly Machines, Vercel, GitHub), a stand-in `flyctl` and a real PostgreSQL server.
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
//! Needs the PostgreSQL server binaries (see `preview_testkit::postgres`); the tests are in
//! `mod postgres`, so `-- --skip postgres` skips them by name.

mod common;
mod world;

use std::process::Command as StdCommand;

use preview_core::PrState;
use preview_testkit::fakes::vercel::BuildOutcome;

use common::forms;
use world::*;

/// Every test here starts the world, which needs PostgreSQL: `-- --skip postgres` skips them by name.
mod postgres {
    use super::*;

    // ---------------------------------------------------------------------------------------------
    // Acceptance 1: deploy, re-deploy with nothing changed, teardown, sweep.

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deploy_redeploy_teardown_then_sweep_only_closed_leftovers() {
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(42, PrState::Open));

        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("pr-42-agents is ready"), "{out:?}");
        assert!(
            out.stdout.contains("https://pr-42-ui.preview.inkeep.com"),
            "{out:?}"
        );
        // Outside Actions: no workflow commands at all.
        assert!(!out.stdout.contains("::"), "{out:?}");
        assert_eq!(w.fly.apps(), vec!["pr-42-agents".to_string()]);
        let vars = w.branch_vars("feature/change-42");
        assert!(
            vars.contains(&"INKEEP_AGENTS_MANAGE_DATABASE_URL".to_string()),
            "{vars:?}"
        );
        assert!(
            vars.contains(&"NEXT_PUBLIC_INKEEP_AGENTS_API_URL".to_string()),
            "{vars:?}"
        );
        let mut domains = w.domains();
        domains.sort();
        assert_eq!(
            domains,
            [
                "pr-42-api.preview.inkeep.com",
                "pr-42-ui.preview.inkeep.com"
            ]
        );
        // The hooks ran from the repository root, through the tunnels, with the environment the
        // config gives them (URLs with a password are secrets: masked in their output).
        let root = w.dir.canonicalize().unwrap();
        assert!(
            out.stderr
                .contains(&format!("[migrate] {}\n", root.display())),
            "{out:?}"
        );
        assert!(
            out.stderr
                .contains("[auth-init] INKEEP_AGENTS_MANAGE_DATABASE_URL=***\n"),
            "{out:?}"
        );
        assert!(
            out.stderr
                .contains("[auth-init] INKEEP_AGENTS_API_URL=https://pr-42-api.preview.inkeep.com"),
            "{out:?}"
        );
        assert!(
            out.stderr
                .contains("[auth-init] SPICEDB_ENDPOINT=127.0.0.1:"),
            "{out:?}"
        );
        // Seeded once the readiness URL answered, with the bypass secret.
        let seeds: Vec<_> = w
            .app
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == "PUT")
            .collect();
        assert_eq!(seeds.len(), 1);
        assert!(
            seeds[0]
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 20)
        );
        let comment = w.last_comment(42);
        assert!(comment.contains("pr-42-ui.preview.inkeep.com"), "{comment}");
        let deployment = w.github.deployments();
        assert_eq!(deployment.len(), 1);
        assert_eq!(
            deployment[0].statuses.last().map(|s| s.state.as_str()),
            Some("success")
        );

        // Again with nothing changed: no provider is asked to change anything.
        let before = w.mutations();
        let out = w.run(&["deploy", "--pr", "42", "--json"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let after = w.mutations();
        // `--json`: JSON Lines on stdout: each phase as it starts and ends, then the result
        // document, every resource unchanged.
        let report = json_lines_then_result(&out.stdout);
        let changes = report["changes"].as_array().expect("changes");
        assert!(!changes.is_empty(), "{report:#}");
        assert!(
            changes.iter().all(|c| c["outcome"] == "unchanged"),
            "{report:#}"
        );
        assert_eq!(
            after,
            before,
            "(fly, vercel, github) mutating requests of an unchanged re-deploy\n{out:?}\nfly: {:#?}\nvercel: {:#?}\ngithub: {:#?}",
            &w.fly.mutating()[before.0..],
            &w.vercel.mutations()[before.1..],
            &w.github.writes()[before.2..],
        );

        // The PR closes: teardown leaves nothing of ours behind.
        w.github.set_pull_request(pr(42, PrState::Closed));
        let out = w.run(&["teardown", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("pr-42-agents torn down"), "{out:?}");
        assert!(w.fly.apps().is_empty(), "{:?}", w.fly.apps());
        assert!(w.branch_vars("feature/change-42").is_empty());
        assert!(w.domains().is_empty(), "{:?}", w.domains());
        let comment = w.last_comment(42);
        assert!(comment.contains("torn down"), "{comment}");
        assert_eq!(
            w.github.comments(42).len(),
            1,
            "one comment, updated in place"
        );
        let deployments = w.github.deployments();
        assert!(
            deployments
                .iter()
                .all(|d| d.statuses.last().map(|s| s.state.as_str()) == Some("inactive")),
            "{deployments:#?}"
        );

        // Tearing down what is gone succeeds and changes nothing.
        let before = w.mutations();
        let out = w.run(&["teardown", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(
            w.mutations(),
            before,
            "(fly, vercel, github) mutating requests of a repeated teardown\n{out:?}\ngithub: {:#?}",
            &w.github.writes()[before.2..]
        );

        // Two more PRs, deployed at the same time as two workflow runs would; one of them closes
        // without its teardown ever running.
        w.github.set_pull_request(pr(43, PrState::Open));
        w.github.set_pull_request(pr(44, PrState::Open));
        let (a, b) = tokio::join!(
            w.run(&["deploy", "--pr", "43"], &[]),
            w.run(&["deploy", "--pr", "44"], &[])
        );
        assert_eq!(a.code, 0, "{a:?}");
        assert_eq!(b.code, 0, "{b:?}");
        w.github.set_pull_request(pr(44, PrState::Closed));
        let out = w.run(&["status"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let row = |name: &str| {
            out.stdout
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no status row for {name}: {out:?}"))
                .to_string()
        };
        let (open, closed) = (row("pr-43-agents"), row("pr-44-agents"));
        assert!(open.contains("#43") && open.contains("open"), "{out:?}");
        assert!(
            closed.contains("#44") && closed.contains("closed"),
            "{out:?}"
        );
        assert!(open.contains("pr-43-ui.preview.inkeep.com"), "{out:?}");
        assert!(!out.stdout.contains("pr-42-agents"), "{out:?}");

        let apps_before = w.fly.apps();
        assert_eq!(apps_before, ["pr-43-agents", "pr-44-agents"]);
        let domains_before = w.domains();
        assert_eq!(domains_before.len(), 4);

        let before = w.mutations();
        let out = w.run(&["sweep", "--dry-run"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("would remove"), "{out:?}");
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("would remove") && l.contains("pr-44-agents")),
            "{out:?}"
        );
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("keep") && l.contains("pr-43-agents")),
            "{out:?}"
        );
        assert_eq!(w.mutations(), before, "a dry run changes nothing");
        assert_eq!(w.fly.apps(), apps_before);
        assert_eq!(w.domains(), domains_before);

        let out = w.run(&["sweep"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("removed") && l.contains("pr-44-agents")),
            "{out:?}"
        );
        assert_eq!(w.fly.apps(), ["pr-43-agents"]);
        assert!(w.branch_vars("feature/change-44").is_empty());
        assert!(!w.branch_vars("feature/change-43").is_empty());
        let mut domains = w.domains();
        domains.sort();
        assert_eq!(
            domains,
            [
                "pr-43-api.preview.inkeep.com",
                "pr-43-ui.preview.inkeep.com"
            ]
        );
    }

    // ---------------------------------------------------------------------------------------------
    // Acceptance 2: GitHub Actions mode masks every secret first and leaks none.

    /// Every secret of PR 42 is masked before the first other stdout line, and no secret (in any of
    /// its forms) is in stdout, stderr, the step summary, the outputs file or a request to GitHub.
    fn assert_masked_first_and_never_leaked(w: &World, run: &ActionsRun) {
        let out = &run.out;
        let secrets = sensitive(&w.config, 42);
        // Five generated, two imported, and the forms derived from them (URLs with the password).
        assert!(secrets.len() >= 8, "{}", secrets.len());
        assert!(secrets.iter().any(|s| s == ANTHROPIC));

        // The leading block of stdout is the masks; every line of every secret is in it.
        let lines: Vec<&str> = out.stdout.lines().collect();
        let first_other = lines
            .iter()
            .position(|l| !l.starts_with("::add-mask::"))
            .unwrap_or(lines.len());
        assert!(first_other > 0, "{out:?}");
        let masked: Vec<&str> = lines[..first_other]
            .iter()
            .map(|l| &l["::add-mask::".len()..])
            .collect();
        for s in &secrets {
            for line in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
                assert!(
                    masked.contains(&line),
                    "not masked before the first other line: {}…",
                    &line[..line.len().min(6)]
                );
            }
        }

        // Later mask lines (values the pipeline learns while running, e.g. tunnel URLs) are read by
        // the runner and never shown; everything else must be free of secrets.
        let stdout_after_masks = lines[first_other..]
            .iter()
            .filter(|l| !l.starts_with("::add-mask::"))
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        let requests = w.github_requests();
        assert!(!requests.is_empty());
        let places: Vec<(&str, String)> = vec![
            ("stdout", stdout_after_masks),
            ("stderr", out.stderr.clone()),
            ("step summary", run.summary.clone()),
            ("outputs file", run.outputs.clone()),
            ("requests to GitHub", requests.join("\n")),
        ];
        for s in &secrets {
            for form in forms(s) {
                for (place, text) in &places {
                    if let Some(line) = text.lines().find(|l| l.contains(&form)) {
                        panic!(
                            "a secret appears in {place}: {} (as is: {})",
                            line.replace(&form, "<SECRET>"),
                            &form == s
                        );
                    }
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn actions_mode_masks_every_secret_first_and_leaks_none() {
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(42, PrState::Open));
        let run = deploy_in_actions(&w).await;
        assert_eq!(run.out.code, 0, "{:?}", run.out);
        assert!(
            run.out.stdout.lines().any(|l| l.starts_with("::group::")),
            "phases are log groups: {:?}",
            run.out
        );
        assert!(
            run.outputs
                .contains("api_url=https://pr-42-api.preview.inkeep.com"),
            "{}",
            run.outputs
        );
        assert!(run.summary.contains("pr-42-agents"), "{}", run.summary);
        // The hooks' output (their whole environment) went through the masks too.
        assert!(
            run.out
                .stdout
                .contains("[auth-init] BETTER_AUTH_SECRET=***"),
            "{:?}",
            run.out
        );
        assert_masked_first_and_never_leaked(&w, &run);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn actions_mode_failure_links_the_run_and_leaks_none() {
        let w = World::start(Tweaks {
            migrate: r#"["false"]"#,
            ..Tweaks::default()
        })
        .await;
        w.github.set_pull_request(pr(42, PrState::Open));
        let run = deploy_in_actions(&w).await;
        assert_failure_reported(&w, &run.out, "hooks").await;
        assert!(
            run.out
                .stdout
                .lines()
                .any(|l| l.starts_with("::error title=preview deploy::")),
            "{:?}",
            run.out
        );
        let comment = w.last_comment(42);
        assert!(
            comment.contains("https://github.com/acme/app/actions/runs/4242"),
            "the failure report links the run:\n{comment}"
        );
        assert_masked_first_and_never_leaked(&w, &run);
    }

    // ---------------------------------------------------------------------------------------------
    // Acceptance 3: a failure at any phase is reported on the PR and exits non-zero.

    async fn assert_failure_reported(w: &World, out: &Output, phase: &str) {
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("error:"), "{out:?}");
        let comment = w.last_comment(42);
        assert!(
            comment.contains("Failed phase") && comment.contains(phase),
            "the PR's comment does not name the phase {phase:?}:\n{comment}\n{out:?}"
        );
        let statuses: Vec<String> = w
            .github
            .deployments()
            .iter()
            .filter_map(|d| d.statuses.last().map(|s| s.state.clone()))
            .collect();
        assert!(
            statuses.iter().any(|s| s == "failure" || s == "error"),
            "{statuses:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_hook_is_reported_on_the_pr() {
        let w = World::start(Tweaks {
            migrate: r#"["false"]"#,
            ..Tweaks::default()
        })
        .await;
        w.github.set_pull_request(pr(42, PrState::Open));
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_failure_reported(&w, &out, "hooks").await;
        assert!(out.stderr.contains("migrate"), "{out:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_vercel_build_in_error_is_reported_on_the_pr() {
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(42, PrState::Open));
        w.vercel.set_build(BuildOutcome::Error {
            after_polls: 1,
            code: "BUILD_FAILED".into(),
            message: "Command \"pnpm build\" exited with 1".into(),
        });
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_failure_reported(&w, &out, "deployments").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fly_machine_that_never_gets_healthy_is_reported_on_the_pr() {
        let w = World::start(Tweaks {
            database_ready: "3s",
            ..Tweaks::default()
        })
        .await;
        w.github.set_pull_request(pr(42, PrState::Open));
        w.fly.set_check_status("critical");
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_failure_reported(&w, &out, "database").await;
    }

    // ---------------------------------------------------------------------------------------------
    // Acceptance 4: exec runs a command through the tunnels and returns its exit code.

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_returns_the_command_exit_code_with_tunnel_urls_in_its_env() {
        let w = World::start(Tweaks::default()).await;
        let out = w
        .run(
            &[
                "exec",
                "--pr",
                "42",
                "--",
                "sh",
                "-c",
                "printf 'manage=%s\\n' \"$PREVIEW_MANAGE_URL\"; \
                 printf 'credentials=%s%s%s%s\\n' \"$FLY_API_TOKEN\" \"$VERCEL_TOKEN\" \"$GITHUB_TOKEN\" \"$PREVIEW_MASTER_SECRET\"; \
                 exit 7",
            ],
            &[],
        )
        .await;
        assert_eq!(out.code, 7, "{out:?}");
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("manage="))
            .unwrap_or_else(|| panic!("{out:?}"));
        assert!(line.starts_with("manage=postgresql://appuser:"), "{out:?}");
        assert!(line.contains("@127.0.0.1:"), "{out:?}");
        // The command may be the PR's own code: it never gets preview's credentials.
        assert!(out.stdout.contains("credentials=\n"), "{out:?}");
        // No API was needed: tunnels only.
        assert_eq!(w.mutations(), (0, 0, 0));

        let out = w.run(&["exec", "--pr", "42", "--", "true"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        // Tokens from files instead of variables (`NAME_FILE`), for every provider and flyctl.
        let mut env: Vec<(String, String)> = Vec::new();
        for (k, v) in w.env() {
            if [
                "FLY_API_TOKEN",
                "VERCEL_TOKEN",
                "GITHUB_TOKEN",
                "PREVIEW_MASTER_SECRET",
            ]
            .contains(&k.as_str())
            {
                let file = w.dir.join(k.to_ascii_lowercase());
                std::fs::write(&file, format!("{v}\n")).unwrap();
                env.push((format!("{k}_FILE"), file.to_string_lossy().to_string()));
            } else {
                env.push((k, v));
            }
        }
        let out = w
            .run_with(&["exec", "--pr", "42", "--", "true"], env.clone())
            .await;
        assert_eq!(out.code, 0, "{out:?}");
        let out = w.run_with(&["status"], env).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("no environments"), "{out:?}");

        // Killed by a signal: 128 + N, as a shell reports it.
        let out = w
            .run(
                &["exec", "--pr", "42", "--", "sh", "-c", "kill -TERM $$"],
                &[],
            )
            .await;
        assert_eq!(out.code, 128 + 15, "{out:?}");
    }

    // ---------------------------------------------------------------------------------------------
    // The example's workflow jobs, each with only the environment its job gives it.

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn teardown_and_sweep_jobs_work_without_the_deploy_secrets() {
        let w = World::start(Tweaks::default()).await;
        // The Actions GITHUB_TOKEN: no GET /user, no environment deletes.
        w.github.act_as_actions_token();
        w.github.forbid_environment_delete();
        w.github.set_pull_request(pr(42, PrState::Open));
        let run = deploy_in_actions(&w).await;
        assert_eq!(run.out.code, 0, "{:?}", run.out);

        w.github.set_pull_request(pr(42, PrState::Closed));
        let event = pr_event(&w, "closed", own_head());
        let out = w.run_with(&["teardown"], job_env(&w, &event)).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(w.fly.apps().is_empty(), "{:?}", w.fly.apps());
        assert!(w.branch_vars("feature/change-42").is_empty());
        assert!(w.domains().is_empty(), "{:?}", w.domains());
        assert!(w.last_comment(42).contains("torn down"));
        assert_eq!(
            w.github.comments(42).len(),
            1,
            "one comment, updated in place"
        );

        let schedule = w.dir.join("schedule.json");
        std::fs::write(&schedule, r#"{"schedule":"17 */6 * * *"}"#).unwrap();
        for args in [&["sweep", "--dry-run"][..], &["sweep"][..]] {
            let out = w.run_with(args, job_env(&w, &schedule)).await;
            assert_eq!(out.code, 0, "{out:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_push_redeploys_the_apps_at_the_new_commit() {
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(42, PrState::Open));
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let first = w.vercel.deployments().len();

        let mut pushed = pr(42, PrState::Open);
        pushed.head_sha = "a".repeat(40);
        w.github.set_pull_request(pushed);
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let new: Vec<_> = w.vercel.deployments().into_iter().skip(first).collect();
        assert_eq!(new.len(), 2, "one deployment per app: {new:#?}");
        assert!(new.iter().all(|d| d.sha == "a".repeat(40)), "{new:#?}");
        // Nothing else changed on Fly.
        assert_eq!(w.fly.apps(), ["pr-42-agents"]);
        let deployments = w.github.deployments();
        let last = deployments.last().expect("a GitHub deployment");
        assert_eq!(last.sha, "a".repeat(40), "{deployments:#?}");
        assert_eq!(
            last.statuses.last().map(|s| s.state.as_str()),
            Some("success"),
            "{deployments:#?}"
        );
        assert_eq!(
            w.github.comments(42).len(),
            1,
            "one comment, updated in place"
        );
        assert!(
            w.last_comment(42).contains(&"a".repeat(7)),
            "{}",
            w.last_comment(42)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fork_pr_is_skipped_before_any_token_is_read_or_request_sent() {
        let w = World::start(Tweaks::default()).await;
        let event = pr_event(
            &w,
            "opened",
            serde_json::json!({"ref": "main", "sha": "b".repeat(40), "repo": {"full_name": "mallory/app"}}),
        );
        let out = w
            .run(
                &["deploy"],
                &[
                    ("GITHUB_ACTIONS", "true"),
                    ("GITHUB_EVENT_PATH", &event.to_string_lossy()),
                ],
            )
            .await;
        assert_eq!(out.code, 3, "{out:?}");
        assert!(out.stdout.contains("fork"), "{out:?}");
        assert!(!out.stdout.contains("::add-mask::"), "{out:?}");
        assert!(w.fly.exchanges().is_empty());
        assert!(w.vercel.exchanges().is_empty());
        assert!(w.github.exchanges().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_failed_removal_does_not_stop_the_sweep_but_fails_it() {
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(43, PrState::Open));
        w.github.set_pull_request(pr(44, PrState::Open));
        let (a, b) = tokio::join!(
            w.run(&["deploy", "--pr", "43"], &[]),
            w.run(&["deploy", "--pr", "44"], &[])
        );
        assert_eq!(a.code, 0, "{a:?}");
        assert_eq!(b.code, 0, "{b:?}");
        w.github.set_pull_request(pr(43, PrState::Merged));
        w.github.set_pull_request(pr(44, PrState::Closed));
        // Fly refuses to delete one app (not retryable).
        w.fly.fail_next(
            "DELETE",
            "/apps/pr-43-agents",
            422,
            serde_json::json!({"error": "app is locked"}),
        );

        let out = w.run(&["sweep"], &[]).await;
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("FAILED to remove") && l.contains("pr-43-agents")),
            "{out:?}"
        );
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("removed") && l.contains("pr-44-agents")),
            "{out:?}"
        );
        assert_eq!(w.fly.apps(), ["pr-43-agents"]);
        assert!(w.branch_vars("feature/change-44").is_empty());

        // The next sweep finishes the job.
        let out = w.run(&["sweep"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(w.fly.apps().is_empty(), "{:?}", w.fly.apps());
        assert!(w.domains().is_empty(), "{:?}", w.domains());
    }

    // ---------------------------------------------------------------------------------------------
    // Cancellation (a superseded workflow run, Ctrl-C): hooks and tunnels do not outlive preview.
    // Per phase, with SIGINT: tests/cancel.rs (R23).

    /// Runs `args`, waits until a process running `sleep {marker}` and the tunnels of `app` exist,
    /// sends SIGTERM to preview and checks it exits 143 leaving none of them behind.
    async fn sigterm_leaves_nothing_running(w: &World, args: &[&str], marker: &str, app: &str) {
        let sleeper = format!("sleep {marker}");
        let tunnel = format!("-a {app}");
        let mut child = w
            .command(args, w.env())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let ours = |p: &String| p.contains(&sleeper) || p.contains(&tunnel);
        // Bounded: preview reaches the sleeper in a few seconds.
        let mut seen = Vec::new();
        for _ in 0..200 {
            seen = processes().into_iter().filter(|p| ours(p)).collect();
            if seen.iter().any(|p| p.contains(&sleeper)) && seen.iter().any(|p| p.contains(&tunnel))
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            seen.iter().any(|p| p.contains(&sleeper)),
            "{sleeper} never started: {seen:?}"
        );
        let pid = child.id().unwrap().to_string();
        let kill = StdCommand::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), Some(143), "{status:?}");
        let mut left = Vec::new();
        for _ in 0..50 {
            left = processes().into_iter().filter(|p| ours(p)).collect();
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            left.is_empty(),
            "still running after preview exited: {left:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_during_a_hook_stops_the_hook_and_the_tunnels() {
        // A hook that outlives the test unless it is killed; its argv is unique to this test.
        let w = World::start(Tweaks {
            migrate: r#"["sleep", "4321"]"#,
            ..Tweaks::default()
        })
        .await;
        w.github.set_pull_request(pr(77, PrState::Open));
        sigterm_leaves_nothing_running(&w, &["deploy", "--pr", "77"], "4321", "pr-77-agents").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_during_exec_stops_the_command_and_the_tunnels() {
        let w = World::start(Tweaks::default()).await;
        sigterm_leaves_nothing_running(
            &w,
            &["exec", "--pr", "78", "--", "sleep", "4322"],
            "4322",
            "pr-78-agents",
        )
        .await;
    }
}

/// Checks `stdout` of a `--json` operation: every line one JSON object; each phase a
/// `phase_started` line, then a `phase_finished` line with its elapsed milliseconds and outcome,
/// all before the last line, the result document, whose `phases` list the same durations.
fn json_lines_then_result(stdout: &str) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} in\n{stdout}")))
        .collect();
    let (result, events) = lines.split_last().expect("a result line");
    assert!(result.get("event").is_none(), "{result}");
    let mut open: Vec<&str> = Vec::new();
    let mut finished: Vec<(String, u64)> = Vec::new();
    for e in events {
        let phase = e["phase"].as_str().expect("a phase");
        assert!(e["at_ms"].is_u64(), "{e}");
        match e["event"].as_str() {
            Some("phase_started") => open.push(phase),
            Some("phase_finished") => {
                let i = open.iter().position(|p| *p == phase);
                assert!(i.is_some(), "{phase} finished before it started:\n{stdout}");
                open.remove(i.unwrap_or_default());
                assert_eq!(e["outcome"], "ok", "{e}");
                finished.push((phase.to_string(), e["elapsed_ms"].as_u64().expect("ms")));
            }
            other => panic!("unexpected event {other:?}: {e}"),
        }
    }
    assert!(open.is_empty(), "phases never finished: {open:?}");
    for p in ["observe", "database", "apps"] {
        assert!(finished.iter().any(|(q, _)| q == p), "{p}: {finished:?}");
    }
    let phases: Vec<(String, u64)> = result["phases"]
        .as_array()
        .expect("the result lists its phases")
        .iter()
        .map(|t| {
            assert_eq!(t["ok"], true, "{t}");
            (
                t["phase"].as_str().unwrap_or_default().to_string(),
                t["elapsed_ms"].as_u64().expect("ms"),
            )
        })
        .collect();
    assert_eq!(
        phases, finished,
        "the result's phases are the lines' phases"
    );
    result.clone()
}
