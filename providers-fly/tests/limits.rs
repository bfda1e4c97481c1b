//! The fake's boot time (a held `/wait`) and its rate-limit accounting.

use std::time::Duration;

use preview_testkit::fakes::fly::{FakeFly, RateLimits};
use serde_json::{Value, json};

const TOKEN: &str = "t";

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_booting_machine_reads_starting_until_the_wait_returns() {
    let (server, fake) = FakeFly::start("acme", TOKEN).await;
    fake.set_boot_time(Some(Duration::from_millis(300)));
    let base = format!("{}/v1/apps", server.uri());
    let (s, _) = call(
        reqwest::Method::POST,
        base.clone(),
        Some(json!({"name": "a1", "org_slug": "acme"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, m) = call(
        reqwest::Method::POST,
        format!("{base}/a1/machines"),
        Some(json!({"config": {"image": "x"}})),
    )
    .await;
    assert_eq!(s, 200);
    let id = m["id"].as_str().unwrap().to_string();
    let (_, m) = call(
        reqwest::Method::GET,
        format!("{base}/a1/machines/{id}"),
        None,
    )
    .await;
    assert_eq!(m["state"], "starting");
    let (s, w) = call(
        reqwest::Method::GET,
        format!("{base}/a1/machines/{id}/wait?state=started&timeout=30"),
        None,
    )
    .await;
    assert_eq!((s, w["state"].as_str()), (200, Some("started")));
    let (_, m) = call(
        reqwest::Method::GET,
        format!("{base}/a1/machines/{id}"),
        None,
    )
    .await;
    assert_eq!(m["state"], "started");
}

#[tokio::test]
async fn a_fourth_action_in_a_burst_is_refused_and_counted() {
    let (server, fake) = FakeFly::start("acme", TOKEN).await;
    // 1 req/s per action and app, burst 3; scaled so slowly that no token comes back meanwhile.
    fake.enforce_rate_limits(RateLimits { time_scale: 1000.0 });
    let base = format!("{}/v1/apps", server.uri());
    call(
        reqwest::Method::POST,
        base.clone(),
        Some(json!({"name": "a1", "org_slug": "acme"})),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (s, _) = call(
            reqwest::Method::GET,
            format!("{base}/a1/ip_assignments"),
            None,
        )
        .await;
        statuses.push(s);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(fake.rate_limit_violations(), 1);
}
