//! The key-set cache with a scripted source and tokio's paused clock: first fetch, the
//! unknown-`kid` refresh and its 10 s limit, stale sets, failures and background retries.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

type Answer = Arc<Mutex<Result<String, String>>>;

/// A source whose answer the test sets, counting fetches.
struct Scripted {
    answer: Answer,
    fetches: Arc<AtomicUsize>,
}

impl Fetch for Scripted {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Bytes, FetchError>> + Send + '_>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let answer = self.answer.lock().unwrap().clone();
        Box::pin(async move { answer.map(Bytes::from).map_err(FetchError::Invalid) })
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}

fn set(kids: &[&str]) -> Result<String, String> {
    let keys: Vec<String> = kids
        .iter()
        .map(|k| format!(r#"{{"kty":"oct","kid":"{k}","k":"c2VjcmV0","alg":"HS256"}}"#))
        .collect();
    Ok(format!(r#"{{"keys":[{}]}}"#, keys.join(",")))
}

struct Fixture {
    cache: Arc<JwksCache>,
    answer: Answer,
    fetches: Arc<AtomicUsize>,
}

impl Fixture {
    fn new(first: Result<String, String>, ttl: Duration) -> Self {
        let fetches = Arc::new(AtomicUsize::new(0));
        let answer = Arc::new(Mutex::new(first));
        let source = Scripted {
            answer: answer.clone(),
            fetches: fetches.clone(),
        };
        let cache = JwksCache::new(
            Box::new(source),
            ttl,
            Spawner::Handle(tokio::runtime::Handle::current()),
        );
        Self {
            cache,
            answer,
            fetches,
        }
    }

    fn answer(&self, a: Result<String, String>) {
        *self.answer.lock().unwrap() = a;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    async fn lookup(&self, kid: &str) -> Result<usize, Miss> {
        self.cache
            .key_for(Some(kid), Algorithm::HS256)
            .await
            .map(|(_, i)| i)
    }

    /// Lets spawned fetches run (the paused clock does not move).
    async fn settle(&self) {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }
}

const TTL: Duration = Duration::from_secs(900);

#[tokio::test(start_paused = true)]
async fn the_first_request_waits_for_the_first_fetch() {
    let f = Fixture::new(set(&["a"]), TTL);
    assert_eq!(f.fetches(), 0, "nothing is fetched before it is needed");
    assert!(f.lookup("a").await.is_ok());
    assert!(f.lookup("a").await.is_ok());
    assert_eq!(f.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_refreshes_at_most_once_per_ten_seconds() {
    let f = Fixture::new(set(&["a"]), TTL);
    assert!(f.lookup("a").await.is_ok());
    // Rotation: b appears, a goes.
    f.answer(set(&["b"]));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(f.lookup("b").await, Err(Miss::UnknownKid));
    assert_eq!(f.lookup("zzz").await, Err(Miss::UnknownKid));
    assert_eq!(f.fetches(), 1, "refused without asking the source again");
    tokio::time::advance(MIN_REFRESH).await;
    assert!(f.lookup("b").await.is_ok(), "refreshed once 10 s passed");
    assert_eq!(f.fetches(), 2);
    assert_eq!(
        f.lookup("a").await,
        Err(Miss::UnknownKid),
        "the old key is gone"
    );
    assert_eq!(f.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stale_set_is_refreshed_in_the_background_and_kept_when_that_fails() {
    let f = Fixture::new(set(&["a"]), Duration::from_secs(60));
    assert!(f.lookup("a").await.is_ok());
    f.answer(Err("identity provider down".into()));
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(f.lookup("a").await.is_ok(), "served from the stale set");
    f.settle().await;
    assert_eq!(f.fetches(), 2, "the stale set triggered one refresh");
    assert!(f.lookup("a").await.is_ok(), "the last good set is kept");
    assert_eq!(f.fetches(), 2, "no second refresh within 10 s");
    f.answer(set(&["a", "b"]));
    tokio::time::advance(MIN_REFRESH).await;
    assert!(f.lookup("a").await.is_ok());
    f.settle().await;
    assert_eq!(f.fetches(), 3);
    assert!(f.lookup("b").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_failed_first_fetch_answers_no_keys_and_retries_in_the_background() {
    let f = Fixture::new(Err("connection refused".into()), TTL);
    assert_eq!(f.lookup("a").await, Err(Miss::NoKeys));
    assert_eq!(f.lookup("a").await, Err(Miss::NoKeys));
    assert_eq!(f.fetches(), 1, "requests do not hammer a failing source");
    // Retries after 1 s, 2 s, ...
    tokio::time::advance(Duration::from_millis(1100)).await;
    f.settle().await;
    assert_eq!(f.fetches(), 2);
    f.answer(set(&["a"]));
    tokio::time::advance(Duration::from_millis(2100)).await;
    f.settle().await;
    assert_eq!(f.fetches(), 3);
    assert!(f.lookup("a").await.is_ok(), "the retry loaded the set");
    tokio::time::advance(Duration::from_secs(60)).await;
    f.settle().await;
    assert_eq!(f.fetches(), 3, "retries stop once a set is loaded");
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_cache_is_dropped() {
    let f = Fixture::new(Err("down".into()), TTL);
    assert_eq!(f.lookup("a").await, Err(Miss::NoKeys));
    let fetches = f.fetches.clone();
    drop(f);
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[test]
fn key_sets_keep_signature_keys_only() {
    let doc = r#"{"keys": [
        {"kty": "oct", "alg": "A128KW", "k": "GawgguFyGrWKav7AX4VKUg", "kid": "sim1"},
        {"kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow", "kid": "sim2", "alg": "HS256"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "enc", "use": "enc"},
        {"kty": "weird", "kid": "w"},
        {"kty": "oct", "k": "c2VjcmV0"}
    ]}"#;
    let set = KeySet::parse(doc.as_bytes()).unwrap();
    assert_eq!(set.len(), 2, "sim2 and the kid-less key");
    assert_eq!(set.find(Some("sim2"), Algorithm::HS256), Some(0));
    assert_eq!(
        set.find(Some("sim2"), Algorithm::HS384),
        None,
        "pinned to HS256"
    );
    assert_eq!(
        set.find(Some("sim2"), Algorithm::RS256),
        None,
        "not an RSA key"
    );
    assert_eq!(set.find(Some("sim1"), Algorithm::HS256), None);
    assert_eq!(
        set.find(None, Algorithm::HS384),
        Some(1),
        "the one unpinned key"
    );
    assert_eq!(set.find(None, Algorithm::HS256), None, "two fit: ambiguous");
    assert!(KeySet::parse(b"[]").is_err());
    assert!(KeySet::parse(b"not json").is_err());
}
