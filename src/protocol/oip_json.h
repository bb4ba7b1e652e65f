// Open Inference Protocol (KServe v2) REST bodies: JSON tensors (nested or
// flat) and Triton's binary tensor extension, both ways, for the server
// (decode requests, encode replies) and the client (the reverse).
//
// Decoding produces frontend-neutral InferCall values; encoding turns an
// InferReply into a body plus the JSON header length for binary outputs.
// Pure functions; thread-compatible.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/infer_call.h"
#include "core/status.h"
#include "core/tensor.h"

namespace vigil {

// The longest request (and prediction) id accepted, in bytes. Ids are keys of
// the prediction log and feedback, so they stay short.
constexpr size_t kMaxIdBytes = 256;

// Decodes a request body. `header_length` is the Inference-Header-Content-Length
// value (nullopt when absent): the JSON is the first `header_length` bytes and
// the rest are binary tensors. A value of 0 means the whole body is the raw
// bytes of the model's single input, batch 1 — that case is resolved by the
// caller, which knows the model (see RawBodyInput).
StatusOr<InferCall> DecodeInferRequest(const std::string& body, std::optional<size_t> header_length);

// The single input of a model for a body sent with Inference-Header-Content-Length: 0.
Status RawBodyInput(std::string_view body, const TensorSpec& input, bool batching, Tensor* out);

struct EncodedBody {
  std::string body;
  std::optional<size_t> header_length;  // set when binary outputs follow the JSON
};

EncodedBody EncodeInferReply(const InferReply& reply);

// The client's side: a request body (inputs as binary tensors when
// `binary_inputs`; outputs as the call's RequestedOutput/binary_output say),
// and a reply body back into an InferReply ({"error": ...} → that message).
EncodedBody EncodeInferRequest(const InferCall& call, bool binary_inputs);
StatusOr<InferReply> DecodeInferReply(const std::string& body, std::optional<size_t> header_length);

// {"error": message}
std::string ErrorJson(std::string_view message);
// The body of a repository load request that carries a config (YAML or
// JSON text): {"parameters": {"config": "..."}}.
std::string LoadRequestJson(std::string_view config);
// The message of an {"error": ...} body, or nullopt for any other body.
std::optional<std::string> ErrorMessageOf(const std::string& body);

}  // namespace vigil
