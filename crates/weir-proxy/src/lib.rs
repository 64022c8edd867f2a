//! The data plane. It serves from one immutable [`table::RouteTable`] snapshot per request
//! and cannot import `kube` (its Cargo.toml does not list it). One folder per part:
//!
//! - [`auth`]: JWT and API-key checks, with the key caches that outlive reloads.
//! - [`server`]: listeners, the request entry, CORS; [`admin`]: the reserved endpoints.
//! - [`router`] and [`table`]: the snapshot and its lookup.
//! - [`plan`]: everything derivable from configuration, compiled when a table is built.
//! - [`pipeline`]: one endpoint request (fan-out, merge, no-op streaming, deadline).
//! - [`upstream`]: one backend call in phases (gate → build → send → decode → transform).
//! - [`codec`]: decoders and renderers; [`transform`]: filters and flatmap; [`qos`]: limits
//!   and breakers; [`telemetry`]: metrics and the access log.

pub mod admin;
pub mod auth;
pub mod codec;
pub mod error;
pub mod pipeline;
pub mod plan;
pub mod qos;
pub mod router;
pub mod server;
pub mod table;
pub mod telemetry;
pub mod transform;
pub mod upstream;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};

/// The maps a reload rebuilds and the router reads per request: foldhash is several times
/// faster than SipHash on pointer-sized and short keys. Their keys come from the
/// configuration (clients only look up), so no client can grow a collision chain.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// [`FastMap`]'s set.
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Boxed error used in bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type used for responses and upstream requests.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body with fixed content.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}
