//! The meeting application: `voting_ended` → `relate` → `publish`.
//!
//! - `voting_ended` takes the meeting (input `meeting`) and keeps its header and its
//!   discussions, most voted first.
//! - `relate` is a map action (`#[map_states(keyed)]`): one child application per
//!   discussion, keyed by the discussion id, running the [`discussion`](crate::discussion)
//!   sub-graph; its reducer gathers each discussion's related past discussions.
//!
//! Every action is an `#[action]` function; the model, the past discussions and the
//! settings reach the children's actions as resources of the meeting application.
//! - `publish` writes the summary the team gets.
//!
//! App id `meeting-<id>`, partition key the team. With a persister, every step of the
//! meeting and of each child is checkpointed, and [`build`] resumes from the last one.

use std::sync::Arc;

use burr_core::hooks::LifecycleHook;
use burr_core::map_states;
use burr_core::parallel::Executor;
use burr_core::persistence::Persister;
use burr_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::Meeting;
use crate::discussion::{Related, Settings};
use crate::model::Embedder;
use crate::past::PastIndex;

/// The application id of a meeting.
pub fn app_id(meeting_id: &str) -> String {
    format!("meeting-{meeting_id}")
}

/// A meeting's identity, as kept in its state (`meeting`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeetingInfo {
    /// Its id.
    pub id: String,
    /// Its team.
    pub team: String,
    /// Its title.
    pub title: String,
    /// Its date.
    pub date: String,
}

/// A discussion as kept in the meeting's state (`discussions`), most voted first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscussionInfo {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its notes.
    pub notes: String,
    /// Its votes.
    pub votes: u32,
}

/// The meeting's voting ended (input `meeting`): keep its header and its discussions,
/// most voted first (they are related, and admitted by the executor, first).
#[action(writes = [meeting, discussions])]
pub fn voting_ended(state: State, meeting: Meeting) -> Result<State, ActionError> {
    let info = MeetingInfo::from(&meeting);
    let mut discussions: Vec<DiscussionInfo> = meeting
        .discussions
        .into_iter()
        .map(|d| DiscussionInfo {
            id: d.id,
            title: d.title,
            notes: d.notes,
            votes: d.votes,
        })
        .collect();
    discussions.sort_by_key(|d| std::cmp::Reverse(d.votes));
    Ok(state
        .update_serialized("meeting", &info)?
        .update_serialized("discussions", &discussions)?)
}

/// One child application per discussion, keyed by the discussion's id, running the
/// [`discussion`](crate::discussion) sub-graph.
#[map_states(
    subgraph = crate::discussion::subgraph().expect("the discussion sub-graph is valid"),
    keyed,
    reduce = gather_related,
    reads = [meeting, discussions],
    writes = [related]
)]
pub fn relate(state: State) -> Result<Vec<(String, State)>, ActionError> {
    let meeting: MeetingInfo = state.get("meeting")?;
    let discussions: Vec<DiscussionInfo> = state.get("discussions")?;
    let header = crate::data::meeting_header(&meeting.team, &meeting.title, &meeting.date);
    Ok(discussions
        .into_iter()
        .map(|d| {
            let child = State::new()
                .update("meeting_id", meeting.id.as_str())
                .update("discussion_id", d.id.as_str())
                .update("header", header.as_str())
                .update("title", d.title)
                .update("notes", d.notes);
            (d.id, child)
        })
        .collect())
}

/// Each discussion's related past discussions, by discussion id.
fn gather_related(state: State, children: Vec<State>) -> Result<State, ActionError> {
    let mut related = Map::new();
    for child in children {
        let id: String = child.get("discussion_id")?;
        let found: Vec<Related> = child.get("related")?;
        related.insert(id, serde_json::to_value(found)?);
    }
    Ok(state.update("related", Value::Object(related)))
}

/// The summary the team gets.
#[action(reads = [meeting, discussions, related], writes = [summary])]
pub fn publish(state: State) -> Result<State, ActionError> {
    let meeting: MeetingInfo = state.get("meeting")?;
    let discussions: Vec<DiscussionInfo> = state.get("discussions")?;
    let related: Map<String, Value> = state.get("related")?;
    let summary = summary(&meeting, &discussions, &related)?;
    Ok(state.update("summary", summary))
}

impl From<&Meeting> for MeetingInfo {
    fn from(m: &Meeting) -> Self {
        MeetingInfo {
            id: m.id.clone(),
            team: m.team.clone(),
            title: m.title.clone(),
            date: m.date.clone(),
        }
    }
}

/// The text published for a meeting: each discussion, most voted first, with its related
/// past discussions.
fn summary(
    meeting: &MeetingInfo,
    discussions: &[DiscussionInfo],
    related: &Map<String, Value>,
) -> Result<String, ActionError> {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({} team, {}): related past discussions",
        meeting.title, meeting.team, meeting.date
    );
    for d in discussions {
        let found: Vec<Related> = match related.get(&d.id) {
            Some(v) => serde_json::from_value(v.clone())?,
            None => Vec::new(),
        };
        let _ = writeln!(out, "- {} ({} votes)", d.title, d.votes);
        if found.is_empty() {
            let _ = writeln!(out, "    nothing similar before");
        }
        for r in found {
            let _ = writeln!(
                out,
                "    {:.2}  {} ({}, {}, {})",
                r.score, r.title, r.team, r.meeting, r.date
            );
        }
    }
    Ok(out)
}

/// Where and how a meeting application runs.
#[derive(Clone)]
pub struct Runtime {
    /// Checkpoints go here and resume from here.
    pub persister: Arc<dyn Persister>,
    /// The shared executor of child applications.
    pub executor: Executor,
    /// Hooks to add (children get them too).
    pub hooks: Vec<Arc<dyn LifecycleHook>>,
    /// The model, a resource of every discussion's `embed` and `rerank`.
    pub embedder: Arc<Embedder>,
    /// The past discussions, a resource of `find_similar` and `rerank`.
    pub past: Arc<PastIndex>,
    /// How candidates are found and kept, a resource of the discussions' actions.
    pub settings: Arc<Settings>,
}

/// The application of `meeting`, resumed from its last checkpoint if it has one.
pub async fn build(
    meeting: &Meeting,
    runtime: &Runtime,
    priority: i32,
) -> burr_core::Result<Application> {
    let mut builder = ApplicationBuilder::new()
        .with_actions([VotingEnded, Relate, Publish])
        .with_transitions([(VotingEnded, Relate), (Relate, Publish)])
        .with_resource(Arc::clone(&runtime.embedder))
        .with_resource(Arc::clone(&runtime.past))
        .with_resource(Arc::clone(&runtime.settings))
        .with_app_id(app_id(&meeting.id))
        .with_partition_key(&meeting.team)
        .with_state_persister(Arc::clone(&runtime.persister))
        .with_state(State::new())
        .with_entrypoint(VotingEnded)
        .initialize_from(Arc::clone(&runtime.persister))
        .with_executor(runtime.executor.clone())
        .with_priority(priority);
    for hook in &runtime.hooks {
        builder = builder.with_hook(Arc::clone(hook));
    }
    builder.build().await
}

/// Run a built meeting application to the end; its final state.
pub async fn run(app: &mut Application, meeting: &Meeting) -> burr_core::Result<State> {
    let meeting = serde_json::to_value(meeting).unwrap_or_default();
    let inputs = inputs! { "meeting": meeting };
    Ok(app
        .run(RunOptions::new().halt_after([Publish]).inputs(inputs))
        .await?
        .state)
}
