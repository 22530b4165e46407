//! The HTTP API (`/v1`) and the web UI, over a burr database: its runs (when it has a
//! run queue) and its applications, checkpoints and tracker records (any database
//! burr-rs writes).
//!
//! A [`Server`] is made [`read_only`](Server::read_only) (what `burr ui` serves: lists,
//! pages, state, events; no submit, cancel or rerun) or [`with_runs`](Server::with_runs)
//! (a user's server binary: also submits, cancels and reruns, checked against its kinds).
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the web UI |
//! | `GET /healthz`, `GET /readyz` | alive; database readable |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /v1/openapi.json` | the OpenAPI 3.1 document |
//! | `GET /v1/runs`, `POST /v1/runs` | list (filters, cursor); submit |
//! | `GET /v1/runs/{id}` | a run (and its application) |
//! | `GET /v1/runs/{id}/steps`, `/state`, `/diff`, `/children`, `/graph` | inspection |
//! | `GET /v1/runs/{id}/events`, `GET /v1/events` | Server-Sent Events (`Last-Event-ID`) |
//! | `POST /v1/runs/{id}/cancel`, `POST /v1/runs/{id}/rerun` | act |
//! | `GET /v1/backlog`, `GET /v1/kinds` | the queue's backlog; the kinds and their input schemas |
//!
//! ```no_run
//! # async fn demo() -> Result<(), burr_server::http::ServeError> {
//! let server = burr_server::http::Server::read_only("burr.db")?;
//! server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod access;
mod events;
mod extract;
mod inspect;
mod meta;
mod openapi;
mod problem;
mod runs;
mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::catalog::Catalog;
use crate::error::QueueError;
use crate::metrics::Metrics;
use crate::runs::Runs;

pub use events::EventFeed;
pub use openapi::openapi;
pub use problem::Problem;

use access::Access;

/// How a [`Server`] listens and whom it lets in.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Where it listens (default `127.0.0.1:7777`).
    pub addr: SocketAddr,
    /// A token that may read (`GET`). Required, with `admin_token` or alone, to listen
    /// anywhere but loopback.
    pub read_token: Option<String>,
    /// A token that may also submit, cancel and rerun.
    pub admin_token: Option<String>,
    /// The largest request body accepted (default 1 MiB); larger ones get 413.
    pub body_limit: usize,
    /// How long a request may take to produce its response (default 30 s; event streams
    /// stream on after their response starts).
    pub request_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 7777)),
            read_token: None,
            admin_token: None,
            body_limit: 1 << 20,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Listening beyond loopback without a token.
    #[error(
        "refusing to listen on {addr} without a token: set --token (or BURR_TOKEN) or --admin-token (or BURR_ADMIN_TOKEN), or listen on 127.0.0.1"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The database cannot be read.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The HTTP API and web UI over one database.
#[derive(Debug)]
pub struct Server {
    catalog: Catalog,
    runs: Option<Runs>,
    metrics: Arc<Metrics>,
    options: ServerOptions,
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct Api {
    catalog: Catalog,
    runs: Option<Runs>,
    feed: EventFeed,
    metrics: Arc<Metrics>,
    access: Arc<Access>,
    /// Becomes `true` when the server shuts down: event streams end.
    shutdown: watch::Receiver<bool>,
}

impl Server {
    /// A server that only reads the database at `db` (what `burr ui` serves): submit,
    /// cancel and rerun answer 403.
    pub fn read_only(db: impl AsRef<Path>) -> Result<Server, ServeError> {
        Ok(Server {
            catalog: Catalog::open(db)?,
            runs: None,
            metrics: Metrics::new(),
            options: ServerOptions::default(),
        })
    }

    /// A server over `runs` (a queue in the database at `db`, and the kinds a program
    /// knows): it also submits, cancels and reruns.
    pub fn with_runs(db: impl AsRef<Path>, runs: Runs) -> Result<Server, ServeError> {
        let mut server = Server::read_only(db)?;
        server.catalog.use_queue(Arc::clone(runs.queue()));
        server.runs = Some(runs);
        Ok(server)
    }

    /// Share `metrics` (e.g. with the workers of the same process, which time their
    /// checkpoints into them).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// How it listens and whom it lets in.
    pub fn with_options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Listen (checking that a server beyond loopback has a token), then serve until
    /// `shutdown` completes; then stop accepting, end event streams and finish the
    /// requests in flight.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.bind().await?.serve(shutdown).await
    }

    /// Listen, without serving yet: [`Bound::local_addr`] tells the port (useful with
    /// port 0).
    pub async fn bind(self) -> Result<Bound, ServeError> {
        let addr = self.options.addr;
        let access = Access {
            read: self.options.read_token.clone().filter(|t| !t.is_empty()),
            admin: self.options.admin_token.clone().filter(|t| !t.is_empty()),
        };
        if !addr.ip().is_loopback() && !access.enabled() {
            return Err(ServeError::TokenRequired { addr });
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        // Read the database's applications once now, so that the first page is quick.
        self.catalog
            .list(crate::catalog::ListQuery {
                limit: Some(1),
                ..Default::default()
            })
            .await?;
        let (stop, shutdown) = watch::channel(false);
        let changes = self.runs.as_ref().map(|runs| runs.queue().changes());
        let feed = EventFeed::start(
            self.catalog.clone(),
            Arc::clone(&self.metrics),
            changes,
            shutdown.clone(),
        )
        .await?;
        let api = Api {
            catalog: self.catalog,
            runs: self.runs,
            feed,
            metrics: self.metrics,
            access: Arc::new(access),
            shutdown,
        };
        Ok(Bound {
            listener,
            router: router(api, &self.options),
            stop,
        })
    }
}

/// A server listening, not yet serving.
#[derive(Debug)]
pub struct Bound {
    listener: tokio::net::TcpListener,
    router: Router,
    stop: watch::Sender<bool>,
}

impl Bound {
    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        self.listener.local_addr().map_err(ServeError::Serve)
    }

    /// Serve until `shutdown` completes (see [`Server::serve`]).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let stop = self.stop;
        let signal = async move {
            shutdown.await;
            // Event streams end, so that their connections close and the drain finishes.
            let _ = stop.send(true);
        };
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(signal)
            .await
            .map_err(ServeError::Serve)
    }
}

/// Every route.
fn router(api: Api, options: &ServerOptions) -> Router {
    let v1 = Router::new()
        .route("/runs", get(runs::list).post(runs::submit))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/runs/{id}/rerun", post(runs::rerun))
        .route("/runs/{id}/steps", get(inspect::steps))
        .route("/runs/{id}/state", get(inspect::state))
        .route("/runs/{id}/diff", get(inspect::diff))
        .route("/runs/{id}/children", get(inspect::children))
        .route("/runs/{id}/graph", get(inspect::graph))
        .route("/runs/{id}/events", get(events::run_events))
        .route("/events", get(events::all_events))
        .route("/backlog", get(meta::backlog))
        .route("/kinds", get(meta::kinds))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            access::guard,
        ))
        .route("/openapi.json", get(openapi::document));
    // Metrics name the kinds and count their runs: as guarded as the API.
    let metrics = Router::new()
        .route("/metrics", get(meta::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            access::guard,
        ));
    Router::new()
        .nest("/v1", v1)
        .merge(metrics)
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.body_limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        .with_state(api)
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no-route",
        format!("no route {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
