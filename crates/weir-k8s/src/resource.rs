//! The `Endpoint` custom resource (`weir.dev/v1alpha1`): the kube wrapper around the
//! kube-free [`weir_model::spec::EndpointSpec`], its status, and the generated CRD.
//!
//! The spec type lives in `weir-model` so that local files, the KrakenD import and the
//! controller share one schema and one spec→model compiler; only this wrapper knows kube.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::status::EndpointStatus;
pub use weir_model::spec::*;

/// One public route: what the gateway answers on `method path` and which backends it asks.
///
/// In a cluster this is the `spec` of the `Endpoint` custom resource (`weir.dev/v1alpha1`);
/// in a local file it is one item of `endpoints:`.
// (The text above is the CRD's description of `spec`: it repeats `EndpointSpec`'s on purpose.)
// The printer columns repeat `type_`, which clippy mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "Endpoint",
    plural = "endpoints",
    shortname = "wep",
    namespaced,
    status = "EndpointStatus",
    derive = "PartialEq",
    doc = "A public API route of the Weir gateway: the method and path it answers and the backends it asks.",
    printcolumn(name = "Path", type_ = "string", json_path = ".spec.path"),
    printcolumn(name = "Method", type_ = "string", json_path = ".spec.method"),
    printcolumn(
        name = "Backends",
        type_ = "string",
        json_path = ".spec.backends[*].urlPattern"
    ),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct EndpointResourceSpec(pub EndpointSpec);

impl std::ops::Deref for EndpointResourceSpec {
    type Target = EndpointSpec;
    fn deref(&self) -> &EndpointSpec {
        &self.0
    }
}

impl From<EndpointSpec> for EndpointResourceSpec {
    fn from(spec: EndpointSpec) -> Self {
        Self(spec)
    }
}

/// The CustomResourceDefinition of [`Endpoint`] as YAML: what `weir crd` prints and what
/// `crds/` and `charts/weir/crds/` hold.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    use kube::CustomResourceExt;
    serde_saphyr::to_string(&Endpoint::crd())
}
