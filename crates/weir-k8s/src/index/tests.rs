//! Conversion, conflict resolution and Service checks, without a cluster.

use super::*;
use crate::resource::{BackendSpec, MethodSpec, ServiceRef};

fn spec(path: &str) -> EndpointSpec {
    EndpointSpec {
        path: path.into(),
        backends: vec![BackendSpec {
            hosts: vec!["http://users.internal:8080".into()],
            url_pattern: "/v1/users".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn object(ns: &str, name: &str, created: i64, spec: EndpointSpec) -> Object {
    Object {
        key: ObjectKey::new(ns, name),
        generation: Some(1),
        uid: Some(format!("uid-{ns}-{name}")),
        created: Some(Timestamp::from_second(created).unwrap()),
        spec,
        status: None,
    }
}

fn index(objects: Vec<Object>) -> Index {
    index_with(all_services(), objects)
}

fn index_with(services: Services, objects: Vec<Object>) -> Index {
    let mut ix = Index::new(Settings::default(), services);
    ix.replace(|_| true, objects);
    ix
}

/// What the index publishes and reports, in one value.
struct Resolved {
    gateway: Gateway,
    verdicts: BTreeMap<ObjectKey, Verdict>,
}

fn resolved(ix: &Index) -> Resolved {
    Resolved {
        gateway: ix.gateway(),
        verdicts: ix
            .objects_from(None)
            .map(|(o, v)| (o.key.clone(), v.clone()))
            .collect(),
    }
}

fn all_services() -> Services {
    Services {
        all_namespaces: true,
        ..Default::default()
    }
}

fn verdict<'a>(r: &'a Resolved, ns: &str, name: &str) -> &'a Verdict {
    &r.verdicts[&ObjectKey::new(ns, name)]
}

#[test]
fn valid_endpoints_are_served_with_their_origin() {
    let r = resolved(&index(vec![
        object("shop", "users", 10, spec("/users")),
        object("shop", "orders", 10, spec("/orders")),
    ]));
    assert_eq!(r.gateway.endpoints.len(), 2);
    let origins: Vec<&str> = r
        .gateway
        .endpoints
        .iter()
        .map(|e| e.origin.as_str())
        .collect();
    assert_eq!(
        origins,
        ["shop/orders", "shop/users"],
        "namespace/name order"
    );
    assert_eq!(verdict(&r, "shop", "users").reason, cond::REASON_ACCEPTED);
    assert!(verdict(&r, "shop", "users").served);
}

#[test]
fn invalid_endpoint_is_reported_alone_and_others_keep_serving() {
    let mut bad = spec("/bad");
    bad.timeout = Some("soon".into());
    let r = resolved(&index(vec![
        object("shop", "good", 10, spec("/good")),
        object("shop", "bad", 10, bad),
    ]));
    assert_eq!(r.gateway.endpoints.len(), 1);
    let v = verdict(&r, "shop", "bad");
    assert_eq!(v.reason, cond::REASON_INVALID);
    assert!(!v.served);
    assert!(v.message.contains("spec.timeout"), "{}", v.message);
    assert_eq!(verdict(&r, "shop", "good").reason, cond::REASON_ACCEPTED);
}

#[test]
fn reserved_paths_have_their_own_reason() {
    for path in ["/__health", "/__debug/x", "/__stats"] {
        let r = resolved(&index(vec![object("shop", "sneaky", 10, spec(path))]));
        let v = verdict(&r, "shop", "sneaky");
        assert_eq!(v.reason, cond::REASON_RESERVED_PATH, "{path}");
        assert!(v.message.contains("reserved"), "{}", v.message);
        assert!(r.gateway.endpoints.is_empty());
    }
}

#[test]
fn oldest_claim_wins_then_namespace_and_name() {
    let r = resolved(&index(vec![
        object("a", "young", 20, spec("/users")),
        object("z", "old", 10, spec("/users")),
    ]));
    assert_eq!(r.gateway.endpoints.len(), 1);
    assert_eq!(r.gateway.endpoints[0].origin, "z/old");
    let v = verdict(&r, "a", "young");
    assert_eq!(v.reason, cond::REASON_CONFLICT);
    assert!(v.message.contains("z/old"), "{}", v.message);
    assert!(!v.served);

    // Same creation second: namespace/name decides.
    let r = resolved(&index(vec![
        object("b", "x", 10, spec("/users")),
        object("a", "y", 10, spec("/users")),
    ]));
    assert_eq!(r.gateway.endpoints[0].origin, "a/y");
    assert_eq!(verdict(&r, "b", "x").reason, cond::REASON_CONFLICT);
}

#[test]
fn conflicts_need_the_same_host_method_and_route_shape() {
    let mut post = spec("/users/{id}");
    post.method = Some(MethodSpec::Post);
    let mut other_host = spec("/users/{id}");
    other_host.host = Some("api.example.com".into());
    let r = resolved(&index(vec![
        object("s", "get", 10, spec("/users/{id}")),
        object("s", "post", 11, post),
        object("s", "host", 12, other_host),
        // Another placeholder name is the same route to the router.
        object("s", "renamed", 13, spec("/users/{name}")),
    ]));
    assert_eq!(verdict(&r, "s", "post").reason, cond::REASON_ACCEPTED);
    assert_eq!(verdict(&r, "s", "host").reason, cond::REASON_ACCEPTED);
    assert_eq!(verdict(&r, "s", "renamed").reason, cond::REASON_CONFLICT);
    assert_eq!(r.gateway.endpoints.len(), 3);
}

#[test]
fn deleting_the_winner_hands_the_route_to_the_next_claim() {
    let mut ix = index(vec![
        object("s", "old", 10, spec("/users")),
        object("s", "new", 20, spec("/users")),
    ]);
    ix.delete(&ObjectKey::new("s", "old"));
    let r = resolved(&ix);
    assert_eq!(verdict(&r, "s", "new").reason, cond::REASON_ACCEPTED);
    assert_eq!(r.gateway.endpoints[0].origin, "s/new");
}

fn service_spec(name: &str, namespace: Option<&str>) -> EndpointSpec {
    EndpointSpec {
        path: "/svc".into(),
        backends: vec![BackendSpec {
            service: Some(ServiceRef {
                name: name.into(),
                port: 8080,
                namespace: namespace.map(Into::into),
            }),
            url_pattern: "/v1".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn service_backends_resolve_to_cluster_dns() {
    let mut services = all_services();
    services.present.insert(ObjectKey::new("shop", "users"));
    let ix = index_with(
        services,
        vec![object("shop", "svc", 10, service_spec("users", None))],
    );
    let r = resolved(&ix);
    assert_eq!(verdict(&r, "shop", "svc").reason, cond::REASON_ACCEPTED);
    let host = &r.gateway.endpoints[0].backends[0].hosts[0];
    assert_eq!(host.to_string(), "http://users.shop.svc:8080");
}

#[test]
fn missing_service_is_reported_but_still_served() {
    let svc = || {
        vec![object(
            "shop",
            "svc",
            10,
            service_spec("users", Some("backend")),
        )]
    };
    let r = resolved(&index(svc()));
    let v = verdict(&r, "shop", "svc");
    assert_eq!(v.reason, cond::REASON_UNRESOLVED_SERVICE);
    assert!(v.served);
    assert!(v.message.contains("backend/users"), "{}", v.message);
    assert_eq!(r.gateway.endpoints.len(), 1);

    // A namespace the controller does not watch is not checked.
    let services = Services {
        all_namespaces: false,
        namespaces: ["shop".to_string()].into(),
        present: Default::default(),
    };
    assert_eq!(
        resolved(&index_with(services, svc())).verdicts[&ObjectKey::new("shop", "svc")].reason,
        cond::REASON_ACCEPTED
    );
}

#[test]
fn relist_replaces_only_its_scope() {
    let mut ix = index(vec![
        object("a", "one", 10, spec("/one")),
        object("b", "two", 10, spec("/two")),
    ]);
    ix.replace(
        |k| k.namespace == "a",
        vec![object("a", "three", 10, spec("/three"))],
    );
    let keys: Vec<String> = ix.objects().map(|o| o.key.to_string()).collect();
    assert_eq!(keys, ["a/three", "b/two"]);
}

#[test]
fn settings_change_reconverts_every_spec() {
    let mut ix = index(vec![object("a", "one", 10, spec("/one"))]);
    let before = ix.gateway().endpoints[0].timeout;
    let settings = Settings {
        timeout: std::time::Duration::from_secs(7),
        ..Settings::default()
    };
    ix.set_settings(settings);
    let after = ix.gateway().endpoints[0].timeout;
    assert_ne!(before, after);
    assert_eq!(after, std::time::Duration::from_secs(7));
}

#[test]
fn unchanged_cluster_resolves_to_an_equal_gateway() {
    let ix = index(vec![object("a", "one", 10, spec("/one"))]);
    assert_eq!(ix.gateway(), ix.gateway());
}

#[test]
fn status_only_update_publishes_nothing_and_keeps_every_endpoint() {
    let mut ix = index(vec![
        object("shop", "users", 10, spec("/users")),
        object("shop", "orders", 10, spec("/orders")),
    ]);
    let before = ix.gateway();
    ix.take_model_changed();
    ix.take_touched();

    // Our own status write coming back: same spec, same generation, a status.
    let mut echo = object("shop", "users", 10, spec("/users"));
    echo.status = Some(EndpointStatus {
        observed_generation: Some(1),
        conditions: Vec::new(),
    });
    ix.apply(echo);
    assert!(!ix.take_model_changed(), "nothing to publish");
    let touched = ix.take_touched();
    assert_eq!(
        touched.into_iter().collect::<Vec<_>>(),
        [ObjectKey::new("shop", "users")],
        "only its status is looked at again"
    );

    // A spec change re-converts that one object; the other stays the same Arc.
    ix.apply(object("shop", "users", 10, spec("/users/v2")));
    assert!(ix.take_model_changed());
    let after = ix.gateway();
    let orders = |g: &Gateway| {
        g.endpoints
            .iter()
            .find(|e| e.origin == "shop/orders")
            .cloned()
            .unwrap()
    };
    assert!(Arc::ptr_eq(&orders(&before), &orders(&after)));
}

#[test]
fn a_service_change_touches_only_the_endpoints_that_name_it() {
    let mut ix = index(vec![
        object("shop", "svc", 10, service_spec("users", None)),
        object("shop", "plain", 10, spec("/plain")),
    ]);
    assert_eq!(
        ix.verdict(&ObjectKey::new("shop", "svc")).unwrap().reason,
        cond::REASON_UNRESOLVED_SERVICE
    );
    ix.take_touched();
    ix.take_model_changed();
    ix.service_applied(ObjectKey::new("shop", "users"));
    assert_eq!(
        ix.verdict(&ObjectKey::new("shop", "svc")).unwrap().reason,
        cond::REASON_ACCEPTED
    );
    assert_eq!(
        ix.take_touched().into_iter().collect::<Vec<_>>(),
        [ObjectKey::new("shop", "svc")]
    );
    assert!(!ix.take_model_changed(), "the table does not change");
    // A Service nobody names touches nothing.
    ix.service_applied(ObjectKey::new("shop", "other"));
    assert!(ix.take_touched().is_empty());
}

#[test]
fn many_claims_on_one_route_settle_once_per_relist() {
    // 2,000 objects on one route: a relist settles the route once (a claim-by-claim settle
    // would refresh 2,000 verdicts 2,000 times).
    let objects: Vec<Object> = (0..2000)
        .map(|i| object("s", &format!("c{i:04}"), 10, spec("/same")))
        .collect();
    let ix = index(objects);
    assert_eq!(ix.gateway().endpoints.len(), 1);
    assert_eq!(ix.gateway().endpoints[0].origin, "s/c0000");
    assert_eq!(
        ix.verdict(&ObjectKey::new("s", "c1999")).unwrap().reason,
        cond::REASON_CONFLICT
    );
}

/// The index keeps specs as JSON and reads them back when the settings change: every field
/// must survive the trip (an empty list and an absent one are distinct where the type says
/// so: a backend's `inputHeaders: []` forwards nothing, its absence everything).
#[test]
fn a_spec_survives_its_json_round_trip() {
    let full: EndpointSpec = serde_json::from_str(
        r#"{
        "path": "/shop/{id}", "method": "POST", "host": "api.example.com", "timeout": "3s",
        "cacheTTL": "10s", "concurrentCalls": 2, "outputEncoding": "negotiate",
        "inputHeaders": ["Authorization"], "inputQueryStrings": ["*"],
        "rateLimit": {"maxRate": 10, "capacity": 20, "clientMaxRate": 1, "clientCapacity": 2,
                      "strategy": "header", "key": "X-Key", "every": "1m"},
        "allowEncodedSlashes": true, "sequential": true,
        "staticResponse": {"strategy": "incomplete", "data": {"degraded": true, "n": 1.5, "z": [null]}},
        "auth": {"jwt": {"jwksUrl": "https://idp/jwks", "algorithms": ["RS256", "EdDSA"],
                         "issuer": "idp", "audience": ["shop"], "rolesClaim": "roles",
                         "roles": ["admin"], "scopesMatcher": "all", "scopes": ["read"],
                         "propagateClaims": [["sub", "X-User"]], "cookie": "session",
                         "cacheTTL": "5m", "leeway": "2s", "caFile": "/ca.pem", "allowHttp": true},
                 "apiKeys": {"file": "/keys", "header": "X-Api-Key", "roles": ["admin"]}},
        "tokenSigner": {"keysToSign": ["access_token"], "algorithm": "HS256", "kid": "k1",
                        "keyFile": "/key", "allowHttp": false},
        "backends": [
            {"hosts": ["http://a:1", "http://b:2"], "urlPattern": "/v1/{id}", "method": "PUT",
             "encoding": "safejson", "isCollection": true, "target": "data",
             "allow": ["a"], "deny": ["b"], "mapping": {"x": "y"}, "group": "g",
             "flatmap": [{"type": "move", "args": ["a", "b"]}],
             "rateLimit": {"maxRate": 5, "capacity": 5, "every": "1s"},
             "circuitBreaker": {"interval": "60s", "timeout": "10s", "maxErrors": 5},
             "errors": {"returnDetails": "a", "returnCode": true},
             "inputHeaders": [], "inputQueryStrings": ["q"], "maxResponseSize": 1024,
             "followRedirects": false, "redirectSameHostOnly": true,
             "tls": {"caFile": "/ca", "serverName": "a", "certFile": "/c", "keyFile": "/k",
                     "insecureSkipVerify": true},
             "http2": true},
            {"service": {"name": "users", "port": 8080, "namespace": "shop"}, "urlPattern": "/u"}
        ]
    }"#,
    )
    .expect("a valid spec");
    let back: EndpointSpec = serde_json::from_slice(&spec_json(&full)).unwrap();
    assert_eq!(back, full);
    assert_eq!(back.backends[0].input_headers, Some(Vec::new()));
    let minimal = spec("/a");
    let json = spec_json(&minimal);
    assert_eq!(
        serde_json::from_slice::<EndpointSpec>(&json).unwrap(),
        minimal
    );
    assert!(
        json.len() < 120,
        "absent fields are not written: {}",
        json.len()
    );
}

/// New settings convert every kept spec again, from its JSON: the result is what a fresh
/// index with those settings gives.
#[test]
fn new_settings_convert_the_kept_specs_again() {
    let mut with_service = spec("/b");
    with_service.backends.push(BackendSpec {
        service: Some(ServiceRef {
            name: "gone".into(),
            port: 80,
            namespace: None,
        }),
        url_pattern: "/x".into(),
        ..Default::default()
    });
    let objects = vec![
        object("shop", "a", 1, spec("/a")),
        object("shop", "b", 2, with_service),
    ];
    let settings = Settings {
        timeout: std::time::Duration::from_secs(7),
        ..Default::default()
    };
    let mut ix = index(objects.clone());
    ix.set_settings(settings.clone());
    let mut fresh = Index::new(settings, all_services());
    fresh.replace(|_| true, objects);
    let (a, b) = (resolved(&ix), resolved(&fresh));
    assert_eq!(a.gateway, b.gateway);
    assert_eq!(a.verdicts, b.verdicts);
    assert_eq!(
        a.gateway.endpoints[0].timeout,
        std::time::Duration::from_secs(7)
    );
}
