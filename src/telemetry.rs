//! The application log on stderr via `tracing` (the access log is the data plane's).
//!
//! Two shapes, switched at run time (`logFormat` in the settings, pinned by `--log-format`):
//! text (tracing-subscriber's) and JSON (one object per line: `time`, `level`, `target`,
//! `message`, the event's fields, the spans it happened in). In both, every message is one
//! line (a line break inside a message or a field is escaped), and a line written while a
//! request is served carries its `request_id` (and `trace_id` when it is traced).

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use weir_model::LogFormat;
use weir_proxy::telemetry::log;
use weir_proxy::telemetry::request_id;

/// Installs the stderr `tracing` subscriber; the level comes from `RUST_LOG` (default info).
/// `format` (the `--log-format` flag) pins the format; without it the settings choose.
pub fn init_tracing(format: Option<LogFormat>) {
    if let Some(f) = format {
        log::pin_format(f);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Spans go to both layers (either may be the one writing when an event comes); events
    // to the one of the current format.
    let text = tracing_subscriber::fmt::layer()
        .with_writer(TextLines)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter_fn(|m| {
            m.is_span() || log::format() == LogFormat::Text
        }));
    let json = JsonLines.with_filter(filter_fn(|m| {
        m.is_span() || log::format() == LogFormat::Json
    }));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init();
}

/// The request labels of the line being written, as ` request_id=… trace_id=…`.
fn push_labels(out: &mut Vec<u8>) {
    if let Some(labels) = request_id::current() {
        out.extend_from_slice(b" request_id=");
        out.extend_from_slice(labels.request_id.as_bytes());
        if let Some(t) = labels.trace_hex() {
            out.extend_from_slice(b" trace_id=");
            out.extend_from_slice(t.as_str().as_bytes());
        }
    }
}

/// Escapes the line breaks inside one formatted text event and appends the request labels.
fn text_line(formatted: &[u8]) -> Vec<u8> {
    let body = formatted.strip_suffix(b"\n").unwrap_or(formatted);
    let mut out = Vec::with_capacity(body.len() + 96);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    push_labels(&mut out);
    out.push(b'\n');
    out
}

/// stderr for the text layer: it hands over each event in one write, formatted.
struct TextLines;

/// One event's writer.
struct TextLine;

impl<'a> MakeWriter<'a> for TextLines {
    type Writer = TextLine;

    fn make_writer(&'a self) -> TextLine {
        TextLine
    }
}

impl Write for TextLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().lock().write_all(&text_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A span's fields, kept for the JSON lines written inside it.
struct SpanFields(Map<String, Value>);

/// Collects fields as JSON values; errors become their one-line source chain.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::from(log::chain(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.0.insert(field.name().into(), Value::from(text));
    }
}

/// The JSON layer: one object per line.
struct JsonLines;

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut fields = Map::new();
        attrs.record(&mut Fields(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
                values.record(&mut Fields(&mut fields.0));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        event.record(&mut Fields(&mut fields));
        let spans: Vec<Value> = ctx
            .event_scope(event)
            .into_iter()
            .flat_map(|scope| scope.from_root())
            .map(|span| {
                let mut obj = Map::new();
                obj.insert("name".into(), Value::from(span.name()));
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    obj.extend(f.0.clone());
                }
                Value::Object(obj)
            })
            .collect();
        let meta = event.metadata();
        let line = json_line(
            time::OffsetDateTime::now_utc(),
            meta.level().as_str(),
            meta.target(),
            fields,
            spans,
            request_id::current().as_deref(),
        );
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

/// One JSON log line: `time`, `level`, `target`, `message` first, then the fields, the
/// request labels and the spans.
fn json_line(
    now: time::OffsetDateTime,
    level: &str,
    target: &str,
    mut fields: Map<String, Value>,
    spans: Vec<Value>,
    labels: Option<&request_id::Labels>,
) -> Vec<u8> {
    let time = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let message = fields.remove("message").unwrap_or(Value::from(""));
    let mut out = Vec::with_capacity(256);
    let mut push = |key: &str, value: &Value| {
        out.push(if out.is_empty() { b'{' } else { b',' });
        let _ = serde_json::to_writer(&mut out, key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    };
    push("time", &Value::from(time));
    push("level", &Value::from(level));
    push("target", &Value::from(target));
    push("message", &message);
    for (k, v) in &fields {
        push(k, v);
    }
    if let Some(l) = labels {
        if !fields.contains_key("request_id") {
            let id = String::from_utf8_lossy(l.request_id.as_bytes());
            push("request_id", &Value::from(id.as_ref()));
        }
        if let Some(t) = l.trace_hex() {
            push("trace_id", &Value::from(t.as_str()));
        }
    }
    if !spans.is_empty() {
        push("spans", &Value::Array(spans));
    }
    out.extend_from_slice(b"}\n");
    out
}

#[cfg(test)]
mod tests;
