// XGBoost students (backends/train.h), through the C API Vigil serves with.
#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backends/train.h"

namespace vigil {
namespace {

std::string LastError() {
  std::string e = XGBGetLastError();
  const auto cut = e.find("\nStack trace:");
  if (cut != std::string::npos) e.resize(cut);
  return e;
}

}  // namespace

Status TrainXgboostStudent(const TrainingSet& d, int64_t trees, int64_t depth, const std::filesystem::path& out_file) {
  if (d.rows < 2 || d.width < 1) return InvalidArgument("an XGBoost student needs at least 2 rows");
  if (trees < 1 || trees > 10'000) return InvalidArgument("trees: from 1 to 10000");
  if (depth < 1 || depth > 16) return InvalidArgument("depth: from 1 to 16");
  std::vector<float> labels(static_cast<size_t>(d.rows));
  std::string objective;
  int64_t classes = 0;
  switch (d.target) {
    case StudentTarget::kClassProbabilities:
      if (d.k == 2) {
        objective = "reg:logistic";
        for (int64_t r = 0; r < d.rows; ++r) labels[static_cast<size_t>(r)] = std::clamp(d.y[r * 2 + 1], 0.f, 1.f);
      } else {
        objective = "multi:softprob";
        classes = d.k;
        for (int64_t r = 0; r < d.rows; ++r) {
          const float* v = d.y + r * d.k;
          labels[static_cast<size_t>(r)] = static_cast<float>(std::max_element(v, v + d.k) - v);
        }
      }
      break;
    case StudentTarget::kProbability:
      objective = "reg:logistic";
      for (int64_t r = 0; r < d.rows; ++r) labels[static_cast<size_t>(r)] = std::clamp(d.y[r], 0.f, 1.f);
      break;
    case StudentTarget::kValue:
      if (d.k != 1)
        return InvalidArgument("an XGBoost student answers one value per row; the teacher answers " +
                               std::to_string(d.k) + " (try --student mlp)");
      objective = "reg:squarederror";
      labels.assign(d.y, d.y + d.rows);
      break;
  }
  DMatrixHandle m = nullptr;
  BoosterHandle b = nullptr;
  auto fail = [&](const std::string& what) {
    if (b) XGBoosterFree(b);
    if (m) XGDMatrixFree(m);
    return Internal("XGBoost " + what + ": " + LastError());
  };
  if (XGDMatrixCreateFromMat(d.x, static_cast<bst_ulong>(d.rows), static_cast<bst_ulong>(d.width), NAN, &m) != 0)
    return fail("cannot hold the training rows");
  if (XGDMatrixSetFloatInfo(m, "label", labels.data(), static_cast<bst_ulong>(d.rows)) != 0)
    return fail("cannot take the labels");
  if (XGBoosterCreate(&m, 1, &b) != 0) return fail("cannot create a booster");
  const std::string depth_text = std::to_string(depth), seed = std::to_string(d.seed % 2'000'000'000);
  XGBoosterSetParam(b, "objective", objective.c_str());
  XGBoosterSetParam(b, "max_depth", depth_text.c_str());
  XGBoosterSetParam(b, "eta", "0.3");
  XGBoosterSetParam(b, "nthread", "1");
  XGBoosterSetParam(b, "seed", seed.c_str());
  XGBoosterSetParam(b, "tree_method", "hist");
  if (classes > 0) XGBoosterSetParam(b, "num_class", std::to_string(classes).c_str());
  for (int i = 0; i < trees; ++i) {
    if (XGBoosterUpdateOneIter(b, i, m) != 0) return fail("training round " + std::to_string(i) + " failed");
  }
  if (XGBoosterSaveModel(b, out_file.c_str()) != 0) return fail("cannot write " + out_file.string());
  XGBoosterFree(b);
  XGDMatrixFree(m);
  return Status::Ok();
}

}  // namespace vigil
