//! What one child application does for one discussion: `embed` → `find_similar` →
//! `rerank`, halting after `rerank`.
//!
//! - `embed` embeds the discussion's document (meeting header, title, notes). It is
//!   CPU-bound, so it runs on the blocking thread pool (`#[action(blocking)]`).
//! - `find_similar` ranks every past discussion by the cosine of the documents and keeps
//!   the best `candidates`.
//! - `rerank` re-embeds the discussion *without* the meeting header (the header pulls
//!   toward the same team and the same kind of meeting, not the same problem) and scores
//!   each candidate by the cosine of the bodies; it keeps the `top_k` at or above
//!   `min_score`. There are no cross-encoder weights to fetch offline, so this
//!   second representation stands in for a cross-encoder.
//!
//! Every step is checkpointed: a child that crashed after `embed` resumes at
//! `find_similar` with its embedding, and a finished child is never run again.

use std::time::Duration;

use burr_core::graph::GraphBuilder;
use burr_core::parallel::SubGraph;
use burr_core::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{body_text, document_text};
use crate::model::{cosine, Embedder};
use crate::past::PastIndex;

/// How candidates are found and kept.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Candidates `find_similar` passes to `rerank`.
    pub candidates: usize,
    /// Related discussions kept per discussion.
    pub top_k: usize,
    /// The lowest rerank score kept.
    pub min_score: f32,
    /// A pause after each embedding of a discussion (0 normally): to watch a run, or to
    /// interrupt one part-way.
    pub pause: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            candidates: 8,
            top_k: 3,
            min_score: 0.3,
            pause: Duration::ZERO,
        }
    }
}

/// A past discussion `find_similar` found, with its first-stage score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The past discussion.
    pub id: String,
    /// The cosine of the documents.
    pub retrieval: f32,
}

/// A related past discussion, as published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Related {
    /// The past discussion.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The team whose meeting it was.
    pub team: String,
    /// That meeting.
    pub meeting: String,
    /// That meeting's date.
    pub date: String,
    /// The rerank score: the cosine of the bodies.
    pub score: f32,
    /// The first-stage score: the cosine of the documents.
    pub retrieval: f32,
}

/// Embed the discussion's document (meeting header, title, notes). CPU-bound: it runs
/// on the blocking thread pool.
#[action(reads = [meeting_id, discussion_id, header, title, notes], writes = [embedding], blocking)]
pub fn embed(
    state: State,
    embedder: Res<Embedder>,
    settings: Res<Settings>,
) -> Result<State, ActionError> {
    let header: String = state.get("header")?;
    let title: String = state.get("title")?;
    let notes: String = state.get("notes")?;
    let text = document_text(&header, &title, &notes);
    let vector = embed_one(&embedder, &owner(&state)?, text, settings.pause)?;
    Ok(state.update_serialized("embedding", &vector)?)
}

/// Rank every past discussion by the cosine of the documents; keep the best `candidates`.
#[action(reads = [embedding], writes = [candidates])]
pub fn find_similar(
    state: State,
    past: Res<PastIndex>,
    settings: Res<Settings>,
) -> Result<State, ActionError> {
    let embedding: Vec<f32> = state.get("embedding")?;
    let mut candidates: Vec<Candidate> = past
        .entries
        .iter()
        .map(|e| Candidate {
            id: e.discussion.id.clone(),
            retrieval: cosine(&embedding, &e.document),
        })
        .collect();
    candidates.sort_by(|a, b| b.retrieval.total_cmp(&a.retrieval));
    candidates.truncate(settings.candidates);
    Ok(state.update_serialized("candidates", &candidates)?)
}

/// Re-embed the discussion without the meeting header and score each candidate by the
/// cosine of the bodies; keep the `top_k` at or above `min_score`.
#[action(reads = [meeting_id, discussion_id, title, notes, candidates], writes = [related], blocking)]
pub fn rerank(
    state: State,
    embedder: Res<Embedder>,
    past: Res<PastIndex>,
    settings: Res<Settings>,
) -> Result<State, ActionError> {
    let title: String = state.get("title")?;
    let notes: String = state.get("notes")?;
    let candidates: Vec<Candidate> = state.get("candidates")?;
    let body = embed_one(
        &embedder,
        &owner(&state)?,
        body_text(&title, &notes),
        settings.pause,
    )?;
    let mut related: Vec<Related> = candidates
        .iter()
        .filter_map(|c| {
            let entry = past.get(&c.id)?;
            let d = &entry.discussion;
            Some(Related {
                id: d.id.clone(),
                title: d.title.clone(),
                team: d.team.clone(),
                meeting: d.meeting.clone(),
                date: d.date.clone(),
                score: cosine(&body, &entry.body),
                retrieval: c.retrieval,
            })
        })
        .filter(|r| r.score >= settings.min_score)
        .collect();
    related.sort_by(|a, b| b.score.total_cmp(&a.score));
    related.truncate(settings.top_k);
    Ok(state.update_serialized("related", &related)?)
}

/// The child's sub-graph: `embed` → `find_similar` → `rerank`. Its starting state:
/// `meeting_id`, `discussion_id`, `header`, `title`, `notes`; its final state adds
/// `embedding`, `candidates` and `related`. Its actions take the [`Embedder`], the
/// [`PastIndex`] and the [`Settings`] as resources of the meeting application.
pub fn subgraph() -> Result<SubGraph, burr_core::graph::GraphError> {
    let graph = GraphBuilder::new()
        .with_actions([Embed, FindSimilar, Rerank])
        .with_transitions([(Embed, FindSimilar), (FindSimilar, Rerank)])
        .build()?;
    SubGraph::graph(graph, Embed, [Rerank])
}

/// Who an embedding is counted for: `<meeting id>/<discussion id>`.
fn owner(state: &State) -> Result<String, burr_core::state::StateError> {
    let meeting: String = state.get("meeting_id")?;
    let discussion: String = state.get("discussion_id")?;
    Ok(format!("{meeting}/{discussion}"))
}

fn embed_one(
    embedder: &Embedder,
    owner: &str,
    text: String,
    pause: Duration,
) -> Result<Vec<f32>, ActionError> {
    let vector = embedder
        .embed(owner, &[text])?
        .pop()
        .ok_or_else(|| ActionError::msg("the model returned no embedding"))?;
    if !pause.is_zero() {
        std::thread::sleep(pause);
    }
    Ok(vector)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sub_graph_is_valid() {
        let subgraph = super::subgraph().expect("a valid graph");
        assert_eq!(subgraph.entrypoint(), "embed");
    }
}
