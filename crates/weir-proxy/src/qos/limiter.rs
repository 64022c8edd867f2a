//! A token bucket shared by every caller: endpoint `maxRate` and backend `rateLimit`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use weir_model::Rate;

/// A limit shared by every caller (endpoint `maxRate`, backend `rateLimit`).
pub struct Limiter {
    /// The settings it was built from (to decide reuse on reload).
    pub rate: Rate,
    inner: DefaultDirectRateLimiter,
}

impl Limiter {
    /// A full bucket for `rate`.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            inner: RateLimiter::direct(quota(&rate)),
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn try_acquire(&self) -> bool {
        self.inner.check().is_ok()
    }
}

/// The time one token takes to come back: `every / maxRate`, at least 1 ns.
pub(super) fn emission_interval(rate: &Rate) -> Duration {
    (rate.every / rate.max_rate.max(1)).max(Duration::from_nanos(1))
}

/// The bucket size: `capacity`, at least 1.
pub(super) fn burst(rate: &Rate) -> NonZeroU32 {
    NonZeroU32::new(rate.capacity.max(1)).unwrap_or(NonZeroU32::MIN)
}

fn quota(rate: &Rate) -> Quota {
    Quota::with_period(emission_interval(rate))
        .expect("period is at least 1ns")
        .allow_burst(burst(rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_bucket_starts_full_and_empties() {
        let l = Limiter::new(Rate {
            max_rate: 2,
            capacity: 3,
            every: Duration::from_secs(3600),
        });
        assert!(l.try_acquire() && l.try_acquire() && l.try_acquire());
        assert!(!l.try_acquire());
    }
}
