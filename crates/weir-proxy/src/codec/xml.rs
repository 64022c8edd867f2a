//! XML ⇄ JSON-like tree conversion with KrakenD (mxj) conventions, plus a
//! YAML renderer shaped like Go's `gopkg.in/yaml.v3`.
//!
//! Tree conventions (mxj without casting):
//! * the document becomes `{rootName: tree}`;
//! * an element holding only text becomes a string (an empty element `""`);
//! * attributes become `"-name"` keys with string values;
//! * text of an element that also has attributes or children goes under
//!   `"#text"`; text is trimmed of XML whitespace, as mxj does;
//! * repeated child names become arrays in document order;
//! * namespace prefixes are dropped (local names only).
//!
//! When writing XML, keys that are not valid XML names are sanitised: every
//! character that may not appear in a name (including `:`) becomes `_`, a
//! name starting with a character that may only appear later (a digit, `-`
//! or `.`) is prefixed with `_`, and an empty name becomes `_`.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::{Map, Number, Value};

/// Deepest element nesting accepted by [`xml_to_map`].
const MAX_DEPTH: usize = 128;

/// Root element used by [`map_to_xml`] when the map has no single root.
const DEFAULT_ROOT: &str = "doc";

/// Errors produced while turning XML into a tree.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// The input is not well-formed XML.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// The input holds no element at all.
    #[error("XML document has no root element")]
    NoRoot,
    /// Something other than whitespace, comments or processing instructions
    /// appears outside the root element.
    #[error("XML document has content outside its root element")]
    ContentOutsideRoot,
    /// The input ended before every element was closed.
    #[error("XML document ends inside element <{0}>")]
    Unclosed(String),
    /// The document declares entities, which are refused to rule out
    /// entity-expansion attacks (XXE, billion laughs).
    #[error("XML DOCTYPE with entity declarations is not allowed")]
    EntityDeclaration,
    /// An entity reference other than the five predefined ones.
    #[error("unknown XML entity reference &{0};")]
    UnknownEntity(String),
    /// Elements nest deeper than the supported limit.
    #[error("XML nesting deeper than {MAX_DEPTH} elements")]
    TooDeep,
}

impl From<quick_xml::Error> for XmlError {
    fn from(e: quick_xml::Error) -> Self {
        XmlError::Malformed(e.to_string())
    }
}

impl From<quick_xml::encoding::EncodingError> for XmlError {
    fn from(e: quick_xml::encoding::EncodingError) -> Self {
        XmlError::Malformed(e.to_string())
    }
}

impl From<quick_xml::events::attributes::AttrError> for XmlError {
    fn from(e: quick_xml::events::attributes::AttrError) -> Self {
        XmlError::Malformed(e.to_string())
    }
}

/// An element being built.
struct Frame {
    name: String,
    /// Attributes (`-name`) and children, in the shape of the final object.
    fields: Map<String, Value>,
    text: String,
}

impl Frame {
    fn open(start: &BytesStart<'_>, reader: &Reader<&[u8]>) -> Result<Self, XmlError> {
        let decoder = reader.decoder();
        let local = start.local_name();
        let name = decoder.decode(local.as_ref())?.into_owned();
        let mut fields = Map::new();
        for attr in start.attributes() {
            let attr = attr?;
            let local = attr.key.local_name();
            let key = decoder.decode(local.as_ref())?;
            let value = attr.decode_and_unescape_value(decoder)?;
            fields.insert(format!("-{key}"), Value::String(value.into_owned()));
        }
        Ok(Frame {
            name,
            fields,
            text: String::new(),
        })
    }

    fn close(self) -> (String, Value) {
        let text = self
            .text
            .trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        if self.fields.is_empty() {
            return (self.name, Value::String(text.to_string()));
        }
        let mut fields = self.fields;
        if !text.is_empty() {
            fields.insert("#text".to_string(), Value::String(text.to_string()));
        }
        (self.name, Value::Object(fields))
    }
}

fn add_child(fields: &mut Map<String, Value>, name: String, value: Value) {
    match fields.get_mut(&name) {
        // Element values are never arrays themselves, so an array here can
        // only come from an earlier repetition of the same name.
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = std::mem::take(existing);
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            fields.insert(name, value);
        }
    }
}

fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

/// Parses an XML document into `{rootName: tree}` (mxj `NewMapXml`, no
/// value casting: every leaf is a string).
pub fn xml_to_map(bytes: &[u8]) -> Result<Map<String, Value>, XmlError> {
    let mut reader = Reader::from_reader(bytes);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    loop {
        let event = reader.read_event()?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::ContentOutsideRoot);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(Frame::open(&start, &reader)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(XmlError::ContentOutsideRoot);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let (name, value) = Frame::open(&start, &reader)?.close();
                match stack.last_mut() {
                    Some(parent) => add_child(&mut parent.fields, name, value),
                    None => root = Some((name, value)),
                }
            }
            Event::End(_) => {
                // quick-xml already verified the end tag matches.
                let Some(frame) = stack.pop() else {
                    return Err(XmlError::Malformed("unexpected end tag".into()));
                };
                let (name, value) = frame.close();
                match stack.last_mut() {
                    Some(parent) => add_child(&mut parent.fields, name, value),
                    None => root = Some((name, value)),
                }
            }
            Event::Text(text) => {
                let content = text.xml10_content()?;
                match stack.last_mut() {
                    Some(frame) => frame.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(XmlError::ContentOutsideRoot),
                }
            }
            Event::CData(data) => {
                let content = data.xml10_content()?;
                match stack.last_mut() {
                    Some(frame) => frame.text.push_str(&content),
                    None => return Err(XmlError::ContentOutsideRoot),
                }
            }
            Event::GeneralRef(reference) => {
                let ch = match reference.resolve_char_ref()? {
                    Some(ch) => ch,
                    None => {
                        let name = reference.decode()?;
                        predefined_entity(&name)
                            .ok_or_else(|| XmlError::UnknownEntity(name.into_owned()))?
                    }
                };
                match stack.last_mut() {
                    Some(frame) => frame.text.push(ch),
                    None => return Err(XmlError::ContentOutsideRoot),
                }
            }
            Event::DocType(doctype) => {
                if doctype.windows(8).any(|w| w == b"<!ENTITY") {
                    return Err(XmlError::EntityDeclaration);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if let Some(open) = stack.pop() {
        return Err(XmlError::Unclosed(open.name));
    }
    let (name, value) = root.ok_or(XmlError::NoRoot)?;
    let mut out = Map::new();
    out.insert(name, value);
    Ok(out)
}

/// Serialises a tree to XML (mxj `Map.Xml()`), without declaration or
/// whitespace.
///
/// A map with exactly one key whose value is an object uses that key as the
/// root element; anything else is wrapped in `<doc>`, so the output always
/// has a single root. Children follow key order. `"-x"` keys holding a
/// string, number, bool or null become attributes (null as `""`), other
/// `"-x"` values become elements; a scalar `"#text"` becomes text content.
/// Arrays repeat the element per item (nested arrays flatten); null, empty
/// strings and empty objects give `<k/>`; empty arrays give nothing.
pub fn map_to_xml(data: &Map<String, Value>) -> String {
    let mut out = String::new();
    if data.len() == 1 {
        if let Some((name, Value::Object(inner))) = data.iter().next() {
            write_object_element(&mut out, name, inner);
            return out;
        }
    }
    write_object_element(&mut out, DEFAULT_ROOT, data);
    out
}

fn write_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                write_element(out, name, item);
            }
        }
        Value::Object(fields) => write_object_element(out, name, fields),
        Value::Null => empty_element(out, name),
        Value::String(s) if s.is_empty() => empty_element(out, name),
        Value::String(s) => text_element(out, name, s),
        Value::Number(n) => text_element(out, name, &n.to_string()),
        Value::Bool(b) => text_element(out, name, if *b { "true" } else { "false" }),
    }
}

fn empty_element(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(&xml_name(name));
    out.push_str("/>");
}

fn text_element(out: &mut String, name: &str, text: &str) {
    let tag = xml_name(name);
    out.push('<');
    out.push_str(&tag);
    out.push('>');
    escape_into(out, text, false);
    out.push_str("</");
    out.push_str(&tag);
    out.push('>');
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

fn write_object_element(out: &mut String, name: &str, fields: &Map<String, Value>) {
    let tag = xml_name(name);
    out.push('<');
    out.push_str(&tag);
    let mut text = String::new();
    let mut children = Vec::new();
    // Sanitising can map two keys onto one attribute name; a repeated
    // attribute would make the document ill-formed, so the first one wins.
    let mut seen_attrs: Vec<Cow<'_, str>> = Vec::new();
    for (key, value) in fields {
        if key == "#text" {
            if let Some(t) = scalar_text(value) {
                text = t;
                continue;
            }
        }
        if let Some(attr) = key.strip_prefix('-').filter(|a| !a.is_empty()) {
            if let Some(v) = scalar_text(value) {
                let attr_name = xml_name(attr);
                if !seen_attrs.contains(&attr_name) {
                    out.push(' ');
                    out.push_str(&attr_name);
                    out.push_str("=\"");
                    escape_into(out, &v, true);
                    out.push('"');
                    seen_attrs.push(attr_name);
                }
                continue;
            }
        }
        children.push((key, value));
    }
    if text.is_empty() && children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    escape_into(out, &text, false);
    for (key, value) in children {
        write_element(out, key, value);
    }
    out.push_str("</");
    out.push_str(&tag);
    out.push('>');
}

/// Escapes markup characters; characters XML 1.0 cannot carry at all become
/// U+FFFD so the output stays well-formed.
fn escape_into(out: &mut String, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // A raw CR would be normalised away by the reader.
            '\r' => out.push_str("&#xD;"),
            // Attribute-value normalisation would turn these into spaces.
            '\n' if attribute => out.push_str("&#xA;"),
            '\t' if attribute => out.push_str("&#x9;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic()
        || c == '_'
        || matches!(c as u32,
            0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x2FF | 0x370..=0x37D | 0x37F..=0x1FFF
            | 0x200C..=0x200D | 0x2070..=0x218F | 0x2C00..=0x2FEF | 0x3001..=0xD7FF
            | 0xF900..=0xFDCF | 0xFDF0..=0xFFFD | 0x10000..=0xEFFFF)
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || c.is_ascii_digit()
        || c == '-'
        || c == '.'
        || matches!(c as u32, 0xB7 | 0x300..=0x36F | 0x203F..=0x2040)
}

/// Makes `name` a valid, prefix-free XML name (see the module docs).
fn xml_name(name: &str) -> Cow<'_, str> {
    let mut chars = name.chars();
    let valid = match chars.next() {
        Some(first) => is_name_start(first) && chars.all(is_name_char),
        None => false,
    };
    if valid {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 1);
    for (i, c) in name.chars().enumerate() {
        if i == 0 && !is_name_start(c) {
            out.push('_');
            if is_name_char(c) {
                out.push(c);
            }
        } else if is_name_char(c) {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    if out.is_empty() {
        out.push('_');
    }
    Cow::Owned(out)
}

/// Indentation step used by yaml.v3's encoder by default.
const YAML_INDENT: usize = 4;

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
            out.push_str(&yaml_inline(other));
            out.push('\n');
        }
    }
    out
}

/// yaml.v3 aligns nested blocks to the next multiple of the indent step.
fn next_block_indent(indent: usize) -> usize {
    YAML_INDENT * ((indent + YAML_INDENT) / YAML_INDENT)
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Writes a non-empty mapping; `inline_first` means the first key follows a
/// `- ` already on the current line.
fn write_mapping(out: &mut String, map: &Map<String, Value>, indent: usize, inline_first: bool) {
    let entries = merge_sort(map.iter().collect(), &|a: &(&String, &Value), b| {
        yaml_key_less(a.0, b.0)
    });
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 || !inline_first {
            push_indent(out, indent);
        }
        out.push_str(&yaml_string(key));
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
                out.push_str(&yaml_inline(other));
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
                out.push_str(&yaml_inline(other));
                out.push('\n');
            }
        }
    }
}

/// Scalars and empty collections, which yaml.v3 writes on one line.
fn yaml_inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => yaml_number(n),
        Value::String(s) => yaml_string(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

/// Integers print as such; everything else goes through a float, printed
/// like Go's `strconv.FormatFloat(f, 'g', -1, 64)` (KrakenD decodes JSON
/// numbers as `json.Number`, which yaml.v3 emits that way).
fn yaml_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        format!("{f}")
    }
}

/// yaml.v3's map key order: a natural sort where runs of digits compare
/// numerically and, at the first difference, non-letters sort first unless
/// the preceding character was a digit.
fn yaml_key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut digits = false;
    for i in 0..ar.len().min(br.len()) {
        let (ac, bc) = (ar[i], br[i]);
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
                .take_while(|c| c.is_ascii_digit())
                .any(|c| *c != '0')
            {
                an = 1;
                bn = 1;
            }
        }
        let mut ai = i;
        while let Some(d) = ar.get(ai).and_then(|c| c.to_digit(10)) {
            an = an.wrapping_mul(10).wrapping_add(i64::from(d));
            ai += 1;
        }
        let mut bi = i;
        while let Some(d) = br.get(bi).and_then(|c| c.to_digit(10)) {
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

/// A stable merge sort that tolerates comparators that are not total
/// orders (the standard sort may panic on those).
fn merge_sort<T>(mut items: Vec<T>, less: &impl Fn(&T, &T) -> bool) -> Vec<T> {
    if items.len() <= 1 {
        return items;
    }
    let right = items.split_off(items.len() / 2);
    let left = merge_sort(items, less);
    let right = merge_sort(right, less);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_right = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => less(r, l),
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let next = if take_right {
            right.next()
        } else {
            left.next()
        };
        out.extend(next);
    }
    out
}

/// Quotes a string exactly when yaml.v3 would.
fn yaml_string(s: &str) -> String {
    if s.contains('\n') || s.chars().any(|c| !yaml_printable(c)) {
        return yaml_double_quoted(s);
    }
    if yaml_resolves_to_non_string(s) {
        return yaml_double_quoted(s);
    }
    if yaml_plain_allowed(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

/// libyaml's printable set; anything else forces double quotes.
fn yaml_printable(c: char) -> bool {
    matches!(c as u32, 0x0A | 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD) && c != '\u{FEFF}'
}

fn yaml_double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
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
            c if yaml_printable(c) => out.push(c),
            c if (c as u32) <= 0xFF => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// libyaml's scalar analysis for block context: may `s` be written plain?
/// (Callers have already excluded line breaks and unprintable characters.)
fn yaml_plain_allowed(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let Some(&first) = chars.first() else {
        return false;
    };
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if first == ' ' || chars.last() == Some(&' ') {
        return false;
    }
    let blank_at = |i: usize| chars.get(i).is_none_or(|c| matches!(c, ' ' | '\t'));
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_blank = blank_at(i + 1);
        let indicator = if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => true,
                '?' | ':' | '-' => followed_by_blank,
                _ => false,
            }
        } else {
            match c {
                ':' => followed_by_blank,
                '#' => matches!(chars[i - 1], ' ' | '\t'),
                _ => false,
            }
        };
        if indicator {
            return false;
        }
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
mod tests {
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

    const USER_XML: &str = "<user type=\"admin\"><name>Elliot</name><social><facebook>https://facebook.com</facebook><twitter>https://twitter.com</twitter><youtube>https://youtube.com</youtube></social></user>";

    fn user() -> Value {
        json!({"user": {"-type": "admin", "name": "Elliot", "social": {
            "facebook": "https://facebook.com",
            "twitter": "https://twitter.com",
            "youtube": "https://youtube.com"}}})
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn parses_krakend_user_example() {
        assert_eq!(
            Value::Object(xml_to_map(USER_XML.as_bytes()).unwrap()),
            user()
        );
    }

    #[test]
    fn parses_repeats_text_namespaces_and_entities() {
        let xml = r#"<?xml version="1.0"?>
            <!-- c --><!DOCTYPE r>
            <ns:r xmlns:ns="urn:x" ns:id="7">
              hello &amp; <![CDATA[<raw>]]> &#65;
              <i>1</i><e/><i>2</i><?pi x?>
              <a k="&lt;v&gt;"/>
              <i> 3 </i>
            </ns:r>"#;
        let got = Value::Object(xml_to_map(xml.as_bytes()).unwrap());
        let want = json!({"r": {
            "-ns": "urn:x", "-id": "7",
            "#text": "hello & <raw> A",
            "i": ["1", "2", "3"], "e": "", "a": {"-k": "<v>"}
        }});
        assert_eq!(got, want);
    }

    #[test]
    fn rejects_bad_documents() {
        type Check = fn(&XmlError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, XmlError::NoRoot)),
            ("<!-- only -->", |e| matches!(e, XmlError::NoRoot)),
            ("<a><b></a>", |e| matches!(e, XmlError::Malformed(_))),
            ("<a>", |e| matches!(e, XmlError::Unclosed(_))),
            ("<a/><b/>", |e| matches!(e, XmlError::ContentOutsideRoot)),
            ("<a/>text", |e| matches!(e, XmlError::ContentOutsideRoot)),
            ("<a>&foo;</a>", |e| matches!(e, XmlError::UnknownEntity(_))),
            ("<a x=\"1\" x=\"2\"/>", |e| {
                matches!(e, XmlError::Malformed(_))
            }),
            (
                "<!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;\">]><l>&b;</l>",
                |e| matches!(e, XmlError::EntityDeclaration),
            ),
            (
                "<!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><x>&xxe;</x>",
                |e| matches!(e, XmlError::EntityDeclaration),
            ),
        ];
        for (xml, check) in cases {
            let err = xml_to_map(xml.as_bytes()).expect_err(xml);
            assert!(check(&err), "{xml}: {err}");
            assert!(!err.to_string().is_empty());
        }
        assert!(xml_to_map(&[0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e]).is_err());
    }

    #[test]
    fn caps_nesting_depth() {
        let deep = |n: usize| "<a>".repeat(n) + &"</a>".repeat(n);
        assert!(xml_to_map(deep(MAX_DEPTH).as_bytes()).is_ok());
        let err = xml_to_map(deep(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert!(matches!(err, XmlError::TooDeep));
        let err = xml_to_map(("<a>".repeat(100_000)).as_bytes()).unwrap_err();
        assert!(matches!(err, XmlError::TooDeep));
    }

    #[test]
    fn writes_krakend_examples() {
        assert_eq!(map_to_xml(&obj(user())), USER_XML);
        let data = obj(
            json!({"foo": 42, "headers": {"Accept-Encoding": ["gzip"], "User-Agent": ["X"]},
            "path": "/p/", "query": {}}),
        );
        assert_eq!(
            map_to_xml(&data),
            "<doc><foo>42</foo><headers><Accept-Encoding>gzip</Accept-Encoding><User-Agent>X</User-Agent></headers><path>/p/</path><query/></doc>"
        );
    }

    #[test]
    fn writes_attributes_text_escapes_and_sanitised_names() {
        let data = obj(json!({"r": {
            "-id": 1, "-q": "a\"<&>\n", "#text": "x < y", "n": null, "e": "", "b": true,
            "l": [1, [2, 3], {"-k": "v"}], "empty": [], "-o": {"z": 1},
            "1st": "a", "bad key:x": "b", "": "c", "-a b": "1", "-a_b": "2", "ctl": "\u{1}\r"
        }}));
        let got = map_to_xml(&data);
        assert_eq!(
            got,
            "<r a_b=\"1\" id=\"1\" q=\"a&quot;&lt;&amp;&gt;&#xA;\">x &lt; y\
             <_>c</_><_-o><z>1</z></_-o><_1st>a</_1st><b>true</b><bad_key_x>b</bad_key_x>\
             <ctl>\u{FFFD}&#xD;</ctl><e/><l>1</l><l>2</l><l>3</l><l k=\"v\"/><n/></r>"
        );
        let back = xml_to_map(got.as_bytes()).unwrap();
        assert_eq!(back["r"]["-q"], json!("a\"<&>\n"));
        assert_eq!(back["r"]["ctl"], json!("\u{FFFD}"));
        assert_eq!(map_to_xml(&obj(json!({"a": "x"}))), "<doc><a>x</a></doc>");
        assert_eq!(map_to_xml(&Map::new()), "<doc/>");
    }

    #[test]
    fn xml_round_trips_through_the_tree() {
        let tree = xml_to_map(USER_XML.as_bytes()).unwrap();
        assert_eq!(xml_to_map(map_to_xml(&tree).as_bytes()).unwrap(), tree);
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
        let data =
            json!({"a10": 1, "a2": 2, "b": 3, "B": 4, "_x": 5, "{": 6, "1": 7, "10": 8, "9": 9});
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
}
