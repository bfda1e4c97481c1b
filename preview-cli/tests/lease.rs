//! Issue 14, acceptance 3: a run SIGKILLed while it holds a Fly Machine lease does not block the
//! next deploy. The built binary against the e2e world (tests/world), with the real lease TTL.
//!
//! The killed run took the lease for an update and wrote the app secrets under it, but never sent
//! the update: the next deploy still has to update the Machine, finds the lease held by an earlier
//! `preview` run, says so, waits until it runs out, and succeeds. A lease someone else holds is
//! still an error, at once.
//!
//! Run with `cargo test -p preview-cli --all-features --test lease`.

mod common;
mod world;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use preview_core::PrState;

use world::state::*;
use world::*;

/// Every test here starts the world, which needs PostgreSQL: `-- --skip postgres` skips them by name.
mod postgres {
    use super::*;

    fn more_memory(w: &World) {
        let text = std::fs::read_to_string(&w.config).unwrap();
        assert!(text.contains("memory_mb = 4096"));
        std::fs::write(
            &w.config,
            text.replace("memory_mb = 4096", "memory_mb = 8192"),
        )
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_left_by_a_killed_run_is_waited_out_and_the_next_deploy_succeeds() {
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(PR, PrState::Open));
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        more_memory(&w);

        // The next run's secrets write (made under the lease, before the update) never answers.
        let slow = Arc::new(AtomicBool::new(true));
        let s = slow.clone();
        w.fly.set_latency(move |r| {
            if r.method.as_str() == "POST"
                && r.url.path().ends_with("/secrets")
                && s.load(Ordering::SeqCst)
            {
                Duration::from_secs(600)
            } else {
                Duration::ZERO
            }
        });
        let mut run = spawn(&w, &["deploy", "--pr", "42"], &[]);
        let fly = w.fly.clone();
        run.until("the secrets write under the lease", move |_| {
            fly.leases_held() == 1
                && fly
                    .exchanges()
                    .iter()
                    .any(|x| x.method == "POST" && x.path.ends_with("/secrets"))
        })
        .await;
        // SIGKILL, as a runner does to a cancelled job that did not stop in time.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &run.pid.to_string()])
            .status();
        let _ = run.child.wait().await;
        run.done.store(true, Ordering::SeqCst);
        slow.store(false, Ordering::SeqCst);

        let leases = w.fly.lease_details(APP);
        assert_eq!(leases.len(), 1, "{leases:?}");
        let (owner, description, _) = &leases[0];
        assert_eq!(owner, &w.fly.identity(), "our own token holds it");
        assert!(description.starts_with("preview apply "), "{description}");
        assert_eq!(
            w.fly.machines(APP)[0]["config"]["guest"]["memory_mb"],
            4096,
            "the killed run never sent the update"
        );

        // The next deploy waits the lease out (with progress) and converges, without a human.
        w.fly.clear_log();
        let started = Instant::now();
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            out.stderr.contains("is leased by another preview run"),
            "no progress line\n{out:?}"
        );
        assert_eq!(w.fly.machines(APP)[0]["config"]["guest"]["memory_mb"], 8192);
        assert_eq!(w.fly.leases_held(), 0);
        let asks: Vec<u16> = w
            .fly
            .exchanges()
            .iter()
            .filter(|x| x.method == "POST" && x.path.ends_with("/lease"))
            .map(|x| x.status)
            .collect();
        assert_eq!(asks.first(), Some(&409), "{asks:?}");
        assert_eq!(asks.last(), Some(&201), "{asks:?}");
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "the deploy after the kill took {:.1}s ({} lease asks)",
                started.elapsed().as_secs_f64(),
                asks.len()
            );
        }
        // Nothing left to change.
        let before = w.mutations();
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(w.mutations(), before, "{out:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_held_by_someone_else_is_still_an_error_at_once() {
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(PR, PrState::Open));
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        more_memory(&w);
        w.fly.hold_foreign_lease(APP);
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr
                .contains("lease currently held by someone@example.com")
                && out.stderr.contains("it is not ours"),
            "{out:?}"
        );
        assert!(!out.stderr.contains("waiting"), "{out:?}");
        assert_eq!(w.fly.machines(APP)[0]["config"]["guest"]["memory_mb"], 4096);
        let comment = w.last_comment(42);
        assert!(
            comment.contains("state=failed") && comment.contains("database"),
            "{comment}"
        );
    }
}
