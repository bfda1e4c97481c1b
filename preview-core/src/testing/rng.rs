//! The seeded random source behind [`Chaos`](super::Chaos) and the test kit's HTTP fault plans
//! (`preview_testkit::http_chaos`): the same seed gives the same faults.

use std::time::Duration;

/// splitmix64: tiny, seedable, good enough to spread faults (never used for secrets).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, n)` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A delay with `probability`, uniformly below `max`.
    pub fn delay(&mut self, probability: f64, max: Duration) -> Option<Duration> {
        if max.is_zero() || self.unit() >= probability {
            return None;
        }
        let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        Some(Duration::from_nanos(self.below(nanos.max(1))))
    }
}
