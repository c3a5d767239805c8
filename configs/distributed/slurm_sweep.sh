#!/usr/bin/env bash
# Run a scalesim sweep as a Slurm job array: task K of N runs shard K/N of the grid.
# Submit from the project root:   sbatch --array=1-8 configs/distributed/slurm_sweep.sh configs/sweeps/baselines.yaml
# When every task is done, merge:  scalesim sweep-merge runs/shards/*_shard*of8 --out runs/baselines_merged
#SBATCH --job-name=scalesim-sweep
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=01:00:00
#SBATCH --output=runs/slurm-%A_%a.out
set -euo pipefail
SWEEP=${1:?usage: slurm_sweep.sh SWEEP.yaml}
N=${SLURM_ARRAY_TASK_COUNT:?run as a job array (sbatch --array=1-N)}
K=${SLURM_ARRAY_TASK_ID:?run as a job array}
BIN=${SCALESIM_BIN:-./target/release/scalesim}
mkdir -p runs/shards
# Every shard writes its own folder; a failed task can be rerun with the same K and --resume.
"$BIN" sweep "$SWEEP" --shard "$K/$N" --jobs "${SLURM_CPUS_PER_TASK:-1}" --out runs/shards -q
