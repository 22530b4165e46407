//! The past discussions' embeddings: computed by a one-action application
//! (`past-discussions-<hash>`) whose checkpoint keeps them, so they are embedded once per
//! database and corpus, not once per process.
//!
//! Each past discussion has two vectors: its *document* (meeting header, title, notes),
//! searched by `find_similar`, and its *body* (title and notes only), used by `rerank`.

use std::sync::Arc;

use burr_core::persistence::Persister;
use burr_core::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{body_text, document_text, PastDiscussion};
use crate::model::Embedder;

/// The owner its embeddings are counted under.
pub const PAST_OWNER: &str = "past";

/// A past discussion and its two embeddings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PastEntry {
    /// The discussion.
    pub discussion: PastDiscussion,
    /// Its document embedding (with the meeting header).
    pub document: Vec<f32>,
    /// Its body embedding (without the header).
    pub body: Vec<f32>,
}

/// Every past discussion with its embeddings.
#[derive(Clone, Debug, Default)]
pub struct PastIndex {
    /// The entries, in the corpus's order.
    pub entries: Vec<PastEntry>,
}

impl PastIndex {
    /// The entry of a past discussion.
    pub fn get(&self, id: &str) -> Option<&PastEntry> {
        self.entries.iter().find(|e| e.discussion.id == id)
    }

    /// The index for `past`: loaded from the `past-discussions-<hash>` application in
    /// `persister`, or embedded (then saved there) when it is not stored yet.
    pub async fn load_or_embed(
        past: &[PastDiscussion],
        embedder: &Embedder,
        persister: Arc<dyn Persister>,
    ) -> burr_core::Result<PastIndex> {
        let app_id = app_id(past);
        let default_state = State::new().update_serialized("past", past)?;
        let mut app = ApplicationBuilder::new()
            .with_actions([EmbedPast])
            .with_resource(Arc::new(embedder.clone()))
            .with_app_id(app_id)
            .with_state_persister(Arc::clone(&persister))
            .with_state(default_state)
            .with_entrypoint(EmbedPast)
            .initialize_from(persister)
            .build()
            .await?;
        let outcome = app.run(RunOptions::new().halt_after([EmbedPast])).await?;
        let entries = outcome.state.get("entries")?;
        Ok(PastIndex { entries })
    }
}

/// Embed every past discussion twice: its document and its body. CPU-bound: on the
/// blocking thread pool.
#[action(reads = [past], writes = [entries], blocking)]
pub fn embed_past(state: State, embedder: Res<Embedder>) -> Result<State, ActionError> {
    let past: Vec<PastDiscussion> = state.get("past")?;
    let mut texts = Vec::with_capacity(past.len() * 2);
    for p in &past {
        texts.push(document_text(&p.header(), &p.title, &p.notes));
        texts.push(body_text(&p.title, &p.notes));
    }
    let mut vectors = embedder.embed(PAST_OWNER, &texts)?.into_iter();
    let entries: Vec<PastEntry> = past
        .into_iter()
        .map(|discussion| PastEntry {
            discussion,
            document: vectors.next().unwrap_or_default(),
            body: vectors.next().unwrap_or_default(),
        })
        .collect();
    Ok(state.update_serialized("entries", &entries)?)
}

/// `past-discussions-<hash of the corpus>`: another corpus gets another application, so
/// an edited corpus is embedded again.
pub fn app_id(past: &[PastDiscussion]) -> String {
    let text = serde_json::to_string(past).unwrap_or_default();
    format!("past-discussions-{:016x}", fnv1a(text.as_bytes()))
}

/// FNV-1a, 64 bits: a stable hash (std's `DefaultHasher` may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    #[test]
    fn the_app_id_follows_the_corpus() {
        let past = Dataset::sample().past;
        assert_eq!(app_id(&past), app_id(&past.clone()));
        let mut edited = past.clone();
        edited[3].notes.push('!');
        assert_ne!(app_id(&past), app_id(&edited));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
