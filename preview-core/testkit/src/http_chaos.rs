//! Seeded fault plans for the HTTP fakes ([`HttpChaos`]), drawn from the same splitmix64 generator
//! as the in-memory hosts' [`Chaos`](preview_core::testing::Chaos), and the case counts of the
//! reliability suites.

use std::collections::BTreeMap;
use std::time::Duration;

use preview_core::testing::rng::SplitMix64;

/// Whether the reliability suites run their full case counts: `PREVIEW_RELIABILITY_FULL=1`, the
/// nightly run (`.ci/nightly`). By default every suite runs at a smaller count.
pub fn full_counts() -> bool {
    std::env::var("PREVIEW_RELIABILITY_FULL").is_ok_and(|v| v == "1")
}

/// `small` by default, `big` with `PREVIEW_RELIABILITY_FULL=1` (see [`full_counts`]).
pub fn cases(small: u64, big: u64) -> u64 {
    if full_counts() { big } else { small }
}

/// `n` seeded random strings of 1 to `max_len` pieces of `alphabet` each (the same seed gives the
/// same strings): inputs for property tests of URL building and naming (reliability.md I1/I4),
/// over an alphabet of whatever the caller considers hostile.
///
/// # Panics
/// If `alphabet` is empty or `max_len` is zero.
pub fn random_strings(seed: u64, n: usize, alphabet: &[&str], max_len: u64) -> Vec<String> {
    assert!(
        !alphabet.is_empty() && max_len > 0,
        "an alphabet and a length"
    );
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|_| {
            let len = 1 + rng.below(max_len);
            (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect()
        })
        .collect()
}

/// `%XX` decoding, as a server's router does with a path segment or a query value.
///
/// # Panics
/// If the decoded bytes are not UTF-8 (a client sending our own text never produces that).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("percent-encoded UTF-8")
        .into_owned()
}

/// How `Retry-After` is written on an injected 429 or 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfter {
    /// Delta seconds (`Retry-After: 3`).
    Seconds(u64),
    /// An HTTP date at least that many seconds from now, at most two more (whole seconds,
    /// rounded up): `Retry-After: Sun, 22 Nov 2026 11:00:03 GMT`.
    Date(u64),
}

impl RetryAfter {
    /// The header value, dates relative to the wall clock (what the clients compare against).
    pub fn header_value(&self) -> String {
        match self {
            RetryAfter::Seconds(s) => s.to_string(),
            RetryAfter::Date(s) => {
                // HTTP dates have whole seconds, and the client reads the header a little after
                // it was written: round up to the next whole second, then add one, so whatever
                // the client computes is at least `s` (and at most `s + 2`).
                let now = jiff::Timestamp::now().as_millisecond();
                let due = (now + *s as i64 * 1000 + 999).div_euclid(1000) + 1;
                let at = jiff::Timestamp::from_second(due).unwrap_or(jiff::Timestamp::MAX);
                jiff::fmt::rfc2822::DateTimePrinter::new()
                    .timestamp_to_rfc9110_string(&at)
                    .unwrap_or_else(|_| s.to_string())
            }
        }
    }
}

/// One injected HTTP fault, for a fake to render in its API's error format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFault {
    /// Answer `status` without acting (408, 429, 500, 502, 503, 504).
    Reject {
        /// The status to answer.
        status: u16,
        /// `Retry-After` to send with it (429 always has one, 503 sometimes).
        retry_after: Option<RetryAfter>,
    },
    /// Act (commit the change), then answer `status` instead of the real response: a "silent
    /// success" the client cannot tell from a failure.
    Lose {
        /// The status to answer.
        status: u16,
    },
}

impl HttpFault {
    /// The status the client sees.
    pub fn status(&self) -> u16 {
        match self {
            HttpFault::Reject { status, .. } | HttpFault::Lose { status } => *status,
        }
    }
}

/// Seeded random faults for an HTTP fake: per request, with `probability`, one of 408, 429 with
/// `Retry-After` of 1–5 s (as seconds or as an HTTP date), 500, 502, 503 (half of them with a
/// `Retry-After` of 1–5 s), 504 (without acting), or
/// a silent success answered 408, 502 or 504 (after acting); separately, latency.
///
/// A pre-send transport error cannot be produced by a server; the in-memory [`Chaos`](preview_core::testing::Chaos)
/// covers that case for the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpChaos {
    seed: u64,
    probability: f64,
    latency_probability: f64,
    max_latency: Duration,
    max_consecutive: Option<u32>,
    mutating_only: bool,
}

impl HttpChaos {
    /// Faults with `probability` per request (0.0–1.0), from `seed`; no latency.
    pub fn new(seed: u64, probability: f64) -> Self {
        Self {
            seed,
            probability,
            latency_probability: 0.0,
            max_latency: Duration::ZERO,
            max_consecutive: None,
            mutating_only: false,
        }
    }

    /// Never fails the same request (method and path) more than `n` times in a row.
    pub fn max_consecutive(mut self, n: u32) -> Self {
        self.max_consecutive = Some(n);
        self
    }

    /// Also delays a request with `probability`, uniformly up to `max`.
    pub fn latency(mut self, probability: f64, max: Duration) -> Self {
        self.latency_probability = probability;
        self.max_latency = max;
        self
    }

    /// Faults only requests that are not GET or HEAD.
    pub fn mutating_only(mut self) -> Self {
        self.mutating_only = true;
        self
    }

    /// The state a fake keeps to draw faults from this plan.
    pub fn start(self) -> HttpChaosState {
        HttpChaosState {
            rng: SplitMix64(self.seed),
            config: self,
            streaks: BTreeMap::new(),
            max_attempts: 0,
            injected: 0,
        }
    }
}

/// A running [`HttpChaos`]: draws faults and counts attempts per request.
#[derive(Debug, Clone)]
pub struct HttpChaosState {
    config: HttpChaos,
    rng: SplitMix64,
    streaks: BTreeMap<String, u32>,
    max_attempts: u32,
    injected: usize,
}

impl HttpChaosState {
    /// Decides the fate of one request. `method` and `path` (without the query) identify it:
    /// consecutive faulted requests with the same key count as attempts of one call; a request
    /// that gets through ends the streak.
    pub fn draw(&mut self, method: &str, path: &str) -> Option<HttpFault> {
        let key = format!("{} {path}", method.to_ascii_uppercase());
        let attempt = {
            let a = self.streaks.entry(key.clone()).or_insert(0);
            *a += 1;
            *a
        };
        self.max_attempts = self.max_attempts.max(attempt);
        let eligible = !(self.config.mutating_only
            && matches!(method.to_ascii_uppercase().as_str(), "GET" | "HEAD"));
        let roll = self.rng.unit();
        let fault = if !eligible
            || roll >= self.config.probability
            || self.config.max_consecutive.is_some_and(|n| attempt > n)
        {
            None
        } else {
            let reject = |status| HttpFault::Reject {
                status,
                retry_after: None,
            };
            Some(match self.rng.below(10) {
                0 => reject(408),
                1 => HttpFault::Reject {
                    status: 429,
                    retry_after: Some(RetryAfter::Seconds(1 + self.rng.below(5))),
                },
                2 => HttpFault::Reject {
                    status: 429,
                    retry_after: Some(RetryAfter::Date(1 + self.rng.below(5))),
                },
                3 => reject(500),
                4 => reject(502),
                // Half the 503s say when to come back, as a 429 does.
                5 => HttpFault::Reject {
                    status: 503,
                    retry_after: (self.rng.below(2) == 0)
                        .then(|| RetryAfter::Seconds(1 + self.rng.below(5))),
                },
                6 => reject(504),
                7 => HttpFault::Lose { status: 408 },
                8 => HttpFault::Lose { status: 502 },
                _ => HttpFault::Lose { status: 504 },
            })
        };
        match fault {
            Some(_) => self.injected += 1,
            None => {
                self.streaks.remove(&key);
            }
        }
        fault
    }

    /// How long to hold the next response, if at all.
    pub fn latency(&mut self) -> Option<Duration> {
        self.rng
            .delay(self.config.latency_probability, self.config.max_latency)
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.injected
    }

    /// The most attempts one request took (faulted ones plus the one that got through).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults_and_streaks_are_capped() {
        let run = || {
            let mut s = HttpChaos::new(7, 0.9).max_consecutive(3).start();
            (0..200)
                .map(|i| s.draw("POST", &format!("/apps/{}", i % 3)))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let mut s = HttpChaos::new(7, 1.0).max_consecutive(3).start();
        let faults: Vec<_> = (0..8).map(|_| s.draw("POST", "/x").is_some()).collect();
        assert_eq!(
            faults,
            [true, true, true, false, true, true, true, false],
            "three faults, then one through"
        );
        assert_eq!(s.max_attempts(), 4);
        assert_eq!(s.injected(), 6);
    }

    #[test]
    fn every_kind_appears_and_reads_can_be_spared() {
        let mut s = HttpChaos::new(1, 1.0).start();
        let (mut lost, mut dated, mut seconds) = (0, 0, 0);
        for i in 0..500 {
            match s.draw("PATCH", &format!("/{i}")).expect("probability 1") {
                HttpFault::Lose { .. } => lost += 1,
                HttpFault::Reject {
                    status: 429,
                    retry_after: Some(RetryAfter::Date(_)),
                } => dated += 1,
                HttpFault::Reject {
                    status: 429,
                    retry_after: Some(RetryAfter::Seconds(_)),
                } => seconds += 1,
                HttpFault::Reject {
                    status: 429,
                    retry_after: None,
                } => panic!("a 429 carries a hint"),
                HttpFault::Reject { .. } => {}
            }
        }
        assert!(
            lost > 0 && dated > 0 && seconds > 0,
            "{lost} {dated} {seconds}"
        );
        let statuses: std::collections::BTreeSet<u16> = {
            let mut s = HttpChaos::new(2, 1.0).start();
            (0..500)
                .map(|i| s.draw("POST", &format!("/{i}")).unwrap().status())
                .collect()
        };
        assert_eq!(
            statuses.into_iter().collect::<Vec<_>>(),
            [408, 429, 500, 502, 503, 504]
        );
        let mut s = HttpChaos::new(3, 1.0).mutating_only().start();
        assert!(s.draw("GET", "/a").is_none());
        assert!(s.draw("DELETE", "/a").is_some());
    }

    #[test]
    fn random_strings_are_seeded_and_bounded() {
        let a = random_strings(9, 50, &["/", "%", "é"], 4);
        assert_eq!(a, random_strings(9, 50, &["/", "%", "é"], 4));
        assert_ne!(a, random_strings(10, 50, &["/", "%", "é"], 4));
        for s in &a {
            let pieces = s.chars().count();
            assert!((1..=4).contains(&pieces), "{s:?}");
        }
        assert_eq!(percent_decode("a%2Fb%20%C3%A9%zz"), "a/b é%zz");
    }

    #[test]
    fn retry_after_dates_parse_back_to_the_hint() {
        for secs in 1..=5 {
            let v = RetryAfter::Date(secs).header_value();
            let when = jiff::fmt::rfc2822::parse(&v)
                .expect("an RFC 9110 date")
                .timestamp();
            // Milliseconds: what a client computes right after reading the header.
            let wait = when.as_millisecond() - jiff::Timestamp::now().as_millisecond();
            let secs = secs as i64;
            assert!(
                (secs * 1000..=(secs + 2) * 1000).contains(&wait),
                "{v}: {wait} ms for {secs} s"
            );
        }
        assert_eq!(RetryAfter::Seconds(4).header_value(), "4");
    }
}
