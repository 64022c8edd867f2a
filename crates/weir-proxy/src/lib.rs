//! The data plane: listeners, routing, the fan-out/merge pipeline and the backend client.
//! It serves from one immutable [`table::RouteTable`] snapshot per request and never
//! imports `kube`.

pub mod admin;
pub mod codec;
pub mod error;
pub mod pipeline;
pub mod qos;
pub mod router;
pub mod server;
pub mod table;
pub mod telemetry;
pub mod transform;
pub mod upstream;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};

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
