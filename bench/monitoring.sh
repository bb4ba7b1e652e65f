#!/usr/bin/env bash
# The cost of monitoring, in one run: `vigil bench` (32 in flight, 1-row
# JSON) against one endpoint serving the TorchScript MLP, prediction log
# on. Before each run the model is reloaded through the load API with its
# config.yaml plus `monitoring: {window_rows: 10000}` (on: all 30 features
# and 3 output columns tracked, reference.csv) or `monitoring: false`, so both sides are the
# same model, endpoint and names. ROUNDS pairs of runs, alternating which
# goes first (off on, on off, ...), so that a machine getting slower or
# faster during the run favours neither. Two measures: requests/s, and the
# server's CPU time per request (user + system, from /proc), which does not
# depend on how the 2 cores were shared with the load generator. Then the
# hot path alone (build/monitor_observe) against that CPU per request.
#
#   bench/monitoring.sh        (ROUNDS=6, DURATION=5 per run by default)
# Writes bench/out/monitoring.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-6}
source bench/common.sh

example_repo breast_cancer_mlp
cat >"$repo/deployments/cancer.yaml" <<'YAML'
production: {model: breast_cancer_mlp, version: 1}
YAML
config="$repo/breast_cancer_mlp/config.yaml"
# Windows of 10,000 rows: about 4 a second at this load, far more window
# closing and storing than the default per-minute windows would do.
py "import json; print(json.dumps({'parameters': {'config': open('$config').read() + 'monitoring: {window_rows: 10000}\\n'}}))" \
  >"$work/on.json"
py "import json; print(json.dumps({'parameters': {'config': open('$config').read() + 'monitoring: false\\n'}}))" \
  >"$work/off.json"
start_vigil "$repo"

vigil_pid=${pids[-1]}
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$vigil_pid/stat"; }

declare -A RPS P99 CPU_US
run() {  # run NAME on|off
  curl -sf -X POST -H 'Content-Type: application/json' --data-binary "@$work/$2.json" \
    "http://127.0.0.1:$port/v2/repository/models/breast_cancer_mlp/load" >/dev/null
  local before after
  before=$(cpu_ticks)
  ${BENCH_CPUS:+taskset -c "$BENCH_CPUS"} ./build/vigil bench -u "127.0.0.1:$port" -m cancer --concurrency 32 --threads 2 --duration "$DURATION" --window 1 \
    --input-data examples/repository/breast_cancer_mlp/reference.csv --json >"$work/$1.json"
  after=$(cpu_ticks)
  RPS[$1]=$(py "import json; print(round(json.load(open('$work/$1.json'))['levels'][0]['throughput']))")
  P99[$1]=$(py "import json; print(json.load(open('$work/$1.json'))['levels'][0]['latency_ms']['p99'])")
  CPU_US[$1]=$(py "import json; n=json.load(open('$work/$1.json'))['levels'][0]['total_requests']; \
print(round(($after - $before) / $ticks * 1e6 / n, 2))")
  printf '%-8s %8s req/s  p99 %6s ms  %6s us CPU/request\n' "$1" "${RPS[$1]}" "${P99[$1]}" "${CPU_US[$1]}"
}
for r in $(seq 1 "$ROUNDS"); do
  if ((r % 2)); then
    run "off$r" off
    run "on$r" on
  else
    run "on$r" on
    run "off$r" off
  fi
done
windows=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^vigil_drift_windows_total/ {s+=$2} END {print s+0}')

{
  echo "| round | off req/s | on req/s | on/off | off µs CPU/req | on µs CPU/req | on/off |"
  echo "|---|---|---|---|---|---|---|"
  ratios=() cpu_ratios=()
  for r in $(seq 1 "$ROUNDS"); do
    q=$(py "print(f'{${RPS[on$r]}/${RPS[off$r]}:.3f}')")
    c=$(py "print(f'{${CPU_US[on$r]}/${CPU_US[off$r]}:.3f}')")
    ratios+=("$q") cpu_ratios+=("$c")
    echo "| $r | ${RPS[off$r]} | ${RPS[on$r]} | $q | ${CPU_US[off$r]} | ${CPU_US[on$r]} | $c |"
  done
  echo
  echo "| ratio, monitoring on / off | median | min | max |"
  echo "|---|---|---|---|"
  py "import statistics as s; v=[${ratios[*]/%/,}]; print(f'| req/s | {s.median(v):.3f} | {min(v):.3f} | {max(v):.3f} |')"
  py "import statistics as s; v=[${cpu_ratios[*]/%/,}]; print(f'| server CPU per request | {s.median(v):.3f} | {min(v):.3f} | {max(v):.3f} |')"
  echo
  echo "drift windows closed: $windows"
  if [[ -x build/monitor_observe ]]; then
    # The hot path alone, against the server's CPU per request measured above.
    observe_ns=$(./build/monitor_observe --benchmark_filter='BM_Observe/1$' --benchmark_min_time=1 \
      --benchmark_format=json | py "import json,sys; print(round(json.load(sys.stdin)['benchmarks'][0]['ns_per_row'] * 1e9))")
    off_cpu_us=$(py "import statistics as s; print(round(s.median([${CPU_US[*]/%/,}]), 2))")
    echo
    echo "DriftMonitor::Observe (build/monitor_observe, 1-row batches): $observe_ns ns per row," \
      "$(py "print(f'{$observe_ns / 1000 / $off_cpu_us * 100:.1f}')")% of the server's median CPU per request ($off_cpu_us µs)"
  fi
} | tee "$out/monitoring.md"
