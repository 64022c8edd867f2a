//! Helpers shared by the fuzz targets: JSON values, keys and dot paths built from the fuzzer's
//! bytes with `arbitrary`, and the path normalisation a decoding backend (nginx) applies.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};

/// Strings that mean something to YAML, XML, URLs or the transforms: mixed in so the fuzzer
/// reaches the interesting branches without having to guess them byte by byte.
const TRICKY: &[&str] = &[
    "",
    " ",
    "a",
    "b",
    "0",
    "1",
    "*",
    ".",
    "..",
    "/",
    "\\",
    "%2F",
    "%2e%2e",
    "a.b",
    "-a",
    "#text",
    "true",
    "false",
    "null",
    "~",
    "yes",
    "no",
    "on",
    "off",
    "0x10",
    "0o7",
    "1e3",
    ".inf",
    ".nan",
    "-",
    "- a",
    "a: b",
    ":",
    "#",
    "x #y",
    "'",
    "\"",
    "&",
    "<",
    ">",
    "]]>",
    "\n",
    "\r\n",
    "\t",
    "---",
    "...",
    "@",
    "`",
    "%",
    "!tag",
    "{a}",
    "[]",
    "{}",
    "\u{0}",
    "\u{85}",
    "\u{2028}",
    "\u{FEFF}",
    "\u{FFFE}",
    "😀",
    "é",
    "12:30",
    "2024-01-02",
    "+1",
    "-0",
    "0.5",
    "1_000",
];

/// A string: often one of [`TRICKY`], sometimes a concatenation, otherwise arbitrary.
pub fn string(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 | 1 => (*u.choose(TRICKY)?).to_string(),
        2 => {
            let a = *u.choose(TRICKY)?;
            let b = *u.choose(TRICKY)?;
            format!("{a}{b}")
        }
        _ => u.arbitrary::<String>()?,
    })
}

/// A key from a small alphabet (so dot paths built from the same alphabet find it), or any
/// string.
pub fn key(u: &mut Unstructured<'_>) -> Result<String> {
    const KEYS: &[&str] = &["a", "b", "c", "0", "1", "*", "", "a.b", "-a", "#text"];
    Ok(if u.ratio(3u8, 4u8)? {
        (*u.choose(KEYS)?).to_string()
    } else {
        string(u)?
    })
}

/// A dot path (`a.b.*.0`) over the [`key`] alphabet.
pub fn dot_path(u: &mut Unstructured<'_>) -> Result<String> {
    let n = u.int_in_range(1u8..=4)?;
    let mut segments = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        segments.push(key(u)?);
    }
    Ok(segments.join("."))
}

/// A finite JSON number: an integer (signed or unsigned) or a float.
pub fn number(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => Value::Number(Number::from(u.arbitrary::<i64>()?)),
        1 => Value::Number(Number::from(u.arbitrary::<u64>()?)),
        _ => Number::from_f64(u.arbitrary::<f64>()?)
            .map(Value::Number)
            .unwrap_or(Value::Null),
    })
}

/// Any JSON value, at most `depth` containers deep.
pub fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let top = if depth == 0 { 3 } else { 5 };
    Ok(match u.int_in_range(0u8..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => number(u)?,
        3 => Value::String(string(u)?),
        4 => {
            let n = u.int_in_range(0u8..=6)?;
            let mut items = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                items.push(value(u, depth - 1)?);
            }
            Value::Array(items)
        }
        _ => Value::Object(object(u, depth - 1)?),
    })
}

/// A JSON object whose values are at most `depth` containers deep.
pub fn object(u: &mut Unstructured<'_>, depth: u32) -> Result<Map<String, Value>> {
    let n = u.int_in_range(0u8..=6)?;
    let mut m = Map::new();
    for _ in 0..n {
        let k = key(u)?;
        let v = value(u, depth)?;
        m.insert(k, v);
    }
    Ok(m)
}

/// The segments of a URL path as a backend that decodes and normalises paths sees them:
/// percent-decoded once, NUL ending the path (C strings), `/` and `\` both separators, empty
/// segments merged (nginx `merge_slashes`), `.` dropped and `..` removing the segment
/// before it (nginx answers 400 above the root; here it stays at the root, which can only
/// make the prefix check stricter).
pub fn normalised_segments(path: &str) -> Vec<String> {
    let decoded = percent_encoding::percent_decode_str(path).collect::<Vec<u8>>();
    let decoded = match decoded.iter().position(|&b| b == 0) {
        Some(nul) => &decoded[..nul],
        None => &decoded[..],
    };
    let text = String::from_utf8_lossy(decoded);
    let mut out: Vec<String> = Vec::new();
    for segment in text.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
    out
}
