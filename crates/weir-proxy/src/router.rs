//! Route lookup: host → path template → method, compiled once per configuration.
//!
//! Paths are keyed by their *shape* (placeholders renamed `{p0}`, `{p1}`, …) so that
//! `GET /users/{id}` and `DELETE /users/{user}` share one router entry, which matchit
//! requires. Each endpoint keeps its own parameter names.

use std::collections::HashMap;
use std::sync::Arc;

use weir_model::Method;

/// Why a set of routes cannot be compiled together.
#[derive(Debug, thiserror::Error)]
#[error("route {path} conflicts with another route: {source}")]
pub struct RouteError {
    /// The offending path template.
    pub path: String,
    /// matchit's explanation.
    #[source]
    pub source: matchit::InsertError,
}

/// What a lookup found.
pub enum Lookup<T> {
    /// A route and its parameter values (percent-decoded), in template order.
    Found(Arc<T>, Vec<String>),
    /// The path exists, but not for this method.
    MethodNotAllowed,
    /// Nothing matches.
    NotFound,
}

struct Slot<T> {
    methods: [Option<Arc<T>>; 5],
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

/// Replaces each `{name}` with `{pN}` so templates with the same shape collide on purpose.
fn shape(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut n = 0;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        out.push_str(&format!("{{p{n}}}"));
        n += 1;
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

impl<T> Router<T> {
    /// Adds a route. Duplicate host+method+path is the caller's to prevent (the first wins).
    pub fn insert(
        &mut self,
        host: Option<&str>,
        method: Method,
        template: &str,
        value: Arc<T>,
    ) -> Result<(), RouteError> {
        let shaped = shape(template);
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
                    .map_err(|source| RouteError {
                        path: template.to_string(),
                        source,
                    })?;
                router.shapes.insert(shaped, i);
                self.slots.push(Slot {
                    methods: Default::default(),
                });
                i
            }
        };
        let entry = &mut self.slots[slot].methods[method as usize];
        if entry.is_none() {
            *entry = Some(value);
        }
        Ok(())
    }

    /// Finds the route for `host` (lower-case, no port), `method` and the raw request path.
    pub fn lookup(&self, host: Option<&str>, method: Option<Method>, path: &str) -> Lookup<T> {
        let mut path_exists = false;
        let host_router = host.and_then(|h| self.by_host.get(h));
        for router in host_router.into_iter().chain(Some(&self.any_host)) {
            let Ok(m) = router.matcher.at(path) else {
                continue;
            };
            path_exists = true;
            let slot = &self.slots[*m.value];
            if let Some(ep) = method.and_then(|m| slot.methods[m as usize].as_ref()) {
                let params = m.params.iter().map(|(_, v)| decode(v)).collect();
                return Lookup::Found(ep.clone(), params);
            }
        }
        if path_exists {
            Lookup::MethodNotAllowed
        } else {
            Lookup::NotFound
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

fn decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        let mut r = Router::default();
        r.insert(None, Method::Get, "/users/{id}", Arc::new("get-user"))
            .unwrap();
        r.insert(None, Method::Delete, "/users/{user}", Arc::new("del-user"))
            .unwrap();
        r.insert(None, Method::Get, "/users/new", Arc::new("new"))
            .unwrap();
        r.insert(
            Some("b.example"),
            Method::Get,
            "/users/{id}",
            Arc::new("b-user"),
        )
        .unwrap();
        r
    }

    fn found(l: Lookup<&'static str>) -> (&'static str, Vec<String>) {
        match l {
            Lookup::Found(v, p) => (*v, p),
            Lookup::MethodNotAllowed => ("405", vec![]),
            Lookup::NotFound => ("404", vec![]),
        }
    }

    #[test]
    fn matches_method_and_params() {
        let r = router();
        assert_eq!(
            found(r.lookup(None, Some(Method::Get), "/users/7")),
            ("get-user", vec!["7".to_string()])
        );
        assert_eq!(
            found(r.lookup(None, Some(Method::Delete), "/users/7")).0,
            "del-user"
        );
        assert_eq!(
            found(r.lookup(None, Some(Method::Get), "/users/new")).0,
            "new"
        );
        assert_eq!(
            found(r.lookup(None, Some(Method::Post), "/users/7")).0,
            "405"
        );
        assert_eq!(found(r.lookup(None, None, "/users/7")).0, "405");
        assert_eq!(found(r.lookup(None, Some(Method::Get), "/orders")).0, "404");
    }

    #[test]
    fn host_routes_take_precedence_then_fall_back() {
        let r = router();
        assert_eq!(
            found(r.lookup(Some("b.example"), Some(Method::Get), "/users/1")).0,
            "b-user"
        );
        assert_eq!(
            found(r.lookup(Some("b.example"), Some(Method::Delete), "/users/1")).0,
            "del-user"
        );
        assert_eq!(
            found(r.lookup(Some("c.example"), Some(Method::Get), "/users/1")).0,
            "get-user"
        );
    }

    #[test]
    fn params_are_percent_decoded() {
        let r = router();
        let (_, p) = found(r.lookup(None, Some(Method::Get), "/users/a%2Fb"));
        assert_eq!(p, ["a/b"]);
    }
}
