// Router: picks the variant of an endpoint that answers a request, and the
// shadows that also get a copy. Built once per spec (an immutable snapshot);
// Route is const, allocation-light and thread-safe.
//
// Order: kill switch → flags (first match wins) → traffic split → production.
// The split hashes the routing key (STATISTICS.md: murmur3 of salt:key, 10,000
// buckets) with one salt per layer. Each ab/canary candidate owns a fixed
// region of the buckets, as wide as the most it can get (its share, or its
// canary's last step), laid out in spec order; it serves the front of its
// region. Raising a share therefore only takes units from production, never
// from another candidate, and lowering it only gives units back to
// production. Shadows and flag percentages use their own salts, so the layers
// are independent. Requests without a routing key are assigned at random.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/latency_histogram.h"
#include "routing/deployment_spec.h"
#include "routing/overload.h"

namespace vigil {

// The request's attributes, looked up by name (headers lower-case).
struct RouteInput {
  std::function<std::optional<std::string>(std::string_view name)> parameter;
  std::function<std::optional<std::string>(std::string_view name)> header;
};

struct RouteDecision {
  int variant = -1;          // -1 = production, else an index into spec.candidates
  std::vector<int> shadows;  // candidate indexes that get a copy
  std::string reason;        // "kill_switch", "flag:<name>", "split", "production"
  bool keyed = false;        // a routing key was present (assignment is sticky)
  std::string key;           // the routing key, when keyed
};

// A variant's traffic while one spec is in force.
struct VariantStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};    // failed on the server's side
  std::atomic<uint64_t> rejected{0};  // refused as malformed (the client's doing; not in errors)
  LatencyHistogram latency;           // successful requests
  // A shadow's CPU budget, touched by the shadow thread alone: the compute
  // (seconds of one core) its copies may still take, refilled at max_cpu
  // per second up to kShadowBudgetWindow's worth; unset until its first copy.
  std::optional<double> shadow_credit_s;
  SteadyTime shadow_refilled{};
  double shadow_copy_s = 0;  // recent compute per copy (EWMA); 0 until one ran

  // The requests the variant was asked to answer: all but those refused as
  // malformed (what health and rollout guardrails count errors against).
  uint64_t Served() const {
    return requests.load(std::memory_order_relaxed) - rejected.load(std::memory_order_relaxed);
  }
};

class Router {
 public:
  // `previous`: the endpoint's router before this spec; its overload ladder
  // carries on when the `overload:` block did not change (a rollout step
  // during a spike does not reset the endpoint's rung).
  // `since_unix_ms`: when the spec was put in force (as the store has it,
  // so every replica agrees); 0 = now.
  explicit Router(std::shared_ptr<const DeploymentSpec> spec, const Router* previous = nullptr,
                  int64_t since_unix_ms = 0);

  // The endpoint's degradation ladder; null without `overload:`.
  OverloadLadder* ladder() const { return ladder_.get(); }

  // Traffic since this spec took effect (a change makes a new Router, so
  // the figures start again): -1 = production, else a candidate index.
  VariantStats& Stats(int variant) const { return stats_[static_cast<size_t>(variant + 1)]; }
  std::chrono::system_clock::time_point since() const { return since_; }

  RouteDecision Route(const RouteInput& in) const;
  const DeploymentSpec& spec() const { return *spec_; }
  const std::shared_ptr<const DeploymentSpec>& shared_spec() const { return spec_; }

  // Whether `rule` matches; `key` is null without a routing key.
  bool Matches(const FlagRule& rule, const std::string& flag_salt, const RouteInput& in, const std::string* key) const;

 private:
  struct Region {
    int candidate;
    uint32_t begin;  // first bucket
    uint32_t end;    // one past the last bucket served now
  };
  uint32_t Bucket(const std::string& salt, const std::string* key) const;

  std::shared_ptr<const DeploymentSpec> spec_;
  std::unique_ptr<VariantStats[]> stats_;
  std::chrono::system_clock::time_point since_;
  std::string split_salt_;
  std::vector<Region> regions_;
  struct ShadowCopy {
    int index;  // candidate
    std::string salt;
    uint32_t buckets;  // its share (a shadow's) or mirror (an ab or canary candidate's)
  };
  std::vector<ShadowCopy> shadow_salts_;
  std::vector<std::string> flag_salts_;
  std::shared_ptr<OverloadLadder> ladder_;
};

// Percent → buckets (0.01% granularity).
uint32_t ShareToBuckets(double percent);

}  // namespace vigil
