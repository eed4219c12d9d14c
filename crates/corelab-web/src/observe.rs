//! Health, readiness and Prometheus metrics.

use std::sync::OnceLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::WebState;

/// The process-wide metrics recorder (installed once; every router shares it).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // A second recorder (another App in the same test process) keeps using the first one.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn router() -> Router<WebState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(prometheus))
}

/// Alive: the process answers. Says nothing about dependencies.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "alive"}))
}

/// Ready: the database and the blob store answer; otherwise 503 with the reason.
async fn readyz(State(state): State<WebState>) -> Response {
    match state.app.readiness().await {
        Ok(()) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "unavailable", "reason": e.to_string()})))
                .into_response()
        }
    }
}

async fn prometheus(State(state): State<WebState>) -> impl IntoResponse {
    // The last fixity check is read from the database, so every process reports it, whichever ran it.
    if let Ok(Some(run)) = state.app.last_fixity_run().await {
        let g = |name: &'static str, v: f64| metrics::gauge!(name).set(v);
        if let Some(t) = run["finished_at"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
            g("corelab_fixity_last_run_timestamp_seconds", t.timestamp() as f64);
        }
        g("corelab_fixity_blobs_checked", run["checked"].as_f64().unwrap_or(0.0));
        g("corelab_fixity_blobs_missing", run["missing"].as_f64().unwrap_or(0.0));
        g("corelab_fixity_blobs_altered", run["altered"].as_f64().unwrap_or(0.0));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics_handle().render())
}

/// Counts requests and their latency by route (the route pattern, never the concrete path, so
/// ids do not explode the label set) and logs one line per request.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method.to_string()), ("route", route.clone()), ("status", status)];
    metrics::counter!("corelab_http_requests_total", &labels).increment(1);
    metrics::histogram!("corelab_http_request_duration_seconds", "method" => method.to_string(), "route" => route.clone())
        .record(elapsed.as_secs_f64());
    tracing::info!(target: "corelab::http", %method, %route, status = resp.status().as_u16(), ms = elapsed.as_millis() as u64, "request");
    resp
}
