//! The committed CRD YAML (`crds/`, `charts/weir/crds/`) is exactly what `weir crd` prints
//! from the Rust types, and local-file parsing still reads the same specs.

use std::path::Path;

use serde_json::Value;

const FILES: [&str; 2] = [
    "crds/endpoints.weir.dev.yaml",
    "charts/weir/crds/endpoints.weir.dev.yaml",
];

#[test]
fn committed_crds_match_the_types() {
    let generated = weir::api::crd_yaml().expect("CRD serializes");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut drifted = Vec::new();
    for f in FILES {
        let on_disk = std::fs::read_to_string(root.join(f)).unwrap_or_default();
        if on_disk != generated {
            drifted.push(f);
        }
    }
    assert!(
        drifted.is_empty(),
        "{drifted:?} differ from the CRD generated from src/api/; regenerate with:\n  \
         cargo run -q -- crd > crds/endpoints.weir.dev.yaml && \
         cp crds/endpoints.weir.dev.yaml charts/weir/crds/endpoints.weir.dev.yaml"
    );
}

#[test]
fn crd_has_the_documented_shape() {
    let crd: Value = serde_saphyr::from_str(&weir::api::crd_yaml().unwrap()).unwrap();
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "weir.dev");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["plural"], "endpoints");
    assert_eq!(spec["names"]["shortNames"][0], "wep");
    let v = &spec["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert!(v["subresources"]["status"].is_object());
    let columns: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Path", "Method", "Backends", "Accepted", "Age"]);
    let schema = &v["schema"]["openAPIV3Schema"]["properties"];
    let rules = serde_saphyr::to_string(&schema["spec"]["x-kubernetes-validations"]).unwrap();
    for needle in ["startsWith('/')", "/__health", "/__echo", "no-op", "ANY"] {
        assert!(
            rules.contains(needle),
            "missing rule about {needle}: {rules}"
        );
    }
    let backend = &schema["spec"]["properties"]["backends"]["items"];
    let rule = serde_saphyr::to_string(&backend["x-kubernetes-validations"]).unwrap();
    assert!(rule.contains("has(self.service)"), "{rule}");
    assert_eq!(
        schema["spec"]["properties"]["method"]["enum"],
        serde_json::json!(["GET", "POST", "PUT", "PATCH", "DELETE", "ANY"])
    );
    let conditions = &schema["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(conditions["x-kubernetes-list-map-keys"][0], "type");
}

/// Every property in the schema carries a description: they are `kubectl explain` text.
#[test]
fn every_spec_field_is_documented() {
    fn walk(path: &str, v: &Value, missing: &mut Vec<String>) {
        if let Some(props) = v["properties"].as_object() {
            for (k, p) in props {
                let here = format!("{path}.{k}");
                if p["description"].as_str().is_none_or(str::is_empty) {
                    missing.push(here.clone());
                }
                walk(&here, p, missing);
            }
        }
        if !v["items"].is_null() {
            walk(&format!("{path}[]"), &v["items"], missing);
        }
    }
    let crd: Value = serde_saphyr::from_str(&weir::api::crd_yaml().unwrap()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut missing = Vec::new();
    walk("spec", spec, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}
