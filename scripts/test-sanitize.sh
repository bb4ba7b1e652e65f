#!/usr/bin/env bash
# The whole test suite (unit, integration, gRPC compatibility) against the
# ASan + UBSan build: any memory error, leak or undefined behaviour fails it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/sanitize-build.sh
source scripts/sanitizer-env.sh
BUILD_DIR=${SANITIZE_BUILD_DIR:-build-sanitize}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 900
