#!/usr/bin/env bash
# Starts `vigil serve` on the example repository, shows a few real requests
# and their answers, then shuts the server down with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
data=$(mktemp -d)
./build/vigil serve --model-repository examples/repository --http-port 0 --host 127.0.0.1 --data-dir "$data" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$log" "$data"' EXIT

for _ in $(seq 1 200); do
  grep -q "event=server_ready" "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "demo: the server exited" >&2; exit 1; }
  sleep 0.05
done
port=$(sed -n 's/.*event=listening protocol=http host=[^ ]* port=\([0-9]*\).*/\1/p' "$log" | head -1)
url="http://127.0.0.1:$port"

# One argument as the shell reads it back: single-quoted unless it is plain.
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}

show() {  # show TITLE CURL-ARGS...: prints a curl line that pastes into a shell, then runs it
  local title=$1; shift
  printf '\n\033[1m== %s\033[0m\n$ curl' "$title"
  for arg in "$@"; do printf ' %s' "$(quote "$arg")"; done
  echo
  curl -sS "$@" | head -c 1500
  echo
}

run() {  # run TITLE COMMAND...: prints the command, then runs it
  local title=$1; shift
  printf '\n\033[1m== %s\033[0m\n$' "$title"
  for arg in "$@"; do printf ' %s' "$(quote "$arg")"; done
  echo
  "$@"
}

echo "Vigil is serving examples/repository on $url"
echo "--- server log so far ---"
cat "$log"

show "Is the server ready?" -i "$url/v2/health/ready"
show "Which models and versions are loaded?" -X POST "$url/v2/repository/index"
show "Metadata of the TorchScript MLP" "$url/v2/models/breast_cancer_mlp"

# Two real rows of the breast-cancer data set (first row: malignant, second: benign).
row1='17.99,10.38,122.8,1001,0.1184,0.2776,0.3001,0.1471,0.2419,0.07871,1.095,0.9053,8.589,153.4,0.006399,0.04904,0.05373,0.01587,0.03003,0.006193,25.38,17.33,184.6,2019,0.1622,0.6656,0.7119,0.2654,0.4601,0.1189'
row2='13.54,14.36,87.46,566.3,0.09779,0.08129,0.06664,0.04781,0.1885,0.05766,0.2699,0.7886,2.058,23.56,0.008462,0.0146,0.02387,0.01315,0.0198,0.0023,15.11,19.26,99.7,711.2,0.144,0.1773,0.239,0.1288,0.2977,0.07259'
body="{\"id\":\"demo-1\",\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[2,30],\"data\":[[$row1],[$row2]]}]}"

show "TorchScript MLP (latest version): P(malignant), P(benign) per row" -X POST "$url/v2/models/breast_cancer_mlp/infer" -d "$body"
show "The same MLP exported to ONNX, run by OpenCV DNN, only the probabilities" -X POST "$url/v2/models/breast_cancer_mlp_onnx/infer" \
  -d "{\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[2,30],\"data\":[$row1,$row2]}],\"outputs\":[{\"name\":\"probabilities\"}]}"
show "XGBoost, version 1 explicitly" -X POST "$url/v2/models/breast_cancer_xgb/versions/1/infer" -d "$body"
show "A bad request: wrong element count" -X POST "$url/v2/models/breast_cancer_mlp/infer" \
  -d '{"inputs":[{"name":"features","datatype":"FP32","shape":[1,30],"data":[1,2,3]}]}'
show "Statistics of the XGBoost model" "$url/v2/models/breast_cancer_xgb/versions/1/stats"
# An endpoint: production v1 of the MLP, version 2 as a canary at its first step.
spec='{"production": {"model": "breast_cancer_mlp", "version": 1},
 "candidates": [{"name": "v2", "model": "breast_cancer_mlp", "version": 2, "mode": "canary", "steps": [10, 50], "step": 0}]}'
show "An endpoint 'cancer': production v1, a canary of v2 at 10%" -X PUT "$url/v1/deployments/cancer" -d "$spec"
printf '\n\033[1m== 200 calls to the endpoint, each with its own routing key; ground truth comes later\033[0m\n'
ids=()
for i in $(seq 1 200); do
  row=$([ $((i % 2)) -eq 0 ] && echo "$row1" || echo "$row2")
  reply=$(curl -sS -X POST "$url/v2/models/cancer/infer" \
    -d "{\"parameters\":{\"vigil.routing_key\":\"user-$i\"},\"inputs\":[{\"name\":\"features\",\"datatype\":\"FP32\",\"shape\":[1,30],\"data\":[$row]}]}")
  [ "$i" -eq 1 ] && echo "first reply: $reply"
  ids+=("$(sed -n 's/.*"vigil.prediction_id":"\([^"]*\)".*/\1/p' <<<"$reply")")
done
# The labels (row1 is malignant: class 0; row2 benign: class 1), as one feedback post.
feedback="["
for i in $(seq 1 200); do
  feedback+="{\"prediction_id\":\"${ids[$((i - 1))]}\",\"label\":$((i % 2 == 0 ? 0 : 1))}"
  [ "$i" -lt 200 ] && feedback+=","
done
feedback+="]"
printf '$ curl -X POST %s/v1/feedback -d '"'"'[{"prediction_id": "...", "label": 1}, ...]'"'"'\n' "$url"
curl -sS -X POST "$url/v1/feedback" -d "$feedback" | head -c 300
echo
host=127.0.0.1:$port
run "Where the rollout stands" ./build/vigil deploy -u "$host" status cancer
run "Drift, quality per variant from the feedback, and alerts" ./build/vigil monitor -u "$host" cancer
run "The canary to its next step (50%)" ./build/vigil deploy -u "$host" weight cancer v2 --step 1

printf '\n\033[1m== Prometheus metrics (excerpt)\033[0m\n$ curl %s/metrics\n' "$url"
curl -sS "$url/metrics" | grep -E '^vigil_(inference_requests_total|model_state.*READY|process_resident)' | head -12

printf '\n\033[1m== Graceful shutdown (SIGTERM)\033[0m\n'
kill -TERM $pid
wait $pid && echo "server exited with status 0"
tail -3 "$log"
