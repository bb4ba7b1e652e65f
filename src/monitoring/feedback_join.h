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
// Record() is where feedback comes in: stored (durable before it returns),
// then matched against the logged predictions.
//
// Windows() answers quality per window of prediction time (the monitor
// loop's quality rules and GET /v1/monitoring/{endpoint}/quality) from one
// read of the store.
//
// Thread-safe: calls are serialised (they run on control threads and the
// monitor thread, never on a serving one).
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/thread_annotations.h"
#include "monitoring/quality.h"
#include "store/prediction_log.h"
#include "store/store.h"

namespace vigil {

// One window of prediction time, per variant.
struct WindowQuality {
  int64_t predictions = 0;      // served (counted only when the scan was asked for)
  int64_t estimated = 0;        // of them, with a probability vector
  double expected_correct = 0;  // summed confidence of those: accuracy estimated before labels come
  Quality quality;              // from the ones joined with feedback
};
struct QualityWindows {
  struct Window {
    int64_t start_ms = 0, end_ms = 0;
    // Its labels may still arrive: younger than the 90th percentile label
    // delay, or no label yet.
    bool incomplete = true;
    std::map<std::string, WindowQuality> variants;
  };
  std::vector<Window> windows;              // oldest first; only windows with predictions or feedback
  std::optional<double> label_delay_p90_s;  // over every joined prediction read
  int64_t predictions_scanned = 0;
  bool scan_truncated = false;
};

class FeedbackJoin {
 public:
  // `log`: the prediction log whose queued rows count as logged (null
  // when predictions are not logged).
  explicit FeedbackJoin(FeedbackStore& store, PredictionLog* log = nullptr) : store_(store), log_(log) {}

  // The store it joins in (thread-safe on its own), for readers of the
  // prediction log beside the join (the shadow comparison).
  FeedbackStore& store() const { return store_; }

  // Stores `records`, then answers which of their prediction ids name a
  // logged prediction (rows still queued in the log included).
  StatusOr<std::vector<std::string>> Record(const std::vector<FeedbackRecord>& records);

  // Per variant, the quality of `endpoint`'s served predictions logged at or
  // after `since_ms` that have feedback, as the store holds them now.
  using VariantQuality = std::map<std::string, Quality>;
  StatusOr<VariantQuality> QualityOf(const std::string& endpoint, int64_t since_ms);

  // Quality per window of `width_ms` (aligned at `from_ms`) and per
  // variant of `endpoint`'s predictions made in [from_ms, to_ms], as of
  // `now_ms`. With `scan_predictions`, every served prediction is counted
  // too (at most kMaxScannedPredictions are read).
  static constexpr int64_t kMaxScannedPredictions = 2'000'000;  // about a second of reading
  StatusOr<QualityWindows> Windows(const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t width_ms,
                                   int64_t now_ms, bool scan_predictions);

  // QualityOf for every endpoint served now (endpoint -> since_ms), after
  // one read of what changed; endpoints not named, or whose `since` moved,
  // are forgotten first (their memory is freed).
  StatusOr<std::map<std::string, VariantQuality>> QualityOfAll(const std::map<std::string, int64_t>& endpoints_since);

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
  // An endpoint's quality as joined so far (read in full the first time).
  StatusOr<VariantQuality> QualityLocked(const std::string& endpoint, int64_t since_ms) REQUIRES(mu_);
  static void Put(Endpoint& e, const JoinedPrediction& j);

  FeedbackStore& store_;
  PredictionLog* const log_;
  Mutex mu_;
  bool started_ GUARDED_BY(mu_) = false;
  JoinCursor cursor_ GUARDED_BY(mu_);
  std::map<std::string, Endpoint, std::less<>> endpoints_ GUARDED_BY(mu_);
};

// A joined prediction as quality computations take it.
Outcome OutcomeOf(const JoinedPrediction& j);

}  // namespace vigil
