#include "monitoring/quality.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>

namespace vigil {

std::optional<double> RocAuc(const std::vector<double>& scores, const std::vector<int>& labels) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann–Whitney U with average ranks for ties.
  double rank_sum = 0;
  size_t positives = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k) {
      if (labels[order[k]] == 1) {
        rank_sum += avg_rank;
        ++positives;
      }
    }
    i = j;
  }
  const size_t negatives = scores.size() - positives;
  if (positives == 0 || negatives == 0) return std::nullopt;
  const double p = static_cast<double>(positives), n = static_cast<double>(negatives);
  return (rank_sum - p * (p + 1) / 2) / (p * n);
}

Quality ComputeQuality(const std::vector<Outcome>& outcomes) {
  Quality q;
  size_t correct = 0, classified = 0, regressed = 0;
  double log_loss = 0, abs_error = 0, sq_error = 0, reward = 0;
  std::vector<double> scores;
  std::vector<int> binary_labels;
  bool binary = true;
  for (const auto& o : outcomes) {
    if (!o.label && !o.reward) continue;
    ++q.joined;
    if (o.reward) {
      ++q.rewarded;
      reward += *o.reward;
    }
    if (!o.label || o.outputs.empty()) continue;
    ++q.labeled;
    const double label = *o.label;
    if (o.outputs.size() >= 2 && label >= 0 && label == std::floor(label) &&
        label < static_cast<double>(o.outputs.size())) {
      const auto cls = static_cast<size_t>(label);
      const auto best = static_cast<size_t>(std::max_element(o.outputs.begin(), o.outputs.end()) - o.outputs.begin());
      correct += best == cls;
      log_loss -= std::log(std::clamp(o.outputs[cls], 1e-15, 1.0));
      ++classified;
      if (o.outputs.size() == 2) {
        scores.push_back(o.outputs[1]);
        binary_labels.push_back(static_cast<int>(cls));
      } else {
        binary = false;
      }
    } else if (o.outputs.size() == 1) {
      const double e = o.outputs[0] - label;
      abs_error += std::abs(e);
      sq_error += e * e;
      ++regressed;
    }
  }
  if (classified > 0) {
    q.accuracy = static_cast<double>(correct) / static_cast<double>(classified);
    q.log_loss = log_loss / static_cast<double>(classified);
    if (binary) q.auc = RocAuc(scores, binary_labels);
  }
  if (regressed > 0) {
    q.mae = abs_error / static_cast<double>(regressed);
    q.rmse = std::sqrt(sq_error / static_cast<double>(regressed));
  }
  if (q.rewarded > 0) q.mean_reward = reward / static_cast<double>(q.rewarded);
  return q;
}

std::vector<double> ParseCompactValues(const std::string& text) {
  std::vector<double> out;
  const char* p = text.c_str();
  while (*p) {
    if (*p == '[' || *p == ',' || *p == ' ' || *p == ']') {
      ++p;
      continue;
    }
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    if (end == p) break;
    out.push_back(v);
    p = end;
  }
  return out;
}

}  // namespace vigil
