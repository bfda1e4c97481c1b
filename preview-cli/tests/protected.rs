//! Vercel projects, end to end with the built binary (issue 14, items 8 and 9), in the e2e world
//! (tests/world): the three providers' stateful fakes, a stand-in flyctl and a real PostgreSQL.
//!
//! - Protected previews (acceptance 8): Vercel's Deployment Protection answers 401 to the readiness
//!   check and the seed unless they carry the project's automation bypass secret. The api app's
//!   URL (`https://pr-42-api.preview.inkeep.com`) goes to a local stand-in with that wall
//!   (`PREVIEW_TEST_HTTP_ORIGINS`, a test build's stand-in for DNS and TLS termination; which
//!   request gets the header is decided on the configured URL). The secret is read from the
//!   project through the Vercel fake, sent only to that origin, masked first in Actions, and
//!   found nowhere else: stdout (but its mask line), stderr, files written, requests to GitHub,
//!   Vercel env comments, process arguments.
//! - Keyed fingerprints (acceptance 7): the `fp=` the binary writes is reproducible with the
//!   master secret only; vars left with the unkeyed one by an earlier version are rewritten once,
//!   and removed by a teardown that has no master secret.

mod common;
mod world;

use std::sync::atomic::Ordering;
use std::time::Duration;

use preview_core::secrecy::SecretString;
use preview_core::{DerivedSecrets, FINGERPRINT_KEY, PrState, SecretSource};
use providers_vercel::PROTECTION_BYPASS_HEADER;
use sha2::{Digest, Sha256};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::assert_clean;
use world::*;

/// The project's automation bypass secret (Vercel's are 32 alphanumerics).
const BYPASS: &str = "BypassSENTINELe2e0123456789abcde";
const API_ORIGIN: &str = "https://pr-42-api.preview.inkeep.com";

/// Every test here starts the world, which needs PostgreSQL: `-- --skip postgres` skips them by name.
mod postgres {
    use super::*;

    /// The api app behind Deployment Protection: 401 unless `x-vercel-protection-bypass` is the
    /// project's secret.
    async fn protected_app() -> MockServer {
        let app = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/ready"))
            .and(header(PROTECTION_BYPASS_HEADER, BYPASS))
            .respond_with(ResponseTemplate::new(200))
            .mount(&app)
            .await;
        Mock::given(method("PUT"))
            .and(path(
                "/manage/tenants/default/project-full/activities-planner",
            ))
            .and(header(PROTECTION_BYPASS_HEADER, BYPASS))
            .and(header("content-type", "application/json"))
            .respond_with(ResponseTemplate::new(201))
            .mount(&app)
            .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(401).set_body_string("Authentication Required"))
            .mount(&app)
            .await;
        app
    }

    /// Adds a seed request to a third party (the world's local stand-in) to the test config.
    fn add_third_party_request(w: &World) {
        let text = std::fs::read_to_string(&w.config).unwrap();
        let at = text
            .find("\n[report]")
            .expect("the config has a report section");
        let extra = format!(
            "\n[[seed.requests]]\nname = \"notify\"\nmethod = \"POST\"\nurl = \"{}/notify\"\nexpect_status = [204]\n",
            w.app.uri()
        );
        std::fs::write(&w.config, format!("{}{extra}{}", &text[..at], &text[at..])).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_and_seed_get_through_deployment_protection_and_the_bypass_leaks_nowhere() {
        let w = World::start(Tweaks {
            app_urls: true,
            ..Tweaks::default()
        })
        .await;
        w.vercel.protect("prj_api", Some(BYPASS));
        let app = protected_app().await;
        Mock::given(method("POST"))
            .and(path("/notify"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&w.app)
            .await;
        add_third_party_request(&w);
        let origins = format!("{API_ORIGIN}={}", app.uri());
        w.github.set_pull_request(pr(42, PrState::Open));

        // The wall is real: without the header, 401.
        let probe = reqwest::get(format!("{}/ready", app.uri())).await.unwrap();
        assert_eq!(probe.status().as_u16(), 401);

        // In Actions, watched: every process argument is recorded while it runs.
        let event = pr_event(&w, "synchronize", own_head());
        let (event_s, outputs_s, summary_s) = (
            event.to_string_lossy().to_string(),
            w.dir.join("github_output").to_string_lossy().to_string(),
            w.dir.join("step_summary").to_string_lossy().to_string(),
        );
        let mut run = spawn(
            &w,
            &["deploy"],
            &[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_EVENT_PATH", &event_s),
                ("GITHUB_OUTPUT", &outputs_s),
                ("GITHUB_STEP_SUMMARY", &summary_s),
                ("GITHUB_SERVER_URL", "https://github.com"),
                ("GITHUB_RUN_ID", "4242"),
                ("PREVIEW_TEST_HTTP_ORIGINS", &origins),
                ("RUST_LOG", "trace"),
                ("RUST_BACKTRACE", "1"),
            ],
        );
        let status = tokio::time::timeout(Duration::from_secs(90), run.child.wait())
            .await
            .expect("deploy finished")
            .unwrap();
        run.done.store(true, Ordering::SeqCst);
        // The capture tasks end with the pipes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(status.success(), "{status}\n{}", run.text());
        let stdout = run.stdout.lock().unwrap().clone();
        let stderr = run.stderr.lock().unwrap().clone();

        // Through the wall, with the header, exactly where it belongs (after the probe above).
        let got: Vec<_> = app
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .skip(1)
            .collect();
        let carried = |m: &str, p: &str| {
            got.iter()
                .filter(|r| r.method.as_str() == m && r.url.path().starts_with(p))
                .filter(|r| {
                    r.headers
                        .get(PROTECTION_BYPASS_HEADER)
                        .and_then(|v| v.to_str().ok())
                        == Some(BYPASS)
                })
                .count()
        };
        assert!(carried("GET", "/ready") >= 1, "{got:#?}");
        assert_eq!(carried("PUT", "/manage/tenants"), 1, "{got:#?}");
        assert!(
            got.iter()
                .all(|r| r.headers.get(PROTECTION_BYPASS_HEADER).is_some()),
            "a request to the protected app went without the header: {got:#?}"
        );
        let third = w.app.received_requests().await.unwrap();
        let notify: Vec<_> = third.iter().filter(|r| r.url.path() == "/notify").collect();
        assert_eq!(notify.len(), 1, "{third:#?}");
        assert!(
            third
                .iter()
                .all(|r| r.headers.get(PROTECTION_BYPASS_HEADER).is_none()),
            "a third party got the bypass: {third:#?}"
        );
        // The secret was read from the project, once.
        let reads = w
            .vercel
            .exchanges()
            .iter()
            .filter(|x| x.method == "GET" && x.path == "/v9/projects/prj_api")
            .count();
        assert_eq!(reads, 1);

        // Masked once, as soon as it is read (in the readiness phase, before the first request
        // that carries it), and nowhere else.
        let mask = format!("::add-mask::{BYPASS}");
        let lines: Vec<&str> = stdout.lines().collect();
        let masks: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == mask).collect();
        assert_eq!(masks.len(), 1, "{stdout}");
        let readiness = lines
            .iter()
            .position(|l| l.starts_with("✓ readiness"))
            .expect("a readiness line");
        assert!(masks[0] < readiness, "{stdout}");
        let values = vec![BYPASS.to_string()];
        assert_clean("stdout", &stdout, &values, true);
        assert_clean("stderr", &stderr, &values, false);
        for (p, bytes) in files(&w.dir) {
            assert_clean(
                &format!("file {}", p.display()),
                &String::from_utf8_lossy(&bytes),
                &values,
                false,
            );
        }
        assert_clean(
            "requests to GitHub",
            &w.github_requests().join("\n"),
            &values,
            false,
        );
        let comments: Vec<String> = ["prj_api", "prj_ui"]
            .iter()
            .flat_map(|p| w.vercel.envs(p))
            .filter_map(|e| e.comment)
            .collect();
        assert!(!comments.is_empty());
        assert_clean("Vercel env comments", &comments.join("\n"), &values, false);
        let argv: Vec<String> = run
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.clone())
            .collect();
        assert!(argv.iter().any(|a| a.contains("deploy")), "{argv:#?}");
        assert_clean("process arguments", &argv.join("\n"), &values, false);

        // A new push, outside Actions and with --json: seeded again through the wall, and no
        // mask line nor secret anywhere in the output.
        let mut pushed = pr(42, PrState::Open);
        pushed.head_sha = "c".repeat(40);
        w.github.set_pull_request(pushed);
        let before = app.received_requests().await.unwrap().len();
        let out = w
            .run(
                &["deploy", "--pr", "42", "--json"],
                &[("PREVIEW_TEST_HTTP_ORIGINS", &origins)],
            )
            .await;
        assert_eq!(out.code, 0, "{out:?}");
        let after = app.received_requests().await.unwrap();
        assert!(after.len() > before, "seeded again");
        assert!(
            after[before..]
                .iter()
                .all(|r| r.headers.get(PROTECTION_BYPASS_HEADER).is_some())
        );
        assert!(!out.stdout.contains("::add-mask::"), "{out:?}");
        assert_clean("stdout (--json)", &out.stdout, &values, false);
        assert_clean("stderr (--json)", &out.stderr, &values, false);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_protected_project_without_a_bypass_fails_in_readiness_with_a_clear_error() {
        let w = World::start(Tweaks {
            app_urls: true,
            ..Tweaks::default()
        })
        .await;
        w.vercel.protect("prj_api", None);
        let app = protected_app().await;
        w.github.set_pull_request(pr(42, PrState::Open));
        let out = w
            .run(
                &["deploy", "--pr", "42"],
                &[(
                    "PREVIEW_TEST_HTTP_ORIGINS",
                    &format!("{API_ORIGIN}={}", app.uri()),
                )],
            )
            .await;
        // Things were created: a failure (1), not "nothing was touched" (2), and at once rather
        // than after the 20 s readiness deadline.
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.elapsed < Duration::from_secs(20), "{out:?}");
        assert!(
            out.stderr.contains("Protection Bypass for Automation")
                && out.stderr.contains("apps.api.protection_bypass"),
            "{out:?}"
        );
        assert!(app.received_requests().await.unwrap().is_empty());
        let comment = w.last_comment(42);
        assert!(
            comment.contains("Failed phase") && comment.contains("readiness"),
            "{comment}"
        );
    }

    // ---------------------------------------------------------------------------------------------
    // Keyed fingerprints.

    /// The fingerprint of earlier versions: SHA-256 of the length-prefixed parts, 64 bits.
    fn unkeyed(parts: [&str; 4]) -> String {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        h.finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn fp(comment: &str) -> String {
        comment
            .split_whitespace()
            .find_map(|f| f.strip_prefix("fp="))
            .unwrap_or_else(|| panic!("no fp= in {comment:?}"))
            .to_string()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fingerprints_need_the_master_and_old_ones_are_rewritten_once() {
        let w = World::start(Tweaks::default()).await;
        w.github.set_pull_request(pr(42, PrState::Open));
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");

        let key = DerivedSecrets::new(SecretString::from(MASTER))
            .unwrap()
            .digest_key(FINGERPRINT_KEY)
            .unwrap()
            .expect("a key");
        let other = DerivedSecrets::new(SecretString::from(format!("{MASTER}-not")))
            .unwrap()
            .digest_key(FINGERPRINT_KEY)
            .unwrap()
            .expect("a key");
        let mut checked = 0;
        for project in ["prj_api", "prj_ui"] {
            for e in w.vercel.envs(project) {
                let parts = [
                    "pr-42-agents",
                    e.key.as_str(),
                    e.kind.as_str(),
                    e.value.as_str(),
                ];
                let written = fp(e.comment.as_deref().expect("a marker"));
                assert_eq!(written, key.hex(&parts, 16), "{}", e.key);
                assert_ne!(written, other.hex(&parts, 16), "{}", e.key);
                assert!(!written.starts_with(&unkeyed(parts)), "{}", e.key);
                checked += 1;
            }
        }
        assert!(checked > 20, "{checked}");

        // As an earlier version left them: the unkeyed fingerprint in every comment.
        for project in ["prj_api", "prj_ui"] {
            for e in w.vercel.envs(project) {
                let parts = [
                    "pr-42-agents",
                    e.key.as_str(),
                    e.kind.as_str(),
                    e.value.as_str(),
                ];
                let old = format!(
                    "managed-by:preview env=pr-42-agents pr=42 fp={}",
                    unkeyed(parts)
                );
                w.vercel.set_env_comment(project, &e.id, &old);
            }
        }
        // Nor did an earlier version write the vars digest on its deployments.
        w.vercel.remove_deployment_meta(providers_vercel::META_VARS);
        // Rewritten once: one upsert per project. Vercel then sees the vars as updated, so each
        // app is built once more (the README says so).
        let before = w.vercel.mutations().len();
        let builds = w.vercel.deployments().len();
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let upserts = w.vercel.mutations()[before..]
            .iter()
            .filter(|m| m.method == "POST" && m.path.ends_with("/env"))
            .count();
        assert_eq!(upserts, 2, "{:#?}", &w.vercel.mutations()[before..]);
        assert_eq!(w.vercel.deployments().len(), builds + 2);
        for project in ["prj_api", "prj_ui"] {
            for e in w.vercel.envs(project) {
                let parts = [
                    "pr-42-agents",
                    e.key.as_str(),
                    e.kind.as_str(),
                    e.value.as_str(),
                ];
                assert_eq!(fp(e.comment.as_deref().unwrap()), key.hex(&parts, 16));
            }
        }
        // Then nothing to do anywhere.
        let before = w.mutations();
        let out = w.run(&["deploy", "--pr", "42"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(w.mutations(), before, "{out:?}");

        // Vars with an old fingerprint are still ours to a teardown without the master secret.
        let e = &w.vercel.envs("prj_api")[0];
        w.vercel.set_env_comment(
            "prj_api",
            &e.id,
            "managed-by:preview env=pr-42-agents pr=42 fp=0123456789abcdef",
        );
        w.github.set_pull_request(pr(42, PrState::Closed));
        let event = pr_event(&w, "closed", own_head());
        let out = w.run_with(&["teardown"], job_env(&w, &event)).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(w.branch_vars("feature/change-42").is_empty());
        assert!(w.fly.apps().is_empty());
    }
}
