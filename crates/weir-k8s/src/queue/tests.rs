//! The status queue and the token bucket, on tokio's paused clock.

use super::*;

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("ns", name)
}

#[test]
fn newest_state_wins_and_keeps_its_place() {
    let q = StatusQueue::new(8);
    assert_eq!(q.push(key("a"), 1), Pushed::Queued);
    assert_eq!(q.push(key("b"), 1), Pushed::Queued);
    assert_eq!(q.push(key("a"), 2), Pushed::Replaced);
    assert_eq!(q.push(key("a"), 3), Pushed::Replaced);
    assert_eq!(q.len(), 2);
    assert_eq!(
        q.pop(),
        Some((key("a"), 3)),
        "one write, of the newest state"
    );
    assert_eq!(q.pop(), Some((key("b"), 1)));
    assert_eq!(q.pop(), None);
}

#[test]
fn queue_is_bounded_and_removal_makes_room() {
    let q = StatusQueue::new(2);
    assert_eq!(q.push(key("a"), 1), Pushed::Queued);
    assert_eq!(q.push(key("b"), 1), Pushed::Queued);
    assert_eq!(q.room_left(), 0);
    assert_eq!(q.push(key("c"), 1), Pushed::Full);
    // A waiting object still takes its newer state when full.
    assert_eq!(q.push(key("b"), 2), Pushed::Replaced);
    q.remove(&key("a"));
    assert_eq!(q.push(key("c"), 1), Pushed::Queued);
    assert_eq!(q.pop(), Some((key("b"), 2)));
    assert_eq!(q.pop(), Some((key("c"), 1)));
    assert!(q.is_empty());
}

#[test]
fn a_newer_state_waits_for_the_write_in_flight() {
    let q = StatusQueue::new(8);
    q.push(key("a"), 1);
    let (k, v) = q.pop().unwrap();
    assert_eq!(v, 1);
    assert_eq!(q.push(key("a"), 2), Pushed::Queued);
    assert!(!q.has_ready(), "two writes of one object must not race");
    assert_eq!(q.pop(), None);
    q.done(&k);
    assert_eq!(q.pop(), Some((key("a"), 2)));
}

#[test]
fn failed_writes_come_back_as_keys_to_look_at_again() {
    let q: Arc<StatusQueue<u32>> = StatusQueue::new(8);
    q.recheck(key("a"));
    q.recheck(key("b"));
    assert_eq!(q.take_rechecks(), [key("a"), key("b")]);
    assert!(q.take_rechecks().is_empty());
}

#[test]
fn clear_forgets_everything_waiting() {
    let q = StatusQueue::new(8);
    q.push(key("a"), 1);
    q.push(key("b"), 1);
    q.clear();
    assert!(q.is_empty());
    assert_eq!(q.pop(), None);
}

#[tokio::test(start_paused = true)]
async fn bucket_allows_a_burst_then_the_rate() {
    let mut b = TokenBucket::new(20.0, 5);
    let start = Instant::now();
    for _ in 0..5 {
        assert!(b.try_take(1), "the burst is there at once");
    }
    assert!(!b.try_take(1));
    assert_eq!(b.wait_for(1), Duration::from_millis(50));
    // 100 more writes take 100 / 20 = 5 s of the paused clock, not less.
    for _ in 0..100 {
        b.take(1).await;
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_millis(5_100),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn bucket_refills_only_up_to_the_burst() {
    let mut b = TokenBucket::new(10.0, 3);
    tokio::time::advance(Duration::from_secs(60)).await;
    let mut n = 0;
    while b.try_take(1) {
        n += 1;
    }
    assert_eq!(n, 3);
    // Asking for more than the burst waits for the burst, not forever.
    b.take(10).await;
}

#[test]
fn zero_rate_is_unlimited() {
    let mut b = TokenBucket::new(0.0, 1);
    for _ in 0..1000 {
        assert!(b.try_take(1));
    }
}
