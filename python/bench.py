"""Speed of the binding (run from the project root after `pip install ./python`):

    python python/bench.py

1. One environment's step from Python against the same steps from Rust (the
   `env_trajectory --bench` example: same scenario, same action cycle, fluid fidelity).
2. A vector environment of 16 fluid environments from Python, random actions, steps/s in all.
Both on Online Boutique peak (11 services, 15 s decisions, the scenario's 1 s timeline), and
again with `timeline_interval_s=15` (the fluid model integrated in 15 s steps).
"""

import os
import subprocess
import sys
import time

# `python python/bench.py` puts this folder first on the path, where `scalesim/` is the source
# tree (no compiled core, or a stale one from a `maturin develop`): measure the installed package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import numpy as np  # noqa: E402

import scalesim  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PEAK = os.path.join(ROOT, "scenarios", "online_boutique_peak.yaml")
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))


def python_single(scenario, **kw):
    env = scalesim.make_env(scenario, **kw)
    env.reset(options={"episode_seed": 1})
    n, k, episode = 0, 0, 1
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < SECONDS:
        for _ in range(100):
            _, _, term, trunc, _ = env.step(k % 55)
            k += 1
            n += 1
            if term or trunc:
                episode += 1
                env.reset(options={"episode_seed": episode})
    return n / (time.perf_counter() - t0)


def rust_single(scenario, steps):
    exe = os.path.join(ROOT, "target", "release", "examples", "env_trajectory")
    if not os.path.exists(exe):
        subprocess.run(["cargo", "build", "--release", "--example", "env_trajectory", "-q"], cwd=ROOT, check=True)
    out = subprocess.run([exe, scenario, "1", "single", f"--bench {steps}"], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def python_vector(scenario, num_envs=16, **kw):
    v = scalesim.make_vec_env(scenario, num_envs, **kw)
    v.reset(seed=1)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 55, size=num_envs) for _ in range(64)]
    n, k = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < SECONDS:
        v.step(actions[k % 64])
        k += 1
        n += num_envs
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":
    # The Rust example runs a scenario as its file says: the coarse case gets a copy of peak with
    # a 15 s timeline (the same thing `timeline_interval_s=15` does from Python).
    coarse = os.path.join(ROOT, "target", "bench_peak_15s.yaml")
    with open(PEAK) as f, open(coarse, "w") as g:
        g.write(f.read().replace("timeline_interval_s: 1\n", "timeline_interval_s: 15\n"))
    for label, scenario, rust_steps in (("1 s timeline", PEAK, 60_000), ("15 s timeline", coarse, 300_000)):
        py = python_single(scenario)
        rs = rust_single(scenario, rust_steps)
        vec = python_vector(scenario)
        print(f"{label}: one env from Python {py:,.0f} steps/s, from Rust {rs:,.0f} steps/s "
              f"(Python's step takes {rs / py:.2f}x Rust's); 16-env vector from Python {vec:,.0f} steps/s")
