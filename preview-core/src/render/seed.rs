//! `[seed]` rendered: the readiness URL, the requests, the protected apps they reach.

use std::sync::Arc;

use secrecy::SecretString;

use super::{Fields, HttpCall, Mode, SeedBypass, SeedRun};
use crate::config::{BypassSource, SeedDef};
use crate::env::EnvLookup;
use crate::error::{Error, Result};
use crate::host::AppSpec;

/// Seeding: the readiness URL, the requests with their bodies, the protected apps they reach.
pub(super) fn seed_run(
    f: Fields<'_>,
    s: &SeedDef,
    bodies: &[Option<Arc<Vec<u8>>>],
    apps: &[AppSpec],
    env: EnvLookup<'_>,
) -> Result<SeedRun> {
    let mut requests = Vec::new();
    for (i, r) in s.requests.iter().enumerate() {
        let body = bodies.get(i).cloned().flatten().map(|b| b.as_ref().clone());
        let mut headers = Vec::new();
        for (k, h) in &r.headers {
            headers.push((k.clone(), f.value(h)?));
        }
        requests.push(HttpCall {
            name: r.name.clone(),
            method: r.method.clone(),
            url: f.text(&r.url)?,
            headers,
            body,
            expect_status: r.expect_status.clone(),
        });
    }
    let ready_url = f.text(&s.ready_url)?;
    let bypass = seed_bypass(f, apps, &ready_url, &requests, env)?;
    Ok(SeedRun {
        ready_url,
        ready_timeout: s.ready_timeout,
        requests,
        bypass,
    })
}

/// The protected apps seeding talks to, with the secret when it comes from a variable (deploy
/// only: a plan reads no secret).
fn seed_bypass(
    f: Fields<'_>,
    apps: &[AppSpec],
    ready_url: &str,
    requests: &[HttpCall],
    env: EnvLookup<'_>,
) -> Result<Vec<SeedBypass>> {
    let mut out = Vec::new();
    for (def, spec) in f.config.apps.iter().zip(apps) {
        let (Some(source), Some(domain)) = (&def.protection_bypass, &spec.target.domain) else {
            continue;
        };
        let mut b = SeedBypass {
            target: spec.target.clone(),
            origin: format!("https://{domain}"),
            source: source.clone(),
            secret: None,
        };
        let used = std::iter::once(ready_url)
            .chain(requests.iter().map(|r| r.url.as_str()))
            .any(|u| b.covers(u));
        if !used {
            continue;
        }
        if let (BypassSource::FromEnv(var), Mode::Deploy) = (source, f.mode) {
            b.secret = Some(match env(var) {
                Some(v) if !v.trim().is_empty() => SecretString::from(v.trim().to_string()),
                _ => {
                    return Err(Error::config(format!(
                        "{}: apps.{}.protection_bypass.from_env: environment variable {var} is not set (set it to the project's Protection Bypass for Automation secret, or use protection_bypass = \"project\" to read it through the Vercel API)",
                        f.config.origin, def.name
                    )));
                }
            });
        }
        out.push(b);
    }
    Ok(out)
}
