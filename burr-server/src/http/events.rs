//! Run events as Server-Sent Events, resumable with `Last-Event-ID`.
//!
//! One [`EventFeed`] per server follows the database: woken by the queue of its own
//! process at once, and otherwise looking every [`POLL`] whether another connection
//! committed (SQLite's `data_version`, a read of shared memory), it reads the new run
//! events once and broadcasts them to every stream. A stream first replays what its
//! client missed (the events after its `Last-Event-ID`), then follows the broadcast.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use super::extract::ApiQuery;
use super::inspect::open_app;
use super::problem::Problem;
use super::Api;
use crate::catalog::Catalog;
use crate::error::QueueError;
use crate::events::RunEvent;
use crate::metrics::Metrics;

/// How often the feed looks for commits of other processes.
pub const POLL: Duration = Duration::from_millis(25);

/// Events a slow stream may fall behind before it re-reads from the database.
const BUFFER: usize = 8192;

/// Most events replayed or read at once.
const BATCH: u32 = 1000;

/// What the feed broadcasts.
#[derive(Clone, Debug)]
enum Item {
    /// A run event, and its JSON (written once for every stream).
    Event(Arc<(RunEvent, String)>),
    /// The database changed (applications without runs change without run events).
    Changed,
}

/// The run events of a database, followed once and broadcast to every stream.
#[derive(Clone, Debug)]
pub struct EventFeed {
    items: broadcast::Sender<Item>,
}

impl EventFeed {
    /// Follow `catalog`'s database from its last event on, counting events into
    /// `metrics`; woken by `changes` (the queue of this process) when given; until
    /// `shutdown` becomes true.
    pub(crate) async fn start(
        catalog: Catalog,
        metrics: Arc<Metrics>,
        changes: Option<watch::Receiver<u64>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<EventFeed, QueueError> {
        let (items, _) = broadcast::channel(BUFFER);
        let mut last = catalog.last_event_id().await?;
        let mut watcher = catalog.watcher()?;
        let mut version = catalog.version(&mut watcher).await?;
        let feed = EventFeed {
            items: items.clone(),
        };
        tokio::spawn(async move {
            let mut changes = changes;
            loop {
                let woken = async {
                    match &mut changes {
                        Some(changes) => {
                            let _ = changes.changed().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => return,
                }
                let now = match catalog.version(&mut watcher).await {
                    Ok(now) => now,
                    Err(error) => {
                        tracing::warn!(%error, "event feed cannot read the database");
                        continue;
                    }
                };
                if now == version {
                    continue;
                }
                version = now;
                loop {
                    let batch = match catalog.events_after(last, None, BATCH).await {
                        Ok(batch) => batch,
                        Err(error) => {
                            tracing::warn!(%error, "event feed cannot read events");
                            break;
                        }
                    };
                    let full = batch.len() == BATCH as usize;
                    for event in batch {
                        last = event.id;
                        metrics.observe_event(&event);
                        let json = serde_json::to_string(&event).unwrap_or_default();
                        let _ = items.send(Item::Event(Arc::new((event, json))));
                    }
                    if !full {
                        break;
                    }
                }
                let _ = items.send(Item::Changed);
            }
        });
        Ok(feed)
    }
}

/// Where a stream resumes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamParams {
    /// Resume after this event id (as the `Last-Event-ID` header does; the header wins).
    after: Option<i64>,
    /// A token, where a header cannot be set (a browser's `EventSource`).
    #[allow(dead_code)]
    access_token: Option<String>,
}

/// The event id to resume after: `Last-Event-ID`, else `after`, else now.
fn resume_after(headers: &HeaderMap, params: &StreamParams) -> Result<Option<i64>, Problem> {
    match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| {
                Problem::bad_request(
                    "Last-Event-ID",
                    "Last-Event-ID must be an event id (an integer)",
                )
            }),
        None => Ok(params.after),
    }
}

/// The events of one run, as they happen: `event:` is the event's type (`queued`,
/// `claimed`, `step_finished`, `child_progress`, `finished`...), `data:` the event as
/// JSON, `id:` its place in the stream. An application that is not a run gets `change`
/// events (no id) when the database changes.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "events",
    params(("id" = String, Path, description = "The run id or app id"), StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "Server-Sent Events", content_type = "text/event-stream", body = String),
        (status = 400, description = "Last-Event-ID is not an event id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run or application", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn run_events(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let after = resume_after(&headers, &params)?;
    let items = api.feed.items.subscribe();
    let is_run = api.catalog.run(&id).await?.is_some();
    if !is_run {
        // 404 unless it is an application.
        open_app(&api, &id, |_, _| Ok(())).await?;
    }
    let after = match after {
        Some(after) => after,
        None if is_run => 0,
        None => api.catalog.last_event_id().await?,
    };
    Ok(stream(api, Some(id), after, items, !is_run))
}

/// The events of every run, as they happen, and `change` events (no id) when the
/// database changes: what a live list of runs follows.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(StreamParams, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "Server-Sent Events", content_type = "text/event-stream", body = String),
        (status = 400, description = "Last-Event-ID is not an event id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn all_events(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let after = resume_after(&headers, &params)?;
    let items = api.feed.items.subscribe();
    let after = match after {
        Some(after) => after,
        None => api.catalog.last_event_id().await?,
    };
    Ok(stream(api, None, after, items, true))
}

/// A stream's state between items.
struct Follow {
    api: Api,
    run_id: Option<String>,
    /// The last event id sent.
    last: i64,
    items: broadcast::Receiver<Item>,
    /// Events read back from the database, not yet sent.
    pending: std::collections::VecDeque<RunEvent>,
    /// Whether the database must be read (at the start, after falling behind).
    replay: bool,
    changes: bool,
}

fn stream(
    api: Api,
    run_id: Option<String>,
    after: i64,
    items: broadcast::Receiver<Item>,
    changes: bool,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let follow = Follow {
        api,
        run_id,
        last: after,
        items,
        pending: Default::default(),
        replay: true,
        changes,
    };
    let events = stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(event) = f.pending.pop_front() {
                f.last = event.id;
                let json = serde_json::to_string(&event).unwrap_or_default();
                return Some((Ok(frame(&event, &json)), f));
            }
            if *f.api.shutdown.borrow() {
                return None;
            }
            if f.replay {
                f.replay = false;
                match f
                    .api
                    .catalog
                    .events_after(f.last, f.run_id.clone(), BATCH)
                    .await
                {
                    Ok(batch) => {
                        f.replay = batch.len() == BATCH as usize;
                        f.pending.extend(batch);
                    }
                    Err(error) => tracing::warn!(%error, "event stream cannot read events"),
                }
                continue;
            }
            let mut shutdown = f.api.shutdown.clone();
            let item = tokio::select! {
                item = f.items.recv() => item,
                _ = shutdown.changed() => return None,
            };
            match item {
                Ok(Item::Event(shared)) => {
                    let (event, json) = &*shared;
                    let mine = f.run_id.as_deref().is_none_or(|id| id == event.run_id);
                    if mine && event.id > f.last {
                        f.last = event.id;
                        return Some((Ok(frame(event, json)), f));
                    }
                }
                Ok(Item::Changed) if f.changes => {
                    return Some((Ok(Event::default().event("change").data("{}")), f));
                }
                Ok(Item::Changed) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => f.replay = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// A run event (and its JSON) as an SSE event.
fn frame(event: &RunEvent, json: &str) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(event.kind.name())
        .data(json)
}
