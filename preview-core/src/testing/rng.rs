//! The seeded random source behind [`Chaos`](super::Chaos): the same seed gives the same faults.
//! (The HTTP fakes' fault plan in the test kit, `preview_testkit::http_chaos`, draws from the same
//! splitmix64 generator.)

use std::time::Duration;

/// splitmix64: tiny, seedable, good enough to spread faults (never used for secrets).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A delay with `probability`, uniformly below `max`.
    pub(crate) fn delay(&mut self, probability: f64, max: Duration) -> Option<Duration> {
        if max.is_zero() || self.unit() >= probability {
            return None;
        }
        let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        Some(Duration::from_nanos(self.below(nanos.max(1))))
    }
}
