//! KrakenD's `flatmap_filter`: move, delete and append on dot paths where `*` stands for
//! every array item. The paths are split once, when the table is compiled.

use serde_json::{Map, Value};

use weir_model::FlatmapOp;

/// One operation with its paths split into segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompiledOp {
    /// Moves (renames) `from` to `to`.
    Move {
        /// Source segments.
        from: Vec<String>,
        /// Destination segments.
        to: Vec<String>,
    },
    /// Deletes the path.
    Del(Vec<String>),
    /// Appends the array at `from` to the array at `to`.
    Append {
        /// Source segments.
        from: Vec<String>,
        /// Destination segments.
        to: Vec<String>,
    },
}

fn split(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

impl CompiledOp {
    /// Splits the paths of one configured operation.
    pub fn compile(op: &FlatmapOp) -> Self {
        match op {
            FlatmapOp::Move { from, to } => CompiledOp::Move {
                from: split(from),
                to: split(to),
            },
            FlatmapOp::Del(path) => CompiledOp::Del(split(path)),
            FlatmapOp::Append { from, to } => CompiledOp::Append {
                from: split(from),
                to: split(to),
            },
        }
    }
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
/// replaced, because the moved data is what the operator asked to keep. In an
/// array, a position bound from a `*` over an array is padded up to with nulls;
/// a numeric step past the end appends.
pub fn flatmap(data: &mut Map<String, Value>, ops: &[FlatmapOp]) {
    let compiled: Vec<CompiledOp> = ops.iter().map(CompiledOp::compile).collect();
    apply(data, &compiled);
}

/// [`flatmap`] with the operations compiled beforehand (what the pipeline runs).
pub fn apply(data: &mut Map<String, Value>, ops: &[CompiledOp]) {
    let mut root = Value::Object(std::mem::take(data));
    for op in ops {
        match op {
            CompiledOp::Move { from, to } => relocate(&mut root, from, to, false),
            CompiledOp::Del(path) => {
                // Deleting from the back keeps earlier array indices valid.
                for (concrete, _) in expand(&root, path).into_iter().rev() {
                    remove_at(&mut root, &concrete);
                }
            }
            CompiledOp::Append { from, to } => relocate(&mut root, from, to, true),
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
fn expand(root: &Value, pattern: &[String]) -> Vec<Match> {
    let mut out = Vec::new();
    expand_into(root, pattern, &mut Vec::new(), &mut Vec::new(), &mut out);
    out
}

fn expand_into(
    value: &Value,
    pattern: &[String],
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
    match (value, first.as_str()) {
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
fn bind_destination(pattern: &[String], binds: &[Seg]) -> Option<Vec<Seg>> {
    let mut binds = binds.iter();
    let mut out = Vec::with_capacity(pattern.len());
    for segment in pattern {
        if segment == "*" {
            out.push(binds.next()?.clone());
        } else {
            out.push(Seg::Key(segment.clone()));
        }
    }
    binds.next().is_none().then_some(out)
}

/// Shared body of `Move` (append = false) and `Append` (append = true).
fn relocate(root: &mut Value, from_pattern: &[String], to_pattern: &[String], append: bool) {
    let matches = expand(root, from_pattern);
    let mut pairs = Vec::with_capacity(matches.len());
    for (concrete, binds) in matches {
        let Some(destination) = bind_destination(to_pattern, &binds) else {
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
            let i = match seg {
                // Padding keeps bound positions aligned with the source collection when
                // some of its items did not match; such a position is below the length of
                // an array in memory, so the padding costs no more than that array.
                Seg::Index(i) => *i,
                // A step written as a number (in the configuration, or an object key bound
                // by `*` in an answer) may say anything, `99999999999` included: past the
                // end it appends instead of padding to it.
                Seg::Key(_) => seg.index().map_or(items.len(), |i| i.min(items.len())),
            };
            if i >= items.len() {
                items.resize(i + 1, Value::Null);
            }
            &mut items[i]
        }
        Value::Object(m) => m.entry(seg.key()).or_insert(Value::Null),
        // Unreachable: `current` was made a container above.
        other => other,
    }
}
