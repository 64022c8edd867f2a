//! Where key-set fetches and key-file polls run: one thread with its own current-thread
//! tokio runtime, started on first use and stopped when the last owner lets go.
//!
//! Why not the proxy workers? They are current-thread runtimes, one per core: a fetch
//! spawned there lives and dies with that worker, and a slow identity provider would hold
//! its timers and connections on a thread that should serve requests. Nor the runtime of
//! whoever compiled the table: a file watcher thread has none, and the controller's may be
//! busy or gone. A runtime owned by the auth registry lives exactly as long as the caches
//! that use it, and a request only ever waits on a `watch` channel (runtime-agnostic) for a
//! fetch that runs here.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::{error, info_span, Instrument};

/// The auth runtime thread; dropping it stops the runtime (its tasks are cancelled).
struct Background {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl Background {
    fn start() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("weir-auth")
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("weir-auth".into())
            .spawn(move || {
                // Returns when the sender is dropped: the runtime and its tasks go with it.
                let _ = rt.block_on(stopped);
            })?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }
}

/// A runtime started the first time something is spawned on it.
#[derive(Default)]
pub struct LazyRuntime {
    started: OnceLock<Option<Background>>,
}

impl LazyRuntime {
    fn handle(&self) -> Option<&Handle> {
        self.started
            .get_or_init(|| match Background::start() {
                Ok(b) => Some(b),
                Err(e) => {
                    error!("cannot start the auth thread (key sets will not be fetched): {e}");
                    None
                }
            })
            .as_ref()
            .map(|b| &b.handle)
    }
}

/// Where a cache spawns its background work.
#[derive(Clone)]
pub enum Spawner {
    /// The registry's own runtime (the gateway).
    Lazy(Arc<LazyRuntime>),
    /// A given runtime (unit tests with a paused clock).
    Handle(Handle),
}

impl Spawner {
    /// Spawns `fut` with a span naming `what`.
    pub fn spawn<F>(&self, what: &str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let fut = fut.instrument(info_span!("auth", task = %what));
        match self {
            Spawner::Lazy(rt) => {
                if let Some(h) = rt.handle() {
                    h.spawn(fut);
                }
            }
            Spawner::Handle(h) => {
                h.spawn(fut);
            }
        }
    }
}
