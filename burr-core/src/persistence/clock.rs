//! [`Clock`]: where a persister reads the time, so that a test can move it.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use super::record::micros;

/// The time a persister judges leases by (expiry, renewal) and stamps rows with.
///
/// [`SystemClock`] in production; [`ManualClock`] in tests, which a test moves forward
/// instead of sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, in microseconds since the Unix epoch.
    fn now_micros(&self) -> i64;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        micros(SystemTime::now())
    }
}

/// A clock that runs with the system clock, plus an offset a test moves forward with
/// [`advance`](Self::advance): time passes for the persister without the test waiting.
///
/// ```
/// use std::time::Duration;
/// use burr_core::persistence::{Clock, ManualClock, SystemClock};
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(3600));
/// assert!(clock.now_micros() >= SystemClock.now_micros() + 3_599_000_000);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_us: AtomicI64,
}

impl ManualClock {
    /// A clock that reads the system time (until advanced).
    pub fn new() -> Self {
        Self::default()
    }

    /// Move the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.offset_us.fetch_add(by, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> i64 {
        SystemClock
            .now_micros()
            .saturating_add(self.offset_us.load(Ordering::Relaxed))
    }
}
