//! Backend decoders and output renderers (DESIGN.md encodings).

use bytes::Bytes;
use serde_json::{Map, Value};

use weir_model::{BackendEncoding, OutputEncoding};

pub mod xml;

/// `Content-Type` of JSON answers.
pub const JSON: &str = "application/json; charset=utf-8";
/// `Content-Type` of XML answers (KrakenD sends no charset).
pub const XML: &str = "application/xml";
/// `Content-Type` of YAML answers.
pub const YAML: &str = "application/x-yaml; charset=utf-8";
/// `Content-Type` of text answers and error texts.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Decodes a backend body into an object, or says why it cannot.
pub fn decode(
    encoding: BackendEncoding,
    is_collection: bool,
    body: &[u8],
) -> Result<Map<String, Value>, String> {
    match encoding {
        BackendEncoding::Json => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err("empty body where JSON was expected".into());
            }
            match serde_json::from_slice::<Value>(body).map_err(|e| format!("invalid JSON: {e}"))? {
                Value::Object(m) if !is_collection => Ok(m),
                Value::Array(a) if is_collection => Ok(wrap("collection", Value::Array(a))),
                Value::Array(_) => Err(
                    "the answer is a JSON array; set isCollection: true on this backend to accept it"
                        .into(),
                ),
                Value::Object(_) => Err(
                    "isCollection is set but the answer is a JSON object, not an array".into(),
                ),
                other => Err(format!(
                    "the answer is a JSON {}, not an object (use encoding safejson to accept it)",
                    kind(&other)
                )),
            }
        }
        BackendEncoding::SafeJson => {
            match serde_json::from_slice::<Value>(body).map_err(|e| format!("invalid JSON: {e}"))? {
                Value::Object(m) => Ok(m),
                a @ Value::Array(_) => Ok(wrap("collection", a)),
                other => Ok(wrap("content", other)),
            }
        }
        BackendEncoding::Xml => xml::xml_to_map(body).map_err(|e| format!("invalid XML: {e}")),
        BackendEncoding::String => Ok(wrap(
            "content",
            Value::String(String::from_utf8_lossy(body).into_owned()),
        )),
        BackendEncoding::NoOp => Err("no-op answers are passed through, not decoded".into()),
    }
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

/// Decompresses a gzip body, refusing to grow past `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, String> {
    use std::io::Read;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| format!("invalid gzip body: {e}"))?;
    if out.len() > limit {
        return Err(format!("gzip body larger than {limit} bytes once decoded"));
    }
    Ok(Bytes::from(out))
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

/// Renders the merged data. `no-op` never reaches here.
pub fn render(
    encoding: OutputEncoding,
    data: Map<String, Value>,
    accept: Option<&str>,
) -> Rendered {
    let encoding = match encoding {
        OutputEncoding::Negotiate => negotiate(accept),
        e => e,
    };
    match encoding {
        OutputEncoding::Json | OutputEncoding::Negotiate | OutputEncoding::NoOp => Rendered {
            body: Bytes::from(serde_json::to_vec(&data).unwrap_or_default()),
            content_type: JSON,
        },
        OutputEncoding::JsonCollection => {
            let collection = match data.get("collection") {
                Some(v @ Value::Array(_)) => v.clone(),
                _ => Value::Array(Vec::new()),
            };
            Rendered {
                body: Bytes::from(serde_json::to_vec(&collection).unwrap_or_default()),
                content_type: JSON,
            }
        }
        OutputEncoding::String => Rendered {
            body: match data.get("content") {
                Some(Value::String(s)) => Bytes::from(s.clone()),
                _ => Bytes::new(),
            },
            content_type: TEXT,
        },
        OutputEncoding::Xml => Rendered {
            body: Bytes::from(xml::map_to_xml(&data)),
            content_type: XML,
        },
        OutputEncoding::Yaml => Rendered {
            body: Bytes::from(xml::to_yaml(&Value::Object(data))),
            content_type: YAML,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arrays_need_is_collection() {
        let err = decode(BackendEncoding::Json, false, b"[1,2]").unwrap_err();
        assert!(err.contains("set isCollection"), "{err}");
        let ok = decode(BackendEncoding::Json, true, b"[1,2]").unwrap();
        assert_eq!(Value::Object(ok), serde_json::json!({"collection": [1, 2]}));
        assert!(decode(BackendEncoding::Json, false, b"{\"a\":").is_err());
        assert!(decode(BackendEncoding::Json, false, b"").is_err());
        assert!(decode(BackendEncoding::Json, false, b"42").is_err());
    }

    #[test]
    fn safejson_and_string_wrap() {
        let m = decode(BackendEncoding::SafeJson, false, b"42").unwrap();
        assert_eq!(Value::Object(m), serde_json::json!({"content": 42}));
        let m = decode(BackendEncoding::SafeJson, false, b"[1]").unwrap();
        assert_eq!(Value::Object(m), serde_json::json!({"collection": [1]}));
        let m = decode(BackendEncoding::String, false, b"hi").unwrap();
        assert_eq!(Value::Object(m), serde_json::json!({"content": "hi"}));
    }

    #[test]
    fn negotiation_follows_accept() {
        assert_eq!(negotiate(None), OutputEncoding::Json);
        assert_eq!(negotiate(Some("application/xml")), OutputEncoding::Xml);
        assert_eq!(negotiate(Some("text/plain")), OutputEncoding::Yaml);
        assert_eq!(
            negotiate(Some("application/xml;q=0.5, application/json")),
            OutputEncoding::Json
        );
        assert_eq!(negotiate(Some("image/png")), OutputEncoding::Json);
    }

    #[test]
    fn renders_collections_and_strings() {
        let data: Map<String, Value> = serde_json::from_str(r#"{"collection":[1,2]}"#).unwrap();
        let r = render(OutputEncoding::JsonCollection, data, None);
        assert_eq!(&r.body[..], b"[1,2]");
        let r = render(OutputEncoding::JsonCollection, Map::new(), None);
        assert_eq!(&r.body[..], b"[]");
        let data: Map<String, Value> = serde_json::from_str(r#"{"content":"hello"}"#).unwrap();
        let r = render(OutputEncoding::String, data, None);
        assert_eq!((&r.body[..], r.content_type), (&b"hello"[..], TEXT));
    }
}
