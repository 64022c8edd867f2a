//! Cutting a file into YAML documents, and a settings document into its `endpoints:` items,
//! without parsing: the pieces are hashed, and only pieces not seen at the last load are
//! parsed again. A change to one endpoint of a 10,000-endpoint file then parses one item.
//!
//! Cutting items out is only done when the document has the plain block shape writers
//! produce (a top-level `endpoints:` key followed by `- ` items); anything else (flow style,
//! directives, tabs, odd indentation) is parsed whole. An item parsed alone means what it
//! means in place, because a block node's meaning depends only on its own lines and their
//! indentation; the exceptions are aliases to anchors elsewhere, which fail to parse alone
//! and send the document back to the whole-document parse.

/// One document of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Document<'a> {
    /// Its text, from its `---` line (if any) on.
    pub(crate) text: &'a str,
    /// Lines of the file before it.
    pub(crate) line: usize,
}

/// A settings document cut into its `endpoints:` items and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Items<'a> {
    /// The document without its items, `endpoints: []` standing in for them.
    pub(crate) rest: String,
    /// Each item's text (a one-element block sequence) and the lines of the document
    /// before it.
    pub(crate) items: Vec<(&'a str, usize)>,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Whether a line holds nothing but white space or a comment.
fn is_blank(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// Splits a YAML stream into its documents at `---` lines (a `---` at the start of a line
/// always starts a document in YAML, even inside a block scalar). Documents holding only
/// comments, directives or blank lines are dropped.
pub(crate) fn split(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 0;
    let mut content = false;
    let mut directives = false;
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if is_marker(line, "---") {
            if content {
                docs.push(Document {
                    text: &text[start..offset],
                    line: start_line,
                });
            }
            // Directives belong to the document their `---` opens; an empty document
            // before this marker is dropped.
            if content || !directives {
                start = offset;
                start_line = n;
            }
            directives = false;
            content = !is_blank(&line[3..]);
        } else if line.starts_with('%') {
            directives = true;
        } else if !is_blank(line) && !is_marker(line, "...") {
            content = true;
        }
        offset += line.len();
    }
    if content {
        docs.push(Document {
            text: &text[start..],
            line: start_line,
        });
    }
    docs
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Whether `line` starts a block sequence item at column `at`.
fn is_item(line: &str, at: usize) -> bool {
    line.get(at..).is_some_and(|rest| {
        rest.strip_prefix('-')
            .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\r', '\n']))
    })
}

/// Cuts a settings document into its `endpoints:` items, or says it cannot. One pass over
/// the lines: this runs on every reload of a large file.
pub(crate) fn endpoint_items(doc: &str) -> Option<Items<'_>> {
    enum State {
        Before,
        Region,
        After,
    }
    let mut state = State::Before;
    let mut key = (0, 0);
    let mut column = None;
    let mut starts: Vec<(usize, usize)> = Vec::new();
    let mut end = doc.len();
    let mut offset = 0;
    for (n, line) in doc.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        if line.starts_with('%') || line.contains('\t') || is_marker(line, "...") {
            return None;
        }
        match state {
            State::Before => {
                if line.strip_prefix("endpoints:").is_some_and(is_blank) {
                    key = (start, offset);
                    state = State::Region;
                }
            }
            State::Region => {
                if is_blank(line) {
                    continue;
                }
                let ind = indentation(line);
                match column {
                    None if is_item(line, ind) => {
                        column = Some(ind);
                        starts.push((start, n));
                    }
                    None => return None,
                    Some(c) if ind == c && is_item(line, c) => starts.push((start, n)),
                    Some(c) if ind > c => {}
                    Some(_) if ind == 0 => {
                        end = start;
                        state = State::After;
                    }
                    Some(_) => return None,
                }
            }
            // A second `endpoints:` key: the whole-document parse names the problem.
            State::After if line.starts_with("endpoints:") => return None,
            State::After => {}
        }
    }
    let first = starts.first()?.0;
    let items = starts
        .iter()
        .enumerate()
        .map(|(i, &(from, line))| {
            let to = starts.get(i + 1).map_or(end, |next| next.0);
            (&doc[from..to], line)
        })
        .collect();
    let mut rest = String::with_capacity(first + doc.len() - end);
    rest.push_str(&doc[..key.0]);
    rest.push_str("endpoints: []\n");
    rest.push_str(&doc[key.1..first]);
    rest.push_str(&doc[end..]);
    Some(Items { rest, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_document_markers_only() {
        let text = "# head\na: 1\n---\nb: 2\n--- # c\n---\n\n# only a comment\n--- {c: 3}\nx: |\n  ---not\n";
        let docs = split(text);
        let texts: Vec<&str> = docs.iter().map(|d| d.text).collect();
        assert_eq!(
            texts,
            [
                "# head\na: 1\n",
                "---\nb: 2\n",
                "--- {c: 3}\nx: |\n  ---not\n"
            ]
        );
        assert_eq!(docs.iter().map(|d| d.line).collect::<Vec<_>>(), [0, 2, 8]);
    }

    #[test]
    fn directives_stay_with_their_document() {
        let docs = split("%YAML 1.2\n---\na: 1\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].text, "%YAML 1.2\n---\na: 1\n");
        assert!(split("").is_empty());
        assert!(split("# nothing\n---\n\n").is_empty());
    }

    #[test]
    fn cuts_endpoint_items() {
        let doc = "port: 1\nendpoints:\n  - path: /a\n    backends: []\n\n  # between\n  - path: /b\n# tail comment\ntimeout: 1s\n";
        let items = endpoint_items(doc).unwrap();
        assert_eq!(
            items.items,
            [
                ("  - path: /a\n    backends: []\n\n  # between\n", 2),
                ("  - path: /b\n# tail comment\n", 6)
            ]
        );
        assert_eq!(items.rest, "port: 1\nendpoints: []\ntimeout: 1s\n");
        let compact = endpoint_items("endpoints:\n- path: /a\n- path: /b\n").unwrap();
        assert_eq!(compact.items.len(), 2);
        assert_eq!(compact.rest, "endpoints: []\n");
    }

    #[test]
    fn odd_shapes_are_left_whole() {
        for doc in [
            "endpoints: [{path: /a}]\n",
            "endpoints:\n  [ {path: /a} ]\n",
            "endpoints:\n  - path: /a\n - path: /b\n",
            "endpoints:\n\t- path: /a\n",
            "%YAML 1.2\n---\nendpoints:\n  - path: /a\n",
            "port: 1\n",
            "endpoints:\n",
            "endpoints:\n  - path: \"/a\n\"\n",
        ] {
            let cut = endpoint_items(doc);
            assert!(
                cut.as_ref()
                    .is_none_or(|c| c.items.len() == 1 && !doc.contains("/b")),
                "{doc:?}: {cut:?}"
            );
        }
        assert!(endpoint_items("endpoints:\n  - path: /a\n - path: /b\n").is_none());
        assert!(endpoint_items("endpoints: [{path: /a}]\n").is_none());
    }
}
