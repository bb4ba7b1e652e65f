// The gRPC request → tensor mapping: any bytes parsed as a ModelInferRequest
// (what protobuf accepts from the wire), then decoded as the server does,
// and the reply encoded both ways (raw and typed) and decoded by the client.
#include <cstdint>
#include <cstdlib>

#include <google/protobuf/stubs/logging.h>

#include "protocol/oip_grpc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Protobuf logs every string that is not UTF-8 (and refuses the message).
  static const bool quiet = (google::protobuf::SetLogHandler([](auto...) {}), true);
  (void)quiet;
  inference::ModelInferRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  vigil::InferCall call;
  bool raw = false;
  if (!vigil::DecodeGrpcRequest(req, call, raw).ok()) return 0;
  for (bool as_raw : {false, true}) {
    vigil::InferReply reply;
    reply.model = call.model;
    reply.outputs = call.inputs;
    inference::ModelInferResponse resp;
    vigil::EncodeGrpcReply(std::move(reply), as_raw, &resp);
    auto back = vigil::DecodeGrpcReply(resp);
    if (!back.ok() || back->outputs.size() != call.inputs.size()) std::abort();
  }
  return 0;
}
