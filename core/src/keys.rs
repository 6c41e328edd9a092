//! Typed keys of the engine's tables (issue 12 item 4): a `TransportKey` cannot index the
//! producer table or stand in a consumer list by mistake, which bare `usize` slab keys allowed.
//!
//! Each key is a slab index in a newtype; [`KeySlab`] is a `slab::Slab` indexed only by its key
//! type. Both are `#[inline]` wrappers: the packet path pays nothing for the types.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

use slab::Slab;

/// A key type of a [`KeySlab`]: a slab index in a newtype.
pub trait Key: Copy {
    /// The key of slab index `i`.
    fn from_index(i: usize) -> Self;
    /// The slab index of this key.
    fn index(self) -> usize;
}

macro_rules! key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(usize);

        impl Key for $name {
            #[inline]
            fn from_index(i: usize) -> Self {
                $name(i)
            }
            #[inline]
            fn index(self) -> usize {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

key!(
    /// A router in the engine's router table.
    RouterKey
);
key!(
    /// A WebRtcTransport or PlainTransport in the engine's transport table.
    TransportKey
);
key!(
    /// A producer in the engine's producer table.
    ProducerKey
);
key!(
    /// A consumer in the engine's consumer table.
    ConsumerKey
);
key!(
    /// A data producer in the engine's data producer table.
    DataProducerKey
);
key!(
    /// A data consumer in the engine's data consumer table.
    DataConsumerKey
);

/// A `slab::Slab` indexed by one key type.
pub struct KeySlab<K, T> {
    slab: Slab<T>,
    _key: PhantomData<K>,
}

impl<K, T> Default for KeySlab<K, T> {
    fn default() -> Self {
        KeySlab {
            slab: Slab::new(),
            _key: PhantomData,
        }
    }
}

impl<K: Key, T> KeySlab<K, T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value`; its key.
    #[inline]
    pub fn insert(&mut self, value: T) -> K {
        K::from_index(self.slab.insert(value))
    }

    /// Removes and returns the value of `key` (panics when `key` is vacant, as `Slab::remove`).
    #[inline]
    pub fn remove(&mut self, key: K) -> T {
        self.slab.remove(key.index())
    }

    /// The value of `key`, if it is occupied.
    #[inline]
    pub fn get(&self, key: K) -> Option<&T> {
        self.slab.get(key.index())
    }

    /// The value of `key`, if it is occupied.
    #[inline]
    pub fn get_mut(&mut self, key: K) -> Option<&mut T> {
        self.slab.get_mut(key.index())
    }

    /// Whether `key` is occupied.
    #[inline]
    pub fn contains(&self, key: K) -> bool {
        self.slab.contains(key.index())
    }

    /// Occupied entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether no entry is occupied.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Every key that may be occupied (`0..capacity`), as an iterator that does not borrow the
    /// table: timers walk it while they mutate entries, without collecting keys (no allocation).
    pub fn slots(&self) -> std::iter::Map<std::ops::Range<usize>, fn(usize) -> K> {
        (0..self.slab.capacity()).map(K::from_index as fn(usize) -> K)
    }

    /// Every entry with its key.
    pub fn iter(&self) -> impl Iterator<Item = (K, &T)> {
        self.slab.iter().map(|(i, v)| (K::from_index(i), v))
    }

    /// Every entry with its key.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (K, &mut T)> {
        self.slab.iter_mut().map(|(i, v)| (K::from_index(i), v))
    }
}

impl<'a, K: Key, T> IntoIterator for &'a KeySlab<K, T> {
    type Item = (K, &'a T);
    type IntoIter = std::iter::Map<slab::Iter<'a, T>, fn((usize, &'a T)) -> (K, &'a T)>;

    fn into_iter(self) -> Self::IntoIter {
        self.slab.iter().map(|(i, v)| (K::from_index(i), v))
    }
}

impl<K: Key, T> Index<K> for KeySlab<K, T> {
    type Output = T;

    #[inline]
    fn index(&self, key: K) -> &T {
        &self.slab[key.index()]
    }
}

impl<K: Key, T> IndexMut<K> for KeySlab<K, T> {
    #[inline]
    fn index_mut(&mut self, key: K) -> &mut T {
        &mut self.slab[key.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_index_their_own_table_and_are_reused_after_remove() {
        let mut t: KeySlab<TransportKey, &str> = KeySlab::new();
        let a = t.insert("a");
        let b = t.insert("b");
        assert_eq!((t[a], t[b]), ("a", "b"));
        assert_eq!(t.remove(a), "a");
        assert!(!t.contains(a) && t.get(a).is_none());
        // The slab reuses the vacant index: a stale key must be dropped by its owner.
        assert_eq!(t.insert("c"), a);
        let entries: Vec<(TransportKey, &str)> = t.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(entries, [(a, "c"), (b, "b")]);
        assert_eq!(format!("{a:?}"), "TransportKey(0)");
    }
}
