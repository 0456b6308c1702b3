//! Prometheus metrics, named `latch_<subsystem>_<name>_<unit>`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process-wide recorder. Installed once, so that tests starting several servers share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is already installed, in which case ours stays unused.
            let _ = metrics::set_global_recorder(recorder);
            metrics::describe_counter!(
                "latch_api_requests_total",
                "Requests to the public API, by path and HTTP status"
            );
            metrics::describe_histogram!(
                "latch_api_request_duration_seconds",
                "Time to answer a request to the public API, by path"
            );
            metrics::describe_counter!(
                "latch_requests_created_total",
                "Access requests decided and stored, by outcome (allow_auto, needs_approval, deny)"
            );
            metrics::describe_counter!(
                "latch_expiry_requests_expired_total",
                "Active requests whose expiry passed and whose revokes were sent"
            );
            metrics::describe_counter!(
                "latch_expiry_requests_timed_out_total",
                "Pending requests that outlived the pending time-to-live"
            );
            metrics::describe_counter!(
                "latch_expiry_sweep_failures_total",
                "Expiry sweeps or reconciler runs that failed (and were retried)"
            );
            metrics::describe_counter!(
                "latch_reconcile_grants_total",
                "Grants the reconciler created (automatic flows) or revoked, by action"
            );
            handle
        })
        .clone()
}

/// Counts and times every request. The path of a gRPC call names its method, a bounded set.
pub async fn record_request(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    // Unknown paths are folded into one label so that a scanner cannot grow the label set.
    let label = if response.status() == http::StatusCode::NOT_FOUND {
        "unknown".to_string()
    } else {
        path
    };
    metrics::counter!("latch_api_requests_total", "path" => label.clone(), "status" => response.status().as_u16().to_string())
        .increment(1);
    metrics::histogram!("latch_api_request_duration_seconds", "path" => label)
        .record(started.elapsed().as_secs_f64());
    response
}
