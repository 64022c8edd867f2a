//! The incremental index against a full recompute: after every step of a random sequence of
//! Endpoint and Service changes, the published model and every verdict must equal what the
//! straightforward algorithm computes from scratch, every changed verdict must have been
//! reported (the status targets), and endpoints that did not change must stay the same `Arc`.

use proptest::prelude::*;

use super::*;
use crate::resource::{BackendSpec, MethodSpec, ServiceRef};

const NAMESPACES: [&str; 2] = ["a", "b"];

/// One change the cluster can make.
#[derive(Debug, Clone)]
enum Op {
    /// Create or update an Endpoint.
    Apply {
        ns: usize,
        name: u8,
        created: i64,
        spec: SpecShape,
    },
    /// Update only its status and generation (our own status write coming back).
    StatusOnly { ns: usize, name: u8 },
    /// Delete an Endpoint.
    Delete { ns: usize, name: u8 },
    /// A Service appears.
    ServiceUp { ns: usize, name: u8 },
    /// A Service goes away.
    ServiceDown { ns: usize, name: u8 },
    /// A relist of namespace `ns` that lost every object whose name is in `drop`.
    Relist { ns: usize, drop: Vec<u8> },
    /// A relist of the Services of namespace `ns`, keeping those in `keep`.
    RelistServices { ns: usize, keep: Vec<u8> },
    /// The settings' default timeout changes (every spec is converted again).
    Settings { timeout_s: u64 },
}

/// A small space of specs, so that routes collide often.
#[derive(Debug, Clone)]
struct SpecShape {
    path: u8,
    post: bool,
    host: bool,
    /// `None`: a `hosts` backend; `Some((namespace, name))`: a `service` backend.
    service: Option<(Option<usize>, u8)>,
    invalid: bool,
}

impl SpecShape {
    fn spec(&self) -> EndpointSpec {
        let path = match self.path {
            0 => "/users/{id}".to_string(),
            1 => "/users/{name}".to_string(),
            2 => "/orders".to_string(),
            3 => "/__debug/x".to_string(),
            n => format!("/p{n}"),
        };
        let backend = match self.service {
            None => BackendSpec {
                hosts: vec!["http://users.internal:8080".into()],
                url_pattern: "/v1".into(),
                ..Default::default()
            },
            Some((ns, name)) => BackendSpec {
                service: Some(ServiceRef {
                    name: format!("svc{name}"),
                    port: 8080,
                    namespace: ns.map(|i| NAMESPACES[i].to_string()),
                }),
                url_pattern: "/v1".into(),
                ..Default::default()
            },
        };
        EndpointSpec {
            path,
            method: self.post.then_some(MethodSpec::Post),
            host: self.host.then(|| "api.example.com".to_string()),
            timeout: self.invalid.then(|| "soon".to_string()),
            backends: vec![backend],
            ..Default::default()
        }
    }
}

fn spec_shape() -> impl Strategy<Value = SpecShape> {
    (
        0u8..6,
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.4, (prop::option::of(0usize..2), 0u8..3)),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(path, post, host, service, invalid)| SpecShape {
            path,
            post,
            host,
            service,
            invalid,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let ns = 0usize..2;
    let name = 0u8..6;
    prop_oneof![
        6 => (ns.clone(), name.clone(), 0i64..3, spec_shape())
            .prop_map(|(ns, name, created, spec)| Op::Apply { ns, name, created, spec }),
        2 => (ns.clone(), name.clone()).prop_map(|(ns, name)| Op::StatusOnly { ns, name }),
        2 => (ns.clone(), name.clone()).prop_map(|(ns, name)| Op::Delete { ns, name }),
        2 => (ns.clone(), 0u8..3).prop_map(|(ns, name)| Op::ServiceUp { ns, name }),
        2 => (ns.clone(), 0u8..3).prop_map(|(ns, name)| Op::ServiceDown { ns, name }),
        1 => (ns.clone(), prop::collection::vec(name, 0..3))
            .prop_map(|(ns, drop)| Op::Relist { ns, drop }),
        1 => (ns, prop::collection::vec(0u8..3, 0..3))
            .prop_map(|(ns, keep)| Op::RelistServices { ns, keep }),
        1 => (1u64..4).prop_map(|timeout_s| Op::Settings { timeout_s }),
    ]
}

/// The cluster as the API server holds it.
#[derive(Default)]
struct World {
    objects: BTreeMap<ObjectKey, Object>,
    services: BTreeSet<ObjectKey>,
    settings: Settings,
}

/// What the controller publishes and reports.
#[derive(Debug, PartialEq)]
struct Outcome {
    gateway: Gateway,
    verdicts: BTreeMap<ObjectKey, Verdict>,
}

/// The straightforward algorithm: convert everything, group claims by route, the oldest
/// claim wins, then check the winners' Services.
fn full_recompute(world: &World, scope: &Services) -> Outcome {
    let services = Services {
        present: world.services.clone(),
        ..scope.clone()
    };
    let mut verdicts = BTreeMap::new();
    let mut claims: BTreeMap<model::RouteKey, Vec<(&Object, Arc<model::Endpoint>)>> =
        BTreeMap::new();
    for (key, o) in &world.objects {
        match convert(&o.key, &o.spec, &world.settings) {
            Ok(ep) => claims.entry(ep.route_key()).or_default().push((o, ep)),
            Err(v) => {
                verdicts.insert(key.clone(), v);
            }
        }
    }
    let mut endpoints = Vec::new();
    for (route, mut entries) in claims {
        entries.sort_by(|a, b| (a.0.created, &a.0.key).cmp(&(b.0.created, &b.0.key)));
        let (winner, ep) = &entries[0];
        for (loser, _) in &entries[1..] {
            verdicts.insert(
                loser.key.clone(),
                Verdict {
                    reason: cond::REASON_CONFLICT,
                    message: format!(
                        "route {route} is already served by the older Endpoint {}; change path, method or host, or delete one of them",
                        winner.key
                    ),
                    served: false,
                },
            );
        }
        let named: Vec<(usize, ObjectKey)> = winner
            .spec
            .backends
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let svc = b.service.as_ref()?;
                let ns = svc.namespace.as_deref().unwrap_or(&winner.key.namespace);
                Some((i, ObjectKey::new(ns, svc.name.as_str())))
            })
            .collect();
        verdicts.insert(winner.key.clone(), service_verdict(&named, &services));
        endpoints.push((winner.key.clone(), ep.clone()));
    }
    // The canonical order: namespace/name.
    endpoints.sort_by(|a, b| a.0.cmp(&b.0));
    Outcome {
        gateway: Gateway {
            settings: world.settings.clone(),
            endpoints: endpoints.into_iter().map(|(_, ep)| ep).collect(),
        },
        verdicts,
    }
}

fn outcome(ix: &Index) -> Outcome {
    Outcome {
        gateway: ix.gateway(),
        verdicts: ix
            .objects_from(None)
            .map(|(o, v)| (o.key.clone(), v.clone()))
            .collect(),
    }
}

fn object(key: ObjectKey, created: i64, spec: EndpointSpec, generation: i64) -> Object {
    Object {
        uid: Some(format!("uid-{key}")),
        key,
        generation: Some(generation),
        created: Timestamp::from_second(created).ok(),
        spec,
        status: None,
    }
}

/// Applies `op` to the world and to the index; returns the keys whose spec was applied.
fn step(world: &mut World, ix: &mut Index, op: &Op) -> BTreeSet<ObjectKey> {
    let mut applied = BTreeSet::new();
    match op {
        Op::Apply {
            ns,
            name,
            created,
            spec,
        } => {
            let key = ObjectKey::new(NAMESPACES[*ns], format!("ep{name}"));
            // An update keeps the creation time, as on an API server.
            let (created_at, generation) = match world.objects.get(&key) {
                Some(o) => (o.created, o.generation.unwrap_or(1) + 1),
                None => (Timestamp::from_second(*created).ok(), 1),
            };
            let mut o = object(key.clone(), 0, spec.spec(), generation);
            o.created = created_at;
            world.objects.insert(key.clone(), o.clone());
            ix.apply(o);
            applied.insert(key);
        }
        Op::StatusOnly { ns, name } => {
            let key = ObjectKey::new(NAMESPACES[*ns], format!("ep{name}"));
            if let Some(o) = world.objects.get_mut(&key) {
                o.status = Some(EndpointStatus {
                    observed_generation: o.generation,
                    conditions: Vec::new(),
                });
                ix.apply(o.clone());
            }
        }
        Op::Delete { ns, name } => {
            let key = ObjectKey::new(NAMESPACES[*ns], format!("ep{name}"));
            if world.objects.remove(&key).is_some() {
                ix.delete(&key);
            }
        }
        Op::ServiceUp { ns, name } => {
            let key = ObjectKey::new(NAMESPACES[*ns], format!("svc{name}"));
            world.services.insert(key.clone());
            ix.service_applied(key);
        }
        Op::ServiceDown { ns, name } => {
            let key = ObjectKey::new(NAMESPACES[*ns], format!("svc{name}"));
            world.services.remove(&key);
            ix.service_deleted(&key);
        }
        Op::Relist { ns, drop } => {
            let ns = NAMESPACES[*ns];
            world.objects.retain(|k, _| {
                k.namespace != ns || !drop.iter().any(|d| k.name == format!("ep{d}"))
            });
            let fresh: Vec<Object> = world
                .objects
                .values()
                .filter(|o| o.key.namespace == ns)
                .cloned()
                .collect();
            ix.replace(|k| k.namespace == ns, fresh);
        }
        Op::RelistServices { ns, keep } => {
            let ns = NAMESPACES[*ns];
            world.services.retain(|k| k.namespace != ns);
            let fresh: BTreeSet<ObjectKey> = keep
                .iter()
                .map(|n| ObjectKey::new(ns, format!("svc{n}")))
                .collect();
            world.services.extend(fresh.iter().cloned());
            ix.replace_services(|k| k.namespace == ns, fresh);
        }
        Op::Settings { timeout_s } => {
            world.settings.timeout = std::time::Duration::from_secs(*timeout_s);
            ix.set_settings(world.settings.clone());
            applied.extend(world.objects.keys().cloned());
        }
    }
    applied
}

fn scope() -> impl Strategy<Value = Services> {
    any::<bool>().prop_map(|all| Services {
        all_namespaces: all,
        // With one namespace watched, Services of the other are not checked.
        namespaces: if all {
            BTreeSet::new()
        } else {
            ["a".to_string()].into()
        },
        present: BTreeSet::new(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_index_equals_a_full_recompute(
        scope in scope(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut world = World::default();
        let mut ix = Index::new(world.settings.clone(), scope.clone());
        ix.take_model_changed();
        let mut before = outcome(&ix);
        for op in &ops {
            let applied = step(&mut world, &mut ix, op);
            let after = outcome(&ix);
            let want = full_recompute(&world, &scope);
            prop_assert_eq!(&after.gateway, &want.gateway, "model after {:?}", op);
            prop_assert_eq!(&after.verdicts, &want.verdicts, "verdicts after {:?}", op);

            // Status targets: every object whose verdict moved (or that is gone) was reported.
            let touched = ix.take_touched();
            let keys: BTreeSet<&ObjectKey> =
                before.verdicts.keys().chain(after.verdicts.keys()).collect();
            for k in keys {
                if before.verdicts.get(k) != after.verdicts.get(k) {
                    prop_assert!(touched.contains(k), "{} changed but not reported after {:?}", k, op);
                }
            }
            // Publication: a changed model is flagged, and what did not change is the same Arc.
            let changed = ix.take_model_changed();
            if before.gateway != after.gateway {
                prop_assert!(changed, "model changed unflagged after {:?}", op);
            }
            for ep in &after.gateway.endpoints {
                let key = ep.origin.split_once('/').map(|(n, m)| ObjectKey::new(n, m));
                let Some(key) = key else { continue };
                if applied.contains(&key) {
                    continue;
                }
                if let Some(old) = before.gateway.endpoints.iter().find(|e| e.origin == ep.origin) {
                    prop_assert!(Arc::ptr_eq(old, ep), "{} recompiled without a change after {:?}", key, op);
                }
            }
            before = after;
        }
    }
}
