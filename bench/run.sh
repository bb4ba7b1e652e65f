#!/usr/bin/env bash
# Side-by-side HTTP benchmark on one machine, one server at a time:
#   nginx answering a constant response (the machine's HTTP ceiling),
#   Vigil (ONNX MLP via OpenCV DNN, and the TorchScript MLP),
#   Node.js + onnxruntime-node (one worker per core) on the same ONNX file,
#   FastAPI + uvicorn + PyTorch (2 workers) on the same TorchScript file,
# each driven by wrk (2 threads, 32 connections) with 1-row FP32 requests;
# then Vigil with 64-row requests against its in-process backend rows/s.
#
#   bench/run.sh            (DURATION=10 per run by default)
# Prints a table and writes it to bench/out/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
THREADS=2
CONNS=32
source bench/common.sh

# Request bodies: one real row, and 64 rows.
/usr/bin/python3 - "$work" <<'PY'
import csv, json, sys
rows = list(csv.reader(open("examples/repository/breast_cancer_mlp_onnx/reference.csv")))[1:]
feats = [[float(v) for v in r[:30]] for r in rows]
def body(n):
    return json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [n, 30],
                                   "data": [x for r in feats[:n] for x in r]}]})
import struct
for n in (1, 64):
    with open(f"{sys.argv[1]}/post{n}.lua", "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write("wrk.body = " + json.dumps(body(n)) + "\n")
    # The same rows as binary tensors (Triton's binary extension), binary output.
    raw = struct.pack(f"<{n * 30}f", *[x for r in feats[:n] for x in r])
    header = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [n, 30],
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}).encode()
    with open(f"{sys.argv[1]}/post{n}bin.lua", "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/octet-stream"\n')
        f.write(f'wrk.headers["Inference-Header-Content-Length"] = "{len(header)}"\n')
        f.write('wrk.body = "' + "".join("\\%d" % b for b in header + raw) + '"\n')
PY

declare -A RPS P50 P99
run_wrk() {  # run_wrk NAME URL BODY_ROWS
  local name=$1 url=$2 rows=$3
  wrk -t$THREADS -c$CONNS -d2s -s "$work/post$rows.lua" "$url" >/dev/null 2>&1 || true  # warm-up
  wrk -t$THREADS -c$CONNS -d"${DURATION}s" --latency -s "$work/post$rows.lua" "$url" >"$out/wrk-$name.txt" 2>&1
  RPS[$name]=$(awk '/Requests\/sec/ {print $2}' "$out/wrk-$name.txt")
  P50[$name]=$(awk '$1=="50%" {print $2}' "$out/wrk-$name.txt")
  P99[$name]=$(awk '$1=="99%" {print $2}' "$out/wrk-$name.txt")
  local errors
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$out/wrk-$name.txt")
  printf '%-28s %10s req/s  p50 %-9s p99 %-9s %s\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "$errors"
}

# --- nginx: constant response, the HTTP ceiling ---
start_nginx auto 1000
run_wrk nginx_constant "http://127.0.0.1:$port/v2/models/x/infer" 1
stop_all

# --- Vigil ---
example_repo breast_cancer_mlp_onnx breast_cancer_mlp
start_vigil "$repo"
run_wrk vigil_onnx "http://127.0.0.1:$port/v2/models/breast_cancer_mlp_onnx/infer" 1
run_wrk vigil_torchscript "http://127.0.0.1:$port/v2/models/breast_cancer_mlp/versions/1/infer" 1
run_wrk vigil_onnx_64rows "http://127.0.0.1:$port/v2/models/breast_cancer_mlp_onnx/infer" 64
run_wrk vigil_torchscript_64rows "http://127.0.0.1:$port/v2/models/breast_cancer_mlp/versions/1/infer" 64
run_wrk vigil_onnx_binary "http://127.0.0.1:$port/v2/models/breast_cancer_mlp_onnx/infer" 1bin
run_wrk vigil_onnx_64rows_binary "http://127.0.0.1:$port/v2/models/breast_cancer_mlp_onnx/infer" 64bin
run_wrk vigil_torchscript_64rows_binary "http://127.0.0.1:$port/v2/models/breast_cancer_mlp/versions/1/infer" 64bin
stop_all

# --- Node.js + onnxruntime-node ---
if [[ ! -d bench/peers/node_modules/onnxruntime-node ]]; then
  (cd bench/peers && npm install --ignore-scripts --no-audit --no-fund >/dev/null)
fi
port=$(free_port)
MODEL="$PWD/examples/repository/breast_cancer_mlp_onnx/1/model.onnx" PORT=$port node bench/peers/node_server.js &
pids+=($!)
wait_http "http://127.0.0.1:$port/"
run_wrk node_onnxruntime "http://127.0.0.1:$port/v2/models/breast_cancer_mlp_onnx/infer" 1
stop_all

# --- FastAPI + uvicorn + PyTorch ---
port=$(free_port)
(cd bench/peers && MODEL="$PWD/../../examples/repository/breast_cancer_mlp/1/model.pt" \
  exec /usr/bin/python3 -m uvicorn fastapi_server:app --workers 2 --host 127.0.0.1 --port "$port" --log-level warning) &
pids+=($!)
wait_http "http://127.0.0.1:$port/docs"
run_wrk fastapi_pytorch "http://127.0.0.1:$port/v2/models/breast_cancer_mlp/infer" 1
stop_all

# --- in-process backend throughput (the compute limit) ---
inproc() { ./build/backend_throughput examples/repository "$1" 1 "$2" 5 | sed -n 's/.*rows_per_s=\([0-9]*\).*/\1/p'; }
onnx1=$(inproc breast_cancer_mlp_onnx 1)
onnx64=$(inproc breast_cancer_mlp_onnx 64)
ts1=$(inproc breast_cancer_mlp 1)
ts64=$(inproc breast_cancer_mlp 64)

ratio() { /usr/bin/python3 -c "print(f'{float(\"$1\")/float(\"$2\"):.2f}')"; }
rows64() { /usr/bin/python3 -c "print(f'{float(\"$1\")*64:.0f}')"; }
{
  echo "| server | req/s | p50 | p99 |"
  echo "|---|---|---|---|"
  for n in nginx_constant vigil_onnx vigil_onnx_binary vigil_torchscript node_onnxruntime fastapi_pytorch \
           vigil_onnx_64rows vigil_torchscript_64rows vigil_onnx_64rows_binary vigil_torchscript_64rows_binary; do
    echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} |"
  done
  echo
  echo "| ratio | value |"
  echo "|---|---|"
  echo "| vigil_onnx / node_onnxruntime | $(ratio "${RPS[vigil_onnx]}" "${RPS[node_onnxruntime]}") |"
  echo "| vigil_torchscript / fastapi_pytorch | $(ratio "${RPS[vigil_torchscript]}" "${RPS[fastapi_pytorch]}") |"
  echo "| vigil_onnx / nginx_constant | $(ratio "${RPS[vigil_onnx]}" "${RPS[nginx_constant]}") |"
  echo "| in-process rows/s, batch 1: onnx / torchscript | $onnx1 / $ts1 |"
  echo "| in-process rows/s, batch 64: onnx / torchscript | $onnx64 / $ts64 |"
  echo "| server rows/s with 64-row requests / in-process batch-64 rows/s, onnx | $(rows64 "${RPS[vigil_onnx_64rows]}") / $onnx64 = $(ratio "$(rows64 "${RPS[vigil_onnx_64rows]}")" "$onnx64") |"
  echo "| server rows/s with 64-row requests / in-process batch-64 rows/s, torchscript | $(rows64 "${RPS[vigil_torchscript_64rows]}") / $ts64 = $(ratio "$(rows64 "${RPS[vigil_torchscript_64rows]}")" "$ts64") |"
  echo "| same, binary tensors, onnx | $(rows64 "${RPS[vigil_onnx_64rows_binary]}") / $onnx64 = $(ratio "$(rows64 "${RPS[vigil_onnx_64rows_binary]}")" "$onnx64") |"
  echo "| same, binary tensors, torchscript | $(rows64 "${RPS[vigil_torchscript_64rows_binary]}") / $ts64 = $(ratio "$(rows64 "${RPS[vigil_torchscript_64rows_binary]}")" "$ts64") |"
  echo "| vigil_onnx p99 < node p99 and < fastapi p99 | ${P99[vigil_onnx]} vs ${P99[node_onnxruntime]} / ${P99[fastapi_pytorch]} |"
} | tee "$out/results.md"
