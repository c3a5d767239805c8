#!/usr/bin/env python3
"""Writes scenarios/validation/traces/mmpp_bursts.csv: a synthetic request trace for the
validation load ob_mmpp_trace.yaml (agent settings are chosen on validation loads, never on
the evaluation loads).

The process is a Markov-modulated Poisson process, a textbook model of bursty request streams,
not a fit to any bundled trace: a slow level that changes every 60-180 s (0.4-1.6x the mean)
times a fast state that switches between quiet (0.05x), steady (1x) and surge (4x), holding each
for an exponential time of mean 3 s, 6 s and 2 s. One row is one batch of requests (the scenario's
`rate_scale` sets the batch size). Seeded, so the file is the same on every machine:

    python3 scripts/make_validation_trace.py
"""
import os
import random

SEED = 20261128
HORIZON_S = 900.0
MEAN_ROWS_PER_S = 20.0  # rows per second on average, before the batch size
FAST = [(0.05, 3.0), (1.0, 6.0), (4.0, 2.0)]  # (rate factor, mean holding seconds)


def mmpp_times(seed, mean_rows_per_s, horizon_s=HORIZON_S):
    """The row times of one MMPP trace (see above), from `seed`; `scripts/fresh_loads.py` draws
    its unbundled trace with the same process."""
    rng = random.Random(seed)
    # Slow level: piecewise constant.
    slow = []
    t = 0.0
    while t < horizon_s:
        d = rng.uniform(60.0, 180.0)
        slow.append((t, min(t + d, horizon_s), rng.uniform(0.4, 1.6)))
        t += d
    # Fast state: a continuous-time Markov chain, next state uniform among the other two.
    fast = []
    t, s = 0.0, 1
    while t < horizon_s:
        d = rng.expovariate(1.0 / FAST[s][1])
        fast.append((t, min(t + d, horizon_s), FAST[s][0]))
        t += d
        s = rng.choice([k for k in range(3) if k != s])
    # Rate on the union of both partitions, then normalised to the mean asked for.
    cuts = sorted({0.0, horizon_s} | {a for a, _, _ in slow} | {a for a, _, _ in fast})
    cuts = [c for c in cuts if c <= horizon_s]

    def at(parts, x):
        return next(f for a, b, f in parts if a <= x < b)

    pieces = [(a, b, at(slow, (a + b) / 2) * at(fast, (a + b) / 2)) for a, b in zip(cuts, cuts[1:]) if b > a]
    mean = sum((b - a) * f for a, b, f in pieces) / horizon_s
    rows = []
    for a, b, f in pieces:
        rate = mean_rows_per_s * f / mean
        t = a + rng.expovariate(rate)
        while t < b:
            rows.append(t)
            t += rng.expovariate(rate)
    return rows


def write_trace(path, rows):
    with open(path, "w") as f:
        f.write("time_s\n")
        for t in rows:
            f.write(f"{t:.3f}\n")


def main():
    rows = mmpp_times(SEED, MEAN_ROWS_PER_S)
    out = os.path.join(os.path.dirname(__file__), "..", "scenarios", "validation", "traces", "mmpp_bursts.csv")
    write_trace(out, rows)
    print(f"{out}: {len(rows)} rows over {HORIZON_S:.0f} s")


if __name__ == "__main__":
    main()
