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

/// The reconcile pass (`sweep` with a `[lifetime]` policy) with the built binary: each
/// decision printed with its evidence, `--dry-run` changing nothing, a re-run converged, a PR
/// listing that fails acting on nothing, and a push waking a preview that was put to sleep.
mod reconcile {
    use super::*;

    const POLICY: &str =
        "\n[lifetime]\nttl = \"168h\"\nsleep_after = \"24h\"\nkeep_label = \"keep\"\n";

    fn hours_ago(h: i64) -> String {
        (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(h)).to_string()
    }

    fn line<'a>(out: &'a str, verb: &str, name: &str) -> &'a str {
        out.lines()
            .find(|l| l.starts_with(verb) && l.contains(name))
            .unwrap_or_else(|| panic!("no `{verb} {name}` line in:\n{out}"))
    }

    /// PRs 60 (active), 61 (expired), 62 (idle), 63 (expired but labelled `keep`), deployed
    /// and aged through their Machines' metadata; the policy is then added to the config.
    async fn aged(w: &World) {
        for (n, idle) in [(60, 1), (61, 200), (62, 30), (63, 200)] {
            let mut p = pr(n, PrState::Open);
            if n == 63 {
                p.labels = vec!["keep".into()];
            }
            w.github.set_pull_request(p);
            let out = w.run(&["deploy", "--pr", &n.to_string()], &[]).await;
            assert_eq!(out.code, 0, "{out:?}");
            w.fly.set_metadata(
                &format!("pr-{n}-agents"),
                "preview_active_at",
                &hours_ago(idle),
            );
        }
        let mut text = std::fs::read_to_string(&w.config).unwrap();
        text.push_str(POLICY);
        std::fs::write(&w.config, text).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sweep_expires_sleeps_and_keeps_on_evidence_and_a_push_wakes() {
        let w = World::start(Tweaks::default()).await;
        aged(&w).await;

        let before = w.mutations();
        let out = w.run(&["sweep", "--dry-run"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(w.mutations(), before, "a dry run changes nothing\n{out:?}");
        assert!(line(&out.stdout, "would expire", "pr-61-agents").contains("ttl 604800s"));
        assert!(line(&out.stdout, "would sleep", "pr-62-agents").contains("sleep_after 86400s"));
        assert!(
            line(&out.stdout, "lifetime: keep", "pr-63-agents").contains("the label `keep`"),
            "{out:?}"
        );
        line(&out.stdout, "lifetime: keep", "pr-60-agents");

        let out = w.run(&["sweep"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        line(&out.stdout, "expired", "pr-61-agents");
        line(&out.stdout, "put to sleep", "pr-62-agents");
        let mut apps = w.fly.apps();
        apps.sort();
        assert_eq!(apps, ["pr-60-agents", "pr-62-agents", "pr-63-agents"]);
        assert_eq!(w.fly.machines("pr-62-agents")[0]["state"], "stopped");
        assert_eq!(w.fly.machines("pr-60-agents")[0]["state"], "started");
        let expired = w.last_comment(61);
        assert!(
            expired.contains("expired") && expired.contains("keep"),
            "{expired}"
        );
        let sleeping = w.last_comment(62);
        assert!(sleeping.contains("sleeping"), "{sleeping}");

        // Converged: a second pass writes nothing.
        let before = w.mutations();
        let out = w.run(&["sweep"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(
            w.mutations(),
            before,
            "{out:?}\n{:#?}",
            &w.fly.mutating()[before.0..]
        );

        // A push wakes it: started again, and (a stop lost the data) migrated and seeded again.
        let seeds = w.seeds().await;
        let out = w.run(&["deploy", "--pr", "62"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("pr-62-agents is ready"), "{out:?}");
        assert!(out.stderr.contains("[migrate] "), "{out:?}");
        assert_eq!(w.seeds().await, seeds + 1);
        assert_eq!(w.fly.machines("pr-62-agents").len(), 1);
        assert_eq!(w.fly.machines("pr-62-agents")[0]["state"], "started");
        assert!(
            w.last_comment(62).contains("ready"),
            "{}",
            w.last_comment(62)
        );
    }

    /// Sleep by suspend (a Machine of at most 2 GB, `sleep = "suspend"`), then a push: the
    /// Machine resumes with its memory, so neither the hooks nor the seed run again; the report
    /// says ready, and there is still one app with one Machine.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_suspended_preview_resumes_on_a_push_without_hooks_or_seed() {
        let w = World::start(Tweaks::default()).await;
        let mut text = std::fs::read_to_string(&w.config).unwrap();
        world::replace(&mut text, "memory_mb = 4096", "memory_mb = 2048");
        std::fs::write(&w.config, text).unwrap();
        w.github.set_pull_request(pr(70, PrState::Open));
        let out = w.run(&["deploy", "--pr", "70"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("[migrate] "), "{out:?}");
        let mut text = std::fs::read_to_string(&w.config).unwrap();
        text.push_str(POLICY);
        text.push_str("sleep = \"suspend\"\n");
        std::fs::write(&w.config, text).unwrap();
        w.fly
            .set_metadata("pr-70-agents", "preview_active_at", &hours_ago(30));

        let out = w.run(&["sweep"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        line(&out.stdout, "put to sleep", "pr-70-agents");
        assert_eq!(w.fly.machines("pr-70-agents")[0]["state"], "suspended");
        let sleeping = w.last_comment(70);
        assert!(
            sleeping.contains("sleeping") && sleeping.contains("data is kept"),
            "{sleeping}"
        );
        let suspends = w
            .fly
            .mutating()
            .iter()
            .filter(|e| e.path.ends_with("/suspend"))
            .count();
        assert_eq!(suspends, 1, "{:#?}", w.fly.mutating());

        let (tunnels, seeds) = (w.tunnels_opened(), w.seeds().await);
        let out = w.run(&["deploy", "--pr", "70"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("pr-70-agents is ready"), "{out:?}");
        assert!(!out.stderr.contains("[migrate]"), "{out:?}");
        assert!(!out.stderr.contains("[auth-init]"), "{out:?}");
        assert_eq!(w.tunnels_opened(), tunnels, "no tunnel: {out:?}");
        assert_eq!(w.seeds().await, seeds, "no seed");
        assert_eq!(w.fly.apps(), ["pr-70-agents"]);
        assert_eq!(w.fly.machines("pr-70-agents").len(), 1);
        assert_eq!(w.fly.machines("pr-70-agents")[0]["state"], "started");
        let ready = w.last_comment(70);
        assert!(ready.contains("is ready"), "{ready}");
        assert_eq!(
            w.github.comments(70).len(),
            1,
            "one sticky comment, edited in place"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_pr_listing_deletes_and_sleeps_nothing() {
        let w = World::start(Tweaks::default()).await;
        aged(&w).await;
        for _ in 0..30 {
            w.github.fail_next_on("GET", "/pulls", 502, false);
        }
        let before = w.mutations();
        let out = w.run(&["sweep"], &[]).await;
        assert_eq!(w.mutations(), before, "{out:?}");
        assert_eq!(w.fly.apps().len(), 4);
        assert!(
            line(&out.stdout, "lifetime: keep", "pr-61-agents").contains("failed"),
            "{out:?}"
        );
    }

    /// The two decisions the test above does not reach, over HTTP: over `max_environments` the
    /// least recently active preview is evicted (its report says why and how to bring it back),
    /// and a Machine that booted again behind our back is reported reset; a second pass writes
    /// nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_the_cap_the_idlest_is_evicted_and_a_restarted_machine_is_marked_reset() {
        let w = World::start(Tweaks::default()).await;
        for (n, idle) in [(70, 1), (71, 5), (72, 3)] {
            w.github.set_pull_request(pr(n, PrState::Open));
            let out = w.run(&["deploy", "--pr", &n.to_string()], &[]).await;
            assert_eq!(out.code, 0, "{out:?}");
            w.fly.set_metadata(
                &format!("pr-{n}-agents"),
                "preview_active_at",
                &hours_ago(idle),
            );
        }
        w.fly.restart_machines("pr-70-agents");
        let mut text = std::fs::read_to_string(&w.config).unwrap();
        text.push_str("\n[lifetime]\nmax_environments = 2\nwhen_full = \"evict\"\n");
        std::fs::write(&w.config, text).unwrap();

        let before = w.mutations();
        let out = w.run(&["sweep", "--dry-run"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(w.mutations(), before, "a dry run changes nothing\n{out:?}");
        let evict = line(&out.stdout, "would evict", "pr-71-agents");
        assert!(evict.contains("max_environments = 2"), "{evict}");
        let reset = line(&out.stdout, "would mark reset", "pr-70-agents");
        assert!(reset.contains("booted again"), "{reset}");
        line(&out.stdout, "lifetime: keep", "pr-72-agents");

        let out = w.run(&["sweep"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        line(&out.stdout, "evicted", "pr-71-agents");
        line(&out.stdout, "marked reset", "pr-70-agents");
        let mut apps = w.fly.apps();
        apps.sort();
        assert_eq!(apps, ["pr-70-agents", "pr-72-agents"]);
        let evicted = w.last_comment(71);
        assert!(
            evicted.contains("evicted") && evicted.contains("To bring it back"),
            "{evicted}"
        );
        let reset = w.last_comment(70);
        assert!(reset.contains("reset"), "{reset}");

        let before = w.mutations();
        let out = w.run(&["sweep"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(
            w.mutations(),
            before,
            "a second pass writes nothing\n{out:?}"
        );
    }
}
