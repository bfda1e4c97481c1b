//! The endpoints `preview handle` uses (issue 16), against the stateful fake: changed files over
//! every page and GitHub's 3,000-file cap, permissions per user, reactions answered 201 then 200,
//! one reply per command comment whoever else commented. Every exchange is checked against the
//! vendored GitHub description.

mod common;

use preview_core::host::{Acknowledged, Permission, Reaction, TriggerHost};
use preview_core::{
    Naming, Outcome, PrNumber, PrState, PullRequest, Report, ReportKind, ReportState, SourceHost,
};
use preview_testkit::fakes::github::FakeGitHub;

use common::{FakeGitHubExt, check_exchanges};

fn pull(n: u64) -> PullRequest {
    PullRequest {
        number: PrNumber::new(n).unwrap(),
        state: PrState::Open,
        draft: false,
        title: "t".into(),
        head_branch: "f".into(),
        head_sha: "6dcb09b5b57875f334f61aebed695e2e4193db5e".into(),
        head_repo: Some("acme/app".into()),
        base_repo: "acme/app".into(),
        labels: vec![],
    }
}

#[tokio::test]
async fn changed_files_are_read_from_every_page_up_to_githubs_cap() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(3));
    let files: Vec<String> = (0..250).map(|i| format!("apps/f{i}.rs")).collect();
    fake.set_files(3, files.clone());
    let gh = fake.builder().build().unwrap();
    let got = gh.changed_files(PrNumber::new(3).unwrap()).await.unwrap();
    assert_eq!(got.paths, files);
    assert!(got.complete);
    let pages = fake
        .exchanges()
        .iter()
        .filter(|e| e.path.ends_with("/files"))
        .count();
    assert_eq!(pages, 3, "100 per page");

    fake.set_files(3, (0..3500).map(|i| format!("f{i}")).collect());
    let got = gh.changed_files(PrNumber::new(3).unwrap()).await.unwrap();
    assert_eq!(got.paths.len(), 3000);
    assert!(!got.complete, "3,000 listed: the rest cannot be seen");
    assert!(check_exchanges(&fake) > 0);
}

#[tokio::test]
async fn permissions_are_read_per_user_and_strangers_have_none() {
    let fake = FakeGitHub::start().await;
    for (user, role) in [
        ("ann", "admin"),
        ("max", "maintain"),
        ("wes", "write"),
        ("tia", "triage"),
        ("rex", "read"),
    ] {
        fake.set_permission(user, role);
    }
    let gh = fake.builder().build().unwrap();
    for (user, want) in [
        ("ann", Permission::Admin),
        ("max", Permission::Maintain),
        ("wes", Permission::Write),
        ("tia", Permission::Triage),
        ("rex", Permission::Read),
        ("stranger", Permission::None),
        ("../../user", Permission::None),
    ] {
        assert_eq!(gh.permission(user).await.unwrap(), want, "{user}");
    }
    // The malformed login was never sent.
    assert!(
        !fake
            .exchanges()
            .iter()
            .any(|e| e.path.contains("..") || e.path.contains("%2F"))
    );
    assert!(check_exchanges(&fake) > 0);
}

#[tokio::test]
async fn a_reaction_is_new_once_and_a_reply_is_posted_once() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(4));
    fake.set_permission("wes", "write");
    let command = fake.add_comment(4, "wes", "/preview launch");
    // Someone else's comment quoting the marker of our reply does not count as our reply.
    fake.add_comment(
        4,
        "mallory",
        &format!("<!-- preview:reply-to={command} -->\nfake"),
    );
    let gh = fake.builder().build().unwrap();
    let pr = PrNumber::new(4).unwrap();
    assert_eq!(
        gh.react(command, Reaction::Unknown).await.unwrap(),
        Acknowledged::New
    );
    assert_eq!(
        gh.react(command, Reaction::Unknown).await.unwrap(),
        Acknowledged::Already
    );
    assert_eq!(
        fake.reactions(command),
        [("preview-bot".to_string(), "confused".to_string())]
    );
    assert_eq!(
        gh.reply(pr, command, "help").await.unwrap(),
        Outcome::Created
    );
    let writes = fake.writes().len();
    assert_eq!(
        gh.reply(pr, command, "help").await.unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(
        fake.writes().len(),
        writes,
        "the second reply wrote nothing"
    );
    let ours: Vec<_> = fake
        .comments(4)
        .into_iter()
        .filter(|c| c.author == "preview-bot")
        .collect();
    assert_eq!(ours.len(), 1);
    assert!(ours[0].body.ends_with("\nhelp"));
    assert!(check_exchanges(&fake) > 0);
}

#[tokio::test]
async fn a_skip_report_replaces_torn_down_and_lists_the_commands() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(5));
    let help = preview_core::command::help_lines();
    let gh = fake.builder().commands(help.clone()).build().unwrap();
    let name = Naming::new("pr", "app")
        .unwrap()
        .name(PrNumber::new(5).unwrap());
    let report = |state| Report {
        name: name.clone(),
        pr: PrNumber::new(5).unwrap(),
        branch: None,
        commit: None,
        state,
        run_url: None,
        started_at: None,
        phases: vec![],
        lifetime: None,
    };
    gh.publish_report(&report(ReportState::Deploying))
        .await
        .unwrap();
    gh.publish_report(&report(ReportState::TornDown))
        .await
        .unwrap();
    let skipped = ReportState::Skipped {
        reason: "no preview: add the label `preview` to get one".into(),
    };
    assert_eq!(
        gh.publish_report(&report(skipped.clone())).await.unwrap(),
        Outcome::Updated
    );
    let s = gh
        .get_report(&name, PrNumber::new(5).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.kind, ReportKind::Skipped);
    let body = fake.comments(5).pop().unwrap().body;
    assert!(body.contains("No preview environment"), "{body}");
    assert!(
        body.contains("add the label &#96;preview&#96; to get one"),
        "{body}"
    );
    for line in &help {
        assert!(body.contains(line.as_str()), "{line} in {body}");
    }
    // The listed commands are not commands themselves (a list item, not a line of its own).
    assert_eq!(preview_core::command::parse_comment(&body), None);
    assert_eq!(
        gh.publish_report(&report(skipped)).await.unwrap(),
        Outcome::Unchanged
    );
    assert!(check_exchanges(&fake) > 0);
}

#[tokio::test]
async fn a_label_is_added_once_and_never_to_a_pr_that_carries_it() {
    let fake = FakeGitHub::start().await;
    let mut labelled = pull(6);
    labelled.labels = vec!["Preview:Keep".into()];
    fake.set_pull_request(pull(5));
    fake.set_pull_request(labelled);
    let gh = fake.builder().build().unwrap();
    let (five, six) = (PrNumber::new(5).unwrap(), PrNumber::new(6).unwrap());
    assert_eq!(
        gh.add_label(five, "preview:keep").await.unwrap(),
        Outcome::Updated
    );
    let writes: Vec<_> = fake
        .writes()
        .into_iter()
        .map(|e| (e.method, e.path, e.request))
        .collect();
    assert_eq!(
        writes,
        [(
            "POST".to_string(),
            "/repos/acme/app/issues/5/labels".to_string(),
            Some(serde_json::json!({"labels": ["preview:keep"]}))
        )]
    );
    let got = gh.get_pull_request(five).await.unwrap().unwrap();
    assert_eq!(got.labels, ["preview:keep"]);
    // Carried already (in another case): read, not written.
    assert_eq!(
        gh.add_label(five, "preview:keep").await.unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(
        gh.add_label(six, "preview:keep").await.unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(fake.writes().len(), 1);
    assert!(check_exchanges(&fake) > 0);
}
