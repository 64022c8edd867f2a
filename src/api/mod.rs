//! The `Endpoint` resource as users write it (CRD spec, or the same YAML in a local file),
//! its status and condition constants, and its conversion into validated [`crate::model`]
//! values.

pub mod convert;
pub mod spec;
pub mod status;

pub use convert::{endpoint_to_model, Defaults};
pub use spec::*;
pub use status::EndpointStatus;

/// The CustomResourceDefinition of [`Endpoint`] as YAML: what `weir crd` prints and what
/// `crds/` and `charts/weir/crds/` hold.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&Endpoint::crd())
}
