#!/usr/bin/env bash
# Installs (apt) and starts a Prometheus on loopback for the backend tests, and prints the
# environment the tests read: `eval "$(.ci/prometheus.sh start DIR)"`. It scrapes every second
# whatever the local backend lists in DIR/targets/workers.json (Prometheus file_sd).
# `.ci/prometheus.sh stop DIR` ends it.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?state directory}
case "$cmd" in
start)
  "$(dirname "$0")/apt-install.sh" prometheus prometheus
  mkdir -p "$dir/targets" "$dir/data"
  echo '[]' > "$dir/targets/workers.json"
  cat > "$dir/prometheus.yml" <<YAML
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: scalesim-workers
    file_sd_configs: [{ files: ['$dir/targets/*.json'], refresh_interval: 1s }]
YAML
  # A free loopback port: ask the kernel for one.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  nohup prometheus --config.file="$dir/prometheus.yml" --web.listen-address="127.0.0.1:$port" \
    --storage.tsdb.path="$dir/data" >"$dir/prometheus.log" 2>&1 &
  echo $! > "$dir/pid"
  for _ in $(seq 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/-/ready', timeout=1)" 2>/dev/null; then
      echo "export SCALESIM_PROMETHEUS_URL=http://127.0.0.1:$port"
      echo "export SCALESIM_PROMETHEUS_TARGETS=$dir/targets/workers.json"
      echo "export SCALESIM_REQUIRE_PROMETHEUS=1"
      exit 0
    fi
    sleep 0.2
  done
  echo "prometheus did not become ready; its log:" >&2; tail -20 "$dir/prometheus.log" >&2; exit 1
  ;;
stop)
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  ;;
esac
