//! Phase 4 of a backend call: read and decode the answer. The body is read up to the
//! backend's `maxResponseSize` (after decompression too), and a large body is decoded on the
//! blocking pool: a per-core worker thread must stay free for every other client while a
//! big document is parsed, and the endpoint deadline must still fire.

use bytes::Bytes;
use http::header;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::codec;
use crate::error::BackendError;
use crate::plan::CompiledBackend;
use crate::upstream::send::error_chain;

/// Bodies at least this large are decoded on the blocking pool (parsing 64 KiB of JSON
/// takes a few hundred microseconds: below that the hand-off costs more than it saves).
pub const OFFLOAD_THRESHOLD: usize = 64 * 1024;

/// Reads the answer, checks its status and decodes it for `backend`.
pub async fn answer(
    backend: &CompiledBackend,
    resp: Response<Incoming>,
) -> Result<(Map<String, Value>, usize), BackendError> {
    let limit = backend.model.max_response_size;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let gzipped = codec::is_gzip(resp.headers());
    let too_large = |what: &str| {
        BackendError::TooLarge(format!(
            "the answer is larger than maxResponseSize ({limit} bytes{what})"
        ))
    };
    if let Some(len) = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_large(""));
        }
    }
    let mut body = Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large("")
            } else {
                BackendError::Body(error_chain(e.as_ref()))
            }
        })?
        .to_bytes();
    if gzipped {
        body = offload(body, move |b| codec::gunzip(&b, limit))
            .await?
            .map_err(|e| {
                if e.contains("larger than") {
                    too_large(" once decompressed")
                } else {
                    BackendError::Body(e)
                }
            })?;
    }
    if status != StatusCode::OK && status != StatusCode::CREATED {
        return Err(BackendError::Status {
            status,
            body,
            content_type,
        });
    }
    let (encoding, collection) = (backend.model.encoding, backend.model.is_collection);
    let bytes = body.len();
    offload(body, move |b| codec::decode(encoding, collection, &b))
        .await?
        .map(|data| (data, bytes))
        .map_err(BackendError::Decode)
}

/// Runs `work` on `body` here when it is small, on the blocking pool when it is large.
pub async fn offload<T: Send + 'static>(
    body: Bytes,
    work: impl FnOnce(Bytes) -> T + Send + 'static,
) -> Result<T, BackendError> {
    if body.len() < OFFLOAD_THRESHOLD {
        return Ok(work(body));
    }
    tokio::task::spawn_blocking(move || work(body))
        .await
        .map_err(|e| BackendError::Decode(format!("decoding stopped: {e}")))
}
