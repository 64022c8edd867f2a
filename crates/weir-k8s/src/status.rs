//! The `status` of the `Endpoint` resource, and the condition types and reasons the controller
//! writes into it (constants, so that the writer, the docs and the tests agree).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
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
