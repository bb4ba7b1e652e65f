#include "protocol/oip_json.h"

#include <fmt/compile.h>
#include <fmt/format.h>
#include <rapidjson/document.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/utf8.h"
#include "protocol/json.h"
#include "protocol/json_writer.h"

namespace vigil {
namespace {

namespace rj = rapidjson;

std::string TypeOf(const rj::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsBool()) return v.GetBool() ? "true" : "false";
  if (v.IsNumber())
    return v.IsDouble() ? fmt::format("{}", v.GetDouble())
                        : (v.IsInt64() ? std::to_string(v.GetInt64()) : std::to_string(v.GetUint64()));
  if (v.IsString()) return "a string";
  if (v.IsArray()) return "an array";
  return "an object";
}

template <typename T>
void Append(std::vector<uint8_t>& out, T value) {
  const size_t n = out.size();
  out.resize(n + sizeof(T));
  std::memcpy(out.data() + n, &value, sizeof(T));
}

template <typename T>
bool AppendInteger(const rj::Value& v, std::vector<uint8_t>& out) {
  if (v.IsBool()) {
    Append<T>(out, static_cast<T>(v.GetBool()));
    return true;
  }
  if (!v.IsNumber() || v.IsDouble()) return false;
  if constexpr (std::is_signed_v<T>) {
    if (!v.IsInt64()) return false;
    const int64_t x = v.GetInt64();
    if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max()) return false;
    Append<T>(out, static_cast<T>(x));
  } else {
    if (!v.IsUint64()) return false;
    const uint64_t x = v.GetUint64();
    if (x > std::numeric_limits<T>::max()) return false;
    Append<T>(out, static_cast<T>(x));
  }
  return true;
}

// Whether a double converts to float without leaving its range (converting
// a finite double beyond FLT_MAX is undefined behaviour). NaN and the
// infinities are floats too.
bool FitsFloat(double x) { return !std::isfinite(x) || std::abs(x) <= std::numeric_limits<float>::max(); }

// Appends one leaf element; false when it does not fit the datatype.
bool AppendElement(const rj::Value& v, DataType type, std::vector<uint8_t>& out) {
  switch (type) {
    case DataType::kBool:
      if (v.IsBool()) {
        out.push_back(v.GetBool() ? 1 : 0);
        return true;
      }
      if (v.IsInt64() && (v.GetInt64() == 0 || v.GetInt64() == 1)) {
        out.push_back(static_cast<uint8_t>(v.GetInt64()));
        return true;
      }
      return false;
    case DataType::kUint8:
      return AppendInteger<uint8_t>(v, out);
    case DataType::kUint16:
      return AppendInteger<uint16_t>(v, out);
    case DataType::kUint32:
      return AppendInteger<uint32_t>(v, out);
    case DataType::kUint64:
      return AppendInteger<uint64_t>(v, out);
    case DataType::kInt8:
      return AppendInteger<int8_t>(v, out);
    case DataType::kInt16:
      return AppendInteger<int16_t>(v, out);
    case DataType::kInt32:
      return AppendInteger<int32_t>(v, out);
    case DataType::kInt64:
      return AppendInteger<int64_t>(v, out);
    case DataType::kFp32:
      if (!v.IsNumber() || !FitsFloat(v.GetDouble())) return false;
      Append<float>(out, static_cast<float>(v.GetDouble()));
      return true;
    case DataType::kFp64:
      if (!v.IsNumber()) return false;
      Append<double>(out, v.GetDouble());
      return true;
    case DataType::kBytes: {
      if (!v.IsString()) return false;
      AppendBytesElement(out, std::string_view(v.GetString(), v.GetStringLength()));
      return true;
    }
    default:
      return false;
  }
}

// Walks nested arrays depth-first, appending leaves.
Status AppendData(const rj::Value& v, const Tensor& t, int64_t& count, std::vector<uint8_t>& out) {
  if (v.IsArray()) {
    for (const auto& e : v.GetArray()) VIGIL_RETURN_IF_ERROR(AppendData(e, t, count, out));
    return Status::Ok();
  }
  if (!AppendElement(v, t.datatype, out)) {
    return InvalidArgument("input '" + t.name + "': element " + std::to_string(count) + " is " + TypeOf(v) +
                           ", not a " + std::string(DataTypeName(t.datatype)) + " value");
  }
  ++count;
  return Status::Ok();
}

// FP32, the common case: writes straight into a buffer sized from the shape.
Status DecodeFloats(const rj::Value& v, const Tensor& t, float* dst, int64_t capacity, int64_t& count) {
  if (v.IsArray()) {
    for (const auto& e : v.GetArray()) VIGIL_RETURN_IF_ERROR(DecodeFloats(e, t, dst, capacity, count));
    return Status::Ok();
  }
  if (!v.IsNumber() || !FitsFloat(v.GetDouble())) {
    return InvalidArgument("input '" + t.name + "': element " + std::to_string(count) + " is " + TypeOf(v) +
                           (v.IsNumber() ? ", outside the range of FP32" : ", not a FP32 value"));
  }
  if (count < capacity) dst[count] = static_cast<float>(v.GetDouble());
  ++count;
  return Status::Ok();
}

Status DecodeParams(const rj::Value& v, const std::string& where, Params& out) {
  if (!v.IsObject()) return InvalidArgument(where + ": 'parameters' must be an object");
  for (const auto& m : v.GetObject()) {
    const std::string key(m.name.GetString(), m.name.GetStringLength());
    const rj::Value& x = m.value;
    if (x.IsBool())
      out[key] = x.GetBool();
    else if (x.IsInt64())
      out[key] = x.GetInt64();
    else if (x.IsNumber())
      out[key] = x.GetDouble();
    else if (x.IsString())
      out[key] = std::string(x.GetString(), x.GetStringLength());
    else
      return InvalidArgument(where + ": parameter '" + key + "' must be a string, number or bool");
  }
  return Status::Ok();
}

const rj::Value* Member(const rj::Value& obj, const char* name) {
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

// One tensor of a request's "inputs" or a reply's "outputs"; `kind` is
// "input" or "output", for messages.
// `json_size` is the size of the JSON text it came from.
Status DecodeTensor(const rj::Value& in, const char* kind, size_t index, size_t json_size, std::string_view& binary,
                    Tensor& t) {
  const std::string where = std::string(kind) + "s[" + std::to_string(index) + "]";
  if (!in.IsObject()) return InvalidArgument(where + " must be an object with name, shape, datatype and data");
  const rj::Value* name = Member(in, "name");
  if (!name || !name->IsString()) return InvalidArgument(where + ": 'name' must be a string");
  t.name.assign(name->GetString(), name->GetStringLength());
  const std::string tw = std::string(kind) + " '" + t.name + "'";
  const rj::Value* dt = Member(in, "datatype");
  if (!dt || !dt->IsString()) return InvalidArgument(tw + ": 'datatype' must be a string such as \"FP32\"");
  t.datatype = ParseDataType(std::string_view(dt->GetString(), dt->GetStringLength()));
  if (t.datatype == DataType::kInvalid)
    return InvalidArgument(tw + ": unknown datatype '" + std::string(dt->GetString()) + "'");
  const rj::Value* shape = Member(in, "shape");
  if (!shape || !shape->IsArray()) return InvalidArgument(tw + ": 'shape' must be an array of non-negative integers");
  if (shape->Size() > kMaxTensorRank) {
    return InvalidArgument(tw + ": shape has " + std::to_string(shape->Size()) + " dimensions, at most " +
                           std::to_string(kMaxTensorRank) + " are accepted");
  }
  for (const auto& d : shape->GetArray()) {
    if (!d.IsInt64() || d.GetInt64() < 0)
      return InvalidArgument(tw + ": 'shape' must be an array of non-negative integers");
    t.shape.push_back(d.GetInt64());
  }
  VIGIL_ASSIGN_OR_RETURN(const int64_t expected, CheckedElementCount(t.shape, tw));
  Params params;
  if (const rj::Value* p = Member(in, "parameters")) VIGIL_RETURN_IF_ERROR(DecodeParams(*p, tw, params));
  auto bds = params.find("binary_data_size");
  if (bds != params.end()) {
    if (!std::holds_alternative<int64_t>(bds->second) || std::get<int64_t>(bds->second) < 0) {
      return InvalidArgument(tw + ": binary_data_size must be a non-negative integer");
    }
    const size_t n = static_cast<size_t>(std::get<int64_t>(bds->second));
    if (n > binary.size()) {
      return InvalidArgument(tw + ": binary_data_size " + std::to_string(n) + " exceeds the " +
                             std::to_string(binary.size()) + " binary bytes left in the body");
    }
    t.data.assign(binary.begin(), binary.begin() + static_cast<std::ptrdiff_t>(n));
    binary.remove_prefix(n);
    if (t.datatype == DataType::kBytes) return ValidateBytesBuffer(t.data, expected).WithContext(tw);
    if (t.data.size() != t.expected_byte_size()) {
      return InvalidArgument(tw + ": shape " + ShapeToString(t.shape) + " of " + std::string(DataTypeName(t.datatype)) +
                             " needs " + std::to_string(t.expected_byte_size()) + " bytes, binary_data_size is " +
                             std::to_string(n));
    }
    return Status::Ok();
  }
  const rj::Value* data = Member(in, "data");
  if (!data) return InvalidArgument(tw + ": 'data' is missing (or give parameters.binary_data_size)");
  if (t.datatype == DataType::kFp16 || t.datatype == DataType::kBf16) {
    return InvalidArgument(tw + ": " + std::string(DataTypeName(t.datatype)) + " travels only as binary data");
  }
  // Every JSON element takes at least two bytes ("0,"), so a shape that
  // needs more elements than that cannot be satisfied by this body: refused
  // before a buffer is sized from it.
  if (expected > static_cast<int64_t>(json_size / 2 + 1)) {
    return InvalidArgument(tw + ": shape " + ShapeToString(t.shape) + " needs " + std::to_string(expected) +
                           " elements, more than a JSON body of " + std::to_string(json_size) + " bytes can hold");
  }
  int64_t count = 0;
  if (t.datatype == DataType::kFp32) {
    t.data.resize(static_cast<size_t>(expected) * sizeof(float));
    VIGIL_RETURN_IF_ERROR(DecodeFloats(*data, t, reinterpret_cast<float*>(t.data.data()), expected, count));
  } else {
    if (t.datatype != DataType::kBytes) t.data.reserve(static_cast<size_t>(expected) * DataTypeSize(t.datatype));
    VIGIL_RETURN_IF_ERROR(AppendData(*data, t, count, t.data));
  }
  if (count != expected) {
    return InvalidArgument(tw + ": shape " + ShapeToString(t.shape) + " needs " + std::to_string(expected) +
                           " elements, data has " + std::to_string(count));
  }
  return Status::Ok();
}

void WriteParam(JsonWriter& j, const ParamValue& v) {
  if (std::holds_alternative<bool>(v)) {
    j.Bool(std::get<bool>(v));
  } else if (std::holds_alternative<int64_t>(v)) {
    j.Int(std::get<int64_t>(v));
  } else if (std::holds_alternative<double>(v)) {
    // Finite (WriteParams leaves the others out), in fmt's shortest digits
    // that read back the same, as tensor data is.
    char digits[32];
    const auto end = fmt::format_to_n(digits, sizeof(digits), FMT_COMPILE("{}"), std::get<double>(v)).out;
    j.RawNumber(std::string_view(digits, static_cast<size_t>(end - digits)));
  } else {
    j.String(std::get<std::string>(v));
  }
}

// A tensor's numbers as one JSON array, formatted in one pass with a format
// compiled once (FMT_COMPILE: no format string parsed per element) straight
// into the buffer: shortest float digits that read back the same, and the
// protocol's NaN / Infinity / -Infinity tokens.
template <typename T>
void FormatNumbers(fmt::memory_buffer& out, const Tensor& t) {
  constexpr size_t kMaxNumberChars = 32;  // -1.7976931348623157e+308 is 24
  const T* p = t.as<T>();
  const int64_t n = t.element_count();
  out.push_back('[');
  for (int64_t i = 0; i < n; ++i) {
    out.reserve(out.size() + kMaxNumberChars + 1);
    char* at = out.data() + out.size();
    char* end = at;
    if (i) *end++ = ',';
    const T x = p[i];
    if constexpr (std::is_floating_point_v<T>) {
      if (!std::isfinite(x)) {
        const std::string_view token = std::isnan(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity";
        end = std::copy(token.begin(), token.end(), end);
        out.resize(out.size() + static_cast<size_t>(end - at));
        continue;
      }
    }
    end = fmt::format_to(end, FMT_COMPILE("{}"), +x);
    out.resize(out.size() + static_cast<size_t>(end - at));
  }
  out.push_back(']');
}

void WriteTensorData(JsonWriter& j, const Tensor& t) {
  fmt::memory_buffer numbers;
  switch (t.datatype) {
    case DataType::kBool:
      j.StartArray();
      for (int64_t i = 0; i < t.element_count(); ++i) j.Bool(t.data[static_cast<size_t>(i)] != 0);
      j.EndArray();
      return;
    case DataType::kBytes:
      j.StartArray();
      for (std::string_view e : BytesElements(t)) j.String(e);  // repaired where not UTF-8
      j.EndArray();
      return;
    case DataType::kUint8:
      FormatNumbers<uint8_t>(numbers, t);
      break;
    case DataType::kUint16:
      FormatNumbers<uint16_t>(numbers, t);
      break;
    case DataType::kUint32:
      FormatNumbers<uint32_t>(numbers, t);
      break;
    case DataType::kUint64:
      FormatNumbers<uint64_t>(numbers, t);
      break;
    case DataType::kInt8:
      FormatNumbers<int8_t>(numbers, t);
      break;
    case DataType::kInt16:
      FormatNumbers<int16_t>(numbers, t);
      break;
    case DataType::kInt32:
      FormatNumbers<int32_t>(numbers, t);
      break;
    case DataType::kInt64:
      FormatNumbers<int64_t>(numbers, t);
      break;
    case DataType::kFp32:
      FormatNumbers<float>(numbers, t);
      break;
    case DataType::kFp64:
      FormatNumbers<double>(numbers, t);
      break;
    default:  // FP16/BF16 are always sent binary
      j.StartArray();
      j.EndArray();
      return;
  }
  j.RawArray(std::string_view(numbers.data(), numbers.size()));
}

}  // namespace

std::string LoadRequestJson(std::string_view config) {
  JsonWriter j;
  j.StartObject();
  j.Key("parameters");
  j.StartObject();
  j.Field("config", config);
  j.EndObject();
  j.EndObject();
  return j.Take();
}

std::optional<std::string> ErrorMessageOf(const std::string& body) {
  rj::Document d;
  if (!ParseJson(body, d).ok() || !d.IsObject()) return std::nullopt;
  const rj::Value* error = Member(d, "error");
  if (!error || !error->IsString()) return std::nullopt;
  return std::string(error->GetString(), error->GetStringLength());
}

std::string ErrorJson(std::string_view message) {
  JsonWriter j;
  j.StartObject();
  j.Field("error", message);
  j.EndObject();
  return j.Take();
}

namespace {

bool SentBinary(const Tensor& t, const std::vector<bool>& binary, size_t i) {
  return (i < binary.size() && binary[i]) || t.datatype == DataType::kFp16 || t.datatype == DataType::kBf16;
}

void WriteParams(JsonWriter& j, const Params& params) {
  j.StartObject();
  for (const auto& [k, v] : params) {
    // JSON cannot carry a NaN or infinite parameter (and the protocol has no
    // null one): it is left out.
    if (std::holds_alternative<double>(v) && !std::isfinite(std::get<double>(v))) continue;
    j.Key(k);
    WriteParam(j, v);
  }
  j.EndObject();
}

// `"key":[{name, datatype, shape, data | parameters.binary_data_size}, ...]`;
// the binary tensors go after the JSON (AppendBinaryTensors).
void WriteTensors(JsonWriter& j, const char* key, const std::vector<Tensor>& tensors, const std::vector<bool>& binary) {
  j.Key(key);
  j.StartArray();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    j.StartObject();
    j.Field("name", t.name);
    j.Field("datatype", DataTypeName(t.datatype));
    j.Key("shape");
    j.StartArray();
    for (int64_t d : t.shape) j.Int(d);
    j.EndArray();
    if (SentBinary(t, binary, i)) {
      j.Key("parameters");
      j.StartObject();
      j.Field("binary_data_size", static_cast<uint64_t>(t.data.size()));
      j.EndObject();
    } else {
      j.Key("data");
      WriteTensorData(j, t);
    }
    j.EndObject();
  }
  j.EndArray();
}

void AppendBinaryTensors(EncodedBody& enc, const std::vector<Tensor>& tensors, const std::vector<bool>& binary) {
  bool any = false;
  for (size_t i = 0; i < tensors.size(); ++i) any |= SentBinary(tensors[i], binary, i);
  if (!any) return;
  enc.header_length = enc.body.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (SentBinary(t, binary, i)) enc.body.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  }
}

// Parses the JSON part of a body; `binary` gets the bytes after it and
// `json_size` the size of the JSON part.
Status ParseBody(const std::string& body, std::optional<size_t> header_length, rj::Document& doc,
                 std::string_view& binary, size_t& json_size) {
  std::string_view json = body;
  if (header_length) {
    if (*header_length > body.size()) {
      return InvalidArgument("Inference-Header-Content-Length " + std::to_string(*header_length) +
                             " exceeds the body size " + std::to_string(body.size()));
    }
    json = json.substr(0, *header_length);
    binary = std::string_view(body).substr(*header_length);
  }
  json_size = json.size();
  return ParseJson(json, doc, {.nan_and_infinity = true});
}

Status ReadString(const rj::Value& obj, const char* key, std::string& out) {
  const rj::Value* v = Member(obj, key);
  if (!v) return Status::Ok();
  if (!v->IsString()) return InvalidArgument(std::string("'") + key + "' must be a string");
  out.assign(v->GetString(), v->GetStringLength());
  return Status::Ok();
}

}  // namespace

StatusOr<InferCall> DecodeInferRequest(const std::string& body, std::optional<size_t> header_length) {
  rj::Document doc;
  std::string_view binary;
  size_t json_size = 0;
  VIGIL_RETURN_IF_ERROR(ParseBody(body, header_length, doc, binary, json_size));
  if (!doc.IsObject()) return InvalidArgument("the request body must be a JSON object with an 'inputs' array");
  InferCall call;
  if (const rj::Value* id = Member(doc, "id")) {
    if (!id->IsString()) return InvalidArgument("'id' must be a string");
    if (id->GetStringLength() > kMaxIdBytes) {
      return InvalidArgument("'id' has " + std::to_string(id->GetStringLength()) + " bytes, at most " +
                             std::to_string(kMaxIdBytes) + " are accepted");
    }
    call.id.assign(id->GetString(), id->GetStringLength());
  }
  if (const rj::Value* p = Member(doc, "parameters"))
    VIGIL_RETURN_IF_ERROR(DecodeParams(*p, "request", call.parameters));
  if (auto it = call.parameters.find("binary_data_output"); it != call.parameters.end()) {
    if (!std::holds_alternative<bool>(it->second))
      return InvalidArgument("parameter 'binary_data_output' must be a bool");
    call.binary_output = std::get<bool>(it->second);
  }
  const rj::Value* inputs = Member(doc, "inputs");
  if (!inputs || !inputs->IsArray()) return InvalidArgument("'inputs' must be an array of tensors");
  if (inputs->Empty()) return InvalidArgument("'inputs' is empty");
  call.inputs.resize(inputs->Size());
  for (rj::SizeType i = 0; i < inputs->Size(); ++i) {
    VIGIL_RETURN_IF_ERROR(DecodeTensor((*inputs)[i], "input", i, json_size, binary, call.inputs[i]));
  }
  if (!binary.empty()) {
    return InvalidArgument(std::to_string(binary.size()) +
                           " binary bytes after the last input are not claimed by any binary_data_size");
  }
  if (const rj::Value* outputs = Member(doc, "outputs")) {
    if (!outputs->IsArray()) return InvalidArgument("'outputs' must be an array of {\"name\": ...}");
    for (rj::SizeType i = 0; i < outputs->Size(); ++i) {
      const rj::Value& o = (*outputs)[i];
      const rj::Value* name = o.IsObject() ? Member(o, "name") : nullptr;
      if (!name || !name->IsString())
        return InvalidArgument("outputs[" + std::to_string(i) + "]: 'name' must be a string");
      RequestedOutput ro;
      ro.name.assign(name->GetString(), name->GetStringLength());
      ro.binary = call.binary_output;
      if (const rj::Value* p = Member(o, "parameters")) {
        Params params;
        VIGIL_RETURN_IF_ERROR(DecodeParams(*p, "output '" + ro.name + "'", params));
        if (auto it = params.find("binary_data"); it != params.end()) {
          if (!std::holds_alternative<bool>(it->second))
            return InvalidArgument("output '" + ro.name + "': binary_data must be a bool");
          ro.binary = std::get<bool>(it->second);
        }
      }
      call.outputs.push_back(std::move(ro));
    }
  }
  return call;
}

Status RawBodyInput(std::string_view body, const TensorSpec& input, bool batching, Tensor* out) {
  out->name = input.name;
  out->datatype = input.datatype;
  out->shape.clear();
  if (batching) out->shape.push_back(1);
  out->shape.insert(out->shape.end(), input.dims.begin(), input.dims.end());
  if (out->element_count() < 0) {
    return InvalidArgument("Inference-Header-Content-Length: 0 needs an input with a fixed shape; input '" +
                           input.name + "' has " + ShapeToString(input.dims));
  }
  out->data.assign(body.begin(), body.end());
  if (out->data.size() != out->expected_byte_size()) {
    return InvalidArgument("raw body of " + std::to_string(body.size()) + " bytes does not match input '" + input.name +
                           "' (" + std::to_string(out->expected_byte_size()) + " bytes)");
  }
  return Status::Ok();
}

EncodedBody EncodeInferReply(const InferReply& reply) {
  JsonWriter j;
  j.Reserve(256);
  j.StartObject();
  j.Field("model_name", reply.model);
  j.Field("model_version", VersionString(reply.version));
  if (!reply.id.empty()) j.Field("id", reply.id);
  if (!reply.parameters.empty()) {
    j.Key("parameters");
    WriteParams(j, reply.parameters);
  }
  WriteTensors(j, "outputs", reply.outputs, reply.binary);
  j.EndObject();
  EncodedBody enc;
  enc.body = j.Take();
  AppendBinaryTensors(enc, reply.outputs, reply.binary);
  return enc;
}

EncodedBody EncodeInferRequest(const InferCall& call, bool binary_inputs) {
  JsonWriter j;
  j.Reserve(256);
  j.StartObject();
  if (!call.id.empty()) j.Field("id", call.id);
  Params params = call.parameters;
  if (call.binary_output) params["binary_data_output"] = true;
  if (!params.empty()) {
    j.Key("parameters");
    WriteParams(j, params);
  }
  const std::vector<bool> binary(call.inputs.size(), binary_inputs);
  WriteTensors(j, "inputs", call.inputs, binary);
  if (!call.outputs.empty()) {
    j.Key("outputs");
    j.StartArray();
    for (const auto& o : call.outputs) {
      j.StartObject();
      j.Field("name", o.name);
      if (o.binary != call.binary_output) {
        j.Key("parameters");
        j.StartObject();
        j.Field("binary_data", o.binary);
        j.EndObject();
      }
      j.EndObject();
    }
    j.EndArray();
  }
  j.EndObject();
  EncodedBody enc;
  enc.body = j.Take();
  AppendBinaryTensors(enc, call.inputs, binary);
  return enc;
}

StatusOr<InferReply> DecodeInferReply(const std::string& body, std::optional<size_t> header_length) {
  rj::Document doc;
  std::string_view binary;
  size_t json_size = 0;
  VIGIL_RETURN_IF_ERROR(ParseBody(body, header_length, doc, binary, json_size));
  if (!doc.IsObject()) return InvalidArgument("the reply body is not a JSON object");
  if (const rj::Value* error = Member(doc, "error"); error && error->IsString())
    return Internal(std::string(error->GetString(), error->GetStringLength()));
  InferReply reply;
  VIGIL_RETURN_IF_ERROR(ReadString(doc, "model_name", reply.model));
  std::string version;
  VIGIL_RETURN_IF_ERROR(ReadString(doc, "model_version", version));
  reply.version = ParseVersionString(version).value_or(0);  // another server's version names are not ours to judge
  VIGIL_RETURN_IF_ERROR(ReadString(doc, "id", reply.id));
  if (const rj::Value* p = Member(doc, "parameters"))
    VIGIL_RETURN_IF_ERROR(DecodeParams(*p, "reply", reply.parameters));
  const rj::Value* outputs = Member(doc, "outputs");
  if (!outputs || !outputs->IsArray()) return InvalidArgument("the reply has no 'outputs' array");
  reply.outputs.resize(outputs->Size());
  reply.binary.resize(outputs->Size());
  for (rj::SizeType i = 0; i < outputs->Size(); ++i) {
    const size_t left = binary.size();
    VIGIL_RETURN_IF_ERROR(DecodeTensor((*outputs)[i], "output", i, json_size, binary, reply.outputs[i]));
    reply.binary[i] = binary.size() != left;
  }
  if (!binary.empty())
    return InvalidArgument(std::to_string(binary.size()) + " binary bytes after the last output are not claimed");
  return reply;
}

}  // namespace vigil
