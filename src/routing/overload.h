// The degradation ladder of one endpoint (`overload:`, docs/overload.md).
//
// Per request, ChooseRung picks the first rung whose predicted wait meets
// the request's own deadline: (0) the variant's model, or its whole
// ensemble; (1) an ensemble's members that can answer in time (at least
// min_members); (2) the fallback model; (3) shed. A request is never sent
// where it cannot finish in time.
//
// Endpoint-wide, OverloadLadder keeps the rung operators see, with
// hysteresis: it rises at once to the highest rung a request needed, and
// steps back down only once no request has needed that rung for
// `recover_after_s` (then to the highest rung still needed within it), so
// it does not flap. Lock-free on the request path. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <optional>

#include "core/clock.h"
#include "routing/deployment_spec.h"

namespace vigil {

constexpr int kRungs = 4;
enum Rung : int { kRungFull = 0, kRungMembersDropped = 1, kRungFallback = 2, kRungShed = 3 };
std::string_view RungName(int rung);  // "full", "members_dropped", "fallback", "shed"

// What a model version would take to answer a request enqueued now.
struct PredictedWait {
  Micros all{0};     // every member (a model: itself)
  Micros enough{0};  // an ensemble: its min_members fastest members; a model: itself
};

// The rung for a request with `budget` until its deadline, given the
// predicted waits of its variant and of the fallback (nullopt: none, or not
// loaded). A variant that is not loaded is answered by the fallback when it
// can; without one the request goes on to fail with the reason.
int ChooseRung(Micros budget, const std::optional<PredictedWait>& primary,
               const std::optional<PredictedWait>& fallback);

class OverloadLadder {
 public:
  // At rung 0 since `now`.
  OverloadLadder(const OverloadPolicy& policy, SteadyTime now);

  struct Change {
    int from = 0, to = 0;
  };
  // A request answered (or shed) at `rung`: counted, and the endpoint's rung
  // raised when it is above it. Returns the change, if this made one.
  std::optional<Change> Record(int rung, SteadyTime now);
  // Steps down when calm long enough. Returns the change, if any.
  std::optional<Change> Settle(SteadyTime now);

  int rung() const { return rung_.load(std::memory_order_relaxed); }
  // When the endpoint's rung last changed (the time it has been at it).
  SteadyTime since() const { return SteadyTime(SteadyTime::duration(since_ns_.load(std::memory_order_relaxed))); }
  uint64_t requests(int rung) const { return counts_[static_cast<size_t>(rung)].load(std::memory_order_relaxed); }
  const OverloadPolicy& policy() const { return policy_; }

 private:
  const OverloadPolicy policy_;
  const SteadyTime::duration recover_;
  std::atomic<int> rung_{0};
  std::atomic<int64_t> since_ns_{0};
  // Per rung, when a request last needed it (steady ns; 0 = never).
  std::array<std::atomic<int64_t>, kRungs> last_needed_ns_{};
  std::array<std::atomic<uint64_t>, kRungs> counts_{};
};

}  // namespace vigil
