//! Structured events every operation emits: the CLI renders them, library users consume them.
//! Events never carry secret values.

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::Serialize;

pub use crate::error::{Phase, PhaseTiming};
use crate::host::ResourceChange;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A phase began.
    PhaseStarted {
        /// Which.
        phase: Phase,
    },
    /// A phase ended.
    PhaseFinished {
        /// Which.
        phase: Phase,
        /// How long it took.
        elapsed_ms: u64,
        /// Whether it succeeded.
        ok: bool,
    },
    /// A resource was created, updated, left unchanged, removed or found already gone.
    Resource(ResourceChange),
    /// A line of hook output (already masked).
    HookOutput {
        /// Hook name.
        hook: String,
        /// The line.
        line: String,
    },
    /// Something worth knowing that did not fail the operation.
    Warning {
        /// What.
        message: String,
    },
}

tokio::task_local! {
    static CURRENT_PHASE: Phase;
}

tokio::task_local! {
    static TIMINGS: Arc<Mutex<Vec<PhaseTiming>>>;
}

/// Runs `fut` keeping the timing of every phase that finishes inside it (in the order they
/// finish), and returns them with its output. Phases run side by side are polled by the same
/// task, so all of them are kept; work spawned onto other tasks is not.
pub(crate) async fn timed<F: std::future::Future>(fut: F) -> (F::Output, Vec<PhaseTiming>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let out = TIMINGS.scope(Arc::clone(&kept), fut).await;
    let timings = kept.lock().map(|t| t.clone()).unwrap_or_default();
    (out, timings)
}

/// Keeps `timing` for the innermost [`timed`] operation running on this task, if any.
pub(crate) fn record(timing: PhaseTiming) {
    let _ = TIMINGS.try_with(|t| {
        if let Ok(mut t) = t.lock() {
            t.push(timing);
        }
    });
}

/// The timings kept so far by the innermost [`timed`] operation on this task (empty outside one).
pub(crate) fn timings_so_far() -> Vec<PhaseTiming> {
    TIMINGS
        .try_with(|t| t.lock().map(|t| t.clone()).unwrap_or_default())
        .unwrap_or_default()
}

/// The phase whose work emitted the event being handled, when a sink is called from inside one.
///
/// Phases run side by side (announce, database and apps at once), so the order of events alone
/// does not say which phase a [`Event::Resource`], [`Event::HookOutput`] or [`Event::Warning`]
/// belongs to; the pipeline runs each phase's future under its phase, and a sink called while that
/// future is polled sees it here (the innermost phase, when one runs inside another). `None`
/// outside any phase.
pub fn current_phase() -> Option<Phase> {
    CURRENT_PHASE.try_with(|p| *p).ok()
}

/// Runs `fut` with `phase` as its [`current_phase`] (the pipeline does this around each phase; a
/// library user emitting events from work of its own can too).
pub async fn in_phase<F: std::future::Future>(phase: Phase, fut: F) -> F::Output {
    CURRENT_PHASE.scope(phase, fut).await
}

/// Receives events.
pub trait EventSink: fmt::Debug + Send + Sync {
    /// Handles one event. Must not block for long.
    fn emit(&self, event: Event);
}

/// Drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _: Event) {}
}

/// Keeps every event in memory (tests, and callers that render afterwards).
#[derive(Debug, Clone, Default)]
pub struct CollectEvents {
    events: Arc<Mutex<Vec<Event>>>,
}

impl CollectEvents {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl EventSink for CollectEvents {
    fn emit(&self, event: Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_current_phase_is_the_innermost_one_polled_even_side_by_side() {
        assert_eq!(current_phase(), None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let note = |tag: &'static str| {
            let seen = seen.clone();
            move || seen.lock().unwrap().push((tag, current_phase()))
        };
        let (a, b, c) = (note("db"), note("apps"), note("nested"));
        let database = in_phase(Phase::Database, async move {
            tokio::task::yield_now().await;
            a();
            in_phase(Phase::Tunnels, async move { c() }).await;
        });
        let apps = in_phase(Phase::Apps, async move {
            b();
            tokio::task::yield_now().await;
        });
        futures::future::join(database, apps).await;
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_by_key(|(tag, _)| *tag);
        assert_eq!(
            seen,
            [
                ("apps", Some(Phase::Apps)),
                ("db", Some(Phase::Database)),
                ("nested", Some(Phase::Tunnels)),
            ]
        );
        assert_eq!(current_phase(), None);
    }
}
