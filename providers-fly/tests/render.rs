//! The prototype's stack (seed-system.md §6.4/§6.5, built by hand until the config loader can
//! read `examples/inkeep-agents/preview.toml`) renders to the Machine config the prototype ran:
//! the same containers, images, env, health checks, ports and handlers, on shared-cpu-4x/4096 MB,
//! with secrets as references only.

mod common;

use common::*;
use providers_fly::config::machine_config;

#[test]
fn prototype_stack_renders_to_the_prototype_machine_config() {
    let n = name(42);
    let spec = prototype_spec(&n);
    let config = machine_config(&n, &spec);
    // Secret values never appear; the fingerprint is a digest that changes with them.
    let text = config.to_string();
    assert!(!text.contains(PG_PASSWORD) && !text.contains(SPICEDB_KEY));
    // The request that carries it conforms to the spec.
    spec::check_request(
        "POST",
        "/v1/apps/pr-42-agents/machines",
        &serde_json::json!({"name": "pr-42-agents", "region": "iad", "config": config}),
    )
    .unwrap();
    insta::assert_json_snapshot!(config, {
        ".metadata.preview_fingerprint" => "[fingerprint]",
    });
}

#[test]
fn the_fingerprint_follows_secret_values() {
    let n = name(42);
    let a = prototype_spec(&n);
    let mut b = prototype_spec(&n);
    b.containers[1].env.insert(
        "POSTGRES_PASSWORD".into(),
        preview_core::Value::Secret("another".to_string().into()),
    );
    let (ca, cb) = (machine_config(&n, &a), machine_config(&n, &b));
    assert_ne!(
        ca["metadata"]["preview_fingerprint"],
        cb["metadata"]["preview_fingerprint"]
    );
    // Only the fingerprint differs: the value itself is a reference in both.
    assert_eq!(ca["containers"], cb["containers"]);
}

#[test]
fn apps_get_public_urls_with_sslmode_require_and_encoded_credentials() {
    let n = name(42);
    let spec = prototype_spec(&n);
    let creds: Vec<_> = spec
        .services
        .iter()
        .map(|s| s.credentials.as_ref())
        .collect();
    let urls: Vec<String> = spec
        .endpoints()
        .iter()
        .zip(creds)
        .map(|(e, c)| {
            let v = e.url(c);
            assert_eq!(v.is_secret(), c.is_some(), "{}", e.service);
            v.expose().replace(PG_PASSWORD, "[pg-password]")
        })
        .collect();
    insta::assert_debug_snapshot!(urls, @r#"
    [
        "postgresql://appuser:[pg-password]@pr-42-agents.fly.dev:5432/inkeep_agents?sslmode=require",
        "postgresql://appuser:[pg-password]@pr-42-agents.fly.dev:5433/inkeep_agents?sslmode=require",
        "pr-42-agents.fly.dev:50051",
        "https://pr-42-agents.fly.dev:8443",
    ]
    "#);
}
