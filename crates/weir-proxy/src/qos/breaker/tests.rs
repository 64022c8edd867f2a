use super::*;
use std::time::Duration;

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
