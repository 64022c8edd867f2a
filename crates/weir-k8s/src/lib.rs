//! Kubernetes mode (`weir controller`): watch `Endpoint` objects (and Services), turn them
//! into the model, publish one table with the same atomic swap as local mode, and write each
//! object's status while holding the lease.
//!
//! ```text
//!  watchers ──► channel ──► index (one object's work per event) ──► Shared::publish (first)
//!  (Endpoints,              every event waiting is taken        └──► status queue ──► writer
//!   Services, settings)     before one publication                   (newest wins)    (lease holder,
//!                                                                                       rate-limited)
//! ```
//!
//! Work follows the change, not the table: a watch event converts only its object, and
//! conflicts, Service resolution and status targets are updated through indexes by route key
//! and by Service. An event that changes only status (our own write coming back) publishes
//! nothing. The table is published before any status is queued, and status writes never
//! block the loop.

pub mod index;
pub mod lease;
pub mod queue;
pub mod resource;
pub mod status;
pub mod writer;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::ListParams;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, info_span, warn, Instrument};

use crate::resource::Endpoint;
use k8s_openapi::jiff::Timestamp;
use weir_config::{self as config, watch as file_watch};
use weir_model::{Gateway, Settings};
use weir_proxy::server::{GatewayHandle, Published, Shared};
use weir_proxy::telemetry::metrics::Metrics;

use index::{Index, Object, ObjectKey, Services, Verdict};
pub use lease::LeaseOptions;
use queue::{Pushed, StatusQueue};
use writer::Pending;
pub use writer::WriterOptions;

/// Watch events handled at most before the table is published: a long burst (a relist, a
/// mass update) is served in slices instead of waiting for its end.
const MAX_BATCH: usize = 4096;

/// Objects looked at per step of a status catch-up (after a leader change, or when the
/// status queue was full), so that the loop stays responsive to watch events meanwhile.
const CATCH_UP_STEP: usize = 2048;

/// Options of `weir controller`.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Namespaces to watch; empty = all.
    pub namespaces: Vec<String>,
    /// Label selector for `Endpoint` objects.
    pub selector: Option<String>,
    /// Gateway settings file (a mounted ConfigMap), watched.
    pub config: Option<PathBuf>,
    /// Overrides the settings' port.
    pub port: Option<u16>,
    /// Overrides the settings' admin port.
    pub admin_port: Option<u16>,
    /// Address to bind instead of the settings' `listen`.
    pub bind: Option<IpAddr>,
    /// Leader election.
    pub lease: LeaseOptions,
    /// Client-side rate limit of status writes and Events.
    pub writer: WriterOptions,
    /// Objects waiting for a status write at most (see [`queue::StatusQueue`]).
    pub status_queue: usize,
    /// Where metrics are recorded (one registry per process, built by the caller).
    pub metrics: Arc<Metrics>,
}

impl ControllerOptions {
    /// Defaults: all namespaces, lease `weir-controller` in `lease_namespace`.
    pub fn new(lease_namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespaces: Vec::new(),
            selector: None,
            config: None,
            port: None,
            admin_port: None,
            bind: None,
            lease: LeaseOptions {
                namespace: lease_namespace.into(),
                name: "weir-controller".into(),
                identity: identity.into(),
                duration: Duration::from_secs(15),
            },
            writer: WriterOptions::default(),
            status_queue: queue::DEFAULT_CAPACITY,
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither in-cluster configuration nor a kubeconfig could be used.
    #[error("cannot configure the Kubernetes client (in-cluster or KUBECONFIG): {0}")]
    Client(#[source] kube::Error),
    /// The CRD is not installed.
    #[error("the Endpoint CRD (endpoints.weir.dev) is not installed in this cluster; install it first: kubectl apply -f crds/")]
    CrdMissing,
    /// The API server could not be asked.
    #[error("cannot list Endpoint objects on the API server: {0}")]
    Probe(#[source] kube::Error),
    /// The settings file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The first (empty) table could not be built.
    #[error(transparent)]
    Setup(#[from] weir_proxy::server::SetupError),
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] weir_proxy::server::BindError),
}

/// The result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running controller: listeners plus background tasks (stopped when dropped).
pub struct ControllerHandle {
    /// The gateway listeners.
    pub gateway: GatewayHandle,
    _tasks: Tasks,
    _settings_watch: Option<file_watch::WatchHandle>,
}

impl ControllerHandle {
    /// Stops the controller tasks and drains the listeners for up to `drain`.
    pub async fn shutdown(self, drain: Duration) {
        drop(self._tasks);
        self.gateway.shutdown(drain).await;
    }
}

/// Background tasks, aborted when dropped.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// What the watchers tell the main loop.
enum Msg {
    Endpoints(usize, Box<Event<DeserializeGuard<Endpoint>>>),
    Services(usize, Box<Event<PartialObjectMeta<Service>>>),
    Settings(Box<Settings>),
}

/// `weir controller`: serve until a signal, then stop gracefully (readiness 503 at once,
/// still serving for `stop.delay`, then draining for up to `stop.drain`).
pub async fn run(opts: ControllerOptions, stop: weir_proxy::server::Stop) -> Result<()> {
    let handle = start(opts).await?;
    weir_proxy::server::shutdown_signal().await;
    info!(?stop, "shutting down");
    // The controller keeps watching while the listeners still serve.
    handle.gateway.announce_stop(stop.delay).await;
    handle.shutdown(stop.drain).await;
    Ok(())
}

/// Connects (in-cluster or `KUBECONFIG`), checks the CRD, starts listening (not ready) and
/// the watches. Returns once listening; readiness follows the first complete list.
pub async fn start(opts: ControllerOptions) -> Result<ControllerHandle> {
    let client = Client::try_default().await.map_err(Error::Client)?;
    start_with_client(client, opts).await
}

/// [`start`] with a given client.
pub async fn start_with_client(
    client: Client,
    opts: ControllerOptions,
) -> Result<ControllerHandle> {
    probe_crd(&client, &opts.namespaces).await?;

    let (settings, settings_watch, settings_rx) = load_settings(&opts)?;
    let shared = Shared::with_metrics(
        Gateway {
            settings: settings.clone(),
            endpoints: Vec::new(),
        },
        false,
        opts.metrics.clone(),
    )?;
    let gateway = GatewayHandle::start(
        shared.clone(),
        SocketAddr::new(opts.bind.unwrap_or(settings.listen), settings.port),
        settings
            .admin_port
            .map(|p| SocketAddr::new(opts.bind.unwrap_or(settings.listen), p)),
    )
    .await?;

    let (tx, rx) = mpsc::channel::<Msg>(4096);
    let mut tasks = Vec::new();

    // One watch per scope: all namespaces, or each namespace given.
    let scopes: Vec<Option<String>> = if opts.namespaces.is_empty() {
        vec![None]
    } else {
        opts.namespaces.iter().cloned().map(Some).collect()
    };
    let mut wc = watcher::Config::default();
    if let Some(sel) = &opts.selector {
        wc = wc.labels(sel);
    }
    for (i, scope) in scopes.iter().enumerate() {
        let api: Api<DeserializeGuard<Endpoint>> = match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let stream = watcher::watcher(api, wc.clone()).default_backoff();
        tasks.push(forward(
            stream,
            tx.clone(),
            "Endpoint",
            scope.clone(),
            move |e| Msg::Endpoints(i, Box::new(e)),
        ));
        let services: Api<PartialObjectMeta<Service>> = match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let stream = watcher::watcher(services, watcher::Config::default()).default_backoff();
        tasks.push(forward(
            stream,
            tx.clone(),
            "Service",
            scope.clone(),
            move |e| Msg::Services(i, Box::new(e)),
        ));
    }
    if let Some(mut settings_rx) = settings_rx {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(s) = settings_rx.recv().await {
                if tx.send(Msg::Settings(Box::new(s))).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let queue = StatusQueue::new(opts.status_queue);
    let (leader_tx, leader_rx) = watch::channel(false);
    tasks.push(tokio::spawn(
        lease::run(client.clone(), opts.lease.clone(), leader_tx)
            .instrument(info_span!("lease", identity = %opts.lease.identity)),
    ));
    tasks.push(tokio::spawn(
        writer::run_writer(
            client.clone(),
            queue.clone(),
            leader_rx.clone(),
            opts.writer,
            opts.lease.identity.clone(),
        )
        .instrument(info_span!("status_writer")),
    ));
    let services = Services {
        all_namespaces: opts.namespaces.is_empty(),
        namespaces: opts.namespaces.iter().cloned().collect(),
        present: BTreeSet::new(),
    };
    let state = State {
        index: Index::new(settings, services),
        scopes: scopes.clone(),
        endpoint_init: vec![None; scopes.len()],
        service_init: vec![None; scopes.len()],
        endpoints_synced: vec![false; scopes.len()],
        services_synced: vec![false; scopes.len()],
        shared,
        ready: false,
        port_overrides: (opts.port, opts.admin_port),
        rejected: BTreeMap::new(),
        publish_failed: false,
        queue,
        leader: leader_rx,
        leading: false,
        catch_up: None,
    };
    tasks.push(tokio::spawn(
        main_loop(state, rx).instrument(info_span!("controller")),
    ));
    Ok(ControllerHandle {
        gateway,
        _tasks: Tasks(tasks),
        _settings_watch: settings_watch,
    })
}

/// Lists one Endpoint to learn whether the CRD is served.
async fn probe_crd(client: &Client, namespaces: &[String]) -> Result<()> {
    let api: Api<Endpoint> = match namespaces.first() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(Error::CrdMissing),
        Err(e) => Err(Error::Probe(e)),
    }
}

type SettingsParts = (
    Settings,
    Option<file_watch::WatchHandle>,
    Option<mpsc::UnboundedReceiver<Settings>>,
);

/// Reads `--config` (settings only; endpoints come from the cluster) and watches it.
fn load_settings(opts: &ControllerOptions) -> Result<SettingsParts> {
    let overrides = (opts.port, opts.admin_port);
    let Some(path) = &opts.config else {
        return Ok((with_overrides(Settings::default(), overrides), None, None));
    };
    let sources = config::read_sources(path)?;
    let fp = file_watch::fingerprint(&sources);
    let loaded = config::from_sources(&sources, path.is_dir())?;
    log_loaded(&loaded);
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = file_watch::spawn(
        path.clone(),
        file_watch::DEFAULT_INTERVAL,
        fp,
        config::ConvertCache::default(),
        move |result| match result {
            Ok(loaded) => {
                log_loaded(&loaded);
                let _ = tx.send(with_overrides(loaded.gateway.settings, overrides));
            }
            Err(e) => error!("settings change rejected, previous settings stay:\n{e}"),
        },
    );
    Ok((
        with_overrides(loaded.gateway.settings, overrides),
        Some(handle),
        Some(rx),
    ))
}

fn log_loaded(loaded: &config::Loaded) {
    for w in &loaded.warnings {
        warn!("{w}");
    }
    if !loaded.gateway.endpoints.is_empty() {
        warn!(
            endpoints = loaded.gateway.endpoints.len(),
            "the settings file lists endpoints; in Kubernetes mode they are ignored (endpoints come from Endpoint objects)"
        );
    }
}

fn with_overrides(mut s: Settings, (port, admin_port): (Option<u16>, Option<u16>)) -> Settings {
    if let Some(p) = port {
        s.port = p;
    }
    if let Some(p) = admin_port {
        s.admin_port = Some(p);
    }
    s
}

/// Forwards a watch stream into the main loop, logging (not stopping on) watch errors: the
/// stream retries with backoff, and the last table keeps serving meanwhile.
fn forward<K, S>(
    stream: S,
    tx: mpsc::Sender<Msg>,
    kind: &'static str,
    scope: Option<String>,
    wrap: impl Fn(Event<K>) -> Msg + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    S: Stream<Item = std::result::Result<Event<K>, watcher::Error>> + Send + 'static,
    K: Send + 'static,
{
    let ns = scope.clone().unwrap_or_else(|| "*".into());
    tokio::spawn(
        async move {
            let mut stream = std::pin::pin!(stream);
            let mut failing = false;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(event) => {
                        if failing {
                            info!("watch recovered");
                            failing = false;
                        }
                        if tx.send(wrap(event)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        if !failing {
                            warn!(error = %e, "watch failed; retrying with backoff, the last table keeps serving");
                        } else {
                            debug!(error = %e, "watch still failing");
                        }
                        failing = true;
                    }
                }
            }
        }
        .instrument(info_span!("watch", kind, namespace = %ns)),
    )
}

struct State {
    index: Index,
    scopes: Vec<Option<String>>,
    /// Objects of a relist in progress, per scope.
    endpoint_init: Vec<Option<Vec<Object>>>,
    service_init: Vec<Option<BTreeSet<ObjectKey>>>,
    endpoints_synced: Vec<bool>,
    services_synced: Vec<bool>,
    shared: Arc<Shared>,
    /// Readiness was set (once; a drain turns it off through `Shared`, not here).
    ready: bool,
    port_overrides: (Option<u16>, Option<u16>),
    /// Route winners the router refused next to the others, with the reason.
    rejected: BTreeMap<ObjectKey, String>,
    /// The last publication failed for a reason no single endpoint explains.
    publish_failed: bool,
    /// What the status writer is to write.
    queue: Arc<StatusQueue<Pending>>,
    /// Whether this replica holds the lease.
    leader: watch::Receiver<bool>,
    leading: bool,
    /// A status catch-up in progress: the key to resume from (`None`: from the start).
    catch_up: Option<Option<ObjectKey>>,
}

impl State {
    fn synced(&self) -> bool {
        self.endpoints_synced.iter().all(|s| *s) && self.services_synced.iter().all(|s| *s)
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Settings(s) => {
                info!("settings changed");
                self.index
                    .set_settings(with_overrides(*s, self.port_overrides));
            }
            Msg::Endpoints(i, event) => match *event {
                Event::Init => self.endpoint_init[i] = Some(Vec::new()),
                Event::InitApply(g) => {
                    if let Ok(o) = object_of(g) {
                        self.endpoint_init[i].get_or_insert_with(Vec::new).push(o);
                    }
                }
                Event::InitDone => {
                    let objects = self.endpoint_init[i].take().unwrap_or_default();
                    let n = objects.len();
                    let scope = &self.scopes[i];
                    self.index.replace(|k| in_scope(scope, k), objects);
                    if !self.endpoints_synced[i] {
                        info!(
                            namespace = self.scopes[i].as_deref().unwrap_or("*"),
                            objects = n,
                            "Endpoint list complete"
                        );
                    }
                    self.endpoints_synced[i] = true;
                }
                Event::Apply(g) => match object_of(g) {
                    Ok(o) => self.index.apply(o),
                    // An update that no longer deserializes must not leave the previous spec
                    // serving: it is dropped, as a relist would drop it.
                    Err(Some(key)) => self.index.delete(&key),
                    Err(None) => {}
                },
                Event::Delete(g) => {
                    let key = ObjectKey::new(g.namespace().unwrap_or_default(), g.name_any());
                    self.index.delete(&key);
                }
            },
            Msg::Services(i, event) => {
                let key_of = |m: &PartialObjectMeta<Service>| {
                    ObjectKey::new(m.namespace().unwrap_or_default(), m.name_any())
                };
                match *event {
                    Event::Init => self.service_init[i] = Some(BTreeSet::new()),
                    Event::InitApply(m) => {
                        let k = key_of(&m);
                        self.service_init[i]
                            .get_or_insert_with(BTreeSet::new)
                            .insert(k);
                    }
                    Event::InitDone => {
                        let fresh = self.service_init[i].take().unwrap_or_default();
                        let scope = &self.scopes[i];
                        self.index.replace_services(|k| in_scope(scope, k), fresh);
                        self.services_synced[i] = true;
                    }
                    Event::Apply(m) => self.index.service_applied(key_of(&m)),
                    Event::Delete(m) => self.index.service_deleted(&key_of(&m)),
                }
            }
        }
    }

    /// Publishes the model if it changed (first), then queues the statuses that moved.
    fn settle(&mut self) {
        if !self.synced() {
            return;
        }
        let mut touched = BTreeSet::new();
        if self.index.take_model_changed() || !self.ready {
            touched = self.publish();
        }
        touched.extend(self.index.take_touched());
        if self.leading {
            let now = Timestamp::now();
            for key in &touched {
                self.queue_status(key, now);
            }
        }
    }

    /// Publishes the index's model; returns the objects whose verdict the router changed.
    fn publish(&mut self) -> BTreeSet<ObjectKey> {
        let started = std::time::Instant::now();
        let mut gateway = self.index.gateway();
        let built_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut rejected = BTreeMap::new();
        let published = loop {
            match self.shared.publish_ref(&gateway) {
                Ok(p) => break Some(p),
                Err(e) => match e.origin().and_then(|o| refused_endpoint(&gateway, o)) {
                    Some((i, key)) => {
                        warn!(endpoint = %key, error = %e, "route refused by the router; reported as a conflict");
                        gateway.endpoints.remove(i);
                        rejected.insert(key, format!("{e}; change the path"));
                    }
                    None => {
                        error!(error = %e, "table not published; the previous table keeps serving");
                        break None;
                    }
                },
            }
        };
        let endpoints = gateway.endpoints.len();
        match published {
            Some(Published::Swapped(generation)) => info!(
                generation,
                endpoints,
                objects = self.index.len(),
                model_ms = built_ms,
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "table published"
            ),
            Some(Published::Unchanged) => debug!("table unchanged; nothing published"),
            None => {}
        }
        if published.is_some() && !self.ready {
            info!(endpoints, "first complete list served: ready");
            self.shared.set_ready(true);
            self.ready = true;
        }
        let mut moved: BTreeSet<ObjectKey> = BTreeSet::new();
        if published.is_some() {
            for (k, why) in &rejected {
                if self.rejected.get(k) != Some(why) {
                    moved.insert(k.clone());
                }
            }
            moved.extend(
                self.rejected
                    .keys()
                    .filter(|k| !rejected.contains_key(*k))
                    .cloned(),
            );
            self.rejected = rejected;
        }
        if self.publish_failed != published.is_none() {
            // Every object's Programmed condition follows whether a table is serving.
            moved.extend(self.index.objects().map(|o| o.key.clone()));
            self.publish_failed = published.is_none();
        }
        moved
    }

    /// The verdict to report for `key`: the index's, unless the router refused it or no
    /// table could be published.
    fn verdict(&self, key: &ObjectKey, verdict: &Verdict) -> Verdict {
        let mut v = match self.rejected.get(key) {
            Some(why) => Verdict {
                reason: status::REASON_CONFLICT,
                message: why.clone(),
                served: false,
            },
            None => verdict.clone(),
        };
        v.served &= !self.publish_failed;
        v
    }

    /// Queues what `key` should be written, or forgets it when its status already says it.
    fn queue_status(&mut self, key: &ObjectKey, now: Timestamp) {
        let (Some(object), Some(verdict)) = (self.index.get(key), self.index.verdict(key)) else {
            self.queue.remove(key);
            return;
        };
        match writer::pending_for(object, &self.verdict(key, verdict), now) {
            None => self.queue.remove(key),
            Some(p) => {
                if self.queue.push(key.clone(), p) == Pushed::Full {
                    // Caught up from the index once the writer made room.
                    let from = match self.catch_up.take() {
                        Some(Some(c)) if c < *key => c,
                        Some(None) => {
                            self.catch_up = Some(None);
                            return;
                        }
                        _ => key.clone(),
                    };
                    self.catch_up = Some(Some(from));
                }
            }
        }
    }

    /// One step of a status catch-up: queues out-of-date statuses from the cursor on until
    /// the queue is full or [`CATCH_UP_STEP`] objects were looked at.
    fn catch_up_step(&mut self) {
        let Some(from) = self.catch_up.take() else {
            return;
        };
        if !self.leading {
            return;
        }
        let now = Timestamp::now();
        let mut resume = None;
        for (seen, (object, verdict)) in self.index.objects_from(from.as_ref()).enumerate() {
            if seen == CATCH_UP_STEP || self.queue.room_left() == 0 {
                resume = Some(object.key.clone());
                break;
            }
            if let Some(p) = writer::pending_for(object, &self.verdict(&object.key, verdict), now) {
                self.queue.push(object.key.clone(), p);
            }
        }
        self.catch_up = resume.map(Some);
    }

    /// Follows the lease: the new holder looks at every object once; a replica that lost
    /// it forgets what it had queued.
    fn leadership_changed(&mut self) {
        let leading = *self.leader.borrow_and_update();
        if leading == self.leading {
            return;
        }
        self.leading = leading;
        if leading {
            self.catch_up = Some(None);
        } else {
            self.catch_up = None;
            self.queue.clear();
        }
    }

    /// Objects whose status write failed a while ago: look at them again.
    fn rechecks(&mut self) {
        if !self.leading {
            self.queue.take_rechecks();
            return;
        }
        let now = Timestamp::now();
        for key in self.queue.take_rechecks() {
            self.queue_status(&key, now);
        }
    }
}

fn in_scope(scope: &Option<String>, key: &ObjectKey) -> bool {
    scope.as_ref().is_none_or(|ns| &key.namespace == ns)
}

/// The endpoint with path template `path` that comes last in the model (the youngest
/// claim in `namespace/name` order), to be taken out when the router refuses that path.
/// The endpoint the router refused (named by its origin, `namespace/name`): its place in
/// the model and its object.
fn refused_endpoint(gateway: &Gateway, origin: &str) -> Option<(usize, ObjectKey)> {
    let i = gateway
        .endpoints
        .iter()
        .position(|ep| ep.origin == origin)?;
    let (ns, name) = origin.split_once('/')?;
    Some((i, ObjectKey::new(ns, name)))
}

/// Turns a watched object into an [`Object`]; a malformed one is logged and its key (when
/// it has one) returned as the error. Only what the controller uses is kept: no
/// annotations, labels or managed fields.
fn object_of(guard: DeserializeGuard<Endpoint>) -> Result<Object, Option<ObjectKey>> {
    match guard.0 {
        Ok(ep) => {
            let meta = ep.metadata;
            Ok(Object {
                key: ObjectKey::new(
                    meta.namespace.unwrap_or_default(),
                    meta.name.unwrap_or_default(),
                ),
                generation: meta.generation,
                uid: meta.uid,
                created: meta.creation_timestamp.map(|t| t.0),
                spec: ep.spec.0,
                status: ep.status,
            })
        }
        Err(bad) => {
            warn!(
                endpoint = %format!(
                    "{}/{}",
                    bad.metadata.namespace.as_deref().unwrap_or(""),
                    bad.metadata.name.as_deref().unwrap_or("")
                ),
                error = %bad.error,
                "malformed Endpoint skipped (it does not match the CRD schema)"
            );
            Err(bad
                .metadata
                .name
                .map(|name| ObjectKey::new(bad.metadata.namespace.unwrap_or_default(), name)))
        }
    }
}

/// Takes every watch event waiting (up to [`MAX_BATCH`]) into the index, then publishes
/// once: no fixed delay before a change is served, and a burst costs one publication per
/// batch instead of one per event.
async fn main_loop(mut state: State, mut rx: mpsc::Receiver<Msg>) {
    let mut leader = state.leader.clone();
    let queue = state.queue.clone();
    loop {
        let catching_up =
            state.catch_up.is_some() && state.leading && state.synced() && queue.room_left() > 0;
        tokio::select! {
            biased;
            msg = rx.recv() => {
                let Some(msg) = msg else { return };
                state.handle(msg);
                for _ in 1..MAX_BATCH {
                    match rx.try_recv() {
                        Ok(msg) => state.handle(msg),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
            }
            changed = leader.changed() => {
                if changed.is_err() {
                    return;
                }
                state.leadership_changed();
            }
            () = queue.wait_room() => state.rechecks(),
            () = std::future::ready(()), if catching_up => {}
        }
        state.settle();
        if state.synced() {
            state.catch_up_step();
        }
    }
}

/// The replica's identity for the lease: `POD_NAME`, else host name and process id.
pub fn default_identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME") {
        if !name.is_empty() {
            return name;
        }
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "weir".into());
    format!("{host}-{}", std::process::id())
}

/// The namespace for the lease: `POD_NAMESPACE`, else `default`.
pub fn default_lease_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into())
}
