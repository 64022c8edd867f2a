//! Backend URLs built from hostile values (crates/weir-proxy/src/plan/url.rs): the traversal
//! defect class of issue 10.
//!
//! An endpoint `/e/{p0}/…/{*rest}` and a `urlPattern` made of literal pieces and placeholders
//! (endpoint parameters, the catch-all, `{resp0_f}` from an earlier answer, `{JWT.sub}`), with
//! any values. Invariant: either the gateway refuses the values (the pipeline's check with
//! `check_path_value` / `check_catch_all`, or `build`'s own check of answer values and
//! claims), or the backend path, percent-decoded once and normalised the way nginx does it
//! (merged slashes, `.` and `..` resolved; here `\` separates too and NUL ends the path),
//! still starts with the pattern's literal prefix (the host's path prefix and the pattern up
//! to the last `/` before the first placeholder). Patterns that leave their prefix with
//! harmless values (`/a/../b`) are the operator's own doing and skipped, and so are patterns
//! with a literal `.`/`..` segment (see FUZZING.md).
#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use weir_model::{BaseUrl, PathTemplate, UrlTemplate};
use weir_proxy::plan::url::{check_catch_all, check_path_value, HostPlan, UrlError, UrlPlan};

/// Pieces an operator writes between placeholders; `%` only in complete escapes.
const LITERALS: &[&str] = &[
    "/", "/", "/", "a", "b", "v1", ".", "..", "-", "_", "~", ".json", "%2F", "%41", "%2e", ";",
    "?", "=", "&", "items",
];
const HOST_PREFIXES: &[&str] = &["", "/pre", "/a/b"];

struct Case {
    params: usize,
    catch_all: bool,
    pattern: String,
    host: String,
    values: Vec<String>,
    catch_all_raw: Option<String>,
    previous: Map<String, Value>,
    claims: Map<String, Value>,
    allow_slashes: bool,
}

fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    let params = usize::from(u.int_in_range(0u8..=3)?);
    let catch_all = u.arbitrary()?;
    let mut pattern = String::from("/");
    for _ in 0..u.int_in_range(1u8..=8)? {
        match u.int_in_range(0u8..=7)? {
            0..=2 => pattern.push_str(u.choose(LITERALS)?),
            3 | 4 if params > 0 => {
                let i = usize::from(u.arbitrary::<u8>()?) % params;
                pattern.push_str(&format!("{{p{i}}}"));
            }
            5 if catch_all => pattern.push_str("{rest}"),
            6 => pattern.push_str("{resp0_f}"),
            7 => pattern.push_str("{JWT.sub}"),
            _ => pattern.push_str(u.choose(LITERALS)?),
        }
    }
    let host = format!("http://backend:8080{}", u.choose(HOST_PREFIXES)?);
    let mut values = Vec::with_capacity(params + 1);
    for _ in 0..params {
        values.push(weir_fuzz::string(u)?);
    }
    let catch_all_raw = if catch_all {
        let raw = weir_fuzz::string(u)?;
        values.push(
            percent_encoding::percent_decode_str(&raw)
                .decode_utf8_lossy()
                .into_owned(),
        );
        Some(raw)
    } else {
        None
    };
    let mut previous = Map::new();
    if u.ratio(3u8, 4u8)? {
        previous.insert("f".into(), weir_fuzz::value(u, 1)?);
    }
    let mut claims = Map::new();
    if u.ratio(3u8, 4u8)? {
        claims.insert("sub".into(), weir_fuzz::value(u, 1)?);
    }
    Ok(Case {
        params,
        catch_all,
        pattern,
        host,
        values,
        catch_all_raw,
        previous,
        claims,
        allow_slashes: u.arbitrary()?,
    })
}

/// The pipeline's check (`check_params` in pipeline/mod.rs): every endpoint parameter the
/// pattern puts in the path, the catch-all segment by segment.
fn refused(c: &Case, plan: &UrlPlan, catch_all_index: Option<usize>) -> bool {
    plan.path_params().iter().any(|&i| {
        match (&c.catch_all_raw, Some(i) == catch_all_index) {
            (Some(raw), true) => check_catch_all(raw, c.allow_slashes),
            _ => check_path_value(c.values.get(i).map_or("", String::as_str), c.allow_slashes),
        }
        .is_err()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(c) = case(&mut u) else {
        return;
    };
    let mut endpoint = String::from("/e");
    for i in 0..c.params {
        endpoint.push_str(&format!("/{{p{i}}}"));
    }
    if c.catch_all {
        endpoint.push_str("/{*rest}");
    }
    let (Ok(path), Ok(pattern), Ok(base)) = (
        PathTemplate::parse(&endpoint),
        UrlTemplate::parse(&c.pattern),
        BaseUrl::parse(&c.host),
    ) else {
        panic!(
            "generated templates must parse: {endpoint:?} {:?} {:?}",
            c.pattern, c.host
        );
    };
    let Some(host) = HostPlan::compile(&base) else {
        panic!("host must compile: {:?}", c.host);
    };
    let plan = UrlPlan::compile(&pattern, &path);
    let catch_all_index = c.catch_all.then_some(c.params);

    // The prefix a value must never leave.
    let path_part = c.pattern.split('?').next().unwrap_or("");
    let literal = &path_part[..path_part.find('{').unwrap_or(path_part.len())];
    let literal = &literal[..literal.rfind('/').map_or(0, |i| i + 1)];
    let prefix = weir_fuzz::normalised_segments(&format!("{}{literal}", host.prefix));

    // The pattern filled with harmless values: if that leaves the prefix already, the
    // operator wrote a path that leaves it.
    let harmless: Vec<String> = (0..c.values.len()).map(|_| "x".to_string()).collect();
    let mut harmless_map = Map::new();
    harmless_map.insert("f".into(), Value::String("x".into()));
    let claims_x = {
        let mut m = Map::new();
        m.insert("sub".into(), Value::String("x".into()));
        m
    };
    let baseline = plan
        .build(
            &host,
            &harmless,
            c.catch_all.then_some("x"),
            &[Some(harmless_map)],
            Some(&claims_x),
            "",
        )
        .unwrap_or_else(|e| panic!("harmless values refused: {e} for {:?}", c.pattern));
    if !weir_fuzz::normalised_segments(baseline.path()).starts_with(&prefix) {
        return;
    }
    // A literal `.` or `..` segment (`/a/{x}/..`) climbs one segment further once an empty
    // value (an answer field that is missing, a claim that is "") lets nginx merge the
    // slashes around it: the operator's dot segment, which validation could refuse; not a
    // value the gateway can check. Left out of the invariant (FUZZING.md).
    let decoded = percent_encoding::percent_decode_str(path_part).decode_utf8_lossy();
    if decoded.split(['/', '\\']).any(|s| s == "." || s == "..") {
        return;
    }

    if refused(&c, &plan, catch_all_index) {
        return;
    }
    let built = plan.build(
        &host,
        &c.values,
        c.catch_all_raw.as_deref(),
        &[Some(c.previous.clone())],
        Some(&c.claims),
        "q=1",
    );
    match built {
        Ok(uri) => {
            let segments = weir_fuzz::normalised_segments(uri.path());
            assert!(
                segments.starts_with(&prefix),
                "backend path {:?} (normalised {segments:?}) left the prefix {prefix:?}\n\
                 pattern {:?}, values {:?}, catch-all {:?}, previous {:?}, claims {:?}",
                uri.path(),
                c.pattern,
                c.values,
                c.catch_all_raw,
                c.previous,
                c.claims,
            );
        }
        // Refused: an answer value or a claim unsafe in a path, or a value that completed a
        // dot segment with the literal text around it.
        Err(UrlError::UnsafePrevious { .. } | UrlError::Claim(_) | UrlError::DotSegment(_)) => {}
        Err(e @ UrlError::Invalid(_)) => panic!("encoded values made an invalid URL: {e}"),
    }
});
