//! Backend decoders and output renderers (docs/semantics.md, "Encodings").
//!
//! Every decoder and renderer is linear in its input. Decoding is bounded twice: a body
//! longer than its backend's `maxResponseSize` is refused before parsing, and a body whose
//! decoded tree would take more than [`DECODED_SIZE_FACTOR`] × `maxResponseSize` of memory
//! ([`decoded_budget`]) is refused too (see [`limits`]). The owned-value entry points ([`decode_owned`],
//! [`render`]) are `Send + 'static`, and [`decode_offloaded`], [`gunzip_offloaded`] and
//! [`render_offloaded`] move bodies above [`OFFLOAD_THRESHOLD`] to the blocking pool so a
//! large body never holds an async worker.

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::task::JoinError;

use weir_model::{BackendEncoding, OutputEncoding};

pub mod limits;
pub mod xml;
pub mod yaml;

pub use limits::{
    decoded_budget, json_decoded_estimate, DECODED_SIZE_FACTOR, DEFAULT_MAX_RESPONSE_SIZE,
    MIN_DECODED_BUDGET, OFFLOAD_THRESHOLD,
};

/// `Content-Type` of JSON answers.
pub const JSON: &str = "application/json; charset=utf-8";
/// `Content-Type` of XML answers (KrakenD sends no charset).
pub const XML: &str = "application/xml";
/// `Content-Type` of YAML answers.
pub const YAML: &str = "application/x-yaml; charset=utf-8";
/// `Content-Type` of text answers and error texts.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Why a backend body could not be decoded. Every variant is the backend's fault (the
/// call counts as failed); the ones about size name the limit that was hit.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body (after decompression) is longer than `maxResponseSize`.
    #[error("response body of {size} bytes exceeds maxResponseSize ({limit} bytes)")]
    TooLarge {
        /// Length of the body, in bytes.
        size: usize,
        /// The backend's `maxResponseSize`.
        limit: usize,
    },
    /// A gzip body decompresses to more than `maxResponseSize`.
    #[error("gzip response body exceeds maxResponseSize ({limit} bytes) once decompressed")]
    GunzipTooLarge {
        /// The backend's `maxResponseSize`.
        limit: usize,
    },
    /// The decoded tree would take more memory than the budget derived from
    /// `maxResponseSize`.
    #[error(
        "decoded response would take more than {budget} bytes of memory \
         (the decoded-size budget: {DECODED_SIZE_FACTOR} × maxResponseSize of {limit} bytes, \
         at least {MIN_DECODED_BUDGET} bytes)"
    )]
    TooExpansive {
        /// The memory budget, in bytes.
        budget: usize,
        /// The backend's `maxResponseSize`.
        limit: usize,
    },
    /// The gzip stream is corrupt.
    #[error("invalid gzip body")]
    Gzip(#[source] std::io::Error),
    /// A `json` backend answered nothing but whitespace.
    #[error("empty body where JSON was expected")]
    EmptyJson,
    /// The body is not JSON.
    #[error("invalid JSON")]
    Json(#[source] serde_json::Error),
    /// The body is not acceptable XML.
    #[error("invalid XML")]
    Xml(#[source] xml::XmlError),
    /// A JSON array where an object was expected.
    #[error("the answer is a JSON array; set isCollection: true on this backend to accept it")]
    UnexpectedArray,
    /// A JSON object where `isCollection` expected an array.
    #[error("isCollection is set but the answer is a JSON object, not an array")]
    UnexpectedObject,
    /// A JSON scalar where an object was expected.
    #[error("the answer is a JSON {0}, not an object (use encoding safejson to accept it)")]
    NotAnObject(&'static str),
    /// `no-op` answers are streamed, never decoded.
    #[error("no-op answers are passed through, not decoded")]
    NoOp,
    /// The blocking task that decoded the body panicked or was cancelled.
    #[error("decoding task failed")]
    Offload(#[source] JoinError),
}

/// The rendering task on the blocking pool panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("rendering task failed")]
pub struct RenderError(#[source] pub JoinError);

/// `e` and its sources, joined with `": "` (the text of the string-returning functions).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

/// Decodes a backend body into an object, or says why it cannot. No size limit: prefer
/// [`decode_limited`].
pub fn decode(
    encoding: BackendEncoding,
    is_collection: bool,
    body: &[u8],
) -> Result<Map<String, Value>, String> {
    decode_limited(encoding, is_collection, body, usize::MAX).map_err(|e| chain(&e))
}

/// Decodes a backend body of at most `limit` bytes (`maxResponseSize`, applied after
/// decompression) into an object.
///
/// A longer body is refused before parsing. A JSON body whose estimated decoded size
/// ([`json_decoded_estimate`], one pass without allocation) passes [`decoded_budget`]
/// (`limit` × [`DECODED_SIZE_FACTOR`]) is refused before parsing as well; an XML body is
/// refused as soon as the tree being built passes that budget. `usize::MAX` means no limit.
pub fn decode_limited(
    encoding: BackendEncoding,
    is_collection: bool,
    body: &[u8],
    limit: usize,
) -> Result<Map<String, Value>, DecodeError> {
    if body.len() > limit {
        return Err(DecodeError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let budget = decoded_budget(limit);
    let check_json_budget = || {
        if budget != usize::MAX && json_decoded_estimate(body) > budget {
            return Err(DecodeError::TooExpansive { budget, limit });
        }
        Ok(())
    };
    match encoding {
        BackendEncoding::Json => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(DecodeError::EmptyJson);
            }
            check_json_budget()?;
            match serde_json::from_slice::<Value>(body).map_err(DecodeError::Json)? {
                Value::Object(m) if !is_collection => Ok(m),
                Value::Array(a) if is_collection => Ok(wrap("collection", Value::Array(a))),
                Value::Array(_) => Err(DecodeError::UnexpectedArray),
                Value::Object(_) => Err(DecodeError::UnexpectedObject),
                other => Err(DecodeError::NotAnObject(kind(&other))),
            }
        }
        BackendEncoding::SafeJson => {
            check_json_budget()?;
            match serde_json::from_slice::<Value>(body).map_err(DecodeError::Json)? {
                Value::Object(m) => Ok(m),
                a @ Value::Array(_) => Ok(wrap("collection", a)),
                other => Ok(wrap("content", other)),
            }
        }
        BackendEncoding::Xml => xml::xml_to_map_limited(body, budget).map_err(|e| match e {
            xml::XmlError::TooLarge { .. } => DecodeError::TooExpansive { budget, limit },
            e => DecodeError::Xml(e),
        }),
        // At most three bytes of text per byte of body (U+FFFD for an invalid byte).
        BackendEncoding::String => Ok(wrap(
            "content",
            Value::String(String::from_utf8_lossy(body).into_owned()),
        )),
        BackendEncoding::NoOp => Err(DecodeError::NoOp),
    }
}

/// [`decode_limited`] taking the body by value: the call is `Send + 'static`, ready for
/// `tokio::task::spawn_blocking`.
pub fn decode_owned(
    encoding: BackendEncoding,
    is_collection: bool,
    body: Bytes,
    limit: usize,
) -> Result<Map<String, Value>, DecodeError> {
    decode_limited(encoding, is_collection, &body, limit)
}

/// [`decode_limited`] that decodes a body longer than [`OFFLOAD_THRESHOLD`] on the blocking
/// pool, so the async worker keeps serving other requests (and timers keep firing) meanwhile.
///
/// A body over `limit` is refused at once, on the caller's thread. Dropping the returned
/// future (a deadline) does not stop a decode already running on the pool; it ends by
/// itself, bounded by the limits.
pub async fn decode_offloaded(
    encoding: BackendEncoding,
    is_collection: bool,
    body: Bytes,
    limit: usize,
) -> Result<Map<String, Value>, DecodeError> {
    if body.len() > limit {
        return Err(DecodeError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    if body.len() <= OFFLOAD_THRESHOLD {
        return decode_limited(encoding, is_collection, &body, limit);
    }
    let span = tracing::debug_span!("decode", bytes = body.len());
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        decode_owned(encoding, is_collection, body, limit)
    })
    .await
    .map_err(DecodeError::Offload)?
}

fn wrap(key: &str, v: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(key.to_string(), v);
    m
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a backend answered with `Content-Encoding: gzip` (Weir asks for it upstream).
pub fn is_gzip(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
}

/// Decompresses a gzip body as it streams (no-op answers the gateway itself asked to be
/// compressed), so nothing is buffered.
pub fn gunzip_stream(body: crate::Body) -> crate::Body {
    use futures_util::TryStreamExt;
    use http_body_util::{BodyDataStream, BodyExt, StreamBody};
    let bytes = BodyDataStream::new(body).map_err(std::io::Error::other);
    let decoder = async_compression::tokio::bufread::GzipDecoder::new(
        tokio_util::io::StreamReader::new(bytes),
    );
    let frames = tokio_util::io::ReaderStream::new(decoder)
        .map_ok(hyper::body::Frame::data)
        .map_err(|e| Box::new(e) as crate::BoxError);
    StreamBody::new(frames).boxed_unsync()
}

/// Decompresses a gzip body, refusing to grow past `limit` bytes. Prefer
/// [`gunzip_limited`], whose error names the limit.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, String> {
    gunzip_limited(body, limit).map_err(|e| chain(&e))
}

/// Decompresses a gzip body, refusing to produce more than `limit` bytes
/// (`maxResponseSize`): decompression stops at `limit + 1` bytes, so a gzip bomb costs no
/// more than the limit.
pub fn gunzip_limited(body: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::GzDecoder::new(body).take((limit as u64).saturating_add(1));
    decoder.read_to_end(&mut out).map_err(DecodeError::Gzip)?;
    if out.len() > limit {
        return Err(DecodeError::GunzipTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// [`gunzip_limited`] that moves large decompressions to the blocking pool.
///
/// How large a gzip body becomes is unknown until it is decompressed (a 10 KiB bomb makes
/// 10 MiB), so up to [`OFFLOAD_THRESHOLD`] bytes are decompressed here, a bounded amount of
/// work; a body that turns out larger is decompressed again, whole, on the pool.
pub async fn gunzip_offloaded(body: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    let probe = limit.min(OFFLOAD_THRESHOLD);
    match gunzip_limited(&body, probe) {
        Err(DecodeError::GunzipTooLarge { .. }) if probe < limit => {}
        Err(DecodeError::GunzipTooLarge { .. }) => {
            return Err(DecodeError::GunzipTooLarge { limit })
        }
        done => return done,
    }
    let span = tracing::debug_span!("gunzip", bytes = body.len());
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        gunzip_limited(&body, limit)
    })
    .await
    .map_err(DecodeError::Offload)?
}

/// A rendered answer.
pub struct Rendered {
    /// The body.
    pub body: Bytes,
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

/// Picks the concrete encoding for `negotiate` from an `Accept` header (first acceptable
/// media range by q-value; JSON when nothing matches).
pub fn negotiate(accept: Option<&str>) -> OutputEncoding {
    let Some(accept) = accept else {
        return OutputEncoding::Json;
    };
    let mut ranges: Vec<(f32, usize, &str)> = accept
        .split(',')
        .enumerate()
        .map(|(i, r)| {
            let mut parts = r.split(';');
            let media = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (q, i, media)
        })
        .filter(|(q, _, _)| *q > 0.0)
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, media) in ranges {
        match media.to_ascii_lowercase().as_str() {
            "application/json" | "*/*" | "application/*" => return OutputEncoding::Json,
            "application/xml" | "text/xml" => return OutputEncoding::Xml,
            "application/x-yaml" | "application/yaml" | "text/yaml" | "text/x-yaml"
            | "text/plain" | "text/*" => return OutputEncoding::Yaml,
            _ => {}
        }
    }
    OutputEncoding::Json
}

/// The concrete encoding of an answer: `negotiate` resolved against `Accept`, anything
/// else as configured.
pub fn resolve(encoding: OutputEncoding, accept: Option<&str>) -> OutputEncoding {
    match encoding {
        OutputEncoding::Negotiate => negotiate(accept),
        e => e,
    }
}

/// Renders the merged data. `no-op` never reaches here.
///
/// With `accept` set to `None` (after [`resolve`]) the call borrows nothing and is
/// `Send + 'static`.
pub fn render(
    encoding: OutputEncoding,
    mut data: Map<String, Value>,
    accept: Option<&str>,
) -> Rendered {
    match resolve(encoding, accept) {
        OutputEncoding::Json | OutputEncoding::Negotiate | OutputEncoding::NoOp => Rendered {
            body: Bytes::from(serde_json::to_vec(&data).unwrap_or_default()),
            content_type: JSON,
        },
        OutputEncoding::JsonCollection => {
            let collection = match data.remove("collection") {
                Some(v @ Value::Array(_)) => v,
                _ => Value::Array(Vec::new()),
            };
            Rendered {
                body: Bytes::from(serde_json::to_vec(&collection).unwrap_or_default()),
                content_type: JSON,
            }
        }
        OutputEncoding::String => Rendered {
            body: match data.remove("content") {
                Some(Value::String(s)) => Bytes::from(s),
                _ => Bytes::new(),
            },
            content_type: TEXT,
        },
        OutputEncoding::Xml => Rendered {
            body: Bytes::from(xml::map_to_xml(&data)),
            content_type: XML,
        },
        OutputEncoding::Yaml => Rendered {
            body: Bytes::from(yaml::to_yaml(&Value::Object(data))),
            content_type: YAML,
        },
    }
}

/// [`render`] on the blocking pool when the data is large: `size_hint` is what the caller
/// knows of its size (the sum of the decoded backend body lengths); above
/// [`OFFLOAD_THRESHOLD`] rendering leaves the async worker.
pub async fn render_offloaded(
    encoding: OutputEncoding,
    data: Map<String, Value>,
    accept: Option<&str>,
    size_hint: usize,
) -> Result<Rendered, RenderError> {
    let encoding = resolve(encoding, accept);
    if size_hint <= OFFLOAD_THRESHOLD {
        return Ok(render(encoding, data, None));
    }
    let span = tracing::debug_span!("render", size_hint);
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        render(encoding, data, None)
    })
    .await
    .map_err(RenderError)
}

#[cfg(test)]
mod tests;
