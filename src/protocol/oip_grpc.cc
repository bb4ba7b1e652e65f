#include "protocol/oip_grpc.h"

#include <absl/synchronization/mutex.h>

#include <mutex>
#include <type_traits>
#include <utility>

namespace vigil {
namespace {

namespace pb = ::inference;

// Copies typed contents into tensor bytes; false when a value does not fit
// T (an INT8 tensor sent 300 in int_contents, say).
template <typename T, typename Repeated>
bool CopyTyped(const Repeated& values, std::vector<uint8_t>& out) {
  out.resize(static_cast<size_t>(values.size()) * sizeof(T));
  T* dst = reinterpret_cast<T*>(out.data());
  for (int i = 0; i < values.size(); ++i) {
    const auto v = values.Get(i);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<std::decay_t<decltype(v)>, bool>) {
      if (!std::in_range<T>(v)) return false;
    }
    dst[i] = static_cast<T>(v);
  }
  return true;
}

bool HasTypedContents(const pb::InferTensorContents& c) {
  return c.bool_contents_size() || c.int_contents_size() || c.int64_contents_size() || c.uint_contents_size() ||
         c.uint64_contents_size() || c.fp32_contents_size() || c.fp64_contents_size() || c.bytes_contents_size();
}

template <typename T, typename Repeated>
void AppendTyped(const Tensor& t, Repeated* out) {
  const T* p = t.as<T>();
  for (int64_t i = 0; i < t.element_count(); ++i) out->Add(p[i]);
}

}  // namespace

void TuneGrpcRuntime() {
  static std::once_flag once;
  std::call_once(once, [] { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); });
}

// Triton's DataType enum: BYTES is TYPE_STRING.
pb::DataType TritonType(DataType t) {
  switch (t) {
    case DataType::kBool:
      return pb::TYPE_BOOL;
    case DataType::kUint8:
      return pb::TYPE_UINT8;
    case DataType::kUint16:
      return pb::TYPE_UINT16;
    case DataType::kUint32:
      return pb::TYPE_UINT32;
    case DataType::kUint64:
      return pb::TYPE_UINT64;
    case DataType::kInt8:
      return pb::TYPE_INT8;
    case DataType::kInt16:
      return pb::TYPE_INT16;
    case DataType::kInt32:
      return pb::TYPE_INT32;
    case DataType::kInt64:
      return pb::TYPE_INT64;
    case DataType::kFp16:
      return pb::TYPE_FP16;
    case DataType::kBf16:
      return pb::TYPE_BF16;
    case DataType::kFp32:
      return pb::TYPE_FP32;
    case DataType::kFp64:
      return pb::TYPE_FP64;
    case DataType::kBytes:
      return pb::TYPE_STRING;
    default:
      return pb::TYPE_INVALID;
  }
}

Params ParamsFromProto(const google::protobuf::Map<std::string, pb::InferParameter>& in) {
  Params out;
  for (const auto& [k, v] : in) {
    switch (v.parameter_choice_case()) {
      case pb::InferParameter::kBoolParam:
        out[k] = v.bool_param();
        break;
      case pb::InferParameter::kInt64Param:
        out[k] = v.int64_param();
        break;
      case pb::InferParameter::kStringParam:
        out[k] = v.string_param();
        break;
      case pb::InferParameter::kDoubleParam:
        out[k] = v.double_param();
        break;
      case pb::InferParameter::kUint64Param:
        out[k] = static_cast<int64_t>(v.uint64_param());
        break;
      default:
        break;
    }
  }
  return out;
}

// Typed contents → tensor bytes; returns the element count it found.
Status DecodeTyped(const pb::InferTensorContents& c, Tensor& t, const char* kind) {
  int64_t count = 0;
  bool fits = true;
  switch (t.datatype) {
    case DataType::kBool:
      fits = CopyTyped<uint8_t>(c.bool_contents(), t.data);
      count = c.bool_contents_size();
      break;
    case DataType::kInt8:
      fits = CopyTyped<int8_t>(c.int_contents(), t.data);
      count = c.int_contents_size();
      break;
    case DataType::kInt16:
      fits = CopyTyped<int16_t>(c.int_contents(), t.data);
      count = c.int_contents_size();
      break;
    case DataType::kInt32:
      fits = CopyTyped<int32_t>(c.int_contents(), t.data);
      count = c.int_contents_size();
      break;
    case DataType::kInt64:
      fits = CopyTyped<int64_t>(c.int64_contents(), t.data);
      count = c.int64_contents_size();
      break;
    case DataType::kUint8:
      fits = CopyTyped<uint8_t>(c.uint_contents(), t.data);
      count = c.uint_contents_size();
      break;
    case DataType::kUint16:
      fits = CopyTyped<uint16_t>(c.uint_contents(), t.data);
      count = c.uint_contents_size();
      break;
    case DataType::kUint32:
      fits = CopyTyped<uint32_t>(c.uint_contents(), t.data);
      count = c.uint_contents_size();
      break;
    case DataType::kUint64:
      fits = CopyTyped<uint64_t>(c.uint64_contents(), t.data);
      count = c.uint64_contents_size();
      break;
    case DataType::kFp32:
      fits = CopyTyped<float>(c.fp32_contents(), t.data);
      count = c.fp32_contents_size();
      break;
    case DataType::kFp64:
      fits = CopyTyped<double>(c.fp64_contents(), t.data);
      count = c.fp64_contents_size();
      break;
    case DataType::kBytes:
      for (const auto& b : c.bytes_contents()) AppendBytesElement(t.data, b);
      count = c.bytes_contents_size();
      break;
    default:
      return InvalidArgument(std::string(kind) + " '" + t.name + "': " + std::string(DataTypeName(t.datatype)) +
                             " travels only as raw contents");
  }
  if (!fits) {
    return InvalidArgument(std::string(kind) + " '" + t.name + "': a value in its contents is outside the range of " +
                           std::string(DataTypeName(t.datatype)));
  }
  VIGIL_ASSIGN_OR_RETURN(const int64_t expected, CheckedElementCount(t.shape, std::string(kind) + " '" + t.name + "'"));
  if (count != expected) {
    return InvalidArgument(std::string(kind) + " '" + t.name + "': shape " + ShapeToString(t.shape) + " needs " +
                           std::to_string(expected) + " elements, contents hold " + std::to_string(count));
  }
  return Status::Ok();
}

// ModelInferRequest → InferCall; `raw` reports whether raw contents were used.
Status DecodeGrpcRequest(const pb::ModelInferRequest& req, InferCall& call, bool& raw) {
  call.model = req.model_name();
  VIGIL_ASSIGN_OR_RETURN(call.version, ParseVersionString(req.model_version()));
  if (req.id().size() > kMaxIdBytes) {
    return InvalidArgument("'id' has " + std::to_string(req.id().size()) + " bytes, at most " +
                           std::to_string(kMaxIdBytes) + " are accepted");
  }
  call.id = req.id();
  call.parameters = ParamsFromProto(req.parameters());
  raw = req.raw_input_contents_size() > 0;
  if (req.inputs_size() == 0) return InvalidArgument("'inputs' is empty");
  if (raw && req.raw_input_contents_size() != req.inputs_size()) {
    return InvalidArgument("raw_input_contents has " + std::to_string(req.raw_input_contents_size()) + " entries for " +
                           std::to_string(req.inputs_size()) + " inputs; give one per input");
  }
  for (int i = 0; i < req.inputs_size(); ++i) {
    const auto& in = req.inputs(i);
    Tensor t;
    t.name = in.name();
    t.datatype = ParseDataType(in.datatype());
    if (t.datatype == DataType::kInvalid)
      return InvalidArgument("input '" + t.name + "': unknown datatype '" + in.datatype() + "'");
    if (static_cast<size_t>(in.shape_size()) > kMaxTensorRank) {
      return InvalidArgument("input '" + t.name + "': shape has " + std::to_string(in.shape_size()) +
                             " dimensions, at most " + std::to_string(kMaxTensorRank) + " are accepted");
    }
    t.shape.assign(in.shape().begin(), in.shape().end());
    VIGIL_ASSIGN_OR_RETURN(const int64_t expected, CheckedElementCount(t.shape, "input '" + t.name + "'"));
    if (raw) {
      if (HasTypedContents(in.contents())) {
        return InvalidArgument("input '" + t.name +
                               "' has typed contents while the request uses raw_input_contents; use one or the other");
      }
      const std::string& bytes = req.raw_input_contents(i);
      const size_t needed = static_cast<size_t>(expected) * DataTypeSize(t.datatype);
      if (t.datatype != DataType::kBytes && bytes.size() != needed) {
        return InvalidArgument("input '" + t.name + "': shape " + ShapeToString(t.shape) + " of " + in.datatype() +
                               " needs " + std::to_string(needed) + " bytes, raw contents hold " +
                               std::to_string(bytes.size()));
      }
      t.data.assign(bytes.begin(), bytes.end());
      if (t.datatype == DataType::kBytes) {
        VIGIL_RETURN_IF_ERROR(ValidateBytesBuffer(t.data, expected).WithContext("input '" + t.name + "'"));
      }
    } else {
      VIGIL_RETURN_IF_ERROR(DecodeTyped(in.contents(), t, "input"));
    }
    call.inputs.push_back(std::move(t));
  }
  for (const auto& o : req.outputs()) call.outputs.push_back({o.name(), raw});
  call.binary_output = raw;
  return Status::Ok();
}

void EncodeTyped(const Tensor& t, pb::InferTensorContents* c) {
  switch (t.datatype) {
    case DataType::kBool:
      AppendTyped<uint8_t>(t, c->mutable_bool_contents());
      break;
    case DataType::kInt8:
      AppendTyped<int8_t>(t, c->mutable_int_contents());
      break;
    case DataType::kInt16:
      AppendTyped<int16_t>(t, c->mutable_int_contents());
      break;
    case DataType::kInt32:
      AppendTyped<int32_t>(t, c->mutable_int_contents());
      break;
    case DataType::kInt64:
      AppendTyped<int64_t>(t, c->mutable_int64_contents());
      break;
    case DataType::kUint8:
      AppendTyped<uint8_t>(t, c->mutable_uint_contents());
      break;
    case DataType::kUint16:
      AppendTyped<uint16_t>(t, c->mutable_uint_contents());
      break;
    case DataType::kUint32:
      AppendTyped<uint32_t>(t, c->mutable_uint_contents());
      break;
    case DataType::kUint64:
      AppendTyped<uint64_t>(t, c->mutable_uint64_contents());
      break;
    case DataType::kFp32:
      AppendTyped<float>(t, c->mutable_fp32_contents());
      break;
    case DataType::kFp64:
      AppendTyped<double>(t, c->mutable_fp64_contents());
      break;
    case DataType::kBytes:
      for (std::string_view e : BytesElements(t)) c->add_bytes_contents(e.data(), e.size());
      break;
    default:
      break;
  }
}

void EncodeGrpcReply(InferReply&& reply, bool raw, pb::ModelInferResponse* resp) {
  resp->set_model_name(reply.model);
  resp->set_model_version(VersionString(reply.version));
  resp->set_id(reply.id);
  ParamsToProto(reply.parameters, resp->mutable_parameters());
  for (const Tensor& t : reply.outputs) {
    auto* out = resp->add_outputs();
    out->set_name(t.name);
    out->set_datatype(std::string(DataTypeName(t.datatype)));
    for (int64_t d : t.shape) out->add_shape(d);
    // FP16/BF16 have no typed field: always raw.
    if (raw || t.datatype == DataType::kFp16 || t.datatype == DataType::kBf16) {
      resp->add_raw_output_contents(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    } else {
      EncodeTyped(t, out->mutable_contents());
    }
  }
}

void ParamsToProto(const Params& params, google::protobuf::Map<std::string, pb::InferParameter>* out) {
  for (const auto& [k, v] : params) {
    pb::InferParameter& p = (*out)[k];
    if (std::holds_alternative<bool>(v))
      p.set_bool_param(std::get<bool>(v));
    else if (std::holds_alternative<int64_t>(v))
      p.set_int64_param(std::get<int64_t>(v));
    else if (std::holds_alternative<double>(v))
      p.set_double_param(std::get<double>(v));
    else
      p.set_string_param(std::get<std::string>(v));
  }
}

void EncodeGrpcRequest(const InferCall& call, bool raw, pb::ModelInferRequest* req) {
  req->set_model_name(call.model);
  req->set_model_version(VersionString(call.version));
  req->set_id(call.id);
  ParamsToProto(call.parameters, req->mutable_parameters());
  for (const Tensor& t : call.inputs) {
    auto* in = req->add_inputs();
    in->set_name(t.name);
    in->set_datatype(std::string(DataTypeName(t.datatype)));
    for (int64_t d : t.shape) in->add_shape(d);
    if (raw) {
      req->add_raw_input_contents(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    } else {
      EncodeTyped(t, in->mutable_contents());
    }
  }
  for (const auto& o : call.outputs) req->add_outputs()->set_name(o.name);
}

StatusOr<InferReply> DecodeGrpcReply(const pb::ModelInferResponse& resp) {
  InferReply reply;
  reply.model = resp.model_name();
  reply.version = ParseVersionString(resp.model_version()).value_or(0);
  reply.id = resp.id();
  reply.parameters = ParamsFromProto(resp.parameters());
  const bool raw = resp.raw_output_contents_size() > 0;
  if (raw && resp.raw_output_contents_size() != resp.outputs_size())
    return InvalidArgument("reply has " + std::to_string(resp.raw_output_contents_size()) + " raw contents for " +
                           std::to_string(resp.outputs_size()) + " outputs");
  for (int i = 0; i < resp.outputs_size(); ++i) {
    const auto& out = resp.outputs(i);
    Tensor t;
    t.name = out.name();
    t.datatype = ParseDataType(out.datatype());
    t.shape.assign(out.shape().begin(), out.shape().end());
    if (raw) {
      const std::string& bytes = resp.raw_output_contents(i);
      VIGIL_ASSIGN_OR_RETURN(const int64_t expected, CheckedElementCount(t.shape, "output '" + t.name + "'"));
      t.data.assign(bytes.begin(), bytes.end());
      if (t.datatype == DataType::kBytes) {
        VIGIL_RETURN_IF_ERROR(ValidateBytesBuffer(t.data, expected).WithContext("output '" + t.name + "'"));
      } else if (t.datatype == DataType::kInvalid ||
                 bytes.size() != static_cast<size_t>(expected) * DataTypeSize(t.datatype)) {
        return InvalidArgument("output '" + t.name + "': raw contents of " + std::to_string(bytes.size()) +
                               " bytes do not match shape " + ShapeToString(t.shape) + " of " + out.datatype());
      }
    } else {
      VIGIL_RETURN_IF_ERROR(DecodeTyped(out.contents(), t, "output"));
    }
    reply.outputs.push_back(std::move(t));
    reply.binary.push_back(raw);
  }
  return reply;
}

}  // namespace vigil
