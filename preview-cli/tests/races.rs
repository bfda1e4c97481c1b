//! Issue 14, acceptance 2: runs racing on one PR, with the built binary against the e2e world
//! (the three providers' stateful fakes, a stand-in flyctl, a real PostgreSQL; see tests/world).
//!
//! - Two `deploy` processes of one PR started together, 10 rounds: half a first deploy, half an
//!   updating one (a new head commit and a new Machine config, so both runs want the Machine's
//!   lease). Both exit 0, neither calls anything "not ours", and the environment is complete with
//!   nothing twice (one app, one Machine, one dedicated IP of each kind, each env var once, one
//!   comment, one GitHub deployment of the commit) and a comment saying ready at the head commit.
//! - A `deploy` racing the `teardown` of its PR, closed a little later each round (from at once to
//!   after the deploy could have finished), 10 rounds: the teardown exits 0, the deploy exits 0
//!   (it finished first) or 3 (it saw the close and cleaned up), never 1, neither calls anything
//!   "not ours", nothing of the environment is left, and the comment (if one was ever written)
//!   says torn down.
//!
//! Run with `cargo test -p preview-cli --all-features --test races`.

mod common;
mod world;

use std::time::Duration;

use preview_core::PrState;

use world::state::*;
use world::*;

/// Every test here starts the world, which needs PostgreSQL: `-- --skip postgres` skips them by name.
mod postgres {
    use super::*;

    const ROUNDS: usize = 10;
    const FIRST_SHA: &str = "0000000000000000000000000000000000000042";
    const NEXT_SHA: &str = "abcdef0123456789abcdef0123456789abcdef01";

    fn set_memory(w: &World, mb: u64) {
        let text = std::fs::read_to_string(&w.config).unwrap();
        let text = text
            .replace("memory_mb = 4096", &format!("memory_mb = {mb}"))
            .replace("memory_mb = 8192", &format!("memory_mb = {mb}"));
        assert!(text.contains(&format!("memory_mb = {mb}")));
        std::fs::write(&w.config, text).unwrap();
    }

    fn truthful(out: &Output, what: &str) {
        for bad in ["not ours", "panicked"] {
            assert!(
                !out.stdout.contains(bad) && !out.stderr.contains(bad),
                "{what}: {bad:?}\n{out:?}"
            );
        }
    }

    /// A start state for a round: nothing (even rounds), or the environment deployed at the
    /// first commit with 4 GB and the PR now at the next commit with 8 GB (odd rounds).
    struct Starts {
        empty: Snapshot,
        deployed: Snapshot,
    }

    async fn starts(w: &World) -> Starts {
        set_memory(w, 4096);
        w.github.set_pull_request(head(FIRST_SHA, PrState::Open));
        let empty = snapshot(w);
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let deployed = snapshot(w);
        Starts { empty, deployed }
    }

    /// Puts the world in round `i`'s start state; the commit and memory the round deploys.
    fn begin(w: &World, s: &Starts, i: usize) -> (&'static str, u64) {
        if i % 2 == 0 {
            restore(w, &s.empty);
            set_memory(w, 4096);
            w.github.set_pull_request(head(FIRST_SHA, PrState::Open));
            (FIRST_SHA, 4096)
        } else {
            restore(w, &s.deployed);
            set_memory(w, 8192);
            w.github.set_pull_request(head(NEXT_SHA, PrState::Open));
            (NEXT_SHA, 8192)
        }
    }

    /// At most one live (not failed, not cancelled) Vercel deployment per project and commit.
    fn assert_one_vercel_deployment_each(w: &World, what: &str) {
        let mut seen = std::collections::BTreeMap::new();
        for d in w.vercel.deployments() {
            if matches!(d.state.as_str(), "ERROR" | "CANCELED") {
                continue;
            }
            *seen
                .entry((d.project_id.clone(), d.sha.clone()))
                .or_insert(0) += 1;
        }
        assert!(
            seen.values().all(|n| *n == 1),
            "{what}: Vercel deployments {seen:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_deploys_of_one_pr_at_once_both_succeed_without_duplicates() {
        let w = World::start(Tweaks::default()).await;
        let s = starts(&w).await;
        let mut vars = marked_vars(&w);
        vars.sort();
        for i in 0..ROUNDS {
            let (sha, memory) = begin(&w, &s, i);
            let (a, b) = tokio::join!(
                w.run(&["deploy", "--pr", "42"], &[]),
                w.run(&["deploy", "--pr", "42"], &[])
            );
            let what = format!(
                "round {i} ({})",
                if i % 2 == 0 { "first" } else { "update" }
            );
            assert_eq!(a.code, 0, "{what}: first run\n{a:?}\nother run:\n{b:?}");
            assert_eq!(b.code, 0, "{what}: second run\n{b:?}\nother run:\n{a:?}");
            truthful(&a, &what);
            truthful(&b, &what);
            assert_complete(&w, &vars, sha, memory, 0, &what);
            assert_one_vercel_deployment_each(&w, &what);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deploy_racing_the_teardown_of_its_closed_pr_leaves_nothing_and_says_so() {
        let w = World::start(Tweaks::default()).await;
        let s = starts(&w).await;
        let mut finished_first = 0;
        for i in 0..ROUNDS {
            let (sha, _) = begin(&w, &s, i);
            // The PR closes a little later each round: from before the deploy got anywhere to
            // about when it is done.
            let delay = Duration::from_millis(45 * i as u64);
            let deploy = w.run(&["deploy", "--pr", "42"], &[]);
            let teardown = async {
                tokio::time::sleep(delay).await;
                w.github.set_pull_request(head(sha, PrState::Closed));
                w.run(&["teardown", "--pr", "42"], &[]).await
            };
            let (d, t) = tokio::join!(deploy, teardown);
            let what = format!("round {i} (closed after {delay:?})");
            assert_eq!(t.code, 0, "{what}: teardown\n{t:?}\ndeploy:\n{d:?}");
            assert!(
                d.code == 0 || d.code == 3,
                "{what}: the deploy exited {}\n{d:?}\nteardown:\n{t:?}",
                d.code
            );
            if d.code == 0 {
                finished_first += 1;
            }
            truthful(&d, &what);
            truthful(&t, &what);
            let left = leftovers(&w);
            assert!(
                left.is_empty(),
                "{what}: left {left:#?}\ndeploy:\n{d:?}\nteardown:\n{t:?}"
            );
            let comments = w.github.comments(PR as u32);
            assert!(comments.len() <= 1, "{what}: {comments:#?}");
            if let Some(c) = comments.first() {
                assert!(
                    c.body.contains("state=torn_down"),
                    "{what}: the comment says\n{}\ndeploy:\n{d:?}\nteardown:\n{t:?}",
                    c.body
                );
            }
        }
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "the deploy finished before the close in {finished_first} of {ROUNDS} rounds"
            );
        }
    }
}
