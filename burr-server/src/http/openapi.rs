//! The OpenAPI 3.1 document, generated from the handlers and types by utoipa.

use axum::Json;
use utoipa::OpenApi;

use super::{events, inspect, meta, problem, runs};

#[derive(OpenApi)]
#[openapi(
    info(title = "burr-rs", description = "Runs, applications, checkpoints and tracker records of a burr database."),
    paths(
        runs::list, runs::submit, runs::get, runs::cancel, runs::rerun,
        inspect::steps, inspect::state, inspect::diff, inspect::children, inspect::graph,
        events::run_events, events::all_events,
        meta::backlog, meta::kinds, meta::healthz, meta::readyz, meta::metrics,
    ),
    components(schemas(problem::Problem, runs::ListStatus)),
    tags(
        (name = "runs", description = "Submit, list, cancel and rerun runs"),
        (name = "inspect", description = "What an application did"),
        (name = "events", description = "Server-Sent Events"),
        (name = "meta", description = "Health and metrics"),
    )
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /v1/openapi.json`.
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}
