//! Phase 4 of a backend call: read and decode the answer. The body is read up to the
//! backend's `maxResponseSize` (after decompression too, and with a bound on what decoding
//! may expand it to), and a large body is decompressed and decoded on the blocking pool: a
//! per-core worker thread must stay free for every other client while a big document is
//! parsed, and the endpoint deadline must still fire.

use http::header;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::codec::{self, DecodeError};
use crate::error::BackendError;
use crate::plan::CompiledBackend;
use crate::upstream::send::error_chain;

fn failed(e: DecodeError) -> BackendError {
    match e {
        DecodeError::TooLarge { .. }
        | DecodeError::GunzipTooLarge { .. }
        | DecodeError::TooExpansive { .. } => BackendError::TooLarge(e.to_string()),
        DecodeError::Gzip(_) => BackendError::Body(error_chain(&e)),
        other => BackendError::Decode(error_chain(&other)),
    }
}

/// Reads the answer, checks its status and decodes it for `backend`; also returns the size
/// of the body it decoded.
pub async fn answer(
    backend: &CompiledBackend,
    resp: Response<Incoming>,
) -> Result<(Map<String, Value>, usize), BackendError> {
    let limit = backend.model().max_response_size;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let gzipped = codec::is_gzip(resp.headers());
    if let Some(len) = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(failed(DecodeError::TooLarge { size: len, limit }));
        }
    }
    let mut body = Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                failed(DecodeError::TooLarge {
                    size: limit + 1,
                    limit,
                })
            } else {
                BackendError::Body(error_chain(e.as_ref()))
            }
        })?
        .to_bytes();
    if gzipped {
        body = codec::gunzip_offloaded(body, limit).await.map_err(failed)?;
    }
    if status != StatusCode::OK && status != StatusCode::CREATED {
        return Err(BackendError::Status {
            status,
            body,
            content_type,
        });
    }
    let bytes = body.len();
    let (encoding, collection) = (backend.model().encoding, backend.model().is_collection);
    codec::decode_offloaded(encoding, collection, body, limit)
        .await
        .map(|data| (data, bytes))
        .map_err(failed)
}
