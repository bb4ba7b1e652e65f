// What the tuning commands measure of a model on rows, in process: its
// outputs, how fast it answers, and how close another model's outputs are.
#pragma once

#include <optional>
#include <vector>

#include "backends/backend.h"
#include "core/status.h"
#include "repository/model_config.h"
#include "tuning/model_files.h"

namespace vigil {

// Outputs of a run over rows: per output, its values row after row.
using Outputs = std::vector<std::vector<float>>;

// Every row of `data` through `backend`, `batch` rows per call.
StatusOr<Outputs> RunRows(Backend& backend, const ModelConfig& config, const ReferenceData& data, int64_t batch);

struct Speed {
  double p50_ms = 0, p99_ms = 0;  // one row per call
  double rows_per_s = 0;          // at best_batch
  int64_t best_batch = 0;
};
// Latency at one row per call, then rows/s at batch sizes 1, 8, 32, 128 and
// max_batch_size; `seconds` shared between them (after a short warm-up).
Speed MeasureSpeed(Backend& backend, const ModelConfig& config, const ReferenceData& data, double seconds);

// The predicted class of each row from one output's values: its argmax, or
// for one value per row, whether it reaches 0.5.
std::vector<int64_t> Classes(const std::vector<float>& values, int64_t rows);

struct Closeness {
  double max_abs_diff = 0, mean_abs_diff = 0;  // over every output value (NaN against a number: infinite)
  double agreement = 1;                        // rows with the same class from the first output
  std::optional<double> accuracy;              // `got`'s classes against `labels` (NaN = none)
};
// `got` against `want`, rows of `rows`; only the first `outputs` outputs
// are compared (all when 0).
Closeness CompareOutputs(const Outputs& want, const Outputs& got, int64_t rows, const std::vector<double>& labels,
                         size_t outputs = 0);

}  // namespace vigil
