//! Tokens that passed every check of one endpoint, remembered so that the next request with
//! the same token skips the signature (an RSA verification costs more than the rest of a
//! proxied request). A hit is the exact same token string, checked against the same key
//! set generation; only the time-bound claims (`exp`, `nbf`) are checked again. Everything
//! else a token is checked for (signature, issuer, audience, roles, scopes) cannot change
//! while its bytes and the key set stay the same. A key set refresh invalidates every entry.
//!
//! Bounded: [`CAPACITY`] tokens per endpoint, in shards with a read-write lock each (the
//! workers run on several threads and mostly read: a worker descheduled while it reads
//! never blocks another reader); a full shard is emptied. A flood of distinct valid tokens therefore
//! costs what it would without the cache, plus the inserts; invalid tokens are never kept.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::claims::Claims;

/// Most tokens remembered per endpoint.
pub const CAPACITY: usize = 4096;

const SHARDS: usize = 8;

struct Entry {
    claims: Arc<Claims>,
    generation: u64,
    exp: Option<f64>,
    nbf: Option<f64>,
}

/// The verified tokens of one endpoint.
pub struct Verified {
    hasher: RandomState,
    shards: [RwLock<HashMap<Box<str>, Entry>>; SHARDS],
}

impl Default for Verified {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
        }
    }
}

fn number(claims: &Claims, name: &str) -> Option<f64> {
    claims.get(name).and_then(Value::as_f64)
}

impl Verified {
    fn shard(&self, token: &str) -> &RwLock<HashMap<Box<str>, Entry>> {
        &self.shards[(self.hasher.hash_one(token) as usize) % SHARDS]
    }

    /// The claims of `token` if it was verified against key set `generation` and is still
    /// within its `exp`/`nbf` (with `leeway` seconds) at `now` (seconds since the epoch).
    pub fn get(&self, token: &str, generation: u64, now: u64, leeway: u64) -> Option<Arc<Claims>> {
        let shard = self.shard(token).read().unwrap_or_else(|p| p.into_inner());
        let e = shard.get(token)?;
        let now = now as f64;
        let leeway = leeway as f64;
        let timely = e.exp.is_some_and(|exp| exp >= now - leeway)
            && e.nbf.is_none_or(|nbf| nbf <= now + leeway);
        (e.generation == generation && timely).then(|| e.claims.clone())
    }

    /// Remembers a token that passed every check against key set `generation`.
    pub fn insert(&self, token: &str, claims: Arc<Claims>, generation: u64) {
        let entry = Entry {
            exp: number(&claims, "exp"),
            nbf: number(&claims, "nbf"),
            claims,
            generation,
        };
        let mut shard = self.shard(token).write().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= CAPACITY / SHARDS {
            shard.clear();
        }
        shard.insert(token.into(), entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Arc<Claims> {
        Arc::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn hits_need_the_same_token_generation_and_time_window() {
        let v = Verified::default();
        v.insert("t", claims(json!({"exp": 100, "nbf": 50})), 1);
        assert!(v.get("t", 1, 60, 0).is_some());
        assert!(v.get("t2", 1, 60, 0).is_none(), "another token");
        assert!(v.get("t", 2, 60, 0).is_none(), "the key set changed");
        assert!(v.get("t", 1, 101, 0).is_none(), "expired");
        assert!(v.get("t", 1, 101, 5).is_some(), "within the leeway");
        assert!(v.get("t", 1, 40, 0).is_none(), "not valid yet");
        v.insert("no-exp", claims(json!({})), 1);
        assert!(v.get("no-exp", 1, 0, 0).is_none());
    }

    #[test]
    fn stays_bounded() {
        let v = Verified::default();
        for i in 0..(CAPACITY * 3) {
            v.insert(&format!("t{i}"), claims(json!({"exp": 100})), 1);
        }
        let total: usize = v.shards.iter().map(|s| s.read().unwrap().len()).sum();
        assert!(total <= CAPACITY, "{total}");
    }
}
