//! The state at a sequence id, rebuilt from the tracker's snapshots and deltas, and the
//! difference between two states.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::StepInfo;
use crate::store::read::{SnapshotRow, StepRow};

/// The state after step `seq`: the latest snapshot at or before it, with the deltas of
/// the completed steps after the snapshot applied in order.
#[cfg(test)]
pub(crate) fn reconstruct(
    snapshots: &[SnapshotRow],
    steps: &[StepRow],
    seq: u64,
) -> Map<String, Value> {
    reconstruct_all(snapshots, steps, &[seq])
        .pop()
        .unwrap_or_default()
}

/// The states after each of `targets` (ascending sequence ids), in one pass over the
/// snapshots and the steps (both in sequence id order).
pub(crate) fn reconstruct_all(
    snapshots: &[SnapshotRow],
    steps: &[StepRow],
    targets: &[u64],
) -> Vec<Map<String, Value>> {
    let column = |seq: u64| i64::try_from(seq).unwrap_or(i64::MAX);
    let mut state = Map::new();
    // Everything up to `at` is in `state`.
    let mut at = i64::MIN;
    let (mut next_snapshot, mut next_step) = (0, 0);
    let mut out = Vec::with_capacity(targets.len());
    for &target in targets {
        let target = column(target);
        while let Some(snapshot) = snapshots
            .get(next_snapshot)
            .filter(|s| s.sequence_id <= target)
        {
            if snapshot.sequence_id > at {
                state = snapshot.state.clone();
                at = snapshot.sequence_id;
            }
            next_snapshot += 1;
        }
        while let Some(step) = steps
            .get(next_step)
            .filter(|s| column(s.sequence_id) <= target)
        {
            let seq = column(step.sequence_id);
            if seq > at && step.status.as_deref() == Some("completed") {
                if let Some(delta) = &step.delta {
                    for (key, value) in &delta.updated {
                        state.insert(key.clone(), value.clone());
                    }
                    for key in &delta.deleted {
                        state.remove(key);
                    }
                }
            }
            next_step += 1;
        }
        at = at.max(target);
        out.push(state.clone());
    }
    out
}

/// The sequence ids of `steps`, summarised for an error message: `0-4, 7`.
pub(crate) fn known_ids(steps: &[StepInfo]) -> String {
    let mut ids: Vec<u64> = steps.iter().map(|s| s.sequence_id).collect();
    ids.dedup();
    if ids.is_empty() {
        return "none".to_owned();
    }
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for id in ids {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == id => *end = id,
            _ => ranges.push((id, id)),
        }
    }
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value that changed between two states.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// The value before.
    pub from: Value,
    /// The value after.
    pub to: Value,
}

/// What differs between two states.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StateDiff {
    /// Keys only in the second state, with their values.
    pub added: BTreeMap<String, Value>,
    /// Keys only in the first state, with their values.
    pub removed: BTreeMap<String, Value>,
    /// Keys in both whose values differ.
    pub changed: BTreeMap<String, Change>,
}

impl StateDiff {
    /// Whether the states are equal.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What changed from state `a` to state `b`.
pub fn diff(a: &Map<String, Value>, b: &Map<String, Value>) -> StateDiff {
    let mut out = StateDiff::default();
    for (key, before) in a {
        match b.get(key) {
            None => {
                out.removed.insert(key.clone(), before.clone());
            }
            Some(after) if after != before => {
                out.changed.insert(
                    key.clone(),
                    Change {
                        from: before.clone(),
                        to: after.clone(),
                    },
                );
            }
            Some(_) => {}
        }
    }
    for (key, after) in b {
        if !a.contains_key(key) {
            out.added.insert(key.clone(), after.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::read::Delta;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn step(seq: u64, status: &str, updated: Value, deleted: &[&str]) -> StepRow {
        StepRow {
            sequence_id: seq,
            attempt: 1,
            action: "a".to_owned(),
            started_at_us: 0,
            ended_at_us: Some(1),
            status: Some(status.to_owned()),
            inputs: Map::new(),
            result: None,
            error: None,
            delta: Some(Delta {
                updated: map(updated),
                deleted: deleted.iter().map(|k| k.to_string()).collect(),
            }),
        }
    }

    #[test]
    fn deltas_of_completed_steps_apply_over_the_latest_snapshot() {
        let snapshots = vec![SnapshotRow {
            sequence_id: -1,
            state: map(json!({"n": 0, "gone": true})),
        }];
        let steps = vec![
            step(0, "completed", json!({"n": 1}), &["gone"]),
            step(1, "failed", json!({"n": 99}), &[]),
            step(1, "completed", json!({"n": 2, "m": "x"}), &[]),
        ];
        assert_eq!(reconstruct(&snapshots, &steps, 0), map(json!({"n": 1})));
        assert_eq!(
            reconstruct(&snapshots, &steps, 1),
            map(json!({"n": 2, "m": "x"}))
        );
        let later = vec![
            snapshots[0].clone(),
            SnapshotRow {
                sequence_id: 0,
                state: map(json!({"n": 10})),
            },
        ];
        assert_eq!(
            reconstruct(&later, &steps, 1),
            map(json!({"n": 2, "m": "x"}))
        );
        assert_eq!(reconstruct(&later, &steps, 0), map(json!({"n": 10})));
    }

    #[test]
    fn diff_reports_added_removed_and_changed_keys() {
        let d = diff(
            &map(json!({"a": 1, "b": 2, "c": 3})),
            &map(json!({"b": 2, "c": 4, "d": 5})),
        );
        assert_eq!(d.added.get("d"), Some(&json!(5)));
        assert_eq!(d.removed.get("a"), Some(&json!(1)));
        assert_eq!(
            d.changed.get("c"),
            Some(&Change {
                from: json!(3),
                to: json!(4)
            })
        );
        assert!(!d.changed.contains_key("b"));
    }
}
