//! Per-client rate limits (`clientMaxRate`): one token bucket per client, in bounded memory.
//!
//! Client keys come from the request (an address, a header, a path parameter), so the
//! client chooses their length and their number. Three bounds hold whatever it sends:
//! * a key longer than [`MAX_CLIENT_KEY_LEN`] bytes is refused before anything is stored
//!   (the caller answers 429);
//! * a key is stored as a 128-bit keyed hash (two SipHash-1-3 runs under random
//!   per-process keys, `std::hash::RandomState`): 16 bytes whatever its length, and without
//!   the keys nobody can craft two client keys that share a bucket;
//! * a limiter tracks at most `max_clients` clients ([`DEFAULT_MAX_CLIENTS`]); a new client
//!   beyond that evicts the least recently seen one, whose bucket is the likeliest to be
//!   full (idle) again, in O(1), and the eviction is counted.
//!
//! The buckets follow the GCRA exactly as governor does (same emission interval and burst
//! tolerance), timed by `tokio::time::Instant` so that tests can pause the clock.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use prometheus::IntCounter;
use tokio::time::Instant;

use weir_model::{ClientKey, Rate};

use super::limiter::{burst, emission_interval};

/// Longest client key accepted, in bytes: enough for any address, token or id, small
/// enough that hashing a refused key costs nothing.
pub const MAX_CLIENT_KEY_LEN: usize = 256;

/// Clients a limiter tracks at most unless told otherwise: about 8 MB of heap when full
/// (11 MB of resident memory measured), whatever the keys.
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

/// Limiters tracking fewer clients than this per shard use one shard (an exact LRU).
const CLIENTS_PER_SHARD: usize = 4096;

/// Shards of a large limiter, so concurrent requests rarely wait for the same lock.
const MAX_SHARDS: usize = 16;

/// No node (end of the recency list).
const NIL: u32 = u32::MAX;

/// What a client limit decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientDecision {
    /// A token was taken: the request goes on.
    Allowed,
    /// The client's bucket is empty (429).
    Limited,
    /// The key is longer than [`MAX_CLIENT_KEY_LEN`]; nothing was stored (429).
    KeyTooLong,
}

/// A limit per client key (`clientMaxRate`).
pub struct ClientLimiter {
    /// Rate settings.
    pub rate: Rate,
    /// How clients are identified.
    pub key: ClientKey,
    max_clients: usize,
    /// Emission interval (one token), in nanoseconds.
    t: u64,
    /// Burst tolerance: `t × (capacity − 1)`, in nanoseconds.
    tau: u64,
    /// Time zero of the stored arrival times.
    start: Instant,
    hashers: [RandomState; 2],
    shards: Box<[Mutex<Shard>]>,
    evictions: AtomicU64,
    eviction_metric: Option<IntCounter>,
}

/// A client key as stored: its 128-bit keyed hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u64, u64);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The shard was chosen by the other half.
        state.write_u64(self.1);
    }
}

/// Keys are already keyed hashes: the index uses them as they are.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is ever called; this keeps any other use well defined.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One client's bucket, linked into its shard's recency list.
#[derive(Debug, Clone, Copy)]
struct Node {
    key: Key,
    /// GCRA theoretical arrival time, in nanoseconds since `start`; a value at or before
    /// now means a full bucket.
    tat: u64,
    /// Towards the most recently seen.
    prev: u32,
    /// Towards the least recently seen.
    next: u32,
}

/// Buckets in a slab, threaded on a recency list, found through a hash index: a lookup, an
/// insertion and an eviction are each O(1).
struct Shard {
    capacity: usize,
    index: HashMap<Key, u32, BuildHasherDefault<PreHashed>>,
    nodes: Vec<Node>,
    /// Most recently seen.
    head: u32,
    /// Least recently seen: the next to go.
    tail: u32,
}

impl Shard {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            index: HashMap::default(),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    fn unlink(&mut self, i: u32) {
        let Node { prev, next, .. } = self.nodes[i as usize];
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old_head = self.head;
        let node = &mut self.nodes[i as usize];
        node.prev = NIL;
        node.next = old_head;
        match old_head {
            NIL => self.tail = i,
            h => self.nodes[h as usize].prev = i,
        }
        self.head = i;
    }

    /// The bucket of `key`, now the most recently seen: found, created, or (when the shard
    /// is full) made from the least recently seen one. The flag says whether a client was
    /// evicted.
    fn touch(&mut self, key: Key) -> (u32, bool) {
        if let Some(&i) = self.index.get(&key) {
            if self.head != i {
                self.unlink(i);
                self.push_front(i);
            }
            return (i, false);
        }
        let fresh = Node {
            key,
            tat: 0,
            prev: NIL,
            next: NIL,
        };
        if self.nodes.len() < self.capacity {
            // The capacity is below `NIL`, so the index fits.
            let i = self.nodes.len() as u32;
            self.nodes.push(fresh);
            self.index.insert(key, i);
            self.push_front(i);
            return (i, false);
        }
        let i = self.tail;
        self.unlink(i);
        self.index.remove(&self.nodes[i as usize].key);
        self.nodes[i as usize] = fresh;
        self.index.insert(key, i);
        self.push_front(i);
        (i, true)
    }

    /// Drops every bucket that is full again at `now`, keeping the order of the others,
    /// and gives back the memory of the dropped ones.
    fn forget_idle(&mut self, now: u64) {
        let mut busy = Vec::new();
        let mut i = self.tail;
        while i != NIL {
            let node = self.nodes[i as usize];
            if node.tat > now {
                busy.push((node.key, node.tat));
            }
            i = node.prev;
        }
        let mut kept = Shard::new(self.capacity);
        kept.nodes.reserve_exact(busy.len());
        kept.index.reserve(busy.len());
        // Oldest first, so the most recently seen ends up at the head again.
        for (key, tat) in busy {
            let (i, _) = kept.touch(key);
            kept.nodes[i as usize].tat = tat;
        }
        *self = kept;
    }
}

impl ClientLimiter {
    /// Empty state for `rate` keyed by `key`, tracking at most [`DEFAULT_MAX_CLIENTS`]
    /// clients, evictions not exported.
    pub fn new(rate: Rate, key: ClientKey) -> Self {
        Self::bounded(rate, key, DEFAULT_MAX_CLIENTS, None)
    }

    /// Empty state for `rate` keyed by `key`, tracking at most `max_clients` clients (at
    /// least one); each eviction increments `evictions` when given (the
    /// `weir_rate_limit_client_evictions_total` handle of the endpoint).
    pub fn bounded(
        rate: Rate,
        key: ClientKey,
        max_clients: usize,
        evictions: Option<IntCounter>,
    ) -> Self {
        let max_clients = max_clients.clamp(1, NIL as usize - 1);
        let shards = (max_clients / CLIENTS_PER_SHARD).clamp(1, MAX_SHARDS);
        // Shard capacities add up to `max_clients` exactly.
        let shards = (0..shards)
            .map(|i| {
                let extra = usize::from(i < max_clients % shards);
                Mutex::new(Shard::new(max_clients / shards + extra))
            })
            .collect();
        let t = nanos(emission_interval(&rate).as_nanos());
        let tau = t.saturating_mul(u64::from(burst(&rate).get() - 1));
        Self {
            rate,
            key,
            max_clients,
            t,
            tau,
            start: Instant::now(),
            hashers: [RandomState::new(), RandomState::new()],
            shards,
            evictions: AtomicU64::new(0),
            eviction_metric: evictions,
        }
    }

    /// Takes one token from `client`'s bucket; false when it is empty or the key is too
    /// long (see [`ClientLimiter::check`]).
    pub fn try_acquire(&self, client: &str) -> bool {
        self.check(client) == ClientDecision::Allowed
    }

    /// Takes one token from `client`'s bucket, saying why when it cannot.
    pub fn check(&self, client: &str) -> ClientDecision {
        if client.len() > MAX_CLIENT_KEY_LEN {
            return ClientDecision::KeyTooLong;
        }
        let key = self.hash(client);
        let now = self.since_start(Instant::now());
        let (allowed, evicted) = {
            let mut shard = self.shard(key);
            let (i, evicted) = shard.touch(key);
            let tat = &mut shard.nodes[i as usize].tat;
            // GCRA: conforming unless the bucket would overflow its burst tolerance.
            let allowed = now >= tat.saturating_sub(self.tau);
            if allowed {
                *tat = (*tat).max(now).saturating_add(self.t);
            }
            (allowed, evicted)
        };
        if evicted {
            self.evictions.fetch_add(1, Ordering::Relaxed);
            if let Some(metric) = &self.eviction_metric {
                metric.inc();
            }
        }
        if allowed {
            ClientDecision::Allowed
        } else {
            ClientDecision::Limited
        }
    }

    /// Forgets clients whose buckets are full again, so memory follows the number of
    /// recently active clients rather than every client ever seen. Walks every bucket: run
    /// it off the async workers.
    pub fn forget_idle(&self) {
        self.forget_idle_at(Instant::now());
    }

    /// [`ClientLimiter::forget_idle`] as of `now` (a later instant forgets the clients
    /// whose buckets will be full by then).
    pub fn forget_idle_at(&self, now: Instant) {
        let now = self.since_start(now);
        for shard in self.shards.iter() {
            lock(shard).forget_idle(now);
        }
    }

    /// Number of clients with state.
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| lock(s).index.len()).sum()
    }

    /// Most clients tracked at once.
    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// Clients evicted so far to stay within [`ClientLimiter::max_clients`].
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    fn hash(&self, client: &str) -> Key {
        let [a, b] = &self.hashers;
        Key(a.hash_one(client), b.hash_one(client))
    }

    fn shard(&self, key: Key) -> MutexGuard<'_, Shard> {
        // The shard count is at most 16, so the remainder fits.
        lock(&self.shards[(key.0 % self.shards.len() as u64) as usize])
    }

    fn since_start(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.start).as_nanos())
    }
}

/// Nanoseconds as a `u64` (584 years), saturating.
fn nanos(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Every shard operation finishes its relinking before anything can panic, so a
    // poisoned lock still guards a consistent shard.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
