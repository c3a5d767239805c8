#!/usr/bin/env bash
# A real single-node Slurm on loopback for the sweep tests, from Debian's packages.
#   eval "$(.ci/slurm.sh start DIR)"   installs slurm-wlm and munge if missing, writes DIR/slurm.conf
#                                      (this machine's cores and memory), starts munged, slurmctld
#                                      and slurmd with state and logs under DIR, waits for the node,
#                                      and prints the environment clients need (SLURM_CONF).
#   .ci/slurm.sh stop DIR              cancels every job and stops all it started.
# Runs as root (CI does); no systemd: every daemon has its own pid, log and socket under DIR.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?state directory}

pids() { for f in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do [ -f "$f" ] && cat "$f" 2>/dev/null; done; true; }

case "$cmd" in
start)
  "$(dirname "$0")/apt-install.sh" munged munge
  "$(dirname "$0")/apt-install.sh" slurmctld slurm-wlm
  dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
  chmod 700 "$dir/munge"
  # munge: a fresh key and a socket of our own, so nothing of the machine's is touched.
  rm -f "$dir/munge/munge.key"
  mungekey --create --keyfile="$dir/munge/munge.key" >&2
  munged --force --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" >&2
  host=$(hostname -s)
  cpus=$(nproc)
  # Leave a quarter of the memory to the machine itself.
  mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 3 / 4 }' /proc/meminfo)
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  ctld_port=$(free_port); d_port=$(free_port)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=scalesim
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MaxArraySize=10001
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF" >&2
  slurmd -f "$SLURM_CONF" >&2
  for _ in $(seq 150); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "export SLURM_CONF=$dir/slurm.conf"
      echo "export SCALESIM_REQUIRE_SLURM=1"
      exit 0
    fi
    sleep 0.2
  done
  echo "slurm did not become ready; its logs:" >&2
  tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  exit 1
  ;;
stop)
  [ -d "$dir" ] || exit 0
  if [ -f "$dir/slurm.conf" ]; then
    SLURM_CONF=$dir/slurm.conf scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  fi
  for p in $(pids); do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0; for p in $(pids); do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in $(pids); do kill -9 "$p" 2>/dev/null || true; done
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
