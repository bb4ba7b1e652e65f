#!/usr/bin/env bash
# Before/after serving speed in one session: two vigil binaries (say, the
# commit before a change and after it) and nginx's constant reply, taken in
# turns (nginx, then the two in alternating order; ROUNDS times) with wrk (2 threads, 32
# connections, DURATION s each), so drift of the machine hits all three.
#
#   bench/compare.sh BEFORE_VIGIL AFTER_VIGIL     (ROUNDS=3 DURATION=10)
# Prints req/s per round, the medians and each binary's median / nginx's.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 2 ]] || { echo "usage: bench/compare.sh BEFORE_VIGIL AFTER_VIGIL" >&2; exit 2; }
before=$1 after=$2
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
source bench/common.sh

/usr/bin/python3 - "$work" <<'PY'
import csv, json, sys
rows = list(csv.reader(open("examples/repository/breast_cancer_mlp_onnx/reference.csv")))[1:]
body = json.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 30],
                               "data": [float(v) for v in rows[0][:30]]}]})
with open(f"{sys.argv[1]}/post1.lua", "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ' + json.dumps(body) + "\n")
PY

rps() {  # rps URL: req/s of one wrk run after a 2 s warm-up
  wrk -t2 -c32 -d2s -s "$work/post1.lua" "$1" >/dev/null 2>&1 || true
  wrk -t2 -c32 -d"${DURATION}s" -s "$work/post1.lua" "$1" 2>&1 | awk '/Requests\/sec/ {print $2}'
}

example_repo breast_cancer_mlp_onnx breast_cancer_mlp
declare -a NGINX BEFORE_ONNX AFTER_ONNX BEFORE_TS AFTER_TS
for round in $(seq 1 "$ROUNDS"); do
  start_nginx auto 1000
  NGINX+=("$(rps "http://127.0.0.1:$port/v2/models/x/infer")")
  stop_all
  # Alternate which binary goes first, so a machine that speeds up or slows
  # down over the run favours neither.
  order="before after"
  (( round % 2 == 0 )) && order="after before"
  for which in $order; do
    VIGIL_BIN=$([[ $which == before ]] && echo "$before" || echo "$after")
    rm -rf "$work/data"
    VIGIL_BIN=$VIGIL_BIN start_vigil "$repo"
    onnx=$(rps "http://127.0.0.1:$port/v2/models/breast_cancer_mlp_onnx/infer")
    ts=$(rps "http://127.0.0.1:$port/v2/models/breast_cancer_mlp/versions/1/infer")
    stop_all
    if [[ $which == before ]]; then BEFORE_ONNX+=("$onnx"); BEFORE_TS+=("$ts"); else AFTER_ONNX+=("$onnx"); AFTER_TS+=("$ts"); fi
  done
  echo "round $round: nginx ${NGINX[-1]}  before onnx ${BEFORE_ONNX[-1]} ts ${BEFORE_TS[-1]}  after onnx ${AFTER_ONNX[-1]} ts ${AFTER_TS[-1]}"
done

/usr/bin/python3 - "${NGINX[*]}" "${BEFORE_ONNX[*]}" "${AFTER_ONNX[*]}" "${BEFORE_TS[*]}" "${AFTER_TS[*]}" <<'PY' | tee "$out/compare.md"
import statistics, sys
nginx, b_onnx, a_onnx, b_ts, a_ts = ([float(x) for x in arg.split()] for arg in sys.argv[1:])
m = statistics.median
print("| series | req/s per round | median | median / nginx |")
print("|---|---|---|---|")
for name, xs in [("nginx constant", nginx), ("before, onnx", b_onnx), ("after, onnx", a_onnx),
                 ("before, torchscript", b_ts), ("after, torchscript", a_ts)]:
    print(f"| {name} | {', '.join(f'{x:.0f}' for x in xs)} | {m(xs):.0f} | {m(xs) / m(nginx):.3f} |")
print(f"\nafter / before (medians): onnx {m(a_onnx) / m(b_onnx):.3f}, torchscript {m(a_ts) / m(b_ts):.3f}")
PY
