#include "tuning/model_files.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "monitoring/drift_monitor.h"

namespace vigil {
namespace fs = std::filesystem;
namespace {

StatusOr<std::string> ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return NotFound("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Version numbers of the folders in `dir` (names made of digits only).
std::vector<int64_t> VersionsOnDisk(const fs::path& dir) {
  std::vector<int64_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.empty() || n.size() > 18 || !std::all_of(n.begin(), n.end(), ::isdigit)) continue;
    if (const int64_t v = std::stoll(n); v > 0) out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

BackendSpec ModelFiles::Spec() const {
  BackendSpec s = BackendSpecOf(config, version, model_file);
  s.options = options;
  return s;
}

StatusOr<ModelFiles> FindModelFiles(const fs::path& repository, const std::string& model, int64_t version) {
  if (model.empty() || model.find('/') != std::string::npos || model == "." || model == "..")
    return InvalidArgument("'" + model + "' is not a model name");
  ModelFiles m;
  m.dir = repository / model;
  std::error_code ec;
  if (!fs::is_directory(m.dir, ec)) return NotFound("no model '" + model + "' in " + repository.string());
  VIGIL_ASSIGN_OR_RETURN(const std::string text, ReadText(m.dir / "config.yaml"));
  VIGIL_ASSIGN_OR_RETURN(m.config, LoadModelConfig(model, text));
  if (m.config.backend == BackendKind::kEnsemble)
    return FailedPrecondition("model '" + model + "' is an ensemble, with no file of its own: work on its members");
  const std::vector<int64_t> versions = VersionsOnDisk(m.dir);
  if (versions.empty()) return NotFound("model '" + model + "' has no version folder");
  m.version = version > 0 ? version : versions.back();
  if (!std::binary_search(versions.begin(), versions.end(), m.version))
    return NotFound(
        fmt::format("model '{}' has no version {} (versions: {})", model, m.version, fmt::join(versions, ", ")));
  m.version_dir = m.dir / std::to_string(m.version);
  for (const auto& name : BackendModelFileNames(m.config.backend)) {
    if (fs::exists(m.version_dir / name, ec)) {
      m.model_file = m.version_dir / name;
      break;
    }
  }
  if (m.model_file.empty())
    return NotFound(fmt::format("model '{}' version {} has no {} file ({})", model, m.version,
                                BackendKindName(m.config.backend),
                                fmt::join(BackendModelFileNames(m.config.backend), " or ")));
  m.options = m.config.backend_options;
  if (fs::exists(m.version_dir / kVersionOptionsFile, ec)) {
    VIGIL_ASSIGN_OR_RETURN(const std::string own, ReadText(m.version_dir / kVersionOptionsFile));
    VIGIL_ASSIGN_OR_RETURN(m.options, LoadVersionBackendOptions(m.config, own));
  }
  return m;
}

StatusOr<ReferenceData> ReadModelReference(const ModelFiles& m, int64_t max_rows) {
  const ModelConfig& c = m.config;
  if (c.inputs.size() != 1 || c.inputs[0].datatype != DataType::kFp32)
    return FailedPrecondition("model '" + c.name + "': only a model with one FP32 input can be compared on rows");
  int64_t width = 1;
  for (int64_t d : c.inputs[0].dims) {
    if (d < 0)
      return FailedPrecondition("model '" + c.name + "': input '" + c.inputs[0].name + "' has a variable dimension");
    width *= d;
  }
  std::error_code ec;
  fs::path csv = m.version_dir / "reference.csv";
  if (!fs::exists(csv, ec)) csv = m.dir / "reference.csv";
  if (!fs::exists(csv, ec))
    return NotFound("model '" + c.name + "' has no reference.csv (in its folder or version " +
                    std::to_string(m.version) + "'s): the rows candidates are compared on");
  VIGIL_ASSIGN_OR_RETURN(const std::string text, ReadText(csv));
  VIGIL_ASSIGN_OR_RETURN(ReferenceRows rows, ReadReferenceCsv(text, width));
  ReferenceData d;
  d.width = width;
  d.rows = std::min(rows.rows, max_rows);
  if (d.rows == 0) return FailedPrecondition(csv.string() + " has no rows");
  d.inputs.reserve(static_cast<size_t>(d.rows * width));
  for (int64_t i = 0; i < d.rows * width; ++i)
    d.inputs.push_back(static_cast<float>(rows.inputs[static_cast<size_t>(i)]));
  if (!rows.labels.empty()) d.labels.assign(rows.labels.begin(), rows.labels.begin() + d.rows);
  return d;
}

Tensor RowsTensor(const ModelConfig& config, const ReferenceData& data, int64_t first, int64_t n) {
  Tensor t;
  t.name = config.inputs[0].name;
  t.datatype = DataType::kFp32;
  if (config.max_batch_size > 0) t.shape.push_back(n);
  t.shape.insert(t.shape.end(), config.inputs[0].dims.begin(), config.inputs[0].dims.end());
  const auto* p = reinterpret_cast<const uint8_t*>(data.inputs.data() + first * data.width);
  t.data.assign(p, p + static_cast<size_t>(n * data.width) * sizeof(float));
  return t;
}

StatusOr<int64_t> CopyVersion(const fs::path& repository, const std::string& model, int64_t from,
                              const std::vector<std::pair<std::string, std::string>>& files) {
  const fs::path dir = repository / model;
  const fs::path source = dir / std::to_string(from);
  const std::vector<int64_t> versions = VersionsOnDisk(dir);
  const int64_t next = versions.empty() ? 1 : versions.back() + 1;
  const fs::path target = dir / std::to_string(next);
  const fs::path staging = dir / (".vigil-writing-" + std::to_string(next));
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::copy(source, staging, fs::copy_options::recursive, ec);
  if (ec) return Internal("cannot copy " + source.string() + " to " + staging.string() + ": " + ec.message());
  for (const auto& [name, text] : files) {
    std::ofstream out(staging / name, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.good()) {
      fs::remove_all(staging, ec);
      return Internal("cannot write " + (staging / name).string());
    }
  }
  if (fs::exists(target, ec)) {
    fs::remove_all(staging, ec);
    return FailedPrecondition(target.string() + " appeared while it was written; nothing was changed");
  }
  fs::rename(staging, target, ec);
  if (ec) {
    fs::remove_all(staging, ec);
    return Internal("cannot move the new version into " + target.string() + ": " + ec.message());
  }
  return next;
}

std::string VersionOptionsYaml(BackendKind backend, const BackendOptions& o, const std::string& comment) {
  std::string out = "# " + comment + "\n";
  switch (backend) {
    case BackendKind::kTorchScript:
      out += fmt::format("optimize: {}\nintra_op_threads: {}\n", TorchOptimizeName(o.optimize), o.intra_op_threads);
      break;
    case BackendKind::kOnnx:
      out += fmt::format("dnn_backend: {}\ndnn_target: {}\nfusion: {}\n", o.dnn_backend, o.dnn_target, o.fusion);
      break;
    case BackendKind::kXgboost:
      out += fmt::format("intra_op_threads: {}\niteration_end: {}\ninplace: {}\n", o.intra_op_threads, o.iteration_end,
                         o.inplace);
      break;
    case BackendKind::kEnsemble:
      break;
  }
  return out;
}

}  // namespace vigil
