//! What the data plane reports: Prometheus metrics and the access log.

pub mod access_log;
pub mod metrics;
