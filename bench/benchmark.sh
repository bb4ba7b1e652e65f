#!/usr/bin/env bash
# Benchmarks of competing models (rollout/benchmark.h), in one run:
#
#  1. what a benchmark finds: ROWS one-row requests of the breast-cancer
#     sample with every other feature shifted by one standard deviation go
#     through the endpoint `cancer` (production: the TorchScript MLP v1;
#     candidates at 0%: the XGBoost model and the MLP exported to ONNX; the
#     MLP's version 2 is loaded too), each logged with its inputs and sent
#     its true label; then one benchmark of them;
#  2. what it costs: the benchmark's wall time and the share of a core its
#     replays took, at --benchmark-max-cpu 0.25 (the default) and 1.0;
#  3. what serving feels: production latency in open loop (`vigil bench
#     --rate`, 30% of the endpoint's closed-loop capacity) with benchmarks
#     running back to back against none, alternated twice per budget.
#
#   bench/benchmark.sh        (ROWS=5000, DURATION=10 s per open-loop run)
# Writes bench/out/benchmark.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-5000}
DURATION=${DURATION:-10}
source bench/common.sh

example_repo breast_cancer_mlp breast_cancer_mlp_onnx breast_cancer_xgb
cat >"$repo/deployments/cancer.yaml" <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: xgb, model: breast_cancer_xgb, version: 1, mode: canary, steps: [10, 50]}
  - {name: onnx, model: breast_cancer_mlp_onnx, version: 1, mode: canary, steps: [10, 50]}
YAML

serve() {  # serve MAX_CPU: the server on $port with the store in $work/data
  port=$(free_port)
  ./build/vigil serve --model-repository "$repo" --http-port "$port" --host 127.0.0.1 --log-level warn \
    --data-dir "$work/data" --log-inputs-sample-rate 1 --benchmark-max-cpu "$1" --benchmark-rows "$ROWS" &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/v2/health/ready"
}

serve 0.25
# The drifted traffic with its labels (one request per row: only those replay).
py "
import csv, http.client, json, random
rows = list(csv.reader(open('examples/repository/breast_cancer_mlp/reference.csv')))[1:]
X = [[float(v) for v in r[:30]] for r in rows]; y = [int(r[30]) for r in rows]
n = len(X); sd = []
for c in range(30):
    m = sum(r[c] for r in X) / n
    sd.append((sum((r[c] - m) ** 2 for r in X) / n) ** 0.5)
rng = random.Random(5)
conn = http.client.HTTPConnection('127.0.0.1', $port)
feedback = []
for i in range($ROWS):
    k = rng.randrange(n)
    row = [v + (sd[c] if c % 2 == 0 else 0) for c, v in enumerate(X[k])]
    conn.request('POST', '/v2/models/cancer/infer', json.dumps({'inputs': [{'name': 'features', 'datatype': 'FP32', 'shape': [1, 30], 'data': row}]}))
    reply = json.loads(conn.getresponse().read())
    if 'parameters' not in reply: raise SystemExit(f'bench: the endpoint answered {reply}')
    feedback.append({'prediction_id': reply['parameters']['vigil.prediction_id'], 'label': y[k]})
    if len(feedback) == 500:
        conn.request('POST', '/v1/feedback', json.dumps(feedback)); conn.getresponse().read(); feedback = []
if feedback:
    conn.request('POST', '/v1/feedback', json.dumps(feedback)); conn.getresponse().read()
"

# run_benchmark NAME: one benchmark of the last hour; its result in $work/NAME.json
run_benchmark() {
  local before
  before=$(curl -s "http://127.0.0.1:$port/v1/deployments/cancer/benchmark" | py "import json,sys; b=json.load(sys.stdin)['benchmarks']; print(b[0]['id'] if b else 0)")
  curl -s -X POST "http://127.0.0.1:$port/v1/deployments/cancer/benchmark" -d "{\"since_s\": 3600, \"max_rows\": $ROWS}" >/dev/null
  for _ in $(seq 1 1200); do
    curl -s "http://127.0.0.1:$port/v1/deployments/cancer/benchmark" >"$work/$1.json"
    py "import json; d=json.load(open('$work/$1.json')); b=d['benchmarks']; exit(0 if b and b[0]['id'] > $before and not d['running'] and not d['queued'] else 1)" && return 0
    sleep 0.5
  done
  echo "bench: the benchmark did not finish" >&2; return 1
}
declare -A WALL CPU
measure() {  # measure NAME
  run_benchmark "$1"
  WALL[$1]=$(py "import json; r=json.load(open('$work/$1.json'))['benchmarks'][0]['result']; print(r['finished_ms']-r['started_ms'])")
  CPU[$1]=$(py "import json; r=json.load(open('$work/$1.json'))['benchmarks'][0]['result']; print(round(sum(c['run_ms'] for c in r['contenders'])/max(1,r['finished_ms']-r['started_ms']),3))")
  printf '%-12s wall %s ms, replays %s of a core\n' "$1" "${WALL[$1]}" "${CPU[$1]}"
}
measure budget_0.25
cp "$work/budget_0.25.json" "$work/ranking.json"

declare -A P50 P99 RPS
open_run() {  # open_run NAME RATE [with-benchmarks]
  local loop=""
  if [[ ${3:-} == with ]]; then
    # One process runs benchmarks back to back (no process started per poll).
    /usr/bin/python3 - "$port" "$ROWS" <<'PY' &
import http.client, json, sys, time
conn = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))
def get():
    conn.request('GET', '/v1/deployments/cancer/benchmark')
    return json.loads(conn.getresponse().read())
while True:
    conn.request('POST', '/v1/deployments/cancer/benchmark', json.dumps({'since_s': 3600, 'max_rows': int(sys.argv[2])}))
    conn.getresponse().read()
    while True:
        d = get()
        if not d['running'] and not d['queued']:
            break
        time.sleep(0.05)
PY
    loop=$!
  fi
  ./build/vigil bench -u "127.0.0.1:$port" -m cancer --rate "$2" --threads 2 --duration "$DURATION" --window 1 --stability 100 \
    --json >"$work/$1.json"
  if [[ -n $loop ]]; then kill "$loop" 2>/dev/null || true; wait "$loop" 2>/dev/null || true; fi
  RPS[$1]=$(py "import json; print(round(json.load(open('$work/$1.json'))['levels'][0]['throughput']))")
  P50[$1]=$(py "import json; print(json.load(open('$work/$1.json'))['levels'][0]['latency_ms']['p50'])")
  P99[$1]=$(py "import json; print(json.load(open('$work/$1.json'))['levels'][0]['latency_ms']['p99'])")
  printf '%-22s %8s req/s  p50 %s ms  p99 %s ms\n' "$1" "${RPS[$1]}" "${P50[$1]}" "${P99[$1]}"
}
./build/vigil bench -u "127.0.0.1:$port" -m cancer --concurrency 32 --threads 2 --duration "$DURATION" --window 1 --stability 100 \
  --json >"$work/capacity.json"
capacity=$(py "import json; print(round(json.load(open('$work/capacity.json'))['levels'][0]['throughput']))")
RATE=${RATE:-$(( capacity * 3 / 10 ))}
echo "capacity $capacity req/s, open loop at $RATE req/s"
for budget in 0.25 1.0; do
  if [[ $budget != 0.25 ]]; then stop_all; serve "$budget"; measure "budget_$budget"; fi
  open_run "none_${budget}_a" "$RATE"
  open_run "bench_${budget}_a" "$RATE" with
  open_run "none_${budget}_b" "$RATE"
  open_run "bench_${budget}_b" "$RATE" with
done

{
  echo "Ranking ($ROWS logged requests, every other feature shifted by 1 sd, true labels):"
  echo
  echo "| rank | contender | model | accuracy | 95% | vs production (interval at α/k) | verdict | disagreement | estimated accuracy |"
  echo "|---|---|---|---|---|---|---|---|---|"
  py "
import json
r = json.load(open('$work/ranking.json'))['benchmarks'][0]['result']
for c in r['contenders']:
    ci = c.get('ci95', [0, 0]); d = c.get('difference_ci')
    vs = f\"{c['difference']:+.4f} [{d[0]:+.4f}, {d[1]:+.4f}]\" if d else ''
    dis = f\"{c['disagreement_rate']:.4f}\" if 'disagreement_rate' in c else ''
    est = f\"{c['estimated_accuracy']:.4f}\" if 'estimated_accuracy' in c else ''
    print(f\"| {c['rank']} | {c['name']} | {c['model']} v{c['version']} | {c.get('value', 0):.4f} | [{ci[0]:.4f}, {ci[1]:.4f}] | {vs} | {c['verdict']} | {dis} | {est} |\")
print()
print(f\"winner: {r['winner'] or 'none'}; replayed {r['replayable']} of {r['sampled']}; production's replay against its log: max |diff| {r['replay_check']['max_abs_diff']:.3g} over {r['replay_check']['rows']} rows\")
"
  echo
  echo "| --benchmark-max-cpu | benchmark wall ms | replays' share of a core |"
  echo "|---|---|---|"
  for b in 0.25 1.0; do echo "| $b | ${WALL[budget_$b]} | ${CPU[budget_$b]} |"; done
  echo
  echo "Open loop at $RATE req/s (capacity $capacity req/s), benchmarks back to back or none:"
  echo
  echo "| run | req/s | p50 ms | p99 ms |"
  echo "|---|---|---|---|"
  for b in 0.25 1.0; do
    for n in none_${b}_a bench_${b}_a none_${b}_b bench_${b}_b; do echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} |"; done
  done
  echo
  echo "| ratio | value |"
  echo "|---|---|"
  for b in 0.25 1.0; do
    echo "| p99 with benchmarks / without, max_cpu $b | $(py "print(f'{(${P99[bench_${b}_a]}+${P99[bench_${b}_b]})/(${P99[none_${b}_a]}+${P99[none_${b}_b]}):.3f}')") |"
    echo "| p50 with benchmarks / without, max_cpu $b | $(py "print(f'{(${P50[bench_${b}_a]}+${P50[bench_${b}_b]})/(${P50[none_${b}_a]}+${P50[none_${b}_b]}):.3f}')") |"
  done
} | tee "$out/benchmark.md"
