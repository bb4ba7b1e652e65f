// A model of a repository on disk, as the tuning commands read and write
// it: its config, one version's file and backend options, its reference
// rows; and new versions written beside the old ones, never over them.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "core/status.h"
#include "repository/model_config.h"

namespace vigil {

struct ModelFiles {
  ModelConfig config;
  int64_t version = 0;
  std::filesystem::path dir;          // REPO/MODEL
  std::filesystem::path version_dir;  // REPO/MODEL/VERSION
  std::filesystem::path model_file;   // the runtime's file in it
  BackendOptions options;             // the model's, with the version's own over them

  // What CreateBackend needs to load this version.
  BackendSpec Spec() const;
};

// `version` 0: the highest on disk. Errors name what is missing: the model,
// a version, its file; an ensemble has no file of its own and is refused.
StatusOr<ModelFiles> FindModelFiles(const std::filesystem::path& repository, const std::string& model, int64_t version);

// Rows of the model's one FP32 input (row-major) with their labels (NaN
// where none; empty without a label column).
struct ReferenceData {
  std::vector<float> inputs;
  std::vector<double> labels;
  int64_t rows = 0;
  int64_t width = 0;
};

// The version's reference.csv, else the model's, at most `max_rows` rows.
// The model must have one FP32 input of fixed width.
StatusOr<ReferenceData> ReadModelReference(const ModelFiles& m, int64_t max_rows);

// Rows [first, first + n) of `data` as the model's input tensor (without a
// batch dimension when the model does not batch; then n must be 1).
Tensor RowsTensor(const ModelConfig& config, const ReferenceData& data, int64_t first, int64_t n);

// Copies version `from`'s folder to the next free version number, then
// writes `files` (name, text) into the copy; the copy appears under its
// number only when complete (a rename), so a polling server never loads
// half of it. Returns the new version.
StatusOr<int64_t> CopyVersion(const std::filesystem::path& repository, const std::string& model, int64_t from,
                              const std::vector<std::pair<std::string, std::string>>& files);

// The backend_options.yaml text that makes a version run with `o`: every
// key its backend reads, so nothing of the model's config.yaml shows through.
std::string VersionOptionsYaml(BackendKind backend, const BackendOptions& o, const std::string& comment);

}  // namespace vigil
