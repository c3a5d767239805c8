"""Analyse a sweep with pandas: the mean SLO violation and cost of each policy per scenario, and
each run's numbers.

    scalesim sweep configs/sweeps/baselines.yaml --out runs/sweep   # or any sweep
    python examples/python/sweep_analysis.py runs/sweep
"""

import sys

import scalesim

tables = scalesim.load_sweep(sys.argv[1] if len(sys.argv) > 1 else "runs/sweep")
for name, table in tables.items():
    if name == "manifest":
        continue
    print(f"== {name}.csv: {len(table)} rows, columns {list(table.columns)[:8]}...")
runs = next((t for n, t in tables.items() if n != "manifest" and "slo_violation_pct" in t.columns), None)
if runs is not None:
    keys = [c for c in ("scenario", "policy") if c in runs.columns]
    print(runs.groupby(keys)[["slo_violation_pct", "cost"]].agg(["mean", "std", "count"]).round(3))
