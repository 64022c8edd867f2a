//! Configuration sources for local mode: a gateway settings file (YAML or JSON) with an
//! `endpoints:` list, a directory of `kind: Endpoint` manifests, or a KrakenD file
//! (`krakend.json`, version 3; see [`krakend`]). Each loads into one
//! validated [`model::Gateway`]. The [`watch`] module turns file changes into new models.

pub mod krakend;
pub mod krakend_auth;
pub mod settings;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use weir_model::convert::{self as api, Defaults};
use weir_model::spec::EndpointSpec;
use weir_model::{self as model, FieldError, Gateway, Settings};

pub use settings::SettingsFile;

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
    /// The text is not valid YAML/JSON for the schema.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Parser message with the field path.
        message: String,
    },
    /// The configuration parsed but breaks rules.
    #[error("{0}")]
    Invalid(#[from] model::ValidationErrors),
}

/// The result alias of this module.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// A loaded configuration plus non-fatal warnings (e.g. long timeouts).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated model.
    pub gateway: Gateway,
    /// Things worth telling the user that do not stop serving.
    pub warnings: Vec<String>,
}

/// Reads the raw bytes of every file that makes up the configuration at `path`, in a stable
/// order. The watcher fingerprints these to skip reloads that change nothing.
pub fn read_sources(path: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![(path.to_path_buf(), std::fs::read(path).map_err(io)?)]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let p = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Kubernetes ConfigMap mounts keep older generations in dot-directories.
        if name.starts_with('.') {
            continue;
        }
        let is_config = matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        if is_config && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).map_err(|source| ConfigError::Io {
                path: p.clone(),
                source,
            })?;
            Ok((p, bytes))
        })
        .collect()
}

/// Loads and validates the configuration at `path` (file or directory).
pub fn load(path: &Path) -> Result<Loaded> {
    let sources = read_sources(path)?;
    let is_dir = path.is_dir();
    from_sources(&sources, is_dir)
}

/// Endpoints converted by an earlier load, reused as they are (the same shared model) when
/// neither their spec nor the gateway settings changed: a reload of a large configuration
/// then validates only what changed, and the route table recognises the rest by pointer.
#[derive(Debug, Default)]
pub struct ConvertCache {
    settings: Option<Settings>,
    by_origin: HashMap<String, (EndpointSpec, Arc<model::Endpoint>)>,
}

/// Builds the model from already-read sources. A single file is a gateway settings file;
/// a directory holds `kind: Endpoint` manifests and at most one settings document.
pub fn from_sources(sources: &[(PathBuf, Vec<u8>)], is_dir: bool) -> Result<Loaded> {
    from_sources_cached(sources, is_dir, &mut ConvertCache::default())
}

/// [`from_sources`] reusing (and refreshing) `cache`.
pub fn from_sources_cached(
    sources: &[(PathBuf, Vec<u8>)],
    is_dir: bool,
    cache: &mut ConvertCache,
) -> Result<Loaded> {
    let mut settings_doc: Option<(PathBuf, SettingsFile)> = None;
    let mut specs: Vec<(String, EndpointSpec)> = Vec::new();
    let mut warnings = Vec::new();
    for (path, bytes) in sources {
        let text = std::str::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
            path: path.clone(),
            message: format!("not UTF-8: {e}"),
        })?;
        if !is_dir && krakend::is_krakend(text) {
            let imported = krakend::import(path, text)?;
            warnings.extend(imported.warnings);
            specs.extend(imported.endpoints);
            settings_doc = Some((path.clone(), imported.settings));
            continue;
        }
        if !is_dir {
            let file: SettingsFile = parse_doc(path, text, None)?;
            for (i, ep) in file.endpoints.iter().enumerate() {
                specs.push((format!("{}: endpoints[{i}]", path.display()), ep.clone()));
            }
            settings_doc = Some((path.clone(), file));
            continue;
        }
        for (index, doc) in split_documents(text).into_iter().enumerate() {
            let header: DocHeader = parse_doc(path, doc, Some(index))?;
            match header.kind.as_deref() {
                Some("Endpoint") => {
                    let m: Manifest = parse_doc(path, doc, Some(index))?;
                    let name = m
                        .metadata
                        .name
                        .unwrap_or_else(|| format!("document {index}"));
                    specs.push((format!("{}: Endpoint {name}", path.display()), m.spec));
                }
                None => {
                    let file: SettingsFile = parse_doc(path, doc, Some(index))?;
                    if let Some((first, _)) = &settings_doc {
                        return Err(ConfigError::Syntax {
                            path: path.clone(),
                            message: format!(
                                "a second gateway settings document (the first is in {})",
                                first.display()
                            ),
                        });
                    }
                    for (i, ep) in file.endpoints.iter().enumerate() {
                        specs.push((format!("{}: endpoints[{i}]", path.display()), ep.clone()));
                    }
                    settings_doc = Some((path.clone(), file));
                }
                Some(other) => warnings.push(format!(
                    "{}: document {index}: kind {other} ignored (only Endpoint is read)",
                    path.display()
                )),
            }
        }
    }
    let (settings, mut errors) = match &settings_doc {
        Some((path, file)) => file.to_settings(&path.display().to_string()),
        None => (Settings::default(), Vec::new()),
    };
    let gateway = build(settings, specs, &mut errors, &mut warnings, cache);
    if !errors.is_empty() {
        return Err(model::ValidationErrors(errors).into());
    }
    Ok(Loaded { gateway, warnings })
}

/// Converts specs into a gateway, collecting every error and warning; endpoints whose
/// spec (and the settings) are unchanged since the load that filled `cache` are reused.
pub fn build(
    settings: Settings,
    specs: Vec<(String, EndpointSpec)>,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<String>,
    cache: &mut ConvertCache,
) -> Gateway {
    let defaults = Defaults {
        settings: &settings,
        namespace: None,
    };
    let reuse = cache.settings.as_ref() == Some(&settings);
    let mut previous = std::mem::take(&mut cache.by_origin);
    let mut endpoints = Vec::with_capacity(specs.len());
    for (origin, spec) in specs {
        let hit = previous
            .remove(&origin)
            .filter(|(old, _)| reuse && *old == spec)
            .map(|(_, ep)| ep);
        let ep = match hit {
            Some(ep) => ep,
            None => match api::endpoint_to_model(&spec, &defaults, &origin) {
                Ok(ep) => Arc::new(ep),
                Err(errs) => {
                    errors.extend(errs);
                    continue;
                }
            },
        };
        endpoints.push(ep.clone());
        cache.by_origin.insert(origin, (spec, ep));
    }
    cache.settings = Some(settings.clone());
    errors.extend(model::check_duplicates(&endpoints));
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

#[derive(Deserialize)]
struct DocHeader {
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[allow(dead_code)]
    api_version: String,
    #[serde(default)]
    metadata: Metadata,
    spec: EndpointSpec,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
}

/// Splits a multi-document YAML stream on `---` lines, dropping empty documents.
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// Parses one YAML (or JSON, a YAML subset) document, naming the field path on error.
fn parse_doc<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    index: Option<usize>,
) -> Result<T> {
    let doc = index.map(|i| format!("document {i}: ")).unwrap_or_default();
    let syntax = |field: String, inner: String| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: if field == "." || field.is_empty() {
            format!("{doc}{inner}")
        } else {
            format!("{doc}{field}: {inner}")
        },
    };
    // JSON is YAML too, but a JSON parser reads a large generated file many times faster.
    if text.trim_start().starts_with('{') {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| syntax(e.path().to_string(), e.into_inner().to_string()))?;
        de.end().map_err(|e| syntax(String::new(), e.to_string()))?;
        return Ok(value);
    }
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| syntax(e.path().to_string(), e.into_inner().to_string()))
}

#[cfg(test)]
mod tests;
