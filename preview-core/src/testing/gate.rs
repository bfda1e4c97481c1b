//! Stopping the world at an exact point: the fakes of several APIs share one [`Gate`], and once
//! the k-th mutating request (counted across all of them, in the order they were answered) has
//! been carried out and answered, every later request is held unanswered. The state of the fakes
//! is then exactly "requests 1..k done", which is what a process killed right after the k-th
//! answer leaves behind.

use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    /// Stop after this many mutating requests (since the last [`Gate::arm`]); `None`: never.
    stop_at: Option<usize>,
    /// Mutating requests answered since the last [`Gate::arm`], in order (labels given by the
    /// fakes, e.g. `fly POST /v1/apps`).
    mutating: Vec<String>,
    /// Requests held since the gate closed.
    held: usize,
}

impl State {
    fn closed(&self) -> bool {
        self.stop_at.is_some_and(|k| self.mutating.len() >= k)
    }
}

/// A gate several fakes consult before answering. `Clone` shares it.
///
/// While it is armed with `k`, requests pass (and are carried out) until the k-th mutating one has
/// been answered; from then on [`Gate::pass`] refuses every request, and the fake holds it without
/// carrying it out. Passing is serialised across every fake sharing the gate, so "the k-th" is well
/// defined even when requests to different fakes race.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    state: Arc<Mutex<State>>,
}

impl Gate {
    /// An open gate (everything passes, nothing is counted until [`Gate::arm`]).
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts counting mutating requests from zero, closing after the `k`-th (`None`: counts
    /// without ever closing, to learn how many a run makes).
    pub fn arm(&self, k: Option<usize>) {
        let mut s = self.lock();
        s.stop_at = k;
        s.mutating.clear();
        s.held = 0;
    }

    /// Opens the gate for good: every request passes again (those already held stay held).
    pub fn release(&self) {
        self.lock().stop_at = None;
    }

    /// Whether the gate is closed (the k-th mutating request has been answered).
    pub fn closed(&self) -> bool {
        self.lock().closed()
    }

    /// Requests held since the gate closed.
    pub fn held(&self) -> usize {
        self.lock().held
    }

    /// The mutating requests answered since the last [`Gate::arm`], in order.
    pub fn mutating(&self) -> Vec<String> {
        self.lock().mutating.clone()
    }

    /// Runs `answer` (which carries the request out and builds its answer) unless the gate is
    /// closed; `None` means "hold this request: do not carry it out, do not answer it". The gate's
    /// lock is held while `answer` runs, so no other request of any fake sharing the gate is
    /// carried out meanwhile.
    pub fn pass<R>(
        &self,
        mutating: bool,
        label: impl FnOnce() -> String,
        answer: impl FnOnce() -> R,
    ) -> Option<R> {
        let mut s = self.lock();
        if s.closed() {
            s.held += 1;
            return None;
        }
        let r = answer();
        if mutating {
            s.mutating.push(label());
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_after_the_kth_mutating_request_and_holds_the_rest() {
        let g = Gate::new();
        g.arm(Some(2));
        let mut done = Vec::new();
        for (i, mutating) in [false, true, false, true, false, true]
            .into_iter()
            .enumerate()
        {
            if g.pass(mutating, || format!("r{i}"), || ()).is_some() {
                done.push(i);
            }
        }
        assert_eq!(done, [0, 1, 2, 3]);
        assert!(g.closed());
        assert_eq!(g.held(), 2);
        assert_eq!(g.mutating(), ["r1", "r3"]);
        g.release();
        assert!(!g.closed());
        assert!(g.pass(true, || "r6".into(), || ()).is_some());
    }

    #[test]
    fn unarmed_it_counts_and_never_closes() {
        let g = Gate::new();
        g.arm(None);
        for i in 0..5 {
            assert!(g.pass(true, || format!("w{i}"), || ()).is_some());
        }
        assert_eq!(g.mutating().len(), 5);
        assert!(!g.closed());
    }
}
