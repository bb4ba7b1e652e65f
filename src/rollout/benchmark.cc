#include "rollout/benchmark.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/logging.h"
#include "core/thread_name.h"
#include "monitoring/quality.h"
#include "protocol/json_writer.h"
#include "rollout/analysis.h"
#include "rollout/experiment_stats.h"
#include "rollout/shadow_comparison.h"
#include "routing/rollout_policy.h"

namespace vigil {
namespace {

constexpr double kZ95 = 1.959963985;
// Rows per replay call: a replay holds the model's instance for one batch,
// so a serving request that arrives meanwhile waits for at most this many rows.
constexpr int64_t kReplayRowsPerCall = 8;

// Whether two answers disagree: another class (two or more outputs), or
// for one output a difference above 1e-6 of its size.
bool Disagree(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.empty()) return true;
  if (a.size() >= 2) return ArgMax(a) != ArgMax(b);
  return std::fabs(a[0] - b[0]) > 1e-6 * std::max(1.0, std::fabs(a[0]));
}

// One logged request that can be replayed.
struct Row {
  std::vector<double> inputs;
  std::optional<double> label;
  uint32_t unit = 0;
  std::vector<double> logged;  // production's logged answer (empty when another variant answered)
};

struct Contender {
  ContenderResult result;
  std::vector<std::optional<std::vector<double>>> answers;  // per row
};

// Per-unit sums of one series of values.
class PerUnit {
 public:
  void Add(uint32_t unit, MetricPoint v) {
    Acc& a = units_[unit];
    a.y += v.y;
    a.n += v.n;
    a.yy += v.y * v.y;
  }
  UnitSums Sums() const {
    UnitSums s;
    for (const auto& [_, a] : units_) s.Add(a.y, a.n, a.yy);
    return s;
  }

 private:
  struct Acc {
    double y = 0, n = 0, yy = 0;
  };
  std::unordered_map<uint32_t, Acc> units_;
};

// Two models scored on the same requests, summed per unit: the difference
// of their ratios, R_a − R_b, and its variance by the delta method from each
// unit's linearised contribution (y_a − R_a n_a)/n̄_a − (y_b − R_b n_b)/n̄_b
// (for means, n = 1: the variance of the paired differences over K).
class PairedUnits {
 public:
  void Add(uint32_t unit, MetricPoint a, MetricPoint b) {
    Acc& u = units_[unit];
    u.ya += a.y;
    u.na += a.n;
    u.yb += b.y;
    u.nb += b.n;
  }
  int64_t units() const { return static_cast<int64_t>(units_.size()); }
  // None when either side has no denominator (nothing to compare).
  std::optional<std::pair<double, double>> Difference() const {
    double ya = 0, na = 0, yb = 0, nb = 0;
    for (const auto& [_, u] : units_) ya += u.ya, na += u.na, yb += u.yb, nb += u.nb;
    const double k = static_cast<double>(units_.size());
    if (!(na > 0 && nb > 0) || k < 2) return std::nullopt;
    const double ra = ya / na, rb = yb / nb, mean_na = na / k, mean_nb = nb / k;
    double ss = 0;
    for (const auto& [_, u] : units_) {
      const double e = (u.ya - ra * u.na) / mean_na - (u.yb - rb * u.nb) / mean_nb;
      ss += e * e;
    }
    return std::pair{ra - rb, ss / (k - 1) / k};
  }

 private:
  struct Acc {
    double ya = 0, na = 0, yb = 0, nb = 0;
  };
  std::unordered_map<uint32_t, Acc> units_;
};

std::string ChooseMetric(const BenchmarkRequest& request, const DeploymentSpec& spec, const std::vector<Row>& rows,
                         const Contender& production) {
  if (!request.metric.empty()) return request.metric;
  if (spec.rollout) {
    const RolloutMetricInfo* info = FindRolloutMetric(spec.rollout->metric.name);
    if (info && info->needs_label) return spec.rollout->metric.name;
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    if (production.answers[i]) return production.answers[i]->size() >= 2 ? "accuracy" : "mae";
  }
  return "accuracy";
}

// The version a variant runs: its own, or for 0 its model's latest ready one (0 when none).
int64_t VersionOf(BenchmarkWorld& world, const Variant& v) {
  if (v.version != 0) return v.version;
  const std::vector<int64_t> ready = world.ReadyVersions(v.model);
  return ready.empty() ? 0 : ready.back();
}

// What a benchmark that could not be made stores: the request and why.
BenchmarkResult NotMade(const BenchmarkRequest& request, int64_t started_ms, int64_t now_ms, std::string why) {
  BenchmarkResult out;
  out.endpoint = request.endpoint;
  out.trigger = request.trigger;
  out.from_ms = request.from_ms;
  out.to_ms = request.to_ms;
  out.started_ms = started_ms;
  out.finished_ms = now_ms;
  out.error = std::move(why);
  out.summary = "benchmark of '" + request.endpoint + "' not made: " + out.error;
  return out;
}

// The contenders: production, the candidates, then the production model's
// other ready versions, at most kMaxContenders besides production.
std::vector<Contender> ListContenders(BenchmarkWorld& world, const DeploymentSpec& spec) {
  std::vector<Contender> out;
  const std::vector<int64_t> ready = world.ReadyVersions(spec.production.model);
  auto add = [&](std::string name, std::string role, std::string mode, const std::string& model, int64_t version) {
    for (const Contender& c : out) {
      if (c.result.model == model && c.result.version == version) return;  // the same model once
    }
    if (out.size() > kMaxContenders) return;
    Contender c;
    c.result.name = std::move(name);
    c.result.role = std::move(role);
    c.result.mode = std::move(mode);
    c.result.model = model;
    c.result.version = version;
    out.push_back(std::move(c));
  };
  add("production", "production", "", spec.production.model, VersionOf(world, spec.production));
  for (const Variant& v : spec.candidates) {
    add(v.name, "candidate", std::string(VariantModeName(v.mode)), v.model, VersionOf(world, v));
  }
  for (auto it = ready.rbegin(); it != ready.rend(); ++it) {
    std::string name = "v" + std::to_string(*it);
    if (spec.Candidate(name)) name = spec.production.model + "-v" + std::to_string(*it);
    add(std::move(name), "version", "", spec.production.model, *it);
  }
  return out;
}

// Replays `rows` through contender `c` in calls of at most
// max_rows_per_call rows, giving way to the model's own traffic and
// keeping the budget. False when the run must stop.
bool Replay(BenchmarkWorld& world, const std::vector<Row>& rows, const BenchmarkWorld::Replay& shape,
            const BenchmarkOptions& options, std::chrono::steady_clock::time_point deadline,
            const std::function<bool(std::chrono::microseconds)>& wait, Contender& c) {
  ContenderResult& r = c.result;
  c.answers.assign(rows.size(), std::nullopt);
  const size_t per_call = static_cast<size_t>(std::clamp<int64_t>(shape.max_rows_per_call, 1, kReplayRowsPerCall));
  std::vector<const std::vector<double>*> batch;
  std::vector<size_t> index;
  size_t next = 0;
  while (next < rows.size()) {
    batch.clear();
    index.clear();
    for (; next < rows.size() && batch.size() < per_call; ++next) {
      if (static_cast<int64_t>(rows[next].inputs.size()) != shape.row_values) continue;
      batch.push_back(&rows[next].inputs);
      index.push_back(next);
    }
    if (batch.empty()) break;
    // Serving first: wait while the model has requests queued.
    while (world.Busy(r.model, r.version)) {
      if (std::chrono::steady_clock::now() >= deadline || !wait(std::chrono::milliseconds(5))) return false;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    const auto start = std::chrono::steady_clock::now();
    auto answers = world.Run(r.model, r.version, batch);
    const auto took = std::chrono::steady_clock::now() - start;
    r.run_ms += std::chrono::duration<double, std::milli>(took).count();
    if (!answers.ok() || answers->size() != batch.size()) {
      r.errors += static_cast<int64_t>(batch.size());
      if (r.first_error.empty()) {
        r.first_error = answers.ok() ? "the model answered " + std::to_string(answers->size()) + " rows of " +
                                           std::to_string(batch.size())
                                     : answers.status().message();
      }
    } else {
      for (size_t i = 0; i < batch.size(); ++i) c.answers[index[i]] = std::move((*answers)[i]);
      r.rows += static_cast<int64_t>(batch.size());
    }
    // The budget: run time may be max_cpu of the wall time.
    if (options.max_cpu < 1) {
      const auto pause =
          std::chrono::duration_cast<std::chrono::microseconds>(took * ((1 - options.max_cpu) / options.max_cpu));
      if (pause.count() > 0 && !wait(pause)) return false;
    }
  }
  return true;
}

// Scores every contender that ran against production's replayed answers.
void Score(const std::vector<Row>& rows, const std::string& metric_name, bool higher_is_better,
           const BenchmarkOptions& options, int compared_contenders, std::vector<Contender>& contenders) {
  RolloutPolicy::Metric metric;
  metric.name = metric_name;
  const bool rmse = metric_name == "rmse";  // scored as mse, reported as its root
  const double z_family = NormalQuantile(1 - options.alpha / (2.0 * std::max(1, compared_contenders)));
  const Contender& production = contenders[0];
  for (Contender& c : contenders) {
    ContenderResult& r = c.result;
    if (!r.skipped.empty()) {
      r.verdict = "not_run";
      continue;
    }
    PerUnit value;
    PairedUnits paired;  // this contender and production on the same labelled requests
    int64_t correct_estimated_rows = 0;
    double estimated = 0;
    double abs_diff = 0;
    int64_t abs_values = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (!c.answers[i]) continue;
      const std::vector<double>& mine = *c.answers[i];
      const std::optional<std::vector<double>>& base = production.answers[i];
      if (base && &c != &production) {
        ++r.compared;
        r.disagreements += Disagree(*base, mine);
        if (base->size() == mine.size()) {
          for (size_t k = 0; k < mine.size(); ++k) abs_diff += std::fabs(mine[k] - (*base)[k]);
          abs_values += static_cast<int64_t>(mine.size());
        }
      }
      const std::optional<MetricPoint> v = MetricValue(metric, mine, rows[i].label, std::nullopt);
      if (v) {
        ++r.labeled_rows;
        value.Add(rows[i].unit, *v);
        if (base && &c != &production) {
          if (auto b = MetricValue(metric, *base, rows[i].label, std::nullopt)) paired.Add(rows[i].unit, *v, *b);
        }
      } else if (!rows[i].label) {
        if (auto e = ExpectedCorrect(mine)) {
          estimated += *e;
          ++correct_estimated_rows;
        }
      }
    }
    if (correct_estimated_rows > 0) {
      r.estimated_accuracy = estimated / static_cast<double>(correct_estimated_rows);
      r.estimated_rows = correct_estimated_rows;
    }
    if (r.compared > 0) {
      r.disagreement_rate = static_cast<double>(r.disagreements) / static_cast<double>(r.compared);
      std::tie(r.disagreement_low, r.disagreement_high) =
          WilsonInterval(static_cast<double>(r.disagreements), static_cast<double>(r.compared));
    }
    if (abs_values > 0) r.mean_abs_diff = abs_diff / static_cast<double>(abs_values);
    const UnitSums sums = value.Sums();
    r.labeled_units = sums.units;
    if (sums.units > 0) {
      double v = sums.Ratio(), half = kZ95 * std::sqrt(sums.RatioVariance());
      if (rmse) {  // the delta method again: sd(√m) ≈ sd(m) / (2√m)
        const double root = std::sqrt(v);
        half = root > 0 ? half / (2 * root) : 0;
        v = root;
      }
      r.value = v;
      r.ci_low = v - half;
      r.ci_high = v + half;
    }
    if (&c == &production) {
      r.verdict = "production";
      continue;
    }
    const auto d = paired.Difference();
    if (paired.units() < options.min_labels || !d) {
      r.verdict = "not_enough_labels";
      if (d) r.difference = higher_is_better ? d->first : -d->first;
      continue;
    }
    // Toward better: positive = this contender is better than production.
    const double est = higher_is_better ? d->first : -d->first, var = d->second;
    r.difference = est;
    const double half = z_family * std::sqrt(var);
    r.difference_low = est - half;
    r.difference_high = est + half;
    r.p = var > 0 ? std::min(1.0, NormalTwoSidedP(est / std::sqrt(var)) * std::max(1, compared_contenders))
                  : (est == 0 ? 1.0 : 0.0);
    r.verdict = r.difference_low > 0 ? "better" : r.difference_high < 0 ? "worse" : "no_difference";
  }
}

// Ranks the contenders that ran (production first in the list, the rest by rank).
void Rank(BenchmarkResult& out, std::vector<Contender>& contenders, const BenchmarkOptions& options) {
  const ContenderResult& production = contenders[0].result;
  if (production.labeled_units >= options.min_labels) {
    out.basis = "labels";
  } else if (production.estimated_accuracy) {
    out.basis = "estimated_accuracy";
  } else {
    out.basis = "none";
  }
  std::vector<ContenderResult*> ranked;
  for (Contender& c : contenders) {
    ContenderResult& r = c.result;
    const bool has = out.basis == "labels" ? r.value.has_value() && r.labeled_units >= options.min_labels
                                           : out.basis == "estimated_accuracy" && r.estimated_accuracy.has_value();
    if (r.skipped.empty() && has) ranked.push_back(&r);
  }
  const bool by_labels = out.basis == "labels";
  const bool higher = by_labels ? out.higher_is_better : true;
  std::stable_sort(ranked.begin(), ranked.end(), [&](const ContenderResult* a, const ContenderResult* b) {
    const double va = by_labels ? *a->value : *a->estimated_accuracy;
    const double vb = by_labels ? *b->value : *b->estimated_accuracy;
    return higher ? va > vb : va < vb;
  });
  for (size_t i = 0; i < ranked.size(); ++i) ranked[i]->rank = static_cast<int>(i + 1);
  for (const ContenderResult* r : ranked) {
    if (r->verdict == "better") {
      out.winner = r->name;
      break;
    }
  }
  std::stable_sort(contenders.begin() + 1, contenders.end(), [](const Contender& a, const Contender& b) {
    const int ra = a.result.rank ? a.result.rank : 1 << 20, rb = b.result.rank ? b.result.rank : 1 << 20;
    return ra < rb;
  });
}

std::string Summarise(const BenchmarkResult& out) {
  std::string ranking;
  for (const ContenderResult& r : out.contenders) {
    if (!r.rank) continue;
    if (!ranking.empty()) ranking += ", ";
    const double v = out.basis == "labels" ? *r.value : *r.estimated_accuracy;
    ranking += fmt::format("{}. {} {:.4g}", r.rank, r.name, v);
    if (r.role != "production" && r.difference && r.verdict != "not_enough_labels") {
      ranking += fmt::format(" ({} than production by {:+.3g}, [{:+.3g}, {:+.3g}])",
                             r.verdict == "better"  ? "better"
                             : r.verdict == "worse" ? "worse"
                                                    : "no different",
                             *r.difference, r.difference_low, r.difference_high);
    }
  }
  const std::string what = out.basis == "labels"               ? out.metric + " on labelled requests"
                           : out.basis == "estimated_accuracy" ? "estimated accuracy (no labels yet)"
                                                               : "nothing (no labels, no class probabilities)";
  std::string head = out.winner.empty() ? "no contender is shown better than production"
                                        : "'" + out.winner + "' is shown better than production";
  return fmt::format("{} on {} replayed requests of '{}'; ranked by {}{}{}", head, out.replayable, out.endpoint, what,
                     ranking.empty() ? "" : ": ", ranking);
}

void WriteContender(JsonWriter& j, const ContenderResult& r) {
  j.StartObject();
  j.Field("name", r.name);
  j.Field("role", r.role);
  if (!r.mode.empty()) j.Field("mode", r.mode);
  j.Field("model", r.model);
  j.Field("version", r.version);
  if (!r.skipped.empty()) j.Field("skipped", r.skipped);
  j.Field("rank", r.rank);
  j.Field("verdict", r.verdict);
  j.Field("rows", r.rows);
  j.Field("errors", r.errors);
  if (!r.first_error.empty()) j.Field("first_error", r.first_error);
  j.Field("run_ms", r.run_ms);
  j.Field("labeled_rows", r.labeled_rows);
  j.Field("labeled_units", r.labeled_units);
  if (r.value) {
    j.Field("value", *r.value);
    j.IntervalField("ci95", r.ci_low, r.ci_high);
  }
  if (r.difference) {
    j.Field("difference", *r.difference);
    if (r.verdict != "not_enough_labels") {
      j.IntervalField("difference_ci", r.difference_low, r.difference_high);
      j.Field("p", r.p);
    }
  }
  if (r.role != "production") {
    j.Field("compared", r.compared);
    j.Field("disagreements", r.disagreements);
    j.Field("disagreement_rate", r.disagreement_rate);
    j.IntervalField("disagreement_ci95", r.disagreement_low, r.disagreement_high);
    j.Field("mean_abs_diff", r.mean_abs_diff);
  }
  if (r.estimated_accuracy) {
    j.Field("estimated_accuracy", *r.estimated_accuracy);
    j.Field("estimated_rows", r.estimated_rows);
  }
  j.EndObject();
}

}  // namespace

std::string CheckBenchmarkMetric(const std::string& metric) {
  const RolloutMetricInfo* info = FindRolloutMetric(metric);
  if (info && info->needs_label) return "";
  std::string names;
  for (const char* m : {"accuracy", "log_loss", "brier", "mae", "mse", "rmse", "precision", "recall", "f1"}) {
    if (FindRolloutMetric(m)) names += (names.empty() ? "" : ", ") + std::string(m);
  }
  return "the metric must be one scored against labels (" + names + "), got '" + metric +
         "' (a reward belongs to the answer that was shown, so it cannot score a replay)";
}

BenchmarkResult RunBenchmark(BenchmarkWorld& world, FeedbackStore& store, const BenchmarkRequest& request,
                             const BenchmarkOptions& options, const WallClock& clock,
                             const std::function<bool(std::chrono::microseconds)>& wait_fn) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(options.max_seconds);
  const auto wait = wait_fn ? wait_fn : [](std::chrono::microseconds d) {
    std::this_thread::sleep_for(d);
    return true;
  };
  BenchmarkResult out;
  out.endpoint = request.endpoint;
  out.trigger = request.trigger;
  out.from_ms = request.from_ms;
  out.to_ms = request.to_ms;
  out.alpha = options.alpha;
  out.started_ms = clock.NowMillis();
  auto fail = [&](std::string why) { return NotMade(request, out.started_ms, clock.NowMillis(), std::move(why)); };
  if (!request.metric.empty()) {
    if (std::string why = CheckBenchmarkMetric(request.metric); !why.empty()) return fail(why);
  }
  const std::shared_ptr<const DeploymentSpec> spec = world.Spec(request.endpoint);
  if (!spec) return fail("no endpoint '" + request.endpoint + "'");
  std::vector<Contender> contenders = ListContenders(world, *spec);
  std::vector<BenchmarkWorld::Replay> shapes(contenders.size());
  for (size_t i = 0; i < contenders.size(); ++i) {
    ContenderResult& r = contenders[i].result;
    if (r.version == 0) {
      r.skipped = "model '" + r.model + "' has no ready version";
      continue;
    }
    auto shape = world.Replayable(r.model, r.version);
    if (shape.ok()) {
      shapes[i] = *shape;
    } else {
      r.skipped = shape.status().message();
    }
  }
  if (!contenders[0].result.skipped.empty()) {
    return fail("production (" + contenders[0].result.model + " v" + std::to_string(contenders[0].result.version) +
                ") cannot be replayed: " + contenders[0].result.skipped);
  }
  // The logged requests, those of one row that production can take.
  const int64_t limit =
      std::clamp<int64_t>(request.max_rows > 0 ? request.max_rows : options.max_rows, 1, kMaxBenchmarkRows);
  std::vector<Row> rows;
  std::unordered_map<std::string, uint32_t> units;
  uint32_t anonymous = 0;
  auto visited =
      store.ScanSampledInputs(request.endpoint, request.from_ms, request.to_ms, limit, [&](const ServedPrediction& p) {
        ++out.sampled;
        Row row;
        row.inputs = ParseCompactValues(p.inputs);
        if (static_cast<int64_t>(row.inputs.size()) != shapes[0].row_values) return;
        row.label = p.label;
        row.unit =
            p.key_hash.empty() ? 0x80000000u | anonymous++ : units.emplace(p.key_hash, units.size()).first->second;
        if (p.variant == "production") row.logged = ParseCompactValues(p.outputs);
        rows.push_back(std::move(row));
      });
  if (!visited.ok()) return fail("the prediction log could not be read: " + visited.status().message());
  out.truncated = *visited >= limit;
  out.replayable = static_cast<int64_t>(rows.size());
  if (rows.empty()) {
    return fail(out.sampled == 0 ? "no request in the window was logged with its inputs (serve with "
                                   "--log-inputs-sample-rate above 0)"
                                 : fmt::format("none of the {} requests logged with inputs has the {} values of one "
                                               "row of production's input",
                                               out.sampled, shapes[0].row_values));
  }
  int ran = 0;
  for (size_t i = 0; i < contenders.size(); ++i) {
    ContenderResult& r = contenders[i].result;
    if (!r.skipped.empty()) continue;
    if (shapes[i].row_values != shapes[0].row_values) {
      r.skipped =
          fmt::format("its input takes {} values per row, production's {}", shapes[i].row_values, shapes[0].row_values);
      continue;
    }
    if (!Replay(world, rows, shapes[i], options, deadline, wait, contenders[i])) {
      out.truncated = true;
      if (r.rows == 0) r.skipped = "the run stopped (time bound or shutdown) before it ran";
    }
    if (i > 0 && r.skipped.empty()) ++ran;
  }
  // Production's replay against what it logged: the replay is faithful.
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& replayed = contenders[0].answers[i];
    if (rows[i].logged.empty() || !replayed || replayed->size() != rows[i].logged.size()) continue;
    ++out.replay_checked;
    for (size_t k = 0; k < replayed->size(); ++k) {
      out.replay_max_abs_diff = std::max(out.replay_max_abs_diff, std::fabs((*replayed)[k] - rows[i].logged[k]));
    }
  }
  if (out.replay_max_abs_diff > 1e-4) {
    out.warning = fmt::format(
        "production's replay differs from its logged answers by up to {:.3g} on {} requests: a version changed "
        "since, or the model is not deterministic",
        out.replay_max_abs_diff, out.replay_checked);
  }
  out.metric = ChooseMetric(request, *spec, rows, contenders[0]);
  out.higher_is_better = FindRolloutMetric(out.metric)->higher_is_better;
  Score(rows, out.metric, out.higher_is_better, options, ran, contenders);
  Rank(out, contenders, options);
  for (Contender& c : contenders) out.contenders.push_back(std::move(c.result));
  out.summary = Summarise(out);
  out.finished_ms = clock.NowMillis();
  return out;
}

std::string BenchmarkResultJson(const BenchmarkResult& r) {
  JsonWriter j;
  j.StartObject();
  j.Field("endpoint", r.endpoint);
  j.Field("trigger", r.trigger);
  j.Field("from_ms", r.from_ms);
  j.Field("to_ms", r.to_ms);
  j.Field("started_ms", r.started_ms);
  j.Field("finished_ms", r.finished_ms);
  if (!r.error.empty()) j.Field("error", r.error);
  j.Field("metric", r.metric);
  j.Field("direction", r.higher_is_better ? "higher" : "lower");
  j.Field("basis", r.basis);
  j.Field("alpha", r.alpha);
  j.Field("sampled", r.sampled);
  j.Field("replayable", r.replayable);
  j.Field("truncated", r.truncated);
  j.Key("replay_check");
  j.StartObject();
  j.Field("rows", r.replay_checked);
  j.Field("max_abs_diff", r.replay_max_abs_diff);
  j.EndObject();
  j.Field("winner", r.winner);
  j.Field("summary", r.summary);
  if (!r.warning.empty()) j.Field("warning", r.warning);
  j.Key("contenders");
  j.StartArray();
  for (const ContenderResult& c : r.contenders) WriteContender(j, c);
  j.EndArray();
  j.EndObject();
  return j.Take();
}

// ---- Benchmarker ----

StatusOr<std::unique_ptr<Benchmarker>> Benchmarker::Create(Options options) {
  if (!options.world || !options.store) return InvalidArgument("a benchmarker needs a world and a store");
  const BenchmarkOptions& b = options.benchmark;
  if (!(b.max_cpu > 0 && b.max_cpu <= 1)) return InvalidArgument("the benchmark CPU budget must be in (0, 1]");
  if (b.max_rows < 1 || b.max_rows > kMaxBenchmarkRows) {
    return InvalidArgument("the benchmark rows must be from 1 to " + std::to_string(kMaxBenchmarkRows));
  }
  if (b.max_seconds < 1 || !(b.alpha > 0 && b.alpha < 1) || b.min_labels < 2 || b.min_interval_s < 0) {
    return InvalidArgument("benchmark options out of range");
  }
  return std::unique_ptr<Benchmarker>(new Benchmarker(options));
}

Benchmarker::Benchmarker(Options options)
    : options_(options), clock_(options_.clock ? *options_.clock : *WallClock::System()) {
  if (options_.background) {
    thread_ = std::thread([this] {
      SetThreadName("vigil-benchmark");
      Loop();
    });
  }
}

Benchmarker::~Benchmarker() { Stop(); }

void Benchmarker::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

Status Benchmarker::Enqueue(BenchmarkRequest request) {
  MutexLock lock(mu_);
  if (stopping_) return Unavailable("the server is stopping");
  if (running_ == request.endpoint ||
      std::any_of(queue_.begin(), queue_.end(), [&](const auto& q) { return q.endpoint == request.endpoint; })) {
    return FailedPrecondition("a benchmark of '" + request.endpoint + "' is already queued or running");
  }
  if (queue_.size() >= kMaxQueued) {
    return FailedPrecondition("too many benchmarks are queued (" + std::to_string(kMaxQueued) + "); try later");
  }
  queue_.push_back(std::move(request));
  cv_.NotifyAll();
  return Status::Ok();
}

Benchmarker::Queue Benchmarker::Pending() const {
  MutexLock lock(mu_);
  Queue q;
  q.running = running_;
  for (const auto& r : queue_) q.queued.push_back(r.endpoint);
  return q;
}

int Benchmarker::Poll(int64_t now_ms) {
  if (!options_.alerts) return 0;
  const AlertTracker::Snapshot alerts = options_.alerts->Get(0);
  int queued = 0;
  std::set<std::string> done;  // queued by an earlier alert of this poll (a drift fires one alert per column)
  for (const AlertTracker::Active& a : alerts.firing) {
    const bool drift =
        a.alertname == "DatasetDrift" || a.alertname == "FeatureDrift" || a.alertname == "PredictionDrift";
    const bool quality = a.alertname == "QualityRegression";
    if (!drift && !quality) continue;
    auto label = [&](const char* name) {
      auto it = a.labels.find(name);
      return it == a.labels.end() ? std::string() : it->second;
    };
    // The endpoints this alert is about: production is the model version
    // that drifted, or the variant whose quality fell.
    std::vector<std::string> endpoints;
    if (quality) {
      if (label("variant") == "production" && !label("endpoint").empty()) endpoints.push_back(label("endpoint"));
    } else {
      for (const std::string& e : options_.world->Endpoints()) {
        const std::shared_ptr<const DeploymentSpec> spec = options_.world->Spec(e);
        if (!spec || spec->production.model != label("model")) continue;
        if (std::to_string(VersionOf(*options_.world, spec->production)) == label("version")) endpoints.push_back(e);
      }
    }
    for (const std::string& endpoint : endpoints) {
      if (done.count(endpoint)) continue;
      auto last = options_.store->Benchmarks(endpoint, 1);
      if (!last.ok()) continue;
      if (!last->empty()) {
        const int64_t at = last->front().time_ms;
        if (at >= a.since_ms || now_ms - at < options_.benchmark.min_interval_s * 1000) continue;
      }
      BenchmarkRequest r;
      r.endpoint = endpoint;
      r.from_ms = a.evidence.window_start_ms > 0 ? a.evidence.window_start_ms : a.since_ms;
      r.to_ms = now_ms + 1;
      r.trigger = a.alertname + AlertLabelsJson(a.labels) + " firing since " + std::to_string(a.since_ms);
      if (Enqueue(std::move(r)).ok()) {
        ++queued;
        done.insert(endpoint);
      }
    }
  }
  return queued;
}

void Benchmarker::RunQueued() {
  for (;;) {
    BenchmarkRequest r;
    {
      MutexLock lock(mu_);
      if (queue_.empty() || stopping_) return;
      r = std::move(queue_.front());
      queue_.pop_front();
      running_ = r.endpoint;
    }
    RunOne(r);
  }
}

bool Benchmarker::Wait(std::chrono::microseconds d) {
  MutexLock lock(mu_);
  if (!stopping_) cv_.WaitFor(lock, d);
  return !stopping_;
}

void Benchmarker::RunOne(const BenchmarkRequest& request) {
  const int64_t now_ms = clock_.NowMillis();
  const BenchmarkResult result =
      options_.feedback
          ? RunBenchmark(*options_.world, *options_.feedback, request, options_.benchmark, clock_,
                         [this](std::chrono::microseconds d) { return Wait(d); })
          : NotMade(request, now_ms, now_ms,
                    "the server keeps no prediction log (start vigil serve with --data-dir and prediction logging on)");
  const std::string json = BenchmarkResultJson(result);
  if (Status s = options_.store->AppendBenchmark({0, result.finished_ms, request.endpoint, request.trigger, json});
      !s.ok()) {
    spdlog::error("event=benchmark_not_stored endpoint={} error={}", request.endpoint, LogValue(s.message()));
  }
  spdlog::info("event=benchmark endpoint={} winner={} basis={} replayed={} summary={}", request.endpoint,
               LogValue(result.winner), result.basis, result.replayable, LogValue(result.summary));
  if (options_.alerts && result.error.empty()) {
    double best = 0;
    for (const ContenderResult& c : result.contenders) {
      if (c.name == result.winner && c.difference) best = *c.difference;
    }
    options_.alerts->Observe("BetterModelAvailable", {{"endpoint", request.endpoint}}, !result.winner.empty(),
                             {.statistic = result.metric + "_difference",
                              .value = best,
                              .threshold = 0,
                              .window_start_ms = request.from_ms,
                              .window_end_ms = request.to_ms,
                              .summary = result.summary},
                             1, 1, result.finished_ms);
  }
  MutexLock lock(mu_);
  running_.clear();
}

void Benchmarker::Loop() {
  constexpr auto kPollEvery = std::chrono::seconds(5);
  auto next_poll = std::chrono::steady_clock::now();
  for (;;) {
    {
      MutexLock lock(mu_);
      while (!stopping_ && queue_.empty() && std::chrono::steady_clock::now() < next_poll) {
        cv_.WaitUntil(lock, next_poll);
      }
      if (stopping_) return;
    }
    if (std::chrono::steady_clock::now() >= next_poll) {
      Poll(clock_.NowMillis());
      next_poll = std::chrono::steady_clock::now() + kPollEvery;
    }
    RunQueued();
  }
}

}  // namespace vigil
