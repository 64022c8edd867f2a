//! Giving the pages of a replaced table back to the system.
//!
//! A publish allocates the new table's changed parts and, once the last request on the old
//! table is done, frees the old ones. glibc's allocator keeps freed memory in its heaps and
//! returns it to the system only from the top of a heap, so over many publishes the process
//! keeps the high-water mark of every table it built interleaved with live data: at 10,000
//! endpoints RSS grew by ~10% over 100 changes with a live heap that did not grow.
//! `malloc_trim(0)` hands every whole free page back (`MADV_DONTNEED`), wherever it is.
//!
//! It runs once, [`DELAY`] after a publish (later publishes within that time share it), on
//! the blocking pool: it walks the allocator's free lists with each arena's lock held in
//! turn, which must not happen on a proxy worker. Only on glibc (with the `mimalloc` feature
//! it trims only what C code allocated; mimalloc returns its own memory).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long after a publish the trim runs: long enough for requests on the old table to
/// finish and free it.
pub const DELAY: Duration = Duration::from_secs(1);

/// Schedules trims: at most one waiting at a time.
#[derive(Debug)]
pub struct Trimmer {
    /// The runtime it was made in: local mode publishes from its file watcher's thread,
    /// which has none.
    runtime: Option<tokio::runtime::Handle>,
    scheduled: Arc<AtomicBool>,
    runs: Arc<std::sync::atomic::AtomicU64>,
}

impl Trimmer {
    /// A trimmer whose trims run on the current Tokio runtime (none outside one: then
    /// [`Trimmer::schedule`] does nothing).
    pub fn on_current_runtime() -> Self {
        Self {
            runtime: tokio::runtime::Handle::try_current().ok(),
            scheduled: Arc::default(),
            runs: Arc::default(),
        }
    }

    /// Schedules a trim [`DELAY`] from now unless one is already waiting; callable from any
    /// thread.
    pub fn schedule(&self) {
        if !SUPPORTED {
            return;
        }
        let Some(rt) = &self.runtime else {
            return;
        };
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let (scheduled, runs) = (self.scheduled.clone(), self.runs.clone());
        rt.spawn(async move {
            tokio::time::sleep(DELAY).await;
            // Cleared before the trim: a publish during it schedules the next one.
            scheduled.store(false, Ordering::Release);
            let _ = tokio::task::spawn_blocking(trim).await;
            runs.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Trims run so far.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

const SUPPORTED: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // The one foreign call in Weir: glibc has no safe binding for it.
fn trim() {
    extern "C" {
        /// glibc: releases free memory from the heaps (every whole free page since 2.8).
        fn malloc_trim(pad: usize) -> std::os::raw::c_int;
    }
    let started = std::time::Instant::now();
    // SAFETY: malloc_trim takes no pointers and is thread-safe (it locks each arena).
    let released = unsafe { malloc_trim(0) } != 0;
    tracing::debug!(
        released,
        took_us = started.elapsed().as_micros() as u64,
        "freed heap pages returned to the system"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn publishes_within_the_delay_share_one_trim() {
        let t = Trimmer::on_current_runtime();
        for _ in 0..5 {
            t.schedule();
        }
        tokio::time::sleep(DELAY * 2).await;
        // The blocking pool is real time: wait for the trim itself.
        for _ in 0..1000 {
            if t.runs() > 0 {
                break;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
        }
        let expected = u64::from(SUPPORTED);
        assert_eq!(t.runs(), expected);
        t.schedule();
        tokio::time::sleep(DELAY * 2).await;
        for _ in 0..1000 {
            if t.runs() > expected {
                break;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(t.runs(), 2 * expected, "a later publish gets its own trim");
    }

    #[test]
    fn outside_a_runtime_nothing_is_scheduled() {
        let t = Trimmer::on_current_runtime();
        t.schedule();
        assert!(!t.scheduled.load(Ordering::Relaxed));
    }

    /// Local mode publishes from its watcher's thread: the trim still runs, on the runtime
    /// the trimmer was made in.
    #[test]
    fn a_publish_from_a_plain_thread_is_trimmed_on_the_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let t = rt.block_on(async { Trimmer::on_current_runtime() });
        std::thread::scope(|s| {
            s.spawn(|| t.schedule());
        });
        assert_eq!(t.scheduled.load(Ordering::Relaxed), SUPPORTED);
        let started = std::time::Instant::now();
        while t.runs() < u64::from(SUPPORTED) && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(t.runs(), u64::from(SUPPORTED));
    }
}
