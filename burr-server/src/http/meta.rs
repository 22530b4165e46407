//! Health, readiness, metrics, the backlog and the kinds.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::problem::Problem;
use super::Api;
use crate::kind::KindInfo;
use crate::run::Backlog;

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "Alive", body = String)))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// The database can be read.
#[utoipa::path(get, path = "/readyz", tag = "meta", responses(
    (status = 200, description = "Ready", body = String),
    (status = 503, description = "The database cannot be read", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn readyz(State(api): State<Api>) -> Response {
    match api.catalog.last_event_id().await {
        Ok(_) => "ready".into_response(),
        Err(error) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            error.to_string(),
        )
        .into_response(),
    }
}

/// Prometheus metrics: queue depth by kind and priority, runs started, finished and
/// failed, step durations, checkpoint latency.
#[utoipa::path(get, path = "/metrics", tag = "meta", responses(
    (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
    (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    (status = 500, description = "The database cannot be read", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn metrics(State(api): State<Api>) -> Result<Response, Problem> {
    let backlog = api.catalog.backlog().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.metrics.render(&backlog.rows),
    )
        .into_response())
}

/// Runs by kind, priority and status, and how long the oldest ready run waited.
#[utoipa::path(get, path = "/v1/backlog", tag = "runs", responses(
    (status = 200, description = "The backlog", body = Backlog),
    (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn backlog(State(api): State<Api>) -> Result<Json<Backlog>, Problem> {
    Ok(Json(api.catalog.backlog().await?))
}

/// The kinds this server can submit, with their input schemas (none for a read-only
/// server).
#[utoipa::path(get, path = "/v1/kinds", tag = "runs", responses(
    (status = 200, description = "The kinds", body = Vec<KindInfo>),
    (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn kinds(State(api): State<Api>) -> Json<Vec<KindInfo>> {
    Json(
        api.runs
            .as_ref()
            .map(|r| r.registry().kinds())
            .unwrap_or_default(),
    )
}
