//! Per-client limiter state stays bounded: wave after wave of distinct clients does not grow
//! the process. Alone in its own test binary so RSS belongs to this test only.

use std::time::Duration;

use weir::model::{ClientKey, Rate};
use weir::proxy::qos::ClientLimiter;

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[test]
fn memory_stays_flat_across_waves_of_distinct_clients() {
    // Refills one token per microsecond with burst 1: idle buckets are full almost at once.
    let limiter = ClientLimiter::new(
        Rate {
            max_rate: 1_000_000,
            capacity: 1,
            every: Duration::from_secs(1),
        },
        ClientKey::Header("x-client".into()),
    );
    const WAVE: usize = 200_000;
    let mut after_wave = Vec::new();
    for wave in 0..6 {
        for i in 0..WAVE {
            assert!(limiter.try_acquire(&format!("w{wave}-c{i}")));
        }
        assert_eq!(limiter.tracked(), WAVE);
        std::thread::sleep(Duration::from_millis(5));
        limiter.forget_idle();
        assert_eq!(
            limiter.tracked(),
            0,
            "idle clients forgotten after wave {wave}"
        );
        after_wave.push(rss_kib());
    }
    // 1.2 million distinct clients in all; after the first waves warm the allocator, the
    // resident size must not keep climbing.
    let settled = after_wave[1];
    let last = *after_wave.last().unwrap();
    assert!(
        last <= settled + 16 * 1024,
        "RSS grew from {settled} KiB to {last} KiB over waves: {after_wave:?}"
    );
}
