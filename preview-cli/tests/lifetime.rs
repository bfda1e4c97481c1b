//! A preview's lifetime with the built binary against the HTTP fakes (see `e2e.rs` for the
//! world): deploy knows whether the database Machine lost its memory since the hooks last
//! succeeded. Untouched → an unchanged re-deploy opens no tunnel and runs no hook; restarted
//! behind our back (host maintenance, an OOM kill) → the next deploy runs the hooks and the seed
//! again.
//!
//! Needs the PostgreSQL server binaries; `-- --skip postgres` skips these by name.

mod common;
mod world;

use preview_core::PrState;

use world::*;

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn untouched_machine_skips_hooks_and_a_restart_behind_our_back_reruns_them() {
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(50, PrState::Open));

        let out = w.run(&["deploy", "--pr", "50"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("[migrate] "), "{out:?}");
        let (tunnels, seeds) = (w.tunnels_opened(), w.seeds().await);
        assert!(tunnels > 0, "the first deploy opened its tunnels");
        assert_eq!(seeds, 1);

        // Nothing changed and the Machine was not touched: no tunnel, no hook, no seed.
        let out = w.run(&["deploy", "--pr", "50"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("pr-50-agents is ready"), "{out:?}");
        assert!(!out.stderr.contains("[migrate]"), "{out:?}");
        assert!(!out.stderr.contains("[auth-init]"), "{out:?}");
        assert_eq!(w.tunnels_opened(), tunnels, "{out:?}");
        assert_eq!(w.seeds().await, seeds);

        // The Machine restarts behind our back: its memory (the databases) is fresh, so the
        // next deploy, with the same commit and config, migrates and seeds again.
        w.fly.restart_machines("pr-50-agents");
        let out = w.run(&["deploy", "--pr", "50"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("pr-50-agents is ready"), "{out:?}");
        assert!(out.stderr.contains("[migrate] "), "{out:?}");
        assert!(out.stderr.contains("[auth-init] "), "{out:?}");
        assert!(w.tunnels_opened() > tunnels, "{out:?}");
        assert_eq!(w.seeds().await, seeds + 1);
        assert_eq!(w.fly.machines("pr-50-agents").len(), 1);

        // And once they succeeded on that boot, the next unchanged deploy skips them again.
        let tunnels = w.tunnels_opened();
        let out = w.run(&["deploy", "--pr", "50"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(!out.stderr.contains("[migrate]"), "{out:?}");
        assert_eq!(w.tunnels_opened(), tunnels);
        assert_eq!(w.seeds().await, seeds + 1);
    }
}
