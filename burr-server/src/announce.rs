//! [`Announcer`]: how a run's actions publish a result as soon as they have it, as a run
//! event (`announced`) that the HTTP API streams and the web UI shows, before the run
//! finishes.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::events::EventKind;
use crate::progress::Record;

/// Publishes `announced` events of one run. A worker gives each run's kind one (in
/// [`RunInfo::announcer`](crate::RunInfo::announcer)) and each run's application one
/// as a resource (`Res<Announcer>` in an `#[action]`; child applications inherit it).
/// Outside a worker it discards what it is given.
///
/// Announce after the result is checkpointed (e.g. from a hook's `post_run_step`): an
/// announcement says the result is stored.
#[derive(Clone, Default)]
pub struct Announcer {
    to: Option<Arc<(String, mpsc::UnboundedSender<Record>)>>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("run_id", &self.to.as_ref().map(|to| to.0.as_str()))
            .finish()
    }
}

impl Announcer {
    /// An announcer that discards what it is given (no worker).
    pub fn discard() -> Self {
        Announcer::default()
    }

    /// The announcer of the run `run_id`, recording through the worker's recorder.
    pub(crate) fn new(run_id: &str, events: mpsc::UnboundedSender<Record>) -> Self {
        Announcer {
            to: Some(Arc::new((run_id.to_owned(), events))),
        }
    }

    /// Publish `data` as `name`, from the application `app_id` (the run, or one of its
    /// child applications). Recorded with the run's other events, in order.
    pub fn announce(&self, app_id: &str, name: &str, data: Value) {
        if let Some(to) = &self.to {
            let _ = to.1.send(Record::Event(
                to.0.clone(),
                EventKind::Announced {
                    app_id: app_id.to_owned(),
                    name: name.to_owned(),
                    data,
                },
            ));
        }
    }

    /// Whether announcements go anywhere (a worker runs the run).
    pub fn is_recording(&self) -> bool {
        self.to.is_some()
    }
}
