// `vigil optimize`: what a model's runtime offers to make it cheaper, each
// setting tried as a candidate and measured against the version as it is
// served, on the model's own reference rows:
//
//   TorchScript  freeze, optimize_for_inference (graph passes at load), and
//                intra-op threads per batch
//   ONNX         every OpenCV DNN backend/target this machine has, with and
//                without layer fusion
//   XGBoost      threads per call, prediction through a DMatrix instead of
//                inplace, and tree cuts (iteration_end: lossy by design)
//
// For each: latency at batch 1 (p50, p99), throughput at the best batch
// size, the largest and mean absolute difference of every output from the
// original's, agreement of the predicted class, and accuracy where
// reference.csv has labels. A candidate within `max_abs_diff` is exact; the
// fastest exact one (by throughput, when it beats the original by more
// than noise) is recommended. Candidates are loaded in this process through
// the same CreateBackend the server uses, so runtimes are compared without
// HTTP in the way; `vigil profile` tunes the serving knobs afterwards.
//
// Nothing in the repository is written unless asked: WriteCandidate copies
// the version's folder to the next version number with the candidate's
// backend_options.yaml, never over an existing one.
#pragma once

#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/status.h"

namespace vigil {

struct OptimizeOptions {
  std::filesystem::path repository;
  std::string model;
  int64_t version = 0;         // 0: the highest version on disk
  double max_abs_diff = 1e-4;  // what counts as exact
  double seconds = 1.5;        // measuring time per candidate
  int64_t max_rows = 2000;     // reference rows used at most
  // Makes the backend of a candidate; null: CreateBackend (tests inject).
  std::function<StatusOr<std::unique_ptr<Backend>>(std::string_view kind, const BackendSpec&)> backends;
};

struct OptimizeCandidate {
  std::string name;  // "original", "freeze", "threads=2", "trees=50", ...
  BackendOptions options;
  bool lossy = false;             // meant to trade accuracy for speed
  std::string error;              // why it could not be loaded or run; nothing else is set then
  double p50_ms = 0, p99_ms = 0;  // one row per call
  double rows_per_s = 0;          // at best_batch
  int64_t best_batch = 0;
  double max_abs_diff = 0, mean_abs_diff = 0;  // every output against the original's
  double agreement = 1;                        // share of rows with the original's predicted class
  std::optional<double> accuracy;              // against reference.csv's labels
  bool exact = false;
  double speedup = 1;  // rows_per_s over the original's
};

struct OptimizeReport {
  std::string model, backend;
  int64_t version = 0;
  int64_t rows = 0;                           // reference rows compared
  int64_t labelled = 0;                       // of which with a label
  double max_abs_diff = 0;                    // the threshold used
  std::vector<OptimizeCandidate> candidates;  // [0] is the original
  std::optional<size_t> recommended;          // an exact candidate clearly faster than the original
  std::string note;                           // why none is recommended, when none is
};

// The candidates a backend offers (the original first): what RunOptimize
// tries. `threads`: the cores to try threads up to; `rounds`: an XGBoost
// model's boosting rounds (for its cuts); `dnn`: the DNN backend/targets.
std::vector<OptimizeCandidate> CandidatesFor(std::string_view backend, const BackendOptions& base, int64_t threads,
                                             int64_t rounds,
                                             const std::vector<std::pair<std::string, std::string>>& dnn);

// Measures every candidate; `progress` (may be null) gets a line as each starts.
StatusOr<OptimizeReport> RunOptimize(const OptimizeOptions& options, std::FILE* progress);

std::string FormatOptimizeTable(const OptimizeReport& report);
std::string OptimizeJson(const OptimizeReport& report);

// Writes `candidate` as the next version of the report's model: a copy of
// the measured version's folder with the candidate's backend_options.yaml.
// Returns the new version number.
StatusOr<int64_t> WriteCandidate(const std::filesystem::path& repository, const OptimizeReport& report,
                                 const OptimizeCandidate& candidate);

}  // namespace vigil
