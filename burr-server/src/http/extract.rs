//! Extractors whose rejections are problem details naming what was wrong: a JSON body
//! (the field, through serde_path_to_error), a query string (the parameter), a path.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// A JSON request body; a body that is not JSON, too large or does not match gives a
/// problem naming the field.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or_default().trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be JSON (Content-Type: application/json)",
            )
            .field("Content-Type"));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        status,
                        "too-large",
                        "the body is larger than this server accepts",
                    )
                } else {
                    Problem::new(status, "bad-body", rejection.body_text())
                }
            })?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let (status, name) = if inner.is_syntax() || inner.is_eof() {
                (StatusCode::BAD_REQUEST, "bad-json")
            } else {
                (StatusCode::UNPROCESSABLE_ENTITY, "bad-field")
            };
            let problem = Problem::new(status, name, format!("at `{path}`: {inner}"));
            if path == "." {
                problem
            } else {
                problem.field(path)
            }
        })?;
        deserializer.end().map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-json",
                format!("after the JSON value: {e}"),
            )
        })?;
        Ok(ApiJson(value))
    }
}

/// Query parameters; one that cannot be read gives a 400 naming it.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                let field = match path.as_str() {
                    "." | "?" => inner
                        .to_string()
                        .split('`')
                        .nth(1)
                        .map(str::to_owned)
                        .unwrap_or_else(|| "query".to_owned()),
                    _ => path,
                };
                Problem::bad_request(&field, format!("query parameter `{field}`: {inner}"))
            })
    }
}
