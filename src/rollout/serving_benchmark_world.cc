#include "rollout/serving_benchmark_world.h"

#include <fmt/format.h>

#include "core/thread_annotations.h"

namespace vigil {
namespace {

// The most values of one request's input the prediction log keeps
// (EndpointCalls logs CompactValues(input, 256)).
constexpr int64_t kLoggedInputValues = 256;
constexpr int64_t kLoggedOutputValues = 64;

template <typename T>
void Fill(Tensor& t, const std::vector<const std::vector<double>*>& rows) {
  T* out = t.mutable_as<T>();
  for (const auto* row : rows) {
    for (double v : *row) *out++ = static_cast<T>(v);
  }
}

template <typename T>
std::vector<double> Read(const Tensor& t, int64_t from, int64_t count) {
  const T* in = t.as<T>() + from;
  return std::vector<double>(in, in + count);
}

}  // namespace

std::vector<std::string> ServingBenchmarkWorld::Endpoints() {
  std::vector<std::string> out;
  for (const auto& router : deployments_.All()) out.push_back(router->spec().endpoint);
  return out;
}

std::shared_ptr<const DeploymentSpec> ServingBenchmarkWorld::Spec(const std::string& endpoint) {
  auto router = deployments_.Find(endpoint);
  return router ? router->shared_spec() : nullptr;
}

std::vector<int64_t> ServingBenchmarkWorld::ReadyVersions(const std::string& model) {
  if (deployments_.Find(model)) return {};  // an endpoint's name, not a model's
  auto info = service_.Find(model, "");
  return info.ok() ? info->ready_versions : std::vector<int64_t>{};
}

StatusOr<BenchmarkWorld::Replay> ServingBenchmarkWorld::Replayable(const std::string& model, int64_t version) {
  VIGIL_ASSIGN_OR_RETURN(ModelInfo info, service_.Find(model, VersionString(version)));
  const ModelConfig& c = *info.config;
  if (c.inputs.size() != 1) {
    return FailedPrecondition(
        fmt::format("it takes {} inputs and the prediction log keeps only the first", c.inputs.size()));
  }
  const TensorSpec& in = c.inputs[0];
  switch (in.datatype) {
    case DataType::kFp32:
    case DataType::kFp64:
    case DataType::kInt64:
    case DataType::kInt32:
    case DataType::kUint8:
    case DataType::kBool:
      break;
    default:
      return FailedPrecondition(fmt::format("its input '{}' is {}, which the prediction log does not keep", in.name,
                                            DataTypeName(in.datatype)));
  }
  const int64_t values = ElementCount(in.dims);
  if (values <= 0) return FailedPrecondition("its input '" + in.name + "' has a variable shape");
  if (values > kLoggedInputValues) {
    return FailedPrecondition(
        fmt::format("one row of its input '{}' has {} values, more than the {} the prediction "
                    "log keeps",
                    in.name, values, kLoggedInputValues));
  }
  return Replay{.row_values = values, .max_rows_per_call = c.max_batch_size > 0 ? c.max_batch_size : 1};
}

bool ServingBenchmarkWorld::Busy(const std::string& model, int64_t version) {
  return service_.Busy(model, version).value_or(false);
}

StatusOr<std::vector<std::vector<double>>> ServingBenchmarkWorld::Run(
    const std::string& model, int64_t version, const std::vector<const std::vector<double>*>& rows) {
  VIGIL_ASSIGN_OR_RETURN(ModelInfo info, service_.Find(model, VersionString(version)));
  const ModelConfig& c = *info.config;
  if (c.inputs.size() != 1 || rows.empty()) return InvalidArgument("nothing to replay");
  const bool batches = c.max_batch_size > 0;
  if (!batches && rows.size() != 1) return InvalidArgument("a model that does not batch takes one row per call");
  const TensorSpec& spec = c.inputs[0];
  Tensor t;
  t.name = spec.name;
  t.datatype = spec.datatype;
  if (batches) t.shape.push_back(static_cast<int64_t>(rows.size()));
  t.shape.insert(t.shape.end(), spec.dims.begin(), spec.dims.end());
  t.data.resize(t.expected_byte_size());
  const int64_t per_row = ElementCount(spec.dims);
  for (const auto* row : rows) {
    if (static_cast<int64_t>(row->size()) != per_row) return InvalidArgument("a row of the wrong size");
  }
  switch (t.datatype) {
    case DataType::kFp32:
      Fill<float>(t, rows);
      break;
    case DataType::kFp64:
      Fill<double>(t, rows);
      break;
    case DataType::kInt64:
      Fill<int64_t>(t, rows);
      break;
    case DataType::kInt32:
      Fill<int32_t>(t, rows);
      break;
    case DataType::kUint8:
    case DataType::kBool:
      Fill<uint8_t>(t, rows);
      break;
    default:
      return InvalidArgument("an input type the prediction log does not keep");
  }
  InferCall call;
  call.model = model;
  call.version = version;
  call.id = "benchmark";
  call.inputs.push_back(std::move(t));
  call.outputs.push_back({c.outputs[0].name, false});
  call.replay = true;
  call.deadline = std::chrono::steady_clock::now() + kCallTimeout;
  // The answer comes on a scheduler thread; the state outlives a wait that gives up.
  struct Answer {
    Mutex mu;
    CondVar cv;
    bool done GUARDED_BY(mu) = false;
    Status status GUARDED_BY(mu);
    InferReply reply GUARDED_BY(mu);
  };
  auto answer = std::make_shared<Answer>();
  service_.Run(std::move(call), [answer](const Status& s, InferReply&& reply) {
    MutexLock lock(answer->mu);
    answer->status = s;
    answer->reply = std::move(reply);
    answer->done = true;
    answer->cv.NotifyAll();
  });
  MutexLock lock(answer->mu);
  const auto deadline = std::chrono::steady_clock::now() + kCallTimeout + std::chrono::seconds(5);
  while (!answer->done) {
    if (!answer->cv.WaitUntil(lock, deadline)) {
      if (!answer->done) return DeadlineExceeded("the replay call got no answer in time");
    }
  }
  if (!answer->status.ok()) return answer->status;
  if (answer->reply.outputs.empty()) return Internal("the model answered without outputs");
  const Tensor& out = answer->reply.outputs[0];
  const int64_t total = out.element_count();
  const int64_t n = static_cast<int64_t>(rows.size());
  if (total < 0 || total % n != 0) return Internal("the output does not split into the rows");
  const int64_t each = total / n, keep = std::min(each, kLoggedOutputValues);
  std::vector<std::vector<double>> result;
  result.reserve(rows.size());
  for (int64_t r = 0; r < n; ++r) {
    switch (out.datatype) {
      case DataType::kFp32:
        result.push_back(Read<float>(out, r * each, keep));
        break;
      case DataType::kFp64:
        result.push_back(Read<double>(out, r * each, keep));
        break;
      case DataType::kInt64:
        result.push_back(Read<int64_t>(out, r * each, keep));
        break;
      case DataType::kInt32:
        result.push_back(Read<int32_t>(out, r * each, keep));
        break;
      case DataType::kUint8:
      case DataType::kBool:
        result.push_back(Read<uint8_t>(out, r * each, keep));
        break;
      default:
        return Internal(
            fmt::format("output '{}' is {}, which a benchmark cannot score", out.name, DataTypeName(out.datatype)));
    }
  }
  return result;
}

}  // namespace vigil
