//! One sticky comment per PR whatever token identity ran last (issue 14, item 10): the Actions
//! token and a maintainer's personal token find each other's comments (trusted: the workflow's
//! bot, or an author who may write to the repository), converge to one, and never trust, edit or
//! delete a marker pasted by anyone else. Against the stateful fake under two identities; every
//! body is checked against the spec.

mod common;

use preview_core::{
    Link, Naming, Outcome, PrNumber, PrState, PreviewName, PullRequest, Report, ReportKind,
    ReportState, SourceHost,
};
use preview_testkit::fakes::github::FakeGitHub;
use providers_github::{ACTIONS_BOT, GitHubSource, render_comment};

use common::{FakeGitHubExt, check_exchanges};

const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
const ALICE: &str = "ghp_alice_personal_token";

fn pr_number(n: u64) -> PrNumber {
    PrNumber::new(n).unwrap()
}

fn name(n: u64) -> PreviewName {
    Naming::new("pr", "agents").unwrap().name(pr_number(n))
}

fn pull(n: u64) -> PullRequest {
    PullRequest {
        number: pr_number(n),
        state: PrState::Open,
        draft: false,
        title: format!("Change {n}"),
        head_branch: format!("feature-{n}"),
        head_sha: SHA.into(),
        head_repo: Some("acme/app".into()),
        base_repo: "acme/app".into(),
        labels: vec![],
    }
}

fn report(state: ReportState) -> Report {
    Report {
        name: name(7),
        pr: pr_number(7),
        branch: Some("feature-7".into()),
        commit: Some(SHA.into()),
        state,
        run_url: None,
        started_at: None,
        phases: vec![],
        lifetime: None,
    }
}

fn ready() -> ReportState {
    ReportState::Ready {
        links: vec![Link {
            label: "api".into(),
            url: "https://pr-7-api.preview.example.com".into(),
        }],
    }
}

/// The fake with PR 7, its default token acting as the Actions token, and alice (a maintainer
/// with a personal token) who may write.
async fn fake() -> FakeGitHub {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    fake.act_as_actions_token();
    fake.add_user_token(ALICE, "alice", "write");
    fake
}

/// The host of the workflow's token (no configured identity: `GET /user` is forbidden).
fn actions(fake: &FakeGitHub) -> GitHubSource {
    fake.builder().build().unwrap()
}

/// The host of alice's personal token (its identity from `GET /user`).
fn alice(fake: &FakeGitHub) -> GitHubSource {
    fake.builder().token(ALICE).build().unwrap()
}

fn authors(fake: &FakeGitHub) -> Vec<String> {
    fake.comments(7).into_iter().map(|c| c.author).collect()
}

#[tokio::test]
async fn a_personal_run_then_the_workflow_keep_one_comment_and_teardown_updates_it() {
    let fake = fake().await;
    let (mine, bot) = (alice(&fake), actions(&fake));
    assert_eq!(
        mine.publish_report(&report(ready())).await.unwrap(),
        Outcome::Created
    );
    assert_eq!(authors(&fake), ["alice"]);

    // The workflow finds alice's comment (she may write) and reads it back…
    let summary = bot.get_report(&name(7), pr_number(7)).await.unwrap();
    assert_eq!(summary.map(|s| s.kind), Some(ReportKind::Ready));
    // …publishes a new commit's report into it, and tears it down there.
    let deploying = report(ReportState::Deploying);
    assert_eq!(
        bot.publish_report(&deploying).await.unwrap(),
        Outcome::Updated
    );
    assert_eq!(
        bot.publish_report(&report(ReportState::TornDown))
            .await
            .unwrap(),
        Outcome::Updated
    );
    let comments = fake.comments(7);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].body.contains("was removed"),
        "{}",
        comments[0].body
    );
    // alice, later, sees the same one.
    assert_eq!(
        mine.get_report(&name(7), pr_number(7))
            .await
            .unwrap()
            .map(|s| s.kind),
        Some(ReportKind::TornDown)
    );
    check_exchanges(&fake);
}

#[tokio::test]
async fn the_workflow_then_a_personal_run_keep_one_comment() {
    let fake = fake().await;
    let (mine, bot) = (alice(&fake), actions(&fake));
    bot.publish_report(&report(ReportState::Deploying))
        .await
        .unwrap();
    assert_eq!(authors(&fake), [ACTIONS_BOT]);
    // The bot is always trusted, and alice may edit its comment.
    assert_eq!(
        mine.publish_report(&report(ready())).await.unwrap(),
        Outcome::Updated
    );
    assert_eq!(authors(&fake), [ACTIONS_BOT]);
    assert!(fake.comments(7)[0].body.contains("is ready"));
    check_exchanges(&fake);
}

#[tokio::test]
async fn two_comments_left_by_two_identities_converge_to_one_under_either() {
    for keeper in ["alice", ACTIONS_BOT] {
        let fake = fake().await;
        let old = render_comment(&report(ready()));
        // What earlier versions left: one comment per identity, both saying "ready".
        let by_alice = fake.add_comment(7, "alice", &old);
        let by_bot = fake.add_comment(7, ACTIONS_BOT, &old);
        let host = if keeper == "alice" {
            alice(&fake)
        } else {
            actions(&fake)
        };
        // Two comments that could disagree: neither is taken as "already shown".
        let summary = host
            .get_report(&name(7), pr_number(7))
            .await
            .unwrap()
            .expect("ours");
        assert_eq!(summary.digest, None);
        // Publishing (even the very same report) converges: the runner's own is kept.
        assert_eq!(
            host.publish_report(&report(ready())).await.unwrap(),
            Outcome::Updated
        );
        let kept = fake.comments(7);
        assert_eq!(kept.len(), 1, "{kept:#?}");
        assert_eq!(kept[0].author, keeper);
        assert_eq!(
            kept[0].id,
            if keeper == "alice" { by_alice } else { by_bot }
        );
        // Then nothing more to do.
        let writes = fake.writes().len();
        assert_eq!(
            host.publish_report(&report(ready())).await.unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(fake.writes().len(), writes);
        check_exchanges(&fake);
    }
}

#[tokio::test]
async fn markers_from_authors_who_may_not_write_are_never_trusted_or_touched() {
    let fake = fake().await;
    // A collaborator who may only read (asked about), and an outsider (not even asked about),
    // each pasting a marker that says this very report is already shown.
    fake.set_permission("mallory", "read");
    let forged = render_comment(&report(ready()));
    let by_mallory = fake.add_comment(7, "mallory", &forged);
    let by_eve = fake.add_comment(7, "eve", &forged);
    for host in [actions(&fake), alice(&fake)] {
        assert_eq!(
            host.get_report(&name(7), pr_number(7)).await.unwrap(),
            None,
            "a forged marker was trusted"
        );
    }
    let bot = actions(&fake);
    assert_eq!(
        bot.publish_report(&report(ready())).await.unwrap(),
        Outcome::Created
    );
    let comments = fake.comments(7);
    assert_eq!(comments.len(), 3);
    for id in [by_mallory, by_eve] {
        let c = comments.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.body, forged, "never edited");
        assert!(
            fake.writes()
                .iter()
                .all(|w| !w.path.ends_with(&format!("/comments/{id}"))),
            "never deleted"
        );
    }
    // Permission asked about mallory only (a collaborator), once per host, never about eve.
    let asked: Vec<String> = fake
        .exchanges()
        .iter()
        .filter(|e| e.path.contains("/collaborators/"))
        .map(|e| e.path.clone())
        .collect();
    assert!(
        asked
            .iter()
            .all(|p| p == "/repos/acme/app/collaborators/mallory/permission"),
        "{asked:?}"
    );
    assert!(!asked.is_empty() && asked.len() <= 3, "{asked:?}");
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_token_that_may_not_edit_the_comment_says_so_and_leaves_no_second_one() {
    let fake = fake().await;
    // carol may comment but not edit others' comments (triage); alice (a writer) made the one.
    fake.add_user_token("ghp_carol", "carol", "triage");
    alice(&fake)
        .publish_report(&report(ReportState::Deploying))
        .await
        .unwrap();
    let carol = fake.builder().token("ghp_carol").build().unwrap();
    let err = carol
        .publish_report(&report(ready()))
        .await
        .expect_err("may not edit alice's comment");
    assert!(
        matches!(err, preview_core::Error::Unauthorized { status: 403, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("carol") && text.contains("write access"),
        "{text}"
    );
    assert_eq!(authors(&fake), ["alice"], "no second comment");
    check_exchanges(&fake);
}
