#!/usr/bin/env bash
# Runs a scalesim sweep on a Slurm cluster: a job array of SHARDS tasks, task K running shard K of
# the grid, then a merge job that runs when the whole array has ended.
#
#   configs/distributed/slurm_sweep.sh SWEEP.yaml SHARDS OUT_DIR
#
# Writes OUT_DIR/shards/shardKofN (one sweep folder per task), OUT_DIR/merged (the merged sweep,
# byte-identical in its comparison_reports/ to `scalesim sweep --jobs 1` of the same file, with
# `scalesim report`'s charts and index.html), OUT_DIR/logs (each job's output) and OUT_DIR/jobs
# (the job scripts). Prints the merge job's id as its last line.
#
# A failed shard: the merge job fails and its log (OUT_DIR/logs/merge.out) names the shard and
# its log. Run the script again on the same OUT_DIR to resume: every shard continues its own
# folder, so runs that finished are kept, not redone.
#
# The merge job depends on the array with `afterany`, not `afterok`: with `afterok` a failed shard
# leaves the merge job pending forever (DependencyNeverSatisfied) and nothing says which shard
# failed. `afterany` lets the merge job run, check every shard's completion marker, and name the
# failed ones.
#
# Environment: SCALESIM_BIN (default: this checkout's target/release/scalesim, else `scalesim` on
# PATH), SCALESIM_CPUS_PER_TASK (default 1: runs in parallel inside a task), SCALESIM_MEM_PER_TASK
# (default 1G), SCALESIM_PARTITION and SCALESIM_TIME (passed to sbatch when set).
set -euo pipefail
usage() { echo "usage: $0 SWEEP.yaml SHARDS OUT_DIR" >&2; exit 2; }
[ $# -eq 3 ] || usage
sweep=$1; n=$2; out=$3
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "error: SHARDS must be a whole number >= 1, got '$n'" >&2; exit 2; }
[ -f "$sweep" ] || { echo "error: $sweep: no such sweep file" >&2; exit 2; }
command -v sbatch >/dev/null || { echo "error: sbatch not found: run on a Slurm login node (or set SLURM_CONF)" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
bin=${SCALESIM_BIN:-}
if [ -z "$bin" ]; then
  if [ -x "$here/../../target/release/scalesim" ]; then bin=$here/../../target/release/scalesim; else bin=$(command -v scalesim || true); fi
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "error: no scalesim binary (build it, or set SCALESIM_BIN)" >&2; exit 2; }
abs() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }
bin=$(abs "$bin"); sweep=$(abs "$sweep")
mkdir -p "$out"; out=$(cd "$out" && pwd)
mkdir -p "$out/shards" "$out/logs" "$out/jobs"

cat > "$out/jobs/shard.sh" <<JOB
#!/usr/bin/env bash
# Shard \$SLURM_ARRAY_TASK_ID of $n: continues its own sweep folder, then marks it complete.
set -euo pipefail
k=\$SLURM_ARRAY_TASK_ID
dir="$out/shards/shard\${k}of$n"
rm -f "\$dir.ok"
"$bin" sweep "$sweep" --shard "\$k/$n" --jobs "\${SLURM_CPUS_PER_TASK:-1}" --resume "\$dir" -q
touch "\$dir.ok"
JOB

cat > "$out/jobs/merge.sh" <<JOB
#!/usr/bin/env bash
# Runs when every shard has ended: names failed shards, else merges them and draws the report.
set -euo pipefail
failed=()
for k in \$(seq 1 $n); do [ -f "$out/shards/shard\${k}of$n.ok" ] || failed+=("\$k"); done
if [ \${#failed[@]} -gt 0 ]; then
  for k in "\${failed[@]}"; do
    echo "error: shard \$k of $n failed (log: $out/logs/shard_\$k.out): \$(grep -m1 '^error' "$out/logs/shard_\$k.out" 2>/dev/null || echo 'no error line; see its log')" >&2
  done
  echo "error: \${#failed[@]} of $n shards failed; run slurm_sweep.sh again on $out to resume them" >&2
  exit 1
fi
shards=()
for k in \$(seq 1 $n); do shards+=("$out/shards/shard\${k}of$n"); done
rm -rf "$out/merged.partial"
"$bin" sweep-merge "\${shards[@]}" --out "$out/merged.partial"
"$bin" report "$out/merged.partial"
rm -rf "$out/merged"
mv "$out/merged.partial" "$out/merged"
echo "merged $n shards into $out/merged"
JOB
chmod +x "$out/jobs/shard.sh" "$out/jobs/merge.sh"

extra=()
[ -n "${SCALESIM_PARTITION:-}" ] && extra+=(--partition="$SCALESIM_PARTITION")
[ -n "${SCALESIM_TIME:-}" ] && extra+=(--time="$SCALESIM_TIME")
array=$(sbatch --parsable "${extra[@]}" --job-name=scalesim-shard --array="1-$n" \
  --cpus-per-task="${SCALESIM_CPUS_PER_TASK:-1}" --mem="${SCALESIM_MEM_PER_TASK:-1G}" \
  --chdir="$out" --output="$out/logs/shard_%a.out" "$out/jobs/shard.sh")
array=${array%%;*}
echo "submitted $n shards as array job $array" >&2
merge=$(sbatch --parsable "${extra[@]}" --job-name=scalesim-merge --dependency="afterany:$array" \
  --cpus-per-task=1 --mem="${SCALESIM_MEM_PER_TASK:-1G}" \
  --chdir="$out" --output="$out/logs/merge.out" "$out/jobs/merge.sh")
merge=${merge%%;*}
echo "merge job $merge runs when the array has ended; results in $out/merged" >&2
echo "$merge"
