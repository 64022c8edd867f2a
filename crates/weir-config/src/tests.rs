use std::path::PathBuf;

use super::*;
use weir_model::{BackendEncoding, Method, NameFilter, OutputEncoding};

fn load_text(text: &str) -> Result<Loaded> {
    from_sources(
        &[(PathBuf::from("gw.yaml"), text.as_bytes().to_vec())],
        false,
    )
}

fn errors(text: &str) -> String {
    load_text(text).expect_err("should be invalid").to_string()
}

const ONE: &str = "
endpoints:
  - path: /users/{id}
    backends:
      - hosts: [\"http://127.0.0.1:1\"]
        urlPattern: /u/{id}
";

#[test]
fn defaults_apply() {
    let gw = load_text(ONE).unwrap().gateway;
    assert_eq!(gw.settings.port, 8080);
    let ep = &gw.endpoints[0];
    assert_eq!(ep.method, Method::Get);
    assert_eq!(ep.timeout, std::time::Duration::from_secs(2));
    assert_eq!(ep.concurrent_calls, 1);
    assert_eq!(ep.output_encoding, OutputEncoding::Json);
    assert_eq!(ep.input_headers, NameFilter::None);
    assert_eq!(ep.backends[0].encoding, BackendEncoding::Json);
    assert_eq!(ep.backends[0].method, Method::Get);
}

#[test]
fn settings_defaults_flow_into_endpoints() {
    let gw = load_text(&format!(
        "timeout: 800ms\ncacheTTL: 1m\noutputEncoding: xml\n{ONE}"
    ))
    .unwrap()
    .gateway;
    let ep = &gw.endpoints[0];
    assert_eq!(ep.timeout, std::time::Duration::from_millis(800));
    assert_eq!(ep.cache_ttl, std::time::Duration::from_secs(60));
    assert_eq!(ep.output_encoding, OutputEncoding::Xml);
}

#[test]
fn json_settings_file_loads() {
    let json = r#"{"port": 9000, "endpoints": [{"path": "/a", "backends": [{"hosts": ["http://h"], "urlPattern": "/a"}]}]}"#;
    let gw = from_sources(
        &[(PathBuf::from("gw.json"), json.as_bytes().to_vec())],
        false,
    )
    .unwrap()
    .gateway;
    assert_eq!(gw.settings.port, 9000);
    assert_eq!(gw.endpoints.len(), 1);
}

#[test]
fn path_must_start_with_slash() {
    let e = errors(&ONE.replace("path: /users/{id}", "path: users/{id}"));
    assert!(
        e.contains("gw.yaml: endpoints[0]: endpoint users/{id}: path: must start with '/'"),
        "{e}"
    );
}

#[test]
fn reserved_paths_are_refused() {
    for p in ["/__health", "/__stats/x", "/__debug/", "/__echo/a"] {
        let e = errors(&ONE.replace("/users/{id}", p).replace("/u/{id}", "/u"));
        assert!(e.contains("path:") && e.contains("reserved"), "{p}: {e}");
    }
}

#[test]
fn undefined_url_parameter_is_refused() {
    let e = errors(&ONE.replace("/u/{id}", "/u/{name}"));
    assert!(
        e.contains("backends[0].urlPattern: {name} is not defined by the endpoint path /users/{id} (defined: id)"),
        "{e}"
    );
}

#[test]
fn sequential_references_need_sequential_and_order() {
    let two = "
endpoints:
  - path: /a
    SEQ
    backends:
      - hosts: [\"http://h\"]
        urlPattern: /one
      - hosts: [\"http://h\"]
        urlPattern: /two/{resp0_id}
";
    let e = errors(&two.replace("SEQ", ""));
    assert!(e.contains("set sequential: true"), "{e}");
    assert!(load_text(&two.replace("SEQ", "sequential: true")).is_ok());
    let e = errors(
        &two.replace("SEQ", "sequential: true")
            .replace("resp0_id", "resp1_id"),
    );
    assert!(e.contains("refers to backend 1"), "{e}");
}

#[test]
fn no_op_needs_one_backend() {
    let e = errors(
        "
endpoints:
  - path: /a
    outputEncoding: no-op
    backends:
      - hosts: [\"http://h\"]
        urlPattern: /one
      - hosts: [\"http://h\"]
        urlPattern: /two
",
    );
    assert!(
        e.contains("outputEncoding: no-op passes one backend's answer through, but 2 backends"),
        "{e}"
    );
}

#[test]
fn backend_no_op_needs_no_op_endpoint() {
    let e = errors(&ONE.replace(
        "urlPattern: /u/{id}",
        "urlPattern: /u/{id}\n        encoding: no-op",
    ));
    assert!(e.contains("backends[0].encoding"), "{e}");
}

#[test]
fn unknown_encoding_names_the_field() {
    let e = errors(&ONE.replace("    backends:", "    outputEncoding: csv\n    backends:"));
    assert!(
        e.contains("gw.yaml:4:21: endpoints[0].outputEncoding: unknown value `csv` (one of json, json-collection,"),
        "{e}"
    );
    let e = errors(&ONE.replace(
        "urlPattern: /u/{id}",
        "urlPattern: /u/{id}\n        encoding: protobuf",
    ));
    assert!(
        e.contains("endpoints[0].backends[0].encoding") && e.contains("protobuf"),
        "{e}"
    );
}

#[test]
fn unknown_fields_are_refused() {
    let e = errors(&ONE.replace("    backends:", "    timeuot: 1s\n    backends:"));
    assert!(e.contains("timeuot"), "{e}");
}

#[test]
fn duplicate_routes_are_refused_unless_hosts_differ() {
    let dup = format!("{ONE}{}", ONE.replace("endpoints:\n", ""));
    let e = errors(&dup);
    assert!(
        e.contains(
            "duplicate route GET /users/{id}: GET /users/{id} in gw.yaml: endpoints[0] already claims it"
        ),
        "{e}"
    );
    // Another placeholder name is the same route: the router could serve only one of them.
    let renamed = format!(
        "{ONE}{}",
        ONE.replace("endpoints:\n", "")
            .replace("/users/{id}", "/users/{name}")
            .replace("/u/{id}", "/u/{name}")
    );
    let e = errors(&renamed);
    assert!(
        e.contains("duplicate route GET /users/{name}: GET /users/{id} in gw.yaml: endpoints[0] already claims it (placeholder names do not tell routes apart)"),
        "{e}"
    );
    let by_host = format!(
        "{ONE}{}",
        ONE.replace("endpoints:\n", "")
            .replace("    backends:", "    host: b.example\n    backends:")
    );
    assert!(load_text(&by_host).is_ok());
    let other_method = format!(
        "{ONE}{}",
        ONE.replace("endpoints:\n", "")
            .replace("    backends:", "    method: DELETE\n    backends:")
    );
    assert!(load_text(&other_method).is_ok());
}

#[test]
fn backend_needs_a_host() {
    let e = errors(&ONE.replace("hosts: [\"http://127.0.0.1:1\"]", "hosts: []"));
    assert!(
        e.contains("backends[0].hosts: a backend needs at least one host"),
        "{e}"
    );
}

#[test]
fn bad_urls_are_refused() {
    for bad in ["ftp://h", "http://", "http://a b", "http://h/?q=1"] {
        let e = errors(&ONE.replace("http://127.0.0.1:1", bad));
        assert!(e.contains("backends[0].hosts[0]"), "{bad}: {e}");
    }
    let e = errors(&ONE.replace("urlPattern: /u/{id}", "urlPattern: u/{id}"));
    assert!(
        e.contains("backends[0].urlPattern: must start with '/'"),
        "{e}"
    );
}

#[test]
fn bad_durations_name_the_field() {
    let e = errors(&ONE.replace("    backends:", "    timeout: 2sec\n    backends:"));
    assert!(
        e.contains("endpoint /users/{id}: timeout: invalid duration \"2sec\""),
        "{e}"
    );
    let e = errors(&format!("timeout: soon\n{ONE}"));
    assert!(e.contains("gw.yaml: timeout: invalid duration"), "{e}");
}

#[test]
fn every_error_is_reported_at_once() {
    let e = errors(
        "
endpoints:
  - path: nope
    backends:
      - hosts: []
        urlPattern: /x/{missing}
",
    );
    assert_eq!(e.lines().count(), 3, "{e}");
}

#[test]
fn long_timeouts_warn_but_load() {
    let loaded =
        load_text(&ONE.replace("    backends:", "    timeout: 5s\n    backends:")).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].contains("timeout: 5s is above 2s"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn manifest_directory_with_settings_document() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.yaml"),
        "apiVersion: weir.dev/v1alpha1
kind: Endpoint
metadata:
  name: users
spec:
  path: /users
  backends:
    - hosts: [\"http://h\"]
      urlPattern: /users
---
apiVersion: weir.dev/v1alpha1
kind: Endpoint
metadata:
  name: orders
spec:
  path: /orders
  backends:
    - hosts: [\"http://h\"]
      urlPattern: /orders
",
    )
    .unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), "port: 9999\ntimeout: 1s\n").unwrap();
    std::fs::write(dir.path().join("README.md"), "not config").unwrap();
    std::fs::write(
        dir.path().join("other.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    let loaded = load(dir.path()).unwrap();
    let gw = loaded.gateway;
    assert_eq!(gw.settings.port, 9999);
    let paths: Vec<_> = gw.endpoints.iter().map(|e| e.path.to_string()).collect();
    assert_eq!(paths, ["/users", "/orders"]);
    assert_eq!(gw.endpoints[0].timeout, std::time::Duration::from_secs(1));
    assert!(gw.endpoints[0]
        .origin
        .ends_with("users.yaml: Endpoint users"));
    assert!(
        loaded
            .notes
            .iter()
            .any(|n| n.contains("other.yaml:1: kind ConfigMap (v1) skipped")),
        "{:?}",
        loaded.notes
    );
}

#[test]
fn manifest_errors_name_file_and_object() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: weir.dev/v1alpha1
kind: Endpoint
metadata:
  name: broken
spec:
  path: /__debug/x
  backends:
    - hosts: [\"http://h\"]
      urlPattern: /x
",
    )
    .unwrap();
    let e = load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("bad.yaml: Endpoint broken: endpoint /__debug/x: path:"),
        "{e}"
    );
}

#[test]
fn syntax_errors_name_the_file() {
    let e = errors("endpoints: [");
    assert_eq!(e, "gw.yaml:1:12: invalid YAML: unclosed bracket '['");
}

#[test]
fn unchanged_endpoints_are_reused_across_loads() {
    let two = |second: &str, timeout: &str| {
        format!(
            "timeout: {timeout}\nendpoints:
  - path: /a
    backends: [{{hosts: [\"http://h\"], urlPattern: /a}}]
  - path: {second}
    backends: [{{hosts: [\"http://h\"], urlPattern: /b}}]
"
        )
    };
    let load = |text: String, cache: &mut ConvertCache| {
        from_sources_cached(
            &[(PathBuf::from("gw.yaml"), text.into_bytes())],
            false,
            cache,
        )
        .unwrap()
        .gateway
    };
    let mut cache = ConvertCache::default();
    let first = load(two("/b", "1s"), &mut cache);
    let second = load(two("/c", "1s"), &mut cache);
    assert!(std::sync::Arc::ptr_eq(
        &first.endpoints[0],
        &second.endpoints[0]
    ));
    assert!(!std::sync::Arc::ptr_eq(
        &first.endpoints[1],
        &second.endpoints[1]
    ));
    assert_eq!(second.endpoints[1].path.as_str(), "/c");
    // New settings may change every endpoint's defaults: nothing is reused.
    let third = load(two("/c", "2s"), &mut cache);
    assert!(!std::sync::Arc::ptr_eq(
        &second.endpoints[0],
        &third.endpoints[0]
    ));
    assert_eq!(
        third.endpoints[0].timeout,
        std::time::Duration::from_secs(2)
    );
}

#[test]
fn json_errors_name_the_field_too() {
    let json = r#"{"endpoints": [{"path": "/a", "timeuot": "1s", "backends": []}]}"#;
    let e = from_sources(
        &[(PathBuf::from("gw.json"), json.as_bytes().to_vec())],
        false,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "gw.json:1:31: endpoints[0].timeuot: unknown field; did you mean `timeout`?"
    );
    let e = from_sources(
        &[(PathBuf::from("gw.json"), b"{\"port\": 1} trailing".to_vec())],
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("trailing characters"), "{e}");
}

fn load_file(name: &str, text: &str) -> Result<Loaded> {
    from_sources(&[(PathBuf::from(name), text.as_bytes().to_vec())], false)
}

#[test]
fn one_file_holds_settings_and_manifests() {
    let text = format!(
        "timeout: 1s\n{ONE}---
apiVersion: weir.dev/v1alpha1
kind: Endpoint
metadata: {{name: orders}}
spec:
  path: /orders
  backends: [{{hosts: [\"http://h\"], urlPattern: /o}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: weir}}
"
    );
    let loaded = load_file("all.yaml", &text).unwrap();
    let origins: Vec<&str> = loaded
        .gateway
        .endpoints
        .iter()
        .map(|e| e.origin.as_str())
        .collect();
    assert_eq!(
        origins,
        ["all.yaml: endpoints[0]", "all.yaml: Endpoint orders"]
    );
    assert_eq!(
        loaded.gateway.endpoints[1].timeout,
        std::time::Duration::from_secs(1)
    );
    assert_eq!(
        loaded.notes,
        ["all.yaml:15: kind Deployment (apps/v1) skipped (not a Weir resource)"]
    );
}

#[test]
fn empty_files_are_refused_but_an_empty_list_is_not() {
    for text in ["", "  \n", "# all commented out\n", "---\n---\n"] {
        let e = load_file("gw.yaml", text).unwrap_err().to_string();
        assert!(e.starts_with("gw.yaml: the file is empty"), "{text:?}: {e}");
    }
    assert!(load_file("gw.yaml", "endpoints: []\n").is_ok());
    assert!(load_file("gw.json", "{}").is_ok());
}

#[test]
fn a_broken_krakend_file_is_a_json_syntax_error() {
    let e = load_file("krakend.json", "{\"version\": 3, \"endpoints\": [,]}")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "krakend.json:1:30: invalid JSON: expected value");
}

#[test]
fn a_krakend_file_is_read_only_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("krakend.json"), r#"{"version": 3}"#).unwrap();
    let e = load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("krakend.json:1:1: a KrakenD configuration"),
        "{e}"
    );
}

#[test]
fn other_versions_of_our_kind_are_refused_and_other_groups_skipped() {
    let manifest = |api: &str| {
        format!("apiVersion: {api}\nkind: Endpoint\nmetadata: {{name: x}}\nspec: {{path: /x, backends: []}}\n")
    };
    let e = load_file("m.yaml", &manifest("weir.dev/v9"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "m.yaml:1:1: apiVersion: weir.dev/v9 is not a version Weir reads; use weir.dev/v1alpha1"
    );
    let loaded = load_file("m.yaml", &manifest("example.com/v1")).unwrap();
    assert_eq!(loaded.gateway.endpoints.len(), 0);
    assert_eq!(
        loaded.notes,
        ["m.yaml:1: kind Endpoint (example.com/v1) skipped (not a Weir resource)"]
    );
}

#[test]
fn service_backends_are_shape_checked_offline_and_refused_for_serving() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = |name: &str, service: &str| {
        format!(
            "apiVersion: weir.dev/v1alpha1\nkind: Endpoint\nmetadata: {{name: {name}}}\nspec:\n  path: /{name}\n  backends:\n    - service: {service}\n      urlPattern: /\n"
        )
    };
    std::fs::write(
        dir.path().join("ok.yaml"),
        manifest("ok", "{name: users, port: 8080, namespace: shop}"),
    )
    .unwrap();
    let loaded = check(dir.path(), false).unwrap();
    assert_eq!(loaded.notes.len(), 1);
    assert!(
        loaded.notes[0].starts_with("1 service backend(s) in "),
        "{:?}",
        loaded.notes
    );
    assert!(load(dir.path())
        .unwrap_err()
        .to_string()
        .contains("service backends need Kubernetes mode"));
    std::fs::write(
        dir.path().join("bad.yaml"),
        manifest("bad", "{name: 9lives, port: 80, namespace: -x}"),
    )
    .unwrap();
    let e = check(dir.path(), false).unwrap_err().to_string();
    assert!(e.contains("backends[0].service.name: \"9lives\" is not a Service name: it must start with a letter"), "{e}");
    assert!(
        e.contains("backends[0].service.namespace: \"-x\" is not a namespace name"),
        "{e}"
    );
}

#[test]
fn recursive_reads_descend_but_skip_dot_directories() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    std::fs::create_dir_all(dir.path().join("..2024_01_01")).unwrap();
    let manifest = "apiVersion: weir.dev/v1alpha1\nkind: Endpoint\nmetadata: {name: a}\nspec: {path: /a, backends: [{hosts: [\"http://h\"], urlPattern: /a}]}\n";
    std::fs::write(dir.path().join("sub/a.yaml"), manifest).unwrap();
    std::fs::write(dir.path().join("..2024_01_01/a.yaml"), ONE).unwrap();
    std::fs::write(dir.path().join("top.yaml"), "port: 9000\n").unwrap();
    assert_eq!(read_tree(dir.path(), false).unwrap().len(), 1);
    let files = read_tree(dir.path(), true).unwrap();
    assert_eq!(files.len(), 2);
    assert!(files[0].0.ends_with("sub/a.yaml"));
    let loaded = check(dir.path(), true).unwrap();
    assert_eq!(loaded.gateway.endpoints.len(), 1);
}

#[test]
fn a_reload_parses_only_the_items_and_documents_that_changed() {
    let items = |n: usize, changed: &str| {
        let mut text = String::from("timeout: 1s\nendpoints:\n");
        for i in 0..n {
            let path = if i == 1 {
                changed.to_string()
            } else {
                format!("/e{i}")
            };
            text.push_str(&format!(
                "  - path: {path}\n    backends:\n      - hosts: [\"http://h\"]\n        urlPattern: /x\n"
            ));
        }
        text
    };
    let mut cache = ConvertCache::default();
    let mut specs = |text: String| {
        from_sources_cached(
            &[(PathBuf::from("gw.yaml"), text.into_bytes())],
            false,
            &mut cache,
        )
        .unwrap();
        let mut v: Vec<(String, std::sync::Arc<EndpointSpec>)> = cache
            .by_origin
            .iter()
            .map(|(k, (spec, _, _))| (k.clone(), spec.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let first = specs(items(3, "/one"));
    let second = specs(items(3, "/two"));
    for (a, b) in first.iter().zip(&second) {
        let same = std::sync::Arc::ptr_eq(&a.1, &b.1);
        assert_eq!(same, a.0 != "gw.yaml: endpoints[1]", "{}", a.0);
    }
    assert_eq!(second[1].1.path, "/two");
}

/// Timing of a one-endpoint reload of a 10,000-endpoint file (run by hand:
/// `cargo test -p weir-config --release -- --ignored reload_timing --nocapture`).
#[test]
#[ignore]
fn reload_timing() {
    let item = |p: &str| {
        format!("  - path: {p}\n    backends:\n      - hosts: [\"http://127.0.0.1:1\"]\n        urlPattern: /small.json\n")
    };
    let mut base = String::from("port: 1\naccessLog: false\ntimeout: 3s\nendpoints:\n");
    for i in 0..10_000 {
        base.push_str(&item(&format!("/e/{i}/{{id}}")));
    }
    let mut cache = ConvertCache::default();
    let t = std::time::Instant::now();
    from_sources_cached(
        &[(PathBuf::from("gw.yaml"), base.clone().into_bytes())],
        false,
        &mut cache,
    )
    .unwrap();
    eprintln!("first load: {:?}", t.elapsed());
    let n: usize = std::env::var("RELOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    for k in 0..n {
        let text = format!("{base}{}", item(&format!("/fresh-{k}")));
        let sources = [(PathBuf::from("gw.yaml"), text.into_bytes())];
        let t = std::time::Instant::now();
        let fp = crate::watch::fingerprint(&sources);
        let t_fp = t.elapsed();
        let t = std::time::Instant::now();
        let docs = crate::documents::split(std::str::from_utf8(&sources[0].1).unwrap());
        let cut = crate::documents::endpoint_items(docs[0].text).unwrap();
        let t_cut = t.elapsed();
        let t = std::time::Instant::now();
        from_sources_cached(&sources, false, &mut cache).unwrap();
        eprintln!(
            "reload {k}: fingerprint {t_fp:?}, split+cut {t_cut:?} ({} items), load {:?} [{fp:x}]",
            cut.items.len(),
            t.elapsed()
        );
    }
    let t = std::time::Instant::now();
    let _: SettingsFile = crate::yaml::from_str(&base, 0).unwrap();
    eprintln!("whole-file YAML parse: {:?}", t.elapsed());
}

#[test]
fn duplicates_are_found_whatever_changed_before() {
    let ep = |path: &str, method: &str| {
        format!("  - path: {path}\n    method: {method}\n    backends: [{{hosts: [\"http://h\"], urlPattern: /x}}]\n")
    };
    let mut cache = ConvertCache::default();
    let mut load = |items: &[String]| {
        let text = format!("endpoints:\n{}", items.concat());
        from_sources_cached(
            &[(PathBuf::from("gw.yaml"), text.into_bytes())],
            false,
            &mut cache,
        )
        .map(|l| l.gateway.endpoints.len())
        .map_err(|e| e.to_string())
    };
    let a = ep("/a/{id}", "GET");
    let b = ep("/b", "GET");
    assert_eq!(load(&[a.clone(), b.clone()]), Ok(2));
    // A new endpoint that claims a kept one's route, under another placeholder name.
    let e = load(&[a.clone(), b.clone(), ep("/a/{name}", "GET")]).unwrap_err();
    assert!(e.contains("duplicate route GET /a/{name}"), "{e}");
    // The kept ones are still checked after a failed load.
    assert_eq!(
        load(&[a.clone(), b.clone(), ep("/a/{name}", "POST")]),
        Ok(3)
    );
    // A route freed by a removal can be claimed again, and a changed one frees its old route.
    assert_eq!(
        load(&[
            ep("/b", "GET"),
            ep("/a/{x}", "POST"),
            ep("/a/{id}", "DELETE")
        ]),
        Ok(3)
    );
    assert_eq!(
        load(&[ep("/b", "GET"), ep("/a/{x}", "POST"), ep("/a/{id}", "GET")]),
        Ok(3)
    );
    let e = load(&[
        ep("/b", "GET"),
        ep("/a/{x}", "POST"),
        ep("/a/{id}", "GET"),
        ep("/b", "GET"),
    ])
    .unwrap_err();
    assert!(e.contains("duplicate route GET /b"), "{e}");
}

/// KrakenD's edge settings: `tls`, `use_h2c`, `client_tls` and the per-backend
/// `backend/http/client` (krakend_tls.rs).
mod krakend_edge {
    use std::path::Path;

    use super::*;
    use crate::krakend::{import, Imported};

    fn imp(text: &str) -> Imported {
        import(Path::new("krakend.json"), text).expect("imports")
    }

    fn refused(text: &str) -> String {
        import(Path::new("krakend.json"), text)
            .expect_err("should be refused")
            .to_string()
    }

    /// A file with `service` keys spliced in and one endpoint whose backend has `backend`.
    fn file(service: &str, backend: &str) -> String {
        format!(
            r#"{{"version": 3, {service} "endpoints": [{{"endpoint": "/a", "backend": [{{"url_pattern": "/a", {backend}}}]}}]}}"#
        )
    }

    fn warned(imported: &Imported, part: &str) -> bool {
        imported.warnings.iter().any(|w| w.contains(part))
    }

    #[test]
    fn tls_keys_then_the_deprecated_pair_become_certificates_in_order() {
        let i = imp(&file(
            r#""tls": {"keys": [{"public_key": "a.pem", "private_key": "a.key"},
                                {"public_key": "/abs/b.pem", "private_key": "/abs/b.key"}],
                       "public_key": "certs/c.pem", "private_key": "certs/c.key",
                       "@comment": "inert"},"#,
            r#""host": ["http://h"]"#,
        ));
        let tls = i.settings.tls.as_ref().expect("tls");
        let files: Vec<(&str, &str)> = tls
            .certificates
            .iter()
            .map(|c| (c.cert_file.as_str(), c.key_file.as_str()))
            .collect();
        // Paths as written: relative ones stay relative to the working directory.
        assert_eq!(
            files,
            [
                ("a.pem", "a.key"),
                ("/abs/b.pem", "/abs/b.key"),
                ("certs/c.pem", "certs/c.key")
            ]
        );
        assert_eq!(
            tls.min_version.as_deref(),
            Some("1.3"),
            "KrakenD's default is TLS 1.3 only"
        );
        assert_eq!(i.settings.http2, None, "h2 by ALPN, Weir's default");
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    }

    #[test]
    fn tls_reaches_the_model_settings() {
        let text = file(
            r#""tls": {"public_key": "c.pem", "private_key": "c.key", "min_version": "TLS12"},"#,
            r#""host": ["http://h"]"#,
        );
        let loaded = load_file("krakend.json", &text).unwrap();
        let s = &loaded.gateway.settings;
        let tls = s.tls.as_ref().expect("tls");
        assert_eq!(tls.min_version, weir_model::TlsVersion::V1_2);
        assert_eq!(
            tls.certificates[0].cert_file,
            std::path::PathBuf::from("c.pem")
        );
        assert!(s.http2);
        assert_eq!(tls.plain_port, None, "KrakenD listens only with TLS");
    }

    #[test]
    fn tls_min_version_maps_and_older_versions_are_noted() {
        let min = |v: &str| {
            imp(&file(
                &format!(
                    r#""tls": {{"public_key": "c", "private_key": "k", "min_version": "{v}"}},"#
                ),
                r#""host": ["http://h"]"#,
            ))
        };
        assert_eq!(
            min("TLS13").settings.tls.unwrap().min_version.as_deref(),
            Some("1.3")
        );
        assert_eq!(
            min("TLS12").settings.tls.unwrap().min_version.as_deref(),
            Some("1.2")
        );
        let old = min("TLS10");
        assert_eq!(
            old.settings.tls.as_ref().unwrap().min_version.as_deref(),
            Some("1.2")
        );
        assert!(
            warned(
                &old,
                "tls.min_version TLS10: Weir accepts TLS 1.2 at the lowest"
            ),
            "{:?}",
            old.warnings
        );
        let e = refused(&file(
            r#""tls": {"public_key": "c", "private_key": "k", "min_version": "TLS1.2"},"#,
            r#""host": ["http://h"]"#,
        ));
        assert!(
            e.contains("tls.min_version") && e.contains("\"TLS1.2\" is not a KrakenD TLS version"),
            "{e}"
        );
    }

    #[test]
    fn tls_options_weir_lacks_are_named() {
        let i = imp(&file(
            r#""tls": {"public_key": "c", "private_key": "k", "max_version": "TLS12",
                       "cipher_suites": [49199], "curve_preferences": [23],
                       "prefer_server_cipher_suites": true, "sni_strict": true,
                       "ca_certs": ["inert-without-mtls.pem"]},"#,
            r#""host": ["http://h"]"#,
        ));
        for name in [
            "tls option \"max_version\"",
            "tls option \"cipher_suites\"",
            "tls option \"curve_preferences\"",
            "tls option \"prefer_server_cipher_suites\"",
            "tls option \"sni_strict\"",
        ] {
            assert!(
                i.warnings
                    .iter()
                    .any(|w| w.starts_with(&format!("krakend.json: {name}"))
                        && w.contains("is not implemented by Weir and is ignored (at service)")),
                "{name}: {:?}",
                i.warnings
            );
        }
        assert_eq!(i.warnings.len(), 5, "{:?}", i.warnings);
        // The default maximum changes nothing.
        let i = imp(&file(
            r#""tls": {"public_key": "c", "private_key": "k", "max_version": "TLS13"},"#,
            r#""host": ["http://h"]"#,
        ));
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    }

    #[test]
    fn mutual_tls_is_refused_unless_tls_is_disabled() {
        let e = refused(&file(
            r#""tls": {"public_key": "c", "private_key": "k", "enable_mtls": true, "ca_certs": ["ca.pem"]},"#,
            r#""host": ["http://h"]"#,
        ));
        assert!(
            e.contains("tls.enable_mtls")
                && e.contains("mutual TLS")
                && e.contains("would let any client in"),
            "{e}"
        );
        // Disabled, KrakenD reads none of it and serves plain HTTP/1.1.
        let i = imp(&file(
            r#""tls": {"disabled": true, "enable_mtls": true, "public_key": "c", "private_key": "k"},"#,
            r#""host": ["http://h"]"#,
        ));
        assert_eq!(
            (i.settings.tls.is_none(), i.settings.http2),
            (true, Some(false))
        );
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    }

    #[test]
    fn tls_without_a_whole_certificate_is_refused() {
        let e = refused(&file(
            r#""tls": {"min_version": "TLS12"},"#,
            r#""host": ["http://h"]"#,
        ));
        assert!(
            e.contains("tls.keys") && e.contains("names no certificate"),
            "{e}"
        );
        let e = refused(&file(
            r#""tls": {"keys": [{"public_key": "c"}]},"#,
            r#""host": ["http://h"]"#,
        ));
        assert!(e.contains("tls.keys[0].private_key: is required"), "{e}");
        let e = refused(&file(
            r#""tls": {"private_key": "k"},"#,
            r#""host": ["http://h"]"#,
        ));
        assert!(e.contains("tls.public_key: is required"), "{e}");
        let e = refused(&file(r#""tls": "on","#, r#""host": ["http://h"]"#));
        assert!(e.contains("tls"), "{e}");
    }

    #[test]
    fn use_h2c_decides_http2_on_a_plain_listener() {
        let h2 = |service: &str| {
            let i = imp(&file(service, r#""host": ["http://h"]"#));
            assert!(i.warnings.is_empty(), "{:?}", i.warnings);
            i.settings.http2
        };
        assert_eq!(
            h2(""),
            Some(false),
            "KrakenD speaks HTTP/1.1 only without use_h2c"
        );
        assert_eq!(h2(r#""use_h2c": false,"#), Some(false));
        assert_eq!(h2(r#""use_h2c": true,"#), Some(true));
        assert_eq!(
            h2(r#""extra_config": {"router": {"use_h2c": true}},"#),
            Some(true),
            "the deprecated router spelling"
        );
        assert_eq!(h2(r#""tls": null,"#), Some(false));
        let loaded = load_file("krakend.json", &file("", r#""host": ["http://h"]"#)).unwrap();
        assert!(!loaded.gateway.settings.http2);
    }

    #[test]
    fn client_tls_goes_to_every_https_backend() {
        let text = r#"{"version": 3, "host": ["https://default.internal"],
            "client_tls": {"allow_insecure_connections": false, "ca_certs": ["ca.pem"],
                           "disable_system_ca_pool": true, "min_version": "TLS12", "max_version": "TLS13",
                           "client_certs": [{"certificate": "client.pem", "private_key": "client.key"}]},
            "endpoints": [{"endpoint": "/a", "backend": [
                {"url_pattern": "/default"},
                {"host": ["https://other:8443"], "url_pattern": "/other"},
                {"host": ["http://plain"], "url_pattern": "/plain"}]}]}"#;
        let i = imp(text);
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
        let b = &i.endpoints[0].1.backends;
        let want = weir_model::spec::BackendTlsSpec {
            ca_file: Some("ca.pem".into()),
            server_name: None,
            cert_file: Some("client.pem".into()),
            key_file: Some("client.key".into()),
            insecure_skip_verify: false,
        };
        assert_eq!(b[0].tls.as_ref(), Some(&want));
        assert_eq!(b[1].tls.as_ref(), Some(&want));
        assert_eq!(b[2].tls, None, "plain backends need no TLS options");
        let loaded = load_file("krakend.json", text).unwrap();
        let t = loaded.gateway.endpoints[0].backends[0]
            .tls
            .as_ref()
            .unwrap();
        assert_eq!(t.ca_file.as_deref(), Some(Path::new("ca.pem")));
    }

    #[test]
    fn client_tls_differences_are_noted() {
        let i = imp(&file(
            r#""client_tls": {"ca_certs": ["a.pem", "b.pem"],
                              "client_certs": [{"certificate": "1.pem", "private_key": "1.key"},
                                               {"certificate": "2.pem", "private_key": "2.key"}]},"#,
            r#""host": ["https://h"]"#,
        ));
        let tls = i.endpoints[0].1.backends[0].tls.clone().unwrap();
        assert_eq!(
            (tls.ca_file.as_deref(), tls.cert_file.as_deref()),
            (Some("a.pem"), Some("1.pem"))
        );
        for part in [
            "service: client_tls.ca_certs lists 2 files and Weir reads one (caFile): only a.pem is trusted",
            "service: client_tls.ca_certs: KrakenD adds a.pem to the system's roots, Weir trusts only that file",
            "service: client_tls.client_certs lists 2 certificates and Weir presents one",
        ] {
            assert!(warned(&i, part), "{part}: {:?}", i.warnings);
        }
        assert_eq!(i.warnings.len(), 3, "{:?}", i.warnings);
    }

    #[test]
    fn client_tls_options_weir_lacks_are_named_and_bad_versions_refused() {
        let i = imp(&file(
            r#""client_tls": {"min_version": "TLS13", "max_version": "TLS12", "cipher_suites": [4865],
                              "curve_preferences": [29], "renegotiation": true, "_note": "inert"},"#,
            r#""host": ["https://h"]"#,
        ));
        for name in [
            "client_tls option \"min_version\"",
            "client_tls option \"max_version\"",
            "client_tls option \"cipher_suites\"",
            "client_tls option \"curve_preferences\"",
            "client_tls option \"renegotiation\"",
        ] {
            assert!(warned(&i, name), "{name}: {:?}", i.warnings);
        }
        assert_eq!(i.warnings.len(), 5, "{:?}", i.warnings);
        let old = imp(&file(
            r#""client_tls": {"min_version": "TLS11"},"#,
            r#""host": ["https://h"]"#,
        ));
        assert!(
            warned(
                &old,
                "client_tls.min_version TLS11: Weir's backend connections need TLS 1.2"
            ),
            "{:?}",
            old.warnings
        );
        let e = refused(&file(
            r#""client_tls": {"max_version": "1.3"},"#,
            r#""host": ["https://h"]"#,
        ));
        assert!(
            e.contains("client_tls.max_version") && e.contains("is not a KrakenD TLS version"),
            "{e}"
        );
        let e = refused(&file(
            r#""client_tls": {"client_certs": [{"private_key": "k"}]},"#,
            r#""host": ["https://h"]"#,
        ));
        assert!(
            e.contains("client_tls.client_certs[0].certificate: is required"),
            "{e}"
        );
    }

    #[test]
    fn an_empty_trust_store_is_refused_only_where_an_https_backend_needs_it() {
        let empty = r#""client_tls": {"disable_system_ca_pool": true},"#;
        let e = refused(&file(empty, r#""host": ["https://h"]"#));
        assert!(
            e.contains("client_tls.disable_system_ca_pool") && e.contains("trusts no certificate"),
            "{e}"
        );
        // No https backend: nothing would use it.
        let i = imp(&file(empty, r#""host": ["http://h"]"#));
        assert!(i.warnings.is_empty() && i.endpoints[0].1.backends[0].tls.is_none());
        // Verification off, or a CA listed: nothing to refuse.
        imp(&file(
            r#""client_tls": {"disable_system_ca_pool": true, "allow_insecure_connections": true},"#,
            r#""host": ["https://h"]"#,
        ));
    }

    #[test]
    fn the_older_allow_insecure_connections_switches_verification_off() {
        let i = imp(&file(
            r#""allow_insecure_connections": true,"#,
            r#""host": ["https://h"]"#,
        ));
        let tls = i.endpoints[0].1.backends[0].tls.clone().unwrap();
        assert!(tls.insecure_skip_verify && tls.ca_file.is_none());
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
        let i = imp(&file(
            r#""allow_insecure_connections": true, "client_tls": {"ca_certs": ["ca.pem"]},"#,
            r#""host": ["https://h"]"#,
        ));
        assert!(
            i.endpoints[0].1.backends[0]
                .tls
                .as_ref()
                .unwrap()
                .insecure_skip_verify
        );
    }

    #[test]
    fn backend_http_client_sets_one_backends_tls_and_redirects() {
        let i = imp(&file(
            r#""client_tls": {"ca_certs": ["global.pem"], "disable_system_ca_pool": true},"#,
            r#""host": ["https://h"], "extra_config": {"backend/http/client": {
                "no_redirect": true, "proxy_address": "http://proxy:3128",
                "client_tls": {"ca_certs": ["own.pem"], "disable_system_ca_pool": true,
                               "client_certs": [{"certificate": "c.pem", "private_key": "c.key"}]}}}"#,
        ));
        let b = &i.endpoints[0].1.backends[0];
        let tls = b.tls.as_ref().unwrap();
        assert_eq!(
            (tls.ca_file.as_deref(), tls.key_file.as_deref()),
            (Some("own.pem"), Some("c.key")),
            "the backend's own client_tls replaces the service's"
        );
        assert_eq!(b.follow_redirects, Some(false));
        assert_eq!(
            i.warnings,
            ["krakend.json: backend/http/client option proxy_address is not implemented by Weir and is ignored (at endpoints[0] /a backend[0])"]
        );
        let e = refused(&file(
            "",
            r#""host": ["https://h"], "extra_config": {"backend/http/client": {
                "client_tls": {"client_certs": [{"certificate": "c.pem"}]}}}"#,
        ));
        assert!(
            e.contains("backend[0].extra_config.backend/http/client.client_tls.client_certs[0].private_key: is required"),
            "{e}"
        );
    }

    #[test]
    fn converted_settings_carry_the_edge() {
        let i = imp(&file(
            r#""tls": {"public_key": "c.pem", "private_key": "c.key"}, "use_h2c": true,
               "client_tls": {"allow_insecure_connections": true},"#,
            r#""host": ["https://h"]"#,
        ));
        let yaml = crate::krakend::to_manifests(Path::new("krakend.json"), &i).unwrap();
        for part in [
            "http2: true\n",
            "tls:\n  certificates:\n  - certFile: c.pem\n    keyFile: c.key\n  minVersion: \"1.3\"\n",
            "insecureSkipVerify: true",
        ] {
            assert!(yaml.contains(part), "{part}:\n{yaml}");
        }
    }
}
