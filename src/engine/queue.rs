//! The pending-event queue: a 4-ary min-heap ordered by `(time, seq)`.
//!
//! `seq` is a counter stamped on every push, so events scheduled for the same microsecond pop in the
//! order they were pushed (FIFO for equal times). The order is therefore total and needs no tie rule
//! anywhere else.
//!
//! Why a 4-ary heap and not `std::collections::BinaryHeap`: a 4-ary heap is half as deep, and its four
//! children share a cache line or two, so a pop touches fewer lines. Events are small `Copy` values, so
//! the sift loops move them with plain copies into a "hole" instead of swapping. `benches/event_queue.rs`
//! measures it against a bare `BinaryHeap<Reverse<(u64, u64)>>` on the classic hold model.

use super::SimTime;

#[derive(Clone, Copy)]
struct Entry<E> {
    time: u64,
    seq: u64,
    event: E,
}

impl<E> Entry<E> {
    #[inline(always)]
    fn before(&self, other: &Entry<E>) -> bool {
        self.time < other.time || (self.time == other.time && self.seq < other.seq)
    }
}

/// A queue of pending events of type `E`, popped in `(time, insertion order)` order.
pub struct EventQueue<E: Copy> {
    heap: Vec<Entry<E>>,
    next_seq: u64,
}

const ARITY: usize = 4;

impl<E: Copy> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Copy> EventQueue<E> {
    pub fn new() -> Self {
        EventQueue { heap: Vec::new(), next_seq: 0 }
    }

    pub fn with_capacity(n: usize) -> Self {
        EventQueue { heap: Vec::with_capacity(n), next_seq: 0 }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// How many events have ever been pushed (the next sequence number).
    pub fn pushed(&self) -> u64 {
        self.next_seq
    }

    /// Time of the earliest pending event.
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.first().map(|e| SimTime(e.time))
    }

    /// Schedules `event` at `time`. Events at equal times pop in push order.
    #[inline]
    pub fn push(&mut self, time: SimTime, event: E) {
        let entry = Entry { time: time.0, seq: self.next_seq, event };
        self.next_seq += 1;
        self.heap.push(entry);
        self.sift_up(self.heap.len() - 1, entry);
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some((SimTime(last.time), last.event));
        }
        let top = self.heap[0];
        // Move the hole from the root down to a leaf along the smallest children, then let `last`
        // bubble up from there: `last` came from the bottom, so it rarely climbs far, and this needs
        // one comparison per level fewer than a classic sift-down.
        let len = self.heap.len();
        let mut hole = 0;
        loop {
            let first = hole * ARITY + 1;
            if first >= len {
                break;
            }
            let end = (first + ARITY).min(len);
            let mut best = first;
            for c in first + 1..end {
                if self.heap[c].before(&self.heap[best]) {
                    best = c;
                }
            }
            self.heap[hole] = self.heap[best];
            hole = best;
        }
        self.sift_up(hole, last);
        Some((SimTime(top.time), top.event))
    }

    #[inline(always)]
    fn sift_up(&mut self, mut hole: usize, entry: Entry<E>) {
        while hole > 0 {
            let parent = (hole - 1) / ARITY;
            if entry.before(&self.heap[parent]) {
                self.heap[hole] = self.heap[parent];
                hole = parent;
            } else {
                break;
            }
        }
        self.heap[hole] = entry;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn equal_times_pop_in_insertion_order() {
        let mut q = EventQueue::new();
        q.push(SimTime(5), 'a');
        q.push(SimTime(3), 'b');
        q.push(SimTime(5), 'c');
        q.push(SimTime(3), 'd');
        q.push(SimTime(5), 'e');
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec!['b', 'd', 'a', 'c', 'e']);
    }

    #[test]
    fn matches_a_sorted_reference_under_random_load() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let mut q = EventQueue::new();
        let mut reference: Vec<(u64, u64)> = Vec::new();
        let mut seq = 0u64;
        let mut popped = Vec::new();
        for _ in 0..20_000 {
            if rng.gen_bool(0.55) || q.is_empty() {
                let t = rng.gen_range(0..500u64);
                q.push(SimTime(t), seq);
                reference.push((t, seq));
                seq += 1;
            } else {
                popped.push(q.pop().unwrap());
                reference.sort();
                let want = reference.remove(0);
                let got = popped.last().unwrap();
                assert_eq!((got.0 .0, got.1), want);
            }
        }
    }
}
