//! Per-backend response manipulation with KrakenD (lura) semantics.
//!
//! Every function works on the decoded JSON object of one backend response.
//! The pipeline applies them in DESIGN.md's order: `target`, `allow`/`deny`,
//! `mapping`, `group`; a backend with `flatmap` operations uses them in place
//! of `allow`/`deny`/`mapping` (see `backend::apply_transforms`).
//!
//! Paths are dot separated (`"a.b.c"`). None of these functions panic: a path
//! step that meets a value of an unexpected type simply does not match.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use weir_model::FlatmapOp;

/// Keeps only the object found at the dot path `path`.
///
/// A missing path, or one that leads to anything but an object, yields an
/// empty map, as lura does.
pub fn target(data: Map<String, Value>, path: &str) -> Map<String, Value> {
    let mut segments = path.split('.');
    let Some(first) = segments.next() else {
        return Map::new();
    };
    let mut current = match data.into_iter().find(|(k, _)| k == first) {
        Some((_, v)) => v,
        None => return Map::new(),
    };
    for segment in segments {
        current = match current {
            Value::Object(mut m) => match m.remove(segment) {
                Some(v) => v,
                None => return Map::new(),
            },
            _ => return Map::new(),
        };
    }
    match current {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A prefix tree of allowed paths: `None` keeps the whole subtree.
#[derive(Default)]
struct AllowTree(BTreeMap<String, Option<AllowTree>>);

impl AllowTree {
    fn build(paths: &[String]) -> Self {
        let mut root = AllowTree::default();
        for path in paths {
            let mut node = &mut root;
            let segments: Vec<&str> = path.split('.').collect();
            for (i, segment) in segments.iter().enumerate() {
                let last = i + 1 == segments.len();
                let entry = node
                    .0
                    .entry((*segment).to_string())
                    .or_insert_with(|| Some(AllowTree::default()));
                if last {
                    // A listed parent keeps everything below it, even if a
                    // deeper path was listed too.
                    *entry = None;
                    break;
                }
                match entry {
                    Some(child) => node = child,
                    None => break,
                }
            }
        }
        root
    }
}

/// Whitelists the given dot paths; everything else is removed.
///
/// When a path step meets an array, the rest of the path applies to every
/// object item of the array (non-object items are dropped). A parent whose
/// allowed children are all missing is removed as well.
pub fn allow(data: Map<String, Value>, paths: &[String]) -> Map<String, Value> {
    let tree = AllowTree::build(paths);
    prune_map(data, &tree)
}

fn prune_map(mut data: Map<String, Value>, tree: &AllowTree) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, node) in &tree.0 {
        let Some(value) = data.remove(key) else {
            continue;
        };
        match node {
            None => {
                out.insert(key.clone(), value);
            }
            Some(sub) => {
                if let Some(kept) = prune_value(value, sub) {
                    out.insert(key.clone(), kept);
                }
            }
        }
    }
    out
}

/// Applies a subtree to a value; `None` means nothing survived.
fn prune_value(value: Value, tree: &AllowTree) -> Option<Value> {
    match value {
        Value::Object(m) => {
            let kept = prune_map(m, tree);
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) => {
            let mut any = false;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Object(m) => {
                        let kept = prune_map(m, tree);
                        any |= !kept.is_empty();
                        // Keep emptied objects so positions stay aligned
                        // with the backend's collection.
                        out.push(Value::Object(kept));
                    }
                    nested @ Value::Array(_) => {
                        if let Some(kept) = prune_value(nested, tree) {
                            any = true;
                            out.push(kept);
                        }
                    }
                    _ => {}
                }
            }
            any.then_some(Value::Array(out))
        }
        _ => None,
    }
}

/// Blacklists the given dot paths.
///
/// When a path step meets an array, the rest of the path applies to every
/// item of the array. Missing paths are ignored.
pub fn deny(data: &mut Map<String, Value>, paths: &[String]) {
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        deny_in_map(data, &segments);
    }
}

fn deny_in_map(data: &mut Map<String, Value>, segments: &[&str]) {
    match segments {
        [] => {}
        [last] => {
            data.remove(*last);
        }
        [first, rest @ ..] => {
            if let Some(child) = data.get_mut(*first) {
                deny_in_value(child, rest);
            }
        }
    }
}

fn deny_in_value(value: &mut Value, segments: &[&str]) {
    match value {
        Value::Object(m) => deny_in_map(m, segments),
        Value::Array(items) => items.iter_mut().for_each(|i| deny_in_value(i, segments)),
        _ => {}
    }
}

/// Renames top-level keys (`old` → `new`).
///
/// All renames happen at once: every old key is taken out first and then
/// inserted under its new name, so chains and swaps (`a→b`, `b→a`) do not
/// depend on iteration order. A renamed value overwrites an existing key.
pub fn mapping(data: &mut Map<String, Value>, mapping: &BTreeMap<String, String>) {
    let moved: Vec<(&String, Value)> = mapping
        .iter()
        .filter_map(|(old, new)| data.remove(old).map(|v| (new, v)))
        .collect();
    for (new, value) in moved {
        data.insert(new.clone(), value);
    }
}

/// Wraps the whole response under `key`.
pub fn group(data: Map<String, Value>, key: &str) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(key.to_string(), Value::Object(data));
    out
}

/// Applies KrakenD `flatmap_filter` operations in order.
///
/// Paths are dot separated; a `*` segment matches every item of an array
/// (and every value of an object), a numeric segment indexes an array.
/// When `to` holds `*` segments they are bound, in order, to the positions
/// matched by the `*` segments of `from`; if the counts differ the operation
/// is skipped. A `from` that matches nothing is a no-op.
///
/// Destinations are created as needed (objects for named steps, arrays for
/// steps bound from a `*`); a scalar standing in the way of a destination is
/// replaced, because the moved data is what the operator asked to keep.
pub fn flatmap(data: &mut Map<String, Value>, ops: &[FlatmapOp]) {
    let mut root = Value::Object(std::mem::take(data));
    for op in ops {
        match op {
            FlatmapOp::Move { from, to } => relocate(&mut root, from, to, false),
            FlatmapOp::Del(path) => {
                let segments: Vec<&str> = path.split('.').collect();
                // Deleting from the back keeps earlier array indices valid.
                for (concrete, _) in expand(&root, &segments).into_iter().rev() {
                    remove_at(&mut root, &concrete);
                }
            }
            FlatmapOp::Append { from, to } => relocate(&mut root, from, to, true),
        }
    }
    if let Value::Object(m) = root {
        *data = m;
    }
}

/// One concrete path step.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    fn index(&self) -> Option<usize> {
        match self {
            Seg::Index(i) => Some(*i),
            Seg::Key(k) => k.parse().ok(),
        }
    }

    fn key(&self) -> String {
        match self {
            Seg::Index(i) => i.to_string(),
            Seg::Key(k) => k.clone(),
        }
    }
}

/// A concrete path paired with the positions its `*` steps matched.
type Match = (Vec<Seg>, Vec<Seg>);

/// Resolves a pattern into every concrete path that exists in `root`.
fn expand(root: &Value, pattern: &[&str]) -> Vec<Match> {
    let mut out = Vec::new();
    expand_into(root, pattern, &mut Vec::new(), &mut Vec::new(), &mut out);
    out
}

fn expand_into(
    value: &Value,
    pattern: &[&str],
    prefix: &mut Vec<Seg>,
    binds: &mut Vec<Seg>,
    out: &mut Vec<Match>,
) {
    let Some((first, rest)) = pattern.split_first() else {
        out.push((prefix.clone(), binds.clone()));
        return;
    };
    let mut visit = |seg: Seg, child: &Value, wildcard: bool| {
        prefix.push(seg.clone());
        if wildcard {
            binds.push(seg);
        }
        expand_into(child, rest, prefix, binds, out);
        prefix.pop();
        if wildcard {
            binds.pop();
        }
    };
    match (value, *first) {
        (Value::Array(items), "*") => {
            for (i, item) in items.iter().enumerate() {
                visit(Seg::Index(i), item, true);
            }
        }
        (Value::Object(m), "*") => {
            for (k, item) in m {
                visit(Seg::Key(k.clone()), item, true);
            }
        }
        (Value::Object(m), key) => {
            if let Some(child) = m.get(key) {
                visit(Seg::Key(key.to_string()), child, false);
            }
        }
        (Value::Array(items), key) => {
            let found = key
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).map(|child| (i, child)));
            if let Some((i, child)) = found {
                visit(Seg::Index(i), child, false);
            }
        }
        _ => {}
    }
}

/// Builds the concrete destination of one match, or `None` when the
/// wildcard counts of source and destination disagree.
fn bind_destination(pattern: &[&str], binds: &[Seg]) -> Option<Vec<Seg>> {
    let mut binds = binds.iter();
    let mut out = Vec::with_capacity(pattern.len());
    for segment in pattern {
        if *segment == "*" {
            out.push(binds.next()?.clone());
        } else {
            out.push(Seg::Key((*segment).to_string()));
        }
    }
    binds.next().is_none().then_some(out)
}

/// Shared body of `Move` (append = false) and `Append` (append = true).
fn relocate(root: &mut Value, from: &str, to: &str, append: bool) {
    let from_pattern: Vec<&str> = from.split('.').collect();
    let to_pattern: Vec<&str> = to.split('.').collect();
    let matches = expand(root, &from_pattern);
    let mut pairs = Vec::with_capacity(matches.len());
    for (concrete, binds) in matches {
        let Some(destination) = bind_destination(&to_pattern, &binds) else {
            return;
        };
        pairs.push((concrete, destination));
    }
    // Take every source out first (back to front so array indices stay
    // valid), then write the destinations front to back.
    let mut taken = Vec::with_capacity(pairs.len());
    for (source, destination) in pairs.into_iter().rev() {
        if !append && same_path(&source, &destination) {
            continue;
        }
        if let Some(value) = remove_at(root, &source) {
            taken.push((destination, value));
        }
    }
    for (destination, value) in taken.into_iter().rev() {
        let slot = slot_at(root, &destination);
        if append {
            let items = match value {
                Value::Array(items) => items,
                other => vec![other],
            };
            match slot {
                Value::Array(existing) => existing.extend(items),
                Value::Null => *slot = Value::Array(items),
                other => {
                    let mut merged = vec![std::mem::take(other)];
                    merged.extend(items);
                    *other = Value::Array(merged);
                }
            }
        } else {
            *slot = value;
        }
    }
}

fn same_path(a: &[Seg], b: &[Seg]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.key() == y.key())
}

/// Removes and returns the value at a concrete path.
fn remove_at(root: &mut Value, path: &[Seg]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut current = root;
    for seg in parents {
        current = match current {
            Value::Object(m) => m.get_mut(&seg.key())?,
            Value::Array(items) => items.get_mut(seg.index()?)?,
            _ => return None,
        };
    }
    match current {
        Value::Object(m) => m.remove(&last.key()),
        Value::Array(items) => {
            let i = last.index()?;
            (i < items.len()).then(|| items.remove(i))
        }
        _ => None,
    }
}

/// Returns the slot at `path`, creating containers along the way; a new
/// slot holds `Null`.
fn slot_at<'a>(root: &'a mut Value, path: &[Seg]) -> &'a mut Value {
    let mut current = root;
    for seg in path {
        current = child_slot(current, seg);
    }
    current
}

fn child_slot<'a>(current: &'a mut Value, seg: &Seg) -> &'a mut Value {
    let fits = match (&*current, seg) {
        (Value::Object(_), _) => true,
        (Value::Array(_), s) => s.index().is_some(),
        _ => false,
    };
    if !fits {
        *current = match seg {
            Seg::Index(_) => Value::Array(Vec::new()),
            Seg::Key(_) => Value::Object(Map::new()),
        };
    }
    match current {
        Value::Array(items) => {
            let i = seg.index().unwrap_or(items.len());
            if i >= items.len() {
                // Padding keeps bound positions aligned with the source
                // collection when some of its items did not match.
                items.resize(i + 1, Value::Null);
            }
            &mut items[i]
        }
        Value::Object(m) => m.entry(seg.key()).or_insert(Value::Null),
        // Unreachable: `current` was made a container above.
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn strings(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|s| s.to_string()).collect()
    }

    fn mv(from: &str, to: &str) -> FlatmapOp {
        FlatmapOp::Move {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn target_extracts_nested_object() {
        let data = obj(json!({"data": {"user": {"id": 1}}, "x": 2}));
        assert_eq!(
            target(data.clone(), "data"),
            obj(json!({"user": {"id": 1}}))
        );
        assert_eq!(target(data.clone(), "data.user"), obj(json!({"id": 1})));
        assert!(target(data.clone(), "missing").is_empty());
        assert!(target(data.clone(), "x").is_empty());
        assert!(target(data, "data.user.id.deeper").is_empty());
    }

    #[test]
    fn allow_keeps_listed_paths() {
        let data = obj(json!({"a": 1, "b": {"c": 2, "d": 3}, "e": {"f": 4}}));
        let got = allow(data, &strings(&["a", "b.c", "e", "e.f.g", "zz", "a.q"]));
        assert_eq!(got, obj(json!({"a": 1, "b": {"c": 2}, "e": {"f": 4}})));
    }

    #[test]
    fn allow_descends_into_arrays() {
        let data = obj(json!({"collection": [{"name": 1, "x": 2}, 7, {"x": 3}]}));
        let got = allow(data, &strings(&["collection.name"]));
        assert_eq!(got, obj(json!({"collection": [{"name": 1}, {}]})));
        let data = obj(json!({"collection": [{"x": 2}], "s": "str"}));
        assert!(allow(data, &strings(&["collection.name", "s.t"])).is_empty());
    }

    #[test]
    fn deny_removes_paths_including_in_arrays() {
        let mut data = obj(json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [{"p": 1, "q": 2}, 5]}));
        deny(&mut data, &strings(&["a", "b.c", "l.p", "nope.x", "a.b"]));
        assert_eq!(data, obj(json!({"b": {"d": 3}, "l": [{"q": 2}, 5]})));
    }

    #[test]
    fn mapping_renames_and_overwrites() {
        let mut data = obj(json!({"a": 1, "b": 2, "c": 3}));
        let m: BTreeMap<String, String> = [("a", "c"), ("missing", "z")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        mapping(&mut data, &m);
        assert_eq!(data, obj(json!({"b": 2, "c": 1})));
        let swap: BTreeMap<String, String> = [("b", "c"), ("c", "b")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        mapping(&mut data, &swap);
        assert_eq!(data, obj(json!({"b": 1, "c": 2})));
    }

    #[test]
    fn group_wraps() {
        let got = group(obj(json!({"a": 1})), "g");
        assert_eq!(got, obj(json!({"g": {"a": 1}})));
    }

    #[test]
    fn flatmap_krakend_conformance_case() {
        let mut data = obj(json!({"collection": [
            {"i": 0, "path": "/collection/2"},
            {"i": 1, "path": "/collection/2"}
        ]}));
        flatmap(
            &mut data,
            &[
                mv("collection", "paths"),
                FlatmapOp::Del("paths.*.i".into()),
                mv("paths.*.path", "paths.*.url"),
            ],
        );
        assert_eq!(
            data,
            obj(json!({"paths": [{"url": "/collection/2"}, {"url": "/collection/2"}]}))
        );
    }

    #[test]
    fn flatmap_move_extracts_and_embeds() {
        let mut data = obj(json!({"a": {"b": {"c": 1}}, "x": 5}));
        flatmap(&mut data, &[mv("a.b.c", "c"), mv("x", "deep.er.x")]);
        assert_eq!(
            data,
            obj(json!({"a": {"b": {}}, "c": 1, "deep": {"er": {"x": 5}}}))
        );
    }

    #[test]
    fn flatmap_numeric_indexes_and_wildcard_binding() {
        let mut data = obj(json!({"l": [{"a": 1}, {"a": 2}, {"b": 3}]}));
        flatmap(&mut data, &[mv("l.1.a", "second"), mv("l.*.a", "m.*.v")]);
        assert_eq!(
            data,
            obj(json!({"l": [{}, {}, {"b": 3}], "second": 2, "m": [{"v": 1}]}))
        );
        // Mismatched wildcard counts skip the operation.
        let before = data.clone();
        flatmap(&mut data, &[mv("l.*.b", "flat")]);
        assert_eq!(data, before);
    }

    #[test]
    fn flatmap_del_whole_items_and_missing_paths() {
        let mut data = obj(json!({"l": [1, 2, 3], "o": {"k": 1}}));
        flatmap(
            &mut data,
            &[
                FlatmapOp::Del("l.*".into()),
                FlatmapOp::Del("o.k.z".into()),
                FlatmapOp::Del("nope.*.x".into()),
                FlatmapOp::Del("l.9".into()),
            ],
        );
        assert_eq!(data, obj(json!({"l": [], "o": {"k": 1}})));
    }

    #[test]
    fn flatmap_append() {
        let mut data = obj(json!({"a": [1, 2], "b": [3], "s": "x", "t": 9}));
        flatmap(
            &mut data,
            &[
                FlatmapOp::Append {
                    from: "a".into(),
                    to: "b".into(),
                },
                FlatmapOp::Append {
                    from: "s".into(),
                    to: "new".into(),
                },
                FlatmapOp::Append {
                    from: "missing".into(),
                    to: "b".into(),
                },
                FlatmapOp::Append {
                    from: "new".into(),
                    to: "t".into(),
                },
            ],
        );
        assert_eq!(data, obj(json!({"b": [3, 1, 2], "t": [9, "x"]})));
    }

    #[test]
    fn nothing_panics_on_odd_shapes() {
        let odd = json!({"a": [null, 1, "s", [1, [2]], {"b": [true]}], "n": null, "": {"": 1}});
        let paths = [
            "", ".", "a", "a.*", "a.b", "a.*.b", "a.3.1", "a.99", "n.x", "*.*.*", "a.-1", "..",
        ];
        for p in paths {
            for q in paths {
                let base = obj(odd.clone());
                let _ = target(base.clone(), p);
                let _ = allow(base.clone(), &strings(&[p, q]));
                let mut d = base.clone();
                deny(&mut d, &strings(&[p, q]));
                let mut d = base.clone();
                flatmap(
                    &mut d,
                    &[
                        mv(p, q),
                        FlatmapOp::Append {
                            from: q.into(),
                            to: p.into(),
                        },
                        FlatmapOp::Del(p.into()),
                    ],
                );
            }
        }
    }
}
