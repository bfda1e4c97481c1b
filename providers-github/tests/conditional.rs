//! The open pull requests are listed conditionally: each page is sent with the ETag of its last
//! answer, a 304 (free of quota) is answered from the cached page, and what changed is read
//! again. Against wiremock (what is sent, byte for byte) and the stateful fake (what GitHub
//! does: ETags per page, 304 without `link`, no quota for a 304).

mod common;

use preview_core::{Error, PrNumber, PrState, PullRequest, SourceHost};
use preview_testkit::fakes::github::{FakeGitHub, REPOSITORY, bodies};
use providers_github::GitHubSource;
use serde_json::json;
use wiremock::matchers::{any, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{FakeGitHubExt, check_exchanges, check_received, respond, respond_empty};

fn pull(n: u64, state: PrState) -> PullRequest {
    PullRequest {
        number: PrNumber::new(n).unwrap(),
        state,
        draft: false,
        title: format!("Change {n}"),
        head_branch: format!("feature-{n}"),
        head_sha: format!("{n:040x}"),
        head_repo: Some(REPOSITORY.into()),
        base_repo: REPOSITORY.into(),
        labels: vec![],
    }
}

fn numbers(prs: &[PullRequest]) -> Vec<u64> {
    prs.iter().map(|p| p.number.get().into()).collect()
}

/// The statuses of the fake's listing requests since `from`, in order.
fn listing_statuses(fake: &FakeGitHub, from: usize) -> Vec<u16> {
    fake.exchanges()[from..]
        .iter()
        .filter(|e| e.method == "GET" && e.path.ends_with("/pulls"))
        .map(|e| e.status)
        .collect()
}

/// A fake with open PRs 1..=5 (three pages of two, newest first: 5 4 | 3 2 | 1) and a client
/// listing two a page.
async fn five_open() -> (FakeGitHub, GitHubSource) {
    let fake = FakeGitHub::start().await;
    for n in 1..=5 {
        fake.set_pull_request(pull(n, PrState::Open));
    }
    let gh = fake.builder().list_page_size(2).build().unwrap();
    (fake, gh)
}

#[tokio::test]
async fn relisting_an_unchanged_repository_gets_304s_and_the_same_result_for_no_quota() {
    let (fake, gh) = five_open().await;
    let first = gh.list_open_pull_requests().await.unwrap();
    assert_eq!(numbers(&first), [5, 4, 3, 2, 1]);
    assert_eq!(listing_statuses(&fake, 0), [200, 200, 200]);
    let (quota, from) = (fake.quota_used(), fake.exchanges().len());
    for _ in 0..3 {
        let again = gh.list_open_pull_requests().await.unwrap();
        assert_eq!(again, first, "a 304 answers from the cached page");
    }
    assert_eq!(
        listing_statuses(&fake, from),
        [304; 9],
        "every page re-validated"
    );
    assert_eq!(fake.quota_used(), quota, "a 304 costs no quota");
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_changed_label_invalidates_its_page_only() {
    let (fake, gh) = five_open().await;
    gh.list_open_pull_requests().await.unwrap();
    let mut labelled = pull(3, PrState::Open);
    labelled.labels = vec!["preview:keep".into()];
    fake.set_pull_request(labelled.clone());
    let from = fake.exchanges().len();
    let listed = gh.list_open_pull_requests().await.unwrap();
    assert_eq!(listing_statuses(&fake, from), [304, 200, 304]);
    assert_eq!(numbers(&listed), [5, 4, 3, 2, 1]);
    assert_eq!(listed[2], labelled, "the new label, not the cached page");
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_pr_closed_on_page_one_revalidates_the_pages_after_it() {
    let (fake, gh) = five_open().await;
    gh.list_open_pull_requests().await.unwrap();
    fake.set_pull_request(pull(4, PrState::Closed));
    let from = fake.exchanges().len();
    let listed = gh.list_open_pull_requests().await.unwrap();
    // 5 3 | 2 1: both pages shifted, so both are read again; there is no third page now.
    assert_eq!(listing_statuses(&fake, from), [200, 200]);
    assert_eq!(numbers(&listed), [5, 3, 2, 1]);
    // A new PR (newest, so first) shifts every page too: 6 5 | 3 2 | 1. Page 3 holds PR 1
    // alone again, exactly as when it was cached by the first listing, so it is unchanged.
    fake.set_pull_request(pull(6, PrState::Open));
    let from = fake.exchanges().len();
    let listed = gh.list_open_pull_requests().await.unwrap();
    assert_eq!(listing_statuses(&fake, from), [200, 200, 304]);
    assert_eq!(numbers(&listed), [6, 5, 3, 2, 1]);
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_pr_reopened_behind_a_full_last_page_is_found() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(1, PrState::Closed));
    for n in 2..=5 {
        fake.set_pull_request(pull(n, PrState::Open));
    }
    let gh = fake.builder().list_page_size(2).build().unwrap();
    assert_eq!(
        numbers(&gh.list_open_pull_requests().await.unwrap()),
        [5, 4, 3, 2]
    );
    // The oldest PR reopens: it lands behind the last page, which itself did not change.
    fake.set_pull_request(pull(1, PrState::Open));
    let from = fake.exchanges().len();
    let listed = gh.list_open_pull_requests().await.unwrap();
    assert_eq!(numbers(&listed), [5, 4, 3, 2, 1]);
    // Page 1 unchanged (304); the full last page asked without its ETag, so its new `next`
    // link shows; the new page read.
    assert_eq!(listing_statuses(&fake, from), [304, 200, 200]);
    check_exchanges(&fake);
}

#[tokio::test]
async fn the_cache_serves_one_source_only_so_a_new_one_pays_again() {
    let (fake, gh) = five_open().await;
    gh.list_open_pull_requests().await.unwrap();
    let quota = fake.quota_used();
    // A one-shot CLI run builds its client anew: nothing is cached.
    let fresh = fake.builder().list_page_size(2).build().unwrap();
    let from = fake.exchanges().len();
    fresh.list_open_pull_requests().await.unwrap();
    assert_eq!(listing_statuses(&fake, from), [200, 200, 200]);
    assert_eq!(fake.quota_used(), quota + 3);
}

#[tokio::test]
async fn the_fake_matches_weak_and_strong_forms_and_lists_of_etags() {
    let (fake, gh) = five_open().await;
    gh.list_open_pull_requests().await.unwrap();
    let client = reqwest::Client::new();
    let url = format!(
        "{}/repos/{REPOSITORY}/pulls?state=open&per_page=2",
        fake.uri()
    );
    let get = |inm: Option<String>| {
        let mut r = client
            .get(&url)
            .bearer_auth(preview_testkit::fakes::github::TOKEN);
        if let Some(v) = inm {
            r = r.header("if-none-match", v);
        }
        r.send()
    };
    let first = get(None).await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with("W/\"") && etag.len() == 2 + 1 + 64 + 1,
        "a weak SHA-256 validator: {etag}"
    );
    assert!(first.headers().contains_key("link"));
    let strong = etag.trim_start_matches("W/").to_string();
    for inm in [
        etag.clone(),
        strong,
        format!("\"other\", {etag}"),
        "*".to_string(),
    ] {
        let r = get(Some(inm.clone())).await.unwrap();
        assert_eq!(r.status(), 304, "If-None-Match: {inm}");
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
        assert!(
            !r.headers().contains_key("link"),
            "GitHub's 304 has no link"
        );
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = get(Some("W/\"other\"".into())).await.unwrap();
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Against wiremock: exactly what is sent

const LIST: &str = "/repos/acme/app/pulls";

fn wiremock_host(server: &MockServer) -> GitHubSource {
    use preview_core::http::ClientSettings;
    GitHubSource::builder()
        .token("test-token")
        .repository("acme/app")
        .base_url(server.uri())
        .identity("preview-bot")
        .retry(preview_core::RetryConfig::none())
        .without_timeouts()
        .build()
        .unwrap()
}

async fn catch_all(server: &MockServer) {
    Mock::given(any())
        .respond_with(ResponseTemplate::new(599).set_body_string("no mock matched this request"))
        .with_priority(u8::MAX)
        .mount(server)
        .await;
}

fn item(n: u64) -> serde_json::Value {
    bodies::pull_request_simple(&pull(n, PrState::Open))
}

/// Page 1 (PRs 2, 1; `etag1`) linking to page 2 (PR 3; `etag2`, or none), answered 200 once
/// each when asked without a matching `If-None-Match`.
async fn mount_pages(server: &MockServer, etag2: Option<&str>) -> String {
    let page2 = format!("{}{LIST}?state=open&per_page=100&page=2", server.uri());
    Mock::given(method("GET"))
        .and(path(LIST))
        .and(query_param("per_page", "100"))
        .and(wiremock::matchers::query_param_is_missing("page"))
        .respond_with(
            respond("GET", LIST, 200, json!([item(2), item(1)]))
                .insert_header("etag", "W/\"etag1\"")
                .insert_header("link", format!(r#"<{page2}>; rel="next""#).as_str()),
        )
        .up_to_n_times(1)
        .mount(server)
        .await;
    let mut second = respond("GET", LIST, 200, json!([item(3)]));
    if let Some(e) = etag2 {
        second = second.insert_header("etag", e);
    }
    Mock::given(method("GET"))
        .and(path(LIST))
        .and(query_param("page", "2"))
        .respond_with(second)
        .up_to_n_times(1)
        .mount(server)
        .await;
    page2
}

#[tokio::test]
async fn the_second_listing_sends_each_pages_etag_and_reuses_the_pages_on_304() {
    let server = MockServer::start().await;
    mount_pages(&server, Some("W/\"etag2\"")).await;
    for (etag, page) in [("W/\"etag1\"", None), ("W/\"etag2\"", Some("2"))] {
        let mock = Mock::given(method("GET"))
            .and(path(LIST))
            .and(header("if-none-match", etag));
        let mock = match page {
            Some(p) => mock.and(query_param("page", p)),
            None => mock.and(wiremock::matchers::query_param_is_missing("page")),
        };
        mock.respond_with(respond_empty("GET", LIST, 304).insert_header("etag", etag))
            .expect(1)
            .mount(&server)
            .await;
    }
    catch_all(&server).await;
    let gh = wiremock_host(&server);
    let first = gh.list_open_pull_requests().await.unwrap();
    assert_eq!(numbers(&first), [2, 1, 3]);
    let again = gh.list_open_pull_requests().await.unwrap();
    assert_eq!(again, first);
    let received = server.received_requests().await.unwrap();
    let inm: Vec<Option<&str>> = received
        .iter()
        .map(|r| r.headers.get("if-none-match").and_then(|v| v.to_str().ok()))
        .collect();
    assert_eq!(
        inm,
        [None, None, Some("W/\"etag1\""), Some("W/\"etag2\"")],
        "the first listing is unconditional, the second names each page's own ETag"
    );
    check_received(&server).await;
}

#[tokio::test]
async fn a_304_for_a_page_nothing_was_cached_for_is_an_error_not_an_empty_list() {
    let server = MockServer::start().await;
    // Page 2 came without an ETag, so nothing of it is cached and it is asked unconditionally;
    // a 304 to that (a broken proxy, a confused server) must not read as "no PRs there".
    mount_pages(&server, None).await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .and(header("if-none-match", "W/\"etag1\""))
        .respond_with(respond_empty("GET", LIST, 304).insert_header("etag", "W/\"etag1\""))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .and(query_param("page", "2"))
        .respond_with(respond_empty("GET", LIST, 304))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let gh = wiremock_host(&server);
    assert_eq!(
        numbers(&gh.list_open_pull_requests().await.unwrap()),
        [2, 1, 3]
    );
    let err = gh.list_open_pull_requests().await.unwrap_err();
    assert!(
        matches!(err, Error::Api { status: 304, .. }) || err.to_string().contains("304"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_304_to_a_first_listing_is_an_error_not_an_empty_list() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .respond_with(respond_empty("GET", LIST, 304))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let err = wiremock_host(&server)
        .list_open_pull_requests()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("304"), "{err}");
}
