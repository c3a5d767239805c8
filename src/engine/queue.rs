//! The pending-event queue: a binary min-heap of packed `(time, seq)` keys.
//!
//! `seq` is a counter stamped on every push, so events scheduled for the same microsecond pop in the
//! order they were pushed (FIFO for equal times). The order is therefore total and needs no tie rule
//! anywhere else.
//!
//! Why not `std::collections::BinaryHeap<(time, seq, event)>`: its entries would carry the payload
//! through every sift, and its tuple comparison branches twice. Here the heap holds one `u128` per
//! event (one comparison), payloads stay put in a slab, and pop moves the hole to the bottom before
//! placing the last key (fewer comparisons). Measured with `benches/event_queue.rs` on the classic
//! hold model against a bare `BinaryHeap<Reverse<(u64, u64)>>`: a 4-ary and an 8-ary layout were
//! tried and lost at 100 and 10,000 pending events (their min-of-children branches mispredict), so
//! the heap is binary.
//!
//! FIFO lanes: a stream of events whose times never decrease in push order (the arrival process;
//! calls delayed by a constant network latency) needs no heap. Such events wait in a lane, a plain
//! FIFO of keys stamped from the same sequence counter, and `pop` takes the smallest of the heap's
//! top and the lanes' fronts. The order is exactly the one a single heap would give, at one
//! comparison per lane instead of a sift up and down per event.

use std::collections::VecDeque;

use super::SimTime;

/// Bits of the key's low word that hold the payload's slot; the rest hold the sequence number.
const SLOT_BITS: u32 = 24;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
/// Most events that may be pending at once (16.7 million).
pub const MAX_PENDING: usize = 1 << SLOT_BITS;
/// Most events one queue may ever receive (1.1 trillion: 30 hours at 10 million events/s).
pub const MAX_PUSHES: u64 = 1 << (64 - SLOT_BITS);

const ARITY: usize = 2;

/// Where [`EventQueue`]'s earliest event waits, besides a lane's index.
const FROM_HEAP: usize = usize::MAX;
const FROM_NOWHERE: usize = usize::MAX - 1;

/// A queue of pending events of type `E`, popped in `(time, insertion order)` order.
///
/// The heap holds only 16-byte keys, `time << 64 | seq << 24 | slot`: comparing two keys as `u128`
/// compares `(time, seq)`, because `seq` is unique. The payloads wait in a slab at `slot`, so sifting
/// moves 16 bytes whatever the event's size.
pub struct EventQueue<E: Copy> {
    heap: Vec<u128>,
    payloads: Vec<E>,
    free_slots: Vec<u32>,
    next_seq: u64,
    /// FIFO lanes: keys (slot bits unused) ascending from front to back, with their payloads.
    lanes: Vec<VecDeque<(u128, E)>>,
}

impl<E: Copy> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Copy> EventQueue<E> {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    pub fn with_capacity(n: usize) -> Self {
        Self::with_lanes(n, 0)
    }

    /// A queue with room for `n` heap events and `lanes` FIFO lanes (see [`EventQueue::push_fifo`]).
    pub fn with_lanes(n: usize, lanes: usize) -> Self {
        EventQueue {
            heap: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            free_slots: Vec::new(),
            next_seq: 0,
            lanes: (0..lanes).map(|_| VecDeque::new()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len() + self.lanes.iter().map(VecDeque::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many events have ever been pushed (the next sequence number).
    pub fn pushed(&self) -> u64 {
        self.next_seq
    }

    /// The smallest pending key and where it waits (a lane's index, or [`FROM_HEAP`]).
    #[inline(always)]
    fn earliest(&self) -> Option<(u128, usize)> {
        let (mut best, mut from) = match self.heap.first() {
            Some(&k) => (k, FROM_HEAP),
            None => (u128::MAX, FROM_NOWHERE),
        };
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(&(k, _)) = lane.front() {
                if k < best || from == FROM_NOWHERE {
                    (best, from) = (k, i);
                }
            }
        }
        (from != FROM_NOWHERE).then_some((best, from))
    }

    #[inline(always)]
    fn next_key(&mut self, time: SimTime, slot: u64) -> u128 {
        assert!(self.next_seq < MAX_PUSHES, "event queue: more than {MAX_PUSHES} events pushed");
        let key = ((time.0 as u128) << 64) | ((self.next_seq << SLOT_BITS) | slot) as u128;
        self.next_seq += 1;
        key
    }

    /// Schedules `event` at `time` in FIFO lane `lane`: for a stream of events whose times never
    /// decrease from one push to the next. Pops in exactly the order [`EventQueue::push`] would
    /// give; an event earlier than the lane's last goes to the heap instead, so a caller that
    /// breaks the promise costs speed, never order.
    #[inline]
    pub fn push_fifo(&mut self, lane: usize, time: SimTime, event: E) {
        let in_order = self.lanes[lane].back().is_none_or(|&(k, _)| (k >> 64) as u64 <= time.0);
        if !in_order {
            return self.push(time, event);
        }
        let key = self.next_key(time, 0);
        self.lanes[lane].push_back((key, event));
    }

    /// Removes and returns the earliest event if it is due at or before `until`.
    #[inline]
    pub fn pop_until(&mut self, until: SimTime) -> Option<(SimTime, E)> {
        let (key, lane) = self.earliest()?;
        if (key >> 64) as u64 > until.0 {
            return None;
        }
        if lane == FROM_HEAP {
            self.pop_heap()
        } else {
            self.lanes[lane].pop_front().map(|(k, e)| (SimTime((k >> 64) as u64), e))
        }
    }

    /// Schedules `event` at `time`. Events at equal times pop in push order.
    ///
    /// Panics past `MAX_PENDING` pending events or `MAX_PUSHES` pushes in all: limits no
    /// simulation of this crate approaches (its pending events are bounded by requests in flight).
    #[inline]
    pub fn push(&mut self, time: SimTime, event: E) {
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.payloads[s as usize] = event;
                s as u64
            }
            None => {
                assert!(self.payloads.len() < MAX_PENDING, "event queue: more than {MAX_PENDING} pending events");
                self.payloads.push(event);
                (self.payloads.len() - 1) as u64
            }
        };
        let key = self.next_key(time, slot);
        self.heap.push(key);
        self.sift_up(self.heap.len() - 1, key);
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        self.pop_until(SimTime(u64::MAX))
    }

    /// Removes and returns the heap's earliest event.
    #[inline(always)]
    fn pop_heap(&mut self) -> Option<(SimTime, E)> {
        let last = self.heap.pop()?;
        let top = if self.heap.is_empty() {
            last
        } else {
            let top = self.heap[0];
            // Move the hole from the root down to a leaf along the smallest children, then let `last`
            // bubble up from there: `last` came from the bottom, so it rarely climbs far, and this
            // needs one comparison per level fewer than a classic sift-down.
            let len = self.heap.len();
            let mut hole = 0;
            loop {
                let first = hole * ARITY + 1;
                if first >= len {
                    break;
                }
                let end = (first + ARITY).min(len);
                let mut best = first;
                let mut best_key = self.heap[first];
                for c in first + 1..end {
                    let k = self.heap[c];
                    if k < best_key {
                        best = c;
                        best_key = k;
                    }
                }
                self.heap[hole] = best_key;
                hole = best;
            }
            self.sift_up(hole, last);
            top
        };
        let slot = (top as u64 & SLOT_MASK) as u32;
        self.free_slots.push(slot);
        Some((SimTime((top >> 64) as u64), self.payloads[slot as usize]))
    }

    #[inline(always)]
    fn sift_up(&mut self, mut hole: usize, key: u128) {
        while hole > 0 {
            let parent = (hole - 1) / ARITY;
            let p = self.heap[parent];
            if key < p {
                self.heap[hole] = p;
                hole = parent;
            } else {
                break;
            }
        }
        self.heap[hole] = key;
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

    /// Lanes change nothing about the order: the same pushes into a lane-less queue pop the same.
    #[test]
    fn fifo_lanes_pop_in_the_order_of_a_single_heap() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(11);
        let (mut laned, mut plain) = (EventQueue::with_lanes(0, 2), EventQueue::new());
        let mut now = 0u64;
        for id in 0..30_000u32 {
            if rng.gen_bool(0.5) || laned.is_empty() {
                // Lane 0: a constant delay (always in order). Lane 1: delays of 0, 20 or 40, so
                // some pushes are earlier than the lane's last and go to the heap. Else the heap.
                // Equal times are common, so the tie order is tested too.
                let (time, lane) = match rng.gen_range(0..4) {
                    0 => (now + 50, Some(0)),
                    1 => (now + rng.gen_range(0..3) * 20, Some(1)),
                    _ => (now + rng.gen_range(0..200), None),
                };
                match lane {
                    Some(l) => laned.push_fifo(l, SimTime(time), id),
                    None => laned.push(SimTime(time), id),
                }
                plain.push(SimTime(time), id);
                assert_eq!(laned.len(), plain.len());
            } else {
                let got = laned.pop();
                assert_eq!(got, plain.pop());
                now = got.unwrap().0 .0;
            }
        }
        while let Some(got) = laned.pop() {
            assert_eq!(Some(got), plain.pop());
        }
        assert!(plain.is_empty());
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
