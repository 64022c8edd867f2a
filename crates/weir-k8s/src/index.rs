//! The controller's view of the cluster, and the pure step from that view to a gateway model
//! plus one verdict per `Endpoint`. No I/O: everything here is unit-tested without a cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

use crate::resource::{EndpointSpec, EndpointStatus};
use crate::status::{self as cond, SeenStatus};
use weir_model::convert::{self as api, Defaults};
use weir_model::{self as model, FieldError, Gateway, Settings};

/// `namespace/name` of an `Endpoint` (or a Service).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The parts of an `Endpoint` object the controller uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Namespace and name.
    pub key: ObjectKey,
    /// `metadata.generation` (status reports which one it describes).
    pub generation: Option<i64>,
    /// `metadata.uid` (what an Event refers to).
    pub uid: Option<String>,
    /// `metadata.creationTimestamp`: the older claim on a route wins.
    pub created: Option<Timestamp>,
    /// The spec.
    pub spec: EndpointSpec,
    /// The status as last seen on the API server.
    pub status: Option<EndpointStatus>,
}

impl Object {
    /// What the index keeps of it, and its spec.
    fn split(self) -> (Stored, EndpointSpec) {
        let stored = Stored {
            key: self.key,
            generation: self.generation,
            uid: self.uid,
            created: self.created,
            status: self.status.as_ref().map(SeenStatus::of),
        };
        (stored, self.spec)
    }
}

/// What the index keeps of an [`Object`] besides its compiled endpoint: the metadata, and of
/// the status what the status writer needs ([`SeenStatus`]). The spec is kept apart, as JSON
/// (see [`Entry`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Namespace and name.
    pub key: ObjectKey,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
    /// The status as last seen on the API server.
    pub status: Option<SeenStatus>,
}

/// Whether a Service exists, as far as the controller can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// Seen by the Service watch.
    Present,
    /// In a watched namespace, and absent.
    Missing,
    /// In a namespace the controller does not watch: not checked.
    Unknown,
}

/// Services the controller knows about.
#[derive(Debug, Clone, Default)]
pub struct Services {
    /// Every namespace is watched (no `--namespace` flag).
    pub all_namespaces: bool,
    /// The watched namespaces when not all.
    pub namespaces: BTreeSet<String>,
    /// Services seen.
    pub present: BTreeSet<ObjectKey>,
}

impl Services {
    /// What is known about `namespace/name`.
    pub fn state(&self, namespace: &str, name: &str) -> ServiceState {
        if self.present.contains(&ObjectKey::new(namespace, name)) {
            ServiceState::Present
        } else if self.all_namespaces || self.namespaces.contains(namespace) {
            ServiceState::Missing
        } else {
            ServiceState::Unknown
        }
    }
}

/// Why an endpoint is (not) served, before it becomes conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `Accepted` reason (one of the `api::status::REASON_*`).
    pub reason: &'static str,
    /// What a person can do about it.
    pub message: String,
    /// In the table that is being published.
    pub served: bool,
}

/// A claim on a route, in the order that decides who serves it: the oldest
/// `creationTimestamp` first, then `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Claim {
    created: Option<Timestamp>,
    key: ObjectKey,
}

/// One object, converted once when it arrives.
///
/// Its spec is kept as the JSON it serialises to, not as an [`EndpointSpec`]: the struct
/// with one backend takes ~1 KB of heap (a backend alone is 552 bytes, every optional field
/// in place), its JSON a tenth of that, and the spec is only read again to tell whether an
/// update changed it (byte comparison) and, when the settings change, to convert it anew.
#[derive(Debug, Clone)]
struct Entry {
    object: Stored,
    spec: Box<[u8]>,
    /// The model, or the verdict that refuses the spec.
    converted: Result<Arc<model::Endpoint>, Verdict>,
    /// The route claimed (valid specs only).
    route: Option<model::RouteKey>,
    /// Services named by `service` backends (namespace resolved), with the backend's place,
    /// for the Service index.
    services: Vec<(usize, ObjectKey)>,
    /// The verdict as of the last change.
    verdict: Verdict,
    /// It wins its route: its endpoint is in the published model.
    serving: bool,
}

/// What one batch of changes touched, settled at its end.
#[derive(Debug, Default)]
struct Batch {
    /// Routes claimed or released, with their winner before the batch.
    routes: HashMap<model::RouteKey, Option<ObjectKey>>,
    /// Objects added, changed or removed.
    keys: Vec<ObjectKey>,
}

/// Every `Endpoint` the controller watches, converted once when it arrives, plus the indexes
/// that keep a change's work proportional to what it touches: claims by route key (conflict
/// resolution), endpoints by the Services they name (Service resolution), and the keys whose
/// verdict moved (status). Small vectors rather than tree sets: almost every route has one
/// claim and every Service few users, and a tree node costs ten times the memory.
///
/// Memory per object: its entry (boxed, so the map's nodes stay small), the spec, one claim
/// and the compiled model, which is shared with the serving table.
#[derive(Debug, Clone)]
pub struct Index {
    settings: Settings,
    services: Services,
    entries: BTreeMap<ObjectKey, Box<Entry>>,
    /// Claims on each route, sorted in winning order.
    claims: HashMap<model::RouteKey, Vec<Claim>>,
    /// Endpoint objects naming each Service.
    by_service: HashMap<ObjectKey, Vec<ObjectKey>>,
    /// The served set (or the settings) changed since [`Index::take_model_changed`].
    model_changed: bool,
    /// Objects whose verdict, generation or status changed since [`Index::take_touched`].
    touched: BTreeSet<ObjectKey>,
}

impl Index {
    /// An empty index with these settings and Service scope.
    pub fn new(settings: Settings, services: Services) -> Self {
        Self {
            settings,
            services,
            entries: BTreeMap::new(),
            claims: HashMap::new(),
            by_service: HashMap::new(),
            model_changed: true,
            touched: BTreeSet::new(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No objects.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The object stored under `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&Stored> {
        self.entries.get(key).map(|e| &e.object)
    }

    /// The verdict on `key`.
    pub fn verdict(&self, key: &ObjectKey) -> Option<&Verdict> {
        self.entries.get(key).map(|e| &e.verdict)
    }

    /// Every object with its verdict, in key order, from `from` on (inclusive).
    pub fn objects_from<'a>(
        &'a self,
        from: Option<&ObjectKey>,
    ) -> impl Iterator<Item = (&'a Stored, &'a Verdict)> + 'a {
        let range = match from {
            Some(k) => self.entries.range(k.clone()..),
            None => self.entries.range::<ObjectKey, _>(..),
        };
        range.map(|(_, e)| (&e.object, &e.verdict))
    }

    /// Every object, in key order.
    pub fn objects(&self) -> impl Iterator<Item = &Stored> {
        self.entries.values().map(|e| &e.object)
    }

    /// The model to publish: the settings and every route's winner, in `namespace/name`
    /// order. Endpoints that did not change are the very `Arc`s published before.
    pub fn gateway(&self) -> Gateway {
        Gateway {
            settings: self.settings.clone(),
            endpoints: self
                .entries
                .values()
                .filter(|e| e.serving)
                .filter_map(|e| e.converted.as_ref().ok().cloned())
                .collect(),
        }
    }

    /// Whether the model changed since the last call (and resets the flag).
    pub fn take_model_changed(&mut self) -> bool {
        std::mem::take(&mut self.model_changed)
    }

    /// The objects whose verdict, generation or status changed (or that are gone) since the
    /// last call.
    pub fn take_touched(&mut self) -> BTreeSet<ObjectKey> {
        std::mem::take(&mut self.touched)
    }

    /// Adds or replaces an object. The spec is converted again only when it changed; an
    /// update that changes only status or metadata (our own status write coming back) touches
    /// no route, so it costs no recompute.
    pub fn apply(&mut self, object: Object) {
        let mut batch = Batch::default();
        self.apply_in(object, &mut batch);
        self.finish(batch);
    }

    fn apply_in(&mut self, object: Object, batch: &mut Batch) {
        let (object, spec) = object.split();
        let json = spec_json(&spec);
        if let Some(entry) = self.entries.get_mut(&object.key) {
            if entry.spec == json && entry.object.created == object.created {
                if entry.object.generation != object.generation
                    || entry.object.status != object.status
                {
                    self.touched.insert(object.key.clone());
                }
                entry.object = object;
                return;
            }
        }
        let converted = convert(&object.key, &spec, &self.settings);
        let entry = self.make_entry(object, &spec, json, converted);
        self.remove_entry(&entry.object.key, batch);
        self.insert_entry(entry, batch);
    }

    /// Removes an object.
    pub fn delete(&mut self, key: &ObjectKey) {
        let mut batch = Batch::default();
        self.remove_entry(key, &mut batch);
        self.finish(batch);
    }

    /// Replaces every object for which `in_scope` holds with `objects` (a fresh full list).
    /// Each route is settled once, however many of its claims the list brings.
    pub fn replace(&mut self, in_scope: impl Fn(&ObjectKey) -> bool, objects: Vec<Object>) {
        let fresh: BTreeSet<ObjectKey> = objects.iter().map(|o| o.key.clone()).collect();
        let gone: Vec<ObjectKey> = self
            .entries
            .keys()
            .filter(|k| in_scope(k) && !fresh.contains(*k))
            .cloned()
            .collect();
        let mut batch = Batch::default();
        for k in &gone {
            self.remove_entry(k, &mut batch);
        }
        for o in objects {
            self.apply_in(o, &mut batch);
        }
        self.finish(batch);
    }

    /// New settings: every spec is converted again (defaults may have changed).
    pub fn set_settings(&mut self, settings: Settings) {
        if settings == self.settings {
            return;
        }
        self.settings = settings;
        let keys: Vec<ObjectKey> = self.entries.keys().cloned().collect();
        let mut batch = Batch::default();
        for key in keys {
            let Some((object, json)) = self
                .entries
                .get(&key)
                .map(|e| (e.object.clone(), e.spec.clone()))
            else {
                continue;
            };
            let (spec, converted) = match serde_json::from_slice::<EndpointSpec>(&json) {
                Ok(spec) => {
                    let converted = convert(&object.key, &spec, &self.settings);
                    (spec, converted)
                }
                // Not expected: the bytes are this spec type's own serialisation.
                Err(e) => (
                    EndpointSpec::default(),
                    Err(Verdict {
                        reason: cond::REASON_INVALID,
                        message: format!("the stored spec cannot be read back: {e}"),
                        served: false,
                    }),
                ),
            };
            let entry = self.make_entry(object, &spec, json, converted);
            self.remove_entry(&key, &mut batch);
            self.insert_entry(entry, &mut batch);
        }
        self.model_changed = true;
        self.finish(batch);
    }

    /// A Service appeared.
    pub fn service_applied(&mut self, key: ObjectKey) {
        if self.services.present.insert(key.clone()) {
            self.service_flipped(&key);
        }
    }

    /// A Service went away.
    pub fn service_deleted(&mut self, key: &ObjectKey) {
        if self.services.present.remove(key) {
            self.service_flipped(key);
        }
    }

    /// Replaces every Service for which `in_scope` holds with `fresh` (a full list).
    pub fn replace_services(
        &mut self,
        in_scope: impl Fn(&ObjectKey) -> bool,
        fresh: BTreeSet<ObjectKey>,
    ) {
        let gone: Vec<ObjectKey> = self
            .services
            .present
            .iter()
            .filter(|k| in_scope(k) && !fresh.contains(*k))
            .cloned()
            .collect();
        for k in &gone {
            self.service_deleted(k);
        }
        for k in fresh {
            self.service_applied(k);
        }
    }

    /// The Services known.
    pub fn services(&self) -> &Services {
        &self.services
    }

    fn service_flipped(&mut self, service: &ObjectKey) {
        let Some(users) = self.by_service.get(service) else {
            return;
        };
        let users = users.clone();
        for k in &users {
            self.refresh(k);
        }
    }

    fn make_entry(
        &self,
        object: Stored,
        spec: &EndpointSpec,
        json: Box<[u8]>,
        converted: Result<Arc<model::Endpoint>, Verdict>,
    ) -> Entry {
        let route = converted.as_ref().ok().map(|ep| ep.route_key());
        let services = spec
            .backends
            .iter()
            .enumerate()
            .filter_map(|(i, b)| Some((i, b.service.as_ref()?)))
            .map(|(i, svc)| {
                let ns = svc.namespace.as_deref().unwrap_or(&object.key.namespace);
                (i, ObjectKey::new(ns, svc.name.as_str()))
            })
            .collect();
        let verdict = match &converted {
            Err(v) => v.clone(),
            // Set by `refresh` once the entry is settled.
            Ok(_) => Verdict {
                reason: cond::REASON_ACCEPTED,
                message: String::new(),
                served: false,
            },
        };
        Entry {
            object,
            spec: json,
            converted,
            route,
            services,
            verdict,
            serving: false,
        }
    }

    /// The oldest claim on `route`.
    fn winner(&self, route: &model::RouteKey) -> Option<ObjectKey> {
        self.claims.get(route)?.first().map(|c| c.key.clone())
    }

    /// Notes `route` as touched by `batch`, with its winner before the batch.
    fn note_route(&self, route: &model::RouteKey, batch: &mut Batch) {
        if !batch.routes.contains_key(route) {
            batch.routes.insert(route.clone(), self.winner(route));
        }
    }

    /// Takes `key` out of every index; [`Self::finish`] settles its route.
    fn remove_entry(&mut self, key: &ObjectKey, batch: &mut Batch) {
        let Some(entry) = self.entries.get(key) else {
            return;
        };
        if let Some(route) = entry.route.clone() {
            self.note_route(&route, batch);
        }
        let Some(entry) = self.entries.remove(key) else {
            return;
        };
        if entry.serving {
            self.model_changed = true;
        }
        batch.keys.push(key.clone());
        for (_, svc) in &entry.services {
            if let Some(users) = self.by_service.get_mut(svc) {
                users.retain(|u| u != key);
                if users.is_empty() {
                    self.by_service.remove(svc);
                }
            }
        }
        if let Some(route) = entry.route {
            if let Some(claims) = self.claims.get_mut(&route) {
                let claim = Claim {
                    created: entry.object.created,
                    key: key.clone(),
                };
                if let Ok(i) = claims.binary_search(&claim) {
                    claims.remove(i);
                }
                if claims.is_empty() {
                    self.claims.remove(&route);
                }
            }
        }
    }

    /// Adds `entry` to every index; [`Self::finish`] settles its route.
    fn insert_entry(&mut self, entry: Entry, batch: &mut Batch) {
        let key = entry.object.key.clone();
        for (_, svc) in &entry.services {
            // Room for one: a grown Vec starts at 4, and most lists keep one item.
            let users = self
                .by_service
                .entry(svc.clone())
                .or_insert_with(|| Vec::with_capacity(1));
            if !users.contains(&key) {
                users.push(key.clone());
            }
        }
        if let Some(route) = &entry.route {
            self.note_route(route, batch);
            let claim = Claim {
                created: entry.object.created,
                key: key.clone(),
            };
            let claims = self
                .claims
                .entry(route.clone())
                .or_insert_with(|| Vec::with_capacity(1));
            if let Err(i) = claims.binary_search(&claim) {
                claims.insert(i, claim);
            }
        }
        self.entries.insert(key.clone(), Box::new(entry));
        batch.keys.push(key);
    }

    /// Settles every route the batch touched: the served endpoint is the winner's, and when
    /// the winner changed every claim's verdict is refreshed (a loser's message names the
    /// winner); otherwise only the objects the batch changed are. Work: the claims on the
    /// touched routes, not the table.
    fn finish(&mut self, batch: Batch) {
        for (route, before) in batch.routes {
            let now = self.winner(&route);
            if let Some(k) = &before {
                self.sync_served(k);
            }
            if let Some(k) = &now {
                self.sync_served(k);
            }
            if now != before {
                let keys: Vec<ObjectKey> = self
                    .claims
                    .get(&route)
                    .map(|c| c.iter().map(|c| c.key.clone()).collect())
                    .unwrap_or_default();
                for k in keys.iter().chain(before.as_ref()) {
                    self.refresh(k);
                }
            }
        }
        for key in batch.keys {
            self.sync_served(&key);
            self.refresh(&key);
            self.touched.insert(key);
        }
    }

    /// `key`'s endpoint is served exactly when `key` wins its route.
    fn sync_served(&mut self, key: &ObjectKey) {
        let wins = self.entries.get(key).is_some_and(|e| {
            e.converted.is_ok()
                && e.route
                    .as_ref()
                    .and_then(|r| self.claims.get(r))
                    .and_then(|c| c.first())
                    .is_some_and(|first| &first.key == key)
        });
        if let Some(e) = self.entries.get_mut(key) {
            if e.serving != wins {
                e.serving = wins;
                self.model_changed = true;
            }
        }
    }

    /// The verdict `key` deserves now.
    fn judge(&self, key: &ObjectKey) -> Option<Verdict> {
        let entry = self.entries.get(key)?;
        if let Err(v) = &entry.converted {
            return Some(v.clone());
        }
        let route = entry.route.as_ref()?;
        let winner = self.claims.get(route)?.first()?;
        if &winner.key == key {
            return Some(service_verdict(&entry.services, &self.services));
        }
        Some(Verdict {
            reason: cond::REASON_CONFLICT,
            message: format!(
                "route {route} is already served by the older Endpoint {}; change path, method or host, or delete one of them",
                winner.key
            ),
            served: false,
        })
    }

    /// Recomputes the verdict of `key`, touching it when it changed.
    fn refresh(&mut self, key: &ObjectKey) {
        let Some(verdict) = self.judge(key) else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(key) {
            if entry.verdict != verdict {
                entry.verdict = verdict;
                self.touched.insert(key.clone());
            }
        }
    }
}

/// The JSON of `spec`, as an [`Entry`] keeps it.
fn spec_json(spec: &EndpointSpec) -> Box<[u8]> {
    // Cannot fail: every map in the spec has string keys.
    serde_json::to_vec(spec)
        .unwrap_or_default()
        .into_boxed_slice()
}

fn convert(
    key: &ObjectKey,
    spec: &EndpointSpec,
    settings: &Settings,
) -> Result<Arc<model::Endpoint>, Verdict> {
    let defaults = Defaults {
        settings,
        namespace: Some(&key.namespace),
    };
    api::endpoint_to_model(spec, &defaults, &key.to_string())
        .map(Arc::new)
        .map_err(|errors| Verdict {
            reason: if is_reserved_path(&spec.path, settings) {
                cond::REASON_RESERVED_PATH
            } else {
                cond::REASON_INVALID
            },
            message: describe_errors(&errors),
            served: false,
        })
}

fn is_reserved_path(path: &str, settings: &Settings) -> bool {
    model::is_reserved(path) || path == settings.health_path
}

fn describe_errors(errors: &[FieldError]) -> String {
    let mut parts: Vec<String> = errors
        .iter()
        .map(|e| format!("spec.{}: {}", e.field, e.message))
        .collect();
    parts.dedup();
    parts.join("; ")
}

fn service_verdict(named: &[(usize, ObjectKey)], services: &Services) -> Verdict {
    let mut missing = Vec::new();
    for (i, svc) in named {
        if services.state(&svc.namespace, &svc.name) == ServiceState::Missing {
            missing.push(format!("backends[{i}]: Service {svc}"));
        }
    }
    if missing.is_empty() {
        Verdict {
            reason: cond::REASON_ACCEPTED,
            message: "the endpoint is valid and owns its route".into(),
            served: true,
        }
    } else {
        Verdict {
            reason: cond::REASON_UNRESOLVED_SERVICE,
            message: format!(
                "{} not found; the endpoint is served, but calls to that backend fail until the Service exists (check its name, port and namespace)",
                missing.join(", ")
            ),
            served: true,
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
