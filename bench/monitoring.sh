#!/usr/bin/env bash
# The cost of monitoring, in one run: `vigil bench` (32 in flight, 1-row
# JSON) against two endpoints of one server, both with the prediction log
# on: one serves the TorchScript MLP with monitoring on (all 30 features and
# 3 output columns tracked, reference.csv), the other an identical copy with
# `monitoring: false`. Three runs each, in the order off, on, on, off, off,
# on, so that a machine getting slower or faster during the run favours
# neither.
#
#   bench/monitoring.sh        (DURATION=10 per run by default)
# Writes bench/out/monitoring.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
source bench/common.sh

example_repo breast_cancer_mlp
cp -r "$repo/breast_cancer_mlp" "$repo/breast_cancer_mlp_plain"
echo "monitoring: false" >>"$repo/breast_cancer_mlp_plain/config.yaml"
cat >"$repo/deployments/monitored.yaml" <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
YAML
cat >"$repo/deployments/unmonitored.yaml" <<'YAML'
production: {model: breast_cancer_mlp_plain, version: 1}
YAML
start_vigil "$repo"

declare -A RPS P99
run() {  # run NAME ENDPOINT
  ./build/vigil bench -u "127.0.0.1:$port" -m "$2" --concurrency 32 --threads 2 --duration "$DURATION" --window 1 \
    --input-data examples/repository/breast_cancer_mlp/reference.csv --json >"$work/$1.json"
  RPS[$1]=$(py "import json; print(round(json.load(open('$work/$1.json'))['levels'][0]['throughput']))")
  P99[$1]=$(py "import json; print(json.load(open('$work/$1.json'))['levels'][0]['latency_ms']['p99'])")
  printf '%-14s %8s req/s  p99 %s ms\n' "$1" "${RPS[$1]}" "${P99[$1]}"
}
run off_a unmonitored
run on_a monitored
run on_b monitored
run off_b unmonitored
run off_c unmonitored
run on_c monitored
windows=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^vigil_drift_windows_total/ {s+=$2} END {print s+0}')

{
  echo "| run | req/s | p99 ms |"
  echo "|---|---|---|"
  for n in off_a on_a on_b off_b off_c on_c; do echo "| $n | ${RPS[$n]} | ${P99[$n]} |"; done
  echo
  echo "| ratio | value |"
  echo "|---|---|"
  echo "| monitoring on / off (req/s, sum of three runs each) | $(py "print(f'{(${RPS[on_a]}+${RPS[on_b]}+${RPS[on_c]})/(${RPS[off_a]}+${RPS[off_b]}+${RPS[off_c]}):.3f}')") |"
  echo
  echo "drift windows closed: $windows"
} | tee "$out/monitoring.md"
