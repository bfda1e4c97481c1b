//! Waiting for a Machine: started (the `/wait` long poll), then every health check passing.

use std::time::Duration;

use preview_core::{DatabaseSpec, Error, Result};
use tokio::time::Instant;

use super::FlyDatabases;
use crate::wire;

/// Pauses between polls: `first`, doubling up to `max` (never a fixed period).
pub(super) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(super) fn new(first: Duration, max: Duration) -> Self {
        Self {
            next: first.min(max),
            max,
        }
    }

    pub(super) fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

impl FlyDatabases {
    async fn diagnostics(&self, app: &str, id: &str) -> String {
        match self.core.events(app, id).await {
            Ok(events) if !events.is_empty() => {
                let lines: Vec<String> = events.iter().take(10).map(|e| e.line()).collect();
                format!("last events: {}", lines.join("; "))
            }
            Ok(_) => "no events recorded".to_string(),
            Err(e) => format!("events unavailable: {e}"),
        }
    }

    fn checks_pass(m: &wire::Machine, expected: usize) -> bool {
        let passing = m.checks.iter().filter(|c| c.status == "passing").count();
        passing >= expected && passing == m.checks.len()
    }

    /// Waits until the Machine is started, then until every health check passes; fails as soon
    /// as it is `failed`, or at the spec's deadline, with the last events.
    ///
    /// The first part is the `/wait` long poll for `started` *or* `failed`, so a Machine that
    /// fails to boot is reported when it fails, not when a window runs out; windows are short
    /// ([`FlyDatabasesBuilder::wait_call`]), with a look at the Machine between them.
    pub(super) async fn wait_healthy(
        &self,
        app: &str,
        m: &wire::Machine,
        spec: &DatabaseSpec,
    ) -> Result<wire::Machine> {
        let start = Instant::now();
        let deadline = start + spec.ready_timeout;
        let what = format!("machine {} of app {app}", m.id);
        let expected: usize = spec.containers.iter().map(|c| c.healthchecks.len()).sum();
        let mut last_state = m.state.clone();
        let failed = |state: &str, detail: String| Error::Failed {
            what: what.clone(),
            message: format!("the machine is {state}; {detail}"),
        };
        // Phase 1: started (or failed).
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Timeout {
                    what: what.clone(),
                    waited: start.elapsed(),
                    detail: format!("state {last_state}; {}", self.diagnostics(app, &m.id).await),
                });
            }
            let secs = self.wait_call.min(remaining).as_secs().clamp(1, 60);
            let asked = Instant::now();
            match self
                .core
                .wait(app, &m.id, &["started", "failed"], m.version(), secs)
                .await?
                .as_deref()
            {
                Some("failed") => {
                    return Err(failed("failed", self.diagnostics(app, &m.id).await));
                }
                Some(_) => break,
                None => {}
            }
            let now = self.core.get_machine(app, &m.id).await?;
            last_state = now.state.clone();
            if now.state == "failed" {
                return Err(failed(&now.state, self.diagnostics(app, &m.id).await));
            }
            // A 408 normally comes after the server held the call for its window; if it came
            // back early, do not spin.
            if asked.elapsed() < Duration::from_secs(secs) / 2 {
                let pause = self
                    .poll_interval
                    .min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
        }
        // Phase 2: every health check passes.
        let started = Instant::now();
        // If the API reports no check at all for this long after the start, every check has had
        // its grace period and enough intervals to pass: the API does not report container
        // checks for this Machine, and waiting longer cannot tell us more.
        let silent_window = spec
            .containers
            .iter()
            .flat_map(|c| &c.healthchecks)
            .map(|h| h.grace_period + h.interval * h.success_threshold + h.timeout)
            .max()
            .unwrap_or_default();
        // Get Machine allows 5 req/s: start at an eighth of the interval and back off to it.
        let mut pause = Backoff::new(self.poll_interval / 8, self.poll_interval);
        loop {
            let now = self.core.get_machine(app, &m.id).await?;
            if now.state == "failed" {
                return Err(failed(&now.state, self.diagnostics(app, &m.id).await));
            }
            if Self::checks_pass(&now, expected) {
                return Ok(now);
            }
            if now.checks.is_empty() && started.elapsed() >= silent_window {
                tracing::warn!(
                    app,
                    machine = %m.id,
                    expected,
                    "the Machine reports no health checks; relying on its started state"
                );
                return Ok(now);
            }
            let wait = pause.next();
            if Instant::now() + wait >= deadline {
                let checks: Vec<String> = now
                    .checks
                    .iter()
                    .map(|c| format!("{}={}", c.name, c.status))
                    .collect();
                return Err(Error::Timeout {
                    what,
                    waited: start.elapsed(),
                    detail: format!(
                        "state {}, checks [{}] ({expected} expected); {}",
                        now.state,
                        checks.join(", "),
                        self.diagnostics(app, &m.id).await
                    ),
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
}
