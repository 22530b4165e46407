//! The latest stored state of each application this persister saved or loaded, so that
//! a save writes only what changed without reading the stored state back.
//!
//! The state kept is the one the application holds (cloning a [`State`] is O(1) and
//! shares every value), so diffing the next checkpoint's state against it visits only
//! what changed, and finds everything that did: a value is unchanged only if it is the
//! very same shared value. A checkpoint that does not follow the one known (or whose
//! application is not known: a new one, or one evicted) is compared with the stored
//! state instead.

use std::collections::HashMap;

use super::codec::AppKey;
use crate::persistence::StepStatus;
use crate::state::State;

/// Applications remembered; beyond, the least recently used half is forgotten. Their
/// states are shared with the running applications, but a finished application's state
/// stays alive while it is remembered (and until its lease is released).
const MAX_ENTRIES: usize = 1024;

/// The latest stored checkpoint of an application, as this persister saved or loaded it.
#[derive(Clone, Debug)]
pub(super) struct Known {
    /// Its sequence id.
    pub(super) sequence_id: i64,
    /// Its attempt.
    pub(super) attempt: u32,
    /// Its status.
    pub(super) status: StepStatus,
    /// The state stored at it (for a failed step, the state before the step).
    pub(super) state: State,
    /// How many checkpoints of the application, up to this one, have
    /// [inline](super::inline) values since its latest base.
    pub(super) inline: u32,
}

impl Known {
    /// Whether a checkpoint at (`sequence_id`, `attempt`) comes right after this one: the
    /// next step, or a retry of this failed one.
    pub(super) fn followed_by(&self, sequence_id: i64, attempt: u32) -> bool {
        sequence_id == self.sequence_id.saturating_add(1)
            || (sequence_id == self.sequence_id
                && self.status != StepStatus::Completed
                && attempt > self.attempt)
    }
}

/// [`Known`] checkpoints by application, least recently used forgotten first.
#[derive(Default)]
pub(super) struct KnownStates {
    map: HashMap<AppKey, (Known, u64)>,
    clock: u64,
}

impl KnownStates {
    pub(super) fn get(&mut self, key: &AppKey) -> Option<Known> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(key).map(|(known, used)| {
            *used = clock;
            known.clone()
        })
    }

    pub(super) fn insert(&mut self, key: AppKey, known: Known) {
        self.clock += 1;
        self.map.insert(key, (known, self.clock));
        if self.map.len() > MAX_ENTRIES {
            let mut uses: Vec<u64> = self.map.values().map(|(_, used)| *used).collect();
            let (_, median, _) = uses.select_nth_unstable(MAX_ENTRIES / 2);
            let cut = *median;
            self.map.retain(|_, (_, used)| *used > cut);
        }
    }

    pub(super) fn remove(&mut self, key: &AppKey) {
        self.map.remove(key);
    }
}
