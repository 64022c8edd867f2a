//! The controller's view of the cluster, and the pure step from that view to a gateway model
//! plus one verdict per `Endpoint`. No I/O: everything here is unit-tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

use crate::resource::{EndpointSpec, EndpointStatus};
use crate::status as cond;
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
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// `metadata.creationTimestamp`: the older claim on a route wins.
    pub created: Option<Timestamp>,
    /// The spec.
    pub spec: EndpointSpec,
    /// The status as last seen on the API server.
    pub status: Option<EndpointStatus>,
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

/// One converted object.
#[derive(Debug, Clone)]
struct Entry {
    object: Object,
    converted: Result<Arc<model::Endpoint>, Vec<FieldError>>,
}

/// Every `Endpoint` the controller watches, converted once when it arrives (and again when
/// the settings change), so a recompute after one change does not re-parse ten thousand specs.
#[derive(Debug, Clone)]
pub struct Index {
    settings: Settings,
    entries: BTreeMap<ObjectKey, Entry>,
}

/// The outcome of a recompute: the model to publish and a verdict per object.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Settings plus every accepted endpoint, in `namespace/name` order.
    pub gateway: Gateway,
    /// One verdict per object.
    pub verdicts: BTreeMap<ObjectKey, Verdict>,
}

impl Index {
    /// An empty index with these settings.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            entries: BTreeMap::new(),
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
    pub fn get(&self, key: &ObjectKey) -> Option<&Object> {
        self.entries.get(key).map(|e| &e.object)
    }

    /// Every object, in key order.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.entries.values().map(|e| &e.object)
    }

    /// Adds or replaces an object. The spec is converted again only when it changed.
    pub fn apply(&mut self, object: Object) {
        if let Some(entry) = self.entries.get_mut(&object.key) {
            if entry.object.spec == object.spec {
                entry.object = object;
                return;
            }
        }
        let converted = convert(&object, &self.settings);
        self.entries
            .insert(object.key.clone(), Entry { object, converted });
    }

    /// Removes an object.
    pub fn delete(&mut self, key: &ObjectKey) {
        self.entries.remove(key);
    }

    /// Replaces every object for which `in_scope` holds with `objects` (a fresh full list).
    pub fn replace(&mut self, in_scope: impl Fn(&ObjectKey) -> bool, objects: Vec<Object>) {
        let fresh: BTreeSet<ObjectKey> = objects.iter().map(|o| o.key.clone()).collect();
        self.entries
            .retain(|k, _| !in_scope(k) || fresh.contains(k));
        for o in objects {
            self.apply(o);
        }
    }

    /// New settings: every spec is converted again (defaults may have changed).
    pub fn set_settings(&mut self, settings: Settings) {
        if settings == self.settings {
            return;
        }
        self.settings = settings;
        for entry in self.entries.values_mut() {
            entry.converted = convert(&entry.object, &self.settings);
        }
    }

    /// Resolves conflicts and Service references into a gateway model and one verdict per
    /// object. The oldest claim on a host + method + path wins (creationTimestamp, then
    /// namespace/name); an invalid or conflicting endpoint never affects the others.
    pub fn resolve(&self, services: &Services) -> Resolution {
        let mut verdicts = BTreeMap::new();
        let mut claims: BTreeMap<model::RouteKey, Vec<&Entry>> = BTreeMap::new();
        for (key, entry) in &self.entries {
            match &entry.converted {
                Ok(ep) => claims.entry(ep.route_key()).or_default().push(entry),
                Err(errors) => {
                    let reserved = is_reserved_path(&entry.object.spec.path, &self.settings);
                    verdicts.insert(
                        key.clone(),
                        Verdict {
                            reason: if reserved {
                                cond::REASON_RESERVED_PATH
                            } else {
                                cond::REASON_INVALID
                            },
                            message: describe_errors(errors),
                            served: false,
                        },
                    );
                }
            }
        }
        let mut endpoints = Vec::with_capacity(self.entries.len());
        for (route, mut entries) in claims {
            entries.sort_by(|a, b| {
                (a.object.created, &a.object.key).cmp(&(b.object.created, &b.object.key))
            });
            let winner = entries[0];
            for loser in &entries[1..] {
                verdicts.insert(
                    loser.object.key.clone(),
                    Verdict {
                        reason: cond::REASON_CONFLICT,
                        message: format!(
                            "route {route} is already served by the older Endpoint {}; change path, method or host, or delete one of them",
                            winner.object.key
                        ),
                        served: false,
                    },
                );
            }
            if let Ok(ep) = &winner.converted {
                verdicts.insert(
                    winner.object.key.clone(),
                    service_verdict(&winner.object, services),
                );
                endpoints.push((winner.object.key.clone(), ep.clone()));
            }
        }
        endpoints.sort_by(|a, b| a.0.cmp(&b.0));
        Resolution {
            gateway: Gateway {
                settings: self.settings.clone(),
                endpoints: endpoints.into_iter().map(|(_, ep)| ep).collect(),
            },
            verdicts,
        }
    }
}

impl Resolution {
    /// Takes the endpoint of `key` out of the gateway (the router refused it next to the
    /// others) and reports it as a conflict with `message`.
    pub fn reject(&mut self, key: &ObjectKey, message: String) {
        let origin = key.to_string();
        self.gateway.endpoints.retain(|ep| ep.origin != origin);
        self.verdicts.insert(
            key.clone(),
            Verdict {
                reason: cond::REASON_CONFLICT,
                message,
                served: false,
            },
        );
    }

    /// The served endpoint with path template `path` that came last (the youngest claim),
    /// to be rejected when the router refuses that path.
    pub fn served_with_path(&self, path: &str) -> Option<ObjectKey> {
        self.gateway
            .endpoints
            .iter()
            .rev()
            .find(|ep| ep.path.as_str() == path)
            .and_then(|ep| ep.origin.split_once('/'))
            .map(|(ns, name)| ObjectKey::new(ns, name))
    }
}

fn convert(object: &Object, settings: &Settings) -> Result<Arc<model::Endpoint>, Vec<FieldError>> {
    let defaults = Defaults {
        settings,
        namespace: Some(&object.key.namespace),
    };
    api::endpoint_to_model(&object.spec, &defaults, &object.key.to_string()).map(Arc::new)
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

fn service_verdict(object: &Object, services: &Services) -> Verdict {
    let mut missing = Vec::new();
    for (i, b) in object.spec.backends.iter().enumerate() {
        let Some(svc) = &b.service else { continue };
        let ns = svc.namespace.as_deref().unwrap_or(&object.key.namespace);
        if services.state(ns, &svc.name) == ServiceState::Missing {
            missing.push(format!("backends[{i}]: Service {ns}/{}", svc.name));
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
mod tests;
