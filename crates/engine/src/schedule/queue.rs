//! An in-memory queue of contacts by due time and priority.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use chrono::{DateTime, Utc};

/// One queued contact, as [`DueQueue::pop_due`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueEntry<K> {
    /// The contact.
    pub id: K,
    /// When it became (or becomes) due.
    pub due: DateTime<Utc>,
    /// Higher goes first among due contacts.
    pub priority: i32,
}

#[derive(Clone, Debug)]
struct Slot<K> {
    entry: DueEntry<K>,
    /// Which push this is; an older push of the same id is stale.
    seq: u64,
}

/// Order of the waiting heap (a max-heap, so reversed): earliest due first.
#[derive(Debug)]
struct ByDue<K>(Slot<K>);

/// Order of the ready heap: highest priority, then earliest due, then smallest id, then oldest
/// push.
#[derive(Debug)]
struct ByPriority<K>(Slot<K>);

impl<K: Ord> ByDue<K> {
    fn key(&self) -> (DateTime<Utc>, Reverse<i32>, &K, u64) {
        let e = &self.0.entry;
        (e.due, Reverse(e.priority), &e.id, self.0.seq)
    }
}

impl<K: Ord> ByPriority<K> {
    fn key(&self) -> (i32, Reverse<DateTime<Utc>>, Reverse<&K>, Reverse<u64>) {
        let e = &self.0.entry;
        (
            e.priority,
            Reverse(e.due),
            Reverse(&e.id),
            Reverse(self.0.seq),
        )
    }
}

macro_rules! ord_by_key {
    ($t:ident) => {
        impl<K: Ord> PartialEq for $t<K> {
            fn eq(&self, o: &Self) -> bool {
                self.key() == o.key()
            }
        }
        impl<K: Ord> Eq for $t<K> {}
        impl<K: Ord> PartialOrd for $t<K> {
            fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
                Some(self.cmp(o))
            }
        }
        impl<K: Ord> Ord for $t<K> {
            fn cmp(&self, o: &Self) -> Ordering {
                self.key().cmp(&o.key())
            }
        }
    };
}
ord_by_key!(ByDue);
ord_by_key!(ByPriority);

/// Contacts waiting for their due time; among those due, the highest priority goes first.
///
/// Two binary heaps: one by due time for the waiting, one by priority for those whose time has
/// come (moved over by [`pop_due`](Self::pop_due)). The order is total and deterministic:
/// priority (higher first), then due time (earlier first), then id (smaller first), then the
/// order of pushes. An id is in the queue at most once: pushing it again replaces it, and
/// [`remove`](Self::remove) takes it out (both O(log n), stale heap entries are skipped and
/// compacted away).
#[derive(Debug)]
pub struct DueQueue<K> {
    waiting: BinaryHeap<Reverse<ByDue<K>>>,
    ready: BinaryHeap<ByPriority<K>>,
    /// The ready entries by due time (due, push), for [`next_due`](Self::next_due).
    ready_dues: BinaryHeap<Reverse<(DateTime<Utc>, u64)>>,
    /// Push number → id of the entries in `ready` (to tell live from stale in `ready_dues`).
    ready_ids: HashMap<u64, K>,
    live: HashMap<K, u64>,
    seq: u64,
}

impl<K: Ord + Hash + Clone> Default for DueQueue<K> {
    fn default() -> Self {
        DueQueue::new()
    }
}

impl<K: Ord + Hash + Clone> DueQueue<K> {
    /// An empty queue.
    pub fn new() -> DueQueue<K> {
        DueQueue {
            waiting: BinaryHeap::new(),
            ready: BinaryHeap::new(),
            ready_dues: BinaryHeap::new(),
            ready_ids: HashMap::new(),
            live: HashMap::new(),
            seq: 0,
        }
    }

    /// Queues `id` for `due` with `priority` (higher first), replacing an earlier push of the
    /// same id. Returns whether it replaced one.
    pub fn push(&mut self, id: K, due: DateTime<Utc>, priority: i32) -> bool {
        self.seq += 1;
        let replaced = self.live.insert(id.clone(), self.seq).is_some();
        self.waiting.push(Reverse(ByDue(Slot {
            entry: DueEntry { id, due, priority },
            seq: self.seq,
        })));
        self.compact_if_sparse();
        replaced
    }

    /// Takes `id` out of the queue; whether it was there.
    pub fn remove(&mut self, id: &K) -> bool {
        let removed = self.live.remove(id).is_some();
        self.compact_if_sparse();
        removed
    }

    /// Whether `id` is queued.
    pub fn contains(&self, id: &K) -> bool {
        self.live.contains_key(id)
    }

    /// How many contacts are queued.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Up to `n` contacts due at `now` (due ≤ now), highest priority first, taken out of the
    /// queue.
    pub fn pop_due(&mut self, now: DateTime<Utc>, n: usize) -> Vec<DueEntry<K>> {
        while let Some(Reverse(top)) = self.waiting.peek() {
            if top.0.entry.due > now {
                break;
            }
            let Some(Reverse(ByDue(slot))) = self.waiting.pop() else {
                break;
            };
            if self.is_live(&slot) {
                self.ready_dues.push(Reverse((slot.entry.due, slot.seq)));
                self.ready_ids.insert(slot.seq, slot.entry.id.clone());
                self.ready.push(ByPriority(slot));
            }
        }
        let mut out = Vec::with_capacity(n.min(self.ready.len()));
        while out.len() < n {
            let Some(ByPriority(slot)) = self.ready.pop() else {
                break;
            };
            self.ready_ids.remove(&slot.seq);
            if self.is_live(&slot) {
                self.live.remove(&slot.entry.id);
                out.push(slot.entry);
            }
        }
        out
    }

    /// When to call [`pop_due`](Self::pop_due) next: the earliest due time of the queued
    /// contacts (in the past if some are due already), `None` if the queue is empty.
    pub fn next_due(&mut self) -> Option<DateTime<Utc>> {
        self.drop_stale_tops();
        let w = self.waiting.peek().map(|Reverse(s)| s.0.entry.due);
        let r = self.ready_dues.peek().map(|Reverse((due, _))| *due);
        match (w, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn is_live(&self, slot: &Slot<K>) -> bool {
        self.live.get(&slot.entry.id) == Some(&slot.seq)
    }

    fn drop_stale_tops(&mut self) {
        while let Some(Reverse(top)) = self.waiting.peek() {
            if self.is_live(&top.0) {
                break;
            }
            self.waiting.pop();
        }
        while let Some(Reverse((_, seq))) = self.ready_dues.peek() {
            let seq = *seq;
            if self
                .ready_ids
                .get(&seq)
                .is_some_and(|id| self.live.get(id) == Some(&seq))
            {
                break;
            }
            self.ready_dues.pop();
        }
    }

    /// Rebuilds the heaps when stale entries outnumber live ones (keeps memory O(len)).
    fn compact_if_sparse(&mut self) {
        let stored = self.waiting.len() + self.ready.len() + self.ready_dues.len();
        if stored <= 64 || stored <= 3 * self.live.len() {
            return;
        }
        let live = &self.live;
        let keep = |s: &Slot<K>| live.get(&s.entry.id) == Some(&s.seq);
        let waiting = std::mem::take(&mut self.waiting);
        self.waiting = waiting
            .into_iter()
            .filter(|Reverse(s)| keep(&s.0))
            .collect();
        let ready = std::mem::take(&mut self.ready);
        self.ready = ready.into_iter().filter(|s| keep(&s.0)).collect();
        self.ready_ids = self
            .ready
            .iter()
            .map(|s| (s.0.seq, s.0.entry.id.clone()))
            .collect();
        self.ready_dues = self
            .ready
            .iter()
            .map(|s| Reverse((s.0.entry.due, s.0.seq)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::TimeDelta::minutes(min)
    }

    fn ids(v: Vec<DueEntry<u64>>) -> Vec<u64> {
        v.into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn due_then_priority_then_id() {
        let mut q = DueQueue::new();
        q.push(5, t(10), 0);
        q.push(3, t(5), 0);
        q.push(4, t(5), 0);
        q.push(9, t(8), 7);
        q.push(1, t(20), 100);
        assert_eq!(q.len(), 5);
        assert!(q.pop_due(t(4), 10).is_empty());
        // All of 3, 4, 9, 5 are due at 10: priority first, then due, then id.
        assert_eq!(ids(q.pop_due(t(10), 3)), [9, 3, 4]);
        assert_eq!(q.next_due(), Some(t(10)));
        assert_eq!(ids(q.pop_due(t(10), 3)), [5]);
        assert_eq!(q.next_due(), Some(t(20)));
        assert_eq!(ids(q.pop_due(t(30), 3)), [1]);
        assert!(q.is_empty());
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn push_replaces_and_remove_takes_out() {
        let mut q = DueQueue::new();
        assert!(!q.push(1u64, t(1), 0));
        assert!(q.push(1, t(50), 0));
        q.push(2, t(2), 0);
        assert_eq!(q.len(), 2);
        assert_eq!(ids(q.pop_due(t(10), 10)), [2]);
        assert!(q.remove(&1));
        assert!(!q.remove(&1));
        assert!(q.pop_due(t(100), 10).is_empty());
        // A removed entry that was already moved to the ready heap stays gone.
        q.push(7, t(1), 0);
        q.push(8, t(1), 0);
        assert_eq!(ids(q.pop_due(t(1), 1)), [7]);
        assert!(q.remove(&8));
        assert!(q.pop_due(t(2), 5).is_empty());
    }

    #[test]
    fn stale_entries_are_compacted() {
        let mut q = DueQueue::new();
        for round in 0..100 {
            for id in 0..10u64 {
                q.push(id, t(round), 0);
            }
        }
        assert_eq!(q.len(), 10);
        assert!(q.waiting.len() + q.ready.len() + q.ready_dues.len() <= 64);
        assert_eq!(ids(q.pop_due(t(1000), 100)), (0..10).collect::<Vec<_>>());
    }
}
