//! `GET /metrics`, in Prometheus' (OpenMetrics) text format: runs by
//! status, runs waiting to start, package jobs waiting for an executor
//! and running, stage durations, and webhook deliveries
//! by what became of them. Counts of runs and stages come from the run
//! store, so they survive restarts; deliveries are counted since the
//! process started, as Prometheus counters are.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Server;
use super::problem::Problem;

/// Webhook deliveries, by what became of them.
pub(crate) type Deliveries = Family<Outcome, Counter>;

/// A label: what became of a delivery, a run's status, a stage.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Outcome {
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunStatus {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageName {
    stage: String,
}

/// Counts a delivery answered with `status`.
pub(crate) fn count_delivery(deliveries: &Deliveries, status: StatusCode) {
    let result = match status.as_u16() {
        202 => "accepted",
        200 => "answered",
        204 => "ignored",
        401 => "unauthorized",
        400 => "bad_request",
        404 => "not_configured",
        413 => "too_large",
        _ => "failed",
    };
    deliveries.get_or_create(&Outcome { result: result.to_string() }).inc();
}

/// `GET /metrics`: readable as the API's read routes are.
pub(crate) async fn metrics(State(server): State<Arc<Server>>, headers: HeaderMap) -> Result<Response, Problem> {
    super::api::may_read(&server, &headers)?;
    let totals = super::intake::store_call(&server, |store| store.totals()).await?;
    let mut registry = Registry::with_prefix("loktar");
    let runs = Family::<RunStatus, Gauge>::default();
    for (status, count) in &totals.runs {
        runs.get_or_create(&RunStatus { status: status.clone() }).set(*count);
    }
    registry.register("runs", "Runs recorded, by status", runs);
    let waiting = Gauge::<i64>::default();
    let queued = totals.runs.iter().find(|(status, _)| status == "queued").map_or(0, |(_, count)| *count);
    waiting.set(queued);
    registry.register("queue_depth", "Runs accepted and not started yet", waiting);
    let depth = server.executors.queue().depth().await;
    let (jobs_waiting, jobs_running) = (Gauge::<i64>::default(), Gauge::<i64>::default());
    jobs_waiting.set(i64::try_from(depth.waiting).unwrap_or(i64::MAX));
    jobs_running.set(i64::try_from(depth.running).unwrap_or(i64::MAX));
    registry.register("jobs_waiting", "Package jobs waiting for an executor", jobs_waiting);
    registry.register("jobs_running", "Package jobs an executor works on", jobs_running);
    let active = Gauge::<i64>::default();
    active.set(i64::try_from(server.active().len()).unwrap_or(i64::MAX));
    registry.register("active_runs", "Runs accepted and not ended", active);
    let (stage_runs, stage_seconds) =
        (Family::<StageName, Counter>::default(), Family::<StageName, Counter<f64>>::default());
    for (stage, count, millis) in &totals.stages {
        let label = StageName { stage: stage.clone() };
        stage_runs.get_or_create(&label).inc_by(u64::try_from(*count).unwrap_or(0));
        stage_seconds.get_or_create(&label).inc_by(*millis as f64 / 1000.0);
    }
    registry.register("stage_runs", "Stages run (not skipped), by stage", stage_runs);
    registry.register("stage_seconds", "Time stages ran, in all, by stage", stage_seconds);
    registry.register(
        "webhook_deliveries",
        "Webhook deliveries since the server started, by result",
        server.deliveries.clone(),
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| Problem::internal(crate::diagnostic::Diagnostic::new(format!("cannot write the metrics: {e}"))))?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response())
}
