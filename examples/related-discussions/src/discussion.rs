//! What the child applications do, one per discussion, in two map actions of the meeting:
//!
//! - `embed_discussions`: a child running `embed`, which gets the discussion's document
//!   (meeting header, title, notes) embedded through the [`EmbeddingStore`]: found stored,
//!   waited for if another child is embedding the same text, or batched with the other
//!   children's texts by the shared batcher. Its state records how many texts it had
//!   embedded and how many it found.
//! - `relate`: a child running `find_similar` → `rerank`. `find_similar` scans the
//!   meeting's past (its [`Past`]: rows of the [`PastIndex`]) for the best `candidates` by the dot
//!   product of the documents; `rerank` scores them with the [`Reranker`](crate::rerank)
//!   and keeps the `top_k` at or above `min_score`.
//!
//! Every step is checkpointed: a child that finished is not run again on resume, and the
//! vectors are in the store, not in the checkpoints.

use std::time::Duration;

use burr_core::graph::GraphBuilder;
use burr_core::parallel::SubGraph;
use burr_core::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::document_text;
use crate::index::{Past, PastIndex};
use crate::rerank::{Query, Reranking};
use crate::store::EmbeddingStore;

/// How candidates are found and kept.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Candidates `find_similar` passes to `rerank`.
    pub candidates: usize,
    /// Related discussions kept per discussion.
    pub top_k: usize,
    /// The lowest rerank score kept.
    pub min_score: f32,
    /// A pause after each `embed` and each `rerank` (0 normally): to watch a run, or to
    /// interrupt one part-way.
    pub pause: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            candidates: 32,
            top_k: 3,
            min_score: 0.2,
            pause: Duration::ZERO,
        }
    }
}

impl Settings {
    /// What of the settings changes results: part of a meeting's fingerprint.
    pub fn fingerprint(&self) -> String {
        format!(
            "candidates={};top_k={};min_score={}",
            self.candidates, self.top_k, self.min_score
        )
    }
}

/// The meeting's priority, a resource of its application (and so of its children): what
/// its actions must embed is queued at it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Urgency(pub i32);

/// Re-embed even what is stored (a resource; `false` unless a service run's inputs say
/// `"force": true`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Force(pub bool);

/// A past discussion `find_similar` found, with its first-stage score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The past discussion.
    pub id: String,
    /// Its row in the index.
    pub row: usize,
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
    /// The rerank score.
    pub score: f32,
    /// The first-stage score: the cosine of the documents.
    pub retrieval: f32,
}

/// Get the discussion's document embedded (or found) through the store.
#[action(reads = [header, title, notes], writes = [embedded, reused])]
pub async fn embed(
    state: State,
    store: Res<EmbeddingStore>,
    settings: Res<Settings>,
    urgency: Res<Urgency>,
    force: Res<Force>,
) -> Result<State, ActionError> {
    let text = document_text(
        &state.get::<String>("header")?,
        &state.get::<String>("title")?,
        &state.get::<String>("notes")?,
    );
    let found = if force.0 {
        store.refresh_many_at(&[text], urgency.0).await?
    } else {
        store.get_many_at(&[text], true, urgency.0).await?
    };
    if !settings.pause.is_zero() {
        tokio::time::sleep(settings.pause).await;
    }
    Ok(state
        .update("embedded", found.embedded)
        .update("reused", found.reused))
}

/// The best `candidates` of the meeting's past ([`Past`]: rows of the index) by the dot
/// product of the documents.
#[action(reads = [header, title, notes, past], writes = [candidates])]
pub async fn find_similar(
    state: State,
    store: Res<EmbeddingStore>,
    index: Res<PastIndex>,
    settings: Res<Settings>,
    urgency: Res<Urgency>,
) -> Result<State, ActionError> {
    let text = document_text(
        &state.get::<String>("header")?,
        &state.get::<String>("title")?,
        &state.get::<String>("notes")?,
    );
    let past: Past = state.get("past")?;
    let timeline = index.timeline();
    let ranges = timeline.ranges(&past)?;
    // Filled by the meeting's `index_past`, unless this process resumed the meeting
    // after that step: then here (from the store; nothing is embedded again).
    index.fill(timeline.end(&past)?, &store, urgency.0).await?;
    let found = store.get_many_at(&[text], false, urgency.0).await?;
    let query = std::sync::Arc::clone(&found.vectors[0]);
    let k = settings.candidates;
    // The scan is CPU work (milliseconds for a large past): on a blocking thread.
    let scan = std::sync::Arc::clone(index.arc());
    let best = tokio::task::spawn_blocking(move || scan.search(&query, &ranges, k))
        .await
        .map_err(|e| ActionError::msg(format!("the search panicked: {e}")))?;
    let entries = &timeline.entries;
    let candidates: Vec<Candidate> = best
        .into_iter()
        .map(|(row, retrieval)| Candidate {
            id: entries[row].id.clone(),
            row,
            retrieval,
        })
        .collect();
    Ok(state.update_serialized("candidates", &candidates)?)
}

/// Score the candidates with the reranker; keep the `top_k` at or above `min_score`.
#[action(reads = [header, title, notes, candidates], writes = [related])]
pub async fn rerank(
    state: State,
    reranker: Res<Reranking>,
    index: Res<PastIndex>,
    settings: Res<Settings>,
    urgency: Res<Urgency>,
) -> Result<State, ActionError> {
    let (header, title, notes): (String, String, String) = (
        state.get("header")?,
        state.get("title")?,
        state.get("notes")?,
    );
    let candidates: Vec<Candidate> = state.get("candidates")?;
    let timeline = index.timeline();
    let entries = &timeline.entries;
    let found: Vec<_> = candidates
        .iter()
        .filter_map(|c| entries.get(c.row).map(|e| (c, e)))
        .collect();
    let query = Query {
        header: &header,
        title: &title,
        notes: &notes,
        priority: urgency.0,
    };
    let refs: Vec<_> = found.iter().map(|(_, e)| *e).collect();
    let scores = reranker.0.score(&query, &refs).await?;
    if !settings.pause.is_zero() {
        tokio::time::sleep(settings.pause).await;
    }
    let mut related: Vec<Related> = found
        .iter()
        .zip(scores)
        .map(|((c, d), score)| Related {
            id: d.id.clone(),
            title: d.title.clone(),
            team: d.team.clone(),
            meeting: d.meeting.clone(),
            date: d.date.clone(),
            score,
            retrieval: c.retrieval,
        })
        .filter(|r| r.score >= settings.min_score)
        .collect();
    related.sort_by(|a, b| b.score.total_cmp(&a.score));
    related.truncate(settings.top_k);
    Ok(state.update_serialized("related", &related)?)
}

/// The child of `embed_discussions`: `embed` alone. Its starting state: `meeting_id`,
/// `discussion_id`, `header`, `title`, `notes`.
pub fn embed_subgraph() -> Result<SubGraph, burr_core::graph::GraphError> {
    let graph = GraphBuilder::new().with_actions([Embed]).build()?;
    SubGraph::graph(graph, Embed, [Embed])
}

/// The child of `relate`: `find_similar` → `rerank`. Its starting state adds `past` (the
/// meeting's [`Past`]); its final state adds `candidates` and
/// `related`.
pub fn relate_subgraph() -> Result<SubGraph, burr_core::graph::GraphError> {
    let graph = GraphBuilder::new()
        .with_actions([FindSimilar, Rerank])
        .with_transitions([(FindSimilar, Rerank)])
        .build()?;
    SubGraph::graph(graph, FindSimilar, [Rerank])
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sub_graphs_are_valid() {
        assert_eq!(super::embed_subgraph().unwrap().entrypoint(), "embed");
        assert_eq!(
            super::relate_subgraph().unwrap().entrypoint(),
            "find_similar"
        );
    }
}
