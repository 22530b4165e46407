//! Reading a burr database: the applications, their steps, their state at any sequence
//! id, their graphs and children — from the checkpoints (through burr-core's
//! [`SqlitePersister`], opened read-only, or with the `postgres` feature burr-postgres's
//! persister) and the tracker's tables, whichever hold them.
//!
//! [`Database::open`] never writes to the database; [`maintain`] has the two operations
//! that do (prune and delete).

pub mod maintain;
#[cfg(feature = "postgres")]
mod postgres;
mod source;
mod state;
mod trace;

#[cfg(feature = "postgres")]
pub use postgres::PgSource;
use source::Source;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burr_core::ids::ParentPointer;
use burr_core::persistence::{LeaseStatus, SqlitePersister, StepStatus};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::store::read::{AppRow, EventRow};
use crate::store::schema;
use crate::{GraphRecord, TrackerError};

pub use state::{diff, StateDiff};
pub use trace::{AttributeInfo, SpanInfo, StepTrace};

/// Where an application or a step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A step is in flight and its runner is alive; for an application, its runner is
    /// alive ([`Runner::Live`]: in a step, between steps, halted, or before its first) —
    /// or, run without a persister, its last step has not ended (see [`Runner::Unknown`]).
    Running,
    /// Its runner stopped part-way: the step never ended (or, for an application, it
    /// took none) and nothing runs it any more, or — for an application with a lease of
    /// its own — its runner died between steps without finishing
    /// ([`Runner::Abandoned`]): its process crashed or was killed. Resuming it goes on
    /// from the last checkpoint (retrying the step that never ended).
    Interrupted,
    /// The (last) step completed; for an application with a lease of its own, also its
    /// runner let go of it: it finished, or its runner dropped it cleanly
    /// ([`Runner::Released`]).
    Completed,
    /// The (last) step failed.
    Failed,
    /// The (last) step was cancelled.
    Cancelled,
}

impl Status {
    /// `running`, `interrupted`, `completed`, `failed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Interrupted => "interrupted",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status named by `text`.
    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "running" => Some(Status::Running),
            "interrupted" => Some(Status::Interrupted),
            other => StepStatus::parse(other).map(Status::from),
        }
    }
}

impl From<StepStatus> for Status {
    fn from(status: StepStatus) -> Self {
        match status {
            StepStatus::Completed => Status::Completed,
            StepStatus::Failed => Status::Failed,
            StepStatus::Cancelled => Status::Cancelled,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An application stored in the database (checkpointed, tracked, or both).
#[derive(Clone, Debug)]
pub struct App {
    /// Its id.
    pub app_id: String,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// When it was first recorded, in microseconds since the Unix epoch.
    pub created_at_us: i64,
    /// The application it was forked from.
    pub fork_parent: Option<ParentPointer>,
    /// The application step that spawned it.
    pub spawning_parent: Option<ParentPointer>,
    /// Whether the persister holds it.
    pub checkpointed: bool,
    tracked: Option<AppRow>,
}

impl App {
    /// Whether a tracker recorded it.
    pub fn tracked(&self) -> bool {
        self.tracked.is_some()
    }

    /// Whether `pointer` names this application.
    pub fn is(&self, pointer: &ParentPointer) -> bool {
        pointer.app_id == self.app_id && pointer.partition_key == self.partition_key
    }
}

/// One attempt at a step.
#[derive(Clone, Debug, Serialize)]
pub struct StepInfo {
    /// The step's sequence id.
    pub sequence_id: u64,
    /// The action.
    pub action: String,
    /// How it stands.
    pub status: Status,
    /// 1 for the first attempt, 2 for the first retry...
    pub attempt: u32,
    /// When it started (unknown for a step only the checkpoints know).
    pub started_at_us: Option<i64>,
    /// When it ended.
    pub ended_at_us: Option<i64>,
    /// Its inputs (tracked steps only).
    pub inputs: Option<Map<String, Value>>,
    /// Its result (tracked, completed steps only).
    pub result: Option<Map<String, Value>>,
    /// The error and its causes, outermost first.
    pub error: Option<Vec<String>>,
}

impl StepInfo {
    /// How long it took, in microseconds, when known.
    pub fn duration_us(&self) -> Option<i64> {
        Some(self.ended_at_us? - self.started_at_us?)
    }
}

/// Whether something runs an application now, judged from the lease of the application
/// it runs under: its own, or for a child, its root's (the application at the top of its
/// spawning parents; children take no lease of their own).
///
/// An application gives its lease back when it finishes or its runner drops it; a runner
/// that is killed or crashes leaves it behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runner {
    /// A live runner holds the lease: its holder (`pid 4242 on host (lease …)`).
    Live(String),
    /// The runner is gone without giving the lease back (killed or crashed): the lease
    /// expired, or its holder's process on this machine is gone. Its holder.
    Abandoned(String),
    /// No lease is stored: its runner gave it back (the application finished, or was
    /// dropped or released), or none was taken.
    Released,
    /// Nothing tells: the application was run without a persister (only a tracker), so
    /// it has no lease.
    Unknown,
}

impl Runner {
    /// Whether nothing runs the application any more ([`Abandoned`](Runner::Abandoned)
    /// or [`Released`](Runner::Released)).
    pub fn is_gone(&self) -> bool {
        matches!(self, Runner::Abandoned(_) | Runner::Released)
    }
}

/// An application with what its steps say about it.
#[derive(Clone, Debug)]
pub struct AppSummary {
    /// The application.
    pub app: App,
    /// Where it stands: `running` while its runner is alive, `interrupted` when its
    /// runner stopped part-way, otherwise the status of its last step (see [`Status`]).
    pub status: Status,
    /// How many steps (sequence ids) it took; retries count once.
    pub steps: u64,
    /// When it last changed, in microseconds since the Unix epoch.
    pub updated_at_us: i64,
}

/// A burr database opened for reading: a SQLite file, or (feature `postgres`) a
/// PostgreSQL database. Nothing is ever written through it.
pub struct Database {
    /// The file, or the URL without its password.
    path: PathBuf,
    source: Source,
    apps: Vec<App>,
    /// The position of each application in `apps`.
    index: HashMap<Key, usize>,
    /// The runners judged so far, by the key of the application whose lease they hold.
    runners: RefCell<HashMap<Key, Runner>>,
}

/// An application's (partition key, app id).
type Key = (Option<String>, String);

/// How many spawning parents up the root of an application is looked for (a cycle
/// cannot happen, but a corrupt file could hold one).
const MAX_DEPTH: usize = 64;

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.path)
            .field("apps", &self.apps.len())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Open the burr database at `path` read-only (`SQLITE_OPEN_READ_ONLY`); a
    /// `postgres://` URL instead (feature `postgres`) reads that PostgreSQL database,
    /// connecting for this database alone (see [`PgSource`] to share a connection).
    ///
    /// Fails when the file does not exist, is not a burr database, or was written by a
    /// newer burr-rs or burr-tracker; for a URL, when the server cannot be reached (or,
    /// without the `postgres` feature, with [`TrackerError::NoPostgresSupport`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Database, TrackerError> {
        Database::open_scoped(path.as_ref(), None)
    }

    /// Open the burr database at `path` (or URL) read-only, seeing only the application
    /// `app_id` and its child applications (ids under `<app_id>/`): what a page about one
    /// application needs, without reading every application of a large database.
    pub fn open_app(path: impl AsRef<Path>, app_id: &str) -> Result<Database, TrackerError> {
        Database::open_scoped(path.as_ref(), Some(app_id))
    }

    /// Open the PostgreSQL database of `source` for reading (every application, or with
    /// `app_id` only it and its child applications, as [`open_app`](Database::open_app)).
    #[cfg(feature = "postgres")]
    pub fn open_postgres(
        source: &PgSource,
        app_id: Option<&str>,
    ) -> Result<Database, TrackerError> {
        let parts = source.parts()?;
        Database::load(
            source.name().to_owned(),
            Source::Postgres {
                source: source.clone(),
                persister: parts.persister,
                tracked: parts.tracked,
            },
            app_id,
        )
    }

    fn open_scoped(path: &Path, root: Option<&str>) -> Result<Database, TrackerError> {
        if let Some(url) = path.to_str().filter(|p| crate::is_postgres_url(p)) {
            #[cfg(feature = "postgres")]
            return Database::open_postgres(&PgSource::connect(url)?, root);
            #[cfg(not(feature = "postgres"))]
            return Err(TrackerError::no_postgres(url));
        }
        let path = path.to_owned();
        if !path.exists() {
            return Err(TrackerError::MissingDatabase { path });
        }
        let persister = SqlitePersister::open_read_only(&path)?;
        let conn = persister.read_only_connection()?;
        let tracker = match schema::stored_version(&conn, &path)? {
            Some(version) => {
                schema::check_version(version, &path)?;
                Some(conn)
            }
            None => None,
        };
        Database::load(path, Source::Sqlite { persister, tracker }, root)
    }

    fn load(path: PathBuf, source: Source, root: Option<&str>) -> Result<Database, TrackerError> {
        let mut db = Database {
            path,
            source,
            apps: Vec::new(),
            index: HashMap::new(),
            runners: RefCell::new(HashMap::new()),
        };
        db.apps = db.load_apps(root)?;
        db.index = db
            .apps
            .iter()
            .enumerate()
            .map(|(i, app)| ((app.partition_key.clone(), app.app_id.clone()), i))
            .collect();
        Ok(db)
    }

    /// Whether what this database shows may miss the latest writes: its directory is
    /// read-only, so SQLite reads the file as immutable, without the WAL.
    pub fn may_be_stale(&self) -> bool {
        self.source.may_be_stale()
    }

    /// The database file (for PostgreSQL, its URL without the password).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load_apps(&self, root: Option<&str>) -> Result<Vec<App>, TrackerError> {
        let mut apps: BTreeMap<(Option<String>, String), App> = BTreeMap::new();
        let records = self.source.checkpointed_apps(root)?;
        for record in records {
            apps.insert(
                (record.partition_key.clone(), record.app_id.clone()),
                App {
                    app_id: record.app_id,
                    partition_key: record.partition_key,
                    created_at_us: record.created_at_us,
                    fork_parent: record.fork_parent,
                    spawning_parent: record.spawning_parent,
                    checkpointed: true,
                    tracked: None,
                },
            );
        }
        {
            for row in self.source.tracked_apps(&self.path, root)? {
                let key = (row.partition_key.clone(), row.app_id.clone());
                match apps.get_mut(&key) {
                    Some(app) => {
                        app.created_at_us = app.created_at_us.min(row.created_at_us);
                        if app.fork_parent.is_none() {
                            app.fork_parent = row.fork_parent.clone();
                        }
                        if app.spawning_parent.is_none() {
                            app.spawning_parent = row.spawning_parent.clone();
                        }
                        app.tracked = Some(row);
                    }
                    None => {
                        apps.insert(
                            key,
                            App {
                                app_id: row.app_id.clone(),
                                partition_key: row.partition_key.clone(),
                                created_at_us: row.created_at_us,
                                fork_parent: row.fork_parent.clone(),
                                spawning_parent: row.spawning_parent.clone(),
                                checkpointed: false,
                                tracked: Some(row),
                            },
                        );
                    }
                }
            }
        }
        let mut apps: Vec<App> = apps.into_values().collect();
        apps.sort_by(|a, b| {
            b.created_at_us
                .cmp(&a.created_at_us)
                .then_with(|| a.app_id.cmp(&b.app_id))
                .then_with(|| a.partition_key.cmp(&b.partition_key))
        });
        Ok(apps)
    }

    /// Every application, newest first.
    pub fn apps(&self) -> &[App] {
        &self.apps
    }

    /// The application `app_id` (under `partition_key`, when given; otherwise the only
    /// application with that id).
    pub fn find(&self, app_id: &str, partition_key: Option<&str>) -> Result<&App, TrackerError> {
        let matching: Vec<&App> = self
            .apps
            .iter()
            .filter(|app| app.app_id == app_id)
            .filter(|app| partition_key.is_none_or(|key| app.partition_key.as_deref() == Some(key)))
            .collect();
        match matching.as_slice() {
            [app] => Ok(app),
            [] => Err(TrackerError::UnknownApp {
                path: self.path.clone(),
                app_id: app_id.to_owned(),
                partition_key: partition_key.map(str::to_owned),
            }),
            several => Err(TrackerError::AmbiguousApp {
                app_id: app_id.to_owned(),
                keys: several
                    .iter()
                    .map(|app| {
                        app.partition_key
                            .clone()
                            .unwrap_or_else(|| "(none)".to_owned())
                    })
                    .collect(),
            }),
        }
    }

    /// The applications that `parent`'s steps spawned, in creation order.
    pub fn children(&self, parent: &App) -> Vec<&App> {
        let mut children: Vec<&App> = self
            .apps
            .iter()
            .filter(|app| app.spawning_parent.as_ref().is_some_and(|p| parent.is(p)))
            .collect();
        children.reverse();
        children
    }

    /// `app` and every application it spawned, recursively, each after its children
    /// (the order in which deleting them never leaves one without its spawning parent).
    pub fn with_descendants(&self, app: &App) -> Vec<&App> {
        let mut children: HashMap<Key, Vec<&App>> = HashMap::new();
        for child in &self.apps {
            if let Some(p) = &child.spawning_parent {
                children
                    .entry((p.partition_key.clone(), p.app_id.clone()))
                    .or_default()
                    .push(child);
            }
        }
        // Depth first, iteratively: (application, whether its children are listed).
        let mut out: Vec<&App> = Vec::new();
        let mut seen: std::collections::HashSet<Key> = std::collections::HashSet::new();
        let mut pending: Vec<(&App, bool)> = Vec::new();
        if let Some(found) = self.get(&app.partition_key, &app.app_id) {
            pending.push((found, false));
        }
        while let Some((next, expanded)) = pending.pop() {
            if expanded {
                out.push(next);
                continue;
            }
            if !seen.insert((next.partition_key.clone(), next.app_id.clone())) {
                continue;
            }
            pending.push((next, true));
            let key = (next.partition_key.clone(), next.app_id.clone());
            for child in children.get(&key).into_iter().flatten() {
                pending.push((child, false));
            }
        }
        out
    }

    fn get(&self, partition_key: &Option<String>, app_id: &str) -> Option<&App> {
        let i = self
            .index
            .get(&(partition_key.clone(), app_id.to_owned()))?;
        self.apps.get(*i)
    }

    /// The (partition key, app id) of the application whose lease `app` runs under:
    /// itself, or the top of its spawning parents; and whether that application was run
    /// with a persister (children share their parent's, so any checkpointed application
    /// on the way tells).
    pub fn lease_owner(&self, app: &App) -> (Option<String>, String, bool) {
        let mut key = (app.partition_key.clone(), app.app_id.clone());
        let mut persisted = app.checkpointed;
        let mut parent = app.spawning_parent.as_ref();
        for _ in 0..MAX_DEPTH {
            let Some(pointer) = parent else { break };
            key = (pointer.partition_key.clone(), pointer.app_id.clone());
            match self.get(&key.0, &key.1) {
                Some(up) => {
                    persisted |= up.checkpointed;
                    parent = up.spawning_parent.as_ref();
                }
                None => break,
            }
        }
        (key.0, key.1, persisted)
    }

    /// Whether something runs `app` now (judged once per application it runs under, the
    /// first time it is asked).
    pub fn runner(&self, app: &App) -> Result<Runner, TrackerError> {
        let (partition_key, app_id, persisted) = self.lease_owner(app);
        if !persisted {
            return Ok(Runner::Unknown);
        }
        let key = (partition_key, app_id);
        if let Some(runner) = self.runners.borrow().get(&key) {
            return Ok(runner.clone());
        }
        let runner = match self.source.lease_status(key.0.as_deref(), &key.1)? {
            LeaseStatus::Held { holder } => Runner::Live(holder),
            LeaseStatus::Abandoned { holder, .. } => Runner::Abandoned(holder),
            LeaseStatus::Free => Runner::Released,
        };
        self.runners.borrow_mut().insert(key, runner.clone());
        Ok(runner)
    }

    /// The applications forked from `parent`, in creation order.
    pub fn forks(&self, parent: &App) -> Vec<&App> {
        let mut forks: Vec<&App> = self
            .apps
            .iter()
            .filter(|app| app.fork_parent.as_ref().is_some_and(|p| parent.is(p)))
            .collect();
        forks.reverse();
        forks
    }

    /// Every attempt at every step of `app`, in (sequence id, attempt) order: what the
    /// tracker recorded, completed by the checkpoints. A step that never ended is
    /// `running` while its runner lives, `interrupted` when none does
    /// ([`Runner::is_gone`]).
    pub fn steps(&self, app: &App) -> Result<Vec<StepInfo>, TrackerError> {
        let mut steps: BTreeMap<(u64, u32), StepInfo> = BTreeMap::new();
        if let Some(row) = &app.tracked {
            for step in self.source.steps(&self.path, row)? {
                let status = match &step.status {
                    None => Status::Running,
                    Some(text) => Status::parse(text).ok_or_else(|| TrackerError::Corrupt {
                        path: self.path.clone(),
                        app_id: app.app_id.clone(),
                        reason: format!("unknown step status `{text}`"),
                    })?,
                };
                steps.insert(
                    (step.sequence_id, step.attempt),
                    StepInfo {
                        sequence_id: step.sequence_id,
                        action: step.action,
                        status,
                        attempt: step.attempt,
                        started_at_us: Some(step.started_at_us),
                        ended_at_us: step.ended_at_us,
                        inputs: Some(step.inputs),
                        result: step.result,
                        error: step.error,
                    },
                );
            }
        }
        if app.checkpointed {
            let checkpoints = self
                .source
                .list_checkpoints(app.partition_key.as_deref(), &app.app_id)?;
            for checkpoint in checkpoints {
                let key = (checkpoint.sequence_id, checkpoint.attempt);
                let status = Status::from(checkpoint.status);
                match steps.get_mut(&key) {
                    // The tracker missed the end (its process stopped first).
                    Some(step) if step.status == Status::Running => {
                        step.status = status;
                        step.ended_at_us = Some(checkpoint.created_at_us);
                        step.error = checkpoint.error.map(|e| vec![e]);
                    }
                    Some(_) => {}
                    None => {
                        steps.insert(
                            key,
                            StepInfo {
                                sequence_id: checkpoint.sequence_id,
                                action: checkpoint.position,
                                status,
                                attempt: checkpoint.attempt,
                                started_at_us: None,
                                ended_at_us: Some(checkpoint.created_at_us),
                                inputs: None,
                                result: None,
                                error: checkpoint.error.map(|e| vec![e]),
                            },
                        );
                    }
                }
            }
        }
        let mut steps: Vec<StepInfo> = steps.into_values().collect();
        if steps.iter().any(|s| s.status == Status::Running) && self.runner(app)?.is_gone() {
            for step in steps.iter_mut().filter(|s| s.status == Status::Running) {
                step.status = Status::Interrupted;
            }
        }
        // Runs a crash cut short, which a later run of the same attempt replaced: listed
        // before it.
        if let Some(row) = &app.tracked {
            let interrupted = self.source.interrupted_runs(&self.path, row)?;
            if !interrupted.is_empty() {
                steps.extend(interrupted.into_iter().map(|run| StepInfo {
                    sequence_id: run.sequence_id,
                    action: run.action,
                    status: Status::Interrupted,
                    attempt: run.attempt,
                    started_at_us: Some(run.started_at_us),
                    ended_at_us: None,
                    inputs: run.inputs.as_object().cloned(),
                    result: None,
                    error: None,
                }));
                // Stable: among runs of one attempt, the interrupted ones (added last, in
                // the order they ran) go first.
                steps.sort_by_key(|s| {
                    (
                        s.sequence_id,
                        s.attempt,
                        !(s.status == Status::Interrupted && s.ended_at_us.is_none()),
                    )
                });
            }
        }
        Ok(steps)
    }

    /// `app` with its status, step count and last update.
    ///
    /// The status comes from the checkpoints and the lease: an application whose last
    /// step completed is `running` while a live runner holds its lease, `interrupted` when
    /// its runner died without giving the lease back (killed between steps), and
    /// `completed` only when its runner let go of it (it finished, or was dropped). A
    /// child application takes no lease (it runs under its root's), so its status is its
    /// last step's.
    pub fn summary(&self, app: &App) -> Result<AppSummary, TrackerError> {
        let steps = self.steps(app)?;
        let status = match steps.last() {
            // Between steps (or done): only an application's own lease tells which.
            Some(step) if step.status == Status::Completed && app.spawning_parent.is_none() => {
                match self.runner(app)? {
                    Runner::Live(_) => Status::Running,
                    Runner::Abandoned(_) => Status::Interrupted,
                    Runner::Released | Runner::Unknown => Status::Completed,
                }
            }
            Some(step) => step.status,
            None if self.runner(app)?.is_gone() => Status::Interrupted,
            None => Status::Running,
        };
        let mut sequence_ids: Vec<u64> = steps.iter().map(|s| s.sequence_id).collect();
        sequence_ids.dedup();
        let updated_at_us = steps
            .iter()
            .filter_map(|s| s.ended_at_us.or(s.started_at_us))
            .chain(app.tracked.as_ref().map(|row| row.updated_at_us))
            .chain(std::iter::once(app.created_at_us))
            .max()
            .unwrap_or(app.created_at_us);
        Ok(AppSummary {
            app: app.clone(),
            status,
            steps: sequence_ids.len() as u64,
            updated_at_us,
        })
    }

    /// The graph a tracker recorded for `app`.
    pub fn graph(&self, app: &App) -> Result<GraphRecord, TrackerError> {
        let row = app
            .tracked
            .as_ref()
            .ok_or_else(|| TrackerError::NotTracked {
                app_id: app.app_id.clone(),
            })?;
        serde_json::from_str(&row.graph).map_err(|e| TrackerError::Corrupt {
            path: self.path.clone(),
            app_id: app.app_id.clone(),
            reason: format!("its graph is not valid: {e}"),
        })
    }

    /// The spans and attributes recorded within `app`'s steps, by (sequence id, attempt);
    /// the step attempts without any are left out.
    pub fn traces(&self, app: &App) -> Result<BTreeMap<(u64, u32), StepTrace>, TrackerError> {
        Ok(trace::traces(&self.events(app)?))
    }

    /// The spans, attributes and stream events recorded within `app`'s steps.
    pub(crate) fn events(&self, app: &App) -> Result<Vec<EventRow>, TrackerError> {
        match &app.tracked {
            Some(row) => self.source.events(&self.path, row),
            None => Ok(Vec::new()),
        }
    }

    /// The full state of `app` after step `sequence_id` (the latest step when `None`),
    /// with that sequence id. The state after a failed step is the state before it.
    pub fn state(
        &self,
        app: &App,
        sequence_id: Option<u64>,
    ) -> Result<(u64, Map<String, Value>), TrackerError> {
        let steps = self.steps(app)?;
        let seq = match sequence_id {
            Some(seq) => {
                if !steps.iter().any(|s| s.sequence_id == seq) {
                    return Err(TrackerError::UnknownSequenceId {
                        app_id: app.app_id.clone(),
                        sequence_id: seq,
                        known: state::known_ids(&steps),
                    });
                }
                seq
            }
            None => match steps.last() {
                Some(step) => step.sequence_id,
                None => {
                    return Err(TrackerError::NoSteps {
                        app_id: app.app_id.clone(),
                    })
                }
            },
        };
        if let Some(map) = self.checkpointed_state(app, seq)? {
            return Ok((seq, map));
        }
        match (self.source.tracked(), &app.tracked) {
            (true, Some(row)) => {
                let snapshots = self.source.snapshots(&self.path, row)?;
                let tracked = self.source.steps(&self.path, row)?;
                Ok((
                    seq,
                    state::reconstruct_all(&snapshots, &tracked, &[seq])
                        .pop()
                        .unwrap_or_default(),
                ))
            }
            _ => Err(TrackerError::UnknownSequenceId {
                app_id: app.app_id.clone(),
                sequence_id: seq,
                known: state::known_ids(&steps),
            }),
        }
    }

    /// The state of `app` after step `seq` from its checkpoints, when it has any and one
    /// is stored at `seq`.
    fn checkpointed_state(
        &self,
        app: &App,
        seq: u64,
    ) -> Result<Option<Map<String, Value>>, TrackerError> {
        if !app.checkpointed {
            return Ok(None);
        }
        let loaded = self
            .source
            .load(app.partition_key.as_deref(), &app.app_id, Some(seq));
        match loaded {
            Ok(Some(checkpoint)) => match checkpoint.state.to_json() {
                Value::Object(map) => Ok(Some(map)),
                _ => Ok(None),
            },
            Ok(None) | Err(burr_core::persistence::PersistenceError::UnknownSequenceId { .. }) => {
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The full states of `app` after each of `sequence_ids` (ascending, each a step of
    /// the application), in one pass: for exports.
    pub(crate) fn states(
        &self,
        app: &App,
        sequence_ids: &[u64],
    ) -> Result<Vec<Map<String, Value>>, TrackerError> {
        let mut out: Vec<Option<Map<String, Value>>> = vec![None; sequence_ids.len()];
        for (slot, &seq) in out.iter_mut().zip(sequence_ids) {
            *slot = self.checkpointed_state(app, seq)?;
        }
        if out.iter().any(Option::is_none) {
            if let (true, Some(row)) = (self.source.tracked(), &app.tracked) {
                let snapshots = self.source.snapshots(&self.path, row)?;
                let tracked = self.source.steps(&self.path, row)?;
                let rebuilt = state::reconstruct_all(&snapshots, &tracked, sequence_ids);
                for (slot, state) in out.iter_mut().zip(rebuilt) {
                    slot.get_or_insert(state);
                }
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }
}
