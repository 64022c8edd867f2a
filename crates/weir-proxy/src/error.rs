//! Why a backend call failed. Every variant counts as a failed backend (docs/semantics.md status
//! table); the variant decides the log text and the metrics outcome.

use bytes::Bytes;
use http::StatusCode;

/// A failed backend call.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend answered with a status other than 200/201.
    #[error("invalid status code")]
    Status {
        /// The backend's status.
        status: StatusCode,
        /// Its body (for detailed errors).
        body: Bytes,
        /// Its content type.
        content_type: Option<String>,
    },
    /// Could not connect or send.
    #[error("connection error: {0}")]
    Connect(String),
    /// The body could not be read (reset, too large).
    #[error("reading the answer failed: {0}")]
    Body(String),
    /// The body is not valid for the backend's encoding.
    #[error("decoding the answer failed: {0}")]
    Decode(String),
    /// The answer is larger than the backend's `maxResponseSize`.
    #[error("{0}")]
    TooLarge(String),
    /// The backend URL could not be filled safely (a value from an earlier answer).
    #[error("cannot build the backend URL: {0}")]
    Url(String),
    /// Too many redirects or an unusable `Location`.
    #[error("redirect error: {0}")]
    Redirect(String),
    /// The endpoint deadline passed first.
    #[error("deadline exceeded")]
    Timeout,
    /// The backend's rate limit is exhausted; the call was not made.
    #[error("backend rate limit exceeded")]
    RateLimited,
    /// The backend's circuit breaker is open; the call was not made.
    #[error("circuit breaker open")]
    BreakerOpen,
}

impl BackendError {
    /// A short label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            BackendError::Status { .. } => "failed_status",
            BackendError::Connect(_) | BackendError::Redirect(_) => "connection_error",
            BackendError::Body(_) | BackendError::TooLarge(_) => "body_error",
            BackendError::Url(_) => "decode_error",
            BackendError::Decode(_) => "decode_error",
            BackendError::Timeout => "timeout",
            BackendError::RateLimited => "rate_limited",
            BackendError::BreakerOpen => "breaker_open",
        }
    }
}
