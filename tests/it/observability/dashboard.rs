//! The chart's Grafana dashboard queries only metrics Weir exports: every metric name in
//! its PromQL is one a live gateway's `/__stats` shows (histogram `_bucket`, `_sum` and
//! `_count` included) after traffic that creates the lazily made series.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::collector::{self, Collector};
use crate::support::*;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/weir")
}

/// The dashboard as the chart renders it: through `helm template` when helm is at hand
/// (`scripts/check-chart.sh` installs it into .tools/bin), else the file the template
/// embeds.
fn rendered_dashboard() -> Value {
    let file = std::fs::read_to_string(chart().join("dashboards/weir.json")).unwrap();
    let from_file: Value = serde_json::from_str(&file).expect("the dashboard is JSON");
    let template = std::fs::read_to_string(chart().join("templates/dashboard.yaml")).unwrap();
    assert!(
        template.contains(".Files.Get \"dashboards/weir.json\""),
        "the template embeds dashboards/weir.json"
    );
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/helm");
    let helm = if local.exists() {
        local
    } else {
        PathBuf::from("helm")
    };
    let out = Command::new(&helm)
        .args(["template", "weir"])
        .arg(chart())
        .args([
            "--set",
            "dashboards.enabled=true",
            "--show-only",
            "templates/dashboard.yaml",
        ])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let cm: Value =
                serde_saphyr::from_str(std::str::from_utf8(&out.stdout).unwrap()).unwrap();
            assert_eq!(
                cm["metadata"]["labels"]["grafana_dashboard"].as_str(),
                Some("1")
            );
            let text = cm["data"]["weir.json"]
                .as_str()
                .expect("weir.json in the ConfigMap");
            let rendered: Value = serde_json::from_str(text).unwrap();
            assert_eq!(rendered, from_file, "the ConfigMap carries the file as is");
            rendered
        }
        _ => {
            eprintln!("helm not found: checking the dashboard file the template embeds");
            from_file
        }
    }
}

/// Every PromQL expression of the dashboard: panel targets (rows included) and the
/// `label_values(metric, label)` of its variables.
fn expressions(dash: &Value) -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push(e.to_string());
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str().or(v["query"].as_str()) {
            if let Some(inner) = q
                .strip_prefix("label_values(")
                .and_then(|r| r.split(',').next())
            {
                out.push(inner.trim().to_string());
            }
        }
    }
    out
}

/// The metric names a PromQL expression selects: identifiers outside strings, label
/// matchers (`{…}`), ranges (`[…]`) and grouping lists (`by (…)`), that are neither
/// functions nor keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 7] = ["bool", "and", "or", "unless", "offset", "inf", "nan"];
    // Aggregations may put `by (…)` between their name and their parenthesis.
    const AGGREGATIONS: [&str; 14] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    // Strings, matchers and ranges out.
    let mut plain = String::new();
    let (mut in_str, mut depth) = (false, 0);
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                chars.next();
            }
            '"' => in_str = !in_str,
            _ if in_str => {}
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth -= 1;
                plain.push(' ');
            }
            _ if depth > 0 => {}
            c => plain.push(c),
        }
    }
    let b = plain.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if !(b[i].is_ascii_alphabetic() || b[i] == b'_' || b[i] == b':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ident(b[i]) {
            i += 1;
        }
        let word = &plain[start..i];
        let mut j = i;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let call = j < b.len() && b[j] == b'(';
        if GROUPING.contains(&word) {
            if call {
                // Skip the label list.
                while j < b.len() && b[j] != b')' {
                    j += 1;
                }
                i = j;
            }
        } else if !call
            && !AGGREGATIONS.contains(&word)
            && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
        {
            names.insert(word.to_string());
        }
    }
    names
}

#[test]
fn promql_metric_names_are_found() {
    let got = metric_names(
        r#"histogram_quantile(0.99, sum by (endpoint, le) (rate(weir_x_bucket{job=~"$job",a="{b}"}[$__rate_interval]))) / on (job) group_left weir_y + process_z"#,
    );
    let want: BTreeSet<String> = ["weir_x_bucket", "weir_y", "process_z"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

/// Metric names in a Prometheus text exposition (histograms as their three series).
fn exported(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{s}"));
                }
            }
            "summary" => {
                for s in ["", "_sum", "_count"] {
                    out.insert(format!("{name}{s}"));
                }
            }
            _ => {
                out.insert(name.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported() {
    let dash = rendered_dashboard();
    let wanted: BTreeSet<String> = expressions(&dash)
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    for must in [
        "weir_requests_total",
        "weir_request_duration_seconds_bucket",
        "weir_backend_calls_total",
        "weir_rate_limit_rejections_total",
        "weir_circuit_breaker_state",
        "weir_config_reloads_total",
        "weir_config_generation",
        "weir_endpoints_served",
        "process_resident_memory_bytes",
    ] {
        assert!(
            wanted.contains(must),
            "the dashboard shows {must}: {wanted:?}"
        );
    }
    // Traffic that creates every lazily made series.
    let ok = json_backend(200, r#"{"a":1}"#).await;
    let bad = json_backend(500, "{}").await;
    let (_, receiver) = Collector::grpc().await;
    let config = format!(
        "stats: {{enabled: true}}
endpoints:
- path: /ok
  method: POST
  rateLimit: {{maxRate: 1, every: 1h}}
  backends: [{{hosts: [{ok}], urlPattern: /a}}]
- path: /partial
  backends:
  - {{hosts: [{ok}], urlPattern: /a}}
  - hosts: [{bad}]
    urlPattern: /b
    circuitBreaker: {{interval: 60s, timeout: 60s, maxErrors: 0}}
- path: /opentelemetry.proto.collector.trace.v1.TraceService/Export
  method: POST
  outputEncoding: no-op
  backends:
  - hosts: [http://{receiver}]
    urlPattern: /opentelemetry.proto.collector.trace.v1.TraceService/Export
    encoding: no-op
    http2: true
",
        ok = ok.url(),
        bad = bad.url()
    );
    let gw = gateway(&config).await;
    assert_eq!(send("POST", &gw.url("/ok"), &[], "x").await.status, 200);
    assert_eq!(send("POST", &gw.url("/ok"), &[], "x").await.status, 503);
    assert_eq!(get(&gw.url("/partial")).await.status, 200);
    assert_eq!(get(&gw.url("/partial")).await.status, 200);
    assert_eq!(get(&gw.url("/nope")).await.status, 404);
    assert_eq!(
        collector::export_through(gw.addr(), 1).await,
        tonic::Code::Ok
    );
    let before = gw.generation();
    gw.rewrite(&config.replace("maxRate: 1,", "maxRate: 2,"));
    gw.wait_generation_above(before).await;
    let stats = get(&gw.url("/__stats")).await.text();
    let have = exported(&stats);
    let missing: Vec<&String> = wanted.iter().filter(|m| !have.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /__stats does not export: {missing:?}\n{stats}"
    );
}
