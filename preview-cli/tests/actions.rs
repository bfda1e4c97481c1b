//! GitHub Actions output of the built binary (issue 14, item 10; acceptance 9), in the e2e world
//! (tests/world): the three providers' stateful fakes, a stand-in flyctl and a real PostgreSQL.
//!
//! - Log groups close before the next phase's lines: every ✓/✗ line is in its own phase's group,
//!   none inside `announce`, groups never nest.
//! - Each `::add-mask::` value is printed once.
//! - The deployment status names the failed phase once and fits GitHub's 140 characters, cut on a
//!   character boundary with an ellipsis.
//! - Sweep reasons read "the PR is …" whatever the state.
//! - One sticky comment per PR whatever token identity ran last (a maintainer's personal token,
//!   the workflow's token), and teardown updates that one; a forged marker is left alone.

mod common;
mod world;

use std::collections::BTreeMap;

use preview_cli::progress::misplaced_phase_lines;
use preview_core::PrState;
use preview_testkit::fakes::vercel::BuildOutcome;
use providers_github::ACTIONS_BOT;

use world::*;

/// A maintainer's personal token in the GitHub fake.
const ALICE: &str = "ghp_alice_personal_token";

/// Every test here starts the world, which needs PostgreSQL: `-- --skip postgres` skips them by name.
mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn groups_hold_their_own_phase_lines_and_each_value_is_masked_once() {
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(42, PrState::Open));
        let run = deploy_in_actions(&w).await;
        let out = &run.out;
        assert_eq!(out.code, 0, "{out:?}");

        // Not vacuous: the concurrent phases all printed their lines as groups.
        let groups: Vec<&str> = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("::group::"))
            .collect();
        for phase in [
            "observe",
            "announce",
            "database",
            "apps",
            "deployments",
            "tunnels",
            "hooks",
            "readiness",
            "seed",
            "report",
        ] {
            assert!(groups.contains(&phase), "no {phase} group: {out:?}");
        }
        assert_eq!(misplaced_phase_lines(&out.stdout), [], "{out:?}");
        // What the issue saw: the ✓ lines of apps, database, deployments and tunnels inside the
        // announce group.
        let mut open = None;
        for l in out.stdout.lines() {
            if let Some(g) = l.strip_prefix("::group::") {
                open = Some(g);
            } else if l == "::endgroup::" {
                open = None;
            } else if open == Some("announce") {
                assert!(
                    !["✓ apps", "✓ database", "✓ deployments", "✓ tunnels"]
                        .iter()
                        .any(|p| l.starts_with(p)),
                    "{l} inside announce: {out:?}"
                );
            }
        }
        // Resource lines sit in the group of the phase that made them.
        let group_of = |needle: &str| {
            let mut open = "";
            for l in out.stdout.lines() {
                if let Some(g) = l.strip_prefix("::group::") {
                    open = g;
                } else if l == "::endgroup::" {
                    open = "";
                } else if l.contains(needle) {
                    return open.to_string();
                }
            }
            panic!("no {needle:?} line: {out:?}")
        };
        assert_eq!(group_of("created app pr-42-agents (fly)"), "database");
        assert_eq!(
            group_of("created domain pr-42-api.preview.inkeep.com"),
            "apps"
        );
        assert_eq!(group_of("[migrate]"), "hooks");

        // Each mask once.
        let mut masks: BTreeMap<&str, usize> = BTreeMap::new();
        for l in out.stdout.lines() {
            if let Some(v) = l.strip_prefix("::add-mask::") {
                *masks.entry(v).or_default() += 1;
            }
        }
        assert!(masks.len() >= 8, "{masks:?}");
        let twice: Vec<_> = masks.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "masked more than once: {} values",
            twice.len()
        );
    }

    /// The latest status of every deployment of the fake, newest deployment last.
    fn descriptions(w: &World) -> Vec<(String, String)> {
        w.github
            .deployments()
            .iter()
            .filter_map(|d| d.statuses.last())
            .map(|s| (s.state.clone(), s.description.clone()))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failure_status_names_its_phase_once_and_fits_githubs_limit() {
        let w = World::start(Tweaks {
            migrate: r#"["false"]"#,
            ..Tweaks::default()
        })
        .await;
        w.github.set_pull_request(pr(42, PrState::Open));
        let run = deploy_in_actions(&w).await;
        assert_eq!(run.out.code, 1, "{:?}", run.out);
        let statuses = descriptions(&w);
        assert_eq!(
            statuses.last(),
            Some(&(
                "failure".to_string(),
                "Failed in hooks: hook migrate: exited with code 1".to_string()
            )),
            "{statuses:?}"
        );
        // The comment names it once too.
        let comment = w.last_comment(42);
        assert!(!comment.contains("hooks&#58; hook"), "{comment}");
        assert!(comment.contains("hook migrate&#58; exited"), "{comment}");

        // A long, multi-byte error (a Vercel build's message) is cut to 140 characters.
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(42, PrState::Open));
        w.vercel.set_build(BuildOutcome::Error {
            after_polls: 1,
            code: "BUILD_FAILED".into(),
            message: "Überprüfung fehlgeschlagen — 日本語のエラー 🚀 ".repeat(12),
        });
        let run = deploy_in_actions(&w).await;
        assert_eq!(run.out.code, 1, "{:?}", run.out);
        let (state, d) = descriptions(&w).last().cloned().expect("a status");
        assert_eq!(state, "failure");
        assert!(
            d.starts_with("Failed in deployments: vercel deployment "),
            "{d}"
        );
        assert!(!d.contains("deployments: deployments:"), "{d}");
        assert!(d.chars().count() <= 140, "{} chars: {d}", d.chars().count());
        assert!(d.ends_with('…') && !d.ends_with(" …"), "{d}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweep_reasons_read_the_same_for_every_state() {
        let w = World::start(Tweaks::default()).await;
        for n in [43, 44] {
            w.github.set_pull_request(pr(n, PrState::Open));
            let out = w.run(&["deploy", "--pr", &n.to_string()], &[]).await;
            assert_eq!(out.code, 0, "{out:?}");
        }
        w.github.set_pull_request(pr(44, PrState::Merged));
        let out = w.run(&["sweep", "--dry-run"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let line = |name: &str| {
            out.stdout
                .lines()
                .find(|l| l.contains(name))
                .unwrap_or_else(|| panic!("no {name}: {out:?}"))
                .to_string()
        };
        assert!(line("pr-43-agents").ends_with("the PR is open"), "{out:?}");
        assert!(
            line("pr-44-agents").ends_with("the PR is merged"),
            "{out:?}"
        );
        assert!(!out.stdout.contains("the pr "), "{out:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_sticky_comment_whatever_identity_ran_last() {
        let w = World::start(Tweaks::default()).await;
        // The workflow's token is the default one; alice, a maintainer, has a personal token.
        w.github.act_as_actions_token();
        w.github.forbid_environment_delete();
        w.github.add_user_token(ALICE, "alice", "write");
        // Someone without write access pastes a "ready" marker for the environment.
        w.github.set_pull_request(pr(42, PrState::Open));
        let forged = w.github.add_comment(
            42,
            "mallory",
            "<!-- preview:env=pr-42-agents state=ready -->\nall good, merge it",
        );

        // By hand, with alice's token, outside Actions.
        let out = w
            .run(&["deploy", "--pr", "42"], &[("GITHUB_TOKEN", ALICE)])
            .await;
        assert_eq!(out.code, 0, "{out:?}");
        let ours = |w: &World| {
            w.github
                .comments(42)
                .into_iter()
                .filter(|c| c.id != forged)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ours(&w)
                .iter()
                .map(|c| c.author.as_str())
                .collect::<Vec<_>>(),
            ["alice"]
        );

        // Then the workflow on a new push: the same comment.
        let mut pushed = pr(42, PrState::Open);
        pushed.head_sha = "d".repeat(40);
        w.github.set_pull_request(pushed.clone());
        let run = deploy_in_actions(&w).await;
        assert_eq!(run.out.code, 0, "{:?}", run.out);
        let comments = ours(&w);
        assert_eq!(comments.len(), 1, "{comments:#?}");
        assert!(
            comments[0].body.contains(&"d".repeat(7)),
            "{}",
            comments[0].body
        );

        // And its teardown updates that one.
        let mut closed = pushed;
        closed.state = PrState::Closed;
        w.github.set_pull_request(closed);
        let event = pr_event(&w, "closed", own_head());
        let out = w.run_with(&["teardown"], job_env(&w, &event)).await;
        assert_eq!(out.code, 0, "{out:?}");
        let comments = ours(&w);
        assert_eq!(comments.len(), 1, "{comments:#?}");
        assert!(
            comments[0].body.contains("was removed"),
            "{}",
            comments[0].body
        );
        // The forged one was never trusted nor touched.
        let mallory = w
            .github
            .comments(42)
            .into_iter()
            .find(|c| c.id == forged)
            .expect("still there");
        assert!(
            mallory
                .body
                .starts_with("<!-- preview:env=pr-42-agents state=ready -->")
        );
        assert!(
            w.github
                .writes()
                .iter()
                .all(|x| !x.path.ends_with(&format!("/comments/{forged}")))
        );

        // The other order, and two comments left by earlier versions: the workflow converges.
        let w = World::start(Tweaks::default()).await;
        w.github.act_as_actions_token();
        w.github.add_user_token(ALICE, "alice", "write");
        w.github.set_pull_request(pr(42, PrState::Open));
        let run = deploy_in_actions(&w).await;
        assert_eq!(run.out.code, 0, "{:?}", run.out);
        let first = w.last_comment(42);
        w.github.add_comment(42, "alice", &first);
        let out = w
            .run(&["deploy", "--pr", "42"], &[("GITHUB_TOKEN", ALICE)])
            .await;
        assert_eq!(out.code, 0, "{out:?}");
        let authors: Vec<String> = w
            .github
            .comments(42)
            .into_iter()
            .map(|c| c.author)
            .collect();
        assert_eq!(authors, ["alice"], "alice keeps hers, removes the bot's");
        let run = deploy_in_actions(&w).await;
        assert_eq!(run.out.code, 0, "{:?}", run.out);
        let authors: Vec<String> = w
            .github
            .comments(42)
            .into_iter()
            .map(|c| c.author)
            .collect();
        assert_eq!(authors, ["alice"]);
        assert_ne!(authors[0], ACTIONS_BOT);
    }
}
