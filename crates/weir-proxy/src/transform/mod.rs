//! Per-backend response manipulation with KrakenD (lura) semantics.
//!
//! Every function works on the decoded JSON object of one backend response.
//! The pipeline applies them in the documented order (docs/configuration.md, "Backend"): `target`, `allow`/`deny`,
//! `mapping`, `group`; a backend with `flatmap` operations uses them in place
//! of `allow`/`deny`/`mapping` (see `backend::apply_transforms`).
//!
//! Paths are dot separated (`"a.b.c"`). None of these functions panic: a path
//! step that meets a value of an unexpected type simply does not match.

pub mod flatmap;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub use flatmap::flatmap;
use flatmap::CompiledOp;

/// A backend's transforms compiled once: paths split, the allow tree built, in the order
/// docs/configuration.md gives (target → allow/deny → mapping → group; flatmap replaces
/// allow/deny/mapping).
///
/// Most backends transform nothing: their plan is `None`, one pointer instead of the ~150
/// bytes of the steps (1.5 MB at 10,000 endpoints).
#[derive(Debug, Default)]
pub struct TransformPlan(Option<Box<Steps>>);

#[derive(Debug, Default)]
struct Steps {
    target: Option<Vec<String>>,
    allow: Option<AllowTree>,
    deny: Vec<Vec<String>>,
    mapping: BTreeMap<String, String>,
    flatmap: Vec<CompiledOp>,
    group: Option<String>,
}

fn split(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

impl TransformPlan {
    /// Compiles a backend's transform settings.
    pub fn compile(b: &weir_model::Backend) -> Self {
        let steps = Steps::compile(b);
        TransformPlan((!steps.is_identity()).then(|| Box::new(steps)))
    }

    /// Whether applying the plan changes nothing.
    pub fn is_identity(&self) -> bool {
        self.0.is_none()
    }

    /// Runs the plan on one decoded answer.
    pub fn apply(&self, data: Map<String, Value>) -> Map<String, Value> {
        match &self.0 {
            Some(steps) => steps.apply(data),
            None => data,
        }
    }
}

impl Steps {
    fn compile(b: &weir_model::Backend) -> Self {
        let flatmap: Vec<CompiledOp> = b.flatmap.iter().map(CompiledOp::compile).collect();
        let (allow, deny, mapping) = if flatmap.is_empty() {
            (
                (!b.allow.is_empty()).then(|| AllowTree::build(&b.allow)),
                if b.allow.is_empty() {
                    b.deny.iter().map(|p| split(p)).collect()
                } else {
                    Vec::new()
                },
                b.mapping.clone(),
            )
        } else {
            (None, Vec::new(), BTreeMap::new())
        };
        Self {
            target: b.target.as_deref().map(split),
            allow,
            deny,
            mapping,
            flatmap,
            group: b.group.clone(),
        }
    }

    fn is_identity(&self) -> bool {
        self.target.is_none()
            && self.allow.is_none()
            && self.deny.is_empty()
            && self.mapping.is_empty()
            && self.flatmap.is_empty()
            && self.group.is_none()
    }

    fn apply(&self, mut data: Map<String, Value>) -> Map<String, Value> {
        if let Some(t) = &self.target {
            data = target_split(data, t);
        }
        if !self.flatmap.is_empty() {
            flatmap::apply(&mut data, &self.flatmap);
        } else {
            if let Some(tree) = &self.allow {
                data = prune_map(data, tree);
            }
            for path in &self.deny {
                deny_in_map(&mut data, path);
            }
            if !self.mapping.is_empty() {
                mapping(&mut data, &self.mapping);
            }
        }
        if let Some(g) = &self.group {
            data = group(data, g);
        }
        data
    }
}

/// Keeps only the object found at the dot path `path`.
///
/// A missing path, or one that leads to anything but an object, yields an
/// empty map, as lura does.
pub fn target(data: Map<String, Value>, path: &str) -> Map<String, Value> {
    target_split(data, &split(path))
}

fn target_split(mut data: Map<String, Value>, path: &[String]) -> Map<String, Value> {
    let Some((first, rest)) = path.split_first() else {
        return Map::new();
    };
    let mut current = match data.remove(first) {
        Some(v) => v,
        None => return Map::new(),
    };
    for segment in rest {
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
#[derive(Debug, Default)]
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
        deny_in_map(data, &split(path));
    }
}

fn deny_in_map(data: &mut Map<String, Value>, segments: &[String]) {
    match segments {
        [] => {}
        [last] => {
            data.remove(last);
        }
        [first, rest @ ..] => {
            if let Some(child) = data.get_mut(first) {
                deny_in_value(child, rest);
            }
        }
    }
}

fn deny_in_value(value: &mut Value, segments: &[String]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_model::FlatmapOp;

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

    /// Found by the `transform` fuzz target (fuzz/regressions/transform/): a numeric step
    /// into an array padded the array up to it, so `99999999999` (configured, or an object
    /// key of a backend's answer bound by `*`) asked for terabytes and aborted the process.
    #[test]
    fn flatmap_numeric_steps_past_the_end_append() {
        let huge = "99999999999999999";
        let mut data = obj(json!({"m": [0], "src": {huge: {"a": 1}}}));
        flatmap(&mut data, &[mv("src.*.a", "m.*.v")]);
        assert_eq!(data, obj(json!({"m": [0, {"v": 1}], "src": {huge: {}}})));
        let mut data = obj(json!({"m": [0], "x": 1, "y": 2}));
        flatmap(
            &mut data,
            &[mv("x", "m.18446744073709551615"), mv("y", "m.5")],
        );
        assert_eq!(data, obj(json!({"m": [0, 1, 2]})));
        // Positions bound from an array still pad, keeping items aligned.
        let mut data = obj(json!({"l": [{"b": 1}, {"a": 2}], "m": []}));
        flatmap(&mut data, &[mv("l.*.a", "m.*")]);
        assert_eq!(data, obj(json!({"l": [{"b": 1}, {}], "m": [null, 2]})));
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
