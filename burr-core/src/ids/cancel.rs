//! [`CancelToken`]: a request to stop, passed from an application to its steps and to the
//! child applications they spawn.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// A shared request to stop: cancelled once, for good, and with it every token made from it
/// by [`child`](CancelToken::child). Cloning shares it.
///
/// An application checks its token at each step boundary; a running action can check
/// [`ApplicationContext::is_cancelled`](crate::ApplicationContext::is_cancelled) (a blocking
/// action, in its loop) or await
/// [`ApplicationContext::cancelled`](crate::ApplicationContext::cancelled).
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
    children: Mutex<Children>,
}

/// The child tokens, and the length past which dropped ones are swept out.
#[derive(Default)]
struct Children {
    live: Vec<Weak<Inner>>,
    sweep_at: usize,
}

impl CancelToken {
    /// A token nobody has cancelled.
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// A token cancelled with this one (and on its own, without cancelling this one).
    pub fn child(&self) -> CancelToken {
        let child = CancelToken::new();
        let mut children = self
            .inner
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Dropped children are swept when the list has doubled since the last sweep, so
        // a fan-out of many short-lived children costs O(1) per child.
        if children.live.len() >= children.sweep_at {
            children.live.retain(|c| c.strong_count() > 0);
            children.sweep_at = (children.live.len() * 2).max(16);
        }
        children.live.push(Arc::downgrade(&child.inner));
        drop(children);
        if self.is_cancelled() {
            child.cancel();
        }
        child
    }

    /// Ask to stop: this token and every child token.
    pub fn cancel(&self) {
        Inner::cancel(&self.inner);
    }

    /// Whether stopping was asked.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Completes once stopping is asked.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

impl Inner {
    fn cancel(inner: &Arc<Inner>) {
        if inner.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        inner.notify.notify_waiters();
        let children: Vec<Arc<Inner>> = inner
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .live
            .drain(..)
            .filter_map(|c| c.upgrade())
            .collect();
        for child in &children {
            Inner::cancel(child);
        }
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::CancelToken;

    #[tokio::test]
    async fn cancelling_reaches_children_not_parents() {
        let root = CancelToken::new();
        let child = root.child();
        let grandchild = child.child();
        let other = root.child();
        other.cancel();
        assert!(!root.is_cancelled() && !child.is_cancelled());
        let waiting = tokio::spawn({
            let grandchild = grandchild.clone();
            async move { grandchild.cancelled().await }
        });
        root.cancel();
        waiting.await.unwrap();
        assert!(child.is_cancelled() && grandchild.is_cancelled());
        assert!(
            root.child().is_cancelled(),
            "a child of a cancelled token starts cancelled"
        );
    }
}
