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
//! Routes without a placeholder (`/bench/17`, `/health/live`) are not in a matcher at all:
//! they sit in hash shards keyed by their whole path, looked up before the matchers. A
//! matcher would answer the same (a literal path is the most specific match there is), but
//! ten thousand literal routes under one first segment would be one matcher that every
//! change rebuilds; a shard holds a few dozen. When a literal route matches the path but
//! lacks the method, the `{param}` routes of its bucket stay shadowed as they were in one
//! matcher, and the search goes on with the catch-alls.
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

use crate::FastMap as Map;

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

/// Literal routes whose path hashes to one shard, sorted by path.
struct ExactShard<T> {
    /// One slot per path, sorted by it; `paths[i]` names the value whose template is the
    /// path of `slots[i]` (no copy of the path).
    slots: Vec<Slot<T>>,
    paths: Vec<Arc<T>>,
    /// The values in build order: what decides whether the next table can reuse it.
    members: Vec<Arc<T>>,
}

/// One host's buckets.
struct HostRoutes<T> {
    literal: Map<String, Arc<Bucket<T>>>,
    placeholder: Option<Arc<Bucket<T>>>,
    /// Literal routes by [`shard_of`] their path (a power-of-two count; empty: none).
    exact: Vec<Option<Arc<ExactShard<T>>>>,
}

impl<T> Default for HostRoutes<T> {
    fn default() -> Self {
        Self {
            literal: Map::default(),
            placeholder: None,
            exact: Vec::new(),
        }
    }
}

/// Literal routes per shard, about: few enough that rebuilding a shard is cheap, enough that
/// a host with a handful of literal routes has a single shard.
const EXACT_PER_SHARD: usize = 32;

/// How many shards a host with `n` literal routes gets (a power of two).
fn exact_shards(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n / EXACT_PER_SHARD).next_power_of_two().min(4096)
    }
}

/// The shard of a literal path: a fixed seed, so a path keeps its shard from one table to
/// the next.
fn shard_of(path: &str, shards: usize) -> usize {
    use std::hash::BuildHasher;
    const SHARDS: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7765_6972);
    (SHARDS.hash_one(path) as usize) & (shards - 1)
}

/// Host-aware router over values of type `T` (compiled endpoints).
pub struct Router<T> {
    any_host: HostRoutes<T>,
    by_host: Map<String, HostRoutes<T>>,
    routes: usize,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self {
            any_host: HostRoutes::default(),
            by_host: Map::default(),
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

impl<T> Slot<T> {
    fn new(catch_all: bool) -> Self {
        Slot {
            methods: Default::default(),
            any: None,
            catch_all,
            allow: HeaderValue::from_static(""),
        }
    }

    /// The value serving `method` (`wanted` is its parsed form), if any.
    fn pick(&self, wanted: Option<Method>, method: &http::Method) -> Option<&Arc<T>> {
        match wanted {
            Some(w) => self.methods[w as usize].as_ref(),
            // HEAD is a GET without the body.
            None if method == http::Method::HEAD => self.methods[Method::Get as usize].as_ref(),
            None => None,
        }
        .or(self.any.as_ref())
    }
}

impl<T: Routed> Slot<T> {
    /// Puts `value` in its method's place; a second claim on it is refused.
    fn claim(&mut self, value: &Arc<T>) -> Result<(), BuildError<T>> {
        let entry = match value.method() {
            Method::Any => &mut self.any,
            m => &mut self.methods[m as usize],
        };
        if let Some(existing) = entry {
            return Err(BuildError::Duplicate(existing.clone(), value.clone()));
        }
        *entry = Some(value.clone());
        Ok(())
    }
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
                    slots.push(Slot::new(template.has_catch_all()));
                    i
                }
            };
            slots[slot].claim(value)?;
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

/// A part of a router built from a list of values: a matcher bucket or a literal shard.
trait Part<T>: Sized {
    fn members(&self) -> &[Arc<T>];
    fn build(members: Vec<Arc<T>>) -> Result<Self, BuildError<T>>;
}

impl<T: Routed> Part<T> for Bucket<T> {
    fn members(&self) -> &[Arc<T>] {
        &self.members
    }
    fn build(members: Vec<Arc<T>>) -> Result<Self, BuildError<T>> {
        Bucket::build(members)
    }
}

impl<T: Routed> Part<T> for ExactShard<T> {
    fn members(&self) -> &[Arc<T>] {
        &self.members
    }
    fn build(members: Vec<Arc<T>>) -> Result<Self, BuildError<T>> {
        ExactShard::build(members)
    }
}

/// Builds a part, or reuses `previous` when its routes are the very same values (the
/// same `Arc`s in the same order).
fn part<T, P: Part<T>>(
    previous: Option<&Arc<P>>,
    members: Vec<Arc<T>>,
) -> Result<Arc<P>, BuildError<T>> {
    match previous {
        Some(p)
            if p.members().len() == members.len()
                && p.members()
                    .iter()
                    .zip(&members)
                    .all(|(a, b)| Arc::ptr_eq(a, b)) =>
        {
            Ok(p.clone())
        }
        _ => P::build(members).map(Arc::new),
    }
}

impl<T: Routed> ExactShard<T> {
    fn build(members: Vec<Arc<T>>) -> Result<Self, BuildError<T>> {
        // Sorted by path, stable: of two claims on one path and method, the first in
        // configuration order is the one kept and named first.
        let mut order: Vec<&Arc<T>> = members.iter().collect();
        order.sort_by(|a, b| a.template().as_str().cmp(b.template().as_str()));
        let mut slots: Vec<Slot<T>> = Vec::new();
        let mut paths: Vec<Arc<T>> = Vec::new();
        for value in order {
            let same_path = paths
                .last()
                .is_some_and(|p| p.template().as_str() == value.template().as_str());
            if !same_path {
                slots.push(Slot::new(false));
                paths.push(value.clone());
            }
            slots.last_mut().expect("pushed above").claim(value)?;
        }
        for slot in &mut slots {
            slot.allow = allow_value(slot);
        }
        slots.shrink_to_fit();
        paths.shrink_to_fit();
        Ok(Self {
            slots,
            paths,
            members,
        })
    }

    fn get(&self, path: &str) -> Option<&Slot<T>> {
        self.paths
            .binary_search_by(|p| p.template().as_str().cmp(path))
            .ok()
            .map(|i| &self.slots[i])
    }
}

/// Where a route goes within its host.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Place<'a> {
    /// The matcher of routes whose first segment is this literal.
    Literal(&'a str),
    /// The matcher of routes starting with a placeholder.
    Placeholder,
    /// The literal-route shard with this index.
    Exact(usize),
}

type Groups<'a, T> = Map<(Option<&'a str>, Place<'a>), Vec<Arc<T>>>;

impl<T: Routed> Router<T> {
    /// Builds a router over `values` (in configuration order). Buckets of `previous` whose
    /// routes are the same values are reused as they are.
    pub fn build(values: &[Arc<T>], previous: Option<&Router<T>>) -> Result<Self, BuildError<T>> {
        Self::build_with(values, previous, true)
    }

    /// [`Router::build`]; `split_exact: false` keeps literal routes in the matchers, the
    /// reference the tests hold the shards to.
    fn build_with(
        values: &[Arc<T>],
        previous: Option<&Router<T>>,
        split_exact: bool,
    ) -> Result<Self, BuildError<T>> {
        let is_exact = |v: &Arc<T>| split_exact && v.template().params().is_empty();
        // Shards per host, from its count of literal routes.
        let mut exact_per_host: Map<Option<&str>, usize> = Map::default();
        for v in values.iter().filter(|v| is_exact(v)) {
            *exact_per_host.entry(v.host()).or_default() += 1;
        }
        for n in exact_per_host.values_mut() {
            *n = exact_shards(*n);
        }
        let mut groups: Groups<'_, T> = Map::default();
        for v in values {
            let template = v.template().as_str();
            let place = if is_exact(v) {
                Place::Exact(shard_of(template, exact_per_host[&v.host()]))
            } else {
                first_literal(template).map_or(Place::Placeholder, Place::Literal)
            };
            groups.entry((v.host(), place)).or_default().push(v.clone());
        }
        let mut router = Router {
            routes: values.len(),
            ..Router::default()
        };
        for ((host, place), members) in groups {
            let old_host = previous.and_then(|p| match host {
                Some(h) => p.by_host.get(h),
                None => Some(&p.any_host),
            });
            let target = match host {
                Some(h) => router.by_host.entry(h.to_string()).or_default(),
                None => &mut router.any_host,
            };
            match place {
                Place::Literal(seg) => {
                    let old = old_host.and_then(|h| h.literal.get(seg));
                    target.literal.insert(seg.to_string(), part(old, members)?);
                }
                Place::Placeholder => {
                    let old = old_host.and_then(|h| h.placeholder.as_ref());
                    target.placeholder = Some(part(old, members)?);
                }
                Place::Exact(i) => {
                    let shards = exact_per_host[&host];
                    // A shard is reused only when the shard count is the same (else the
                    // same index holds other paths).
                    let old = old_host
                        .filter(|h| h.exact.len() == shards)
                        .and_then(|h| h.exact[i].as_ref());
                    if target.exact.is_empty() {
                        target.exact.resize_with(shards, || None);
                    }
                    target.exact[i] = Some(part(old, members)?);
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
    pub fn lookup(&self, host: Option<&str>, method: &http::Method, path: &str) -> Lookup<T>
    where
        T: Routed,
    {
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
            // A literal route is what one matcher would have found first for this path.
            let mut shadowed = false;
            if !routes.exact.is_empty() {
                let shard = &routes.exact[shard_of(path, routes.exact.len())];
                if let Some(slot) = shard.as_ref().and_then(|s| s.get(path)) {
                    if let Some(ep) = slot.pick(wanted, method) {
                        return Lookup::Found(ep.clone(), Params::default());
                    }
                    allow.get_or_insert_with(|| slot.allow.clone());
                    // It shadows the `{param}` routes of its bucket's first matcher.
                    shadowed = true;
                }
            }
            let literal = routes
                .literal
                .get(first)
                .map(|b| (b, usize::from(shadowed)));
            let placeholder = routes.placeholder.as_ref().map(|b| (b, 0));
            for (bucket, skip) in literal.into_iter().chain(placeholder) {
                for matcher in bucket.layers.iter().skip(skip) {
                    let Ok(m) = matcher.at(path) else {
                        continue;
                    };
                    let slot = &bucket.slots[*m.value];
                    if let Some(ep) = slot.pick(wanted, method) {
                        return Lookup::Found(ep.clone(), params(&m.params, slot.catch_all));
                    }
                    allow.get_or_insert_with(|| slot.allow.clone());
                }
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

    /// Buckets and literal-route shards shared with `other` (the very same): how much of a
    /// router a rebuild reused.
    pub fn shared_buckets(&self, other: &Router<T>) -> usize {
        let count = |a: &HostRoutes<T>, b: &HostRoutes<T>| {
            a.literal
                .iter()
                .filter(|(k, v)| b.literal.get(*k).is_some_and(|o| Arc::ptr_eq(v, o)))
                .count()
                + usize::from(
                    matches!((&a.placeholder, &b.placeholder), (Some(x), Some(y)) if Arc::ptr_eq(x, y)),
                )
                + a.exact
                    .iter()
                    .zip(&b.exact)
                    .filter(|(x, y)| matches!((x, y), (Some(x), Some(y)) if Arc::ptr_eq(x, y)))
                    .count()
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
    fn a_change_to_one_of_many_literal_routes_rebuilds_one_shard() {
        let mut all: Vec<Arc<R>> = (0..1000)
            .map(|i| {
                let path: &'static str = Box::leak(format!("/bench/{i}").into_boxed_str());
                r(None, Method::Get, path, path)
            })
            .collect();
        all.push(r(None, Method::Get, "/bench/{id}", "param"));
        let first = Router::build(&all, None).ok().unwrap();
        assert_eq!(first.any_host.exact.len(), exact_shards(1000));
        assert_eq!(
            found(first.lookup(None, &http::Method::GET, "/bench/17")).0,
            "/bench/17"
        );
        all[17] = r(None, Method::Get, "/bench/moved", "moved");
        let second = Router::build(&all, Some(&first)).ok().unwrap();
        let total = second.shared_buckets(&second);
        // The shard that lost /bench/17 and the one that gained /bench/moved (or one shard
        // that did both); the `{id}` matcher and every other shard are reused.
        assert!(second.shared_buckets(&first) >= total - 2);
        let get = http::Method::GET;
        assert_eq!(found(second.lookup(None, &get, "/bench/moved")).0, "moved");
        assert_eq!(
            found(second.lookup(None, &get, "/bench/17")),
            ("param", vec!["17".to_string()])
        );
        assert_eq!(found(second.lookup(None, &get, "/bench/18")).0, "/bench/18");
    }

    #[test]
    fn a_literal_route_lacking_the_method_shadows_params_not_catch_alls() {
        let all = vec![
            r(None, Method::Get, "/a/b", "literal"),
            r(None, Method::Post, "/a/{x}", "param"),
            r(None, Method::Delete, "/a/{*rest}", "rest"),
        ];
        let r = Router::build(&all, None).ok().expect("builds");
        match r.lookup(None, &http::Method::POST, "/a/b") {
            Lookup::MethodNotAllowed(a) => assert_eq!(a, "GET, HEAD"),
            _ => panic!("405 expected, as with one matcher"),
        }
        assert_eq!(
            found(r.lookup(None, &http::Method::DELETE, "/a/b")).0,
            "rest"
        );
        assert_eq!(
            found(r.lookup(None, &http::Method::POST, "/a/c")).0,
            "param"
        );
    }

    mod equivalence {
        use super::*;
        use proptest::prelude::*;

        const SEGMENTS: [&str; 6] = ["a", "b", "", "{x}", "{y}", "{*rest}"];

        fn template() -> impl Strategy<Value = String> {
            proptest::collection::vec(0..SEGMENTS.len(), 1..4).prop_map(|segs| {
                let mut out = String::new();
                for (i, s) in segs.iter().enumerate() {
                    let seg = SEGMENTS[*s];
                    // A catch-all ends the template; placeholders get distinct names.
                    if seg == "{*rest}" {
                        out.push_str("/{*rest}");
                        break;
                    }
                    out.push('/');
                    out.push_str(&seg.replace('}', &format!("{i}}}")));
                }
                out
            })
        }

        fn method() -> impl Strategy<Value = Method> {
            prop_oneof![
                Just(Method::Get),
                Just(Method::Post),
                Just(Method::Delete),
                Just(Method::Any)
            ]
        }

        fn route() -> impl Strategy<Value = (bool, Method, String)> {
            (any::<bool>(), method(), template())
        }

        fn path() -> impl Strategy<Value = String> {
            proptest::collection::vec(prop_oneof!["a", "b", "c", ""], 0..5)
                .prop_map(|segs| format!("/{}", segs.join("/")))
        }

        fn answer(l: Lookup<R>) -> String {
            match l {
                Lookup::Found(v, p) => format!("{} {:?} {:?}", v.name, p.values, p.catch_all_raw),
                Lookup::MethodNotAllowed(a) => format!("405 {a:?}"),
                Lookup::NotFound => "404".into(),
            }
        }

        proptest! {
            /// Literal routes in shards answer exactly as one matcher per bucket did.
            #[test]
            fn shards_answer_like_matchers(
                routes in proptest::collection::vec(route(), 1..24),
                paths in proptest::collection::vec(path(), 1..24),
            ) {
                // One claim per host, method and shape: a duplicate only makes both builds
                // fail, which tests nothing.
                let mut seen = std::collections::HashSet::new();
                let values: Vec<Arc<R>> = routes
                    .iter()
                    .filter(|(hosted, m, t)| {
                        seen.insert((*hosted, *m, PathTemplate::parse(t).unwrap().shape()))
                    })
                    .enumerate()
                    .map(|(i, (hosted, m, t))| {
                        let name: &'static str = Box::leak(format!("{i}").into_boxed_str());
                        let host = hosted.then_some("h.example");
                        Arc::new(R { host, method: *m, template: PathTemplate::parse(t).unwrap(), name })
                    })
                    .collect();
                let split = Router::build_with(&values, None, true);
                let reference = Router::build_with(&values, None, false);
                let (split, reference) = match (split, reference) {
                    (Ok(s), Ok(r)) => (s, r),
                    (Err(_), Err(_)) => return Ok(()),
                    _ => panic!("one build failed, the other did not"),
                };
                let methods = [http::Method::GET, http::Method::HEAD, http::Method::POST, http::Method::DELETE, http::Method::PUT];
                for p in &paths {
                    for host in [None, Some("h.example"), Some("other.example")] {
                        for m in &methods {
                            prop_assert_eq!(
                                answer(split.lookup(host, m, p)),
                                answer(reference.lookup(host, m, p)),
                                "{} {} host {:?}", m, p, host
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn params_are_percent_decoded() {
        let r = router();
        let (_, p) = found(r.lookup(None, &http::Method::GET, "/users/a%2Fb"));
        assert_eq!(p, ["a/b"]);
    }
}
