#include "protocol/oip_json.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/utf8.h"
#include "protocol/json.h"

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

void AppendParam(std::string& out, const ParamValue& v) {
  if (std::holds_alternative<bool>(v))
    out += std::get<bool>(v) ? "true" : "false";
  else if (std::holds_alternative<int64_t>(v))
    out += std::to_string(std::get<int64_t>(v));
  else if (std::holds_alternative<double>(v))
    fmt::format_to(std::back_inserter(out), "{}", std::get<double>(v));
  else
    AppendJsonString(out, std::get<std::string>(v));
}

template <typename T>
void AppendFloats(std::string& out, const Tensor& t) {
  const T* p = t.as<T>();
  const int64_t n = t.element_count();
  for (int64_t i = 0; i < n; ++i) {
    if (i) out += ',';
    const T x = p[i];
    if (std::isnan(x))
      out += "NaN";
    else if (std::isinf(x))
      out += x > 0 ? "Infinity" : "-Infinity";
    else
      fmt::format_to(std::back_inserter(out), "{}", x);
  }
}

template <typename T>
void AppendInts(std::string& out, const Tensor& t) {
  const T* p = t.as<T>();
  const int64_t n = t.element_count();
  for (int64_t i = 0; i < n; ++i) {
    if (i) out += ',';
    fmt::format_to(std::back_inserter(out), "{}", +p[i]);
  }
}

void AppendTensorData(std::string& out, const Tensor& t) {
  out += '[';
  switch (t.datatype) {
    case DataType::kBool: {
      for (int64_t i = 0; i < t.element_count(); ++i) out += (i ? "," : "") + std::string(t.data[i] ? "true" : "false");
      break;
    }
    case DataType::kUint8:
      AppendInts<uint8_t>(out, t);
      break;
    case DataType::kUint16:
      AppendInts<uint16_t>(out, t);
      break;
    case DataType::kUint32:
      AppendInts<uint32_t>(out, t);
      break;
    case DataType::kUint64:
      AppendInts<uint64_t>(out, t);
      break;
    case DataType::kInt8:
      AppendInts<int8_t>(out, t);
      break;
    case DataType::kInt16:
      AppendInts<int16_t>(out, t);
      break;
    case DataType::kInt32:
      AppendInts<int32_t>(out, t);
      break;
    case DataType::kInt64:
      AppendInts<int64_t>(out, t);
      break;
    case DataType::kFp32:
      AppendFloats<float>(out, t);
      break;
    case DataType::kFp64:
      AppendFloats<double>(out, t);
      break;
    case DataType::kBytes: {
      bool first = true;
      for (std::string_view e : BytesElements(t)) {
        if (!first) out += ',';
        first = false;
        AppendJsonString(out, e);
      }
      break;
    }
    default:
      break;  // FP16/BF16 are always sent binary
  }
  out += ']';
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else if (c < 0x80) {
          out += static_cast<char>(c);
        } else if (const size_t n = Utf8SequenceLength(s.substr(i)); n > 0) {
          out.append(s.data() + i, n);
          i += n - 1;
        } else {
          // Bytes that are not UTF-8 (a client's, echoed in a message) would
          // make the whole reply invalid JSON: each becomes U+FFFD.
          out += "\\ufffd";
        }
    }
  }
  out += '"';
}

std::string JsonNumber(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

std::optional<std::string> ErrorMessageOf(const std::string& body) {
  rj::Document d;
  if (!ParseJson(body, d).ok() || !d.IsObject()) return std::nullopt;
  const rj::Value* error = Member(d, "error");
  if (!error || !error->IsString()) return std::nullopt;
  return std::string(error->GetString(), error->GetStringLength());
}

std::string ErrorJson(std::string_view message) {
  std::string out = "{\"error\":";
  AppendJsonString(out, message);
  out += '}';
  return out;
}

namespace {

bool SentBinary(const Tensor& t, const std::vector<bool>& binary, size_t i) {
  return (i < binary.size() && binary[i]) || t.datatype == DataType::kFp16 || t.datatype == DataType::kBf16;
}

void AppendParams(std::string& out, const Params& params) {
  out += '{';
  bool first = true;
  for (const auto& [k, v] : params) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(out, k);
    out += ':';
    AppendParam(out, v);
  }
  out += '}';
}

// `"key":[{name, datatype, shape, data | parameters.binary_data_size}, ...]`,
// then the binary tensors after the JSON when any is binary.
void AppendTensors(EncodedBody& enc, const char* key, const std::vector<Tensor>& tensors,
                   const std::vector<bool>& binary) {
  std::string& out = enc.body;
  out += '"';
  out += key;
  out += "\":[";
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (i) out += ',';
    out += "{\"name\":";
    AppendJsonString(out, t.name);
    out += ",\"datatype\":\"";
    out += DataTypeName(t.datatype);
    out += "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (d) out += ',';
      out += std::to_string(t.shape[d]);
    }
    out += ']';
    if (SentBinary(t, binary, i)) {
      out += ",\"parameters\":{\"binary_data_size\":" + std::to_string(t.data.size()) + "}}";
    } else {
      out += ",\"data\":";
      AppendTensorData(out, t);
      out += '}';
    }
  }
  out += ']';
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
  EncodedBody enc;
  std::string& out = enc.body;
  out.reserve(256);
  out += "{\"model_name\":";
  AppendJsonString(out, reply.model);
  out += ",\"model_version\":";
  AppendJsonString(out, VersionString(reply.version));
  if (!reply.id.empty()) {
    out += ",\"id\":";
    AppendJsonString(out, reply.id);
  }
  if (!reply.parameters.empty()) {
    out += ",\"parameters\":";
    AppendParams(out, reply.parameters);
  }
  out += ',';
  AppendTensors(enc, "outputs", reply.outputs, reply.binary);
  out += '}';
  AppendBinaryTensors(enc, reply.outputs, reply.binary);
  return enc;
}

EncodedBody EncodeInferRequest(const InferCall& call, bool binary_inputs) {
  EncodedBody enc;
  std::string& out = enc.body;
  out.reserve(256);
  out += '{';
  if (!call.id.empty()) {
    out += "\"id\":";
    AppendJsonString(out, call.id);
    out += ',';
  }
  Params params = call.parameters;
  if (call.binary_output) params["binary_data_output"] = true;
  if (!params.empty()) {
    out += "\"parameters\":";
    AppendParams(out, params);
    out += ',';
  }
  const std::vector<bool> binary(call.inputs.size(), binary_inputs);
  AppendTensors(enc, "inputs", call.inputs, binary);
  if (!call.outputs.empty()) {
    out += ",\"outputs\":[";
    for (size_t i = 0; i < call.outputs.size(); ++i) {
      if (i) out += ',';
      out += "{\"name\":";
      AppendJsonString(out, call.outputs[i].name);
      if (call.outputs[i].binary != call.binary_output)
        out += call.outputs[i].binary ? ",\"parameters\":{\"binary_data\":true}"
                                      : ",\"parameters\":{\"binary_data\":false}";
      out += '}';
    }
    out += ']';
  }
  out += '}';
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
