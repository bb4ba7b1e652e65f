#!/usr/bin/env bash
# The shadow CPU budget with a slow shadow (issue 14): production is the
# TorchScript breast-cancer MLP; every request is mirrored to the overload
# fixture's wide MLP (about 0.5 ms of a core per row, some 30x production's
# cost). Open loop at RATE_SHARE of the plain endpoint's closed-loop capacity,
# production p50/p99 with
#
#   none       no shadow
#   budget     the wide shadow at the default budget (max_cpu 0.1)
#   unbounded  the wide shadow with max_cpu 64 (no budget in practice)
#
# interleaved ROUNDS times (none, budget, unbounded, none, ...) on one
# server, so drift of the machine falls on all three alike. Reports each run,
# the median p99 of each kind and the ratios to `none`, and what the shadow
# ran, dropped and used.
#
#   bench/shadow_budget.sh   (DURATION=10 s per run, ROUNDS=3, RATE_SHARE=30)
# Writes bench/out/shadow_budget.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
RATE_SHARE=${RATE_SHARE:-30}
source bench/common.sh

example_repo breast_cancer_mlp
cp -r build/fixtures/overload_wide "$repo/"
cat >"$repo/deployments/none.yaml" <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
YAML
cat >"$repo/deployments/budget.yaml" <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: wide, model: overload_wide, mode: shadow, share: 100}
YAML
cat >"$repo/deployments/unbounded.yaml" <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
candidates:
  - {name: wide, model: overload_wide, mode: shadow, share: 100, max_cpu: 64}
YAML
start_vigil "$repo"

./build/vigil bench -u "127.0.0.1:$port" -m none --concurrency 32 --threads 2 --duration "$DURATION" --window 1 \
  --stability 100 --json >"$work/capacity.json" || true  # a level that did not settle exits 3; its figure stands
capacity=$(py "import json; print(round(json.load(open('$work/capacity.json'))['levels'][0]['throughput']))")
RATE=${RATE:-$((capacity * RATE_SHARE / 100))}
echo "capacity $capacity req/s; open loop at $RATE req/s"

cpu_seconds() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }  # utime + stime, at 100 ticks/s
server_pid=${pids[0]}
rows=()
for round in $(seq 1 "$ROUNDS"); do
  for kind in none budget unbounded; do
    before=$(cpu_seconds "$server_pid"); t0=$(date +%s.%N)
    ./build/vigil bench -u "127.0.0.1:$port" -m "$kind" --rate "$RATE" --threads 2 --duration "$DURATION" --window 1 \
      --stability 100 --json >"$work/$kind-$round.json" || true
    after=$(cpu_seconds "$server_pid"); t1=$(date +%s.%N)
    row=$(py "
import json
l = json.load(open('$work/$kind-$round.json'))['levels'][0]
print('$kind', $round, round(l['throughput']), l['latency_ms']['p50'], l['latency_ms']['p99'], round(($after - $before) / ($t1 - $t0), 2))
")
    echo "$row"
    rows+=("$row")
  done
done
shadow=$(curl -s "http://127.0.0.1:$port/metrics" | grep -E '^vigil_shadow_requests_total\{endpoint="(budget|unbounded)"' | tr '\n' ' ')

{
  echo "Open loop at $RATE req/s ($RATE_SHARE% of the plain endpoint's $capacity req/s), $DURATION s per run:"
  echo
  echo "| run | round | req/s | p50 ms | p99 ms | server CPU (cores) |"
  echo "|---|---|---|---|---|---|"
  for r in "${rows[@]}"; do set -- $r; echo "| $1 | $2 | $3 | $4 | $5 | $6 |"; done
  echo
  py "
import statistics
rows = [r.split() for r in '''$(printf '%s\n' "${rows[@]}")'''.strip().splitlines()]
p99 = {k: statistics.median(float(r[4]) for r in rows if r[0] == k) for k in ('none', 'budget', 'unbounded')}
p50 = {k: statistics.median(float(r[3]) for r in rows if r[0] == k) for k in ('none', 'budget', 'unbounded')}
print('| ratio (medians over the rounds) | p50 | p99 |')
print('|---|---|---|')
for k in ('budget', 'unbounded'):
    print(f'| {k} / none | {p50[k] / p50[\"none\"]:.3f} | {p99[k] / p99[\"none\"]:.3f} |')
"
  echo
  echo "shadow copies: $shadow"
} | tee "$out/shadow_budget.md"
