use serde::Deserialize;

use super::*;
use crate::yaml;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Root {
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    items: Vec<Item>,
    #[serde(default)]
    loose: Option<Loose>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Item {
    path: String,
    url_pattern: String,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    method: Option<Method>,
    #[serde(default)]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Loose {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    Get,
    Post,
}

fn found(text: &str) -> Vec<String> {
    let tree: Node = yaml::from_str(text, 0).expect("a tree");
    problems::<Root>(&tree)
        .into_iter()
        .map(|f| {
            let at =
                f.at.map(|a| format!("{}:{}", a.line, a.column))
                    .unwrap_or_default();
            format!("{at} {}: {}", f.field, f.message)
        })
        .collect()
}

#[test]
fn lists_every_problem_once_with_its_place() {
    let text = "port: 99999
items:
  - path: /a
    urlPatern: /x
    timout: 1s
  - urlPattern: /y
    method: GETT
    enabled: yes
loose:
  name: fine
  other: ignored
";
    assert_eq!(
        found(text),
        [
            "1:7 port: expected a whole number from 0 to 65535, found the number 99999",
            "3:5 items[0]: missing field `urlPattern`",
            "4:5 items[0].urlPatern: unknown field; did you mean `urlPattern`?",
            "5:5 items[0].timout: unknown field; did you mean `timeout`?",
            "6:5 items[1]: missing field `path`",
            "7:13 items[1].method: unknown value `GETT`; did you mean `GET`? (one of GET, POST)",
            "8:14 items[1].enabled: expected true or false, found the string \"yes\"",
        ]
    );
}

#[test]
fn wrong_shapes_are_named() {
    assert_eq!(
        found("items: {path: /a}\nport: [1]\n"),
        [
            "1:8 items: expected a list, found a mapping",
            "2:7 port: expected a whole number from 0 to 65535, found a list",
        ]
    );
    assert_eq!(found("- a\n"), ["1:1 : expected a mapping, found a list"]);
}

#[test]
fn a_valid_tree_has_no_problems() {
    assert!(found("items:\n  - path: /a\n    urlPattern: /b\n").is_empty());
}

#[test]
fn suggestions_need_a_close_name() {
    assert_eq!(
        did_you_mean("timout", &["timeout", "path"]),
        Some("timeout")
    );
    assert_eq!(
        did_you_mean("url_pattern", &["urlPattern"]),
        Some("urlPattern")
    );
    assert_eq!(
        did_you_mean(
            "qos/circuit-braker",
            &["qos/circuit-breaker", "qos/ratelimit/router"]
        ),
        Some("qos/circuit-breaker")
    );
    assert_eq!(did_you_mean("color", &["timeout", "path"]), None);
    assert_eq!(
        did_you_mean("qos/ratelimit/service", &["qos/ratelimit/router"]),
        None
    );
}

#[test]
fn deep_trees_fit_the_stack() {
    // As deep as the parser lets through, on a test thread's 2 MiB stack in a debug build.
    let deep = format!(
        "items: [{{path: /a, urlPattern: /b, timeout: {}1{}}}]",
        "[".repeat(60),
        "]".repeat(60)
    );
    assert_eq!(
        yaml_problems::<Root>(&deep)
            .expect("a thread")
            .expect("a tree")
            .len(),
        1
    );
}
