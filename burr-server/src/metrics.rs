//! Metrics of runs, steps and checkpoints, in Prometheus' text format.
//!
//! The HTTP server counts runs started and finished and times steps from the run events
//! it follows (whichever process ran them); a [`Worker`](crate::Worker) given the same
//! [`Metrics`] ([`Worker::with_metrics`](crate::Worker::with_metrics)) also times its
//! checkpoints. Queue depth is read from the database at each scrape.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use burr_core::persistence::{
    AppRecords, Checkpoint, ChildListing, Delete, History, Leases, LoadedCheckpoint,
    PersistenceError, Persister, Prune,
};

use crate::events::{EventKind, RunEvent};
use crate::run::{BacklogRow, RunStatus};

/// Upper bounds of the histograms' buckets, in microseconds (then `+Inf`).
const BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    10_000_000,
];

/// A histogram of durations with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Record one duration.
    pub fn observe_us(&self, us: u64) {
        if let Some(i) = BUCKETS_US.iter().position(|&bound| us <= bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// The counters and histograms a server exposes at `/metrics`. Share one between the
/// HTTP server and the workers of the same process.
#[derive(Debug, Default)]
pub struct Metrics {
    started: AtomicU64,
    finished: [AtomicU64; 3],
    steps: Histogram,
    checkpoints: Histogram,
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Count what a run event tells: a run started (its first claim), finished, or a
    /// step's duration.
    pub fn observe_event(&self, event: &RunEvent) {
        match &event.kind {
            EventKind::Claimed { attempt: 1, .. } => {
                self.started.fetch_add(1, Ordering::Relaxed);
            }
            EventKind::Finished { status } => {
                let i = match status {
                    RunStatus::Succeeded => 0,
                    RunStatus::Failed => 1,
                    _ => 2,
                };
                self.finished[i].fetch_add(1, Ordering::Relaxed);
            }
            EventKind::StepFinished { duration_us, .. } => self.steps.observe_us(*duration_us),
            _ => {}
        }
    }

    /// The checkpoint latency histogram (filled by a worker's [`Metrics::timed`] persister).
    pub fn checkpoints(&self) -> &Histogram {
        &self.checkpoints
    }

    /// The step duration histogram.
    pub fn steps(&self) -> &Histogram {
        &self.steps
    }

    /// `persister`, timing every checkpoint save into these metrics.
    pub fn timed(self: &Arc<Self>, persister: Arc<dyn Persister>) -> Arc<dyn Persister> {
        Arc::new(TimedPersister {
            inner: persister,
            metrics: Arc::clone(self),
        })
    }

    /// The metrics in Prometheus' text exposition format, with the queue depth of
    /// `backlog` (queued runs by kind and priority).
    pub fn render(&self, backlog: &[BacklogRow]) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP burr_queue_depth Queued runs, by kind and priority.\n# TYPE burr_queue_depth gauge\n",
        );
        for row in backlog.iter().filter(|r| r.status == RunStatus::Queued) {
            let _ = writeln!(
                out,
                "burr_queue_depth{{kind=\"{}\",priority=\"{}\"}} {}",
                escape(&row.kind),
                row.priority,
                row.count
            );
        }
        out.push_str(
            "# HELP burr_runs_running Runs held by a worker now, by kind.\n# TYPE burr_runs_running gauge\n",
        );
        for row in backlog.iter().filter(|r| r.status == RunStatus::Running) {
            let _ = writeln!(
                out,
                "burr_runs_running{{kind=\"{}\",priority=\"{}\"}} {}",
                escape(&row.kind),
                row.priority,
                row.count
            );
        }
        let started = self.started.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP burr_runs_started_total Runs claimed for the first time.\n# TYPE burr_runs_started_total counter\nburr_runs_started_total {started}"
        );
        out.push_str(
            "# HELP burr_runs_finished_total Runs finished, by status.\n# TYPE burr_runs_finished_total counter\n",
        );
        for (status, count) in ["succeeded", "failed", "cancelled"]
            .iter()
            .zip(&self.finished)
        {
            let _ = writeln!(
                out,
                "burr_runs_finished_total{{status=\"{status}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let failed = self.finished[1].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP burr_runs_failed_total Runs that failed.\n# TYPE burr_runs_failed_total counter\nburr_runs_failed_total {failed}"
        );
        self.steps.render(
            &mut out,
            "burr_step_duration_seconds",
            "Duration of runs' steps (action and checkpoint).",
        );
        self.checkpoints.render(
            &mut out,
            "burr_checkpoint_seconds",
            "Latency of checkpoint saves by this process's workers.",
        );
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A persister that times its saves.
struct TimedPersister {
    inner: Arc<dyn Persister>,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl Persister for TimedPersister {
    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), PersistenceError> {
        let start = Instant::now();
        let saved = self.inner.save(checkpoint).await;
        let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.metrics.checkpoints.observe_us(us);
        saved
    }

    async fn load(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        sequence_id: Option<u64>,
    ) -> Result<Option<LoadedCheckpoint>, PersistenceError> {
        self.inner.load(partition_key, app_id, sequence_id).await
    }

    async fn list_app_ids(
        &self,
        partition_key: Option<&str>,
    ) -> Result<Vec<String>, PersistenceError> {
        self.inner.list_app_ids(partition_key).await
    }

    fn as_leases(&self) -> Option<&dyn Leases> {
        self.inner.as_leases()
    }

    fn as_app_records(&self) -> Option<&dyn AppRecords> {
        self.inner.as_app_records()
    }

    fn as_child_listing(&self) -> Option<&dyn ChildListing> {
        self.inner.as_child_listing()
    }

    fn as_history(&self) -> Option<&dyn History> {
        self.inner.as_history()
    }

    fn as_prune(&self) -> Option<&dyn Prune> {
        self.inner.as_prune()
    }

    fn as_delete(&self) -> Option<&dyn Delete> {
        self.inner.as_delete()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_runs_are_counted_by_status() {
        let metrics = Metrics::new();
        metrics.steps.observe_us(40);
        metrics.steps.observe_us(700);
        metrics.steps.observe_us(20_000_000);
        let event = |kind| RunEvent {
            id: 1,
            run_id: "r".into(),
            at_us: 0,
            kind,
        };
        metrics.observe_event(&event(EventKind::Claimed {
            worker: "w".into(),
            attempt: 1,
        }));
        metrics.observe_event(&event(EventKind::Claimed {
            worker: "w".into(),
            attempt: 2,
        }));
        metrics.observe_event(&event(EventKind::Finished {
            status: RunStatus::Failed,
        }));
        let text = metrics.render(&[BacklogRow {
            kind: "k\"x".into(),
            queue: "default".into(),
            priority: 3,
            status: RunStatus::Queued,
            count: 7,
        }]);
        assert!(text.contains("burr_queue_depth{kind=\"k\\\"x\",priority=\"3\"} 7"));
        assert!(text.contains("burr_runs_started_total 1\n"));
        assert!(text.contains("burr_runs_finished_total{status=\"failed\"} 1\n"));
        assert!(text.contains("burr_step_duration_seconds_bucket{le=\"0.00005\"} 1\n"));
        assert!(text.contains("burr_step_duration_seconds_bucket{le=\"0.001\"} 2\n"));
        assert!(text.contains("burr_step_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("burr_step_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("burr_step_duration_seconds_count 3\n"));
    }
}
