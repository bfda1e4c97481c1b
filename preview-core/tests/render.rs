//! Plan and deploy render an environment in one walk over the configuration
//! (`render::render_plan` and `render::render_all`): what a plan shows is what deploy sends, with
//! placeholders where deploy has secrets.

use preview_core::render::{self, Inputs, Rendered};
use preview_core::secrecy::SecretString;
use preview_core::{Config, DerivedSecrets, PrNumber, Value};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/inkeep-agents/preview.toml"
);

fn env_lookup(k: &str) -> Option<String> {
    match k {
        "VERCEL_API_PROJECT_ID" => Some("prj_api".into()),
        "VERCEL_UI_PROJECT_ID" => Some("prj_ui".into()),
        "ANTHROPIC_API_KEY" => Some("SENTINEL-anthropic-key-value".into()),
        "OPENAI_API_KEY" => Some("SENTINEL-openai-key-value".into()),
        _ => None,
    }
}

/// Both renderings of the example for PR 42, everything but the secrets known.
fn both() -> (Rendered, Rendered) {
    let config = Config::load(EXAMPLE).unwrap();
    let name = config.name(PrNumber::new(42).unwrap());
    let inputs = Inputs {
        repo: Some("inkeep/agents".into()),
        branch: Some("feature/login".into()),
        sha: Some("1111111111111111111111111111111111111111".into()),
    };
    let source = DerivedSecrets::new(SecretString::from("m".repeat(48))).unwrap();
    let secrets = render::secrets(&config, &name, &source, &env_lookup).unwrap();
    let deploy = render::render_all(&config, &name, &inputs, secrets, &env_lookup).unwrap();
    let plan = render::render_plan(&config, &name, &inputs, &env_lookup).unwrap();
    (deploy, plan)
}

/// A value deploy sends and the plan's rendering of the same field: the same text when no
/// secret goes into it; a secret in both when one does, the plan's a placeholder.
fn same(what: &str, sent: &Value, shown: &Value) {
    assert_eq!(sent.is_secret(), shown.is_secret(), "{what}");
    if sent.is_secret() {
        assert!(shown.expose().contains("<secret:"), "{what}: {shown:?}");
        assert!(!shown.expose().contains(sent.expose()), "{what}");
    } else {
        assert_eq!(sent.expose(), shown.expose(), "{what}");
    }
}

#[test]
fn a_plan_renders_every_field_deploy_sends_with_secrets_as_placeholders() {
    let (deploy, plan) = both();
    assert_eq!(plan.name, deploy.name);
    assert_eq!(plan.commit, deploy.commit);
    assert_eq!(plan.database.public_host, deploy.database.public_host);
    assert_eq!(
        plan.database.containers.len(),
        deploy.database.containers.len()
    );
    let mut secrets = 0;
    for (d, p) in deploy
        .database
        .containers
        .iter()
        .zip(&plan.database.containers)
    {
        assert_eq!((&p.name, &p.image, &p.cmd), (&d.name, &d.image, &d.cmd));
        assert_eq!(
            p.env.keys().collect::<Vec<_>>(),
            d.env.keys().collect::<Vec<_>>()
        );
        for (k, v) in &d.env {
            same(&format!("{}.{k}", d.name), v, &p.env[k]);
            secrets += usize::from(v.is_secret());
        }
    }
    assert_eq!(plan.apps.len(), deploy.apps.len());
    for (d, p) in deploy.apps.iter().zip(&plan.apps) {
        assert_eq!(p.target, d.target);
        assert_eq!(p.branch, d.branch);
        assert_eq!(p.env.len(), d.env.len());
        for (dv, pv) in d.env.iter().zip(&p.env) {
            assert_eq!((&pv.key, pv.sensitive), (&dv.key, dv.sensitive));
            same(
                &format!("{}.{}", d.target.app, dv.key),
                &dv.value,
                &pv.value,
            );
            secrets += usize::from(dv.value.is_secret());
        }
    }
    assert!(secrets > 0, "the example puts secrets into env vars");
    let (ds, ps) = (deploy.seed.as_ref().unwrap(), plan.seed.as_ref().unwrap());
    assert_eq!(ps.ready_url, ds.ready_url);
    for (d, p) in ds.requests.iter().zip(&ps.requests) {
        assert_eq!((&p.name, &p.method, &p.url), (&d.name, &d.method, &d.url));
        for ((dk, dv), (pk, pv)) in d.headers.iter().zip(&p.headers) {
            assert_eq!(pk, dk);
            same(&format!("{}.{dk}", d.name), dv, pv);
        }
    }
    let apps = |s: &render::SeedRun| {
        s.bypass
            .iter()
            .map(|b| (b.target.clone(), b.source.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(apps(ps), apps(ds));
    assert!(
        ps.bypass.iter().all(|b| b.secret.is_none()),
        "a plan reads no secret"
    );
    assert_eq!(plan.links, deploy.links);
    assert_eq!(plan.report_environment, deploy.report_environment);
    assert_eq!(
        plan.secrets.names().count(),
        0,
        "a plan generates no secret"
    );
    assert!(deploy.secrets.names().count() > 0);
}

#[test]
fn a_plan_shows_placeholders_and_deploy_never_shows_a_secret() {
    let (deploy, plan) = both();
    let tunnels = preview_core::host::Tunnels::new(Vec::new(), ());
    // The hooks deploy runs once the tunnels are open; a plan shows where their addresses go.
    let hooks = render::hooks(&Config::load(EXAMPLE).unwrap(), &plan, &tunnels).unwrap();
    assert!(!hooks.is_empty());
    assert!(
        hooks
            .iter()
            .any(|h| h.argv.iter().any(|a| a.contains("<tunnels."))
                || h.env.iter().any(|(_, v)| v.expose().contains("<tunnels."))),
        "{hooks:?}"
    );
    for app in &deploy.apps {
        for var in app.env.iter().filter(|v| v.value.is_secret()) {
            assert_eq!(deploy.shown(&var.value), "<redacted>");
        }
    }
    for app in &plan.apps {
        for var in app.env.iter().filter(|v| v.value.is_secret()) {
            assert!(plan.shown(&var.value).contains("<secret:"), "{}", var.key);
        }
    }
}
