//! Binding and accepting. The proxy port is one `SO_REUSEPORT` socket per worker thread;
//! before that group is bound, a probe bind *without* `SO_REUSEPORT` makes sure nobody else
//! listens there: otherwise a second Weir would silently join the first one's port and take
//! half of its connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info_span, warn, Instrument};

use crate::server::tls::CertStore;
use crate::server::{handler, Role, Shared};
use crate::telemetry::access_log;
use crate::upstream::Clients;

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Someone already listens on the port.
    #[error(
        "{what} {port} is already in use on {ip} (by another process); choose another with {hint}"
    )]
    Busy {
        /// `proxy port` or `admin port`.
        what: &'static str,
        /// The address asked for.
        ip: std::net::IpAddr,
        /// The port.
        port: u16,
        /// The flag or setting that changes it.
        hint: &'static str,
    },
    /// Any other socket error.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Io {
        /// `proxy port` or `admin port`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The proxy port's certificates cannot be served.
    #[error("TLS: {0}")]
    Tls(#[from] crate::server::tls::TlsError),
    /// A worker thread could not start.
    #[error("cannot start a proxy worker thread: {source}")]
    Worker {
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

const PROXY: (&str, &str) = ("proxy port", "--port or the `port` setting");
const ADMIN: (&str, &str) = ("admin port", "--admin-port or the `adminPort` setting");
const PLAIN: (&str, &str) = ("plain HTTP port", "the `tls.port` setting");

fn io_error(which: (&'static str, &'static str), addr: SocketAddr, e: std::io::Error) -> BindError {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        BindError::Busy {
            what: which.0,
            ip: addr.ip(),
            port: addr.port(),
            hint: which.1,
        }
    } else {
        BindError::Io {
            what: which.0,
            addr,
            source: e,
        }
    }
}

fn socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Lets a restarted gateway bind while old connections sit in TIME_WAIT; it does not let
    // two listeners share the port (Linux refuses a bind next to a listening socket).
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// The proxy sockets: one per worker, all on `addr`.
pub struct ProxyListeners {
    /// Where they are bound (the real port when 0 was asked for).
    pub addr: SocketAddr,
    sockets: Vec<std::net::TcpListener>,
}

/// Binds `workers` sockets on `addr`, after checking that nobody listens there.
pub fn bind_proxy(addr: SocketAddr, workers: usize) -> Result<ProxyListeners, BindError> {
    bind_group(PROXY, addr, workers)
}

/// The same for the plain-HTTP port beside TLS.
pub fn bind_plain(addr: SocketAddr, workers: usize) -> Result<ProxyListeners, BindError> {
    bind_group(PLAIN, addr, workers)
}

fn bind_group(
    which: (&'static str, &'static str),
    addr: SocketAddr,
    workers: usize,
) -> Result<ProxyListeners, BindError> {
    let err = |e| io_error(which, addr, e);
    let probe = socket(addr, false).map_err(err)?;
    let bound = probe.local_addr().map_err(err)?.as_socket().unwrap_or(addr);
    drop(probe);
    let mut sockets = Vec::with_capacity(workers);
    for _ in 0..workers {
        let s = socket(bound, true).map_err(|e| io_error(which, bound, e))?;
        s.listen(1024).map_err(|e| io_error(which, bound, e))?;
        sockets.push(s.into());
    }
    Ok(ProxyListeners {
        addr: bound,
        sockets,
    })
}

/// Every socket of the proxy: the proxy port, and the plain-HTTP port beside TLS.
pub struct Sockets {
    /// The proxy port (TLS when configured).
    pub proxy: ProxyListeners,
    /// `tls.port`, with the role its requests get.
    pub plain: Option<(ProxyListeners, Role)>,
}

/// Starts one thread per proxy socket, each with its own current-thread runtime and
/// clients; a worker also serves its share of the plain-HTTP port.
pub fn spawn_workers(
    sockets: Sockets,
    shared: Arc<Shared>,
    role: Role,
    shutdown: &watch::Receiver<Option<Duration>>,
) -> std::io::Result<Vec<oneshot::Receiver<()>>> {
    let mut done = Vec::new();
    let mut plain = sockets
        .plain
        .map(|(l, r)| (l.sockets.into_iter().map(Some).collect::<Vec<_>>(), r));
    for (i, listener) in sockets.proxy.sockets.into_iter().enumerate() {
        let (done_tx, done_rx) = oneshot::channel();
        let (shared, rx) = (shared.clone(), shutdown.clone());
        let extra = plain
            .as_mut()
            .and_then(|(ls, r)| ls.get_mut(i).and_then(Option::take).map(|l| (l, *r)));
        std::thread::Builder::new()
            .name(format!("weir-worker-{i}"))
            .spawn(move || {
                shared.access_log().install_local();
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(
                        async move {
                            let clients =
                                Arc::new(Clients::new(shared.metrics().upstream_connections()));
                            let flusher = tokio::spawn(flush_access_log());
                            let tls = shared.tls().cloned();
                            let main = serve_socket(
                                listener,
                                shared.clone(),
                                role,
                                tls,
                                rx.clone(),
                                clients.clone(),
                            );
                            match extra {
                                Some((l, r)) => {
                                    let side = serve_socket(l, shared, r, None, rx, clients);
                                    tokio::join!(main, side);
                                }
                                None => main.await,
                            }
                            flusher.abort();
                        }
                        .instrument(info_span!("worker", id = i)),
                    ),
                    Err(e) => error!("worker {i} cannot start a runtime: {e}"),
                }
                access_log::flush_local(true);
                let _ = done_tx.send(());
            })?;
        done.push(done_rx);
    }
    Ok(done)
}

async fn serve_socket(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    role: Role,
    tls: Option<Arc<CertStore>>,
    shutdown: watch::Receiver<Option<Duration>>,
    clients: Arc<Clients>,
) {
    match TcpListener::from_std(listener) {
        Ok(l) => accept_loop(l, shared, role, tls, shutdown, clients).await,
        Err(e) => error!("cannot listen: {e}"),
    }
}

/// Hands this worker's access-log lines over even when no new request comes.
async fn flush_access_log() {
    let mut tick = tokio::time::interval(access_log::FLUSH_AFTER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        access_log::flush_local(false);
    }
}

/// Binds the admin listener and serves it on the current runtime.
pub async fn spawn_admin(
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<Option<Duration>>,
) -> Result<(JoinHandle<()>, SocketAddr), BindError> {
    let err = |e| io_error(ADMIN, addr, e);
    let s = socket(addr, false).map_err(err)?;
    s.listen(1024).map_err(err)?;
    let l = TcpListener::from_std(s.into()).map_err(err)?;
    let bound = l.local_addr().map_err(err)?;
    let clients = Arc::new(Clients::new(shared.metrics().upstream_connections()));
    let task = tokio::spawn(
        accept_loop(l, shared, Role::Admin, None, shutdown, clients)
            .instrument(info_span!("admin_listener")),
    );
    Ok((task, bound))
}

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/1.1 and HTTP/2 settings of every inbound connection. HTTP/2 limits follow what
/// hyper offers against abuse: concurrent streams, header list size, and resets (a client
/// that opens and resets streams faster than they are served is cut off: CVE-2023-44487).
fn builder(http2: bool) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024)
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256))
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .keep_alive_timeout(Duration::from_secs(20));
    if http2 {
        b
    } else {
        b.http1_only()
    }
}

/// Whether the client opens with the HTTP/2 connection preface, looking without consuming.
/// No HTTP/1 method starts with `PRI`, so three bytes decide; a client that stalls before
/// them is left to the HTTP/1 header-read timeout.
async fn sends_h2_preface(stream: &tokio::net::TcpStream) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; 3];
    for _ in 0..100 {
        let n = match tokio::time::timeout(Duration::from_secs(30), stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return false,
        };
        if n == 0 || buf[..n] != PREFACE[..n] {
            return false;
        }
        if n == buf.len() {
            return true;
        }
        // One or two bytes of `PRI` so far: the rest is on its way.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    role: Role,
    tls: Option<Arc<CertStore>>,
    mut shutdown: watch::Receiver<Option<Duration>>,
    clients: Arc<Clients>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let http2 = shared.table().settings().http2;
    // HTTP/2 is negotiated per connection on TLS (ALPN); this one serves both.
    let both = Arc::new(builder(http2));
    let h1 = Arc::new(builder(false));
    let drain = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let metrics = shared.metrics().clone();
                let (shared, clients) = (shared.clone(), clients.clone());
                let svc = service_fn(move |req| {
                    let (shared, clients) = (shared.clone(), clients.clone());
                    async move {
                        Ok::<_, Infallible>(handler::handle(&shared, &clients, role, req, peer).await)
                    }
                });
                match &tls {
                    None if !http2 => {
                        // hyper-util's upgradeable auto connection reads the preface and
                        // serves h2c even when built `http1_only`: refuse it here.
                        let h1 = h1.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            if sends_h2_preface(&stream).await {
                                debug!(%peer, "HTTP/2 preface on a port serving HTTP/1.1 only (http2: false): closed");
                                return;
                            }
                            let conn = h1.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                            if let Err(e) = watcher.watch(conn.into_owned()).await {
                                debug!(%peer, "connection ended: {e}");
                            }
                        });
                    }
                    None => {
                        let conn = both.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                        let conn = graceful.watch(conn.into_owned());
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                debug!(%peer, "connection ended: {e}");
                            }
                        });
                    }
                    Some(store) => {
                        let acceptor = store.acceptor();
                        let (both, h1) = (both.clone(), h1.clone());
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                            let tls_stream = match handshake {
                                Ok(Ok(s)) => {
                                    metrics.tls_handshake(true);
                                    s
                                }
                                Ok(Err(e)) => {
                                    metrics.tls_handshake(false);
                                    debug!(%peer, "TLS handshake failed: {e}");
                                    return;
                                }
                                Err(_) => {
                                    metrics.tls_handshake(false);
                                    debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                            let alpn_h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            let builder = if alpn_h2 { both } else { h1 };
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), svc);
                            if let Err(e) = watcher.watch(conn.into_owned()).await {
                                debug!(%peer, "connection ended: {e}");
                            }
                        });
                    }
                }
            }
            changed = shutdown.changed() => {
                let drain = if changed.is_ok() { *shutdown.borrow() } else { Some(Duration::ZERO) };
                if let Some(d) = drain { break d; }
            }
        }
    };
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => debug!("all connections drained"),
        _ = tokio::time::sleep(drain) => warn!("drain timeout reached; closing remaining connections"),
    }
}

/// How often per-client limiter state of idle clients is dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Keeps per-client rate-limit state bounded by the number of recently active clients.
pub async fn sweep_idle_clients(
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<Option<Duration>>,
) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let table = shared.table();
                // Sweeping walks every client bucket: keep it off the async workers.
                let _ = tokio::task::spawn_blocking(move || table.forget_idle_clients()).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_someone_listens_on_is_refused_by_name() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        match bind_proxy(addr, 2) {
            Err(BindError::Busy { port, .. }) => assert_eq!(port, addr.port()),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("bound a port that is in use"),
        }
    }

    #[test]
    fn a_second_gateway_cannot_join_the_first_ones_port() {
        let first = bind_proxy("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let err = bind_proxy(first.addr, 2)
            .err()
            .expect("second bind refused");
        assert!(err.to_string().contains("--port"), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("port {} is already in use", first.addr.port())),
            "{err}"
        );
    }
}
