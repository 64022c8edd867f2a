//! Quality of service: token-bucket rate limits (governor) for endpoints, clients and
//! backends, and per-backend circuit breakers. All of it lives in the RouteTable; a reload
//! that leaves a limit's settings unchanged hands the same state to the new table.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus::IntGauge;
use tokio::time::Instant;
use tracing::warn;

use weir_model::{self as model, ClientKey, Rate};

fn quota(rate: &Rate) -> Quota {
    let per_token = (rate.every / rate.max_rate.max(1)).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(rate.capacity.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(per_token)
        .expect("period is at least 1ns")
        .allow_burst(burst)
}

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

/// A limit per client key (`clientMaxRate`).
pub struct ClientLimiter {
    /// Rate settings.
    pub rate: Rate,
    /// How clients are identified.
    pub key: ClientKey,
    inner: DefaultKeyedRateLimiter<String>,
}

impl ClientLimiter {
    /// Empty state for `rate` keyed by `key`.
    pub fn new(rate: Rate, key: ClientKey) -> Self {
        Self {
            rate,
            key,
            inner: RateLimiter::keyed(quota(&rate)),
        }
    }

    /// Takes one token from `client`'s bucket.
    pub fn try_acquire(&self, client: &str) -> bool {
        // Avoid an allocation for clients already known is not possible with governor's
        // owned-key API; one small String per request is the price.
        self.inner.check_key(&client.to_string()).is_ok()
    }

    /// Forgets clients whose buckets are full again, so memory follows the number of
    /// recently active clients rather than every client ever seen.
    pub fn forget_idle(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    /// Number of clients with state.
    pub fn tracked(&self) -> usize {
        self.inner.len()
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once.
    Open,
    /// One trial call decides.
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 open, 2 half-open (the metrics encoding).
    pub fn as_number(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
        window_start: Instant,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        trial_running: bool,
    },
}

/// How a call that held a [`Permit`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200/201 and decoded.
    Success,
    /// Counts towards opening.
    Failure,
    /// Neither (reported through `returnDetails`, or cancelled before the deadline).
    Ignored,
}

/// KrakenD's circuit breaker: opens after more than `maxErrors` consecutive failures
/// within `interval`, stays open for `timeout`, then lets one trial call decide.
pub struct CircuitBreaker {
    /// The settings it was built from.
    pub config: model::CircuitBreaker,
    label: String,
    state: Mutex<State>,
    gauge: Option<IntGauge>,
}

/// Permission to make one call; report its outcome with [`CircuitBreaker::record`].
#[must_use]
pub struct Permit {
    trial: bool,
}

impl CircuitBreaker {
    /// A closed breaker; `label` names the backend in logs, `gauge` (if any) follows the
    /// state (0 closed, 1 open, 2 half-open).
    pub fn new(config: model::CircuitBreaker, label: String, gauge: Option<IntGauge>) -> Self {
        if let Some(g) = &gauge {
            g.set(0);
        }
        Self {
            config,
            label,
            state: Mutex::new(State::Closed {
                failures: 0,
                window_start: Instant::now(),
            }),
            gauge,
        }
    }

    fn show(&self, state: BreakerState) {
        if let Some(g) = &self.gauge {
            g.set(i64::from(state.as_number()));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (every
        // transition is one assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state (for metrics).
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call: `None` while open (or while the half-open trial runs).
    pub fn acquire(&self) -> Option<Permit> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Some(Permit { trial: false }),
            State::Open { until } if Instant::now() < until => None,
            State::Open { .. }
            | State::HalfOpen {
                trial_running: false,
            } => {
                warn!(backend = %self.label, "circuit breaker half-open: letting one trial call through");
                *state = State::HalfOpen {
                    trial_running: true,
                };
                self.show(BreakerState::HalfOpen);
                Some(Permit { trial: true })
            }
            State::HalfOpen {
                trial_running: true,
            } => None,
        }
    }

    /// Records how the call behind `permit` ended.
    pub fn record(&self, permit: Permit, outcome: Outcome) {
        let now = Instant::now();
        let mut state = self.lock();
        if permit.trial {
            *state = match outcome {
                Outcome::Success => {
                    warn!(backend = %self.label, "circuit breaker closed: trial call succeeded");
                    self.show(BreakerState::Closed);
                    State::Closed {
                        failures: 0,
                        window_start: now,
                    }
                }
                Outcome::Failure => {
                    warn!(backend = %self.label, "circuit breaker re-opened: trial call failed");
                    self.show(BreakerState::Open);
                    State::Open {
                        until: now + self.config.timeout,
                    }
                }
                Outcome::Ignored => State::HalfOpen {
                    trial_running: false,
                },
            };
            return;
        }
        let State::Closed {
            failures,
            window_start,
        } = &mut *state
        else {
            // Opened by other calls meanwhile; this late answer changes nothing.
            return;
        };
        if !self.config.interval.is_zero()
            && now.duration_since(*window_start) >= self.config.interval
        {
            *failures = 0;
            *window_start = now;
        }
        match outcome {
            Outcome::Success => *failures = 0,
            Outcome::Ignored => {}
            Outcome::Failure => {
                *failures += 1;
                if *failures > self.config.max_errors {
                    warn!(
                        backend = %self.label,
                        failures = *failures,
                        open_for = ?self.config.timeout,
                        "circuit breaker opened"
                    );
                    self.show(BreakerState::Open);
                    *state = State::Open {
                        until: now + self.config.timeout,
                    };
                }
            }
        }
    }
}

/// Holds a breaker permit for one call; if the call is dropped unfinished, it counts as a
/// failure when the deadline has passed (a timeout) and is ignored otherwise (the client
/// went away, or a concurrent call won).
pub struct CallGuard<'a> {
    breaker: &'a CircuitBreaker,
    permit: Option<Permit>,
    deadline: Instant,
}

impl<'a> CallGuard<'a> {
    /// Wraps a permit.
    pub fn new(breaker: &'a CircuitBreaker, permit: Permit, deadline: Instant) -> Self {
        Self {
            breaker,
            permit: Some(permit),
            deadline,
        }
    }

    /// Reports the outcome.
    pub fn finish(mut self, outcome: Outcome) {
        if let Some(p) = self.permit.take() {
            self.breaker.record(p, outcome);
        }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            let outcome = if Instant::now() >= self.deadline {
                Outcome::Failure
            } else {
                Outcome::Ignored
            };
            self.breaker.record(p, outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(max_errors: u32) -> CircuitBreaker {
        CircuitBreaker::new(
            model::CircuitBreaker {
                interval: Duration::from_secs(60),
                timeout: Duration::from_secs(10),
                max_errors,
            },
            "test".into(),
            None,
        )
    }

    fn fail(b: &CircuitBreaker) {
        let p = b.acquire().expect("closed");
        b.record(p, Outcome::Failure);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_more_than_max_errors_consecutive_failures() {
        let b = breaker(2);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.acquire().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = breaker(1);
        fail(&b);
        let p = b.acquire().unwrap();
        b.record(p, Outcome::Success);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_interval_do_not_add_up() {
        let b = breaker(1);
        fail(&b);
        tokio::time::advance(Duration::from_secs(61)).await;
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_trial_closes_or_reopens() {
        let b = breaker(0);
        fail(&b);
        assert!(b.acquire().is_none());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let trial = b.acquire().expect("one trial");
        assert!(b.acquire().is_none(), "only one trial at a time");
        b.record(trial, Outcome::Failure);
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(10)).await;
        let trial = b.acquire().expect("next trial");
        b.record(trial, Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.acquire().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_gauge_follows_the_state() {
        let gauge = IntGauge::new("g", "g").unwrap();
        let b = CircuitBreaker::new(
            model::CircuitBreaker {
                interval: Duration::ZERO,
                timeout: Duration::from_secs(1),
                max_errors: 0,
            },
            "g".into(),
            Some(gauge.clone()),
        );
        assert_eq!(gauge.get(), 0);
        fail(&b);
        assert_eq!(gauge.get(), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        let trial = b.acquire().unwrap();
        assert_eq!(gauge.get(), 2);
        b.record(trial, Outcome::Success);
        assert_eq!(gauge.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn ignored_outcomes_do_not_count() {
        let b = breaker(0);
        for _ in 0..5 {
            let p = b.acquire().unwrap();
            b.record(p, Outcome::Ignored);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_calls_count_only_after_the_deadline() {
        let b = breaker(0);
        let now = Instant::now();
        drop(CallGuard::new(
            &b,
            b.acquire().unwrap(),
            now + Duration::from_secs(1),
        ));
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "cancelled before the deadline"
        );
        let guard = CallGuard::new(&b, b.acquire().unwrap(), now + Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(2)).await;
        drop(guard);
        assert_eq!(b.state(), BreakerState::Open, "timed out");
    }

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

    #[test]
    fn client_buckets_are_independent() {
        let l = ClientLimiter::new(
            Rate {
                max_rate: 1,
                capacity: 1,
                every: Duration::from_secs(3600),
            },
            ClientKey::Ip(None),
        );
        assert!(l.try_acquire("a"));
        assert!(!l.try_acquire("a"));
        assert!(l.try_acquire("b"));
        assert_eq!(l.tracked(), 2);
    }
}
