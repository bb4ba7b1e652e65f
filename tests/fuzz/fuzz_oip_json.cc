// The Open Inference Protocol JSON request decoder (HTTP bodies without
// binary data), and, for what it accepts, the reply encoder and the client's
// reply decoder: what the server decodes must encode to JSON the client
// reads back with the same tensors.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "protocol/oip_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto call = vigil::DecodeInferRequest(body, std::nullopt);
  if (!call.ok()) return 0;
  vigil::InferReply reply;
  reply.model = "m";
  reply.id = call->id;
  reply.parameters = call->parameters;
  reply.outputs = call->inputs;
  reply.binary.assign(reply.outputs.size(), call->binary_output);
  const vigil::EncodedBody enc = vigil::EncodeInferReply(reply);
  auto back = vigil::DecodeInferReply(enc.body, enc.header_length);
  // FP16/BF16 go back as binary: everything else must round-trip.
  if (!back.ok()) std::abort();
  if (back->outputs.size() != reply.outputs.size()) std::abort();
  for (size_t i = 0; i < reply.outputs.size(); ++i) {
    if (back->outputs[i].shape != reply.outputs[i].shape) std::abort();
  }
  return 0;
}
