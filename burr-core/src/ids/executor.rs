//! [`Executor`]: the process-wide scheduler of child applications.
//!
//! It bounds how many child steps run at once, and when a slot frees it admits the waiting
//! step with the smallest key: (higher [`Priority`] first, then the earlier top-level flow,
//! then the lower task index, depth first). So an urgent flow's children run before a
//! backlog's, and an earlier flow's children finish before a later flow's start.
//!
//! A step holds its slot only while it works: a step that waits for its own children (a
//! map action, or an action running a child through its context) lends the slot back while
//! it waits, so no bound (≥ 1) and no depth of nesting can deadlock.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How urgent a flow is: higher runs first. The default is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub i32);

/// Where a piece of work stands in the admission order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkKey {
    /// The flow's priority (higher first).
    pub priority: Priority,
    /// The top-level flow's start order (earlier first).
    pub flow: u64,
    /// The task index at each level of fan-out, from the top (lexicographic).
    pub path: Arc<[u32]>,
}

impl Ord for WorkKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .priority
            .cmp(&self.priority)
            .then(self.flow.cmp(&other.flow))
            .then_with(|| self.path.cmp(&other.path))
    }
}

impl PartialOrd for WorkKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A shared, bounded scheduler of child applications. Cloning shares it.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    state: Mutex<Slots>,
    /// The earliest start of the next admitted step, with a rate limit.
    rate: Option<(Duration, Mutex<Instant>)>,
}

struct Slots {
    running: usize,
    waiting: BinaryHeap<Waiter>,
    arrivals: u64,
}

struct Waiter {
    key: WorkKey,
    arrival: u64,
    grant: oneshot::Sender<Permit>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    /// Max-heap order: the smallest key (then the earliest arrival) is the greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key
            .cmp(&self.key)
            .then(other.arrival.cmp(&self.arrival))
    }
}

/// A slot held by a running step; released on drop (to the best waiting step).
pub struct Permit {
    inner: Option<Arc<Inner>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            Inner::release(inner);
        }
    }
}

static FLOWS: AtomicU64 = AtomicU64::new(0);

/// The start order of a new top-level flow.
pub(crate) fn next_flow() -> u64 {
    FLOWS.fetch_add(1, AtomicOrdering::Relaxed)
}

impl Executor {
    /// An executor running at most `concurrency` child steps at once (at least 1).
    pub fn new(concurrency: usize) -> Self {
        Executor {
            inner: Arc::new(Inner {
                limit: concurrency.max(1),
                state: Mutex::new(Slots {
                    running: 0,
                    waiting: BinaryHeap::new(),
                    arrivals: 0,
                }),
                rate: None,
            }),
        }
    }

    /// For CPU-bound children: one slot per core.
    pub fn cpu() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// For I/O-bound children (LLM calls, HTTP): 64 slots per core.
    pub fn io() -> Self {
        Self::new(64 * std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The executor used by applications that were given none: [`Executor::cpu`], shared
    /// by the whole process.
    pub fn global() -> Self {
        static GLOBAL: OnceLock<Executor> = OnceLock::new();
        GLOBAL.get_or_init(Executor::cpu).clone()
    }

    /// Start at most `per_second` child steps per second. Call before sharing the
    /// executor.
    pub fn with_rate_limit(self, per_second: f64) -> Self {
        let interval = Duration::from_secs_f64(1.0 / per_second.max(f64::MIN_POSITIVE));
        Executor {
            inner: Arc::new(Inner {
                limit: self.inner.limit,
                state: Mutex::new(Slots {
                    running: 0,
                    waiting: BinaryHeap::new(),
                    arrivals: 0,
                }),
                rate: Some((interval, Mutex::new(Instant::now()))),
            }),
        }
    }

    /// The bound.
    pub fn concurrency(&self) -> usize {
        self.inner.limit
    }

    /// Steps running now.
    pub fn running(&self) -> usize {
        self.inner.lock().running
    }

    /// Steps waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.inner.lock().waiting.len()
    }

    /// Wait for a slot; waiting steps are admitted smallest key first.
    pub async fn acquire(&self, key: WorkKey) -> Permit {
        let receiver = {
            let mut slots = self.inner.lock();
            if slots.running < self.inner.limit && slots.waiting.is_empty() {
                slots.running += 1;
                None
            } else {
                let (grant, receiver) = oneshot::channel();
                slots.arrivals += 1;
                let arrival = slots.arrivals;
                slots.waiting.push(Waiter {
                    key,
                    arrival,
                    grant,
                });
                Some(receiver)
            }
        };
        let permit = match receiver {
            None => Permit {
                inner: Some(Arc::clone(&self.inner)),
            },
            // The sender lives in the queue until a permit is handed over, and the
            // executor (which owns the queue) lives as long as `self`.
            Some(receiver) => match receiver.await {
                Ok(permit) => permit,
                Err(_) => {
                    self.inner.lock().running += 1;
                    Permit {
                        inner: Some(Arc::clone(&self.inner)),
                    }
                }
            },
        };
        if let Some((interval, next)) = &self.inner.rate {
            let start = {
                let mut next = next.lock().unwrap_or_else(|p| p.into_inner());
                let start = (*next).max(Instant::now());
                *next = start + *interval;
                start
            };
            tokio::time::sleep_until(start.into()).await;
        }
        permit
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hand the slot to the best waiter still waiting, or free it.
    fn release(this: Arc<Inner>) {
        let mut slots = this.lock();
        while let Some(waiter) = slots.waiting.pop() {
            let permit = Permit {
                inner: Some(Arc::clone(&this)),
            };
            match waiter.grant.send(permit) {
                Ok(()) => return,
                // The waiter gave up; its permit comes back here: defuse it and try the
                // next one.
                Err(mut permit) => {
                    permit.inner = None;
                }
            }
        }
        slots.running -= 1;
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("concurrency", &self.inner.limit)
            .field("running", &self.running())
            .finish()
    }
}
