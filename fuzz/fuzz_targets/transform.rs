//! The compiled transform plan (crates/weir-proxy/src/transform/) on arbitrary JSON with
//! arbitrary `target`, `allow`, `deny`, `mapping`, `group` and `flatmap` settings.
//!
//! Invariants: compiling and applying never panics; the compiled plan gives what the
//! one-shot functions give applied in DESIGN.md's order (target → allow/deny → mapping →
//! group; flatmap in place of allow/deny/mapping); `allow` alone keeps no top-level key it
//! was not given; a one-segment `deny` alone removes that key; `group` leaves exactly one key.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use weir_model::{Backend, BackendEncoding, BaseUrl, ErrorPolicy, FlatmapOp, Method, UrlTemplate};
use weir_proxy::transform::{self, TransformPlan};

const DEPTH: u32 = 6;

fn paths(u: &mut Unstructured<'_>) -> Result<Vec<String>> {
    let n = u.int_in_range(0u8..=4)?;
    (0..n).map(|_| weir_fuzz::dot_path(u)).collect()
}

fn op(u: &mut Unstructured<'_>) -> Result<FlatmapOp> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => FlatmapOp::Move {
            from: weir_fuzz::dot_path(u)?,
            to: weir_fuzz::dot_path(u)?,
        },
        1 => FlatmapOp::Del(weir_fuzz::dot_path(u)?),
        _ => FlatmapOp::Append {
            from: weir_fuzz::dot_path(u)?,
            to: weir_fuzz::dot_path(u)?,
        },
    })
}

fn backend(u: &mut Unstructured<'_>) -> Result<Option<Backend>> {
    let (Ok(host), Ok(url_pattern)) = (
        BaseUrl::parse("http://backend:8080"),
        UrlTemplate::parse("/"),
    ) else {
        return Ok(None);
    };
    let target = if u.ratio(1u8, 4u8)? {
        Some(weir_fuzz::dot_path(u)?)
    } else {
        None
    };
    let allow = if u.ratio(1u8, 2u8)? {
        paths(u)?
    } else {
        Vec::new()
    };
    let deny = if u.ratio(1u8, 2u8)? {
        paths(u)?
    } else {
        Vec::new()
    };
    let mut mapping = BTreeMap::new();
    if u.ratio(1u8, 3u8)? {
        for _ in 0..u.int_in_range(0u8..=3)? {
            mapping.insert(weir_fuzz::key(u)?, weir_fuzz::key(u)?);
        }
    }
    let group = if u.ratio(1u8, 4u8)? {
        Some(weir_fuzz::key(u)?)
    } else {
        None
    };
    let mut flatmap = Vec::new();
    if u.ratio(1u8, 3u8)? {
        for _ in 0..u.int_in_range(1u8..=4)? {
            flatmap.push(op(u)?);
        }
    }
    Ok(Some(Backend {
        hosts: vec![host],
        url_pattern,
        method: Method::Get,
        encoding: BackendEncoding::Json,
        is_collection: false,
        target,
        allow,
        deny,
        mapping,
        group,
        flatmap,
        rate_limit: None,
        circuit_breaker: None,
        errors: ErrorPolicy::default(),
        input_headers: None,
        input_query_strings: None,
        max_response_size: 1024 * 1024,
        follow_redirects: true,
        redirect_same_host_only: false,
        tls: None,
        http2: false,
    }))
}

/// The one-shot functions in DESIGN.md's order: what the compiled plan must agree with.
fn reference(b: &Backend, mut data: Map<String, Value>) -> Map<String, Value> {
    if let Some(t) = &b.target {
        data = transform::target(data, t);
    }
    if !b.flatmap.is_empty() {
        transform::flatmap(&mut data, &b.flatmap);
    } else {
        if !b.allow.is_empty() {
            data = transform::allow(data, &b.allow);
        } else {
            transform::deny(&mut data, &b.deny);
        }
        transform::mapping(&mut data, &b.mapping);
    }
    if let Some(g) = &b.group {
        data = transform::group(data, g);
    }
    data
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(Some(b)) = backend(&mut u) else {
        return;
    };
    let Ok(input) = weir_fuzz::object(&mut u, DEPTH) else {
        return;
    };
    let plan = TransformPlan::compile(&b);
    let out = plan.apply(input.clone());
    assert_eq!(
        out,
        reference(&b, input.clone()),
        "compiled plan and one-shot functions differ"
    );

    let plain = b.target.is_none() && b.flatmap.is_empty() && b.mapping.is_empty();
    if let Some(g) = &b.group {
        assert!(
            out.len() == 1 && out.contains_key(g),
            "group {g:?} gave {out:?}"
        );
    } else if plain && !b.allow.is_empty() {
        for k in out.keys() {
            assert!(
                b.allow
                    .iter()
                    .any(|p| p.split('.').next() == Some(k.as_str())),
                "allow {:?} kept {k:?}",
                b.allow
            );
        }
    } else if plain {
        for d in b.deny.iter().filter(|d| !d.contains('.')) {
            assert!(!out.contains_key(d), "deny {d:?} kept it: {out:?}");
        }
    }
    if plan.is_identity() {
        assert_eq!(out, input);
    }
});
