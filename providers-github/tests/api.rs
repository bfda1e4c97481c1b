//! The HTTP contract of the GitHub provider: wiremock mocks (bodies from GitHub's own examples,
//! validated against the spec) and the stateful fake.

mod common;

use std::time::Duration;

use preview_core::http::ClientSettings;
use preview_core::{
    Error, Idempotency, Link, Naming, Outcome, PrNumber, PrState, PreviewName, PullRequest, Report,
    ReportKind, ReportState, RetryConfig, SourceHost, retry,
};
use preview_testkit::fakes::github::{FakeGitHub, bodies};
use providers_github::{
    GitHubSource, GitHubSourceBuilder, render_comment, render_comment_with_commands,
};
use serde_json::json;
use wiremock::matchers::{any, body_json, header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{FakeGitHubExt, check_exchanges, check_received, respond, respond_empty};

const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
const SHA2: &str = "0123456789abcdef0123456789abcdef01234567";

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

fn report(n: u64, state: ReportState) -> Report {
    Report {
        name: name(n),
        pr: pr_number(n),
        branch: Some(format!("feature-{n}")),
        commit: Some(SHA.into()),
        state,
        run_url: Some("https://github.com/acme/app/actions/runs/99".into()),
        started_at: None,
        phases: vec![],
        lifetime: None,
    }
}

fn ready() -> ReportState {
    ReportState::Ready {
        links: vec![
            Link {
                label: "ui".into(),
                url: "https://pr-7-ui.preview.example.com".into(),
            },
            Link {
                label: "api".into(),
                url: "https://pr-7-api.preview.example.com".into(),
            },
        ],
    }
}

fn builder(server: &MockServer) -> GitHubSourceBuilder {
    GitHubSource::builder()
        .token("test-token")
        .repository("acme/app")
        .base_url(server.uri())
        .identity("preview-bot")
        .write_spacing(Duration::from_millis(1))
}

fn host(server: &MockServer) -> GitHubSource {
    builder(server).build().unwrap()
}

/// A host that sends every request once, to see how one answer is classified.
fn host_once(server: &MockServer) -> GitHubSource {
    builder(server).retry(RetryConfig::none()).build().unwrap()
}

/// Last: anything unmatched gets an odd status so a missing mock is obvious.
async fn catch_all(server: &MockServer) {
    Mock::given(any())
        .respond_with(ResponseTemplate::new(599).set_body_string("no mock matched this request"))
        .with_priority(u8::MAX)
        .mount(server)
        .await;
}

// ---------------------------------------------------------------------------------------------
// The validator itself

#[test]
fn non_conforming_bodies_fail_the_checks() {
    let fails = |f: fn()| std::panic::catch_unwind(f).is_err();
    // A comment without its required `body`, or with a number for it.
    assert!(fails(|| common::check_request(
        "POST",
        "/repos/a/b/issues/1/comments",
        Some(&json!({}))
    )));
    assert!(fails(|| common::check_request(
        "POST",
        "/repos/a/b/issues/1/comments",
        Some(&json!({"body": 1}))
    )));
    // A deployment status with a state GitHub does not know.
    assert!(fails(|| common::check_request(
        "POST",
        "/repos/a/b/deployments/1/statuses",
        Some(&json!({"state": "done"}))
    )));
    // A comment response missing required fields; an operation that is not described.
    assert!(fails(|| common::check_response(
        "GET",
        "/repos/a/b/issues/comments/1",
        200,
        Some(&json!({"id": 1}))
    )));
    assert!(fails(|| common::check_request(
        "GET",
        "/repos/a/b/nope",
        None
    )));
    // A deployment status whose target_url is "" (what GitHub sends, not what its spec allows).
    assert!(fails(|| {
        let mut body = bodies::deployment_status(1, 2, "success", None, None, "x");
        body["target_url"] = json!("");
        common::check_response(
            "POST",
            "/repos/a/b/deployments/2/statuses",
            201,
            Some(&body),
        );
    }));
    // An undescribed error status must still be a basic-error.
    assert!(fails(|| common::check_response(
        "GET",
        "/repos/a/b/pulls/1",
        403,
        Some(&json!({"message": 1}))
    )));
    // And the conforming ones pass.
    common::check_request(
        "POST",
        "/repos/a/b/issues/1/comments",
        Some(&json!({"body": "x"})),
    );
    common::check_response(
        "GET",
        "/repos/a/b/pulls/1",
        403,
        Some(&bodies::error("Forbidden")),
    );
}

// ---------------------------------------------------------------------------------------------
// Client and headers

#[tokio::test]
async fn requests_carry_the_headers_github_expects() {
    let server = MockServer::start().await;
    let p = "/repos/acme/app/pulls/7";
    Mock::given(method("GET"))
        .and(path(p))
        .and(header("authorization", "Bearer test-token"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header_exists("user-agent"))
        .respond_with(respond("GET", p, 200, bodies::pull_request(&pull(7))))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let pr = host(&server).get_pull_request(pr_number(7)).await.unwrap();
    assert_eq!(pr, Some(pull(7)));
    check_received(&server).await;
}

#[tokio::test]
async fn enterprise_base_urls_keep_their_path() {
    let server = MockServer::start().await;
    let p = "/api/v3/repos/acme/app/pulls/7";
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(respond(
            "GET",
            "/repos/acme/app/pulls/7",
            200,
            bodies::pull_request(&pull(7)),
        ))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let gh = GitHubSource::builder()
        .token("t")
        .repository("acme/app")
        .base_url(format!("{}/api/v3", server.uri()))
        .build()
        .unwrap();
    assert!(gh.get_pull_request(pr_number(7)).await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------
// Pull requests

#[tokio::test]
async fn pull_requests_open_closed_merged_draft_and_fork() {
    let server = MockServer::start().await;
    let mut closed = pull(2);
    closed.state = PrState::Closed;
    let mut merged = pull(3);
    merged.state = PrState::Merged;
    let mut draft = pull(4);
    draft.draft = true;
    draft.labels = vec!["preview".into(), "wip".into()];
    let mut fork = pull(5);
    fork.head_repo = Some("mallory/app".into());
    // A deleted fork (head.repo null) is covered by a unit test in host.rs: GitHub sends null,
    // but the spec does not allow it, so no conforming mock can carry it.
    let all = [pull(1), closed, merged, draft, fork];
    for pr in &all {
        let p = format!("/repos/acme/app/pulls/{}", pr.number);
        Mock::given(method("GET"))
            .and(path(p.as_str()))
            .respond_with(respond("GET", &p, 200, bodies::pull_request(pr)))
            .expect(1)
            .mount(&server)
            .await;
    }
    let missing = "/repos/acme/app/pulls/404";
    Mock::given(method("GET"))
        .and(path(missing))
        .respond_with(respond("GET", missing, 404, bodies::error("Not Found")))
        .mount(&server)
        .await;
    catch_all(&server).await;
    let gh = host(&server);
    for want in &all {
        let got = gh.get_pull_request(want.number).await.unwrap().unwrap();
        assert_eq!(&got, want);
    }
    let got = |n: u64| all[(n - 1) as usize].clone();
    assert_eq!(got(1).state, PrState::Open);
    assert!(!got(1).is_fork());
    assert_eq!(got(2).state, PrState::Closed);
    assert_eq!(got(3).state, PrState::Merged);
    assert!(got(4).draft);
    assert!(got(5).is_fork());
    assert_eq!(gh.get_pull_request(pr_number(404)).await.unwrap(), None);
    check_received(&server).await;
}

#[tokio::test]
async fn open_pull_requests_are_listed_across_three_pages_following_link_headers_exactly() {
    let server = MockServer::start().await;
    // The next links carry a cursor we could not have built ourselves: they are followed
    // verbatim, never rebuilt.
    let page2 = format!(
        "{}/repos/acme/app/pulls?state=open&per_page=100&page=2&after=Y3Vyc29yOjI%3D",
        server.uri()
    );
    let page3 = format!(
        "{}/repos/acme/app/pulls?state=open&per_page=100&page=3&after=Y3Vyc29yOjQ%3D",
        server.uri()
    );
    let list = "/repos/acme/app/pulls";
    let item = |n| bodies::pull_request_simple(&pull(n));
    Mock::given(method("GET"))
        .and(path(list))
        .and(query_param("state", "open"))
        .and(query_param("per_page", "100"))
        .and(wiremock::matchers::query_param_is_missing("page"))
        .respond_with(
            respond("GET", list, 200, json!([item(1), item(2)])).insert_header(
                "link",
                format!(r#"<{page2}>; rel="next", <{page3}>; rel="last""#).as_str(),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(list))
        .and(query_param("page", "2"))
        .respond_with(
            respond("GET", list, 200, json!([item(3), item(4)])).insert_header(
                "link",
                format!(r#"<{page3}>; rel="next", <{page3}>; rel="last""#).as_str(),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(list))
        .and(query_param("page", "3"))
        .respond_with(
            respond("GET", list, 200, json!([item(5)]))
                .insert_header("link", format!(r#"<{page2}>; rel="prev""#).as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let prs = host(&server).list_open_pull_requests().await.unwrap();
    let numbers: Vec<u32> = prs.iter().map(|p| p.number.get()).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    let received = server.received_requests().await.unwrap();
    let sent = |i: usize| {
        let u = &received[i].url;
        format!("{}{}?{}", server.uri(), u.path(), u.query().unwrap_or(""))
    };
    assert_eq!(sent(1), page2, "byte for byte");
    assert_eq!(sent(2), page3, "byte for byte");
    check_received(&server).await;
}

#[tokio::test]
async fn next_links_to_another_origin_are_not_followed_with_our_token() {
    let server = MockServer::start().await;
    let list = "/repos/acme/app/pulls";
    Mock::given(method("GET"))
        .and(path(list))
        .respond_with(
            respond(
                "GET",
                list,
                200,
                json!([bodies::pull_request_simple(&pull(1))]),
            )
            .insert_header(
                "link",
                r#"<https://evil.example.com/steal?page=2>; rel="next""#,
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let err = host(&server).list_open_pull_requests().await.unwrap_err();
    assert!(
        err.to_string().contains("outside the API base URL"),
        "{err}"
    );
}

#[tokio::test]
async fn polling_a_pull_request_is_conditional_and_304_is_served_from_the_cache() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let gh = fake.builder().build().unwrap();
    for _ in 0..5 {
        assert_eq!(
            gh.get_pull_request(pr_number(7)).await.unwrap(),
            Some(pull(7))
        );
    }
    let gets: Vec<_> = fake.exchanges();
    assert_eq!(gets.len(), 5);
    assert_eq!(gets[0].status, 200);
    assert!(gets[1..].iter().all(|e| e.status == 304), "{gets:?}");
    assert_eq!(fake.quota_used(), 1, "a 304 costs no quota");
    // A change is seen at once.
    let mut changed = pull(7);
    changed.state = PrState::Merged;
    fake.set_pull_request(changed.clone());
    assert_eq!(
        gh.get_pull_request(pr_number(7)).await.unwrap(),
        Some(changed)
    );
    assert_eq!(fake.quota_used(), 2);
    check_exchanges(&fake);
}

#[tokio::test]
async fn conditional_requests_send_the_etag_they_were_given() {
    let server = MockServer::start().await;
    let p = "/repos/acme/app/pulls/7";
    Mock::given(method("GET"))
        .and(path(p))
        .and(header("if-none-match", "\"abc\""))
        .respond_with(respond_empty("GET", p, 304).insert_header("etag", "\"abc\""))
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            respond("GET", p, 200, bodies::pull_request(&pull(7))).insert_header("etag", "\"abc\""),
        )
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let gh = host(&server);
    let first = gh.get_pull_request(pr_number(7)).await.unwrap();
    let second = gh.get_pull_request(pr_number(7)).await.unwrap();
    assert_eq!(first, second);
}

// ---------------------------------------------------------------------------------------------
// The sticky comment

#[tokio::test]
async fn the_comment_is_created_then_updated_in_place() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let gh = fake.builder().build().unwrap();
    assert_eq!(gh.get_report(&name(7), pr_number(7)).await.unwrap(), None);

    let deploying = report(7, ReportState::Deploying);
    assert_eq!(
        gh.publish_report(&deploying).await.unwrap(),
        Outcome::Created
    );
    let first = fake.comments(7);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].author, "preview-bot");

    assert_eq!(
        gh.publish_report(&report(7, ready())).await.unwrap(),
        Outcome::Updated
    );
    let second = fake.comments(7);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first[0].id, "same comment, edited");
    assert!(second[0].body.contains("is ready"));

    let summary = gh
        .get_report(&name(7), pr_number(7))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.kind, ReportKind::Ready);
    assert_eq!(summary.commit.as_deref(), Some(SHA));
    check_exchanges(&fake);
}

#[tokio::test]
async fn publishing_the_same_report_twice_writes_nothing_the_second_time() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let gh = fake.builder().build().unwrap();
    for state in [
        ReportState::Deploying,
        ready(),
        ReportState::Failed {
            phase: "database".into(),
            error: "boom".into(),
        },
        ReportState::TornDown,
    ] {
        let r = report(7, state);
        assert_ne!(gh.publish_report(&r).await.unwrap(), Outcome::Unchanged);
        let writes = fake.writes().len();
        assert_eq!(gh.publish_report(&r).await.unwrap(), Outcome::Unchanged);
        assert_eq!(fake.writes().len(), writes, "no mutating call on a re-run");
    }
    check_exchanges(&fake);
}

#[tokio::test]
async fn an_unchanged_comment_makes_no_patch_on_plain_mocks() {
    let server = MockServer::start().await;
    let r = Report {
        commit: None,
        ..report(7, ReportState::Deploying)
    };
    let list = "/repos/acme/app/issues/7/comments";
    Mock::given(method("GET"))
        .and(path(list))
        .respond_with(respond(
            "GET",
            list,
            200,
            json!([bodies::issue_comment(
                1,
                7,
                "preview-bot",
                &render_comment(&r)
            )]),
        ))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    catch_all(&server).await;
    assert_eq!(
        host(&server).publish_report(&r).await.unwrap(),
        Outcome::Unchanged
    );
    check_received(&server).await;
}

#[tokio::test]
async fn a_marker_comment_by_another_author_is_left_alone() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let pasted = format!("<!-- preview:env=pr-7-agents state=ready sha={SHA2} -->\nlooks legit");
    let theirs = fake.add_comment(7, "mallory", &pasted);
    let gh = fake.builder().build().unwrap();
    assert_eq!(
        gh.get_report(&name(7), pr_number(7)).await.unwrap(),
        None,
        "not trusted"
    );
    assert_eq!(
        gh.publish_report(&report(7, ReportState::Deploying))
            .await
            .unwrap(),
        Outcome::Created
    );
    let comments = fake.comments(7);
    assert_eq!(comments.len(), 2);
    let mallory = comments.iter().find(|c| c.id == theirs).unwrap();
    assert_eq!(mallory.body, pasted, "never edited");
    assert!(
        fake.writes()
            .iter()
            .all(|w| !w.path.ends_with(&format!("/comments/{theirs}")))
    );
    // A comment of ours for another environment is not ours for this one either.
    fake.add_comment(
        7,
        "preview-bot",
        "<!-- preview:env=pr-77-agents state=ready -->\n",
    );
    assert_eq!(
        gh.get_report(&name(7), pr_number(7))
            .await
            .unwrap()
            .unwrap()
            .kind,
        ReportKind::Deploying
    );
    check_exchanges(&fake);
}

#[tokio::test]
async fn duplicate_comments_of_ours_are_removed_keeping_the_oldest() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let marker = "<!-- preview:env=pr-7-agents state=deploying -->\nold";
    let oldest = fake.add_comment(7, "preview-bot", marker);
    let _dup = fake.add_comment(7, "preview-bot", marker);
    let theirs = fake.add_comment(7, "mallory", marker);
    let gh = fake.builder().build().unwrap();
    assert_eq!(
        gh.publish_report(&report(7, ReportState::Deploying))
            .await
            .unwrap(),
        Outcome::Updated
    );
    let ids: Vec<u64> = fake.comments(7).iter().map(|c| c.id).collect();
    assert_eq!(ids, [oldest, theirs]);
    assert_eq!(
        gh.publish_report(&report(7, ReportState::Deploying))
            .await
            .unwrap(),
        Outcome::Unchanged
    );
    check_exchanges(&fake);
}

#[tokio::test]
async fn our_comment_is_found_on_a_later_page() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    for i in 0..150 {
        fake.add_comment(7, "someone", &format!("comment {i}"));
    }
    let gh = fake.builder().build().unwrap();
    assert_eq!(
        gh.publish_report(&report(7, ReportState::Deploying))
            .await
            .unwrap(),
        Outcome::Created
    );
    assert_eq!(
        gh.publish_report(&report(7, ready())).await.unwrap(),
        Outcome::Updated
    );
    assert_eq!(fake.comments(7).len(), 151);
    let pages = fake
        .exchanges()
        .into_iter()
        .filter(|e| e.method == "GET" && e.path.ends_with("/issues/7/comments"))
        .count();
    assert!(pages >= 4, "two lookups of two pages each, got {pages}");
    check_exchanges(&fake);
}

#[tokio::test]
async fn with_the_actions_token_comments_are_the_bots() {
    let fake = FakeGitHub::start().await;
    fake.act_as_actions_token();
    fake.set_pull_request(pull(7));
    // No configured identity: GET /user is forbidden, so github-actions[bot] is assumed.
    let gh = fake.builder().build().unwrap();
    assert_eq!(
        gh.publish_report(&report(7, ReportState::Deploying))
            .await
            .unwrap(),
        Outcome::Created
    );
    assert_eq!(fake.comments(7)[0].author, "github-actions[bot]");
    assert_eq!(
        gh.publish_report(&report(7, ReportState::Deploying))
            .await
            .unwrap(),
        Outcome::Unchanged
    );
    let user_calls = fake
        .exchanges()
        .iter()
        .filter(|e| e.path == "/user")
        .count();
    assert_eq!(user_calls, 1, "the identity is asked once");
    check_exchanges(&fake);
}

#[test]
fn comment_states_render() {
    let mut failed = report(
        7,
        ReportState::Failed {
            phase: "database".into(),
            error: "fly: API error (HTTP 422): name taken (request id 01ABC)\nsecond line".into(),
        },
    );
    failed.run_url = Some("https://github.com/acme/app/actions/runs/99".into());
    insta::assert_snapshot!(
        "deploying",
        render_comment(&report(7, ReportState::Deploying))
    );
    insta::assert_snapshot!("ready", render_comment(&report(7, ready())));
    insta::assert_snapshot!("failed", render_comment(&failed));
    insta::assert_snapshot!(
        "torn_down",
        render_comment(&report(7, ReportState::TornDown))
    );
}

/// The lifetime lines name `/preview keep`, `extend` and `wake` when the commands are on, and
/// the keep label and a push when they are off; a kept preview says so instead of an expiry.
#[test]
fn lifetime_lines_name_the_commands_when_on_and_the_label_otherwise() {
    let at = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
    let lifetime = preview_core::Lifetime {
        expires_at: Some(at(7 * 86_400)),
        sleeps_at: Some(at(86_400)),
        kept: false,
        keep_label: "preview:keep".into(),
        cost: Some(preview_core::CostEstimate {
            currency: "USD".into(),
            so_far_cents: 81,
            per_day_running_cents: 81,
            per_day_sleeping_cents: 7,
            prices_dated: "2024-04".into(),
        }),
    };
    let commands = preview_core::command::help_lines();
    let mut ready = report(7, ready());
    ready.lifetime = Some(lifetime.clone());
    insta::assert_snapshot!(
        "ready_lifetime_commands",
        render_comment_with_commands(&ready, &commands)
    );
    insta::assert_snapshot!("ready_lifetime_label", render_comment(&ready));
    let mut kept = ready.clone();
    kept.lifetime = Some(preview_core::Lifetime {
        kept: true,
        expires_at: None,
        ..lifetime.clone()
    });
    let text = render_comment_with_commands(&kept, &commands);
    assert!(
        text.contains(
            "Kept: the label <code>preview&#58;keep</code> exempts it from expiry and eviction."
        ),
        "{text}"
    );
    assert!(!text.contains("Expires"), "{text}");
    let mut sleeping = report(
        7,
        ReportState::Sleeping {
            suspended: false,
            links: vec![],
        },
    );
    sleeping.lifetime = Some(preview_core::Lifetime {
        sleeps_at: None,
        ..lifetime
    });
    insta::assert_snapshot!(
        "sleeping_commands",
        render_comment_with_commands(&sleeping, &commands)
    );
    let plain = render_comment(&sleeping);
    assert!(plain.contains("Push a commit to wake it."), "{plain}");
    assert!(
        plain.contains(
            "Add the label <code>preview&#58;keep</code> to keep it; a push restarts the clock."
        ),
        "{plain}"
    );
    assert!(!plain.contains("/preview"), "{plain}");
}

#[test]
fn hostile_branch_titles_and_errors_are_rendered_inert() {
    let hostile = "x`y` **bold** <img src=x onerror=alert(1)> [click](https://evil.example) \
                   \n::add-mask::secret\n::error title=pwn::owned @everyone | |";
    let mut r = report(
        7,
        ReportState::Failed {
            phase: hostile.into(),
            error: hostile.into(),
        },
    );
    r.branch = Some(hostile.into());
    r.commit = Some(hostile.into());
    r.run_url = Some("javascript:alert(1)".into());
    let body = render_comment(&r);
    for bad in [
        "`y`",
        "**bold**",
        "<img",
        "[click]",
        "::add-mask::",
        "::error",
        "@everyone",
        "javascript:",
        "@everyone |",
    ] {
        assert!(!body.contains(bad), "{bad:?} survived:\n{body}");
    }
    // Only our own marker line is an HTML comment, and the headline is ours.
    assert_eq!(body.matches("<!--").count(), 1);
    let first = body.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "<!-- preview:env=pr-7-agents state=failed digest={} -->",
            r.digest()
        )
    );
    insta::assert_snapshot!("hostile", body);
}

// ---------------------------------------------------------------------------------------------
// Deployments

#[tokio::test]
async fn deployments_and_statuses_follow_deploy_and_teardown() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let gh = fake.builder().build().unwrap();

    gh.publish_report(&report(7, ReportState::Deploying))
        .await
        .unwrap();
    let d = fake.deployments();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].sha, SHA);
    assert_eq!(d[0].environment, "preview/pr-7");
    assert_eq!(d[0].statuses.len(), 1);
    assert_eq!(d[0].statuses[0].state, "in_progress");
    assert_eq!(fake.environments(), ["preview/pr-7"]);

    gh.publish_report(&report(7, ready())).await.unwrap();
    let d = fake.deployments();
    assert_eq!(d.len(), 1, "same commit, same deployment");
    let last = d[0].statuses.last().unwrap();
    assert_eq!(last.state, "success");
    assert_eq!(
        last.environment_url.as_deref(),
        Some("https://pr-7-ui.preview.example.com/")
    );
    assert_eq!(
        last.log_url.as_deref(),
        Some("https://github.com/acme/app/actions/runs/99")
    );

    // A new commit gets its own deployment.
    let mut next = report(7, ReportState::Deploying);
    next.commit = Some(SHA2.into());
    gh.publish_report(&next).await.unwrap();
    assert_eq!(fake.deployments().len(), 2);

    gh.publish_report(&report(7, ReportState::TornDown))
        .await
        .unwrap();
    for d in fake.deployments() {
        assert_eq!(d.statuses.last().unwrap().state, "inactive", "{d:?}");
    }
    assert!(fake.environments().is_empty(), "the environment is deleted");

    let writes: Vec<String> = fake
        .writes()
        .iter()
        .map(|w| format!("{} {}", w.method, w.path))
        .collect();
    insta::assert_debug_snapshot!("deployment_writes", writes);
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_failed_deploy_marks_the_deployment_failed() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let gh = fake.builder().build().unwrap();
    gh.publish_report(&report(7, ReportState::Deploying))
        .await
        .unwrap();
    gh.publish_report(&report(
        7,
        ReportState::Failed {
            phase: "hooks".into(),
            error: "migrate exited with 1".into(),
        },
    ))
    .await
    .unwrap();
    let d = fake.deployments();
    let last = d[0].statuses.last().unwrap();
    assert_eq!(last.state, "failure");
    assert_eq!(last.description, "Failed in hooks: migrate exited with 1");
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_failure_before_any_deployment_creates_none() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let gh = fake.builder().build().unwrap();
    let failed = report(
        7,
        ReportState::Failed {
            phase: "observe".into(),
            error: "fork PRs are not deployed".into(),
        },
    );
    assert_eq!(gh.publish_report(&failed).await.unwrap(), Outcome::Created);
    assert!(fake.deployments().is_empty());
    assert_eq!(fake.comments(7).len(), 1);
    check_exchanges(&fake);
}

#[tokio::test]
async fn deployment_requests_are_what_github_documents() {
    let server = MockServer::start().await;
    let comments = "/repos/acme/app/issues/7/comments";
    let deployments = "/repos/acme/app/deployments";
    let statuses = "/repos/acme/app/deployments/42/statuses";
    Mock::given(method("GET"))
        .and(path(comments))
        .respond_with(respond("GET", comments, 200, json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(comments))
        .respond_with(respond(
            "POST",
            comments,
            201,
            bodies::issue_comment(1, 7, "preview-bot", "x"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(deployments))
        .and(query_param("sha", SHA))
        .and(query_param("environment", "preview/pr-7"))
        .respond_with(respond("GET", deployments, 200, json!([])))
        // Looked up before the create, and once after it: a run that created a deployment
        // alongside another keeps the older one (here, a plain mock: still none listed).
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(deployments))
        .and(body_json(json!({
            "ref": SHA,
            "task": "deploy",
            "auto_merge": false,
            "required_contexts": [],
            "environment": "preview/pr-7",
            "description": "Preview environment pr-7-agents",
            "transient_environment": true,
            "production_environment": false,
        })))
        .respond_with(respond(
            "POST",
            deployments,
            201,
            bodies::deployment(42, SHA, "preview/pr-7", "Preview environment pr-7-agents"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(statuses))
        .respond_with(respond(
            "POST",
            statuses,
            201,
            bodies::deployment_status(
                9,
                42,
                "success",
                Some("https://pr-7-ui.preview.example.com/"),
                Some("https://github.com/acme/app/actions/runs/99"),
                "Preview environment ready",
            ),
        ))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    assert_eq!(
        host(&server)
            .publish_report(&report(7, ready()))
            .await
            .unwrap(),
        Outcome::Created
    );
    let received = server.received_requests().await.unwrap();
    let status_body: serde_json::Value = received
        .iter()
        .find(|r| r.url.path() == statuses)
        .unwrap()
        .body_json()
        .unwrap();
    insta::assert_json_snapshot!("status_body", status_body);
    check_received(&server).await;
}

#[tokio::test]
async fn environment_delete_403_is_tolerated() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    fake.forbid_environment_delete();
    let gh = fake.builder().build().unwrap();
    gh.publish_report(&report(7, ReportState::Deploying))
        .await
        .unwrap();
    assert_eq!(
        gh.publish_report(&report(7, ReportState::TornDown))
            .await
            .unwrap(),
        Outcome::Updated
    );
    assert_eq!(
        fake.environments(),
        ["preview/pr-7"],
        "still there, and that is fine"
    );
    assert_eq!(
        fake.deployments()[0].statuses.last().unwrap().state,
        "inactive"
    );
    let deletes = fake
        .writes()
        .iter()
        .filter(|w| w.method == "DELETE")
        .count();
    assert_eq!(deletes, 1);
    // The delete is not repeated on a re-run.
    assert_eq!(
        gh.publish_report(&report(7, ReportState::TornDown))
            .await
            .unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(
        fake.writes()
            .iter()
            .filter(|w| w.method == "DELETE")
            .count(),
        1
    );
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_202_instead_of_a_deployment_is_a_conflict() {
    let server = MockServer::start().await;
    let deployments = "/repos/acme/app/deployments";
    Mock::given(method("GET"))
        .and(path(deployments))
        .respond_with(respond("GET", deployments, 200, json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(deployments))
        .respond_with(respond(
            "POST",
            deployments,
            202,
            json!({"message": "Auto-merged master into topic-branch on deployment."}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let comments = "/repos/acme/app/issues/7/comments";
    Mock::given(method("GET"))
        .and(path(comments))
        .respond_with(respond("GET", comments, 200, json!([])))
        .mount(&server)
        .await;
    // The first comment comes before the first deployment.
    Mock::given(method("POST"))
        .and(path(comments))
        .respond_with(respond(
            "POST",
            comments,
            201,
            bodies::issue_comment(
                104,
                7,
                "preview-bot",
                "<!-- preview:env=pr-7 state=deploying -->",
            ),
        ))
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let err = host(&server)
        .publish_report(&report(7, ReportState::Deploying))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    check_received(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Rate limits, retries and pacing

fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[tokio::test]
async fn primary_rate_limit_waits_until_reset() {
    let server = MockServer::start().await;
    let p = "/repos/acme/app/pulls/7";
    let reset = now_secs() + 1;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            respond(
                "GET",
                p,
                403,
                bodies::error("API rate limit exceeded for installation."),
            )
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset", reset.to_string().as_str()),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(respond("GET", p, 200, bodies::pull_request(&pull(7))))
        .mount(&server)
        .await;
    catch_all(&server).await;
    let gh = host(&server);
    let start = tokio::time::Instant::now();
    let pr = retry(
        &RetryConfig::default(),
        "get PR",
        Idempotency::Idempotent,
        || gh.get_pull_request(pr_number(7)),
    )
    .await
    .unwrap();
    assert_eq!(pr, Some(pull(7)));
    assert!(
        jiff::Timestamp::now().as_second() >= reset,
        "the second request was sent after the reset"
    );
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn primary_rate_limit_error_carries_the_wait() {
    let server = MockServer::start().await;
    let p = "/repos/acme/app/pulls/7";
    let reset = now_secs() + 120;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            respond("GET", p, 429, bodies::error("API rate limit exceeded"))
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str()),
        )
        .mount(&server)
        .await;
    let err = host_once(&server)
        .get_pull_request(pr_number(7))
        .await
        .unwrap_err();
    let Error::RateLimited {
        retry_after: Some(wait),
        request_id,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!((119..=122).contains(&wait.as_secs()), "{wait:?}");
    assert_eq!(request_id.as_deref(), Some("MOCK:1"));
}

#[tokio::test]
async fn secondary_rate_limit_honours_retry_after() {
    let server = MockServer::start().await;
    let p = "/repos/acme/app/pulls/7";
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            respond(
                "GET",
                p,
                403,
                bodies::error("You have exceeded a secondary rate limit. Please wait a few minutes before you try again."),
            )
            .insert_header("retry-after", "1"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(respond("GET", p, 200, bodies::pull_request(&pull(7))))
        .mount(&server)
        .await;
    catch_all(&server).await;
    let gh = host(&server);
    let start = tokio::time::Instant::now();
    let pr = retry(
        &RetryConfig::default(),
        "get PR",
        Idempotency::Idempotent,
        || gh.get_pull_request(pr_number(7)),
    )
    .await
    .unwrap();
    assert!(pr.is_some());
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_secondary_limit_without_retry_after_asks_for_a_minute() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    fake.fail_next(
        403,
        &[],
        bodies::error("You have exceeded a secondary rate limit."),
    );
    let err = fake
        .builder()
        .retry(RetryConfig::none())
        .build()
        .unwrap()
        .get_pull_request(pr_number(7))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)), "{err}");
    assert!(err.to_string().contains("FAKE:"), "request id in {err}");
    check_exchanges(&fake);
}

#[tokio::test]
async fn a_plain_403_is_not_retried() {
    let server = MockServer::start().await;
    let p = "/repos/acme/app/pulls/7";
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            respond(
                "GET",
                p,
                403,
                bodies::error("Resource not accessible by integration"),
            )
            .insert_header("x-ratelimit-remaining", "4999"),
        )
        .expect(1)
        .mount(&server)
        .await;
    catch_all(&server).await;
    let gh = host(&server);
    let err = retry(
        &RetryConfig::default(),
        "get PR",
        Idempotency::Idempotent,
        || gh.get_pull_request(pr_number(7)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("MOCK:1"), "{err}");
}

/// On a paused tokio clock (the fake's builder has no client timeouts, so nothing but our own
/// waits moves virtual time), every write waits a full second after the previous one.
#[tokio::test(start_paused = true)]
async fn writes_are_spaced_a_second_apart_on_tokio_time() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let gh = fake
        .builder()
        .write_spacing(Duration::from_secs(1))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    for _ in 0..3 {
        gh.publish_report(&report(7, ReportState::Deploying))
            .await
            .unwrap();
        gh.publish_report(&report(7, ready())).await.unwrap();
    }
    // Deploying: deployment, status, comment; ready: status, comment; then four more pairs of
    // writes for the flip-flops: 3 + 2 + 4 * 2 = 13 writes, 12 gaps.
    let writes = fake.writes().len() as u64;
    assert_eq!(writes, 13);
    assert_eq!(
        start.elapsed().as_secs(),
        writes - 1,
        "exactly one second per gap"
    );
    check_exchanges(&fake);
}

/// The pipeline's retry waits until the primary limit resets, in virtual time.
#[tokio::test(start_paused = true)]
async fn primary_rate_limit_wait_on_tokio_time() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let reset = (now_secs() + 60).to_string();
    fake.fail_next(
        403,
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", reset.as_str()),
        ],
        bodies::error("API rate limit exceeded for installation ID 1."),
    );
    let gh = fake.builder().build().unwrap();
    let start = tokio::time::Instant::now();
    let pr = retry(
        &RetryConfig::default(),
        "get PR",
        Idempotency::Idempotent,
        || gh.get_pull_request(pr_number(7)),
    )
    .await
    .unwrap();
    assert_eq!(pr, Some(pull(7)));
    let waited = start.elapsed();
    assert!((60..=62).contains(&waited.as_secs()), "{waited:?}");
    assert_eq!(fake.exchanges().len(), 2);
    check_exchanges(&fake);
}

#[tokio::test]
async fn concurrent_publishes_never_write_at_the_same_time() {
    let fake = FakeGitHub::start().await;
    for n in 1..=3 {
        fake.set_pull_request(pull(n));
    }
    let spacing = Duration::from_millis(200);
    let gh = fake.builder().write_spacing(spacing).build().unwrap();
    let reports: Vec<Report> = (1..=3).map(|n| report(n, ReportState::Deploying)).collect();
    let (a, b, c) = tokio::join!(
        gh.publish_report(&reports[0]),
        gh.publish_report(&reports[1]),
        gh.publish_report(&reports[2]),
    );
    for r in [a, b, c] {
        assert_eq!(r.unwrap(), Outcome::Created);
    }
    let writes = fake.writes();
    assert_eq!(writes.len(), 9);
    for pair in writes.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        // The fake timestamps on receipt; allow a little scheduling jitter below the spacing.
        assert!(
            gap >= spacing - Duration::from_millis(20),
            "{gap:?} between writes"
        );
    }
    check_exchanges(&fake);
}

// ---------------------------------------------------------------------------------------------
// Secrets

#[tokio::test]
async fn the_token_never_appears_in_errors_or_debug() {
    const SENTINEL: &str = "ghp_SENTINEL_0123456789abcdef";
    let server = MockServer::start().await;
    let p = "/repos/acme/app/pulls/7";
    // Every error path: an HTTP error and a transport error.
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(respond("GET", p, 401, bodies::error("Bad credentials")))
        .mount(&server)
        .await;
    catch_all(&server).await;
    let gh = GitHubSource::builder()
        .token(SENTINEL)
        .repository("acme/app")
        .base_url(server.uri())
        .build()
        .unwrap();
    let err = gh.get_pull_request(pr_number(7)).await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err}"
    );
    let transport = GitHubSource::builder()
        .token(SENTINEL)
        .repository("acme/app")
        .base_url("http://127.0.0.1:9")
        .retry(RetryConfig::none())
        .build()
        .unwrap()
        .get_pull_request(pr_number(7))
        .await
        .unwrap_err();
    for text in [
        format!("{err}"),
        format!("{err:?}"),
        format!("{transport}"),
        format!("{transport:?}"),
        format!("{gh:?}"),
        format!("{gh}"),
    ] {
        assert!(!text.contains("SENTINEL"), "{text}");
    }
    // The header was sent, so it is the formatting that hides it.
    let sent = server.received_requests().await.unwrap();
    assert_eq!(
        sent[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("Bearer {SENTINEL}")
    );
}

#[tokio::test]
async fn credentials_in_link_urls_never_reach_github() {
    let fake = FakeGitHub::start().await;
    fake.set_pull_request(pull(7));
    let gh = fake.builder().build().unwrap();
    let mut r = report(
        7,
        ReportState::Ready {
            links: vec![Link {
                label: "db admin".into(),
                url: "https://admin:SENTINEL-PW@pr-7-admin.preview.example.com/".into(),
            }],
        },
    );
    r.run_url = Some("https://ci:SENTINEL-PW@github.com/acme/app/actions/runs/99".into());
    gh.publish_report(&r).await.unwrap();
    let sent: Vec<String> = fake
        .exchanges()
        .iter()
        .filter_map(|e| e.request.as_ref().map(|b| b.to_string()))
        .collect();
    assert!(!sent.is_empty());
    for body in &sent {
        assert!(!body.contains("SENTINEL"), "{body}");
    }
    let status = fake.deployments()[0].statuses[0].clone();
    assert_eq!(
        status.environment_url.as_deref(),
        Some("https://pr-7-admin.preview.example.com/")
    );
    check_exchanges(&fake);
}

/// The fake (in the test kit, which cannot depend on this crate) authors the Actions token's
/// writes as the name the client trusts.
#[test]
fn the_fake_and_the_client_agree_on_the_actions_bot() {
    assert_eq!(
        preview_testkit::fakes::github::ACTIONS_BOT,
        providers_github::ACTIONS_BOT
    );
}
