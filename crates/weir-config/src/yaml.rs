//! The one place configuration YAML is parsed and printed: serde-saphyr (pure Rust, no
//! panics on malformed input, line/column in every error, budgets enforced while parsing).
//!
//! Scalars follow YAML 1.2's core schema as `serde_yaml` did: `on`, `yes`, `no` and `off` are
//! strings, `010` and `1_000` stay text in untyped values (`staticResponse.data`).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_saphyr::{MessageFormatter, UserMessageFormatter};

/// Deepest nesting of mappings and sequences a YAML configuration document may have: a
/// generous bound for real configurations (an endpoint's deepest fields sit 8 levels
/// down), so a hostile file is refused at once instead of exhausting the stack or the
/// CPU. (JSON files are held to the JSON parser's own limit, 128.)
pub const MAX_DEPTH: usize = 64;

/// Where in a file a problem is: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line in the file.
    pub line: u64,
    /// 1-based column (characters).
    pub column: u64,
}

impl Position {
    /// This position moved down by `lines` (a document's place in its file).
    pub(crate) fn below(self, lines: usize) -> Self {
        Self {
            line: self.line + lines as u64,
            column: self.column,
        }
    }
}

/// Parser options: YAML 1.2 scalars, duplicate keys refused, and budgets. `nested` is
/// how deep the text sits in its document (an `endpoints:` item parsed on its own sits
/// one level below the root), so a piece parsed alone is held to the same limit.
pub(crate) fn options(len: usize, nested: usize) -> serde_saphyr::Options {
    // Node and event counts are bounded by the input size anyway; the defaults (250,000
    // nodes) would refuse a legitimate 10,000-endpoint file, so they scale with it.
    let max_nodes = len.saturating_mul(2).max(250_000);
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH.saturating_sub(nested).max(1),
            max_nodes: max_nodes,
            max_events: max_nodes.saturating_mul(2),
        },
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        with_snippet: false,
    }
}

/// Parses one YAML document into `T`.
pub(crate) fn from_str<T: DeserializeOwned>(
    text: &str,
    nested: usize,
) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, options(text.len(), nested))
}

/// The position of a parser error, if it has one.
pub(crate) fn position(err: &serde_saphyr::Error) -> Option<Position> {
    err.location().filter(|l| l.line() > 0).map(|l| Position {
        line: l.line(),
        column: l.column(),
    })
}

/// A parser error in words for users, without the position (reported beside it).
pub(crate) fn message(err: &serde_saphyr::Error) -> String {
    let text = UserMessageFormatter.format_message(err.without_snippet());
    if text.contains("Depth") || text.contains("recursion limit") {
        return format!(
            "nested deeper than {MAX_DEPTH} levels; configuration files are refused past that depth"
        );
    }
    text.into_owned()
}

/// Renders `value` as a YAML document (block style, two-space indent).
pub fn to_string<T: Serialize>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_1_booleans_are_strings() {
        let v: serde_json::Value = from_str("[on, yes, no, off, 010, 1_000, true]", 0).unwrap();
        assert_eq!(
            v,
            serde_json::json!(["on", "yes", "no", "off", "010", "1_000", true])
        );
        assert!(from_str::<bool>("yes", 0).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_with_a_position() {
        for text in [
            "[".repeat(100_000),
            "- ".repeat(100_000),
            format!("a: {}", "{b: ".repeat(100_000)),
        ] {
            let err = from_str::<serde_json::Value>(&text, 0).unwrap_err();
            assert!(message(&err).contains("nested deeper than 64"), "{err}");
            assert!(position(&err).is_some(), "{err}");
        }
        let ok = format!("{}1{}", "[".repeat(60), "]".repeat(60));
        assert!(from_str::<serde_json::Value>(&ok, 0).is_ok());
    }

    #[test]
    fn errors_carry_line_and_column() {
        let err = from_str::<serde_json::Value>("a: 1\nb: [1, 2\n", 0).unwrap_err();
        assert_eq!(
            position(&err),
            Some(Position { line: 2, column: 4 }),
            "{err}"
        );
        assert!(message(&err).contains("unclosed bracket"), "{err}");
    }
}
