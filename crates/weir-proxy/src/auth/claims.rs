//! Reading claims of a validated token: a dot path walks nested objects (`realm_access.roles`),
//! and a claim whose own name is the whole text (`https://example.com/roles`) wins over the
//! path. Values become text the way KrakenD propagates them: strings as they are, arrays
//! joined by commas, objects as JSON.

use std::borrow::Cow;

use serde_json::{Map, Value};

use weir_model::ClaimPath;

/// The claims of a validated token.
pub type Claims = Map<String, Value>;

/// The value at `path`, if any (`null` counts as missing).
pub fn lookup<'a>(claims: &'a Claims, path: &ClaimPath) -> Option<&'a Value> {
    let found = match claims.get(&path.raw) {
        Some(v) => Some(v),
        None if path.steps.len() > 1 => crate::plan::url::lookup(claims, &path.steps),
        None => None,
    };
    found.filter(|v| !v.is_null())
}

/// A claim value as text: strings as they are, arrays joined by commas, objects as JSON.
pub fn text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(items) => {
            let parts: Vec<Cow<'_, str>> = items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Cow::Borrowed(s.as_str()),
                    other => Cow::Owned(other.to_string()),
                })
                .collect();
            Cow::Owned(parts.join(","))
        }
        other => Cow::Owned(other.to_string()),
    }
}

/// The strings a roles or scopes claim holds: an array of strings, or one string split on
/// spaces (the OAuth `scope` form).
pub fn words(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => s.split(' ').filter(|w| !w.is_empty()).collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn dot_paths_and_literal_names() {
        let c = claims(json!({
            "realm_access": {"roles": ["a", "b"]},
            "https://example.com/roles": ["x"],
            "n": null,
        }));
        let p = |s: &str| ClaimPath::parse(s).unwrap();
        assert_eq!(
            lookup(&c, &p("realm_access.roles")),
            Some(&json!(["a", "b"]))
        );
        assert_eq!(
            lookup(&c, &p("https://example.com/roles")),
            Some(&json!(["x"]))
        );
        assert_eq!(lookup(&c, &p("realm_access.missing")), None);
        assert_eq!(lookup(&c, &p("n")), None);
    }

    #[test]
    fn values_as_text() {
        assert_eq!(text(&json!("a b")), "a b");
        assert_eq!(text(&json!(["a", 2, true])), "a,2,true");
        assert_eq!(text(&json!({"k": 1})), r#"{"k":1}"#);
        assert_eq!(text(&json!(42)), "42");
        assert_eq!(words(&json!("read  write")), ["read", "write"]);
        assert_eq!(words(&json!(["read", 1, "write"])), ["read", "write"]);
        assert!(words(&json!(7)).is_empty());
    }
}
