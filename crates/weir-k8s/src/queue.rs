//! The status queue between the controller loop and the status writer: bounded, keyed by
//! object, newest state wins, one write per object in flight, and a client-side token bucket
//! so that a burst of writes (10,000 after a leader change) never floods the API server.
//!
//! The controller loop pushes what each object's status should become right after it
//! published the table, so serving never waits for the API server; the writer pops at the
//! rate the bucket allows.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::index::ObjectKey;

/// Default number of objects waiting for a status write; past it the controller loop stops
/// pushing and catches up from its index once the writer has made room.
pub const DEFAULT_CAPACITY: usize = 1024;

/// What [`StatusQueue::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// A new object joined the queue.
    Queued,
    /// The object was already waiting: its state was replaced (newest wins), its place kept.
    Replaced,
    /// The queue is full; nothing was stored.
    Full,
}

struct Inner<T> {
    /// Waiting state per object (also for objects whose write is in flight: those are not
    /// in `order` until their write is done).
    items: HashMap<ObjectKey, T>,
    /// Objects ready to be written, oldest first.
    order: VecDeque<ObjectKey>,
    /// Objects whose write is in flight.
    in_flight: HashSet<ObjectKey>,
    /// Objects whose write failed: the controller loop looks at them again (with the
    /// newest state it has, never the failed one).
    recheck: Vec<ObjectKey>,
    capacity: usize,
}

/// A bounded queue of the newest state per object (see the module documentation). At most
/// `capacity` objects wait; the writes in flight are bounded by the writer.
pub struct StatusQueue<T> {
    inner: Mutex<Inner<T>>,
    /// Wakes the writer: something to write.
    ready: Notify,
    /// Wakes the controller loop: the queue has room again.
    room: Notify,
}

impl<T> StatusQueue<T> {
    /// An empty queue for at most `capacity` objects.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                items: HashMap::new(),
                order: VecDeque::new(),
                in_flight: HashSet::new(),
                recheck: Vec::new(),
                capacity: capacity.max(1),
            }),
            ready: Notify::new(),
            room: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while holding the lock leaves plain data behind, still consistent enough
        // to go on with; status writing must not stop for it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `item` as the state `key` should get. An object already waiting keeps its place
    /// and gets the newer state; a new one is refused when the queue is full.
    pub fn push(&self, key: ObjectKey, item: T) -> Pushed {
        let mut q = self.lock();
        if let Some(old) = q.items.get_mut(&key) {
            *old = item;
            return Pushed::Replaced;
        }
        if q.items.len() >= q.capacity {
            return Pushed::Full;
        }
        let in_flight = q.in_flight.contains(&key);
        q.items.insert(key.clone(), item);
        if !in_flight {
            q.order.push_back(key);
        }
        drop(q);
        self.ready.notify_one();
        Pushed::Queued
    }

    /// Forgets the state waiting for `key` (the object already has it, or is gone).
    pub fn remove(&self, key: &ObjectKey) {
        let mut q = self.lock();
        if q.items.remove(key).is_some() {
            if let Some(i) = q.order.iter().position(|k| k == key) {
                q.order.remove(i);
            }
            drop(q);
            self.room.notify_one();
        }
    }

    /// Takes the oldest waiting object and marks its write in flight: until [`Self::done`],
    /// a newer state for it waits, so two writes of one object never race.
    pub fn pop(&self) -> Option<(ObjectKey, T)> {
        let mut q = self.lock();
        let key = q.order.pop_front()?;
        let item = q.items.remove(&key)?;
        q.in_flight.insert(key.clone());
        Some((key, item))
    }

    /// The write of `key` is over: a newer state that arrived meanwhile becomes ready.
    pub fn done(&self, key: &ObjectKey) {
        let mut q = self.lock();
        q.in_flight.remove(key);
        let waiting = q.items.contains_key(key);
        if waiting {
            q.order.push_back(key.clone());
        }
        drop(q);
        if waiting {
            self.ready.notify_one();
        }
        self.room.notify_one();
    }

    /// Asks the controller loop to look at `key` again (its write failed a while ago).
    pub fn recheck(&self, key: ObjectKey) {
        self.lock().recheck.push(key);
        self.room.notify_one();
    }

    /// The objects to look at again.
    pub fn take_rechecks(&self) -> Vec<ObjectKey> {
        std::mem::take(&mut self.lock().recheck)
    }

    /// Forgets everything waiting (this replica lost the lease).
    pub fn clear(&self) {
        let mut q = self.lock();
        q.items.clear();
        q.order.clear();
        q.recheck.clear();
        drop(q);
        self.room.notify_one();
    }

    /// Objects waiting, including those whose newer state waits behind a write in flight.
    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Objects that can be pushed before the queue is full.
    pub fn room_left(&self) -> usize {
        let q = self.lock();
        q.capacity.saturating_sub(q.items.len())
    }

    /// Whether an object is ready to be popped.
    pub fn has_ready(&self) -> bool {
        !self.lock().order.is_empty()
    }

    /// Resolves once something may have become ready to pop.
    pub async fn wait_ready(&self) {
        self.ready.notified().await;
    }

    /// Resolves once room may have been made.
    pub async fn wait_room(&self) {
        self.room.notified().await;
    }
}

/// A token bucket on tokio's clock: `rate` requests per second on average, `burst` at once.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket. A `rate` of zero or less is taken as "unlimited".
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        if self.rate > 0.0 {
            let gained = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + gained).min(self.burst);
        }
        self.at = now;
    }

    /// Takes `n` tokens if they are there.
    pub fn try_take(&mut self, n: u32) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        self.refill(Instant::now());
        let n = f64::from(n);
        if self.tokens + 1e-9 >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// How long until `n` tokens are there (zero when they are now).
    pub fn wait_for(&mut self, n: u32) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        self.refill(Instant::now());
        let missing = f64::from(n).min(self.burst) - self.tokens;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.rate)
        }
    }

    /// Waits for `n` tokens and takes them (at most `burst` are ever waited for).
    pub async fn take(&mut self, n: u32) {
        let n = n.min(self.burst as u32);
        loop {
            let wait = self.wait_for(n);
            if wait.is_zero() && self.try_take(n) {
                return;
            }
            tokio::time::sleep(wait.max(Duration::from_micros(100))).await;
        }
    }
}

#[cfg(test)]
mod tests;
