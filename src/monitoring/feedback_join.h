// FeedbackJoin: each endpoint's served predictions joined with their
// feedback (labels, rewards), kept up to date incrementally, and the quality
// of each variant computed from them.
//
// The first question about an endpoint (or one whose spec changed, so its
// `since` moved) reads its joined predictions once; after that each call
// reads only what changed in the store since the previous call
// (Store::JoinedSince: new or updated feedback, and predictions logged after
// their feedback), so a feedback post costs what it adds, not what the
// endpoint has gathered. Quality is recomputed, in memory, only for
// endpoints that changed.
//
// Thread-safe: calls are serialised (they run on control threads, never on
// a serving one).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/thread_annotations.h"
#include "monitoring/quality.h"
#include "store/store.h"

namespace vigil {

class FeedbackJoin {
 public:
  explicit FeedbackJoin(Store& store) : store_(store) {}

  // Per variant, the quality of `endpoint`'s served predictions logged at or
  // after `since_ms` that have feedback, as the store holds them now.
  using VariantQuality = std::map<std::string, Quality>;
  StatusOr<VariantQuality> QualityOf(const std::string& endpoint, int64_t since_ms);

  // Endpoints no longer served are forgotten (their memory is freed).
  void Retain(const std::map<std::string, int64_t>& endpoints_since);

 private:
  struct Row {
    std::string variant;
    Outcome outcome;
  };
  struct Endpoint {
    int64_t since_ms = 0;
    std::unordered_map<int64_t, Row> rows;  // by prediction row
    bool dirty = true;
    VariantQuality quality;  // valid when !dirty
  };
  // Applies what changed in the store since the last call.
  Status CatchUp() REQUIRES(mu_);
  static void Put(Endpoint& e, const JoinedPrediction& j);

  Store& store_;
  Mutex mu_;
  bool started_ GUARDED_BY(mu_) = false;
  JoinCursor cursor_ GUARDED_BY(mu_);
  std::map<std::string, Endpoint, std::less<>> endpoints_ GUARDED_BY(mu_);
};

// A joined prediction as quality computations take it.
Outcome OutcomeOf(const JoinedPrediction& j);

}  // namespace vigil
