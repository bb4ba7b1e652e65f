// TorchScript models run by libtorch. The libtorch headers stay in this
// translation unit; c10::Error never leaves it.
#include <ATen/Parallel.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/script.h>

#include <mutex>

#include "backends/adapters.h"

namespace vigil {
namespace {

std::optional<at::ScalarType> ToTorchType(DataType t) {
  switch (t) {
    case DataType::kBool:
      return at::kBool;
    case DataType::kUint8:
      return at::kByte;
    case DataType::kInt8:
      return at::kChar;
    case DataType::kInt16:
      return at::kShort;
    case DataType::kInt32:
      return at::kInt;
    case DataType::kInt64:
      return at::kLong;
    case DataType::kFp16:
      return at::kHalf;
    case DataType::kFp32:
      return at::kFloat;
    case DataType::kFp64:
      return at::kDouble;
    default:
      return std::nullopt;
  }
}

class TorchScriptBackend final : public Backend {
 public:
  TorchScriptBackend(BackendSpec spec, torch::jit::Module module)
      : spec_(std::move(spec)), module_(std::move(module)) {}

  Status Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override {
    try {
      // ATen's OpenMP threads are the calling thread's setting: each batch
      // worker takes this version's, whatever other models on it asked for.
      thread_local int64_t threads = 0;
      if (threads != spec_.options.intra_op_threads) {
        at::set_num_threads(static_cast<int>(spec_.options.intra_op_threads));
        threads = spec_.options.intra_op_threads;
      }
      c10::InferenceMode guard;
      std::vector<torch::jit::IValue> args;
      args.reserve(inputs.size());
      for (const Tensor& in : inputs) {
        auto type = ToTorchType(in.datatype);
        if (!type)
          return Internal(BackendErrorContext(spec_) + ": datatype " + std::string(DataTypeName(in.datatype)) +
                          " has no libtorch type");
        // from_blob borrows the bytes; the module does not keep its inputs.
        args.emplace_back(
            torch::from_blob(const_cast<uint8_t*>(in.data.data()), in.shape, torch::TensorOptions().dtype(*type)));
      }
      torch::jit::IValue result = module_.forward(args);
      std::vector<at::Tensor> tensors;
      if (result.isTensor()) {
        tensors.push_back(result.toTensor());
      } else if (result.isTuple()) {
        for (const auto& e : result.toTupleRef().elements()) {
          if (!e.isTensor())
            return Internal(BackendErrorContext(spec_) + ": forward() returned a tuple holding a non-tensor");
          tensors.push_back(e.toTensor());
        }
      } else if (result.isTensorList()) {
        for (const auto& t : result.toTensorVector()) tensors.push_back(t);
      } else {
        return Internal(BackendErrorContext(spec_) + ": forward() must return a tensor or a tuple of tensors, got " +
                        result.tagKind());
      }
      if (tensors.size() != spec_.outputs.size()) {
        return Internal(BackendErrorContext(spec_) + ": forward() returned " + std::to_string(tensors.size()) +
                        " tensors, config declares " + std::to_string(spec_.outputs.size()) + " outputs");
      }
      outputs.resize(tensors.size());
      for (size_t i = 0; i < tensors.size(); ++i) {
        const TensorSpec& os = spec_.outputs[i];
        at::Tensor t = tensors[i].to(*ToTorchType(os.datatype)).contiguous();
        Tensor& out = outputs[i];
        out.name = os.name;
        out.datatype = os.datatype;
        out.shape.assign(t.sizes().begin(), t.sizes().end());
        const auto* p = static_cast<const uint8_t*>(t.data_ptr());
        out.data.assign(p, p + t.numel() * t.element_size());
      }
      return Status::Ok();
    } catch (const c10::Error& e) {
      return Internal(BackendErrorContext(spec_) + ": libtorch failed: " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      return Internal(BackendErrorContext(spec_) + ": " + e.what());
    }
  }

 private:
  BackendSpec spec_;
  torch::jit::Module module_;
};

}  // namespace

StatusOr<std::unique_ptr<Backend>> CreateTorchScriptBackend(const BackendSpec& spec) {
  static std::once_flag threads_once;
  // One intra-op thread per instance: parallelism comes from instances and batching.
  std::call_once(threads_once, [] {
    at::set_num_threads(1);
    at::set_num_interop_threads(1);
  });
  try {
    torch::jit::Module module = torch::jit::load(spec.model_path.string());
    module.eval();
    switch (spec.options.optimize) {
      case BackendOptions::TorchOptimize::kNone:
        break;
      case BackendOptions::TorchOptimize::kFreeze:
        module = torch::jit::freeze(module);
        break;
      case BackendOptions::TorchOptimize::kOptimizeForInference:
        module = torch::jit::freeze(module);
        module = torch::jit::optimize_for_inference(module);
        break;
    }
    return std::unique_ptr<Backend>(new TorchScriptBackend(spec, std::move(module)));
  } catch (const c10::Error& e) {
    return InvalidArgument(BackendErrorContext(spec) + ": cannot load TorchScript file " + spec.model_path.string() +
                           ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InvalidArgument(BackendErrorContext(spec) + ": cannot load TorchScript file: " + e.what());
  }
}

}  // namespace vigil
