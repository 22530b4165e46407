//! How a caller waits for another caller's commit (see [`group`](super::group)): briefly
//! on the CPU when it is the only one waiting and commits are quick, asleep otherwise.
//!
//! Waking a sleeping thread costs tens of microseconds, as much as a commit with
//! `synchronous = NORMAL` (~20 µs). So a caller that is the only one waiting polls for
//! its answer (yielding the CPU between polls) for up to about twice the recent commit
//! time before it sleeps. When commits are slow (over 0.5 ms: flushes to a slow disk)
//! waking up costs little in comparison, and nobody polls. When several callers wait
//! (concurrent applications), none polls: their task threads stay free to run other
//! tasks, and their saves share a commit.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::oneshot::{self, error::TryRecvError};

/// The longest a caller polls before it sleeps.
const MAX_POLL: Duration = Duration::from_millis(1);

/// Commits slower than this on average are waited for asleep.
const SLOW_COMMIT: Duration = Duration::from_micros(500);

/// Commit times and waiting callers.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    /// Recent commit time in microseconds (an exponential moving average, 1/8 per commit).
    commit_us: AtomicU64,
    /// Callers waiting for an answer.
    waiting: AtomicUsize,
}

impl Waiting {
    /// A transaction took `took`.
    pub(super) fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let average = self.commit_us.load(Ordering::Relaxed);
        let average = if average == 0 {
            took
        } else {
            average.saturating_mul(7).saturating_add(took) / 8
        };
        self.commit_us.store(average, Ordering::Relaxed);
    }

    /// Wait for `answer`; `None` when it was dropped unanswered.
    pub(super) async fn wait<T>(&self, mut answer: oneshot::Receiver<T>) -> Option<T> {
        let alone = self.waiting.fetch_add(1, Ordering::AcqRel) == 0;
        let _waiting = Counted(&self.waiting);
        let average = Duration::from_micros(self.commit_us.load(Ordering::Relaxed));
        if alone && average <= SLOW_COMMIT {
            let until = Instant::now() + (2 * average + Duration::from_micros(20)).min(MAX_POLL);
            loop {
                match answer.try_recv() {
                    Ok(value) => return Some(value),
                    Err(TryRecvError::Closed) => return None,
                    Err(TryRecvError::Empty) if Instant::now() < until => std::thread::yield_now(),
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
        answer.await.ok()
    }
}

/// Counts a waiting caller until it stops waiting (answered, or its future dropped).
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
