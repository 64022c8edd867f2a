//! Weir: a Kubernetes-native API gateway with KrakenD's aggregation semantics.
//!
//! Sources (`weir-config`, `weir-k8s`) → validated model (`weir-model`) → one route-table
//! snapshot → the data plane (`weir-proxy`). This crate is the `weir` binary's library: local
//! mode, the demo and the logging set-up; the crates are re-exported under their part names.
//! See `docs/architecture.md`.

pub mod demo;
pub mod local;
pub mod telemetry;

pub use weir_config as config;
pub use weir_k8s as controller;
pub use weir_model as model;
pub use weir_proxy as proxy;

/// The `Endpoint` resource types and the CRD (from `weir-k8s`).
pub use weir_k8s::resource as api;
