//! Quality of service: token-bucket rate limits for endpoints, clients and backends, and
//! per-backend circuit breakers. All of it lives in the RouteTable; a reload that leaves a
//! limit's settings unchanged hands the same state to the new table.

mod breaker;
mod client;
mod limiter;

pub use breaker::{BreakerState, CallGuard, CircuitBreaker, Outcome, Permit};
pub use client::{ClientDecision, ClientLimiter, DEFAULT_MAX_CLIENTS, MAX_CLIENT_KEY_LEN};
pub use limiter::Limiter;
