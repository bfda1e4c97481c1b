//! The `SourceHost` contract, checked against the stateful fake of the GitHub API, so real
//! request building, status mapping and decoding are exercised: preview-core's shared suite
//! (`source_host_conformance!`, at the end), plus GitHub-specific checks of the same contract
//! (pagination, separate environments on one PR, drift repair, lost create responses).

mod common;

use common::FakeGitHubExt;
use preview_core::{
    Idempotency, Link, Naming, Outcome, PrNumber, PrState, PreviewName, PullRequest, Report,
    ReportKind, ReportState, RetryConfig, SourceHost, retry,
};
use preview_testkit::fakes::github::FakeGitHub;
use providers_github::GitHubSource;

const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

fn pr(n: u64) -> PrNumber {
    PrNumber::new(n).unwrap()
}

fn name(suffix: &str, n: u64) -> PreviewName {
    Naming::new("pr", suffix).unwrap().name(pr(n))
}

fn pull(n: u64, state: PrState) -> PullRequest {
    PullRequest {
        number: pr(n),
        state,
        draft: false,
        title: format!("PR {n}"),
        head_branch: format!("b{n}"),
        head_sha: SHA.into(),
        head_repo: Some("acme/app".into()),
        base_repo: "acme/app".into(),
        labels: vec!["preview".into()],
    }
}

fn report(name: PreviewName, state: ReportState) -> Report {
    Report {
        pr: name.pr(),
        name,
        branch: Some("feature".into()),
        commit: Some(SHA.into()),
        state,
        run_url: None,
        started_at: None,
        phases: vec![],
        lifetime: None,
    }
}

async fn setup() -> (FakeGitHub, GitHubSource) {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(1, PrState::Open));
    let gh = fake.builder().build().unwrap();
    (fake, gh)
}

#[tokio::test]
async fn a_missing_pull_request_is_none() {
    let (fake, gh) = setup().await;
    assert_eq!(gh.get_pull_request(pr(999)).await.unwrap(), None);
    assert_eq!(gh.kind(), "github");
    common::check_exchanges(&fake);
}

#[tokio::test]
async fn every_open_pull_request_is_listed() {
    let (fake, gh) = setup().await;
    for n in 2..=230 {
        let state = if n % 10 == 0 {
            PrState::Closed
        } else {
            PrState::Open
        };
        fake.set_pull_request(pull(n, state));
    }
    let open = gh.list_open_pull_requests().await.unwrap();
    let mut numbers: Vec<u32> = open.iter().map(|p| p.number.get()).collect();
    numbers.sort_unstable();
    let want: Vec<u32> = (1..=230).filter(|n| n % 10 != 0).collect();
    assert_eq!(numbers, want);
    assert!(open.iter().all(|p| p.state == PrState::Open));
    assert_eq!(open[0].labels, ["preview"]);
    common::check_exchanges(&fake);
}

#[tokio::test]
async fn nothing_published_reads_back_none() {
    let (fake, gh) = setup().await;
    assert_eq!(
        gh.get_report(&name("agents", 1), pr(1)).await.unwrap(),
        None
    );
    common::check_exchanges(&fake);
}

#[tokio::test]
async fn one_report_per_environment_created_then_updated() {
    let (fake, gh) = setup().await;
    let env = name("agents", 1);
    let states = [
        ReportState::Deploying,
        ReportState::Ready {
            links: vec![Link {
                label: "app".into(),
                url: "https://pr-1.example.com".into(),
            }],
        },
        ReportState::Failed {
            phase: "seed".into(),
            error: "HTTP 500".into(),
        },
        ReportState::TornDown,
    ];
    for (i, state) in states.into_iter().enumerate() {
        let kind = state.kind();
        let outcome = gh
            .publish_report(&report(env.clone(), state))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            if i == 0 {
                Outcome::Created
            } else {
                Outcome::Updated
            }
        );
        let back = gh.get_report(&env, pr(1)).await.unwrap().unwrap();
        assert_eq!(back.kind, kind);
        assert_eq!(back.commit.as_deref(), Some(SHA));
        assert_eq!(fake.comments(1).len(), 1);
    }
    common::check_exchanges(&fake);
}

#[tokio::test]
async fn the_same_report_twice_is_unchanged_without_writes() {
    let (fake, gh) = setup().await;
    let r = report(name("agents", 1), ReportState::Deploying);
    assert_eq!(gh.publish_report(&r).await.unwrap(), Outcome::Created);
    let writes = fake.writes().len();
    assert_eq!(gh.publish_report(&r).await.unwrap(), Outcome::Unchanged);
    assert_eq!(fake.writes().len(), writes);
    common::check_exchanges(&fake);
}

#[tokio::test]
async fn environments_on_one_pr_keep_separate_reports() {
    let (fake, gh) = setup().await;
    let a = name("agents", 1);
    let b = name("docs", 1);
    gh.publish_report(&report(a.clone(), ReportState::Deploying))
        .await
        .unwrap();
    gh.publish_report(&report(b.clone(), ReportState::TornDown))
        .await
        .unwrap();
    assert_eq!(fake.comments(1).len(), 2);
    assert_eq!(
        gh.get_report(&a, pr(1)).await.unwrap().unwrap().kind,
        ReportKind::Deploying
    );
    assert_eq!(
        gh.get_report(&b, pr(1)).await.unwrap().unwrap().kind,
        ReportKind::TornDown
    );
    common::check_exchanges(&fake);
}

#[tokio::test]
async fn a_report_deleted_out_of_band_is_recreated() {
    let (fake, gh) = setup().await;
    let r = report(name("agents", 1), ReportState::Deploying);
    gh.publish_report(&r).await.unwrap();
    fake.remove_comment(fake.comments(1)[0].id);
    assert_eq!(gh.publish_report(&r).await.unwrap(), Outcome::Created);
    assert_eq!(fake.comments(1).len(), 1);
    common::check_exchanges(&fake);
}

#[tokio::test]
async fn a_lost_create_response_is_found_not_duplicated_on_retry() {
    let (fake, gh) = setup().await;
    // The comment and the deployment are created, but their answers are lost (502).
    fake.fail_next_on("POST", "/issues/1/comments", 502, true);
    fake.fail_next_on("POST", "/deployments", 502, true);
    let r = report(name("agents", 1), ReportState::Deploying);
    let cfg = RetryConfig::default().backoff(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(5),
    );
    retry(&cfg, "publish report", Idempotency::Idempotent, || {
        gh.publish_report(&r)
    })
    .await
    .unwrap();
    assert_eq!(fake.comments(1).len(), 1, "one comment");
    assert_eq!(fake.deployments().len(), 1, "one deployment");
    assert_eq!(
        gh.get_report(&r.name, pr(1)).await.unwrap().unwrap().kind,
        ReportKind::Deploying
    );
    common::check_exchanges(&fake);
}

/// Both a concrete host and a shared trait object satisfy `SourceHost` (the pipeline holds
/// `Arc<dyn SourceHost>`).
#[test]
fn github_source_is_usable_as_a_trait_object() {
    fn assert_source<T: SourceHost>() {}
    assert_source::<GitHubSource>();
    assert_source::<std::sync::Arc<dyn SourceHost>>();
    assert_source::<Box<dyn SourceHost>>();
    let gh: std::sync::Arc<dyn SourceHost> = std::sync::Arc::new(
        GitHubSource::builder()
            .token("t")
            .repository("acme/app")
            .build()
            .unwrap(),
    );
    assert_eq!(gh.kind(), "github");
}

/// The fake must outlive the host's requests, so the suite's host owns both. When the check is
/// done, every body it exchanged is validated against the spec.
#[derive(Debug)]
struct FakeBacked {
    host: GitHubSource,
    fake: FakeGitHub,
}

impl Drop for FakeBacked {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert!(common::check_exchanges(&self.fake) > 0);
        }
    }
}

#[preview_core::async_trait]
impl SourceHost for FakeBacked {
    fn kind(&self) -> &'static str {
        self.host.kind()
    }
    async fn get_pull_request(&self, pr: PrNumber) -> preview_core::Result<Option<PullRequest>> {
        self.host.get_pull_request(pr).await
    }
    async fn list_open_pull_requests(&self) -> preview_core::Result<Vec<PullRequest>> {
        self.host.list_open_pull_requests().await
    }
    async fn get_report(
        &self,
        name: &PreviewName,
        pr: PrNumber,
    ) -> preview_core::Result<Option<preview_core::ReportSummary>> {
        self.host.get_report(name, pr).await
    }
    async fn publish_report(&self, report: &Report) -> preview_core::Result<Outcome> {
        self.host.publish_report(report).await
    }
    async fn add_label(&self, pr: PrNumber, label: &str) -> preview_core::Result<Outcome> {
        self.host.add_label(pr, label).await
    }
}

async fn suite_host() -> (FakeBacked, PrNumber) {
    let (fake, host) = setup().await;
    (FakeBacked { host, fake }, pr(1))
}

// preview-core's shared SourceHost conformance suite, against the fake GitHub.
preview_core::source_host_conformance!(suite_host().await);
