//! Readiness and seeding: wait for the app, then send the configured requests, each protected
//! app's bypass header going only to that app.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::Preview;
use crate::error::{Error, Result};
use crate::event::Phase;
use crate::host::ProtectionBypass;
use crate::render::{HttpCall, SeedBypass, SeedRun};

impl Preview {
    /// Wait for the readiness URL, then send the seed requests, each answered as expected.
    pub(super) async fn seed(&self, seed: &SeedRun) -> Result<()> {
        let bypass = self
            .phase(Phase::Readiness, async {
                let bypass = self.protection_bypass(seed).await?;
                self.wait_ready(&seed.ready_url, seed.ready_timeout, &bypass)
                    .await?;
                Ok(bypass)
            })
            .await?;
        self.phase(Phase::Seed, async {
            for call in &seed.requests {
                let call = with_bypass(call, &bypass);
                let status = self.http.send(&call).await?;
                if !call.expect_status.contains(&status) {
                    return Err(Error::failed(
                        format!(
                            "seed request {:?} ({} {})",
                            call.name, call.method, call.url
                        ),
                        format!(
                            "answered HTTP {status}; expected one of {:?}",
                            call.expect_status
                        ),
                    ));
                }
            }
            Ok(())
        })
        .await
    }

    /// The protection bypass of each protected app seeding talks to, read from its host when the
    /// configuration does not name a variable. Each secret is handed to the secrets observer (the
    /// CLI masks it) before any request carries it.
    async fn protection_bypass(
        &self,
        seed: &SeedRun,
    ) -> Result<Vec<(SeedBypass, ProtectionBypass)>> {
        let mut out = Vec::new();
        for b in &seed.bypass {
            let found = self
                .retry("get protection bypass", || {
                    self.apps.get_protection_bypass(&b.target, b.secret.clone())
                })
                .await?;
            if let Some(p) = found {
                if let Some(f) = &self.on_secrets {
                    f(&[p.secret.expose_secret().to_string()]);
                }
                out.push((b.clone(), p));
            }
        }
        Ok(out)
    }

    async fn wait_ready(
        &self,
        url: &str,
        timeout: Duration,
        bypass: &[(SeedBypass, ProtectionBypass)],
    ) -> Result<()> {
        let call = with_bypass(
            &HttpCall {
                name: "readiness".into(),
                method: "GET".into(),
                url: url.to_string(),
                headers: vec![],
                body: None,
                expect_status: vec![200, 204],
            },
            bypass,
        );
        let start = tokio::time::Instant::now();
        let mut delay = Duration::from_secs(1);
        let mut last;
        loop {
            match self.http.send(&call).await {
                Ok(s) if (200..300).contains(&s) => return Ok(()),
                Ok(s) => last = format!("last answer HTTP {s}"),
                Err(e) => last = format!("last error: {e}"),
            }
            if start.elapsed() + delay > timeout {
                return Err(Error::Timeout {
                    what: format!("waiting for {url}"),
                    waited: start.elapsed(),
                    detail: last,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(15));
        }
    }
}

/// `call`, with the bypass header of the protected app it goes to (same origin as the app's own
/// URL), unless it sets that header itself. A request to anywhere else is left as it is: the
/// secret opens the team's protected previews, a third party never gets it.
fn with_bypass(call: &HttpCall, bypass: &[(SeedBypass, ProtectionBypass)]) -> HttpCall {
    let mut call = call.clone();
    if let Some((_, p)) = bypass.iter().find(|(b, _)| b.covers(&call.url)) {
        if !call
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(&p.header))
        {
            call.headers.push((
                p.header.clone(),
                crate::template::Value::Secret(p.secret.clone()),
            ));
        }
    }
    call
}
