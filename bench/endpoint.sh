#!/usr/bin/env bash
# The cost of endpoints, in one run: `vigil bench` (32 in flight, 1-row JSON)
# against the TorchScript MLP called directly, then through an endpoint that
# splits 90/10 between its versions 1 and 2 and mirrors 10% to a shadow (the
# ONNX MLP), with the prediction log on; alternated twice to even out drift.
# Then production latency with a slow shadow (the XGBoost model, every
# request mirrored; at the default CPU budget, and unbounded) against no
# shadow, in open loop at 30% of the plain endpoint's closed-loop capacity (a saturated closed loop has no spare CPU
# for any shadow to use), alternated twice.
#
#   bench/endpoint.sh        (DURATION=10 per run by default)
# Writes bench/out/endpoint.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
source bench/common.sh

example_repo breast_cancer_mlp breast_cancer_mlp_onnx breast_cancer_xgb
cat >"$repo/deployments/split.yaml" <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: v2, model: breast_cancer_mlp, version: 2, mode: ab, share: 10}
  - {name: onnx, model: breast_cancer_mlp_onnx, mode: shadow, share: 10}
YAML
cat >"$repo/deployments/plain.yaml" <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
YAML
cat >"$repo/deployments/slowshadow.yaml" <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: xgb, model: breast_cancer_xgb, mode: shadow, share: 100}
YAML
cat >"$repo/deployments/unbounded.yaml" <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: xgb, model: breast_cancer_xgb, mode: shadow, share: 100, max_cpu: 64}
YAML
start_vigil "$repo"

declare -A RPS P99
run() {  # run NAME MODEL [VERSION]
  local name=$1 model=$2 version=${3:-}
  ./build/vigil bench -u "127.0.0.1:$port" -m "$model" ${version:+--model-version "$version"} --concurrency 32 \
    --threads 2 --duration "$DURATION" --window 1 --stability 100 --json >"$work/$name.json"
  RPS[$name]=$(py "import json; print(round(json.load(open('$work/$name.json'))['levels'][0]['throughput']))")
  P99[$name]=$(py "import json; print(json.load(open('$work/$name.json'))['levels'][0]['latency_ms']['p99'])")
  printf '%-22s %8s req/s  p99 %s ms\n' "$name" "${RPS[$name]}" "${P99[$name]}"
}
run direct_a breast_cancer_mlp 1
run endpoint_a split
run direct_b breast_cancer_mlp 1
run endpoint_b split
run plain_endpoint plain
RATE=${RATE:-$(( ${RPS[plain_endpoint]} * 3 / 10 ))}
declare -A P50
open_run() {  # open_run NAME ENDPOINT
  ./build/vigil bench -u "127.0.0.1:$port" -m "$2" --rate "$RATE" --threads 2 --duration "$DURATION" --window 1 --stability 100 \
    --json >"$work/$1.json"
  RPS[$1]=$(py "import json; print(round(json.load(open('$work/$1.json'))['levels'][0]['throughput']))")
  P50[$1]=$(py "import json; print(json.load(open('$work/$1.json'))['levels'][0]['latency_ms']['p50'])")
  P99[$1]=$(py "import json; print(json.load(open('$work/$1.json'))['levels'][0]['latency_ms']['p99'])")
  printf '%-22s %8s req/s  p50 %s ms  p99 %s ms\n' "$1" "${RPS[$1]}" "${P50[$1]}" "${P99[$1]}"
}
open_run no_shadow_a plain
open_run slow_shadow_a slowshadow
open_run unbounded_a unbounded
open_run no_shadow_b plain
open_run slow_shadow_b slowshadow
open_run unbounded_b unbounded
written=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^vigil_prediction_log_records_total\{result="written"\}/ {print $2}')
dropped_log=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^vigil_prediction_log_records_total\{result="dropped"\}/ {print $2}')
shadow=$(curl -s "http://127.0.0.1:$port/metrics" | grep -E '^vigil_shadow_requests_total\{endpoint="(slowshadow|unbounded)"' | tr '\n' ' ')

{
  echo "| run | req/s | p99 ms |"
  echo "|---|---|---|"
  for n in direct_a endpoint_a direct_b endpoint_b plain_endpoint; do echo "| $n | ${RPS[$n]} | ${P99[$n]} |"; done
  echo
  echo "Open loop at $RATE req/s:"
  echo
  echo "| run | req/s | p50 ms | p99 ms |"
  echo "|---|---|---|---|"
  for n in no_shadow_a slow_shadow_a unbounded_a no_shadow_b slow_shadow_b unbounded_b; do echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} |"; done
  echo
  echo "| ratio | value |"
  echo "|---|---|"
  echo "| endpoint (90/10 + 10% shadow + prediction log) / direct | $(py "print(f'{(${RPS[endpoint_a]}+${RPS[endpoint_b]})/(${RPS[direct_a]}+${RPS[direct_b]}):.3f}')") |"
  echo "| open-loop p99 with a 100% slow shadow (default budget, max_cpu 0.1) / without | $(py "print(f'{(${P99[slow_shadow_a]}+${P99[slow_shadow_b]})/(${P99[no_shadow_a]}+${P99[no_shadow_b]}):.3f}')") |"
  echo "| open-loop p99 with it unbounded (max_cpu 64) / without | $(py "print(f'{(${P99[unbounded_a]}+${P99[unbounded_b]})/(${P99[no_shadow_a]}+${P99[no_shadow_b]}):.3f}')") |"
  echo
  echo "prediction log records written: $written, dropped: ${dropped_log:-0}"
  echo "slow shadow copies: $shadow"
} | tee "$out/endpoint.md"
