//! Every schema problem of a document at once, each with its field path and position.
//!
//! Serde stops at the first error. When a document fails to parse, it is read again into
//! a tree of [`Node`]s and the target type is deserialized from that tree by a
//! deserializer that notes each problem and carries on with a stand-in value. What serde
//! itself decides (which structs refuse unknown fields, which fields are required, which
//! values a type's own code refuses) is learnt from the errors of earlier passes: a pass
//! that hits such an error records what it learnt and the next pass steps around it. The
//! values built are thrown away; only the problems are kept. The strict parse stays the
//! authority on whether a document is valid: this module only explains a refusal.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};
use serde::Deserialize;

use crate::yaml::Position;

/// Passes after which the search gives up (each pass learns at least one thing).
const MAX_PASSES: usize = 64;

/// A value of a document and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    kind: Kind,
    at: Option<Position>,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// One problem: where, which field (dot path), what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Found {
    pub(crate) at: Option<Position>,
    pub(crate) field: String,
    pub(crate) message: String,
}

impl Node {
    /// The tree of a JSON value (positions unknown).
    pub(crate) fn from_json(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        let kind = match value {
            Value::Null => Kind::Null,
            Value::Bool(b) => Kind::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Kind::UInt(u),
                (None, Some(i), _) => Kind::Int(i),
                (_, _, f) => Kind::Float(f.unwrap_or(0.0)),
            },
            Value::String(s) => Kind::Str(s.clone()),
            Value::Array(items) => Kind::Seq(items.iter().map(Self::from_json).collect()),
            Value::Object(map) => Kind::Map(
                map.iter()
                    .map(|(k, v)| {
                        (
                            Node {
                                kind: Kind::Str(k.clone()),
                                at: None,
                            },
                            Self::from_json(v),
                        )
                    })
                    .collect(),
            ),
        };
        Node { kind, at: None }
    }

    fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "nothing (null)".into(),
            Kind::Bool(b) => format!("the boolean {b}"),
            Kind::Int(i) => format!("the number {i}"),
            Kind::UInt(u) => format!("the number {u}"),
            Kind::Float(f) => format!("the number {f}"),
            Kind::Str(s) => format!("the string {s:?}"),
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a mapping".into(),
        }
    }

    /// The text of a scalar (what a string field would hold).
    fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::UInt(u) => Some(u.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            Kind::Str(s) => Some(s.clone()),
            Kind::Null | Kind::Seq(_) | Kind::Map(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<Kind>::deserialize(d)?;
        let at = (s.referenced.line() > 0).then(|| Position {
            line: s.referenced.line(),
            column: s.referenced.column(),
        });
        Ok(Node { kind: s.value, at })
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        Kind::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Kind, E> {
        Ok(Kind::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Kind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Kind::Map(entries))
    }
}

/// The closest of `candidates` to `word`, when one is close enough to be a typo of it.
pub(crate) fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let fold = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let folded = fold(word);
    if let Some(same) = candidates.iter().find(|c| fold(c) == folded) {
        return Some(same);
    }
    // A typo is an edit or two away (three in long names); further is another word.
    let limit = if folded.chars().count() > 10 { 3 } else { 2 };
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&folded, &fold(c)), *c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// What serde decides and a pass cannot know in advance, learnt from earlier passes.
#[derive(Default)]
struct Learned {
    /// Structs (by serde name) that refuse unknown fields.
    strict: HashSet<&'static str>,
    /// `(struct, field)` pairs serde requires.
    required: HashSet<(&'static str, &'static str)>,
    /// Field paths whose value the target type's own code refused, with its message.
    failing: HashMap<String, String>,
}

struct Pass<'l> {
    learned: &'l Learned,
    found: RefCell<Vec<Found>>,
}

impl Pass<'_> {
    fn record(&self, at: Option<Position>, field: &str, message: String) {
        self.found.borrow_mut().push(Found {
            at,
            field: field.to_string(),
            message,
        });
    }
}

/// Stack for a diagnosis: it recurses a few times per nesting level of the document, up to
/// the parser's depth limit, and an unoptimised build needs tens of KiB per level.
const STACK: usize = 64 << 20;

/// Runs `f` on a thread of its own with [`STACK`] bytes of stack, whatever the caller's
/// thread has; `None` if no thread could be started.
fn with_stack<R: Send>(f: impl FnOnce() -> R + Send) -> Option<R> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("weir-config-diagnose".into())
            .stack_size(STACK)
            .spawn_scoped(scope, f)
            .ok()?;
        handle.join().ok()
    })
}

/// Every problem `T` has with the YAML `text` (none when `T` accepts it), or the parser's
/// error when the text is not even a tree of values.
pub(crate) fn yaml_problems<T: DeserializeOwned>(
    text: &str,
) -> Option<Result<Vec<Found>, serde_saphyr::Error>> {
    with_stack(|| {
        let tree = crate::yaml::from_str::<Node>(text, 0)?;
        Ok(problems::<T>(&tree))
    })
}

/// Every problem `T` has with the JSON `text`: read as YAML for positions, or as JSON
/// without them when the YAML reader refuses it.
pub(crate) fn json_problems<T: DeserializeOwned>(text: &str) -> Option<Vec<Found>> {
    with_stack(|| {
        let tree = crate::yaml::from_str::<Node>(text, 0).ok().or_else(|| {
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .map(|v| Node::from_json(&v))
        })?;
        Some(problems::<T>(&tree))
    })
    .flatten()
}

/// Lists the problems `T` has with `root`. Empty when `T` accepts the tree (the caller
/// then reports serde's own error).
pub(crate) fn problems<T: DeserializeOwned>(root: &Node) -> Vec<Found> {
    let mut learned = Learned::default();
    let mut found = Vec::new();
    for _ in 0..MAX_PASSES {
        let pass = Pass {
            learned: &learned,
            found: RefCell::default(),
        };
        let result = T::deserialize(De {
            node: root,
            path: String::new(),
            pass: &pass,
        });
        found = pass.found.into_inner();
        let Err(e) = result else { break };
        let learnt = match &e.what {
            What::Refuses(structure) => learned.strict.insert(structure),
            What::Requires(structure, field) => learned.required.insert((structure, field)),
            What::Message(m) => match &e.path {
                Some(p) => learned.failing.insert(p.clone(), m.clone()).is_none(),
                None => false,
            },
            What::UnknownField(_) | What::MissingField(_) => false,
        };
        if !learnt {
            found.push(Found {
                at: e.at,
                field: e.path.clone().unwrap_or_default(),
                message: e.what.to_string(),
            });
            break;
        }
    }
    found.sort();
    found.dedup();
    found
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A deserialization failure inside a pass.
#[derive(Debug)]
struct Error {
    what: What,
    path: Option<String>,
    at: Option<Position>,
}

#[derive(Debug)]
enum What {
    Message(String),
    UnknownField(String),
    MissingField(&'static str),
    Refuses(&'static str),
    Requires(&'static str, &'static str),
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Message(m) => f.write_str(m),
            What::UnknownField(field) => write!(f, "unknown field `{field}`"),
            What::MissingField(field) | What::Requires(_, field) => {
                write!(f, "missing field `{field}`")
            }
            What::Refuses(s) => write!(f, "{s} refuses unknown fields"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.what.fmt(f)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(What::Message(msg.to_string()))
    }
    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        Self::new(What::UnknownField(field.to_string()))
    }
    fn missing_field(field: &'static str) -> Self {
        Self::new(What::MissingField(field))
    }
}

impl Error {
    fn new(what: What) -> Self {
        Self {
            what,
            path: None,
            at: None,
        }
    }
}

/// Deserializes from one node, noting problems and standing in for bad values.
struct De<'a, 'p> {
    node: &'a Node,
    path: String,
    pass: &'p Pass<'p>,
}

impl<'a, 'p> De<'a, 'p> {
    fn record(&self, message: String) {
        self.pass.record(self.node.at, &self.path, message);
    }

    fn mismatch(&self, expected: &str) {
        self.record(format!(
            "expected {expected}, found {}",
            self.node.describe()
        ));
    }

    /// Whether an earlier pass found that this value is refused by its type: then the
    /// problem is noted and a stand-in is used.
    fn refused_before(&self) -> bool {
        match self.pass.learned.failing.get(&self.path) {
            Some(m) => {
                self.record(m.clone());
                true
            }
            None => false,
        }
    }

    fn attach(&self, mut e: Error) -> Error {
        if e.path.is_none() {
            e.path = Some(self.path.clone());
            e.at = self.node.at;
        }
        e
    }

    fn integer<'de, V: Visitor<'de>>(self, v: V, min: i128, max: i128) -> Result<V::Value, Error> {
        if self.refused_before() {
            return v.visit_u64(0);
        }
        let n = match &self.node.kind {
            Kind::Int(i) => Some(i128::from(*i)),
            Kind::UInt(u) => Some(i128::from(*u)),
            Kind::Str(s) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        let r = match n {
            Some(n) if (min..=max).contains(&n) => match i64::try_from(n) {
                Ok(i) if i < 0 => v.visit_i64(i),
                _ => v.visit_u64(u64::try_from(n).unwrap_or(0)),
            },
            _ => {
                self.mismatch(&format!("a whole number from {min} to {max}"));
                v.visit_u64(0)
            }
        };
        r.map_err(|e| self.attach(e))
    }

    fn float<'de, V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.refused_before() {
            return v.visit_f64(0.0);
        }
        let r = match &self.node.kind {
            Kind::Int(i) => v.visit_f64(*i as f64),
            Kind::UInt(u) => v.visit_f64(*u as f64),
            Kind::Float(f) => v.visit_f64(*f),
            _ => {
                self.mismatch("a number");
                v.visit_f64(0.0)
            }
        };
        r.map_err(|e| self.attach(e))
    }
}

macro_rules! integers {
    ($($method:ident: $t:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            self.integer(v, i128::from(<$t>::MIN), i128::from(<$t>::MAX))
        }
    )*};
}

impl<'de> Deserializer<'de> for De<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.refused_before() {
            return Phantom.deserialize_any(v);
        }
        let r = match &self.node.kind {
            Kind::Null => v.visit_unit(),
            Kind::Bool(b) => v.visit_bool(*b),
            Kind::Int(i) => v.visit_i64(*i),
            Kind::UInt(u) => v.visit_u64(*u),
            Kind::Float(f) => v.visit_f64(*f),
            Kind::Str(s) => v.visit_str(s),
            Kind::Seq(items) => v.visit_seq(Seq::new(items, &self.path, self.pass)),
            Kind::Map(entries) => {
                v.visit_map(Map::new(self.node, entries, &self.path, None, self.pass))
            }
        };
        r.map_err(|e| self.attach(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.refused_before() {
            return v.visit_bool(false);
        }
        let r = match &self.node.kind {
            Kind::Bool(b) => v.visit_bool(*b),
            _ => {
                self.mismatch("true or false");
                v.visit_bool(false)
            }
        };
        r.map_err(|e| self.attach(e))
    }

    integers!(deserialize_i8: i8, deserialize_i16: i16, deserialize_i32: i32, deserialize_i64: i64,
        deserialize_u8: u8, deserialize_u16: u16, deserialize_u32: u32, deserialize_u64: u64);

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.float(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.float(v)
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.refused_before() {
            return v.visit_str("");
        }
        let r = match self.node.scalar_text() {
            Some(text) => v.visit_str(&text),
            None => {
                self.mismatch("a string");
                v.visit_str("")
            }
        };
        r.map_err(|e| self.attach(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_any(v)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_any(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.node.kind {
            Kind::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if !matches!(self.node.kind, Kind::Null) && !self.refused_before() {
            self.mismatch("nothing (null)");
        }
        v.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.refused_before() {
            return Phantom.deserialize_seq(v);
        }
        let r = match &self.node.kind {
            Kind::Seq(items) => v.visit_seq(Seq::new(items, &self.path, self.pass)),
            _ => {
                self.mismatch("a list");
                Phantom.deserialize_seq(v)
            }
        };
        r.map_err(|e| self.attach(e))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        if self.refused_before() {
            return Phantom.deserialize_map(v);
        }
        let r = match &self.node.kind {
            Kind::Map(entries) => {
                v.visit_map(Map::new(self.node, entries, &self.path, None, self.pass))
            }
            _ => {
                self.mismatch("a mapping");
                Phantom.deserialize_map(v)
            }
        };
        r.map_err(|e| self.attach(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        if self.refused_before() {
            return Phantom.deserialize_struct(name, fields, v);
        }
        let r = match &self.node.kind {
            Kind::Map(entries) => {
                let map = Map::new(
                    self.node,
                    entries,
                    &self.path,
                    Some((name, fields)),
                    self.pass,
                );
                v.visit_map(map).map_err(|mut e| {
                    if let What::MissingField(field) = e.what {
                        e.what = What::Requires(name, field);
                    }
                    e
                })
            }
            _ => {
                self.mismatch("a mapping");
                Phantom.deserialize_struct(name, fields, v)
            }
        };
        r.map_err(|e| self.attach(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        if self.refused_before() {
            return Phantom.deserialize_enum(name, variants, v);
        }
        let r = match &self.node.kind {
            Kind::Str(s) if variants.contains(&s.as_str()) => {
                v.visit_enum(IntoDeserializer::<Error>::into_deserializer(s.as_str()))
            }
            Kind::Map(entries)
                if entries.len() == 1
                    && entries[0]
                        .0
                        .scalar_text()
                        .is_some_and(|k| variants.contains(&k.as_str())) =>
            {
                let (key, value) = &entries[0];
                v.visit_enum(Variant {
                    name: key.scalar_text().unwrap_or_default(),
                    content: De {
                        node: value,
                        path: self.path.clone(),
                        pass: self.pass,
                    },
                })
            }
            _ => {
                let one_of = variants.join(", ");
                match self.node.scalar_text() {
                    Some(s) => {
                        let hint = did_you_mean(&s, variants)
                            .map(|m| format!("; did you mean `{m}`?"))
                            .unwrap_or_default();
                        self.record(format!("unknown value `{s}`{hint} (one of {one_of})"))
                    }
                    None => self.mismatch(&format!("one of {one_of}")),
                }
                Phantom.deserialize_enum(name, variants, v)
            }
        };
        r.map_err(|e| self.attach(e))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }
}

/// The items of a list.
struct Seq<'a, 'p> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: &'a str,
    pass: &'p Pass<'p>,
}

impl<'a, 'p> Seq<'a, 'p> {
    fn new(items: &'a [Node], path: &'a str, pass: &'p Pass<'p>) -> Self {
        Self {
            items: items.iter(),
            index: 0,
            path,
            pass,
        }
    }
}

impl<'de> SeqAccess<'de> for Seq<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        seed.deserialize(De {
            node,
            path,
            pass: self.pass,
        })
        .map(Some)
    }
}

/// The entries of a mapping; for a struct, unknown keys are noted and skipped once the
/// struct is known to refuse them, and required fields are stood in for once known.
struct Map<'a, 'p> {
    node: &'a Node,
    entries: &'a [(Node, Node)],
    next: usize,
    path: &'a str,
    structure: Option<(&'static str, &'static [&'static str])>,
    value: Option<(&'a Node, String)>,
    supplying: Option<usize>,
    pass: &'p Pass<'p>,
}

impl<'a, 'p> Map<'a, 'p> {
    fn new(
        node: &'a Node,
        entries: &'a [(Node, Node)],
        path: &'a str,
        structure: Option<(&'static str, &'static [&'static str])>,
        pass: &'p Pass<'p>,
    ) -> Self {
        Self {
            node,
            entries,
            next: 0,
            path,
            structure,
            value: None,
            supplying: None,
            pass,
        }
    }

    fn present(&self, field: &str) -> bool {
        self.entries
            .iter()
            .any(|(k, _)| k.scalar_text().as_deref() == Some(field))
    }
}

impl<'de> MapAccess<'de> for Map<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let learned = self.pass.learned;
        while let Some((key, value)) = self.entries.get(self.next) {
            self.next += 1;
            let text = key.scalar_text().unwrap_or_default();
            let path = join(self.path, &text);
            if let Some((name, fields)) = self.structure {
                if !fields.contains(&text.as_str()) && learned.strict.contains(name) {
                    let message = match did_you_mean(&text, fields) {
                        Some(m) => format!("unknown field; did you mean `{m}`?"),
                        None => format!("unknown field; the fields here are {}", fields.join(", ")),
                    };
                    self.pass.record(key.at, &path, message);
                    continue;
                }
            }
            self.value = Some((value, path.clone()));
            let structure = self.structure;
            return seed
                .deserialize(De {
                    node: key,
                    path,
                    pass: self.pass,
                })
                .map(Some)
                .map_err(|mut e| {
                    if let (What::UnknownField(_), Some((name, _))) = (&e.what, structure) {
                        e.what = What::Refuses(name);
                    }
                    e
                });
        }
        let Some((name, fields)) = self.structure else {
            return Ok(None);
        };
        let start = self.supplying.map_or(0, |i| i + 1);
        for (i, field) in fields.iter().enumerate().skip(start) {
            if learned.required.contains(&(name, *field)) && !self.present(field) {
                self.supplying = Some(i);
                self.pass
                    .record(self.node.at, self.path, format!("missing field `{field}`"));
                return seed
                    .deserialize(IntoDeserializer::<Error>::into_deserializer(*field))
                    .map(Some);
            }
        }
        self.supplying = Some(fields.len());
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some((node, path)) => seed.deserialize(De {
                node,
                path,
                pass: self.pass,
            }),
            None => seed.deserialize(Phantom),
        }
    }
}

/// An externally tagged enum variant (`{variant: content}`).
struct Variant<'a, 'p> {
    name: String,
    content: De<'a, 'p>,
}

impl<'de, 'a, 'p> EnumAccess<'de> for Variant<'a, 'p> {
    type Error = Error;
    type Variant = De<'a, 'p>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Error> {
        let tag = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(
            self.name.as_str(),
        ))?;
        Ok((tag, self.content))
    }
}

impl<'de> VariantAccess<'de> for De<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_struct("variant", fields, v)
    }
}

/// A stand-in value of whatever type is asked for: empty, zero, the first variant, a
/// struct with every field present.
struct Phantom;

impl<'de> Deserializer<'de> for Phantom {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_bool(false)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f64(0.0)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("")
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_none()
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_seq(de::value::SeqDeserializer::new(std::iter::empty::<()>()))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_map(de::value::MapDeserializer::new(
            std::iter::empty::<((), ())>(),
        ))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_map(PhantomStruct {
            fields: fields.iter(),
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match variants.first() {
            Some(first) => v.visit_enum(PhantomVariant(first)),
            None => Err(Error::new(What::Message("an enum without variants".into()))),
        }
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }

    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_u64(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_f64(0.0)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_str("")
    }
}

/// Every field of a stand-in struct, each with a stand-in value.
struct PhantomStruct {
    fields: std::slice::Iter<'static, &'static str>,
}

impl<'de> MapAccess<'de> for PhantomStruct {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.fields.next() {
            Some(f) => seed
                .deserialize(IntoDeserializer::<Error>::into_deserializer(*f))
                .map(Some),
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(Phantom)
    }
}

struct PhantomVariant(&'static str);

impl<'de> EnumAccess<'de> for PhantomVariant {
    type Error = Error;
    type Variant = Phantom;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Phantom), Error> {
        let tag = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(self.0))?;
        Ok((tag, Phantom))
    }
}

impl<'de> VariantAccess<'de> for Phantom {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(Phantom)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        Phantom.deserialize_seq(v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        Phantom.deserialize_struct("variant", fields, v)
    }
}

#[cfg(test)]
mod tests;
