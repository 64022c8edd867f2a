//! Path templates and the router (weir-model `PathTemplate`, crates/weir-proxy/src/router.rs).
//!
//! Invariants: parsing any template and building any set of parsed templates never panics
//! (a build error is an answer); looking any path up never panics; and every route that
//! was built is found again for a path made from its own template (another route of higher
//! priority may answer, or a 405, but never a 404), with its parameters given back in
//! template order when the route itself answers.
#![no_main]

use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use weir_model::{Method, PathTemplate};
use weir_proxy::router::{Lookup, Routed, Router};

struct Route {
    host: Option<String>,
    method: Method,
    template: PathTemplate,
}

impl Routed for Route {
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn method(&self) -> Method {
        self.method
    }
    fn template(&self) -> &PathTemplate {
        &self.template
    }
}

const HOSTS: &[&str] = &["a.example", "b.example"];
const METHODS: &[Method] = &[
    Method::Get,
    Method::Post,
    Method::Put,
    Method::Patch,
    Method::Delete,
    Method::Any,
];
const SEGMENTS: &[&str] = &[
    "", "users", "u", "orders", "v0", "a", "b", ".", "..", "%2F", "x.y", "*", ":id", "{id}",
    "{name}", "{x}", "{*rest}", "{*all}", "{a}{b}", "x{id}", "{", "}", "{{", "}}", "{}", "{*}",
];

/// A template: either any string, or segments taken mostly from [`SEGMENTS`].
fn template(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1u8, 4u8)? {
        return u.arbitrary();
    }
    let n = u.int_in_range(0u8..=5)?;
    let mut t = String::new();
    if u.ratio(7u8, 8u8)? {
        t.push('/');
    }
    for i in 0..n {
        if i > 0 {
            t.push('/');
        }
        if u.ratio(7u8, 8u8)? {
            t.push_str(u.choose(SEGMENTS)?);
        } else {
            t.push_str(&u.arbitrary::<String>()?);
        }
    }
    Ok(t)
}

fn host(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 | 1 => None,
        2 => Some(u.choose(HOSTS)?.to_string()),
        _ => Some(u.arbitrary()?),
    })
}

/// A request path that the route's own template matches: `v<i>` for each placeholder, `r/s`
/// for a catch-all.
fn instance(t: &PathTemplate) -> (String, Vec<String>) {
    let mut values = Vec::new();
    let path = t
        .as_str()
        .split('/')
        .map(|seg| {
            if seg.starts_with("{*") {
                values.push("r/s".to_string());
                "r/s".to_string()
            } else if seg.starts_with('{') {
                values.push(format!("v{}", values.len()));
                values[values.len() - 1].clone()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    (path, values)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(n) = u.int_in_range(0u8..=12) else {
        return;
    };
    let mut routes = Vec::new();
    for _ in 0..n {
        let (Ok(raw), Ok(host), Ok(&method)) = (template(&mut u), host(&mut u), u.choose(METHODS))
        else {
            return;
        };
        if let Ok(template) = PathTemplate::parse(&raw) {
            let _ = template.shape();
            routes.push(Arc::new(Route {
                host,
                method,
                template,
            }));
        }
    }
    let Ok(router) = Router::build(&routes, None) else {
        return;
    };
    // Rebuilding over the same values reuses every bucket and must agree.
    if let Ok(again) = Router::build(&routes, Some(&router)) {
        assert_eq!(again.len(), router.len());
    }
    for route in &routes {
        let (path, values) = instance(&route.template);
        let method = route.method.to_http().unwrap_or(http::Method::GET);
        match router.lookup(route.host.as_deref(), &method, &path) {
            Lookup::Found(found, params) => {
                if Arc::ptr_eq(&found, route) {
                    assert_eq!(params.values, values, "{:?} for {path:?}", route.template);
                }
            }
            Lookup::MethodNotAllowed(_) => {}
            Lookup::NotFound => panic!(
                "route {:?} (host {:?}, {:?}) not found for {path:?}",
                route.template.as_str(),
                route.host,
                route.method
            ),
        }
    }
    // Hostile lookups: any host, method and path.
    while let Ok(path) = u.arbitrary::<String>() {
        let Ok(host) = host(&mut u) else { break };
        let method = match u.int_in_range(0u8..=7) {
            Ok(0) => http::Method::HEAD,
            Ok(1) => http::Method::OPTIONS,
            Ok(2) => http::Method::from_bytes(b"BREW").unwrap_or_default(),
            Ok(i) => METHODS[usize::from(i - 2) % METHODS.len()]
                .to_http()
                .unwrap_or_default(),
            Err(_) => break,
        };
        let _ = router.lookup(host.as_deref(), &method, &path);
        if u.is_empty() {
            break;
        }
    }
});
