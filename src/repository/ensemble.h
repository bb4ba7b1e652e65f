// Ensembles (`backend: ensemble`): what is checked when one loads, how its
// members' outputs become its answer, and what an ensemble version counts
// of itself. The members run on their own schedulers (ensemble_run.h).
#pragma once

#include <atomic>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "monitoring/serving_metrics.h"
#include "repository/model_config.h"
#include "scheduling/scheduler.h"

namespace vigil {

// Checks member `index` of `ensemble` against that member's own config: it
// takes the ensemble's inputs (the same names, datatypes and shapes, a
// variable dimension only where the ensemble has one), it batches at least
// the ensemble's max_batch_size when the ensemble batches, and its output
// `member.output` is FP32 of the ensemble's output shape. The error names
// the member and the field.
Status CheckEnsembleMember(const ModelConfig& ensemble, size_t index, const ModelConfig& member);

// One member's answer for a request's rows: its output tensor (FP32,
// rows × the output's per-row elements) and its weight.
struct MemberOutput {
  const Tensor* output = nullptr;
  double weight = 1;
};

// The ensemble's output from the members that answered (at least one), by
// `combine`; `spec` names it. Each member's output must have the shape of
// the first; an error names the member position that differs.
StatusOr<Tensor> CombineMemberOutputs(EnsembleCombine combine, const std::vector<MemberOutput>& members,
                                      const TensorSpec& spec);

// What an ensemble version counts of itself, having no scheduler: Triton's
// statistics of its answers (a request is one execution: the members batch
// it with their own traffic), its requests in flight, and the Prometheus
// children. Thread-safe.
class EnsembleCounters {
 public:
  // `metrics` may be null (tests).
  EnsembleCounters(ServingMetrics* metrics, const std::string& model, int64_t version, size_t members);

  void Begin() { in_flight_.fetch_add(1); }
  // An answer combined from `members` members, `total_us` after it began.
  void Answered(int64_t rows, int64_t total_us, size_t members);
  void Failed(int64_t total_us, const std::string& reason);
  // `member` ("model:version") left out of an answer for `reason`.
  void LeftOut(const std::string& member, const std::string& reason);

  SchedulerStats Stats() const;
  int64_t InFlight() const { return in_flight_.load(); }

 private:
  ServingMetrics* metrics_;
  VersionMetrics version_metrics_;
  std::vector<Counter*> answers_by_members_;  // index: members combined
  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint64_t> success_count_{0}, success_ns_{0}, fail_count_{0}, fail_ns_{0}, rows_{0}, last_ms_{0};
};

}  // namespace vigil
