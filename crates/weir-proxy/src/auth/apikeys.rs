//! API keys from a file (`key role role...` per line, `#` comments), watched for changes.
//!
//! Keys are held as SHA-256 digests and looked up by the digest of the presented key, then
//! compared in constant time: timing can tell an attacker something about a digest at
//! most, never about a key. The file is read when the table is compiled, then polled
//! (metadata every [`POLL`], content when that changed) on the auth runtime; a failed read
//! keeps the last good keys and logs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::header::{HeaderMap, HeaderName};
use ring::digest;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use weir_model::ApiKeys;

use super::background::Spawner;
use super::{Reason, Rejection};

/// How often the key file's metadata is looked at.
pub const POLL: Duration = Duration::from_millis(500);

/// Largest key file read.
pub const MAX_KEY_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Longest key read from a request.
pub const MAX_KEY_BYTES: usize = 4096;

type Digest = [u8; 32];

fn sha256(text: &str) -> Digest {
    let d = digest::digest(&digest::SHA256, text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The keys of one file: digest → roles.
#[derive(Default)]
pub struct KeyTable {
    keys: HashMap<Digest, (Digest, Vec<String>)>,
}

impl KeyTable {
    /// Parses the file text. Lines are `key role role...`; blank lines and `#` comments are
    /// skipped; a key listed twice keeps its last line.
    pub fn parse(text: &str) -> Self {
        let mut keys = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            if let Some(key) = words.next() {
                let d = sha256(key);
                keys.insert(d, (d, words.map(str::to_string).collect()));
            }
        }
        Self { keys }
    }

    /// The roles of `key`, when it is listed.
    pub fn roles(&self, key: &str) -> Option<&[String]> {
        let presented = sha256(key);
        let (stored, roles) = self.keys.get(&presented)?;
        bool::from(stored.ct_eq(&presented)).then_some(roles.as_slice())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What the file system says about the file without reading it.
type Stamp = (u64, Option<SystemTime>, u64);

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // `metadata` follows symlinks: a Kubernetes Secret update swaps the link target.
    let m = std::fs::metadata(path)?;
    Ok((m.len(), m.modified().ok(), m.ino()))
}

fn read(path: &Path) -> Result<(Stamp, KeyTable), String> {
    let s = stamp(path).map_err(|e| e.to_string())?;
    if s.0 > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "{} bytes is above the limit of {MAX_KEY_FILE_BYTES}",
            s.0
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Ok((s, KeyTable::parse(&text)))
}

/// One key file, shared by every endpoint naming it.
pub struct KeyFile {
    path: PathBuf,
    current: ArcSwap<KeyTable>,
    stamp: std::sync::Mutex<Option<Stamp>>,
    started: AtomicBool,
    reloads: AtomicU64,
    spawner: Spawner,
}

impl KeyFile {
    /// Reads `path` now (off the request path: at table compilation); polling starts with
    /// the first request.
    pub fn open(path: &Path, spawner: Spawner) -> Arc<Self> {
        let (s, table) = match read(path) {
            Ok((s, t)) => {
                info!(file = %path.display(), keys = t.len(), "API keys loaded");
                (Some(s), t)
            }
            Err(e) => {
                warn!(file = %path.display(), "cannot read the API key file (every key is refused until it can be read): {e}");
                (None, KeyTable::default())
            }
        };
        Arc::new(Self {
            path: path.to_path_buf(),
            current: ArcSwap::from_pointee(table),
            stamp: std::sync::Mutex::new(s),
            started: AtomicBool::new(false),
            reloads: AtomicU64::new(0),
            spawner,
        })
    }

    /// The keys now.
    pub fn table(&self) -> Arc<KeyTable> {
        self.current.load_full()
    }

    /// Successful reloads since the file was opened.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Starts the poller once.
    pub fn ensure_watched(self: &Arc<Self>) {
        if self.started.load(Ordering::Relaxed) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        self.spawner.spawn("api key file poll", poll(weak));
    }

    /// Reads the file again when its metadata changed.
    pub fn poll_once(&self) {
        let now = stamp(&self.path).ok();
        {
            let last = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
            if now.is_some() && *last == now {
                return;
            }
        }
        match read(&self.path) {
            Ok((s, table)) => {
                info!(file = %self.path.display(), keys = table.len(), "API keys reloaded");
                self.current.store(Arc::new(table));
                *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
                self.reloads.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let mut last = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_some() {
                    warn!(file = %self.path.display(), "cannot read the API key file, keeping the last keys: {e}");
                }
                *last = None;
            }
        }
    }
}

async fn poll(file: Weak<KeyFile>) {
    loop {
        tokio::time::sleep(POLL).await;
        let Some(f) = file.upgrade() else { return };
        // A few syscalls: run them off the runtime thread's timers anyway.
        let _ = tokio::task::spawn_blocking(move || f.poll_once()).await;
    }
}

/// A compiled `auth.apiKeys`.
pub struct ApiKeyPlan {
    header: Option<HeaderName>,
    query: Option<String>,
    roles: Vec<String>,
    file: Arc<KeyFile>,
}

impl ApiKeyPlan {
    /// Compiles `keys` with the shared file.
    pub fn compile(keys: &ApiKeys, file: Arc<KeyFile>) -> Self {
        Self {
            header: keys
                .header
                .as_ref()
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
            query: keys.query.clone(),
            roles: keys.roles.clone(),
            file,
        }
    }

    /// The key the request carries (header first, then the query parameter).
    pub fn presented(&self, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
        if let Some(v) = self
            .header
            .as_ref()
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
        {
            return Some(v.trim().to_string());
        }
        let name = self.query.as_deref()?;
        query?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (crate::pipeline::inbound::decode_query_component(k) == name)
                .then(|| crate::pipeline::inbound::decode_query_component(v))
        })
    }

    /// Checks a presented key.
    pub fn check(&self, key: &str) -> Result<(), Rejection> {
        self.file.ensure_watched();
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(Rejection::unauthorized(Reason::ApiKey, "unknown API key"));
        }
        let table = self.file.table();
        let roles = table
            .roles(key)
            .ok_or(Rejection::unauthorized(Reason::ApiKey, "unknown API key"))?;
        if !self.roles.is_empty() && !self.roles.iter().any(|r| roles.contains(r)) {
            return Err(Rejection::forbidden(Reason::Role, "missing role"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_roles() {
        let t = KeyTable::parse("# comment\n\nk1 admin ops\n  k2  \nk1 reader\n");
        assert_eq!(t.len(), 2);
        assert_eq!(t.roles("k1").unwrap(), ["reader"]);
        assert!(t.roles("k2").unwrap().is_empty());
        assert!(t.roles("k3").is_none());
        assert!(t.roles("k").is_none());
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_vanished_one_keeps_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "old r\n").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let f = KeyFile::open(&path, Spawner::Handle(rt.handle().clone()));
        assert!(f.table().roles("old").is_some());
        let tmp = dir.path().join("keys.tmp");
        std::fs::write(&tmp, "new r\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        f.poll_once();
        assert_eq!(f.reloads(), 1);
        assert!(f.table().roles("old").is_none());
        assert!(f.table().roles("new").is_some());
        std::fs::remove_file(&path).unwrap();
        f.poll_once();
        assert!(f.table().roles("new").is_some(), "last good keys kept");
    }
}
