//! XML ⇄ JSON-like tree conversion with KrakenD (mxj) conventions.
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
//!
//! Both directions are linear in their input: duplicate attributes are found
//! with a hash set (quick-xml's own check compares each attribute with every
//! earlier one), a repeated child name appends to the array already in its
//! parent (one map lookup), and text is appended, never re-scanned.

use std::borrow::Cow;
use std::collections::HashSet;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::QName;
use quick_xml::Reader;
use serde_json::{Map, Value};

use super::limits::{string_cost, Budget, OverBudget};

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
    /// The tree would take more memory than the decoder was allowed.
    #[error("decoded XML would take more than {budget} bytes of memory")]
    TooLarge {
        /// The memory budget, in bytes.
        budget: usize,
    },
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

impl From<OverBudget> for XmlError {
    fn from(OverBudget(budget): OverBudget) -> Self {
        XmlError::TooLarge { budget }
    }
}

/// Adds a child (or `#text`) to an element being built, keeping the budget.
fn add_field(
    budget: &mut Budget,
    fields: &mut Map<String, Value>,
    name: String,
    value: Value,
) -> Result<(), XmlError> {
    match fields.get_mut(&name) {
        // Element values are never arrays themselves, so an array here can
        // only come from an earlier repetition of the same name.
        Some(Value::Array(items)) => {
            items.push(value);
            budget.array_grew(items.len())?;
        }
        Some(existing) => {
            let first = std::mem::take(existing);
            *existing = Value::Array(vec![first, value]);
            budget.array_grew(2)?;
        }
        None => {
            fields.insert(name, value);
            budget.map_grew(fields.len())?;
        }
    }
    Ok(())
}

/// An element being built.
struct Frame {
    name: String,
    /// Attributes (`-name`) and children, in the shape of the final object.
    fields: Map<String, Value>,
    text: String,
}

impl Frame {
    fn open(
        start: &BytesStart<'_>,
        reader: &Reader<&[u8]>,
        budget: &mut Budget,
    ) -> Result<Self, XmlError> {
        let decoder = reader.decoder();
        let local = start.local_name();
        let name = decoder.decode(local.as_ref())?.into_owned();
        // The name becomes the key of this element in its parent.
        budget.charge(string_cost(name.len()))?;
        let mut fields = Map::new();
        // quick-xml's duplicate check compares each attribute with every earlier one,
        // which is quadratic in the attribute count; a set of raw names is not. Most
        // elements have at most one attribute and never allocate the set.
        let mut first: Option<&[u8]> = None;
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut attributes = start.attributes();
        attributes.with_checks(false);
        for attr in attributes {
            let attr = attr?;
            let QName(raw) = attr.key;
            let duplicate = match first {
                None => {
                    first = Some(raw);
                    false
                }
                Some(first) => {
                    if seen.is_empty() {
                        seen.insert(first);
                    }
                    !seen.insert(raw)
                }
            };
            if duplicate {
                return Err(XmlError::Malformed(format!(
                    "duplicated attribute {}",
                    decoder.decode(raw)?
                )));
            }
            let local = attr.key.local_name();
            let key = decoder.decode(local.as_ref())?;
            let value = attr.decode_and_unescape_value(decoder)?.into_owned();
            let key = format!("-{key}");
            budget.charge(string_cost(key.len()).saturating_add(string_cost(value.len())))?;
            // `p:id` and `id` share the key `-id`: the last one wins.
            if fields.insert(key, Value::String(value)).is_none() {
                budget.map_grew(fields.len())?;
            }
        }
        Ok(Frame {
            name,
            fields,
            text: String::new(),
        })
    }

    fn close(self, budget: &mut Budget) -> Result<(String, Value), XmlError> {
        let text = trim_xml_whitespace(self.text);
        budget.charge(string_cost(text.len()))?;
        if self.fields.is_empty() {
            return Ok((self.name, Value::String(text)));
        }
        let mut fields = self.fields;
        if !text.is_empty() {
            budget.charge(string_cost("#text".len()))?;
            add_field(
                budget,
                &mut fields,
                "#text".to_string(),
                Value::String(text),
            )?;
        }
        Ok((self.name, Value::Object(fields)))
    }
}

/// Trims XML whitespace in place (no copy of the text that stays).
fn trim_xml_whitespace(mut text: String) -> String {
    let is_ws = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let end = text.trim_end_matches(is_ws).len();
    text.truncate(end);
    let start = text.len() - text.trim_start_matches(is_ws).len();
    text.drain(..start);
    text
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
    xml_to_map_limited(bytes, usize::MAX)
}

/// [`xml_to_map`], refusing a tree that would take more than `budget` bytes of memory
/// (estimated as in [`super::limits`]) with [`XmlError::TooLarge`].
pub fn xml_to_map_limited(bytes: &[u8], budget: usize) -> Result<Map<String, Value>, XmlError> {
    let mut budget = Budget::new(budget);
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
                stack.push(Frame::open(&start, &reader, &mut budget)?);
            }
            Event::Empty(start) => {
                if root.is_some() {
                    return Err(XmlError::ContentOutsideRoot);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let (name, value) =
                    Frame::open(&start, &reader, &mut budget)?.close(&mut budget)?;
                match stack.last_mut() {
                    Some(parent) => add_field(&mut budget, &mut parent.fields, name, value)?,
                    None => root = Some((name, value)),
                }
            }
            Event::End(_) => {
                // quick-xml already verified the end tag matches.
                let Some(frame) = stack.pop() else {
                    return Err(XmlError::Malformed("unexpected end tag".into()));
                };
                let (name, value) = frame.close(&mut budget)?;
                match stack.last_mut() {
                    Some(parent) => add_field(&mut budget, &mut parent.fields, name, value)?,
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
    let mut seen_attrs: HashSet<Cow<'_, str>> = HashSet::new();
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
                    seen_attrs.insert(attr_name);
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

#[cfg(test)]
mod tests;
