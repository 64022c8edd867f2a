//! The integration tests: one binary (one link step on a 2-core machine), one module per
//! behaviour. They drive the real gateway through loopback sockets; `support` holds the
//! programmable backends, the gateway launcher and the HTTP client they share.

mod support;

mod auth;
mod bad_backends;
mod cli;
mod cli_config;
mod config_files;
mod conformance;
mod controller;
mod crd;
mod edge;
mod encodings;
mod forwarding;
mod hardening;
mod krakend;
mod metrics;
mod observability;
mod passthrough;
mod qos;
mod release;
mod reload;
mod reserved;
mod smoke;
mod status_codes;
mod streaming;
mod timeouts;
mod transforms;
