//! `preview-core` used as a library, the way an internal tool embeds it: load a `preview.toml`,
//! wire the hosts (here the in-memory ones from the `testing` feature; in production the Fly,
//! Vercel and GitHub providers), deploy a PR, watch the events, and tear it down.
//!
//! Run: `cargo run -p preview-examples -- examples/inkeep-agents/preview.toml`

use std::process::ExitCode;
use std::sync::Arc;

use preview_core::secrecy::SecretString;
use preview_core::testing::{
    InMemoryApps, InMemoryDatabases, InMemoryHttp, InMemorySource, RecordingHooks,
};
use preview_core::{Config, DerivedSecrets, Event, EventSink, Hosts, Preview};

/// Prints each event as one line, the way a dashboard would consume them.
#[derive(Debug)]
struct PrintEvents;

impl EventSink for PrintEvents {
    #[allow(clippy::print_stdout)]
    fn emit(&self, event: Event) {
        match event {
            Event::PhaseFinished {
                phase,
                elapsed_ms,
                ok,
            } => {
                println!(
                    "phase {phase:<12} {} in {elapsed_ms} ms",
                    if ok { "ok" } else { "FAILED" }
                )
            }
            Event::Resource(c) => {
                println!("  {:<10} {:<12} {}", c.outcome.to_string(), c.kind, c.id)
            }
            _ => {}
        }
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/inkeep-agents/preview.toml".into());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
async fn run(path: &str) -> preview_core::Result<()> {
    let config = Config::load(path)?;
    let source = InMemorySource::new("inkeep/agents");
    let pr = source.open_pr(
        42,
        "feature/login",
        "0123456789abcdef0123456789abcdef01234567",
    );
    let databases = InMemoryDatabases::new();
    let apps = InMemoryApps::new();
    // Values the config imports from the environment; a real tool reads its own secret store.
    let env = |k: &str| match k {
        "VERCEL_API_PROJECT_ID" => Some("prj_api".to_string()),
        "VERCEL_UI_PROJECT_ID" => Some("prj_ui".to_string()),
        "ANTHROPIC_API_KEY" | "OPENAI_API_KEY" => Some("example-imported-key".to_string()),
        _ => None,
    };
    let preview = Preview::new(
        config,
        Hosts {
            database: Arc::new(databases.clone()),
            apps: Arc::new(apps.clone()),
            source: Arc::new(source.clone()),
        },
    )
    .hooks(Arc::new(RecordingHooks::new()))
    .http(Arc::new(InMemoryHttp::new()))
    .secrets(Arc::new(DerivedSecrets::new(SecretString::from(
        "example master secret: use a real 32+ character random value",
    ))?))
    .env(Arc::new(env))
    .events(Arc::new(PrintEvents));

    let deployed = preview.deploy(pr).await?;
    println!(
        "deployed {} ({} resources changed)",
        deployed.name,
        deployed.mutated()
    );
    for link in &deployed.links {
        println!("  {}: {}", link.label, link.url);
    }
    let again = preview.deploy(pr).await?;
    println!("re-deployed with {} resources changed", again.mutated());
    let torn = preview.teardown(pr).await?;
    println!("torn down {} ({} resources)", torn.name, torn.changes.len());
    println!(
        "left behind: {} databases, {} env vars, {} domains",
        databases.names().len(),
        apps.vars().len(),
        apps.domains().len()
    );
    Ok(())
}
