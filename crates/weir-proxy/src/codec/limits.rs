//! How much memory a decoded body may take, and when decoding leaves the async workers.
//!
//! A backend body is refused before parsing when it is longer than `maxResponseSize`
//! ([`DEFAULT_MAX_RESPONSE_SIZE`] unless the backend sets one). That alone does not bound
//! memory: a decoded tree is much larger than its text, and how much larger depends on its
//! shape, not its length. `[{"a":0},{"a":0},…]` spends 8 bytes of JSON per object, and every
//! non-empty object is a `BTreeMap` whose first leaf node is a 640-byte allocation: about 90
//! bytes of memory per byte of input. So the decoded size is estimated from the body (a
//! counting pre-scan for JSON, a running count while the XML tree is built) with the cost
//! model below, and the body is refused when the estimate passes [`DECODED_SIZE_FACTOR`] ×
//! `maxResponseSize`: whatever the shape, one decoded body holds at most that much memory.
//!
//! The cost model mirrors what `serde_json::Value` allocates on a 64-bit target with the
//! default (`BTreeMap`) map and a malloc that rounds requests to 16 bytes plus an 8-byte
//! header (glibc; jemalloc and mimalloc size classes are no larger):
//! * a non-empty string or key: one allocation of its length;
//! * a non-empty array of `n` values: `Vec` grows by doubling from 4 slots of 32 bytes;
//! * a non-empty object: one leaf node (11 entries) up to 11 entries; beyond that a node per
//!   five entries (nodes split half-full) plus one internal node per five leaves;
//! * numbers, booleans and null live inside their slot.
//!
//! Measured against a counting allocator (release build, 1M-value bodies), memory per byte
//! of JSON and the estimate's error:
//!
//! | body                                  | memory | estimate       |
//! |---------------------------------------|--------|----------------|
//! | `[1,1,…]`                             | 16.8×  | exact          |
//! | `[12345,…]`                           | 5.6×   | exact          |
//! | `[{},…]`, `[[],…]`, `["",…]`          | 11.2×  | exact          |
//! | `[[1],…]`                             | 44×    | exact          |
//! | `[[[1]],…]`                           | 58×    | exact          |
//! | `[{"a":0},…]`                         | 88×    | exact          |
//! | objects of 12 keys                    | 33×    | 1.26× over     |
//! | one object of 1M keys                 | 7.5–8× | 1.34–1.42× over|
//! | user records (a dozen short fields)   | 7.2×   | exact          |
//! | repository records (30 fields)        | 6.7×   | 1.36× over     |
//!
//! XML trees (running count) come out between 1% under (records) and 1.95× over (empty
//! repeated elements); a one-attribute element costs 78× its text.

use std::mem::size_of;

use serde_json::Value;

/// Default `maxResponseSize`: the largest backend body accepted after decompression.
pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 10 * 1024 * 1024;

/// A decoded body may take at most this many times `maxResponseSize` in memory.
///
/// Ordinary API answers decode to 6–10 times their size (JSON records 6.7–7.4×, XML
/// records 9.7×), so a body of ordinary shape at the size limit still decodes, and so
/// does an array of one-digit numbers (16.8×) up to nearly the limit; shapes made to
/// expand are refused well before: arrays of one-key objects (88×) past a fifth of the
/// limit, arrays of one-element arrays (44×) past a third. At the default limit, one
/// decoded body holds at most 160 MiB.
pub const DECODED_SIZE_FACTOR: usize = 16;

/// Bodies longer than this (after decompression) are decoded, and answers rendered, on a
/// blocking thread (`tokio::task::spawn_blocking`) rather than on an async worker.
///
/// Measured on the 2-core development VM under load (release build): 64 KiB of JSON
/// records decodes in 0.43 ms (6.7 µs/KiB), 86 KiB of the same as XML in 0.88 ms
/// (10 µs/KiB); rendering 64 KiB of data takes 0.08 ms as JSON, 0.2 ms as XML, 0.57 ms as
/// YAML. A `spawn_blocking` round trip costs 7 µs (p50; 14 µs p99). At 64 KiB a worker is
/// held for under a millisecond at worst, and the hand-off costs under 2 % of the work it
/// moves.
pub const OFFLOAD_THRESHOLD: usize = 64 * 1024;

/// The decoded-size budget never drops below this, so that a small `maxResponseSize` still
/// admits small answers of any shape (one object alone is a 640-byte node).
pub const MIN_DECODED_BUDGET: usize = 1024 * 1024;

/// The decoded-size budget for a `maxResponseSize` of `limit` bytes:
/// [`DECODED_SIZE_FACTOR`] × `limit`, at least [`MIN_DECODED_BUDGET`].
pub fn decoded_budget(limit: usize) -> usize {
    limit
        .saturating_mul(DECODED_SIZE_FACTOR)
        .max(MIN_DECODED_BUDGET)
}

/// Deepest nesting serde_json accepts; the pre-scan stops counting there because the parse
/// fails at the same point.
const JSON_MAX_DEPTH: usize = 128;

/// What a `Value` slot takes inside an array or a map node.
const VALUE: usize = size_of::<Value>();
/// Entries per B-tree node (`BTreeMap`'s `CAPACITY`).
const NODE_ENTRIES: usize = 11;
/// A `BTreeMap<String, Value>` leaf: parent pointer, keys, values, index and length.
const LEAF_NODE: usize =
    alloc(size_of::<usize>() + NODE_ENTRIES * (size_of::<String>() + VALUE) + 4);
/// An internal node: a leaf plus its 12 child pointers.
const INTERNAL_NODE: usize =
    alloc(size_of::<usize>() + NODE_ENTRIES * (size_of::<String>() + VALUE) + 4 + 12 * 8);

/// The size of a heap block that holds `n` bytes (8-byte header, 16-byte granularity,
/// 32-byte minimum).
const fn alloc(n: usize) -> usize {
    let block = (n + 8 + 15) & !15;
    if block < 32 {
        32
    } else {
        block
    }
}

/// Heap bytes of a string or key of `len` bytes.
pub(crate) const fn string_cost(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        alloc(len)
    }
}

/// Heap bytes of an array of `n` values (grown one push at a time, as serde_json does).
pub(crate) const fn array_cost(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let slots = if n <= 4 { 4 } else { n.next_power_of_two() };
    alloc(slots.saturating_mul(VALUE))
}

/// Heap bytes of the nodes of a map with `n` entries (keys and values not included).
pub(crate) const fn object_cost(n: usize) -> usize {
    if n == 0 {
        0
    } else if n <= NODE_ENTRIES {
        LEAF_NODE
    } else {
        let leaves = n.div_ceil(5);
        leaves * LEAF_NODE + leaves.div_ceil(5) * INTERNAL_NODE
    }
}

/// The cost-model estimate of the memory `serde_json::from_slice::<Value>(body)` allocates.
///
/// One pass over the bytes, no allocation beyond a fixed stack of container counts. The
/// estimate assumes the text is valid JSON; on invalid text it counts what a parser would
/// build before failing (or more), which is what matters. Counting stops at serde_json's
/// nesting limit, where parsing stops too.
pub fn json_decoded_estimate(body: &[u8]) -> usize {
    // (is_array, values so far) per open container.
    let mut stack: Vec<(bool, usize)> = Vec::with_capacity(16);
    let mut total = VALUE;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < body.len() && body[i] != b'"' {
                    // An escape covers the next byte, which may be a quote.
                    i += if body[i] == b'\\' { 2 } else { 1 };
                }
                total = total.saturating_add(string_cost(i.min(body.len()) - start));
            }
            open @ (b'[' | b'{') => {
                if stack.len() == JSON_MAX_DEPTH {
                    return total;
                }
                stack.push((open == b'[', 0));
                // An empty container holds no value; anything else holds at least one.
                let mut j = i + 1;
                while j < body.len() && body[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < body.len() && body[j] != b']' && body[j] != b'}' {
                    if let Some((_, n)) = stack.last_mut() {
                        *n = 1;
                    }
                }
                i = j;
                continue;
            }
            b',' => {
                if let Some((_, n)) = stack.last_mut() {
                    *n += 1;
                }
            }
            b']' | b'}' => {
                if let Some((is_array, n)) = stack.pop() {
                    let cost = if is_array {
                        array_cost(n)
                    } else {
                        object_cost(n)
                    };
                    total = total.saturating_add(cost);
                }
            }
            _ => {}
        }
        i += 1;
    }
    // Containers left open by a truncated body were being built when parsing failed.
    for (is_array, n) in stack {
        let cost = if is_array {
            array_cost(n)
        } else {
            object_cost(n)
        };
        total = total.saturating_add(cost);
    }
    total
}

/// A running total of decoded memory against a budget, for decoders that build their tree
/// themselves (XML).
#[derive(Debug)]
pub(crate) struct Budget {
    used: usize,
    max: usize,
}

/// The budget ran out; holds the budget, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget(pub(crate) usize);

impl Budget {
    /// A budget of `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self { used: VALUE, max }
    }

    /// Adds `bytes`; fails once the total passes the budget.
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<(), OverBudget> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.max {
            Err(OverBudget(self.max))
        } else {
            Ok(())
        }
    }

    /// Charges the growth of a map from `n - 1` to `n` entries.
    pub(crate) fn map_grew(&mut self, n: usize) -> Result<(), OverBudget> {
        self.charge(object_cost(n).saturating_sub(object_cost(n.saturating_sub(1))))
    }

    /// Charges the growth of an array from `n - 1` to `n` values.
    pub(crate) fn array_grew(&mut self, n: usize) -> Result<(), OverBudget> {
        self.charge(array_cost(n).saturating_sub(array_cost(n.saturating_sub(1))))
    }
}
