// The repository and the routing table as the parts below them see them.
//
// ServingWorld: what the monitor loop watches, read from the repository
// (the versions loaded now) and the routing table (the endpoints served
// now). Glue only: the loop's logic is in monitoring/monitor_loop.
//
// RepositoryCatalog: what deployment specs are validated against. A version
// a spec names that version_policy does not select is loaded on demand and
// kept while a spec names it (ModelRepository::KeepLoaded / KeepOnly).
#pragma once

#include "monitoring/monitor_loop.h"
#include "repository/model_repository.h"
#include "routing/deployments.h"

namespace vigil {

class ServingWorld final : public MonitoredWorld {
 public:
  // `clock`: the one the endpoints' ladders are told time by (EndpointCalls').
  ServingWorld(const ModelRepository& repository, const Deployments& deployments,
               const Clock* clock = SystemClock::Get())
      : repository_(repository), deployments_(deployments), clock_(clock) {}

  std::vector<WatchedVersion> Versions() const override;
  std::vector<WatchedEndpoint> Endpoints() const override;

 private:
  const ModelRepository& repository_;
  const Deployments& deployments_;
  const Clock* clock_;
};

ModelCatalog RepositoryCatalog(ModelRepository& repository);

}  // namespace vigil
