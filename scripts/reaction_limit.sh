#!/usr/bin/env bash
# How much of a load's SLO violation is the autoscaler's reaction time: the HPA front as the
# scenario has it, next to the same HPA on an "instant" what-if of the scenario in which replicas
# serve the moment they are asked for (scale_up_delay_s: 0), metrics are scraped every second and
# the HPA decides every second. No deployable policy reacts faster than the instant HPA: what it
# cannot reach at a cost, only a policy that acts before the load arrives can.
#
#   scripts/reaction_limit.sh scenarios/online_boutique_azure_trace.yaml [OUT]
#
# Writes OUT/reaction_limit.csv (default OUT: runs/reaction_limit/<scenario stem>):
#   variant,target_pct,downscale_window_s,seed,cost,slo_violation_pct,reversals_per_hour
# TARGETS (default 20 40 60 80 100 120 150), WINDOWS (scale-down windows of the instant HPA,
# default 30 60 300; the front keeps the HPA's default 300 s), SEEDS (default 1 2 3), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
sc=${1:?usage: scripts/reaction_limit.sh SCENARIO [OUT]}
[ -f "$sc" ] || { echo "reaction_limit: no such scenario: $sc" >&2; exit 2; }
stem=$(basename "$sc" .yaml)
OUT=${2:-runs/reaction_limit/$stem}
TARGETS=${TARGETS:-20 40 60 80 100 120 150}
WINDOWS=${WINDOWS:-30 60 300}
SEEDS=${SEEDS:-1 2 3}
JOBS=${JOBS:-$(nproc)}
B=./target/release/scalesim
[ -x "$B" ] || cargo build --release -q
mkdir -p "$OUT/configs" "$OUT/runs"

# The what-if scenario sits in OUT, so a trace file it names by a relative path is made absolute.
dir=$(cd "$(dirname "$sc")" && pwd)
instant=$OUT/configs/${stem}_instant.yaml
sed -E -e 's/scale_up_delay_s: *[0-9.]+/scale_up_delay_s: 0/g' \
  -e 's/scrape_interval_s: *[0-9.]+/scrape_interval_s: 1/' \
  -e "s#^( *file: *)([^/ ][^ ]*)#\\1$dir/\\2#" "$sc" >"$instant"
grep -q 'scrape_interval_s: 1$' "$instant" || { echo "reaction_limit: $sc sets no metrics.scrape_interval_s" >&2; exit 2; }

runs=$OUT/runs.txt
: >"$runs"
for n in $TARGETS; do
  base=configs/policies/hpa_cpu$n.yaml
  [ -f "$base" ] || { echo "reaction_limit: no HPA config $base" >&2; exit 2; }
  for s in $SEEDS; do
    echo "run $sc --policy hpa --policy-config $base --seed $s -q --out $OUT/runs/front_${n}_300/s$s" >>"$runs"
  done
  for w in $WINDOWS; do
    cfg=$OUT/configs/hpa_cpu${n}_instant_$w.yaml
    sed -E -e 's/sync_period_s: *[0-9.]+/sync_period_s: 1/' \
      -e "s/^( *)downscale_stabilization_s: *[0-9.]+/\\1downscale_stabilization_s: $w/" "$base" >"$cfg"
    for s in $SEEDS; do
      echo "run $instant --policy hpa --policy-config $cfg --seed $s -q --out $OUT/runs/instant_${n}_$w/s$s" >>"$runs"
    done
  done
done
xargs -P "$JOBS" -L 1 "$B" >/dev/null <"$runs"

csv=$OUT/reaction_limit.csv
rows=$OUT/rows.csv
: >"$rows"
for d in "$OUT"/runs/*/s*; do
  name=$(basename "$(dirname "$d")")
  IFS=_ read -r variant n w <<<"$name"
  python3 - "$d/summary.json" "$variant,$n,$w,${d##*/s}" >>"$rows" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]},{s['cost']:.6f},{s['slo_violation_pct']:.4f},{s['oscillation_per_hour']:.2f}")
EOF
done
{ echo "variant,target_pct,downscale_window_s,seed,cost,slo_violation_pct,reversals_per_hour"
  sort -t, -k1,1 -k2,2n -k3,3n -k4,4n "$rows"; } >"$csv"
rm "$rows"
echo "$csv"
# Means over seeds, one line per variant.
awk -F, 'NR > 1 { k = $1 " " $2 "% window " $3 " s"; c[k] += $5; v[k] += $6; r[k] += $7; n[k]++ }
  END { for (k in c) printf "%-28s cost %.3f  SLO violation %6.2f%%  reversals/h %6.1f\n", k, c[k] / n[k], v[k] / n[k], r[k] / n[k] }' "$csv" | sort -k1,1 -k2,2n -k4,4n
