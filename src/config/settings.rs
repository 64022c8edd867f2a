//! The gateway settings file (DESIGN.md "Gateway settings").

use serde::{Deserialize, Serialize};

use crate::api::{self, EndpointSpec, OutputEncodingSpec, RateLimitSpec};
use crate::model::{self, EndpointRateLimit, FieldError, Settings};

/// `/__health` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthSpec {
    /// Serve the health endpoint (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Its path (default `/__health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `/__stats` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatsSpec {
    /// Serve Prometheus metrics (default false).
    #[serde(default)]
    pub enabled: bool,
}

/// The settings file as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsFile {
    /// Proxy listener port (default 8080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Serve the reserved endpoints on this port instead of the proxy port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_port: Option<u16>,
    /// Default endpoint timeout (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Default cache TTL (default 0s).
    #[serde(default, rename = "cacheTTL", skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<String>,
    /// Default output encoding (default json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_encoding: Option<OutputEncodingSpec>,
    /// Default endpoint rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Put error text in 500 bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_error_message: Option<bool>,
    /// Health endpoint options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    /// Metrics endpoint options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatsSpec>,
    /// Serve `/__debug/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    /// Serve `/__echo/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<bool>,
    /// Access log on stdout (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<bool>,
    /// Endpoints (local mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointSpec>,
}

impl SettingsFile {
    /// Converts into model settings; errors name `origin` and the field.
    pub fn to_settings(&self, origin: &str) -> (Settings, Vec<FieldError>) {
        let d = Settings::default();
        let mut errors = Vec::new();
        let mut err = |field: &str, message: String| {
            errors.push(FieldError {
                origin: origin.to_string(),
                endpoint: None,
                field: field.to_string(),
                message,
            })
        };
        let mut dur = |field: &str, v: &Option<String>, default| match v {
            None => default,
            Some(s) => model::parse_duration(s).unwrap_or_else(|e| {
                err(field, e.to_string());
                default
            }),
        };
        let timeout = dur("timeout", &self.timeout, d.timeout);
        let cache_ttl = dur("cacheTTL", &self.cache_ttl, d.cache_ttl);
        let mut rl_errors = Vec::new();
        let rate_limit = self
            .rate_limit
            .as_ref()
            .map(|rl| {
                api::convert::rate_limit(
                    rl,
                    &EndpointRateLimit::default(),
                    "rateLimit",
                    &mut rl_errors,
                )
            })
            .unwrap_or_default();
        let health_path = self
            .health
            .as_ref()
            .and_then(|h| h.path.clone())
            .unwrap_or(d.health_path.clone());
        for (field, message) in rl_errors {
            err(&field, message);
        }
        if timeout.is_zero() {
            err("timeout", "must be greater than zero".into());
        }
        if !health_path.starts_with('/')
            || health_path.len() < 2
            || health_path.contains(['{', '}'])
        {
            err(
                "health.path",
                format!("must be a plain path starting with '/' (got {health_path:?})"),
            );
        }
        if let Some((_, model::ClientKey::Param(p))) = &rate_limit.client {
            err(
                "rateLimit.strategy",
                format!("param strategy ({p}) only makes sense on an endpoint"),
            );
        }
        if self.admin_port.is_some() && self.admin_port == self.port {
            err("adminPort", "must differ from port".into());
        }
        let settings = Settings {
            port: self.port.unwrap_or(d.port),
            admin_port: self.admin_port,
            timeout,
            cache_ttl,
            output_encoding: self
                .output_encoding
                .map(api::convert::output_encoding)
                .unwrap_or(d.output_encoding),
            rate_limit,
            return_error_message: self.return_error_message.unwrap_or(d.return_error_message),
            health_enabled: self.health.as_ref().and_then(|h| h.enabled).unwrap_or(true),
            health_path,
            stats_enabled: self.stats.as_ref().is_some_and(|s| s.enabled),
            debug: self.debug.unwrap_or(false),
            echo: self.echo.unwrap_or(false),
            access_log: self.access_log.unwrap_or(true),
            flavor: model::Flavor::Weir,
        };
        (settings, errors)
    }
}
