//! Backend URLs compiled from `urlPattern` at reload time: a list of parts with indices, so a
//! request only copies literals and percent-encodes values, never looks a name up.
//!
//! The path part is where traversal happens: a backend that decodes `%2F` or `%2E%2E` and
//! then normalises the path (nginx does) would let `..%2Finternal` escape the pattern's
//! prefix. So every value placed in the path part is checked ([`check_path_value`]) and
//! refused when its decoded form holds `/`, `\`, NUL, or is a dot segment, before any
//! backend is called. A value can also complete a dot segment with the literal text around
//! it (`{resp0_id}..` with an empty value), which no check of the value alone sees, so
//! [`UrlPlan::build`] also refuses a path segment a value wrote into that ends up `.` or `..`.
//! Values in the query part are only encoded: a query is never normalised.

use std::fmt::Write as _;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::Uri;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};

use weir_model::{BaseUrl, PathTemplate, Piece, UrlTemplate};

/// Characters left as they are in a client value placed into a backend URL: RFC 3986
/// unreserved only. Everything else, `/ ? # %` included, is percent-encoded.
pub const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a value may not go into a backend path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeValue {
    /// `/` (or `%2F`) would add a path segment.
    #[error("holds a '/'")]
    Slash,
    /// `\` is a separator to some backends.
    #[error("holds a '\\'")]
    Backslash,
    /// NUL ends strings in C backends.
    #[error("holds a NUL byte")]
    Nul,
    /// `.` or `..` would move up the backend's path.
    #[error("is a dot segment ('.' or '..')")]
    DotSegment,
}

/// Checks one decoded value bound for a path position. With `allow_slashes` (the endpoint's
/// `allowEncodedSlashes`) a value may hold `/`, but none of its segments may be a dot
/// segment.
pub fn check_path_value(value: &str, allow_slashes: bool) -> Result<(), UnsafeValue> {
    if value.contains('\0') {
        return Err(UnsafeValue::Nul);
    }
    if value.contains('\\') {
        return Err(UnsafeValue::Backslash);
    }
    if !allow_slashes && value.contains('/') {
        return Err(UnsafeValue::Slash);
    }
    if value.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(UnsafeValue::DotSegment);
    }
    Ok(())
}

/// Checks a raw catch-all remainder (`a/b%2Fc/d`) segment by segment, each decoded once.
pub fn check_catch_all(raw: &str, allow_slashes: bool) -> Result<(), UnsafeValue> {
    for segment in raw.split('/') {
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        check_path_value(&decoded, allow_slashes)?;
    }
    Ok(())
}

/// One piece of a compiled URL pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlPart {
    /// Copied as is.
    Lit(String),
    /// The endpoint path parameter at this index.
    PathParam {
        /// Index into the request's parameters.
        index: usize,
        /// In the path part (checked) or the query part (only encoded).
        in_path: bool,
    },
    /// The endpoint's catch-all remainder: its slashes kept, each segment re-encoded.
    CatchAll {
        /// Index into the request's parameters.
        index: usize,
    },
    /// A claim of the validated token (`{JWT.sub}`); checked before any backend is called
    /// (missing: 401; unsafe in a path: 401).
    Claim {
        /// The claim.
        path: weir_model::ClaimPath,
        /// In the path part (checked) or the query part (only encoded).
        in_path: bool,
    },
    /// A value from an earlier backend's answer (`{resp0_a.b}`), sequential endpoints only.
    Previous {
        /// Which backend answered it.
        backend: usize,
        /// The dot path, split once.
        path: Vec<String>,
        /// In the path part (checked) or the query part.
        in_path: bool,
    },
}

/// A compiled `urlPattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPlan {
    parts: Vec<UrlPart>,
    /// Whether the pattern already has a `?` (forwarded query strings then join with `&`).
    has_query: bool,
    /// Bytes of the literals, to size the buffer once.
    literal_len: usize,
    /// Indices of endpoint parameters that land in the path part.
    path_params: Vec<usize>,
}

/// A backend host compiled once: scheme and authority parsed, so a request only builds
/// the path and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
    /// Path prefix without trailing `/` (often empty).
    pub prefix: String,
}

impl HostPlan {
    /// Compiles a validated base URL (validation parsed the authority already, so this
    /// cannot fail for a model value; `None` only for an impossible one).
    pub fn compile(host: &BaseUrl) -> Option<Self> {
        Some(Self {
            scheme: if host.https {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            authority: host.authority.parse().ok()?,
            prefix: host.prefix.clone(),
        })
    }
}

/// What a compiled pattern could not fill.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// A value from an earlier answer is unsafe in a path.
    #[error("the value of {{resp{backend}_{path}}} {reason}")]
    UnsafePrevious {
        /// The backend that answered.
        backend: usize,
        /// The dot path.
        path: String,
        /// Why.
        reason: UnsafeValue,
    },
    /// A claim the pattern inserts is missing or unsafe (the auth check refuses such
    /// requests first; this is the second line).
    #[error("the claim {{JWT.{0}}} is missing or unusable")]
    Claim(String),
    /// A value, joined with the literal text around it, made a backend path segment `.` or
    /// `..` (an empty answer value in `/{resp0_id}..`, a catch-all starting with `/` after
    /// `/..`): a decoding backend would move up its path.
    #[error("the backend path segment {0:?} is a dot segment once filled in")]
    DotSegment(String),
    /// The assembled URL does not parse (should not happen: every value is encoded).
    #[error("invalid backend URL {0}")]
    Invalid(String),
}

/// Watches the path part of a URL being assembled, one segment at a time: a segment that a
/// value helped to write may not end up as a dot segment, which each value's own check
/// cannot see (`..` + an empty value). Literal-only segments are the operator's.
struct Segments {
    /// Where the current segment starts in the URL.
    start: usize,
    /// Whether a value wrote into the current segment.
    touched: bool,
    /// The query has started: nothing more to watch.
    done: bool,
}

impl Segments {
    fn new(start: usize) -> Self {
        Self {
            start,
            touched: false,
            done: false,
        }
    }

    /// Takes note of `url[from..]`, just appended: a value's encoding (`value`) or a
    /// literal (where `?` starts the query). Segments end at `/` and at what a backend
    /// decodes into a separator: `%2F` (a literal's, or an encoded slash of a value under
    /// `allowEncodedSlashes`) and `%5C`.
    fn appended(&mut self, url: &str, from: usize, value: bool) -> Result<(), UrlError> {
        if self.done {
            return Ok(());
        }
        self.touched |= value;
        let bytes = url.as_bytes();
        let mut i = from;
        while i < bytes.len() {
            let separator = match bytes[i] {
                b'/' => 1,
                b'%' if bytes.get(i + 1..i + 3).is_some_and(|h| {
                    h.eq_ignore_ascii_case(b"2f") || h.eq_ignore_ascii_case(b"5c")
                }) =>
                {
                    3
                }
                b'?' if !value => {
                    self.close(url, i)?;
                    self.done = true;
                    return Ok(());
                }
                _ => 0,
            };
            if separator == 0 {
                i += 1;
                continue;
            }
            self.close(url, i)?;
            i += separator;
            self.start = i;
            self.touched = value;
        }
        Ok(())
    }

    /// Checks the segment ending at `end`.
    fn close(&self, url: &str, end: usize) -> Result<(), UrlError> {
        let segment = &url[self.start..end];
        if self.touched && is_dot_segment(segment) {
            return Err(UrlError::DotSegment(segment.to_string()));
        }
        Ok(())
    }

    /// Checks the last segment of a URL without a query.
    fn finish(&self, url: &str) -> Result<(), UrlError> {
        if self.done {
            return Ok(());
        }
        self.close(url, url.len())
    }
}

/// Whether `segment`, percent-decoded once (as a backend does), is `.` or `..`.
fn is_dot_segment(segment: &str) -> bool {
    let mut bytes = percent_decode_str(segment);
    matches!(
        (bytes.next(), bytes.next(), bytes.next()),
        (Some(b'.'), None, _) | (Some(b'.'), Some(b'.'), None)
    )
}

impl UrlPlan {
    /// Compiles `pattern` against the endpoint `path` (validation already checked that every
    /// placeholder is a path parameter or an earlier answer).
    pub fn compile(pattern: &UrlTemplate, path: &PathTemplate) -> Self {
        let mut parts = Vec::with_capacity(pattern.pieces().len());
        let mut in_path = true;
        let mut literal_len = 0;
        let mut path_params = Vec::new();
        let catch_all = path
            .has_catch_all()
            .then(|| path.params().len().saturating_sub(1));
        for piece in pattern.pieces() {
            match piece {
                Piece::Literal(s) => {
                    if s.contains('?') {
                        in_path = false;
                    }
                    literal_len += s.len();
                    parts.push(UrlPart::Lit(s.clone()));
                }
                Piece::Param(name) => {
                    if let Some(index) = path.params().iter().position(|p| p == name) {
                        if in_path {
                            path_params.push(index);
                        }
                        if in_path && Some(index) == catch_all {
                            parts.push(UrlPart::CatchAll { index });
                        } else {
                            parts.push(UrlPart::PathParam { index, in_path });
                        }
                    } else if let Some(claim) =
                        name.strip_prefix(weir_model::convert::JWT_PLACEHOLDER)
                    {
                        // Validation parsed it already.
                        if let Ok(path) = weir_model::ClaimPath::parse(claim) {
                            parts.push(UrlPart::Claim { path, in_path });
                        }
                    } else if let Some(backend) = weir_model::convert::sequential_ref(name) {
                        let field = &name[name.find('_').map_or(0, |i| i + 1)..];
                        parts.push(UrlPart::Previous {
                            backend,
                            path: field.split('.').map(str::to_string).collect(),
                            in_path,
                        });
                    }
                }
            }
        }
        path_params.sort_unstable();
        path_params.dedup();
        Self {
            parts,
            has_query: !in_path,
            literal_len,
            path_params,
        }
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[UrlPart] {
        &self.parts
    }

    /// Endpoint parameters (by index) this pattern puts into the backend path.
    pub fn path_params(&self) -> &[usize] {
        &self.path_params
    }

    /// The claims this pattern inserts.
    pub fn claims(&self) -> impl Iterator<Item = (&weir_model::ClaimPath, bool)> {
        self.parts.iter().filter_map(|p| match p {
            UrlPart::Claim { path, in_path } => Some((path, *in_path)),
            _ => None,
        })
    }

    /// Builds the backend URI: scheme and authority of `host`, its prefix, the parts filled
    /// in, then `query` (already filtered and encoded, `k=v` pairs joined by `&`). `claims`
    /// are the validated token's, for `{JWT.x}` parts.
    pub fn build(
        &self,
        host: &HostPlan,
        params: &[String],
        catch_all_raw: Option<&str>,
        previous: &[Option<Map<String, Value>>],
        claims: Option<&Map<String, Value>>,
        query: &str,
    ) -> Result<Uri, UrlError> {
        let mut url =
            String::with_capacity(host.prefix.len() + self.literal_len + 32 + query.len());
        url.push_str(&host.prefix);
        let mut segments = Segments::new(url.len());
        for part in &self.parts {
            let from = url.len();
            match part {
                UrlPart::Lit(s) => url.push_str(s),
                UrlPart::PathParam { index, .. } => {
                    push_encoded(&mut url, params.get(*index).map_or("", String::as_str))
                }
                UrlPart::CatchAll { index } => match catch_all_raw {
                    Some(raw) => push_segments(&mut url, raw),
                    None => push_encoded(&mut url, params.get(*index).map_or("", String::as_str)),
                },
                UrlPart::Claim { path, in_path } => {
                    let value = claims
                        .and_then(|c| crate::auth::claims::lookup(c, path))
                        .ok_or_else(|| UrlError::Claim(path.raw.clone()))?;
                    let text = crate::auth::claims::text(value);
                    if *in_path && check_path_value(&text, false).is_err() {
                        return Err(UrlError::Claim(path.raw.clone()));
                    }
                    push_encoded(&mut url, &text);
                }
                UrlPart::Previous {
                    backend,
                    path,
                    in_path,
                } => {
                    let value = previous
                        .get(*backend)
                        .and_then(Option::as_ref)
                        .and_then(|data| lookup(data, path));
                    let text = value.map(value_text).unwrap_or_default();
                    if *in_path {
                        check_path_value(&text, false).map_err(|reason| {
                            UrlError::UnsafePrevious {
                                backend: *backend,
                                path: path.join("."),
                                reason,
                            }
                        })?;
                    }
                    push_encoded(&mut url, &text);
                }
            }
            segments.appended(&url, from, !matches!(part, UrlPart::Lit(_)))?;
        }
        segments.finish(&url)?;
        if !query.is_empty() {
            url.push(if self.has_query { '&' } else { '?' });
            url.push_str(query);
        }
        let path = PathAndQuery::from_maybe_shared(bytes::Bytes::from(url))
            .map_err(|e| UrlError::Invalid(e.to_string()))?;
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(host.scheme.clone());
        parts.authority = Some(host.authority.clone());
        parts.path_and_query = Some(path);
        Uri::from_parts(parts).map_err(|e| UrlError::Invalid(e.to_string()))
    }
}

/// Appends `value` percent-encoded (RFC 3986 unreserved characters stay).
pub fn push_encoded(out: &mut String, value: &str) {
    // `write!` into a String cannot fail.
    let _ = write!(out, "{}", utf8_percent_encode(value, VALUE));
}

/// Appends a catch-all remainder: segments separated by `/`, each decoded once and
/// re-encoded, so what reaches the backend is canonical whatever the client wrote.
fn push_segments(out: &mut String, raw: &str) {
    for (i, segment) in raw.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        push_encoded(out, &percent_decode_str(segment).decode_utf8_lossy());
    }
}

fn value_text(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        Value::Null => std::borrow::Cow::Borrowed(""),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// Follows a pre-split dot path through objects and (numeric steps) arrays.
pub fn lookup<'a>(data: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut cur = data.get(first)?;
    for p in rest {
        cur = match cur {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pattern: &str, path: &str) -> UrlPlan {
        UrlPlan::compile(
            &UrlTemplate::parse(pattern).unwrap(),
            &PathTemplate::parse(path).unwrap(),
        )
    }

    fn host() -> HostPlan {
        HostPlan::compile(&BaseUrl::parse("http://b:1/pre").unwrap()).unwrap()
    }

    #[test]
    fn compiles_parts_with_indices_and_positions() {
        let p = plan("/u/{id}?x={kind}&y={resp0_a.b}", "/x/{kind}/{id}");
        assert_eq!(
            p.parts(),
            [
                UrlPart::Lit("/u/".into()),
                UrlPart::PathParam {
                    index: 1,
                    in_path: true
                },
                UrlPart::Lit("?x=".into()),
                UrlPart::PathParam {
                    index: 0,
                    in_path: false
                },
                UrlPart::Lit("&y=".into()),
                UrlPart::Previous {
                    backend: 0,
                    path: vec!["a".into(), "b".into()],
                    in_path: false
                },
            ]
        );
        assert_eq!(p.path_params(), [1]);
    }

    #[test]
    fn values_are_encoded_so_paths_cannot_change() {
        let p = plan("/raw/{v}", "/x/{v}");
        let uri = p
            .build(&host(), &["a b?#%".into()], None, &[], None, "")
            .unwrap();
        assert_eq!(uri.to_string(), "http://b:1/pre/raw/a%20b%3F%23%25");
    }

    #[test]
    fn query_joins_the_pattern_query() {
        let uri = plan("/a?z=1", "/a")
            .build(&host(), &[], None, &[], None, "q=2")
            .unwrap();
        assert_eq!(uri.to_string(), "http://b:1/pre/a?z=1&q=2");
        let uri = plan("/a", "/a")
            .build(&host(), &[], None, &[], None, "q=2")
            .unwrap();
        assert_eq!(uri.to_string(), "http://b:1/pre/a?q=2");
    }

    #[test]
    fn unsafe_path_values_are_refused() {
        for (v, want) in [
            ("../x", UnsafeValue::Slash),
            ("..", UnsafeValue::DotSegment),
            (".", UnsafeValue::DotSegment),
            ("a\\b", UnsafeValue::Backslash),
            ("a\0", UnsafeValue::Nul),
        ] {
            assert_eq!(check_path_value(v, false), Err(want), "{v:?}");
        }
        assert_eq!(check_path_value("a/b", true), Ok(()));
        assert_eq!(
            check_path_value("a/../b", true),
            Err(UnsafeValue::DotSegment)
        );
        assert_eq!(check_path_value("..a", false), Ok(()));
        assert_eq!(check_path_value("a.b", false), Ok(()));
    }

    #[test]
    fn catch_all_keeps_slashes_and_refuses_dot_segments() {
        assert_eq!(check_catch_all("a/b/c", false), Ok(()));
        assert_eq!(
            check_catch_all("a/%2e%2e/c", false),
            Err(UnsafeValue::DotSegment)
        );
        assert_eq!(check_catch_all("a/b%2Fc", false), Err(UnsafeValue::Slash));
        assert_eq!(check_catch_all("a/b%2Fc", true), Ok(()));
        let p = plan("/svc/{rest}", "/api/{*rest}");
        assert_eq!(p.parts()[1], UrlPart::CatchAll { index: 0 });
        let uri = p
            .build(&host(), &["x/y z".into()], Some("x/y%20z"), &[], None, "")
            .unwrap();
        assert_eq!(uri.to_string(), "http://b:1/pre/svc/x/y%20z");
    }

    /// Found by the `url_build` fuzz target (fuzz/regressions/url_build/dot-segment-*): each
    /// value passes its own check, but joined with the literal dots around it a segment
    /// becomes `..`, which nginx resolves above the pattern's prefix.
    #[test]
    fn values_that_complete_a_dot_segment_are_refused() {
        let host = HostPlan::compile(&BaseUrl::parse("http://b:1/a/b").unwrap()).unwrap();
        // An earlier answer without the field (or null, or "") fills in nothing.
        let p = plan("/{resp0_f}..", "/x");
        for data in [r#"{"f":null}"#, r#"{"f":""}"#, "{}"] {
            let data: Map<String, Value> = serde_json::from_str(data).unwrap();
            let err = p
                .build(&host, &[], None, &[Some(data)], None, "")
                .unwrap_err();
            assert_eq!(err, UrlError::DotSegment("..".into()));
        }
        // A catch-all remainder starting with `/` leaves `..` alone before it.
        let p = plan("/svc/..{rest}", "/api/{*rest}");
        let err = p
            .build(&host, &["/x".into()], Some("/x"), &[], None, "")
            .unwrap_err();
        assert_eq!(err, UrlError::DotSegment("..".into()));
        // Encoded dots in the literal count: the backend decodes them; and so do encoded
        // slashes, a literal's or a value's (with allowEncodedSlashes).
        let p = plan("/%2e{resp0_f}/x", "/x");
        assert!(p
            .build(&host, &[], None, &[Some(Map::new())], None, "")
            .is_err());
        let p = plan("/{resp0_f}..%2F{rest}", "/x/{*rest}");
        let err = p
            .build(
                &host,
                &["y".into()],
                Some("y"),
                &[Some(Map::new())],
                None,
                "",
            )
            .unwrap_err();
        assert_eq!(err, UrlError::DotSegment("..".into()));
        let p = plan("/{id}..", "/x/{id}");
        let err = p
            .build(&host, &["/".into()], None, &[], None, "")
            .unwrap_err();
        assert_eq!(err, UrlError::DotSegment("..".into()));
        // Dots that stay part of a longer segment, literal-only dot segments (the
        // operator's), and the query part are left alone.
        let data: Map<String, Value> = serde_json::from_str(r#"{"f":"v"}"#).unwrap();
        let uri = plan("/{resp0_f}../.?a=..", "/x")
            .build(&host, &[], None, &[Some(data)], None, "")
            .unwrap();
        assert_eq!(uri.to_string(), "http://b:1/a/b/v../.?a=..");
        let uri = plan("/u?a={resp0_f}..", "/x")
            .build(&host, &[], None, &[Some(Map::new())], None, "")
            .unwrap();
        assert_eq!(uri.to_string(), "http://b:1/a/b/u?a=..");
    }

    #[test]
    fn previous_values_in_the_path_are_checked() {
        let data: Map<String, Value> = serde_json::from_str(r#"{"a":"../etc","n":7}"#).unwrap();
        let p = plan("/u/{resp0_a}", "/x");
        let err = p
            .build(&host(), &[], None, &[Some(data.clone())], None, "")
            .unwrap_err();
        assert!(matches!(err, UrlError::UnsafePrevious { .. }), "{err}");
        // In the query part the same value is only encoded.
        let p = plan("/u?a={resp0_a}&n={resp0_n}", "/x");
        let uri = p
            .build(&host(), &[], None, &[Some(data)], None, "")
            .unwrap();
        assert_eq!(uri.to_string(), "http://b:1/pre/u?a=..%2Fetc&n=7");
    }
}
