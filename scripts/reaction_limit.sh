#!/usr/bin/env bash
# How much of a load's SLO violation is the autoscaler's reaction time: the HPA front as the
# scenario has it, next to the same HPA on two what-ifs of the scenario:
#   fast:    metrics scraped and the HPA deciding every second (replicas start as the scenario says);
#   instant: the same, and replicas serve the moment they are asked for (scale_up_delay_s: 0).
# No deployable policy reacts faster than the instant HPA: what it cannot reach at a cost, only a
# policy that acts before the load arrives (or holds capacity for it) can.
#
#   scripts/reaction_limit.sh scenarios/online_boutique_azure_trace.yaml [OUT]
#
# Writes OUT/reaction_limit.csv (default OUT: runs/reaction_limit/<scenario stem>), one row a run:
#   variant,target_pct,downscale_window_s,seed,cost,slo_violation_pct,reversals_per_hour
# and OUT/summary.csv, the means over seeds with the gap to the front at each variant's cost
# (slo_gap_pct as pareto.csv defines it; the front is the scenario's own HPA rows).
# TARGETS (default 20 40 60 80 100 120 150), WINDOWS (scale-down windows of the fast and instant
# HPAs, default 30 60 300; the front keeps the HPA's default 300 s), SEEDS (default 1 2 3), JOBS,
# SCALESIM (the binary; default ./target/release/scalesim, built if missing). A run folder that is
# complete (summary.json) is kept, so a rerun into the same OUT resumes where it stopped.
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
B=${SCALESIM:-./target/release/scalesim}
[ -x "$B" ] || cargo build --release -q
mkdir -p "$OUT/configs" "$OUT/runs"

# The what-if scenarios sit in OUT, so a trace file they name by a relative path is made absolute.
dir=$(cd "$(dirname "$sc")" && pwd)
fast=$OUT/configs/${stem}_fast.yaml
sed -E -e 's/scrape_interval_s: *[0-9.]+/scrape_interval_s: 1/' \
  -e "s#^( *file: *)([^/ ][^ ]*)#\\1$dir/\\2#" "$sc" >"$fast"
grep -q 'scrape_interval_s: 1$' "$fast" || { echo "reaction_limit: $sc sets no metrics.scrape_interval_s" >&2; exit 2; }
instant=$OUT/configs/${stem}_instant.yaml
sed -E -e 's/scale_up_delay_s: *[0-9.]+/scale_up_delay_s: 0/g' "$fast" >"$instant"

runs=$OUT/runs.txt
: >"$runs"
add_run() { # RUN_FOLDER ARGS...
  local out=$1; shift
  [ -f "$out/summary.json" ] || echo "run $* -q --out $out" >>"$runs"
}
for n in $TARGETS; do
  base=configs/policies/hpa_cpu$n.yaml
  [ -f "$base" ] || { echo "reaction_limit: no HPA config $base" >&2; exit 2; }
  for s in $SEEDS; do
    add_run "$OUT/runs/front_${n}_300/s$s" "$sc" --policy hpa --policy-config "$base" --seed "$s"
  done
  for w in $WINDOWS; do
    cfg=$OUT/configs/hpa_cpu${n}_every_second_$w.yaml
    sed -E -e 's/sync_period_s: *[0-9.]+/sync_period_s: 1/' \
      -e "s/^( *)downscale_stabilization_s: *[0-9.]+/\\1downscale_stabilization_s: $w/" "$base" >"$cfg"
    for s in $SEEDS; do
      add_run "$OUT/runs/fast_${n}_$w/s$s" "$fast" --policy hpa --policy-config "$cfg" --seed "$s"
      add_run "$OUT/runs/instant_${n}_$w/s$s" "$instant" --policy hpa --policy-config "$cfg" --seed "$s"
    done
  done
done
xargs -r -P "$JOBS" -L 1 "$B" >/dev/null <"$runs"

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
echo "$csv" >&2
# Means over seeds, one row per variant, with the gap to the front (the HPA as the scenario has
# it) at the variant's cost, as pareto.csv defines it: OUT/summary.csv, and printed.
python3 - "$csv" "$OUT/summary.csv" <<'EOF'
import csv, sys
runs = {}
for r in csv.DictReader(open(sys.argv[1])):
    key = (r["variant"], int(r["target_pct"]), int(r["downscale_window_s"]))
    runs.setdefault(key, []).append(r)
def mean(rows, col):
    return sum(float(r[col]) for r in rows) / len(rows)
rows = [(k, mean(v, "cost"), mean(v, "slo_violation_pct"), mean(v, "reversals_per_hour")) for k, v in runs.items()]
front = sorted((c, s) for (variant, _, _), c, s, _ in rows if variant == "front")
def front_at(cost):
    if cost <= front[0][0]:
        return front[0][1]
    for (c0, s0), (c1, s1) in zip(front, front[1:]):
        if cost <= c1:
            return s0 + (s1 - s0) * (cost - c0) / (c1 - c0)
    return front[-1][1]
order = {"front": 0, "fast": 1, "instant": 2}
with open(sys.argv[2], "w") as out:
    out.write("variant,target_pct,downscale_window_s,cost_mean,slo_mean,reversals_per_hour,front_slo_at_cost,slo_gap_pct\n")
    for (variant, target, window), cost, slo, rev in sorted(rows, key=lambda r: (order.get(r[0][0], 9), r[0][1], r[0][2])):
        f = front_at(cost)
        gap = 100 * (slo - f) / max(f, 1)
        out.write(f"{variant},{target},{window},{cost:.6f},{slo:.4f},{rev:.2f},{f:.4f},{gap:.2f}\n")
        print(f"{variant:8} {target:4}% window {window:4} s  cost {cost:.3f}  SLO violation {slo:6.2f}%  reversals/h {rev:6.1f}  gap {gap:+4.0f}%")
EOF
