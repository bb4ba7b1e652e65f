// Tensors, data types and tensor specifications shared by every part.
//
// A Tensor owns its bytes: little-endian, row-major, no padding, exactly as
// the Open Inference Protocol's binary extension lays them out. BYTES tensors
// hold each element as a 4-byte little-endian length followed by its bytes.
// Value types; thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil {

enum class DataType {
  kInvalid = 0,
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kBf16,
  kFp32,
  kFp64,
  kBytes,
};

// Protocol name ("FP32") of a data type.
std::string_view DataTypeName(DataType type);
// Parses a protocol name; kInvalid when unknown.
DataType ParseDataType(std::string_view name);
// Size of one element in bytes; 0 for BYTES (variable).
size_t DataTypeSize(DataType type);

using Shape = std::vector<int64_t>;

// Product of the dimensions; -1 if any dimension is negative or the product
// does not fit in int64_t (it is computed with overflow checks).
int64_t ElementCount(const Shape& shape);

// The most dimensions and elements one tensor from a client may have. Shapes
// are checked against these (and against the bytes actually sent) before
// anything is allocated for them.
constexpr size_t kMaxTensorRank = 16;
constexpr int64_t kMaxTensorElements = int64_t{1} << 31;

// Checks a shape that came from the wire: at most kMaxTensorRank dimensions,
// none negative, at most `max_elements` elements. Returns the element count,
// or an error naming `what` (e.g. "input 'x'") and the shape.
StatusOr<int64_t> CheckedElementCount(const Shape& shape, std::string_view what,
                                      int64_t max_elements = kMaxTensorElements);
std::string ShapeToString(const Shape& shape);

struct Tensor {
  std::string name;
  DataType datatype = DataType::kInvalid;
  Shape shape;
  std::vector<uint8_t> data;

  int64_t element_count() const { return ElementCount(shape); }
  // Number of bytes the shape implies for fixed-size types.
  size_t expected_byte_size() const { return static_cast<size_t>(element_count()) * DataTypeSize(datatype); }

  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(data.data());
  }
  template <typename T>
  T* mutable_as() {
    return reinterpret_cast<T*>(data.data());
  }
};

// Checks that a BYTES buffer is a well-formed sequence of `count` elements.
Status ValidateBytesBuffer(const std::vector<uint8_t>& data, int64_t count);

// Appends one BYTES element (4-byte little-endian length, then the bytes).
void AppendBytesElement(std::vector<uint8_t>& data, std::string_view element);

// The elements of a BYTES tensor, in order (stops early on a malformed buffer,
// which ValidateBytesBuffer reports).
std::vector<std::string_view> BytesElements(const Tensor& t);

// Declared input or output of a model: per-row dims exclude the batch
// dimension when the model batches; -1 marks a variable dimension.
struct TensorSpec {
  std::string name;
  DataType datatype = DataType::kInvalid;
  Shape dims;
};

// True when `shape` (per-row, no batch dim) fits `dims` (-1 matches any).
bool ShapeMatches(const Shape& dims, const Shape& shape);

}  // namespace vigil
