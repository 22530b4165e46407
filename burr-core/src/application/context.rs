//! [`ApplicationContext`]: what an action may know about the step it runs in.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hooks::{AttributeLogged, LifecycleHook, SpanEnd, SpanStart};
use crate::parallel::{Executor, Permit, Priority, WorkKey};
use crate::persistence::Persister;

/// An application's identity: its app id and partition key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identifiers {
    /// The application's id (a UUID unless given).
    pub app_id: Arc<str>,
    /// The partition key (a user id, a tenant...), if any.
    pub partition_key: Option<Arc<str>>,
}

impl Identifiers {
    /// The partition key as a `&str`.
    pub fn partition_key(&self) -> Option<&str> {
        self.partition_key.as_deref()
    }
}

/// A pointer to another application's step: the application a fork started from, or the
/// one that spawned a child application.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParentPointer {
    /// The other application's id.
    pub app_id: String,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// The step (`None`: the latest, for a fork of the latest state).
    pub sequence_id: Option<u64>,
}

/// What an action can know about the step it runs in, and the handles it may use: the
/// tracker, the persister, spans and attributes.
///
/// Every action receives it; most ignore it.
#[derive(Clone)]
pub struct ApplicationContext {
    pub(crate) ids: Identifiers,
    pub(crate) sequence_id: u64,
    pub(crate) attempt: u32,
    pub(crate) action: Arc<str>,
    pub(crate) hooks: Arc<[Arc<dyn LifecycleHook>]>,
    pub(crate) persister: Option<Arc<dyn Persister>>,
    pub(crate) tracker: Option<Arc<dyn LifecycleHook>>,
    pub(crate) spawning_parent: Option<ParentPointer>,
    pub(crate) spans: Arc<Spans>,
    pub(crate) executor: Option<Executor>,
    pub(crate) work: WorkKey,
    /// The executor slot the current step holds (child applications only).
    pub(crate) slot: Arc<Mutex<Option<Permit>>>,
}

#[derive(Default)]
pub(crate) struct Spans {
    next_id: AtomicU64,
    open: Mutex<Vec<u64>>,
}

impl Spans {
    pub(crate) fn reset(&self) {
        if self.next_id.swap(0, Ordering::Relaxed) != 0 {
            self.open.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

impl ApplicationContext {
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

    /// 1 for the first attempt at this step, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The name of the action being run.
    pub fn action_name(&self) -> &str {
        &self.action
    }

    /// The persister the application saves to, if any.
    pub fn persister(&self) -> Option<&Arc<dyn Persister>> {
        self.persister.as_ref()
    }

    /// The tracker, if any.
    pub fn tracker(&self) -> Option<&Arc<dyn LifecycleHook>> {
        self.tracker.as_ref()
    }

    /// The hooks of the application (the tracker among them).
    pub fn hooks(&self) -> &[Arc<dyn LifecycleHook>] {
        &self.hooks
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
        let held = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        let had_slot = held.is_some();
        drop(held);
        let output = work.await;
        if let (true, Some(executor)) = (had_slot, &self.executor) {
            let permit = executor.acquire(self.work.clone()).await;
            *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(permit);
        }
        output
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

    /// Open a span named `name` within the step; it closes when the guard drops. Spans
    /// nest. The tracker records them.
    pub fn span(&self, name: impl Into<String>) -> SpanGuard<'_> {
        let name = name.into();
        let id = self.spans.next_id.fetch_add(1, Ordering::Relaxed);
        let parent = {
            let mut open = self.spans.open.lock().unwrap_or_else(|p| p.into_inner());
            let parent = open.last().copied();
            open.push(id);
            parent
        };
        let event = SpanStart {
            ids: &self.ids,
            sequence_id: self.sequence_id,
            action: &self.action,
            span_id: id,
            parent_span_id: parent,
            name: &name,
            at: SystemTime::now(),
        };
        for hook in self.hooks.iter() {
            hook.span_start(&event);
        }
        SpanGuard {
            ctx: self,
            id,
            name,
        }
    }

    /// Record an attribute (a metric, a prompt, a model name...) on the step, within the
    /// innermost open span.
    pub fn log_attribute(&self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        let span_id = self
            .spans
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .copied();
        let event = AttributeLogged {
            ids: &self.ids,
            sequence_id: self.sequence_id,
            action: &self.action,
            span_id,
            key,
            value: &value,
            at: SystemTime::now(),
        };
        for hook in self.hooks.iter() {
            hook.attribute(&event);
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

/// An open span; it closes when dropped.
pub struct SpanGuard<'a> {
    ctx: &'a ApplicationContext,
    id: u64,
    name: String,
}

impl SpanGuard<'_> {
    /// The span's id within the step.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for SpanGuard<'_> {
    fn drop(&mut self) {
        {
            let mut open = self
                .ctx
                .spans
                .open
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(pos) = open.iter().rposition(|&i| i == self.id) {
                open.remove(pos);
            }
        }
        let event = SpanEnd {
            ids: &self.ctx.ids,
            sequence_id: self.ctx.sequence_id,
            action: &self.ctx.action,
            span_id: self.id,
            name: &self.name,
            at: SystemTime::now(),
        };
        for hook in self.ctx.hooks.iter() {
            hook.span_end(&event);
        }
    }
}
