//! Per-backend transforms (target, allow, deny, mapping, group, isCollection, flatmap),
//! concurrentCalls, sequential calls and static responses, per docs/semantics.md and docs/configuration.md.

use crate::support::*;

use std::time::Duration;

use serde_json::{json, Value};

async fn gw(config: Value) -> Gw {
    gateway(&config.to_string()).await
}

/// A backend entry for `b` at `/x` with extra fields merged in.
fn be(b: &Backend, extra: Value) -> Value {
    let mut v = json!({"hosts": [b.url()], "urlPattern": "/x"});
    for (k, val) in extra.as_object().expect("extra is an object") {
        v[k] = val.clone();
    }
    v
}

/// One endpoint `/e` with these backends and extra endpoint fields.
fn endpoint(backends: Vec<Value>, extra: Value) -> Value {
    let mut ep = json!({"path": "/e", "backends": backends});
    for (k, val) in extra.as_object().expect("extra is an object") {
        ep[k] = val.clone();
    }
    json!({ "endpoints": [ep] })
}

/// Runs one backend answering `body` with the backend `extra` fields; returns the answer.
async fn transformed(body: &'static str, extra: Value) -> Resp {
    let b = json_backend(200, body).await;
    let gw = gw(endpoint(vec![be(&b, extra)], json!({}))).await;
    get(&gw.url("/e")).await
}

const USER: &str = r#"{"name":"E","age":30,"address":{"city":"Berlin","zip":"10115"}}"#;

// ---- target / allow / deny / mapping / group --------------------------------------------

#[tokio::test]
async fn target_extracts_the_named_object() {
    let r = transformed(
        r#"{"data":{"id":1,"name":"E"},"meta":{"page":1}}"#,
        json!({"target": "data"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"id": 1, "name": "E"}));
}

#[tokio::test]
async fn allow_keeps_only_listed_dot_paths() {
    let r = transformed(USER, json!({"allow": ["name", "address.city"]})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"name": "E", "address": {"city": "Berlin"}})
    );
}

#[tokio::test]
async fn deny_removes_listed_dot_paths() {
    let r = transformed(USER, json!({"deny": ["age", "address.zip"]})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"name": "E", "address": {"city": "Berlin"}})
    );
}

#[tokio::test]
async fn mapping_renames_keys() {
    let r = transformed(
        USER,
        json!({"mapping": {"name": "fullName", "age": "years"}}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"fullName": "E", "years": 30, "address": {"city": "Berlin", "zip": "10115"}})
    );
}

#[tokio::test]
async fn group_nests_the_answer_under_a_key() {
    let r = transformed(r#"{"a":1,"b":2}"#, json!({"group": "g"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"g": {"a": 1, "b": 2}}));
}

#[tokio::test]
async fn group_keeps_same_keys_of_two_backends_apart() {
    let a = json_backend(200, r#"{"id":1}"#).await;
    let b = json_backend(200, r#"{"id":2}"#).await;
    let gw = gw(endpoint(
        vec![
            be(&a, json!({"group": "first"})),
            be(&b, json!({"group": "second"})),
        ],
        json!({}),
    ))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.json(), json!({"first": {"id": 1}, "second": {"id": 2}}));
}

#[tokio::test]
async fn transforms_apply_in_order_target_allow_mapping_group() {
    // allow names pre-mapping keys inside the target; group wraps the mapped result.
    let r = transformed(
        r#"{"data":{"id":1,"secret":"s","name":"E"},"other":true}"#,
        json!({
            "target": "data",
            "allow": ["id", "name"],
            "mapping": {"id": "userId"},
            "group": "u"
        }),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"u": {"userId": 1, "name": "E"}}));
}

#[tokio::test]
async fn transforms_apply_in_order_target_deny_mapping_group() {
    let r = transformed(
        r#"{"data":{"id":1,"secret":"s","name":"E"}}"#,
        json!({
            "target": "data",
            "deny": ["secret"],
            "mapping": {"name": "fullName"},
            "group": "u"
        }),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"u": {"id": 1, "fullName": "E"}}));
}

// ---- isCollection ------------------------------------------------------------------------

#[tokio::test]
async fn is_collection_wraps_array_as_collection() {
    let r = transformed(r#"[{"id":1},{"id":2}]"#, json!({"isCollection": true})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"collection": [{"id": 1}, {"id": 2}]}));
}

#[tokio::test]
async fn is_collection_with_mapping_renames_collection() {
    let r = transformed(
        r#"[{"id":1},{"id":2}]"#,
        json!({"isCollection": true, "mapping": {"collection": "items"}}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"items": [{"id": 1}, {"id": 2}]}));
}

// ---- flatmap -----------------------------------------------------------------------------

#[tokio::test]
async fn flatmap_move_renames_a_nested_path() {
    let r = transformed(
        USER,
        json!({"flatmap": [{"type": "move", "args": ["address.city", "town"]}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"name": "E", "age": 30, "town": "Berlin", "address": {"zip": "10115"}})
    );
}

#[tokio::test]
async fn flatmap_move_with_wildcard_renames_in_every_item() {
    let r = transformed(
        r#"[{"id":1,"n":"a"},{"id":2,"n":"b"}]"#,
        json!({
            "isCollection": true,
            "flatmap": [{"type": "move", "args": ["collection.*.n", "collection.*.name"]}]
        }),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"collection": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]})
    );
}

#[tokio::test]
async fn flatmap_del_removes_a_path() {
    let r = transformed(
        USER,
        json!({"flatmap": [{"type": "del", "args": ["address.zip"]}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"name": "E", "age": 30, "address": {"city": "Berlin"}})
    );
}

#[tokio::test]
async fn flatmap_del_with_wildcard_removes_from_every_item() {
    let r = transformed(
        r#"{"items":[{"id":1,"secret":"x"},{"id":2,"secret":"y"}]}"#,
        json!({"flatmap": [{"type": "del", "args": ["items.*.secret"]}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"items": [{"id": 1}, {"id": 2}]}));
}

#[tokio::test]
async fn flatmap_append_adds_source_items_to_destination_array() {
    let r = transformed(
        r#"{"a":[1,2],"b":[3]}"#,
        json!({"flatmap": [{"type": "append", "args": ["a", "b"]}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    // Whether `a` is kept afterwards is not specified by KrakenD's documentation; only `b` is checked.
    assert_eq!(r.json()["b"], json!([3, 1, 2]));
}

#[tokio::test]
async fn flatmap_append_with_wildcard_appends_within_every_item() {
    let r = transformed(
        r#"{"l":[{"x":[1],"y":[2]},{"x":[3],"y":[4]}]}"#,
        json!({"flatmap": [{"type": "append", "args": ["l.*.x", "l.*.y"]}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["l"][0]["y"], json!([2, 1]), "{v}");
    assert_eq!(v["l"][1]["y"], json!([4, 3]), "{v}");
}

#[tokio::test]
async fn flatmap_replaces_allow_deny_and_mapping() {
    // With flatmap present, allow and mapping are ignored.
    let r = transformed(
        r#"{"a":1,"b":2}"#,
        json!({
            "allow": ["a"],
            "mapping": {"a": "renamed"},
            "flatmap": [{"type": "del", "args": ["b"]}]
        }),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": 1}));
}

// ---- concurrentCalls --------------------------------------------------------------------

#[tokio::test]
async fn concurrent_calls_sends_n_requests_and_answers_once() {
    let b = backend(|_| async {
        // Slow enough that every concurrent call arrives before the first answer.
        tokio::time::sleep(Duration::from_millis(150)).await;
        reply(200, "application/json", r#"{"a":1}"#)
    })
    .await;
    let gw = gw(endpoint(
        vec![be(&b, json!({}))],
        json!({"concurrentCalls": 3}),
    ))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": 1}));
    assert_eq!(r.completed(), Some("true"));
    assert_eq!(b.hits(), 3);
}

#[tokio::test]
async fn concurrent_calls_default_is_one_request() {
    let b = json_backend(200, r#"{"a":1}"#).await;
    let gw = gw(endpoint(vec![be(&b, json!({}))], json!({}))).await;
    get(&gw.url("/e")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(b.hits(), 1);
}

// ---- sequential ---------------------------------------------------------------------------

#[tokio::test]
async fn sequential_passes_first_answer_value_into_second_url() {
    let first = json_backend(200, r#"{"id":42,"name":"E"}"#).await;
    let second = json_backend(200, r#"{"orders":[1,2]}"#).await;
    let gw = gw(endpoint(
        vec![
            be(&first, json!({"urlPattern": "/user"})),
            be(&second, json!({"urlPattern": "/orders/{resp0_id}"})),
        ],
        json!({"sequential": true}),
    ))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("true"));
    assert_eq!(r.json(), json!({"id": 42, "name": "E", "orders": [1, 2]}));
    let reqs = second.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path(), "/orders/42");
}

#[tokio::test]
async fn sequential_failing_backend_stops_the_chain_with_partial_answer() {
    let first = json_backend(200, r#"{"id":42}"#).await;
    let failing = json_backend(500, r#"{"err":true}"#).await;
    let third = json_backend(200, r#"{"c":3}"#).await;
    let gw = gw(endpoint(
        vec![
            be(&first, json!({})),
            be(&failing, json!({"urlPattern": "/b/{resp0_id}"})),
            be(&third, json!({})),
        ],
        json!({"sequential": true}),
    ))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("false"));
    assert_eq!(r.json(), json!({"id": 42}));
    assert_eq!(failing.hits(), 1);
    assert_eq!(third.hits(), 0, "a failed backend stops the chain");
}

#[tokio::test]
async fn sequential_failing_first_backend_gives_500_and_skips_the_rest() {
    let failing = json_backend(404, r#"{}"#).await;
    let second = json_backend(200, r#"{"b":2}"#).await;
    let gw = gw(endpoint(
        vec![
            be(&failing, json!({})),
            be(&second, json!({"urlPattern": "/b/{resp0_id}"})),
        ],
        json!({"sequential": true}),
    ))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.completed(), Some("false"));
    assert_eq!(second.hits(), 0);
}

// ---- staticResponse -------------------------------------------------------------------------

async fn with_static(strategy: &str, fail: bool) -> Resp {
    let ok = json_backend(200, r#"{"a":1}"#).await;
    let other = if fail {
        json_backend(500, r#"{}"#).await
    } else {
        json_backend(200, r#"{"b":2}"#).await
    };
    let gw = gw(endpoint(
        vec![be(&ok, json!({})), be(&other, json!({}))],
        json!({"staticResponse": {"strategy": strategy, "data": {"s": "static"}}}),
    ))
    .await;
    get(&gw.url("/e")).await
}

#[tokio::test]
async fn static_always_is_merged_into_complete_answer() {
    let r = with_static("always", false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": 1, "b": 2, "s": "static"}));
    assert_eq!(r.completed(), Some("true"));
}

#[tokio::test]
async fn static_always_is_merged_into_partial_answer() {
    let r = with_static("always", true).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": 1, "s": "static"}));
    assert_eq!(r.completed(), Some("false"));
}

#[tokio::test]
async fn static_errored_is_merged_when_a_backend_failed() {
    let r = with_static("errored", true).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": 1, "s": "static"}));
    assert_eq!(r.completed(), Some("false"));
}

#[tokio::test]
async fn static_errored_is_not_merged_when_all_succeeded() {
    let r = with_static("errored", false).await;
    assert_eq!(r.json(), json!({"a": 1, "b": 2}));
}

#[tokio::test]
async fn static_incomplete_is_merged_when_a_backend_failed() {
    let r = with_static("incomplete", true).await;
    assert_eq!(r.json(), json!({"a": 1, "s": "static"}));
}

#[tokio::test]
async fn static_success_is_merged_when_all_succeeded() {
    let r = with_static("success", false).await;
    assert_eq!(r.json(), json!({"a": 1, "b": 2, "s": "static"}));
    assert_eq!(r.completed(), Some("true"));
}

#[tokio::test]
async fn static_success_is_not_merged_when_a_backend_failed() {
    let r = with_static("success", true).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"a": 1}));
}

#[tokio::test]
async fn static_complete_is_merged_when_all_succeeded() {
    let r = with_static("complete", false).await;
    assert_eq!(r.json(), json!({"a": 1, "b": 2, "s": "static"}));
}

#[tokio::test]
async fn static_complete_is_not_merged_when_a_backend_failed() {
    let r = with_static("complete", true).await;
    assert_eq!(r.json(), json!({"a": 1}));
}

#[tokio::test]
async fn static_data_makes_all_failed_request_a_200_not_completed() {
    let bad = json_backend(500, r#"{}"#).await;
    let gw = gw(endpoint(
        vec![be(&bad, json!({}))],
        json!({"staticResponse": {"strategy": "errored", "data": {"fallback": true}}}),
    ))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"fallback": true}));
    assert_eq!(r.completed(), Some("false"));
}

#[tokio::test]
async fn static_success_does_not_rescue_all_failed_request() {
    let bad = json_backend(500, r#"{}"#).await;
    let gw = gw(endpoint(
        vec![be(&bad, json!({}))],
        json!({"staticResponse": {"strategy": "success", "data": {"fallback": true}}}),
    ))
    .await;
    let r = get(&gw.url("/e")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "");
}
