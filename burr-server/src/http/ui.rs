//! The web UI: a page and its script and styles, embedded in the binary (running it
//! needs no Node.js and no files beside the binary). Plain JavaScript, no build step:
//! `burr-server/ui/` is what the browser gets.
//!
//! For work on the UI, `BURR_UI_DIR=burr-server/ui` makes the server read the files from
//! that directory at each request instead (edit, reload, no rebuild).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::problem::Problem;
use super::Api;

/// The UI's files: (name, content type, content).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/style.css"),
    ),
];

const INDEX: &str = include_str!("../../ui/index.html");

/// `/` (the page) and `/ui/{file}`.
pub(crate) fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{file}", get(asset))
}

/// The file `name` of `BURR_UI_DIR`, when that is set (work on the UI).
fn from_dir(name: &str) -> Option<String> {
    let dir = std::env::var_os("BURR_UI_DIR")?;
    std::fs::read_to_string(std::path::Path::new(&dir).join(name)).ok()
}

async fn index() -> Response {
    let body = from_dir("index.html").unwrap_or_else(|| INDEX.to_owned());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((name, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            from_dir(name).unwrap_or_else(|| (*body).to_owned()),
        )
            .into_response(),
        None => Problem::new(
            StatusCode::NOT_FOUND,
            "no-asset",
            format!("no UI file `{file}`"),
        )
        .into_response(),
    }
}
