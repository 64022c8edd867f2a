//! Weir: a Kubernetes-native API gateway with KrakenD's aggregation semantics.
//!
//! Sources ([`config`]) → validated [`model`] → one [`proxy::table::RouteTable`] snapshot →
//! the data plane ([`proxy`]). See `docs/` and DESIGN.md.

pub mod admin;
pub mod api;
pub mod config;
pub mod controller;
pub mod demo;
pub mod local;
pub mod model;
pub mod proxy;
pub mod telemetry;
