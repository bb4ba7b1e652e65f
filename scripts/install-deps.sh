#!/usr/bin/env bash
# Installs the Debian 12 packages Vigil needs. Idempotent: when everything is
# present it only checks and returns (well under a second).
#
#   scripts/install-deps.sh            build, tests and demo
#   scripts/install-deps.sh --examples + what examples/train.py needs
#   scripts/install-deps.sh --bench    + the peers and load tools of bench/
set -euo pipefail

build=(cmake g++ make ccache pkg-config
       libboost-dev libboost-system-dev rapidjson-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
       libopencv-dnn-dev libtorch-dev libxgboost-dev libsqlite3-dev libpq-dev libgoogle-perftools-dev libre2-dev libssl-dev
       libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
       libgtest-dev libgmock-dev libbenchmark-dev)
tests=(prometheus prometheus-alertmanager python3-yaml nginx bc curl python3 python3-grpcio python3-grpc-tools openssl iproute2
       clang-14 libclang-rt-14-dev  # clang: thread-safety analysis, the sanitizer build and the fuzzers
       python3-torch python3-sklearn  # tests/fixtures/overload_models.py trains the overload fixture
       postgresql util-linux)  # the PostgreSQL store's tests start a server (scripts/test-postgres.sh, runuser)
examples=(python3-sklearn python3-torch python3-xgboost python3-onnx)
bench=(wrk nginx python3-fastapi python3-uvicorn python3-torch nodejs npm)

wanted=("${build[@]}" "${tests[@]}")
for arg in "$@"; do
  case "$arg" in
    --examples) wanted+=("${examples[@]}") ;;
    --bench) wanted+=("${examples[@]}" "${bench[@]}") ;;
    *) echo "install-deps.sh: unknown option '$arg' (known: --examples, --bench)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${wanted[@]}"; do
  # Node.js may come from elsewhere on developer machines; accept any node/npm on PATH.
  if [[ "$pkg" == nodejs ]] && command -v node >/dev/null; then continue; fi
  if [[ "$pkg" == npm ]] && command -v npm >/dev/null; then continue; fi
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
