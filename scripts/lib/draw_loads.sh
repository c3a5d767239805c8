# shellcheck shell=bash
# Sourced by scripts/drawn_pool.sh (its pools) and scripts/agents_vs_hpa.sh (its drawn validation
# loads), so that both draw loads the same way: scripts/fresh_loads.py's four loads per seed.
#
#   loads=$(draw_loads WHO WHAT DIR SEED...)
#
# Refuses a seed that is not a whole number (naming WHO, the script, and WHAT, its variable)
# before drawing anything; writes each seed's loads to DIR as d<seed>_fresh_<family>.yaml; prints
# their paths, space-separated, seed by seed. Run from the repository root.
draw_loads() {
  local who=$1 what=$2 dir=$3 n
  shift 3
  for n in "$@"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "$who: $what: \`$n\` is not a seed (a whole number)" >&2; return 2; }
  done
  mkdir -p "$dir"
  for n in "$@"; do
    python3 scripts/fresh_loads.py "$dir" --seed "$n" --prefix "d$n" >/dev/null
  done
  for n in "$@"; do ls "$dir/d${n}_"*.yaml; done | tr '\n' ' '
}
