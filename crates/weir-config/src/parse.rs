//! From file bytes to endpoint specs: documents, their kinds, the parse cache, and the
//! problems, each with its file, position and field path.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;

use weir_model::spec::EndpointSpec;
use weir_model::{self as model, FieldError, Settings};

use crate::diagnose::{self, Found};
use crate::documents::{self, Items};
use crate::yaml::{self, Position};
use crate::{
    build, krakend, ConfigError, ConvertCache, Loaded, Problem, Problems, Purpose, Result,
    SettingsFile, SpecEntry,
};

/// `apiVersion` group of Weir's resources.
const GROUP: &str = "weir.dev";

/// Why an empty file is an error rather than a configuration with no routes.
const EMPTY: &str = "the file is empty (no YAML document); an empty configuration is refused \
    so that a file caught half-written never replaces the routes (write `endpoints: []` to \
    serve no endpoint)";

/// Parse results by the hash of their text: whole documents, and `endpoints:` items.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    docs: HashMap<u64, Arc<Doc>, TextHash>,
    items: HashMap<u64, Arc<EndpointSpec>, TextHash>,
}

impl Parsed {
    /// An empty generation with room for as many pieces as `like` holds.
    fn sized_like(like: &Parsed) -> Self {
        Self {
            docs: HashMap::with_capacity_and_hasher(like.docs.len(), TextHash),
            items: HashMap::with_capacity_and_hasher(like.items.len(), TextHash),
        }
    }
}

/// The keys of [`Parsed`] are already hashes of the text: used as they are, not hashed again.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TextHash;

impl std::hash::BuildHasher for TextHash {
    type Hasher = KeyAsHash;
    fn build_hasher(&self) -> KeyAsHash {
        KeyAsHash(0)
    }
}

/// A hasher for `u64` keys that are hashes already.
#[derive(Debug, Default)]
pub(crate) struct KeyAsHash(u64);

impl Hasher for KeyAsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys reach this hasher; fold anything else in all the same.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// What a document holds.
#[derive(Debug)]
enum Doc {
    /// Gateway settings (their `endpoints` moved out into the list).
    Settings {
        file: Box<SettingsFile>,
        endpoints: Vec<Arc<EndpointSpec>>,
    },
    /// A `kind: Endpoint` manifest.
    Endpoint {
        name: Option<String>,
        namespace: Option<String>,
        spec: Arc<EndpointSpec>,
    },
    /// A document of some other kind (a Deployment, a ConfigMap): not ours.
    Foreign { kind: String, api_version: String },
    /// A KrakenD configuration: a JSON object with a top-level `version`.
    Krakend,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, rename = "apiVersion")]
    api_version: Option<String>,
}

#[derive(Deserialize)]
struct JsonProbe {
    #[serde(default)]
    version: Option<IgnoredAny>,
    #[serde(default)]
    kind: Option<IgnoredAny>,
}

/// A `kind: Endpoint` manifest as read from a file.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    spec: EndpointSpec,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

fn hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

fn looks_like_json(text: &str) -> bool {
    text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n'])
        .starts_with('{')
}

/// serde_json's message without the position it appends (reported beside it).
pub(crate) fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_string()
}

pub(crate) fn json_position(e: &serde_json::Error) -> Option<Position> {
    // serde_json counts a position before the first character of a line as column 0.
    (e.line() > 0).then(|| Position {
        line: e.line() as u64,
        column: e.column().max(1) as u64,
    })
}

/// The problems a document whose strict parse failed with `strict` has: every one the
/// diagnosis finds, and serde's own if the diagnosis missed it (serde decides validity).
fn explain(found: Option<Vec<Found>>, strict: Found) -> Vec<Found> {
    let mut found = found.unwrap_or_default();
    let line = strict.at.map(|a| a.line);
    if found.is_empty() || (line.is_some() && !found.iter().any(|f| f.at.map(|a| a.line) == line)) {
        found.push(strict);
        found.sort();
    }
    found
}

/// Parses one document into `T`, or lists every problem it has.
fn typed<T: DeserializeOwned>(text: &str, json: bool) -> std::result::Result<T, Vec<Found>> {
    if json {
        let e = match serde_json::from_str::<T>(text) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let strict = Found {
            at: json_position(&e),
            field: String::new(),
            message: json_message(&e),
        };
        if e.is_syntax() || e.is_eof() {
            return Err(vec![Found {
                message: format!("invalid JSON: {}", strict.message),
                ..strict
            }]);
        }
        return Err(explain(diagnose::json_problems::<T>(text), strict));
    }
    let e = match yaml::from_str::<T>(text, 0) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let strict = Found {
        at: yaml::position(&e),
        field: String::new(),
        message: yaml::message(&e),
    };
    match diagnose::yaml_problems::<T>(text) {
        Some(Ok(found)) => Err(explain(Some(found), strict)),
        // Not even a tree: a syntax error, too deep, a duplicate key.
        Some(Err(e)) => Err(vec![Found {
            at: yaml::position(&e),
            field: String::new(),
            message: format!("invalid YAML: {}", yaml::message(&e)),
        }]),
        None => Err(vec![strict]),
    }
}

/// Parses a whole document.
fn parse_whole(text: &str, json_file: bool) -> std::result::Result<Doc, Vec<Found>> {
    let mut json = looks_like_json(text);
    if json {
        match serde_json::from_str::<JsonProbe>(text) {
            Ok(p) if p.version.is_some() && p.kind.is_none() => return Ok(Doc::Krakend),
            Err(e) if (e.is_syntax() || e.is_eof()) && json_file => {
                return Err(vec![Found {
                    at: json_position(&e),
                    field: String::new(),
                    message: format!("invalid JSON: {}", json_message(&e)),
                }]);
            }
            // A flow-style YAML mapping (`{port: 8080}`) is not JSON: read it as YAML.
            Err(e) if e.is_syntax() || e.is_eof() => json = false,
            _ => {}
        }
    }
    let header = if json {
        serde_json::from_str::<Header>(text).ok()
    } else {
        yaml::from_str::<Header>(text, 0).ok()
    };
    // Unreadable headers come from documents broken at the top: the settings schema
    // explains them (a syntax error, a list where a mapping belongs).
    let Some(header) = header else {
        return typed::<SettingsFile>(text, json).map(settings);
    };
    let Some(kind) = header.kind else {
        return typed::<SettingsFile>(text, json).map(settings);
    };
    let api_version = header.api_version.unwrap_or_default();
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    if kind != "Endpoint" || group != GROUP {
        return Ok(Doc::Foreign { kind, api_version });
    }
    if api_version != krakend::API_VERSION {
        return Err(vec![Found {
            at: Some(Position { line: 1, column: 1 }),
            field: "apiVersion".into(),
            message: format!(
                "{api_version} is not a version Weir reads; use {}",
                krakend::API_VERSION
            ),
        }]);
    }
    let m = typed::<Manifest>(text, json)?;
    Ok(Doc::Endpoint {
        name: m.metadata.name,
        namespace: m.metadata.namespace,
        spec: Arc::new(m.spec),
    })
}

fn settings(mut file: SettingsFile) -> Doc {
    let endpoints = std::mem::take(&mut file.endpoints)
        .into_iter()
        .map(Arc::new)
        .collect();
    Doc::Settings {
        file: Box::new(file),
        endpoints,
    }
}

/// Parse results of this load, moved over from the last one where the text is unchanged.
struct Generation<'c> {
    previous: &'c mut Parsed,
    next: Parsed,
}

impl Generation<'_> {
    fn doc(&mut self, text: &str, json_file: bool) -> std::result::Result<Arc<Doc>, Vec<Found>> {
        let key = hash(text);
        if let Some(doc) = self.next.docs.get(&key) {
            return Ok(doc.clone());
        }
        let doc = match self.previous.docs.remove(&key) {
            Some(doc) => doc,
            None => Arc::new(parse_whole(text, json_file)?),
        };
        self.next.docs.insert(key, doc.clone());
        Ok(doc)
    }

    fn item(&mut self, text: &str) -> Option<Arc<EndpointSpec>> {
        let key = hash(text);
        if let Some(spec) = self.next.items.get(&key) {
            return Some(spec.clone());
        }
        let spec = match self.previous.items.remove(&key) {
            Some(spec) => spec,
            None => {
                // One level below the root in place, so one level less of budget alone.
                let mut one: Vec<EndpointSpec> = yaml::from_str(text, 1).ok()?;
                if one.len() != 1 {
                    return None;
                }
                Arc::new(one.pop()?)
            }
        };
        self.next.items.insert(key, spec.clone());
        Some(spec)
    }

    /// A settings document from its cut-out items, or `None` when any piece does not
    /// parse alone (the whole document then explains why).
    fn settings_from_items(&mut self, cut: &Items<'_>) -> Option<Arc<Doc>> {
        let rest = self.doc(&cut.rest, false).ok()?;
        let Doc::Settings { file, endpoints } = &*rest else {
            return None;
        };
        if !endpoints.is_empty() {
            return None;
        }
        let specs = cut
            .items
            .iter()
            .map(|(text, _)| self.item(text))
            .collect::<Option<Vec<_>>>()?;
        Some(Arc::new(Doc::Settings {
            file: file.clone(),
            endpoints: specs,
        }))
    }

    fn document(
        &mut self,
        text: &str,
        json_file: bool,
    ) -> std::result::Result<Arc<Doc>, Vec<Found>> {
        if !looks_like_json(text) {
            if let Some(doc) =
                documents::endpoint_items(text).and_then(|cut| self.settings_from_items(&cut))
            {
                return Ok(doc);
            }
        }
        self.doc(text, json_file)
    }
}

/// Checks the shape of the `service:` backends of a manifest checked offline; returns how
/// many there are.
fn check_services(entry: &SpecEntry, errors: &mut Vec<FieldError>) -> usize {
    let Some(namespace) = &entry.namespace else {
        return 0;
    };
    let mut n = 0;
    for (i, b) in entry.spec.backends.iter().enumerate() {
        let Some(svc) = &b.service else { continue };
        n += 1;
        let mut err = |field: &str, message: String| {
            errors.push(FieldError {
                origin: entry.origin.clone(),
                endpoint: Some(entry.spec.path.clone()),
                field: format!("backends[{i}].service.{field}"),
                message,
            })
        };
        if let Err(why) = dns_label(&svc.name, true) {
            err(
                "name",
                format!("{:?} is not a Service name: {why}", svc.name),
            );
        }
        let ns = svc.namespace.as_deref().unwrap_or(namespace);
        if let Err(why) = dns_label(ns, false) {
            err(
                "namespace",
                format!("{ns:?} is not a namespace name: {why}"),
            );
        }
        if svc.port == 0 {
            err("port", "must be from 1 to 65535".into());
        }
    }
    n
}

/// Whether `name` is a DNS label as Kubernetes names Services (RFC 1035: starts with a
/// letter) and namespaces (RFC 1123).
fn dns_label(name: &str, letter_first: bool) -> std::result::Result<(), &'static str> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 63 {
        return Err("it must be 1 to 63 characters long");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err("only lowercase letters, digits and '-' are allowed");
    }
    if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Err("it must start and end with a letter or digit");
    }
    if letter_first && !bytes[0].is_ascii_lowercase() {
        return Err("it must start with a letter");
    }
    Ok(())
}

/// Builds the model from already-read sources; see [`crate::from_sources`].
pub(crate) fn assemble(
    sources: &[(PathBuf, Vec<u8>)],
    is_dir: bool,
    purpose: Purpose,
    cache: &mut ConvertCache,
) -> Result<Loaded> {
    let mut previous = std::mem::take(&mut cache.parsed);
    let next = Parsed::sized_like(&previous);
    let mut generation = Generation {
        previous: &mut previous,
        next,
    };
    let mut problems = Vec::new();
    let mut errors = Vec::new();
    let mut settings_doc: Option<(&Path, SettingsFile)> = None;
    let mut specs = Vec::new();
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    let problem = |file: &Path, at: Option<Position>, field: String, message: String| Problem {
        file: file.to_path_buf(),
        at,
        field,
        message,
    };
    for (path, bytes) in sources {
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                problems.push(problem(
                    path,
                    None,
                    String::new(),
                    format!("not UTF-8 text: {e}"),
                ));
                continue;
            }
        };
        let docs = documents::split(text);
        if docs.is_empty() {
            problems.push(problem(path, None, String::new(), EMPTY.into()));
            continue;
        }
        let json_file = path.extension().is_some_and(|e| e == "json");
        let file = path.display();
        for (index, d) in docs.iter().enumerate() {
            let doc =
                match generation.document(d.text, json_file) {
                    Ok(doc) => doc,
                    Err(found) => {
                        problems.extend(found.into_iter().map(|f| {
                            problem(path, f.at.map(|a| a.below(d.line)), f.field, f.message)
                        }));
                        continue;
                    }
                };
            let here = Some(Position { line: 1, column: 1 }.below(d.line));
            match &*doc {
                Doc::Krakend if is_dir || docs.len() > 1 || sources.len() > 1 => {
                    problems.push(problem(
                        path,
                        here,
                        String::new(),
                        "a KrakenD configuration (a JSON object with \"version\") is read only on \
                         its own: pass its path to weir run or weir check, or turn it into \
                         manifests with weir convert"
                            .into(),
                    ));
                }
                Doc::Krakend => match krakend::import(path, d.text) {
                    Ok(imported) => {
                        warnings.extend(imported.warnings);
                        specs.extend(imported.endpoints.into_iter().map(|(origin, spec)| {
                            SpecEntry {
                                origin,
                                spec: Arc::new(spec),
                                namespace: None,
                            }
                        }));
                        settings_doc = Some((path, imported.settings));
                    }
                    Err(ConfigError::Parse(p)) => problems.extend(p.0),
                    Err(ConfigError::Invalid(v)) => errors.extend(v.0),
                    Err(e @ ConfigError::Io { .. }) => return Err(e),
                },
                Doc::Settings { file: s, endpoints } => {
                    if let Some((first, _)) = &settings_doc {
                        problems.push(problem(
                            path,
                            here,
                            String::new(),
                            format!(
                                "a second gateway settings document (a document without \
                                 `kind`); the first is in {}",
                                first.display()
                            ),
                        ));
                        continue;
                    }
                    specs.extend(endpoints.iter().enumerate().map(|(i, spec)| SpecEntry {
                        origin: format!("{file}: endpoints[{i}]"),
                        spec: spec.clone(),
                        namespace: None,
                    }));
                    settings_doc = Some((path, (**s).clone()));
                }
                Doc::Endpoint {
                    name,
                    namespace,
                    spec,
                } => {
                    let name = name.clone().unwrap_or_else(|| format!("document {index}"));
                    specs.push(SpecEntry {
                        origin: format!("{file}: Endpoint {name}"),
                        spec: spec.clone(),
                        namespace: (purpose == Purpose::Check)
                            .then(|| namespace.clone().unwrap_or_else(|| "default".into())),
                    });
                }
                Doc::Foreign { kind, api_version } => {
                    let line = d.line + 1;
                    notes.push(if api_version.is_empty() {
                        format!("{file}:{line}: kind {kind} skipped (not a Weir resource)")
                    } else {
                        format!("{file}:{line}: kind {kind} ({api_version}) skipped (not a Weir resource)")
                    });
                }
            }
        }
    }
    cache.parsed = generation.next;
    if !problems.is_empty() {
        return Err(ConfigError::Parse(Problems(problems)));
    }
    let (settings, settings_errors) = match &settings_doc {
        Some((path, file)) => file.to_settings(&path.display().to_string()),
        None => (Settings::default(), Vec::new()),
    };
    errors.extend(settings_errors);
    let mut services = 0;
    let mut service_files = std::collections::BTreeSet::new();
    for entry in &specs {
        let n = check_services(entry, &mut errors);
        if n > 0 {
            services += n;
            let file = entry.origin.split(": Endpoint ").next().unwrap_or_default();
            service_files.insert(file.to_string());
        }
    }
    if services > 0 {
        let files: Vec<String> = service_files.into_iter().collect();
        notes.push(format!(
            "{services} service backend(s) in {} checked for shape only: resolving a Service \
             needs a cluster (weir controller); weir run cannot serve them",
            files.join(", ")
        ));
    }
    let gateway = build(settings, specs, &mut errors, &mut warnings, cache);
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.to_string()));
    if !errors.is_empty() {
        return Err(model::ValidationErrors(errors).into());
    }
    Ok(Loaded {
        gateway,
        warnings,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(dns_label("users", true).is_ok());
        assert!(dns_label("users-2", true).is_ok());
        assert!(dns_label("2users", true).is_err());
        assert!(dns_label("2users", false).is_ok());
        assert!(dns_label("Users", false).is_err());
        assert!(dns_label("a_b", false).is_err());
        assert!(dns_label("-a", false).is_err());
        assert!(dns_label(&"a".repeat(64), false).is_err());
        assert!(dns_label("", false).is_err());
    }

    #[test]
    fn items_cut_out_parse_like_the_whole_document() {
        for text in [
            // An alias to another item: the item alone fails, the whole document is read.
            "port: 1\nendpoints:\n  - path: /a\n    backends: &b\n      - hosts: [\"http://h\"]\n        urlPattern: /x\n  - path: /b\n    backends: *b\n",
            "endpoints:\n- path: /a  # comment\n  backends:\n  - hosts: [\"http://h\"]\n    urlPattern: |\n      /x\n",
            "endpoints:\n  - path: '/a'\n    staticResponse: {strategy: always, data: {k: on, n: 010}}\n    backends: [{hosts: [\"http://h\"], urlPattern: /x}]\n# trailing\ntimeout: 3s\n",
            "endpoints:\n  - path: /a\n    backends:\n      - &h {hosts: [\"http://h\"], urlPattern: /x}\n      - *h\n",
        ] {
            let whole = parse_whole(text, false).unwrap();
            let mut previous = Parsed::default();
            let mut g = Generation {
                previous: &mut previous,
                next: Parsed::default(),
            };
            let cut = g.document(text, false).unwrap();
            assert_eq!(format!("{whole:?}"), format!("{cut:?}"), "{text}");
            assert!(format!("{cut:?}").contains("path: \"/a\""), "{cut:?}");
        }
    }

    #[test]
    fn json_messages_lose_their_position_suffix() {
        let e = serde_json::from_str::<serde_json::Value>("{\"a\": 1,, }").unwrap_err();
        assert_eq!(json_message(&e), "key must be a string");
        assert_eq!(json_position(&e), Some(Position { line: 1, column: 9 }));
    }
}
