#!/usr/bin/env bash
# Trains MLP-PPO, GCN-PPO and GAT-PPO (seeds 1-5 each, or SEEDS) on Online Boutique offpeak + peak + fluctuating
# at fluid fidelity, evaluates each on the held-out rush shape and the real Azure trace at request
# fidelity, next to the HPA at CPU 60%, and prints a table (mean and 95% CI over seeds).
# Run from the project root after `cargo build --release`:  STEPS=30000 scripts/agents_vs_hpa.sh
# AGENTS picks the agents (default `mlp gcn gat`; `gatfull` is GAT-PPO with the node-type and
# CPU-quota heads, configs/agents/gat_ppo_full_action.yaml; `mlpteam` is one MLP-PPO agent per
# service, configs/agents/mlp_ppo_team.yaml; `mlpteamchurn` the same with churn charged,
# configs/agents/mlp_ppo_team_churn.yaml; `mlpteamstable` with the HPA's scale-down stabilisation,
# configs/agents/mlp_ppo_team_stable.yaml; `mlpteamboth` with both,
# configs/agents/mlp_ppo_team_stable_churn.yaml). SEEDS picks the seeds (default `1 2 3 4 5`).
set -euo pipefail
STEPS=${STEPS:-30000}
OUT=${OUT:-runs/agents_vs_hpa}
AGENTS=${AGENTS:-mlp gcn gat}
SEEDS=${SEEDS:-1 2 3 4 5}
B=./target/release/scalesim
mkdir -p "$OUT"
for enc in $AGENTS; do
  case "$enc" in
    gatfull) cfg=configs/agents/gat_ppo_full_action.yaml ;;
    mlpteam) cfg=configs/agents/mlp_ppo_team.yaml ;;
    mlpteamchurn) cfg=configs/agents/mlp_ppo_team_churn.yaml ;;
    mlpteamstable) cfg=configs/agents/mlp_ppo_team_stable.yaml ;;
    mlpteamboth) cfg=configs/agents/mlp_ppo_team_stable_churn.yaml ;;
    *) cfg=configs/agents/${enc}_ppo.yaml ;;
  esac
  for seed in $SEEDS; do
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
for seed in $SEEDS; do
  for sc in rush azure_trace; do
    "$B" run scenarios/online_boutique_$sc.yaml --policy hpa --policy-config configs/policies/hpa_cpu60.yaml \
      --seed "$seed" --out "$OUT/eval_hpa60_${sc}_s$seed" -q
  done
done
python3 - "$OUT" <<'PY'
import json, glob, os, statistics, sys
out = sys.argv[1]
# Student t quantile 0.975 by degrees of freedom (seeds - 1), for the 95% interval of the mean.
T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.776445, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.3060,
        9: 2.2622, 10: 2.2281, 11: 2.2010, 12: 2.1788, 13: 2.1604, 14: 2.1448, 15: 2.1314, 16: 2.1199,
        17: 2.1098, 18: 2.1009, 19: 2.0930, 20: 2.0860}
rows = {}
for f in sorted(glob.glob(f"{out}/eval_*/summary.json")):
    # eval_{policy}_{scenario}_s{seed}: policies have no underscore, scenarios may.
    policy, scenario = os.path.basename(os.path.dirname(f))[len("eval_"):].rsplit("_s", 1)[0].split("_", 1)
    d = json.load(open(f))
    rows.setdefault((scenario, policy), []).append(d)
def cell(xs):
    m = statistics.mean(xs)
    # Beyond 21 seeds the normal quantile is within 2.5% of Student's.
    h = T975.get(len(xs) - 1, 1.96) * statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0.0
    return f"{m:.3f} ± {h:.3f}"
print("| scenario | policy | n | SLO violation (%) | cost ($) | resource slack (%) | oscillation (/h) |")
print("|---|---|---|---|---|---|---|")
for (sc, pol), ds in sorted(rows.items()):
    print(f"| {sc} | {pol} | {len(ds)} | {cell([d['slo_violation_pct'] for d in ds])} | {cell([d['cost'] for d in ds])} | "
          f"{cell([d['resource_slack_pct'] for d in ds])} | {cell([d['oscillation_per_hour'] for d in ds])} |")
PY
