// Open Inference Protocol gRPC messages ⇄ Vigil's InferCall / InferReply,
// for the gRPC frontend (decode requests, encode replies) and the gRPC
// client (the reverse). Typed `contents` and raw tensor bytes both ways.
//
// This header pulls in the generated protobuf code: include it only from
// translation units that speak gRPC.
#pragma once

#include "core/status.h"
#include "grpc_predict_v2.pb.h"
#include "protocol/oip_json.h"

namespace vigil {

// Process-wide gRPC runtime settings, applied once by the server and the
// client: Debian's Abseil is built with mutex deadlock detection on, which
// costs gRPC's hot path a cycle-graph update on every lock; it is turned off.
void TuneGrpcRuntime();

// Triton's DataType enum (BYTES is TYPE_STRING).
inference::DataType TritonType(DataType t);

Params ParamsFromProto(const google::protobuf::Map<std::string, inference::InferParameter>& in);
void ParamsToProto(const Params& params, google::protobuf::Map<std::string, inference::InferParameter>* out);

// Typed contents → tensor bytes (t.name, datatype and shape already set);
// `kind` ("input" or "output") names the tensor in messages.
Status DecodeTyped(const inference::InferTensorContents& c, Tensor& t, const char* kind);
void EncodeTyped(const Tensor& t, inference::InferTensorContents* c);

// Server side. `raw` reports whether the request used raw_input_contents
// (then outputs go back raw too); mixing raw and typed is an error.
Status DecodeGrpcRequest(const inference::ModelInferRequest& req, InferCall& call, bool& raw);
void EncodeGrpcReply(InferReply&& reply, bool raw, inference::ModelInferResponse* resp);

// Client side.
void EncodeGrpcRequest(const InferCall& call, bool raw, inference::ModelInferRequest* req);
StatusOr<InferReply> DecodeGrpcReply(const inference::ModelInferResponse& resp);

}  // namespace vigil
