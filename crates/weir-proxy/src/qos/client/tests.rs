use super::*;
use std::time::Duration;

fn rate(max_rate: u32, capacity: u32, every: Duration) -> Rate {
    Rate {
        max_rate,
        capacity,
        every,
    }
}

/// One token an hour: a bucket stays empty for the whole test.
fn hourly() -> Rate {
    rate(1, 1, Duration::from_secs(3600))
}

fn header() -> ClientKey {
    ClientKey::Header("x-client".into())
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

#[tokio::test(start_paused = true)]
async fn buckets_hold_the_burst_and_refill_one_token_per_interval() {
    // Two tokens a second, burst three.
    let l = ClientLimiter::new(rate(2, 3, Duration::from_secs(1)), header());
    assert!(l.try_acquire("c") && l.try_acquire("c") && l.try_acquire("c"));
    assert_eq!(l.check("c"), ClientDecision::Limited);
    tokio::time::advance(Duration::from_millis(499)).await;
    assert_eq!(l.check("c"), ClientDecision::Limited);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(l.check("c"), ClientDecision::Allowed);
    assert_eq!(l.check("c"), ClientDecision::Limited);
    // Long idle: the bucket is full again, but holds no more than the burst.
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..3 {
        assert_eq!(l.check("c"), ClientDecision::Allowed);
    }
    assert_eq!(l.check("c"), ClientDecision::Limited);
}

#[test]
fn tracked_clients_never_pass_the_bound_and_evictions_are_counted() {
    let metric = IntCounter::new("evictions", "test").unwrap();
    let l = ClientLimiter::bounded(hourly(), header(), 1_000, Some(metric.clone()));
    for i in 0..5_000 {
        assert!(
            l.try_acquire(&format!("client-{i}")),
            "a new client has a full bucket"
        );
        assert!(l.tracked() <= 1_000);
    }
    assert_eq!(l.tracked(), 1_000);
    assert_eq!(l.evictions(), 4_000);
    assert_eq!(metric.get(), 4_000);
}

#[test]
fn a_sharded_limiter_holds_its_bound_too() {
    let l = ClientLimiter::new(hourly(), header());
    assert_eq!(l.max_clients(), DEFAULT_MAX_CLIENTS);
    let total = 2 * DEFAULT_MAX_CLIENTS + 12_345;
    for i in 0..total {
        assert!(l.try_acquire(&format!("client-{i}")));
        if i % 10_000 == 0 {
            assert!(l.tracked() <= DEFAULT_MAX_CLIENTS);
        }
    }
    let tracked = l.tracked();
    assert!(tracked <= DEFAULT_MAX_CLIENTS, "{tracked}");
    // Shards fill evenly: hardly any room is left unused.
    assert!(tracked > DEFAULT_MAX_CLIENTS * 99 / 100, "{tracked}");
    assert_eq!(l.evictions(), (total - tracked) as u64);
}

#[test]
fn the_least_recently_seen_client_is_evicted_first() {
    let l = ClientLimiter::bounded(hourly(), header(), 3, None);
    for c in ["a", "b", "c"] {
        assert!(l.try_acquire(c));
    }
    // `a` comes back (and is refused): `b` is now the least recently seen.
    assert!(!l.try_acquire("a"));
    assert!(l.try_acquire("d"));
    assert_eq!(l.evictions(), 1);
    assert!(!l.try_acquire("a"), "a kept its empty bucket");
    assert!(!l.try_acquire("c"), "c kept its empty bucket");
    assert!(!l.try_acquire("d"), "d kept its empty bucket");
    // Order is now d, c, a: `b` comes back with a full bucket and evicts `a`.
    assert!(
        l.try_acquire("b"),
        "b was evicted: its bucket is full again"
    );
    assert_eq!(l.evictions(), 2);
    assert!(l.try_acquire("a"), "a was evicted");
    assert_eq!(l.tracked(), 3);
}

#[test]
fn forgetting_keeps_the_recency_order() {
    let l = ClientLimiter::bounded(hourly(), header(), 3, None);
    for c in ["a", "b", "c", "a"] {
        l.check(c);
    }
    // Nothing is idle, so the shard is rebuilt with all three, `b` still the oldest.
    l.forget_idle();
    assert_eq!(l.tracked(), 3);
    assert!(l.try_acquire("d"));
    assert!(!l.try_acquire("a") && !l.try_acquire("c") && !l.try_acquire("d"));
    assert_eq!(l.evictions(), 1);
    assert_eq!(l.tracked(), 3);
}

#[test]
fn a_key_longer_than_the_cap_is_refused_and_not_stored() {
    let l = ClientLimiter::new(hourly(), header());
    let long = "k".repeat(100 * 1024);
    assert_eq!(l.check(&long), ClientDecision::KeyTooLong);
    assert!(!l.try_acquire(&long));
    assert_eq!(l.tracked(), 0);
    let at_cap = "k".repeat(MAX_CLIENT_KEY_LEN);
    assert_eq!(l.check(&at_cap), ClientDecision::Allowed);
    assert_eq!(l.check(&at_cap), ClientDecision::Limited);
    assert_eq!(l.check(&format!("{at_cap}k")), ClientDecision::KeyTooLong);
    assert_eq!(l.tracked(), 1);
}

#[tokio::test(start_paused = true)]
async fn idle_clients_are_forgotten_and_busy_ones_kept() {
    // One token a millisecond, burst one: a bucket is full again 1 ms after its request.
    let l = ClientLimiter::new(rate(1000, 1, Duration::from_secs(1)), header());
    for i in 0..300 {
        assert!(l.try_acquire(&format!("client-{i}")));
    }
    assert_eq!(l.tracked(), 300);
    l.forget_idle();
    assert_eq!(
        l.tracked(),
        300,
        "no time has passed: every bucket is empty"
    );
    tokio::time::advance(Duration::from_micros(999)).await;
    l.forget_idle();
    assert_eq!(l.tracked(), 300, "not quite refilled");
    tokio::time::advance(Duration::from_micros(1)).await;
    assert!(l.try_acquire("client-0"));
    l.forget_idle();
    assert_eq!(l.tracked(), 1, "only client-0 has an empty bucket");
    assert!(!l.try_acquire("client-0"), "and it kept its state");
    l.forget_idle_at(Instant::now() + Duration::from_millis(1));
    assert_eq!(l.tracked(), 0);
}

#[test]
fn keys_are_hashed_under_per_limiter_secret_keys() {
    let a = ClientLimiter::new(hourly(), header());
    let b = ClientLimiter::new(hourly(), header());
    assert_eq!(a.hash("client"), a.hash("client"));
    assert_ne!(a.hash("client"), a.hash("client2"));
    assert_ne!(a.hash("client"), b.hash("client"));
}
