#!/usr/bin/env bash
# Configures and builds build-sanitize/: the whole project with clang,
# AddressSanitizer, UndefinedBehaviorSanitizer and libFuzzer's coverage
# (VIGIL_FUZZ=ON), so one build serves both `make test-sanitize` (the test
# suite under the sanitizers) and `make fuzz` (the fuzz targets).
#
#   scripts/sanitize-build.sh [TARGET...]     default: everything
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SANITIZE_BUILD_DIR:-build-sanitize}
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIL_FUZZ=ON
fi
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" "${targets[@]}"
