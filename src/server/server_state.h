// Server-wide flags the health routes of both frontends report.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "core/status.h"
#include "repository/model_repository.h"
#include "store/store.h"

namespace vigil {

struct ServerState {
  std::atomic<bool> ready{false};
  // Models that must be READY for the server to be ready.
  std::vector<std::string> required_models;
  // Who leads among replicas (set once at start; null before).
  const Leadership* leadership = nullptr;
  std::string replica;  // this replica's name among replicas (set once at start); empty on one machine

  // OK when the server is ready; otherwise says why not. Both frontends ask this.
  Status CheckReady(const ModelRepository& repository) const;
};

}  // namespace vigil
