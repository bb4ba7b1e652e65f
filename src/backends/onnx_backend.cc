// ONNX models run by OpenCV DNN, the ONNX runtime Debian ships.
// Every OpenCV call is wrapped: cv::Exception never leaves this file.
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backends/adapters.h"

namespace vigil {
namespace {

// OpenCV's DNN backends and targets by the names a config uses.
const std::vector<std::pair<std::string, int>>& DnnBackendNames() {
  static const std::vector<std::pair<std::string, int>> names = {
      {"opencv", cv::dnn::DNN_BACKEND_OPENCV}, {"inference_engine", cv::dnn::DNN_BACKEND_INFERENCE_ENGINE},
      {"halide", cv::dnn::DNN_BACKEND_HALIDE}, {"vkcom", cv::dnn::DNN_BACKEND_VKCOM},
      {"cuda", cv::dnn::DNN_BACKEND_CUDA},     {"webnn", cv::dnn::DNN_BACKEND_WEBNN},
      {"timvx", cv::dnn::DNN_BACKEND_TIMVX}};
  return names;
}
const std::vector<std::pair<std::string, int>>& DnnTargetNames() {
  static const std::vector<std::pair<std::string, int>> names = {{"cpu", cv::dnn::DNN_TARGET_CPU},
                                                                 {"opencl", cv::dnn::DNN_TARGET_OPENCL},
                                                                 {"opencl_fp16", cv::dnn::DNN_TARGET_OPENCL_FP16},
                                                                 {"myriad", cv::dnn::DNN_TARGET_MYRIAD},
                                                                 {"vulkan", cv::dnn::DNN_TARGET_VULKAN},
                                                                 {"fpga", cv::dnn::DNN_TARGET_FPGA},
                                                                 {"cuda", cv::dnn::DNN_TARGET_CUDA},
                                                                 {"cuda_fp16", cv::dnn::DNN_TARGET_CUDA_FP16},
                                                                 {"hddl", cv::dnn::DNN_TARGET_HDDL},
                                                                 {"npu", cv::dnn::DNN_TARGET_NPU}};
  return names;
}
std::string NameOf(const std::vector<std::pair<std::string, int>>& names, int value) {
  for (const auto& [n, v] : names) {
    if (v == value) return n;
  }
  return std::to_string(value);
}
std::optional<int> ValueOf(const std::vector<std::pair<std::string, int>>& names, const std::string& name) {
  for (const auto& [n, v] : names) {
    if (n == name) return v;
  }
  return std::nullopt;
}

class OnnxBackend final : public Backend {
 public:
  OnnxBackend(BackendSpec spec, cv::dnn::Net net) : spec_(std::move(spec)), net_(std::move(net)) {
    for (const auto& o : spec_.outputs) output_names_.push_back(o.name);
  }

  Status Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override {
    try {
      for (size_t i = 0; i < inputs.size(); ++i) {
        const Tensor& in = inputs[i];
        std::vector<int> sizes(in.shape.begin(), in.shape.end());
        if (sizes.size() == 1) sizes.insert(sizes.begin(), 1);  // OpenCV needs >= 2 dims
        // OpenCV only reads the blob; the const_cast avoids a copy.
        cv::Mat blob(static_cast<int>(sizes.size()), sizes.data(), CV_32F, const_cast<uint8_t*>(in.data.data()));
        net_.setInput(blob, spec_.inputs[i].name);
      }
      std::vector<cv::Mat>& results = results_;  // reused: OpenCV keeps the buffers
      net_.forward(results, output_names_);
      const int64_t rows = BatchRows(spec_, inputs);
      outputs.resize(results.size());
      for (size_t i = 0; i < results.size(); ++i) {
        cv::Mat m = results[i].isContinuous() ? results[i] : results[i].clone();
        if (m.depth() != CV_32F) m.convertTo(m, CV_32F);
        Tensor& out = outputs[i];
        out.name = spec_.outputs[i].name;
        out.datatype = DataType::kFp32;
        out.shape.clear();
        for (int d = 0; d < m.dims; ++d) out.shape.push_back(m.size[d]);
        if (spec_.max_batch_size == 0 && out.shape.size() == spec_.outputs[i].dims.size() + 1 && out.shape[0] == 1) {
          out.shape.erase(out.shape.begin());  // OpenCV adds a leading 1 to unbatched outputs
        }
        if (spec_.max_batch_size > 0 && !out.shape.empty() && out.shape[0] != rows) {
          return Internal(BackendErrorContext(spec_) + ": output '" + out.name + "' has " +
                          std::to_string(out.shape[0]) + " rows for a batch of " + std::to_string(rows));
        }
        const size_t bytes = m.total() * m.elemSize();
        out.data.assign(m.data, m.data + bytes);
      }
      return Status::Ok();
    } catch (const cv::Exception& e) {
      return Internal(BackendErrorContext(spec_) + ": OpenCV DNN failed: " + e.what());
    } catch (const std::exception& e) {
      return Internal(BackendErrorContext(spec_) + ": " + e.what());
    }
  }

 private:
  BackendSpec spec_;
  cv::dnn::Net net_;
  std::vector<cv::String> output_names_;
  std::vector<cv::Mat> results_;
};

}  // namespace

StatusOr<std::unique_ptr<Backend>> CreateOnnxBackend(const BackendSpec& spec) {
  static std::once_flag threads_once;
  // Small models run fastest single-threaded; parallelism comes from instances.
  std::call_once(threads_once, [] { cv::setNumThreads(1); });
  try {
    cv::dnn::Net net = cv::dnn::readNetFromONNX(spec.model_path.string());
    if (net.empty())
      return InvalidArgument(BackendErrorContext(spec) + ": OpenCV read an empty network from " +
                             spec.model_path.string());
    const auto backend = ValueOf(DnnBackendNames(), spec.options.dnn_backend);
    const auto target = ValueOf(DnnTargetNames(), spec.options.dnn_target);
    bool available = false;
    for (const auto& [b, t] : cv::dnn::getAvailableBackends()) available |= backend == b && target == t;
    if (!available) {
      std::string have;
      for (const auto& [b, t] : AvailableDnnTargets()) have += (have.empty() ? "" : ", ") + b + "/" + t;
      return InvalidArgument(BackendErrorContext(spec) + ": backend_options dnn_backend/dnn_target " +
                             spec.options.dnn_backend + "/" + spec.options.dnn_target +
                             " is not available in this OpenCV (available: " + have + ")");
    }
    net.setPreferableBackend(*backend);
    net.setPreferableTarget(*target);
    net.enableFusion(spec.options.fusion);
    const std::vector<cv::String> outs = net.getUnconnectedOutLayersNames();
    for (const auto& o : spec.outputs) {
      if (std::find(outs.begin(), outs.end(), o.name) == outs.end()) {
        std::string have;
        for (const auto& n : outs) have += (have.empty() ? "" : ", ") + n;
        return InvalidArgument(BackendErrorContext(spec) + ": config output '" + o.name +
                               "' is not an output of the ONNX graph (outputs: " + have + ")");
      }
    }
    return std::unique_ptr<Backend>(new OnnxBackend(spec, std::move(net)));
  } catch (const cv::Exception& e) {
    return InvalidArgument(BackendErrorContext(spec) + ": cannot load ONNX file " + spec.model_path.string() + ": " +
                           e.what());
  } catch (const std::exception& e) {
    return InvalidArgument(BackendErrorContext(spec) + ": cannot load ONNX file: " + e.what());
  }
}

std::vector<std::pair<std::string, std::string>> AvailableDnnTargets() {
  std::vector<std::pair<std::string, std::string>> out;
  try {
    for (const auto& [b, t] : cv::dnn::getAvailableBackends())
      out.emplace_back(NameOf(DnnBackendNames(), b), NameOf(DnnTargetNames(), t));
  } catch (const cv::Exception&) {
  }
  return out;
}

}  // namespace vigil
