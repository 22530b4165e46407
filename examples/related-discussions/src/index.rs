//! The past discussions, searchable: the timeline of every discussion (the explicit past
//! ones first, then each meeting's in meeting order, then the meetings "voting ended"
//! events brought, in the order they finished here), and their document vectors in one
//! contiguous `Vec<f32>`, row after row. A meeting's past ([`Past`]) is a prefix of the
//! dataset's part of the timeline and the joined meetings before it, kept by id: its
//! search is a scan of those rows (one range when they are contiguous, as they are unless
//! a restart restored the joined meetings in another order): a dot product per row (the
//! vectors are L2-normalised, so it is the cosine) and a top-k heap.
//!
//! The vectors come from the [`EmbeddingStore`]: a restart loads them from the database
//! by text key instead of embedding the texts again, and a discussion added to the past
//! embeds only its own text.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

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
    /// Each meeting's rows.
    spans: HashMap<String, Range<usize>>,
    /// Rows of the dataset (its past discussions and meetings), before any joined.
    dataset_rows: usize,
    /// The meetings joined after the dataset's, in the order they joined.
    joined: Vec<String>,
}

/// A meeting's past, as its checkpoints keep it: the first `rows` rows of the dataset's
/// part of the timeline, and the meetings "voting ended" events brought that had joined
/// when it looked, by id. Ids, not places: a restarted service restores the joined
/// meetings in the order it finds them, which may not be the order they joined before,
/// and a resumed meeting still searches the same discussions.
///
/// Checkpoints of earlier builds kept a row count: it reads as that prefix of the dataset's
/// rows (which is what it was for a meeting of the dataset).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredPast")]
pub struct Past {
    /// Rows of the dataset's part of the timeline (a prefix).
    pub rows: usize,
    /// Joined meetings, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<String>,
}

/// A [`Past`] as checkpoints hold it: this build's, or an earlier build's row count.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredPast {
    Rows(usize),
    Ids {
        rows: usize,
        #[serde(default)]
        joined: Vec<String>,
    },
}

impl From<StoredPast> for Past {
    fn from(stored: StoredPast) -> Past {
        match stored {
            StoredPast::Rows(rows) => Past {
                rows,
                joined: Vec::new(),
            },
            StoredPast::Ids { rows, joined } => Past { rows, joined },
        }
    }
}

/// A [`Past`] this process's timeline cannot hold.
#[derive(Debug, thiserror::Error)]
pub enum UnknownPast {
    /// It names a joined meeting the timeline does not hold.
    #[error(
        "the past meeting `{meeting}` is not in this process's index (it finished in \
         another process): restart the service to restore it"
    )]
    Meeting {
        /// The meeting.
        meeting: String,
    },
    /// It holds more of the dataset's rows than this process's dataset has.
    #[error(
        "the past holds {rows} rows of the dataset, and this process's dataset has {held}: \
         the service runs with another dataset than the meeting started with"
    )]
    DatasetRows {
        /// The rows the past holds.
        rows: usize,
        /// The dataset's rows here.
        held: usize,
    },
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
            ..Timeline::default()
        };
        for m in &data.meetings {
            timeline.push_meeting(m);
        }
        timeline.dataset_rows = timeline.entries.len();
        timeline
    }

    /// Add `meeting`'s discussions at the end (its past is every row before).
    fn push_meeting(&mut self, m: &Meeting) {
        let start = self.entries.len();
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
        self.spans.insert(m.id.clone(), start..self.entries.len());
    }

    /// The past of meeting `id`: for a meeting of the dataset, the rows before its
    /// discussions; for a joined one, the dataset and the meetings that joined before it;
    /// for a meeting not in the timeline (one a "voting ended" event brought, not
    /// finished yet), everything: it comes after all of them.
    pub fn past_of(&self, id: &str) -> Past {
        match self.spans.get(id) {
            Some(span) if span.start < self.dataset_rows || span.is_empty() => Past {
                rows: span.start.min(self.dataset_rows),
                joined: Vec::new(),
            },
            Some(_) => Past {
                rows: self.dataset_rows,
                joined: self
                    .joined
                    .iter()
                    .take_while(|j| *j != id)
                    .cloned()
                    .collect(),
            },
            None => Past {
                rows: self.dataset_rows,
                joined: self.joined.clone(),
            },
        }
    }

    /// The rows of `past`, as ascending ranges, adjacent ones merged (one range unless
    /// the joined meetings came back in another order).
    pub fn ranges(&self, past: &Past) -> Result<Vec<Range<usize>>, UnknownPast> {
        if past.rows > self.dataset_rows {
            return Err(UnknownPast::DatasetRows {
                rows: past.rows,
                held: self.dataset_rows,
            });
        }
        let mut spans = Vec::with_capacity(past.joined.len() + 1);
        spans.push(0..past.rows);
        for id in &past.joined {
            let span = self
                .spans
                .get(id)
                .filter(|s| s.start >= self.dataset_rows)
                .ok_or_else(|| UnknownPast::Meeting {
                    meeting: id.clone(),
                })?;
            spans.push(span.clone());
        }
        spans.sort_by_key(|s| s.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
        for span in spans.into_iter().filter(|s| !s.is_empty()) {
            match merged.last_mut() {
                Some(last) if last.end == span.start => last.end = span.end,
                _ => merged.push(span),
            }
        }
        Ok(merged)
    }

    /// The row after the last of `past`: the rows the index must fill to search it.
    pub fn end(&self, past: &Past) -> Result<usize, UnknownPast> {
        Ok(self.ranges(past)?.last().map_or(0, |r| r.end))
    }

    /// The entries of `past`, in timeline order.
    pub fn past_entries(&self, past: &Past) -> Result<Vec<&Entry>, UnknownPast> {
        Ok(self
            .ranges(past)?
            .into_iter()
            .flat_map(|range| &self.entries[range])
            .collect())
    }

    /// Whether the timeline holds `meeting`: `None` when it holds no meeting with its
    /// id, else whether the discussions it holds under that id are `meeting`'s.
    pub fn holds(&self, meeting: &Meeting) -> Option<bool> {
        let span = self.spans.get(&meeting.id)?;
        let prefix = format!("{}/", meeting.id);
        let held = &self.entries[span.clone()];
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
        if timeline.spans.contains_key(&meeting.id) {
            return false;
        }
        let timeline = Arc::make_mut(&mut timeline);
        timeline.push_meeting(meeting);
        timeline.joined.push(meeting.id.clone());
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

    /// The best `k` of the rows in `ranges` (filled ones) for `query`, best first:
    /// (row, score).
    pub fn search(&self, query: &[f32], ranges: &[Range<usize>], k: usize) -> Vec<(usize, f32)> {
        let documents = self.read();
        let filled = documents.len() / DIMENSIONS;
        let mut best: Vec<(usize, f32)> = Vec::new();
        for range in ranges {
            let (start, end) = (range.start.min(filled), range.end.min(filled));
            let matrix = &documents[start * DIMENSIONS..end * DIMENSIONS];
            best.extend(
                search(matrix, DIMENSIONS, query, k)
                    .into_iter()
                    .map(|(row, score)| (row + start, score)),
            );
        }
        if ranges.len() > 1 {
            best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            best.truncate(k);
        }
        best
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

    /// A deterministic stream of numbers in [-0.5, 0.5) (an LCG) from `seed`.
    fn numbers(mut seed: u64) -> impl FnMut() -> f32 {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        }
    }

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
    fn a_past_is_the_same_discussions_whatever_order_meetings_joined_in() {
        let mut data = Dataset::sample();
        let later = data.meetings.split_off(1);
        let (a, b) = (&later[0], &later[1]);
        let mut first = Timeline::new(&data);
        let dataset_rows = first.entries.len();
        let mut index = PastIndex::new(first.clone());
        assert!(index.join(a));
        assert!(!index.join(a), "a meeting joins once");
        // A meeting that started after `a` joined: its past is the dataset and `a`.
        let past = index.timeline().past_of("c");
        assert_eq!(past.rows, dataset_rows);
        assert_eq!(past.joined, vec![a.id.clone()]);
        assert_eq!(index.timeline().past_of(&a.id).joined, Vec::<String>::new());
        assert!(index.join(b));
        first = Timeline::clone(&index.timeline());
        assert_eq!(first.past_of(&b.id).joined, vec![a.id.clone()]);
        assert_eq!(
            first.ranges(&past).unwrap(),
            vec![0..dataset_rows + a.discussions.len()]
        );

        // Restored after a restart in the other order: the same entries.
        index = PastIndex::new(Timeline::new(&data));
        index.join(b);
        index.join(a);
        let second = index.timeline();
        let ids = |t: &Timeline| -> Vec<String> {
            t.past_entries(&past)
                .unwrap()
                .iter()
                .map(|e| e.id.clone())
                .collect()
        };
        assert_eq!(ids(&second), ids(&first));
        assert_eq!(second.ranges(&past).unwrap().len(), 2, "not contiguous now");
        // A process that never saw `a` says so, naming it.
        let without = Timeline::new(&data);
        let error = without.ranges(&past).unwrap_err();
        assert!(
            matches!(&error, UnknownPast::Meeting { meeting } if *meeting == a.id),
            "{error}"
        );
        // One that holds more of the dataset than this one has, likewise.
        let longer = Past {
            rows: dataset_rows + 1,
            joined: Vec::new(),
        };
        let error = without.ranges(&longer).unwrap_err();
        assert!(
            matches!(error, UnknownPast::DatasetRows { rows, held } if rows == dataset_rows + 1 && held == dataset_rows)
        );
    }

    #[test]
    fn a_past_reads_back_and_an_earlier_builds_row_count_is_a_prefix() {
        let past = Past {
            rows: 7,
            joined: vec!["m".to_owned()],
        };
        let json = serde_json::to_value(&past).unwrap();
        assert_eq!(serde_json::from_value::<Past>(json).unwrap(), past);
        let earlier: Past = serde_json::from_value(serde_json::json!(12)).unwrap();
        assert_eq!(
            earlier,
            Past {
                rows: 12,
                joined: Vec::new()
            }
        );
        assert!(serde_json::from_value::<Past>(serde_json::json!("x")).is_err());
    }

    #[test]
    fn a_search_over_ranges_is_the_search_of_their_rows() {
        let mut data = Dataset::sample();
        data.meetings.truncate(0);
        let index = PastIndex::new(Timeline::new(&data));
        let rows = 40;
        let mut next = numbers(11);
        index
            .documents
            .write()
            .unwrap()
            .extend((0..rows * DIMENSIONS).map(|_| next()));
        let query: Vec<f32> = (0..DIMENSIONS).map(|_| next()).collect();
        let ranges = [3..10, 20..31];
        let found = index.search(&query, &ranges, 5);
        let documents = index.read();
        let mut all: Vec<(usize, f32)> = ranges
            .iter()
            .flat_map(|r| r.clone())
            .map(|row| {
                (
                    row,
                    dot(&documents[row * DIMENSIONS..(row + 1) * DIMENSIONS], &query),
                )
            })
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        let rows_found: Vec<usize> = found.iter().map(|f| f.0).collect();
        let expected: Vec<usize> = all[..5].iter().map(|f| f.0).collect();
        assert_eq!(rows_found, expected);
    }

    #[test]
    fn top_k_matches_a_full_sort() {
        // A deterministic pseudo-random matrix.
        let mut next = numbers(7);
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
