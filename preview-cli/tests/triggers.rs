//! Issue 16 end to end: the built `preview handle` in Actions mode, GitHub-format event files,
//! the three HTTP fakes (and a real PostgreSQL for the runs that deploy). The test copy of the
//! example gets `[triggers] drafts = false, label = "preview", paths = ["apps/**"]`.
//!
//! Tests that deploy live in `mod postgres` (skip them with `-- --skip postgres`).

mod common;
mod world;

use std::path::PathBuf;

use preview_core::{PrNumber, PrState, PullRequest};
use preview_testkit::fakes::github::LOGIN;
use world::{Output, REPOSITORY, Tweaks, World};

const TRIGGERS: &str = "\n[triggers]\ndrafts = false\nlabel = \"preview\"\npaths = [\"apps/**\"]\n";
const MAINTAINER: &str = "maintainer";
const READER: &str = "rex";

/// A world whose config has the triggers above, a maintainer (write) and a reader (read).
async fn start(postgres: bool) -> World {
    let w = if postgres {
        World::start(Tweaks::default()).await
    } else {
        World::start_without_postgres(Tweaks::default()).await
    };
    let mut text = std::fs::read_to_string(&w.config).unwrap();
    text.push_str(TRIGGERS);
    std::fs::write(&w.config, text).unwrap();
    w.github.set_permission(MAINTAINER, "write");
    w.github.set_permission(READER, "read");
    w
}

fn head(n: u64) -> String {
    format!("{:0>40x}", n * 7919)
}

/// PR `n` as the API shows it now.
fn pull(n: u64, state: PrState, draft: bool, label: bool, fork: bool) -> PullRequest {
    PullRequest {
        number: PrNumber::new(n).unwrap(),
        state,
        draft,
        title: format!("Change {n}"),
        head_branch: format!("feature/change-{n}"),
        head_sha: head(n),
        head_repo: Some(if fork { "mallory/app" } else { REPOSITORY }.into()),
        base_repo: REPOSITORY.into(),
        labels: if label {
            vec!["preview".into()]
        } else {
            vec![]
        },
    }
}

/// A `pull_request` event file for PR `n`.
fn pr_event(w: &World, n: u64, action: &str, fork: bool) -> PathBuf {
    let repo = if fork { "mallory/app" } else { REPOSITORY };
    let mut ev = serde_json::json!({
        "action": action,
        "number": n,
        "pull_request": {
            "number": n,
            "head": {"ref": format!("feature/change-{n}"), "sha": head(n), "repo": {"full_name": repo}},
            "base": {"ref": "main", "sha": "f".repeat(40), "repo": {"full_name": REPOSITORY}},
        },
    });
    if action == "labeled" || action == "unlabeled" {
        ev["label"] = serde_json::json!({"name": "preview"});
    }
    let path = w.dir.join(format!("event-pr-{n}-{action}.json"));
    std::fs::write(&path, ev.to_string()).unwrap();
    path
}

/// An `issue_comment` event for a new comment by `author` on PR `n` (the comment exists on the
/// fake, as it would on GitHub).
fn comment_event(w: &World, n: u64, author: &str, body: &str) -> (PathBuf, u64) {
    let id = w.github.add_comment(n as u32, author, body);
    let ev = serde_json::json!({
        "action": "created",
        "issue": {"number": n, "pull_request": {"url": format!("https://api.github.com/repos/{REPOSITORY}/pulls/{n}")}},
        "comment": {"id": id, "body": body, "user": {"login": author, "type": "User"}},
    });
    let path = w.dir.join(format!("event-comment-{id}.json"));
    std::fs::write(&path, ev.to_string()).unwrap();
    (path, id)
}

/// Runs `preview handle ARGS` for an event, in Actions mode; returns the run and its outputs.
async fn handle(
    w: &World,
    name: &str,
    event: &std::path::Path,
    args: &[&str],
    env: Vec<(String, String)>,
) -> (Output, String) {
    let outputs = w.dir.join(format!(
        "outputs-{}",
        event.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&outputs);
    let mut env = env;
    for (k, v) in [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", name),
        ("GITHUB_EVENT_PATH", &event.to_string_lossy()),
        ("GITHUB_OUTPUT", &outputs.to_string_lossy()),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    let mut all = vec!["handle"];
    all.extend_from_slice(args);
    let out = w.run_with(&all, env).await;
    (out, std::fs::read_to_string(&outputs).unwrap_or_default())
}

/// Requests each fake received: (fly, vercel, github) counts of all, and of mutating ones.
fn counts(w: &World) -> ([usize; 3], [usize; 3]) {
    let (f, v, g) = w.mutations();
    (
        [
            w.fly.exchanges().len(),
            w.vercel.exchanges().len(),
            w.github.exchanges().len(),
        ],
        [f, v, g],
    )
}

fn diff(a: [usize; 3], b: [usize; 3]) -> [usize; 3] {
    [b[0] - a[0], b[1] - a[1], b[2] - a[2]]
}

/// The environment without its provider secrets: each points at a file that does not exist, so
/// reading any of them fails the run (exit 2) — a run that succeeds read none.
fn env_without_provider_secrets(w: &World) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = w
        .env()
        .into_iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "FLY_API_TOKEN" | "VERCEL_TOKEN" | "PREVIEW_MASTER_SECRET"
            )
        })
        .collect();
    for k in [
        "FLY_API_TOKEN_FILE",
        "VERCEL_TOKEN_FILE",
        "PREVIEW_MASTER_SECRET_FILE",
    ] {
        env.push((k.into(), "/nonexistent/preview-e2e-secret".into()));
    }
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_s_command_is_refused_with_one_reply_and_nothing_else() {
    let w = start(false).await;
    w.github
        .set_pull_request(pull(11, PrState::Open, false, true, false));
    let (event, id) = comment_event(&w, 11, READER, "/preview deploy");
    for run in 0..2 {
        let before = counts(&w);
        let (out, outputs) = handle(&w, "issue_comment", &event, &["--decide-only"], w.env()).await;
        assert_eq!(out.code, 3, "{out:?}");
        assert!(
            out.stdout
                .contains("refused: the commenter has `read` permission"),
            "{out:?}"
        );
        assert!(outputs.contains("action=skip"), "{outputs}");
        let (all, writes) = (diff(before.0, counts(&w).0), diff(before.1, counts(&w).1));
        assert_eq!(
            (all[0], all[1]),
            (0, 0),
            "no request to Fly or Vercel: {out:?}"
        );
        // The one write is the reply, the first time only.
        assert_eq!(
            writes[2],
            if run == 0 { 1 } else { 0 },
            "{:?}",
            w.github_requests()
        );
    }
    assert!(
        w.github.reactions(id).is_empty(),
        "a refusal gets no reaction"
    );
    let replies: Vec<_> = w
        .github
        .comments(11)
        .into_iter()
        .filter(|c| c.author == LOGIN)
        .collect();
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].body.contains("need `write` permission"),
        "{}",
        replies[0].body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_a_fork_is_refused_before_any_provider_token_is_read() {
    let w = start(false).await;
    w.github
        .set_pull_request(pull(12, PrState::Open, false, true, true));
    let (event, id) = comment_event(&w, 12, MAINTAINER, "/preview deploy");
    let env = env_without_provider_secrets(&w);
    // Not even with --sha and without --decide-only: the decision refuses first.
    let (out, outputs) = handle(&w, "issue_comment", &event, &["--sha", &head(12)], env).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout
            .contains("refused: pull request #12 comes from a fork"),
        "{out:?}"
    );
    assert!(
        outputs.contains("action=skip") && outputs.contains("checkout=false"),
        "{outputs}"
    );
    assert!(w.fly.exchanges().is_empty() && w.vercel.exchanges().is_empty());
    assert!(!out.stdout.contains("::add-mask::"), "{out:?}");
    assert!(w.github.reactions(id).is_empty());
    assert_eq!(
        w.github.writes().len(),
        1,
        "only the reply: {:?}",
        w.github_requests()
    );
    assert!(
        w.last_comment(12).contains("forks"),
        "{}",
        w.last_comment(12)
    );
    // A fork's pull_request event stops before any token at all: not one request.
    let before = w.github.exchanges().len();
    let event = pr_event(&w, 12, "synchronize", true);
    let (out, _) = handle(
        &w,
        "pull_request",
        &event,
        &[],
        env_without_provider_secrets(&w),
    )
    .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(w.github.exchanges().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_a_command_is_read_and_hostile_bodies_change_nothing() {
    let w = start(false).await;
    w.github
        .set_pull_request(pull(13, PrState::Open, false, false, false));
    // Not commands: nothing is read with any token, nothing is sent.
    for body in [
        "please /preview deploy",
        "```\n/preview deploy\n```",
        "> /preview deploy",
        "    /preview deploy",
        "`/preview deploy`",
    ] {
        let before = w.github.exchanges().len();
        let (event, _) = comment_event(&w, 13, MAINTAINER, body);
        let (out, _) = handle(&w, "issue_comment", &event, &["--decide-only"], w.env()).await;
        assert_eq!(out.code, 3, "{body:?}: {out:?}");
        assert!(
            out.stdout.contains("no /preview command"),
            "{body:?}: {out:?}"
        );
        assert_eq!(w.github.exchanges().len(), before, "{body:?}");
    }
    // Extra whitespace and other lines around it: a command (even on a PR without the label).
    let (event, id) = comment_event(
        &w,
        13,
        MAINTAINER,
        "LGTM\r\n\r\n   /preview \t deploy   \r\nthanks",
    );
    let (out, outputs) = handle(&w, "issue_comment", &event, &["--decide-only"], w.env()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        outputs.contains("action=deploy\ncheckout=true\n"),
        "{outputs}"
    );
    assert!(outputs.contains(&format!("sha={}", head(13))), "{outputs}");
    assert_eq!(
        w.github.reactions(id),
        [(LOGIN.to_string(), "eyes".to_string())]
    );

    // 64 KB of workflow commands, Markdown and HTML, with an unknown command that tries to be a
    // workflow command: one reaction, one help reply of our own text, nothing of it printed.
    let mut body = String::from("/preview ::add-mask::x\n");
    while body.len() < 64 * 1024 {
        body.push_str("::error title=pwned::owned\n::set-output name=action::deploy\n<img src=x onerror=alert(1)> **[x](javascript:alert(1))** @everyone\n");
    }
    let (event, id) = comment_event(&w, 13, MAINTAINER, &body);
    let writes = w.github.writes().len();
    for _ in 0..2 {
        let (out, outputs) = handle(&w, "issue_comment", &event, &["--decide-only"], w.env()).await;
        assert_eq!(out.code, 3, "{out:?}");
        for text in [&out.stdout, &out.stderr, &outputs] {
            assert!(
                !text.lines().any(|l| l.trim_start().starts_with("::")),
                "{text}"
            );
            assert!(
                !text.contains("pwned") && !text.contains("onerror") && !text.contains("everyone"),
                "{text}"
            );
        }
        assert!(outputs.starts_with("action=skip\n"), "{outputs}");
    }
    // The first run reacts and replies; the second's one write is the reaction, which GitHub
    // answers 200 (there already) without making another.
    let sent: Vec<(String, u16)> = w.github.writes()[writes..]
        .iter()
        .map(|e| (format!("{} {}", e.method, e.path), e.status))
        .collect();
    let reaction = format!("POST /repos/{REPOSITORY}/issues/comments/{id}/reactions");
    let reply = format!("POST /repos/{REPOSITORY}/issues/13/comments");
    assert_eq!(
        sent,
        [(reaction.clone(), 201), (reply, 201), (reaction, 200)]
    );
    assert_eq!(
        w.github.reactions(id),
        [(LOGIN.to_string(), "confused".to_string())]
    );
    let reply = w.last_comment(13);
    assert!(reply.contains("`/preview redeploy`"), "{reply}");
    assert!(
        !reply.contains("pwned") && !reply.contains("add-mask"),
        "{reply}"
    );
    assert!(w.fly.exchanges().is_empty() && w.vercel.exchanges().is_empty());
}

mod postgres {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ev {
        Pr(&'static str),
        Deploy,
    }

    /// The README's table: what each event does to a PR in each state.
    fn expected(e: Ev, draft: bool, label: bool, paths: bool, fork: bool) -> &'static str {
        if fork {
            return "skip";
        }
        let eligible = !draft && label && paths;
        match e {
            Ev::Pr("closed") => "teardown",
            Ev::Pr("opened" | "synchronize" | "reopened" | "ready_for_review" | "labeled")
                if eligible =>
            {
                "deploy"
            }
            Ev::Pr("unlabeled") if !label => "teardown",
            Ev::Pr("converted_to_draft") if draft => "teardown",
            Ev::Pr(_) => "skip",
            Ev::Deploy => "deploy",
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_event_and_pr_state_decides_and_acts_as_documented() {
        let w = start(true).await;
        let events = [
            "opened",
            "synchronize",
            "reopened",
            "closed",
            "labeled",
            "unlabeled",
            "ready_for_review",
            "converted_to_draft",
        ]
        .map(Ev::Pr)
        .into_iter()
        .chain([Ev::Deploy]);
        let mut n = 100;
        let mut rows = Vec::new();
        for e in events {
            for draft in [false, true] {
                for label in [false, true] {
                    for paths in [false, true] {
                        for fork in [false, true] {
                            n += 1;
                            let state = if e == Ev::Pr("closed") {
                                PrState::Closed
                            } else {
                                PrState::Open
                            };
                            w.github
                                .set_pull_request(pull(n, state, draft, label, fork));
                            let files = if paths {
                                vec!["README.md", "apps/api/main.ts"]
                            } else {
                                vec!["README.md", "docs/apps.md"]
                            };
                            w.github
                                .set_files(n as u32, files.into_iter().map(String::from).collect());
                            let (name, event) = match e {
                                Ev::Pr(action) => ("pull_request", pr_event(&w, n, action, fork)),
                                Ev::Deploy => (
                                    "issue_comment",
                                    comment_event(&w, n, MAINTAINER, "/preview deploy").0,
                                ),
                            };
                            let before = counts(&w);
                            let (out, outputs) =
                                handle(&w, name, &event, &["--sha", &head(n)], w.env()).await;
                            let writes = diff(before.1, counts(&w).1);
                            let want = expected(e, draft, label, paths, fork);
                            let row = format!(
                                "{e:?} draft={draft} label={label} paths={paths} fork={fork}"
                            );
                            assert!(
                                outputs.starts_with(&format!("action={want}\n"))
                                    || (fork && outputs.is_empty() && e != Ev::Deploy),
                                "{row}: {outputs} {out:?}"
                            );
                            let code = match want {
                                "skip" => 3,
                                _ => 0,
                            };
                            assert_eq!(out.code, code, "{row}: {out:?}");
                            match want {
                                // A refused command's one write is its reply.
                                "skip" => assert_eq!(
                                    writes,
                                    [0, 0, usize::from(e == Ev::Deploy)],
                                    "{row}: {:?}",
                                    w.github_requests()
                                ),
                                "deploy" => {
                                    assert!(writes[0] > 0 && writes[1] > 0, "{row}: {writes:?}");
                                    assert!(
                                        w.fly.apps().contains(&format!("pr-{n}-agents")),
                                        "{row}"
                                    );
                                }
                                // Nothing was ever deployed for these PRs: nothing to remove.
                                _ => assert_eq!(&writes[..2], [0, 0], "{row}: {out:?}"),
                            }
                            rows.push(row);
                        }
                    }
                }
            }
        }
        assert_eq!(rows.len(), 9 * 16);
        // Every deploy used the head it verified.
        for d in w.vercel.deployments() {
            let pr: u64 = d
                .git_ref
                .trim_start_matches("feature/change-")
                .parse()
                .unwrap();
            assert_eq!(d.sha, head(pr));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_s_deploy_runs_only_at_the_verified_head() {
        let w = start(true).await;
        w.github
            .set_pull_request(pull(21, PrState::Open, true, false, false));
        let (event, id) = comment_event(&w, 21, MAINTAINER, "/preview deploy");
        // Step 1 of the workflow: decide and acknowledge (a draft without the label: a command
        // overrides both).
        let (out, outputs) = handle(&w, "issue_comment", &event, &["--decide-only"], w.env()).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(
            outputs,
            format!("action=deploy\ncheckout=true\nsha={}\npr=21\n", head(21))
        );
        assert!(w.fly.exchanges().is_empty() && w.vercel.exchanges().is_empty());
        // A checkout of another commit: stop before anything is touched.
        let before = counts(&w);
        let (out, _) = handle(
            &w,
            "issue_comment",
            &event,
            &["--sha", &"e".repeat(40)],
            w.env(),
        )
        .await;
        assert_eq!(out.code, 2, "{out:?}");
        assert!(
            out.stderr
                .contains("not the head of pull request #21 verified now"),
            "{out:?}"
        );
        assert_eq!(diff(before.1, counts(&w).1), [0, 0, 0]);
        assert!(w.fly.exchanges().is_empty() && w.vercel.exchanges().is_empty());
        // Without --sha, neither.
        let (out, _) = handle(&w, "issue_comment", &event, &[], w.env()).await;
        assert_eq!(out.code, 2, "{out:?}");
        // Step 2 at the verified head: deployed, acknowledged once.
        let (out, _) = handle(&w, "issue_comment", &event, &["--sha", &head(21)], w.env()).await;
        assert_eq!(out.code, 0, "{out:?}");
        let shas: Vec<String> = w.vercel.deployments().into_iter().map(|d| d.sha).collect();
        assert!(
            !shas.is_empty() && shas.iter().all(|s| *s == head(21)),
            "{shas:?}"
        );
        assert_eq!(w.github.reactions(id).len(), 1);
        assert!(
            w.last_comment(21).contains("is ready"),
            "{}",
            w.last_comment(21)
        );
        assert!(
            w.last_comment(21).contains("`/preview teardown`"),
            "the report lists the commands"
        );

        // The head moves between the decision and the deploy: the pinned deploy stops.
        let mut moved = pull(21, PrState::Open, true, false, false);
        moved.head_sha = "d".repeat(40);
        let (event, _) = comment_event(&w, 21, MAINTAINER, "/preview redeploy");
        let (out, outputs) = handle(&w, "issue_comment", &event, &["--decide-only"], w.env()).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(outputs.contains(&format!("sha={}", head(21))));
        w.github.set_pull_request(moved);
        let (out, _) = handle(&w, "issue_comment", &event, &["--sha", &head(21)], w.env()).await;
        assert_eq!(out.code, 2, "{out:?}");
    }

    /// `handle --json` is JSON Lines from the first line to the last: the decision, the phases
    /// of the deploy it runs, the result; a skip is one line.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handle_json_is_json_lines_from_the_decision_to_the_result() {
        let w = start(true).await;
        w.github
            .set_pull_request(pull(23, PrState::Open, false, true, false));
        let (event, _) = comment_event(&w, 23, MAINTAINER, "/preview deploy");
        let (out, _) = handle(
            &w,
            "issue_comment",
            &event,
            &["--json", "--sha", &head(23)],
            w.env(),
        )
        .await;
        assert_eq!(out.code, 0, "{out:?}");
        let lines: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{out:?}")))
            .collect();
        assert!(lines.len() > 3, "{out:?}");
        // The masks go where the progress goes: stderr, ahead of anything they mask there.
        assert!(out.stderr.contains("::add-mask::"), "{out:?}");
        assert_eq!(lines[0]["event"], "decided", "{out:?}");
        assert_eq!(lines[0]["action"], "deploy");
        assert_eq!(lines[0]["sha"], head(23));
        assert!(
            lines.iter().any(|l| l["event"] == "phase_finished"),
            "{out:?}"
        );
        let last = lines.last().unwrap();
        assert_eq!(last["status"], "ready", "{out:?}");
        assert_eq!(last["pr"], 23);

        // A reader's command: refused, one line.
        let (event, _) = comment_event(&w, 23, READER, "/preview deploy");
        let (out, _) = handle(&w, "issue_comment", &event, &["--json"], w.env()).await;
        assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
        let line: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(line["status"], "skipped", "{out:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn removing_the_label_tears_down_and_adding_it_deploys() {
        let w = start(true).await;
        w.github.set_files(31, vec!["apps/web/page.tsx".into()]);
        w.github
            .set_pull_request(pull(31, PrState::Open, false, true, false));
        let labeled = pr_event(&w, 31, "labeled", false);
        let (out, _) = handle(&w, "pull_request", &labeled, &["--sha", &head(31)], w.env()).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(w.fly.apps(), ["pr-31-agents"]);
        assert!(!w.branch_vars("feature/change-31").is_empty());

        w.github
            .set_pull_request(pull(31, PrState::Open, false, false, false));
        let unlabeled = pr_event(&w, 31, "unlabeled", false);
        let (out, outputs) = handle(
            &w,
            "pull_request",
            &unlabeled,
            &["--sha", &head(31)],
            w.env(),
        )
        .await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            outputs.starts_with("action=teardown\ncheckout=false\n"),
            "{outputs}"
        );
        assert!(
            out.stdout.contains("the label `preview` was removed"),
            "{out:?}"
        );
        assert!(w.fly.apps().is_empty());
        assert!(w.branch_vars("feature/change-31").is_empty());
        assert!(
            w.last_comment(31).contains("torn down"),
            "{}",
            w.last_comment(31)
        );

        // A push without the label: skipped, and the report says how to get one (no write to
        // Fly or Vercel).
        let before = counts(&w);
        let push = pr_event(&w, 31, "synchronize", false);
        let (out, _) = handle(&w, "pull_request", &push, &["--sha", &head(31)], w.env()).await;
        assert_eq!(out.code, 3, "{out:?}");
        assert_eq!(&diff(before.1, counts(&w).1)[..2], [0, 0]);
        let report = w.last_comment(31);
        assert!(report.contains("No preview environment"), "{report}");
        assert!(
            report.contains("add the label &#96;preview&#96; to get one"),
            "{report}"
        );
        assert!(report.contains("`/preview deploy`"), "{report}");

        w.github
            .set_pull_request(pull(31, PrState::Open, false, true, false));
        let (out, _) = handle(&w, "pull_request", &labeled, &["--sha", &head(31)], w.env()).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(w.fly.apps(), ["pr-31-agents"]);
        assert!(
            w.last_comment(31).contains("is ready"),
            "{}",
            w.last_comment(31)
        );
    }
}

/// `/preview keep`, `/preview extend` and `/preview wake` through `preview handle` (issue 17),
/// with a `[lifetime]` policy: each command's effect on the fakes and the report, a second
/// identical run writing nothing but the acknowledgement the framework re-posts (GitHub answers
/// it 200), a reader refused with nothing touched, and what the next `sweep` makes of each.
mod lifetime_commands {
    use super::*;

    const POLICY: &str =
        "\n[lifetime]\nttl = \"168h\"\nsleep_after = \"24h\"\nkeep_label = \"keep\"\n";

    fn hours_ago(h: i64) -> String {
        (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(h)).to_string()
    }

    /// PR `n` deployed, its activity then aged by `idle` hours.
    async fn deployed(w: &World, n: u64, idle: i64) {
        w.github
            .set_pull_request(pull(n, PrState::Open, false, true, false));
        let out = w.run(&["deploy", "--pr", &n.to_string()], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        w.fly.set_metadata(
            &format!("pr-{n}-agents"),
            "preview_active_at",
            &hours_ago(idle),
        );
    }

    fn active_at(w: &World, n: u64) -> jiff::Timestamp {
        w.fly.machines(&format!("pr-{n}-agents"))[0]["config"]["metadata"]["preview_active_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The sticky report on PR `n` (found by its marker: the last comment may be a command).
    fn sticky(w: &World, n: u64) -> String {
        let marker = format!("<!-- preview:env=pr-{n}-agents ");
        let found: Vec<String> = w
            .github
            .comments(n as u32)
            .into_iter()
            .filter(|c| c.body.starts_with(&marker))
            .map(|c| c.body)
            .collect();
        assert_eq!(found.len(), 1, "one report on #{n}: {found:#?}");
        found[0].clone()
    }

    /// Requests of each fake since `before` (all, then mutating).
    fn since(w: &World, before: &([usize; 3], [usize; 3])) -> ([usize; 3], [usize; 3]) {
        let now = counts(w);
        (diff(before.0, now.0), diff(before.1, now.1))
    }

    /// The GitHub writes since `from`, one line each.
    fn github_writes(w: &World, from: usize) -> Vec<String> {
        w.github.writes()[from..]
            .iter()
            .map(|e| format!("{} {}", e.method, e.path))
            .collect()
    }

    /// Runs the two workflow steps for `body` by `author` on PR `n`: decide (its outputs), then
    /// act (`--sha` when the decision says to check out).
    async fn command(w: &World, n: u64, author: &str, body: &str) -> (Output, String, u64) {
        let (event, id) = comment_event(w, n, author, body);
        let (out, outputs) = handle(w, "issue_comment", &event, &["--decide-only"], w.env()).await;
        if out.code != 0 {
            return (out, outputs, id);
        }
        let sha = head(n);
        let args: &[&str] = if outputs.contains("checkout=true") {
            &["--sha", &sha]
        } else {
            &[]
        };
        let (out, _) = handle(w, "issue_comment", &event, args, w.env()).await;
        (out, outputs, id)
    }

    /// The second run of the acting step for a comment already handled.
    async fn again(w: &World, n: u64, id: u64) -> Output {
        let event = w.dir.join(format!("event-comment-{id}.json"));
        let sha = head(n);
        let outputs =
            std::fs::read_to_string(w.dir.join(format!("outputs-event-comment-{id}.json")))
                .unwrap_or_default();
        let args: &[&str] = if outputs.contains("checkout=true") {
            &["--sha", &sha]
        } else {
            &[]
        };
        handle(w, "issue_comment", &event, args, w.env()).await.0
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keep_extend_and_wake_act_once_refuse_readers_and_hold_in_the_next_sweep() {
        let w = start(true).await;
        deployed(&w, 41, 200).await; // would expire: kept
        deployed(&w, 43, 200).await; // would expire: extended
        deployed(&w, 44, 30).await; // idle: sleeps, then woken
        let mut text = std::fs::read_to_string(&w.config).unwrap();
        text.push_str(POLICY);
        std::fs::write(&w.config, text).unwrap();

        // A reader's commands: one reply each, nothing else, not a request to Fly or Vercel.
        for word in ["keep", "extend", "wake"] {
            let before = counts(&w);
            let (out, outputs, id) = command(&w, 41, READER, &format!("/preview {word}")).await;
            assert_eq!(out.code, 3, "{out:?}");
            assert!(outputs.contains("action=skip"), "{outputs}");
            let (all, writes) = since(&w, &before);
            assert_eq!((all[0], all[1]), (0, 0), "{out:?}");
            assert_eq!(writes[2], 1, "the reply only: {:?}", w.github_requests());
            assert!(w.github.reactions(id).is_empty());
        }
        assert!(w.github.labels(41).iter().all(|l| l != "keep"));

        // keep: the label, "Kept" on the report, no checkout needed.
        let before = counts(&w);
        let writes_before = w.github.writes().len();
        let (out, outputs, id) = command(&w, 41, MAINTAINER, "/preview keep").await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            outputs.starts_with("action=keep\ncheckout=false\n"),
            "{outputs}"
        );
        assert!(out.stdout.contains("pr-41-agents is kept"), "{out:?}");
        assert!(out.stdout.contains("was added to"), "{out:?}");
        assert_eq!(w.github.labels(41), ["preview", "keep"]);
        assert_eq!(w.github.reactions(id).len(), 1);
        let shown = sticky(&w, 41);
        assert!(
            shown.contains("Kept: the label <code>keep</code>"),
            "{shown}"
        );
        assert!(!shown.contains("Expires"), "{shown}");
        assert_eq!(since(&w, &before).1[..2], [0, 0], "no Fly or Vercel write");
        let writes = github_writes(&w, writes_before);
        assert!(
            writes
                .iter()
                .any(|l| l == "POST /repos/acme/app/issues/41/labels"),
            "{writes:?}"
        );
        let before = counts(&w);
        let from = w.github.writes().len();
        let out = again(&w, 41, id).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("was already on"), "{out:?}");
        assert_eq!(since(&w, &before).1[..2], [0, 0]);
        assert_eq!(
            github_writes(&w, from),
            [format!(
                "POST /repos/acme/app/issues/comments/{id}/reactions"
            )],
            "only the framework's reaction (answered 200)"
        );

        // extend: the activity mark now, the new expiry on the report.
        let old = active_at(&w, 43);
        let before = counts(&w);
        let (out, outputs, id) = command(&w, 43, MAINTAINER, "/preview extend").await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(
            outputs.starts_with("action=extend\ncheckout=false\n"),
            "{outputs}"
        );
        assert!(out.stdout.contains("restarts now"), "{out:?}");
        let new = active_at(&w, 43);
        assert!(
            new > old + jiff::SignedDuration::from_hours(199),
            "{old} → {new}"
        );
        let expires = (new + jiff::SignedDuration::from_hours(168))
            .strftime("%Y-%m-%d %H:%M UTC")
            .to_string();
        let shown = sticky(&w, 43);
        assert!(shown.contains(&format!("Expires {expires}")), "{shown}");
        assert!(shown.contains("`/preview keep`"), "{shown}");
        let (_, writes) = since(&w, &before);
        assert_eq!(writes[1], 0, "no Vercel write");
        assert_eq!(writes[0], 1, "one metadata write: {:#?}", w.fly.mutating());
        let before = counts(&w);
        let from = w.github.writes().len();
        let out = again(&w, 43, id).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("nothing written"), "{out:?}");
        assert_eq!(since(&w, &before).1[..2], [0, 0]);
        assert_eq!(github_writes(&w, from).len(), 1, "the reaction only");

        // The next pass: 41 kept by its label, 43 within its lifetime, 44 put to sleep.
        let out = w.run(&["sweep"], &[]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let line = |name: &str| {
            out.stdout
                .lines()
                // The lifetime decision (sweep's own `keep … the PR is open` comes first).
                .find(|l| l.contains(name) && !l.starts_with("keep "))
                .unwrap_or_else(|| panic!("{name}: {out:?}"))
                .to_string()
        };
        assert!(
            line("pr-41-agents").contains("the label `keep` keeps it"),
            "{out:?}"
        );
        assert!(
            line("pr-43-agents").starts_with("lifetime: keep"),
            "{out:?}"
        );
        assert!(
            line("pr-43-agents").contains("within the lifetime"),
            "{out:?}"
        );
        assert!(line("pr-44-agents").starts_with("put to sleep"), "{out:?}");
        let mut apps = w.fly.apps();
        apps.sort();
        assert_eq!(apps, ["pr-41-agents", "pr-43-agents", "pr-44-agents"]);
        assert_eq!(w.fly.machines("pr-44-agents")[0]["state"], "stopped");
        assert!(
            sticky(&w, 44).contains("`/preview wake`"),
            "{}",
            sticky(&w, 44)
        );

        // wake: needs the checkout; the stopped Machine starts, hooks and seed run again.
        let seeds = w.seeds().await;
        let vercel = w.vercel.mutations().len();
        let (out, outputs, id) = command(&w, 44, MAINTAINER, "/preview wake").await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(
            outputs,
            format!("action=wake\ncheckout=true\nsha={}\npr=44\n", head(44))
        );
        assert!(
            out.stdout.contains("pr-44-agents woke (it was stopped)"),
            "{out:?}"
        );
        // In Actions, progress and hook output go to stdout, in log groups.
        assert!(out.stdout.contains("[migrate] "), "{out:?}");
        assert_eq!(w.seeds().await, seeds + 1);
        assert_eq!(
            w.vercel.mutations().len(),
            vercel,
            "no Vercel write at the same commit"
        );
        assert_eq!(w.fly.apps().len(), 3);
        assert_eq!(w.fly.machines("pr-44-agents").len(), 1);
        assert_eq!(w.fly.machines("pr-44-agents")[0]["state"], "started");
        assert!(sticky(&w, 44).contains("is ready"), "{}", sticky(&w, 44));
        let before = counts(&w);
        let from = w.github.writes().len();
        let tunnels = w.tunnels_opened();
        let out = again(&w, 44, id).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("pr-44-agents was awake"), "{out:?}");
        assert_eq!(since(&w, &before).1[..2], [0, 0]);
        assert_eq!(github_writes(&w, from).len(), 1, "the reaction only");
        assert_eq!(w.tunnels_opened(), tunnels);
        assert_eq!(w.seeds().await, seeds + 1);
    }
}
