//! Issue 14, acceptance 6: a Fly Machine that fails 1 s after its create is reported at once. The
//! built binary against the e2e world (tests/world): the deploy fails within 6 s of its start (a
//! functional deadline: the bound for "reported within 5 s of failing"), exits 1, and
//! names the database phase on stderr and in the PR comment.
//!
//! Run with `cargo test -p preview-cli --all-features --test boot`.

mod common;
mod world;

use std::time::{Duration, Instant};

use preview_core::PrState;

use world::state::*;
use world::*;

/// Every test here starts the world, which needs PostgreSQL: `-- --skip postgres` skips them by name.
mod postgres {
    use super::*;

    /// The functional deadline from the deploy's start.
    const DEADLINE: Duration = Duration::from_secs(6);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_machine_that_fails_a_second_after_its_create_fails_the_deploy_within_6s() {
        // The database may take its time (30 s here): only the failure must be quick.
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(PR, PrState::Open));
        // Machines read `starting` for a second after their create, then `failed` (with an
        // OOM exit event); a `/wait` is held like the API's long poll.
        w.fly.set_boot_state("failed");
        w.fly.set_boot_time(Some(Duration::from_secs(1)));

        let started = Instant::now();
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        let took = started.elapsed();
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            took <= DEADLINE,
            "reported {:.1}s after the deploy started (deadline 6 s)\n{out:?}",
            took.as_secs_f64()
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!("failed deploy reported after {:.2}s", took.as_secs_f64());
        }
        assert!(out.stderr.contains("error: database:"), "{out:?}");
        assert!(out.stderr.contains("the machine is failed"), "{out:?}");
        assert!(out.stderr.contains("oom_killed=true"), "{out:?}");
        let comment = w.last_comment(42);
        assert!(
            comment.contains("state=failed") && comment.contains("database"),
            "{comment}"
        );
        // One long poll answered the failure; no request storm.
        let waits = w
            .fly
            .exchanges()
            .iter()
            .filter(|x| x.path.ends_with("/wait"))
            .count();
        assert_eq!(waits, 1, "{:#?}", w.fly.exchanges());
    }
}
