//! Route lookup: host → path → method, built once per table.
//!
//! Paths are keyed by their *shape* (placeholders renamed `{p0}`, `{p1}`, …, a catch-all
//! `{*rest}`), the path part of [`weir_model::RouteKey`], so `GET /users/{id}` and
//! `DELETE /users/{user}` share one matcher entry, which matchit requires. Exact segments
//! win over `{param}` segments, which win over a catch-all (matchit's priorities).
//!
//! A second claim on the same host, method and shape is refused with the value already
//! there, never silently dropped. `HEAD` is served by the `GET` endpoint, an `ANY` endpoint
//! takes every method the path has no endpoint of its own for, and a 405 carries the
//! `Allow` value computed when the router was built.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use percent_encoding::percent_decode_str;

use weir_model::{Method, PathTemplate};

/// Why a route could not be added.
pub enum InsertError<T> {
    /// The same host, method and path shape is taken by this value.
    Duplicate(Arc<T>),
    /// The path shape cannot live next to another one in the matcher.
    Shape(matchit::InsertError),
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

#[derive(Default)]
struct PathRouter {
    matcher: matchit::Router<usize>,
    shapes: HashMap<String, usize>,
}

/// Host-aware router over values of type `T` (compiled endpoints).
pub struct Router<T> {
    any_host: PathRouter,
    by_host: HashMap<String, PathRouter>,
    slots: Vec<Slot<T>>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self {
            any_host: PathRouter::default(),
            by_host: HashMap::new(),
            slots: Vec::new(),
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
                // matchit treats `{` and `}` in literals as syntax unless doubled; templates
                // have none outside placeholders (validation refuses unbalanced braces).
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
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

impl<T> Router<T> {
    /// Adds a route. A second value for the same host, method and shape is refused with
    /// the value already there.
    pub fn insert(
        &mut self,
        host: Option<&str>,
        method: Method,
        template: &PathTemplate,
        value: Arc<T>,
    ) -> Result<(), InsertError<T>> {
        let shaped = matcher_shape(template);
        let router = match host {
            Some(h) => self.by_host.entry(h.to_string()).or_default(),
            None => &mut self.any_host,
        };
        let slot = match router.shapes.get(&shaped) {
            Some(&i) => i,
            None => {
                let i = self.slots.len();
                router
                    .matcher
                    .insert(shaped.clone(), i)
                    .map_err(InsertError::Shape)?;
                router.shapes.insert(shaped, i);
                self.slots.push(Slot {
                    methods: Default::default(),
                    any: None,
                    catch_all: template.has_catch_all(),
                    allow: HeaderValue::from_static(""),
                });
                i
            }
        };
        let slot = &mut self.slots[slot];
        let entry = match method {
            Method::Any => &mut slot.any,
            m => &mut slot.methods[m as usize],
        };
        if let Some(existing) = entry {
            return Err(InsertError::Duplicate(existing.clone()));
        }
        *entry = Some(value);
        slot.allow = allow_value(slot);
        Ok(())
    }

    /// Whether any route is bound to a host (else the Host header need not be parsed).
    pub fn has_host_routes(&self) -> bool {
        !self.by_host.is_empty()
    }

    /// Finds the route for `host` (lower-case, no port), `method` and the raw request path.
    /// Host routes win; the host-less ones are the fallback.
    pub fn lookup(&self, host: Option<&str>, method: &http::Method, path: &str) -> Lookup<T> {
        let mut allow = None;
        let host_router = host.and_then(|h| self.by_host.get(h));
        let wanted = Method::parse(method.as_str());
        for router in host_router.into_iter().chain(Some(&self.any_host)) {
            let Ok(m) = router.matcher.at(path) else {
                continue;
            };
            let slot = &self.slots[*m.value];
            let found = match wanted {
                Some(w) => slot.methods[w as usize].as_ref(),
                // HEAD is a GET without the body.
                None if method == http::Method::HEAD => slot.methods[Method::Get as usize].as_ref(),
                None => None,
            }
            .or(slot.any.as_ref());
            if let Some(ep) = found {
                return Lookup::Found(ep.clone(), params(&m.params, slot.catch_all));
            }
            allow.get_or_insert_with(|| slot.allow.clone());
        }
        match allow {
            Some(a) => Lookup::MethodNotAllowed(a),
            None => Lookup::NotFound,
        }
    }

    /// Number of distinct host+path entries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no route is defined.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
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

    fn t(s: &str) -> PathTemplate {
        PathTemplate::parse(s).unwrap()
    }

    fn router() -> Router<&'static str> {
        let mut r = Router::default();
        let mut add = |host, m, p: &str, v| {
            if r.insert(host, m, &t(p), Arc::new(v)).is_err() {
                panic!("insert {p}");
            }
        };
        add(None, Method::Get, "/users/{id}", "get-user");
        add(None, Method::Delete, "/users/{user}", "del-user");
        add(None, Method::Get, "/users/new", "new");
        add(Some("b.example"), Method::Get, "/users/{id}", "b-user");
        add(None, Method::Get, "/api/{*rest}", "api");
        add(None, Method::Get, "/api/special", "special");
        add(None, Method::Any, "/ws/{*rest}", "ws");
        r
    }

    fn found(l: Lookup<&'static str>) -> (&'static str, Vec<String>) {
        match l {
            Lookup::Found(v, p) => (*v, p.values),
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
                assert_eq!(*v, "api");
                assert_eq!(p.values, ["a/b/c"]);
                assert_eq!(p.catch_all_raw.as_deref(), Some("a/b%2Fc"));
            }
            _ => panic!("catch-all expected"),
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
        let mut r = router();
        let err = r.insert(None, Method::Get, &t("/users/{name}"), Arc::new("dup"));
        assert!(matches!(err, Err(InsertError::Duplicate(v)) if *v == "get-user"));
    }

    #[test]
    fn params_are_percent_decoded() {
        let r = router();
        let (_, p) = found(r.lookup(None, &http::Method::GET, "/users/a%2Fb"));
        assert_eq!(p, ["a/b"]);
    }
}
