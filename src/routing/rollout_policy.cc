#include "routing/rollout_policy.h"

#include <fmt/format.h>

#include <cmath>

#include "core/yaml_fields.h"
#include "routing/spec_writer.h"

namespace vigil {
namespace {

constexpr RolloutMetricInfo kMetrics[] = {
    {"accuracy", true, true}, {"log_loss", false, true},    {"brier", false, true},    {"mae", false, true},
    {"mse", false, true},     {"rmse", false, true},        {"precision", true, true}, {"recall", true, true},
    {"f1", true, true},       {"mean_reward", true, false},
};

int64_t ReadSeconds(const YAML::Node& node, const std::string& field, int64_t min) {
  return ReadInt(node, field, min, RolloutPolicy::kMaxDurationS);
}

double ReadMargin(const YAML::Node& node, const std::string& field) {
  RequireMap(node, field, {"margin"});
  if (!node["margin"]) throw ConfigError{field + ".margin", "a margin (>= 0, in the guardrail's units)"};
  return ReadDouble(node["margin"], field + ".margin", 0, 1e9);
}

}  // namespace

const RolloutMetricInfo* FindRolloutMetric(const std::string& name) {
  for (const auto& m : kMetrics) {
    if (name == m.name) return &m;
  }
  return nullptr;
}

std::string RolloutMetricNames() {
  std::string names;
  for (const auto& m : kMetrics) names += (names.empty() ? "" : ", ") + std::string(m.name);
  return names;
}

RolloutPolicy ReadRolloutPolicy(const YAML::Node& node, const std::string& field) {
  RequireMap(node, field,
             {"candidate", "interval_s", "min_units", "min_duration_s", "max_duration_s", "metric", "alpha",
              "guardrails", "srm_p", "on_success", "on_inconclusive", "max_errors", "shadow_first"});
  const auto f = [&](const char* key) { return field + "." + key; };
  RolloutPolicy p;
  if (!node["candidate"]) throw ConfigError{f("candidate"), "the name of the ab or canary candidate to roll out"};
  p.candidate = ReadString(node["candidate"], f("candidate"));
  if (node["interval_s"]) p.interval_s = ReadSeconds(node["interval_s"], f("interval_s"), 1);
  if (node["min_units"]) p.min_units = ReadInt(node["min_units"], f("min_units"), 2, RolloutPolicy::kMaxUnits);
  if (node["min_duration_s"]) p.min_duration_s = ReadSeconds(node["min_duration_s"], f("min_duration_s"), 0);
  if (node["max_duration_s"]) p.max_duration_s = ReadSeconds(node["max_duration_s"], f("max_duration_s"), 1);
  if (p.max_duration_s < p.min_duration_s) {
    throw ConfigError{f("max_duration_s"),
                      fmt::format("at least min_duration_s ({}), got {}", p.min_duration_s, p.max_duration_s)};
  }
  const YAML::Node m = node["metric"];
  if (!m) throw ConfigError{f("metric"), "{name: METRIC, direction: higher|lower, min_effect: X}"};
  const std::string mf = f("metric");
  RequireMap(m, mf, {"name", "direction", "min_effect", "no_feedback"});
  if (!m["name"]) throw ConfigError{mf + ".name", "one of " + RolloutMetricNames()};
  p.metric.name = ReadString(m["name"], mf + ".name");
  const RolloutMetricInfo* info = FindRolloutMetric(p.metric.name);
  if (!info) {
    throw ConfigError{mf + ".name", "one of " + RolloutMetricNames() +
                                        " (a ratio of sums over predictions, which the sequential test needs: "
                                        "auc is not one), got '" +
                                        p.metric.name + "'"};
  }
  p.metric.higher_is_better = info->higher_is_better;
  if (m["direction"]) {
    const std::string d = ReadString(m["direction"], mf + ".direction");
    if (d != "higher" && d != "lower") throw ConfigError{mf + ".direction", "higher or lower, got '" + d + "'"};
    p.metric.higher_is_better = d == "higher";
  }
  if (m["min_effect"]) p.metric.min_effect = ReadDouble(m["min_effect"], mf + ".min_effect", -1e9, 1e9);
  if (m["no_feedback"]) {
    const std::string nf = ReadString(m["no_feedback"], mf + ".no_feedback");
    if (nf != "skip" && nf != "zero") throw ConfigError{mf + ".no_feedback", "skip or zero, got '" + nf + "'"};
    if (nf == "zero" && info->needs_label) {
      throw ConfigError{mf + ".no_feedback", "skip for " + p.metric.name +
                                                 " (zero is a missing reward, as for "
                                                 "mean_reward; a missing label is not a wrong answer)"};
    }
    p.metric.no_feedback_is_zero = nf == "zero";
  }
  if (node["alpha"]) p.alpha = ReadDouble(node["alpha"], f("alpha"), 1e-6, 0.5);
  if (const YAML::Node g = node["guardrails"]) {
    RequireMap(g, f("guardrails"), {"error_rate", "latency_p99_ms"});
    p.error_rate_margin.reset();
    if (g["error_rate"]) p.error_rate_margin = ReadMargin(g["error_rate"], f("guardrails") + ".error_rate");
    if (g["latency_p99_ms"]) {
      p.latency_p99_margin_ms = ReadMargin(g["latency_p99_ms"], f("guardrails") + ".latency_p99_ms");
    }
  }
  if (node["srm_p"]) p.srm_p = ReadDouble(node["srm_p"], f("srm_p"), 1e-12, 0.5);
  if (node["on_success"]) {
    const std::string s = ReadString(node["on_success"], f("on_success"));
    if (s != "promote" && s != "hold") throw ConfigError{f("on_success"), "promote or hold, got '" + s + "'"};
    p.promote_on_success = s == "promote";
  }
  if (node["on_inconclusive"]) {
    const std::string s = ReadString(node["on_inconclusive"], f("on_inconclusive"));
    if (s != "hold" && s != "rollback") {
      throw ConfigError{f("on_inconclusive"), "hold or rollback, got '" + s + "'"};
    }
    p.rollback_on_inconclusive = s == "rollback";
  }
  if (node["max_errors"]) p.max_errors = ReadInt(node["max_errors"], f("max_errors"), 1, 10000);
  if (const YAML::Node sf = node["shadow_first"]) {
    const std::string sff = f("shadow_first");
    RequireMap(sf, sff, {"min_units", "max_disagreement", "share"});
    RolloutPolicy::ShadowStage stage;
    if (sf["min_units"]) stage.min_units = ReadInt(sf["min_units"], sff + ".min_units", 2, RolloutPolicy::kMaxUnits);
    if (sf["max_disagreement"]) {
      stage.max_disagreement = ReadDouble(sf["max_disagreement"], sff + ".max_disagreement", 0, 1);
    }
    if (sf["share"]) stage.share = ReadDouble(sf["share"], sff + ".share", 0.01, 100);
    p.shadow_first = stage;
  }
  return p;
}

void WriteRolloutPolicy(const RolloutPolicy& p, SpecWriter& out) {
  auto field = [&](const char* key) -> SpecWriter& {
    out.Key(key);
    return out;
  };
  out.BeginMap(false);
  field("candidate").String(p.candidate);
  field("interval_s").Int(p.interval_s);
  field("min_units").Int(p.min_units);
  field("min_duration_s").Int(p.min_duration_s);
  field("max_duration_s").Int(p.max_duration_s);
  field("metric").BeginMap(true);
  field("name").String(p.metric.name);
  field("direction").String(p.metric.higher_is_better ? "higher" : "lower");
  field("min_effect").Double(p.metric.min_effect);
  field("no_feedback").String(p.metric.no_feedback_is_zero ? "zero" : "skip");
  out.EndMap();
  field("alpha").Double(p.alpha);
  field("guardrails").BeginMap(false);
  for (auto [key, margin] :
       {std::pair{"error_rate", p.error_rate_margin}, {"latency_p99_ms", p.latency_p99_margin_ms}}) {
    if (!margin) continue;
    field(key).BeginMap(true);
    field("margin").Double(*margin);
    out.EndMap();
  }
  out.EndMap();
  field("srm_p").Double(p.srm_p);
  field("on_success").String(p.promote_on_success ? "promote" : "hold");
  field("on_inconclusive").String(p.rollback_on_inconclusive ? "rollback" : "hold");
  field("max_errors").Int(p.max_errors);
  if (const auto& sf = p.shadow_first) {
    field("shadow_first").BeginMap(true);
    field("min_units").Int(sf->min_units);
    field("max_disagreement").Double(sf->max_disagreement);
    field("share").Double(sf->share);
    out.EndMap();
  }
  out.EndMap();
}

}  // namespace vigil
