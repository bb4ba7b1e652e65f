#!/usr/bin/env bash
# Distillation (issue 15): students of the overload fixture's wide MLP (3 x
# 512, the slow teacher) trained on its answers over the breast-cancer
# reference rows, half of them held out: the curve of student size against
# held-out agreement and speed, for XGBoost and MLP students. Nothing is
# written to the repository (--dry-run).
#
#   bench/distill.sh     (SECONDS_EACH=2 of measuring per model)
# Writes bench/out/distill.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-2}
source bench/common.sh

repo="$work/repository"
mkdir -p "$repo"
cp -r build/fixtures/overload_wide "$repo/"
cp examples/repository/breast_cancer_mlp/reference.csv "$repo/overload_wide/"
{
  echo '```'
  ./build/vigil distill overload_wide --model-repository "$repo" --student xgboost --trees 5,10,25,50,100 \
    --depth 2,4 --holdout 0.5 --seconds "$SECONDS_EACH" --dry-run
  echo
  ./build/vigil distill overload_wide --model-repository "$repo" --student mlp --hidden 2,4,8,16,32,64 \
    --holdout 0.5 --seconds "$SECONDS_EACH" --dry-run
  echo '```'
} | tee "$out/distill.md"
