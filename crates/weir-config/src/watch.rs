//! Watches the configuration files and reports changes. It polls file metadata (size,
//! modification and change times, inode: a few syscalls) every interval (longer for a
//! directory of many files, so the polling stays cheap) and reads the files
//! only when that changes; a content fingerprint then skips touches that change nothing.
//! Polling sees every way a file can change, including Kubernetes ConfigMap symlink swaps,
//! and needs no platform notification API. Every [`FULL_CHECK_EVERY`] polls the content is
//! compared anyway, in case a writer kept size and timestamps.
//!
//! A half-written file is never loaded. A file replaced whole (a new inode: `mv` of a
//! finished temporary file, an editor's atomic save, the ConfigMap `..data` symlink swap)
//! is complete when it appears, so it is read at once. A file written in place (the same
//! inode, or a new path) may still be growing: it is read once it has stayed unchanged for
//! [`SETTLE`]. Either way the metadata is taken again after reading, and a read that raced
//! a writer is thrown away and retried. An empty file is refused by the loader, so the
//! moment between a truncation and the write that follows never replaces the routes.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, warn};

use super::{from_sources_cached, is_config_file, read_sources, ConfigError, ConvertCache, Loaded};

/// Default poll interval (metadata only, so it can be short).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(10);

/// The watcher waits at least this many times as long as a look at the metadata took, so
/// a directory of thousands of files costs at most a few per cent of a core.
const IDLE_PER_BUSY: u32 = 20;

/// Polls between full content comparisons.
pub const FULL_CHECK_EVERY: u32 = 40;

/// How long a file written in place must stay unchanged before it is read.
pub const SETTLE: Duration = Duration::from_millis(20);

/// Stack of the watcher thread: parsing recurses once per nesting level of a document (up
/// to the parser's limit), and the default 2 MiB is tight for that in unoptimised builds.
const STACK: usize = 16 << 20;

/// A fingerprint of the configuration's bytes.
pub fn fingerprint(sources: &[(PathBuf, Vec<u8>)]) -> u64 {
    let mut h = DefaultHasher::new();
    sources.hash(&mut h);
    h.finish()
}

/// What the file system says about one file, without reading it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Meta {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
    inode: u64,
}

/// What the file system says about the configuration files (and, for a directory, the
/// directory itself first).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<Meta>);

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let one = |p: &Path| -> std::io::Result<Meta> {
        let m = std::fs::metadata(p)?;
        Ok(Meta {
            path: p.to_path_buf(),
            len: m.len(),
            modified: m.modified().ok(),
            changed: (m.ctime(), m.ctime_nsec()),
            inode: m.ino(),
        })
    };
    let meta = std::fs::metadata(path)?;
    if !meta.is_dir() {
        return Ok(Stamp(vec![one(path)?]));
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        // The files the loader reads, not temporary files or notes beside them.
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            || !is_config_file(&p)
        {
            continue;
        }
        if let Ok(e) = one(&p) {
            entries.push(e);
        }
    }
    entries.sort();
    entries.insert(0, one(path)?);
    Ok(Stamp(entries))
}

impl Stamp {
    /// Whether every file that differs from `before` was replaced whole (a new inode at a
    /// path that existed) or removed: then nothing can be half-written. The directory
    /// entry itself changes with every rename into it and is not a file being written.
    fn replaced_whole_since(&self, before: &Stamp, dir: bool) -> bool {
        self.0.iter().skip(usize::from(dir)).all(|now| {
            match before.0.iter().find(|b| b.path == now.path) {
                Some(b) => b == now || b.inode != now.inode,
                None => false,
            }
        })
    }
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
        .stack_size(STACK)
        .spawn(move || {
            let mut last = initial;
            let mut last_stamp = stamp(&path).ok();
            let mut last_error: Option<String> = None;
            let mut ticks = 0u32;
            let mut gap = interval;
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(gap);
                ticks = ticks.wrapping_add(1);
                let looked = Instant::now();
                let now = stamp(&path);
                gap = interval.max(looked.elapsed() * IDLE_PER_BUSY);
                let now = match now {
                    Ok(now) => now,
                    Err(e) => {
                        // Gone (being replaced, or deleted): say so once, look again later.
                        let text = e.to_string();
                        if last_error.as_deref() != Some(&text) {
                            warn!(path = %path.display(), "cannot read configuration: {text}");
                            last_error = Some(text);
                        }
                        continue;
                    }
                };
                let unchanged = last_stamp.as_ref() == Some(&now);
                if unchanged && !ticks.is_multiple_of(FULL_CHECK_EVERY) {
                    continue;
                }
                match poll(&path, last, last_stamp.as_ref(), now, &mut cache) {
                    Ok(Poll::Same(now)) => last_stamp = Some(now),
                    Ok(Poll::Busy) => {}
                    Ok(Poll::Changed(fp, now, loaded)) => {
                        last = fp;
                        last_stamp = Some(now);
                        last_error = None;
                        on_change(*loaded);
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

/// What one look at the files found.
enum Poll {
    /// The content is what was loaded last (the files were touched, or not at all).
    Same(Stamp),
    /// A writer is at work: look again at the next tick.
    Busy,
    /// New content, with its fingerprint, its stamp and what it loads into.
    Changed(u64, Stamp, Box<Result<Loaded, ConfigError>>),
}

/// One read of the files, whose metadata was `now` (and `before` at the last load).
fn poll(
    path: &Path,
    last: u64,
    before: Option<&Stamp>,
    mut now: Stamp,
    cache: &mut ConvertCache,
) -> Result<Poll, ConfigError> {
    let dir = path.is_dir();
    if !before.is_some_and(|b| now.replaced_whole_since(b, dir)) {
        // Written in place: it may still be growing. Read it once it has been still.
        std::thread::sleep(SETTLE);
        match stamp(path) {
            Ok(again) if again == now => {}
            _ => return Ok(Poll::Busy),
        }
    }
    let sources = read_sources(path)?;
    // A writer that changed the files while they were read left a mix: read again later.
    match stamp(path) {
        Ok(after) if after == now => now = after,
        _ => return Ok(Poll::Busy),
    }
    let fp = fingerprint(&sources);
    if fp == last {
        return Ok(Poll::Same(now));
    }
    let started = Instant::now();
    let loaded = from_sources_cached(&sources, dir, cache);
    debug!(
        load_ms = started.elapsed().as_secs_f64() * 1e3,
        "configuration read and validated"
    );
    Ok(Poll::Changed(fp, now, Box::new(loaded)))
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

    #[test]
    fn only_files_replaced_whole_skip_the_settle_wait() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("g.yaml");
        std::fs::write(&f, "a: 1\n").unwrap();
        let before = stamp(&f).unwrap();
        let tmp = dir.path().join("g.tmp");
        std::fs::write(&tmp, "a: 2\n").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        let renamed = stamp(&f).unwrap();
        assert!(renamed.replaced_whole_since(&before, false));
        std::fs::write(&f, "a: 33\n").unwrap();
        assert!(
            !stamp(&f).unwrap().replaced_whole_since(&renamed, false),
            "written in place"
        );

        let before = stamp(dir.path()).unwrap();
        std::fs::write(&tmp, "a: 4\n").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        assert!(
            stamp(dir.path())
                .unwrap()
                .replaced_whole_since(&before, true),
            "the directory's own times change with the rename"
        );
        let before = stamp(dir.path()).unwrap();
        std::fs::write(dir.path().join("h.yaml"), "b: 1\n").unwrap();
        assert!(
            !stamp(dir.path())
                .unwrap()
                .replaced_whole_since(&before, true),
            "a new file may still be being written"
        );
    }
}
