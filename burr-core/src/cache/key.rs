//! What names a cache entry: [`CacheKey`] = (namespace, version, [`InputHash`]), and
//! [`InputHasher`], which hashes exactly what went in.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The SHA-256 of exactly what went into a computation, framed so that different inputs
/// never hash alike by concatenation (every piece carries its kind and its length).
///
/// Stable across processes, builds and platforms: it depends only on the bytes, strings
/// and JSON values given, never on addresses or hash-map order (a JSON object is hashed
/// with its keys sorted).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputHash(pub [u8; 32]);

impl InputHash {
    /// An [`InputHasher`] to feed the pieces of an input to.
    pub fn builder() -> InputHasher {
        InputHasher::new()
    }

    /// The hash of one byte string.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        InputHasher::new().bytes(bytes).finish()
    }

    /// The hash of one string (a text to embed).
    pub fn of_str(text: &str) -> Self {
        InputHasher::new().str(text).finish()
    }

    /// The hash of one JSON value, its object keys sorted.
    pub fn of_json(value: &Value) -> Self {
        InputHasher::new().json(value).finish()
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash read back from its 64 hex digits (as [`Display`](fmt::Display) writes
    /// it); `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in text.chunks_exact(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
        }
        Some(InputHash(out))
    }

    /// The hash from a stored blob; `None` when it is not 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(InputHash)
    }
}

impl fmt::Display for InputHash {
    /// 64 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InputHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InputHash({self})")
    }
}

/// Hashes the pieces of an input, in order, into an [`InputHash`].
///
/// ```
/// use burr_core::cache::InputHash;
/// use serde_json::json;
///
/// let a = InputHash::builder().str("query").json(&json!({"k": 3, "model": "small"})).finish();
/// let b = InputHash::builder().str("query").json(&json!({"model": "small", "k": 3})).finish();
/// assert_eq!(a, b); // object key order does not matter
/// assert_ne!(a, InputHash::builder().str("quer").str("y").finish());
/// ```
#[derive(Clone)]
pub struct InputHasher {
    sha: Sha256,
}

impl Default for InputHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InputHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputHasher").finish_non_exhaustive()
    }
}

// One tag byte per kind of piece, so that a string and the same bytes, or a JSON string
// and a plain one, hash differently.
const BYTES: u8 = b'b';
const STR: u8 = b's';
const U64: u8 = b'u';
const NULL: u8 = b'n';
const FALSE: u8 = b'f';
const TRUE: u8 = b't';
const NUMBER: u8 = b'#';
const JSON_STRING: u8 = b'"';
const ARRAY: u8 = b'[';
const OBJECT: u8 = b'{';

impl InputHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        InputHasher { sha: Sha256::new() }
    }

    fn tagged(&mut self, tag: u8, bytes: &[u8]) {
        self.sha.update([tag]);
        self.sha.update((bytes.len() as u64).to_le_bytes());
        self.sha.update(bytes);
    }

    /// Add a byte string.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        self.tagged(BYTES, bytes);
        self
    }

    /// Add a string.
    pub fn str(mut self, text: &str) -> Self {
        self.tagged(STR, text.as_bytes());
        self
    }

    /// Add an integer.
    pub fn u64(mut self, value: u64) -> Self {
        self.tagged(U64, &value.to_le_bytes());
        self
    }

    /// Add a JSON value: objects with their keys sorted, numbers as serde_json writes
    /// them (so `1` and `1.0` differ, as they do in a state).
    pub fn json(mut self, value: &Value) -> Self {
        self.add_json(value);
        self
    }

    /// Add a JSON value in place (for a loop).
    pub fn add_json(&mut self, value: &Value) {
        match value {
            Value::Null => self.sha.update([NULL]),
            Value::Bool(false) => self.sha.update([FALSE]),
            Value::Bool(true) => self.sha.update([TRUE]),
            Value::Number(number) => self.tagged(NUMBER, number.to_string().as_bytes()),
            Value::String(text) => self.tagged(JSON_STRING, text.as_bytes()),
            Value::Array(items) => {
                self.sha.update([ARRAY]);
                self.sha.update((items.len() as u64).to_le_bytes());
                for item in items {
                    self.add_json(item);
                }
            }
            Value::Object(map) => {
                self.sha.update([OBJECT]);
                self.sha.update((map.len() as u64).to_le_bytes());
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (key, item) in entries {
                    self.tagged(JSON_STRING, key.as_bytes());
                    self.add_json(item);
                }
            }
        }
    }

    /// Add a byte string in place (for a loop).
    pub fn add_bytes(&mut self, bytes: &[u8]) {
        self.tagged(BYTES, bytes);
    }

    /// Add a string in place (for a loop).
    pub fn add_str(&mut self, text: &str) {
        self.tagged(STR, text.as_bytes());
    }

    /// The hash of everything added.
    pub fn finish(self) -> InputHash {
        InputHash(self.sha.finalize().into())
    }
}

/// What names a cache entry: what computed it (`namespace`: a model id, an action's
/// name), its `version` (a model revision, an action's declared version: a new version
/// is a new set of entries), and the hash of exactly what went in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    /// What computed the value.
    pub namespace: String,
    /// Its version.
    pub version: String,
    /// The hash of its input.
    pub input: InputHash,
}

impl CacheKey {
    /// The key of `input` computed by `namespace` at `version`.
    pub fn new(namespace: impl Into<String>, version: impl Into<String>, input: InputHash) -> Self {
        CacheKey {
            namespace: namespace.into(),
            version: version.into(),
            input,
        }
    }
}

impl fmt::Display for CacheKey {
    /// `namespace@version:` and the first 16 hex digits of the input hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.input.to_string();
        write!(f, "{}@{}:{}", self.namespace, self.version, &hex[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hashes_are_stable_and_framed() {
        // A fixed value: the hash must not change between builds (stored keys depend on it).
        assert_eq!(
            InputHash::of_str("hello").to_string(),
            InputHash::builder().str("hello").finish().to_string()
        );
        assert_ne!(InputHash::of_str("hello"), InputHash::of_bytes(b"hello"));
        assert_ne!(
            InputHash::builder().str("ab").str("c").finish(),
            InputHash::builder().str("a").str("bc").finish()
        );
        assert_ne!(
            InputHash::of_json(&json!(1)),
            InputHash::of_json(&json!(1.0))
        );
        assert_ne!(
            InputHash::of_json(&json!("1")),
            InputHash::of_json(&json!(1))
        );
        assert_eq!(
            InputHash::of_json(&json!({"a": [1, {"y": null, "x": true}], "b": "s"})),
            InputHash::of_json(&json!({"b": "s", "a": [1, {"x": true, "y": null}]}))
        );
        let hash = InputHash::of_str("x");
        assert_eq!(InputHash::from_hex(&hash.to_string()), Some(hash));
        assert_eq!(InputHash::from_hex("zz"), None);
    }

    #[test]
    fn the_hash_of_a_string_is_pinned() {
        // SHA-256 of tag 's', the length 5 as u64 LE, "hello": computed once and pinned,
        // so a change of framing (which would orphan every stored entry) fails here.
        let mut sha = Sha256::new();
        sha.update([b's']);
        sha.update(5u64.to_le_bytes());
        sha.update(b"hello");
        let expected: [u8; 32] = sha.finalize().into();
        assert_eq!(InputHash::of_str("hello").0, expected);
    }
}
