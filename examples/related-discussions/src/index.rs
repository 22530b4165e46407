//! The past discussions, searchable: the timeline of every discussion (the explicit past
//! ones first, then each meeting's in meeting order), and their document vectors in one
//! contiguous `Vec<f32>`, row after row. A meeting's past is a prefix of the timeline (the
//! discussions of the meetings before it), so its search is a scan of the first rows: a
//! dot product per row (the vectors are L2-normalised, so it is the cosine) and a top-k
//! heap.
//!
//! The vectors come from the [`EmbeddingStore`]: a restart loads them from the database
//! by text key instead of embedding the texts again, and a discussion added to the past
//! embeds only its own text.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, RwLock};

use crate::data::{document_text, meeting_header, Dataset, Meeting};
use crate::model::DIMENSIONS;
use crate::store::{EmbeddingStore, StoreError};

/// One past discussion, as searched and published.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Its id: the past discussion's id, or `<meeting id>/<discussion id>`.
    pub id: String,
    /// The team whose meeting it was.
    pub team: String,
    /// That meeting's title.
    pub meeting: String,
    /// That meeting's date.
    pub date: String,
    /// Its title.
    pub title: String,
    /// What was said.
    pub notes: String,
    /// Its theme label, for evaluation only (never used to rank).
    pub theme: Option<String>,
}

impl Entry {
    /// The text searched: meeting header, title and notes.
    pub fn document(&self) -> String {
        document_text(
            &meeting_header(&self.team, &self.meeting, &self.date),
            &self.title,
            &self.notes,
        )
    }
}

/// Every discussion of a dataset in time order, and each meeting's place in it.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// The entries: the explicit past discussions, then each meeting's discussions.
    pub entries: Vec<Entry>,
    /// A meeting's first row: its past is every row before.
    starts: HashMap<String, usize>,
}

impl Timeline {
    /// The timeline of `data`.
    pub fn new(data: &Dataset) -> Timeline {
        let mut entries = Vec::new();
        for p in &data.past {
            entries.push(Entry {
                id: p.id.clone(),
                team: p.team.clone(),
                meeting: p.meeting.clone(),
                date: p.date.clone(),
                title: p.title.clone(),
                notes: p.notes.clone(),
                theme: p.theme.clone(),
            });
        }
        let mut timeline = Timeline {
            entries,
            starts: HashMap::new(),
        };
        for m in &data.meetings {
            timeline.push_meeting(m);
        }
        timeline
    }

    /// Add `meeting`'s discussions at the end (its past is every row before).
    fn push_meeting(&mut self, m: &Meeting) {
        self.starts.insert(m.id.clone(), self.entries.len());
        for d in &m.discussions {
            self.entries.push(Entry {
                id: format!("{}/{}", m.id, d.id),
                team: m.team.clone(),
                meeting: m.title.clone(),
                date: m.date.clone(),
                title: d.title.clone(),
                notes: d.notes.clone(),
                theme: d.theme.clone(),
            });
        }
    }

    /// How many rows are the past of meeting `id`: the rows before its discussions, or
    /// for a meeting not in the timeline (one a "voting ended" event brought), every
    /// row: it comes after all of them.
    pub fn past_of(&self, id: &str) -> usize {
        self.starts.get(id).copied().unwrap_or(self.entries.len())
    }

    /// Whether the timeline holds `meeting`: `None` when it holds no meeting with its
    /// id, else whether the discussions it holds under that id are `meeting`'s.
    pub fn holds(&self, meeting: &Meeting) -> Option<bool> {
        let start = *self.starts.get(&meeting.id)?;
        let prefix = format!("{}/", meeting.id);
        let held: Vec<&Entry> = self.entries[start..]
            .iter()
            .take_while(|e| e.id.starts_with(&prefix))
            .collect();
        Some(
            held.len() == meeting.discussions.len()
                && held.iter().zip(&meeting.discussions).all(|(e, d)| {
                    e.id.strip_prefix(&prefix) == Some(d.id.as_str())
                        && e.title == d.title
                        && e.notes == d.notes
                        && e.team == meeting.team
                }),
        )
    }

    /// The entry with this id.
    pub fn find(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }
}

/// The timeline with the document vectors of a prefix of it. Meetings that "voting
/// ended" events bring join the end of the timeline once they finish ([`join`]), so
/// later meetings find their discussions; a row, once there, never changes.
///
/// [`join`]: PastIndex::join
pub struct PastIndex {
    timeline: RwLock<Arc<Timeline>>,
    /// Row after row, [`DIMENSIONS`] floats each; the rows filled so far.
    documents: RwLock<Vec<f32>>,
    filling: tokio::sync::Mutex<()>,
}

impl PastIndex {
    /// An index of `timeline` with no vectors yet.
    pub fn new(timeline: Timeline) -> PastIndex {
        PastIndex {
            timeline: RwLock::new(Arc::new(timeline)),
            documents: RwLock::default(),
            filling: tokio::sync::Mutex::new(()),
        }
    }

    /// The timeline as it is now (later joins do not change this copy).
    pub fn timeline(&self) -> Arc<Timeline> {
        Arc::clone(&self.timeline.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Add a finished meeting's discussions at the end of the timeline, so later
    /// meetings' searches see them (their vectors are filled when a search needs them,
    /// from the store: nothing is embedded again). `false` when the timeline holds a
    /// meeting of that id already (it is not added twice).
    pub fn join(&self, meeting: &Meeting) -> bool {
        let mut timeline = self.timeline.write().unwrap_or_else(|p| p.into_inner());
        if timeline.starts.contains_key(&meeting.id) {
            return false;
        }
        Arc::make_mut(&mut timeline).push_meeting(meeting);
        true
    }

    /// Rows whose vectors are in memory.
    pub fn filled(&self) -> usize {
        self.read().len() / DIMENSIONS
    }

    /// Make sure the first `rows` rows have their vectors: from the store (memory or the
    /// database), or embedded now (through the shared batcher at `priority`, so a text a
    /// meeting's child is embedding is waited for, not embedded twice).
    pub async fn fill(
        &self,
        rows: usize,
        store: &EmbeddingStore,
        priority: i32,
    ) -> Result<(), StoreError> {
        let timeline = self.timeline();
        let rows = rows.min(timeline.entries.len());
        if self.filled() >= rows {
            return Ok(());
        }
        let _one_at_a_time = self.filling.lock().await;
        let from = self.filled();
        if from >= rows {
            return Ok(());
        }
        // In chunks, so a long backfill writes as it goes and other work interleaves.
        for chunk in (from..rows).collect::<Vec<_>>().chunks(512) {
            let texts: Vec<String> = chunk
                .iter()
                .map(|&i| timeline.entries[i].document())
                .collect();
            let found = store.get_many_at(&texts, false, priority).await?;
            let mut documents = self.documents.write().unwrap_or_else(|p| p.into_inner());
            for v in &found.vectors {
                documents.extend_from_slice(v);
            }
        }
        Ok(())
    }

    /// The best `k` of the first `rows` rows for `query`, best first: (row, score).
    pub fn search(&self, query: &[f32], rows: usize, k: usize) -> Vec<(usize, f32)> {
        let documents = self.read();
        let rows = rows.min(documents.len() / DIMENSIONS);
        search(&documents[..rows * DIMENSIONS], DIMENSIONS, query, k)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<f32>> {
        self.documents.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// The dot product of two vectors of the same length, in 16 lanes over fixed-size
/// arrays (no bounds checks in the loop, which the compiler turns into SIMD).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = [0f32; LANES];
    for (x, y) in ca.zip(cb) {
        let x: &[f32; LANES] = x.try_into().expect("a chunk of LANES");
        let y: &[f32; LANES] = y.try_into().expect("a chunk of LANES");
        for lane in 0..LANES {
            acc[lane] += x[lane] * y[lane];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

#[derive(PartialEq)]
struct Scored(f32, usize);

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        // Higher score first; on a tie the earlier row first.
        self.0
            .total_cmp(&other.0)
            .then_with(|| other.1.cmp(&self.1))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `k` rows of `matrix` (rows of `dims` floats, one after the other) with the highest
/// dot product with `query`, best first: (row, score). A heap of the best `k` so far, so
/// the scan costs a dot product per row and a heap operation only per improvement.
pub fn top_k(matrix: &[f32], dims: usize, query: &[f32], k: usize) -> Vec<(usize, f32)> {
    if k == 0 || dims == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Reverse<Scored>> = BinaryHeap::with_capacity(k + 1);
    for (row, vector) in matrix.chunks_exact(dims).enumerate() {
        let score = dot(vector, query);
        if heap.len() < k {
            heap.push(Reverse(Scored(score, row)));
        } else if let Some(Reverse(worst)) = heap.peek() {
            if Scored(score, row) > *worst {
                heap.pop();
                heap.push(Reverse(Scored(score, row)));
            }
        }
    }
    let mut best: Vec<(usize, f32)> = heap.into_iter().map(|Reverse(s)| (s.1, s.0)).collect();
    best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    best
}

/// Rows per thread below which [`search`] does not split the scan.
const ROWS_PER_THREAD: usize = 16_384;

/// [`top_k`], the scan split across the machine's cores when the matrix is large (each
/// thread keeps its own heap over its rows; the heaps are merged).
pub fn search(matrix: &[f32], dims: usize, query: &[f32], k: usize) -> Vec<(usize, f32)> {
    let rows = matrix.len() / dims.max(1);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(rows / ROWS_PER_THREAD)
        .max(1);
    if threads == 1 {
        return top_k(matrix, dims, query, k);
    }
    let per = rows.div_ceil(threads);
    let mut best: Vec<(usize, f32)> = std::thread::scope(|scope| {
        let parts: Vec<_> = matrix
            .chunks(per * dims)
            .enumerate()
            .map(|(i, part)| {
                scope.spawn(move || {
                    let mut found = top_k(part, dims, query, k);
                    for hit in &mut found {
                        hit.0 += i * per;
                    }
                    found
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("a search thread does not panic"))
            .collect()
    });
    best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    best.truncate(k);
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meeting_is_held_only_with_the_same_discussions() {
        let mut data = Dataset::sample();
        data.meetings.truncate(2);
        let timeline = Timeline::new(&data);
        let mut meeting = data.meetings[0].clone();
        assert_eq!(timeline.holds(&meeting), Some(true));
        meeting.discussions.pop();
        assert_eq!(timeline.holds(&meeting), Some(false), "fewer discussions");
        let mut more = data.meetings[1].clone();
        more.discussions.push(more.discussions[0].clone());
        assert_eq!(timeline.holds(&more), Some(false), "more discussions");
        more.id = "unknown".to_owned();
        assert_eq!(timeline.holds(&more), None);
    }

    #[test]
    fn top_k_matches_a_full_sort() {
        // A deterministic pseudo-random matrix.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let dims = 13;
        let matrix: Vec<f32> = (0..dims * 500).map(|_| next()).collect();
        let query: Vec<f32> = (0..dims).map(|_| next()).collect();
        let mut all: Vec<(usize, f32)> = matrix
            .chunks_exact(dims)
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(&query).map(|(a, b)| a * b).sum()))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        let found = top_k(&matrix, dims, &query, 10);
        let ids: Vec<usize> = found.iter().map(|x| x.0).collect();
        let expected: Vec<usize> = all[..10].iter().map(|x| x.0).collect();
        assert_eq!(ids, expected);
        for ((_, a), (_, b)) in found.iter().zip(&all) {
            assert!((a - b).abs() < 1e-5);
        }
        assert_eq!(top_k(&matrix, dims, &query, 0), vec![]);
        // Split across threads: the same rows, in the same order.
        let big: Vec<f32> = (0..dims * 3 * ROWS_PER_THREAD).map(|_| next()).collect();
        assert_eq!(
            search(&big, dims, &query, 10),
            top_k(&big, dims, &query, 10)
        );
        assert_eq!(top_k(&matrix, dims, &query, 9999).len(), 500);
    }
}
