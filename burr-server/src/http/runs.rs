//! Runs: list, one, submit, cancel, rerun.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{ApiJson, ApiQuery};
use super::inspect::{open_app, AppView};
use super::problem::Problem;
use super::Api;
use crate::catalog::{Cursor, ListQuery, Page, MAX_PAGE};
use crate::run::{Run, RunStatus};
use crate::runs::{Runs, Submission};

/// Filters and a place in the listing.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    /// Only entries with this status (runs: queued, running, succeeded, failed,
    /// cancelled; applications: running, created, completed, failed, cancelled).
    #[param(value_type = Option<ListStatus>)]
    status: Option<String>,
    /// Only runs of this kind.
    kind: Option<String>,
    /// Only runs of this flow.
    flow: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(pattern = r"^-?[0-9]{1,18}:")]
    cursor: Option<String>,
    /// At most this many entries (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// A token, where a header cannot be set.
    #[allow(dead_code)]
    access_token: Option<String>,
}

/// The status of a listed run or application.
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Only its schema is used: the parameter is read as text.
pub(crate) enum ListStatus {
    /// A run waiting for a worker.
    Queued,
    /// A run held by a worker, or an application whose lease is held.
    Running,
    /// A run that succeeded.
    Succeeded,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
    /// An application with no step yet.
    Created,
    /// An application whose last step completed.
    Completed,
}

/// Statuses an entry may have.
const STATUSES: [&str; 7] = [
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "created",
    "completed",
];

/// List runs and applications, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListParams),
    responses(
        (status = 200, description = "A page of runs and applications", body = Page),
        (status = 400, description = "A parameter cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(api): State<Api>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Page>, Problem> {
    if let Some(status) = &params.status {
        if !STATUSES.contains(&status.as_str()) {
            return Err(Problem::bad_request(
                "status",
                format!("unknown status `{status}`: one of {}", STATUSES.join(", ")),
            ));
        }
    }
    let cursor = match params.cursor.as_deref() {
        Some(text) => Some(Cursor::parse(text).ok_or_else(|| {
            Problem::bad_request(
                "cursor",
                format!("`{text}` is not a cursor this server wrote"),
            )
        })?),
        None => None,
    };
    if let Some(limit) = params.limit {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Problem::bad_request(
                "limit",
                format!("limit {limit} is not between 1 and {MAX_PAGE}"),
            ));
        }
    }
    let page = api
        .catalog
        .list(ListQuery {
            status: params.status,
            kind: params.kind,
            flow: params.flow,
            cursor,
            limit: params.limit,
        })
        .await?;
    Ok(Json(page))
}

/// A run (when the queue holds it) and its application (when it has checkpoints or
/// tracker records).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunView {
    /// The id.
    id: String,
    /// The queue's run, when it is one.
    run: Option<Run>,
    /// Its application, once it has started.
    app: Option<AppView>,
}

/// One run or application.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run id or app id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 404, description = "No run or application has this id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<RunView>, Problem> {
    let run = api.catalog.run(&id).await?;
    let app = match open_app(&api, &id, AppView::of).await {
        Ok(app) => Some(app),
        Err(problem) if problem.status() == StatusCode::NOT_FOUND && run.is_some() => None,
        Err(problem) => return Err(problem),
    };
    Ok(Json(RunView { id, run, app }))
}

/// A run to submit.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitBody {
    /// The kind (see `GET /v1/kinds`).
    kind: String,
    /// Its inputs, matching the kind's input schema.
    #[serde(default)]
    #[schema(value_type = Value)]
    inputs: Value,
    /// Higher runs first (default 0).
    #[serde(default, deserialize_with = "integer")]
    priority: i32,
    /// Submitting the same kind with the same key again returns the existing run (200).
    idempotency_key: Option<String>,
    /// Not claimed before this time (microseconds since the Unix epoch).
    #[serde(default, deserialize_with = "optional_integer")]
    not_before_us: Option<i64>,
    /// The flow it belongs to (runs of an earlier flow go first).
    flow: Option<String>,
    /// The run id (default: a new UUID): 1 to 512 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 512,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    run_id: Option<String>,
}

/// An integer, also written as a float with no fraction (`86.0`: JSON Schema's
/// `integer` admits it).
fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    let out = if let Some(n) = number.as_u64() {
        T::try_from(n).ok()
    } else if let Some(n) = number.as_i64() {
        T::try_from(n).ok()
    } else {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .and_then(|f| T::try_from(f as i64).ok())
    };
    out.ok_or_else(|| D::Error::custom(format!("{number} is not an integer in range")))
}

/// An optional [`integer`].
fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    #[derive(Deserialize)]
    struct Wrap<T: TryFrom<i64> + TryFrom<u64>>(#[serde(deserialize_with = "integer")] T);
    Ok(Option::<Wrap<T>>::deserialize(deserializer)?.map(|w| w.0))
}

/// The runs of a server that acts, or 403.
fn acting(api: &Api) -> Result<&Runs, Problem> {
    api.runs.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::FORBIDDEN,
            "read-only",
            "this server only reads its database (burr ui): submit, cancel and rerun through the program's own server",
        )
    })
}

/// A run as a response, with its `Location`.
fn created(run: Run, status: StatusCode) -> Response {
    let location = format!("/v1/runs/{}", urlencoding(&run.id));
    (status, [(header::LOCATION, location)], Json(run)).into_response()
}

/// `text` with everything but unreserved characters percent-encoded (a path segment).
fn urlencoding(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Submit a run: 201 with the run, or 200 with the existing one for a known
/// idempotency key. Durable before it answers.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = SubmitBody,
    responses(
        (status = 201, description = "Submitted", body = Run),
        (status = 200, description = "The run already submitted with this idempotency key", body = Run),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Read-only server, or not the admin token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A run with this id exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not declared JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown kind, or inputs that do not match (the field is named)", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn submit(
    State(api): State<Api>,
    ApiJson(body): ApiJson<SubmitBody>,
) -> Result<Response, Problem> {
    let runs = acting(&api)?;
    if let Some(id) = &body.run_id {
        check_id("run_id", id)?;
    }
    let submitted = runs
        .submit(Submission {
            kind: body.kind,
            inputs: body.inputs,
            priority: body.priority,
            idempotency_key: body.idempotency_key,
            not_before_us: body.not_before_us,
            flow: body.flow,
            run_id: body.run_id,
        })
        .await?;
    let status = if submitted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(created(submitted.run, status))
}

/// Refuse ids that cannot name a run: empty, too long, or with control characters.
fn check_id(field: &str, id: &str) -> Result<(), Problem> {
    if id.is_empty() || id.len() > 512 || id.chars().any(char::is_control) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-id",
            format!("`{field}` must be 1 to 512 characters without control characters"),
        )
        .field(field));
    }
    Ok(())
}

/// Cancel a run: a queued one at once, a running one through its worker.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 200, description = "The run, cancelled (or asked to cancel)", body = Run),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Read-only server, or not the admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is over", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn cancel(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Run>, Problem> {
    let runs = acting(&api)?;
    Ok(Json(runs.queue().cancel(&id).await?))
}

/// Where a rerun starts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RerunBody {
    /// The step whose state the new run starts from.
    #[serde(deserialize_with = "integer")]
    sequence_id: u64,
}

/// Rerun from a step: a new run of the same kind and inputs whose application starts
/// from the state after step `sequence_id` (a fork).
#[utoipa::path(post, path = "/v1/runs/{id}/rerun", tag = "runs", request_body = RerunBody,
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 201, description = "The new run", body = Run),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Read-only server, or not the admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run, or no such step", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not declared JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field that does not fit", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn rerun(
    State(api): State<Api>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RerunBody>,
) -> Result<Response, Problem> {
    let runs = acting(&api)?.clone();
    let source = api.catalog.run(&id).await?;
    if source.is_none() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-run",
            format!("no run `{id}`: only runs of the queue can be rerun"),
        )
        .id(&id));
    }
    let seq = body.sequence_id;
    // The step must exist: a fork of a missing step would start from scratch.
    open_app(&api, &id, move |db, app| {
        db.state(app, Some(seq)).map(|_| ())
    })
    .await?;
    let submitted = runs.rerun(&id, seq).await?;
    debug_assert!(submitted.run.status == RunStatus::Queued);
    Ok(created(submitted.run, StatusCode::CREATED))
}
