#!/usr/bin/env bash
# Agents against the tuned HPA front, on loads the agents never trained on.
#
# Trains each agent of AGENTS once per seed of SEEDS (STEPS environment steps each, at fluid
# fidelity, on random load shapes drawn around TRAIN_SCENARIOS' means: see
# configs/agents/<agent>_ppo.yaml), evaluates every checkpoint with its own seed on each of
# EVAL_SCENARIOS at request fidelity, runs the baselines (HPA at the CPU targets of HPA_TARGETS,
# which form the front; KPA; target tracking) with the same seeds, and writes
#   OUT/pareto.csv, OUT/pareto.png, OUT/pareto.svg   (scalesim pareto)
#   OUT/runs/<policy>/<scenario>/s<seed>/            (every run folder)
#   OUT/train/<agent>_s<seed>/                       (every training folder)
# Refuses to train on an evaluation scenario. Run from anywhere; builds the binary if needed.
#
#   AGENTS=gat SEEDS="1 2 3 4 5 6 7 8 9 10" scripts/agents_vs_hpa.sh
#
# AGENTS: agent names (gat, gcn, mlp: configs/agents/<name>_ppo.yaml; gatsingle: GAT-PPO with the
# gym-hpa one-service action; or any configs/agents/*.yaml stem). Default: gat mlp.
# SEEDS (default 1..10), STEPS (default 200000), OUT (default runs/agents_vs_hpa),
# EVAL_SCENARIOS (default the rush shape and the Azure trace), TRAIN_SCENARIOS (default Online
# Boutique offpeak, peak and fluctuating), HPA_TARGETS (default 20 40 60 80 100 120 150),
# JOBS (parallel trainings and runs; default the number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-200000}
OUT=${OUT:-runs/agents_vs_hpa}
AGENTS=${AGENTS:-gat mlp}
SEEDS=${SEEDS:-1 2 3 4 5 6 7 8 9 10}
EVAL_SCENARIOS=${EVAL_SCENARIOS:-scenarios/online_boutique_rush.yaml scenarios/online_boutique_azure_trace.yaml}
TRAIN_SCENARIOS=${TRAIN_SCENARIOS:-scenarios/online_boutique_offpeak.yaml scenarios/online_boutique_peak.yaml scenarios/online_boutique_fluctuating.yaml}
HPA_TARGETS=${HPA_TARGETS:-20 40 60 80 100 120 150}
JOBS=${JOBS:-$(nproc)}
B=./target/release/scalesim
[ -x "$B" ] || cargo build --release -q

for e in $EVAL_SCENARIOS; do
  [ -f "$e" ] || { echo "agents_vs_hpa: no such scenario: $e" >&2; exit 2; }
  for t in $TRAIN_SCENARIOS; do
    if [ "$(readlink -f "$e")" = "$(readlink -f "$t")" ]; then
      echo "agents_vs_hpa: $e is both a training and an evaluation scenario" >&2; exit 2
    fi
  done
done
config_of() {
  case "$1" in
    gatsingle) echo configs/agents/gat_ppo_single.yaml ;;
    gat|gcn|mlp) echo "configs/agents/$1_ppo.yaml" ;;
    *) echo "configs/agents/$1.yaml" ;;
  esac
}
for a in $AGENTS; do [ -f "$(config_of "$a")" ] || { echo "agents_vs_hpa: no config for agent $a" >&2; exit 2; }; done
mkdir -p "$OUT/train" "$OUT/runs"
train_args=()
for t in $TRAIN_SCENARIOS; do train_args+=(--scenario "$t"); done
started=$(date +%s)

# 1. Training: one job per (agent, seed).
jobs_file=$OUT/jobs.txt
: >"$jobs_file"
for a in $AGENTS; do for s in $SEEDS; do
  [ -f "$OUT/train/${a}_s$s/checkpoint.ckpt" ] || echo "$a $s" >>"$jobs_file"
done; done
export B OUT STEPS
export TRAIN_ARGS="${train_args[*]}"
train_one() {
  local a=$1 s=$2 cfg
  cfg=$(config_of "$a")
  # shellcheck disable=SC2086
  "$B" train --agent "$cfg" $TRAIN_ARGS --steps "$STEPS" --seed "$s" --out "$OUT/train/${a}_s$s" -q
}
export -f train_one config_of
xargs -P "$JOBS" -L 1 bash -c 'train_one "$0" "$1"' <"$jobs_file"
echo "trained $(wc -l <"$jobs_file") agents in $(( $(date +%s) - started )) s" >&2

# 2. Evaluation runs: agents with their own seed, baselines with every seed. A run folder that
# is complete (summary.json) is kept, so a rerun of the script resumes where it stopped.
runs_file=$OUT/runs.txt
: >"$runs_file"
add_run() { # OUT_FOLDER ARGS...
  local out=$1; shift
  [ -f "$out/summary.json" ] || echo "$* -q --out $out" >>"$runs_file"
}
for e in $EVAL_SCENARIOS; do
  stem=$(basename "$e" .yaml)
  for s in $SEEDS; do
    for a in $AGENTS; do
      add_run "$OUT/runs/${a}-ppo/$stem/s$s" eval --checkpoint "$OUT/train/${a}_s$s/checkpoint.ckpt" --scenario "$e" --seed "$s"
    done
    for n in $HPA_TARGETS; do
      add_run "$OUT/runs/hpa$n/$stem/s$s" run "$e" --policy hpa --policy-config "configs/policies/hpa_cpu$n.yaml" --seed "$s"
    done
    add_run "$OUT/runs/kpa/$stem/s$s" run "$e" --policy kpa --policy-config configs/policies/kpa.yaml --seed "$s"
    add_run "$OUT/runs/target/$stem/s$s" run "$e" --policy target --policy-config configs/policies/target.yaml --seed "$s"
  done
done
xargs -P "$JOBS" -L 1 "$B" <"$runs_file"
echo "ran $(wc -l <"$runs_file") evaluation runs; $(( $(date +%s) - started )) s in all" >&2

# 3. The table and the chart.
"$B" pareto "$OUT/runs" --out "$OUT"
