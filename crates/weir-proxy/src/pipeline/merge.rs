//! Merging backend answers in arrival order, and mapping the outcome onto docs/semantics.md's
//! status table (complete, partial, all failed, detailed errors, `returnCode`).

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use serde_json::{Map, Value};
use tracing::warn;

use crate::codec;
use crate::error::BackendError;
use crate::plan::{CompiledBackend, CompiledEndpoint};
use crate::telemetry::log::one_line;
use crate::{full, Body};

const TRUE: HeaderValue = HeaderValue::from_static("true");
const FALSE: HeaderValue = HeaderValue::from_static("false");

/// The value of the completion header.
pub fn completed_value(done: bool) -> HeaderValue {
    if done {
        TRUE
    } else {
        FALSE
    }
}

/// What the backends produced.
#[derive(Default)]
pub struct Outcome {
    /// The merged data.
    pub data: Map<String, Value>,
    /// Backends that answered well.
    pub ok: usize,
    /// Failed backends shown as `error_<alias>` details.
    pub details: usize,
    /// Failed backends with why.
    pub failures: Vec<(usize, BackendError)>,
    /// The deadline cut some backend off.
    pub timed_out: bool,
    /// Bytes of decoded input, to decide where rendering runs.
    pub input_bytes: usize,
}

impl Outcome {
    /// Every backend succeeded in time.
    pub fn completed(&self) -> bool {
        self.failures.is_empty() && !self.timed_out
    }

    /// Takes one backend's result: merged in (later keys overwrite earlier ones), or
    /// recorded as a failure.
    pub fn absorb(
        &mut self,
        ep: &CompiledEndpoint,
        index: usize,
        result: Result<crate::upstream::Answer, BackendError>,
    ) {
        let backend = &ep.backends[index];
        backend.metrics.count(match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        });
        match result {
            Ok(answer) => {
                self.ok += 1;
                self.input_bytes += answer.bytes;
                self.data.extend(answer.data);
            }
            Err(err) => {
                log_failure(ep, backend, &err);
                if let Some(alias) = &backend.model().errors.return_details {
                    self.details += 1;
                    self.data.insert(format!("error_{alias}"), detail(&err));
                }
                self.failures.push((index, err));
            }
        }
    }

    /// A backend the deadline cut off.
    pub fn timeout(&mut self, index: usize, err: BackendError) {
        self.timed_out = true;
        self.failures.push((index, err));
    }
}

/// Logs a failed backend (the log says why), at most a few lines per window for each
/// backend of each endpoint: a backend that is down under load would otherwise write a line
/// per request. The first line after a quiet spell counts the suppressed ones.
pub fn log_failure(ep: &CompiledEndpoint, backend: &CompiledBackend, err: &BackendError) {
    let Some(suppressed) = backend.metrics.log_gate.admit() else {
        return;
    };
    let (endpoint, label) = (&ep.model.path, &backend.label);
    match (err, suppressed) {
        (BackendError::Status { status, .. }, 0) => warn!(
            endpoint = %endpoint, backend = %label, status = status.as_u16(),
            "backend failed: invalid status code"
        ),
        (BackendError::Status { status, .. }, n) => warn!(
            endpoint = %endpoint, backend = %label, status = status.as_u16(), suppressed = n,
            "backend failed: invalid status code"
        ),
        (other, 0) => warn!(
            endpoint = %endpoint, backend = %label, error = %one_line(&other.to_string()),
            "backend failed"
        ),
        (other, n) => warn!(
            endpoint = %endpoint, backend = %label, error = %one_line(&other.to_string()),
            suppressed = n, "backend failed"
        ),
    }
}

fn detail(err: &BackendError) -> Value {
    let (status, body, ct) = match err {
        BackendError::Status {
            status,
            body,
            content_type,
        } => (
            status.as_u16(),
            String::from_utf8_lossy(body).into_owned(),
            content_type.clone().unwrap_or_default(),
        ),
        other => (500, other.to_string(), codec::TEXT.to_string()),
    };
    serde_json::json!({
        "http_status_code": status,
        "http_body": body,
        "http_body_encoding": ct,
    })
}

/// A text answer marked incomplete.
pub fn text_response(status: StatusCode, body: Bytes, completed: &HeaderName) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(codec::TEXT));
    h.insert(completed.clone(), FALSE);
    resp
}

/// Every backend failed and nothing is usable: 500 (or the backend's code with
/// `returnCode`), the error text only with `returnErrorMessage`.
pub fn failure_response(
    ep: &CompiledEndpoint,
    outcome: Outcome,
    show_errors: bool,
) -> Response<Body> {
    let first = outcome.failures.into_iter().next();
    if let Some((i, BackendError::Status { status, body, .. })) = &first {
        if ep.backends[*i].model().errors.return_code {
            let body = if show_errors {
                body.clone()
            } else {
                Bytes::new()
            };
            return text_response(*status, body, &ep.completed_header);
        }
    }
    let body = match (&first, show_errors) {
        (Some((_, e)), true) => Bytes::from(e.to_string()),
        _ => Bytes::new(),
    };
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        body,
        &ep.completed_header,
    )
}
