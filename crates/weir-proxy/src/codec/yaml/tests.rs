use super::*;
use serde_json::json;
use std::cmp::Ordering;

fn yaml_key_order(a: &str, b: &str) -> Ordering {
    if yaml_key_less(a, b) {
        Ordering::Less
    } else if yaml_key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn user() -> Value {
    json!({"user": {"-type": "admin", "name": "Elliot", "social": {
        "facebook": "https://facebook.com",
        "twitter": "https://twitter.com",
        "youtube": "https://youtube.com"}}})
}

#[test]
fn yaml_matches_yaml_v3_layout() {
    assert_eq!(
        to_yaml(&user()),
        "user:\n    -type: admin\n    name: Elliot\n    social:\n        facebook: https://facebook.com\n        twitter: https://twitter.com\n        youtube: https://youtube.com\n"
    );
    assert_eq!(
        to_yaml(&json!({"a": [{"x": 1, "z": 2}, 3]})),
        "a:\n    - x: 1\n      z: 2\n    - 3\n"
    );
    // yaml.v3 double-quotes YAML 1.1 booleans such as `y`, keys included.
    assert_eq!(
        to_yaml(&json!({"a": [{"x": 1, "y": 2}, 3]})),
        "a:\n    - x: 1\n      \"y\": 2\n    - 3\n"
    );
    assert_eq!(
        to_yaml(&json!([[1, 2], {"k": {"m": [true]}}, {}, [], null])),
        "- - 1\n  - 2\n- k:\n    m:\n        - true\n- {}\n- []\n- null\n"
    );
    assert_eq!(
        to_yaml(&json!({"a": {"b": [{"c": {"d": 1}, "e": ["f"]}]}})),
        "a:\n    b:\n        - c:\n            d: 1\n          e:\n            - f\n"
    );
    assert_eq!(to_yaml(&json!({})), "{}\n");
    assert_eq!(to_yaml(&json!([])), "[]\n");
    assert_eq!(to_yaml(&Value::Null), "null\n");
    assert_eq!(to_yaml(&json!("x")), "x\n");
}

#[test]
fn yaml_quotes_like_yaml_v3() {
    let cases = [
        ("", "\"\""),
        ("true", "\"true\""),
        ("null", "\"null\""),
        ("yes", "\"yes\""),
        ("Off", "\"Off\""),
        ("123", "\"123\""),
        ("1.5", "\"1.5\""),
        ("-1e3", "\"-1e3\""),
        ("0x1F", "\"0x1F\""),
        ("1_000", "\"1_000\""),
        (".5", "\".5\""),
        ("1:20", "\"1:20\""),
        ("2024-01-02", "\"2024-01-02\""),
        ("2024-01-02T10:00:00Z", "\"2024-01-02T10:00:00Z\""),
        ("2024-01-02 is a date", "2024-01-02 is a date"),
        ("<<", "\"<<\""),
        ("~", "\"~\""),
        ("-type", "-type"),
        ("- a", "'- a'"),
        ("-", "'-'"),
        (":x", ":x"),
        ("a: b", "'a: b'"),
        ("a:", "'a:'"),
        ("a #b", "'a #b'"),
        ("a#b", "a#b"),
        ("#x", "'#x'"),
        ("@x", "'@x'"),
        ("it's", "it's"),
        ("'q", "'''q'"),
        (" lead", "' lead'"),
        ("trail ", "'trail '"),
        ("---", "'---'"),
        ("a\nb", "\"a\\nb\""),
        ("tab\there", "\"tab\\there\""),
        ("emoji 😀", "\"emoji \\U0001F600\""),
        ("héllo", "héllo"),
        ("https://x.y/z?a=1", "https://x.y/z?a=1"),
        ("1.2.3", "1.2.3"),
        ("+", "+"),
    ];
    for (input, want) in cases {
        assert_eq!(yaml_string(input), want, "input {input:?}");
    }
}

#[test]
fn yaml_numbers_follow_go_formatting() {
    let cases = [
        (json!(42), "42"),
        (json!(-7), "-7"),
        (json!(1.5), "1.5"),
        (json!(3.0), "3"),
        (json!(1500000.0), "1.5e+06"),
        (json!(0.0001), "0.0001"),
        (json!(0.00001), "1e-05"),
        (json!(123456.0), "123456"),
        (json!(u64::MAX), "1.8446744073709552e+19"),
    ];
    for (input, want) in cases {
        assert_eq!(yaml_inline(&input), want);
    }
}

#[test]
fn yaml_keys_use_natural_order() {
    let data = json!({"a10": 1, "a2": 2, "b": 3, "B": 4, "_x": 5, "{": 6, "1": 7, "10": 8, "9": 9});
    assert_eq!(
        to_yaml(&data),
        "_x: 5\n'{': 6\n\"1\": 7\n\"9\": 9\n\"10\": 8\nB: 4\na2: 2\na10: 1\nb: 3\n"
    );
    assert_eq!(yaml_key_order("a01", "a1"), Ordering::Greater);
    assert_eq!(yaml_key_order("x", "x"), Ordering::Equal);
}

#[test]
fn yaml_round_trips_through_a_yaml_parser() {
    let samples = [
        user(),
        json!({"a": [{"x": 1, "y": 2}, 3]}),
        json!({"s": ["", "true", "- a", "a: b", "x #y", " pad ", "multi\nline\n", "tab\t",
            "q'\"\\", "😀", "2024-01-02", "1:20", "0x10", "null", "~", "@", "`", "%", "-"],
            "n": {"deep": {"er": [[1, [2, {}]], [], {"k": null}]}},
            "weird keys": {"": 1, "a: b": 2, "- x": 3, "123": 4, "true": 5, "#": 6},
            "f": 1.5, "b": false}),
        json!([{"a": [{"b": [1]}]}]),
    ];
    for sample in samples {
        let text = to_yaml(&sample);
        let parsed: Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
        assert_eq!(parsed, sample, "\n{text}");
    }
}

/// Found by the `codec_yaml` fuzz target (fuzz/regressions/codec_yaml/): a key longer than
/// 1024 characters was written as an implicit key, which YAML forbids, so no YAML parser
/// could read the answer.
#[test]
fn long_keys_are_explicit_and_read_back() {
    let long = "k".repeat(1100);
    let sample = json!({
        long.clone(): {"a": 1, long.clone(): [1, {long.clone(): "v"}]},
        "short": 1,
        "x".repeat(129): "", "y".repeat(128): null,
    });
    let text = to_yaml(&sample);
    assert!(
        text.starts_with(&format!("? {long}\n:\n    a: 1\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\n{}: null\n", "y".repeat(128))),
        "{text}"
    );
    assert!(
        text.contains(&format!("? {}\n: \"\"\n", "x".repeat(129))),
        "{text}"
    );
    let parsed: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed, sample, "\n{text}");
    // The same below a sequence item (`- ? key`).
    let sample = json!([{long.clone(): 1, "b": 2}]);
    let text = to_yaml(&sample);
    let parsed: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed, sample, "\n{text}");
}

#[test]
fn renders_100k_keys_in_natural_order() {
    let n = 100_000;
    let mut m = Map::new();
    for i in (0..n).rev() {
        m.insert(format!("k{i}"), json!(i));
    }
    let text = to_yaml(&Value::Object(m));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), n);
    assert_eq!(&lines[..3], ["k0: 0", "k1: 1", "k2: 2"]);
    assert_eq!(lines[10], "k10: 10");
    assert_eq!(lines[n - 1], format!("k{}: {}", n - 1, n - 1));
}

#[test]
fn non_ascii_keys_sort_like_ascii_ones() {
    // Maps with a non-ASCII key compare characters, the others bytes: one order.
    let keys = ["a10", "a2", "b", "B", "_x", "1", "10", "9", "é1", "e2", "Ω"];
    let mut m = Map::new();
    for k in keys {
        m.insert(k.to_string(), json!(0));
    }
    let text = to_yaml(&Value::Object(m));
    let got: Vec<&str> = text.lines().map(|l| l.trim_end_matches(": 0")).collect();
    let mut want: Vec<String> = keys.iter().map(|k| yaml_string(k)).collect();
    want.sort_by(|a, b| {
        let (a, b) = (a.trim_matches('"'), b.trim_matches('"'));
        yaml_key_order(a, b)
    });
    assert_eq!(got, want);
    let ascii = json!({"a10": 1, "a2": 2, "b": 3});
    assert_eq!(to_yaml(&ascii), "a2: 2\na10: 1\nb: 3\n");
}
