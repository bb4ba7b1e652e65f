#include "store/store.h"

#include <algorithm>
#include <deque>
#include <map>

#include "core/hash.h"
#include "core/thread_annotations.h"
#include "core/uuid.h"

namespace vigil {

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
      if (w.end_ms >= from_ms && w.end_ms <= to_ms) out.push_back(w);
    }
    const auto keep = static_cast<size_t>(std::max(limit, 0));
    if (out.size() > keep) out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(keep));
    return out;
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

}  // namespace

std::unique_ptr<DriftStore> MemoryDriftStore(size_t per_model) {
  return std::make_unique<InMemoryDriftStore>(per_model);
}

}  // namespace vigil
