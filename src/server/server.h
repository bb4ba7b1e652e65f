// Server: wires the parts of `vigil serve` together and owns their
// lifecycle: load the repository, listen, poll for changes, and on SIGTERM or
// SIGINT shut down in order (readiness off → stop accepting → drain
// in-flight requests, bounded by the shutdown timeout → stop schedulers).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace vigil {

struct ServerOptions {
  std::string model_repository;
  std::string host = "0.0.0.0";
  uint16_t http_port = 8000;
  int grpc_port = -1;  // -1 = no gRPC; 0 picks a free port
  int http_threads = 0;  // 0 = one per core
  size_t max_body_bytes = 64 << 20;
  double poll_interval_s = 0;  // 0 = load once at start
  double shutdown_timeout_s = 30;
  std::vector<std::string> required_models;
};

// Runs until SIGTERM/SIGINT; returns OK after an orderly shutdown. Blocks
// those signals in every thread it starts.
Status RunServer(const ServerOptions& options);

}  // namespace vigil
