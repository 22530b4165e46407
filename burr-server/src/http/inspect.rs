//! What an application did: its steps with attempts, its state at any sequence id and
//! the diff between two, its child tree with progress, its graph — from the checkpoints
//! and the tracker's records (burr-tracker's reader), whichever hold them.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use burr_tracker::inspect::{self, App, Database, Status};
use burr_tracker::TrackerError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::extract::ApiQuery;
use super::problem::Problem;
use super::Api;
use crate::catalog::Progress;

/// Most applications a child tree lists.
const MAX_TREE: usize = 10_000;

/// Open the database scoped to `id` and its children, find `id`, and run `f` on it — on
/// tokio's blocking threads.
pub(crate) async fn open_app<T: Send + 'static>(
    api: &Api,
    id: &str,
    f: impl FnOnce(&Database, &App) -> Result<T, TrackerError> + Send + 'static,
) -> Result<T, Problem> {
    let catalog = api.catalog.clone();
    let id = id.to_owned();
    let joined = tokio::task::spawn_blocking(move || {
        let db = catalog.open_app(&id)?;
        let app = db.find(&id, None)?;
        f(&db, app)
    })
    .await;
    match joined {
        Ok(out) => out.map_err(Problem::from),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

/// An application: where it stands and where it came from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AppView {
    /// Its app id.
    app_id: String,
    /// Its partition key.
    partition_key: Option<String>,
    /// `running`, `interrupted`, `completed`, `failed` or `cancelled`.
    status: String,
    /// How many steps (sequence ids) it took.
    steps: u64,
    /// When it was first recorded (µs since the Unix epoch).
    created_at_us: i64,
    /// When it last changed.
    updated_at_us: i64,
    /// The application it was forked from (`app_id@sequence_id`).
    fork_parent: Option<String>,
    /// The application step that spawned it (`app_id@sequence_id`).
    spawning_parent: Option<String>,
    /// Whether a tracker recorded it (steps have times, inputs and results).
    tracked: bool,
}

impl AppView {
    pub(crate) fn of(db: &Database, app: &App) -> Result<AppView, TrackerError> {
        let summary = db.summary(app)?;
        let pointer = |p: &Option<burr_core::ids::ParentPointer>| {
            p.as_ref().map(|p| match p.sequence_id {
                Some(seq) => format!("{}@{seq}", p.app_id),
                None => p.app_id.clone(),
            })
        };
        Ok(AppView {
            app_id: app.app_id.clone(),
            partition_key: app.partition_key.clone(),
            status: summary.status.as_str().to_owned(),
            steps: summary.steps,
            created_at_us: app.created_at_us,
            updated_at_us: summary.updated_at_us,
            fork_parent: pointer(&app.fork_parent),
            spawning_parent: pointer(&app.spawning_parent),
            tracked: app.tracked(),
        })
    }
}

/// One attempt at a step.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StepView {
    /// The step's sequence id.
    sequence_id: u64,
    /// The action.
    action: String,
    /// `running`, `interrupted`, `completed`, `failed` or `cancelled`.
    status: String,
    /// 1 for the first attempt, 2 for the first retry...
    attempt: u32,
    /// When it started (µs since the Unix epoch; unknown for a step only the
    /// checkpoints know).
    started_at_us: Option<i64>,
    /// When it ended.
    ended_at_us: Option<i64>,
    /// How long it took, in microseconds.
    duration_us: Option<i64>,
    /// Its inputs (tracked steps only).
    #[schema(value_type = Option<Object>)]
    inputs: Option<Map<String, Value>>,
    /// Its result (tracked, completed steps only).
    #[schema(value_type = Option<Object>)]
    result: Option<Map<String, Value>>,
    /// The error and its causes, outermost first.
    error: Option<Vec<String>>,
}

/// Every attempt at every step of an application, in order.
#[utoipa::path(get, path = "/v1/runs/{id}/steps", tag = "inspect",
    params(("id" = String, Path, description = "The run id or app id")),
    responses(
        (status = 200, description = "The steps, with attempts", body = Vec<StepView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such application", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn steps(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Vec<StepView>>, Problem> {
    let steps = open_app(&api, &id, |db, app| db.steps(app)).await?;
    Ok(Json(
        steps
            .into_iter()
            .map(|s| StepView {
                duration_us: s.duration_us(),
                sequence_id: s.sequence_id,
                action: s.action,
                status: s.status.as_str().to_owned(),
                attempt: s.attempt,
                started_at_us: s.started_at_us,
                ended_at_us: s.ended_at_us,
                inputs: s.inputs,
                result: s.result,
                error: s.error,
            })
            .collect(),
    ))
}

/// Which state.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateParams {
    /// The step after which (default: the latest).
    sequence_id: Option<u64>,
    /// A token, where a header cannot be set.
    #[allow(dead_code)]
    access_token: Option<String>,
}

/// The state after one step.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StateView {
    /// The application.
    app_id: String,
    /// The step after which.
    sequence_id: u64,
    /// The whole state.
    #[schema(value_type = Object)]
    state: Map<String, Value>,
}

/// The state of an application after a step.
#[utoipa::path(get, path = "/v1/runs/{id}/state", tag = "inspect", params(("id" = String, Path, description = "The run id or app id"), StateParams),
    responses(
        (status = 200, description = "The state", body = StateView),
        (status = 400, description = "A parameter cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such application or step", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn state(
    State(api): State<Api>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<StateParams>,
) -> Result<Json<StateView>, Problem> {
    let app_id = id.clone();
    let (sequence_id, state) =
        open_app(&api, &id, move |db, app| db.state(app, params.sequence_id)).await?;
    Ok(Json(StateView {
        app_id,
        sequence_id,
        state,
    }))
}

/// Which two states.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiffParams {
    /// The later step (default: the latest).
    to: Option<u64>,
    /// The earlier step (default: the step before `to`; none before the first step).
    from: Option<u64>,
    /// A token, where a header cannot be set.
    #[allow(dead_code)]
    access_token: Option<String>,
}

/// A value that changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ChangeView {
    /// Before.
    #[schema(value_type = Value)]
    from: Value,
    /// After.
    #[schema(value_type = Value)]
    to: Value,
}

/// What differs between the states after two steps.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DiffView {
    /// The earlier step (`None`: the empty state before the first).
    from: Option<u64>,
    /// The later step.
    to: u64,
    /// Keys only in the later state.
    #[schema(value_type = Object)]
    added: BTreeMap<String, Value>,
    /// Keys only in the earlier state.
    #[schema(value_type = Object)]
    removed: BTreeMap<String, Value>,
    /// Keys whose values differ.
    changed: BTreeMap<String, ChangeView>,
}

/// The diff between the states after two steps.
#[utoipa::path(get, path = "/v1/runs/{id}/diff", tag = "inspect", params(("id" = String, Path, description = "The run id or app id"), DiffParams),
    responses(
        (status = 200, description = "The diff", body = DiffView),
        (status = 400, description = "A parameter cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such application or step", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn diff(
    State(api): State<Api>,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<DiffParams>,
) -> Result<Json<DiffView>, Problem> {
    let view = open_app(&api, &id, move |db, app| {
        let (to, after) = db.state(app, params.to)?;
        let from = match params.from {
            Some(from) => Some(from),
            None => {
                let steps = db.steps(app)?;
                steps
                    .iter()
                    .map(|s| s.sequence_id)
                    .filter(|&s| s < to)
                    .max()
            }
        };
        let before = match from {
            Some(from) => db.state(app, Some(from))?.1,
            None => Map::new(),
        };
        let diff = inspect::diff(&before, &after);
        Ok(DiffView {
            from,
            to,
            added: diff.added,
            removed: diff.removed,
            changed: diff
                .changed
                .into_iter()
                .map(|(k, c)| {
                    (
                        k,
                        ChangeView {
                            from: c.from,
                            to: c.to,
                        },
                    )
                })
                .collect(),
        })
    })
    .await?;
    Ok(Json(view))
}

/// An application and the applications its steps spawned.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(no_recursion)]
pub(crate) struct ChildNode {
    /// Its app id.
    app_id: String,
    /// Where it stands.
    status: String,
    /// How many steps it took.
    steps: u64,
    /// Of its children: how many finished (completed, failed or cancelled) of how many.
    progress: Progress,
    /// Its children, in creation order.
    children: Vec<ChildNode>,
}

/// The child tree of an application, with progress counts.
#[utoipa::path(get, path = "/v1/runs/{id}/children", tag = "inspect",
    params(("id" = String, Path, description = "The run id or app id")),
    responses(
        (status = 200, description = "The tree (at most 10,000 applications)", body = ChildNode),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such application", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn children(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<ChildNode>, Problem> {
    let tree = open_app(&api, &id, |db, app| {
        let mut budget = MAX_TREE;
        node(db, app, &mut budget, 0)
    })
    .await?;
    Ok(Json(tree))
}

fn node(
    db: &Database,
    app: &App,
    budget: &mut usize,
    depth: usize,
) -> Result<ChildNode, TrackerError> {
    *budget = budget.saturating_sub(1);
    let summary = db.summary(app)?;
    let mut children = Vec::new();
    let mut done = 0;
    let listed = db.children(app);
    let total = listed.len() as u64;
    for child in listed {
        if *budget == 0 || depth >= 32 {
            break;
        }
        let child = node(db, child, budget, depth + 1)?;
        if matches!(child.status.as_str(), "completed" | "failed" | "cancelled") {
            done += 1;
        }
        children.push(child);
    }
    Ok(ChildNode {
        app_id: app.app_id.clone(),
        status: summary.status.as_str().to_owned(),
        steps: summary.steps,
        progress: Progress { done, total },
        children,
    })
}

/// An application's graph, and where it stands in it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct GraphView {
    /// The action it starts at.
    entrypoint: Option<String>,
    /// The actions: name, reads, writes, inputs.
    #[schema(value_type = Vec<Object>)]
    actions: Vec<burr_tracker::ActionRecord>,
    /// The transitions: from, to, condition.
    #[schema(value_type = Vec<Object>)]
    transitions: Vec<burr_tracker::TransitionRecord>,
    /// The action of its last step (`None` before its first).
    current: Option<String>,
    /// Whether that step is running now.
    running: bool,
}

/// The graph a tracker recorded for an application, with its current action.
#[utoipa::path(get, path = "/v1/runs/{id}/graph", tag = "inspect",
    params(("id" = String, Path, description = "The run id or app id")),
    responses(
        (status = 200, description = "The graph", body = GraphView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such application, or no tracker recorded it", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn graph(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<GraphView>, Problem> {
    let view = open_app(&api, &id, |db, app| {
        let graph = db.graph(app)?;
        let steps = db.steps(app)?;
        let last = steps.last();
        Ok(GraphView {
            entrypoint: graph.entrypoint,
            actions: graph.actions,
            transitions: graph.transitions,
            current: last.map(|s| s.action.clone()),
            running: last.is_some_and(|s| s.status == Status::Running),
        })
    })
    .await?;
    Ok(Json(view))
}
