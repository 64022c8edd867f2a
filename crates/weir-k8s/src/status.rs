//! The `status` of the `Endpoint` resource, and the condition types and reasons the controller
//! writes into it (constants, so that the writer, the docs and the tests agree).

use std::hash::{Hash, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: the controller read the endpoint and takes it into the route table.
pub const ACCEPTED: &str = "Accepted";
/// Condition type: the endpoint is serving in the data plane.
pub const PROGRAMMED: &str = "Programmed";

/// Reason (Accepted=True, Programmed=True): everything is fine.
pub const REASON_ACCEPTED: &str = "Accepted";
/// Reason (Accepted=False): the spec breaks a rule; the message names the field.
pub const REASON_INVALID: &str = "Invalid";
/// Reason (Accepted=False): an older endpoint claims the same host, method and path.
pub const REASON_CONFLICT: &str = "Conflict";
/// Reason (Accepted=False): the path is under a prefix the gateway keeps for itself.
pub const REASON_RESERVED_PATH: &str = "ReservedPath";
/// Reason (Accepted=False): a `service` backend names a Service that does not exist; the
/// endpoint is served anyway, and its calls to that backend fail until the Service exists.
pub const REASON_UNRESOLVED_SERVICE: &str = "UnresolvedService";
/// Reason (Programmed=True): the endpoint is in the route table that is serving.
pub const REASON_PROGRAMMED: &str = "Programmed";
/// Reason (Programmed=False): the endpoint was not accepted, so it is not served.
pub const REASON_NOT_ACCEPTED: &str = "NotAccepted";

/// Condition status `True`.
pub const TRUE: &str = "True";
/// Condition status `False`.
pub const FALSE: &str = "False";

/// What the controller last observed about an `Endpoint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// The `metadata.generation` these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted` (read and valid, or why not) and `Programmed` (serving in the data plane).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<Condition>,
}

impl EndpointStatus {
    /// The condition of type `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// What the controller keeps of a status it read back from the API server: a digest of the
/// whole, to tell whether the status it wants is already written, and, for the two condition
/// types it writes, whether each was `True` or `False` and since when (a condition keeps its
/// `lastTransitionTime` while its status stays). About 60 bytes per object instead of the
/// ~700 the status takes as read: at 10,000 Endpoints that is most of the controller's own
/// memory besides the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenStatus {
    digest: u64,
    accepted: Option<(bool, Timestamp)>,
    programmed: Option<(bool, Timestamp)>,
}

impl SeenStatus {
    /// What to keep of `status`.
    pub fn of(status: &EndpointStatus) -> Self {
        let since = |type_: &str| {
            let c = status.condition(type_)?;
            let is_true = match c.status.as_str() {
                TRUE => true,
                FALSE => false,
                // `Unknown` (or anything else) is not a status this controller writes: a
                // condition it writes always gets a new transition time.
                _ => return None,
            };
            Some((is_true, c.last_transition_time.0))
        };
        Self {
            digest: digest(status),
            accepted: since(ACCEPTED),
            programmed: since(PROGRAMMED),
        }
    }

    /// Whether `status` is the status this one was made from (by digest).
    pub fn is(&self, status: &EndpointStatus) -> bool {
        self.digest == digest(status)
    }

    /// When the condition `type_` took the status `status` (`True`/`False`), if it holds it.
    pub fn since(&self, type_: &str, status: &str) -> Option<Timestamp> {
        let (is_true, at) = match type_ {
            ACCEPTED => self.accepted?,
            PROGRAMMED => self.programmed?,
            _ => return None,
        };
        (status == if is_true { TRUE } else { FALSE }).then_some(at)
    }
}

/// A 64-bit digest of everything in `status` (SipHash with fixed keys: the same status
/// always gives the same digest within and across runs).
fn digest(status: &EndpointStatus) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    status.observed_generation.hash(&mut h);
    status.conditions.len().hash(&mut h);
    for c in &status.conditions {
        c.type_.hash(&mut h);
        c.status.hash(&mut h);
        c.reason.hash(&mut h);
        c.message.hash(&mut h);
        c.observed_generation.hash(&mut h);
        c.last_transition_time.0.hash(&mut h);
    }
    h.finish()
}
