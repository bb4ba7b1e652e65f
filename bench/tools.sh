#!/usr/bin/env bash
# Figures for the gRPC frontend and the two measuring tools, in one run:
#   1. requests/s of the 1-row ONNX MLP over HTTP JSON, HTTP binary, gRPC
#      typed and gRPC raw, all driven by `vigil bench` (32 in flight), plus
#      wrk on HTTP binary as an independent reference;
#   2. `vigil bench` against wrk as load generators: same 32 connections,
#      against Vigil and against nginx answering a constant (a server far
#      cheaper than any model), with each generator's own CPU time per
#      request (user+sys from /usr/bin/time);
#   3. `vigil profile` on the TorchScript MLP with a 10 ms p99 budget.
#
#   bench/tools.sh          (DURATION=10 per run, PROFILE_BUDGET=120 by default)
# Prints everything and writes bench/out/tools.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
PROFILE_BUDGET=${PROFILE_BUDGET:-120}
CONNS=32
source bench/common.sh

# One real row as a binary-tensor wrk body.
/usr/bin/python3 - "$work" <<'PY'
import csv, json, struct, sys
row = [float(v) for v in list(csv.reader(open("examples/repository/breast_cancer_mlp_onnx/reference.csv")))[1][:30]]
raw = struct.pack("<30f", *row)
header = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 30],
                                 "parameters": {"binary_data_size": len(raw)}}],
                     "parameters": {"binary_data_output": True}}).encode()
with open(f"{sys.argv[1]}/bin.lua", "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/octet-stream"\n')
    f.write(f'wrk.headers["Inference-Header-Content-Length"] = "{len(header)}"\n')
    f.write('wrk.body = "' + "".join("\\%d" % b for b in header + raw) + '"\n')
body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 30], "data": row}]}
with open(f"{sys.argv[1]}/json.lua", "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write("wrk.body = " + json.dumps(json.dumps(body)) + "\n")
PY

declare -A RPS CPU
/usr/bin/time -f "%U %S" -o "$work/time" ./build/vigil backends >/dev/null
START_CPU=$(py "u,s=open('$work/time').read().split(); print(float(u)+float(s))")
# gen_wrk NAME URL LUA: wrk's req/s and its own CPU µs per request.
gen_wrk() {
  local name=$1 url=$2 lua=$3
  wrk -t2 -c$CONNS -d2s -s "$work/$lua" "$url" >/dev/null 2>&1 || true
  /usr/bin/time -f "%U %S" -o "$work/time" wrk -t2 -c$CONNS -d"${DURATION}s" -s "$work/$lua" "$url" >"$out/tools-$name.txt" 2>&1
  local total
  total=$(awk '/requests in/ {print $1}' "$out/tools-$name.txt")
  RPS[$name]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$out/tools-$name.txt")
  CPU[$name]=$(py "u,s=open('$work/time').read().split(); print(f'{(float(u)+float(s))*1e6/$total:.2f}')")
  printf '%-34s %10s req/s   generator CPU %6s us/request\n' "$name" "${RPS[$name]}" "${CPU[$name]}"
}
# gen_bench NAME ARGS...: vigil bench's req/s and its own CPU µs per request.
gen_bench() {
  local name=$1
  shift
  /usr/bin/time -f "%U %S" -o "$work/time" ./build/vigil bench "$@" --concurrency $CONNS --threads 2 \
    --duration "$DURATION" --window 1 --stable-windows 3 --json >"$out/tools-$name.json"
  RPS[$name]=$(py "import json; print(f\"{json.load(open('$out/tools-$name.json'))['levels'][0]['throughput']:.0f}\")")
  # CPU over every request of the run, less the process start (libraries
  # loading), which wrk does not pay.
  local total
  total=$(py "import json; print(json.load(open('$out/tools-$name.json'))['levels'][0]['total_requests'])")
  CPU[$name]=$(py "u,s=open('$work/time').read().split(); print(f'{(float(u)+float(s)-$START_CPU)*1e6/$total:.2f}')")
  printf '%-34s %10s req/s   generator CPU %6s us/request\n' "$name" "${RPS[$name]}" "${CPU[$name]}"
}

# --- Vigil over every transport ---
example_repo breast_cancer_mlp_onnx breast_cancer_mlp
http_port=$(free_port)
grpc_port=$(free_port)
./build/vigil serve --model-repository "$repo" --http-port "$http_port" --grpc-port "$grpc_port" --host 127.0.0.1 --data-dir "$work/data" \
  --log-level warn &
pids+=($!)
wait_http "http://127.0.0.1:$http_port/v2/health/ready"
sleep 1
m=breast_cancer_mlp_onnx
gen_bench vigil_bench_http_json -u "127.0.0.1:$http_port" -m $m
gen_bench vigil_bench_http_binary -u "127.0.0.1:$http_port" -m $m --binary
gen_bench vigil_bench_grpc_typed -u "grpc://127.0.0.1:$grpc_port" -m $m --metrics-url "127.0.0.1:$http_port"
gen_bench vigil_bench_grpc_raw -u "grpc://127.0.0.1:$grpc_port" -m $m --binary --metrics-url "127.0.0.1:$http_port"
gen_wrk wrk_http_json "http://127.0.0.1:$http_port/v2/models/$m/infer" json.lua
gen_wrk wrk_http_binary "http://127.0.0.1:$http_port/v2/models/$m/infer" bin.lua
stop_all

# --- nginx answering a constant: the generators' own ceiling ---
start_nginx 1 100000000
gen_bench vigil_bench_vs_nginx -u "127.0.0.1:$port" -m x --metrics-url "127.0.0.1:1"
gen_wrk wrk_vs_nginx "http://127.0.0.1:$port/v2/models/x/infer" json.lua
stop_all

# --- vigil profile on the TorchScript MLP ---
./build/vigil profile --model-repository examples/repository -m breast_cancer_mlp --latency-budget 10 \
  --time-budget "$PROFILE_BUDGET" -o "$out/profile-breast_cancer_mlp.yaml" | tee "$out/profile.txt"

ratio() { py "print(f'{float(\"$1\")/float(\"$2\"):.2f}')"; }
{
  echo "| run | req/s | generator CPU µs/request |"
  echo "|---|---|---|"
  for n in vigil_bench_http_json vigil_bench_http_binary vigil_bench_grpc_typed vigil_bench_grpc_raw wrk_http_json \
           wrk_http_binary vigil_bench_vs_nginx wrk_vs_nginx; do
    echo "| $n | ${RPS[$n]} | ${CPU[$n]} |"
  done
  echo
  echo "| ratio | value |"
  echo "|---|---|"
  echo "| gRPC raw / HTTP binary (vigil bench) | $(ratio "${RPS[vigil_bench_grpc_raw]}" "${RPS[vigil_bench_http_binary]}") |"
  echo "| gRPC raw (vigil bench) / HTTP binary (wrk) | $(ratio "${RPS[vigil_bench_grpc_raw]}" "${RPS[wrk_http_binary]}") |"
  echo "| vigil bench / wrk req/s, against Vigil (JSON) | $(ratio "${RPS[vigil_bench_http_json]}" "${RPS[wrk_http_json]}") |"
  echo "| vigil bench / wrk req/s, against nginx | $(ratio "${RPS[vigil_bench_vs_nginx]}" "${RPS[wrk_vs_nginx]}") |"
  echo "| wrk / vigil bench CPU per request, against nginx | $(ratio "${CPU[wrk_vs_nginx]}" "${CPU[vigil_bench_vs_nginx]}") |"
  echo
  echo '```'
  cat "$out/profile.txt"
  echo '```'
} | tee "$out/tools.md"
