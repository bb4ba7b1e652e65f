#include "routing/overload.h"

namespace vigil {

std::string_view RungName(int rung) {
  switch (rung) {
    case kRungFull:
      return "full";
    case kRungMembersDropped:
      return "members_dropped";
    case kRungFallback:
      return "fallback";
    default:
      return "shed";
  }
}

int ChooseRung(Micros budget, const std::optional<PredictedWait>& primary,
               const std::optional<PredictedWait>& fallback) {
  if (primary && primary->all <= budget) return kRungFull;
  if (primary && primary->enough <= budget) return kRungMembersDropped;
  if (fallback && fallback->all <= budget) return kRungFallback;
  // A variant that is not loaded, and no fallback in time: the request goes
  // on and fails with why (that is not overload).
  if (!primary) return kRungFull;
  return kRungShed;
}

OverloadLadder::OverloadLadder(const OverloadPolicy& policy, SteadyTime now)
    : policy_(policy),
      recover_(std::chrono::duration_cast<SteadyTime::duration>(std::chrono::duration<double>(policy.recover_after_s))),
      since_ns_(now.time_since_epoch().count()) {}

std::optional<OverloadLadder::Change> OverloadLadder::Record(int rung, SteadyTime now) {
  if (rung < 0 || rung >= kRungs) return std::nullopt;
  counts_[static_cast<size_t>(rung)].fetch_add(1, std::memory_order_relaxed);
  if (rung == kRungFull) return Settle(now);
  last_needed_ns_[static_cast<size_t>(rung)].store(now.time_since_epoch().count(), std::memory_order_relaxed);
  int current = rung_.load(std::memory_order_relaxed);
  while (current < rung) {
    if (rung_.compare_exchange_weak(current, rung)) {
      since_ns_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
      return Change{current, rung};
    }
  }
  return std::nullopt;
}

std::optional<OverloadLadder::Change> OverloadLadder::Settle(SteadyTime now) {
  int current = rung_.load(std::memory_order_relaxed);
  if (current == kRungFull) return std::nullopt;
  const int64_t now_ns = now.time_since_epoch().count();
  // Stays while its own rung was needed within recover_after_s.
  if (now_ns - last_needed_ns_[static_cast<size_t>(current)].load(std::memory_order_relaxed) < recover_.count())
    return std::nullopt;
  int target = kRungFull;
  for (int r = current - 1; r > kRungFull; --r) {
    const int64_t last = last_needed_ns_[static_cast<size_t>(r)].load(std::memory_order_relaxed);
    if (last != 0 && now_ns - last < recover_.count()) {
      target = r;
      break;
    }
  }
  if (!rung_.compare_exchange_strong(current, target)) return std::nullopt;  // another thread moved it
  since_ns_.store(now_ns, std::memory_order_relaxed);
  return Change{current, target};
}

}  // namespace vigil
