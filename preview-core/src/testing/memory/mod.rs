//! In-memory hosts: the three traits and the two effects, with recorded calls, injected faults
//! and seeded chaos, for tests and for trying the pipeline without any account.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Error, Result, TransportKind};

use super::rng::SplitMix64;

const PROVIDER: &str = "memory";

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Operation (the trait method's name).
    pub op: String,
    /// What it was about (environment name, PR number, …).
    pub target: String,
    /// Whether it changed state.
    pub mutating: bool,
}

/// A fault to inject: fail before acting, or act and then fail ("silent success").
enum Fault {
    Before(Error),
    After(Error),
}

#[derive(Default)]
struct Faults {
    queue: BTreeMap<String, VecDeque<Fault>>,
}

impl Faults {
    fn take(&mut self, op: &str) -> Option<Fault> {
        self.queue.get_mut(op).and_then(VecDeque::pop_front)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep the state readable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Seeded random faults for every call of an in-memory host (see `chaos` on each host).
///
/// Each call fails with `probability`, uniformly as one of: a transport error before sending
/// (connect), HTTP 408, 429 with `Retry-After` of 1–5 s, 500, 502, 503, 504 (all without acting),
/// or a "silent success" (the call acts, then answers 408, 502 or a transport timeout). Separately,
/// each call may first sleep on the tokio clock (free under a paused clock). The same seed gives the
/// same faults for the same sequence of calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Chaos {
    seed: u64,
    probability: f64,
    latency_probability: f64,
    max_latency: Duration,
    max_consecutive: Option<u32>,
}

impl Chaos {
    /// Faults with `probability` per call (0.0–1.0), from `seed`; no latency.
    pub fn new(seed: u64, probability: f64) -> Self {
        Self {
            seed,
            probability,
            latency_probability: 0.0,
            max_latency: Duration::ZERO,
            max_consecutive: None,
        }
    }

    /// Never fails one call more than `n` times in a row: attempt `n + 1` of a call (the same
    /// operation on the same resource, retried) always gets through. Without it, some seed
    /// eventually fails a call any finite number of times.
    pub fn max_consecutive(mut self, n: u32) -> Self {
        self.max_consecutive = Some(n);
        self
    }

    /// Also delays a call with `probability`, uniformly up to `max`.
    pub fn latency(mut self, probability: f64, max: Duration) -> Self {
        self.latency_probability = probability;
        self.max_latency = max;
        self
    }
}

/// A simulated crash shared by several hosts: after the n-th mutating call among them, the process
/// is "gone", so every later call fails with [`Error::Cancelled`] without acting. In mid-call mode
/// the n-th call itself acts and then fails (the server committed, the response was never read).
#[derive(Debug, Clone)]
pub struct Tripwire {
    inner: Arc<Mutex<TripState>>,
}

#[derive(Debug)]
struct TripState {
    left: usize,
    mid_call: bool,
    tripped: bool,
}

impl Tripwire {
    /// Crashes after the `n`-th mutating call has answered.
    pub fn after(n: usize) -> Self {
        Self::new(n, false)
    }

    /// Crashes during the `n`-th mutating call, after it acted and before it answered.
    pub fn mid_call(n: usize) -> Self {
        Self::new(n, true)
    }

    fn new(n: usize, mid_call: bool) -> Self {
        Self {
            inner: Arc::new(Mutex::new(TripState {
                left: n,
                mid_call,
                tripped: n == 0,
            })),
        }
    }

    /// Whether the crash happened.
    pub fn tripped(&self) -> bool {
        lock(&self.inner).tripped
    }

    /// Counts a call that acted; returns whether this call must fail (mid-call crash).
    fn acted(&self, mutating: bool) -> bool {
        let mut s = lock(&self.inner);
        if !mutating || s.tripped {
            return false;
        }
        s.left = s.left.saturating_sub(1);
        if s.left == 0 {
            s.tripped = true;
            return s.mid_call;
        }
        false
    }
}

struct ChaosState {
    config: Chaos,
    rng: SplitMix64,
}

fn injected_api(status: u16) -> Error {
    Error::Api {
        provider: PROVIDER,
        status,
        message: format!("injected fault (HTTP {status})"),
        request_id: Some("injected".into()),
    }
}

fn injected_transport(kind: TransportKind) -> Error {
    Error::Transport {
        provider: PROVIDER,
        kind,
        host: None,
        source: "injected transport fault".into(),
    }
}

impl ChaosState {
    fn draw(&mut self, attempt: u32) -> Option<Fault> {
        if self.rng.unit() >= self.config.probability
            || self.config.max_consecutive.is_some_and(|n| attempt > n)
        {
            return None;
        }
        Some(match self.rng.below(10) {
            0 => Fault::Before(injected_transport(TransportKind::Connect)),
            1 => Fault::Before(injected_api(408)),
            2 => Fault::Before(Error::RateLimited {
                provider: PROVIDER,
                retry_after: Some(Duration::from_secs(1 + self.rng.below(5))),
                request_id: Some("injected".into()),
            }),
            3 => Fault::Before(injected_api(500)),
            4 => Fault::Before(injected_api(502)),
            5 => Fault::Before(injected_api(503)),
            6 => Fault::Before(injected_api(504)),
            7 => Fault::After(injected_api(408)),
            8 => Fault::After(injected_api(502)),
            _ => Fault::After(injected_transport(TransportKind::Timeout)),
        })
    }

    fn latency(&mut self) -> Option<Duration> {
        self.rng
            .delay(self.config.latency_probability, self.config.max_latency)
    }
}

/// Shared call log and fault queue.
#[derive(Default)]
struct Journal {
    calls: Vec<Call>,
    faults: Faults,
    chaos: Option<ChaosState>,
    tripwire: Option<Tripwire>,
    /// Attempts of each call not yet answered with success, by op and what it is about.
    streaks: BTreeMap<String, u32>,
    max_attempts: u32,
    injected: usize,
}

impl Journal {
    fn record(&mut self, op: &str, target: &str, mutating: bool) {
        self.calls.push(Call {
            op: op.into(),
            target: target.into(),
            mutating,
        });
    }

    /// Runs `act` under fault injection: a `Before` fault fails without acting; an `After` fault
    /// acts (state changes) and then fails.
    fn run<T>(
        &mut self,
        op: &str,
        target: &str,
        act: impl FnOnce() -> Result<(T, bool)>,
    ) -> Result<T> {
        self.run_as(op, target, target, act)
    }

    /// [`Journal::run`], counting attempts by `key` (calls that share a target but not a resource,
    /// like two apps of one environment, are different calls).
    fn run_as<T>(
        &mut self,
        op: &str,
        target: &str,
        key: &str,
        act: impl FnOnce() -> Result<(T, bool)>,
    ) -> Result<T> {
        if self.tripwire.as_ref().is_some_and(Tripwire::tripped) {
            self.record(op, target, false);
            return Err(Error::Cancelled);
        }
        let streak_key = format!("{op} {key}");
        let attempts = self.streaks.entry(streak_key.clone()).or_insert(0);
        *attempts += 1;
        let attempt = *attempts;
        self.max_attempts = self.max_attempts.max(attempt);
        let fault = match self.faults.take(op) {
            Some(f) => Some(f),
            None => {
                let f = self.chaos.as_mut().and_then(|c| c.draw(attempt));
                self.injected += usize::from(f.is_some());
                f
            }
        };
        let r = match fault {
            Some(Fault::Before(e)) => {
                self.record(op, target, false);
                Err(e)
            }
            Some(Fault::After(e)) => {
                let r = act();
                let mutating = matches!(r, Ok((_, true)));
                self.record(op, target, mutating);
                self.crashed(mutating);
                Err(e)
            }
            None => {
                let r = act();
                let mutating = matches!(r, Ok((_, true)));
                self.record(op, target, mutating);
                if self.crashed(mutating) {
                    return Err(Error::Cancelled);
                }
                r.map(|(v, _)| v)
            }
        };
        if r.is_ok() {
            self.streaks.remove(&streak_key);
        }
        r
    }

    fn crashed(&self, mutating: bool) -> bool {
        self.tripwire.as_ref().is_some_and(|t| t.acted(mutating))
    }

    fn latency(&mut self) -> Option<Duration> {
        self.chaos.as_mut().and_then(ChaosState::latency)
    }
}

macro_rules! journal_api {
    () => {
        /// Fails the next call of `op` (a trait method name) with `err`, without acting.
        pub fn fail_next(&self, op: &str, err: Error) {
            super::lock(&self.inner)
                .journal
                .faults
                .queue
                .entry(op.to_string())
                .or_default()
                .push_back(super::Fault::Before(err));
        }

        /// Lets the next call of `op` act, then fails it with `err` (the response was lost).
        pub fn fail_after_commit(&self, op: &str, err: Error) {
            super::lock(&self.inner)
                .journal
                .faults
                .queue
                .entry(op.to_string())
                .or_default()
                .push_back(super::Fault::After(err));
        }

        /// Every call so far.
        pub fn calls(&self) -> Vec<super::Call> {
            super::lock(&self.inner).journal.calls.clone()
        }

        /// How many calls changed state.
        pub fn mutating_calls(&self) -> usize {
            super::lock(&self.inner)
                .journal
                .calls
                .iter()
                .filter(|c| c.mutating)
                .count()
        }

        /// Forgets the call log.
        pub fn clear_calls(&self) {
            super::lock(&self.inner).journal.calls.clear();
        }

        /// From now on, every call may fail or be delayed at random, as `chaos` says. Faults queued
        /// with `fail_next` / `fail_after_commit` still come first.
        pub fn chaos(&self, chaos: super::Chaos) {
            let rng = super::SplitMix64(chaos.seed);
            super::lock(&self.inner).journal.chaos = Some(super::ChaosState { config: chaos, rng });
        }

        /// Simulates a crash shared with the other hosts given the same tripwire (`None`: no crash).
        pub fn tripwire(&self, tripwire: Option<super::Tripwire>) {
            super::lock(&self.inner).journal.tripwire = tripwire;
        }

        /// Stops random faults and latency.
        pub fn calm(&self) {
            super::lock(&self.inner).journal.chaos = None;
        }

        /// How many random faults were injected so far.
        pub fn injected_faults(&self) -> usize {
            super::lock(&self.inner).journal.injected
        }

        /// The most attempts any one call took: consecutive calls of the same operation on the same
        /// resource, up to and including the one that succeeded (or the last one, if none did).
        pub fn max_attempts(&self) -> u32 {
            super::lock(&self.inner).journal.max_attempts
        }

        /// Forgets attempt counts (not the call log).
        pub fn reset_attempts(&self) {
            let mut s = super::lock(&self.inner);
            s.journal.streaks.clear();
            s.journal.max_attempts = 0;
        }

        /// Sleeps as long as chaos says, before a call (never while holding the state super::lock).
        async fn latency(&self) {
            let delay = super::lock(&self.inner).journal.latency();
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
        }
    };
}

// The hosts come after `journal_api!`, which they use.
mod app;
mod database;
mod effects;
mod source;

pub use app::{InMemoryApps, PROTECTION_BYPASS_HEADER, StoredVar};
pub use database::InMemoryDatabases;
pub use effects::{InMemoryHttp, RecordingHooks};
pub use source::InMemorySource;
