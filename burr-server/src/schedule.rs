//! Schedules: runs submitted periodically, by interval or cron expression, kept in the
//! database and fired once per due time even with several schedulers running.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::QueueError;
use crate::run::NewRun;

/// When a schedule fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleSpec {
    /// Every so many seconds (at least 1), from when it was added.
    EverySeconds(u64),
    /// A cron expression (5 fields, or 6 with seconds first), in UTC.
    Cron(String),
}

impl ScheduleSpec {
    /// The first due time strictly after `after_us` (microseconds since the Unix epoch).
    pub fn next_after(&self, name: &str, after_us: i64) -> Result<i64, QueueError> {
        let bad = |problem: String| QueueError::BadSchedule {
            name: name.to_owned(),
            problem,
        };
        match self {
            ScheduleSpec::EverySeconds(0) => Err(bad("the interval must be at least 1 s".into())),
            ScheduleSpec::EverySeconds(seconds) => {
                let step = i64::try_from(*seconds)
                    .ok()
                    .and_then(|s| s.checked_mul(1_000_000))
                    .ok_or_else(|| bad(format!("interval of {seconds} s is too long")))?;
                after_us
                    .checked_add(step)
                    .ok_or_else(|| bad(format!("interval of {seconds} s is too long")))
            }
            ScheduleSpec::Cron(expression) => {
                let cron = croner::Cron::from_str(expression)
                    .map_err(|e| bad(format!("cron expression `{expression}`: {e}")))?;
                // Whole seconds: cron times fall on second boundaries.
                let after = chrono::DateTime::from_timestamp(after_us.div_euclid(1_000_000), 0)
                    .ok_or_else(|| bad(format!("time {after_us} µs is out of range")))?;
                let next = cron
                    .find_next_occurrence(&after, false)
                    .map_err(|e| bad(format!("cron expression `{expression}`: {e}")))?;
                Ok(next.timestamp_micros())
            }
        }
    }
}

impl std::fmt::Display for ScheduleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduleSpec::EverySeconds(s) => write!(f, "every {s}s"),
            ScheduleSpec::Cron(c) => write!(f, "cron `{c}`"),
        }
    }
}

/// A schedule: a run submitted at each due time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Its name (unique).
    pub name: String,
    /// When it fires.
    pub spec: ScheduleSpec,
    /// The run it submits (its id is made per due time; its idempotency key is
    /// `schedule:<name>:<due time>`, so a due time fires once).
    pub run: NewRun,
    /// The next due time (microseconds since the Unix epoch).
    pub next_due_us: i64,
    /// The last due time it fired for.
    pub last_fired_us: Option<i64>,
}
