//! Route lookup: host → first path segment → path → method, built when a table is built.
//!
//! Paths are keyed by their *shape* (placeholders renamed `{p0}`, `{p1}`, …, a catch-all
//! `{*rest}`), the path part of [`weir_model::RouteKey`], so `GET /users/{id}` and
//! `DELETE /users/{user}` share one matcher entry, which matchit requires. Exact segments
//! win over `{param}` segments, which win over a catch-all. Catch-alls live in matchers of
//! their own, tried after the exact and `{param}` routes (the more literal catch-all
//! first), so `/files/{id}` and `/files/{*rest}`, which one matcher refuses, work side by
//! side, and a method the matched route lacks falls through to a catch-all that has it.
//!
//! The routes of one host are split into buckets by their first path segment (`/users/…`,
//! `/orders/…`; routes starting with a placeholder form a bucket of their own, tried after
//! the literal one). A bucket whose routes did not change is reused as it is by the next
//! table: a one-endpoint change rebuilds one small matcher, not 10,000 routes.
//!
//! A second claim on the same host, method and shape is refused with the value already
//! there, never silently dropped. `HEAD` is served by the `GET` endpoint, an `ANY` endpoint
//! takes every method the path has no endpoint of its own for, and a 405 carries the
//! `Allow` value computed when the bucket was built.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use percent_encoding::percent_decode_str;

use weir_model::{Method, PathTemplate};

/// What the router needs to know about a value it routes to.
pub trait Routed {
    /// Host to match (lower-case), or any.
    fn host(&self) -> Option<&str>;
    /// The method (`ANY` included).
    fn method(&self) -> Method;
    /// The path template.
    fn template(&self) -> &PathTemplate;
}

/// Why a set of routes cannot be built into a router.
pub enum BuildError<T> {
    /// The same host, method and path shape is claimed twice: the first claim and the
    /// refused one.
    Duplicate(Arc<T>, Arc<T>),
    /// A path shape that cannot live next to another one in the matcher.
    Shape(Arc<T>, matchit::InsertError),
}

/// Parameter values of a match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Values in template order, percent-decoded once (a catch-all's as the decoded path).
    pub values: Vec<String>,
    /// A catch-all's remainder as the client wrote it (segments still encoded), so its
    /// segments can be checked and re-encoded one by one.
    pub catch_all_raw: Option<String>,
}

/// What a lookup found.
pub enum Lookup<T> {
    /// A route and its parameters.
    Found(Arc<T>, Params),
    /// The path exists, but not for this method; the value of `Allow`.
    MethodNotAllowed(HeaderValue),
    /// Nothing matches.
    NotFound,
}

const METHODS: usize = Method::ALL.len();

struct Slot<T> {
    methods: [Option<Arc<T>>; METHODS],
    any: Option<Arc<T>>,
    catch_all: bool,
    allow: HeaderValue,
}

/// The routes of one host whose paths start with one literal segment (or with a
/// placeholder), in one matcher.
struct Bucket<T> {
    /// Matchers tried in order: exact and `{param}` routes in the first, catch-alls after
    /// them, each in the first layer that holds it without a conflict.
    layers: Vec<matchit::Router<usize>>,
    slots: Vec<Slot<T>>,
    /// The values in build order: what decides whether the next table can reuse it.
    members: Vec<Arc<T>>,
}

/// One host's buckets.
struct HostRoutes<T> {
    literal: HashMap<String, Arc<Bucket<T>>>,
    placeholder: Option<Arc<Bucket<T>>>,
}

impl<T> Default for HostRoutes<T> {
    fn default() -> Self {
        Self {
            literal: HashMap::new(),
            placeholder: None,
        }
    }
}

/// Host-aware router over values of type `T` (compiled endpoints).
pub struct Router<T> {
    any_host: HostRoutes<T>,
    by_host: HashMap<String, HostRoutes<T>>,
    routes: usize,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self {
            any_host: HostRoutes::default(),
            by_host: HashMap::new(),
            routes: 0,
        }
    }
}

/// The matcher's form of a template: `{name}` → `{pN}`, `{*name}` → `{*rest}`.
fn matcher_shape(template: &PathTemplate) -> String {
    let mut n = 0;
    template
        .as_str()
        .split('/')
        .map(|seg| {
            if seg.starts_with("{*") {
                "{*rest}".to_string()
            } else if seg.starts_with('{') {
                n += 1;
                format!("{{p{}}}", n - 1)
            } else {
                // Templates have no braces outside placeholders (validation refuses them).
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The first segment of a template when it is literal; `None` when it is a placeholder.
fn first_literal(template: &str) -> Option<&str> {
    let first = template
        .strip_prefix('/')
        .unwrap_or(template)
        .split('/')
        .next()
        .unwrap_or("");
    (!first.starts_with('{')).then_some(first)
}

fn allow_value<T>(slot: &Slot<T>) -> HeaderValue {
    if slot.any.is_some() {
        return HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    }
    let mut names = Vec::new();
    for m in Method::ALL {
        if slot.methods[m as usize].is_some() {
            names.push(m.as_str());
            if m == Method::Get {
                names.push("HEAD");
            }
        }
    }
    // Method names are ASCII tokens: always a valid header value.
    HeaderValue::from_str(&names.join(", ")).unwrap_or(HeaderValue::from_static(""))
}

impl<T: Routed> Bucket<T> {
    fn build(members: Vec<Arc<T>>) -> Result<Self, BuildError<T>> {
        // Exact and `{param}` routes first, then catch-alls, the most literal segments
        // first: a path that an exact route and a catch-all both match goes to the exact
        // one, and `/files/{id}` can live beside `/files/{*rest}`, which one matcher refuses.
        let mut order: Vec<&Arc<T>> = members.iter().collect();
        order.sort_by_key(|v| {
            let t = v.template();
            (
                t.has_catch_all(),
                std::cmp::Reverse(
                    t.as_str()
                        .split('/')
                        .filter(|s| !s.starts_with('{'))
                        .count(),
                ),
            )
        });
        let mut layers: Vec<matchit::Router<usize>> = Vec::new();
        let mut slots: Vec<Slot<T>> = Vec::new();
        let mut by_shape: HashMap<String, usize> = HashMap::new();
        for value in order {
            let template = value.template();
            let shaped = matcher_shape(template);
            let slot = match by_shape.get(&shaped) {
                Some(&i) => i,
                None => {
                    let i = slots.len();
                    insert_layered(&mut layers, &shaped, i, template.has_catch_all())
                        .map_err(|e| BuildError::Shape(value.clone(), e))?;
                    by_shape.insert(shaped, i);
                    slots.push(Slot {
                        methods: Default::default(),
                        any: None,
                        catch_all: template.has_catch_all(),
                        allow: HeaderValue::from_static(""),
                    });
                    i
                }
            };
            let slot = &mut slots[slot];
            let entry = match value.method() {
                Method::Any => &mut slot.any,
                m => &mut slot.methods[m as usize],
            };
            if let Some(existing) = entry {
                return Err(BuildError::Duplicate(existing.clone(), value.clone()));
            }
            *entry = Some(value.clone());
        }
        for slot in &mut slots {
            slot.allow = allow_value(slot);
        }
        Ok(Self {
            layers,
            slots,
            members,
        })
    }

    fn same_members(&self, values: &[Arc<T>]) -> bool {
        self.members.len() == values.len()
            && self
                .members
                .iter()
                .zip(values)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// Inserts `shape` into the first layer that takes it, a new one when none does. Only a
/// catch-all moves on: an exact or `{param}` shape that the first layer refuses is an error.
fn insert_layered(
    layers: &mut Vec<matchit::Router<usize>>,
    shape: &str,
    slot: usize,
    catch_all: bool,
) -> Result<(), matchit::InsertError> {
    let first_catch_all = if catch_all { 1 } else { 0 };
    while layers.len() <= first_catch_all {
        layers.push(matchit::Router::new());
    }
    let mut last = None;
    for layer in layers.iter_mut().skip(first_catch_all) {
        match layer.insert(shape.to_string(), slot) {
            Ok(()) => return Ok(()),
            Err(e) if catch_all => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = last.filter(|_| layers.len() > 64) {
        // Bounded: a layer per catch-all route at most, and never more than this.
        return Err(e);
    }
    let mut layer = matchit::Router::new();
    layer.insert(shape.to_string(), slot)?;
    layers.push(layer);
    Ok(())
}

/// Builds a bucket, or reuses `previous` when its routes are the very same values.
fn bucket<T: Routed>(
    previous: Option<&Arc<Bucket<T>>>,
    members: Vec<Arc<T>>,
) -> Result<Arc<Bucket<T>>, BuildError<T>> {
    match previous {
        Some(p) if p.same_members(&members) => Ok(p.clone()),
        _ => Bucket::build(members).map(Arc::new),
    }
}

type Groups<'a, T> = HashMap<(Option<&'a str>, Option<&'a str>), Vec<Arc<T>>>;

impl<T: Routed> Router<T> {
    /// Builds a router over `values` (in configuration order). Buckets of `previous` whose
    /// routes are the same values are reused as they are.
    pub fn build(values: &[Arc<T>], previous: Option<&Router<T>>) -> Result<Self, BuildError<T>> {
        let mut groups: Groups<'_, T> = HashMap::new();
        for v in values {
            let key = (v.host(), first_literal(v.template().as_str()));
            groups.entry(key).or_default().push(v.clone());
        }
        let mut router = Router {
            routes: values.len(),
            ..Router::default()
        };
        for ((host, first), members) in groups {
            let old_host = previous.and_then(|p| match host {
                Some(h) => p.by_host.get(h),
                None => Some(&p.any_host),
            });
            let target = match host {
                Some(h) => router.by_host.entry(h.to_string()).or_default(),
                None => &mut router.any_host,
            };
            match first {
                Some(seg) => {
                    let old = old_host.and_then(|h| h.literal.get(seg));
                    target
                        .literal
                        .insert(seg.to_string(), bucket(old, members)?);
                }
                None => {
                    let old = old_host.and_then(|h| h.placeholder.as_ref());
                    target.placeholder = Some(bucket(old, members)?);
                }
            }
        }
        Ok(router)
    }
}

impl<T> Router<T> {
    /// Whether any route is bound to a host (else the Host header need not be parsed).
    pub fn has_host_routes(&self) -> bool {
        !self.by_host.is_empty()
    }

    /// Finds the route for `host` (lower-case, no port), `method` and the raw request path.
    /// Host routes win; the host-less ones are the fallback.
    pub fn lookup(&self, host: Option<&str>, method: &http::Method, path: &str) -> Lookup<T> {
        let mut allow = None;
        let wanted = Method::parse(method.as_str());
        let first = path
            .strip_prefix('/')
            .unwrap_or(path)
            .split('/')
            .next()
            .unwrap_or("");
        let host_routes = host.and_then(|h| self.by_host.get(h));
        for routes in host_routes.into_iter().chain(Some(&self.any_host)) {
            let buckets = routes
                .literal
                .get(first)
                .into_iter()
                .chain(&routes.placeholder);
            for (bucket, matcher) in buckets.flat_map(|b| b.layers.iter().map(move |l| (b, l))) {
                let Ok(m) = matcher.at(path) else {
                    continue;
                };
                let slot = &bucket.slots[*m.value];
                let found = match wanted {
                    Some(w) => slot.methods[w as usize].as_ref(),
                    // HEAD is a GET without the body.
                    None if method == http::Method::HEAD => {
                        slot.methods[Method::Get as usize].as_ref()
                    }
                    None => None,
                }
                .or(slot.any.as_ref());
                if let Some(ep) = found {
                    return Lookup::Found(ep.clone(), params(&m.params, slot.catch_all));
                }
                allow.get_or_insert_with(|| slot.allow.clone());
            }
        }
        match allow {
            Some(a) => Lookup::MethodNotAllowed(a),
            None => Lookup::NotFound,
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes
    }

    /// Whether no route is defined.
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }

    /// Buckets shared with `other` (the same matcher): how much of a router a rebuild reused.
    pub fn shared_buckets(&self, other: &Router<T>) -> usize {
        let count = |a: &HostRoutes<T>, b: &HostRoutes<T>| {
            a.literal
                .iter()
                .filter(|(k, v)| b.literal.get(*k).is_some_and(|o| Arc::ptr_eq(v, o)))
                .count()
                + usize::from(
                    matches!((&a.placeholder, &b.placeholder), (Some(x), Some(y)) if Arc::ptr_eq(x, y)),
                )
        };
        count(&self.any_host, &other.any_host)
            + self
                .by_host
                .iter()
                .filter_map(|(h, a)| other.by_host.get(h).map(|b| count(a, b)))
                .sum::<usize>()
    }
}

fn params(raw: &matchit::Params<'_, '_>, catch_all: bool) -> Params {
    let mut values = Vec::with_capacity(raw.len());
    let mut catch_all_raw = None;
    for (name, v) in raw.iter() {
        values.push(decode(v));
        if catch_all && name == "rest" {
            catch_all_raw = Some(v.to_string());
        }
    }
    Params {
        values,
        catch_all_raw,
    }
}

fn decode(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R {
        host: Option<&'static str>,
        method: Method,
        template: PathTemplate,
        name: &'static str,
    }

    impl Routed for R {
        fn host(&self) -> Option<&str> {
            self.host
        }
        fn method(&self) -> Method {
            self.method
        }
        fn template(&self) -> &PathTemplate {
            &self.template
        }
    }

    fn r(host: Option<&'static str>, method: Method, path: &str, name: &'static str) -> Arc<R> {
        Arc::new(R {
            host,
            method,
            template: PathTemplate::parse(path).unwrap(),
            name,
        })
    }

    fn routes() -> Vec<Arc<R>> {
        vec![
            r(None, Method::Get, "/users/{id}", "get-user"),
            r(None, Method::Delete, "/users/{user}", "del-user"),
            r(None, Method::Get, "/users/new", "new"),
            r(Some("b.example"), Method::Get, "/users/{id}", "b-user"),
            r(None, Method::Get, "/api/{*rest}", "api"),
            r(None, Method::Get, "/api/special", "special"),
            r(None, Method::Any, "/ws/{*rest}", "ws"),
            r(None, Method::Get, "/{tenant}/home", "tenant-home"),
        ]
    }

    fn router() -> Router<R> {
        match Router::build(&routes(), None) {
            Ok(r) => r,
            Err(_) => panic!("routes build"),
        }
    }

    fn found(l: Lookup<R>) -> (&'static str, Vec<String>) {
        match l {
            Lookup::Found(v, p) => (v.name, p.values),
            Lookup::MethodNotAllowed(_) => ("405", vec![]),
            Lookup::NotFound => ("404", vec![]),
        }
    }

    #[test]
    fn matches_method_and_params() {
        let r = router();
        let get = http::Method::GET;
        assert_eq!(
            found(r.lookup(None, &get, "/users/7")),
            ("get-user", vec!["7".to_string()])
        );
        assert_eq!(
            found(r.lookup(None, &http::Method::DELETE, "/users/7")).0,
            "del-user"
        );
        assert_eq!(found(r.lookup(None, &get, "/users/new")).0, "new");
        assert_eq!(found(r.lookup(None, &get, "/orders")).0, "404");
        // A placeholder first segment: tried after the literal bucket.
        assert_eq!(
            found(r.lookup(None, &get, "/acme/home")),
            ("tenant-home", vec!["acme".to_string()])
        );
        assert_eq!(
            found(r.lookup(None, &get, "/users/home")),
            ("get-user", vec!["home".to_string()]),
            "a literal first segment wins"
        );
    }

    #[test]
    fn head_is_served_by_get_and_405_says_what_is_allowed() {
        let r = router();
        assert_eq!(
            found(r.lookup(None, &http::Method::HEAD, "/users/7")).0,
            "get-user"
        );
        match r.lookup(None, &http::Method::POST, "/users/7") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, "GET, HEAD, DELETE"),
            _ => panic!("405 expected"),
        }
        let odd = http::Method::from_bytes(b"PURGE").unwrap();
        assert!(matches!(
            r.lookup(None, &odd, "/users/7"),
            Lookup::MethodNotAllowed(_)
        ));
    }

    #[test]
    fn host_routes_take_precedence_then_fall_back() {
        let r = router();
        let get = http::Method::GET;
        assert_eq!(
            found(r.lookup(Some("b.example"), &get, "/users/1")).0,
            "b-user"
        );
        assert_eq!(
            found(r.lookup(Some("b.example"), &http::Method::DELETE, "/users/1")).0,
            "del-user"
        );
        assert_eq!(
            found(r.lookup(Some("c.example"), &get, "/users/1")).0,
            "get-user"
        );
        assert!(r.has_host_routes());
    }

    #[test]
    fn exact_routes_win_over_catch_all_which_keeps_the_raw_rest() {
        let r = router();
        let get = http::Method::GET;
        assert_eq!(found(r.lookup(None, &get, "/api/special")).0, "special");
        match r.lookup(None, &get, "/api/a/b%2Fc") {
            Lookup::Found(v, p) => {
                assert_eq!(v.name, "api");
                assert_eq!(p.values, ["a/b/c"]);
                assert_eq!(p.catch_all_raw.as_deref(), Some("a/b%2Fc"));
            }
            _ => panic!("catch-all expected"),
        }
    }

    #[test]
    fn a_catch_all_lives_beside_a_param_at_the_same_depth() {
        let all = vec![
            r(None, Method::Any, "/files/{*rest}", "rest"),
            r(None, Method::Get, "/files/{id}", "one"),
            r(None, Method::Get, "/files/{id}/meta/{*more}", "meta"),
            r(None, Method::Get, "/{*all}", "root"),
            r(None, Method::Get, "/{tenant}", "tenant"),
        ];
        let r = Router::build(&all, None).ok().expect("builds");
        let get = http::Method::GET;
        assert_eq!(
            found(r.lookup(None, &get, "/files/7")),
            ("one", vec!["7".into()])
        );
        assert_eq!(
            found(r.lookup(None, &get, "/files/7/8")),
            ("rest", vec!["7/8".into()])
        );
        // The more literal catch-all first.
        assert_eq!(
            found(r.lookup(None, &get, "/files/7/meta/a/b")),
            ("meta", vec!["7".into(), "a/b".into()])
        );
        // A method the exact route lacks falls through to the catch-all's ANY.
        assert_eq!(
            found(r.lookup(None, &http::Method::DELETE, "/files/7")).0,
            "rest"
        );
        assert_eq!(found(r.lookup(None, &get, "/acme")).0, "tenant");
        assert_eq!(found(r.lookup(None, &get, "/acme/x")).0, "root");
        // The exact route's Allow when nothing takes the method.
        match r.lookup(None, &http::Method::POST, "/acme") {
            Lookup::MethodNotAllowed(a) => assert_eq!(a, "GET, HEAD"),
            _ => panic!("405 expected"),
        }
    }

    #[test]
    fn any_takes_every_method() {
        let r = router();
        for m in [http::Method::GET, http::Method::POST, http::Method::OPTIONS] {
            assert_eq!(found(r.lookup(None, &m, "/ws/chat")).0, "ws");
        }
    }

    #[test]
    fn a_second_claim_on_a_route_is_refused() {
        let mut all = routes();
        all.push(r(None, Method::Get, "/users/{name}", "dup"));
        match Router::build(&all, None) {
            Err(BuildError::Duplicate(first, second)) => {
                assert_eq!((first.name, second.name), ("get-user", "dup"))
            }
            _ => panic!("duplicate expected"),
        }
    }

    #[test]
    fn unchanged_buckets_are_reused_by_the_next_router() {
        let mut all = routes();
        let first = Router::build(&all, None).ok().unwrap();
        // Replace one route of the `/api` bucket: only that bucket is rebuilt.
        all[5] = r(None, Method::Get, "/api/special", "special-v2");
        let second = Router::build(&all, Some(&first)).ok().unwrap();
        let total = second.shared_buckets(&second);
        assert_eq!(second.shared_buckets(&first), total - 1);
        assert_eq!(
            found(second.lookup(None, &http::Method::GET, "/api/special")).0,
            "special-v2"
        );
    }

    #[test]
    fn params_are_percent_decoded() {
        let r = router();
        let (_, p) = found(r.lookup(None, &http::Method::GET, "/users/a%2Fb"));
        assert_eq!(p, ["a/b"]);
    }
}
