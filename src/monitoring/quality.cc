#include "monitoring/quality.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>

namespace vigil {

std::vector<std::pair<const char*, std::optional<double>>> QualityMetrics(const Quality& q) {
  return {{"accuracy", q.accuracy},
          {"log_loss", q.log_loss},
          {"auc", q.auc},
          {"precision", q.precision},
          {"recall", q.recall},
          {"f1", q.f1},
          {"brier", q.brier},
          {"mae", q.mae},
          {"rmse", q.rmse},
          {"mean_reward", q.mean_reward},
          {"label_delay_p50_s", q.label_delay_p50_s},
          {"label_delay_p90_s", q.label_delay_p90_s}};
}

std::optional<double> QualityMetric(const Quality& q, const std::string& name) {
  for (const auto& [metric, value] : QualityMetrics(q)) {
    if (name == metric) return value;
  }
  return std::nullopt;
}

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
  std::vector<double> scores, delays;
  std::vector<int> binary_labels;
  bool binary = true;
  size_t tp = 0, fp = 0, fn = 0;
  double brier = 0;
  for (const auto& o : outcomes) {
    if (!o.label && !o.reward) continue;
    ++q.joined;
    if (o.delay_ms) delays.push_back(static_cast<double>(*o.delay_ms) / 1000);
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
        const bool predicted = best == 1, actual = cls == 1;
        tp += predicted && actual;
        fp += predicted && !actual;
        fn += !predicted && actual;
        brier += (o.outputs[1] - (actual ? 1.0 : 0.0)) * (o.outputs[1] - (actual ? 1.0 : 0.0));
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
    if (binary) {
      q.auc = RocAuc(scores, binary_labels);
      if (tp + fp > 0) q.precision = static_cast<double>(tp) / static_cast<double>(tp + fp);
      if (tp + fn > 0) q.recall = static_cast<double>(tp) / static_cast<double>(tp + fn);
      if (q.precision && q.recall) {
        const double sum = *q.precision + *q.recall;
        q.f1 = sum > 0 ? 2 * *q.precision * *q.recall / sum : 0.0;
      }
      q.brier = brier / static_cast<double>(classified);
    }
  }
  if (!delays.empty()) {
    std::sort(delays.begin(), delays.end());
    auto at = [&](double f) { return delays[static_cast<size_t>(f * static_cast<double>(delays.size() - 1))]; };
    q.label_delay_p50_s = at(0.5);
    q.label_delay_p90_s = at(0.9);
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

std::optional<double> ExpectedCorrect(const std::vector<double>& outputs) {
  if (outputs.size() < 2) return std::nullopt;
  double sum = 0, top = 0;
  for (double p : outputs) {
    if (!(p >= 0 && p <= 1)) return std::nullopt;  // NaN too
    sum += p;
    top = std::max(top, p);
  }
  if (std::abs(sum - 1) > 0.01) return std::nullopt;
  return top / sum;
}

double QualityRule::Limit(std::optional<double> reference) const {
  double limit = below;
  if (!std::isnan(drop) && reference && !std::isnan(*reference)) {
    limit = std::isnan(limit) ? *reference - drop : std::max(limit, *reference - drop);
  }
  return limit;
}

std::pair<std::string, std::string> CheckQualityRule(const QualityRule& rule) {
  static const char* kMetrics[] = {"accuracy", "auc", "precision", "recall", "f1", "mean_reward"};
  if (std::find(std::begin(kMetrics), std::end(kMetrics), rule.metric) == std::end(kMetrics)) {
    return {"metric", "accuracy, auc, precision, recall, f1 or mean_reward, got '" + rule.metric + "'"};
  }
  if (!rule.active())
    return {"",
            "below (the value under which the metric alerts) or drop (how far under its "
            "reference.csv value)"};
  if (!std::isnan(rule.drop) && !(rule.drop >= 0)) return {"drop", "a non-negative number"};
  if (rule.window_s < 1 || rule.window_s > kMaxQualityWindowS) {
    return {"window_s", "a number of seconds from 1 to " + std::to_string(kMaxQualityWindowS) + " (a year), got " +
                            std::to_string(rule.window_s)};
  }
  if (rule.min_labels < 1 || rule.min_labels > kMaxRuleCount) {
    return {"min_labels",
            "an integer from 1 to " + std::to_string(kMaxRuleCount) + ", got " + std::to_string(rule.min_labels)};
  }
  return {};
}

}  // namespace vigil
