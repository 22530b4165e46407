//! The meeting application: `voting_ended` → `embed_discussions` → `index_past` →
//! `relate` → `publish`.
//!
//! - `voting_ended` takes the meeting (input `meeting`) and keeps its header and its
//!   discussions, most voted first.
//! - `embed_discussions` is a map action (`#[map_states(keyed)]`): one child per
//!   discussion, keyed by the discussion id, getting its document embedded through the
//!   shared store and batcher (so the children of every running meeting share model
//!   batches); its reducer adds up what they embedded and reused.
//! - `index_past` makes sure the meeting's past (the discussions of the meetings before
//!   it) is in the index, embedding only what the store does not hold.
//! - `relate` is a map action: one child per discussion running `find_similar` →
//!   `rerank`; its reducer gathers each discussion's related past discussions.
//! - `publish` writes the summary the team gets.
//!
//! Every action is an `#[action]` function; the store, the index, the reranker and the
//! settings reach the actions as resources of the meeting application.
//!
//! App id `meeting-<id>-<fingerprint>`, partition key the team. The fingerprint covers
//! everything that changes the meeting's results (the settings, the reranker, the model
//! and its version, the meeting's discussions and its past), so a run with another
//! `--top-k` relates again (reusing every stored vector) instead of returning what an
//! earlier run published. With a persister, every step of the meeting and of each child
//! is checkpointed, and [`build`] resumes from the last one.

use std::sync::Arc;

use burr_core::actions::Action;
use burr_core::hooks::LifecycleHook;
use burr_core::map_states;
use burr_core::parallel::Executor;
use burr_core::persistence::Persister;
use burr_core::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::Meeting;
use crate::discussion::{Related, Settings, Urgency};
use crate::index::{Past, PastIndex};
use crate::rerank::Reranking;
use crate::store::EmbeddingStore;

/// The application id of a meeting whose results depend on `fingerprint`.
pub fn app_id(meeting_id: &str, fingerprint: &str) -> String {
    format!("{APP_ID_PREFIX}{meeting_id}-{fingerprint}")
}

/// The start of every meeting application's id in the one-shot mode.
pub const APP_ID_PREFIX: &str = "meeting-";

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

/// One child per discussion, keyed by the discussion's id, getting its document embedded.
#[map_states(
    subgraph = crate::discussion::embed_subgraph().expect("the embed sub-graph is valid"),
    keyed,
    reduce = add_counts,
    reads = [meeting, discussions],
    writes = [embedded, reused]
)]
pub fn embed_discussions(state: State) -> Result<Vec<(String, State)>, ActionError> {
    children(&state, None)
}

/// What the children embedded and found stored.
fn add_counts(state: State, children: Vec<State>) -> Result<State, ActionError> {
    let (mut embedded, mut reused) = (0usize, 0usize);
    for child in children {
        embedded += child.get::<usize>("embedded")?;
        reused += child.get::<usize>("reused")?;
    }
    Ok(state.update("embedded", embedded).update("reused", reused))
}

/// The meeting's past ([`Past`]: the discussions before it) is in the index: filled from
/// the store, embedding only what it does not hold.
#[action(reads = [meeting], writes = [past])]
pub async fn index_past(
    state: State,
    index: Res<PastIndex>,
    store: Res<EmbeddingStore>,
    urgency: Res<Urgency>,
) -> Result<State, ActionError> {
    let meeting: MeetingInfo = state.get("meeting")?;
    let timeline = index.timeline();
    let past = timeline.past_of(&meeting.id);
    index.fill(timeline.end(&past)?, &store, urgency.0).await?;
    Ok(state.update_serialized("past", &past)?)
}

/// One child per discussion, keyed by the discussion's id, running `find_similar` →
/// `rerank` over the meeting's past.
#[map_states(
    subgraph = crate::discussion::relate_subgraph().expect("the relate sub-graph is valid"),
    keyed,
    reduce = gather_related,
    reads = [meeting, discussions, past],
    writes = [related]
)]
pub fn relate(state: State) -> Result<Vec<(String, State)>, ActionError> {
    let past: Past = state.get("past")?;
    children(&state, Some(&past))
}

/// A child's starting state per discussion, most voted first.
fn children(state: &State, past: Option<&Past>) -> Result<Vec<(String, State)>, ActionError> {
    let meeting: MeetingInfo = state.get("meeting")?;
    let discussions: Vec<DiscussionInfo> = state.get("discussions")?;
    let header = crate::data::meeting_header(&meeting.team, &meeting.title, &meeting.date);
    discussions
        .into_iter()
        .map(|d| {
            let mut child = State::new()
                .update("meeting_id", meeting.id.as_str())
                .update("discussion_id", d.id.as_str())
                .update("header", header.as_str())
                .update("title", d.title)
                .update("notes", d.notes);
            if let Some(past) = past {
                child = child.update_serialized("past", past)?;
            }
            Ok((d.id, child))
        })
        .collect()
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
    /// Records every step (times, children) beside the checkpoints.
    pub tracker: Option<Arc<dyn LifecycleHook>>,
    /// The embedding store (and its batcher).
    pub store: Arc<EmbeddingStore>,
    /// The past discussions, searchable.
    pub index: Arc<PastIndex>,
    /// The second stage.
    pub reranker: Arc<Reranking>,
    /// How candidates are found and kept, a resource of the discussions' actions.
    pub settings: Arc<Settings>,
}

/// A meeting's graph on `builder`: `voting_ended` (the meeting given as its input, or
/// bound), then embed, index the past, relate, publish. The one-shot mode and the
/// service's `meeting` kind run the same graph, so one `check` judges both.
pub fn graph(builder: ApplicationBuilder, voting_ended: Arc<dyn Action>) -> ApplicationBuilder {
    builder
        .with_actions([
            voting_ended,
            Arc::new(EmbedDiscussions),
            Arc::new(IndexPast),
            Arc::new(Relate),
            Arc::new(Publish),
        ])
        .with_transitions([
            (VotingEnded.name(), EmbedDiscussions.name()),
            (EmbedDiscussions.name(), IndexPast.name()),
            (IndexPast.name(), Relate.name()),
            (Relate.name(), Publish.name()),
        ])
        .with_entrypoint(VotingEnded)
}

/// The application of `meeting`, resumed from its last checkpoint if it has one.
pub async fn build(
    meeting: &Meeting,
    app_id: &str,
    runtime: &Runtime,
    priority: i32,
) -> burr_core::Result<Application> {
    let mut builder = graph(ApplicationBuilder::new(), Arc::new(VotingEnded))
        .with_resource(Arc::clone(&runtime.store))
        .with_resource(Arc::clone(&runtime.index))
        .with_resource(Arc::clone(&runtime.reranker))
        .with_resource(Arc::clone(&runtime.settings))
        .with_resource(Arc::new(Urgency(priority)))
        .with_resource(Arc::new(crate::discussion::Force(false)))
        .with_app_id(app_id)
        .with_partition_key(&meeting.team)
        .with_state_persister(Arc::clone(&runtime.persister))
        .with_state(State::new())
        .initialize_from(Arc::clone(&runtime.persister))
        .with_executor(runtime.executor.clone())
        .with_priority(priority);
    for hook in &runtime.hooks {
        builder = builder.with_hook(Arc::clone(hook));
    }
    if let Some(tracker) = &runtime.tracker {
        builder = builder.with_tracker(Arc::clone(tracker));
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
