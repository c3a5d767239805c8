#!/usr/bin/env bash
# Agents compared over a pool of drawn loads: the way settings are chosen here since four
# variants in a row passed the four validation loads and lost on three fresh ones
# (reports/agents_vs_hpa/results.md, top section).
#
#   AGENTS="gat tmp_variant" POOL_SEEDS="301 302 303 304 305" OUT=runs/pool scripts/drawn_pool.sh
#
# 1. Draws four loads per seed of POOL_SEEDS (scripts/fresh_loads.py --seed N --prefix dN: an
#    MMPP trace, spikes, a gamma-arrival wave, a held surge; none a training, validation or
#    evaluation load) into OUT/loads/.
# 2. Runs scripts/agents_vs_hpa.sh with those loads as EVAL_SCENARIOS into OUT (training the
#    AGENTS, or reusing OUT/train/<agent>_s<seed>/ where a training is already there; every other
#    variable passes through: SEEDS, STEPS, SELECT_SCENARIOS, SELECT_DRAWN_SEEDS, SELECT_SCREEN,
#    SELECT_KEEP, SELECT_FIRST, HPA_TARGETS, TRAIN_SCENARIOS, RESTARTS (default 8: each agent the
#    best of eight trainings; 1 to judge single trainings), BASELINE_SEEDS (the front's seeds;
#    "1 2 3" keeps a many-seed pool affordable), PICKS (another run's picks as a labelled arm:
#    LABEL=OUT/select/selection.csv), JOBS; a pool load equal to a drawn validation load is
#    refused). AGENTS="" trains nothing: PICKS alone are then the arms. Its runs keep no
#    timelines (KEEP_TIMELINES=0 unless set: a 40-load pool is about 4,000 runs, 2.4 GB of
#    timelines that the comparison never reads).
# 3. `scalesim compare --by-family` against REFERENCE (default: the first arm's label: the first
#    agent's, <agent>-ppo, or with no agent the first PICKS label) writes OUT/compare.csv: each
#    policy's mean gap to the HPA front over the pool, and its per-load difference from the
#    reference with a 95% t-interval, loads better and worse, cost relative to the reference's;
#    over all loads, then within each family. With more than one arm beside the reference (the
#    agents and the PICKS labels), the intervals are Bonferroni-corrected for that many
#    comparisons (`--comparisons`), as a pick among them needs.
#
# 4. `scalesim trainings --unpaired` against the same REFERENCE writes OUT/trainings.csv (each
#    policy over its trainings: the mean and sd of the trainings' mean gaps over the pool, and its
#    difference from the reference's with Welch's 95% interval, Bonferroni-corrected as above)
#    and OUT/per_training.csv (each training's mean gap, cost and SLO violation over the pool).
#    Unpaired because the agents are other configs at the same SEEDS, whose trainings share
#    nothing but the seed's number. A training change is judged here, over trainings: the
#    load-paired compare.csv holds each agent's trainings fixed (results.md, rounds 30b-32).
#    PAIRED=1 pairs the arms by seed instead (each seed's mean gap over the pool against the
#    reference's at the same seed), as rounds 34-36 judged the best of K trainings per seed:
#    there every arm's pick at a seed ran at that seed, and restarts share training seeds.
#
# Decide by a rule written before the pool is drawn (which seeds, which interval), and keep the
# evaluation loads out of it: this script refuses none of that for you.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/drawn_pool}
AGENTS=${AGENTS-gat}
POOL_SEEDS=${POOL_SEEDS:-301 302 303 304 305}
# The arms: each agent's label, then each PICKS label (agents_vs_hpa.sh refuses a malformed one).
arms=()
for a in $AGENTS; do arms+=("$a-ppo"); done
for p in ${PICKS:-}; do arms+=("${p%%=*}"); done
[ ${#arms[@]} -gt 0 ] || { echo "drawn_pool: no arm to compare: set AGENTS or PICKS" >&2; exit 2; }
REFERENCE=${REFERENCE:-${arms[0]}}
comparisons=0
for l in "${arms[@]}"; do [ "$l" = "$REFERENCE" ] || comparisons=$((comparisons + 1)); done
[ "$comparisons" -gt 0 ] || comparisons=1
pairing=--unpaired
case ${PAIRED:-0} in
  0) ;;
  1) pairing= ;;
  *) echo "drawn_pool: PAIRED: \`$PAIRED\` is not 0 or 1" >&2; exit 2 ;;
esac
. scripts/lib/draw_loads.sh
# shellcheck disable=SC2086
loads=$(draw_loads drawn_pool POOL_SEEDS "$OUT/loads" $POOL_SEEDS)
KEEP_TIMELINES=${KEEP_TIMELINES:-0} AGENTS=$AGENTS EVAL_SCENARIOS=$loads OUT=$OUT scripts/agents_vs_hpa.sh
./target/release/scalesim compare "$OUT/pareto.csv" --against "$REFERENCE" --by-family --comparisons "$comparisons" --out "$OUT/compare.csv"
# shellcheck disable=SC2086
./target/release/scalesim trainings "$OUT/runs" --against "$REFERENCE" $pairing --comparisons "$comparisons" \
  --out "$OUT/trainings.csv" --per-training "$OUT/per_training.csv"
