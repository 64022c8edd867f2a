//! The pooled upstream client. One per worker thread, so a request and the connections it
//! uses never leave their thread.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::Body;

/// The pooled upstream client (HTTP/1.1 keep-alive, http and https).
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// How long a connection attempt may take before the backend counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds a client. Called once per worker, not per request.
pub fn new_client() -> HttpClient {
    let mut http = HttpConnector::new();
    // Headers and body go out in separate writes; Nagle would hold the second one back for
    // a delayed ACK (40 ms).
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https)
}
