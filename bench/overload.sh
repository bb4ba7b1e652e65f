#!/usr/bin/env bash
# Under a spike (issue 14): the overload fixture's slow wide MLP behind an
# endpoint, open loop at its capacity, then 5x, then back
# (`vigil bench --rate-schedule`), three ways in one run, same load:
#
#   ladder     the endpoint's overload: block (slo_ms = DEADLINE_MS, the
#              small MLP as fallback, recover_after_s 2)
#   queue      the same endpoint without one: a bounded queue only, what
#              Triton does (requests bring no deadline)
#   admission  no ladder, but every request brings its deadline (`timeout`),
#              so the server-wide admission sheds what cannot finish in time
#
# Per phase: goodput (answers within DEADLINE_MS per second), the share of
# requests answered in time, p50/p99 of the answers, shed and late, the share
# and the accuracy (held-out labels) of the answers in time per rung, the
# server's resident memory, and the time back to rung 0.
#
#   bench/overload.sh     (BATCH=8 rows per request, DEADLINE_MS=100,
#                          SCHEDULE=1x:10s,5x:20s,1x:10s)
# Writes bench/out/overload.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${BATCH:-8}
DEADLINE_MS=${DEADLINE_MS:-100}
SCHEDULE=${SCHEDULE:-1x:10s,5x:20s,1x:10s}
source bench/common.sh

repo="$work/repository"
mkdir -p "$repo/deployments"
cp -r build/fixtures/overload_wide build/fixtures/overload_small "$repo/"
cat >"$repo/deployments/ladder.yaml" <<YAML
production: {model: overload_wide}
overload: {slo_ms: $DEADLINE_MS, fallback: {model: overload_small}, shed_retry_after_s: 1, recover_after_s: 2}
YAML
echo "production: {model: overload_wide}" >"$repo/deployments/queue.yaml"
echo "production: {model: overload_wide}" >"$repo/deployments/admission.yaml"
holdout=build/fixtures/overload_holdout.csv

run() {  # run ENDPOINT [ARGS...]: a fresh server, one schedule, its table
  local endpoint=$1; shift
  start_vigil "$repo"
  ./build/vigil bench -u "127.0.0.1:$port" -m "$endpoint" --batch "$BATCH" --input-data "$holdout" \
    --labels-column label --rate-schedule "$SCHEDULE" --capacity "$capacity" --deadline-ms "$DEADLINE_MS" \
    --threads 1 "$@" >"$work/$endpoint.table"
  stop_all
}

# Capacity: the wide model's closed-loop throughput through the plain endpoint.
start_vigil "$repo"
# (A level that did not settle exits 3; its figure is still the best there is here.)
measured=$(./build/vigil bench -u "127.0.0.1:$port" -m queue --batch "$BATCH" --input-data "$holdout" \
  --concurrency 4 --duration 12 --window 3 --stability 100 --threads 1 --json || true)
capacity=$(/usr/bin/python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['levels'][0]['throughput'], 1))" "$measured")
stop_all
echo "capacity: $capacity req/s of $BATCH rows"

run ladder
run queue
run admission --request-timeout-ms "$DEADLINE_MS"

{
  echo "# Under a spike: $SCHEDULE of $capacity req/s ($BATCH rows each), deadline $DEADLINE_MS ms"
  echo
  for e in ladder queue admission; do
    echo "## $e"
    echo
    echo '```'
    cat "$work/$e.table"
    echo '```'
    echo
  done
} >"$out/overload.md"
cat "$out/overload.md"
