#include "scheduling/batch_queue.h"

#include <algorithm>

namespace vigil {

bool SameRowShapes(const InferenceRequest& a, const InferenceRequest& b) {
  if (a.inputs.size() != b.inputs.size()) return false;
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    const Shape& x = a.inputs[i].shape;
    const Shape& y = b.inputs[i].shape;
    if (x.size() != y.size()) return false;
    if (!std::equal(x.begin() + (x.empty() ? 0 : 1), x.end(), y.begin() + (y.empty() ? 0 : 1))) return false;
  }
  return true;
}

Status BatchQueue::Enqueue(std::unique_ptr<InferenceRequest>& request) {
  if (size_ >= options_.max_queue_size) {
    return Overloaded("queue full: " + std::to_string(size_) + " requests waiting (max_queue_size " +
                      std::to_string(options_.max_queue_size) + "); retry later");
  }
  rows_[request->level()] += request->rows;
  levels_[request->level()].push_back(std::move(request));
  ++size_;
  return Status::Ok();
}

void BatchQueue::Uncount(const InferenceRequest& r) {
  auto it = rows_.find(r.level());
  if (it == rows_.end()) return;
  it->second -= r.rows;
  if (it->second <= 0) rows_.erase(it);
}

std::vector<std::unique_ptr<InferenceRequest>> BatchQueue::TakeAll() {
  std::vector<std::unique_ptr<InferenceRequest>> out;
  for (auto& [level, q] : levels_) {
    for (auto& r : q) out.push_back(std::move(r));
  }
  levels_.clear();
  rows_.clear();
  size_ = 0;
  return out;
}

BatchQueue::Decision BatchQueue::Poll(SteadyTime now, bool flush) {
  Decision d;
  // Expire first: a request past its deadline, or cancelled by its client,
  // is never executed.
  for (auto& [level, q] : levels_) {
    for (auto it = q.begin(); it != q.end();) {
      if ((*it)->deadline <= now || (*it)->is_cancelled()) {
        Uncount(**it);
        d.expired.push_back(std::move(*it));
        it = q.erase(it);
        --size_;
      } else {
        ++it;
      }
    }
  }
  std::erase_if(levels_, [](const auto& kv) { return kv.second.empty(); });
  if (size_ == 0) return d;

  // Walk in priority then arrival order, collecting the prefix that fits.
  const bool batching = options_.max_batch_size > 0;
  const int64_t largest_preferred = options_.preferred_batch_sizes.empty() ? 0 : options_.preferred_batch_sizes.back();
  const InferenceRequest* first = levels_.begin()->second.front().get();
  size_t take = 0;
  int64_t rows = 0;
  size_t take_within_preferred = 0;
  bool full = false;
  SteadyTime oldest = SteadyTime::max();
  SteadyTime earliest_deadline = SteadyTime::max();
  for (auto& [level, q] : levels_) {
    for (auto& r : q) {
      earliest_deadline = std::min(earliest_deadline, r->deadline);
      if (full) continue;
      const bool fits =
          !batching ? take == 0 : (rows + r->rows <= options_.max_batch_size && SameRowShapes(*first, *r));
      if (!fits) {
        full = true;
        continue;
      }
      ++take;
      rows += r->rows;
      oldest = std::min(oldest, r->enqueue_time);
      if (largest_preferred > 0 && rows <= largest_preferred) take_within_preferred = take;
      if (!batching || rows >= options_.max_batch_size) full = true;
    }
  }

  bool dispatch = full;
  if (!dispatch && largest_preferred > 0 && rows >= largest_preferred) {
    dispatch = true;
    if (take_within_preferred > 0) take = take_within_preferred;
  }
  if (!dispatch && (flush || now >= oldest + options_.max_queue_delay)) dispatch = true;

  if (dispatch) {
    d.batch.reserve(take);
    for (auto it = levels_.begin(); it != levels_.end() && d.batch.size() < take;) {
      auto& q = it->second;
      while (!q.empty() && d.batch.size() < take) {
        Uncount(*q.front());
        d.batch.push_back(std::move(q.front()));
        q.pop_front();
        --size_;
      }
      it = q.empty() ? levels_.erase(it) : std::next(it);
    }
    return d;
  }
  d.wake_at = std::min(oldest + options_.max_queue_delay, earliest_deadline);
  return d;
}

}  // namespace vigil
