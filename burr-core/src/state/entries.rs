//! [`Entries`]: a state's key → value map, inline and sorted while it is small, a shared
//! tree (imbl's `OrdMap`) past that.
//!
//! Most states are small (a child application's few keys) and a tree's smallest node costs
//! about 1.5 KB; a sorted slice of up to [`SMALL_MAX`] entries costs 16 bytes a key plus
//! 24 a slice. Large states keep the tree: an update copies O(log n), a diff skips shared
//! subtrees. Both iterate in key order, so nothing outside this file can tell them apart.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::iter;
use std::sync::Arc;

use imbl::ordmap::DiffItem;
use imbl::OrdMap;

use super::Slot;

/// The most entries kept inline.
pub(crate) const SMALL_MAX: usize = 16;

/// A large map that shrinks to this many entries or fewer goes back inline.
const SHRINK_TO: usize = SMALL_MAX / 2;

/// One entry.
pub(crate) type Entry = (Arc<str>, Slot);

/// Keys no longer than this go through the per-thread key cache.
const CACHED_KEY_MAX: usize = 64;

/// Slots in the per-thread key cache (a power of two).
const KEY_CACHE_SLOTS: usize = 64;

thread_local! {
    /// Recently made keys, by a hash of their text: a state's keys are few names used
    /// over and over (a fan-out's children each write the same two), so the same name
    /// is one shared allocation, not one per state that holds it.
    static KEY_CACHE: RefCell<[Option<Arc<str>>; KEY_CACHE_SLOTS]> =
        const { RefCell::new([const { None }; KEY_CACHE_SLOTS]) };
}

/// The key `text` as a shared string: the cached one when this thread made it recently
/// (no allocation), a new one otherwise. At most [`KEY_CACHE_SLOTS`] short keys a
/// thread stay alive in the cache.
pub(crate) fn key(text: &str) -> Arc<str> {
    if text.len() > CACHED_KEY_MAX {
        return Arc::from(text);
    }
    // FNV-1a: keys are short, and this runs on every update.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    let slot = (hash ^ (hash >> 16)) as usize % KEY_CACHE_SLOTS;
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

/// The entries of a state.
#[derive(Clone)]
pub(crate) enum Entries {
    /// Sorted by key, at most [`SMALL_MAX`]; `None` when empty (no allocation).
    Small(Option<Arc<[Entry]>>),
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

impl Default for Entries {
    fn default() -> Self {
        Entries::Small(None)
    }
}

impl Entries {
    fn slice(list: &Option<Arc<[Entry]>>) -> &[Entry] {
        list.as_deref().unwrap_or(&[])
    }

    /// Entries from pairs sorted by key with no key twice.
    fn from_sorted(sorted: Vec<Entry>) -> Entries {
        if sorted.is_empty() {
            Entries::Small(None)
        } else if sorted.len() <= SMALL_MAX {
            Entries::Small(Some(sorted.into()))
        } else {
            Entries::Large(sorted.into_iter().collect())
        }
    }

    /// Entries from pairs in any order; a later pair of a key wins.
    pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = Entry>) -> Entries {
        let mut all: Vec<Entry> = pairs.into_iter().collect();
        // Stable: among equal keys, the last one given comes last and is kept.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut sorted: Vec<Entry> = Vec::with_capacity(all.len());
        for entry in all {
            match sorted.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => sorted.push(entry),
            }
        }
        Entries::from_sorted(sorted)
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Entries::Small(list) => Self::slice(list).len(),
            Entries::Large(map) => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get_key_value(&self, key: &str) -> Option<(&Arc<str>, &Slot)> {
        match self {
            Entries::Small(list) => {
                let list = Self::slice(list);
                list.binary_search_by(|(k, _)| (**k).cmp(key))
                    .ok()
                    .map(|i| (&list[i].0, &list[i].1))
            }
            Entries::Large(map) => map.get_key_value(key),
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
            Entries::Small(list) => Iter::Small(Self::slice(list).iter()),
            Entries::Large(map) => Iter::Large(map.iter()),
        }
    }

    /// Set `key` to `value`.
    pub(crate) fn insert(&mut self, key: Arc<str>, value: Slot) {
        match self {
            Entries::Small(list) => {
                let entries = Self::slice(list);
                let new: Arc<[Entry]> = match entries.binary_search_by(|(k, _)| (**k).cmp(&key)) {
                    Ok(at) => entries[..at]
                        .iter()
                        .cloned()
                        .chain(iter::once((key, value)))
                        .chain(entries[at + 1..].iter().cloned())
                        .collect(),
                    Err(at) if entries.len() < SMALL_MAX => entries[..at]
                        .iter()
                        .cloned()
                        .chain(iter::once((key, value)))
                        .chain(entries[at..].iter().cloned())
                        .collect(),
                    Err(_) => {
                        let mut map: OrdMap<Arc<str>, Slot> = entries.iter().cloned().collect();
                        map.insert(key, value);
                        *self = Entries::Large(map);
                        return;
                    }
                };
                *list = Some(new);
            }
            Entries::Large(map) => {
                map.insert(key, value);
            }
        }
    }

    /// Remove `key`, if it is there.
    pub(crate) fn remove(&mut self, key: &str) {
        match self {
            Entries::Small(list) => {
                let entries = Self::slice(list);
                if let Ok(at) = entries.binary_search_by(|(k, _)| (**k).cmp(key)) {
                    let rest: Vec<Entry> = entries[..at]
                        .iter()
                        .chain(&entries[at + 1..])
                        .cloned()
                        .collect();
                    *self = Entries::from_sorted(rest);
                }
            }
            Entries::Large(map) => {
                if map.remove(key).is_some() && map.len() <= SHRINK_TO {
                    let sorted: Vec<Entry> = map
                        .iter()
                        .map(|(k, v)| (Arc::clone(k), v.clone()))
                        .collect();
                    *self = Entries::from_sorted(sorted);
                }
            }
        }
    }

    /// Whether both are the same object (O(1)).
    pub(crate) fn ptr_eq(&self, other: &Entries) -> bool {
        match (self, other) {
            (Entries::Small(None), Entries::Small(None)) => true,
            (Entries::Small(Some(a)), Entries::Small(Some(b))) => Arc::ptr_eq(a, b),
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

/// The entries of a map, in key order.
pub(crate) enum Iter<'a> {
    Small(std::slice::Iter<'a, Entry>),
    Large(imbl::ordmap::Iter<'a, Arc<str>, Slot, imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Arc<str>, &'a Slot);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(it) => it.next().map(|(k, v)| (k, v)),
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
