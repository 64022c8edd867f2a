//! Watches the configuration files and reports changes. It polls file metadata (size,
//! modification time, inode: a few syscalls) every interval and reads the files only when
//! that changes; a content fingerprint then skips touches that change nothing. Polling sees
//! every way a file can change, including Kubernetes ConfigMap symlink swaps, and needs no
//! platform notification API. Every [`FULL_CHECK_EVERY`] polls the content is compared
//! anyway, in case a writer kept size and timestamp.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tracing::{debug, warn};

use super::{from_sources_cached, read_sources, ConfigError, ConvertCache, Loaded};

/// Default poll interval (metadata only, so it can be short).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(25);

/// Polls between full content comparisons.
pub const FULL_CHECK_EVERY: u32 = 40;

/// How long the files must stay unchanged before they are read as one configuration, so a
/// writer caught half-way is not loaded.
const SETTLE: Duration = Duration::from_millis(20);

/// A fingerprint of the configuration's bytes.
pub fn fingerprint(sources: &[(PathBuf, Vec<u8>)]) -> u64 {
    let mut h = DefaultHasher::new();
    sources.hash(&mut h);
    h.finish()
}

/// What the file system says about the configuration files, without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<(PathBuf, u64, Option<SystemTime>, u64)>);

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| -> std::io::Result<(PathBuf, u64, Option<SystemTime>, u64)> {
        let m = std::fs::metadata(p)?;
        Ok((p.to_path_buf(), m.len(), m.modified().ok(), m.ino()))
    };
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok(Stamp(vec![one(path)?]));
    }
    let mut entries = vec![one(path)?];
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if let Ok(e) = one(&p) {
            entries.push(e);
        }
    }
    entries.sort();
    Ok(Stamp(entries))
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
/// reason it is invalid); it runs on the watcher thread, off the request path. `cache`
/// holds the conversions of the load that produced `initial`.
pub fn spawn(
    path: PathBuf,
    interval: Duration,
    initial: u64,
    mut cache: ConvertCache,
    mut on_change: impl FnMut(Result<Loaded, ConfigError>) + Send + 'static,
) -> WatchHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("weir-config-watch".into())
        .spawn(move || {
            let mut last = initial;
            let mut last_stamp = stamp(&path).ok();
            let mut last_error: Option<String> = None;
            let mut ticks = 0u32;
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(interval);
                ticks = ticks.wrapping_add(1);
                let now = stamp(&path).ok();
                if now.is_some() && now == last_stamp && !ticks.is_multiple_of(FULL_CHECK_EVERY) {
                    continue;
                }
                match poll(&path, last, &mut cache) {
                    Ok(None) => last_stamp = now,
                    Ok(Some((fp, loaded))) => {
                        last = fp;
                        last_stamp = now;
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

/// One read: `None` when the content did not change (or is still being written).
#[allow(clippy::type_complexity)]
fn poll(
    path: &Path,
    last: u64,
    cache: &mut ConvertCache,
) -> Result<Option<(u64, Result<Loaded, ConfigError>)>, ConfigError> {
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
    let started = std::time::Instant::now();
    let loaded = from_sources_cached(&again, path.is_dir(), cache);
    debug!(
        load_ms = started.elapsed().as_secs_f64() * 1e3,
        "configuration read and validated"
    );
    Ok(Some((fp, loaded)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_change_with_content_and_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("g.yaml");
        std::fs::write(&f, "a: 1\n").unwrap();
        let s1 = stamp(&f).unwrap();
        assert_eq!(stamp(&f).unwrap(), s1);
        let tmp = dir.path().join("g.tmp");
        std::fs::write(&tmp, "a: 2\n").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        assert_ne!(stamp(&f).unwrap(), s1, "a rename gives a new inode");
        let s2 = stamp(dir.path()).unwrap();
        std::fs::write(dir.path().join("h.yaml"), "b: 1\n").unwrap();
        assert_ne!(
            stamp(dir.path()).unwrap(),
            s2,
            "a new file in the directory"
        );
    }
}
