// Reference loading: the drift monitor of a model version and the
// reference it compares live traffic with (reference.csv, scored by the
// model itself so that prediction drift has a baseline).
//
// The repository calls this while a version loads; it knows the model only
// through core types and a function that runs rows through it.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "monitoring/drift_monitor.h"

namespace vigil {

// What reference loading needs to know of a model version.
struct MonitoredModel {
  std::string name;
  int64_t version = 0;
  MonitoringConfig monitoring;
  std::vector<TensorSpec> inputs, outputs;
  int64_t max_batch_size = 0;  // 0: the model takes one row at a time
};

// The model's first output on `rows` rows of its only input (row-major
// FP32 values), as doubles (NaN where the output is not FP32).
using ReferenceScorer = std::function<StatusOr<std::vector<double>>(std::vector<float> inputs, int64_t rows)>;

// The drift monitor of the version in `version_dir`, without its
// reference yet; null when monitoring is off or cannot apply (a variable
// or BYTES first input). `reference_csv` receives reference.csv's text
// (the version's own, else the model's), empty when there is none.
std::shared_ptr<DriftMonitor> MakeDriftMonitor(const MonitoredModel& model, const std::filesystem::path& version_dir,
                                               std::string* reference_csv);

// Sets the monitor's reference from reference.csv, with the model's own
// outputs on those rows from `score` (when the model has one FP32 input
// and an output); on a bad file, logs why and leaves the reference to the
// first live rows.
void LoadReference(const MonitoredModel& model, const std::string& csv, const ReferenceScorer& score,
                   DriftMonitor& monitor);

// Values per row of a tensor; 0 when a dimension is variable.
int64_t RowWidth(const TensorSpec& spec);

}  // namespace vigil
