#include "routing/serving_world.h"

#include <chrono>

namespace vigil {

std::vector<WatchedVersion> ServingWorld::Versions() const {
  std::vector<WatchedVersion> out;
  auto versions = repository_.AcquireAll("", 0);
  if (!versions.ok()) return out;
  for (const auto& mv : *versions) {
    const ModelConfig& c = mv->config();
    out.push_back({.hold = mv,
                   .model = c.name,
                   .version = mv->version(),
                   .monitor = mv->monitor(),
                   .monitoring = &c.monitoring,
                   .max_queue_size = c.dynamic_batching.max_queue_size,
                   .queue_depth = static_cast<int64_t>(mv->QueueDepth())});
  }
  return out;
}

std::vector<WatchedEndpoint> ServingWorld::Endpoints() const {
  std::vector<WatchedEndpoint> out;
  for (const auto& router : deployments_.All()) {
    const DeploymentSpec& spec = router->spec();
    WatchedEndpoint e;
    e.endpoint = spec.endpoint;
    e.generation = router;
    e.since_ms = std::chrono::duration_cast<std::chrono::milliseconds>(router->since().time_since_epoch()).count();
    e.health = spec.health;
    e.quality = spec.quality;
    e.alert_after = spec.alert_after;
    e.resolve_after = spec.resolve_after;
    if (OverloadLadder* ladder = router->ladder()) {
      const SteadyTime now = clock_->Now();
      ladder->Settle(now);  // steps down on time even without traffic
      const auto at_rung = std::chrono::duration_cast<std::chrono::milliseconds>(now - ladder->since()).count();
      e.overload =
          WatchedEndpoint::Overload{ladder->rung(), std::string(RungName(ladder->rung())), UnixMillis() - at_rung};
    }
    for (int i = -1; i < static_cast<int>(spec.candidates.size()); ++i) {
      const Variant& v = i < 0 ? spec.production : spec.candidates[static_cast<size_t>(i)];
      const VariantStats& stats = router->Stats(i);
      WatchedEndpoint::Arm arm;
      arm.name = v.name;
      arm.model = v.model;
      arm.version = v.version;
      if (arm.version == 0) {  // "latest": the version it reaches now
        if (auto mv = repository_.Acquire(v.model, 0); mv.ok()) arm.version = (*mv)->version();
      }
      arm.shadow = v.mode == VariantMode::kShadow;
      arm.requests = stats.Served();
      arm.errors = stats.errors.load(std::memory_order_relaxed);
      if (spec.health) arm.latency = stats.latency.Take();
      e.arms.push_back(std::move(arm));
    }
    out.push_back(std::move(e));
  }
  return out;
}

ModelCatalog RepositoryCatalog(ModelRepository& repository) {
  ModelCatalog c;
  c.check = [&repository](const std::string& model, int64_t version) -> Status {
    auto info = repository.Find(model, version);
    if (!info.ok() && version != 0) {
      // A version on disk that version_policy does not select: loaded now,
      // and kept while a spec names it.
      repository.KeepLoaded(model, version);
      info = repository.Find(model, version);
    }
    return info.ok() ? Status::Ok() : info.status();
  };
  c.in_use = [&repository](const ModelRepository::NamedVersions& named) { repository.KeepOnly(named); };
  c.is_model = [&repository](const std::string& name) {
    for (const auto& row : repository.Index()) {
      if (row.model == name) return true;
    }
    return false;
  };
  return c;
}

}  // namespace vigil
