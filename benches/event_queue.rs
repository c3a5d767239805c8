//! Event-queue benchmark: the classic hold model.
//!
//! The queue is filled with N pending events; then each step pops the earliest event and pushes
//! one at `popped time + exponential increment` (mean 1000 us), so the queue size stays N. The same
//! pre-drawn increments drive scalesim's `EventQueue` and a bare `std::collections::BinaryHeap` of
//! `Reverse((time, seq))`, in the same run. Prints events/s for both and their ratio.
//!
//! Run: `cargo bench --bench event_queue`

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::Instant;

use rand::SeedableRng;
use rand_distr::{Distribution, Exp};
use scalesim::engine::{EventQueue, SimTime};

/// An event payload of the simulator's size (8 bytes: a tag and a u32 handle).
#[derive(Clone, Copy)]
#[allow(dead_code)]
enum Ev {
    A(u32),
    B(u32),
}

fn increments(n: usize) -> Vec<u64> {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(42);
    let exp = Exp::new(1.0 / 1000.0).unwrap();
    (0..n).map(|_| exp.sample(&mut rng) as u64).collect()
}

fn hold_scalesim(pending: usize, steps: usize, inc: &[u64]) -> f64 {
    let mut q = EventQueue::with_capacity(pending);
    for (i, &d) in inc[..pending].iter().enumerate() {
        q.push(SimTime(d), Ev::A(i as u32));
    }
    let start = Instant::now();
    for k in 0..steps {
        let (t, e) = q.pop().unwrap();
        let payload = match e {
            Ev::A(x) | Ev::B(x) => x,
        };
        q.push(SimTime(t.0 + inc[k % inc.len()]), Ev::B(payload));
    }
    black_box(q.len());
    steps as f64 / start.elapsed().as_secs_f64()
}

fn hold_binary_heap(pending: usize, steps: usize, inc: &[u64]) -> f64 {
    let mut q: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::with_capacity(pending);
    let mut seq = 0u64;
    for &d in &inc[..pending] {
        q.push(Reverse((d, seq)));
        seq += 1;
    }
    let start = Instant::now();
    for k in 0..steps {
        let Reverse((t, _)) = q.pop().unwrap();
        q.push(Reverse((t + inc[k % inc.len()], seq)));
        seq += 1;
    }
    black_box(q.len());
    steps as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let inc = increments(1 << 20);
    for pending in [100usize, 10_000, 100_000] {
        let steps = 5_000_000;
        // Warm up both, then take the best of 5 alternating rounds.
        hold_scalesim(pending, steps / 10, &inc);
        hold_binary_heap(pending, steps / 10, &inc);
        let (mut ours, mut heap) = (0.0f64, 0.0f64);
        for _ in 0..5 {
            ours = ours.max(hold_scalesim(pending, steps, &inc));
            heap = heap.max(hold_binary_heap(pending, steps, &inc));
        }
        println!(
            "hold model, {pending:>6} pending: EventQueue {:>6.2} M events/s, bare BinaryHeap<(time, seq)> {:>6.2} M events/s, ratio {:.2}x",
            ours / 1e6,
            heap / 1e6,
            ours / heap
        );
    }
}
