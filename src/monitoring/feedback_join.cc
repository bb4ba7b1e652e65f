#include "monitoring/feedback_join.h"

namespace vigil {

Outcome OutcomeOf(const JoinedPrediction& j) {
  return {ParseCompactValues(j.outputs), j.label, j.reward, j.feedback_time_ms - j.time_ms};
}

void FeedbackJoin::Put(Endpoint& e, const JoinedPrediction& j) {
  if (j.time_ms < e.since_ms) return;
  e.rows[j.prediction_row] = {j.variant, OutcomeOf(j)};
  e.dirty = true;
}

Status FeedbackJoin::CatchUp() {
  if (!started_) {
    VIGIL_ASSIGN_OR_RETURN(cursor_, store_.JoinCursorNow());
    started_ = true;
    return Status::Ok();
  }
  VIGIL_ASSIGN_OR_RETURN(std::vector<JoinedChange> changes, store_.JoinedSince(cursor_));
  for (const JoinedChange& c : changes) {
    auto it = endpoints_.find(c.endpoint);
    if (it != endpoints_.end()) Put(it->second, c.joined);
  }
  return Status::Ok();
}

StatusOr<FeedbackJoin::VariantQuality> FeedbackJoin::QualityOf(const std::string& endpoint, int64_t since_ms) {
  MutexLock lock(mu_);
  // Catch up first: the full read of a new endpoint below is then at least
  // as new as the cursor, and what changes after it comes next time (a
  // prediction read twice just replaces itself).
  VIGIL_RETURN_IF_ERROR(CatchUp());
  auto it = endpoints_.find(endpoint);
  if (it == endpoints_.end() || it->second.since_ms != since_ms) {
    VIGIL_ASSIGN_OR_RETURN(std::vector<JoinedPrediction> joined, store_.Joined(endpoint, since_ms));
    Endpoint fresh;
    fresh.since_ms = since_ms;
    for (const auto& j : joined) Put(fresh, j);
    it = endpoints_.insert_or_assign(endpoint, std::move(fresh)).first;
  }
  Endpoint& e = it->second;
  if (e.dirty) {
    std::map<std::string, std::vector<Outcome>> by_variant;
    for (const auto& [row, r] : e.rows) by_variant[r.variant].push_back(r.outcome);
    e.quality.clear();
    for (const auto& [variant, outcomes] : by_variant) e.quality[variant] = ComputeQuality(outcomes);
    e.dirty = false;
  }
  return e.quality;
}

void FeedbackJoin::Retain(const std::map<std::string, int64_t>& endpoints_since) {
  MutexLock lock(mu_);
  std::erase_if(endpoints_, [&](const auto& kv) {
    auto it = endpoints_since.find(kv.first);
    return it == endpoints_since.end() || it->second != kv.second.since_ms;
  });
}

}  // namespace vigil
