// ServingWorld: what the monitor loop watches, read from the repository
// (the versions loaded now) and the routing table (the endpoints served
// now). Glue only: the loop's logic is in monitoring/monitor_loop.
#pragma once

#include "monitoring/monitor_loop.h"
#include "repository/model_repository.h"
#include "routing/deployments.h"

namespace vigil {

class ServingWorld final : public MonitoredWorld {
 public:
  ServingWorld(const ModelRepository& repository, const Deployments& deployments)
      : repository_(repository), deployments_(deployments) {}

  std::vector<WatchedVersion> Versions() const override;
  std::vector<WatchedEndpoint> Endpoints() const override;

 private:
  const ModelRepository& repository_;
  const Deployments& deployments_;
};

}  // namespace vigil
