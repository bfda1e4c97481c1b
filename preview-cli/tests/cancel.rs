//! R23 (the README's reliability table): graceful cancellation of `preview deploy`, per phase,
//! over the e2e world (the built binary, the three providers' stateful fakes, a stand-in flyctl and
//! a real PostgreSQL; see tests/world).
//!
//! For each phase the pipeline reports (`… <phase>` on stderr), one fake (or the hook, or flyctl)
//! is made slow for that phase only, SIGINT is sent once the binary says it entered the phase, and:
//! - the binary exits 130 within 7 s of the signal (the Actions runner escalates to SIGTERM at
//!   7.5 s: this is a functional deadline);
//! - no process it started (hooks, flyctl proxies, and what they started) outlives it;
//! - the Fly fake holds no Machine lease (one case lands during a Machine update, lease held);
//! - no file under the job's directories (working directory, TMPDIR, HOME) holds a secret;
//! - a plain `preview deploy` then converges (exit 0) and a re-deploy makes zero mutating
//!   requests on every fake.
//!
//! Run with `cargo test -p preview-cli --all-features --test cancel`.

mod common;
mod world;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use preview_core::PrState;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use common::forms;
use world::*;

/// Every test here starts the world, which needs PostgreSQL: `-- --skip postgres` skips them by name.
mod postgres {
    use super::*;

    /// The runner's SIGINT → SIGTERM window is 7.5 s; we must be out before, with margin.
    const DEADLINE: Duration = Duration::from_secs(7);
    /// Long enough that a slow phase is still running whenever the signal lands.
    const SLOW: Duration = Duration::from_secs(60);

    /// The hook of the cancellation world: slow while `hook.slow` exists in the repository root, and it
    /// starts a grandchild (`sh` forks `sleep`), as `pnpm` starting `node` would.
    const HOOK: &str = r#"["sh", "-c", "if [ -e hook.slow ]; then sleep 4330; fi; pwd"]"#;

    /// What makes a phase slow, switched off once the signal was sent.
    #[derive(Clone, Default)]
    struct Slow {
        /// GitHub: reads of the pull request (observe).
        github_pr_read: Arc<AtomicBool>,
        /// GitHub: writes before the seed (announce).
        github_write: Arc<AtomicBool>,
        /// GitHub: reads of the pull request after the seed (verify).
        github_verify: Arc<AtomicBool>,
        /// GitHub: writes after the seed (report).
        github_report: Arc<AtomicBool>,
        /// The seed request arrived at the app.
        seeded: Arc<AtomicBool>,
        /// Vercel: env var and domain writes (apps).
        vercel_apps: Arc<AtomicBool>,
        /// The app: the readiness URL answers 503.
        not_ready: Arc<AtomicBool>,
        /// The app: the seed request takes long.
        seed: Arc<AtomicBool>,
        /// Fly: Machine updates (`POST /v1/apps/{app}/machines/{id}`), the lease already taken.
        fly_update: Arc<AtomicBool>,
    }

    impl Slow {
        fn install(&self, w: &World) {
            let s = self.clone();
            w.github.set_latency(move |r| {
                let read = r.method.as_str() == "GET";
                let pr = r.url.path().contains("/pulls/");
                let seeded = s.seeded.load(Ordering::SeqCst);
                let slow = (read && pr && s.github_pr_read.load(Ordering::SeqCst))
                    || (!read && !seeded && s.github_write.load(Ordering::SeqCst))
                    || (read && pr && seeded && s.github_verify.load(Ordering::SeqCst))
                    || (!read && seeded && s.github_report.load(Ordering::SeqCst));
                if slow { SLOW } else { Duration::ZERO }
            });
            let s = self.clone();
            w.vercel.set_latency(move |r| {
                let p = r.url.path();
                let slow = r.method.as_str() != "GET"
                    && (p.contains("/env") || p.contains("/domains"))
                    && s.vercel_apps.load(Ordering::SeqCst);
                if slow { SLOW } else { Duration::ZERO }
            });
            let s = self.clone();
            w.fly.set_latency(move |r| {
                let seg: Vec<&str> = r.url.path().trim_matches('/').split('/').collect();
                // POST /v1/apps/{app}/machines/{id}: an update (not create, lease, start, wait…).
                let update = r.method.as_str() == "POST"
                    && seg.len() == 5
                    && seg[0] == "v1"
                    && seg[1] == "apps"
                    && seg[3] == "machines";
                // Releasing a lease takes a network round trip, as on the real API: a release
                // started on the way out must be waited for.
                let release = r.method.as_str() == "DELETE" && r.url.path().ends_with("/lease");
                if update && s.fly_update.load(Ordering::SeqCst) {
                    SLOW
                } else if release {
                    Duration::from_millis(300)
                } else {
                    Duration::ZERO
                }
            });
        }

        fn off(&self) {
            for f in [
                &self.github_pr_read,
                &self.github_write,
                &self.github_verify,
                &self.github_report,
                &self.vercel_apps,
                &self.fly_update,
                &self.not_ready,
                &self.seed,
            ] {
                f.store(false, Ordering::SeqCst);
            }
        }
    }

    /// The app's readiness URL and seed endpoint, switched by [`Slow`]. (Not scoped mocks: wiremock
    /// 0.6 sorts mocks by priority in place, so dropping a scoped one may switch off another.)
    struct App {
        slow: Slow,
        seed: bool,
    }

    impl wiremock::Respond for App {
        fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
            if !self.seed {
                return ResponseTemplate::new(if self.slow.not_ready.load(Ordering::SeqCst) {
                    503
                } else {
                    200
                });
            }
            self.slow.seeded.store(true, Ordering::SeqCst);
            let r = ResponseTemplate::new(201);
            if self.slow.seed.load(Ordering::SeqCst) {
                r.set_delay(SLOW)
            } else {
                r
            }
        }
    }

    /// What is slow, and how the test knows the binary is inside the phase.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Case {
        Phase(&'static str),
        /// A second deploy with a changed Machine config: SIGINT while the update holds the lease.
        MachineUpdate,
    }

    async fn cancel_at(case: Case) {
        let w = World::start(Tweaks {
            migrate: HOOK,
            ..Tweaks::default()
        })
        .await;
        let n: u64 = 60;
        let pr_arg = n.to_string();
        let args = ["deploy", "--pr", pr_arg.as_str()];
        w.github.set_pull_request(pr(n, PrState::Open));
        let slow = Slow::default();
        slow.install(&w);
        // The seed's answer also tells the GitHub fake that verify and report have begun.
        Mock::given(method("PUT"))
            .and(path(
                "/manage/tenants/default/project-full/activities-planner",
            ))
            .and(header("content-type", "application/json"))
            .respond_with(App {
                slow: slow.clone(),
                seed: true,
            })
            .with_priority(1)
            .mount(&w.app)
            .await;
        Mock::given(method("GET"))
            .and(path("/ready"))
            .respond_with(App {
                slow: slow.clone(),
                seed: false,
            })
            .with_priority(1)
            .mount(&w.app)
            .await;

        if case == Case::MachineUpdate {
            // Deployed once, then the Machine config changes: the next deploy updates under a lease.
            let out = w.run(&args, &[]).await;
            assert_eq!(out.code, 0, "{out:?}");
            slow.seeded.store(false, Ordering::SeqCst);
            let text = std::fs::read_to_string(&w.config).unwrap();
            assert!(text.contains("memory_mb = 4096"));
            std::fs::write(
                &w.config,
                text.replace("memory_mb = 4096", "memory_mb = 8192"),
            )
            .unwrap();
            slow.fly_update.store(true, Ordering::SeqCst);
        }

        let flyctl_delay = w.flyctl.with_extension("delay");
        let phase = match case {
            Case::Phase(p) => p,
            Case::MachineUpdate => "database",
        };
        match case {
            Case::MachineUpdate => {}
            Case::Phase("observe") => slow.github_pr_read.store(true, Ordering::SeqCst),
            Case::Phase("announce") => slow.github_write.store(true, Ordering::SeqCst),
            Case::Phase("database") => w.fly.set_boot_time(Some(SLOW)),
            Case::Phase("apps") => slow.vercel_apps.store(true, Ordering::SeqCst),
            Case::Phase("tunnels") => std::fs::write(&flyctl_delay, "30").unwrap(),
            Case::Phase("hooks") => std::fs::write(w.dir.join("hook.slow"), "").unwrap(),
            // Builds go on after a cancelled run, as on Vercel: the converging run waits for the rest.
            Case::Phase("deployments") => w.vercel.set_build_time(Some(Duration::from_secs(10))),
            Case::Phase("readiness") => slow.not_ready.store(true, Ordering::SeqCst),
            Case::Phase("seed") => slow.seed.store(true, Ordering::SeqCst),
            Case::Phase("verify") => slow.github_verify.store(true, Ordering::SeqCst),
            Case::Phase("report") => slow.github_report.store(true, Ordering::SeqCst),
            Case::Phase(other) => panic!("no slow knob for phase {other}"),
        }

        let mut run = spawn(&w, &args, &[]);
        let started = format!("… {phase}\n");
        run.until(&format!("phase {phase} start"), |r| {
            r.stderr.lock().unwrap().contains(&started)
        })
        .await;
        match case {
            // Inside the phase's slow part, not merely announced.
            Case::MachineUpdate => {
                let fly = w.fly.clone();
                run.until("a Machine lease taken", move |_| fly.leases_held() > 0)
                    .await
            }
            Case::Phase("hooks") => {
                run.until("the hook's sleep", |r| {
                    r.seen
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|(_, c)| c == "sleep 4330")
                })
                .await
            }
            Case::Phase("tunnels") => {
                // The wrapper's slow start (`sleep`, a child of the flyctl process preview started).
                run.until("flyctl started", |r| {
                    r.seen.lock().unwrap().iter().any(|(_, c)| c == "sleep 30")
                })
                .await
            }
            _ => {}
        }

        let signalled = Instant::now();
        let kill = std::process::Command::new("kill")
            .args(["-INT", &run.pid.to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = tokio::time::timeout(DEADLINE + Duration::from_secs(5), run.child.wait())
            .await
            .unwrap_or_else(|_| panic!("[{case:?}] no exit 12 s after SIGINT\n{}", run.text()))
            .unwrap();
        let took = signalled.elapsed();
        // Shown with --nocapture: how long the way out took, per phase.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("[{case:?}] exit {:.2}s after SIGINT", took.as_secs_f64());
        }
        run.done.store(true, Ordering::SeqCst);
        // The output readers finish at EOF.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            status.code(),
            Some(130),
            "[{case:?}] {status}\n{}",
            run.text()
        );
        assert!(
            took <= DEADLINE,
            "[{case:?}] exited {:.1}s after SIGINT (deadline 7 s)\n{}",
            took.as_secs_f64(),
            run.text()
        );
        // Stop the slowness (in-flight answers were abandoned with the connection).
        slow.off();
        w.fly.set_boot_time(None);
        w.vercel.set_build_time(None);
        let _ = std::fs::remove_file(&flyctl_delay);
        let _ = std::fs::remove_file(w.dir.join("hook.slow"));

        // Nothing it started is still running (same pid and command line: not a reused pid).
        let seen = run.seen.lock().unwrap().clone();
        let mut left = Vec::new();
        for _ in 0..20 {
            left = seen
                .iter()
                .filter(|(p, c)| cmdline(*p).as_deref() == Some(c.as_str()))
                .collect::<Vec<_>>();
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            left.is_empty(),
            "[{case:?}] still running after preview exited: {left:?}\n{}",
            run.text()
        );
        assert_eq!(
            w.fly.leases_held(),
            0,
            "[{case:?}] a Fly lease is still held"
        );

        // No secret on disk: every file under the job's directories.
        let mut secrets = sensitive(&w.config, n);
        secrets.extend(
            [FLY_TOKEN, VERCEL_TOKEN, MASTER, GITHUB_TOKEN]
                .iter()
                .map(|s| s.to_string()),
        );
        for (file, bytes) in files(&w.dir) {
            let text = String::from_utf8_lossy(&bytes);
            for s in &secrets {
                for f in forms(s) {
                    assert!(
                        !text.contains(&f),
                        "[{case:?}] {} holds a secret ({}-char value)",
                        file.display(),
                        s.len()
                    );
                }
            }
        }

        // Re-running converges; then nothing is left to change.
        let out = w.run(&args, &[]).await;
        assert_eq!(
            out.code, 0,
            "[{case:?}] the deploy after the cancelled one\n{out:?}"
        );
        let before = w.mutations();
        let out = w.run(&args, &[]).await;
        assert_eq!(out.code, 0, "[{case:?}] {out:?}");
        assert_eq!(
            w.mutations(),
            before,
            "[{case:?}] (fly, vercel, github) mutating requests of the re-deploy\n{out:?}\nfly: {:#?}\nvercel: {:#?}\ngithub: {:#?}",
            &w.fly.mutating()[before.0..],
            &w.vercel.mutations()[before.1..],
            &w.github.writes()[before.2..],
        );
        assert_eq!(w.fly.leases_held(), 0);
    }

    macro_rules! phases {
    ($($name:ident => $case:expr,)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            cancel_at($case).await;
        }
    )*};
}

    phases! {
        r23_sigint_during_observe => Case::Phase("observe"),
        r23_sigint_during_announce => Case::Phase("announce"),
        r23_sigint_during_database => Case::Phase("database"),
        r23_sigint_during_apps => Case::Phase("apps"),
        r23_sigint_during_tunnels => Case::Phase("tunnels"),
        r23_sigint_during_hooks => Case::Phase("hooks"),
        r23_sigint_during_deployments => Case::Phase("deployments"),
        r23_sigint_during_readiness => Case::Phase("readiness"),
        r23_sigint_during_seed => Case::Phase("seed"),
        r23_sigint_during_verify => Case::Phase("verify"),
        r23_sigint_during_report => Case::Phase("report"),
        r23_sigint_during_a_machine_update_under_lease => Case::MachineUpdate,
    }
}
