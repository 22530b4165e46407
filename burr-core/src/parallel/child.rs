//! Running one child application: its stable id, its builder, resume and cancellation.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch;

use super::Task;
use crate::actions::RetryPolicy;
use crate::application::{ApplicationBuilder, ChildParts};
use crate::error::{Error, Result};
use crate::hooks::LifecycleHook;
use crate::ids::{ApplicationContext, Priority, WorkKey};
use crate::persistence::Persister;
use crate::state::State;

/// The prefix every id [`child_app_id`] makes for the step gives: `<parent app id>/<parent
/// sequence id>/`.
pub(crate) fn child_id_prefix(parent_app_id: &str, parent_sequence_id: u64) -> String {
    child_app_id(parent_app_id, parent_sequence_id, "")
}

/// The id of the child application a step spawns for a task:
/// `<parent app id>/<parent sequence id>/<task key>`, with `%` and `/` in the key escaped,
/// so different (parent, step, key) never share an id. A later step of the parent gets
/// different ids, so it never replays an earlier step's children.
///
/// ```
/// assert_eq!(burr_core::parallel::child_app_id("meeting-7", 3, "discussion/12"), "meeting-7/3/discussion%2F12");
/// ```
pub fn child_app_id(parent_app_id: &str, parent_sequence_id: u64, key: &str) -> String {
    let mut id = String::with_capacity(parent_app_id.len() + key.len() + 24);
    id.push_str(parent_app_id);
    id.push('/');
    // The sequence id's digits, without the formatting machinery (a map step makes one
    // id per child).
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut n = parent_sequence_id;
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    id.extend(digits[start..].iter().map(|&d| char::from(d)));
    id.push('/');
    let mut rest = key;
    while let Some(at) = rest.find(['%', '/']) {
        id.push_str(&rest[..at]);
        id.push_str(if rest.as_bytes()[at] == b'%' {
            "%25"
        } else {
            "%2F"
        });
        rest = &rest[at + 1..];
    }
    id.push_str(rest);
    id
}

/// How a child runs: everything but its task.
pub(crate) struct ChildSettings {
    pub(crate) persister: Option<Arc<dyn Persister>>,
    /// `None`: the parent's tracker; `Some(None)`: no tracker; `Some(Some(t))`: `t`.
    pub(crate) tracker: Option<Option<Arc<dyn LifecycleHook>>>,
    pub(crate) priority: Option<Priority>,
    pub(crate) timeout: Option<Duration>,
    /// The children's retry policy, for every action that has none of its own.
    pub(crate) retry: Option<RetryPolicy>,
    /// How many children were found finished in the persister (not run again).
    pub(crate) loaded: AtomicUsize,
}

/// A builder for a child application of the step `parent` is running: its id derived from
/// the step and `key`, the spawning-parent link, the parent's hooks, tracker and executor,
/// and its place in the executor's order (`index` under the parent's).
pub(crate) fn child_builder(
    parent: &ApplicationContext,
    key: &str,
    index: usize,
    tracker: Option<Arc<dyn LifecycleHook>>,
) -> ApplicationBuilder {
    let mut path = parent.work.path.to_vec();
    path.push(u32::try_from(index).unwrap_or(u32::MAX));
    let mut builder = ApplicationBuilder::new()
        .with_app_id(child_app_id(parent.app_id(), parent.sequence_id(), key))
        .with_resources(parent.resources())
        .with_spawning_parent(parent.as_parent())
        .with_cancel_token(parent.cancel.clone())
        .with_work_key(WorkKey {
            path: Arc::from(path),
            ..parent.work.clone()
        });
    if let Some(partition_key) = parent.partition_key() {
        builder = builder.with_partition_key(partition_key);
    }
    if let Some(executor) = &parent.executor {
        builder = builder.with_executor(executor.clone());
    }
    for hook in parent.hooks() {
        if !parent.tracker().is_some_and(|t| Arc::ptr_eq(t, hook)) {
            builder = builder.with_hook(Arc::clone(hook));
        }
    }
    if let Some(tracker) = tracker {
        builder = builder.with_tracker(tracker);
    }
    builder
}

impl ApplicationContext {
    /// A builder for a child application of the current step, keyed `key` among the step's
    /// children: the id is derived from (this app id, this sequence id, `key`), and the
    /// child is linked to this step as its spawning parent and shares the tracker, hooks and
    /// executor. Add the graph, the persister (`with_state_persister` +
    /// `initialize_from`, for resume) and run it inside [`ApplicationContext::without_slot`].
    pub fn child_builder(&self, key: &str) -> ApplicationBuilder {
        child_builder(self, key, 0, self.tracker().cloned())
    }

    /// Run `task` as a child application of the current step, keyed `key`, and return
    /// its final state (Burr's recursion, by hand). The child checkpoints to this
    /// application's persister and resumes from it: when the step is retried (or the
    /// parent resumes after a crash), a child that finished returns its stored state
    /// without running again. The step's executor slot is lent back while the child runs.
    ///
    /// ```
    /// use burr_core::parallel::{SubGraph, Task};
    /// use burr_core::{ApplicationContext, State};
    /// use burr_core::actions::{action_fn, action_sync};
    ///
    /// let summarize = action_sync("summarize", |s: State, _, _| s.update("summary", "short"))
    ///     .writes(["summary"]);
    /// let parent = action_fn("parent", move |s: State, _, ctx: ApplicationContext| {
    ///     let summarize = summarize.clone();
    ///     async move {
    ///         let task = Task::new(SubGraph::action(summarize), State::new());
    ///         let child = ctx.run_child("summary", task).await?;
    ///         Ok::<_, burr_core::ActionError>(s.update("summary", child.get_value("summary").cloned().unwrap_or_default()))
    ///     }
    /// })
    /// .writes(["summary"]);
    /// ```
    pub async fn run_child(&self, key: &str, task: Task) -> Result<State> {
        let settings = Arc::new(ChildSettings {
            persister: self.persister().cloned(),
            tracker: None,
            priority: None,
            timeout: None,
            retry: None,
            loaded: AtomicUsize::new(0),
        });
        let (_never, cancelled) = watch::channel(false);
        self.without_slot(run_child(
            self.clone(),
            0,
            key.to_owned(),
            task,
            settings,
            Stored::Maybe,
            cancelled,
        ))
        .await
    }
}

/// Whether the persister may hold a child application already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// It may (or the persister cannot tell): the child is built with `initialize_from`,
    /// and resumes from its checkpoints if it has any.
    Maybe,
    /// It does not (the persister listed the step's children, and this one is not among
    /// them): the child starts from its task without a load.
    No,
}

/// Completes once the map step's children are to stop (never, if the step is gone).
async fn until_cancelled(cancel: &mut watch::Receiver<bool>) {
    while !*cancel.borrow_and_update() {
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Run `task` as child `index` of the step `parent` runs; its final state, or why not.
pub(crate) async fn run_child(
    parent: ApplicationContext,
    index: usize,
    key: String,
    task: Task,
    settings: Arc<ChildSettings>,
    stored: Stored,
    mut cancel: watch::Receiver<bool>,
) -> Result<State> {
    let tracker = match &settings.tracker {
        None => parent.tracker().cloned(),
        Some(chosen) => chosen.clone(),
    };
    // What `child_builder` and the `with_*` calls would give, built at once.
    let mut path = Vec::with_capacity(parent.work.path.len() + 1);
    path.extend_from_slice(&parent.work.path);
    path.push(u32::try_from(index).unwrap_or(u32::MAX));
    let builder = ApplicationBuilder::child(ChildParts {
        app_id: child_app_id(parent.app_id(), parent.sequence_id(), &key),
        partition_key: parent.partition_key().map(str::to_owned),
        resources: parent.resources().clone(),
        spawning_parent: parent.as_parent(),
        cancel: parent.cancel.clone(),
        work: WorkKey {
            path: Arc::from(path),
            ..parent.work.clone()
        },
        executor: parent.executor.clone(),
        hooks: parent
            .hooks()
            .iter()
            .filter(|hook| !parent.tracker().is_some_and(|t| Arc::ptr_eq(t, hook)))
            .cloned()
            .collect(),
        tracker,
        code: task.subgraph.code(),
        graph: Arc::clone(&task.subgraph.graph),
        entrypoint: Arc::clone(&task.subgraph.entrypoint),
        state: task.state,
        // Nothing to load (`Stored::No`): the child checkpoints (and resumes next time)
        // all the same.
        persister: settings
            .persister
            .as_ref()
            .map(|persister| (Arc::clone(persister), stored == Stored::Maybe)),
        priority: settings.priority,
        default_retry: settings.retry.clone(),
    });
    let mut app = builder.build().await?;
    if app.halted_after(&task.subgraph.halt_after) {
        settings.loaded.fetch_add(1, Ordering::Relaxed);
        return Ok(app.state().clone());
    }
    let halts = task.subgraph.halts()?;
    let run = app.run_until(halts, task.inputs);
    let outcome = match settings.timeout {
        None => {
            // Most children run to their end in their first poll: that poll registers for
            // the stop signal only if the child did not end (registering, and dropping
            // the registration, cost more than the rest of a small child's run). The
            // signal is looked at before the child is polled, as a biased `select!`
            // would; after the first poll it is polled first.
            let mut run = std::pin::pin!(run);
            if *cancel.borrow_and_update() {
                None
            } else {
                let mut stop = std::pin::pin!(until_cancelled(&mut cancel));
                let mut first = true;
                std::future::poll_fn(|cx| {
                    if !first && stop.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    match run.as_mut().poll(cx) {
                        Poll::Ready(outcome) => Poll::Ready(Some(outcome)),
                        Poll::Pending if std::mem::take(&mut first) => {
                            match stop.as_mut().poll(cx) {
                                Poll::Ready(()) => Poll::Ready(None),
                                Poll::Pending => Poll::Pending,
                            }
                        }
                        Poll::Pending => Poll::Pending,
                    }
                })
                .await
            }
        }
        Some(limit) => tokio::select! {
            biased;
            () = until_cancelled(&mut cancel) => None,
            outcome = tokio::time::timeout(limit, run) => match outcome {
                Ok(outcome) => Some(outcome),
                Err(_) => {
                    app.record_cancelled().await;
                    return Err(Error::Timeout {
                        app_id: app.app_id().to_owned(),
                        after_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                    });
                }
            },
        },
    };
    match outcome {
        Some(outcome) => outcome.map(|o| o.state),
        None => {
            let action = app
                .next_action()
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_owned();
            app.record_cancelled().await;
            Err(Error::Cancelled { action })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::child_app_id;

    #[test]
    fn a_child_id_escapes_its_key_and_spells_the_step_in_decimal() {
        assert_eq!(child_app_id("p", 0, "k"), "p/0/k");
        assert_eq!(child_app_id("p", u64::MAX, ""), format!("p/{}/", u64::MAX));
        assert_eq!(
            child_app_id("p", 1200, "a/b%c//%"),
            "p/1200/a%2Fb%25c%2F%2F%25"
        );
        assert_eq!(child_app_id("p", 7, "é/ü"), "p/7/é%2Fü");
        // Different keys never share an id.
        assert_ne!(child_app_id("p", 1, "a/b"), child_app_id("p", 1, "a%2Fb"));
    }
}
