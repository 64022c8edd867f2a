//! Polls the configuration files and reports changes. Polling (rather than inotify) sees
//! every way a file can change, including Kubernetes ConfigMap symlink swaps, and a content
//! fingerprint skips touches that change nothing.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, warn};

use super::{from_sources, read_sources, ConfigError, Loaded};

/// Default poll interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);

/// How long the files must stay unchanged before they are read as one configuration, so a
/// writer caught half-way is not loaded.
const SETTLE: Duration = Duration::from_millis(20);

/// A fingerprint of the configuration's bytes.
pub fn fingerprint(sources: &[(PathBuf, Vec<u8>)]) -> u64 {
    let mut h = DefaultHasher::new();
    sources.hash(&mut h);
    h.finish()
}

/// Stops the watcher thread when dropped.
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Watches `path` on its own thread. `on_change` gets every new configuration (or the
/// reason it is invalid); it runs on the watcher thread, off the request path.
pub fn spawn(
    path: PathBuf,
    interval: Duration,
    initial: u64,
    mut on_change: impl FnMut(Result<Loaded, ConfigError>) + Send + 'static,
) -> WatchHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("weir-config-watch".into())
        .spawn(move || {
            let mut last = initial;
            let mut last_error: Option<String> = None;
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(interval);
                match poll(&path, last) {
                    Ok(None) => {}
                    Ok(Some((fp, loaded))) => {
                        last = fp;
                        last_error = None;
                        on_change(loaded);
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if last_error.as_deref() != Some(&text) {
                            warn!(path = %path.display(), "cannot read configuration: {text}");
                            last_error = Some(text);
                        }
                    }
                }
            }
            debug!("config watcher stopped");
        })
        .expect("spawning the watcher thread");
    WatchHandle {
        stop,
        thread: Some(thread),
    }
}

/// One poll: `None` when nothing changed (or the files are still being written).
#[allow(clippy::type_complexity)]
fn poll(path: &Path, last: u64) -> Result<Option<(u64, Result<Loaded, ConfigError>)>, ConfigError> {
    let sources = read_sources(path)?;
    let fp = fingerprint(&sources);
    if fp == last {
        return Ok(None);
    }
    std::thread::sleep(SETTLE);
    let again = read_sources(path)?;
    if fingerprint(&again) != fp {
        return Ok(None);
    }
    Ok(Some((fp, from_sources(&again, path.is_dir()))))
}
