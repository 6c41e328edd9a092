//! Room → worker assignment, shared by every thread. A mutex is fine: it is touched once per
//! connection, never on the packet path.
//!
//! An entry lives while at least one connection (accepted, or still being decided) refers to
//! the room, so every connection of a room id goes to the same worker; the worker itself creates
//! and closes the room's state lazily. This makes "room closes when its last peer leaves" race
//! free against a connection arriving at the same moment: that connection holds a reference and
//! simply recreates the room on the same worker.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug)]
struct Entry {
    worker: usize,
    refs: usize,
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    workers: usize,
    rooms: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    /// A registry for `workers` workers (at least 1).
    pub fn new(workers: usize) -> Registry {
        Registry {
            workers: workers.max(1),
            rooms: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a reference on `room_id` and returns its worker; a new room goes to the worker
    /// with the fewest rooms (lowest index on ties).
    pub fn acquire(&self, room_id: &str) -> usize {
        let mut rooms = self.lock();
        if let Some(e) = rooms.get_mut(room_id) {
            e.refs += 1;
            return e.worker;
        }
        let mut counts = vec![0usize; self.workers];
        for e in rooms.values() {
            counts[e.worker] += 1;
        }
        let worker = counts
            .iter()
            .enumerate()
            .min_by_key(|(i, c)| (**c, *i))
            .map(|(i, _)| i)
            .unwrap_or(0);
        rooms.insert(room_id.to_owned(), Entry { worker, refs: 1 });
        worker
    }

    /// Drops a reference taken by [`Registry::acquire`]; the entry goes with the last one.
    pub fn release(&self, room_id: &str) {
        let mut rooms = self.lock();
        if let Some(e) = rooms.get_mut(room_id) {
            e.refs = e.refs.saturating_sub(1);
            if e.refs == 0 {
                rooms.remove(room_id);
            }
        }
    }

    /// The worker of a room that currently has connections.
    pub fn worker_of(&self, room_id: &str) -> Option<usize> {
        self.lock().get(room_id).map(|e| e.worker)
    }

    /// Number of rooms with connections.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no room has connections.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_new_rooms_and_keeps_existing() {
        let r = Registry::new(3);
        assert_eq!(r.acquire("a"), 0);
        assert_eq!(r.acquire("b"), 1);
        assert_eq!(r.acquire("c"), 2);
        assert_eq!(r.acquire("d"), 0);
        assert_eq!(r.acquire("b"), 1, "same room, same worker");
        r.release("b");
        assert_eq!(r.worker_of("b"), Some(1));
        r.release("b");
        assert_eq!(r.worker_of("b"), None, "last reference removes the entry");
        assert_eq!(r.acquire("e"), 1, "worker 1 has the fewest rooms now");
        assert_eq!(r.len(), 4);
        r.release("missing");
    }
}
