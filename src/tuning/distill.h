// `vigil distill`: a smaller student trained on a teacher's own answers.
//
// The rows: the teacher's reference.csv and, with a data dir, the inputs
// the prediction log sampled from an endpoint's traffic
// (--log-inputs-sample-rate). The teacher answers every row (its first
// output: soft labels); a share is held out, never trained on. Students of
// a few sizes are trained (XGBoost through its C API, or an MLP through
// libtorch), each loaded back through the server's own backend and scored
// on the held-out rows: agreement with the teacher's class, differences of
// its answers, accuracy where reference.csv has labels, latency and
// throughput, size on disk. The smallest student within half a point of the
// best agreement is written as a new model of the repository, with its
// config and its own reference.csv, never over an existing one.
#pragma once

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "tuning/measure.h"

namespace vigil {

enum class StudentKind { kXgboost, kMlp };

struct DistillOptions {
  std::filesystem::path repository;
  std::string teacher;
  int64_t version = 0;  // 0: the highest on disk
  StudentKind student = StudentKind::kXgboost;
  std::string output;  // the new model's name; default TEACHER_distilled_xgb / _mlp
  // The sweep: each trees × depth (XGBoost) or each hidden (MLP).
  std::vector<int64_t> trees = {10, 50}, depths = {2, 4}, hidden = {4, 16, 64};
  double holdout = 0.2;
  uint64_t seed = 1;
  int64_t max_rows = 100'000;  // of reference.csv, and of the log, each
  // The prediction log's sampled inputs of `endpoint` in the store at
  // `data_dir` (a server's --data-dir or --store URL; empty: none), logged since `since_ms`.
  std::string data_dir, endpoint;
  int64_t since_ms = 0;
  double seconds = 1;  // measuring time per model
  bool write = true;   // false: report only
};

struct StudentResult {
  std::string name;  // "xgboost trees=50 depth=4", "mlp hidden=16"
  int64_t trees = 0, depth = 0, hidden = 0;
  std::string error;
  Closeness held_out;  // against the teacher's answers on the held-out rows
  Speed speed;
  int64_t bytes = 0;  // its model file
};

struct DistillReport {
  std::string teacher, teacher_backend, student_backend, target;
  int64_t version = 0;
  int64_t reference_rows = 0, log_rows = 0, train_rows = 0, held_out_rows = 0, held_out_labelled = 0;
  Speed teacher_speed;
  int64_t teacher_bytes = 0;
  std::optional<double> teacher_accuracy;  // on the held-out labelled rows
  std::vector<StudentResult> students;
  std::optional<size_t> chosen;
  std::string written;  // the model written, when one was
};

// Runs the whole distillation; writes the chosen student unless !write.
// `progress` (may be null) gets a line per step.
StatusOr<DistillReport> RunDistill(const DistillOptions& options, std::FILE* progress);

std::string FormatDistillTable(const DistillReport& report);
std::string DistillJson(const DistillReport& report);

}  // namespace vigil
