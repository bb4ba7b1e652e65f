#include "monitoring/feedback_join.h"

namespace vigil {

Outcome OutcomeOf(const JoinedPrediction& j) {
  return {ParseCompactValues(j.outputs), j.label, j.reward, j.feedback_time_ms - j.time_ms};
}

StatusOr<std::vector<std::string>> FeedbackJoin::Record(const std::vector<FeedbackRecord>& records) {
  if (records.empty()) return std::vector<std::string>{};
  VIGIL_RETURN_IF_ERROR(store_.WriteFeedback(records));
  if (log_) log_->Flush();  // predictions still in the log's queue count as known
  std::vector<std::string> ids;
  ids.reserve(records.size());
  for (const auto& r : records) ids.push_back(r.prediction_id);
  return store_.KnownPredictions(ids);
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
  return QualityLocked(endpoint, since_ms);
}

StatusOr<std::map<std::string, FeedbackJoin::VariantQuality>> FeedbackJoin::QualityOfAll(
    const std::map<std::string, int64_t>& endpoints_since) {
  MutexLock lock(mu_);
  VIGIL_RETURN_IF_ERROR(CatchUp());  // once for all of them
  std::erase_if(endpoints_, [&](const auto& kv) {
    auto it = endpoints_since.find(kv.first);
    return it == endpoints_since.end() || it->second != kv.second.since_ms;
  });
  std::map<std::string, VariantQuality> out;
  for (const auto& [endpoint, since_ms] : endpoints_since) {
    VIGIL_ASSIGN_OR_RETURN(out[endpoint], QualityLocked(endpoint, since_ms));
  }
  return out;
}

StatusOr<FeedbackJoin::VariantQuality> FeedbackJoin::QualityLocked(const std::string& endpoint, int64_t since_ms) {
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

StatusOr<QualityWindows> FeedbackJoin::Windows(const std::string& endpoint, int64_t from_ms, int64_t to_ms,
                                               int64_t width_ms, int64_t now_ms, bool scan_predictions) {
  if (width_ms <= 0) return InvalidArgument("quality windows need a positive width");
  if (to_ms < from_ms) return QualityWindows{};
  std::map<int64_t, std::map<std::string, WindowQuality>> cells;  // window start -> variant
  std::map<int64_t, std::map<std::string, std::vector<Outcome>>> outcomes;
  auto window_of = [&](int64_t t) { return from_ms + (t - from_ms) / width_ms * width_ms; };
  QualityWindows out;
  if (scan_predictions) {
    // Every served prediction: counted, and its expected correctness summed
    // (confidence-based estimation) whether or not its label has come.
    VIGIL_ASSIGN_OR_RETURN(
        out.predictions_scanned,
        store_.ScanPredictions(endpoint, from_ms, to_ms + 1, kMaxScannedPredictions,
                               [&](const std::string& variant, int64_t time_ms, const std::string& outputs) {
                                 WindowQuality& c = cells[window_of(time_ms)][variant];
                                 ++c.predictions;
                                 if (auto e = ExpectedCorrect(ParseCompactValues(outputs))) {
                                   c.expected_correct += *e;
                                   ++c.estimated;
                                 }
                               }));
    out.scan_truncated = out.predictions_scanned >= kMaxScannedPredictions;
  }
  VIGIL_ASSIGN_OR_RETURN(std::vector<JoinedPrediction> joined, store_.Joined(endpoint, from_ms));
  std::vector<Outcome> all;
  for (const auto& j : joined) {
    if (j.time_ms > to_ms) continue;
    Outcome o = OutcomeOf(j);
    all.push_back(o);
    cells[window_of(j.time_ms)][j.variant];  // the window exists even when the scan was not asked for
    outcomes[window_of(j.time_ms)][j.variant].push_back(std::move(o));
  }
  out.label_delay_p90_s = ComputeQuality(all).label_delay_p90_s;
  const double horizon_ms = out.label_delay_p90_s.value_or(0) * 1000;
  for (auto& [start, variants] : cells) {
    QualityWindows::Window w;
    w.start_ms = start;
    w.end_ms = start + width_ms;
    size_t labeled = 0;
    for (auto& [variant, cell] : variants) {
      cell.quality = ComputeQuality(outcomes[start][variant]);
      labeled += cell.quality.labeled;
    }
    w.incomplete = labeled == 0 || static_cast<double>(now_ms - w.end_ms) < horizon_ms;
    w.variants = std::move(variants);
    out.windows.push_back(std::move(w));
  }
  return out;
}

}  // namespace vigil
