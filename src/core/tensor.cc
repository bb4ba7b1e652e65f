#include "core/tensor.h"

#include <array>

namespace vigil {
namespace {

struct TypeInfo {
  DataType type;
  std::string_view name;
  size_t size;
};

constexpr std::array<TypeInfo, 14> kTypes = {{
    {DataType::kBool, "BOOL", 1},
    {DataType::kUint8, "UINT8", 1},
    {DataType::kUint16, "UINT16", 2},
    {DataType::kUint32, "UINT32", 4},
    {DataType::kUint64, "UINT64", 8},
    {DataType::kInt8, "INT8", 1},
    {DataType::kInt16, "INT16", 2},
    {DataType::kInt32, "INT32", 4},
    {DataType::kInt64, "INT64", 8},
    {DataType::kFp16, "FP16", 2},
    {DataType::kBf16, "BF16", 2},
    {DataType::kFp32, "FP32", 4},
    {DataType::kFp64, "FP64", 8},
    {DataType::kBytes, "BYTES", 0},
}};

}  // namespace

std::string_view DataTypeName(DataType type) {
  for (const auto& info : kTypes) {
    if (info.type == type) return info.name;
  }
  return "INVALID";
}

DataType ParseDataType(std::string_view name) {
  for (const auto& info : kTypes) {
    if (info.name == name) return info.type;
  }
  return DataType::kInvalid;
}

size_t DataTypeSize(DataType type) {
  for (const auto& info : kTypes) {
    if (info.type == type) return info.size;
  }
  return 0;
}

int64_t ElementCount(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
  }
  return n;
}

StatusOr<int64_t> CheckedElementCount(const Shape& shape, std::string_view what, int64_t max_elements) {
  if (shape.size() > kMaxTensorRank) {
    return InvalidArgument(std::string(what) + ": shape has " + std::to_string(shape.size()) + " dimensions, at most " +
                           std::to_string(kMaxTensorRank) + " are accepted");
  }
  // Zero sizes count as one here, so that no partial product of the other
  // dimensions (a row width, say) can overflow either.
  int64_t bound = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument(std::string(what) + ": shape " + ShapeToString(shape) + " has a negative size");
    empty |= d == 0;
    if (d > 0 && (__builtin_mul_overflow(bound, d, &bound) || bound > max_elements)) {
      return InvalidArgument(std::string(what) + ": shape " + ShapeToString(shape) + " has more than " +
                             std::to_string(max_elements) + " elements");
    }
  }
  const int64_t n = empty ? 0 : bound;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  s += "]";
  return s;
}

Status ValidateBytesBuffer(const std::vector<uint8_t>& data, int64_t count) {
  size_t offset = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (offset + 4 > data.size()) {
      return InvalidArgument("BYTES data ends before element " + std::to_string(i) + " of " + std::to_string(count));
    }
    uint32_t len;
    std::memcpy(&len, data.data() + offset, 4);
    offset += 4;
    if (offset + len > data.size()) {
      return InvalidArgument("BYTES element " + std::to_string(i) + " claims " + std::to_string(len) +
                             " bytes beyond the end of the data");
    }
    offset += len;
  }
  if (offset != data.size()) {
    return InvalidArgument("BYTES data has " + std::to_string(data.size() - offset) + " trailing bytes after " +
                           std::to_string(count) + " elements");
  }
  return Status::Ok();
}

void AppendBytesElement(std::vector<uint8_t>& data, std::string_view element) {
  const uint32_t len = static_cast<uint32_t>(element.size());
  const size_t n = data.size();
  data.resize(n + 4 + len);
  std::memcpy(data.data() + n, &len, 4);
  if (len) std::memcpy(data.data() + n + 4, element.data(), len);
}

std::vector<std::string_view> BytesElements(const Tensor& t) {
  std::vector<std::string_view> out;
  size_t offset = 0;
  for (int64_t i = 0; i < t.element_count() && offset + 4 <= t.data.size(); ++i) {
    uint32_t len;
    std::memcpy(&len, t.data.data() + offset, 4);
    offset += 4;
    if (offset + len > t.data.size()) break;
    out.emplace_back(reinterpret_cast<const char*>(t.data.data() + offset), len);
    offset += len;
  }
  return out;
}

bool ShapeMatches(const Shape& dims, const Shape& shape) {
  if (dims.size() != shape.size()) return false;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] >= 0 && dims[i] != shape[i]) return false;
  }
  return true;
}

}  // namespace vigil
