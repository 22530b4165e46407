//! The second stage: a [`Reranker`] scores the candidates the first stage found.
//!
//! The default, [`Reembed`], is the motivating case's re-scoring: the discussion and each
//! candidate are embedded again *without* the meeting header (the header pulls toward the
//! same team and the same kind of meeting, not the same problem) and scored by the cosine
//! of those vectors. Every text goes through the [`EmbeddingStore`], so a candidate's body
//! is embedded once, however many discussions find it. A cross-encoder, where one is
//! available offline, implements the same trait.

use burr_core::actions::async_trait;

use crate::data::body_text;
use crate::index::{dot, Entry};
use crate::store::{EmbeddingStore, StoreError};

/// The discussion being related.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// Its meeting header.
    pub header: &'a str,
    /// Its title.
    pub title: &'a str,
    /// Its notes.
    pub notes: &'a str,
    /// Its meeting's priority (higher first), for what must be computed.
    pub priority: i32,
}

/// Why a rerank failed.
#[derive(Debug, thiserror::Error)]
pub enum RerankError {
    /// A text could not be embedded or loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another reason (a cross-encoder's own error).
    #[error("{0}")]
    Other(String),
}

/// Scores candidates for a discussion. Async: a reranker that computes on the CPU (a
/// cross-encoder) runs its work on a blocking thread (`tokio::task::spawn_blocking`) or
/// through a batcher, never on the async threads.
#[async_trait]
pub trait Reranker: Send + Sync {
    /// What it is and how it is set up: part of a meeting's fingerprint, so another
    /// reranker relates again instead of reusing stored results.
    fn name(&self) -> String;

    /// A score per candidate, in their order: higher is more related.
    async fn score(
        &self,
        query: &Query<'_>,
        candidates: &[&Entry],
    ) -> Result<Vec<f32>, RerankError>;
}

/// The default: re-embed without the meeting header, score by cosine.
pub struct Reembed {
    store: EmbeddingStore,
}

impl Reembed {
    /// Embedding through `store`.
    pub fn new(store: EmbeddingStore) -> Reembed {
        Reembed { store }
    }
}

#[async_trait]
impl Reranker for Reembed {
    fn name(&self) -> String {
        "reembed-without-header".to_owned()
    }

    async fn score(
        &self,
        query: &Query<'_>,
        candidates: &[&Entry],
    ) -> Result<Vec<f32>, RerankError> {
        let mut texts = Vec::with_capacity(candidates.len() + 1);
        texts.push(body_text(query.title, query.notes));
        texts.extend(candidates.iter().map(|c| body_text(&c.title, &c.notes)));
        let found = self
            .store
            .get_many_at(&texts, false, query.priority)
            .await?;
        let (query, bodies) = found.vectors.split_first().expect("one text at least");
        Ok(bodies.iter().map(|b| dot(query, b)).collect())
    }
}

/// The reranker as a resource of the actions (`Res<Reranking>`).
pub struct Reranking(pub Box<dyn Reranker>);
