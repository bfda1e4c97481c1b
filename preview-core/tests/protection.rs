//! Protected previews (issue 14, item 9) over the in-memory hosts: readiness and seed requests to
//! an app behind deployment protection carry its bypass header, no other request does, the secret
//! is handed to the secrets observer before any request carries it, and each way it can be
//! missing is a clear error at the right time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use preview_core::config::Config;
use preview_core::render::Inputs;
use preview_core::secrecy::SecretString;
use preview_core::testing::{
    InMemoryApps, InMemoryDatabases, InMemoryHttp, InMemorySource, PROTECTION_BYPASS_HEADER,
    RecordingHooks,
};
use preview_core::{
    DerivedSecrets, Hosts, Phase, PrNumber, Preview, ReportState, RetryConfig, SecretSource,
};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);
const BYPASS: &str = "BypassSENTINEL0123456789abcdefgh";
const FROM_ENV: &str = "EnvBypassSENTINEL0123456789abcde";
const API_ORIGIN: &str = "https://pr-42-api.preview.inkeep.com";
const THIRD_PARTY: &str = "https://hooks.example.net/seeded";
const UI_URL: &str = "https://pr-42-ui.preview.inkeep.com/api/warm";

#[derive(Clone)]
struct World {
    db: InMemoryDatabases,
    apps: InMemoryApps,
    source: InMemorySource,
    http: InMemoryHttp,
}

fn world() -> World {
    World {
        db: InMemoryDatabases::new(),
        apps: InMemoryApps::new(),
        source: InMemorySource::new("inkeep/agents"),
        http: InMemoryHttp::new(),
    }
}

fn env(k: &str) -> Option<String> {
    match k {
        "VERCEL_API_PROJECT_ID" => Some("prj_api".into()),
        "VERCEL_UI_PROJECT_ID" => Some("prj_ui".into()),
        "ANTHROPIC_API_KEY" => Some("sk-ant".into()),
        "OPENAI_API_KEY" => Some("sk-openai".into()),
        "PREVIEW_BYPASS" => Some(FROM_ENV.into()),
        _ => None,
    }
}

/// The example, with the api app's bypass source replaced by `source` (a TOML value) and two more
/// seed requests: one to a third party, one to the (unprotected) UI app.
fn config(source: &str) -> Config {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let from = "protection_bypass = \"project\"";
    assert!(
        text.contains(from),
        "the example no longer protects apps.api"
    );
    let text = text.replace(from, &format!("protection_bypass = {source}"));
    let extra = format!(
        "\n[[seed.requests]]\nname = \"notify\"\nmethod = \"POST\"\nurl = \"{THIRD_PARTY}\"\n\
         \n[[seed.requests]]\nname = \"warm ui\"\nmethod = \"GET\"\nurl = \"{UI_URL}\"\n"
    );
    let at = text
        .find("\n[report]")
        .expect("the example has a report section");
    let text = format!("{}{extra}{}", &text[..at], &text[at..]);
    let dir = std::path::Path::new(EXAMPLE).parent().unwrap();
    Config::parse(&text, "test preview.toml", dir).expect("valid config")
}

fn secrets() -> Arc<dyn SecretSource> {
    Arc::new(DerivedSecrets::new(SecretString::from("m".repeat(48))).unwrap())
}

/// What the secrets observer saw: each batch of values with the number of HTTP requests sent
/// before it.
type Observed = Arc<Mutex<Vec<(usize, Vec<String>)>>>;

fn preview(w: &World, config: Config) -> (Preview, Observed) {
    let observed: Observed = Arc::default();
    let (o, http) = (observed.clone(), w.http.clone());
    let p = Preview::new(
        config,
        Hosts {
            database: Arc::new(w.db.clone()),
            apps: Arc::new(w.apps.clone()),
            source: Arc::new(w.source.clone()),
        },
    )
    .hooks(Arc::new(RecordingHooks::new()))
    .http(Arc::new(w.http.clone()))
    .secrets(secrets())
    .env(Arc::new(env))
    .on_secrets(Arc::new(move |values: &[String]| {
        o.lock().unwrap().push((http.sent().len(), values.to_vec()));
    }))
    .retry_config(
        RetryConfig::default().backoff(Duration::from_millis(10), Duration::from_millis(100)),
    );
    (p, observed)
}

fn header_of(call: &preview_core::render::HttpCall) -> Option<String> {
    call.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(PROTECTION_BYPASS_HEADER))
        .map(|(_, v)| v.expose().to_string())
}

#[tokio::test]
async fn only_requests_to_the_protected_app_carry_its_bypass_and_it_is_observed_first() {
    let w = world();
    w.apps.protect("prj_api", Some(BYPASS));
    w.http.protect(API_ORIGIN, PROTECTION_BYPASS_HEADER, BYPASS);
    let pr = w.source.open_pr(42, "feat/x", &"a".repeat(40));
    let (p, observed) = preview(&w, config("\"project\""));
    let report = p.deploy(pr).await.expect("deployed through the wall");
    assert_eq!(report.name.as_str(), "pr-42-agents");

    let sent = w.http.sent();
    let by_url = |url: &str| {
        sent.iter()
            .filter(|c| c.url == url)
            .map(header_of)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by_url(&format!("{API_ORIGIN}/ready")),
        [Some(BYPASS.to_string())],
        "{sent:#?}"
    );
    assert_eq!(
        by_url(&format!(
            "{API_ORIGIN}/manage/tenants/default/project-full/activities-planner"
        )),
        [Some(BYPASS.to_string())]
    );
    // Neither a third party nor another app of ours gets it.
    assert_eq!(by_url(THIRD_PARTY), [None]);
    assert_eq!(by_url(UI_URL), [None]);
    assert_eq!(sent.len(), 4, "{sent:#?}");
    // The seed's own Authorization header is still there, next to the bypass.
    assert!(sent[1].headers.iter().any(|(k, _)| k == "Authorization"));

    // The observer (the CLI masks with it) learned the secret before any request carried it.
    let observed = observed.lock().unwrap().clone();
    let first = observed
        .iter()
        .find(|(_, values)| values.iter().any(|v| v == BYPASS))
        .expect("the bypass was observed");
    assert_eq!(
        first.0, 0,
        "requests were sent before the secret was observed"
    );
    assert!(
        !format!("{sent:?}").contains("SENTINEL"),
        "a secret in Debug"
    );

    // A re-deploy with nothing changed does not seed, so it does not ask for the bypass.
    w.apps.clear_calls();
    p.deploy(pr).await.expect("re-deployed");
    assert!(
        !w.apps
            .calls()
            .iter()
            .any(|c| c.op == "get_protection_bypass"),
        "{:?}",
        w.apps.calls()
    );
}

#[tokio::test]
async fn a_protected_app_without_a_bypass_fails_in_readiness_before_any_request() {
    let w = world();
    w.apps.protect("prj_api", None);
    let pr = w.source.open_pr(42, "feat/x", &"a".repeat(40));
    let (p, _) = preview(&w, config("\"project\""));
    let err = p.deploy(pr).await.expect_err("no way through");
    assert_eq!(err.phase(), Some(Phase::Readiness), "{err}");
    assert!(!err.is_config(), "things were created: not exit 2 ({err})");
    assert!(w.http.sent().is_empty(), "{:?}", w.http.sent());
    let report = w.source.report("pr-42-agents").expect("a report");
    assert!(
        matches!(&report.state, ReportState::Failed { phase, .. } if phase == "readiness"),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_bypass_from_the_environment_is_sent_and_masked_up_front() {
    let w = world();
    w.http
        .protect(API_ORIGIN, PROTECTION_BYPASS_HEADER, FROM_ENV);
    let pr = w.source.open_pr(42, "feat/x", &"a".repeat(40));
    let c = config("{ from_env = \"PREVIEW_BYPASS\" }");

    // Known before anything runs, so it is among the values the CLI masks first.
    let name = c.name(PrNumber::new(42).unwrap());
    let values = preview_core::render::secrets(&c, &name, secrets().as_ref(), &env).unwrap();
    let rendered =
        preview_core::render::render_all(&c, &name, &Inputs::default(), values, &env).unwrap();
    assert!(rendered.sensitive_values().iter().any(|v| v == FROM_ENV));

    let (p, _) = preview(&w, c);
    p.deploy(pr).await.expect("deployed");
    let sent = w.http.sent();
    assert_eq!(header_of(&sent[0]), Some(FROM_ENV.to_string()), "{sent:#?}");
    assert_eq!(
        sent.iter().filter(|c| header_of(c).is_some()).count(),
        2,
        "{sent:#?}"
    );
}

#[tokio::test]
async fn a_missing_bypass_variable_is_a_config_error_before_anything_is_touched() {
    let w = world();
    let pr = w.source.open_pr(42, "feat/x", &"a".repeat(40));
    let (p, _) = preview(&w, config("{ from_env = \"PREVIEW_BYPASS_UNSET\" }"));
    let err = p.deploy(pr).await.expect_err("missing variable");
    assert!(err.is_config(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("apps.api.protection_bypass.from_env")
            && text.contains("PREVIEW_BYPASS_UNSET"),
        "{text}"
    );
    assert_eq!(
        w.db.mutating_calls() + w.apps.mutating_calls() + w.source.mutating_calls(),
        0
    );
}

#[test]
fn bad_bypass_sources_name_the_field_and_what_is_valid() {
    for bad in [
        "\"yes\"",
        "true",
        "{ from = \"X\" }",
        "{ from_env = \"1BAD\" }",
        "[]",
    ] {
        let text = std::fs::read_to_string(EXAMPLE).unwrap().replace(
            "protection_bypass = \"project\"",
            &format!("protection_bypass = {bad}"),
        );
        let err = Config::parse(&text, "bad.toml", std::path::Path::new("."))
            .expect_err(bad)
            .to_string();
        assert!(
            err.starts_with("bad.toml:") && err.contains("apps.api.protection_bypass"),
            "{bad}: {err}"
        );
        assert!(
            err.contains("\"project\"") || err.contains("environment variable name"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn the_plan_says_which_requests_carry_a_bypass() {
    let plan = preview_core::pipeline::plan(
        &config("\"project\""),
        PrNumber::new(42).unwrap(),
        &Inputs::default(),
        &env,
    )
    .unwrap();
    let bypass: Vec<(String, Option<String>)> = plan
        .seed
        .iter()
        .map(|r| (r.id.clone(), r.detail.get("protection_bypass").cloned()))
        .collect();
    assert_eq!(
        bypass,
        [
            (
                format!("{API_ORIGIN}/ready"),
                Some("apps.api (secret read from the project)".to_string())
            ),
            (
                "activities-planner project".to_string(),
                Some("apps.api (secret read from the project)".to_string())
            ),
            ("notify".to_string(), None),
            ("warm ui".to_string(), None),
        ]
    );
}
