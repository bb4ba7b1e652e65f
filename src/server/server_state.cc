#include "server/server_state.h"

namespace vigil {

Status ServerState::CheckReady(const ModelRepository& repository) const {
  if (!ready.load()) return Unavailable("server is not ready (starting or shutting down)");
  for (const auto& m : required_models) {
    auto pinned = repository.Acquire(m, 0);
    if (!pinned.ok()) return Unavailable("required model '" + m + "' is not ready: " + pinned.status().message());
  }
  return Status::Ok();
}

}  // namespace vigil
