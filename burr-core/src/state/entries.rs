//! [`Entries`]: a state's key → value map, a sorted key set and the values while it is
//! small, a shared tree (imbl's `OrdMap`) past that.
//!
//! Most states are small (a child application's few keys) and a tree's smallest node costs
//! about 1.5 KB. A small map is its sorted keys and its values. The keys are one key set
//! shared by every small map with the same keys (an update of a key the map holds keeps
//! it, and a per-thread cache finds it again for a map built with the same keys). One or
//! two values sit in the state itself; three to [`SMALL_MAX`] are an Arc'd slice the
//! map's clones share. So a small state of its own costs nothing on the heap up to two
//! keys and 16 bytes plus 8 a value past that (144 bytes at [`SMALL_MAX`] keys), and its
//! key set, when no other state has the same keys, 40 bytes plus 16 a key. Large states
//! keep the tree: an update copies O(log n), a diff skips shared subtrees. Both iterate
//! in key order, so nothing outside this file can tell them apart.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::iter;
use std::sync::Arc;

use imbl::ordmap::DiffItem;
use imbl::OrdMap;

use super::Slot;

/// The most entries kept in a small map.
pub(crate) const SMALL_MAX: usize = 16;

/// A large map that shrinks to this many entries or fewer goes back to a small one.
const SHRINK_TO: usize = SMALL_MAX / 2;

/// One entry.
pub(crate) type Entry = (Arc<str>, Slot);

/// Keys no longer than this go through the per-thread key cache.
const CACHED_KEY_MAX: usize = 64;

/// Slots in each per-thread cache (a power of two).
const CACHE_SLOTS: usize = 64;

/// Key sets whose keys hold more bytes than this are not cached.
const CACHED_KEY_SET_MAX: usize = 1024;

thread_local! {
    /// Recently made keys, by a hash of their text: a state's keys are few names used
    /// over and over (a fan-out's children each write the same two), so the same name
    /// is one shared allocation, not one per state that holds it.
    static KEY_CACHE: RefCell<[Option<Arc<str>>; CACHE_SLOTS]> =
        const { RefCell::new([const { None }; CACHE_SLOTS]) };

    /// Recently made key sets of small maps, by a hash of their keys: states with the
    /// same keys share them.
    static KEY_SET_CACHE: RefCell<[Option<KeySet>; CACHE_SLOTS]> =
        const { RefCell::new([const { None }; CACHE_SLOTS]) };
}

/// FNV-1a over `bytes`, continuing from `hash`: keys are short, and this runs often.
fn fnv(mut hash: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    hash
}

const FNV_START: u32 = 0x811c_9dc5;

fn cache_slot(hash: u32) -> usize {
    (hash ^ (hash >> 16)) as usize % CACHE_SLOTS
}

/// The key `text` as a shared string: the cached one when this thread made it recently
/// (no allocation), a new one otherwise. At most [`CACHE_SLOTS`] short keys a thread
/// stay alive in the cache.
pub(crate) fn key(text: &str) -> Arc<str> {
    if text.len() > CACHED_KEY_MAX {
        return Arc::from(text);
    }
    let slot = cache_slot(fnv(FNV_START, text.as_bytes()));
    KEY_CACHE
        .try_with(|cache| {
            let mut cache = cache.borrow_mut();
            match &cache[slot] {
                Some(cached) if **cached == *text => Arc::clone(cached),
                _ => {
                    let made: Arc<str> = Arc::from(text);
                    cache[slot] = Some(Arc::clone(&made));
                    made
                }
            }
        })
        // The thread is ending: no cache.
        .unwrap_or_else(|_| Arc::from(text))
}

/// The sorted keys of small maps, shared by the maps with those keys (a thin pointer: a
/// small map is three words).
type KeySet = Arc<Vec<Arc<str>>>;

/// The keys of an empty map.
static EMPTY_KEYS: Vec<Arc<str>> = Vec::new();

/// The sorted keys `keys` as a shared key set: the cached one when this thread made the
/// same set recently (then no allocation), a new one otherwise.
fn key_set<'a, I>(keys: I) -> KeySet
where
    I: ExactSizeIterator<Item = &'a Arc<str>> + Clone,
{
    let mut hash = FNV_START;
    let mut bytes = 0;
    for k in keys.clone() {
        hash = fnv(hash, k.as_bytes());
        // A byte no UTF-8 text holds: ["ab"] and ["a", "b"] differ.
        hash = fnv(hash, &[0xff]);
        bytes += k.len();
    }
    if bytes > CACHED_KEY_SET_MAX {
        return Arc::new(keys.cloned().collect());
    }
    let slot = cache_slot(hash);
    let same = |cached: &[Arc<str>]| {
        cached.len() == keys.len()
            && cached
                .iter()
                .zip(keys.clone())
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
    };
    let found = KEY_SET_CACHE
        .try_with(|cache| {
            cache.borrow()[slot]
                .as_ref()
                .filter(|cached| same(cached))
                .map(Arc::clone)
        })
        .ok()
        .flatten();
    if let Some(found) = found {
        return found;
    }
    let made: KeySet = Arc::new(keys.cloned().collect());
    let _ = KEY_SET_CACHE.try_with(|cache| cache.borrow_mut()[slot] = Some(Arc::clone(&made)));
    made
}

/// A small map: from 3 to [`SMALL_MAX`] keys, sorted, and their values, in that order.
#[derive(Clone)]
pub(crate) struct Small {
    keys: KeySet,
    values: Arc<[Slot]>,
}

/// The entries of a state.
#[derive(Clone, Default)]
pub(crate) enum Entries {
    /// No entries (no allocation).
    #[default]
    Empty,
    /// One entry, its value held in the state itself.
    One(KeySet, Slot),
    /// Two entries, their values held in the state itself.
    Two(KeySet, [Slot; 2]),
    /// From 3 to [`SMALL_MAX`] entries.
    Small(Small),
    /// More than [`SMALL_MAX`] (or recently so).
    Large(OrdMap<Arc<str>, Slot>),
}

/// What changed for one key between two maps.
pub(crate) enum Change<'a> {
    /// Added or rewritten.
    Set(&'a Arc<str>, &'a Slot),
    /// Removed.
    Removed(&'a Arc<str>),
}

impl Entries {
    /// A map of `n` (at least 1, at most [`SMALL_MAX`]) sorted keys and their values.
    fn from_parts(keys: KeySet, n: usize, values: impl Iterator<Item = Slot>) -> Entries {
        let mut values = values;
        match (n, values.next(), values.next()) {
            (1, Some(a), None) => Entries::One(keys, a),
            (2, Some(a), Some(b)) => Entries::Two(keys, [a, b]),
            (_, Some(a), Some(b)) => Entries::Small(Small {
                keys,
                values: [a, b].into_iter().chain(values).collect(),
            }),
            _ => Entries::Empty,
        }
    }

    /// A small map's keys and values.
    fn parts(&self) -> Option<(&KeySet, &[Slot])> {
        match self {
            Entries::One(keys, value) => Some((keys, std::slice::from_ref(value))),
            Entries::Two(keys, values) => Some((keys, &values[..])),
            Entries::Small(small) => Some((&small.keys, &small.values[..])),
            Entries::Empty | Entries::Large(_) => None,
        }
    }

    /// Entries from pairs sorted by key with no key twice.
    fn from_sorted(sorted: Vec<Entry>) -> Entries {
        if sorted.is_empty() {
            Entries::Empty
        } else if sorted.len() <= SMALL_MAX {
            let keys = key_set(sorted.iter().map(|(k, _)| k));
            let n = sorted.len();
            Entries::from_parts(keys, n, sorted.into_iter().map(|(_, v)| v))
        } else {
            Entries::Large(sorted.into_iter().collect())
        }
    }

    /// Entries from pairs in any order; a later pair of a key wins.
    pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = Entry>) -> Entries {
        Entries::from_sorted(sorted_pairs(pairs))
    }

    /// The entries of `self` whose keys `keys` names (absent keys are ignored): `self`
    /// itself when that is all of them.
    pub(crate) fn subset<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Entries {
        let sorted = sorted_pairs(keys.into_iter().filter_map(|key| {
            self.get_key_value(key)
                .map(|(k, v)| (Arc::clone(k), v.clone()))
        }));
        // No key twice, each one of ours: as many as we hold are all we hold.
        if sorted.len() == self.len() {
            return self.clone();
        }
        Entries::from_sorted(sorted)
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Entries::Large(map) => map.len(),
            _ => self.parts().map_or(0, |(keys, _)| keys.len()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get_key_value(&self, key: &str) -> Option<(&Arc<str>, &Slot)> {
        match self {
            Entries::Large(map) => map.get_key_value(key),
            _ => {
                let (keys, values) = self.parts()?;
                keys.binary_search_by(|k| (**k).cmp(key))
                    .ok()
                    .map(|i| (&keys[i], &values[i]))
            }
        }
    }

    /// The key `text` for an insert: the one this map holds, else [`key`]'s.
    pub(crate) fn key(&self, text: &str) -> Arc<str> {
        match self.get_key_value(text) {
            Some((k, _)) => Arc::clone(k),
            None => key(text),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Slot> {
        self.get_key_value(key).map(|(_, v)| v)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.get_key_value(key).is_some()
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        match self {
            Entries::Large(map) => Iter::Large(map.iter()),
            _ => {
                let (keys, values) = self
                    .parts()
                    .map_or((&EMPTY_KEYS[..], &[][..]), |(k, v)| (&k[..], v));
                Iter::Small(keys.iter().zip(values.iter()))
            }
        }
    }

    /// Set `key` to `value`.
    pub(crate) fn insert(&mut self, key: Arc<str>, value: Slot) {
        if let Entries::Large(map) = self {
            map.insert(key, value);
            return;
        }
        let Some((keys, values)) = self.parts() else {
            *self = Entries::One(key_set([&key].into_iter()), value);
            return;
        };
        let n = keys.len();
        *self = match keys.binary_search_by(|k| (**k).cmp(&key)) {
            // The same keys: only the values change.
            Ok(at) => Entries::from_parts(
                Arc::clone(keys),
                n,
                values[..at]
                    .iter()
                    .cloned()
                    .chain(iter::once(value))
                    .chain(values[at + 1..].iter().cloned()),
            ),
            Err(at) if n < SMALL_MAX => {
                let new_keys: Vec<&Arc<str>> = keys[..at]
                    .iter()
                    .chain(iter::once(&key))
                    .chain(keys[at..].iter())
                    .collect();
                Entries::from_parts(
                    key_set(new_keys.into_iter()),
                    n + 1,
                    values[..at]
                        .iter()
                        .cloned()
                        .chain(iter::once(value))
                        .chain(values[at..].iter().cloned()),
                )
            }
            Err(_) => {
                let mut map: OrdMap<Arc<str>, Slot> =
                    keys.iter().cloned().zip(values.iter().cloned()).collect();
                map.insert(key, value);
                Entries::Large(map)
            }
        };
    }

    /// Set every `(key, value)` of `pairs`; a later pair of a key wins. A small map is
    /// rebuilt once (one key set), not once a key.
    pub(crate) fn insert_many(&mut self, pairs: Vec<Entry>) {
        match self {
            Entries::Large(map) => {
                for (key, value) in pairs {
                    map.insert(key, value);
                }
            }
            _ if pairs.len() <= 1 => {
                for (key, value) in pairs {
                    self.insert(key, value);
                }
            }
            _ => {
                let current = self.iter().map(|(k, v)| (Arc::clone(k), v.clone()));
                // The current entries first: a pair given for a key they hold wins.
                *self = Entries::from_pairs(current.chain(pairs).collect::<Vec<_>>());
            }
        }
    }

    /// Remove `key`, if it is there.
    pub(crate) fn remove(&mut self, key: &str) {
        if let Entries::Large(map) = self {
            if map.remove(key).is_some() && map.len() <= SHRINK_TO {
                let sorted: Vec<Entry> = map
                    .iter()
                    .map(|(k, v)| (Arc::clone(k), v.clone()))
                    .collect();
                *self = Entries::from_sorted(sorted);
            }
            return;
        }
        let Some((keys, values)) = self.parts() else {
            return;
        };
        if let Ok(at) = keys.binary_search_by(|k| (**k).cmp(key)) {
            let rest: Vec<Entry> = keys
                .iter()
                .cloned()
                .zip(values.iter().cloned())
                .enumerate()
                .filter_map(|(i, entry)| (i != at).then_some(entry))
                .collect();
            *self = Entries::from_sorted(rest);
        }
    }

    /// Whether both are the same object (O(1)): for a map holding its values itself, the
    /// same keys and the same value objects.
    pub(crate) fn ptr_eq(&self, other: &Entries) -> bool {
        match (self, other) {
            (Entries::Empty, Entries::Empty) => true,
            (Entries::One(ka, a), Entries::One(kb, b)) => Arc::ptr_eq(ka, kb) && a == b,
            (Entries::Two(ka, a), Entries::Two(kb, b)) => Arc::ptr_eq(ka, kb) && a == b,
            (Entries::Small(a), Entries::Small(b)) => {
                Arc::ptr_eq(&a.keys, &b.keys) && Arc::ptr_eq(&a.values, &b.values)
            }
            (Entries::Large(a), Entries::Large(b)) => a.ptr_eq(b),
            _ => false,
        }
    }

    /// What changed from `before` to `after`, in key order. Two trees skip the subtrees
    /// they share.
    pub(crate) fn diff<'a>(
        before: &'a Entries,
        after: &'a Entries,
        mut change: impl FnMut(Change<'a>),
    ) {
        if let (Entries::Large(a), Entries::Large(b)) = (before, after) {
            for item in a.diff(b) {
                match item {
                    DiffItem::Add(k, v) | DiffItem::Update { new: (k, v), .. } => {
                        change(Change::Set(k, v));
                    }
                    DiffItem::Remove(k, _) => change(Change::Removed(k)),
                }
            }
            return;
        }
        if before.ptr_eq(after) {
            return;
        }
        let mut old = before.iter().peekable();
        let mut new = after.iter().peekable();
        loop {
            match (old.peek(), new.peek()) {
                (None, None) => return,
                (Some(_), None) => {
                    if let Some((k, _)) = old.next() {
                        change(Change::Removed(k));
                    }
                }
                (None, Some(_)) => {
                    if let Some((k, v)) = new.next() {
                        change(Change::Set(k, v));
                    }
                }
                (Some((ko, vo)), Some((kn, vn))) => match ko.cmp(kn) {
                    Ordering::Less => {
                        let k = *ko;
                        old.next();
                        change(Change::Removed(k));
                    }
                    Ordering::Greater => {
                        let (k, v) = (*kn, *vn);
                        new.next();
                        change(Change::Set(k, v));
                    }
                    Ordering::Equal => {
                        let (k, v, same) = (*kn, *vn, vo == vn);
                        old.next();
                        new.next();
                        if !same {
                            change(Change::Set(k, v));
                        }
                    }
                },
            }
        }
    }
}

/// `pairs` sorted by key, with the last pair given of each key.
fn sorted_pairs(pairs: impl IntoIterator<Item = Entry>) -> Vec<Entry> {
    let mut all: Vec<Entry> = pairs.into_iter().collect();
    // Stable: among equal keys, the last one given comes last and is kept.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.dedup_by(|later, earlier| {
        if later.0 == earlier.0 {
            std::mem::swap(later, earlier);
            true
        } else {
            false
        }
    });
    all
}

/// The entries of a map, in key order.
pub(crate) enum Iter<'a> {
    Small(iter::Zip<std::slice::Iter<'a, Arc<str>>, std::slice::Iter<'a, Slot>>),
    Large(imbl::ordmap::Iter<'a, Arc<str>, Slot, imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Arc<str>, &'a Slot);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(it) => it.next(),
            Iter::Large(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Small(it) => it.size_hint(),
            Iter::Large(it) => it.size_hint(),
        }
    }
}
