//! Scaffolding shared by the in-process CLI tests: captured output streams and a host factory over
//! the in-memory hosts.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use preview_cli::context::Context;
use preview_cli::providers::HostFactory;
use preview_core::effects::{HookRunner, HttpClient};
use preview_core::secrecy::{ExposeSecret, SecretString};
use preview_core::testing::{
    InMemoryApps, InMemoryDatabases, InMemoryHttp, InMemorySource, RecordingHooks,
};
use preview_core::{Config, DerivedSecrets, Hosts, PrNumber};

/// A cloneable in-memory writer (captured stdout/stderr).
#[derive(Clone, Default)]
pub(crate) struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The in-memory hosts, shared with the test that inspects them.
#[derive(Clone)]
pub(crate) struct Memory {
    pub db: InMemoryDatabases,
    pub apps: InMemoryApps,
    pub source: InMemorySource,
    pub hooks: RecordingHooks,
    pub http: InMemoryHttp,
}

impl HostFactory for Memory {
    fn hosts(&self, _: &Config, _: &Context, _: &str) -> preview_core::Result<Hosts> {
        Ok(Hosts {
            database: Arc::new(self.db.clone()),
            apps: Arc::new(self.apps.clone()),
            source: Arc::new(self.source.clone()),
        })
    }
    fn http(&self) -> Arc<dyn HttpClient> {
        Arc::new(self.http.clone())
    }
    fn hooks(&self) -> Arc<dyn HookRunner> {
        Arc::new(self.hooks.clone())
    }
}

/// Fresh in-memory hosts for repository `inkeep/agents`.
pub(crate) fn memory() -> Memory {
    Memory {
        db: InMemoryDatabases::new(),
        apps: InMemoryApps::new(),
        source: InMemorySource::new("inkeep/agents"),
        hooks: RecordingHooks::new(),
        http: InMemoryHttp::new(),
    }
}

/// A context over `m` with captured output and the environment `env`.
pub(crate) fn context(m: &Memory, env: preview_cli::context::Env, out: &Buf, err: &Buf) -> Context {
    Context {
        actions: preview_cli::actions::Actions::detect(&env),
        env,
        stdout: preview_cli::context::Stream::new(out.clone()),
        stderr: preview_cli::context::Stream::new(err.clone()),
        factory: Arc::new(m.clone()),
    }
}

/// Runs `preview --config CONFIG ARGS…` in-process and returns its exit code.
pub(crate) async fn run_cli(ctx: &Context, config: &str, args: &[&str]) -> u8 {
    let mut argv = vec!["preview", "--config", config];
    argv.extend_from_slice(args);
    let cli = <preview_cli::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap();
    preview_cli::run(cli, ctx).await
}

// ---------------------------------------------------------------------------------------------
// S1: the forms of a secret that must never appear, and the predicate over a text.

pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(crate) fn base64(s: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in s.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) const STD: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub(crate) const URL: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A value and its derived forms: percent-encoded, base64, base64url, JSON-escaped, hex.
pub(crate) fn forms(v: &str) -> Vec<String> {
    let json = serde_json::to_string(v).unwrap();
    let mut f = vec![
        v.to_string(),
        percent_encode(v),
        base64(v.as_bytes(), STD, true),
        base64(v.as_bytes(), URL, false),
        json[1..json.len() - 1].to_string(),
        v.bytes().map(|b| format!("{b:02x}")).collect(),
    ];
    f.sort();
    f.dedup();
    f
}

/// S1's predicate: no form of any value in `text`, except on `::add-mask::` lines when `actions`.
pub(crate) fn assert_clean(what: &str, text: &str, values: &[String], actions: bool) {
    for line in text.lines() {
        if actions && line.starts_with("::add-mask::") {
            continue;
        }
        for v in values {
            for f in forms(v) {
                assert!(
                    !line.contains(f.as_str()),
                    "{what} shows a secret (a form of a {}-char value): {}",
                    v.len(),
                    line.replace(f.as_str(), "<SECRET>")
                );
            }
        }
    }
}

/// Every sensitive value of PR `n`'s environment under `config`, derived the way the binary does
/// (from `master`, with `env` for the config's env references): the generated secrets and the
/// rendered values that embed them.
pub(crate) fn derived_secrets(
    config: &std::path::Path,
    n: u64,
    master: &str,
    env: impl Fn(&str) -> Option<String> + Sync,
) -> Vec<String> {
    let config = Config::load(config).unwrap();
    let name = config.name(PrNumber::new(n).unwrap());
    let d = DerivedSecrets::new(SecretString::from(master.to_string())).unwrap();
    let values = preview_core::render::secrets(&config, &name, &d, &env).unwrap();
    let mut all: Vec<String> = values
        .iter()
        .map(|(_, v)| v.expose_secret().to_string())
        .collect();
    let rendered =
        preview_core::render::render_all(&config, &name, &Default::default(), values, &env)
            .unwrap();
    all.extend(rendered.sensitive_values());
    all
}
