// XGBoost models (JSON or UBJ) run through the XGBoost C API.
//
// Output mapping: the booster predicts K values per row (1 for binary and
// regression objectives). A config output of width K copies them; a width-2
// output over a 1-value binary model is expanded to [1 - p, p], the shape of
// scikit-learn's predict_proba.
#include <xgboost/c_api.h>

#include <cstdio>

#include "backends/adapters.h"

namespace vigil {
namespace {

// XGBoost's message without the stack trace it appends.
std::string LastXgbError() {
  std::string e = XGBGetLastError();
  const auto cut = e.find("\nStack trace:");
  if (cut != std::string::npos) e.resize(cut);
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
  return e;
}

class XgboostBackend final : public Backend {
 public:
  XgboostBackend(BackendSpec spec, BoosterHandle booster)
      : spec_(std::move(spec)),
        booster_(booster),
        config_("{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": " +
                std::to_string(spec_.options.iteration_end) +
                ", \"strict_shape\": false, \"cache_id\": 0, \"missing\": NaN}") {}
  ~XgboostBackend() override { XGBoosterFree(booster_); }

  Status Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override {
    const Tensor& in = inputs[0];
    const int64_t rows = in.shape[0];
    const int64_t cols = in.shape[1];
    char iface[256];
    std::snprintf(iface, sizeof iface,
                  "{\"data\": [%llu, true], \"shape\": [%lld, %lld], \"typestr\": \"<f4\", \"version\": 3}",
                  static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(in.data.data())),
                  static_cast<long long>(rows), static_cast<long long>(cols));
    const bst_ulong* out_shape = nullptr;
    bst_ulong out_dim = 0;
    const float* result = nullptr;
    int failed = 0;
    if (spec_.options.inplace) {
      failed = XGBoosterPredictFromDense(booster_, iface, config_.c_str(), nullptr, &out_shape, &out_dim, &result);
    } else {
      DMatrixHandle m = nullptr;
      failed = XGDMatrixCreateFromDense(iface, "{\"missing\": NaN, \"nthread\": 1}", &m);
      if (!failed) failed = XGBoosterPredictFromDMatrix(booster_, m, config_.c_str(), &out_shape, &out_dim, &result);
      if (m) XGDMatrixFree(m);  // the result belongs to the booster, not the matrix
    }
    if (failed != 0) {
      return Internal(BackendErrorContext(spec_) + ": XGBoost prediction failed: " + LastXgbError());
    }
    bst_ulong total = 1;
    for (bst_ulong i = 0; i < out_dim; ++i) total *= out_shape[i];
    if (rows == 0 || total % rows != 0) {
      return Internal(BackendErrorContext(spec_) + ": XGBoost returned " + std::to_string(total) + " values for " +
                      std::to_string(rows) + " rows");
    }
    const int64_t per_row = static_cast<int64_t>(total) / rows;
    const TensorSpec& os = spec_.outputs[0];
    const int64_t width = os.dims.empty() ? 1 : os.dims.back();
    outputs.resize(1);
    Tensor& out = outputs[0];
    out.name = os.name;
    out.datatype = DataType::kFp32;
    out.shape = {rows, width};
    if (os.dims.empty()) out.shape = {rows};
    out.data.resize(static_cast<size_t>(rows * width) * sizeof(float));
    float* dst = out.mutable_as<float>();
    if (per_row == width || width == -1) {
      out.shape.back() = per_row;
      out.data.resize(static_cast<size_t>(rows * per_row) * sizeof(float));
      std::memcpy(out.data.data(), result, static_cast<size_t>(rows * per_row) * sizeof(float));
    } else if (per_row == 1 && width == 2) {
      for (int64_t r = 0; r < rows; ++r) {
        dst[2 * r] = 1.0f - result[r];
        dst[2 * r + 1] = result[r];
      }
    } else {
      return Internal(BackendErrorContext(spec_) + ": the booster predicts " + std::to_string(per_row) +
                      " values per row but config output '" + os.name + "' has width " + std::to_string(width));
    }
    return Status::Ok();
  }

 private:
  BackendSpec spec_;
  BoosterHandle booster_;
  const std::string config_;  // the prediction's: type, tree range, missing value
};

}  // namespace

StatusOr<std::unique_ptr<Backend>> CreateXgboostBackend(const BackendSpec& spec) {
  BoosterHandle booster = nullptr;
  if (XGBoosterCreate(nullptr, 0, &booster) != 0) {
    return Internal(BackendErrorContext(spec) + ": cannot create an XGBoost booster: " + LastXgbError());
  }
  auto fail = [&](const std::string& what) -> Status {
    XGBoosterFree(booster);
    return InvalidArgument(BackendErrorContext(spec) + ": " + what);
  };
  if (XGBoosterLoadModel(booster, spec.model_path.c_str()) != 0) {
    return fail("cannot load XGBoost model " + spec.model_path.string() + ": " + LastXgbError());
  }
  XGBoosterSetParam(booster, "nthread", std::to_string(spec.options.intra_op_threads).c_str());
  if (spec.options.iteration_end > 0) {
    int rounds = 0;
    if (XGBoosterBoostedRounds(booster, &rounds) == 0 && rounds < spec.options.iteration_end) {
      return fail("backend_options.iteration_end " + std::to_string(spec.options.iteration_end) + " is more than the " +
                  std::to_string(rounds) + " boosting rounds of the model");
    }
  }
  bst_ulong features = 0;
  if (XGBoosterGetNumFeature(booster, &features) != 0) return fail("cannot read the feature count: " + LastXgbError());
  const int64_t declared = spec.inputs[0].dims[0];
  if (declared >= 0 && static_cast<int64_t>(features) != declared) {
    return fail("the model expects " + std::to_string(features) + " features but config input '" + spec.inputs[0].name +
                "' declares shape [" + std::to_string(declared) + "]");
  }
  return std::unique_ptr<Backend>(new XgboostBackend(spec, booster));
}

int64_t XgboostBoostedRounds(const std::filesystem::path& model_file) {
  BoosterHandle booster = nullptr;
  if (XGBoosterCreate(nullptr, 0, &booster) != 0) return 0;
  int rounds = 0;
  if (XGBoosterLoadModel(booster, model_file.c_str()) != 0 || XGBoosterBoostedRounds(booster, &rounds) != 0) rounds = 0;
  XGBoosterFree(booster);
  return rounds;
}

}  // namespace vigil
