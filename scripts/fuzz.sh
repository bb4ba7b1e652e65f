#!/usr/bin/env bash
# Builds the libFuzzer targets (build-sanitize/, see sanitize-build.sh) and
# runs each for FUZZ_SECONDS on its corpus: the seeds in
# tests/fuzz/corpus/<target>/ plus what earlier runs found, kept in
# build-sanitize/fuzz-corpus/<target>/ (the seeds in the repository are
# never written). Two targets run at a time. A crash, leak, undefined
# behaviour, timeout or out-of-memory fails the run; the input that caused
# it is left in build-sanitize/fuzz-findings/<target>/.
#
#   scripts/fuzz.sh [SECONDS [TARGET...]]     (make fuzz FUZZ_SECONDS=N)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-60}}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(fuzz_oip_json fuzz_oip_binary fuzz_grpc_request fuzz_model_config fuzz_deployment_spec
           fuzz_reference_csv fuzz_drift_window fuzz_feedback fuzz_http_request)
fi
BUILD_DIR=${SANITIZE_BUILD_DIR:-build-sanitize}
scripts/sanitize-build.sh "${targets[@]}"
source scripts/sanitizer-env.sh
parallel=${FUZZ_JOBS:-$(nproc)}

run_one() {
  local t=$1
  local corpus="$BUILD_DIR/fuzz-corpus/$t" findings="$BUILD_DIR/fuzz-findings/$t"
  mkdir -p "$corpus" "$findings"
  # -timeout: one input may take 10 s; -rss_limit_mb: 2 GiB; -max_len: 64 KiB
  # (every format here is bounded well below what it reads in practice).
  "$BUILD_DIR/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" "tests/fuzz/corpus/$t" \
      > "$BUILD_DIR/fuzz-$t.log" 2>&1
}

status=0
pids=()
names=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  names+=("$t")
  if [[ ${#pids[@]} -ge $parallel ]]; then
    if ! wait "${pids[0]}"; then status=1; fi
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do
  if ! wait "$p"; then status=1; fi
done

printf '%-22s %12s %9s %7s %7s %8s  %s\n' target executions exec/s cov ft corpus result
for t in "${names[@]}"; do
  log="$BUILD_DIR/fuzz-$t.log"
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  execs=$(sed -nE 's/^stat::number_of_executed_units:[[:space:]]*([0-9]+)/\1/p' "$log" | tail -n 1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec:[[:space:]]*([0-9]+)/\1/p' "$log" | tail -n 1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$done_line")
  result=ok
  if ls "$BUILD_DIR/fuzz-findings/$t"/* > /dev/null 2>&1; then
    result="FOUND: $(ls "$BUILD_DIR/fuzz-findings/$t" | head -n 3 | tr '\n' ' ')(see $log)"
    status=1
  elif [[ -z "$done_line" ]]; then
    result="did not finish (see $log)"
    status=1
  fi
  printf '%-22s %12s %9s %7s %7s %8s  %s\n' "$t" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "${corp:--}" "$result"
done
exit $status
