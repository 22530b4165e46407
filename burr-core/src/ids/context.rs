//! [`ApplicationContext`]: what an action may know about the step it runs in.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use super::cancel::CancelToken;
use super::executor::{Executor, Permit, Priority, WorkKey};
use super::resources::{MissingResource, Res, Resources};
use super::{Identifiers, ParentPointer};

/// What an action can know about the step it runs in, and the handles it may use:
/// [resources](ApplicationContext::resource), spans and attributes
/// ([`span`](ApplicationContext::span), [`log_attribute`](ApplicationContext::log_attribute)),
/// the tracker, the persister, and child applications
/// ([`run_child`](ApplicationContext::run_child)).
///
/// Every action receives it; most ignore it.
#[derive(Clone)]
pub struct ApplicationContext {
    pub(crate) ids: Identifiers,
    pub(crate) sequence_id: u64,
    pub(crate) attempt: u32,
    pub(crate) action: Arc<str>,
    pub(crate) spawning_parent: Option<ParentPointer>,
    /// What every clone of this context shares (one allocation per application).
    pub(crate) shared: Arc<Shared>,
    pub(crate) executor: Option<Executor>,
    pub(crate) work: WorkKey,
    /// The user's resources ([`ApplicationContext::resource`]).
    pub(crate) resources: Resources,
    /// The framework's own handles (hooks, tracker, persister), each under a private type
    /// of the module that owns it.
    pub(crate) handles: Resources,
    /// Cancelled when the application is.
    pub(crate) cancel: CancelToken,
    /// The step's number among this application's runs of actions (a new one per attempt).
    pub(crate) run: u64,
}

/// An application's state that every clone of its context shares.
pub(crate) struct Shared {
    /// The spans open in the current step.
    pub(crate) spans: Spans,
    /// The executor slot the current step holds (child applications only).
    pub(crate) slot: Mutex<Option<Permit>>,
    /// The number of the run that exceeded its timeout, if any: that run (and only that
    /// one, even when its blocking thread outlives it) sees itself cancelled.
    pub(crate) timed_out: AtomicU64,
}

/// The spans open in the current step.
#[derive(Default)]
pub(crate) struct Spans {
    next_id: AtomicU64,
    open: Mutex<Vec<u64>>,
}

impl Spans {
    /// Forget the spans of the previous step.
    pub(crate) fn reset(&self) {
        if self.next_id.swap(0, Ordering::Relaxed) != 0 {
            self.open.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Open a span: its id and its parent's.
    pub(crate) fn open(&self) -> (u64, Option<u64>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let parent = open.last().copied();
        open.push(id);
        (id, parent)
    }

    /// Close span `id`.
    pub(crate) fn close(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pos) = open.iter().rposition(|&i| i == id) {
            open.remove(pos);
        }
    }

    /// The innermost open span.
    pub(crate) fn innermost(&self) -> Option<u64> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .copied()
    }
}

impl ApplicationContext {
    /// A context for an application with identity `ids`, cancelled with `cancel`, before
    /// its first step.
    pub(crate) fn new(ids: Identifiers, work: WorkKey, cancel: CancelToken) -> Self {
        // Before its first step an application runs no action: every one shares this name.
        static NO_ACTION: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));
        ApplicationContext {
            ids,
            sequence_id: 0,
            attempt: 0,
            action: Arc::clone(&NO_ACTION),
            spawning_parent: None,
            shared: Arc::new(Shared {
                spans: Spans::default(),
                slot: Mutex::new(None),
                timed_out: AtomicU64::new(u64::MAX),
            }),
            executor: None,
            work,
            resources: Resources::new(),
            handles: Resources::new(),
            cancel,
            run: 0,
        }
    }

    /// The application's id.
    pub fn app_id(&self) -> &str {
        &self.ids.app_id
    }

    /// The application's partition key.
    pub fn partition_key(&self) -> Option<&str> {
        self.ids.partition_key()
    }

    /// The application's identifiers.
    pub fn identifiers(&self) -> &Identifiers {
        &self.ids
    }

    /// The sequence id of the step being run.
    pub fn sequence_id(&self) -> u64 {
        self.sequence_id
    }

    /// How many times this step's action code has started, this run included: 1 for the
    /// first run, 2 for the first retry, ... A step cancelled before its code ran does not
    /// count (its record is attempt 0); a run cut short by a crash before its checkpoint
    /// is not counted either, since nothing recorded it.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The name of the action being run.
    pub fn action_name(&self) -> &str {
        &self.action
    }

    /// The resource of type `T` given to the application (or to an application that
    /// spawned it) with
    /// [`ApplicationBuilder::with_resource`](crate::ApplicationBuilder::with_resource).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use burr_core::prelude::*;
    ///
    /// struct Greeting(String);
    ///
    /// #[action(writes = [text])]
    /// fn greet(state: State, greeting: Res<Greeting>) -> State {
    ///     state.update("text", greeting.0.clone())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> burr_core::Result<()> {
    /// let mut app = ApplicationBuilder::new()
    ///     .with_actions([Greet])
    ///     .with_entrypoint(Greet)
    ///     .with_resource(Arc::new(Greeting("hello".into())))
    ///     .build()
    ///     .await?;
    /// let step = app.step(Inputs::new()).await?.unwrap();
    /// assert_eq!(step.state.get::<String>("text")?, "hello");
    /// # Ok(()) }
    /// ```
    pub fn resource<T: Send + Sync + 'static>(&self) -> Result<Res<T>, MissingResource> {
        self.resources
            .get::<T>()
            .ok_or_else(|| MissingResource::of::<T>(&self.action))
    }

    /// Every resource the application was given.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// The executor child applications of this application run on, if one was set.
    pub fn executor(&self) -> Option<&Executor> {
        self.executor.as_ref()
    }

    /// The application's priority.
    pub fn priority(&self) -> Priority {
        self.work.priority
    }

    /// Where this application's work stands in the executor's admission order.
    pub fn work_key(&self) -> &WorkKey {
        &self.work
    }

    /// Await `work` without holding this step's executor slot, so the children it waits
    /// for can use it. Map actions do this; an action that runs child applications itself
    /// should too. (Only steps of child applications hold slots.)
    pub async fn without_slot<F: std::future::Future>(&self, work: F) -> F::Output {
        let held = self
            .shared
            .slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let had_slot = held.is_some();
        drop(held);
        let output = work.await;
        if let (true, Some(executor)) = (had_slot, &self.executor) {
            let permit = executor.acquire(self.work.clone()).await;
            *self.shared.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(permit);
        }
        output
    }

    /// Whether the application was cancelled, or the step ran out of time: a long or
    /// blocking action checks it and returns early (its error is then ignored: the step is
    /// recorded as cancelled or timed out).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || self.shared.timed_out.load(Ordering::Relaxed) == self.run
    }

    /// Completes when the application is cancelled. (A step that runs out of time is
    /// dropped at its deadline; a blocking one sees [`is_cancelled`](Self::is_cancelled).)
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// A key for side effects of this step, stable across retries, restarts and resumes:
    /// `<partition key>/<app id>/<sequence id>`, with `%` and `/` inside the partition key
    /// and app id escaped as `%25` and `%2F` (no partition key: an empty first part). A
    /// child application's app id holds its parent's app id, step and task key, so the key
    /// is unique across a whole fan-out. Give it to an external service that deduplicates
    /// (a payment API, an idempotent upsert) so that a step that runs twice (see
    /// [`persistence`](crate::persistence) on at-least-once) has its effect once.
    ///
    /// ```
    /// # use burr_core::prelude::*;
    /// # use burr_core::actions::action_sync;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> burr_core::Result<()> {
    /// let charge = action_sync("charge", |s: State, _, ctx: &ApplicationContext| {
    ///     s.update("key", ctx.idempotency_key())
    /// })
    /// .writes(["key"]);
    /// let mut app = ApplicationBuilder::new()
    ///     .with_actions([charge])
    ///     .with_entrypoint("charge")
    ///     .with_app_id("order/7")
    ///     .with_partition_key("acme")
    ///     .build()
    ///     .await?;
    /// let step = app.step(Inputs::new()).await?.unwrap();
    /// assert_eq!(step.state.get::<String>("key")?, "acme/order%2F7/0");
    /// # Ok(()) }
    /// ```
    pub fn idempotency_key(&self) -> String {
        fn escaped(out: &mut String, part: &str) {
            for c in part.chars() {
                match c {
                    '%' => out.push_str("%25"),
                    '/' => out.push_str("%2F"),
                    c => out.push(c),
                }
            }
        }
        let mut key = String::with_capacity(self.ids.app_id.len() + 24);
        escaped(&mut key, self.ids.partition_key().unwrap_or_default());
        key.push('/');
        escaped(&mut key, &self.ids.app_id);
        key.push('/');
        key.push_str(&self.sequence_id.to_string());
        key
    }

    /// The application that spawned this one, if it is a child.
    pub fn spawning_parent(&self) -> Option<&ParentPointer> {
        self.spawning_parent.as_ref()
    }

    /// This step as a spawning parent for child applications an action builds.
    pub fn as_parent(&self) -> ParentPointer {
        ParentPointer {
            app_id: self.ids.app_id.to_string(),
            partition_key: self.ids.partition_key.as_deref().map(str::to_owned),
            sequence_id: Some(self.sequence_id),
        }
    }
}

impl fmt::Debug for ApplicationContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationContext")
            .field("app_id", &self.ids.app_id)
            .field("partition_key", &self.ids.partition_key)
            .field("sequence_id", &self.sequence_id)
            .field("attempt", &self.attempt)
            .field("action", &self.action)
            .field("spawning_parent", &self.spawning_parent)
            .finish_non_exhaustive()
    }
}
