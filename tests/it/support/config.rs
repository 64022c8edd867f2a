//! A typed builder for gateway files: the `Endpoint` spec types themselves, serialized to
//! YAML, so a test cannot misspell a field (the compiler checks it), break indentation or
//! forget to quote a `{placeholder}`. Settings without a spec type are JSON values.
//!
//! ```ignore
//! let yaml = Config::new()
//!     .setting("stats", json!({"enabled": true}))
//!     .endpoint(endpoint("/ok", [upstream(&ok.url(), "/a")]))
//!     .yaml();
//! ```

use serde_json::{Map, Value};
use weir::model::spec::{BackendSpec, EndpointSpec};

/// A gateway settings document with its `endpoints:` list.
#[derive(Default)]
pub struct Config {
    settings: Map<String, Value>,
    endpoints: Vec<EndpointSpec>,
}

impl Config {
    pub fn new() -> Self {
        Self::default()
    }

    /// A gateway setting (`port`, `stats`, `cors`, …) as JSON.
    pub fn setting(mut self, key: &str, value: Value) -> Self {
        self.settings.insert(key.into(), value);
        self
    }

    pub fn endpoint(mut self, endpoint: EndpointSpec) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// The file's text.
    pub fn yaml(&self) -> String {
        let mut doc = self.settings.clone();
        doc.insert(
            "endpoints".into(),
            serde_json::to_value(&self.endpoints).expect("spec types serialize"),
        );
        serde_saphyr::to_string(&Value::Object(doc)).expect("JSON values serialize")
    }
}

/// An endpoint at `path` (GET) with `backends`; set more fields on the value it returns.
pub fn endpoint(path: &str, backends: impl IntoIterator<Item = BackendSpec>) -> EndpointSpec {
    EndpointSpec {
        path: path.into(),
        backends: backends.into_iter().collect(),
        ..Default::default()
    }
}

/// A backend at `host` (`http://127.0.0.1:port`) called with `url_pattern`.
pub fn upstream(host: &str, url_pattern: &str) -> BackendSpec {
    BackendSpec {
        hosts: vec![host.into()],
        url_pattern: url_pattern.into(),
        ..Default::default()
    }
}

#[test]
fn the_builder_writes_what_the_loader_reads() {
    use weir::model::spec::RateLimitSpec;
    let mut limited = endpoint("/users/{id}", [upstream("http://127.0.0.1:1", "/u/{id}")]);
    limited.rate_limit = Some(RateLimitSpec {
        max_rate: Some(5),
        every: Some("1m".into()),
        ..Default::default()
    });
    let text = Config::new()
        .setting("port", serde_json::json!(0))
        .endpoint(limited)
        .yaml();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.yaml");
    std::fs::write(&path, &text).unwrap();
    let loaded = weir::config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let ep = &loaded.gateway.endpoints[0];
    assert_eq!(ep.path.as_str(), "/users/{id}");
    assert_eq!(
        ep.rate_limit.endpoint.as_ref().map(|r| r.max_rate),
        Some(5),
        "{text}"
    );
}
