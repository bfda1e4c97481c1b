//! The env vars and domains produced for the prototype's two Vercel projects from
//! `examples/inkeep-agents/preview.toml`, as sent to the API (secret values redacted).

mod common;

use std::collections::BTreeSet;

use common::{SHA, check_exchanges, host};
use preview_core::render::Inputs;
use preview_core::{AppHost, Config, DerivedSecrets, PrNumber};
use serde_json::{Value, json};

const API: &str = "prj_agents_api";
const UI: &str = "prj_agents_manage_ui";

fn lookup(key: &str) -> Option<String> {
    match key {
        "VERCEL_API_PROJECT_ID" => Some(API.into()),
        "VERCEL_UI_PROJECT_ID" => Some(UI.into()),
        "ANTHROPIC_API_KEY" => Some("sk-ant-SENTINEL".into()),
        "OPENAI_API_KEY" => Some("sk-openai-SENTINEL".into()),
        _ => None,
    }
}

#[tokio::test]
async fn the_example_config_produces_the_prototype_vars_with_its_defects_fixed() {
    let config = Config::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/inkeep-agents/preview.toml"
    ))
    .expect("the example loads");
    let name = config.name(PrNumber::new(42).expect("valid"));
    let master = DerivedSecrets::new("example-master-secret-0123456789-abcdefghijklmnop".into())
        .expect("a long enough master");
    let secrets = preview_core::render::secrets(&config, &name, &master, &lookup).expect("secrets");
    let inputs = Inputs {
        repo: Some("inkeep/agents".into()),
        branch: Some("feat/login-flow".into()),
        sha: Some(SHA.into()),
    };
    let rendered = preview_core::render::render_all(&config, &name, &inputs, secrets, &lookup)
        .expect("renders");

    let fake = preview_testkit::fakes::vercel::FakeVercel::new(common::TOKEN)
        .team(common::TEAM)
        .project(API, "agents-api")
        .project(UI, "agents-manage-ui");
    let server = fake.start().await;
    let host = host(&server);
    let mut secret_keys = BTreeSet::new();
    for app in &rendered.apps {
        for v in &app.env {
            if v.value.is_secret() {
                secret_keys.insert((app.target.project.clone(), v.key.clone()));
            }
        }
        host.apply_app(&name, app).await.expect("applied");
    }
    check_exchanges(&fake.exchanges());

    // What was sent, per project, with secret values and fingerprints of secrets redacted.
    let mut sent = serde_json::Map::new();
    for x in fake.mutations() {
        let project = x.path.split('/').nth(3).unwrap_or_default().to_string();
        let mut body = x.request.clone().unwrap_or(Value::Null);
        if let Some(items) = body.as_array_mut() {
            for item in items.iter_mut() {
                let key = item["key"].as_str().unwrap_or_default().to_string();
                if secret_keys.contains(&(project.clone(), key)) {
                    item["value"] = json!("[secret]");
                }
                if let Some(c) = item["comment"].as_str() {
                    let redacted = c.split_once(" fp=").map(|(m, _)| format!("{m} fp=[fp]"));
                    item["comment"] = json!(redacted.unwrap_or_else(|| c.to_string()));
                }
            }
        }
        sent.insert(format!("{} {}", x.method, x.path), body);
    }
    let sent = Value::Object(sent);
    let text = sent.to_string();
    assert!(!text.contains("SENTINEL"), "a secret reached the snapshot");
    insta::assert_json_snapshot!("inkeep_agents_vercel_requests", sent);

    // The prototype's keys (seed-system §9.1/§9.2), plus what its defects left out.
    let keys = |project: &str| -> BTreeSet<String> {
        fake.envs(project).into_iter().map(|e| e.key).collect()
    };
    let prototype_api = [
        "INKEEP_AGENTS_MANAGE_DATABASE_URL",
        "INKEEP_AGENTS_RUN_DATABASE_URL",
        "SPICEDB_ENDPOINT",
        "SPICEDB_PRESHARED_KEY",
        "SPICEDB_TLS_ENABLED",
        "BETTER_AUTH_SECRET",
        "BETTER_AUTH_URL",
        "INKEEP_AGENTS_MANAGE_API_BYPASS_SECRET",
        "INKEEP_AGENTS_API_URL",
        "INKEEP_AGENTS_MANAGE_UI_USERNAME",
        "INKEEP_AGENTS_MANAGE_UI_PASSWORD",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "WORKFLOW_TARGET_WORLD",
    ];
    let fixed_api = [
        "INKEEP_AGENTS_MANAGE_UI_URL",
        "ENVIRONMENT",
        "NODE_ENV",
        "LOG_LEVEL",
    ];
    let want: BTreeSet<String> = prototype_api
        .iter()
        .chain(fixed_api.iter())
        .map(|s| s.to_string())
        .collect();
    assert_eq!(keys(API), want);
    let prototype_ui = [
        "INKEEP_AGENTS_API_URL",
        "NEXT_PUBLIC_INKEEP_AGENTS_API_URL",
        "PUBLIC_INKEEP_AGENTS_API_URL",
        "INKEEP_AGENTS_MANAGE_UI_USERNAME",
        "INKEEP_AGENTS_MANAGE_UI_PASSWORD",
    ];
    let want: BTreeSet<String> = prototype_ui
        .iter()
        .chain(["INKEEP_AGENTS_MANAGE_API_BYPASS_SECRET"].iter())
        .map(|s| s.to_string())
        .collect();
    assert_eq!(keys(UI), want);

    let value = |project: &str, key: &str| {
        fake.envs(project)
            .into_iter()
            .find(|e| e.key == key)
            .map(|e| (e.value, e.kind))
    };
    // X1: the admin is an email. X13: production mode.
    for p in [API, UI] {
        assert_eq!(
            value(p, "INKEEP_AGENTS_MANAGE_UI_USERNAME").map(|v| v.0),
            Some("admin@preview.inkeep.com".into())
        );
    }
    assert_eq!(
        value(API, "ENVIRONMENT").map(|v| v.0),
        Some("production".into())
    );
    assert_eq!(
        value(API, "NODE_ENV").map(|v| v.0),
        Some("production".into())
    );
    assert_eq!(
        value(API, "INKEEP_AGENTS_MANAGE_UI_URL").map(|v| v.0),
        Some("https://pr-42-ui.preview.inkeep.com".into())
    );
    assert_eq!(
        value(API, "BETTER_AUTH_SECRET").map(|v| v.1),
        Some("sensitive".into())
    );
    // X4: the domains serve the PR's branch.
    for (p, d) in [
        (API, "pr-42-api.preview.inkeep.com"),
        (UI, "pr-42-ui.preview.inkeep.com"),
    ] {
        let domains = fake.domains(p);
        assert_eq!(domains.len(), 1);
        assert_eq!(
            (domains[0].name.as_str(), domains[0].git_branch.as_deref()),
            (d, Some("feat/login-flow"))
        );
    }
}
