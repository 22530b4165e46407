//! Errors as RFC 9457 problem details: `application/problem+json` naming what was wrong.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use burr_tracker::TrackerError;
use serde::Serialize;

use crate::error::QueueError;

/// A problem (RFC 9457): what went wrong with a request.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:burr:problem:<name>` (`unknown-run`,
    /// `bad-inputs`...).
    #[serde(rename = "type", serialize_with = "urn")]
    #[schema(value_type = String)]
    pub problem_type: &'static str,
    /// A short summary of the kind of problem (the status' reason phrase).
    #[schema(value_type = String)]
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, for people.
    pub detail: String,
    /// The field, parameter or header that was wrong (`inputs.meeting.id`, `cursor`,
    /// `Last-Event-ID`), when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The run or application the problem is about, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Problem {
    /// A problem with `status`, named `name` (`unknown-run`...).
    pub fn new(status: StatusCode, name: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: name,
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            id: None,
        }
    }

    /// 400: a parameter that cannot be read.
    pub fn bad_request(field: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail).field(field)
    }

    /// 404: nothing is stored under `id`.
    pub fn not_found(id: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail).id(id)
    }

    /// Naming the field that was wrong.
    pub fn field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    /// Naming the run or application.
    pub fn id(mut self, id: impl Into<String>) -> Problem {
        self.id = Some(id.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// A problem's name as its type URI.
fn urn<S: serde::Serializer>(name: &&'static str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("urn:burr:problem:{name}"))
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

impl From<QueueError> for Problem {
    fn from(error: QueueError) -> Problem {
        let detail = error.to_string();
        match &error {
            QueueError::UnknownRun { run_id } => {
                Problem::new(StatusCode::NOT_FOUND, "unknown-run", detail).id(run_id)
            }
            QueueError::RunExists { run_id } => {
                Problem::new(StatusCode::CONFLICT, "run-exists", detail)
                    .id(run_id)
                    .field("run_id")
            }
            QueueError::AppExists { run_id } => {
                Problem::new(StatusCode::CONFLICT, "app-exists", detail)
                    .id(run_id)
                    .field("run_id")
            }
            QueueError::UnknownKind { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown-kind", detail).field("kind")
            }
            QueueError::BadInputs { field, .. } => {
                let field = if field.is_empty() || field == "." {
                    "inputs".to_owned()
                } else {
                    format!("inputs.{field}")
                };
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-inputs", detail).field(field)
            }
            QueueError::Invalid { what, .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
                    .field(what.replace(' ', "_"))
            }
            QueueError::AlreadyFinished { run_id, .. } => {
                Problem::new(StatusCode::CONFLICT, "already-finished", detail).id(run_id)
            }
            QueueError::Fenced { run_id, .. } => {
                Problem::new(StatusCode::CONFLICT, "fenced", detail).id(run_id)
            }
            QueueError::UnknownSchedule { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "unknown-schedule", detail)
            }
            QueueError::BadSchedule { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-schedule", detail)
            }
            QueueError::SchemaOutdated { .. } => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "schema-outdated", detail)
            }
            QueueError::Tracker(tracker) => Problem::from_tracker(tracker, detail),
            _ => {
                tracing::error!(%error, "request failed");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", detail)
            }
        }
    }
}

impl From<TrackerError> for Problem {
    fn from(error: TrackerError) -> Problem {
        let detail = error.to_string();
        Problem::from_tracker(&error, detail)
    }
}

impl Problem {
    fn from_tracker(error: &TrackerError, detail: String) -> Problem {
        match error {
            TrackerError::UnknownApp { app_id, .. } => {
                Problem::new(StatusCode::NOT_FOUND, "unknown-run", detail).id(app_id)
            }
            TrackerError::UnknownSequenceId { app_id, .. } => {
                Problem::new(StatusCode::NOT_FOUND, "unknown-sequence-id", detail)
                    .id(app_id)
                    .field("sequence_id")
            }
            TrackerError::NoSteps { app_id } => {
                Problem::new(StatusCode::NOT_FOUND, "no-steps", detail).id(app_id)
            }
            TrackerError::NotTracked { app_id } => {
                Problem::new(StatusCode::NOT_FOUND, "not-tracked", detail).id(app_id)
            }
            TrackerError::AmbiguousApp { app_id, .. } => {
                Problem::new(StatusCode::CONFLICT, "ambiguous-app", detail).id(app_id)
            }
            _ => {
                tracing::error!(%detail, "request failed");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", detail)
            }
        }
    }
}
