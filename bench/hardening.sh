#!/usr/bin/env bash
# Two costs of issue 11, each measured in one run:
#
# 1. What TLS costs: `vigil bench` (32 in flight, 1-row JSON, then gRPC raw)
#    against the TorchScript MLP over http:// and https:// (grpc:// and
#    grpcs://), the plain and the TLS server alternated ROUNDS times.
# 2. Feedback never stalls inference: an endpoint with 100,000 joined
#    predictions (logged through the server, labelled through /v1/feedback),
#    inference latency in open loop at RATE req/s alone, then while 4 clients
#    post feedback (100 items a post, as fast as they are answered); the
#    feedback posts' own latency too. Alternated ROUNDS times.
#
#   bench/hardening.sh        (DURATION=10 s per run, RATE=2000, ROUNDS=3 by default)
#   PARTS=feedback VIGIL=/path/to/older/vigil bench/hardening.sh
#                             (one part only; the server binary of another build)
# Writes bench/out/hardening.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
RATE=${RATE:-2000}
ROUNDS=${ROUNDS:-3}
PARTS=${PARTS:-tls feedback}
VIGIL=${VIGIL:-./build/vigil}
rounds=$(seq 1 "$ROUNDS")
source bench/common.sh

example_repo breast_cancer_mlp
tests/tls/make_certs.sh "$work/certs"

start_server() {  # start_server [TLS]: $port and $grpc_port of a fresh server
  port=$(free_port)
  grpc_port=$(free_port)
  local tls=() scheme=http
  if [[ -n "${1:-}" ]]; then
    tls=(--tls-cert "$work/certs/server.pem" --tls-key "$work/certs/server.key")
    scheme=https
  fi
  "$VIGIL" serve --model-repository "$repo" --http-port "$port" --grpc-port "$grpc_port" --host 127.0.0.1 \
    --log-level error --data-dir "$work/data-$port" "${tls[@]}" &
  pids+=($!)
  for _ in $(seq 1 300); do
    curl -sf -o /dev/null --cacert "$work/certs/ca.pem" "$scheme://localhost:$port/v2/models/breast_cancer_mlp/versions/1/ready" &&
      return 0
    sleep 0.1
  done
  echo "bench: the server did not come up" >&2
  return 1
}

declare -A RPS P50 P99
bench() {  # bench NAME URL [ARGS...]
  local name=$1 url=$2
  shift 2
  ./build/vigil bench -u "$url" --tls-ca "$work/certs/ca.pem" -m breast_cancer_mlp --model-version 1 "$@" \
    --threads 2 --duration "$DURATION" --window 1 --json >"$work/$name.json"
  RPS[$name]=$(py "import json; print(round(json.load(open('$work/$name.json'))['levels'][0]['throughput']))")
  P50[$name]=$(py "import json; print(json.load(open('$work/$name.json'))['levels'][0]['latency_ms']['p50'])")
  P99[$name]=$(py "import json; print(json.load(open('$work/$name.json'))['levels'][0]['latency_ms']['p99'])")
  printf '%-26s %8s req/s  p50 %s ms  p99 %s ms\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}"
}

if [[ $PARTS == *tls* ]]; then
echo "== TLS"
for round in $rounds; do
  start_server
  bench "http_$round" "http://localhost:$port" --concurrency 32
  bench "grpc_$round" "grpc://localhost:$grpc_port" --concurrency 32 --binary
  stop_all
  start_server tls
  bench "https_$round" "https://localhost:$port" --concurrency 32
  bench "grpcs_$round" "grpcs://localhost:$grpc_port" --concurrency 32 --binary
  stop_all
done
fi

if [[ $PARTS == *feedback* ]]; then
echo "== feedback under load"
start_server
echo 'production: {model: breast_cancer_mlp, version: 1}' >"$work/cancer.yaml"
curl -sf -o /dev/null -X PUT --data-binary @"$work/cancer.yaml" "http://127.0.0.1:$port/v1/deployments/cancer"
# 100,000 predictions with ids of our own, then a label for each.
py "
import http.client, json, threading
rows = [[1.0 + 0.01 * c for c in range(30)]]
def predict(start, count):
    c = http.client.HTTPConnection('127.0.0.1', $port)
    for i in range(start, start + count):
        body = json.dumps({'id': 'p%06d' % i, 'inputs': [{'name': 'features', 'datatype': 'FP32', 'shape': [1, 30], 'data': rows}]})
        c.request('POST', '/v2/models/cancer/infer', body, {'Content-Type': 'application/json'})
        r = c.getresponse(); r.read()
        assert r.status == 200, r.status
threads = [threading.Thread(target=predict, args=(k * 25000, 25000)) for k in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
c = http.client.HTTPConnection('127.0.0.1', $port)
for start in range(0, 100000, 10000):
    items = [{'prediction_id': 'p%06d' % i, 'label': i % 2} for i in range(start, start + 10000)]
    c.request('POST', '/v1/feedback', json.dumps(items), {'Content-Type': 'application/json'})
    r = c.getresponse(); out = json.loads(r.read())
    assert r.status == 200 and out['joined'] == 10000, {k: out[k] for k in ('accepted', 'joined', 'unknown')}
"
joined=$(curl -s "http://127.0.0.1:$port/v1/deployments/cancer/status" | py "import json,sys; print(sum(v['joined'] for v in json.load(sys.stdin)['quality'].values()))")
echo "joined predictions: $joined"

posters() {  # posters SECONDS: 4 clients posting feedback; prints p50 and p99 ms of the posts
  py "
import http.client, json, random, threading, time
lat = []
lock = threading.Lock()
stop = time.time() + $1
def post(k):
    c = http.client.HTTPConnection('127.0.0.1', $port)
    rng = random.Random(k)
    while time.time() < stop:
        items = [{'prediction_id': 'p%06d' % rng.randrange(100000), 'label': rng.randrange(2)} for _ in range(100)]
        t = time.perf_counter()
        c.request('POST', '/v1/feedback', json.dumps(items), {'Content-Type': 'application/json'})
        r = c.getresponse(); r.read()
        with lock: lat.append((time.perf_counter() - t) * 1000)
threads = [threading.Thread(target=post, args=(k,)) for k in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
lat.sort()
print(len(lat), round(lat[len(lat) // 2], 2), round(lat[int(len(lat) * 0.99)], 2))
" >"$work/posters.txt"
}
declare -A POSTS
for round in $rounds; do
  bench "alone_$round" "http://127.0.0.1:$port" --rate "$RATE"
  posters $((DURATION + 6)) &
  poster_pid=$!
  sleep 1
  bench "with_feedback_$round" "http://127.0.0.1:$port" --rate "$RATE"
  wait "$poster_pid"
  POSTS[$round]=$(cat "$work/posters.txt")
  echo "feedback posts (count, p50 ms, p99 ms): ${POSTS[$round]}"
done
stop_all
fi

ratio() { py "print(round($1 / $2, 2))"; }
{
  echo "## TLS and feedback under load ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "\`bench/hardening.sh\` (DURATION=$DURATION s per run). TorchScript MLP v1, 1-row requests, 32 in flight."
  echo
  if [[ $PARTS == *tls* ]]; then
  echo "| run | plain req/s | TLS req/s | TLS / plain | plain p99 ms | TLS p99 ms |"
  echo "|---|---|---|---|---|---|"
  for round in $rounds; do
    echo "| HTTP JSON ($round) | ${RPS[http_$round]} | ${RPS[https_$round]} | $(ratio "${RPS[https_$round]}" "${RPS[http_$round]}") | ${P99[http_$round]} | ${P99[https_$round]} |"
    echo "| gRPC raw ($round) | ${RPS[grpc_$round]} | ${RPS[grpcs_$round]} | $(ratio "${RPS[grpcs_$round]}" "${RPS[grpc_$round]}") | ${P99[grpc_$round]} | ${P99[grpcs_$round]} |"
  done
  fi
  if [[ $PARTS == *feedback* ]]; then
  echo
  echo "Endpoint with $joined joined predictions, inference in open loop at $RATE req/s:"
  echo
  echo "| run | inference p50 ms | inference p99 ms | feedback posts in the window (count, p50 ms, p99 ms) |"
  echo "|---|---|---|---|"
  for round in $rounds; do
    echo "| alone ($round) | ${P50[alone_$round]} | ${P99[alone_$round]} | - |"
    echo "| 4 feedback posters ($round) | ${P50[with_feedback_$round]} | ${P99[with_feedback_$round]} | ${POSTS[$round]} |"
  done
  fi
} >"$out/hardening.md"
echo "wrote $out/hardening.md"
