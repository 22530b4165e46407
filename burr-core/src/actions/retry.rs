//! [`RetryPolicy`]: how often, after how long, and on which errors a failed step runs
//! again.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What kind of failure ended an attempt, for [`RetryPolicy::retry_on`] and error
/// transitions (`on_error_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The action's own code returned an error (or panicked, for a blocking action).
    Action,
    /// The action ran past its timeout.
    Timeout,
    /// Child applications of a map step failed.
    Children,
    /// The action wrote keys it did not declare, or left a declared write unset.
    Writes,
    /// Anything else (a state operation outside the action, a checkpoint that failed...).
    Other,
}

impl ErrorKind {
    /// The kind's name, as the tracker shows it: `action`, `timeout`, `children`, `writes`,
    /// `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Action => "action",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Children => "children",
            ErrorKind::Writes => "writes",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Predicate = dyn Fn(ErrorKind, &(dyn StdError + 'static)) -> bool + Send + Sync;

#[derive(Clone)]
enum RetryOn {
    Any,
    Kinds(Vec<ErrorKind>),
    Predicate(Arc<Predicate>),
}

/// How a failed step is retried: up to `max_attempts` runs of the action's code in all,
/// waiting `initial × multiplierⁿ` (at most `max`, ± `jitter`) between them, on the errors
/// it names. Each failed attempt is checkpointed (status `failed`, its attempt number and
/// error chain) and the next runs from the same input state, under the same sequence id.
///
/// An action's error decides for itself with [`ActionError::permanent`] (never retried)
/// and [`ActionError::transient`] (always retried while attempts remain).
///
/// ```
/// use std::time::Duration;
/// use burr_core::actions::{ErrorKind, RetryPolicy};
///
/// let policy = RetryPolicy::new(5)
///     .backoff(Duration::from_millis(200), 2.0, Duration::from_secs(10))
///     .jitter(0.1)
///     .retry_on([ErrorKind::Action, ErrorKind::Timeout]);
/// assert_eq!(policy.max_attempts(), 5);
/// ```
///
/// [`ActionError::permanent`]: super::ActionError::permanent
/// [`ActionError::transient`]: super::ActionError::transient
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial: Duration,
    multiplier: f64,
    max: Duration,
    jitter: f64,
    retry_on: RetryOn,
}

/// A retry setting that makes no sense: what was wrong with it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RetryPolicyError {
    /// `max_attempts` is 0: an action runs at least once.
    #[error("max_attempts must be at least 1")]
    NoAttempts,
    /// The multiplier is below 1, or not a finite number.
    #[error("the backoff multiplier must be a finite number of at least 1, got {0}")]
    Multiplier(f64),
    /// The jitter is outside 0..=1.
    #[error("the jitter must be between 0 and 1, got {0}")]
    Jitter(f64),
    /// The longest backoff is shorter than the first.
    #[error("the longest backoff ({max:?}) is shorter than the first ({initial:?})")]
    MaxBelowInitial {
        /// The first backoff.
        initial: Duration,
        /// The longest.
        max: Duration,
    },
}

impl RetryPolicy {
    /// Up to `max_attempts` runs in all (1: no retry), on any error, waiting 100 ms, then
    /// twice as long each time up to 30 s, with ±20% jitter.
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_secs(30),
            jitter: 0.2,
            retry_on: RetryOn::Any,
        }
    }

    /// The wait before the first retry, its growth per retry and its ceiling.
    pub fn backoff(mut self, initial: Duration, multiplier: f64, max: Duration) -> Self {
        self.initial = initial;
        self.multiplier = multiplier;
        self.max = max;
        self
    }

    /// A random share (0..=1) added to or taken from each wait, so that many failing
    /// children do not retry in step.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Retry only errors of these kinds.
    pub fn retry_on<I: IntoIterator<Item = ErrorKind>>(mut self, kinds: I) -> Self {
        self.retry_on = RetryOn::Kinds(kinds.into_iter().collect());
        self
    }

    /// Retry only the errors `predicate` accepts: it gets the kind and the error (the
    /// action's own error for [`ErrorKind::Action`], to downcast).
    pub fn retry_if<F>(mut self, predicate: F) -> Self
    where
        F: Fn(ErrorKind, &(dyn StdError + 'static)) -> bool + Send + Sync + 'static,
    {
        self.retry_on = RetryOn::Predicate(Arc::new(predicate));
        self
    }

    /// How many runs of the action's code, at most.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The settings' problem, if they have one.
    pub fn validate(&self) -> Result<(), RetryPolicyError> {
        if self.max_attempts == 0 {
            return Err(RetryPolicyError::NoAttempts);
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(RetryPolicyError::Multiplier(self.multiplier));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(RetryPolicyError::Jitter(self.jitter));
        }
        if self.max < self.initial {
            return Err(RetryPolicyError::MaxBelowInitial {
                initial: self.initial,
                max: self.max,
            });
        }
        Ok(())
    }

    /// Whether attempt `failed` (1 for the first run), which ended with `error` of `kind`,
    /// is followed by another. `verdict` is the action's own say
    /// ([`ActionError::permanent`](super::ActionError::permanent)/
    /// [`transient`](super::ActionError::transient)), which wins over the kinds.
    pub fn retries(
        &self,
        failed: u32,
        kind: ErrorKind,
        error: &(dyn StdError + 'static),
        verdict: Option<bool>,
    ) -> bool {
        if failed >= self.max_attempts {
            return false;
        }
        if let Some(retryable) = verdict {
            return retryable;
        }
        match &self.retry_on {
            RetryOn::Any => true,
            RetryOn::Kinds(kinds) => kinds.contains(&kind),
            RetryOn::Predicate(predicate) => predicate(kind, error),
        }
    }

    /// The wait before attempt `next` (2 for the first retry). `seed` makes the jitter
    /// the same for the same step whenever it is computed (e.g. again after a restart).
    pub fn delay_before(&self, next: u32, seed: u64) -> Duration {
        let retries = next.saturating_sub(2);
        let base = self.initial.as_secs_f64() * self.multiplier.powi(retries.min(1_000) as i32);
        let base = base.min(self.max.as_secs_f64());
        let unit = (splitmix(seed ^ u64::from(next)) >> 11) as f64 / (1u64 << 53) as f64;
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((base * factor).clamp(0.0, self.max.as_secs_f64()))
    }
}

/// A well-mixed 64-bit value from `x` (SplitMix64's finaliser).
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let retry_on = match &self.retry_on {
            RetryOn::Any => "any".to_owned(),
            RetryOn::Kinds(kinds) => format!("{kinds:?}"),
            RetryOn::Predicate(_) => "a predicate".to_owned(),
        };
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("initial", &self.initial)
            .field("multiplier", &self.multiplier)
            .field("max", &self.max)
            .field("jitter", &self.jitter)
            .field("retry_on", &retry_on)
            .finish()
    }
}

impl PartialEq for RetryPolicy {
    fn eq(&self, other: &Self) -> bool {
        let same_rule = match (&self.retry_on, &other.retry_on) {
            (RetryOn::Any, RetryOn::Any) => true,
            (RetryOn::Kinds(a), RetryOn::Kinds(b)) => a == b,
            (RetryOn::Predicate(a), RetryOn::Predicate(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same_rule
            && self.max_attempts == other.max_attempts
            && self.initial == other.initial
            && self.multiplier == other.multiplier
            && self.max == other.max
            && self.jitter == other.jitter
    }
}

impl Eq for RetryPolicy {}

/// An action's own verdict on whether its error is worth retrying: what
/// [`ActionError::permanent`](super::ActionError::permanent) and
/// [`ActionError::transient`](super::ActionError::transient) wrap the error in. It
/// displays as the error it wraps.
#[derive(Debug)]
pub struct Verdict {
    pub(crate) retryable: bool,
    pub(crate) error: Box<dyn StdError + Send + Sync + 'static>,
}

impl Verdict {
    /// Whether the action said to retry.
    pub fn retryable(&self) -> bool {
        self.retryable
    }

    /// The error it wraps.
    pub fn error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.error
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl StdError for Verdict {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.error.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_with_bounded_jitter() {
        let policy = RetryPolicy::new(10)
            .backoff(Duration::from_millis(100), 2.0, Duration::from_secs(1))
            .jitter(0.1);
        for (next, base_ms) in [(2, 100.0), (3, 200.0), (4, 400.0), (5, 800.0), (6, 1000.0)] {
            let ms = policy.delay_before(next, 42).as_secs_f64() * 1000.0;
            assert!(
                ms >= base_ms * 0.9 - 1e-6 && ms <= (base_ms * 1.1f64).min(1000.0) + 1e-6,
                "{next}: {ms}"
            );
            assert_eq!(policy.delay_before(next, 42), policy.delay_before(next, 42));
        }
        let spread: std::collections::HashSet<_> =
            (0..20).map(|seed| policy.delay_before(2, seed)).collect();
        assert!(spread.len() > 10, "jitter varies with the seed");
    }

    #[test]
    fn attempts_kinds_and_verdicts_decide() {
        let io = std::io::Error::other("down");
        let policy = RetryPolicy::new(3).retry_on([ErrorKind::Timeout]);
        assert!(policy.retries(1, ErrorKind::Timeout, &io, None));
        assert!(!policy.retries(1, ErrorKind::Action, &io, None));
        assert!(policy.retries(2, ErrorKind::Action, &io, Some(true)));
        assert!(
            !policy.retries(3, ErrorKind::Timeout, &io, Some(true)),
            "attempts spent"
        );
        assert!(!RetryPolicy::new(3).retries(1, ErrorKind::Action, &io, Some(false)));
        let only_io = RetryPolicy::new(3).retry_if(|_, e| e.to_string() == "down");
        assert!(only_io.retries(1, ErrorKind::Action, &io, None));
    }

    #[test]
    fn nonsense_settings_are_named() {
        assert_eq!(
            RetryPolicy::new(0).validate(),
            Err(RetryPolicyError::NoAttempts)
        );
        assert_eq!(
            RetryPolicy::new(2).jitter(1.5).validate(),
            Err(RetryPolicyError::Jitter(1.5))
        );
        assert!(matches!(
            RetryPolicy::new(2)
                .backoff(Duration::from_secs(2), 0.5, Duration::from_secs(1))
                .validate(),
            Err(RetryPolicyError::Multiplier(_))
        ));
        assert!(RetryPolicy::new(2).validate().is_ok());
    }
}
