//! What hooks add to the [`ApplicationContext`]: the hooks and tracker themselves, and the
//! spans and attributes an action reports to them.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use super::events::{AttributeLogged, SpanEnd, SpanStart};
use super::LifecycleHook;
use crate::ids::ApplicationContext;

/// The application's hooks, as the context keeps them.
pub(crate) struct HookList(pub(crate) Arc<[Arc<dyn LifecycleHook>]>);

/// The application's tracker, as the context keeps it.
pub(crate) struct TrackerHandle(pub(crate) Arc<dyn LifecycleHook>);

impl ApplicationContext {
    /// Give the context the application's hooks and tracker.
    pub(crate) fn set_hooks(
        &mut self,
        hooks: Arc<[Arc<dyn LifecycleHook>]>,
        tracker: Option<Arc<dyn LifecycleHook>>,
    ) {
        // No hooks (most child applications): nothing to keep, `hooks()` is empty.
        if !hooks.is_empty() {
            self.handles.insert(Arc::new(HookList(hooks)));
        }
        if let Some(tracker) = tracker {
            self.handles.insert(Arc::new(TrackerHandle(tracker)));
        }
    }

    /// The tracker, if any.
    pub fn tracker(&self) -> Option<&Arc<dyn LifecycleHook>> {
        self.handles.get_ref::<TrackerHandle>().map(|t| &t.0)
    }

    /// The hooks of the application (the tracker among them).
    pub fn hooks(&self) -> &[Arc<dyn LifecycleHook>] {
        self.handles
            .get_ref::<HookList>()
            .map(|h| &h.0[..])
            .unwrap_or(&[])
    }

    /// Open a span named `name` within the step; it closes when the guard drops. Spans
    /// nest. The tracker records them.
    pub fn span(&self, name: impl Into<String>) -> SpanGuard<'_> {
        let name = name.into();
        let (id, parent) = self.shared.spans.open();
        let event = SpanStart {
            ids: &self.ids,
            sequence_id: self.sequence_id,
            action: &self.action,
            span_id: id,
            parent_span_id: parent,
            name: &name,
            at: SystemTime::now(),
        };
        for hook in self.hooks() {
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
        let event = AttributeLogged {
            ids: &self.ids,
            sequence_id: self.sequence_id,
            action: &self.action,
            span_id: self.shared.spans.innermost(),
            key,
            value: &value,
            at: SystemTime::now(),
        };
        for hook in self.hooks() {
            hook.attribute(&event);
        }
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
        self.ctx.shared.spans.close(self.id);
        let event = SpanEnd {
            ids: &self.ctx.ids,
            sequence_id: self.ctx.sequence_id,
            action: &self.ctx.action,
            span_id: self.id,
            name: &self.name,
            at: SystemTime::now(),
        };
        for hook in self.ctx.hooks() {
            hook.span_end(&event);
        }
    }
}
