//! Header and query-string whitelists, compiled once: header names are parsed into
//! `HeaderName`s (compared by the interned value, never re-parsed), and a backend's
//! second-level list is intersected with its endpoint's at reload time.

use http::HeaderName;

use weir_model::NameFilter;

/// Which client headers a backend receives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HeaderFilter {
    /// None.
    #[default]
    None,
    /// Every forwardable header.
    All,
    /// Only these (a handful: a linear scan over interned names beats hashing).
    Only(Vec<HeaderName>),
}

impl HeaderFilter {
    /// Compiles the effective filter: the endpoint's, filtered again by the backend's.
    pub fn compile(endpoint: &NameFilter, backend: Option<&NameFilter>) -> Self {
        let effective = match backend {
            Some(second) => endpoint.intersect(second),
            None => endpoint.clone(),
        };
        match effective {
            NameFilter::None => HeaderFilter::None,
            NameFilter::All => HeaderFilter::All,
            // Validation accepts only valid header names; an invalid one can never match.
            NameFilter::Only(names) => HeaderFilter::Only(
                names
                    .iter()
                    .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                    .collect(),
            ),
        }
    }

    /// Whether `name` passes.
    pub fn allows(&self, name: &HeaderName) -> bool {
        match self {
            HeaderFilter::None => false,
            HeaderFilter::All => true,
            HeaderFilter::Only(names) => names.iter().any(|n| n == name),
        }
    }

    /// Whether nothing passes (the request's headers need not be walked at all).
    pub fn is_none(&self) -> bool {
        matches!(self, HeaderFilter::None)
    }
}

/// Which query-string keys a backend receives (case-sensitive, as KrakenD).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum QueryFilter {
    /// None.
    #[default]
    None,
    /// Every key.
    All,
    /// Only these keys.
    Only(Vec<String>),
}

impl QueryFilter {
    /// Compiles the effective filter: the endpoint's, filtered again by the backend's.
    pub fn compile(endpoint: &NameFilter, backend: Option<&NameFilter>) -> Self {
        let effective = match backend {
            Some(second) => endpoint.intersect(second),
            None => endpoint.clone(),
        };
        match effective {
            NameFilter::None => QueryFilter::None,
            NameFilter::All => QueryFilter::All,
            NameFilter::Only(keys) => QueryFilter::Only(keys),
        }
    }

    /// Whether `key` passes.
    pub fn allows(&self, key: &str) -> bool {
        match self {
            QueryFilter::None => false,
            QueryFilter::All => true,
            QueryFilter::Only(keys) => keys.iter().any(|k| k == key),
        }
    }

    /// Whether nothing passes.
    pub fn is_none(&self) -> bool {
        matches!(self, QueryFilter::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_lists_filter_the_endpoint_list_again() {
        let ep = NameFilter::from_list(&["X-A".into(), "x-b".into()], true);
        let be = NameFilter::from_list(&["x-b".into(), "x-c".into()], true);
        let f = HeaderFilter::compile(&ep, Some(&be));
        assert!(f.allows(&HeaderName::from_static("x-b")));
        assert!(!f.allows(&HeaderName::from_static("x-a")));
        let f = HeaderFilter::compile(&ep, None);
        assert!(f.allows(&HeaderName::from_static("x-a")));
        assert!(HeaderFilter::compile(&NameFilter::None, None).is_none());
        let q = QueryFilter::compile(&NameFilter::All, None);
        assert!(q.allows("anything"));
        let q = QueryFilter::compile(&NameFilter::from_list(&["Page".into()], false), None);
        assert!(q.allows("Page") && !q.allows("page"));
    }
}
