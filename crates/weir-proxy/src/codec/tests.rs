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

/// `[unit,unit,…]` with `n` units.
fn array_of(unit: &str, n: usize) -> Vec<u8> {
    let mut s = String::with_capacity(n * (unit.len() + 1) + 2);
    s.push('[');
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(unit);
    }
    s.push(']');
    s.into_bytes()
}

/// An ordinary API answer: objects of a dozen short fields, about `len` bytes long.
fn ordinary_users(len: usize) -> Vec<u8> {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < len - 400 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"id":{i},"login":"user{i}","name":"Jane Q. Public","email":"jane{i}@example.com","active":true,"score":{}.5,"created_at":"2024-01-02T10:00:00Z","roles":["reader","writer"],"address":{{"street":"{i} Main Street","city":"Springfield","zip":"12345"}}}}"#,
            i % 100
        ));
        i += 1;
    }
    s.push(']');
    s.into_bytes()
}

#[test]
fn a_body_over_max_response_size_is_refused_before_parsing() {
    // Not even JSON: the length is checked first.
    let body = vec![b'x'; 1025];
    for encoding in [
        BackendEncoding::Json,
        BackendEncoding::SafeJson,
        BackendEncoding::Xml,
        BackendEncoding::String,
    ] {
        let err = decode_limited(encoding, false, &body, 1024).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::TooLarge {
                    size: 1025,
                    limit: 1024
                }
            ),
            "{encoding:?}: {err}"
        );
        assert_eq!(
            err.to_string(),
            "response body of 1025 bytes exceeds maxResponseSize (1024 bytes)"
        );
    }
    let ok = decode_limited(BackendEncoding::String, false, &body[..1024], 1024).unwrap();
    assert_eq!(ok["content"].as_str().map(str::len), Some(1024));
    let json = br#"{"a":[1,2,3]}"#;
    let ok = decode_limited(BackendEncoding::Json, false, json, json.len()).unwrap();
    assert_eq!(Value::Object(ok), serde_json::json!({"a": [1, 2, 3]}));
}

#[test]
fn json_that_would_expand_past_the_budget_is_refused_and_ordinary_json_is_not() {
    let limit = 1 << 20;
    // 8 bytes of JSON and about 700 bytes of memory per object: under the size limit,
    // over 16 × the limit once decoded.
    let hostile = array_of(r#"{"a":0}"#, 100_000);
    assert!(hostile.len() < limit);
    for encoding in [BackendEncoding::Json, BackendEncoding::SafeJson] {
        let err = decode_limited(encoding, true, &hostile, limit).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooExpansive { budget, limit: l }
                if budget == DECODED_SIZE_FACTOR * limit && l == limit),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("maxResponseSize of 1048576 bytes") && text.contains("16777216"),
            "{text}"
        );
    }
    // Under a larger limit the same body decodes.
    let ok = decode_limited(BackendEncoding::Json, true, &hostile, 8 * limit).unwrap();
    assert_eq!(ok["collection"].as_array().map(Vec::len), Some(100_000));
    // A body of ordinary shape right at the size limit decodes.
    let ordinary = ordinary_users(limit);
    assert!(ordinary.len() <= limit && ordinary.len() > limit - 1000);
    let estimate = json_decoded_estimate(&ordinary);
    assert!(
        estimate < 10 * ordinary.len(),
        "ordinary JSON estimated at {estimate} bytes for {} bytes",
        ordinary.len()
    );
    decode_limited(BackendEncoding::Json, true, &ordinary, limit).unwrap();
}

#[test]
fn xml_that_would_expand_past_the_budget_is_refused() {
    let limit = 1 << 20;
    // One attribute makes each element an object of its own: ~80 bytes of memory per byte.
    let hostile = format!("<r>{}</r>", "<i a=\"\"/>".repeat(100_000));
    assert!(hostile.len() < limit);
    let err = decode_limited(BackendEncoding::Xml, false, hostile.as_bytes(), limit).unwrap_err();
    assert!(
        matches!(err, DecodeError::TooExpansive { limit: l, .. } if l == limit),
        "{err}"
    );
    let ordinary: String = (0..4_000)
        .map(|i| {
            format!(
                "<user id=\"{i}\"><name>Jane {i}</name><email>jane{i}@example.com</email></user>"
            )
        })
        .collect();
    let ordinary = format!("<users>{ordinary}</users>");
    let ok = decode_limited(
        BackendEncoding::Xml,
        false,
        ordinary.as_bytes(),
        ordinary.len(),
    )
    .unwrap();
    assert_eq!(ok["users"]["user"].as_array().map(Vec::len), Some(4_000));
}

#[test]
fn the_estimate_follows_what_serde_json_allocates() {
    use limits::{array_cost, object_cost, string_cost};
    let value = std::mem::size_of::<Value>();
    assert_eq!(json_decoded_estimate(b"[]"), value);
    assert_eq!(json_decoded_estimate(b" { } "), value);
    assert_eq!(json_decoded_estimate(b"42"), value);
    assert_eq!(json_decoded_estimate(b"[1,2,3]"), value + array_cost(3));
    assert_eq!(
        json_decoded_estimate(br#"{"a":"xy","b":[[]]}"#),
        value + object_cost(2) + 3 * string_cost(1) + array_cost(1)
    );
    // Brackets, commas and escaped quotes inside strings are text, not structure.
    assert_eq!(
        json_decoded_estimate(br#"["[{,", "\"]"]"#),
        value + array_cost(2) + string_cost(4) + string_cost(3)
    );
    // Vec doubling from four slots; B-tree nodes of eleven entries.
    assert_eq!(array_cost(1), array_cost(4));
    assert!(array_cost(5) > array_cost(4));
    assert_eq!(object_cost(1), object_cost(11));
    assert!(object_cost(12) > 2 * object_cost(11));
    // Counting stops at serde_json's depth limit, where parsing fails too.
    let deep = "[".repeat(1_000_000);
    assert!(json_decoded_estimate(deep.as_bytes()) < 1_000_000);
    assert!(decode_limited(
        BackendEncoding::SafeJson,
        false,
        deep.as_bytes(),
        usize::MAX
    )
    .is_err());
}

#[test]
fn a_gzip_bomb_is_stopped_at_the_limit() {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b'a'; 4 << 20]).unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 16 * 1024);
    let err = gunzip_limited(&bomb, 1 << 20).unwrap_err();
    assert!(
        matches!(err, DecodeError::GunzipTooLarge { limit } if limit == 1 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("maxResponseSize (1048576 bytes)"));
    assert_eq!(gunzip_limited(&bomb, 4 << 20).unwrap().len(), 4 << 20);
    assert!(matches!(
        gunzip_limited(b"not gzip", 1024),
        Err(DecodeError::Gzip(_))
    ));
    assert!(gunzip(&bomb, 1 << 20)
        .unwrap_err()
        .contains("exceeds maxResponseSize"));
}

#[tokio::test]
async fn offloaded_calls_give_the_same_results() {
    use std::io::Write;
    let big = Bytes::from(ordinary_users(4 * OFFLOAD_THRESHOLD));
    let small = Bytes::from_static(br#"[{"a":1}]"#);
    for body in [big.clone(), small] {
        let sync = decode_limited(BackendEncoding::Json, true, &body, 1 << 20).unwrap();
        let off = decode_offloaded(BackendEncoding::Json, true, body.clone(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(sync, off);
        let rendered = render(OutputEncoding::Yaml, sync.clone(), None);
        let off = render_offloaded(
            OutputEncoding::Negotiate,
            sync,
            Some("text/yaml"),
            body.len(),
        )
        .await
        .unwrap();
        assert_eq!(
            (rendered.body, rendered.content_type),
            (off.body, off.content_type)
        );
    }
    let err = decode_offloaded(BackendEncoding::Json, true, big.clone(), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge { limit: 1024, .. }));

    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&big).unwrap();
    let gz = Bytes::from(enc.finish().unwrap());
    assert_eq!(gunzip_offloaded(gz.clone(), 1 << 20).await.unwrap(), big);
    let err = gunzip_offloaded(gz.clone(), big.len() - 1)
        .await
        .unwrap_err();
    assert!(matches!(err, DecodeError::GunzipTooLarge { limit } if limit == big.len() - 1));
    let err = gunzip_offloaded(gz, 1024).await.unwrap_err();
    assert!(matches!(err, DecodeError::GunzipTooLarge { limit: 1024 }));
}

#[test]
fn decode_errors_keep_their_text() {
    let err = decode(BackendEncoding::Json, false, b"{\"a\":").unwrap_err();
    assert!(err.starts_with("invalid JSON: EOF while parsing"), "{err}");
    let err = decode(BackendEncoding::Xml, false, b"<a>").unwrap_err();
    assert_eq!(err, "invalid XML: XML document ends inside element <a>");
    let err = decode(BackendEncoding::Json, false, b"42").unwrap_err();
    assert_eq!(
        err,
        "the answer is a JSON number, not an object (use encoding safejson to accept it)"
    );
}
