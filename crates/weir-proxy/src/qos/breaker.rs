//! Per-backend circuit breakers (KrakenD semantics) and the guard that reports a call's end.

use std::sync::{Arc, Mutex};

use prometheus::IntGauge;
use tokio::time::Instant;
use tracing::warn;

use weir_model as model;

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
    label: Arc<str>,
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
    pub fn new(config: model::CircuitBreaker, label: Arc<str>, gauge: Option<IntGauge>) -> Self {
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
mod tests;
