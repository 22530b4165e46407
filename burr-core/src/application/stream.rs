//! [`Application::stream_result`]: run to a streaming action and stream its output.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use super::execute::{action_failed, check_writes, read_view, resolve_inputs};
use super::halt::HaltSet;
use super::{Application, RunOptions};
use crate::actions::{ActionError, ActionResult, Inputs};
use crate::error::{Error, Result};
use crate::hooks::{StepStart, StreamEnd, StreamItem, StreamStart};
use crate::persistence::StepStatus;
use crate::state::{State, StateDelta};

/// An item of an [`ActionStream`].
#[derive(Clone, Debug)]
pub enum StreamEvent {
    /// An intermediate result yielded by the streaming action.
    Item(ActionResult),
    /// The end: the final result (none when halted before an action, or when the graph
    /// ended first) and the committed state.
    Final {
        /// The final result.
        result: Option<ActionResult>,
        /// The state after the step.
        state: State,
    },
}

/// The output of [`Application::stream_result`]: intermediate items, then one
/// [`StreamEvent::Final`]. The step is committed (state and checkpoint) only when the final
/// item is produced; dropping the stream before that records the step as failed
/// ([`Error::StreamDropped`]) and leaves the state unchanged. Hooks fire exactly once
/// either way.
pub struct ActionStream<'a> {
    action: Option<String>,
    inner: BoxStream<'a, Result<StreamEvent>>,
}

impl ActionStream<'_> {
    /// The action streamed (or halted before); `None` when the graph had ended.
    pub fn action(&self) -> Option<&str> {
        self.action.as_deref()
    }
}

impl Stream for ActionStream<'_> {
    type Item = Result<StreamEvent>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// The state of a streaming step while it is consumed; records the step as dropped if it
/// is dropped before the end.
struct Streaming<'a> {
    app: &'a mut Application,
    index: usize,
    inputs: Inputs,
    started_at: SystemTime,
    items: BoxStream<'static, std::result::Result<ActionResult, ActionError>>,
    last: Option<ActionResult>,
    count: usize,
    done: bool,
}

impl Application {
    /// Run until the next action is one of `halt_after` and stream that action's output
    /// (Burr's `stream_result`). Actions before it run as ordinary steps; a non-streaming
    /// halt action yields just its final item. Halting before one of `halt_before` (after
    /// at least one step) or reaching the end of the graph yields a final item with no
    /// result.
    pub async fn stream_result(&mut self, options: RunOptions) -> Result<ActionStream<'_>> {
        let RunOptions {
            halt_before,
            halt_after,
            inputs,
        } = options;
        self.call_start("stream_result", &inputs);
        let plan = match self.run_to_stream(&halt_after, &halt_before, inputs).await {
            Ok(plan) => plan,
            Err(error) => {
                self.call_end("stream_result", Some(&error));
                return Err(error);
            }
        };
        let (index, inputs) = match plan {
            Plan::Ready { action, result } => {
                self.call_end("stream_result", None);
                return Ok(self.ready(action, result));
            }
            Plan::Stream { index, inputs } => (index, inputs),
        };
        let action = Arc::clone(self.graph.action(index));
        let started_at = self.begin_step(index, &inputs, std::time::Duration::ZERO);
        for hook in self.hooks() {
            hook.stream_start(&StreamStart {
                ids: &self.ctx.ids,
                sequence_id: self.ctx.sequence_id,
                action: action.name(),
            });
        }
        let items = action.stream_run(
            read_view(self.graph.keys(index), &self.state),
            inputs.clone(),
            self.ctx.clone(),
        );
        let streaming = Streaming {
            app: self,
            index,
            inputs,
            started_at,
            items,
            last: None,
            count: 0,
            done: false,
        };
        let inner = futures::stream::unfold(Some(streaming), |streaming| async move {
            let mut s = streaming?;
            let event = s.next_event().await;
            let more = matches!(event, Ok(StreamEvent::Item(_)));
            Some((event, more.then_some(s)))
        });
        Ok(ActionStream {
            action: Some(action.name().to_owned()),
            inner: Box::pin(inner),
        })
    }

    /// Run the steps before the streamed action; say what to stream.
    async fn run_to_stream(
        &mut self,
        halt_after: &[String],
        halt_before: &[String],
        inputs: Inputs,
    ) -> Result<Plan> {
        let halts = HaltSet::new(&self.graph, halt_before, halt_after)?;
        let mut ran = false;
        let mut last_result = None;
        loop {
            match self.next_index()? {
                None => {
                    return Ok(Plan::Ready {
                        action: self.prior_action().map(str::to_owned),
                        result: last_result,
                    })
                }
                Some(next) if halts.after(next) => {
                    let action = Arc::clone(self.graph.action(next));
                    if action.streaming() {
                        let inputs = resolve_inputs(&*action, &inputs)?.into_owned();
                        return Ok(Plan::Stream {
                            index: next,
                            inputs,
                        });
                    }
                    let step = self.step_inner(&inputs).await?;
                    return Ok(Plan::Ready {
                        action: Some(action.name().to_owned()),
                        result: step.map(|s| s.result),
                    });
                }
                Some(next) if ran && halts.before(next) => {
                    return Ok(Plan::Ready {
                        action: Some(self.names[next].to_string()),
                        result: None,
                    })
                }
                Some(_) => {
                    last_result = self.step_inner(&inputs).await?.map(|s| s.result);
                    ran = true;
                }
            }
        }
    }

    /// A stream of just one final item.
    fn ready(&mut self, action: Option<String>, result: Option<ActionResult>) -> ActionStream<'_> {
        let event = StreamEvent::Final {
            result,
            state: self.state.clone(),
        };
        ActionStream {
            action,
            inner: Box::pin(futures::stream::iter([Ok(event)])),
        }
    }

    /// Number a step and fire `pre_run_step`; returns its start time.
    pub(super) fn begin_step(
        &mut self,
        index: usize,
        inputs: &Inputs,
        waited: std::time::Duration,
    ) -> SystemTime {
        let (sequence_id, attempt) = self.numbering();
        self.ctx.sequence_id = sequence_id;
        self.ctx.attempt = attempt;
        if !Arc::ptr_eq(&self.ctx.action, &self.names[index]) {
            self.ctx.action = Arc::clone(&self.names[index]);
        }
        self.ctx.shared.spans.reset();
        // Only hooks see the time (no clock read without them).
        let started_at = if self.hooks.is_empty() {
            SystemTime::UNIX_EPOCH
        } else {
            SystemTime::now()
        };
        self.in_flight = true;
        for hook in self.hooks() {
            hook.pre_run_step(&StepStart {
                ids: &self.ctx.ids,
                sequence_id,
                attempt,
                action: &self.names[index],
                inputs,
                state: &self.state,
                started_at,
                waited,
            });
        }
        started_at
    }
}

/// What `stream_result` does once the steps before the streamed action have run.
enum Plan {
    Ready {
        action: Option<String>,
        result: Option<ActionResult>,
    },
    Stream {
        index: usize,
        inputs: Inputs,
    },
}

impl Streaming<'_> {
    /// The next event: an item, or — at the end of the action's stream — the committed
    /// final event (or the step's error).
    async fn next_event(&mut self) -> Result<StreamEvent> {
        let action = Arc::clone(self.app.graph.action(self.index));
        match self.items.next().await {
            Some(Ok(item)) => {
                for hook in self.app.hooks() {
                    hook.stream_item(&StreamItem {
                        ids: &self.app.ctx.ids,
                        sequence_id: self.app.ctx.sequence_id,
                        action: action.name(),
                        index: self.count,
                        item: &item,
                    });
                }
                self.count += 1;
                self.last = Some(item.clone());
                Ok(StreamEvent::Item(item))
            }
            Some(Err(error)) => self.finish(Err(action_failed(&*action, error))).await,
            None => {
                let result = self.last.take().unwrap_or_default();
                let state = &self.app.state;
                let executed = action
                    .update(&result, state.clone())
                    .map_err(|e| action_failed(&*action, e))
                    .and_then(|new_state| {
                        let delta = new_state.delta_from(state);
                        check_writes(&*action, state, new_state, delta)
                    })
                    .map(|(new_state, delta)| (result, new_state, delta));
                self.finish(executed).await
            }
        }
    }

    async fn finish(
        &mut self,
        executed: Result<(ActionResult, State, StateDelta)>,
    ) -> Result<StreamEvent> {
        self.done = true;
        self.end_stream(false);
        let outcome = self
            .app
            .finish_step(self.index, &self.inputs, self.started_at, executed)
            .await;
        self.app.call_end("stream_result", outcome.as_ref().err());
        let step = outcome?;
        Ok(StreamEvent::Final {
            result: step.map(|s| s.result),
            state: self.app.state.clone(),
        })
    }

    fn end_stream(&self, dropped: bool) {
        for hook in self.app.hooks() {
            hook.stream_end(&StreamEnd {
                ids: &self.app.ctx.ids,
                sequence_id: self.app.ctx.sequence_id,
                action: &self.app.names[self.index],
                items: self.count,
                dropped,
            });
        }
    }
}

impl Drop for Streaming<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.end_stream(true);
        let app = &mut *self.app;
        let error = Error::StreamDropped {
            action: app.names[self.index].to_string(),
        };
        // Drop cannot await: the checkpoint is saved by a task of its own.
        if let (Some(saver), Ok(runtime)) = (&app.saver, tokio::runtime::Handle::try_current()) {
            let checkpoint = app.unfinished_checkpoint(self.index, StepStatus::Failed, &error);
            let saver = Arc::clone(saver);
            runtime.spawn(async move {
                if let Err(error) = saver.save(&checkpoint).await {
                    tracing::error!(app_id = %checkpoint.app_id, %error, "could not checkpoint a dropped stream");
                }
            });
        }
        app.mark_unfinished(self.index);
        app.step_ended(
            self.index,
            &self.inputs,
            StepStatus::Failed,
            None,
            Some(&error),
            &StateDelta::default(),
            self.started_at,
        );
        app.call_end("stream_result", Some(&error));
    }
}
