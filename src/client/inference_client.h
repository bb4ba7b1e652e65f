// InferenceClient: the Open Inference Protocol from the caller's side, over
// HTTP (JSON or binary tensors) or gRPC (typed contents or raw tensors),
// behind one interface. Used by `vigil bench`, `vigil profile` and the tests.
//
// One client holds one connection; it is not thread-safe (use one per
// thread). Server errors come back as a Status with the server's message and
// a code mapped back from the HTTP status or gRPC code.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/http_client.h"
#include "core/status.h"
#include "core/tensor.h"
#include "protocol/oip_json.h"

namespace vigil {

enum class Protocol { kHttp, kGrpc };

struct ClientOptions {
  Protocol protocol = Protocol::kHttp;
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  // HTTP: binary tensor extension for inputs and outputs; gRPC: raw_input_contents.
  bool binary = false;
  std::chrono::milliseconds timeout{30000};
  // Sent as "Authorization: Bearer <token>" with control calls (model load
  // and unload) when set: the server's --admin-token.
  std::string token;
  // TLS (https://, grpcs://): the server's certificate must chain to
  // `tls_ca` (empty: the system's CAs); a client certificate for mutual TLS.
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key;
};

// "host:port", "http://host:port", "https://host:port", "grpc://host:port" or
// "grpcs://host:port" (a path is ignored); fills host, port and, when a
// scheme is given, the protocol and whether it is TLS.
Status ParseServerUrl(std::string_view url, ClientOptions* options);

struct TensorMetadata {
  std::string name;
  DataType datatype = DataType::kInvalid;
  Shape shape;  // -1 for variable dimensions, including the batch dimension
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;
  std::string platform;
  std::vector<TensorMetadata> inputs;
  std::vector<TensorMetadata> outputs;
};

class InferenceClient {
 public:
  virtual ~InferenceClient() = default;

  virtual Status ServerReady() = 0;
  virtual StatusOr<ModelMetadata> GetModelMetadata(const std::string& model, const std::string& version = "") = 0;
  // call.model / call.version name the target.
  virtual StatusOr<InferReply> Infer(const InferCall& call) = 0;
  // Loads (or reloads) a model; `config` overrides its config.yaml (YAML or JSON).
  virtual Status LoadModel(const std::string& model, const std::optional<std::string>& config = std::nullopt) = 0;
  virtual Status UnloadModel(const std::string& model) = 0;
};

// The HTTP client options for `options`' host, port, timeout and TLS.
HttpClient::Options HttpOptionsFor(const ClientOptions& options);

// Connects; an unreachable server is kUnavailable with the address in the message.
StatusOr<std::unique_ptr<InferenceClient>> ConnectInferenceClient(const ClientOptions& options);

// The Status a server error maps back to.
StatusCode StatusCodeForHttp(unsigned http_status);

namespace internal {
StatusOr<std::unique_ptr<InferenceClient>> ConnectGrpcClient(const ClientOptions& options);
}  // namespace internal

}  // namespace vigil
