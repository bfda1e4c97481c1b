//! The fake's secondary-limit accounting, and the client staying inside it.

mod common;

use common::FakeGitHubExt;
use std::time::Duration;

use preview_core::{PrNumber, PrState, PullRequest, SourceHost};
use preview_testkit::fakes::github::{FakeGitHub, REPOSITORY};

fn pull(n: u64) -> PullRequest {
    PullRequest {
        number: PrNumber::new(n).unwrap(),
        state: PrState::Open,
        draft: false,
        title: format!("PR {n}"),
        head_branch: format!("b{n}"),
        head_sha: "6dcb09b5b57875f334f61aebed695e2e4193db5e".into(),
        head_repo: Some(REPOSITORY.into()),
        base_repo: REPOSITORY.into(),
        labels: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_reads_never_exceed_the_fakes_limit() {
    let fake = FakeGitHub::start().await;
    for n in 1..=30 {
        fake.set_pull_request(pull(n));
    }
    fake.set_latency(|_| Duration::from_millis(20));
    fake.enforce_secondary_limits(Duration::ZERO, 4);
    let gh = std::sync::Arc::new(fake.builder().max_concurrent_reads(4).build().unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for n in 1..=30 {
        let gh = gh.clone();
        tasks.spawn(async move { gh.get_pull_request(PrNumber::new(n).unwrap()).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert!(r.unwrap().unwrap().is_some());
    }
    assert_eq!(fake.rate_limit_violations(), 0);
}

#[tokio::test]
async fn a_write_too_soon_is_refused_and_counted() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    fake.enforce_secondary_limits(Duration::from_secs(3600), 10);
    let http = reqwest::Client::new();
    let post = || {
        http.post(format!(
            "{}/repos/{REPOSITORY}/issues/7/comments",
            fake.uri()
        ))
        .bearer_auth(preview_testkit::fakes::github::TOKEN)
        .json(&serde_json::json!({"body": "hi"}))
        .send()
    };
    assert!(post().await.unwrap().status().is_success());
    let second = post().await.unwrap();
    assert_eq!(second.status().as_u16(), 403);
    assert_eq!(fake.rate_limit_violations(), 1);
    assert_eq!(fake.comments(7).len(), 1);
}
