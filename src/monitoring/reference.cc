#include "monitoring/reference.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/logging.h"

namespace vigil {
namespace fs = std::filesystem;

int64_t RowWidth(const TensorSpec& spec) {
  int64_t width = 1;
  for (int64_t d : spec.dims) width = d > 0 ? width * d : 0;
  return width;
}

std::shared_ptr<DriftMonitor> MakeDriftMonitor(const MonitoredModel& model, const fs::path& version_dir,
                                               std::string* reference_csv) {
  reference_csv->clear();
  if (!model.monitoring.enabled || model.inputs.empty()) return nullptr;
  const int64_t in_width = RowWidth(model.inputs[0]);
  if (in_width == 0 || model.inputs[0].datatype == DataType::kBytes) {
    spdlog::info("event=monitoring_off model={} version={} reason={}", model.name, model.version,
                 LogValue("the first input has a variable shape or is BYTES"));
    return nullptr;
  }
  MonitoringConfig mc = model.monitoring;
  for (const fs::path& p : {version_dir / "reference.csv", version_dir.parent_path() / "reference.csv"}) {
    if (!fs::exists(p)) continue;
    std::ifstream in(p, std::ios::binary);
    if (in) {
      std::ostringstream text;
      text << in.rdbuf();
      *reference_csv = std::move(text).str();
    }
    break;
  }
  if (mc.features.empty()) {
    // Every column of the first input, named by reference.csv's header when there is one.
    const std::vector<std::string> header = ReferenceCsvHeader(*reference_csv);
    for (int64_t i = 0; i < in_width; ++i) {
      const auto k = static_cast<size_t>(i);
      mc.features.push_back({k < header.size() && !header[k].empty() ? header[k] : "f" + std::to_string(i), i});
    }
  }
  const int64_t out_width = model.outputs.empty() ? 0 : RowWidth(model.outputs[0]);
  return std::make_shared<DriftMonitor>(std::move(mc), in_width, out_width,
                                        model.outputs.empty() ? "output" : model.outputs[0].name);
}

void LoadReference(const MonitoredModel& model, const std::string& csv, const ReferenceScorer& score,
                   DriftMonitor& monitor) {
  const int64_t width = RowWidth(model.inputs[0]);
  auto rows = ReadReferenceCsv(csv, width);
  if (!rows.ok()) {
    spdlog::error("event=reference_unusable model={} version={} error={} action=using_first_live_rows", model.name,
                  model.version, LogValue(rows.status().message()));
    return;
  }
  const bool fp32 = model.inputs[0].datatype == DataType::kFp32;
  // The model sees FP32 inputs as floats: so must the reference, or a
  // sample's own extremes (14.81 read as a double) would fall outside it.
  if (fp32) {
    for (double& v : rows->inputs) v = static_cast<float>(v);
  }
  // The model's outputs on the reference rows: the reference for prediction drift.
  if (model.inputs.size() == 1 && fp32 && !model.outputs.empty()) {
    const int64_t chunk = std::max<int64_t>(1, model.max_batch_size);
    for (int64_t start = 0; start < rows->rows; start += chunk) {
      const int64_t n = std::min(chunk, rows->rows - start);
      const auto first = rows->inputs.begin() + static_cast<std::ptrdiff_t>(start * width);
      std::vector<float> in(first, first + static_cast<std::ptrdiff_t>(n * width));
      auto out = score(std::move(in), n);
      if (!out.ok() || out->empty()) {
        spdlog::warn("event=reference_outputs_failed model={} version={} error={}", model.name, model.version,
                     LogValue(out.ok() ? "no outputs" : out.status().message()));
        rows->outputs.clear();
        break;
      }
      rows->outputs.insert(rows->outputs.end(), out->begin(), out->end());
    }
  }
  monitor.SetReference(*rows, "reference.csv");
}

}  // namespace vigil
