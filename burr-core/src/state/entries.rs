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
//! keep the tree and, on top of it, their latest changes (at most [`RECENT_MAX`] keys, in
//! a small sorted array): an update of a key among them copies that array, not a path of
//! the tree, so a step that rewrites the same few keys of a 100,000-key state costs what
//! it costs on a small one; a change of yet another key folds the array into the tree (an
//! O(log n) path copy a key, as before). A diff of two large maps over the same tree
//! compares the arrays; over different trees it skips the subtrees they share. Both forms
//! iterate in key order, so nothing outside this file can tell them apart.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::iter;
use std::sync::Arc;

use imbl::ordmap::DiffItem;
use imbl::OrdMap;

use super::Slot;

/// The most entries kept in a small map.
pub(crate) const SMALL_MAX: usize = 16;

/// The most changed keys a large map keeps above its tree before it folds them in.
pub(crate) const RECENT_MAX: usize = 8;

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

    /// The last key set of one key made: a step that reads one key of a large state
    /// makes the same one step after step, found by the key's pointer without hashing.
    static SINGLE_KEY_SET: RefCell<Option<KeySet>> = const { RefCell::new(None) };
}

/// Whether two keys are the same text: lengths first (no `memcmp` call when they
/// differ), and the same text object at once.
#[inline]
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && (std::ptr::eq(a, b) || a == b)
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
    I: Iterator<Item = &'a Arc<str>> + Clone,
{
    let mut hash = FNV_START;
    let mut bytes = 0;
    let mut n = 0;
    for k in keys.clone() {
        n += 1;
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
        cached.len() == n
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

/// The key set of the one key `k`: [`key_set`]'s, the last one made when it holds the same
/// key object.
#[inline]
fn single_key_set(k: &Arc<str>) -> KeySet {
    let held = SINGLE_KEY_SET.try_with(|last| {
        let last = last.borrow();
        last.as_ref()
            .filter(|set| set.first().is_some_and(|held| Arc::ptr_eq(held, k)))
            .map(Arc::clone)
    });
    match held {
        Ok(Some(set)) => set,
        _ => new_single_key_set(k),
    }
}

/// [`single_key_set`] when the last one made holds another key.
#[inline(never)]
fn new_single_key_set(k: &Arc<str>) -> KeySet {
    let made = key_set(iter::once(k));
    let _ = SINGLE_KEY_SET.try_with(|last| *last.borrow_mut() = Some(Arc::clone(&made)));
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
    Large(Large),
}

/// A large map: a shared tree and the keys changed since it was last written, which
/// override it.
#[derive(Clone)]
pub(crate) struct Large {
    /// Behind one more pointer, so that a state stays four words.
    base: Arc<OrdMap<Arc<str>, Slot>>,
    /// Changed keys, sorted, at most [`RECENT_MAX`] (`None`: none).
    recent: Option<RecentKeys>,
}

/// The changed keys of a large map and how each changed, sorted by key.
type RecentKeys = Arc<[(Arc<str>, Recent)]>;

/// How a key of [`Large::recent`] differs from the tree.
#[derive(Clone)]
enum Recent {
    /// Set, and not in the tree.
    Added(Slot),
    /// Set, over a value in the tree.
    Replaced(Slot),
    /// Removed from the tree.
    Removed,
}

impl Recent {
    fn slot(&self) -> Option<&Slot> {
        match self {
            Recent::Added(slot) | Recent::Replaced(slot) => Some(slot),
            Recent::Removed => None,
        }
    }
}

impl Large {
    fn new(base: OrdMap<Arc<str>, Slot>) -> Large {
        Large {
            base: Arc::new(base),
            recent: None,
        }
    }

    fn recent(&self) -> &[(Arc<str>, Recent)] {
        self.recent.as_deref().unwrap_or_default()
    }

    /// Where `key` is among the recent changes (few: compared in turn, lengths first), or
    /// where it would go.
    fn find(&self, key: &str) -> Result<usize, usize> {
        let recent = self.recent();
        match recent.iter().position(|(k, _)| same_key(k, key)) {
            Some(at) => Ok(at),
            None => Err(recent.partition_point(|(k, _)| **k < *key)),
        }
    }

    fn len(&self) -> usize {
        let mut len = self.base.len();
        for (_, change) in self.recent() {
            match change {
                Recent::Added(_) => len += 1,
                Recent::Removed => len -= 1,
                Recent::Replaced(_) => {}
            }
        }
        len
    }

    fn get_key_value(&self, key: &str) -> Option<(&Arc<str>, &Slot)> {
        match self.find(key) {
            Ok(at) => {
                let (k, change) = &self.recent()[at];
                change.slot().map(|slot| (k, slot))
            }
            Err(_) => self.base_get(key),
        }
    }

    /// `key` in the tree (apart, so that a key among the recent changes is found
    /// without the tree search's set-up).
    #[inline(never)]
    fn base_get(&self, key: &str) -> Option<(&Arc<str>, &Slot)> {
        self.base.get_key_value(key)
    }

    /// The tree with every recent change written into it.
    fn folded(&self) -> OrdMap<Arc<str>, Slot> {
        let mut base = OrdMap::clone(&self.base);
        for (key, change) in self.recent() {
            match change.slot() {
                Some(slot) => {
                    base.insert(Arc::clone(key), slot.clone());
                }
                None => {
                    base.remove(&**key);
                }
            }
        }
        base
    }

    /// `self` with `key` changed to `change` (which tells the tree's value from a new one
    /// correctly): in the array while it has room, else everything folded into the tree.
    fn with(&self, key: Arc<str>, change: Recent) -> Large {
        let found = self.find(&key);
        self.with_at(found, key, change)
    }

    /// [`with`](Self::with), `found` being [`find`](Self::find)'s answer for `key`.
    fn with_at(&self, found: Result<usize, usize>, key: Arc<str>, change: Recent) -> Large {
        let recent = self.recent();
        let (at, replace) = match found {
            Ok(at) => (at, true),
            Err(at) => (at, false),
        };
        if !replace && recent.len() >= RECENT_MAX {
            let mut base = self.folded();
            match change.slot() {
                Some(slot) => {
                    base.insert(key, slot.clone());
                }
                None => {
                    base.remove(&*key);
                }
            }
            return Large::new(base);
        }
        if replace {
            // The same keys: a copy with one entry replaced.
            let mut entries: RecentKeys = Arc::from(recent);
            if let Some(slot) = Arc::get_mut(&mut entries).and_then(|e| e.get_mut(at)) {
                *slot = (key, change);
                return Large {
                    base: Arc::clone(&self.base),
                    recent: Some(entries),
                };
            }
        }
        let skip = usize::from(replace);
        let entries: RecentKeys = recent[..at]
            .iter()
            .cloned()
            .chain(iter::once((key, change)))
            .chain(recent[at + skip..].iter().cloned())
            .collect();
        Large {
            base: Arc::clone(&self.base),
            recent: Some(entries),
        }
    }

    /// `self` with `key` set to `value`.
    fn inserted(&self, key: Arc<str>, value: Slot) -> Large {
        let found = self.find(&key);
        let change = match found {
            Ok(at) => match self.recent()[at].1 {
                Recent::Added(_) => Recent::Added(value),
                Recent::Replaced(_) | Recent::Removed => Recent::Replaced(value),
            },
            Err(_) if self.base.contains_key(&*key) => Recent::Replaced(value),
            Err(_) => Recent::Added(value),
        };
        self.with_at(found, key, change)
    }

    /// Set `key` to `value`: in place when `key` is among the recent changes and no other
    /// map shares them (a step that rewrites the same key of a large state then copies
    /// nothing), else as [`inserted`](Self::inserted).
    fn insert(&mut self, key: &Arc<str>, value: Slot) {
        if let Ok(at) = self.find(key) {
            if let Some(entry) = self
                .recent
                .as_mut()
                .and_then(Arc::get_mut)
                .and_then(|recent| recent.get_mut(at))
            {
                entry.1 = match entry.1 {
                    Recent::Added(_) => Recent::Added(value),
                    Recent::Replaced(_) | Recent::Removed => Recent::Replaced(value),
                };
                return;
            }
        }
        self.insert_copying(key, value);
    }

    /// [`insert`](Self::insert) past its in-place case.
    #[inline(never)]
    fn insert_copying(&mut self, key: &Arc<str>, value: Slot) {
        *self = self.inserted(Arc::clone(key), value);
    }

    /// `self` without `key`; `None` when it does not hold it.
    fn removed(&self, key: &str) -> Option<Large> {
        match self.find(key) {
            Ok(at) => {
                let recent = self.recent();
                match recent[at].1 {
                    Recent::Removed => None,
                    Recent::Replaced(_) => {
                        Some(self.with(Arc::clone(&recent[at].0), Recent::Removed))
                    }
                    // Only in the array: it leaves it.
                    Recent::Added(_) => {
                        let rest: Vec<(Arc<str>, Recent)> = recent[..at]
                            .iter()
                            .chain(&recent[at + 1..])
                            .cloned()
                            .collect();
                        Some(Large {
                            base: Arc::clone(&self.base),
                            recent: (!rest.is_empty()).then(|| Arc::from(rest)),
                        })
                    }
                }
            }
            Err(_) => {
                let (k, _) = self.base.get_key_value(key)?;
                Some(self.with(Arc::clone(k), Recent::Removed))
            }
        }
    }

    fn ptr_eq(&self, other: &Large) -> bool {
        (Arc::ptr_eq(&self.base, &other.base) || self.base.ptr_eq(&other.base))
            && match (&self.recent, &other.recent) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }

    fn iter(&self) -> LargeIter<'_> {
        LargeIter {
            base: self.base.iter().peekable(),
            recent: self.recent().iter().peekable(),
        }
    }
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
            Entries::Large(Large::new(sorted.into_iter().collect()))
        }
    }

    /// Entries from pairs in any order; a later pair of a key wins.
    pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = Entry>) -> Entries {
        Entries::from_sorted(sorted_pairs(pairs))
    }

    /// The entries of `self` whose keys `keys` names (absent keys are ignored): `self`
    /// itself when that is all of them.
    pub(crate) fn subset<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Entries {
        // One named key, a step's usual read: a map of that entry.
        let mut keys = keys.into_iter();
        let (first, second) = (keys.next(), keys.next());
        if let (Some(key), None) = (first, second) {
            return match self.get_key_value(key) {
                Some(_) if matches!(self, Entries::One(..)) => self.clone(),
                Some((k, value)) => Entries::One(single_key_set(k), value.clone()),
                None => Entries::Empty,
            };
        }
        let keys = first.into_iter().chain(second).chain(keys);
        if let Some((own, values)) = self.parts() {
            // Which of our entries are named, as bits (a small map holds at most 16).
            let mut named: u32 = 0;
            for key in keys {
                if let Some(i) = own.iter().position(|k| same_key(k, key)) {
                    named |= 1 << i;
                }
            }
            let n = own.len();
            if named.count_ones() as usize == n {
                return self.clone();
            }
            let mut picked = [0usize; SMALL_MAX];
            let mut count = 0;
            for (i, slot) in (0..n).filter(|i| named & (1 << i) != 0).zip(&mut picked) {
                *slot = i;
                count += 1;
            }
            let picked = &picked[..count];
            if count == 0 {
                return Entries::Empty;
            }
            let keys = match picked {
                [i] => single_key_set(&own[*i]),
                _ => key_set(picked.iter().map(|&i| &own[i])),
            };
            return Entries::from_parts(keys, count, picked.iter().map(|&i| values[i].clone()));
        }
        // A large map: a few named keys (a step's reads) are gathered without a list.
        let mut found: [Option<(&Arc<str>, &Slot)>; SMALL_MAX] = [None; SMALL_MAX];
        let mut count = 0;
        let mut keys = keys;
        for key in keys.by_ref() {
            let Some(entry) = self.get_key_value(key) else {
                continue;
            };
            if found[..count]
                .iter()
                .flatten()
                .any(|(k, _)| Arc::ptr_eq(k, entry.0))
            {
                continue;
            }
            if count == SMALL_MAX {
                // More: the general way, from the start.
                let sorted = sorted_pairs(
                    found
                        .iter()
                        .flatten()
                        .copied()
                        .chain(iter::once(entry))
                        .chain(keys.filter_map(|key| self.get_key_value(key)))
                        .map(|(k, v)| (Arc::clone(k), v.clone())),
                );
                if sorted.len() == self.len() {
                    return self.clone();
                }
                return Entries::from_sorted(sorted);
            }
            found[count] = Some(entry);
            count += 1;
        }
        let found = &mut found[..count];
        if count > 1 {
            found.sort_unstable_by(|a, b| a.map(|(k, _)| k).cmp(&b.map(|(k, _)| k)));
        }
        if count == self.len() {
            return self.clone();
        }
        if count == 0 {
            return Entries::Empty;
        }
        let keys = match found {
            [Some((k, _))] => single_key_set(k),
            _ => key_set(found.iter().flatten().map(|(k, _)| *k)),
        };
        Entries::from_parts(
            keys,
            count,
            found.iter().flatten().map(|(_, v)| (*v).clone()),
        )
    }

    /// The entry of a map of one key.
    pub(crate) fn single(&self) -> Option<(&Arc<str>, &Slot)> {
        match self {
            Entries::One(keys, value) => keys.first().map(|k| (k, value)),
            _ => None,
        }
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

    #[inline]
    pub(crate) fn get_key_value(&self, key: &str) -> Option<(&Arc<str>, &Slot)> {
        // A map of one key asked for that very key object (the graph's keys and the
        // state's are the same strings): found inline, with no call.
        let same = |k: &Arc<str>| std::ptr::eq(k.as_ptr(), key.as_ptr()) && k.len() == key.len();
        match self {
            Entries::One(keys, value) => {
                if let Some(k) = keys.first().filter(|k| same(k)) {
                    return Some((k, value));
                }
            }
            // A large map's recently changed keys (a step's) likewise.
            Entries::Large(map) => {
                if let Some((k, change)) = map.recent().iter().find(|(k, _)| same(k)) {
                    return change.slot().map(|slot| (k, slot));
                }
            }
            _ => {}
        }
        self.find(key)
    }

    /// [`get_key_value`](Self::get_key_value) past its inline case.
    #[inline(never)]
    fn find(&self, key: &str) -> Option<(&Arc<str>, &Slot)> {
        // Few keys: compared in turn (equal lengths first), no ordering needed.
        let (keys, values) = match self {
            Entries::Empty => return None,
            Entries::One(keys, value) => {
                let k = keys.first()?;
                return same_key(k, key).then_some((k, value));
            }
            Entries::Two(keys, values) => (&keys[..], &values[..]),
            Entries::Small(small) => (&small.keys[..], &small.values[..]),
            Entries::Large(map) => return map.get_key_value(key),
        };
        let at = keys.iter().position(|k| same_key(k, key))?;
        Some((&keys[at], values.get(at)?))
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

    /// Set `key` to `value` (`key` is cloned only when the map takes it). A key the map
    /// holds is set in place when no other map shares its values.
    pub(crate) fn insert(&mut self, key: &Arc<str>, value: Slot) {
        let slot = match self {
            Entries::Large(map) => return map.insert(key, value),
            Entries::One(keys, slot) if keys.first().is_some_and(|k| same_key(k, key)) => {
                Some(slot)
            }
            Entries::Two(keys, slots) => keys
                .iter()
                .position(|k| same_key(k, key))
                .and_then(|at| slots.get_mut(at)),
            Entries::Small(small) => small
                .keys
                .iter()
                .position(|k| same_key(k, key))
                .and_then(|at| Arc::get_mut(&mut small.values)?.get_mut(at)),
            _ => None,
        };
        match slot {
            Some(slot) => *slot = value,
            None => *self = self.inserted(Arc::clone(key), value),
        }
    }

    /// `self` with `key` set to `value` (`self` is left as it is).
    pub(crate) fn inserted(&self, key: Arc<str>, value: Slot) -> Entries {
        if let Entries::Large(map) = self {
            return Entries::Large(map.inserted(key, value));
        }
        let Some((keys, values)) = self.parts() else {
            return Entries::One(key_set([&key].into_iter()), value);
        };
        // The same keys: only the values change.
        if let Some(at) = keys.iter().position(|k| Arc::ptr_eq(k, &key)) {
            return Self::replaced(keys, values, at, value);
        }
        self.inserted_slow(key, value)
    }

    /// The small map of `keys` with its `at`th value replaced by `value`.
    fn replaced(keys: &KeySet, values: &[Slot], at: usize, value: Slot) -> Entries {
        match values {
            [_] => Entries::One(Arc::clone(keys), value),
            [a, b] => Entries::Two(
                Arc::clone(keys),
                if at == 0 {
                    [value, b.clone()]
                } else {
                    [a.clone(), value]
                },
            ),
            _ => Entries::from_parts(
                Arc::clone(keys),
                values.len(),
                values[..at]
                    .iter()
                    .cloned()
                    .chain(iter::once(value))
                    .chain(values[at + 1..].iter().cloned()),
            ),
        }
    }

    fn inserted_slow(&self, key: Arc<str>, value: Slot) -> Entries {
        let Some((keys, values)) = self.parts() else {
            return Entries::One(key_set([&key].into_iter()), value);
        };
        let n = keys.len();
        match keys.binary_search_by(|k| (**k).cmp(&key)) {
            // The same keys: only the values change.
            Ok(at) => Self::replaced(keys, values, at, value),
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
                Entries::Large(Large::new(map))
            }
        }
    }

    /// Set every `(key, value)` of `pairs`; a later pair of a key wins. A small map is
    /// rebuilt once (one key set), not once a key.
    pub(crate) fn insert_many(&mut self, pairs: Vec<Entry>) {
        match self {
            Entries::Large(map) if pairs.len() <= RECENT_MAX => {
                for (key, value) in pairs {
                    *map = map.inserted(key, value);
                }
            }
            Entries::Large(map) => {
                let mut base = map.folded();
                for (key, value) in pairs {
                    base.insert(key, value);
                }
                *map = Large::new(base);
            }
            _ if pairs.len() <= 1 => {
                for (key, value) in pairs {
                    self.insert(&key, value);
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
            if let Some(rest) = map.removed(key) {
                *map = rest;
                if map.len() <= SHRINK_TO {
                    let sorted: Vec<Entry> = map
                        .iter()
                        .map(|(k, v)| (Arc::clone(k), v.clone()))
                        .collect();
                    *self = Entries::from_sorted(sorted);
                }
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
            Large::diff(a, b, change);
            return;
        }
        if before.ptr_eq(after) {
            return;
        }
        // The same keys (a step that rewrote some of them): compare the values.
        if let (Some((ko, vo)), Some((kn, vn))) = (before.parts(), after.parts()) {
            if Arc::ptr_eq(ko, kn) {
                for ((k, old), new) in kn.iter().zip(vo).zip(vn) {
                    if old != new {
                        change(Change::Set(k, new));
                    }
                }
                return;
            }
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

impl Large {
    /// What changed from `before` to `after`, in key order: the keys either changed since
    /// its tree, and the keys whose values differ between the two trees (shared subtrees
    /// skipped), each compared in full.
    fn diff<'a>(before: &'a Large, after: &'a Large, mut change: impl FnMut(Change<'a>)) {
        if before.ptr_eq(after) {
            return;
        }
        let mut keys: Vec<&'a Arc<str>> = before
            .recent()
            .iter()
            .chain(after.recent())
            .map(|(k, _)| k)
            .collect();
        if !Arc::ptr_eq(&before.base, &after.base) && !before.base.ptr_eq(&after.base) {
            keys.extend(before.base.diff(&after.base).map(|item| match item {
                DiffItem::Add(k, _) | DiffItem::Update { new: (k, _), .. } => k,
                DiffItem::Remove(k, _) => k,
            }));
        }
        keys.sort_unstable();
        keys.dedup_by(|a, b| a == b);
        for key in keys {
            match (before.get_key_value(key), after.get_key_value(key)) {
                (Some((_, old)), Some((k, new))) if old != new => change(Change::Set(k, new)),
                (None, Some((k, new))) => change(Change::Set(k, new)),
                (Some((k, _)), None) => change(Change::Removed(k)),
                _ => {}
            }
        }
    }
}

/// The entries of a large map, in key order: its tree's, with its recent changes over them.
pub(crate) struct LargeIter<'a> {
    base:
        iter::Peekable<imbl::ordmap::Iter<'a, Arc<str>, Slot, imbl::shared_ptr::DefaultSharedPtr>>,
    recent: iter::Peekable<std::slice::Iter<'a, (Arc<str>, Recent)>>,
}

impl<'a> Iterator for LargeIter<'a> {
    type Item = (&'a Arc<str>, &'a Slot);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.base.peek(), self.recent.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((kb, _)), Some((kr, _))) => (***kb).cmp(&**kr),
            };
            if order == Ordering::Less {
                return self.base.next();
            }
            if order == Ordering::Equal {
                self.base.next();
            }
            let (key, change) = self.recent.next()?;
            if let Some(slot) = change.slot() {
                return Some((key, slot));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (_, base) = self.base.size_hint();
        let recent = self.recent.len();
        (0, base.map(|b| b + recent))
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
    Large(LargeIter<'a>),
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
