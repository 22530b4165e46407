//! [`Tracker`]: the tracking client, a lifecycle hook that records every application,
//! step, span, attribute and stream event into a burr database.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use burr_core::hooks::{
    AppCreated, AttributeLogged, LifecycleHook, SpanEnd, SpanStart, StepEnd, StepStart, StreamEnd,
    StreamItem, StreamStart,
};
use burr_core::ids::Identifiers;
use burr_core::persistence::SqlitePersister;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use crate::store::event::{self, Event, EventKind, Message, Within};
use crate::store::schema;
use crate::store::writer::{RowSink, SqliteSink, Writer};
use crate::{is_postgres_url, GraphRecord, TrackerError};

/// How long the tracker's writes wait for another writer of the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Records what applications do into a burr database (a SQLite file, or with the
/// `postgres` feature a PostgreSQL database), for the `burr-tracker` CLI and Burr's UI
/// (through `burr-tracker export --burr-ui`; both read SQLite files for now).
///
/// Give it to [`ApplicationBuilder::with_tracker`](burr_core::ApplicationBuilder::with_tracker)
/// with [`Tracker::hook`]. Child applications of map actions share their parent's tracker
/// and are recorded under it. Per application it records the graph, the identifiers, the
/// fork parent and the spawning parent, and the state it was built with; per step the
/// start and end times, the inputs, the result, the error with its causes, and what the
/// step changed in the state; and the spans, attributes and stream events of each step.
///
/// The database may be the checkpoints' file (the tracker's tables are named
/// `burr_tracker_*`); [`Tracker::open`] creates it, as a burr database, if needed.
///
/// The hook only queues small owned events: a background thread writes them in batches,
/// one transaction each, at most [`COMMIT_INTERVAL`](crate::COMMIT_INTERVAL) after they
/// happen. [`flush`](Tracker::flush) waits until everything queued is written; dropping
/// the last clone of a tracker flushes too.
///
/// ```no_run
/// use std::sync::Arc;
/// use burr_core::persistence::SqlitePersister;
/// use burr_tracker::Tracker;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tracker = Tracker::open("burr.db")?;
/// let persister = Arc::new(SqlitePersister::open("burr.db")?);
/// // let mut app = ApplicationBuilder::new()
/// //     ...
/// //     .with_state_persister(persister)
/// //     .with_tracker(tracker.hook())
/// //     .build().await?;
/// // app.run(...).await?;
/// tracker.flush()?;
/// # let _ = persister;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    queue: Option<Sender<Message>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// Open (or create) the burr database at `path` and start recording into it.
    ///
    /// Fails when the file cannot be created or opened, is not a burr database, or was
    /// written by a newer burr-rs or burr-tracker.
    ///
    /// A `postgres://` URL (with the `postgres` feature) records into that PostgreSQL
    /// database instead: see [`Tracker::connect`].
    pub fn open(path: impl AsRef<Path>) -> Result<Tracker, TrackerError> {
        if let Some(url) = path.as_ref().to_str().filter(|p| is_postgres_url(p)) {
            return Self::connect(url);
        }
        let path = path.as_ref().to_owned();
        // Make (or check, or migrate) the file as a burr database first, so that the CLI
        // and the persister always find the checkpoints' schema beside the tracker's.
        drop(SqlitePersister::open(&path)?);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| TrackerError::sqlite(&path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| TrackerError::sqlite(&path, e))?;
        // The file is in WAL mode already (the persister set it); each commit need not be
        // flushed to the disk: tracking data is not what a resume depends on.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| TrackerError::sqlite(&path, e))?;
        schema::prepare(&conn, &path)?;
        Self::start(path, move || {
            Ok(Box::new(SqliteSink { conn }) as Box<dyn RowSink>)
        })
    }

    /// Start recording into the PostgreSQL database at `url` (`postgres://...`), creating
    /// the tracker's tables there if needed (under an advisory lock). Its tables are
    /// those of the SQLite store; the events are written by a thread of their own, in
    /// batches, as for a file.
    ///
    /// Fails when the URL is malformed, the database cannot be reached, or a newer
    /// burr-tracker made its tables; without the `postgres` feature, always
    /// ([`TrackerError::NoPostgresSupport`]).
    #[cfg(feature = "postgres")]
    pub fn connect(url: &str) -> Result<Tracker, TrackerError> {
        use crate::store::postgres::{prepare, Database, PgSink};
        let database = Database::parse(url)?;
        let name = database.name.clone();
        Self::start(name, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| TrackerError::Io {
                    path: database.name.clone(),
                    source,
                })?;
            let client = database.connect(&runtime)?;
            prepare(&client, &runtime, &database)?;
            Ok(Box::new(PgSink {
                runtime,
                client,
                database,
            }) as Box<dyn RowSink>)
        })
    }

    /// Without the `postgres` feature: [`TrackerError::NoPostgresSupport`].
    #[cfg(not(feature = "postgres"))]
    pub fn connect(url: &str) -> Result<Tracker, TrackerError> {
        Err(TrackerError::no_postgres(url))
    }

    /// Start the writer thread, on the sink `make` makes there (a PostgreSQL sink's
    /// runtime lives on that thread: the caller may be inside another runtime). Returns
    /// once the sink is made, with its error if it could not be.
    fn start(
        path: PathBuf,
        make: impl FnOnce() -> Result<Box<dyn RowSink>, TrackerError> + Send + 'static,
    ) -> Result<Tracker, TrackerError> {
        let (queue, messages) = mpsc::channel();
        let (ready, made) = mpsc::sync_channel(1);
        let name = path.clone();
        let handle = std::thread::Builder::new()
            .name("burr-tracker-writer".to_owned())
            .spawn(move || {
                let sink = match make() {
                    Ok(sink) => {
                        let _ = ready.send(Ok(()));
                        sink
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                Writer {
                    sink,
                    path: name,
                    apps: Default::default(),
                    current: Default::default(),
                    failure: None,
                }
                .run(messages)
            })
            .map_err(|source| TrackerError::Io {
                path: path.clone(),
                source,
            })?;
        match made.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                let _ = handle.join();
                return Err(error);
            }
            Err(_) => {
                let _ = handle.join();
                return Err(TrackerError::Closed { path });
            }
        }
        Ok(Tracker {
            inner: Arc::new(Inner {
                path,
                queue: Some(queue),
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// The tracker as a hook, for
    /// [`ApplicationBuilder::with_tracker`](burr_core::ApplicationBuilder::with_tracker).
    /// The hook shares this tracker (and its writer).
    pub fn hook(&self) -> Arc<dyn LifecycleHook> {
        Arc::new(self.clone())
    }

    /// The database file (for a PostgreSQL database, its URL without the password).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Wait until every event queued so far is written. Reports the first write failure
    /// since the last flush (the events of a failed batch are lost; later ones are still
    /// written).
    pub fn flush(&self) -> Result<(), TrackerError> {
        let closed = || TrackerError::Closed {
            path: self.inner.path.clone(),
        };
        let (reply, answer) = mpsc::sync_channel(1);
        self.inner
            .queue
            .as_ref()
            .ok_or_else(closed)?
            .send(Message::Flush(reply))
            .map_err(|_| closed())?;
        match answer.recv().map_err(|_| closed())? {
            None => Ok(()),
            Some(message) => Err(TrackerError::Write {
                path: self.inner.path.clone(),
                message,
            }),
        }
    }

    fn send(&self, ids: &Identifiers, at: SystemTime, kind: EventKind) {
        if let Some(queue) = &self.inner.queue {
            let event = Event {
                ids: ids.clone(),
                at,
                kind,
            };
            if queue.send(Message::Event(event)).is_err() {
                tracing::warn!(path = %self.inner.path.display(), "the tracker's writer has stopped: an event is lost");
            }
        }
    }

    fn within(&self, ids: &Identifiers, sequence_id: u64, at: SystemTime, event: Within) {
        self.send(ids, at, EventKind::Within { sequence_id, event });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer writes what is queued, then stops.
        drop(self.queue.take());
        let handle = self
            .writer
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                tracing::error!(path = %self.path.display(), "the tracker's writer thread panicked");
            }
        }
    }
}

/// An error and its causes, outermost first.
fn chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages
}

/// The attribute a step's executor-slot wait is recorded under, in microseconds.
pub const WAITED_US: &str = "burr.waited_us";

/// The attribute the backoff before a retry is recorded under, in milliseconds.
pub const RETRY_IN_MS: &str = "burr.retry_in_ms";

impl LifecycleHook for Tracker {
    fn post_application_create(&self, e: &AppCreated<'_>) {
        self.send(
            e.ids,
            SystemTime::now(),
            EventKind::Created(Box::new(event::Created {
                graph: GraphRecord::of(e.graph).with_entrypoint(e.entrypoint),
                state: e.state.clone(),
                sequence_id: e.sequence_id,
                fork_parent: e.fork_parent.cloned(),
                spawning_parent: e.spawning_parent.cloned(),
            })),
        );
    }

    fn pre_run_step(&self, e: &StepStart<'_>) {
        self.send(
            e.ids,
            e.started_at,
            EventKind::StepStart {
                sequence_id: e.sequence_id,
                attempt: e.attempt,
                action: e.action.to_owned(),
                inputs: e.inputs.clone(),
            },
        );
        // Time spent waiting for an executor slot, apart from the step's running time (a
        // wait under a millisecond is no news).
        if e.waited >= Duration::from_millis(1) {
            self.within(
                e.ids,
                e.sequence_id,
                e.started_at,
                Within::Attribute {
                    span_id: None,
                    key: WAITED_US.to_owned(),
                    value: Value::from(u64::try_from(e.waited.as_micros()).unwrap_or(u64::MAX)),
                },
            );
        }
    }

    fn post_run_step(&self, e: &StepEnd<'_>) {
        self.send(
            e.ids,
            e.ended_at,
            EventKind::StepEnd(Box::new(event::StepEnd {
                sequence_id: e.sequence_id,
                attempt: e.attempt,
                action: e.action.to_owned(),
                status: e.status,
                result: e.result.cloned(),
                error: e.error.map(|error| chain(error)),
                delta: e.delta.clone(),
                started_at: e.started_at,
            })),
        );
        // The backoff chosen before the next attempt, when the retry policy retries.
        if let Some(wait) = e.retry_in {
            self.within(
                e.ids,
                e.sequence_id,
                e.ended_at,
                Within::Attribute {
                    span_id: None,
                    key: RETRY_IN_MS.to_owned(),
                    value: Value::from(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
                },
            );
        }
    }

    fn stream_start(&self, e: &StreamStart<'_>) {
        self.within(e.ids, e.sequence_id, SystemTime::now(), Within::StreamStart);
    }

    fn stream_item(&self, e: &StreamItem<'_>) {
        if e.index == 0 {
            self.within(
                e.ids,
                e.sequence_id,
                SystemTime::now(),
                Within::StreamFirstItem,
            );
        }
    }

    fn stream_end(&self, e: &StreamEnd<'_>) {
        self.within(
            e.ids,
            e.sequence_id,
            SystemTime::now(),
            Within::StreamEnd {
                items: e.items,
                dropped: e.dropped,
            },
        );
    }

    fn span_start(&self, e: &SpanStart<'_>) {
        self.within(
            e.ids,
            e.sequence_id,
            e.at,
            Within::SpanStart {
                span_id: e.span_id,
                parent_span_id: e.parent_span_id,
                name: e.name.to_owned(),
            },
        );
    }

    fn span_end(&self, e: &SpanEnd<'_>) {
        self.within(
            e.ids,
            e.sequence_id,
            e.at,
            Within::SpanEnd { span_id: e.span_id },
        );
    }

    fn attribute(&self, e: &AttributeLogged<'_>) {
        self.within(
            e.ids,
            e.sequence_id,
            e.at,
            Within::Attribute {
                span_id: e.span_id,
                key: e.key.to_owned(),
                value: e.value.clone(),
            },
        );
    }
}
