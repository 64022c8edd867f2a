//! A YAML renderer shaped like Go's `gopkg.in/yaml.v3` `Marshal` (KrakenD's `yaml`
//! output).
//!
//! Rendering is linear in the size of the value, plus `n log n` key comparisons to order
//! each mapping: keys are prepared once per mapping (not per comparison), the sort moves
//! indices through one scratch buffer, and every scalar is written straight into the
//! output, looking at each string a fixed number of times.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Indentation step used by yaml.v3's encoder by default.
const YAML_INDENT: usize = 4;

/// Longest mapping key (bytes) written as a plain `key:`; longer ones become explicit
/// `? key` entries, as libyaml's and yaml.v3's emitters do.
const MAX_SIMPLE_KEY: usize = 128;

/// Renders a value like Go's `yaml.v3` `Marshal` (KrakenD's `yaml` output).
///
/// Block style, four-space indentation, sequences indented under their key,
/// mapping keys in yaml.v3's natural order, a trailing newline. Strings are
/// plain unless yaml.v3 would quote them; multi-line strings are written
/// double-quoted (yaml.v3 would use a `|-` literal block) because that form
/// has no indentation or chomping pitfalls.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_mapping(&mut out, m, 0, false),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0, false),
        other => {
            push_inline(&mut out, other);
            out.push('\n');
        }
    }
    out
}

/// yaml.v3 aligns nested blocks to the next multiple of the indent step.
fn next_block_indent(indent: usize) -> usize {
    YAML_INDENT * ((indent + YAML_INDENT) / YAML_INDENT)
}

fn push_indent(out: &mut String, mut indent: usize) {
    const SPACES: &str = "                                                                ";
    while indent > 0 {
        let n = indent.min(SPACES.len());
        out.push_str(&SPACES[..n]);
        indent -= n;
    }
}

/// Writes a non-empty mapping; `inline_first` means the first key follows a
/// `- ` already on the current line.
fn write_mapping(out: &mut String, map: &Map<String, Value>, indent: usize, inline_first: bool) {
    let entries: Vec<(&String, &Value)> = map.iter().collect();
    // Keys are split into characters once here, not twice per comparison; ASCII keys
    // (the usual case) are compared as bytes with no copy at all.
    let order = if map.keys().all(|k| k.is_ascii()) {
        let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_bytes()).collect();
        merge_sort_indices(&keys, |a, b| yaml_units_less(a, b))
    } else {
        let keys: Vec<Vec<char>> = entries.iter().map(|(k, _)| k.chars().collect()).collect();
        merge_sort_indices(&keys, |a, b| yaml_units_less(a, b))
    };
    for (i, &at) in order.iter().enumerate() {
        let (key, value) = entries[at];
        if i > 0 || !inline_first {
            push_indent(out, indent);
        }
        if key.len() > MAX_SIMPLE_KEY {
            // YAML caps implicit keys at 1024 characters; like yaml.v3, a key longer than
            // 128 bytes is written as an explicit `? key` entry, its value after `:` below.
            out.push_str("? ");
            push_string(out, key);
            out.push('\n');
            push_indent(out, indent);
        } else {
            push_string(out, key);
        }
        out.push(':');
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write_mapping(out, m, next_block_indent(indent), false);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_sequence(out, items, next_block_indent(indent), false);
            }
            other => {
                out.push(' ');
                push_inline(out, other);
                out.push('\n');
            }
        }
    }
}

fn write_sequence(out: &mut String, items: &[Value], indent: usize, inline_first: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline_first {
            push_indent(out, indent);
        }
        out.push_str("- ");
        // Content of an item only skips past the "- " indicator.
        match item {
            Value::Object(m) if !m.is_empty() => write_mapping(out, m, indent + 2, true),
            Value::Array(inner) if !inner.is_empty() => {
                write_sequence(out, inner, indent + 2, true)
            }
            other => {
                push_inline(out, other);
                out.push('\n');
            }
        }
    }
}

/// Scalars and empty collections, which yaml.v3 writes on one line.
#[cfg(test)]
fn yaml_inline(value: &Value) -> String {
    let mut out = String::new();
    push_inline(&mut out, value);
    out
}

/// Writes a scalar or an empty collection, which yaml.v3 writes on one line.
fn push_inline(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => push_number(out, n),
        Value::String(s) => push_string(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// Integers print as such; everything else goes through a float, printed
/// like Go's `strconv.FormatFloat(f, 'g', -1, 64)` (KrakenD decodes JSON
/// numbers as `json.Number`, which yaml.v3 emits that way).
fn push_number(out: &mut String, n: &Number) {
    // Writing into a String cannot fail.
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "{mantissa}e{sign}{:02}", exp.unsigned_abs());
    } else {
        let _ = write!(out, "{f}");
    }
}

/// yaml.v3's map key order: a natural sort where runs of digits compare
/// numerically and, at the first difference, non-letters sort first unless
/// the preceding character was a digit.
#[cfg(test)]
fn yaml_key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    yaml_units_less(&ar, &br)
}

/// [`yaml_key_less`] on keys split into characters, or into bytes when every key is
/// ASCII (a byte is then the character).
fn yaml_units_less<T: Copy + Into<char>>(ar: &[T], br: &[T]) -> bool {
    let at = |i: usize| -> Option<char> { ar.get(i).map(|&c| c.into()) };
    let bt = |i: usize| -> Option<char> { br.get(i).map(|&c| c.into()) };
    let mut digits = false;
    for i in 0..ar.len().min(br.len()) {
        let (ac, bc): (char, char) = (ar[i].into(), br[i].into());
        if ac == bc {
            digits = ac.is_ascii_digit();
            continue;
        }
        let (al, bl) = (ac.is_alphabetic(), bc.is_alphabetic());
        if al && bl {
            return ac < bc;
        }
        if al || bl {
            return if digits { al } else { bl };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ac == '0' || bc == '0' {
            // A zero continuing a non-zero number is an ordinary digit.
            if ar[..i]
                .iter()
                .rev()
                .map(|&c| c.into())
                .take_while(char::is_ascii_digit)
                .any(|c| c != '0')
            {
                an = 1;
                bn = 1;
            }
        }
        let mut ai = i;
        while let Some(d) = at(ai).and_then(|c| c.to_digit(10)) {
            an = an.wrapping_mul(10).wrapping_add(i64::from(d));
            ai += 1;
        }
        let mut bi = i;
        while let Some(d) = bt(bi).and_then(|c| c.to_digit(10)) {
            bn = bn.wrapping_mul(10).wrapping_add(i64::from(d));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ac < bc;
    }
    ar.len() < br.len()
}

/// The order of `items` by a stable top-down merge sort that tolerates comparators that
/// are not total orders (the standard sort may panic on those). It sorts indices with one
/// scratch buffer, so sorting allocates twice whatever the length.
fn merge_sort_indices<T>(items: &[T], less: impl Fn(&T, &T) -> bool) -> Vec<usize> {
    fn sort<T>(
        items: &[T],
        idx: &mut [usize],
        scratch: &mut [usize],
        less: &impl Fn(&T, &T) -> bool,
    ) {
        if idx.len() <= 1 {
            return;
        }
        let mid = idx.len() / 2;
        sort(items, &mut idx[..mid], &mut scratch[..mid], less);
        sort(items, &mut idx[mid..], &mut scratch[mid..], less);
        let (mut l, mut r) = (0, mid);
        for slot in scratch.iter_mut() {
            // Take from the right only when strictly less: equal keys keep their order.
            let take_right = l == mid || (r < idx.len() && less(&items[idx[r]], &items[idx[l]]));
            if take_right {
                *slot = idx[r];
                r += 1;
            } else {
                *slot = idx[l];
                l += 1;
            }
        }
        idx.copy_from_slice(scratch);
    }
    let mut idx: Vec<usize> = (0..items.len()).collect();
    let mut scratch = vec![0; items.len()];
    sort(items, &mut idx, &mut scratch, &less);
    idx
}

/// Quotes a string exactly when yaml.v3 would.
#[cfg(test)]
fn yaml_string(s: &str) -> String {
    let mut out = String::new();
    push_string(&mut out, s);
    out
}

/// Writes a string, quoted exactly when yaml.v3 would quote it.
fn push_string(out: &mut String, s: &str) {
    if s.contains('\n') || s.chars().any(|c| !yaml_printable(c)) || yaml_resolves_to_non_string(s) {
        push_double_quoted(out, s);
    } else if yaml_plain_allowed(s) {
        out.push_str(s);
    } else {
        out.push('\'');
        for c in s.chars() {
            if c == '\'' {
                out.push('\'');
            }
            out.push(c);
        }
        out.push('\'');
    }
}

/// libyaml's printable set; anything else forces double quotes.
fn yaml_printable(c: char) -> bool {
    matches!(c as u32, 0x0A | 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD) && c != '\u{FEFF}'
}

fn push_double_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{B}' => out.push_str("\\v"),
            '\u{C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1B}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            // Writing into a String cannot fail.
            c if yaml_printable(c) => out.push(c),
            c if (c as u32) <= 0xFF => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
}

/// libyaml's scalar analysis for block context: may `s` be written plain?
/// (Callers have already excluded line breaks and unprintable characters.)
fn yaml_plain_allowed(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if first == ' ' || s.ends_with(' ') {
        return false;
    }
    let mut prev: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let followed_by_blank = chars.peek().is_none_or(|n| matches!(n, ' ' | '\t'));
        let indicator = match prev {
            None => match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => true,
                '?' | ':' | '-' => followed_by_blank,
                _ => false,
            },
            Some(p) => match c {
                ':' => followed_by_blank,
                '#' => matches!(p, ' ' | '\t'),
                _ => false,
            },
        };
        if indicator {
            return false;
        }
        prev = Some(c);
    }
    true
}

/// Would yaml.v3 resolve this plain scalar to something other than a
/// string (null, bool incl. YAML 1.1 spellings, int, float, timestamp,
/// sexagesimal number, merge key)?
fn yaml_resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "y",
        "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let Some(first) = s.chars().next() else {
        return true;
    };
    if first == '.' {
        return is_yaml_float(s);
    }
    if !(first.is_ascii_digit() || first == '+' || first == '-') {
        return false;
    }
    if is_timestamp(s) || is_base60(s) {
        return true;
    }
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    is_go_int(&plain) || is_yaml_float(&plain)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseInt(s, 0, 64)` syntax (range aside: out-of-range
/// decimal numbers still resolve as floats).
fn is_go_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (digits, radix) = match body.get(..2) {
        Some("0x" | "0X") => (&body[2..], 16),
        Some("0o" | "0O") => (&body[2..], 8),
        Some("0b" | "0B") => (&body[2..], 2),
        _ => (body, 10),
    };
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$` (YAML 1.1
/// sexagesimal numbers, which yaml.v3 quotes for compatibility).
fn is_base60(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = body.split_once('.').unwrap_or((body, ""));
    if !frac.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return false;
    }
    let mut parts = main.split(':');
    let head = parts.next().unwrap_or("");
    if !head.starts_with(|c: char| c.is_ascii_digit())
        || !head.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return false;
    }
    let mut count = 0;
    for part in parts {
        count += 1;
        let ok = match part.as_bytes() {
            [d] => d.is_ascii_digit(),
            [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    count > 0
}

/// The timestamp layouts yaml.v3 tries: `2006-1-2`, `2006-1-2 15:4:5.999`
/// and `2006-1-2T15:4:5.999Z07:00` (also with a lower-case `t`).
fn is_timestamp(s: &str) -> bool {
    parse_timestamp(s.as_bytes()) == Some(true)
}

/// `Some(true)` when `b` is a complete timestamp in one of yaml.v3's layouts.
fn parse_timestamp(b: &[u8]) -> Option<bool> {
    fn number(b: &[u8], i: &mut usize, min: usize, max: usize) -> Option<u32> {
        let start = *i;
        while *i - start < max && b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        if *i - start < min {
            return None;
        }
        std::str::from_utf8(b.get(start..*i)?).ok()?.parse().ok()
    }
    let mut i = 0;
    number(b, &mut i, 4, 4)?;
    (b.get(i) == Some(&b'-')).then_some(())?;
    i += 1;
    let month = number(b, &mut i, 1, 2)?;
    (b.get(i) == Some(&b'-')).then_some(())?;
    i += 1;
    let day = number(b, &mut i, 1, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let Some(&sep) = b.get(i) else {
        return Some(true);
    };
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    i += 1;
    let hour = number(b, &mut i, 1, 2)?;
    (b.get(i) == Some(&b':')).then_some(())?;
    i += 1;
    let minute = number(b, &mut i, 1, 2)?;
    (b.get(i) == Some(&b':')).then_some(())?;
    i += 1;
    let second = number(b, &mut i, 1, 2)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        number(b, &mut i, 1, 9)?;
    }
    if sep == b' ' {
        return Some(i == b.len());
    }
    match b.get(i) {
        Some(b'Z') => Some(i + 1 == b.len()),
        Some(b'+' | b'-') => {
            i += 1;
            number(b, &mut i, 2, 2)?;
            (b.get(i) == Some(&b':')).then_some(())?;
            i += 1;
            number(b, &mut i, 2, 2)?;
            Some(i == b.len())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
