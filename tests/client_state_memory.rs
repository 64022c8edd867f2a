//! Per-client limiter state stays bounded whatever the clients send: huge keys, and wave
//! after wave of distinct keys. Alone in its own test binary so RSS belongs to this test
//! only, and one test function so that nothing else runs in the process meanwhile.

use std::time::Duration;

use weir::model::{ClientKey, Rate};
use weir::proxy::qos::{ClientDecision, ClientLimiter, DEFAULT_MAX_CLIENTS, MAX_CLIENT_KEY_LEN};

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// Writes `i` in decimal over the start of `buf`, making the key distinct from the others.
fn stamp(buf: &mut [u8], i: usize) {
    let digits = format!("{i:010}");
    buf[..digits.len()].copy_from_slice(digits.as_bytes());
}

#[test]
fn client_state_memory_stays_bounded() {
    // Refills one token per microsecond with burst 1: idle buckets are full almost at once.
    let limiter = ClientLimiter::new(
        Rate {
            max_rate: 1_000_000,
            capacity: 1,
            every: Duration::from_secs(1),
        },
        ClientKey::Header("x-client".into()),
    );

    // 10,000 keys of 100 KB each took RSS from 10 MB to 991 MB when keys were stored whole.
    let mut huge = vec![b'k'; 100 * 1024];
    let before = rss_kib();
    for i in 0..10_000 {
        stamp(&mut huge, i);
        let key = std::str::from_utf8(&huge).unwrap();
        assert_eq!(limiter.check(key), ClientDecision::KeyTooLong);
    }
    assert_eq!(limiter.tracked(), 0);
    let after = rss_kib();
    assert!(
        after <= before + 2 * 1024,
        "10,000 refused 100 KB keys grew RSS from {before} KiB to {after} KiB"
    );

    // Keys of the largest accepted size, far more of them than the limiter may track: its
    // memory is bounded by the number of clients, not their keys or how many came by.
    let mut key = vec![b'c'; MAX_CLIENT_KEY_LEN];
    let before = rss_kib();
    let total = 3 * DEFAULT_MAX_CLIENTS;
    for i in 0..total {
        stamp(&mut key, i);
        assert!(limiter.try_acquire(std::str::from_utf8(&key).unwrap()));
    }
    assert!(limiter.tracked() <= DEFAULT_MAX_CLIENTS);
    assert_eq!(
        limiter.evictions(),
        (total - limiter.tracked()) as u64,
        "every client beyond the bound evicted one"
    );
    let full = rss_kib();
    assert!(
        full <= before + 16 * 1024,
        "{} tracked clients grew RSS from {before} KiB to {full} KiB",
        limiter.tracked()
    );

    // Wave after wave of distinct clients, forgotten once idle: the resident size must not
    // keep climbing.
    let mut after_wave = Vec::new();
    for wave in 0..6 {
        for i in 0..DEFAULT_MAX_CLIENTS {
            stamp(&mut key, (wave + 3) * DEFAULT_MAX_CLIENTS + i);
            assert!(limiter.try_acquire(std::str::from_utf8(&key).unwrap()));
        }
        assert!(limiter.tracked() <= DEFAULT_MAX_CLIENTS);
        // A second on, every bucket has refilled.
        limiter.forget_idle_at(tokio::time::Instant::now() + Duration::from_secs(1));
        assert_eq!(
            limiter.tracked(),
            0,
            "idle clients forgotten after wave {wave}"
        );
        after_wave.push(rss_kib());
    }
    let settled = after_wave[1];
    let last = *after_wave.last().unwrap();
    assert!(
        last <= settled + 8 * 1024,
        "RSS grew from {settled} KiB to {last} KiB over waves: {after_wave:?}"
    );
}
