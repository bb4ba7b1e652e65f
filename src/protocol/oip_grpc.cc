#include "protocol/oip_grpc.h"

#include <absl/synchronization/mutex.h>

#include <mutex>

namespace vigil {
namespace {

namespace pb = ::inference;

template <typename T, typename Repeated>
void CopyTyped(const Repeated& values, std::vector<uint8_t>& out) {
  out.resize(static_cast<size_t>(values.size()) * sizeof(T));
  T* dst = reinterpret_cast<T*>(out.data());
  for (int i = 0; i < values.size(); ++i) dst[i] = static_cast<T>(values.Get(i));
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
  switch (t.datatype) {
    case DataType::kBool:
      CopyTyped<uint8_t>(c.bool_contents(), t.data);
      count = c.bool_contents_size();
      break;
    case DataType::kInt8:
      CopyTyped<int8_t>(c.int_contents(), t.data);
      count = c.int_contents_size();
      break;
    case DataType::kInt16:
      CopyTyped<int16_t>(c.int_contents(), t.data);
      count = c.int_contents_size();
      break;
    case DataType::kInt32:
      CopyTyped<int32_t>(c.int_contents(), t.data);
      count = c.int_contents_size();
      break;
    case DataType::kInt64:
      CopyTyped<int64_t>(c.int64_contents(), t.data);
      count = c.int64_contents_size();
      break;
    case DataType::kUint8:
      CopyTyped<uint8_t>(c.uint_contents(), t.data);
      count = c.uint_contents_size();
      break;
    case DataType::kUint16:
      CopyTyped<uint16_t>(c.uint_contents(), t.data);
      count = c.uint_contents_size();
      break;
    case DataType::kUint32:
      CopyTyped<uint32_t>(c.uint_contents(), t.data);
      count = c.uint_contents_size();
      break;
    case DataType::kUint64:
      CopyTyped<uint64_t>(c.uint64_contents(), t.data);
      count = c.uint64_contents_size();
      break;
    case DataType::kFp32:
      CopyTyped<float>(c.fp32_contents(), t.data);
      count = c.fp32_contents_size();
      break;
    case DataType::kFp64:
      CopyTyped<double>(c.fp64_contents(), t.data);
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
  if (count != t.element_count()) {
    return InvalidArgument(std::string(kind) + " '" + t.name + "': shape " + ShapeToString(t.shape) + " needs " +
                           std::to_string(t.element_count()) + " elements, contents hold " + std::to_string(count));
  }
  return Status::Ok();
}

// ModelInferRequest → InferCall; `raw` reports whether raw contents were used.
Status DecodeGrpcRequest(const pb::ModelInferRequest& req, InferCall& call, bool& raw) {
  call.model = req.model_name();
  call.version = req.model_version();
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
    for (int64_t d : in.shape()) {
      if (d < 0) return InvalidArgument("input '" + t.name + "': shape must hold non-negative sizes");
      t.shape.push_back(d);
    }
    if (raw) {
      if (HasTypedContents(in.contents())) {
        return InvalidArgument("input '" + t.name +
                               "' has typed contents while the request uses raw_input_contents; use one or the other");
      }
      const std::string& bytes = req.raw_input_contents(i);
      t.data.assign(bytes.begin(), bytes.end());
      if (t.datatype == DataType::kBytes) {
        VIGIL_RETURN_IF_ERROR(ValidateBytesBuffer(t.data, t.element_count()).WithContext("input '" + t.name + "'"));
      } else if (t.data.size() != t.expected_byte_size()) {
        return InvalidArgument("input '" + t.name + "': shape " + ShapeToString(t.shape) + " of " + in.datatype() +
                               " needs " + std::to_string(t.expected_byte_size()) + " bytes, raw contents hold " +
                               std::to_string(t.data.size()));
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
  resp->set_model_version(reply.version);
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
  req->set_model_version(call.version);
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
  reply.version = resp.model_version();
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
      t.data.assign(bytes.begin(), bytes.end());
    } else {
      VIGIL_RETURN_IF_ERROR(DecodeTyped(out.contents(), t, "output"));
    }
    reply.outputs.push_back(std::move(t));
    reply.binary.push_back(raw);
  }
  return reply;
}

}  // namespace vigil
