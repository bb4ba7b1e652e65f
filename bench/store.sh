#!/usr/bin/env bash
# SQLite against PostgreSQL, in one run:
# 1. build/store_throughput: prediction-log rows/s through PredictionLog and
#    the latency of one durable feedback write (and the id lookup the
#    feedback route makes), each store in turn;
# 2. an endpoint's requests/s with each store behind it (`vigil bench`, 32 in
#    flight, 1-row JSON, every answer logged), the two servers alternated
#    ROUNDS times.
# PostgreSQL is a fresh server from Debian's package (scripts/test-postgres.sh)
# with its default durability (fsync on, synchronous_commit on), on loopback.
#
#   bench/store.sh          (ROWS=200000 FEEDBACK=2000 DURATION=10 ROUNDS=2 by default)
# Writes bench/out/store.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-200000}
FEEDBACK=${FEEDBACK:-2000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
source bench/common.sh
cmake --build build --target store_throughput vigil >/dev/null

pg_state="$work/postgres"
url=$(scripts/test-postgres.sh start "$pg_state")
stop_postgres() { scripts/test-postgres.sh stop "$pg_state" || true; }
trap 'stop_postgres; cleanup' EXIT
psql -q "$url" -c "CREATE DATABASE vigil_bench_log" -c "CREATE DATABASE vigil_bench_endpoint"
with_db() { echo "${url%/*}/$1"; }

{
echo "## Store: SQLite against PostgreSQL ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD))"
echo
echo "### The prediction log and feedback, in process"
echo
build/store_throughput "$work/sqlite-log" "$(with_db vigil_bench_log)" "$ROWS" "$FEEDBACK"
echo
echo "### An endpoint with each store (vigil bench, 32 in flight, 1-row JSON)"
echo
echo "| round | store | req/s | p50 ms | p99 ms | log rows written | dropped |"
echo "|---|---|---:|---:|---:|---:|---:|"
} | tee "$out/store.md"

example_repo breast_cancer_mlp
echo 'production: {model: breast_cancer_mlp, version: 1}' >"$repo/deployments/cancer.yaml"
serve() {  # serve STORE-FLAGS...: $port of a fresh server
  port=$(free_port)
  ./build/vigil serve --model-repository "$repo" --http-port "$port" --host 127.0.0.1 --log-level warn "$@" &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/v2/models/cancer/ready"
}
for round in $(seq 1 "$ROUNDS"); do
  for store in sqlite postgres; do
    if [[ $store == sqlite ]]; then
      serve --data-dir "$work/sqlite-endpoint-$round"
    else
      serve --store "$(with_db vigil_bench_endpoint)"
    fi
    ./build/vigil bench -u "127.0.0.1:$port" -m cancer --concurrency 32 --threads 2 --duration "$DURATION" \
      --window 1 --stability 100 --json >"$work/bench.json" || true  # an unsettled run is still a run
    sleep 2  # the log's last batches
    metrics=$(curl -s "http://127.0.0.1:$port/metrics")
    written=$(awk '/^vigil_prediction_log_records_total\{result="written"\}/ {print $2}' <<<"$metrics")
    dropped=$(awk '/^vigil_prediction_log_records_total\{result="dropped"\}/ {print $2}' <<<"$metrics")
    py "
import json
l = json.load(open('$work/bench.json'))['levels'][0]
print('| $round | $store | %d | %.3f | %.3f | ${written:-0} | ${dropped:-0} |' % (l['throughput'], l['latency_ms']['p50'], l['latency_ms']['p99']))
" | tee -a "$out/store.md"
    stop_all
  done
done
