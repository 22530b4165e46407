//! The hook a worker gives each run's application: it turns steps and child applications
//! into [`RunEvent`](crate::RunEvent)s (step finished, child progress n of m), handed to a
//! channel that the worker records in batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burr_core::hooks::{AppCreated, ExecuteCallEnd, LifecycleHook, MapStart, StepEnd};
use tokio::sync::{mpsc, oneshot};

use crate::events::EventKind;

/// How often child progress is reported at most, per run.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// What the worker's recorder receives.
pub(crate) enum Record {
    /// An event of a run.
    Event(String, EventKind),
    /// Reply once every event sent before is stored.
    Flush(oneshot::Sender<()>),
}

/// Events of one run, for the worker's recorder.
pub(crate) struct RunProgress {
    run_id: String,
    events: mpsc::UnboundedSender<Record>,
    /// Child applications created so far.
    children: AtomicU64,
    /// Child applications announced by map actions (all of them, started or not).
    announced: AtomicU64,
    finished: AtomicU64,
    last_report: Mutex<Option<Instant>>,
}

impl RunProgress {
    pub(crate) fn new(run_id: &str, events: mpsc::UnboundedSender<Record>) -> Self {
        RunProgress {
            run_id: run_id.to_owned(),
            events,
            children: AtomicU64::new(0),
            announced: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            last_report: Mutex::new(None),
        }
    }

    fn send(&self, kind: EventKind) {
        let _ = self.events.send(Record::Event(self.run_id.clone(), kind));
    }

    /// Report child progress now if there is any, and wait until every event of the
    /// run is stored (the run ends: its last events come before its end).
    pub(crate) async fn flush(&self) {
        let total = self.total();
        if total > 0 {
            self.send(EventKind::ChildProgress {
                done: self.finished.load(Ordering::Relaxed),
                total,
            });
        }
        let (done, stored) = oneshot::channel();
        if self.events.send(Record::Flush(done)).is_ok() {
            let _ = stored.await;
        }
    }

    /// The children to count to: those the map actions announced (children start a
    /// window at a time), or those created (children an action spawns itself) if more.
    fn total(&self) -> u64 {
        self.announced
            .load(Ordering::Relaxed)
            .max(self.children.load(Ordering::Relaxed))
    }

    fn progress(&self) {
        let mut last = self.last_report.lock().unwrap_or_else(|p| p.into_inner());
        let done = self.finished.load(Ordering::Relaxed);
        let total = self.total();
        if done == total || last.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY) {
            *last = Some(Instant::now());
            drop(last);
            self.send(EventKind::ChildProgress { done, total });
        }
    }
}

impl LifecycleHook for RunProgress {
    fn post_application_create(&self, event: &AppCreated<'_>) {
        if event.spawning_parent.is_some() {
            self.children.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn map_start(&self, event: &MapStart<'_>) {
        self.announced.fetch_add(
            u64::try_from(event.tasks).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn post_run_step(&self, event: &StepEnd<'_>) {
        // A child's steps are reported through child progress; the run's own steps here.
        if *event.ids.app_id != *self.run_id {
            return;
        }
        self.send(EventKind::StepFinished {
            app_id: event.ids.app_id.to_string(),
            sequence_id: event.sequence_id,
            action: event.action.to_owned(),
            status: event.status.as_str().to_owned(),
            duration_us: event
                .ended_at
                .duration_since(event.started_at)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        });
    }

    fn post_run_execute_call(&self, event: &ExecuteCallEnd<'_>) {
        if *event.ids.app_id != *self.run_id && event.method == "run" {
            self.finished.fetch_add(1, Ordering::Relaxed);
            self.progress();
        }
    }
}
