//! The `Endpoint` resource as users write it (CRD spec, or the same YAML in a local file),
//! and its conversion into validated [`crate::model`] values.

pub mod convert;
pub mod spec;

pub use convert::{endpoint_to_model, Defaults};
pub use spec::*;
