#include "repository/ensemble.h"

#include "repository/bind_inputs.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace vigil {
namespace {

std::string Field(const ModelConfig& ensemble, size_t index, const std::string& rest) {
  return fmt::format("model '{}': ensemble.members[{}] ('{}'){}", ensemble.name, index,
                     ensemble.ensemble.members[index].model, rest);
}

}  // namespace

Status CheckEnsembleMember(const ModelConfig& ensemble, size_t index, const ModelConfig& member) {
  const EnsembleMember& m = ensemble.ensemble.members[index];
  if (member.backend == BackendKind::kEnsemble)
    return InvalidArgument(Field(ensemble, index, ": a model that is not itself an ensemble"));
  if (member.inputs.size() != ensemble.inputs.size()) {
    return InvalidArgument(Field(ensemble, index,
                                 fmt::format(" takes {} inputs, the ensemble {}: members take the ensemble's inputs",
                                             member.inputs.size(), ensemble.inputs.size())));
  }
  for (const TensorSpec& in : ensemble.inputs) {
    const int idx = member.InputIndex(in.name);
    if (idx < 0) {
      return InvalidArgument(
          Field(ensemble, index, " has no input '" + in.name + "' (inputs: " + TensorNames(member.inputs) + ")"));
    }
    const TensorSpec& mi = member.inputs[static_cast<size_t>(idx)];
    if (mi.datatype != in.datatype || !ShapeMatches(mi.dims, in.dims)) {
      return InvalidArgument(
          Field(ensemble, index,
                fmt::format(" input '{}' is {} {}, the ensemble's {} {}", in.name, DataTypeName(mi.datatype),
                            ShapeToString(mi.dims), DataTypeName(in.datatype), ShapeToString(in.dims))));
    }
  }
  if ((ensemble.max_batch_size > 0) != (member.max_batch_size > 0) || member.max_batch_size < ensemble.max_batch_size) {
    return InvalidArgument(
        Field(ensemble, index,
              fmt::format(" has max_batch_size {}; the ensemble's {} needs {}", member.max_batch_size,
                          ensemble.max_batch_size,
                          ensemble.max_batch_size > 0 ? "at least as many rows" : "0 (no batching)")));
  }
  const int out = member.OutputIndex(m.output);
  if (out < 0) {
    return InvalidArgument(
        Field(ensemble, index,
              ".output: '" + m.output + "' is not an output of it (outputs: " + TensorNames(member.outputs) + ")"));
  }
  const TensorSpec& mo = member.outputs[static_cast<size_t>(out)];
  const TensorSpec& eo = ensemble.outputs[0];
  if (mo.datatype != DataType::kFp32 || mo.dims != eo.dims) {
    return InvalidArgument(
        Field(ensemble, index,
              fmt::format(".output: '{}' is {} {}, the ensemble's output '{}' is FP32 {}", m.output,
                          DataTypeName(mo.datatype), ShapeToString(mo.dims), eo.name, ShapeToString(eo.dims))));
  }
  return Status::Ok();
}

StatusOr<Tensor> CombineMemberOutputs(EnsembleCombine combine, const std::vector<MemberOutput>& members,
                                      const TensorSpec& spec) {
  if (members.empty() || !members[0].output) return Internal("an ensemble combines at least one member's output");
  const Tensor& first = *members[0].output;
  for (size_t i = 0; i < members.size(); ++i) {
    const Tensor* t = members[i].output;
    if (!t || t->datatype != DataType::kFp32 || t->shape != first.shape || t->data.size() != first.expected_byte_size())
      return Internal(fmt::format("ensemble output '{}': the answer of member {} does not have the shape {} of FP32",
                                  spec.name, i, ShapeToString(first.shape)));
  }
  Tensor out;
  out.name = spec.name;
  out.datatype = DataType::kFp32;
  out.shape = first.shape;
  out.data.assign(first.data.size(), 0);
  const auto n = static_cast<size_t>(first.element_count());
  float* o = out.mutable_as<float>();
  double total = 0;
  for (const auto& m : members) total += m.weight;
  switch (combine) {
    case EnsembleCombine::kMean:
      for (size_t e = 0; e < n; ++e) {
        double sum = 0;
        for (const auto& m : members) sum += m.weight * m.output->as<float>()[e];
        o[e] = static_cast<float>(sum / total);
      }
      break;
    case EnsembleCombine::kMax:
      for (size_t e = 0; e < n; ++e) {
        float best = -std::numeric_limits<float>::infinity();
        for (const auto& m : members) best = std::max(best, m.output->as<float>()[e]);
        o[e] = best;
      }
      break;
    case EnsembleCombine::kVote: {
      // Rows are dimension 0 (one row when the output has no dimensions);
      // a row's classes are the rest. Ties go to the lowest class, as argmax.
      const size_t rows = first.shape.empty() ? 1 : static_cast<size_t>(first.shape[0]);
      const size_t classes = rows == 0 ? 0 : n / rows;
      for (size_t r = 0; r < rows && classes > 0; ++r) {
        for (const auto& m : members) {
          const float* row = m.output->as<float>() + r * classes;
          const size_t winner = static_cast<size_t>(std::max_element(row, row + classes) - row);
          o[r * classes + winner] += static_cast<float>(m.weight / total);
        }
      }
      break;
    }
  }
  return out;
}

EnsembleCounters::EnsembleCounters(ServingMetrics* metrics, const std::string& model, int64_t version, size_t members)
    : metrics_(metrics) {
  if (!metrics_) return;
  const std::string v = std::to_string(version);
  version_metrics_ = metrics_->ForVersion(model, v);
  for (size_t n = 0; n <= members; ++n)
    answers_by_members_.push_back(&metrics_->ensemble_answers().WithLabels({model, v, std::to_string(n)}));
}

void EnsembleCounters::Answered(int64_t rows, int64_t total_us, size_t members) {
  success_count_.fetch_add(1);
  success_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(total_us, 0)) * 1000);
  rows_.fetch_add(static_cast<uint64_t>(rows));
  last_ms_.store(static_cast<uint64_t>(UnixMillis()));
  in_flight_.fetch_sub(1);
  if (!metrics_) return;
  version_metrics_.requests->Inc();
  version_metrics_.rows->Inc(static_cast<double>(rows));
  version_metrics_.request_seconds->Observe(static_cast<double>(total_us) * 1e-6);
  if (members < answers_by_members_.size()) answers_by_members_[members]->Inc();
}

void EnsembleCounters::Failed(int64_t total_us, const std::string& reason) {
  fail_count_.fetch_add(1);
  fail_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(total_us, 0)) * 1000);
  in_flight_.fetch_sub(1);
  version_metrics_.Fail(reason);
}

void EnsembleCounters::LeftOut(const std::string& member, const std::string& reason) {
  if (metrics_)
    metrics_->ensemble_left_out().WithLabels({version_metrics_.model, version_metrics_.version, member, reason}).Inc();
}

SchedulerStats EnsembleCounters::Stats() const {
  SchedulerStats s;
  s.success_count = success_count_.load();
  s.success_ns = success_ns_.load();
  s.fail_count = fail_count_.load();
  s.fail_ns = fail_ns_.load();
  s.inference_count = rows_.load();
  s.execution_count = s.success_count;
  s.last_inference_ms = last_ms_.load();
  return s;
}

}  // namespace vigil
