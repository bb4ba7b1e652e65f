// GrpcServer: the Open Inference Protocol over gRPC
// (inference.GRPCInferenceService), a thin frontend over the same
// InferenceService and ModelRepository as HTTP. Generated protobuf and gRPC
// headers stay in grpc_server.cc. Thread-safe; lifecycle: Create (binds and
// starts) → Shutdown.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"

namespace vigil {

class AccessPolicy;
class ControlWorkers;
class InferenceService;
class ModelRepository;
struct ServerState;

class GrpcServer {
 public:
  struct Options {
    std::string host = "0.0.0.0";
    int port = 8001;  // 0 picks a free port
    // Larger messages are refused (RESOURCE_EXHAUSTED) before they are read whole.
    size_t max_message_bytes = 64 << 20;
    // TLS when a certificate and key are given (PEM files); a client CA
    // makes it mutual: clients must present a certificate it signed.
    std::string tls_cert, tls_key, tls_client_ca;
  };

  // RepositoryModelLoad/Unload are control calls: authorised by `access`
  // (the "authorization" metadata, or a loopback peer) and run on
  // `control`'s threads.
  static StatusOr<std::unique_ptr<GrpcServer>> Create(Options options, InferenceService& service,
                                                      ModelRepository& repository, ServerState& state,
                                                      const AccessPolicy& access, ControlWorkers& control);
  ~GrpcServer();

  int port() const;
  // Stops accepting calls; waits up to `timeout_s` for running calls.
  void Shutdown(double timeout_s);

  struct Impl;

 private:
  explicit GrpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil
