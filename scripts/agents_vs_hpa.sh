#!/usr/bin/env bash
# Trains MLP-PPO, GCN-PPO and GAT-PPO (5 seeds each) on Online Boutique offpeak + peak + fluctuating
# at fluid fidelity, evaluates each on the held-out rush shape and the real Azure trace at request
# fidelity, next to the HPA at CPU 60%, and prints a table (mean and 95% CI over seeds).
# Run from the project root after `cargo build --release`:  STEPS=30000 scripts/agents_vs_hpa.sh
# AGENTS picks the agents (default `mlp gcn gat`; `gatfull` is GAT-PPO with the node-type and
# CPU-quota heads, configs/agents/gat_ppo_full_action.yaml).
set -euo pipefail
STEPS=${STEPS:-30000}
OUT=${OUT:-runs/agents_vs_hpa}
AGENTS=${AGENTS:-mlp gcn gat}
B=./target/release/scalesim
mkdir -p "$OUT"
for enc in $AGENTS; do
  case "$enc" in
    gatfull) cfg=configs/agents/gat_ppo_full_action.yaml ;;
    *) cfg=configs/agents/${enc}_ppo.yaml ;;
  esac
  for seed in 1 2 3 4 5; do
    "$B" train --agent "$cfg" \
      --scenario scenarios/online_boutique_offpeak.yaml --scenario scenarios/online_boutique_peak.yaml \
      --scenario scenarios/online_boutique_fluctuating.yaml \
      --steps "$STEPS" --seed "$seed" --out "$OUT/train_${enc}_s$seed" -q >/dev/null
    for sc in rush azure_trace; do
      "$B" eval --checkpoint "$OUT/train_${enc}_s$seed/checkpoint.ckpt" --scenario scenarios/online_boutique_$sc.yaml \
        --seed "$seed" --out "$OUT/eval_${enc}-ppo_${sc}_s$seed" 2>/dev/null
    done
  done
done
for seed in 1 2 3 4 5; do
  for sc in rush azure_trace; do
    "$B" run scenarios/online_boutique_$sc.yaml --policy hpa --policy-config configs/policies/hpa_cpu60.yaml \
      --seed "$seed" --out "$OUT/eval_hpa60_${sc}_s$seed" -q
  done
done
python3 - "$OUT" <<'PY'
import json, glob, os, statistics, sys
out = sys.argv[1]
T = 2.776445  # Student t, 0.975, 4 degrees of freedom (5 seeds)
rows = {}
for f in sorted(glob.glob(f"{out}/eval_*/summary.json")):
    # eval_{policy}_{scenario}_s{seed}: policies have no underscore, scenarios may.
    policy, scenario = os.path.basename(os.path.dirname(f))[len("eval_"):].rsplit("_s", 1)[0].split("_", 1)
    d = json.load(open(f))
    rows.setdefault((scenario, policy), []).append(d)
def cell(xs):
    m = statistics.mean(xs)
    h = T * statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0.0
    return f"{m:.3f} ± {h:.3f}"
print("| scenario | policy | n | SLO violation (%) | cost ($) | resource slack (%) | oscillation (/h) |")
print("|---|---|---|---|---|---|---|")
for (sc, pol), ds in sorted(rows.items()):
    print(f"| {sc} | {pol} | {len(ds)} | {cell([d['slo_violation_pct'] for d in ds])} | {cell([d['cost'] for d in ds])} | "
          f"{cell([d['resource_slack_pct'] for d in ds])} | {cell([d['oscillation_per_hour'] for d in ds])} |")
PY
