//! Configuration sources for local mode: files holding a gateway settings document (YAML or
//! JSON, with an `endpoints:` list) and/or `kind: Endpoint` manifests, directories of such
//! files, or a KrakenD file (`krakend.json`, version 3; see [`krakend`]). Each loads into one
//! validated [`model::Gateway`]. The [`watch`] module turns file changes into new models.

pub mod krakend;
pub mod krakend_auth;
pub mod krakend_tls;
pub mod settings;
pub mod watch;
pub mod yaml;

mod diagnose;
mod documents;
mod parse;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use weir_model::convert::{self as api, Defaults};
use weir_model::spec::EndpointSpec;
use weir_model::{self as model, FieldError, Gateway, Settings};

pub use settings::SettingsFile;
pub use yaml::{Position, MAX_DEPTH};

/// Problems shown at most per error, so a file broken the same way 10,000 times stays
/// readable.
const MAX_PROBLEMS_SHOWN: usize = 100;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid YAML or JSON, or does not fit the schema: every problem found.
    #[error("{0}")]
    Parse(Problems),
    /// The configuration parsed but breaks rules.
    #[error("{0}")]
    Invalid(#[from] model::ValidationErrors),
}

/// The result alias of this module.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// One problem found while reading a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Where in the file, when known.
    pub at: Option<Position>,
    /// The field path (`endpoints[2].backends[0].urlPattern`), empty for the document.
    pub field: String,
    /// What is wrong and, where possible, what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(at) = self.at {
            write!(f, ":{}:{}", at.line, at.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in the files of one configuration, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().take(MAX_PROBLEMS_SHOWN).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        if self.0.len() > MAX_PROBLEMS_SHOWN {
            write!(
                f,
                "\n... and {} more problems",
                self.0.len() - MAX_PROBLEMS_SHOWN
            )?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// One problem of `file`, anywhere in it.
    pub(crate) fn in_file(file: &Path, message: impl Into<String>) -> Self {
        Self::Parse(Problems(vec![Problem {
            file: file.to_path_buf(),
            at: None,
            field: String::new(),
            message: message.into(),
        }]))
    }
}

/// What a configuration is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// To serve it (`weir run`, the controller's settings): every backend must be reachable
    /// from here.
    #[default]
    Serve,
    /// To check it offline (`weir check`): `service:` backends of `kind: Endpoint`
    /// manifests are checked for shape only, since resolving them needs a cluster.
    Check,
}

/// A loaded configuration plus what is worth telling the user.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated model.
    pub gateway: Gateway,
    /// Things worth fixing that do not stop serving (long timeouts, ignored features).
    pub warnings: Vec<String>,
    /// Information: documents of other kinds skipped, checks that need a cluster.
    pub notes: Vec<String>,
}

fn is_config_file(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Reads the raw bytes of every file that makes up the configuration at `path`, in a stable
/// order. The watcher fingerprints these to skip reloads that change nothing.
pub fn read_sources(path: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    read_tree(path, false)
}

/// [`read_sources`], descending into subdirectories when `recursive`. Names starting with
/// `.` are skipped: Kubernetes ConfigMap mounts keep older generations in dot-directories.
pub fn read_tree(path: &Path, recursive: bool) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ConfigError::Io { path: p, source }
    };
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if !meta.is_dir() {
        return Ok(vec![(
            path.to_path_buf(),
            std::fs::read(path).map_err(io(path))?,
        )]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                if recursive {
                    dirs.push(p);
                }
            } else if is_config_file(&p) && p.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            Ok((p, bytes))
        })
        .collect()
}

/// Loads and validates the configuration at `path` (file or directory) for serving.
pub fn load(path: &Path) -> Result<Loaded> {
    let sources = read_sources(path)?;
    from_sources(&sources, path.is_dir())
}

/// Loads and validates the configuration at `path` for `weir check`: like [`load`], but
/// the `service:` backends of manifests are checked for shape only, and a directory can
/// be read with its subdirectories.
pub fn check(path: &Path, recursive: bool) -> Result<Loaded> {
    let sources = read_tree(path, recursive)?;
    parse::assemble(
        &sources,
        path.is_dir(),
        Purpose::Check,
        &mut ConvertCache::default(),
    )
}

/// What earlier loads parsed and converted, reused while unchanged: documents and
/// `endpoints:` items by the hash of their text (so a reload parses only what changed),
/// and converted endpoints (the same shared model, which the route table recognises by
/// pointer) while neither their spec nor the gateway settings changed.
#[derive(Debug, Default)]
pub struct ConvertCache {
    settings: Option<Settings>,
    by_origin: HashMap<String, Converted>,
    parsed: parse::Parsed,
    routes: Routes,
}

/// The route keys of the endpoints of the last load that had no duplicate, so the next
/// load checks only the endpoints it adds: a one-endpoint change to 10,000 endpoints
/// computes one route key, not 10,000.
#[derive(Debug, Default)]
struct Routes {
    /// Route key of each endpoint, by the address of its shared model (held, so the
    /// address cannot be reused by another model while it is here).
    by_model: HashMap<usize, (Arc<model::Endpoint>, model::RouteKey)>,
    /// Every key in `by_model`.
    keys: std::collections::HashSet<model::RouteKey>,
}

impl Routes {
    /// Whether two of `endpoints` claim the same route. Without duplicates the new set
    /// is remembered; with one, the caller runs the full check for its messages.
    fn has_duplicates(&mut self, endpoints: &[Arc<model::Endpoint>]) -> bool {
        let current: std::collections::HashSet<usize> =
            endpoints.iter().map(|e| Arc::as_ptr(e) as usize).collect();
        if current.len() != endpoints.len() {
            return true;
        }
        let mut keys = std::mem::take(&mut self.keys);
        let mut by_model = std::mem::take(&mut self.by_model);
        by_model.retain(|ptr, (_, key)| {
            let kept = current.contains(ptr);
            if !kept {
                keys.remove(key);
            }
            kept
        });
        for ep in endpoints {
            let ptr = Arc::as_ptr(ep) as usize;
            if by_model.contains_key(&ptr) {
                continue;
            }
            let key = ep.route_key();
            if !keys.insert(key.clone()) {
                return true;
            }
            by_model.insert(ptr, (ep.clone(), key));
        }
        self.keys = keys;
        self.by_model = by_model;
        false
    }
}

/// An endpoint converted by an earlier load: its spec, the namespace it was converted in,
/// and the model.
type Converted = (Arc<EndpointSpec>, Option<String>, Arc<model::Endpoint>);

/// Builds the model from already-read sources. Every file may hold several YAML documents:
/// at most one gateway settings document (no `kind`) in the whole configuration, and
/// `kind: Endpoint` manifests; other kinds are skipped with a note. A single JSON file
/// with a top-level `version` is a KrakenD configuration. `is_dir` says whether the
/// sources came from a directory.
pub fn from_sources(sources: &[(PathBuf, Vec<u8>)], is_dir: bool) -> Result<Loaded> {
    from_sources_cached(sources, is_dir, &mut ConvertCache::default())
}

/// [`from_sources`] reusing (and refreshing) `cache`.
pub fn from_sources_cached(
    sources: &[(PathBuf, Vec<u8>)],
    is_dir: bool,
    cache: &mut ConvertCache,
) -> Result<Loaded> {
    parse::assemble(sources, is_dir, Purpose::Serve, cache)
}

/// An endpoint spec to convert, with where it came from.
#[derive(Debug, Clone)]
pub struct SpecEntry {
    /// File and place (`gw.yaml: endpoints[3]`, `users.yaml: Endpoint users`).
    pub origin: String,
    /// The spec as parsed.
    pub spec: Arc<EndpointSpec>,
    /// The manifest's namespace when `service:` backends may be converted (checks only).
    pub namespace: Option<String>,
}

/// Converts specs into a gateway, collecting every error and warning; endpoints whose
/// spec (and the settings) are unchanged since the load that filled `cache` are reused.
pub fn build(
    settings: Settings,
    specs: Vec<SpecEntry>,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<String>,
    cache: &mut ConvertCache,
) -> Gateway {
    let reuse = cache.settings.as_ref() == Some(&settings);
    let mut previous = std::mem::replace(&mut cache.by_origin, HashMap::with_capacity(specs.len()));
    let mut endpoints = Vec::with_capacity(specs.len());
    for SpecEntry {
        origin,
        spec,
        namespace,
    } in specs
    {
        let hit = previous
            .remove(&origin)
            .filter(|(old, ns, _)| {
                reuse && *ns == namespace && (Arc::ptr_eq(old, &spec) || **old == *spec)
            })
            .map(|(_, _, ep)| ep);
        let ep = match hit {
            Some(ep) => ep,
            None => {
                let defaults = Defaults {
                    settings: &settings,
                    namespace: namespace.as_deref(),
                };
                match api::endpoint_to_model(&spec, &defaults, &origin) {
                    Ok(ep) => Arc::new(ep),
                    Err(errs) => {
                        errors.extend(errs);
                        continue;
                    }
                }
            }
        };
        endpoints.push(ep.clone());
        cache.by_origin.insert(origin, (spec, namespace, ep));
    }
    cache.settings = Some(settings.clone());
    if cache.routes.has_duplicates(&endpoints) {
        errors.extend(model::check_duplicates(&endpoints));
    }
    for ep in &endpoints {
        if ep.timeout > model::LONG_TIMEOUT {
            warnings.push(format!(
                "{}: endpoint {}: timeout: {} is above {}; slow endpoints hold connections and memory",
                ep.origin,
                ep.path,
                model::format_go(ep.timeout),
                model::format_go(model::LONG_TIMEOUT)
            ));
        }
    }
    Gateway {
        settings,
        endpoints,
    }
}

#[cfg(test)]
mod tests;
