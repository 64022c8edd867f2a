use crate::support::*;

#[tokio::test]
async fn aggregates_two_backends() {
    let a = json_backend(200, r#"{"a":1,"shared":"a"}"#).await;
    let b = json_backend(200, r#"{"b":2,"shared":"b"}"#).await;
    let gw = gateway(&format!(
        "endpoints:\n- path: /x\n  backends:\n  - hosts: [{}]\n    urlPattern: /a\n  - hosts: [{}]\n    urlPattern: /b\n",
        a.url(),
        b.url()
    ))
    .await;
    let r = get(&gw.url("/x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.completed(), Some("true"));
    let v = r.json();
    assert_eq!((v["a"].as_i64(), v["b"].as_i64()), (Some(1), Some(2)));
}
