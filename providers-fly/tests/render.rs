//! The prototype's stack renders to the Machine config the prototype ran: the same containers,
//! images, env, health checks, ports and handlers, on shared-cpu-4x/4096 MB, with secrets as
//! references only. The stack comes from `examples/inkeep-agents/preview.toml` through
//! preview-core's config loader, and is cross-checked against the same stack built by hand from
//! the prototype's files (seed-system.md §6.4/§6.5).

mod common;

use common::*;
use preview_core::render::Inputs;
use preview_core::{Config, DatabaseSpec, PrNumber, PreviewName, SecretValues};
use providers_fly::machine::machine_config;

/// The database stack of `examples/inkeep-agents/preview.toml` for PR 42, with known secrets.
fn example_spec() -> (PreviewName, DatabaseSpec) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/inkeep-agents/preview.toml"
    );
    let config = Config::load(path).unwrap();
    let n = config.name(PrNumber::new(42).unwrap());
    let mut secrets = SecretValues::new();
    for (k, v) in [
        ("pg_password", PG_PASSWORD),
        ("spicedb_key", SPICEDB_KEY),
        ("auth_secret", "SENTINEL-auth"),
        ("bypass_secret", "SENTINEL-bypass"),
        ("admin_password", "SENTINEL-admin"),
        ("anthropic_api_key", "SENTINEL-anthropic"),
        ("openai_api_key", "SENTINEL-openai"),
    ] {
        secrets.insert(k, v.to_string().into());
    }
    let scope =
        preview_core::render::scope(&config, &n, &Inputs::default(), Some(&secrets)).unwrap();
    (
        n.clone(),
        preview_core::render::database_spec(&config, &scope).unwrap(),
    )
}

#[test]
fn the_example_renders_what_the_prototype_ran() {
    let (n, from_file) = example_spec();
    assert_eq!(n.as_str(), "pr-42-agents");
    let by_hand = prototype_spec(&n);
    // Same Machine config, fingerprint included (so the same secrets in the same places).
    assert_eq!(machine_config(&n, &from_file), machine_config(&n, &by_hand));
}

#[test]
fn prototype_stack_renders_to_the_prototype_machine_config() {
    let (n, spec) = example_spec();
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
