//! The meeting application: `voting_ended` → `relate` → `publish`.
//!
//! - `voting_ended` takes the meeting (input `meeting`) and keeps its header and its
//!   discussions, most voted first.
//! - `relate` is a map action ([`MapStates::keyed`]): one child application per
//!   discussion, keyed by the discussion id, running the [`discussion`](crate::discussion)
//!   sub-graph; its reducer gathers each discussion's related past discussions.
//! - `publish` writes the summary the team gets.
//!
//! App id `meeting-<id>`, partition key the team. With a persister, every step of the
//! meeting and of each child is checkpointed, and [`build`] resumes from the last one.

use std::sync::Arc;

use burr_core::action::action_sync;
use burr_core::hooks::LifecycleHook;
use burr_core::parallel::{Executor, MapAction, SubGraph};
use burr_core::persistence::Persister;
use burr_core::{ActionError, Application, ApplicationBuilder, Inputs, State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::Meeting;
use crate::discussion::Related;

/// The entrypoint.
pub const VOTING_ENDED: &str = "voting_ended";
/// The map action.
pub const RELATE: &str = "relate";
/// The last action.
pub const PUBLISH: &str = "publish";

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

/// The meeting application's actions and transitions, to build with a discussion
/// sub-graph.
fn actions(subgraph: SubGraph) -> ApplicationBuilder {
    let voting_ended = action_sync(VOTING_ENDED, |state: State, inputs: &Inputs, _| {
        let value = inputs.get("meeting").cloned().unwrap_or(Value::Null);
        let meeting: Meeting = serde_json::from_value(value)
            .map_err(|e| ActionError::msg(format!("input `meeting` is not a meeting: {e}")))?;
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
        // Most voted first: they are related (and admitted by the executor) first.
        discussions.sort_by_key(|d| std::cmp::Reverse(d.votes));
        Ok::<_, ActionError>(
            state
                .update_serialized("meeting", &info)?
                .update_serialized("discussions", &discussions)?,
        )
    })
    .inputs(["meeting"])
    .writes(["meeting", "discussions"]);

    let relate = MapAction::keyed_states(RELATE, subgraph, |state: &State, _: &Inputs| {
        let meeting: MeetingInfo = state.get("meeting")?;
        let discussions: Vec<DiscussionInfo> = state.get("discussions")?;
        let header = crate::data::meeting_header(&meeting.team, &meeting.title, &meeting.date);
        Ok::<_, ActionError>(
            discussions
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
                .collect(),
        )
    })
    .reduce(|state: State, children: Vec<State>| {
        let mut related = Map::new();
        for child in children {
            let id: String = child.get("discussion_id")?;
            let found: Vec<Related> = child.get("related")?;
            related.insert(id, serde_json::to_value(found).unwrap_or_default());
        }
        Ok::<_, ActionError>(state.update("related", Value::Object(related)))
    })
    .reads(["meeting", "discussions"])
    .writes(["related"]);

    let publish = action_sync(PUBLISH, |state: State, _: &Inputs, _| {
        let meeting: MeetingInfo = state.get("meeting")?;
        let discussions: Vec<DiscussionInfo> = state.get("discussions")?;
        let related: Map<String, Value> = state.get("related")?;
        let summary = summary(&meeting, &discussions, &related)?;
        Ok::<_, ActionError>(state.update("summary", summary))
    })
    .reads(["meeting", "discussions", "related"])
    .writes(["summary"]);

    ApplicationBuilder::new()
        .with_actions([voting_ended, publish])
        .with_actions([relate])
        .with_transitions([(VOTING_ENDED, RELATE), (RELATE, PUBLISH)])
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
}

/// The application of `meeting`, resumed from its last checkpoint if it has one.
pub async fn build(
    meeting: &Meeting,
    subgraph: SubGraph,
    runtime: &Runtime,
    priority: i32,
) -> burr_core::Result<Application> {
    let mut builder = actions(subgraph)
        .with_app_id(app_id(&meeting.id))
        .with_partition_key(&meeting.team)
        .with_state_persister(Arc::clone(&runtime.persister))
        .with_state(State::new())
        .with_entrypoint(VOTING_ENDED)
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
        .run(RunOptions::new().halt_after([PUBLISH]).inputs(inputs))
        .await?
        .state)
}
