//! One timer heap for many state machines: each key has at most one live deadline; re-arming
//! leaves the old entry in the heap, and it is skipped when it surfaces (lazy deletion). The
//! earliest live deadline is the driver's only timer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct TimerHeap<K> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
    armed: HashMap<K, Instant>,
}

impl<K: Copy + Eq + Hash + Ord> Default for TimerHeap<K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            armed: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash + Ord> TimerHeap<K> {
    /// Set `key`'s deadline (`None` disarms it).
    pub fn arm(&mut self, key: K, at: Option<Instant>) {
        match at {
            Some(at) => {
                if self.armed.get(&key) != Some(&at) {
                    self.armed.insert(key, at);
                    self.heap.push(Reverse((at, key)));
                }
            }
            None => {
                self.armed.remove(&key);
            }
        }
        self.prune();
    }

    /// The next key whose deadline is at or before `now` (disarmed as it is returned).
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        while let Some(Reverse((at, key))) = self.heap.peek().copied() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if self.armed.get(&key) == Some(&at) {
                self.armed.remove(&key);
                return Some(key);
            }
        }
        None
    }

    /// The earliest live deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Drop superseded entries from the top, so `next_deadline` is exact.
    fn prune(&mut self) {
        while let Some(Reverse((at, key))) = self.heap.peek().copied() {
            if self.armed.get(&key) == Some(&at) {
                break;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rearming_replaces_and_disarming_removes() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut h = TimerHeap::default();
        h.arm(1u64, Some(t0 + s(5)));
        h.arm(2, Some(t0 + s(3)));
        h.arm(2, Some(t0 + s(7))); // superseded 3 s entry must not fire
        assert_eq!(h.next_deadline(), Some(t0 + s(5)));
        assert_eq!(h.pop_due(t0 + s(4)), None);
        assert_eq!(h.pop_due(t0 + s(6)), Some(1));
        assert_eq!(h.pop_due(t0 + s(6)), None);
        h.arm(2, None);
        assert_eq!(h.pop_due(t0 + s(60)), None);
        assert_eq!(h.next_deadline(), None);
    }
}
