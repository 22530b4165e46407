//! Inline values: a small [`StateDelta`] as one JSON text — `[["key", value], ["gone"]]`,
//! a key with its new value or, alone, a deleted key — for stores that keep a step's
//! changes in the checkpoint's own row instead of a row per key (the SQLite and
//! PostgreSQL persisters do).

use std::io;

use serde_json::{Map, Value};

use crate::state::StateDelta;

/// `delta` as inline values, or `None` if that is longer than `max` bytes (serialising
/// stops as soon as it is: a large value is not serialised in full).
pub fn encode(delta: &StateDelta, max: usize) -> Option<String> {
    let mut out = Bounded {
        bytes: Vec::with_capacity(64.min(max)),
        max,
    };
    let mut write = || -> serde_json::Result<()> {
        out.push(b"[")?;
        let mut first = true;
        let mut separator = |out: &mut Bounded| {
            let result = if first { Ok(()) } else { out.push(b",") };
            first = false;
            result
        };
        for (key, value) in &delta.updated {
            separator(&mut out)?;
            out.push(b"[")?;
            serde_json::to_writer(&mut out, &**key)?;
            out.push(b",")?;
            serde_json::to_writer(&mut out, &**value)?;
            out.push(b"]")?;
        }
        for key in &delta.deleted {
            separator(&mut out)?;
            out.push(b"[")?;
            serde_json::to_writer(&mut out, &**key)?;
            out.push(b"]")?;
        }
        out.push(b"]")
    };
    write().ok()?;
    // serde_json writes UTF-8.
    String::from_utf8(out.bytes).ok()
}

/// A buffer that refuses to grow past `max` bytes.
struct Bounded {
    bytes: Vec<u8>,
    max: usize,
}

impl Bounded {
    fn push(&mut self, bytes: &[u8]) -> serde_json::Result<()> {
        io::Write::write_all(self, bytes).map_err(serde_json::Error::io)
    }
}

impl io::Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + bytes.len() > self.max {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "too large to inline",
            ));
        }
        self.bytes.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Inline values read back: each key with its value, or `None` for a deleted key, in
/// stored order. Malformed text is an error saying what is wrong with it.
pub fn decode(text: &[u8]) -> Result<Vec<(String, Option<Value>)>, String> {
    let invalid = |why: &str| {
        format!("its inline values are not a list of [key, value] or [key] entries: {why}")
    };
    let entries: Vec<Vec<Value>> =
        serde_json::from_slice(text).map_err(|error| invalid(&error.to_string()))?;
    entries
        .into_iter()
        .map(|entry| {
            let mut entry = entry.into_iter();
            let key = match entry.next() {
                Some(Value::String(key)) => key,
                _ => return Err(invalid("an entry does not start with a key")),
            };
            let value = entry.next();
            if entry.next().is_some() {
                return Err(invalid(&format!(
                    "the entry of key `{key}` has more than two items"
                )));
            }
            Ok((key, value))
        })
        .collect()
}

/// The keys of inline values, in stored order.
pub fn keys(text: &[u8]) -> Result<Vec<String>, String> {
    Ok(decode(text)?.into_iter().map(|(key, _)| key).collect())
}

/// A checkpoint with inline values, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct InlineRow {
    /// Its sequence id.
    pub sequence_id: i64,
    /// Its attempt.
    pub attempt: i64,
    /// The keys it set (with their values) or deleted (`None`), in stored order.
    pub entries: Vec<(String, Option<Value>)>,
}

impl InlineRow {
    /// Apply its entries to `map`.
    pub fn apply(self, map: &mut Map<String, Value>) {
        for (key, value) in self.entries {
            match value {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn delta(updated: &[(&str, Value)], deleted: &[&str]) -> StateDelta {
        StateDelta {
            updated: updated
                .iter()
                .map(|(k, v)| (Arc::from(*k), Arc::new(v.clone())))
                .collect(),
            deleted: deleted.iter().map(|k| Arc::from(*k)).collect(),
        }
    }

    #[test]
    fn small_deltas_round_trip_and_null_values_differ_from_deletions() {
        let text = encode(
            &delta(&[("count", json!(3)), ("none", Value::Null)], &["gone"]),
            128,
        )
        .unwrap();
        assert_eq!(text, r#"[["count",3],["none",null],["gone"]]"#);
        let entries = decode(text.as_bytes()).unwrap();
        assert_eq!(
            entries,
            vec![
                ("count".to_owned(), Some(json!(3))),
                ("none".to_owned(), Some(Value::Null)),
                ("gone".to_owned(), None),
            ]
        );
        assert_eq!(keys(text.as_bytes()).unwrap(), ["count", "none", "gone"]);
        assert_eq!(encode(&StateDelta::default(), 128).as_deref(), Some("[]"));
    }

    #[test]
    fn a_delta_larger_than_the_limit_is_not_inlined() {
        for max in [128, 512] {
            let fits = "x".repeat(max - r#"[["k",""]]"#.len());
            assert!(encode(&delta(&[("k", json!(fits))], &[]), max).is_some());
            let over = format!("{fits}x");
            assert!(encode(&delta(&[("k", json!(over))], &[]), max).is_none());
        }
    }

    #[test]
    fn malformed_inline_values_are_reported() {
        for bad in [
            &b"{}"[..],
            b"[[1, 2]]",
            b"[[\"k\", 1, 2]]",
            b"[[]]",
            b"not json",
        ] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
