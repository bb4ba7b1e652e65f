#include "store/store.h"

#include <algorithm>
#include <deque>
#include <map>

#include "core/hash.h"
#include "core/thread_annotations.h"
#include "core/uuid.h"

namespace vigil {

namespace {

class Sole final : public Leadership {
 public:
  bool IsLeader() const override { return true; }
  int64_t Epoch() const override { return 1; }
};

}  // namespace

std::unique_ptr<Leadership> SoleLeadership() { return std::make_unique<Sole>(); }

int64_t PredictionIdKey(std::string_view id) {
  if (auto prefix = UuidV7Prefix(id)) return static_cast<int64_t>(*prefix);
  const uint64_t h = (static_cast<uint64_t>(Murmur3_32(id, 0x5bd1e995u)) << 32) | Murmur3_32(id, 0x9747b28cu);
  return static_cast<int64_t>(h);
}

namespace {

class InMemoryDriftStore final : public DriftStore {
 public:
  explicit InMemoryDriftStore(size_t per_model) : per_model_(per_model) {}

  Status WriteDriftWindow(const StoredDriftWindow& window) override {
    MutexLock lock(mu_);
    auto& kept = windows_[window.model];
    kept.push_back(window);
    if (kept.size() > per_model_) kept.pop_front();
    return Status::Ok();
  }
  StatusOr<std::vector<StoredDriftWindow>> DriftWindows(const std::string& model, int64_t from_ms, int64_t to_ms,
                                                        int limit) override {
    MutexLock lock(mu_);
    std::vector<StoredDriftWindow> out;
    auto it = windows_.find(model);
    if (it == windows_.end()) return out;
    for (const auto& w : it->second) {
      if (w.replica.empty() && w.end_ms >= from_ms && w.end_ms <= to_ms) out.push_back(w);
    }
    const auto keep = static_cast<size_t>(std::max(limit, 0));
    if (out.size() > keep) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(keep));
    return out;
  }
  StatusOr<std::vector<StoredDriftWindow>> ReplicaDriftWindows(const std::string& model, int64_t version,
                                                               int64_t after_ms, int64_t to_ms, int limit) override {
    MutexLock lock(mu_);
    std::vector<StoredDriftWindow> out;
    auto it = windows_.find(model);
    if (it == windows_.end()) return out;
    for (const auto& w : it->second) {
      if (std::ssize(out) >= limit) break;
      if (!w.replica.empty() && w.version == version && w.end_ms > after_ms && w.end_ms <= to_ms) out.push_back(w);
    }
    return out;
  }
  StatusOr<int64_t> LastDriftWindowEnd(const std::string& model, int64_t version) override {
    MutexLock lock(mu_);
    int64_t last = 0;
    auto it = windows_.find(model);
    if (it == windows_.end()) return last;
    for (const auto& w : it->second) {
      if (w.replica.empty() && w.version == version) last = std::max(last, w.end_ms);
    }
    return last;
  }
  StatusOr<int64_t> PruneDriftWindows(int64_t before_ms) override {
    MutexLock lock(mu_);
    int64_t pruned = 0;
    for (auto& [model, kept] : windows_) {
      while (!kept.empty() && kept.front().end_ms < before_ms) {
        kept.pop_front();
        ++pruned;
      }
    }
    return pruned;
  }

 private:
  const size_t per_model_;
  Mutex mu_;
  std::map<std::string, std::deque<StoredDriftWindow>> windows_ GUARDED_BY(mu_);
};

class InMemoryAlertStore final : public AlertStore {
 public:
  explicit InMemoryAlertStore(size_t keep) : keep_(keep) {}

  Status AppendAlertEvent(const AlertEvent& event) override {
    MutexLock lock(mu_);
    events_.push_front(event);
    events_.front().id = ++last_id_;
    if (events_.size() > keep_) events_.pop_back();
    return Status::Ok();
  }
  StatusOr<std::vector<AlertEvent>> AlertEvents(int limit) override {
    MutexLock lock(mu_);
    const size_t n = std::min(events_.size(), static_cast<size_t>(std::max(limit, 0)));
    return std::vector<AlertEvent>(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(n));
  }

 private:
  const size_t keep_;
  Mutex mu_;
  std::deque<AlertEvent> events_ GUARDED_BY(mu_);  // newest first
  int64_t last_id_ GUARDED_BY(mu_) = 0;
};

class InMemoryRolloutStore final : public RolloutStore {
 public:
  explicit InMemoryRolloutStore(size_t keep) : keep_(keep) {}

  Status SaveRollout(const StoredRollout& rollout) override {
    MutexLock lock(mu_);
    rollouts_[rollout.endpoint] = rollout;
    return Status::Ok();
  }
  Status SaveRolloutIf(const StoredRollout& rollout, const std::string& expected_state) override {
    MutexLock lock(mu_);
    auto it = rollouts_.find(rollout.endpoint);
    if ((it == rollouts_.end() ? std::string() : it->second.state) != expected_state) {
      return Aborted("the rollout state of '" + rollout.endpoint + "' was changed meanwhile");
    }
    rollouts_[rollout.endpoint] = rollout;
    return Status::Ok();
  }
  Status DeleteRollout(const std::string& endpoint) override {
    MutexLock lock(mu_);
    rollouts_.erase(endpoint);
    return Status::Ok();
  }
  StatusOr<std::vector<StoredRollout>> LoadRollouts() override {
    MutexLock lock(mu_);
    std::vector<StoredRollout> out;
    for (const auto& [_, r] : rollouts_) out.push_back(r);
    return out;
  }
  Status AppendRolloutAnalysis(const StoredRolloutAnalysis& analysis) override {
    MutexLock lock(mu_);
    auto& list = analyses_[analysis.endpoint];
    list.push_front(analysis);
    list.front().id = ++last_id_;
    if (list.size() > keep_) list.pop_back();
    return Status::Ok();
  }
  StatusOr<std::vector<StoredRolloutAnalysis>> RolloutAnalyses(const std::string& endpoint, int limit) override {
    MutexLock lock(mu_);
    auto it = analyses_.find(endpoint);
    if (it == analyses_.end()) return std::vector<StoredRolloutAnalysis>{};
    const size_t n = std::min(it->second.size(), static_cast<size_t>(std::max(limit, 0)));
    return std::vector<StoredRolloutAnalysis>(it->second.begin(), it->second.begin() + static_cast<std::ptrdiff_t>(n));
  }
  Status AppendBenchmark(const StoredBenchmark& benchmark) override {
    MutexLock lock(mu_);
    auto& list = benchmarks_[benchmark.endpoint];
    list.push_front(benchmark);
    list.front().id = ++last_benchmark_id_;
    if (list.size() > static_cast<size_t>(kMaxBenchmarks)) list.pop_back();
    return Status::Ok();
  }
  StatusOr<std::vector<StoredBenchmark>> Benchmarks(const std::string& endpoint, int limit) override {
    MutexLock lock(mu_);
    auto it = benchmarks_.find(endpoint);
    if (it == benchmarks_.end()) return std::vector<StoredBenchmark>{};
    const size_t n = std::min(it->second.size(), static_cast<size_t>(std::max(limit, 0)));
    return std::vector<StoredBenchmark>(it->second.begin(), it->second.begin() + static_cast<std::ptrdiff_t>(n));
  }

 private:
  const size_t keep_;
  Mutex mu_;
  std::map<std::string, StoredRollout> rollouts_ GUARDED_BY(mu_);
  std::map<std::string, std::deque<StoredRolloutAnalysis>> analyses_ GUARDED_BY(mu_);  // newest first
  std::map<std::string, std::deque<StoredBenchmark>> benchmarks_ GUARDED_BY(mu_);      // newest first
  int64_t last_id_ GUARDED_BY(mu_) = 0;
  int64_t last_benchmark_id_ GUARDED_BY(mu_) = 0;
};

}  // namespace

std::unique_ptr<RolloutStore> MemoryRolloutStore(size_t keep) { return std::make_unique<InMemoryRolloutStore>(keep); }

std::unique_ptr<AlertStore> MemoryAlertStore(size_t keep) { return std::make_unique<InMemoryAlertStore>(keep); }

std::unique_ptr<DriftStore> MemoryDriftStore(size_t per_model) {
  return std::make_unique<InMemoryDriftStore>(per_model);
}

}  // namespace vigil
