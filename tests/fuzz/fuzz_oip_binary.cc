// The binary tensor extension: the first two bytes of the input are the
// Inference-Header-Content-Length (0xFFFF = absent), the rest is the body.
// Also the whole-body raw input (Inference-Header-Content-Length: 0).
#include <cstdint>
#include <string>

#include "protocol/oip_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const unsigned raw_length = data[0] | (data[1] << 8);
  const std::string body(reinterpret_cast<const char*>(data + 2), size - 2);
  std::optional<size_t> header_length;
  if (raw_length != 0xFFFF) header_length = raw_length;
  (void)vigil::DecodeInferRequest(body, header_length);
  (void)vigil::DecodeInferReply(body, header_length);
  vigil::TensorSpec spec{"x", vigil::DataType::kFp32, {4}};
  vigil::Tensor t;
  (void)vigil::RawBodyInput(body, spec, (raw_length & 1) != 0, &t);
  return 0;
}
